import numpy as np
import pytest

import spanex
from spanex.core import Ledger, Oracles
from spanex.design import build_spanner, sherman_morrison, spanner_size_bound, sq_norms
from spanex.instances import linear_bandit


def test_sherman_morrison_matches_inverse():
    rng = np.random.default_rng(0)
    A = np.eye(4) * 2.0
    Ainv = np.linalg.inv(A)
    for _ in range(10):
        v = rng.standard_normal(4)
        A = A + np.outer(v, v)
        Ainv = sherman_morrison(Ainv, v)
    assert np.allclose(Ainv, np.linalg.inv(A), atol=1e-10)
    V = rng.standard_normal((5, 4))
    assert np.allclose(sq_norms(V, Ainv), [v @ np.linalg.solve(A, v) for v in V])


@pytest.mark.parametrize("nu", [0.3, 0.6, 1.0])
@pytest.mark.parametrize("kind", ["random", "duplicates", "low_rank"])
def test_spanner_size_obeys_elliptical_potential_bound(nu, kind):
    rng = np.random.default_rng(1)
    N, d = 60, 6
    F = rng.standard_normal((N, d))
    if kind == "duplicates":
        F = np.repeat(F[:6], 10, axis=0)                 # only 6 distinct responses
    elif kind == "low_rank":
        F = rng.standard_normal((N, 2)) @ rng.standard_normal((2, d))  # features in a 2-dim subspace
    F /= np.linalg.norm(F, axis=1, keepdims=True)
    p = spanex.tabular_problem([1.0], [np.full(N, 1 / N)], [F], theta_star=np.ones(d) / np.sqrt(d), beta=0.5, B=1.0)
    L = Ledger()
    res = build_spanner(Oracles(p, L), np.random.default_rng(2), T_span=2000, N_try=200, nu=nu, lam=1.0)
    bound = spanner_size_bound(d, nu, 1.0, 2.0)          # ||phi(y) - phi(y')|| <= 2
    assert 0 < res.size <= bound
    # every accepted pair was informative at acceptance time, so det grows by > (1 + nu^2) each time
    logdet = np.linalg.slogdet(res.Sigma)[1]
    assert logdet > res.size * np.log1p(nu**2) - 1e-9
    if kind == "low_rank":                                # no growth outside the 2-dim span
        assert np.linalg.matrix_rank(res.V) <= 2
    # ledger: 2 weak calls per drawn pair, 2 reward queries per accepted pair
    assert L.count("weak") == 2 * res.pair_draws
    assert L.reward_queries == 2 * res.size
    assert np.allclose(res.Sigma_inv, np.linalg.inv(res.Sigma), atol=1e-8)


def test_spanner_covers_most_pairs_on_average():
    p = linear_bandit(seed=3)
    res = build_spanner(Oracles(p, Ledger()), np.random.default_rng(4), T_span=400, N_try=400, nu=0.5)
    # fraction of fresh pi_ref pairs still informative: the average-case guarantee says it is
    # <~ |Psi|/T_span + log(T_span/delta)/N_try; check against that bound with delta = 0.01
    rng = np.random.default_rng(5)
    frac = []
    for x in range(4):
        ys = p.base.sample(x, 20000, rng)
        F = p.phi(x, ys)
        frac.append(np.mean(sq_norms(F[:10000] - F[10000:], res.Sigma_inv) > 0.25))
    bound = res.size / 400 + np.log(400 / 0.01) / 400
    assert np.mean(frac) <= bound


def test_spanner_with_preferences_spends_one_query_per_pair():
    p = linear_bandit(feedback="preference")
    L = Ledger()
    res = build_spanner(Oracles(p, L), np.random.default_rng(0), T_span=50, N_try=50, nu=0.5, feedback="preference")
    assert L.count("preference") == res.size and L.count("reward") == 0
    assert set(np.unique(res.targets)) <= {0.0, 1.0}


@pytest.mark.parametrize("kw,match", [(dict(nu=0.0), "nu"), (dict(N_try=0), "N_try"), (dict(T_span=-1), "T_span"),
                                      (dict(lam=-1.0), "lam")])
def test_spanner_bad_input(kw, match):
    p = linear_bandit()
    args = dict(T_span=5, N_try=5, nu=0.5, lam=1.0)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        build_spanner(Oracles(p, Ledger()), np.random.default_rng(0), **args)
