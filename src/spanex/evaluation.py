"""Evaluating policies: the law a policy *emits*, exactly where it can be computed, sampled otherwise.

What is evaluated is what ``policy.sample()`` returns: ``policy.probs(x)`` is the exact law of the
policy's next draw, with its sampler's clipping, fallbacks and calibration included (a self-calibrating
sampler may first calibrate, exactly as its next draw would; those draws are charged under 'eval').

- ``method='exact'``: J_beta(pi), suboptimality J_beta(pi*) - J_beta(pi) = beta E_x KL(pi || pi*),
  E_x KL(pi || pi_ref) from that law.
- ``method='monte_carlo'`` (an exact instance, but a law with no closed form, e.g. the paper-mode
  sampler with its random Zhat_M): the plug-in law of ``n_mc`` real draws per prompt (label 'eval');
  the KL of an empirical law is biased, so compare such numbers with care.
- ``method='monte_carlo_reward'`` (no exact instance): the mean reward of ``n_mc`` real draws.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .core.errors import NumericalError, as_generator, check_int
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
    method: str = "exact"

    def to_dict(self) -> dict:
        return asdict(self)


def policy_probs(policy: Policy, problem: Problem) -> list[np.ndarray]:
    """The exact law of what `policy` emits on every prompt of an exact instance."""
    ex = problem.exact
    out = []
    for x in range(ex.n_prompts):
        p = np.asarray(policy.probs(x), dtype=float)
        if not np.all(np.isfinite(p)) or abs(p.sum() - 1.0) > 1e-6:
            raise NumericalError(f"the law of {type(policy).__name__} at prompt {x} is not a distribution (sum "
                                 f"{float(p.sum())!r}, {int(np.sum(~np.isfinite(p)))} non-finite entries)"
                                 + _log_weight_note(policy, ex, x, problem.beta))
        out.append(p)
    return out


def _log_weight_note(policy: Policy, ex, x, beta: float) -> str:
    """Why a law may fail to normalize: the policy's log-weights <theta, phi>/beta, when it has a theta."""
    theta = getattr(policy, "thetas", getattr(policy, "theta", None))
    try:
        F = ex.support(x).phi
        th = np.atleast_2d(np.asarray(theta, dtype=float))
        with np.errstate(over="ignore", invalid="ignore"):
            s = float(np.max(np.abs(F @ th.T))) / beta
    except (AttributeError, TypeError, ValueError, NotImplementedError):   # no theta, or not on these features
        return ""
    return (f": its log-weights <theta, phi>/beta reach {s:.3g}, where float64 resolves only {np.spacing(s):.2g}, "
            f"too coarse to normalize a law (beta = {beta:.4g} is small next to the fitted theta)")


def evaluate(policy: Policy, problem: Problem, *, n_mc: int = 2000, seed=0) -> Evaluation:
    """Evaluate a policy on a problem.

    Exact when the problem has an exact instance and the policy's ``probs`` succeeds. Otherwise, on an
    exact instance, the plug-in law of ``n_mc`` samples per prompt (biased for KL, flagged
    ``exact=False``); on other backends, the mean reward of ``n_mc`` samples (J left None).
    """
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a spanex Policy, got {type(policy).__name__}")
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a spanex Problem, got {type(problem).__name__}")
    n_mc = check_int("n_mc", n_mc, low=1, high=10**8)
    rng = as_generator(seed)
    if policy.oracles is None:
        raise ValueError("policy is not bound to oracles; evaluate the policy of a Result or bind it first")
    ex = problem.exact
    beta = problem.beta
    probs = None
    sampler = _relabelled(policy, "eval")
    sampler.law_rng = rng
    if ex is not None and hasattr(ex, "suboptimality") and getattr(policy, "has_probs", False):
        if getattr(sampler, "_exact", None) is None:
            sampler.attach_exact(ex)
        try:
            probs = policy_probs(sampler, problem)
        except NotImplementedError:  # ExactLawUnavailable: a random Zhat_M, a set too large to enumerate
            probs = None
    if probs is not None:
        J = ex.J(probs, beta)
        mean_r = float(sum(ex.rho[x] * probs[x] @ ex.rewards[x] for x in range(ex.n_prompts)))
        return _checked(Evaluation(J=J, J_star=ex.J_star(beta), suboptimality=ex.suboptimality(probs, beta),
                                   kl_ref=ex.kl_to_ref(probs), mean_reward=mean_r, exact=True, method="exact"))
    if ex is not None and hasattr(ex, "suboptimality"):
        probs = []
        for x in range(ex.n_prompts):
            ys = np.asarray(sampler.sample(x, n_mc, rng), dtype=int)
            probs.append(np.bincount(ys, minlength=ex.n_responses(x)) / n_mc)
        J = ex.J(probs, beta)
        mean_r = float(sum(ex.rho[x] * probs[x] @ ex.rewards[x] for x in range(ex.n_prompts)))
        return _checked(Evaluation(J=J, J_star=ex.J_star(beta), suboptimality=ex.suboptimality(probs, beta),
                                   kl_ref=ex.kl_to_ref(probs), mean_reward=mean_r, exact=False,
                                   n_samples=n_mc * ex.n_prompts, method="monte_carlo"))
    oracles = policy.oracles.with_label("eval")
    xs = oracles.prompts(n_mc, rng)
    rewards = [float(oracles.reward(x, sampler.sample(x, 1, rng), rng)[0]) for x in xs]
    return _checked(Evaluation(J=None, J_star=None, suboptimality=None, kl_ref=None,
                               mean_reward=float(np.mean(rewards)), exact=False, n_samples=n_mc,
                               method="monte_carlo_reward"))


def _checked(ev: Evaluation) -> Evaluation:
    """No silent NaN: a non-finite number (inf KL excepted: a law off pi_ref's support) is an error."""
    for k in ("J", "J_star", "suboptimality", "kl_ref", "mean_reward"):
        v = getattr(ev, k)
        if v is not None and np.isnan(v):
            raise NumericalError(f"evaluation produced {k} = nan (non-finite features or rewards?)")
    return ev


def _relabelled(policy: Policy, label: str) -> Policy:
    import copy

    p = copy.copy(policy)
    p.oracles = policy.oracles.with_label(label)
    return p


def coverage(problem: Problem) -> float:
    """C_cov(pi*_beta) = sup pi*_beta / pi_ref on an exact instance (an evaluation quantity)."""
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a spanex Problem, got {type(problem).__name__}")
    ex = problem.exact
    if ex is None or not hasattr(ex, "C_cov"):
        raise ValueError(f"coverage needs an exact instance; problem {problem.name!r} has none")
    c = float(ex.C_cov(problem.beta))
    if not np.isfinite(c) or c < 1.0 - 1e-9:
        raise NumericalError(f"C_cov = {c!r} is not a finite number >= 1 (beta = {problem.beta!r} too small for "
                             "the rewards' range in double precision?)")
    return c
