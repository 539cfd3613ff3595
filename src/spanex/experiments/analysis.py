"""Analysis: log-log slopes with bootstrap intervals (censoring allowed), and the rule that turns them
into verdicts with the reasoning behind each outcome.

Slope. A theorem of the form ``T = Õ(K^a)`` predicts the slope ``a`` of ``log T`` against ``log K``.
:func:`fit_slope` fits ``log y = a log x + b (+ b_r) + sigma e`` with Gaussian e:

- without censoring this is ordinary least squares;
- with **censored** runs (``y`` only known to exceed the recorded value: a budget ladder that never
  reached eps, a learning curve that never passed below eps) it is the censored-normal (Tobit)
  maximum-likelihood fit, computed by EM: each censored log y is replaced by its conditional mean
  ``mu + sigma lambda(alpha)`` above the bound (inverse Mills ratio ``lambda``), and the OLS and
  sigma updates are iterated to convergence. Dropping censored runs would bias the slope towards
  the easy runs; treating the bound as the value would bias it towards flat;
- with ``fixed_effects=True`` every replicate (seed) gets its own intercept ``b_r``, so the slope is
  estimated *within* seeds. Use it when the x values differ between seeds (e.g. an eps ladder cut at
  each seed's own spanner-only floor), where a common intercept would mix the between-seed spread
  of difficulty into the slope.

The 95% interval comes from bootstrapping *replicates* (each bootstrap sample draws the seeds with
replacement and refits on all their runs, keeping the dependence between the points of one seed,
which share an instance), as the estimate ± Student-t quantile × bootstrap sd corrected for the
small number of seeds (see :func:`_t_interval`).

Verdict rule (an equivalence test, decided before looking at data). A prediction is a value ``p``
and a tolerance ``tol`` fixed in the experiment's code with its justification. With the 95%
interval [lo, hi]:

- **holds** iff [lo, hi] ⊂ [p − tol, p + tol]  (the data pin the quantity inside the band),
- **does not hold** iff [lo, hi] ∩ [p − tol, p + tol] = ∅  (the data exclude the band),
- **inconclusive** otherwise (too few seeds or points to tell).

One-sided predictions (``y ≥ p − tol`` or ``y ≤ p + tol``) use the half-line. :func:`decide`
returns the outcome *and the sentence that explains it* ("the interval [0.91, 1.2] lies inside
[0.7, 1.3]"), which the report prints in its rule column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr

from .base import Verdict

N_BOOT = 2000
#: bootstrap resamples of a censored (Tobit) fit: each refit iterates EM, so fewer resamples
N_BOOT_CENSORED = 600
LEVEL = 0.95
#: EM stopping rule of the Tobit fit: change of the slope below this, or this many iterations
_EM_TOL, _EM_MAX_ITER = 1e-7, 2000


@dataclass(frozen=True)
class SlopeFit:
    slope: float
    intercept: float
    lo: float
    hi: float
    n_runs: int
    n_replicates: int
    n_x: int
    n_censored: int = 0
    sigma: float = float("nan")

    def describe(self) -> str:
        """'42 runs (3 censored), 7 x-values, 6 seeds'."""
        cens = f" ({self.n_censored} censored)" if self.n_censored else ""
        return f"{self.n_runs} runs{cens}, {self.n_x} x-values, {self.n_replicates} seeds"


def _group_means(v: np.ndarray, g: np.ndarray, n_groups: int) -> np.ndarray:
    return np.bincount(g, weights=v, minlength=n_groups) / np.maximum(np.bincount(g, minlength=n_groups), 1)


def _ols(lx: np.ndarray, z: np.ndarray, groups: np.ndarray | None) -> tuple[float, np.ndarray]:
    """Slope and per-run fitted intercepts of z on lx (common intercept, or one per group)."""
    if groups is None:
        xc, zc = lx - lx.mean(), z - z.mean()
    else:
        n_g = int(groups.max()) + 1
        xc = lx - _group_means(lx, groups, n_g)[groups]
        zc = z - _group_means(z, groups, n_g)[groups]
    sxx = float(np.sum(xc * xc))
    if sxx <= 0:
        return float("nan"), np.full(z.shape, np.nan)
    a = float(np.sum(xc * zc) / sxx)
    resid_mean = z - a * lx
    if groups is None:
        b = np.full(z.shape, resid_mean.mean())
    else:
        b = _group_means(resid_mean, groups, int(groups.max()) + 1)[groups]
    return a, b


def _tobit(lx: np.ndarray, lz: np.ndarray, cens: np.ndarray, groups: np.ndarray | None):
    """Right-censored normal regression by EM; returns (slope, per-run intercepts, sigma).

    lz[i] is the observed log y, or for a censored run its lower bound. E-step for a censored run
    with mean mu and bound c: alpha = (c - mu)/sigma, lambda = phi(alpha)/(1 - Phi(alpha));
    E[z | z > c] = mu + sigma lambda, Var[z | z > c] = sigma^2 (1 + alpha lambda - lambda^2).
    M-step: OLS on the imputed z, sigma^2 = mean((E z - mu)^2 + Var z).
    """
    a, b = _ols(lx, lz, groups)
    if not cens.any() or not np.isfinite(a):
        resid = lz - a * lx - b
        return a, b, float(np.sqrt(np.mean(resid ** 2))) if np.isfinite(a) else float("nan")
    sigma = max(float(np.std(lz[~cens] - a * lx[~cens] - b[~cens])), 1e-3)
    z = lz.copy()
    for _ in range(_EM_MAX_ITER):
        mu = a * lx + b
        alpha = (lz[cens] - mu[cens]) / sigma
        lam = np.exp(-0.5 * alpha ** 2 - 0.5 * np.log(2 * np.pi) - log_ndtr(-alpha))   # inverse Mills ratio
        z[cens] = mu[cens] + sigma * lam
        var = np.zeros_like(z)
        var[cens] = sigma ** 2 * np.clip(1 + alpha * lam - lam ** 2, 0.0, None)
        a_new, b = _ols(lx, z, groups)
        mu = a_new * lx + b
        sigma = max(float(np.sqrt(np.mean((z - mu) ** 2 + var))), 1e-6)
        done = abs(a_new - a) < _EM_TOL
        a = a_new
        if done:
            break
    return a, b, sigma


def fit_slope(x, y, replicates=None, *, censored=None, fixed_effects: bool = False, n_boot: int | None = None,
              seed: int = 0, level: float = LEVEL) -> SlopeFit:
    """Log-log slope of y on x with a bootstrap interval over replicates (see the module docstring).

    censored : boolean array, True where y is only a lower bound (right-censored).
    fixed_effects : one intercept per replicate (slope estimated within seeds).

    Runs with non-positive or non-finite x or y are dropped (log undefined). At least two distinct x
    values must remain among the uncensored runs, else the slope is not identified (ValueError).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-d arrays of equal length, got shapes {x.shape} and {y.shape}")
    reps = np.zeros(x.size, dtype=int) if replicates is None else np.asarray(replicates)
    if reps.shape != x.shape:
        raise ValueError(f"replicates must have the shape of x {x.shape}, got {reps.shape}")
    cens = np.zeros(x.size, dtype=bool) if censored is None else np.asarray(censored, dtype=bool)
    if cens.shape != x.shape:
        raise ValueError(f"censored must have the shape of x {x.shape}, got {cens.shape}")
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y, reps, cens = x[ok], y[ok], reps[ok], cens[ok]
    if np.unique(x).size < 2:
        raise ValueError(f"a slope needs at least two distinct positive x values, got {np.unique(x).size}")
    if np.unique(x[~cens]).size < 2:
        raise ValueError(f"a slope needs uncensored runs at two distinct x values, got {np.unique(x[~cens]).size} "
                         f"({int(cens.sum())} of {x.size} runs censored)")
    lx, ly = np.log(x), np.log(y)
    ids, inv = np.unique(reps, return_inverse=True)
    fe = fixed_effects and ids.size >= 2
    a, b, sigma = _tobit(lx, ly, cens, inv if fe else None)
    if n_boot is None:
        n_boot = N_BOOT_CENSORED if cens.any() else N_BOOT
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    if ids.size >= 2:
        members = [np.flatnonzero(inv == i) for i in range(ids.size)]
        for k in range(n_boot):
            pick = rng.integers(0, ids.size, ids.size)
            idx = np.concatenate([members[j] for j in pick])
            g = np.repeat(np.arange(ids.size), [members[j].size for j in pick]) if fe else None
            boots[k] = _boot_fit(lx[idx], ly[idx], cens[idx], g)
    else:
        for k in range(n_boot):
            idx = rng.integers(0, lx.size, lx.size)
            boots[k] = _boot_fit(lx[idx], ly[idx], cens[idx], None)
    boots = boots[np.isfinite(boots)]
    lo, hi = _t_interval(a, boots, ids.size if ids.size >= 2 else lx.size, level)
    return SlopeFit(a, float(np.mean(b)), lo, hi, int(x.size), int(ids.size), int(np.unique(x).size),
                    int(cens.sum()), sigma)


