"""Estimators on relative features v = phi(x, y1) - phi(x, y2).

- Squared loss (rewards): theta = argmin sum_i (<theta, v_i> - (r1_i - r2_i))^2 + lam ||theta||^2,
  i.e. ridge regression, kept incrementally by :class:`RidgeState` (Sherman–Morrison updates).
- Logistic loss (Bradley–Terry preferences b_i in {0, 1}, b = 1 when y1 is preferred):
  theta = argmin sum_i w_i [log(1 + e^{<theta, v_i>}) - b_i <theta, v_i>] + (lam/2) ||theta||^2,
  the regularized MLE of P(b = 1) = sigmoid(<theta, v>), solved by Newton's method with backtracking
  (the objective is strictly convex, so Newton converges to the unique minimizer).

Both one-shot solvers take an optional extra linear term <g, theta> (XPO's linearized exploration
bonus): :func:`ridge_fit` solves (1/2) sum (<theta, v> - t)^2 + <g, theta> + (lam/2)||theta||^2 in
closed form, :func:`logistic_fit` adds <g, theta> to the logistic objective; the objectives stay
strictly convex, so the minimizers stay unique.

:class:`PairwiseFit` is the one estimator the algorithms keep while data arrives: ridge (incremental)
or Bradley–Terry (Newton, warm started, refit when the data has grown by ``refit_factor``), exactly
or by ``sgd_steps`` gradient steps per update, optionally projected onto ||theta|| <= radius.

Degenerate data. The ridge term keeps every system invertible in exact arithmetic; in float64 it does
only while lam is not negligible next to the data's scale ||V||^2. A solve that fails there, or a fit
that comes out non-finite (a tiny lam, a huge SGD step), raises
:class:`~spanex.core.errors.NumericalError` naming lam (a run then ends with status 'numerical_error');
the fit is never silently regularized more than asked.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .core.errors import MAX_MAGNITUDE, NumericalError, check_choice, check_finite_array, check_int, check_real
from .core.ledger import checkpoint
from .design.elliptical import sherman_morrison


LOSSES = ("squared", "logistic")
SOLVERS = ("exact", "sgd")
#: the loss that fits each kind of pair feedback (r1 - r2 targets, or Bradley–Terry labels b)
FEEDBACK_LOSS = {"reward": "squared", "preference": "logistic"}

#: RidgeState: up to this many new rows, rank-one Sherman–Morrison updates (O(d^2) each) are cheaper
#: than a fresh O(d^3) inverse; beyond it one inverse is cheaper and accumulates no round-off
SHERMAN_MORRISON_MAX_ROWS = 4
#: Newton's backtracking (Armijo) accepts a step s when the loss drops by ARMIJO * s * (Newton decrement^2)
ARMIJO = 0.25
#: smallest backtracking step; below it the step is taken anyway (the loss is then flat to round-off)
MIN_STEP = 1e-12


def ridge_fit(V, targets, lam: float = 1.0, g=None) -> np.ndarray:
    """Ridge regression of targets on the rows of V: (V^T V + lam I)^{-1} (V^T t - g).

    With ``g`` (default 0) it minimizes (1/2) sum (<theta, v_i> - t_i)^2 + <g, theta> + (lam/2)||theta||^2.
    """
    V = check_finite_array("V", V, ndim=2)
    y = check_finite_array("targets", targets, ndim=1, shape=(V.shape[0],))
    lam = check_real("lam", lam, low=0, low_open=True)
    d = V.shape[1]
    rhs = V.T @ y
    if g is not None:
        rhs = rhs - check_finite_array("g", g, ndim=1, shape=(d,))
    return ridge_solve(lam * np.eye(d) + V.T @ V, rhs, lam, float(np.sum(np.square(V))), "the ridge fit")


#: condition numbers beyond 1/eps (4.5e15) leave a linear solve with no correct digit
MAX_CONDITION = 1.0 / np.finfo(float).eps


def ridge_solve(A, b, lam: float, scale: float, what: str = "the ridge system") -> np.ndarray:
    """np.linalg.solve(A, b) for A = lam I + (a PSD matrix of trace <= scale); NumericalError when A is singular
    in double precision or the solution is non-finite. cond(A) <= (lam + scale) / lam, so the condition number
    is computed only when that bound exceeds MAX_CONDITION (the features' scale dwarfs lam)."""
    x = None
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            if (lam + scale) / lam <= MAX_CONDITION or np.linalg.cond(A) <= MAX_CONDITION:
                x = np.linalg.solve(A, b)
        except np.linalg.LinAlgError:
            pass
    return _finite(x, lam, scale, what)


def _finite(theta, lam: float, scale: float, what: str) -> np.ndarray:
    """theta, or NumericalError when it is missing (a singular system), non-finite or beyond MAX_MAGNITUDE."""
    if theta is None or not np.all(np.abs(theta) <= MAX_MAGNITUDE):
        state = ("singular" if theta is None else "non-finite" if not np.all(np.isfinite(theta))
                 else f"beyond {MAX_MAGNITUDE:g}")
        raise NumericalError(f"{what} is {state} in double precision: "
                             f"lam = {lam:.3g} is negligible next to the data's scale sum ||v||^2 = {scale:.3g}; "
                             "raise lam or rescale the features")
    return theta


class RidgeState:
    """Incremental ridge regression: Sigma = lam I + sum v v^T, b = sum v y, theta = Sigma^{-1} b."""

    def __init__(self, d: int, lam: float = 1.0):
        self.d = check_int("d", d, low=1)
        self.lam = check_real("lam", lam, low=0, low_open=True)
        self.Sigma = self.lam * np.eye(self.d)
        self.Sigma_inv = np.eye(self.d) / self.lam
        self.b = np.zeros(self.d)
        self.n = 0

    def add(self, V, targets) -> None:
        V = np.atleast_2d(np.asarray(V, dtype=float))
        y = np.atleast_1d(np.asarray(targets, dtype=float))
        if V.shape != (y.size, self.d):
            raise ValueError(f"V must have shape ({y.size}, {self.d}), got {V.shape}")
        if not (np.all(np.isfinite(V)) and np.all(np.isfinite(y))):
            raise ValueError("V and targets must be finite")
        self.Sigma += V.T @ V
        self.b += V.T @ y
        if V.shape[0] <= SHERMAN_MORRISON_MAX_ROWS:
            for v in V:
                self.Sigma_inv = sherman_morrison(self.Sigma_inv, v)
        else:
            self.Sigma_inv = ridge_solve(self.Sigma, np.eye(self.d), self.lam, float(np.trace(self.Sigma)) - self.d * self.lam,
                                    "the ridge design")
        self.n += V.shape[0]

    @property
    def theta(self) -> np.ndarray:
        return self.Sigma_inv @ self.b


def logistic_loss(theta, V, labels, lam, weights=None, g=None) -> float:
    """sum_i w_i [log(1 + e^{z_i}) - b_i z_i] (+ <g, theta>) + (lam/2)||theta||^2, z = V theta."""
    z = V @ theta
    w = np.ones_like(z) if weights is None else weights
    # log(1 + e^z) - b z, computed stably
    loss = np.sum(w * (np.logaddexp(0.0, z) - labels * z))
    if g is not None:
        loss = loss + g @ theta
    return float(loss + 0.5 * lam * theta @ theta)


def logistic_fit(V, labels, lam: float = 1.0, theta0=None, weights=None, max_iter: int = 100,
                 tol: float = 1e-10, g=None) -> np.ndarray:
    """Regularized Bradley–Terry MLE on relative features by Newton's method (see module docstring);
    with ``g``, the minimizer of the logistic objective plus <g, theta>."""
    V = check_finite_array("V", V, ndim=2)
    b = check_finite_array("labels", labels, ndim=1, shape=(V.shape[0],))
    if np.any((b < 0) | (b > 1)):
        raise ValueError("labels must lie in [0, 1] (1 = y1 preferred)")
    lam = check_real("lam", lam, low=0, low_open=True)
    w = np.ones(V.shape[0]) if weights is None else check_finite_array("weights", weights, ndim=1,
                                                                       shape=(V.shape[0],))
    if np.any(w < 0):
        raise ValueError("weights must be non-negative")
    d = V.shape[1]
    if g is not None:
        g = check_finite_array("g", g, ndim=1, shape=(d,))
    theta = np.zeros(d) if theta0 is None else check_finite_array("theta0", theta0, ndim=1, shape=(d,)).copy()
    f = logistic_loss(theta, V, b, lam, w, g)
    scale = float(np.sum(w * np.sum(np.square(V), axis=1))) / 4       # trace of V^T W V bound: p(1-p) <= 1/4
    for _ in range(max_iter):
        checkpoint()                                  # a run's max_seconds bounds the solver too
        p = expit(V @ theta)
        grad = V.T @ (w * (p - b))
        if g is not None:
            grad = grad + g
        grad = grad + lam * theta
        H = (V * (w * p * (1 - p))[:, None]).T @ V + lam * np.eye(d)
        step = ridge_solve(H, grad, lam, scale, "Newton's step of the logistic fit")
        dec = float(grad @ step)  # Newton decrement^2
        if dec / 2 <= tol:
            break
        t = 1.0
        while True:  # backtracking (Armijo); terminates because the objective is convex and smooth
            cand = theta - t * step
            fc = logistic_loss(cand, V, b, lam, w, g)
            if fc <= f - ARMIJO * t * dec or t < MIN_STEP:
                break
            t *= 0.5
        theta, f = cand, fc
    return _finite(theta, lam, scale, "the logistic fit")


class PairwiseFit:
    """theta from relative features as pairs arrive: ridge on r1 - r2 (``loss='squared'``) or the
    Bradley–Terry MLE on labels b (``loss='logistic'``).

    Parameters
    ----------
    d : dimension (>= 1).
    lam : ridge (> 0).
    loss : 'squared' or 'logistic' (:data:`FEEDBACK_LOSS` maps a feedback kind to its loss).
    solver : 'exact' (default) returns the exact regularized minimizer: incremental ridge, or Newton
        warm started from the previous fit. 'sgd' instead takes ``sgd_steps`` full-gradient steps of
        size ``lr`` on the same regularized loss (averaged over the data) at each update.
    refit_factor : with the exact logistic solver, refit only when the data has grown by this factor
        (>= 1) since the last fit; 1 refits at every update. Refitting at geometrically growing sizes keeps
        the total Newton work linear in the data instead of quadratic; theta lags the data by less than
        that factor.
    radius : project theta onto ||theta|| <= radius on output (None: no projection).
    """

    def __init__(self, d: int, lam: float, loss: str, *, solver: str = "exact", lr: float = 0.5, sgd_steps: int = 1,
                 refit_factor: float = 1.0, radius: float | None = None):
        self.d = check_int("d", d, low=1)
        self.lam = check_real("lam", lam, low=0, low_open=True)
        self.loss = check_choice("loss", loss, LOSSES)
        self.solver = check_choice("solver", solver, SOLVERS)
        self.lr = check_real("lr", lr, low=0, low_open=True)
        self.sgd_steps = check_int("sgd_steps", sgd_steps, low=1)
        self.refit_factor = check_real("refit_factor", refit_factor, low=1)
        self.radius = None if radius is None else check_real("radius", radius, low=0, low_open=True)
        self.ridge = RidgeState(d, lam) if (loss == "squared" and solver == "exact") else None
        self.V, self.t = np.zeros((0, d)), np.zeros(0)       # the data (kept unless incremental ridge)
        self._theta = np.zeros(d)                            # the last fit, before projection
        self._n = self._fit_n = 0

    @property
    def n(self) -> int:
        """Pairs added so far."""
        return self._n

    def add(self, V, targets) -> np.ndarray:
        """Add pairs (rows of V with their targets) and update the fit; returns theta."""
        V = np.atleast_2d(np.asarray(V, dtype=float))
        targets = np.atleast_1d(np.asarray(targets, dtype=float))
        if V.shape[0] == 0:
            return self.theta
        if self.ridge is not None:
            self.ridge.add(V, targets)
            self._n += V.shape[0]
            self._theta = _finite(self.ridge.theta, self.lam, float(np.sum(np.square(V))), "the ridge fit")   # (lam I + V^T V)^{-1} V^T (r1 - r2)
            return self.theta
        if V.shape != (targets.size, self.d):
            raise ValueError(f"V must have shape ({targets.size}, {self.d}), got {V.shape}")
        self.V = np.vstack([self.V, V])
        self.t = np.concatenate([self.t, targets])
        self._n += V.shape[0]
        if self.solver == "exact":
            if self._fit_n == 0 or self._n >= self.refit_factor * self._fit_n:
                self._theta = logistic_fit(self.V, self.t, self.lam, theta0=self._theta)   # Newton, warm start
                self._fit_n = self._n
            return self.theta
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(self.sgd_steps):                  # gradient steps on the mean loss
                checkpoint()
                z = self.V @ self._theta
                resid = (z - self.t) if self.loss == "squared" else (expit(z) - self.t)
                grad = self.V.T @ resid / self._n + self.lam * self._theta / self._n
                self._theta = self._theta - self.lr * grad
        if not np.all(np.abs(self._theta) <= MAX_MAGNITUDE):
            raise NumericalError(f"SGD diverged (|theta| beyond {MAX_MAGNITUDE:g}): lr = {self.lr:.3g} is too large for "
                                 "the data's scale; lower lr or use solver='exact'")
        return self.theta

    @property
    def theta(self) -> np.ndarray:
        """The current estimate (a copy), projected onto the ball when ``radius`` is set."""
        th = self._theta.copy()
        if self.radius is not None:
            nrm = np.linalg.norm(th)
            if nrm > self.radius:
                th = th * (self.radius / nrm)
        return th


__all__ = ["ridge_fit", "ridge_solve", "RidgeState", "logistic_fit", "logistic_loss", "PairwiseFit", "LOSSES", "SOLVERS",
           "FEEDBACK_LOSS"]
