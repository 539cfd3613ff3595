"""Errors and argument validation shared by every module.

Every check raises :class:`ValueError` (or :class:`TypeError`) whose message names the argument,
the offending value and the allowed range, so bad input never turns into a NaN, a hang or a
silent clip further down.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np


class SpanexError(Exception):
    """Base class of spanex-specific runtime errors."""


class BudgetExhausted(SpanexError):
    """Raised by the ledger *before* an oracle call that would exceed a budget.

    Algorithms never see it: :meth:`spanex.core.algorithm.Algorithm.run` catches it and returns the
    best result so far with ``status="budget_exhausted"``.
    """

    def __init__(self, kind: str, requested: int, used: int, limit: float):
        self.kind, self.requested, self.used, self.limit = kind, requested, used, limit
        super().__init__(
            f"budget for {kind!r} exhausted: {used} used, {requested} more requested, limit {limit}"
        )


class SamplerFailure(SpanexError):
    """SoftmaxSampler exhausted its N proposals with no acceptance and ``fallback='raise'``."""


class OracleKnowledgeError(SpanexError):
    """An algorithm reached for an exact quantity of the instance (pi*, theta*, C_cov, C_cond, the idealized
    strong oracle, ...) that a user would not have. Such quantities exist for evaluation only; a run may opt
    in with ``run(..., oracle_hints=True)``, and its Result then lists what it used (``result.hints``)."""


class NumericalError(SpanexError):
    """A run's parameters or output law became non-finite; the run ends with status 'numerical_error'."""


class ExactLawUnavailable(SpanexError, NotImplementedError):
    """A policy's emitted law cannot be computed exactly here (evaluation then samples it, label 'eval')."""


def check_real(name: str, value, *, low=None, high=None, low_open=False, high_open=False,
               allow_inf=False) -> float:
    """Validate a real scalar in [low, high] (open ends when *_open); return it as float."""
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be finite, got {value!r}")
    rng = _range_text(low, high, low_open, high_open)
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be in {rng}, got {value!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be in {rng}, got {value!r}")
    return v


def check_int(name: str, value, *, low=None, high=None) -> int:
    """Validate an integer in [low, high]; return it as int."""
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{name} must be in {_range_text(low, high, False, False)}, got {value!r}")
    return v


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_finite_array(name: str, arr, *, ndim=None, shape=None) -> np.ndarray:
    """Convert to a float array and reject NaN/inf and wrong shapes."""
    a = np.asarray(arr, dtype=float)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {a.shape}")
    if shape is not None:
        for i, (got, want) in enumerate(zip(a.shape, shape)):
            if want is not None and got != want:
                raise ValueError(f"{name} must have shape {shape} (axis {i}: {want}), got {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"{name} contains {bad} NaN/inf entries; all entries must be finite")
    return a


def check_distribution(name: str, p, *, atol: float = 1e-8) -> np.ndarray:
    """A finite, non-negative 1-d vector that sums to 1 (within atol)."""
    a = check_finite_array(name, p, ndim=1)
    if a.size == 0:
        raise ValueError(f"{name} must be non-empty")
    if np.any(a < 0):
        raise ValueError(f"{name} must be non-negative, min entry is {a.min()!r}")
    s = a.sum()
    if abs(s - 1.0) > atol * max(1.0, a.size ** 0.5):
        raise ValueError(f"{name} must sum to 1 (allowed error {atol}), sums to {s!r}")
    return a / s


def as_generator(seed) -> np.random.Generator:
    """Seed (int / SeedSequence / Generator) -> numpy Generator. ``None`` is refused: be explicit."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("seed must be given explicitly (an int, a SeedSequence or a numpy Generator); "
                         "spanex never draws unseeded randomness")
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    check_int("seed", seed, low=0)
    return np.random.default_rng(int(seed))


def _range_text(low, high, low_open, high_open) -> str:
    lo = "-inf" if low is None else repr(low)
    hi = "inf" if high is None else repr(high)
    return f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
