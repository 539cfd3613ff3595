"""The Ledger: every oracle call an algorithm makes is counted here.

Cost model of the sampling-oracle framework (paper-notes §1.5):

- **T_comp** (``ledger.sample_calls``): sampling-oracle calls. Counted by kind:
  ``weak`` (y ~ pi_ref(.|x), one per response), ``strong`` (y ~ pi_theta(.|x)), ``token``
  (one next-token draw from pi_{h,ref}), ``logprob`` (a log-probability / next-token-distribution
  query) and ``enum`` (a response touched by exhaustive enumeration of the response set).
- **T_data** (``ledger.reward_queries``): reward queries (``reward``) and preference queries
  (``preference``).
- Feature evaluations (``phi``) are recorded for information and are not part of either.

Every count carries a *label*: ``"train"`` for what the algorithm spends to learn, ``"inference"``
for what its output policy spends when it is sampled, ``"eval"`` for evaluation we do not want to
count against the algorithm. ``sample_calls`` / ``reward_queries`` are the ``"train"`` totals.

A :class:`Budget` caps train-label counts. The ledger refuses a charge that would exceed a cap
(raising :class:`BudgetExhausted` *before* the oracle is called), so a finished run never
exceeds its budget and the algorithm returns its best-so-far result.

Wall time (``max_seconds``). The clock is read at every train-label charge and at every
:func:`checkpoint`, which the numerical loops that make no oracle call run once per iteration
(Newton's method, Frank–Wolfe, MTSS's backward induction, the recipes' solvers). A run therefore
stops within one *step* of its deadline: one oracle call (a batch, whose size the algorithms cap)
or one iteration of such a loop, plus the assembly of its Result. :func:`checkpoint` finds the running
ledger through a context variable that :meth:`spanex.core.Algorithm.run` sets, so code outside a run
(evaluation, inference draws) is never stopped by it.
"""

from __future__ import annotations

import contextvars
import time
from collections import defaultdict
from dataclasses import dataclass

from .errors import BudgetExhausted, check_choice, check_int, check_real

SAMPLE_KINDS = ("weak", "strong", "token", "logprob", "enum")
DATA_KINDS = ("reward", "preference")
INFO_KINDS = ("phi",)
ALL_KINDS = SAMPLE_KINDS + DATA_KINDS + INFO_KINDS
LABELS = ("train", "inference", "eval")
_KIND_SET = frozenset(ALL_KINDS)
_LABEL_SET = frozenset(LABELS)
_SAMPLE_SET = frozenset(SAMPLE_KINDS)
_DATA_SET = frozenset(DATA_KINDS)


@dataclass(frozen=True)
class Budget:
    """Optional caps on a run (train label). ``None`` means unlimited.

    Parameters
    ----------
    max_reward_queries : cap on T_data (reward + preference queries).
    max_sample_calls : cap on T_comp (all sampling-oracle kinds together).
    max_seconds : wall-clock cap, checked at every oracle call and every :func:`checkpoint` (a run stops
        within one step of it; see the module docstring).
    """

    max_reward_queries: int | None = None
    max_sample_calls: int | None = None
    max_seconds: float | None = None

    def __post_init__(self):
        if self.max_reward_queries is not None:
            check_int("budget.max_reward_queries", self.max_reward_queries, low=0)
        if self.max_sample_calls is not None:
            check_int("budget.max_sample_calls", self.max_sample_calls, low=0)
        if self.max_seconds is not None:
            check_real("budget.max_seconds", self.max_seconds, low=0, low_open=True)

    @classmethod
    def coerce(cls, budget) -> "Budget":
        if budget is None:
            return cls()
        if isinstance(budget, Budget):
            return budget
        if isinstance(budget, dict):
            return cls(**budget)
        raise TypeError(f"budget must be a Budget, a dict of its fields or None, got {type(budget).__name__}")


