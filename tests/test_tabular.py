import numpy as np
import pytest

import spanex
from spanex.tabular import TabularInstance


def _rand_instance(rng, K=3, sizes=(5, 9, 7), d=3, beta=0.3):
    feats = [rng.standard_normal((n, d)) for n in sizes]
    refs = [rng.dirichlet(np.ones(n)) for n in sizes]
    theta = rng.standard_normal(d)
    return spanex.tabular_problem(rng.dirichlet(np.ones(K)), refs, feats, theta_star=theta, beta=beta, B=float(np.linalg.norm(theta)))


def test_suboptimality_identity_matches_direct_formula():
    rng = np.random.default_rng(0)
    p = _rand_instance(rng)
    ex, beta = p.exact, p.beta
    # J(pi*) computed three ways: beta E log Z*, the direct formula at pi*, and max over random policies
    pis = [ex.pi_star(x, beta) for x in range(ex.n_prompts)]
    assert ex.J(pis, beta) == pytest.approx(ex.J_star(beta), rel=1e-12, abs=1e-12)
    for _ in range(20):
        pol = [rng.dirichlet(np.ones(ex.n_responses(x))) for x in range(ex.n_prompts)]
        direct = ex.J_star(beta) - ex.J(pol, beta)
        assert ex.suboptimality(pol, beta) == pytest.approx(direct, rel=1e-10, abs=1e-12)
        assert direct > 0


def test_coverage_is_sup_of_density_ratio():
    rng = np.random.default_rng(1)
    p = _rand_instance(rng, beta=0.1)
    ex = p.exact
    brute = max(np.max(ex.pi_star(x, p.beta) / ex.ref_probs[x]) for x in range(ex.n_prompts))
    assert spanex.coverage(p) == pytest.approx(brute, rel=1e-10)
    # C_cov <= exp(range(r*)/beta)
    rng_r = max(r.max() for r in ex.rewards) - min(r.min() for r in ex.rewards)
    assert spanex.coverage(p) <= np.exp(rng_r / p.beta)


def test_extreme_beta_and_large_features_do_not_overflow():
    F = np.array([[1e3], [-1e3], [0.0]])
    p = spanex.tabular_problem([1.0], [np.full(3, 1 / 3)], [F], theta_star=[1.0], beta=1e-3, B=1.0)
    pi = p.exact.pi_star(0, p.beta)
    assert np.all(np.isfinite(pi)) and pi[0] == pytest.approx(1.0)
    assert np.isfinite(np.log(spanex.coverage(p)))  # = 3 up to round-off: pi* is a point mass
    assert spanex.coverage(p) == pytest.approx(3.0)


def test_sampling_handles_a_million_responses():
    N = 10**6
    rng = np.random.default_rng(2)
    ref = rng.dirichlet(np.full(N, 0.5))
    inst = TabularInstance([1.0], [ref], [np.zeros((N, 1))], theta_star=[0.0])
    ys = inst.sample_ref(0, 200_000, np.random.default_rng(3))
    assert ys.min() >= 0 and ys.max() < N
    # mean index under pi_ref: sample mean within 5 standard errors (a 5-sigma bound on a fixed seed)
    idx = np.arange(N)
    mu = ref @ idx
    sd = np.sqrt(ref @ (idx - mu) ** 2 / ys.size)
    assert abs(ys.mean() - mu) < 5 * sd


def test_sampling_law_matches_pi_ref_small():
    rng = np.random.default_rng(4)
    ref = rng.dirichlet(np.ones(6))
    inst = TabularInstance([1.0], [ref], [np.eye(6)], theta_star=np.zeros(6))
    n = 100_000
    emp = np.bincount(inst.sample_ref(0, n, np.random.default_rng(5)), minlength=6) / n
    # E TV <= 0.5 * sum sqrt(p/n) <= 0.5 sqrt(N/n); TV has bounded differences 1/n, so by McDiarmid
    # TV - E TV < sqrt(log(1/1e-6)/(2n)) with probability 1 - 1e-6
    tol = 0.5 * np.sqrt(6 / n) + np.sqrt(np.log(1e6) / (2 * n))
    assert 0.5 * np.abs(emp - ref).sum() < tol


def test_exact_strong_oracle_samples_pi_theta():
    rng = np.random.default_rng(6)
    p = _rand_instance(rng, K=1, sizes=(8,))
    theta = np.array([0.5, -1.0, 0.3])
    n = 100_000
    ys = p.strong(0, theta, n, np.random.default_rng(7))
    emp = np.bincount(ys, minlength=8) / n
    tol = 0.5 * np.sqrt(8 / n) + np.sqrt(np.log(1e6) / (2 * n))  # as in test_sampling_law_matches_pi_ref_small
    assert 0.5 * np.abs(emp - p.exact.tilted_probs(0, theta, p.beta)).sum() < tol


def test_ragged_response_sets():
    p = spanex.tabular_problem([0.5, 0.5], [np.full(2, 0.5), np.full(5, 0.2)],
                               [np.ones((2, 3)), np.zeros((5, 3))], theta_star=np.ones(3), beta=1.0, B=2.0)
    assert p.exact.n_responses(0) == 2 and p.exact.n_responses(1) == 5
    assert p.d == 3


@pytest.mark.parametrize("kwargs,match", [
    (dict(beta=0.0), "beta"),
    (dict(beta=-1.0), "beta"),
    (dict(features=[np.array([[np.nan, 0.0], [0.0, 1.0]])]), "NaN"),
    (dict(features=[np.array([[np.inf, 0.0], [0.0, 1.0]])]), "NaN/inf"),
    (dict(ref_probs=[np.array([0.3, 0.3])]), "sum to 1"),
    (dict(ref_probs=[np.array([1.2, -0.2])]), "non-negative"),
    (dict(rho=[0.4]), "sum to 1"),
    (dict(theta_star=np.ones(3)), "theta_star"),
    (dict(features=[np.ones((3, 2))]), "shape"),
    (dict(rho=[0.5, 0.5]), "one entry per prompt"),
    (dict(noise="laplace"), "noise"),
    (dict(sigma=-0.1), "sigma"),
    (dict(B=None), "declare a reward bound"),
])
def test_bad_input_raises_clear_errors(kwargs, match):
    args = dict(rho=[1.0], ref_probs=[np.array([0.5, 0.5])], features=[np.eye(2)], theta_star=np.ones(2), beta=0.5,
                B=2.0)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        spanex.tabular_problem(args.pop("rho"), args.pop("ref_probs"), args.pop("features"), **args)


def test_noise_models_have_the_right_mean():
    F = np.array([[0.2], [0.8]])
    for noise in ("none", "gaussian", "uniform", "bernoulli"):
        p = spanex.tabular_problem([1.0], [np.full(2, 0.5)], [F], theta_star=[1.0], beta=1.0, noise=noise, sigma=0.2, B=1.0)
        r = p.reward(0, np.ones(40_000, dtype=int), np.random.default_rng(0))
        # sd of each reward <= 0.5 (bernoulli in {0,1}); 5 standard errors on a fixed seed
        assert abs(r.mean() - 0.8) < 5 * 0.5 / np.sqrt(r.size)
    bt = spanex.tabular_problem([1.0], [np.full(2, 0.5)], [F], theta_star=[1.0], beta=1.0, feedback="preference", B=1.0)
    b = bt.preference(0, np.ones(40_000, dtype=int), np.zeros(40_000, dtype=int), np.random.default_rng(1))
    assert abs(b.mean() - 1 / (1 + np.exp(-0.6))) < 5 * 0.5 / np.sqrt(b.size)
