"""The strong sampling oracle, two ways: exact (1 'strong' call per draw) and weak (rejection from pi_ref)."""

import math

import numpy as np
import pytest

import spanex
from spanex.core import Ledger, LinearSoftmaxPolicy, Oracles
from spanex.core.errors import BudgetExhausted, SamplerFailure
from spanex.sampling.strong import WeakStrongSampler, make_strong_sampler, sample_pi_theta


def _problem(beta=0.5, N=12, d=3, seed=5):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((N, d))
    F /= np.linalg.norm(F, axis=1, keepdims=True)
    ref = rng.dirichlet(np.ones(N) * 2)
    theta = rng.standard_normal(d)
    return spanex.tabular_problem([1.0], [ref], [F], theta_star=theta / np.linalg.norm(theta), beta=beta,
                                B=1.0)


def _tv(ys, q):
    emp = np.bincount(np.asarray(ys, dtype=int), minlength=q.size) / len(ys)
    return 0.5 * np.abs(emp - q).sum()


# TV tolerance for n i.i.d. draws over K outcomes: E[TV] <= 0.5 sum_i sqrt(q_i/n) <= 0.5 sqrt(K/n);
# with K = 12 and n = 20000 that is 0.012, and TV concentrates within ~1/sqrt(n) = 0.007 of its mean
# (McDiarmid: each draw moves TV by <= 1/n). 0.03 leaves > 2.5 such deviations.
TV_TOL = 0.03


@pytest.mark.parametrize("M", [None, "doubling", "worst_case", 50.0])
def test_weak_sampler_matches_pi_theta(M):
    p = _problem(beta=1.0)
    o = Oracles(p, Ledger())
    theta = np.array([2.0, -1.0, 0.5])        # worst-case M = exp(2 |theta| / beta) ≈ 98: affordable
    q = p.exact.tilted_probs(0, theta, p.beta)
    # 50 >= sup_y q(y)/pi_ref(y) for this theta (checked here), so the fixed M is exact too
    assert np.max(q / p.exact.ref_probs[0]) < 50
    s = WeakStrongSampler(M=M, delta=0.01)
    ys = s(o, 0, theta, 20000, np.random.default_rng(0))
    assert _tv(ys, q) < TV_TOL
    # every draw was charged as 'weak', nothing as 'strong'
    assert o.ledger.count("strong") == 0
    assert o.ledger.count("weak") == s.stats["calls"] > 20000


def test_self_calibrated_cost_is_the_coverage_it_needs():
    """Measured outcome: with no bound given, the calls spent per draw track C_cov(pi_theta) (optimistic theta's
    are expensive, Thm 4.1's mechanism) and stay within 2x of it, the limit of any rejection sampler."""
    p = _problem()
    costs, covs = [], []
    for scale in (0.0, 2.0, 8.0):
        theta = scale * np.array([1.0, -1.0, 0.5])
        o = Oracles(p, Ledger())
        ys = WeakStrongSampler()(o, 0, theta, 2000, np.random.default_rng(1))
        q = p.exact.tilted_probs(0, theta, p.beta)
        assert _tv(ys, q) < 0.5 * np.sqrt(12 / 2000) + 0.05       # E TV bound + McDiarmid (1e-2 failure)
        costs.append(o.ledger.count("weak") / 2000)
        covs.append(float(np.max(q / p.exact.ref_probs[0])))
    assert covs[0] == pytest.approx(1.0) and covs[0] < covs[1] < covs[2] and covs[2] > 10
    for c, C in zip(costs, covs):
        assert 0.5 * C <= c <= 2 * C


def test_rules_that_read_the_instance_are_refused():
    for M in ("known", "auto"):
        with pytest.raises(ValueError, match="exact instance"):
            WeakStrongSampler(M=M)


