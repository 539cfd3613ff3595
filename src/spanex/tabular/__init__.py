"""Exact tabular backend and the ``tabular_problem`` constructor."""

from __future__ import annotations

import numpy as np

from ..core.errors import check_choice
from ..core.feedback import BradleyTerry, NoisyReward
from ..core.problem import Problem
from .alias import AliasTable
from .instance import (InverseCDF, Support, TabularBase, TabularFeatures, TabularInstance, TabularMeanReward,
                       TabularPrompts, TabularResponses, TabularStrong)


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
    B, R_max : *declared* bounds (||theta|| <= B over the class, |r| <= R_max, R_max defaults to B L).
        At least one must be given: a user knows a bound, never theta* itself, so nothing is read off
        theta* or r*.
    feature_norm_bound : L >= ||phi||; default: the largest feature norm of the table (features are
        what a user has).
    """
    inst = TabularInstance(rho, ref_probs, features, theta_star=theta_star, rewards=rewards)
    beta = inst.check_beta(beta)                    # also max |r*| / beta <= MAX_LOG_WEIGHT
    check_choice("feedback", feedback, ("reward", "preference", "both"))
    mean = TabularMeanReward(inst)
    reward = preference = None
    if feedback != "preference":
        reward = NoisyReward(mean, noise=noise, sigma=sigma, low=low, high=high)
        reward.check_range(min(float(r.min()) for r in inst.rewards), max(float(r.max()) for r in inst.rewards))
        reward.check_log_weight(beta, inst.max_abs_reward)
    if feedback != "reward":
        preference = BradleyTerry(mean, temperature=bt_temperature)
    if B is None and R_max is None:
        raise ValueError("declare a reward bound: R_max (|r*| <= R_max) or B (||theta*|| <= B); spanex never "
                         "reads it off theta* or the rewards, which a user does not know")
    L = feature_norm_bound if feature_norm_bound is not None else max(
        float(np.max(np.linalg.norm(F, axis=1))) for F in inst.features) or 1.0
    if B is None:
        B = R_max / L
    return Problem(prompts=TabularPrompts(inst), base=TabularBase(inst), phi=TabularFeatures(inst), beta=beta,
                   reward=reward, preference=preference, B=B, feature_norm_bound=L, R_max=R_max, exact=inst,
                   strong=TabularStrong(inst, beta), response_set=TabularResponses(inst), name=name)


__all__ = ["TabularInstance", "tabular_problem", "AliasTable", "InverseCDF", "Support", "TabularResponses", "TabularBase", "TabularFeatures", "TabularPrompts",
           "TabularStrong", "TabularMeanReward"]
