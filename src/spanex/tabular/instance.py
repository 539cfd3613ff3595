"""Exact finite-response backend.

A :class:`TabularInstance` holds finitely many prompts with probabilities rho, and per prompt x a
finite response set {0, ..., N_x - 1} with pi_ref probabilities, a feature matrix Phi_x (N_x x d)
and mean rewards r*(x, .) (realizable: r* = Phi_x theta*). Every quantity of the theory is exact:

- pi*_beta(y|x) = pi_ref(y|x) exp(r*(x,y)/beta) / Z*(x)     (log space throughout)
- J_beta(pi)    = E_x [ <pi, r*> - beta KL(pi || pi_ref) ]
- suboptimality J_beta(pi*) - J_beta(pi) = beta E_x KL(pi || pi*)   (paper-notes §1.3)
- C_cov         = max_{x, y: pi_ref>0} pi*_beta(y|x) / pi_ref(y|x)

Response sets may be ragged (a list of arrays, one per prompt). Draws from rho and pi_ref(.|x) use an
alias table built once per distribution and cached (O(1) per draw; :mod:`spanex.tabular.alias`), or
inverse-CDF sampling (``searchsorted``, O(log N) per draw) with ``sampling_method='inverse_cdf'``;
both handle 10^6 responses per prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from ..core.errors import (as_float_array, check_bound, check_choice, check_distribution, check_finite_array, check_int,
                           check_log_weight, check_magnitude)
from .alias import AliasTable, check_weights


def _ragged(name, arrs, K):
    if isinstance(arrs, np.ndarray) and arrs.ndim >= 1 and arrs.dtype != object:
        arrs = [arrs[k] for k in range(arrs.shape[0])]
    if isinstance(arrs, (str, bytes, dict)) or not hasattr(arrs, "__iter__"):
        raise TypeError(f"{name} must be a list with one array per prompt ({K}), got {type(arrs).__name__}")
    arrs = list(arrs)
    if len(arrs) != K:
        raise ValueError(f"{name} must have one entry per prompt ({K}), got {len(arrs)}")
    return arrs


class Support(NamedTuple):
    """The evaluation interface of an exact instance at one prompt: the enumerated response set's
    log pi_ref (m,) and features phi (m, d). Policies compute the law they emit from it."""

    log_ref: np.ndarray
    phi: np.ndarray


class TabularInstance:
    """Exact finite instance; see the module docstring."""

    def __init__(self, rho, ref_probs, features, theta_star=None, rewards=None):
        self.rho = check_distribution("rho", rho)
        K = self.rho.size
        refs = _ragged("ref_probs", ref_probs, K)
        feats = _ragged("features", features, K)
        self.ref_probs = [check_distribution(f"ref_probs[{k}]", p) for k, p in enumerate(refs)]
        self.features = [check_magnitude(f"features[{k}]", check_finite_array(f"features[{k}]", F, ndim=2), axis=1,
                                         what="row norms ||phi(x, y)||") for k, F in enumerate(feats)]
        d = self.features[0].shape[1]
        for k, (p, F) in enumerate(zip(self.ref_probs, self.features)):
            if F.shape != (p.size, d):
                raise ValueError(f"features[{k}] must have shape ({p.size}, {d}) (one row per response of "
                                 f"prompt {k}, d={d}), got {F.shape}")
        self.d = d
        if (theta_star is None) == (rewards is None):
            raise ValueError("give exactly one of theta_star (realizable rewards) or rewards (explicit r*)")
        if theta_star is not None:
            self.theta_star = check_magnitude("theta_star", check_finite_array("theta_star", theta_star, ndim=1,
                                                                               shape=(d,)))
            with np.errstate(over="ignore"):
                self.rewards = [F @ self.theta_star for F in self.features]
            for k, r in enumerate(self.rewards):
                check_magnitude(f"rewards <theta_star, features[{k}]>", r)
        else:
            self.theta_star = None
            rw = _ragged("rewards", rewards, K)
            self.rewards = [check_magnitude(f"rewards[{k}]", check_finite_array(f"rewards[{k}]", r, ndim=1,
                                                                               shape=(p.size,)))
                            for k, (r, p) in enumerate(zip(rw, self.ref_probs))]
        self.log_ref = [np.log(np.where(p > 0, p, 1.0)) + np.where(p > 0, 0.0, -np.inf) for p in self.ref_probs]
        self._samplers: dict[tuple[str, int], AliasTable | InverseCDF] = {}  # (method, x or -1 for rho)
        self._max_abs_r: float | None = None

    # ---- basic shape ---------------------------------------------------------------------------
    @property
    def n_prompts(self) -> int:
        return self.rho.size

    def n_responses(self, x: int) -> int:
        return self.ref_probs[self._x(x)].size

    def responses(self, x: int) -> np.ndarray:
        return np.arange(self.n_responses(x))

    def support(self, x) -> Support:
        """Evaluation interface: log pi_ref and phi over the response set of prompt x."""
        x = self._x(x)
        return Support(self.log_ref[x], self.features[x])

    def _x(self, x) -> int:
        """A prompt index, validated: an integer in [0, n_prompts) (1.9, True and -1 are refused)."""
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
            raise TypeError(f"prompt x must be an integer index, got {type(x).__name__} {x!r}"[:200])
        x = int(x)
        if not 0 <= x < self.n_prompts:
            raise ValueError(f"prompt x must be in [0, {self.n_prompts - 1}], got {x}"[:200])
        return x

    def check_beta(self, beta) -> float:
        """beta as the exact quantities need it: in (0, MAX_MAGNITUDE] with max |r*| / beta <= MAX_LOG_WEIGHT."""
        beta = check_bound("beta", beta)
        check_log_weight(beta, self.max_abs_reward, "max |r*|")
        return beta

    @property
    def max_abs_reward(self) -> float:
        """max |r*(x, y)| over the table (computed once)."""
        if self._max_abs_r is None:
            self._max_abs_r = max((float(np.max(np.abs(r))) for r in self.rewards if r.size), default=0.0)
        return self._max_abs_r

    # ---- sampling ---------------------------------------------------------------------------------
    #: How draws from the cached distributions rho and pi_ref(.|x) are made: 'alias' (Walker's alias
    #: table, O(1) per draw, built once per distribution: 0.1-0.2 s at N = 10^6) or 'inverse_cdf'
    #: (``searchsorted`` on the CDF, O(log N) per draw). The law is the same; the draws a given seed
    #: produces differ between the two. Measured in benchmarks/bench_core.py (tabular section).
    sampling_method: str = "alias"

    def sample_prompts(self, n: int, rng: np.random.Generator, method: str | None = None) -> np.ndarray:
        """n i.i.d. prompts x ~ rho (``method`` defaults to ``self.sampling_method``)."""
        return self._sampler(-1, method).sample(n, rng)

    def sample_ref(self, x: int, n: int, rng: np.random.Generator, method: str | None = None) -> np.ndarray:
        """n i.i.d. responses y ~ pi_ref(.|x) (``method`` defaults to ``self.sampling_method``)."""
        return self._sampler(self._x(x), method).sample(n, rng)

    def sample_from(self, probs: np.ndarray, n: int, rng: np.random.Generator,
                    method: str = "inverse_cdf") -> np.ndarray:
        """n i.i.d. draws from a one-off distribution over responses (not cached). Inverse CDF by
        default: building an alias table costs 4-30x a cumsum (N = 10^3-10^6, bench_core), which the
        faster draws repay only when n is of the order of N, and a one-off law is drawn from a few times."""
        return _SAMPLERS[check_choice("method", method, _SAMPLERS)](probs, name="probs").sample(n, rng)

    def _sampler(self, key: int, method: str | None):
        """The cached sampler of rho (key -1) or pi_ref(.|key)."""
        method = (check_choice("sampling_method", self.sampling_method, _SAMPLERS) if method is None
                  else check_choice("method", method, _SAMPLERS))
        s = self._samplers.get((method, key))
        if s is None:
            s = self._samplers[(method, key)] = _SAMPLERS[method](self.rho if key < 0 else self.ref_probs[key])
        return s

    # ---- exact quantities -------------------------------------------------------------------------
    def log_tilted(self, x: int, scores: np.ndarray, beta: float) -> np.ndarray:
        """log of pi_ref(.|x) exp(scores/beta), normalized."""
        z = self.log_ref[self._x(x)] + np.asarray(scores, dtype=float) / beta
        return z - logsumexp(z)

    def tilted_probs(self, x: int, theta, beta: float) -> np.ndarray:
        """pi_theta(.|x) exactly."""
        return np.exp(self.log_tilted(x, self.features[self._x(x)] @ np.asarray(theta, float), beta))

    def log_pi_star(self, x: int, beta: float) -> np.ndarray:
        return self.log_tilted(x, self.rewards[self._x(x)], beta)

    def pi_star(self, x: int, beta: float) -> np.ndarray:
        return np.exp(self.log_pi_star(x, beta))

    def log_Z_star(self, x: int, beta: float) -> float:
        """log Z*(x) = log E_{pi_ref} exp(r*/beta)."""
        beta = self.check_beta(beta)
        return float(logsumexp(self.log_ref[self._x(x)] + self.rewards[self._x(x)] / beta))

    def J_star(self, beta: float) -> float:
        """J_beta(pi*_beta) = beta E_x log Z*(x)."""
        beta = self.check_beta(beta)
        return float(beta * sum(self.rho[x] * self.log_Z_star(x, beta) for x in range(self.n_prompts)))

    def J(self, policy_probs, beta: float) -> float:
        """J_beta(pi) by the direct formula E_x[<pi, r*> - beta KL(pi || pi_ref)]."""
        beta = self.check_beta(beta)
        total = 0.0
        for x, p in enumerate(self._check_policy(policy_probs)):
            total += self.rho[x] * (p @ self.rewards[x] - beta * _kl(p, self.log_ref[x]))
        return float(total)

    def kl_to_ref(self, policy_probs) -> float:
        """E_x KL(pi(.|x) || pi_ref(.|x))."""
        return float(sum(self.rho[x] * _kl(p, self.log_ref[x]) for x, p in enumerate(self._check_policy(policy_probs))))

    def suboptimality(self, policy_probs, beta: float) -> float:
        """J(pi*) - J(pi) = beta E_x KL(pi || pi*) (the identity; tested against the direct formula)."""
        beta = self.check_beta(beta)
        return float(beta * sum(self.rho[x] * _kl(p, self.log_pi_star(x, beta))
                                for x, p in enumerate(self._check_policy(policy_probs))))

    def C_cov(self, beta: float) -> float:
        """sup_{x,y} pi*_beta(y|x) / pi_ref(y|x), computed as exp(max r*/beta - log Z*)."""
        beta = self.check_beta(beta)
        best = -np.inf
        for x in range(self.n_prompts):
            if self.rho[x] == 0:
                continue
            support = self.ref_probs[x] > 0
            best = max(best, float(np.max(self.rewards[x][support]) / beta - self.log_Z_star(x, beta)))
        return float(np.exp(best))

    def _check_policy(self, policy_probs):
        if isinstance(policy_probs, (str, bytes, dict)) or not hasattr(policy_probs, "__iter__"):
            raise TypeError(f"policy_probs must be a list of one distribution per prompt, got "
                            f"{type(policy_probs).__name__}")
        probs = list(policy_probs)
        if len(probs) != self.n_prompts:
            raise ValueError(f"policy_probs must have one distribution per prompt ({self.n_prompts}), got {len(probs)}")
        out = []
        for x, p in enumerate(probs):
            p = as_float_array(f"policy_probs[{x}]", p)
            if p.shape != self.ref_probs[x].shape:
                raise ValueError(f"policy_probs[{x}] must have shape {self.ref_probs[x].shape}, got {p.shape}")
            out.append(p)
        return out


def _kl(p: np.ndarray, log_q: np.ndarray) -> float:
    """KL(p || q) with 0 log 0 = 0; +inf when p puts mass where q has none."""
    m = p > 0
    if np.any(np.isneginf(log_q[m])):
        return float("inf")
    return float(np.sum(p[m] * (np.log(p[m]) - log_q[m])))


class InverseCDF:
    """Inverse-CDF sampler of the distribution proportional to ``p``: one uniform u per draw, returns
    the first y with CDF(y) > u (``searchsorted``, O(log N) per draw). Same interface as AliasTable."""

    __slots__ = ("cdf",)

    def __init__(self, p, *, name: str = "p"):
        c = np.cumsum(check_weights(name, p))
        c /= c[-1]
        self.cdf = c

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        n = check_int("n", n, low=0)
        idx = np.searchsorted(self.cdf, rng.random(n), side="right")
        # u < 1 = cdf[-1] so idx <= N-1, except for floating round-off in the cumsum: clamp it.
        return np.minimum(idx, self.cdf.size - 1)


_SAMPLERS = {"alias": AliasTable, "inverse_cdf": InverseCDF}


# ---- oracle adapters (what a Problem holds) -------------------------------------------------------

@dataclass
class TabularPrompts:
    instance: TabularInstance

    def sample(self, n, rng):
        return self.instance.sample_prompts(n, rng)


@dataclass
class TabularBase:
    """Weak sampling oracle on a TabularInstance (1 'weak' call per response)."""

    instance: TabularInstance
    cost_kind: str = "weak"
    cost_per_sample: int = 1

    def sample(self, x, n, rng):
        return self.instance.sample_ref(x, n, rng)

    def logprob(self, x, ys):
        return self.instance.log_ref[self.instance._x(x)][np.asarray(ys, dtype=int)]


@dataclass
class TabularFeatures:
    instance: TabularInstance

    @property
    def dim(self) -> int:
        return self.instance.d

    def __call__(self, x, ys):
        return self.instance.features[self.instance._x(x)][np.asarray(ys, dtype=int)]


@dataclass
class TabularResponses:
    """The enumerable response set {0..N_x-1} of each prompt (no rewards, no pi_ref probabilities)."""

    instance: TabularInstance

    def responses(self, x):
        return self.instance.responses(x)


@dataclass
class TabularStrong:
    """Exact strong oracle: y ~ pi_theta(.|x) by enumeration."""

    instance: TabularInstance
    beta: float

    def __call__(self, x, theta, n, rng):
        return self.instance.sample_from(self.instance.tilted_probs(x, theta, self.beta), n, rng)


@dataclass
class TabularMeanReward:
    """r*(x, y) lookup used by the reward/preference oracles."""

    instance: TabularInstance

    def __call__(self, x, ys):
        return self.instance.rewards[self.instance._x(x)][np.asarray(ys, dtype=int)]
