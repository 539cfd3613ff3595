"""Random linear bandit instances (realizable, exact).

K prompts (rho uniform), N responses per prompt with random unit features phi(x, y) in R^d,
pi_ref(.|x) either uniform or Dirichlet(alpha) per prompt, and theta* = reward_scale * theta_norm * u
for a random unit u. Rewards r*(x, y) = <theta*, phi(x, y)>, observed with noise.

Coverage moves with the knobs: C_cov(pi*_beta) <= exp(range(r*)/beta) and range(r*) <= 2 *
reward_scale * theta_norm, so lowering beta or raising reward_scale raises C_cov exponentially.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import (MAX_MAGNITUDE, MIN_MAGNITUDE, as_generator, check_bound, check_choice, check_count,
                           check_log_weight, check_memory, check_real)
from ..core.problem import Problem
from ..tabular import tabular_problem


def linear_bandit(n_prompts: int = 4, n_responses: int = 200, d: int = 8, theta_norm: float = 1.0,
                  beta: float = 0.2, reward_scale: float = 1.0, noise: str = "gaussian", sigma: float = 0.1,
                  feedback: str = "both", ref: str = "dirichlet", ref_concentration: float = 1.0,
                  seed: int = 0) -> Problem:
    """A random realizable linear bandit; see the module docstring.

    Parameters
    ----------
    n_prompts, n_responses, d : sizes (K >= 1, N >= 2, d >= 1; the K x N x d table must fit in memory).
    theta_norm, reward_scale : ||theta*|| = theta_norm * reward_scale (> 0, product at most 1e100).
    beta : KL-regularization (> 0; see :class:`~spanex.core.Problem` for its range).
    noise, sigma : reward noise (see :mod:`spanex.core.feedback`).
    feedback : 'reward', 'preference' (Bradley–Terry) or 'both'.
    ref : 'dirichlet' (pi_ref ~ Dirichlet(ref_concentration) per prompt) or 'uniform'.
    seed : instance seed (the instance is a fixed function of it).
    """
    K = check_count("n_prompts", n_prompts)
    N = check_count("n_responses", n_responses, low=2)
    d = check_count("d", d)
    check_memory(f"n_prompts x n_responses x (d + 2) = {K} x {N} x {d + 2} table entries", K * N * (d + 2))
    theta_norm = check_bound("theta_norm", theta_norm)
    reward_scale = check_bound("reward_scale", reward_scale)
    check_real("theta_norm * reward_scale", theta_norm * reward_scale, low=MIN_MAGNITUDE, high=MAX_MAGNITUDE)
    beta = check_bound("beta", beta)
    check_log_weight(beta, theta_norm * reward_scale, "theta_norm * reward_scale (the reward bound)")
    check_choice("ref", ref, ("dirichlet", "uniform"))
    alpha = check_bound("ref_concentration", ref_concentration)
    rng = as_generator(seed)
    feats = []
    for _ in range(K):
        F = rng.standard_normal((N, d))
        feats.append(F / np.linalg.norm(F, axis=1, keepdims=True))
    u = rng.standard_normal(d)
    theta = reward_scale * theta_norm * u / np.linalg.norm(u)
    if ref == "uniform":
        refs = [np.full(N, 1.0 / N) for _ in range(K)]
    else:
        refs = [rng.dirichlet(np.full(N, alpha)) for _ in range(K)]
        refs = [np.maximum(p, 1e-300) / np.maximum(p, 1e-300).sum() for p in refs]  # keep full support
    p = tabular_problem(np.full(K, 1.0 / K), refs, feats, theta_star=theta, beta=beta, noise=noise, sigma=sigma,
                        feedback=feedback, B=reward_scale * theta_norm, feature_norm_bound=1.0,
                        name="linear_bandit")
    p.meta.update(dict(n_prompts=K, n_responses=N, d=d, theta_norm=theta_norm, reward_scale=reward_scale,
                       beta=beta, seed=seed, ref=ref))
    return p
