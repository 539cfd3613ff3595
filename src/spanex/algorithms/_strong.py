"""Pieces shared by the algorithms whose policies are pi_theta (OnlineDPO, XPO, PassiveRegression,
ExhaustiveDesign): the strong-oracle cost model parameters and a prompt key for grouping prompts."""

from __future__ import annotations

from ..core.errors import check_choice
from ..core.problem import Problem
from ..sampling.strong import STRONG_ORACLES, make_strong_sampler


def prompt_key(x):
    """A dict key for a prompt: the prompt itself when hashable, else its repr."""
    try:
        hash(x)
        return x
    except TypeError:
        return repr(x)


class StrongOracleParams:
    """Mixin for dataclasses with fields ``strong_oracle``, ``M``, ``delta``, ``max_M``
    (see :mod:`spanex.sampling.strong` for the two cost models and the rules for M)."""

    def _check_strong_params(self) -> None:
        check_choice("strong_oracle", self.strong_oracle, STRONG_ORACLES)
        make_strong_sampler("weak", M=self.M, delta=self.delta, max_M=self.max_M)   # validates M, delta, max_M

    def _check_strong_available(self, problem: Problem) -> None:
        if self.strong_oracle == "exact" and problem.strong is None:
            raise ValueError(f"strong_oracle='exact' needs an exact strong oracle; problem {problem.name!r} has "
                             "none (use strong_oracle='weak')")

    def _strong_sampler(self):
        """None for the exact strong oracle, else a WeakStrongSampler (charged to T_comp as 'weak')."""
        return make_strong_sampler(self.strong_oracle, M=self.M, delta=self.delta, max_M=self.max_M)
