"""Algorithm base class and Result.

Every algorithm is a frozen dataclass of its parameters (validated in ``__post_init__``) with one
entry point, ``run(problem, seed=..., budget=...) -> Result``. The base class owns the run
plumbing: the seeded Generator, the Ledger, the counted Oracles, budget stops (the run returns its
best-so-far policy with ``status='budget_exhausted'``), wall time and the trace.

The knowledge boundary: ``_run`` receives :meth:`Problem.view` (no exact quantities; see
:mod:`spanex.core.problem`), never the Problem itself. ``run(..., oracle_hints=True)`` lets the view
hand out exact quantities as labelled hints, and ``Result.hints`` lists every one the run used.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import BudgetExhausted, NumericalError, as_generator
from .ledger import Budget, Ledger, running
from .oracles import Oracles
from .policy import Policy, ReferencePolicy
from .problem import Problem, ProblemView


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
    status : 'completed', 'budget_exhausted' or 'numerical_error' (``extras['error']`` says what).
    hints : exact instance quantities the run used (only with ``oracle_hints=True``; empty otherwise),
        e.g. ``['exact.C_cov', 'strong']``. Any number produced with a hint must say so.
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
    hints: list = field(default_factory=list)

    def summary(self) -> dict:
        return {"algorithm": self.algorithm, "status": self.status, "seed": self.seed,
                "wall_time": self.wall_time, "hints": ",".join(self.hints), **self.ledger.to_dict()}


class Algorithm:
    """Base class: subclasses are dataclasses implementing ``_run(problem, oracles, rng, state)``."""

    name: str = "algorithm"

    def run(self, problem: Problem, seed, budget: Budget | dict | None = None, *,
            progress=False, oracle_hints: bool = False) -> Result:
        """Run on `problem` with an explicit seed; never crashes on an exhausted budget.

        progress : False, True (a tqdm bar) or a callable ``progress(event)`` receiving dicts
            ``{'algorithm', 'done', 'total'}`` as rounds complete.
        oracle_hints : let the algorithm read exact instance quantities (labelled in ``Result.hints``).
        """
        if isinstance(problem, ProblemView):
            problem = problem._problem
        if not isinstance(problem, Problem):
            raise TypeError(f"problem must be a spanex Problem, got {type(problem).__name__}")
        if not isinstance(oracle_hints, bool):
            raise TypeError(f"oracle_hints must be a bool, got {type(oracle_hints).__name__}")
        rng = as_generator(seed)
        ledger = Ledger(budget)
        view = problem.view(oracle_hints)
        oracles = Oracles(view, ledger, "train")
        self.check_problem(view)
        state = RunState()
        bar = _progress(progress, self.name)
        state.progress = bar
        t0 = time.perf_counter()
        status = "completed"
        try:
            with running(ledger):                         # checkpoint() inside the run reads this ledger's clock
                self._run(view, oracles, rng, state)
        except BudgetExhausted as e:
            status = "budget_exhausted"
            state.extras["budget_stop"] = str(e)
        except NumericalError as e:
            status = "numerical_error"
            state.extras["error"] = str(e)
        finally:
            if bar is not None:
                bar.close()
        wall = time.perf_counter() - t0
        policy = state.policy if state.policy is not None else ReferencePolicy()
        policy.bind(oracles.with_label("inference"))
        policy.attach_exact(problem.exact)                # for evaluation (probs); sample() never reads it
        return Result(algorithm=self.name, policy=policy, ledger=ledger, trace=state.trace, status=status,
                      seed=seed if not isinstance(seed, np.random.Generator) else "generator",
                      wall_time=wall, config=self.config(), extras=state.extras, hints=view.hints_used)

    def check_problem(self, problem: Problem) -> None:
        """Override to reject problems the algorithm cannot run on (with a clear message)."""

    def _run(self, problem: Problem, oracles: Oracles, rng: np.random.Generator, state: RunState) -> None:
        raise NotImplementedError

    def config(self) -> dict:
        if dataclasses.is_dataclass(self):
            return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {}


class _CallbackProgress:
    """A tqdm-like object (``total``, ``update``, ``close``) that reports to a user callable."""

    def __init__(self, fn, name):
        self.fn, self.name, self.total, self.done = fn, name, None, 0

    def update(self, n: int = 1) -> None:
        self.done += n
        self.fn({"algorithm": self.name, "done": self.done, "total": self.total})

    def close(self) -> None:
        pass


def _progress(progress, name):
    if progress is False or progress is None:
        return None
    if progress is True:
        from tqdm.auto import tqdm

        return tqdm(desc=name, unit="round", leave=False)
    if callable(progress):
        return _CallbackProgress(progress, name)
    raise TypeError(f"progress must be a bool or a callable, got {type(progress).__name__}")


def _plain(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v
