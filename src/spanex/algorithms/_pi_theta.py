"""The base of the algorithms whose output is a linear-softmax policy pi_theta fitted on pair feedback
(OnlineDPO, XPO, PassiveRegression, ExhaustiveDesign). It declares and validates what they share:
which feedback the fit queries, and how y ~ pi_theta(.|x) is sampled (the strong sampling oracle;
:mod:`spanex.sampling.strong` describes the two cost models and the rules for M). Not an algorithm
itself; it imports only the layers below the algorithms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.algorithm import Algorithm, RunState
from ..core.errors import OracleKnowledgeError, check_choice, check_real
from ..core.problem import Problem
from ..design.feedback import FEEDBACKS, resolve_feedback
from ..sampling.strong import STRONG_ORACLES, make_strong_sampler


@dataclass(frozen=True, kw_only=True)
class PiThetaAlgorithm(Algorithm):
    """Frozen dataclass base; its parameters are keyword-only, so a subclass's own fields keep their
    positions.

    Parameters
    ----------
    feedback : 'auto' (the reward oracle when the problem has one), 'reward' (targets r1 - r2, squared
        loss) or 'preference' (Bradley–Terry labels, logistic / DPO loss).
    strong_oracle : 'weak' (default: rejection sampling from pi_ref, every pi_ref draw a counted 'weak'
        call) or 'exact' (the problem's idealized exact strong oracle, 1 'strong' call per draw; an oracle
        hint: it needs ``run(..., oracle_hints=True)`` and the Result lists it).
    M : the weak realization's envelope: None (default: self-calibrating, no bound needed), 'doubling',
        'worst_case' or a number >= 1 (the paper's sampler).
    sampler_delta : the weak realization's failure probability per draw, in [1e-12, 1) (not an algorithm's
        overall failure probability).
    max_M : the largest M a weak draw may use; beyond it the draw is refused.

    Subclasses call ``super().__post_init__()`` after their own checks and start ``_run`` with
    :meth:`_begin`.
    """

    feedback: str = "auto"
    strong_oracle: str = "weak"
    M: Any = None
    sampler_delta: float = 0.05
    max_M: float = 1e8

    def __post_init__(self):
        check_choice("feedback", self.feedback, FEEDBACKS)
        check_choice("strong_oracle", self.strong_oracle, STRONG_ORACLES)
        check_real("sampler_delta", self.sampler_delta, low=1e-12, high=1, high_open=True)   # the samplers' range
        self._strong_sampler("weak")                       # validates M and max_M

    def check_problem(self, problem: Problem) -> None:
        resolve_feedback(problem, self.feedback)
        if self.strong_oracle == "exact":
            if not getattr(problem, "oracle_hints", True) and problem._problem.strong is not None:
                raise OracleKnowledgeError("strong_oracle='exact' samples pi_theta with the problem's idealized exact "
                                           "strong oracle, an oracle hint: pass oracle_hints=True to run(...) (the "
                                           "Result then lists it), or use strong_oracle='weak'")
            if problem.strong is None:
                raise ValueError(f"strong_oracle='exact' needs an exact strong oracle; problem {problem.name!r} has "
                                 "none (use strong_oracle='weak')")

    def _begin(self, problem: Problem, state: RunState) -> tuple[str, Any]:
        """(the feedback this run queries, its pi_theta sampler), both recorded in the run's extras."""
        feedback = resolve_feedback(problem, self.feedback)
        state.extras.update(strong_oracle=self.strong_oracle, feedback=feedback)
        return feedback, self._strong_sampler()

    def _strong_sampler(self, strong_oracle: str | None = None):
        """None for the exact strong oracle, else a fresh WeakStrongSampler (charged to T_comp as 'weak')."""
        return make_strong_sampler(strong_oracle or self.strong_oracle, M=self.M, delta=self.sampler_delta,
                                   max_M=self.max_M)
