"""Algorithm base class and Result.

Every algorithm is a frozen dataclass of its parameters (validated in ``__post_init__``) with one
entry point, ``run(problem, seed=..., budget=...) -> Result``. The base class owns the run
plumbing: the seeded Generator, the Ledger, the counted Oracles, budget stops (the run returns its
best-so-far policy with ``status='budget_exhausted'``), wall time and the trace.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import BudgetExhausted, as_generator
from .ledger import Budget, Ledger
from .oracles import Oracles
from .policy import Policy, ReferencePolicy
from .problem import Problem


@dataclass
class RunState:
    """Mutable state an algorithm updates while it runs; read back if the budget stops it."""

    policy: Policy | None = None
    trace: list = field(default_factory=list)
    extras: dict = field(default_factory=dict)
    progress: Any = None

    def log(self, **row) -> None:
        self.trace.append(row)


@dataclass
class Result:
    """What a run returns.

    Attributes
    ----------
    policy : the output policy (bound to the run's oracles under the 'inference' label).
    ledger : the run's Ledger (``ledger.reward_queries`` = T_data, ``ledger.sample_calls`` = T_comp).
    trace : one dict per round (algorithm-specific).
    status : 'completed' or 'budget_exhausted'.
    """

    algorithm: str
    policy: Policy
    ledger: Ledger
    trace: list
    status: str
    seed: Any
    wall_time: float
    config: dict
    extras: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"algorithm": self.algorithm, "status": self.status, "seed": self.seed,
                "wall_time": self.wall_time, **self.ledger.to_dict()}


class Algorithm:
    """Base class: subclasses are dataclasses implementing ``_run(problem, oracles, rng, state)``."""

    name: str = "algorithm"

    def run(self, problem: Problem, seed, budget: Budget | dict | None = None, *,
            progress: bool = False) -> Result:
        """Run on `problem` with an explicit seed; never crashes on an exhausted budget."""
        if not isinstance(problem, Problem):
            raise TypeError(f"problem must be a spanex Problem, got {type(problem).__name__}")
        rng = as_generator(seed)
        ledger = Ledger(budget)
        oracles = Oracles(problem, ledger, "train")
        self.check_problem(problem)
        state = RunState()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(desc=self.name, unit="round", leave=False)
            state.progress = bar
        t0 = time.perf_counter()
        status = "completed"
        try:
            self._run(problem, oracles, rng, state)
        except BudgetExhausted as e:
            status = "budget_exhausted"
            state.extras["budget_stop"] = str(e)
        finally:
            if bar is not None:
                bar.close()
        wall = time.perf_counter() - t0
        policy = state.policy if state.policy is not None else ReferencePolicy()
        policy.bind(oracles.with_label("inference"))
        return Result(algorithm=self.name, policy=policy, ledger=ledger, trace=state.trace, status=status,
                      seed=seed if not isinstance(seed, np.random.Generator) else "generator",
                      wall_time=wall, config=self.config(), extras=state.extras)

    def check_problem(self, problem: Problem) -> None:
        """Override to reject problems the algorithm cannot run on (with a clear message)."""

    def _run(self, problem: Problem, oracles: Oracles, rng: np.random.Generator, state: RunState) -> None:
        raise NotImplementedError

    def config(self) -> dict:
        if dataclasses.is_dataclass(self):
            return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {}


def _plain(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v
