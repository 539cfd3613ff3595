"""Reliability: budgets bound memory and time, no silent NaN/inf, every public entry point validates its
arguments. One test per reproducer of the reliability issue (items 1-3), plus the pieces they rest on."""

import math
import time

import numpy as np
import pytest

import spanex
from spanex import Budget, coverage, evaluate, tabular_problem
from spanex.algorithms import get, make
from spanex.core import BudgetExhausted, Ledger, NumericalError
from spanex.core.errors import (MAX_LOG_WEIGHT, MAX_MAGNITUDE, check_count, check_memory, check_real,
                                memory_bytes)
from spanex.core.ledger import checkpoint
from spanex.design import sherman_morrison, spanner_size_bound
from spanex.design.elliptical import SPANNER_BOUND_MAX
from spanex.design.g_optimal import g_optimal_design
from spanex.estimation import logistic_fit, ridge_fit
from spanex.instances import linear_bandit, max_k_dnf, needle
from spanex.sampling import SoftmaxSampler
from spanex.tokens import token_chain, token_linear

SpannerSampling = get("spanner_sampling")


def small_bandit(**kw):
    return linear_bandit(n_prompts=2, n_responses=20, d=3, **kw)


# ---- 1. budgets bound memory and time -------------------------------------------------------------

def test_recipe_sizes_beyond_memory_are_refused_before_anything_is_drawn():
    # was: MemoryError asking for 253 GiB (every prompt drawn up front, uncounted)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"T_exp: the recipe .* asks for 3.39e\+10 .* beta=1e-05"):
        SpannerSampling().run(linear_bandit(beta=1e-5), seed=0, budget=Budget(max_sample_calls=1000))
    # was: 2.67 s of uncounted work past max_seconds=0.1
    with pytest.raises(ValueError, match=r"N_try: the recipe c4 \(R_max/beta\)\^2 T_exp .* c4=0.1"):
        SpannerSampling().run(linear_bandit(beta=3e-4), seed=0, budget=Budget(max_seconds=0.1))
    assert time.perf_counter() - t0 < 5.0          # refused from the recipe, nothing drawn


def test_explicit_huge_sizes_are_bounded_by_the_budget():
    """Prompts are drawn lazily: T_span = T_exp = 10^9 costs what the budget allows, nothing more."""
    res = SpannerSampling(T_span=10**9, T_exp=10**9, N_try=10**9).run(small_bandit(), seed=0,
                                                                      budget=Budget(max_sample_calls=1000))
    assert res.status == "budget_exhausted" and res.ledger.sample_calls <= 1000
    assert res.wall_time < 5.0


