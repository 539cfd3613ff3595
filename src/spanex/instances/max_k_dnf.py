"""Max-k-DNF: the instance that makes *proper* exploration hard (paper-notes §3.3, Theorem 4.1).

Construction (a library reconstruction; the paper's exact instance is not available):

- One prompt (x = 0). Responses are assignments y in {0,1}^n, stored as integers in [0, 2^n)
  (bit i of y is variable i). pi_ref is uniform: each variable is a fair coin.
- A k-DNF with m terms T_1..T_m; each term is a conjunction of k literals on k distinct variables.
  With ``planted=True`` (default) a hidden assignment z* is drawn and every literal's sign agrees
  with z*, so z* satisfies all terms (the maximum is known); with ``planted=False`` signs are fair
  coins.
- Features: phi(y) = (1[T_1(y)], ..., 1[T_m(y)], 1) / sqrt(m + 1): term indicators plus a bias
  coordinate (dropped with ``bias=False``), scaled so ||phi(y)|| <= 1.
- Reward: theta* = c * (w, 0) / ||w|| with term weights w_j ~ U[0.5, 1], so
  r*(y) = <theta*, phi(y)> is a weighted count of satisfied terms, ||theta*|| = c and
  0 <= r* <= c. Hence C_cov(pi*_beta) <= e^{c/beta} whatever n is.

Why proper methods struggle. A uniform assignment satisfies a term with probability 2^{-k}; an
assignment satisfying many terms fixes many variables, so it has pi_ref-mass 2^{-Ω(n)} when the terms
cover the variables. A linear-softmax policy pi_theta with a large weight on the term indicators
(the optimistic theta's XPO moves to, or any theta whose tilt concentrates on near-maximal
assignments) has C_cov(pi_theta) = 2^{Ω(n)}, so drawing from it with the weak oracle costs
exponentially many pi_ref calls, while pi*_beta itself stays e^{c/beta}-covered. Finding the
assignments that satisfy many terms of a k-DNF is Max-k-DNF, hard under the randomized ETH.

Backends. Sampling pi_ref, features and rewards work by bit operations on integers, with no
enumeration, for any n <= 62. For n <= ``exact_max_n`` (default 20) the problem also carries an exact
:class:`~spanex.tabular.TabularInstance` over all 2^n assignments (exact J, suboptimality, C_cov,
the exact strong oracle and ``Oracles.enumerate``). Beyond it there is no exact evaluation and no
exact strong oracle: proper methods must use the weak-oracle realization of pi_theta.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.errors import (MAX_MAGNITUDE, as_generator, check_bound, check_count, check_int, check_log_weight,
                           check_memory, check_real)
from ..core.feedback import BradleyTerry, NoisyReward
from ..core.problem import Problem

MAX_N = 62                     # assignments are int64 bit masks


@dataclass
class DNFPrompts:
    """A single prompt, x = 0."""

    def sample(self, n, rng):
        return np.zeros(n, dtype=np.int64)


@dataclass
class UniformAssignments:
    """pi_ref: y uniform on {0,1}^n (one 'weak' call per assignment); no enumeration."""

    n: int
    cost_kind: str = "weak"
    cost_per_sample: int = 1

    def sample(self, x, k, rng):
        return rng.integers(0, 1 << self.n, size=k, dtype=np.int64)

    def logprob(self, x, ys):
        return np.full(len(ys), -self.n * np.log(2.0))


@dataclass
class DNFFeatures:
    """phi(y) = (term indicators, bias) / sqrt(m + bias), by bit masks.

    Term j is satisfied by y iff (y & pos_j) == pos_j and (y & neg_j) == 0, where pos_j / neg_j are
    the masks of its positive / negated variables.
    """

    pos: np.ndarray
    neg: np.ndarray
    bias: bool = True

    @property
    def dim(self) -> int:
        return int(self.pos.size + (1 if self.bias else 0))

    def satisfied(self, ys) -> np.ndarray:
        y = np.asarray(ys, dtype=np.int64)[:, None]
        return ((y & self.pos[None, :]) == self.pos[None, :]) & ((y & self.neg[None, :]) == 0)

    def __call__(self, x, ys):
        S = self.satisfied(ys).astype(float)
        if self.bias:
            S = np.hstack([S, np.ones((S.shape[0], 1))])
        return S / np.sqrt(self.dim)


@dataclass
class DNFMeanReward:
    """r*(y) = <theta*, phi(y)>."""

    phi: DNFFeatures
    theta: np.ndarray

    def __call__(self, x, ys):
        return self.phi(x, ys) @ self.theta


def max_k_dnf(n: int = 10, k: int = 3, m_terms: int | None = None, beta: float = 0.1, seed: int = 0, *,
              c: float = 1.0, planted: bool = True, bias: bool = True, noise: str = "gaussian",
              sigma: float = 0.1, feedback: str = "both", bt_temperature: float = 1.0,
              exact_max_n: int = 20) -> Problem:
    """The Max-k-DNF instance; see the module docstring.

    Parameters
    ----------
    n : variables, 1 <= n <= 62 (|Y| = 2^n).
    k : literals per term, 1 <= k <= n.
    m_terms : number of terms (>= 1); default n.
    beta : KL-regularization (> 0).
    seed : instance seed (terms, signs, weights, planted assignment).
    c : ||theta*|| = max reward scale (> 0); C_cov(pi*_beta) <= e^{c/beta}.
    planted : signs agree with a hidden assignment z* (z* satisfies every term).
    bias : append the constant feature.
    noise, sigma, feedback, bt_temperature : reward noise and feedback (see :mod:`spanex.core.feedback`).
    exact_max_n : build the exact tabular instance when n <= exact_max_n (<= 24: 2^n responses are stored).
    """
    n = check_int("n", n, low=1, high=MAX_N)
    k = check_int("k", k, low=1)
    if k > n:
        raise ValueError(f"k must be in [1, n] = [1, {n}] (a term has k distinct variables), got k={k}")
    m = n if m_terms is None else check_count("m_terms", m_terms)
    beta = check_bound("beta", beta)
    c = check_bound("c", c)
    check_log_weight(beta, c, "c (the reward bound)")
    exact_max_n = check_int("exact_max_n", exact_max_n, low=0, high=24)
    check_memory(f"m_terms = {m} terms", 2 * m)
    if n <= exact_max_n:
        check_memory(f"the exact instance (n = {n} <= exact_max_n: 2^n x (m_terms + 1) features)", 2.0**n * (m + 2))
    if feedback not in ("reward", "preference", "both"):
        raise ValueError(f"feedback must be one of ['both', 'preference', 'reward'], got {feedback!r}")
    check_real("bt_temperature", bt_temperature, low=0, high=MAX_MAGNITUDE, low_open=True)
    rng = as_generator(seed)
    z_star = int(rng.integers(0, 1 << n)) if planted else None
    pos = np.zeros(m, dtype=np.int64)
    neg = np.zeros(m, dtype=np.int64)
    for j in range(m):
        vars_ = rng.choice(n, size=k, replace=False)
        if planted:
            signs = (z_star >> vars_) & 1                     # literal agrees with z*
        else:
            signs = rng.integers(0, 2, size=k)
        for v, s in zip(vars_, signs):
            if s:
                pos[j] |= np.int64(1) << int(v)
            else:
                neg[j] |= np.int64(1) << int(v)
    w = rng.uniform(0.5, 1.0, size=m)
    phi = DNFFeatures(pos, neg, bias)
    theta = np.zeros(phi.dim)
    theta[:m] = c * w / np.linalg.norm(w)
    mean = DNFMeanReward(phi, theta)
    reward = NoisyReward(mean, noise=noise, sigma=sigma) if feedback != "preference" else None
    if reward is not None:
        reward.check_range(0.0, float(theta.sum()) / math.sqrt(phi.dim))      # r* = <theta*, phi> in [0, that]
        reward.check_log_weight(beta, c)
    pref = BradleyTerry(mean, temperature=bt_temperature) if feedback != "reward" else None
    exact = strong = responses = None
    if n <= exact_max_n:
        from ..tabular import TabularInstance, TabularResponses, TabularStrong

        ys = np.arange(1 << n, dtype=np.int64)
        exact = TabularInstance([1.0], [np.full(1 << n, 1.0 / (1 << n))], [phi(0, ys)], theta_star=theta)
        strong = TabularStrong(exact, beta)
        responses = TabularResponses(exact)
    p = Problem(prompts=DNFPrompts(), base=UniformAssignments(n), phi=phi, beta=beta, reward=reward,
                preference=pref, B=c, feature_norm_bound=1.0, R_max=c, exact=exact, strong=strong,
                response_set=responses, name="max_k_dnf")
    p.meta.update(dict(n=n, k=k, m_terms=m, beta=beta, c=c, seed=seed, planted=planted, z_star=z_star,
                       exact=exact is not None))
    return p


__all__ = ["max_k_dnf", "DNFFeatures", "UniformAssignments", "DNFPrompts", "DNFMeanReward"]
