"""Token-level SoftmaxSampler: exact law, per-prefix targets, cost accounting, validation."""

import numpy as np
import pytest
from scipy.special import logsumexp

from spanex.core import Ledger, Oracles
from spanex.sampling import SamplerState
from spanex.sampling.token_sampler import TokenSoftmaxSampler
from spanex.tokens import token_linear


@pytest.fixture
def prob():
    return token_linear(H=2, A=3, k=2, beta=1.0, n_prompts=1, seed=7)


def tilt(prob, prefix, f, beta):
    lp = np.log(prob.token_model.next_probs(0, [prefix])[0])
    z = lp + f / beta
    return np.exp(z - logsumexp(z))


def test_rejection_law_matches_exact_tilt_per_prefix(prob):
    beta = 0.5
    f = {(): np.array([0.0, 0.6, -0.4]), (2,): np.array([0.9, 0.0, 0.0])}
    # density ratios: max_a exp(f/beta)/E_ref exp(f/beta) <= e^{2 * 1.0 / 0.5} = e^2 < 8, so M = 8 never clips
    s = TokenSoftmaxSampler(beta=beta, M=8, delta=1e-3)
    ledger = Ledger()
    o = Oracles(prob, ledger)
    n = 20000
    prefixes = [()] * n + [(2,)] * n
    toks, diag = s.sample(lambda i, t: f[prefixes[i]][t], 0, prefixes, o, np.random.default_rng(0))
    assert not diag.clipped.any() and diag.accepted.all()
    for k, p in enumerate([(), (2,)]):
        emp = np.bincount(toks[k * n:(k + 1) * n], minlength=3) / n
        # exact sampling: each frequency has sd <= sqrt(1/(4n)) = 0.0035; 5 sd = 0.018
        assert np.max(np.abs(emp - tilt(prob, p, f[p], beta))) < 0.018
    # every proposal and partition draw is a counted token call (batch remainders included), nothing else
    assert ledger.count("token") == int(diag.calls.sum()) + diag.returned
    assert ledger.sample_calls == ledger.count("token")
    # expected cost per draw ≈ M + Zhat/Z ≈ 2M; never above the per-draw cap
    assert diag.calls.max() <= s.max_calls_per_draw
    assert 8 <= diag.calls.mean() <= 3 * 8


@pytest.mark.parametrize("envelope", ["vocab", "calibrated"])
def test_envelope_modes_need_no_bound_and_follow_the_tilt(prob, envelope):
    beta = 0.25
    f = {(): np.array([0.0, 0.6, -0.4]), (2,): np.array([0.9, 0.0, -0.3])}
    s = TokenSoftmaxSampler(beta=beta, envelope=envelope)
    assert s.M is None and s.resolved_mode == "envelope"
    ledger = Ledger()
    o = Oracles(prob, ledger)
    n = 20000
    prefixes = [()] * n + [(2,)] * n
    toks, diag = s.sample(lambda i, t: f[prefixes[i]][t], 0, prefixes, o, np.random.default_rng(0),
                          state=SamplerState())
    costs = []
    for k, p in enumerate([(), (2,)]):
        q = tilt(prob, p, f[p], beta)
        emp = np.bincount(toks[k * n:(k + 1) * n], minlength=3) / n
        assert np.max(np.abs(emp - q)) < 0.018                           # 5 sd as above
        ref = prob.token_model.next_probs(0, [p])[0]
        costs.append(float(np.max(q / ref)))                             # the prefix's coverage
    # vocab: a certified envelope, E = max exp(f/beta), so proposals per draw average the coverage exactly
    # (E/Z); calibrated: the envelope is the max over what was seen, at most that
    per = [diag.proposals[:n].mean(), diag.proposals[n:].mean()]
    for c, m in zip(costs, per):
        assert m <= 1.1 * c                                              # 1/sqrt(n)-level noise on a mean
    assert ledger.count("token") == int(diag.proposals.sum()) + diag.returned + diag.calibration_calls
    assert s.emits_exact_tilt(3) == (envelope == "vocab")


def test_logprob_mode_is_exact_and_charges_one_query_per_prefix(prob):
    beta = 0.5
    f = np.array([1.0, -1.0, 0.0])
    s = TokenSoftmaxSampler(beta=beta, M=1, mode="logprob")
    ledger = Ledger()
    o = Oracles(prob, ledger)
    n = 20000
    toks, diag = s.sample(lambda i, t: f[t], 0, [(1,)] * n, o, np.random.default_rng(1))
    assert ledger.count("logprob") == 1 and ledger.count("token") == 0
    emp = np.bincount(toks, minlength=3) / n
    assert np.max(np.abs(emp - tilt(prob, (1,), f, beta))) < 0.018     # 5 sd as above
    q = tilt(prob, (1,), f, beta)
    p = prob.token_model.next_probs(0, [(1,)])[0]
    assert diag.ratio_bound[0] == pytest.approx(np.max(q / p), rel=1e-10)


def test_keys_separate_targets_at_one_prefix(prob):
    # same prefix, two anchors with opposite scores: each group must follow its own target
    s = TokenSoftmaxSampler(beta=0.25, M=60, delta=1e-3)
    o = Oracles(prob, Ledger())
    n = 4000
    prefixes = [()] * (2 * n)
    keys = [0] * n + [1] * n
    sign = np.array([1.0] * n + [-1.0] * n)
    f = np.array([0.0, 0.0, 1.0])
    toks, _ = s.sample(lambda i, t: sign[i] * f[t], 0, prefixes, o, np.random.default_rng(2), keys=keys)
    # group 0 favours token 2 (q(2) >= p(2) e^4 / (1 + p(2)(e^4 - 1)) > 0.5 for p(2) > 0.02),
    # group 1 avoids it (q(2) <= p(2) e^{-4} < 0.02)
    assert np.mean(toks[:n] == 2) > 0.5 and np.mean(toks[n:] == 2) < 0.03


def test_same_seed_same_draws(prob):
    s = TokenSoftmaxSampler(beta=1.0, M=4)
    out = []
    for _ in range(2):
        o = Oracles(prob, Ledger())
        toks, diag = s.sample(lambda i, t: t * 0.5, 0, [(0,), (1,), (0,)], o, np.random.default_rng(9))
        out.append((toks.tolist(), diag.calls.tolist()))
    assert out[0] == out[1]


def test_validation():
    with pytest.raises(ValueError, match="M must be in"):
        TokenSoftmaxSampler(beta=1.0, M=0.5)
    with pytest.raises(ValueError, match="beta must be in"):
        TokenSoftmaxSampler(beta=0.0, M=2)
    with pytest.raises(ValueError, match="delta must be in"):
        TokenSoftmaxSampler(beta=1.0, M=2, delta=1.0)
    with pytest.raises(ValueError, match="fallback must be one of"):
        TokenSoftmaxSampler(beta=1.0, M=2, fallback="none")
    with pytest.raises(ValueError, match="mode must be one of"):
        TokenSoftmaxSampler(beta=1.0, M=2, mode="exact")
    with pytest.raises(ValueError, match="envelope must be one of"):
        TokenSoftmaxSampler(beta=1.0, envelope="sometimes")
    s = TokenSoftmaxSampler(beta=1.0, M=2)
    with pytest.raises(ValueError, match="keys must have one entry per prefix"):
        s.sample(lambda i, t: t * 0.0, 0, [()], None, np.random.default_rng(0), keys=[0, 1])
