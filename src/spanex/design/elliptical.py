"""Elliptical norms, Sherman–Morrison updates and the elliptical-potential bound.

||v||_{Sigma^{-1}} = sqrt(v^T Sigma^{-1} v) measures how uncovered a direction v is by a design
Sigma = lam I + sum_i v_i v_i^T.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.errors import check_int, check_real


def sq_norms(V, Sigma_inv) -> np.ndarray:
    """Row-wise ||v||^2_{Sigma^{-1}} for the rows of V (shape (n, d))."""
    V = np.atleast_2d(np.asarray(V, dtype=float))
    # (V Sigma^{-1}) . V row by row: one BLAS product, far faster than a three-operand einsum
    return np.einsum("ij,ij->i", V @ Sigma_inv, V)


def sherman_morrison(Sigma_inv, v) -> np.ndarray:
    """(Sigma + v v^T)^{-1} from Sigma^{-1}: Sigma^{-1} - (Sigma^{-1} v)(Sigma^{-1} v)^T / (1 + v^T Sigma^{-1} v)."""
    v = np.asarray(v, dtype=float)
    u = Sigma_inv @ v
    return Sigma_inv - np.outer(u, u) / (1.0 + v @ u)


def spanner_size_bound(d: int, nu: float, lam: float, L: float) -> int:
    """Largest n allowed by the elliptical-potential argument (paper-notes §2.2).

    Each accepted pair has ||v||^2_{Sigma^{-1}} > nu^2, so it multiplies det Sigma by more than
    (1 + nu^2), while det Sigma <= (lam + n L^2 / d)^d for n pairs of norm <= L. Hence
    n log(1 + nu^2) < d log(1 + n L^2 / (d lam)). Returns the largest n satisfying that.
    """
    d = check_int("d", d, low=1)
    nu = check_real("nu", nu, low=0, low_open=True)
    lam = check_real("lam", lam, low=0, low_open=True)
    L = check_real("L", L, low=0, low_open=True)
    c = math.log1p(nu * nu)

    def ok(n):
        return n * c < d * math.log1p(n * L * L / (d * lam))

    hi = 1
    while ok(hi):
        hi *= 2
    lo = hi // 2  # ok(lo) holds (or lo == 0); ok(hi) fails; the set {n: ok(n)} is an interval from 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo
