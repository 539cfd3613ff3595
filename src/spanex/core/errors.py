"""Errors and argument validation shared by every module.

Every check raises :class:`ValueError` (or :class:`TypeError`) whose message names the argument,
the offending value and the allowed range, so bad input never turns into a NaN, a hang or a
silent clip further down.

Ranges that float64 imposes (refused where the input enters, naming it):

- :data:`MAX_MAGNITUDE` bounds declared bounds (B, R_max, the feature-norm bound), feature norms,
  rewards, noise scales and beta: algorithms square these and sum the squares over up to
  :data:`MAX_COUNT` terms (Gram matrices, elliptical norms, squared losses), and
  (1e100)^2 x 1e9 = 1e209 stays far below float64's 1.8e308. Declared bounds and beta are also at least
  :data:`MIN_MAGNITUDE` = 1 / MAX_MAGNITUDE, so recipes that divide by them (nu = c1 beta / (R_max ...))
  stay finite.
- :data:`MAX_LOG_WEIGHT` bounds R_max / beta, the largest log-weight r/beta of a tilt
  pi_ref exp(r/beta): log-space quantities (log Z, C_cov, exact laws) are differences of numbers of
  that size, and float64 resolves 1e9 to 1.2e-7, so they keep about 7 digits. Beyond it pi*_beta is a
  point mass to double precision.
- :data:`MAX_COUNT` bounds counts that size an allocation or a loop at once; :func:`check_memory`
  refuses an allocation larger than this machine's memory before it is made.
"""

from __future__ import annotations

import math
import os
from numbers import Integral, Real

import numpy as np

#: largest magnitude of a declared bound, a feature norm, a reward, a noise scale or beta (module docstring)
MAX_MAGNITUDE = 1e100
#: smallest declared bound or beta (module docstring)
MIN_MAGNITUDE = 1e-100
#: largest R_max / beta, the log-weight range of a tilt by r/beta (module docstring)
MAX_LOG_WEIGHT = 1e9
#: largest count of rounds, draws or items that a recipe or a parameter may ask for at once
MAX_COUNT = 10**9


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
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {_short(value)}")
    rng = _range_text(low, high, low_open, high_open)
    try:
        v = float(value)          # an int beyond float64's range (10**400) cannot be converted
    except OverflowError:
        raise ValueError(f"{name} must be {'in ' + rng if low is not None or high is not None else 'finite'}, "
                         f"got {_short(value)}") from None
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be finite, got {_short(value)}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be in {rng}, got {_short(value)}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be in {rng}, got {_short(value)}")
    return v


def check_int(name: str, value, *, low=None, high=None) -> int:
    """Validate an integer in [low, high]; return it as int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {_short(value)}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{name} must be in {_range_text(low, high, False, False)}, got {_short(value)}")
    return v


def check_count(name: str, value, *, low: int = 1, high: int = MAX_COUNT) -> int:
    """An integer count in [low, high] (default high :data:`MAX_COUNT`): something that sizes an allocation or
    a loop at once, so a typo like 2**62 is refused here rather than met as a MemoryError or a hang."""
    return check_int(name, value, low=low, high=high)


def check_recipe_size(name: str, recipe, formula: str, **inputs) -> float:
    """A size computed by a recipe, ``recipe()``, that fits: finite and at most :data:`MAX_COUNT`; else a
    ValueError naming the size, its formula and the inputs (float64 overflow or underflow in the arithmetic
    counts as too large). Called before anything of that size is drawn or allocated."""
    try:
        value = recipe()
    except (OverflowError, ZeroDivisionError):
        value = math.inf
    if not math.isfinite(value) or value > MAX_COUNT:
        given = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in inputs.items())
        raise ValueError(f"{name}: the recipe {formula} asks for {value:.3g} (> {MAX_COUNT:.0e}) with {given}; "
                         f"pass {name} explicitly or change these")
    return value


def check_bound(name: str, value, *, low=MIN_MAGNITUDE, low_open=False) -> float:
    """A finite magnitude in [:data:`MIN_MAGNITUDE`, :data:`MAX_MAGNITUDE`] (a declared bound, a scale, beta)."""
    return check_real(name, value, low=low, high=MAX_MAGNITUDE, low_open=low_open)


def memory_bytes() -> int:
    """This machine's physical memory in bytes (2^40 when the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 1 << 40


def check_memory(what: str, entries, itemsize: int = 8) -> None:
    """Refuse, before allocating, `entries` items of `itemsize` bytes that cannot fit in this machine's memory;
    the message names `what` (the arguments that set the size)."""
    need = float(entries) * itemsize
    have = memory_bytes()
    if not need <= have:
        raise ValueError(f"{what} asks for {_bytes(need)} of memory, more than this machine's {_bytes(have)}")


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_finite_array(name: str, arr, *, ndim=None, shape=None) -> np.ndarray:
    """Convert to a float array and reject NaN/inf and wrong shapes."""
    a = as_float_array(name, arr)
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


def as_float_array(name: str, arr) -> np.ndarray:
    """``np.asarray(arr, dtype=float)``, with numpy's conversion errors turned into one naming `name`."""
    if isinstance(arr, np.ndarray) and arr.dtype.kind == "f":
        return arr.astype(float, copy=False)
    try:
        return np.asarray(arr, dtype=float)
    except OverflowError:
        raise ValueError(f"{name} holds a number beyond float64's range") from None
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be an array of real numbers (a regular, non-ragged shape): {e}") from None


def check_magnitude(name: str, a: np.ndarray, *, axis=None, what: str = "entries") -> np.ndarray:
    """Refuse an array whose entries (``axis=None``) or row norms (``axis=-1``, what='row norms') exceed
    :data:`MAX_MAGNITUDE` (module docstring); return it."""
    if a.size:
        with np.errstate(over="ignore"):
            m = float(np.max(np.abs(a))) if axis is None else float(np.max(np.linalg.norm(a, axis=axis)))
        if not m <= MAX_MAGNITUDE:
            raise ValueError(f"{name}: {what} must be at most {MAX_MAGNITUDE:g} in magnitude, got {m:.4g} (squares "
                             "and sums of squares of larger values overflow float64; rescale them)")
    return a


def check_log_weight(beta: float, R: float, what: str = "R_max") -> None:
    """Refuse R / beta > :data:`MAX_LOG_WEIGHT`: a tilt pi_ref exp(r/beta) with log-weights that large is a
    point mass to double precision (module docstring). The message names beta and `what`."""
    if not R / beta <= MAX_LOG_WEIGHT:
        raise ValueError(f"beta = {beta:.4g} is too small for {what} = {R:.4g}: their ratio {R / beta:.4g} exceeds "
                         f"{MAX_LOG_WEIGHT:g}, beyond which log-weights r/beta lose double precision (log Z, C_cov and "
                         "exact laws go wrong); raise beta or rescale the rewards")


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


def _short(value, limit: int = 60) -> str:
    """repr(value), shortened (an int of 400 digits is not worth printing)."""
    r = repr(value)
    return r if len(r) <= limit else f"{r[:limit - 15]}...({len(r)} chars)"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def _range_text(low, high, low_open, high_open) -> str:
    lo = "-inf" if low is None else repr(low)
    hi = "inf" if high is None else repr(high)
    return f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
