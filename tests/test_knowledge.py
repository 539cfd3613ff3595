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
