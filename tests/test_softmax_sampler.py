import math

import numpy as np
import pytest

import spanex
from spanex.core import Ledger, Oracles
from spanex.core.errors import SamplerFailure


def _setup(N=25, beta=0.5, seed=0):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((N, 3))
    ref = rng.dirichlet(np.ones(N))
    p = spanex.tabular_problem([1.0], [ref], [F], theta_star=np.array([1.0, -0.5, 0.25]), beta=beta)
    scores = F @ np.array([1.0, -0.5, 0.25])
    q = p.exact.pi_star(0, beta)
    return p, scores, q


def _tv_tol(N, n, fail_prob=1e-6):
    # E TV(emp, q) <= 0.5 sum_y sqrt(q(y)/n) <= 0.5 sqrt(N/n) (Jensen + Cauchy-Schwarz); TV has bounded
    # differences 1/n, so McDiarmid adds sqrt(log(1/fail_prob)/(2n)) with probability 1 - fail_prob.
    return 0.5 * math.sqrt(N / n) + math.sqrt(math.log(1 / fail_prob) / (2 * n))


def test_exact_law_when_M_covers_the_density_ratio():
    p, s, q = _setup(beta=2.0)  # range(f)/beta ≈ 2.5, so M ≈ 12 while sup q/pi_ref ≈ 3
    # Zhat_M = sum_j exp(f(y'_j)/beta) >= ceil(M) exp(min f / beta), so with M >= exp((max f - min f)/beta)
    # every acceptance probability is <= 1: no clipping can occur and accepted draws have law q exactly.
    M = math.exp((s.max() - s.min()) / p.beta)
    L = Ledger()
    sampler = spanex.SoftmaxSampler(beta=p.beta, M=M, delta=1e-6, fallback="raise")
    n = 20_000
    ys, diag = sampler.sample(lambda y: s[y], 0, Oracles(p, L), np.random.default_rng(1), n=n)
    assert not diag.clipped.any() and diag.accepted.all()
    emp = np.bincount(ys, minlength=s.size) / n
    assert 0.5 * np.abs(emp - q).sum() < _tv_tol(s.size, n)
    # every proposal and partition draw is counted, and each draw stays within M + N (+ batch remainder)
    assert L.count("weak") == int(diag.calls.sum())
    assert diag.calls.max() <= sampler.max_calls_per_draw
    # mean proposals per accepted draw ≈ Zhat/Z <= M (loose check: acceptance rate >= 1/(2 M))
    assert diag.acceptance_rate >= 1 / (2 * math.ceil(M))


def test_clipping_is_diagnosed_and_biases_the_law():
    p, s, q = _setup(beta=0.2)
    w_sup = float(np.max(q / p.exact.ref_probs[0]))
    assert w_sup > 10
    sampler = spanex.SoftmaxSampler(beta=p.beta, M=1.0, delta=0.01)
    n = 20_000
    ys, diag = sampler.sample(lambda y: s[y], 0, Oracles(p, Ledger()), np.random.default_rng(2), n=n)
    assert diag.clipped.mean() > 0.5
    assert diag.ratio_exceeds_M
    assert diag.ratio_bound.max() > 2.0
    emp = np.bincount(ys, minlength=s.size) / n
    assert 0.5 * np.abs(emp - q).sum() > 3 * _tv_tol(s.size, n)


def test_failure_fallbacks_and_their_cost():
    p, s, _ = _setup()
    f = lambda y: np.where(y == 0, 0.0, -np.inf)  # only response 0 is acceptable
    F_small = spanex.SoftmaxSampler(beta=p.beta, M=1.0, delta=0.5)
    L = Ledger()
    ys, diag = spanex.SoftmaxSampler(beta=p.beta, M=1.0, delta=0.5, fallback="ref").sample(
        lambda y: np.full(len(y), -np.inf), 0, Oracles(p, L), np.random.default_rng(0), n=3)
    assert not diag.accepted.any() and len(ys) == 3
    assert L.count("weak") == int(diag.calls.sum())  # the fresh fallback draws are counted too
    with pytest.raises(SamplerFailure):
        spanex.SoftmaxSampler(beta=p.beta, M=1.0, delta=0.5, fallback="raise").sample(
            lambda y: np.full(len(y), -np.inf), 0, Oracles(p, Ledger()), np.random.default_rng(0))
    ys, diag = spanex.SoftmaxSampler(beta=p.beta, M=1.0, delta=0.5, fallback="none").sample(
        lambda y: np.full(len(y), -np.inf), 0, Oracles(p, Ledger()), np.random.default_rng(0), n=2)
    assert ys == [None, None]
    assert F_small.N == math.ceil(4 * 1 * math.log(8))
    ys, _ = F_small.sample(f, 0, Oracles(p, Ledger()), np.random.default_rng(0), n=50)
    assert ys.shape == (50,)


def test_per_draw_scores_and_reproducibility():
    p, s, _ = _setup()
    sampler = spanex.SoftmaxSampler(beta=p.beta, M=20.0, delta=0.01)
    shift = np.array([0.0, 5.0])

    def f(ys, owner):
        return s[ys] + shift[owner]   # a per-draw constant shift leaves each draw's law unchanged

    a, _ = sampler.sample(f, 0, Oracles(p, Ledger()), np.random.default_rng(9), n=2, per_draw=True)
    b, _ = sampler.sample(f, 0, Oracles(p, Ledger()), np.random.default_rng(9), n=2, per_draw=True)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("kw,match", [(dict(M=0.5), "M must be"), (dict(beta=0.0), "beta"),
                                      (dict(delta=1.0), "delta"), (dict(delta=0.0), "delta"),
                                      (dict(fallback="retry"), "fallback"), (dict(batch_size=0), "batch_size"),
                                      (dict(M=float("nan")), "M must be finite")])
def test_bad_parameters(kw, match):
    args = dict(beta=1.0, M=2.0)
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=match):
        spanex.SoftmaxSampler(**args)