def _boot_fit(lx, ly, cens, groups) -> float:
    if np.unique(lx[~cens]).size < 2:           # this resample does not identify the slope
        return float("nan")
    return _tobit(lx, ly, cens, groups)[0]


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


# ---- the verdict rule ---------------------------------------------------------------------------------

SIDES = ("two-sided", "at least", "at most")


def decide(lo: float, hi: float, predicted: float, tolerance: float, side: str = "two-sided") -> str:
    """The verdict rule of the module docstring. side: 'two-sided', 'at least' or 'at most'."""
    return decide_why(lo, hi, predicted, tolerance, side)[0]


def decide_why(lo: float, hi: float, predicted: float, tolerance: float, side: str = "two-sided") -> tuple[str, str]:
    """(outcome, the sentence that explains it) for the interval [lo, hi]; see the module docstring."""
    if side not in SIDES:
        raise ValueError(f"side must be 'two-sided', 'at least' or 'at most', got {side!r}")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive", "no 95% interval (fewer than two seeds, or no spread)"
    ci = f"95% CI [{lo:.3g}, {hi:.3g}]"
    if side == "two-sided":
        a, b = predicted - tolerance, predicted + tolerance
        band = f"[{a:.3g}, {b:.3g}]"
        if a <= lo and hi <= b:
            return "holds", f"{ci} lies inside {band}"
        if hi < a:
            return "does not hold", f"{ci} lies entirely below {band}"
        if lo > b:
            return "does not hold", f"{ci} lies entirely above {band}"
        if lo < a and hi > b:
            return "inconclusive", f"{ci} is wider than {band} (more seeds needed)"
        edge = f"lower edge {a:.3g}" if lo < a else f"upper edge {b:.3g}"
        return "inconclusive", f"{ci} straddles the {edge} of {band}"
    if side == "at least":  # claim: quantity >= predicted - tolerance
        bound = predicted - tolerance
        if lo >= bound:
            return "holds", f"{ci} lies above {bound:.3g}"
        if hi < bound:
            return "does not hold", f"{ci} lies entirely below {bound:.3g}"
        return "inconclusive", f"{ci} contains {bound:.3g}"
    bound = predicted + tolerance  # 'at most': quantity <= predicted + tolerance
    if hi <= bound:
        return "holds", f"{ci} lies below {bound:.3g}"
    if lo > bound:
        return "does not hold", f"{ci} lies entirely above {bound:.3g}"
    return "inconclusive", f"{ci} contains {bound:.3g}"