def test_compare_cli_reports_a_refused_recipe_without_a_traceback(capsys):
    from spanex.cli import main

    code = main(["compare", "--instance", "linear_bandit", "--set", "beta=1e-5", "--algorithms", "spanner_sampling",
                 "--seeds", "1", "--max-sample-calls", "1000", "--n-inference", "0", "--n-mc", "5"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "spanner_sampling seed=0 failed: ValueError: T_exp: the recipe" in err


def test_counts_and_allocations_are_checked_before_allocating():
    t0 = time.perf_counter()
    for call, name in [(lambda: linear_bandit(n_responses=2**40), "n_responses"),
                       (lambda: linear_bandit(d=2**31), "d"),
                       (lambda: needle(N=2**31), "N"),
                       (lambda: token_linear(k=2**31), "k"),
                       (lambda: max_k_dnf(n=20, m_terms=10**9), "m_terms"),
                       (lambda: make("best_of_n", n=2**62), "n"),
                       (lambda: make("inference_time_pessimism", n=2**62), "n"),
                       (lambda: make("passive_regression", batch_size=2**62), "batch_size"),
                       (lambda: make("exhaustive_design", n_prompt_draws=2**62), "n_prompt_draws"),
                       (lambda: make("mtss", T_span=2**62), "T_span")]:
        with pytest.raises(ValueError, match=name):
            call()
    assert time.perf_counter() - t0 < 5.0           # refused, not allocated
    with pytest.raises(ValueError, match=r"what asks for 8 PiB of memory, more than this machine's"):
        check_memory("what", 2**50)
    assert memory_bytes() > 0
    assert check_count("k", 10**9) == 10**9
    with pytest.raises(ValueError, match=r"k must be in \[1, 1000000000\]"):
        check_count("k", 10**9 + 1)


def test_mtss_recipe_is_bounded_and_its_derived_delta_stays_in_the_sampler_range():
    with pytest.raises(ValueError, match=r"rollouts: the recipe c_T d H log\(1/delta\) / min\(eps, beta\)"):
        make("mtss", eps=1e-300).run(token_chain(H=3), seed=0)
    # delta / (4 (n K H + 1)) below the token sampler's 1e-12 used to raise "delta must be in [1e-12, 1)"
    res = make("mtss", n_rounds=10**12, rollouts=2).run(token_chain(H=3), seed=0, budget=Budget(max_sample_calls=60))
    assert res.status == "budget_exhausted" and res.extras["resolved"]["delta_tok"] == 1e-12


# Time budgets: a run stops within one step of max_seconds (docs/architecture.md, "Budgets"). Each workload
# below would run for hours; one step of each is milliseconds on these instances, so 1 s of slack is far
# more than the bound needs and leaves room for a loaded machine.
_MAX_SECONDS = 0.3
_SLACK = 1.0


@pytest.mark.parametrize("name, params, problem", [
    ("spanner_sampling", dict(T_span=10**9, T_exp=10**9, N_try=10**6, nu=1e-6), "bandit"),
    ("online_dpo", dict(T=10**9, pairs_per_round=64, feedback="preference"), "bandit"),     # Newton each round
    ("xpo", dict(T=10**9, feedback="preference"), "bandit"),
    ("passive_regression", dict(T=10**9, batch_size=1024, feedback="preference"), "bandit"),
    ("exhaustive_design", dict(T=100, fw_tol=1e-12, fw_max_iter=10**9), "dnf"),              # Frank–Wolfe
    ("mtss", dict(n_rounds=10**9, rollouts=64), "tokens"),                                  # backward induction
])
def test_max_seconds_is_honoured_within_one_step(name, params, problem):
    prob = {"bandit": lambda: linear_bandit(n_prompts=4, n_responses=50, d=6, beta=0.5),
            "dnf": lambda: max_k_dnf(n=12, m_terms=24),
            "tokens": lambda: token_linear(H=4)}[problem]()
    res = make(name, **params).run(prob, seed=0, budget=Budget(max_seconds=_MAX_SECONDS))
    assert res.status == "budget_exhausted" and "'seconds'" in res.extras["budget_stop"]
    assert res.wall_time < _MAX_SECONDS + _SLACK


def test_checkpoint_stops_loops_without_oracle_calls_only_inside_a_run():
    checkpoint()                                   # outside a run: nothing to check
    V = np.random.default_rng(0).standard_normal((200, 3))
    b = (V[:, 0] > 0).astype(float)

    class NewtonOnly(spanex.Algorithm):
        name = "newton_only"

        def _run(self, problem, oracles, rng, state):
            time.sleep(0.05)                       # past the budget before any oracle call
            logistic_fit(V, b)                     # its first Newton iteration checks the clock

    res = NewtonOnly().run(small_bandit(), seed=0, budget=Budget(max_seconds=0.01))
    assert res.status == "budget_exhausted" and "'seconds'" in res.extras["budget_stop"]
    led = Ledger(Budget(max_seconds=1e-9))
    time.sleep(0.001)
    with pytest.raises(BudgetExhausted, match="seconds"):
        led.check_time()


# ---- 2. no silent non-finite results --------------------------------------------------------------

def test_beta_too_small_for_double_precision_is_refused_by_name():
    # was: coverage() returned 0.0 and J_star was inf
    with pytest.raises(ValueError, match=r"beta must be in \[1e-100, 1e\+100\], got 5e-324"):
        tabular_problem([1.0], [[0.5, 0.5]], [[[1.0], [0.0]]], [1.0], beta=5e-324, B=1.0)
    with pytest.raises(ValueError, match=r"beta = 1e-90 is too small for max \|r\*\| = 1"):
        tabular_problem([1.0], [[0.5, 0.5]], [[[1.0], [0.0]]], [1.0], beta=1e-90, B=1.0)
    p = tabular_problem([1.0], [[0.5, 0.5]], [[[1.0], [0.0]]], [1.0], beta=1.0 / MAX_LOG_WEIGHT, B=1.0, noise="none")
    assert coverage(p) == pytest.approx(2.0) and p.exact.J_star(p.beta) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="beta"):
        p.exact.C_cov(1e-300)                      # the exact quantities check the beta they are given


def test_features_beyond_the_magnitude_bound_are_refused_by_name():
    # was: evaluate() gave J = nan for features of norm ~1e150
    F = np.eye(3) * 1e150
    with pytest.raises(ValueError, match=r"features\[0\]: row norms .* at most 1e\+100"):
        tabular_problem([1.0], [np.full(3, 1 / 3)], [F], np.ones(3) * 1e-150, beta=1.0, R_max=1.0)


def test_a_fit_that_loses_every_digit_ends_the_run_with_numerical_error():
    # was: status 'completed' with theta +-inf
    res = SpannerSampling(T_exp=3, T_span=3, N_try=8, lam=1e-300).run(small_bandit(), seed=0)
    assert res.status == "numerical_error" and "lam" in res.extras["error"]
    ev = evaluate(res.policy, small_bandit(), n_mc=10)   # the best-so-far policy (pi_ref here) stays finite
    assert math.isfinite(ev.J)


def test_huge_noise_is_refused_and_a_diverging_fit_is_a_numerical_error():
    # was: OnlineDPO(T=3) with sigma=1e300 completed with theta_norm inf
    with pytest.raises(ValueError, match=r"sigma must be in \[0, 1e\+100\]"):
        small_bandit(sigma=1e300)
    with pytest.raises(ValueError, match=r"sigma = 1e\+12"):
        small_bandit(sigma=1e12)                   # observed rewards 1e12 / beta: log-weights too large
    res = make("online_dpo", T=50, solver="sgd", lr=1e300).run(small_bandit(), seed=0)
    assert res.status == "numerical_error" and "lr" in res.extras["error"]
    assert all(math.isfinite(row["theta_norm"]) for row in res.trace)


def test_best_of_n_sizes_and_law():
    # was: BestOfN(n=2**70) accepted, J nan
    with pytest.raises(ValueError, match=r"n must be in \[1, 1000000000\]"):
        make("best_of_n", n=2**70)
    p = small_bandit()
    res = make("best_of_n", n=10**9).run(p, seed=0)
    q = res.policy.probs(0)
    assert np.all(np.isfinite(q)) and q.sum() == pytest.approx(1.0)
    assert math.isfinite(evaluate(res.policy, p).J)


def test_rank_one_designs_are_optimal_in_one_step():
    # the line search takes gamma = 1 when the points span one direction (was ZeroDivisionError)
    D = g_optimal_design(np.array([[1.0, 2.0], [2.0, 4.0], [-3.0, -6.0]]))
    assert D.rank == 1 and D.converged and D.weights.tolist() == [0.0, 0.0, 1.0]
    assert D.max_variance == pytest.approx(1.0)
    res = make("exhaustive_design", T=4).run(token_chain(H=3, beta=0.5), seed=1)   # phi_H = (n_1, 0): rank 1
    assert res.status == "completed" and res.extras["design_rank"] == 1


# ---- 3. internal crashes on inputs the constructors accepted --------------------------------------

def test_delta_and_beta_extremes_are_refused_by_name():
    with pytest.raises(ValueError, match=r"delta must be in \[1e-300, 1\)"):      # was OverflowError
        SpannerSampling(delta=5e-324)
    with pytest.raises(ValueError, match=r"beta must be in \[1e-100, 1e\+100\]"):  # was ZeroDivisionError
        small_bandit(beta=1e-300)
    with pytest.raises(ValueError, match=r"beta = 1e-90 is too small"):
        small_bandit(beta=1e-90)
    with pytest.raises(ValueError, match=r"beta must be in \[1e-100, 1e\+100\]"):  # was nu**2 overflow
        needle(beta=1e300)
    with pytest.raises(ValueError, match=r"delta must be in \[1e-12, 1\)"):       # was OverflowError in .N
        SoftmaxSampler(beta=1, M=4, delta=5e-324)
    assert SoftmaxSampler(beta=1, M=4, delta=1e-12).N == math.ceil(4 * 4 * math.log(4e12))


def test_declared_bounds_beyond_float64_are_refused_and_the_spanner_bound_stays_finite():
    with pytest.raises(ValueError, match=r"feature_norm_bound must be in \[1e-100, 1e\+100\]"):   # was OverflowError
        tabular_problem([1.0], [[0.5, 0.5]], [[[1.0], [0.0]]], [1.0], beta=1.0, B=1.0, feature_norm_bound=1e300)
    with pytest.raises(ValueError, match=r"R_max \(default B \* feature_norm_bound\)"):
        tabular_problem([1.0], [[0.5, 0.5]], [[[1.0], [0.0]]], [1.0], beta=1.0, B=1e60, feature_norm_bound=1e60)
    assert spanner_size_bound(3, 0.5, 5e-324, MAX_MAGNITUDE) == 16315          # L^2 / (d lam) overflows: log space
    assert spanner_size_bound(3, 1e-200, 1.0, 1.0) == SPANNER_BOUND_MAX        # nu^2 underflows: no finite bound
    assert spanner_size_bound(8, 0.5, 1.0, 2.0) == 156                         # the ordinary case, unchanged


def test_degenerate_linear_algebra_is_a_numerical_error_not_linalgerror():
    # was: XPO on features x1e100 raised LinAlgError "Singular matrix"
    p = small_bandit()
    F = [f * 1e50 for f in p.exact.features]
    big = tabular_problem(p.exact.rho, p.exact.ref_probs, F, p.exact.theta_star / 1e50, beta=p.beta, R_max=1.0)
    for fb in ("reward", "preference"):
        res = make("xpo", T=5, feedback=fb).run(big, seed=0, budget=Budget(max_sample_calls=10000))
        assert res.status == "numerical_error"
        assert "is singular in double precision: lam = 1 is negligible" in res.extras["error"]
    with pytest.raises(NumericalError, match="lam = 1e-300"):
        ridge_fit(np.ones((1, 2)), [1.0], lam=1e-300)
    with pytest.raises(NumericalError, match="no correct digits"):
        sherman_morrison(np.eye(2), [1e9, 0.0])
    # q = ||v||^2 = 1e8 leaves about log10(1 / (q eps)) = 7.7 digits
    np.testing.assert_allclose(sherman_morrison(np.eye(2), [1e4, 0.0]), np.diag([1 / (1 + 1e8), 1.0]), rtol=1e-6)


def test_check_real_refuses_huge_ints_before_converting_them():
    with pytest.raises(ValueError, match=r"x must be in \[0, inf\), got 1000.*\(401 chars\)"):
        check_real("x", 10**400, low=0)
    with pytest.raises(ValueError, match="x must be finite"):
        check_real("x", -10**400)
    with pytest.raises(TypeError, match="x must be a real number"):
        check_real("x", np.bool_(True))


@pytest.mark.parametrize("alg, params", [("spanner_sampling", dict(T_span=2, T_exp=2, N_try=4)),
                                         ("online_dpo", dict(T=2)), ("best_of_n", dict(n=3))])
def test_prompt_indices_are_validated_everywhere(alg, params):
    # was: BestOfN's .probs(1.9) treated as prompt 1
    p = small_bandit()
    pol = make(alg, **params).run(p, seed=0).policy
    for bad, err in [(1.9, TypeError), (True, TypeError), (-1, ValueError), (2, ValueError), (2**70, ValueError)]:
        with pytest.raises(err, match="prompt x"):
            pol.probs(bad)
    with pytest.raises(TypeError, match="prompt x"):
        p.phi(1.9, [0])
    assert pol.probs(np.int64(1)).sum() == pytest.approx(1.0)


def test_evaluate_validates_n_mc_and_seed():
    p = small_bandit()
    pol = make("online_dpo", T=2).run(p, seed=0).policy
    with pytest.raises(ValueError, match="n_mc"):
        evaluate(pol, p, n_mc=-5, seed=0)
    with pytest.raises(TypeError, match="seed"):
        evaluate(pol, p, n_mc=5, seed="x")
    with pytest.raises(TypeError, match="policy"):
        evaluate("policy", p)


def test_unbudgeted_runs_on_long_token_chains_are_refused_or_finite():
    # was: numpy "maximum dimension exceeded" from a recipe drawn up front
    for H in (62, 64):
        with pytest.raises(ValueError, match="N_try: the recipe"):
            SpannerSampling().run(token_chain(H=H, beta=0.05), seed=0)
    p = token_chain(H=62)
    res = make("mtss", n_rounds=1, rollouts=2).run(p, seed=0)
    assert res.status == "completed"
    assert math.isfinite(evaluate(res.policy, p, n_mc=5).mean_reward)


def test_messages_name_the_argument_a_user_gave():
    with pytest.raises(ValueError, match=r"c \(the needle's reward\)"):
        needle(c=1e10, beta=0.1)
    with pytest.raises(ValueError, match=r"theta_norm \* reward_scale"):
        linear_bandit(reward_scale=1e12)
    with pytest.raises(ValueError, match=r"temperature \(bt_temperature\)"):
        tabular_problem([1.0], [[0.5, 0.5]], [[[1.0], [0.0]]], [1.0], beta=1.0, B=1.0, bt_temperature=0.0)
    with pytest.raises(ValueError, match=r"noise='bernoulli' needs r\* in \[low, high\]"):
        token_chain(H=3, noise="bernoulli")
    with pytest.raises(TypeError, match="rewards must be a list"):
        tabular_problem([1.0], [[0.5, 0.5]], [[[1.0], [0.0]]], rewards=0.0, beta=1.0, B=1.0)
    with pytest.raises(ValueError, match=r"sampler_batch must be in \[1, 1073741824\]"):
        make("mtss", sampler_batch=2**31)
    with pytest.raises(spanex.core.OracleKnowledgeError, match="strong_oracle='exact'.*oracle_hints=True"):
        make("online_dpo", T=2, strong_oracle="exact").run(small_bandit(), seed=0)


def test_tiny_scales_and_delegated_ranges_name_the_argument_a_user_gave():
    # found by the fuzz census at 400 inputs per case: these named an internal quantity or a numpy error
    with pytest.raises(ValueError, match=r"theta_norm must be in \[1e-100, 1e\+100\]"):
        linear_bandit(theta_norm=5e-324)                     # was: "nu: the recipe ... gives inf"
    with pytest.raises(ValueError, match=r"theta_norm \* reward_scale must be in \[1e-100"):
        linear_bandit(theta_norm=1e-60, reward_scale=1e-60)
    with pytest.raises(ValueError, match=r"c must be in \[1e-100, 1e\+100\]"):
        token_chain(c=1e-300)                                # was: "B must be in (0, 1e+100], got 0.0"
    with pytest.raises(ValueError, match=r"c must be in \[1e-100, 1e\+100\]"):
        max_k_dnf(n=4, c=5e-324)
    with pytest.raises(ValueError, match=r"sampler_delta must be in \[1e-12, 1\)"):
        make("online_dpo", T=3, sampler_delta=5e-324)        # was: the sampler's "delta must be in ..."
    with pytest.raises(ValueError, match=r"T must be in \[1, 1000000000\]"):
        make("exhaustive_design", T=2**70)                   # was: numpy "negative dimensions are not allowed"
