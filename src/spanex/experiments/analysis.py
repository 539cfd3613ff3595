"""Analysis: log-log slopes with bootstrap intervals, and the rule that turns them into verdicts.

Slope. A theorem of the form ``T = Õ(K^a)`` predicts the slope ``a`` of ``log T`` against ``log K``.
:func:`fit_slope` fits ``log y = a log x + b`` by ordinary least squares on all runs, and gets a 95%
percentile interval for ``a`` by bootstrapping *replicates* (seeds): each bootstrap sample draws the
replicate ids with replacement and refits on all runs of the drawn replicates. Resampling whole
replicates keeps the dependence between the points of one replicate (they share an instance). With a
single replicate the runs themselves are resampled. The interval is the estimate ± Student-t
quantile × bootstrap sd, corrected for the small number of seeds (see :func:`_t_interval`).

Verdict rule (equivalence test, decided before looking at data). A prediction is a value ``p`` and a
tolerance ``tol`` fixed in the experiment's code with its justification (the Õ of the theorems hides
logarithmic factors, which bend a log-log line over a finite range). With the 95% interval [lo, hi]:

- **holds** iff [lo, hi] ⊂ [p − tol, p + tol]  (the data pin the slope inside the band),
- **does not hold** iff [lo, hi] ∩ [p − tol, p + tol] = ∅  (the data exclude the band),
- **inconclusive** otherwise (too few seeds or points to tell).

One-sided predictions (``y ≥ p`` or ``y ≤ p``, e.g. "no algorithm spends fewer than ~C_cov calls")
use the same logic with the half-line: holds iff the whole interval is on the predicted side, does
not hold iff the whole interval is on the other side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Verdict

N_BOOT = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class SlopeFit:
    slope: float
    intercept: float
    lo: float
    hi: float
    n_runs: int
    n_replicates: int
    n_x: int


def _ols(lx: np.ndarray, ly: np.ndarray) -> tuple[float, float]:
    xm = lx.mean()
    sxx = np.sum((lx - xm) ** 2)
    if sxx <= 0:
        return float("nan"), float("nan")
    a = float(np.sum((lx - xm) * (ly - ly.mean())) / sxx)
    return a, float(ly.mean() - a * xm)


def fit_slope(x, y, replicates=None, *, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> SlopeFit:
    """Log-log OLS slope of y on x with a bootstrap interval over replicates (see module docstring).

    Runs with non-positive or non-finite x or y are dropped (log undefined); at least two distinct
    x values must remain.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-d arrays of equal length, got shapes {x.shape} and {y.shape}")
    reps = np.zeros(x.size, dtype=int) if replicates is None else np.asarray(replicates)
    if reps.shape != x.shape:
        raise ValueError(f"replicates must have the shape of x {x.shape}, got {reps.shape}")
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y, reps = x[ok], y[ok], reps[ok]
    if np.unique(x).size < 2:
        raise ValueError(f"a slope needs at least two distinct positive x values, got {np.unique(x).size}")
    lx, ly = np.log(x), np.log(y)
    a, b = _ols(lx, ly)
    rng = np.random.default_rng(seed)
    ids = np.unique(reps)
    boots = np.empty(n_boot)
    if ids.size >= 2:
        members = [np.flatnonzero(reps == i) for i in ids]
        for k in range(n_boot):
            pick = rng.integers(0, ids.size, ids.size)
            idx = np.concatenate([members[j] for j in pick])
            boots[k] = _ols(lx[idx], ly[idx])[0]
    else:
        for k in range(n_boot):
            idx = rng.integers(0, lx.size, lx.size)
            boots[k] = _ols(lx[idx], ly[idx])[0]
    boots = boots[np.isfinite(boots)]
    lo, hi = _t_interval(a, boots, ids.size if ids.size >= 2 else lx.size, level)
    return SlopeFit(a, b, lo, hi, int(x.size), int(ids.size), int(np.unique(x).size))


