import math

import numpy as np
import pytest

import spanex
from spanex.core import Ledger, Oracles
from spanex.core.errors import ExactLawUnavailable, SamplerFailure
from spanex.sampling import SamplerState, emitted_law
from spanex.sampling.rejection import rejection_rounds


def _setup(N=25, beta=0.5, seed=0):
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((N, 3))
    ref = rng.dirichlet(np.ones(N))
    p = spanex.tabular_problem([1.0], [ref], [F], theta_star=np.array([1.0, -0.5, 0.25]), beta=beta,
                               B=1.2)
    scores = F @ np.array([1.0, -0.5, 0.25])
    q = p.exact.pi_star(0, beta)
    return p, scores, q


def _tv_tol(N, n, fail_prob=1e-6):
    # E TV(emp, q) <= 0.5 sum_y sqrt(q(y)/n) <= 0.5 sqrt(N/n) (Jensen + Cauchy-Schwarz); TV has bounded
    # differences 1/n, so McDiarmid adds sqrt(log(1/fail_prob)/(2n)) with probability 1 - fail_prob.
    return 0.5 * math.sqrt(N / n) + math.sqrt(math.log(1 / fail_prob) / (2 * n))


def _tv(ys, law):
    emp = np.bincount(np.asarray(ys), minlength=law.size) / len(ys)
    return 0.5 * np.abs(emp - law).sum()


# ---- the self-calibrating envelope (default) ------------------------------------------------------

def test_default_is_the_self_calibrating_envelope_and_needs_no_bound():
    s = spanex.SoftmaxSampler(beta=0.3)
    assert s.M is None and s.resolved_mode == "envelope"
    assert spanex.SoftmaxSampler(beta=0.3, M=4.0).resolved_mode == "paper"
    with pytest.raises(ValueError, match="N is fixed only when M is given"):
        s.N


@pytest.mark.parametrize("beta", [1.0, 0.1])
def test_envelope_draws_follow_the_target_and_cost_about_its_coverage(beta):
    p, s, q = _setup(N=200, beta=beta, seed=3)
    C = float(np.max(q / p.exact.ref_probs[0]))                 # coverage of the target
    L = Ledger()
    o = Oracles(p, L)
    n = 20_000
    ys, diag = spanex.SoftmaxSampler(beta=beta).sample(lambda y: s[y], 0, o, np.random.default_rng(1), n=n)
    assert diag.accepted.all()
    assert _tv(ys, q) < _tv_tol(s.size, n)
    # every draw is charged: consumed proposals + the calibration pilot + what is left in the pool
    assert L.count("weak") == int(diag.proposals.sum()) + diag.calibration_calls + o.pooled(0)
    # the physical limit of rejection is C proposals per draw; the envelope sampler must stay within 2C
    assert L.count("weak") / n <= 2 * C


def test_calibration_rule_and_shared_state():
    p, s, q = _setup(N=200, beta=0.2, seed=3)
    sampler = spanex.SoftmaxSampler(beta=0.2, pilot=16, pilot_factor=8.0)
    st = SamplerState()
    o = Oracles(p, Ledger())
    f = lambda y: s[y]
    sampler.calibrate(0, o, np.random.default_rng(0), st, sampler._scores(f, False, None), np.zeros(1, int))
    R = st.get(0)
    w = np.exp(s[R] / 0.2)
    assert len(R) >= max(16, 8 * w.max() / w.mean())           # the rule: pilot_factor x estimated coverage
    size = len(R)
    sampler.sample(f, 0, o, np.random.default_rng(1), n=5, state=st)
    assert len(st.get(0)) > size                                 # reused, and grown by the consumed proposals
    assert np.array_equal(st.get(0)[:size], R)


