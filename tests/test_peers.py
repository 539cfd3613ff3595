"""The peers: OnlineDPO, XPO, Best-of-N, InferenceTimePessimism, passive regression, exhaustive design.

Each is checked on small exact instances: valid output policy, exact budget compliance, seed
reproducibility, convergence where the theory says so, and clear errors on bad input.
"""

import math

import numpy as np
import pytest

import spanex
from spanex.algorithms.best_of_n import BestOfN
from spanex.algorithms.exhaustive_design import ExhaustiveDesign
from spanex.algorithms.inference_time_pessimism import (InferenceTimePessimism, density_ratio,
                                                        solve_lambda)
from spanex.algorithms.online_dpo import OnlineDPO
from spanex.algorithms.passive_regression import PassiveRegression
from spanex.algorithms.xpo import XPO
from spanex.core import Budget
from spanex.design.g_optimal import g_optimal_design, round_design
from spanex.instances.linear import linear_bandit

TRAINED = {
    "online_dpo": lambda: OnlineDPO(T=60),
    "online_dpo_weak": lambda: OnlineDPO(T=60, strong_oracle="weak"),
    "xpo": lambda: XPO(T=60),
    "xpo_weak": lambda: XPO(T=30, strong_oracle="weak", n_mean=4),
    "passive_regression": lambda: PassiveRegression(T=60, batch_size=8),
    "exhaustive_design": lambda: ExhaustiveDesign(T=60),
}
ALL = dict(TRAINED, best_of_n=lambda: BestOfN(n=4), itp=lambda: InferenceTimePessimism(n=4))


@pytest.fixture(scope="module")
def easy():
    """Exploration is easy: beta = 1 keeps every pi_theta spread (C_cov(pi*) ≈ 2.1)."""
    return linear_bandit(n_prompts=2, n_responses=40, d=4, beta=1.0, seed=3)


def _cov(F, w):
    m = w @ F
    return (F * w[:, None]).T @ F - np.outer(m, m)


def _valid(policy, problem):
    ex = problem.exact
    for x in range(ex.n_prompts):
        if policy.has_probs:
            try:
                q = policy.probs(x)
            except NotImplementedError:
                q = None
            if q is not None:
                assert q.shape == (ex.n_responses(x),)
                assert np.all(q >= 0) and q.sum() == pytest.approx(1.0)
        ys = np.asarray(policy.sample(x, 5, np.random.default_rng(0)))
        assert ys.shape == (5,) and np.all((ys >= 0) & (ys < ex.n_responses(x)))


# ---- generic contract: valid policy, reproducibility, budgets ----------------------------------

@pytest.mark.parametrize("name", sorted(ALL))
def test_returns_valid_policy_and_is_reproducible(name, easy):
    a = ALL[name]().run(easy, seed=4)
    b = ALL[name]().run(easy, seed=4)
    assert a.status == "completed"
    assert a.ledger.to_dict() == b.ledger.to_dict()
    assert a.extras.get("theta_hat") == b.extras.get("theta_hat")
    sa = a.policy.sample(0, 20, np.random.default_rng(1))
    sb = b.policy.sample(0, 20, np.random.default_rng(1))
    assert np.array_equal(sa, sb)
    _valid(a.policy, easy)
    if name in TRAINED:
        c = ALL[name]().run(easy, seed=5)
        assert c.extras["theta_hat"] != a.extras["theta_hat"]


#: reward queries charged at once: one pair (2) per round, a batch of 8 pairs for passive regression,
#: a prompt's whole allocation for the exhaustive design
GRANULARITY = {"passive_regression": 16, "exhaustive_design": None}


@pytest.mark.parametrize("budget", [Budget(max_reward_queries=31), Budget(max_sample_calls=45)],
                         ids=["reward_queries", "sample_calls"])
