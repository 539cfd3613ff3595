"""The knowledge boundary: algorithms see what a user has, never the exact instance (unless hinted)."""

from dataclasses import dataclass

import numpy as np
import pytest

import spanex
from spanex.core import Algorithm, OracleKnowledgeError, ProblemView


@dataclass(frozen=True)
class _Peek(Algorithm):
    """Reads C_cov during its run, as the old recipes did."""

    name = "peek"

    def _run(self, problem, oracles, rng, state):
        state.extras["C"] = problem.exact.C_cov(problem.beta)
        oracles.sample_ref(0, 3, rng)


def test_view_exposes_user_quantities_and_hides_exact_ones(small_problem):
    v = small_problem.view()
    assert isinstance(v, ProblemView)
    assert v.beta == small_problem.beta and v.d == small_problem.d and v.R_max == small_problem.R_max
    assert v.response_set is small_problem.response_set and v.base is small_problem.base
    for name in ("exact", "strong", "meta"):
        with pytest.raises(OracleKnowledgeError, match=f"problem.{name} is an exact quantity"):
            getattr(v, name)
    with pytest.raises(AttributeError):
        v.beta = 1.0


def test_an_algorithm_reading_an_exact_quantity_fails_unless_hinted(small_problem):
    with pytest.raises(OracleKnowledgeError):
        _Peek().run(small_problem, seed=0)
    res = _Peek().run(small_problem, seed=0, oracle_hints=True)
    assert res.hints == ["exact.C_cov"]
    assert res.extras["C"] == pytest.approx(spanex.coverage(small_problem))
    assert res.summary()["hints"] == "exact.C_cov"


def test_exact_strong_oracle_is_a_hint(small_problem):
    from spanex.core import Ledger, Oracles

    o = Oracles(small_problem.view(), Ledger())
    with pytest.raises(OracleKnowledgeError):
        o.sample_strong(0, np.zeros(small_problem.d), 1, np.random.default_rng(0))
    view = small_problem.view(oracle_hints=True)
    Oracles(view, Ledger()).sample_strong(0, np.zeros(small_problem.d), 2, np.random.default_rng(0))
    assert view.hints_used == ["strong"]


def test_declared_bounds_are_inputs_not_read_off_theta_star():
    p = spanex.tabular_problem([1.0], [np.array([0.5, 0.5])], [np.eye(2)], theta_star=np.array([3.0, 0.0]), R_max=1.0)
    assert p.R_max == 1.0                                        # as declared, although ||theta*|| = 3
    with pytest.raises(ValueError, match="declare a reward bound"):
        spanex.tabular_problem([1.0], [np.array([0.5, 0.5])], [np.eye(2)], theta_star=np.ones(2))


# ---- every algorithm's default recipe reads no exact quantity ------------------------------------

_EXACT_METHODS = {
    "TabularInstance": ("C_cov", "pi_star", "log_pi_star", "log_Z_star", "J_star", "J", "tilted_probs", "log_tilted",
                        "suboptimality", "kl_to_ref", "support"),
    "TokenTreeInstance": ("C_cond", "soft_values", "V_star", "Q_star", "log_pi_star_cond", "pi_star_token_law",
                          "log_cond_ratio_max", "sequence_law"),   # (log_ref_cond, phi_layer: pi_ref and phi tables)
}


def _forbid(monkeypatch):
    """Make the exact quantities of every instance class raise, wherever they are reached from."""
    from spanex.tabular import TabularInstance
    from spanex.tokens.exact import TokenTreeInstance

    def boom(name):
        def f(*a, **k):
            raise AssertionError(f"exact quantity {name} read during run()")
        return f

    for cls in (TabularInstance, TokenTreeInstance):
        for name in _EXACT_METHODS[cls.__name__]:
            if hasattr(cls, name):
                monkeypatch.setattr(cls, name, boom(f"{cls.__name__}.{name}"))
    monkeypatch.setattr(TabularInstance, "theta_star", property(boom("theta_star")), raising=False)


def _cases():
    from spanex.algorithms import REGISTRY, get
    from spanex.instances import linear_bandit
    from spanex.tokens import token_linear

    sizes = {"spanner_sampling": dict(T_exp=20, T_span=20), "online_dpo": dict(T=10), "xpo": dict(T=5, n_mean=4),
             "best_of_n": dict(n=4), "inference_time_pessimism": dict(n=4), "passive_regression": dict(T=20),
             "exhaustive_design": dict(T=20), "mtss": dict(rollouts=10, n_rounds=2)}
    assert set(sizes) == set(REGISTRY)                               # a new algorithm must be added here
    for name in REGISTRY:
        prob = (lambda: token_linear(H=2, A=3, k=2, beta=1.0, seed=0)) if name == "mtss" else \
            (lambda: linear_bandit(n_prompts=2, n_responses=40, d=4))
        yield name, get(name)(**sizes[name]), prob


@pytest.mark.parametrize("name,alg,make", list(_cases()), ids=[c[0] for c in _cases()])
def test_default_recipes_read_no_exact_quantity(name, alg, make, monkeypatch):
    prob = make()
    with monkeypatch.context() as m:
        _forbid(m)
        res = alg.run(prob, seed=0)
        res.policy.sample(0, 2, np.random.default_rng(0))           # nor does the output policy's sampling
    assert res.status == "completed" and res.hints == []
    ev = spanex.evaluate(res.policy, prob, n_mc=200)                 # evaluation may (after the run)
    assert ev.suboptimality is not None and np.isfinite(ev.suboptimality)
