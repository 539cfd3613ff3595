"""The needle-in-a-haystack instance behind the coverage lower bound (paper-notes §3.1).

One prompt; N responses with uniform pi_ref; nearly orthogonal unit features phi(y) in R^d (exactly
orthonormal when d >= N: the rows of a random orthogonal matrix); theta* = c * phi(y*) for a hidden
y*. The reward is c on y* and c <phi(y*), phi(y)> (small) elsewhere, so pi*_beta puts mass
≈ e^{c/beta} / (N - 1 + e^{c/beta}) on y* and C_cov ≈ min(e^{c/beta}, N). A learner must find y*,
which costs ≈ N / (hits per draw) ≈ C_cov sampling calls unless it queries rewards on ~|Y| responses.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import as_generator, check_bound, check_count, check_log_weight, check_memory
from ..core.problem import Problem
from ..tabular import tabular_problem


def needle(N: int = 256, c: float = 1.0, beta: float = 0.1, d: int | None = None, seed: int = 0,
           noise: str = "gaussian", sigma: float = 0.1, feedback: str = "both") -> Problem:
    """The needle instance; see the module docstring.

    Parameters
    ----------
    N : number of responses (>= 2; N x d features must fit in memory).
    c : reward of the needle, in (0, 1e100]; C_cov ≈ min(e^{c/beta}, N).
    beta : KL-regularization (> 0).
    d : feature dimension (>= 2); default min(N, 256). d >= N gives exactly orthonormal features,
        smaller d random nearly orthogonal ones (|<phi_i, phi_j>| ≈ sqrt(2 log N / d)).
    """
    N = check_count("N", N, low=2)
    c = check_bound("c", c)
    beta = check_bound("beta", beta)
    check_log_weight(beta, c, "c (the needle's reward)")
    d = min(N, 256) if d is None else check_count("d", d, low=2)
    check_memory(f"N x d + d^2 = {N} x {d} + {d}^2 feature entries", N * d + d * d)
    rng = as_generator(seed)
    if d >= N:
        Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        F = Q[:N]                                   # N orthonormal rows in R^d
    else:
        F = rng.choice([-1.0, 1.0], size=(N, d)) / np.sqrt(d)
    y_star = int(rng.integers(N))
    theta = c * F[y_star]
    p = tabular_problem([1.0], [np.full(N, 1.0 / N)], [F], theta_star=theta, beta=beta, noise=noise, sigma=sigma,
                        feedback=feedback, B=c, feature_norm_bound=1.0, name="needle")
    p.meta.update(dict(N=N, c=c, beta=beta, d=d, seed=seed, y_star=y_star))
    return p
