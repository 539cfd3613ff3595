"""Evaluating policies: exact on enumerable instances, Monte Carlo otherwise.

Exact: J_beta(pi), suboptimality J_beta(pi*) - J_beta(pi) = beta E_x KL(pi || pi*), E_x KL(pi || pi_ref).
Monte Carlo (no exact law): samples drawn from the policy are charged to the ledger under the
'eval' label, never to the algorithm's T_comp / T_data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .core.errors import as_generator, check_int
from .core.policy import Policy
from .core.problem import Problem


@dataclass
class Evaluation:
    J: float | None
    J_star: float | None
    suboptimality: float | None
    kl_ref: float | None
    mean_reward: float | None
    exact: bool
    n_samples: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def policy_probs(policy: Policy, problem: Problem) -> list[np.ndarray]:
    """The exact law of `policy` on every prompt of an exact instance."""
    ex = problem.exact
    return [np.asarray(policy.probs(x), dtype=float) for x in range(ex.n_prompts)]


def evaluate(policy: Policy, problem: Problem, *, n_mc: int = 2000, seed=0) -> Evaluation:
    """Evaluate a policy on a problem.

    Exact when the problem has an exact instance and the policy's ``probs`` succeeds. Otherwise, on an
    exact instance, the plug-in law of ``n_mc`` samples per prompt (biased for KL, flagged
    ``exact=False``); on other backends, the mean reward of ``n_mc`` samples (J left None).
    """
    ex = problem.exact
    beta = problem.beta
    probs = None
    if ex is not None and hasattr(ex, "suboptimality") and getattr(policy, "has_probs", False):
        try:
            probs = policy_probs(policy, problem)
        except (NotImplementedError, ValueError):  # e.g. a response set too large for the exact law
            probs = None
    if probs is not None:
        J = ex.J(probs, beta)
        mean_r = float(sum(ex.rho[x] * probs[x] @ ex.rewards[x] for x in range(ex.n_prompts)))
        return Evaluation(J=J, J_star=ex.J_star(beta), suboptimality=ex.suboptimality(probs, beta),
                          kl_ref=ex.kl_to_ref(probs), mean_reward=mean_r, exact=True)
    n_mc = check_int("n_mc", n_mc, low=1)
    rng = as_generator(seed)
    if policy.oracles is None:
        raise ValueError("policy is not bound to oracles; evaluate the policy of a Result or bind it first")
    sampler = _relabelled(policy, "eval")
    if ex is not None and hasattr(ex, "suboptimality"):
        probs = []
        for x in range(ex.n_prompts):
            ys = np.asarray(sampler.sample(x, n_mc, rng), dtype=int)
            probs.append(np.bincount(ys, minlength=ex.n_responses(x)) / n_mc)
        J = ex.J(probs, beta)
        mean_r = float(sum(ex.rho[x] * probs[x] @ ex.rewards[x] for x in range(ex.n_prompts)))
        return Evaluation(J=J, J_star=ex.J_star(beta), suboptimality=ex.suboptimality(probs, beta),
                          kl_ref=ex.kl_to_ref(probs), mean_reward=mean_r, exact=False, n_samples=n_mc * ex.n_prompts)
    oracles = policy.oracles.with_label("eval")
    xs = oracles.prompts(n_mc, rng)
    rewards = [float(oracles.reward(x, sampler.sample(x, 1, rng), rng)[0]) for x in xs]
    return Evaluation(J=None, J_star=None, suboptimality=None, kl_ref=None, mean_reward=float(np.mean(rewards)),
                      exact=False, n_samples=n_mc)


def _relabelled(policy: Policy, label: str) -> Policy:
    import copy

    p = copy.copy(policy)
    p.oracles = policy.oracles.with_label(label)
    return p


def coverage(problem: Problem) -> float:
    """C_cov(pi*_beta) = sup pi*_beta / pi_ref on an exact instance."""
    ex = problem.exact
    if ex is None or not hasattr(ex, "C_cov"):
        raise ValueError(f"coverage needs an exact instance; problem {problem.name!r} has none")
    return float(ex.C_cov(problem.beta))