@pytest.mark.parametrize("name", sorted(TRAINED))
def test_budgets_are_respected(name, budget, easy):
    r = TRAINED[name]().run(easy, seed=0, budget=budget)
    assert r.status == "budget_exhausted"
    if budget.max_reward_queries is not None:
        cap = budget.max_reward_queries
        assert r.ledger.reward_queries <= cap
        g = GRANULARITY.get(name, 2)
        if g is not None:                    # exactly: it stops only when the next charge does not fit
            assert r.ledger.reward_queries > cap - g
    else:
        assert r.ledger.sample_calls <= budget.max_sample_calls
    _valid(r.policy, easy)


# ---- cost models ---------------------------------------------------------------------------------

def test_online_dpo_cost_models(easy):
    from spanex.core import OracleKnowledgeError

    with pytest.raises(OracleKnowledgeError):                        # the idealized oracle is a hint
        OnlineDPO(T=50, strong_oracle="exact").run(easy, seed=1)
    ex = OnlineDPO(T=50, strong_oracle="exact").run(easy, seed=1, oracle_hints=True)
    assert ex.ledger.count("strong") == 100 and ex.ledger.count("weak") == 0   # 2 draws per round
    assert ex.ledger.reward_queries == 100 and ex.extras["strong_oracle"] == "exact"
    assert ex.hints == ["strong"]
    wk = OnlineDPO(T=50).run(easy, seed=1)                           # default: the weak realization
    assert wk.ledger.count("strong") == 0 and wk.ledger.count("weak") > 100
    assert wk.extras["strong_oracle"] == "weak" and wk.config["strong_oracle"] == "weak"
    # the output policy samples through the same cost model, under the 'inference' label
    wk.policy.sample(0, 3, np.random.default_rng(0))
    assert wk.ledger.count("weak", "inference") > 0 and wk.ledger.count("strong", "inference") == 0


def test_exact_strong_oracle_refused_without_one():
    from spanex.instances.max_k_dnf import max_k_dnf

    p = max_k_dnf(n=22, k=3, exact_max_n=20)
    with pytest.raises(ValueError, match="strong_oracle='exact'"):
        OnlineDPO(T=2, strong_oracle="exact").run(p, seed=0, oracle_hints=True)
    r = OnlineDPO(T=2, strong_oracle="weak").run(p, seed=0)
    assert r.status == "completed" and r.ledger.count("weak") >= 4


# ---- convergence ---------------------------------------------------------------------------------
# Ridge error (Abbasi-Yadkori et al. 2011): with targets r1 - r2 whose noise is N(0, 2 sigma^2),
# ||v|| <= L = 2, d = 4, lam = 1, n pairs, with prob. >= 1 - delta
#   ||theta_hat - theta*||_Sigma <= sqrt(2) sigma sqrt(2 log(1/delta) + d log(1 + n L^2/(d lam))) + sqrt(lam) ||theta*||.
# With sigma = 0.1, delta = 1e-3, n = 400: 0.1414 * sqrt(13.8 + 4 log 401) + 1 = 1.87. Sigma ⪰ lam_min(Sigma) I
# and E[v v^T] = 2 Cov_{pi_theta}(phi) (OnlineDPO) or Cov_{pi_theta} + Cov_{pi_ref} (XPO); these are
# computed exactly below at pi* and pi_ref; half of n * that minimum eigenvalue is used as a
# conservative lam_min(Sigma) (early rounds and sampling fluctuation).

def _radius(n, d=4, sigma=0.1, delta=1e-3, L=2.0, lam=1.0, theta_norm=1.0):
    return math.sqrt(2) * sigma * math.sqrt(2 * math.log(1 / delta) + d * math.log(1 + n * L * L / (d * lam))) \
        + math.sqrt(lam) * theta_norm