def _failure(verdict: str, if_fails, measured: float, predicted: float) -> str:
    """The failure paragraph: '' unless the prediction does not hold; ``if_fails`` is a text, or a dict
    with the texts for a measurement 'above' and 'below' the prediction."""
    if verdict != "does not hold":
        return ""
    if isinstance(if_fails, dict):
        return if_fails["above" if measured > predicted else "below"]
    return if_fails


def slope_verdict(experiment: str, claim: str, fit: SlopeFit, predicted: float, tolerance: float,
                  side: str = "two-sided", note: str = "", *, kind: str = "theorem", outcome: bool = True,
                  oracle_hints: bool = False, if_fails="", basis: str = "log-log slope") -> Verdict:
    """A verdict on a fitted slope; ``if_fails`` is the failure paragraph (see :func:`_failure`)."""
    verdict, why = decide_why(fit.lo, fit.hi, predicted, tolerance, side)
    return Verdict(experiment=experiment, claim=claim, measured=fit.slope, lo=fit.lo, hi=fit.hi,
                   predicted=predicted, tolerance=tolerance, verdict=verdict, rule=f"{basis}: {why}",
                   n_runs=fit.n_runs, note=note or fit.describe(), kind=kind, outcome=outcome,
                   oracle_hints=oracle_hints, failure=_failure(verdict, if_fails, fit.slope, predicted))


