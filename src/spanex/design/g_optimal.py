"""G-optimal experimental design by Frank–Wolfe (Kiefer–Wolfowitz; Lattimore & Szepesvári, ch. 21).

Given points v_1..v_n in R^d (rows of V), a design is a distribution w on the points with
information matrix A(w) = sum_i w_i v_i v_i^T. The G-criterion is the worst predicted variance

    g(w) = max_i ||v_i||^2_{A(w)^{-1}},

and the Kiefer–Wolfowitz theorem says min_w g(w) = r (the rank of V), attained by the D-optimal
design (the maximizer of log det A(w)). Least squares on ceil-rounded allocations of a design with
g(w) <= (1 + tol) r then predicts every <theta, v_i> with variance <= (1 + tol) r / T for T samples:
uniform accuracy over all points, with no dependence on n.

Algorithm (Fedorov–Wynn / Frank–Wolfe on log det, with exact line search)::

    project V onto its row space (rank r), so A(w) is invertible on it
    w = uniform over the points
    repeat:
        g_i = ||v_i||^2_{A^{-1}} for all i ;  j = argmax_i g_i
        if g_j <= (1 + tol) r: stop
        gamma = (g_j / r - 1) / (g_j - 1)                          (exact line search on log det;
                                                                    gamma = 1 only when r = 1: w = e_j is optimal)
        w = (1 - gamma) w + gamma e_j ;  A = (1 - gamma) A + gamma v_j v_j^T
        A^{-1} and all g_i updated in O(n r) by Sherman–Morrison

Cost: O(n r) per iteration, O(r log log n + r / tol) iterations (Kiefer–Wolfowitz / Todd).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import NumericalError, check_finite_array, check_int, check_real
from ..core.ledger import checkpoint
from .elliptical import sq_norms


@dataclass
class GOptimalDesign:
    """A design over the rows of V.

    weights : (n,) design weights (sum 1).
    max_variance : g(w) = max_i ||v_i||^2_{A(w)^{-1}} (on the row space of V).
    rank : r, the Kiefer–Wolfowitz optimum of g.
    iterations, converged : Frank–Wolfe iterations and whether g(w) <= (1 + tol) r was reached.
    """

    weights: np.ndarray
    max_variance: float
    rank: int
    iterations: int
    converged: bool

    @property
    def support(self) -> np.ndarray:
        return np.flatnonzero(self.weights > 0)


def g_optimal_design(V, tol: float = 0.05, max_iter: int = 10000, rank_tol: float = 1e-10) -> GOptimalDesign:
    """Frank–Wolfe G-optimal design over the rows of V; see the module docstring.

    Parameters
    ----------
    V : (n, d) points (n >= 1, not all zero).
    tol : stop when g(w) <= (1 + tol) * rank (> 0).
    max_iter : Frank–Wolfe iteration cap (>= 1); ``converged`` says whether it sufficed.
    rank_tol : relative eigenvalue threshold defining the row space.
    """
    V = check_finite_array("V", V, ndim=2)
    if V.shape[0] < 1:
        raise ValueError("V must have at least one row")
    tol = check_real("tol", tol, low=0, low_open=True)
    max_iter = check_int("max_iter", max_iter, low=1)
    rank_tol = check_real("rank_tol", rank_tol, low=0, low_open=True)
    n = V.shape[0]
    # project onto the row space: U = V P with P the eigenvectors of V^T V above the threshold
    evals, evecs = np.linalg.eigh(V.T @ V)
    if evals.max(initial=0.0) <= 0:
        raise ValueError("V must have a non-zero row (the design needs at least one direction)")
    keep = evals > rank_tol * evals.max()
    U = V @ evecs[:, keep]
    r = int(keep.sum())
    w = np.full(n, 1.0 / n)                                   # uniform start (full rank on the row space)
    A = (U * w[:, None]).T @ U
    A_inv = _inv(A)
    g = sq_norms(U, A_inv)                                    # g_i = ||u_i||^2_{A^{-1}}
    it, converged = 0, False
    for it in range(1, max_iter + 1):
        checkpoint()                                          # a run's max_seconds bounds the iterations too
        j = int(np.argmax(g))
        gj = float(g[j])
        if gj <= (1 + tol) * r:
            converged = True
            it -= 1
            break
        gamma = (gj / r - 1.0) / (gj - 1.0)                   # exact line search (gj > r >= 1)
        if gamma >= 1.0:        # r = 1: all weight on the longest point, where g_i = u_i^2 / u_j^2 <= 1 = r
            w[:] = 0.0
            w[j] = 1.0
            converged = True
            break
        w *= 1 - gamma
        w[j] += gamma
        # A' = (1-gamma)(A + c u u^T), c = gamma/(1-gamma); Sherman–Morrison on A + c u u^T
        c = gamma / (1 - gamma)
        Au = A_inv @ U[j]
        A_inv = (A_inv - c * np.outer(Au, Au) / (1 + c * gj)) / (1 - gamma)
        s = U @ Au                                            # u_i^T A^{-1} u_j
        g = (g - c * s ** 2 / (1 + c * gj)) / (1 - gamma)
    else:
        g = sq_norms(U, A_inv)
        converged = bool(g.max() <= (1 + tol) * r)
    # refresh g exactly (the incremental updates accumulate round-off)
    A = (U * w[:, None]).T @ U
    g = sq_norms(U, _inv(A))
    return GOptimalDesign(weights=w, max_variance=float(g.max()), rank=r, iterations=it, converged=converged)


def _inv(A) -> np.ndarray:
    try:
        return np.linalg.inv(A)
    except np.linalg.LinAlgError:
        raise NumericalError("the design's information matrix is singular in double precision (the points' scales "
                             "differ too much; raise rank_tol or rescale the features)") from None


def round_design(weights, T: int) -> np.ndarray:
    """Integer allocation of T samples to the points: floor(T w_i), then the remaining samples to the
    largest remainders (Hamilton's apportionment; ties to the lower index). Sums to exactly T."""
    w = check_finite_array("weights", weights, ndim=1)
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative with a positive sum")
    T = check_int("T", T, low=0)
    w = w / w.sum()
    base = np.floor(T * w).astype(np.int64)
    rest = T - int(base.sum())
    if rest > 0:
        frac = T * w - base
        order = np.argsort(-frac, kind="stable")
        base[order[:rest]] += 1
    return base


__all__ = ["GOptimalDesign", "g_optimal_design", "round_design"]
