import numpy as np
import pytest

import spanex
from spanex.core import Ledger, Oracles
from spanex.design import (build_spanner, find_informative_pair, pair_feedback, resolve_feedback, sherman_morrison,
                           spanner_size_bound, sq_norms)
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


@pytest.mark.parametrize("d", [8, 64, 256])
def test_sq_norms_blas_form_matches_the_three_operand_einsum(d):
    """sq_norms computes (V Sigma^{-1}) . V row by row; the result must equal sum_jk v_j S_jk v_k to 1e-12 relative,
    also for an ill-conditioned Sigma (condition number 1e8)."""
    rng = np.random.default_rng(d)
    V = rng.standard_normal((300, d))
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    for eig in (rng.uniform(0.5, 2.0, d), np.logspace(-4, 4, d)):
        S = (Q * eig) @ Q.T
        S = 0.5 * (S + S.T)
        ref = np.einsum("ij,jk,ik->i", V, S, V)
        assert np.all(np.abs(sq_norms(V, S) - ref) <= 1e-12 * np.abs(ref))


def _fake_pairs(informative_at, d=2):
    """draw_pairs for find_informative_pair: pair number n (in draw order) is informative iff n in informative_at."""
    drawn, batches = [0], []

    def draw(k):
        idx = np.arange(drawn[0], drawn[0] + k)
        drawn[0] += k
        batches.append(k)
        V = np.zeros((k, d))
        V[np.isin(idx, list(informative_at)), 0] = 1.0          # ||v|| = 1 > nu for informative pairs, else 0
        return V, idx
    return draw, batches


def test_informative_pair_search_doubles_its_batches_and_takes_the_first_hit():
    draw, batches = _fake_pairs({9, 12})
    hit = find_informative_pair(draw, np.eye(2), 0.5, N_try=100)
    assert batches == [1, 2, 4, 8] and hit.k == 8 and hit.batch[hit.i] == 9 and np.array_equal(hit.v, [1.0, 0.0])
    draw, batches = _fake_pairs(set())
    assert find_informative_pair(draw, np.eye(2), 0.5, N_try=20) is None
    assert batches == [1, 2, 4, 8, 5] and sum(batches) == 20                 # N_try pairs in all, no more
    draw, batches = _fake_pairs({40})
    hit = find_informative_pair(draw, np.eye(2), 0.5, N_try=100, max_batch=8)
    assert batches == [1, 2, 4, 8, 8, 8, 8, 8] and hit.batch[hit.i] == 40      # pairs 39..46 hold number 40


def test_pair_feedback_is_batched_and_counted():
    F = np.eye(3)
    p = spanex.tabular_problem([1.0], [np.full(3, 1 / 3)], [F], theta_star=np.array([0.0, 1.0, 2.0]), noise="none", R_max=2.0)
    o = Oracles(p, Ledger())
    y1, y2 = np.array([2, 1, 0, 2]), np.array([0, 0, 2, 2])
    rng = np.random.default_rng(0)
    assert np.array_equal(pair_feedback(o, 0, y1, y2, rng, "reward"), [2.0, 1.0, -2.0, 0.0])   # r1 - r2
    assert o.ledger.count("reward") == 8                                     # 2 reward queries per pair
    pp = p.with_feedback("preference")
    op = Oracles(pp, Ledger())
    b = pair_feedback(op, 0, y1, y2, rng, "preference")
    assert b.shape == (4,) and set(np.unique(b)) <= {0.0, 1.0} and op.ledger.count("preference") == 4
    assert resolve_feedback(p, "auto") == "reward" and resolve_feedback(pp, "auto") == "preference"
    with pytest.raises(ValueError, match="regression='squared' needs a reward oracle"):
        resolve_feedback(pp, "reward", what="regression='squared'")
    with pytest.raises(ValueError, match="feedback must be one of"):
        resolve_feedback(p, "votes")