def test_reported_law_is_the_emitted_law_when_calibration_is_capped():
    # A needle: one response with a large score and small pi_ref mass. Capping the calibration set at 16
    # draws keeps the needle unseen (checked), so the envelope clips it. The law the sampler reports must
    # be the clipped law its draws follow, far from the target.
    N, beta = 64, 0.1
    ref = np.full(N, 1.0 / N)
    score = np.zeros(N)
    score[7] = 1.0                                              # exp(1/0.1) ≈ 2.2e4: C_cov ≈ 58
    F = np.eye(N)
    p = spanex.tabular_problem([1.0], [ref], [F], theta_star=score, beta=beta, B=1.0)
    sampler = spanex.SoftmaxSampler(beta=beta, pilot=16, max_calibration=16)
    st = SamplerState()
    o = Oracles(p, Ledger())
    rng = np.random.default_rng(4)
    ys, _ = sampler.sample(lambda y: score[y], 0, o, rng, n=1, state=st)
    R = st.get(0)
    assert len(R) == 16 and 7 not in set(R.tolist())            # the needle is unseen: the envelope is 1
    law = sampler.law(np.log(ref), score[None, :], score[R][None, :])[0]
    q = p.exact.pi_star(0, beta)
    assert 0.5 * np.abs(law - q).sum() > 0.5                    # clipped far from the target
    n = 20_000
    ys, diag = sampler.sample(lambda y: score[y], 0, o, rng, n=n, state=st)
    assert len(st.get(0)) == 16                                 # the cap freezes the envelope
    assert diag.clipped.any()                                   # the needle was proposed and clipped
    assert _tv(ys, law) < _tv_tol(N, n)                         # draws follow the reported law
    assert _tv(ys, q) > 0.5


def test_per_draw_targets_and_reproducibility():
    p, s, q = _setup()
    sampler = spanex.SoftmaxSampler(beta=p.beta)
    shift = np.array([0.0, 5.0])

    def f(ys, owner):
        return s[ys] + shift[owner]   # a per-draw constant shift leaves each draw's law unchanged

    a, da = sampler.sample(f, 0, Oracles(p, Ledger()), np.random.default_rng(9), n=2, per_draw=True)
    b, _ = sampler.sample(f, 0, Oracles(p, Ledger()), np.random.default_rng(9), n=2, per_draw=True)
    assert np.array_equal(a, b)
    assert da.log_E[1] - da.log_E[0] == pytest.approx(5.0 / p.beta)


# ---- the exact emitted law of a rejection draw ----------------------------------------------------

@pytest.mark.parametrize("fallback", ["last", "ref"])
def test_emitted_law_formula_matches_rejection_rounds_with_failures(fallback):
    # Envelope below the max (clipping) and a cap N = 2 small enough that failures are frequent: the
    # empirical law of rejection_rounds + fallback must match emitted_law, which accounts for both.
    rng = np.random.default_rng(0)
    m = 12
    p = rng.dirichlet(np.ones(m))
    s = rng.normal(size=m) * 1.5
    log_E = float(np.quantile(s, 0.8))
    n = 40_000
    cdf = np.cumsum(p)
    draw = lambda k: np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(k), side="right"), m - 1)
    rr = rejection_rounds(lambda o: draw(o.size), lambda ys, o: s[ys], np.full(n, log_E), np.full(n, 2),
                          np.full(n, 1), rng)
    out = np.empty(n, dtype=int)
    ai, ay = rr.responses("accepted")
    out[ai] = ay
    failed = np.flatnonzero(~rr.accepted)
    assert 0.02 * n < failed.size < 0.98 * n
    if fallback == "last":
        li, ly = rr.responses("last")
        out[li] = ly
    else:
        out[failed] = draw(failed.size)
    law = emitted_law(np.log(p), s[None, :], np.array([log_E]), np.array([2]), fallback)[0]
    assert law.sum() == pytest.approx(1.0)
    assert _tv(out, law) < _tv_tol(m, n)


def test_rejection_rounds_consumes_in_order_and_returns_the_rest():
    rng = np.random.default_rng(0)
    given = []
    rr = rejection_rounds(lambda o: np.arange(o.size), lambda ys, o: np.where(ys == 2, 0.0, -np.inf),
                          np.zeros(1), np.array([10]), np.array([5]), rng, lambda ys, o: given.append(ys))
    assert rr.accepted[0] and rr.used[0] == 3                    # proposals 0, 1, 2; accepted at 2
    assert list(given[0]) == [3, 4] and rr.returned == 2


# ---- the paper's sampler (mode 'paper') ------------------------------------------------------------