class Ledger:
    """Counts oracle calls by (kind, label) and enforces a :class:`Budget` on the train label."""

    def __init__(self, budget: Budget | dict | None = None):
        self.budget = Budget.coerce(budget)
        self._counts: dict[tuple[str, str], int] = defaultdict(int)
        self._sample_calls = self._reward_queries = 0     # the train totals, kept as charges arrive (hot path)
        self._t0 = time.perf_counter()

    # ---- charging -------------------------------------------------------------------------
    def charge(self, kind: str, n: int, label: str = "train") -> None:
        """Record n calls of `kind`; refuse (BudgetExhausted) if that would break the budget."""
        # validation on the hot path: set membership and an exact type test, the slow checks on failure only
        if kind not in _KIND_SET:
            check_choice("kind", kind, ALL_KINDS)
        if label not in _LABEL_SET:
            check_choice("label", label, LABELS)
        if type(n) is not int or n < 0:
            n = check_int("n", n, low=0)
        if label == "train":
            b = self.budget
            sample, data = kind in _SAMPLE_SET, kind in _DATA_SET
            if sample and b.max_sample_calls is not None:
                if self._sample_calls + n > b.max_sample_calls:
                    raise BudgetExhausted("sample_calls", n, self._sample_calls, b.max_sample_calls)
            if data and b.max_reward_queries is not None:
                if self._reward_queries + n > b.max_reward_queries:
                    raise BudgetExhausted("reward_queries", n, self._reward_queries, b.max_reward_queries)
            if b.max_seconds is not None:
                self.check_time()
            if sample:
                self._sample_calls += n
            elif data:
                self._reward_queries += n
        self._counts[(kind, label)] += n

    def check_time(self) -> None:
        """Refuse (BudgetExhausted) once the run is past ``budget.max_seconds``."""
        b = self.budget
        if b.max_seconds is not None and self.elapsed > b.max_seconds:
            raise BudgetExhausted("seconds", 0, int(self.elapsed), b.max_seconds)

    def can_afford(self, kind: str, n: int) -> bool:
        """Whether a train-label charge of n calls of `kind` would be accepted now."""
        b = self.budget
        if kind in SAMPLE_KINDS and b.max_sample_calls is not None and self.sample_calls + n > b.max_sample_calls:
            return False
        if kind in DATA_KINDS and b.max_reward_queries is not None and self.reward_queries + n > b.max_reward_queries:
            return False
        return True

    # ---- reading ----------------------------------------------------------------------------
    def count(self, kind: str, label: str = "train") -> int:
        return self._counts.get((kind, label), 0)

    def total(self, kinds, label: str = "train") -> int:
        return sum(self._counts.get((k, label), 0) for k in kinds)

    @property
    def sample_calls(self) -> int:
        """T_comp: train-label sampling-oracle calls of every kind."""
        return self._sample_calls

    @property
    def reward_queries(self) -> int:
        """T_data: train-label reward and preference queries."""
        return self._reward_queries

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def to_dict(self) -> dict:
        out = {"T_data": self.reward_queries, "T_comp": self.sample_calls}
        for (kind, label), v in sorted(self._counts.items()):
            out[f"{label}.{kind}"] = v
        return out

    def snapshot(self) -> dict[tuple[str, str], int]:
        return dict(self._counts)

    def __repr__(self) -> str:
        return f"Ledger(T_data={self.reward_queries}, T_comp={self.sample_calls}, counts={dict(self._counts)})"


#: the ledger of the run in progress in this context (set by Algorithm.run), read by :func:`checkpoint`
_RUNNING: contextvars.ContextVar = contextvars.ContextVar("spanex_running_ledger", default=None)


def checkpoint() -> None:
    """Stop the run in progress (BudgetExhausted) if it is past its ``max_seconds``; no-op outside a run.

    Loops that make no oracle call call this once per iteration, so a time budget bounds them too."""
    ledger = _RUNNING.get()
    if ledger is not None and ledger.budget.max_seconds is not None:
        ledger.check_time()


def running(ledger: "Ledger"):
    """Context manager: make `ledger` the one :func:`checkpoint` checks (Algorithm.run uses it)."""
    return _Running(ledger)


class _Running:
    def __init__(self, ledger):
        self.ledger, self.token = ledger, None

    def __enter__(self):
        self.token = _RUNNING.set(self.ledger)
        return self.ledger

    def __exit__(self, *exc):
        _RUNNING.reset(self.token)
        return False
