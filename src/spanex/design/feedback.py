"""Feedback on pairs of responses: which kind a run queries, and one batched query for many pairs.

A pair (y1, y2) at prompt x is labelled either by two reward queries (target r1 - r2, the squared
loss's regression target) or by one Bradley–Terry preference query (target b = 1 when y1 is
preferred, the logistic loss's label). Every query goes through the counted oracles.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import check_choice
from ..core.responses import concat

FEEDBACKS = ("auto", "reward", "preference")


def resolve_feedback(problem, feedback: str, what: str | None = None) -> str:
    """'reward' or 'preference': what the run queries. 'auto' prefers the reward oracle.

    ``what`` names the caller's argument in the error message (default ``feedback=<value>``).
    """
    check_choice("feedback", feedback, FEEDBACKS)
    what = what if what is not None else f"feedback={feedback!r}"
    if feedback == "auto":
        return "reward" if problem.reward is not None else "preference"
    if feedback == "reward" and problem.reward is None:
        raise ValueError(f"{what} needs a reward oracle; this problem gives preferences only")
    if feedback == "preference" and problem.preference is None:
        raise ValueError(f"{what} needs a preference oracle; this problem has none")
    return feedback


def pair_feedback(oracles, x, y1, y2, rng: np.random.Generator, feedback: str) -> np.ndarray:
    """Feedback on the batch of pairs (y1[i], y2[i]) at prompt x, one float per pair:
    r1 - r2 (2 reward queries per pair, in one call) or b in {0, 1} (1 preference query per pair)."""
    if feedback == "reward":
        k = len(y1)
        r = oracles.reward(x, concat([y1, y2]), rng)
        return r[:k] - r[k:]
    return oracles.preference(x, y1, y2, rng)


__all__ = ["FEEDBACKS", "resolve_feedback", "pair_feedback"]