def _min_eig(problem, which):
    """A lower bound on lam_min(E_x[C_x]): sum_x rho(x) lam_min(C_x) (Weyl)."""
    ex, out = problem.exact, 0.0
    for x in range(ex.n_prompts):
        F = ex.features[x]
        C = {"dpo": 2 * _cov(F, ex.pi_star(x, problem.beta)),
             "xpo": _cov(F, ex.pi_star(x, problem.beta)) + _cov(F, ex.ref_probs[x]),
             "ref": 2 * _cov(F, ex.ref_probs[x])}[which]
        out += float(np.linalg.eigvalsh(C).min()) * ex.rho[x]
    return out


def test_online_dpo_recovers_theta_star(easy):
    n = 400
    r = OnlineDPO(T=n).run(easy, seed=0)
    err = np.linalg.norm(np.array(r.extras["theta_hat"]) - easy.exact.theta_star)
    tol = _radius(n) / math.sqrt(0.5 * n * _min_eig(easy, "dpo"))
    assert tol < 0.5 * np.linalg.norm(easy.exact.theta_star)      # the test is not vacuous
    assert err < tol
    assert spanex.evaluate(r.policy, easy).suboptimality < 0.01 * spanex.evaluate(
        spanex.ReferencePolicy().bind(r.policy.oracles), easy).suboptimality


def test_xpo_recovers_theta_star(easy):
    n, alpha = 400, 0.01
    r = XPO(T=n, alpha=alpha).run(easy, seed=0)
    err = np.linalg.norm(np.array(r.extras["theta_hat"]) - easy.exact.theta_star)
    # the optimism term adds a bias of at most (alpha/beta) ||mu_theta - mu_ref|| / lam_min(H) per
    # sample, with ||mu_theta - mu_ref|| <= 2 L_phi = 2 and H ⪰ Cov_theta + Cov_ref.
    lam_min = _min_eig(easy, "xpo")
    tol = _radius(n) / math.sqrt(0.5 * n * lam_min) + (alpha / easy.beta) * 2 / (0.5 * lam_min)
    assert tol < 0.6
    assert err < tol
    assert r.extras["optimizer"] == "ccp" and r.extras["optimizer_sample_calls"] > 0


def test_xpo_alpha_zero_is_a_dpo_fit_with_ref_anchor(easy):
    r = XPO(T=50, alpha=0.0, strong_oracle="exact").run(easy, seed=2, oracle_hints=True)
    # one pi_theta draw and one pi_ref draw per round, no optimizer sampling
    assert r.ledger.count("strong") == 50 and r.ledger.count("weak") == 50
    assert r.extras["optimizer_sample_calls"] == 0


def test_online_dpo_preferences_learn(easy):
    """Bradley–Terry version. MLE covariance ≈ (n E[sigma'(z) v v^T])^{-1} with |z| <= 2 ||theta*|| = 2, so
    sigma'(z) >= sigma'(2) = 0.105; with E[v v^T] ⪰ 2 Cov_{pi*}, n = 4000 gives per-direction sd
    <= 1/sqrt(4000 * 0.105 * lam_min) (halved lam_min as in the ridge tests); a 5-sd ball in d = 4
    dims (chi^2_4 tail at 25: < 1e-4) is the tolerance."""
    pp = easy.with_feedback("preference")
    r = OnlineDPO(T=400, pairs_per_round=10).run(pp, seed=0)
    assert r.ledger.count("preference") == 4000 and r.ledger.count("reward") == 0
    err = np.linalg.norm(np.array(r.extras["theta_hat"]) - easy.exact.theta_star)
    tol = 5 / math.sqrt(4000 * 0.105 * 0.5 * _min_eig(easy, "dpo"))
    assert tol < np.linalg.norm(easy.exact.theta_star)
    assert err < tol


def test_online_dpo_sgd_solver_moves_towards_theta_star(easy):
    r = OnlineDPO(T=300, solver="sgd", sgd_steps=5, lr=0.5).run(easy, seed=0)
    err = np.linalg.norm(np.array(r.extras["theta_hat"]) - easy.exact.theta_star)
    assert err < 0.5 * np.linalg.norm(easy.exact.theta_star)      # better than theta = 0 by half


