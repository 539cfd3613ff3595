"""Exact tabular backend and the ``tabular_problem`` constructor."""

from __future__ import annotations

import numpy as np

from ..core.errors import check_choice, check_real
from ..core.feedback import BradleyTerry, NoisyReward
from ..core.problem import Problem
from .instance import (TabularBase, TabularFeatures, TabularInstance, TabularMeanReward, TabularPrompts,
                       TabularStrong)


def tabular_problem(rho, ref_probs, features, theta_star=None, beta=1.0, *, rewards=None,
                    noise: str = "gaussian", sigma: float = 0.1, low: float = 0.0, high: float = 1.0,
                    feedback: str = "both", bt_temperature: float = 1.0, B: float | None = None,
                    feature_norm_bound: float | None = None, R_max: float | None = None,
                    name: str = "tabular") -> Problem:
    """Build an exact :class:`~spanex.core.Problem` from arrays.

    Parameters
    ----------
    rho : (K,) prompt probabilities.
    ref_probs : list of K arrays (ragged allowed): pi_ref(.|x) over responses 0..N_x-1.
    features : list of K arrays of shape (N_x, d): phi(x, y).
    theta_star : (d,) realizable reward parameter (or give ``rewards`` = list of r*(x, .) arrays).
    beta : KL-regularization, > 0.
    noise, sigma, low, high : reward noise model (see :mod:`spanex.core.feedback`).
    feedback : 'reward', 'preference' (Bradley-Terry) or 'both' (algorithms use the reward oracle
        when present; ``problem.with_feedback('preference')`` switches).
    B, feature_norm_bound, R_max : known bounds; defaults are read off the instance
        (B = ||theta*||, L = max ||phi||, R_max = B L).
    """
    inst = TabularInstance(rho, ref_probs, features, theta_star=theta_star, rewards=rewards)
    beta = check_real("beta", beta, low=0, low_open=True)
    check_choice("feedback", feedback, ("reward", "preference", "both"))
    mean = TabularMeanReward(inst)
    reward = NoisyReward(mean, noise=noise, sigma=sigma, low=low, high=high) if feedback != "preference" else None
    pref = BradleyTerry(mean, temperature=bt_temperature) if feedback != "reward" else None
    L = feature_norm_bound if feature_norm_bound is not None else max(
        float(np.max(np.linalg.norm(F, axis=1))) for F in inst.features) or 1.0
    if B is None:
        B = float(np.linalg.norm(inst.theta_star)) if inst.theta_star is not None else 1.0
        B = B if B > 0 else 1.0
    if R_max is None and inst.theta_star is None:
        R_max = max(float(np.max(np.abs(r))) for r in inst.rewards) or 1.0
    return Problem(prompts=TabularPrompts(inst), base=TabularBase(inst), phi=TabularFeatures(inst), beta=beta,
                   reward=reward, preference=pref, B=B, feature_norm_bound=L, R_max=R_max, exact=inst,
                   strong=TabularStrong(inst, beta), name=name)


__all__ = ["TabularInstance", "tabular_problem", "TabularBase", "TabularFeatures", "TabularPrompts",
           "TabularStrong", "TabularMeanReward"]
