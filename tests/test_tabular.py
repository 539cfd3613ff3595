import math

import numpy as np
import pytest
from scipy.stats import chi2

import spanex
from spanex.tabular import TabularInstance
from spanex.tabular.alias import AliasTable


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


# ---- alias table (spanex.tabular.alias) -------------------------------------------------------------

def _implied(table):
    """The law a table represents, computed here from (prob, alias) independently of AliasTable.probs:
    bucket j sends prob[j]/N to j and (1 - prob[j])/N to alias[j]. The incoming alias parts are summed
    before the own part is added: adding thousands of tiny terms one by one to a large own part would
    round each of them and cost ~1e-12 relative by itself."""
    N = table.prob.size
    out = np.zeros(N)
    np.add.at(out, table.alias, 1.0 - table.prob)
    return (out + table.prob) / N


def _alias_cases():
    rng = np.random.default_rng(10)
    N = 10**6
    cases = {
        "dirichlet-1e3": rng.dirichlet(np.ones(1000)),
        "dirichlet(0.05)-1e4": rng.dirichlet(np.full(10**4, 0.05)),
        "dirichlet-1e6": rng.dirichlet(np.ones(N)),
        "lognormal-1e5": rng.lognormal(0, 3, 10**5),
        "one-hot": np.eye(7)[3],
        "zeros-in-p": np.r_[np.zeros(5), rng.random(10), np.zeros(3)],
        "tiny-1e-300": np.r_[1e-300, 0.5, 1e-300, 0.5 - 2e-300],
        "N=1": np.array([1.0]),
        "N=2": np.array([0.3, 0.7]),
        "N=2-zero": np.array([0.0, 1.0]),
        "uniform-1e6": np.full(N, 1e-6),
        "geometric": 0.5 ** np.arange(1000),
    }
    # many masses just above 1/N and a few tiny ones: every donor passes a residual deficit to the next
    a = np.full(N, 1.0 + 1e-9)
    a[:3], a[3:6], a[6:9] = 0.0, 1e-300, 1e-12
    cases["just-above-1/N+tiny"] = a / a.sum()
    a = np.full(N, 1.0)
    a[0] = 0.0
    cases["one-zero+rest-equal"] = a  # one chain through all N - 1 donors (c_k = k / (N - 1))
    # N - 1 identical masses just below 1/N and a single donor of mass ~1/N: the smalls' rounding
    # errors all point the same way and must not pile up on the donor
    a = np.full(N, 1.0 - 1e-9)
    a[0] = 1.0 + (N - 1) * 1e-9
    cases["one-donor"] = a
    a = np.full(10**4, 0.3)
    a[0] = 0.3 + 1e-7
    cases["equal-smalls-one-heavy"] = a
    return cases


@pytest.mark.parametrize("name", list(_alias_cases()))
def test_alias_table_represents_p_exactly(name):
    p = _alias_cases()[name]
    t = AliasTable(p)
    N = p.size
    assert t.prob.shape == (N,) and t.alias.shape == (N,)
    assert np.all((t.prob >= 0) & (t.prob <= 1)) and np.all((t.alias >= 0) & (t.alias < N))
    target = p / math.fsum(p)
    got = _implied(t)
    pos = target > 0
    # the build keeps every bucket's law to a few units of 1e-16 relative (module docstring); 1e-12 leaves
    # room for the summation in _implied. A build in plain floats misses it on these cases (5e-10 on
    # uniform-1e6 and 2e-10 on one-donor: a donor absorbs the rounding of all N scaled masses).
    np.testing.assert_allclose(got[pos], target[pos], rtol=1e-12, atol=0)
    assert np.all(got[~pos] == 0)                        # no mass where p has none
    assert not np.any(np.isin(t.alias[t.prob < 1], np.flatnonzero(~pos)))
    np.testing.assert_allclose(t.probs(), got, rtol=1e-13, atol=0)


def _sequential_vose_chain(p):
    """Reference: the sequential algorithm the vectorized build claims to equal. The active donor covers
    the smalls' deficits (in index order) while its mass is >= 1; when it drops below 1 it keeps that
    mass and the next donor first covers its residual deficit."""
    N = p.size
    q = N * p / p.sum()
    smalls, donors = [i for i in range(N) if q[i] < 1], [k for k in range(N) if q[k] >= 1]
    prob, alias = np.ones(N), np.arange(N)
    k, mass = 0, q[donors[0]]

    def retire():
        nonlocal k, mass
        prob[donors[k]], alias[donors[k]] = mass, donors[k + 1]
        mass, k = q[donors[k + 1]] - (1 - mass), k + 1

    for i in smalls:
        while mass < 1:
            retire()
        prob[i], alias[i] = q[i], donors[k]
        mass -= 1 - q[i]
    while k < len(donors) - 1 and mass < 1 - 1e-9:
        retire()
    return prob, alias


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alias_build_equals_the_sequential_construction(seed):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(300, [0.3, 1.0, 5.0][seed]))
    prob, alias = _sequential_vose_chain(p)
    t = AliasTable(p)
    # the same table up to the round-off of the sequential running mass (~N eps), and the same aliases
    # wherever the alias carries mass
    np.testing.assert_allclose(t.prob, prob, rtol=0, atol=1e-12)
    used = prob < 1 - 1e-9
    assert np.array_equal(t.alias[used], alias[used])