def test_passive_and_exhaustive_recover_theta_star(easy):
    n = 400
    for alg, which in ((PassiveRegression(T=n), "ref"), (ExhaustiveDesign(T=n), None)):
        r = alg.run(easy, seed=0)
        err = np.linalg.norm(np.array(r.extras["theta_hat"]) - easy.exact.theta_star)
        if which == "ref":
            tol = _radius(n) / math.sqrt(0.5 * n * _min_eig(easy, "ref"))
        else:
            # G-optimal: every anchored direction has variance <= (1+tol) r / n; in particular the
            # information matrix satisfies lam_min(Sigma) >= n * lam_min(A(w)) (rounding keeps >= floor)
            tol = 0.3
        assert err < tol, (alg.name, err, tol)


def test_exhaustive_design_counts_enumeration(easy):
    r = ExhaustiveDesign(T=100).run(easy, seed=0)
    assert r.ledger.count("enum") == 80                          # 2 prompts x 40 responses, each touched once
    assert r.ledger.count("weak") == 0 and r.ledger.reward_queries == 200
    assert r.extras["design_converged"] and r.extras["design_rank"] == 4
    assert r.extras["design_max_variance"] <= 4 * 1.05 + 1e-9


def test_exhaustive_design_needs_enumerable_problem():
    from spanex.instances.max_k_dnf import max_k_dnf

    with pytest.raises(ValueError, match="enumerable"):
        ExhaustiveDesign(T=5).run(max_k_dnf(n=22, exact_max_n=20), seed=0)


# ---- inference-time peers --------------------------------------------------------------------------

def test_best_of_n_costs_at_inference(easy):
    r = BestOfN(n=7).run(easy, seed=0)
    assert r.ledger.sample_calls == 0 and r.ledger.reward_queries == 0
    r.policy.sample(1, 3, np.random.default_rng(0))
    assert r.ledger.count("weak", "inference") == 21 and r.ledger.count("reward", "inference") == 21


def test_best_of_n_exact_law_matches_samples(easy):
    """TV between the exact law and 20000 samples over 40 responses: E TV <= 0.5 sqrt(40/20000) = 0.022,
    fluctuations ~ 1/sqrt(20000) = 0.007; tolerance 0.045."""
    r = BestOfN(n=5).run(easy, seed=0)
    q = r.policy.probs(0)
    ys = r.policy.sample(0, 20000, np.random.default_rng(1))
    emp = np.bincount(ys, minlength=q.size) / 20000
    assert 0.5 * np.abs(emp - q).sum() < 0.045
    # n = 1 is pi_ref exactly
    one = BestOfN(n=1).run(easy, seed=0).policy
    assert np.allclose(one.probs(0), easy.exact.ref_probs[0])


def test_best_of_n_reward_grows_with_n_but_not_the_kl_objective(easy):
    """Selection on r* + independent noise tilts towards high r*, so the mean true reward rises with n.
    Best-of-N ignores the KL term: with beta = 1, pi* is close to pi_ref, so larger n overshoots and
    the regularized suboptimality gets worse (the reason pessimistic variants exist)."""
    ev = [spanex.evaluate(BestOfN(n=n).run(easy, seed=0).policy, easy) for n in (1, 4, 16)]
    assert ev[0].mean_reward < ev[1].mean_reward < ev[2].mean_reward
    assert ev[0].suboptimality < ev[2].suboptimality


def test_best_of_n_preference_tournament(easy):
    pp = easy.with_feedback("preference")
    r = BestOfN(n=6).run(pp, seed=0)
    r.policy.sample(0, 4, np.random.default_rng(0))
    assert r.ledger.count("preference", "inference") == 4 * 5 and r.ledger.count("weak", "inference") == 24