def test_policy_law_is_what_its_weak_sampler_emits():
    p = _problem(beta=0.3)
    theta = np.array([2.0, -1.0, 0.5])
    led = Ledger()
    pol = LinearSoftmaxPolicy(theta, p.beta, sampler=WeakStrongSampler())
    pol.bind(Oracles(p, led, "eval"))
    law = pol.probs(0, rng=np.random.default_rng(0))           # calibrates first (charged to 'eval')
    assert led.count("weak", "eval") >= 32
    ys = pol.sample(0, 20000, np.random.default_rng(1))
    assert _tv(ys, law) < TV_TOL
    # the proposals consumed by the draws joined the calibration set, so the heaviest responses have been
    # seen by now and the law of the next draw is pi_theta but for the fallback after N proposals, whose
    # probability (1-a)^N <= (delta/4)^(4 Z/Zhat) is ~1e-8 at delta = 0.05
    q = p.exact.tilted_probs(0, theta, p.beta)
    assert 0.5 * np.abs(pol.probs(0) - q).sum() < 1e-6
    with pytest.raises(spanex.core.ExactLawUnavailable):
        LinearSoftmaxPolicy(theta, p.beta, sampler=WeakStrongSampler(M=5.0)).bind(Oracles(p, led)).probs(0)


def test_worst_case_M_formula_and_max_M():
    p = _problem(beta=0.05)
    theta = np.array([3.0, 0.0, 0.0])
    assert WeakStrongSampler.worst_case_M(theta, 0.05, 1.0) == pytest.approx(math.exp(2 * 3.0 / 0.05))
    o = Oracles(p, Ledger())
    with pytest.raises(SamplerFailure, match="max_M"):
        WeakStrongSampler(M="worst_case", max_M=1e6)(o, 0, theta, 1, np.random.default_rng(0))
    assert o.ledger.count("weak") == 0          # refused before any call


def test_budget_stops_weak_sampling_before_the_call():
    p = _problem()
    o = Oracles(p, Ledger({"max_sample_calls": 30}))
    with pytest.raises(BudgetExhausted):
        WeakStrongSampler(M=40.0)(o, 0, np.ones(3), 1, np.random.default_rng(0))
    assert o.ledger.sample_calls <= 30


def test_exact_strong_oracle_costs_one_call_per_draw():
    p = _problem()
    o = Oracles(p, Ledger())
    theta = np.array([1.0, 2.0, -1.0])
    ys = sample_pi_theta(o, 0, theta, 20000, np.random.default_rng(3), None)
    assert o.ledger.count("strong") == 20000 and o.ledger.count("weak") == 0
    assert _tv(ys, p.exact.tilted_probs(0, theta, p.beta)) < TV_TOL


def test_policy_with_weak_sampler_charges_inference_label():
    p = _problem()
    led = Ledger()
    pol = LinearSoftmaxPolicy(np.ones(3), p.beta, sampler=WeakStrongSampler())
    pol.bind(Oracles(p, led, "inference"))
    pol.sample(0, 10, np.random.default_rng(0))
    assert led.count("weak", "inference") > 0 and led.sample_calls == 0


def test_reproducible_by_seed():
    p = _problem()
    a = WeakStrongSampler()(Oracles(p, Ledger()), 0, np.ones(3), 50, np.random.default_rng(9))
    b = WeakStrongSampler()(Oracles(p, Ledger()), 0, np.ones(3), 50, np.random.default_rng(9))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("kw, err", [
    (dict(M=0.5), ValueError), (dict(M="sometimes"), ValueError), (dict(delta=0.0), ValueError),
    (dict(delta=1.0), ValueError), (dict(M0=0.5), ValueError), (dict(max_M=0), ValueError),
    (dict(fallback="retry"), ValueError), (dict(batch_size=0), ValueError), (dict(M=[3]), TypeError),
    (dict(pilot=0), ValueError), (dict(pilot_factor=0.1), ValueError),
])
def test_bad_parameters(kw, err):
    with pytest.raises(err):
        WeakStrongSampler(**kw)


def test_make_strong_sampler():
    assert make_strong_sampler("exact") is None
    assert isinstance(make_strong_sampler("weak", M=4.0), WeakStrongSampler)
    with pytest.raises(ValueError, match="strong_oracle"):
        make_strong_sampler("magic")
