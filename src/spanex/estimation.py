"""Estimators on relative features v = phi(x, y1) - phi(x, y2).

- Squared loss (rewards): theta = argmin sum_i (<theta, v_i> - (r1_i - r2_i))^2 + lam ||theta||^2,
  i.e. ridge regression, kept incrementally by :class:`RidgeState` (Sherman–Morrison updates).
- Logistic loss (Bradley–Terry preferences b_i in {0, 1}, b = 1 when y1 is preferred):
  theta = argmin sum_i w_i [log(1 + e^{<theta, v_i>}) - b_i <theta, v_i>] + (lam/2) ||theta||^2,
  the regularized MLE of P(b = 1) = sigmoid(<theta, v>), solved by Newton's method with backtracking
  (the objective is strictly convex, so Newton converges to the unique minimizer).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .core.errors import check_finite_array, check_int, check_real
from .design.elliptical import sherman_morrison


def ridge_fit(V, targets, lam: float = 1.0) -> np.ndarray:
    """Ridge regression of targets on the rows of V."""
    V = check_finite_array("V", V, ndim=2)
    y = check_finite_array("targets", targets, ndim=1, shape=(V.shape[0],))
    lam = check_real("lam", lam, low=0, low_open=True)
    d = V.shape[1]
    return np.linalg.solve(lam * np.eye(d) + V.T @ V, V.T @ y)


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
        if V.shape[0] <= 4:
            for v in V:
                self.Sigma_inv = sherman_morrison(self.Sigma_inv, v)
        else:
            self.Sigma_inv = np.linalg.inv(self.Sigma)
        self.n += V.shape[0]

    @property
    def theta(self) -> np.ndarray:
        return self.Sigma_inv @ self.b


def logistic_loss(theta, V, labels, lam, weights=None) -> float:
    z = V @ theta
    w = np.ones_like(z) if weights is None else weights
    # log(1 + e^z) - b z, computed stably
    return float(np.sum(w * (np.logaddexp(0.0, z) - labels * z)) + 0.5 * lam * theta @ theta)


def logistic_fit(V, labels, lam: float = 1.0, theta0=None, weights=None, max_iter: int = 100,
                 tol: float = 1e-10) -> np.ndarray:
    """Regularized Bradley–Terry MLE on relative features by Newton's method (see module docstring)."""
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
    theta = np.zeros(d) if theta0 is None else check_finite_array("theta0", theta0, ndim=1, shape=(d,)).copy()
    f = logistic_loss(theta, V, b, lam, w)
    for _ in range(max_iter):
        p = expit(V @ theta)
        grad = V.T @ (w * (p - b)) + lam * theta
        H = (V * (w * p * (1 - p))[:, None]).T @ V + lam * np.eye(d)
        step = np.linalg.solve(H, grad)
        dec = float(grad @ step)  # Newton decrement^2
        if dec / 2 <= tol:
            break
        t = 1.0
        while True:  # backtracking (Armijo); terminates because the objective is convex and smooth
            cand = theta - t * step
            fc = logistic_loss(cand, V, b, lam, w)
            if fc <= f - 0.25 * t * dec or t < 1e-12:
                break
            t *= 0.5
        theta, f = cand, fc
    return theta


__all__ = ["ridge_fit", "RidgeState", "logistic_fit", "logistic_loss"]