def value_verdict(experiment: str, claim: str, measured: float, lo: float, hi: float, predicted: float,
                  tolerance: float, side: str, n_runs: int, note: str = "", *, kind: str = "theorem",
                  outcome: bool = True, oracle_hints: bool = False, if_fails="",
                  basis: str = "mean over runs") -> Verdict:
    verdict, why = decide_why(lo, hi, predicted, tolerance, side)
    return Verdict(experiment=experiment, claim=claim, measured=measured, lo=lo, hi=hi, predicted=predicted,
                   tolerance=tolerance, verdict=verdict, rule=f"{basis}: {why}", n_runs=n_runs, note=note,
                   kind=kind, outcome=outcome, oracle_hints=oracle_hints,
                   failure=_failure(verdict, if_fails, measured, predicted))


def missing_verdict(experiment: str, claim: str, why: str, *, kind: str = "theorem", outcome: bool = True,
                    oracle_hints: bool = False, n_runs: int = 0) -> Verdict:
    """A prediction that could not be measured (e.g. too few finished runs); always inconclusive."""
    nan = float("nan")
    return Verdict(experiment=experiment, claim=claim, measured=nan, lo=nan, hi=nan, predicted=nan, tolerance=nan,
                   verdict="inconclusive", rule=f"not measured: {why}", n_runs=n_runs, kind=kind, outcome=outcome,
                   oracle_hints=oracle_hints)


def local_slopes(x, y, replicates=None, censored=None) -> tuple[float, float]:
    """Slopes fitted on the lower and the upper half of the distinct x values (nan if a half has < 2).

    A failure paragraph uses them to tell curvature (lower-order terms bending one end: constants)
    from a slope that is off across the whole range (a wrong prediction or reconstruction).
    """
    x = np.asarray(x, dtype=float)
    xs = np.unique(x[np.isfinite(x) & (x > 0)])
    if xs.size < 3:
        return float("nan"), float("nan")
    mid = xs[(xs.size - 1) // 2]
    out = []
    for keep in (x <= mid, x >= mid):
        try:
            out.append(fit_slope(x[keep], np.asarray(y, float)[keep],
                                 None if replicates is None else np.asarray(replicates)[keep],
                                 censored=None if censored is None else np.asarray(censored)[keep], n_boot=2).slope)
        except ValueError:
            out.append(float("nan"))
    return out[0], out[1]


def slope_diagnosis(x, y, predicted: float, tolerance: float, replicates=None, censored=None) -> str:
    """One sentence for a failure paragraph: is the slope off everywhere, or only at one end?"""
    a1, a2 = local_slopes(x, y, replicates, censored)
    if not (np.isfinite(a1) and np.isfinite(a2)):
        return "Too few x values to tell curvature from a uniformly different slope."
    band = (predicted - tolerance, predicted + tolerance)
    inside = [band[0] <= a <= band[1] for a in (a1, a2)]
    head = f"The slope over the lower half of the x range is {a1:.3g} and over the upper half {a2:.3g}"
    if inside[1] and not inside[0]:
        return head + ": it reaches the band at large x, so lower-order terms bend the small-x end (constants)."
    if inside[0] and not inside[1]:
        return head + ": it leaves the band at large x (an effect that grows with x, not a constant)."
    if not any(inside) and (a1 - predicted) * (a2 - predicted) > 0:
        return head + ": off on the same side over the whole range (the prediction, or its reconstruction, is off)."
    return head + "."