@pytest.mark.parametrize("name", ["dirichlet(0.3)-50", "just-above-1/N+tiny-200"])
def test_alias_samples_follow_p_chi_square(name):
    if name.startswith("dirichlet"):
        p = np.random.default_rng(11).dirichlet(np.full(50, 0.3))
    else:
        a = np.full(200, 1.0 + 1e-3)
        a[:2], a[2:4] = 0.0, 1e-12
        p = a / a.sum()
    n = 200_000
    counts = np.bincount(AliasTable(p).sample(n, np.random.default_rng(12)), minlength=p.size)
    assert np.all(counts[p == 0] == 0)
    # Pearson's statistic over the cells with expected count >= 5, the others pooled into one cell, is
    # chi-square with (cells - 1) degrees of freedom as n -> oo (expected counts >= 5 make the
    # approximation good). The 1 - 1e-6 quantile: a correct sampler fails this with probability ~1e-6.
    e = n * p
    big = e >= 5
    obs = np.r_[counts[big], counts[~big].sum()]
    exp = np.r_[e[big], e[~big].sum()]
    keep = exp > 0
    stat = np.sum((obs[keep] - exp[keep]) ** 2 / exp[keep])
    assert stat < chi2.ppf(1 - 1e-6, keep.sum() - 1)


def test_alias_samples_follow_p_tv_large_N():
    p = np.random.default_rng(13).dirichlet(np.ones(2000))
    n = 400_000
    emp = np.bincount(AliasTable(p).sample(n, np.random.default_rng(14)), minlength=p.size) / n
    # E TV <= 0.5 sum_y sqrt(p_y (1 - p_y) / n) <= 0.5 sum_y sqrt(p_y / n) (Jensen on E|emp_y - p_y|);
    # TV has bounded differences 1/n, so McDiarmid adds sqrt(log(1/1e-6) / (2n)) at probability 1 - 1e-6
    tol = 0.5 * np.sum(np.sqrt(p / n)) + np.sqrt(np.log(1e6) / (2 * n))
    assert 0.5 * np.abs(emp - p).sum() < tol


class _GridRNG:
    """Stands in for a Generator: random() / random(n) hand out fixed uniforms in order (a deterministic
    quadrature grid)."""

    def __init__(self, u):
        self.u, self.pos = np.asarray(u, dtype=float), 0

    def random(self, n=None):
        k = 1 if n is None else n
        out = self.u[self.pos:self.pos + k].copy()
        assert out.size == k, "asked for more uniforms than the grid holds"
        self.pos += k
        return float(out[0]) if n is None else out


def test_alias_sampling_map_is_exact_on_a_grid():
    p = np.random.default_rng(15).dirichlet(np.full(37, 0.5))
    p[[3, 20]] = 0.0
    t = AliasTable(p)
    M = 37 * 2**14
    ys = t.sample(M, _GridRNG((np.arange(M) + 0.5) / M))  # midpoints: 2**14 per bucket
    emp = np.bincount(ys, minlength=37) / M
    # outcome y collects its own part of bucket y and the alias part of every bucket j with alias[j] = y;
    # on a grid of 2**14 points per bucket each part is off by at most one point, 1/M
    n_alias = np.bincount(t.alias[t.prob < 1], minlength=37)
    assert np.all(np.abs(emp - p / p.sum()) <= (1 + n_alias) / M + 1e-15)
    assert np.all(emp[[3, 20]] == 0)


