"""Elliptical norms, Sherman–Morrison updates and the elliptical-potential bound.

||v||_{Sigma^{-1}} = sqrt(v^T Sigma^{-1} v) measures how uncovered a direction v is by a design
Sigma = lam I + sum_i v_i v_i^T.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.errors import NumericalError, check_int, check_real


def sq_norms(V, Sigma_inv) -> np.ndarray:
    """Row-wise ||v||^2_{Sigma^{-1}} for the rows of V (shape (n, d))."""
    if type(V) is not np.ndarray or V.ndim != 2 or V.dtype != np.float64:
        V = np.atleast_2d(np.asarray(V, dtype=float))
    # (V Sigma^{-1}) . V row by row: one BLAS product, far faster than a three-operand einsum
    return np.einsum("ij,ij->i", V @ Sigma_inv, V)


#: a rank-one update with ||v||^2_{Sigma^{-1}} beyond 1/eps (4.5e15) cancels every digit of its result
SM_MAX_NORM = 1.0 / np.finfo(float).eps


def sherman_morrison(Sigma_inv, v) -> np.ndarray:
    """(Sigma + v v^T)^{-1} from Sigma^{-1}: Sigma^{-1} - (Sigma^{-1} v)(Sigma^{-1} v)^T / (1 + v^T Sigma^{-1} v).

    In the direction of v the result is a difference of two numbers about q = ||v||^2_{Sigma^{-1}} times
    larger than itself, so it keeps about log10(1/(q eps)) digits; beyond q = 1/eps it has none and
    NumericalError is raised (the design's lam is negligible next to the features' scale)."""
    v = np.asarray(v, dtype=float)
    u = Sigma_inv @ v
    q = v @ u
    if not q <= SM_MAX_NORM:
        raise NumericalError(f"the design update has no correct digits: ||v||^2_(Sigma^-1) = {q:.3g} exceeds 1/eps = "
                             f"{SM_MAX_NORM:.2g} (lam is negligible next to the features' scale; raise lam or rescale "
                             "the features)")
    w = u.reshape(-1)
    return Sigma_inv - (w[:, None] * w[None, :]) / (1.0 + q)           # np.outer(u, u), without its overhead


#: spanner_size_bound's answer when the bound is larger (a tiny nu or lam): no run accepts this many pairs
SPANNER_BOUND_MAX = 2**62


def spanner_size_bound(d: int, nu: float, lam: float, L: float) -> int:
    """Largest n allowed by the elliptical-potential argument (paper-notes §2.2).

    Each accepted pair has ||v||^2_{Sigma^{-1}} > nu^2, so it multiplies det Sigma by more than
    (1 + nu^2), while det Sigma <= (lam + n L^2 / d)^d for n pairs of norm <= L. Hence
    n log(1 + nu^2) < d log(1 + n L^2 / (d lam)). Returns the largest n satisfying that, or
    :data:`SPANNER_BOUND_MAX` when that n is at least as large (the bound is then vacuous).
    """
    d = check_int("d", d, low=1)
    nu = check_real("nu", nu, low=0, low_open=True)
    lam = check_real("lam", lam, low=0, low_open=True)
    L = check_real("L", L, low=0, low_open=True)
    c = math.log1p(nu * nu)

    def ok(n):
        x = n * L * L / (d * lam)
        if math.isinf(x):                                     # overflowed (L = 1e100, lam = 1e-300): log space
            log_x = math.log(n) + 2 * math.log(L) - math.log(d) - math.log(lam)
            return n * c < d * (log_x + math.log1p(math.exp(-log_x)))
        return n * c < d * math.log1p(x)

    if c == 0 or ok(SPANNER_BOUND_MAX):   # nu^2 underflows, or the bound exceeds any spanner a run could build
        return SPANNER_BOUND_MAX
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