def test_paper_mode_exact_when_M_covers_the_density_ratio():
    p, s, q = _setup(beta=2.0)  # range(f)/beta ≈ 2.5, so M ≈ 12 while sup q/pi_ref ≈ 3
    # Zhat_M = sum_j exp(f(y'_j)/beta) >= ceil(M) exp(min f / beta), so with M >= exp((max f - min f)/beta)
    # every acceptance probability is <= 1: no clipping can occur and accepted draws have law q exactly.
    M = math.exp((s.max() - s.min()) / p.beta)
    L = Ledger()
    o = Oracles(p, L)
    sampler = spanex.SoftmaxSampler(beta=p.beta, M=M, delta=1e-6, fallback="raise")
    n = 20_000
    ys, diag = sampler.sample(lambda y: s[y], 0, o, np.random.default_rng(1), n=n)
    assert not diag.clipped.any() and diag.accepted.all()
    assert _tv(ys, q) < _tv_tol(s.size, n)
    # every proposal and partition draw is counted (unconsumed batch remainders wait in the pool)
    assert L.count("weak") == int(diag.calls.sum()) + o.pooled(0)
    assert diag.calls.max() <= sampler.max_calls_per_draw
    assert diag.acceptance_rate >= 1 / (2 * math.ceil(M))
    with pytest.raises(ExactLawUnavailable):                   # its law depends on the random Zhat_M
        sampler.law(np.log(p.exact.ref_probs[0]), s[None], s[None])


def test_paper_mode_clipping_is_diagnosed_and_biases_the_law():
    p, s, q = _setup(beta=0.2)
    assert float(np.max(q / p.exact.ref_probs[0])) > 10
    sampler = spanex.SoftmaxSampler(beta=p.beta, M=1.0, delta=0.01)
    n = 20_000
    ys, diag = sampler.sample(lambda y: s[y], 0, Oracles(p, Ledger()), np.random.default_rng(2), n=n)
    assert diag.clipped.mean() > 0.5
    assert diag.ratio_exceeds_M
    assert _tv(ys, q) > 3 * _tv_tol(s.size, n)


def test_failure_fallbacks_and_their_cost():
    p, s, _ = _setup()
    f = lambda y: np.where(y == 0, 0.0, -np.inf)  # only response 0 is acceptable
    F_small = spanex.SoftmaxSampler(beta=p.beta, M=1.0, delta=0.5)
    L = Ledger()
    o = Oracles(p, L)
    ys, diag = spanex.SoftmaxSampler(beta=p.beta, M=1.0, delta=0.5, fallback="ref").sample(
        lambda y: np.full(len(y), -np.inf), 0, o, np.random.default_rng(0), n=3)
    assert not diag.accepted.any() and len(ys) == 3
    assert L.count("weak") == int(diag.calls.sum()) + o.pooled(0)  # the fresh fallback draws are counted too
    with pytest.raises(SamplerFailure):
        spanex.SoftmaxSampler(beta=p.beta, M=1.0, delta=0.5, fallback="raise").sample(
            lambda y: np.full(len(y), -np.inf), 0, Oracles(p, Ledger()), np.random.default_rng(0))
    ys, diag = spanex.SoftmaxSampler(beta=p.beta, M=1.0, delta=0.5, fallback="none").sample(
        lambda y: np.full(len(y), -np.inf), 0, Oracles(p, Ledger()), np.random.default_rng(0), n=2)
    assert ys == [None, None]
    assert F_small.N == math.ceil(4 * 1 * math.log(8))
    ys, _ = F_small.sample(f, 0, Oracles(p, Ledger()), np.random.default_rng(0), n=50)
    assert ys.shape == (50,)


def test_paper_mode_without_M_calibrates_it():
    p, s, q = _setup(beta=0.5)
    ys, diag = spanex.SoftmaxSampler(beta=p.beta, mode="paper").sample(lambda y: s[y], 0, Oracles(p, Ledger()),
                                                                      np.random.default_rng(0), n=10)
    assert diag.mode == "paper" and diag.M >= math.e ** 2 and diag.calibration_calls > 0


@pytest.mark.parametrize("kw,match", [(dict(M=0.5), "M must be"), (dict(beta=0.0), "beta"),
                                      (dict(delta=1.0), "delta"), (dict(delta=0.0), "delta"),
                                      (dict(fallback="retry"), "fallback"), (dict(batch_size=0), "batch_size"),
                                      (dict(M=float("nan")), "M must be finite"), (dict(mode="fast"), "mode"),
                                      (dict(mode="envelope"), "M must be None"), (dict(pilot=0), "pilot"),
                                      (dict(pilot_factor=0.5), "pilot_factor"),
                                      (dict(M=None, max_calibration=4), "max_calibration")])
def test_bad_parameters(kw, match):
    args = dict(beta=1.0, M=2.0)
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=match):
        spanex.SoftmaxSampler(**args)