def _t_interval(center: float, boots: np.ndarray, n_units: int, level: float) -> tuple[float, float]:
    """center ± t_{n-1} · sd_boot · sqrt(n/(n-1)).

    With few resampling units (3-10 seeds) the plain percentile bootstrap under-covers: the
    bootstrap variance is biased by (n-1)/n and the normal quantile ignores the uncertainty of the
    variance itself (a 95% percentile interval over 8 seeds covered a known slope in only ~88% of
    synthetic trials). Inflating the bootstrap sd by sqrt(n/(n-1)) and using Student's t with n-1
    degrees of freedom restores the nominal level (tested on synthetic data).
    """
    from scipy.stats import t as student_t

    if boots.size < 2 or n_units < 2:
        return float("nan"), float("nan")
    sd = float(np.std(boots, ddof=1)) * np.sqrt(n_units / (n_units - 1))
    half = float(student_t.ppf(0.5 + level / 2, n_units - 1)) * sd
    return center - half, center + half


def bootstrap_mean(values, replicates=None, *, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL,
                   stat=np.mean) -> tuple[float, float, float]:
    """A statistic of `values` with a 95% bootstrap interval over replicates: (estimate, lo, hi)."""
    v = np.asarray(values, dtype=float)
    reps = np.arange(v.size) if replicates is None else np.asarray(replicates)
    ids = np.unique(reps)
    members = [np.flatnonzero(reps == i) for i in ids]
    rng = np.random.default_rng(seed)
    est = float(stat(v))
    if ids.size < 2:
        return est, est, est
    boots = np.array([stat(v[np.concatenate([members[j] for j in rng.integers(0, ids.size, ids.size)])])
                      for _ in range(n_boot)])
    if np.ptp(boots) == 0:                      # e.g. every run succeeded: no spread to scale
        return est, est, est
    lo, hi = _t_interval(est, boots, ids.size, level)
    return est, max(lo, float(v.min())), min(hi, float(v.max()))   # a mean stays within the data's range


def decide(lo: float, hi: float, predicted: float, tolerance: float, side: str = "two-sided") -> str:
    """The verdict rule of the module docstring. side: 'two-sided', 'at least' or 'at most'."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    if side == "two-sided":
        a, b = predicted - tolerance, predicted + tolerance
        if a <= lo and hi <= b:
            return "holds"
        if hi < a or lo > b:
            return "does not hold"
        return "inconclusive"
    if side == "at least":  # claim: quantity >= predicted - tolerance
        bound = predicted - tolerance
        return "holds" if lo >= bound else ("does not hold" if hi < bound else "inconclusive")
    if side == "at most":  # claim: quantity <= predicted + tolerance
        bound = predicted + tolerance
        return "holds" if hi <= bound else ("does not hold" if lo > bound else "inconclusive")
    raise ValueError(f"side must be 'two-sided', 'at least' or 'at most', got {side!r}")


_RULES = {"two-sided": "95% CI inside predicted ± tol",
          "at least": "95% CI above predicted − tol",
          "at most": "95% CI below predicted + tol"}


def slope_verdict(experiment: str, claim: str, fit: SlopeFit, predicted: float, tolerance: float,
                  side: str = "two-sided", note: str = "") -> Verdict:
    return Verdict(experiment=experiment, claim=claim, measured=fit.slope, lo=fit.lo, hi=fit.hi,
                   predicted=predicted, tolerance=tolerance,
                   outcome=decide(fit.lo, fit.hi, predicted, tolerance, side),
                   rule=f"log-log slope; {_RULES[side]}", n_runs=fit.n_runs,
                   note=note or f"{fit.n_x} x-values, {fit.n_replicates} seeds")


def value_verdict(experiment: str, claim: str, measured: float, lo: float, hi: float, predicted: float,
                  tolerance: float, side: str, n_runs: int, note: str = "") -> Verdict:
    return Verdict(experiment=experiment, claim=claim, measured=measured, lo=lo, hi=hi, predicted=predicted,
                   tolerance=tolerance, outcome=decide(lo, hi, predicted, tolerance, side),
                   rule=_RULES[side], n_runs=n_runs, note=note)


def missing_verdict(experiment: str, claim: str, why: str) -> Verdict:
    """A prediction that could not be measured (e.g. too few finished runs)."""
    nan = float("nan")
    return Verdict(experiment=experiment, claim=claim, measured=nan, lo=nan, hi=nan, predicted=nan, tolerance=nan,
                   outcome="inconclusive", rule="not measured", n_runs=0, note=why)