def test_itp_density_ratio_and_normalization():
    u = np.array([-50.0, -3.0, 0.0, 2.0, 40.0, 700.0])
    w = density_ratio(u, "chi2_kl")
    assert np.allclose(2 * w[1:] + np.log(w[1:]), u[1:] + 1, atol=1e-9)    # 2w + log w = u + 1
    assert np.all(np.diff(w) > 0)
    assert np.allclose(density_ratio(u, "chi2"), np.maximum(0, 1 + u / 2))
    r = np.random.default_rng(0).standard_normal(32)
    for reg in ("chi2", "chi2_kl"):
        lam = solve_lambda(r, 0.3, reg)
        assert np.mean(density_ratio((r - lam) / 0.3, reg)) == pytest.approx(1.0, abs=1e-9)


def test_itp_interpolates_between_ref_and_best_of_n(easy):
    """beta_reg -> infinity gives w ≡ 1 (uniform over candidates, i.e. pi_ref); small beta_reg
    concentrates on the best candidates like Best-of-N. Both checked through the weights."""
    big = InferenceTimePessimism(n=8, beta_reg=1e6).run(easy, seed=0)
    big.policy.sample(0, 20, np.random.default_rng(0))
    assert np.allclose(big.policy.last_weights, 1.0, atol=1e-4)
    small = InferenceTimePessimism(n=8, beta_reg=1e-6).run(easy, seed=0)
    rng = np.random.default_rng(0)
    small.policy.sample(0, 20, rng)
    W = small.policy.last_weights
    assert small.ledger.count("reward", "inference") == 160 and small.ledger.count("weak", "inference") == 160
    # replay the same candidates. w grows like (r - lambda)/(2 beta_reg) and sum_i w_i = n, so a
    # candidate whose reward beats the runner-up by a gap g >> 2 n beta_reg takes all but
    # O(n beta_reg / g) of the mass; with Gaussian reward noise (sigma = 0.1) gaps below 2e-5 are
    # improbable. Mass on the top observed reward (a response drawn twice shares it) must be > 0.9.
    rng = np.random.default_rng(0)
    ys = small.policy.oracles.sample_ref(0, 160, rng).reshape(20, 8)
    r = small.policy.oracles.reward(0, ys.ravel(), rng).reshape(20, 8)
    top = r == r.max(axis=1, keepdims=True)
    assert np.all((W * top).sum(axis=1) / W.sum(axis=1) > 0.9)


def test_itp_needs_rewards(easy):
    with pytest.raises(ValueError, match="reward oracle"):
        InferenceTimePessimism().run(easy.with_feedback("preference"), seed=0)


# ---- the G-optimal design (XPO's convex step is tested with the estimators, tests/test_estimation.py) --

def test_g_optimal_kiefer_wolfowitz():
    rng = np.random.default_rng(0)
    V = rng.standard_normal((500, 5))
    D = g_optimal_design(V, tol=0.01)
    assert D.converged and D.rank == 5
    # sum_i w_i g_i = tr(A^{-1} A) = r, so max_i g_i >= r; Frank–Wolfe stops at <= (1 + tol) r
    assert 5 - 1e-9 <= D.max_variance <= 5 * 1.01 + 1e-9
    assert D.weights.sum() == pytest.approx(1.0) and np.all(D.weights >= 0)
    # rank-deficient input: the optimum is the rank
    W = np.hstack([V[:, :2], V[:, :2] @ rng.standard_normal((2, 3))])
    D2 = g_optimal_design(W)
    assert D2.rank == 2 and D2.max_variance <= 2 * 1.05 + 1e-9
    assert round_design(D.weights, 137).sum() == 137
    assert np.array_equal(round_design([0.5, 0.25, 0.25], 4), [2, 1, 1])


def test_g_optimal_bad_input():
    with pytest.raises(ValueError, match="non-zero"):
        g_optimal_design(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="tol"):
        g_optimal_design(np.eye(2), tol=0)
    with pytest.raises(ValueError, match="finite"):
        g_optimal_design([[np.nan, 1.0]])
    with pytest.raises(ValueError, match="non-negative"):
        round_design([-1.0, 2.0], 3)