@pytest.mark.parametrize("N", [3, 4, 5, 1000, 2**20 + 1, 10**6])
def test_alias_bucket_edges_never_draw_zero_mass(N):
    p = np.ones(N)
    p[[N // 2, N - 1]] = 0.0                # zero mass on the last bucket and on an inner one
    t = AliasTable(p)
    u1 = np.nextafter(1.0, 0.0)             # the largest uniform: must land in the last bucket, not past it
    u_edge = (N // 2) / N                   # frac(u N) = 0 at the left edge of the zero bucket (N even: exact)
    for u in (u1, u_edge):
        j = min(int(u * N), N - 1)
        assert t.prob[j] == 0
        for n in (1, 2):                    # the scalar and the array path
            assert t.sample(n, _GridRNG([u] * n)).tolist() == [t.alias[j]] * n
    assert p[t.alias[[N // 2, N - 1]]].min() > 0


def test_alias_sampling_is_reproducible_and_batch_invariant():
    p = np.random.default_rng(16).dirichlet(np.ones(1000))
    t = AliasTable(p)
    a = t.sample(500, np.random.default_rng(7))
    assert np.array_equal(a, t.sample(500, np.random.default_rng(7)))
    assert np.array_equal(a, AliasTable(p).sample(500, np.random.default_rng(7)))  # deterministic build
    g = np.random.default_rng(7)            # one uniform per draw: 500 scalar draws = one batch of 500
    assert np.array_equal(a, np.concatenate([t.sample(1, g) for _ in range(500)]))
    assert t.sample(0, g).shape == (0,) and a.dtype == np.int64
    n = 3 * 16384 + 5                       # several internal chunks: the same uniforms in the same order
    u = np.random.default_rng(8).random(n)  # as one random(n) call
    assert np.array_equal(t.sample(n, np.random.default_rng(8)), t.sample(n, _GridRNG(u)))
    g1 = _GridRNG(u)
    assert np.array_equal(t.sample(n, _GridRNG(u)), np.concatenate([t.sample(1, g1) for _ in range(n)]))


def test_sample_ref_methods_share_the_law_and_inverse_cdf_keeps_its_stream():
    rng = np.random.default_rng(17)
    ref = rng.dirichlet(np.ones(40))
    inst = TabularInstance([0.25, 0.75], [ref, np.full(3, 1 / 3)], [np.zeros((40, 1)), np.zeros((3, 1))],
                           theta_star=[0.0])
    assert inst.sampling_method == "alias"
    # the inverse CDF path is the former sampler: first index whose CDF exceeds u
    u = np.random.default_rng(18).random(1000)
    expected = np.minimum(np.searchsorted(np.cumsum(ref) / ref.sum(), u, side="right"), 39)
    assert np.array_equal(inst.sample_ref(0, 1000, np.random.default_rng(18), method="inverse_cdf"), expected)
    inst.sampling_method = "inverse_cdf"
    assert np.array_equal(inst.sample_ref(0, 1000, np.random.default_rng(18)), expected)
    inst.sampling_method = "alias"
    n = 100_000
    tol = 0.5 * np.sum(np.sqrt(ref / n)) + np.sqrt(np.log(1e6) / (2 * n))  # as in test_alias_samples_follow_p_tv
    for m in ("alias", "inverse_cdf"):
        emp = np.bincount(inst.sample_ref(0, n, np.random.default_rng(19), method=m), minlength=40) / n
        assert 0.5 * np.abs(emp - ref).sum() < tol
    xs = inst.sample_prompts(n, np.random.default_rng(20))
    assert abs(xs.mean() - 0.75) < 5 * np.sqrt(0.75 * 0.25 / n)  # 5 standard errors on a fixed seed
    ys = inst.sample_from(ref, 10, np.random.default_rng(18), method="alias")
    assert np.array_equal(ys, AliasTable(ref).sample(10, np.random.default_rng(18)))


@pytest.mark.parametrize("call,match", [
    (lambda inst: inst.sample_ref(0, 3, np.random.default_rng(0), method="walker"), "method must be one of"),
    (lambda inst: inst.sample_ref(0, -1, np.random.default_rng(0)), "n must be in"),
    (lambda inst: inst.sample_from(np.array([0.5, -0.5, 1.0]), 3, np.random.default_rng(0)), "probs must be non-neg"),
    (lambda inst: inst.sample_from(np.array([0.5, np.nan, 0.5]), 3, np.random.default_rng(0), method="alias"),
     "probs.*NaN"),
    (lambda inst: inst.sample_from(np.zeros(3), 3, np.random.default_rng(0), method="alias"), "positive entry"),
    (lambda inst: inst.sample_from(np.zeros(0), 3, np.random.default_rng(0), method="alias"), "non-empty"),
    (lambda inst: setattr(inst, "sampling_method", "vose") or inst.sample_ref(0, 3, np.random.default_rng(0)),
     "sampling_method must be one of"),
])
def test_sampling_bad_input_raises_clear_errors(call, match):
    inst = TabularInstance([1.0], [np.full(3, 1 / 3)], [np.zeros((3, 1))], theta_star=[0.0])
    with pytest.raises((ValueError, TypeError), match=match):
        call(inst)


def test_alias_forced_donor_when_round_off_leaves_no_mass_at_or_above_one(monkeypatch):
    import spanex.tabular.alias as alias_mod
    N = 8  # scaled masses all a hair below 1 (their sum misses N by N ulps): the largest becomes the donor
    t = np.full(N, 1.0 - 2.0**-53)
    t[5] = 1.0 - 2.0**-52
    monkeypatch.setattr(alias_mod, "_scaled_masses", lambda p: (t.copy(), np.zeros(N)))
    tab = AliasTable(np.ones(N))
    got = _implied(tab)
    assert np.all((tab.prob >= 0) & (tab.prob <= 1)) and math.fsum(got) == pytest.approx(1.0, abs=1e-15)
    # every bucket keeps its scaled mass up to the missing N ulps, which the single donor absorbs
    np.testing.assert_allclose(got * N, t, rtol=0, atol=N * 2.0**-52)