# ---- bad inputs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda: XPO(alpha=-0.1), "alpha"),
    (lambda: XPO(T=0), "T"),
    (lambda: XPO(n_mean=0), "n_mean"),
    (lambda: OnlineDPO(lam=0), "lam"),
    (lambda: OnlineDPO(strong_oracle="free"), "strong_oracle"),
    (lambda: OnlineDPO(solver="adam"), "solver"),
    (lambda: OnlineDPO(feedback="votes"), "feedback"),
    (lambda: OnlineDPO(M=0.5), "M"),
    (lambda: OnlineDPO(sampler_delta=1.0), "sampler_delta"),
    (lambda: XPO(feedback="votes"), "feedback"),
    (lambda: PassiveRegression(max_M=0.0), "max_M"),
    (lambda: BestOfN(n=0), "n"),
    (lambda: InferenceTimePessimism(beta_reg=-1.0), "beta_reg"),
    (lambda: InferenceTimePessimism(regularizer="tv"), "regularizer"),
    (lambda: PassiveRegression(batch_size=0), "batch_size"),
    (lambda: ExhaustiveDesign(fw_tol=0.0), "fw_tol"),
])
def test_bad_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_types():
    with pytest.raises(TypeError):
        BestOfN(n=2.5)
    with pytest.raises(TypeError):
        XPO(alpha="big")


# ---- declared, frozen parameters -------------------------------------------------------------------

#: one out-of-range value per registered algorithm
BAD_FIELD = {"spanner_sampling": ("eps", 0.0), "online_dpo": ("T", 0), "xpo": ("alpha", -1.0), "best_of_n": ("n", 0),
             "inference_time_pessimism": ("n", 0), "passive_regression": ("batch_size", 0),
             "exhaustive_design": ("fw_tol", 0.0), "mtss": ("n_rounds", 0)}


@pytest.mark.parametrize("name", sorted(spanex.algorithms.REGISTRY))
def test_algorithms_are_frozen_and_variants_are_revalidated(name):
    import dataclasses

    alg = spanex.algorithms.get(name)()
    field, bad = BAD_FIELD[name]
    with pytest.raises(dataclasses.FrozenInstanceError):            # no field changes after validation
        setattr(alg, field, bad)
    assert dataclasses.replace(alg) == alg
    with pytest.raises(ValueError, match=field):                    # a variant passes the same checks
        dataclasses.replace(alg, **{field: bad})


def test_shared_parameters_are_declared_once_and_keyword_only(monkeypatch):
    import dataclasses

    import spanex.algorithms._pi_theta as base

    for cls in (OnlineDPO, XPO, PassiveRegression, ExhaustiveDesign):
        names = [f.name for f in dataclasses.fields(cls)]
        assert {"feedback", "strong_oracle", "M", "sampler_delta", "max_M"} <= set(names) and "delta" not in names
        assert all(f.kw_only for f in dataclasses.fields(cls) if f.name in ("feedback", "strong_oracle", "M"))
        assert cls(7).T == 7                                        # positional fields keep their order
    assert OnlineDPO().strong_oracle == XPO().strong_oracle == "weak"
    assert PassiveRegression().strong_oracle == ExhaustiveDesign().strong_oracle == "weak"
    assert OnlineDPO().M is None
    with pytest.raises(TypeError):
        OnlineDPO(delta=0.1)                                        # renamed: sampler_delta
    assert OnlineDPO(strong_oracle="exact")._strong_sampler() is None
    # the parameters reach the sampler factory unchanged (sampler_delta as the sampler's failure probability)
    calls = []
    monkeypatch.setattr(base, "make_strong_sampler", lambda kind, **kw: calls.append((kind, kw)))
    XPO(strong_oracle="weak", M=8.0, sampler_delta=0.2, max_M=1e3)._strong_sampler()
    assert calls[-1] == ("weak", dict(M=8.0, delta=0.2, max_M=1e3))
