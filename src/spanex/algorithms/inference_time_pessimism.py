"""InferenceTimePessimism: chi-squared-regularized rejection sampling (Huang et al. 2025,
"Is Best-of-N the Best of Them? Coverage, Scaling, and Optimality in Inference-Time Alignment").

An inference-time peer like Best-of-N, but *pessimistic*: instead of returning the argmax of n
rewards (which over-optimizes as n grows), it samples from the regularized optimum of the
candidates' empirical distribution. With w(y) = pi(y)/pi_ref(y) the density ratio, the target is

    pi_hat = argmax_pi  E_pi[r] - beta_reg * ( D_chi2(pi || pi_ref) + D_KL(pi || pi_ref) )   ('chi2_kl')
    or       argmax_pi  E_pi[r] - beta_reg *   D_chi2(pi || pi_ref)                          ('chi2')

over the n candidates (pi_ref replaced by the uniform law on the candidates). Stationarity with a
multiplier lambda for E_ref[w] = 1 gives, per candidate with reward r_i:

- 'chi2_kl': 2 w + log w = (r_i - lambda)/beta_reg + 1, i.e. w_i = W(2 e^{(r_i-lambda)/beta_reg + 1}) / 2
  (W: Lambert's function; solved in log space by Newton's method on u = log w).
- 'chi2': w_i = max(0, 1 + (r_i - lambda) / (2 beta_reg)).

The chi-squared term is what makes this pessimistic: it bounds w by O(1 + range(r)/beta_reg), so no
single lucky reward dominates. Per generated sample::

    y_1..y_n ~ pi_ref(.|x)                    n weak-oracle calls
    r_i = R(x, y_i)                           n reward queries (at generation time)
    lambda_hat: (1/n) sum_i w_lambda(r_i) = 1 (bisection; the mean is decreasing in lambda)
    return y_i with probability w_i / sum_j w_j

Library choices (documented parameters; the paper's exact constants are not reproduced here): the
regularizer ('chi2_kl' default, the mixed regularizer; 'chi2' the pure one); beta_reg defaults to
the problem's beta; the final step samples i ∝ w_i directly, which is exactly the law of the
paper's rejection step over the candidates (accept y_i with probability w_i / max_j w_j, repeat)
conditioned on acceptance, without its extra draws; rewards come from the reward oracle itself
(there is no learned reward model here), so every generated sample costs n reward queries.
All calls are charged to the label of the oracles the policy is bound to ('inference' for a
Result's policy). Training costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.algorithm import Algorithm, RunState
from ..core.errors import NumericalError, check_bound, check_choice
from ..core.oracles import Oracles
from ..core.policy import Policy
from ..core.problem import Problem
from ..core.responses import take
from .best_of_n import check_candidates

REGULARIZERS = ("chi2_kl", "chi2")


def density_ratio(u: np.ndarray, regularizer: str) -> np.ndarray:
    """w as a function of u = (r - lambda)/beta_reg (see the module docstring). Non-decreasing in u."""
    u = np.asarray(u, dtype=float)
    if regularizer == "chi2":
        return np.maximum(0.0, 1.0 + u / 2.0)
    s = u + 1.0                                   # solve 2 e^v + v = s for v = log w
    # start right of the root (Newton on a convex increasing g then decreases monotonically to it):
    # g(s) = 2 e^s > 0, and for s >= 2, g(log(s/2)) = log(s/2) >= 0 (and avoids overflow of e^s).
    v = np.where(s >= 2.0, np.log(np.maximum(s, 2.0) / 2.0), np.minimum(s, 2.0))
    for _ in range(100):                          # Newton on the convex increasing g(v) = 2 e^v + v - s
        ev = np.exp(v)
        step = (2 * ev + v - s) / (2 * ev + 1)
        v = v - step
        if np.all(np.abs(step) <= 1e-13 * (1 + np.abs(v))):
            break
    return np.exp(v)


def solve_lambda(r: np.ndarray, beta_reg: float, regularizer: str, tol: float = 1e-12) -> float:
    """lambda with mean_i w((r_i - lambda)/beta_reg) = 1, by bisection (the mean decreases in lambda)."""
    r = np.asarray(r, dtype=float)

    def excess(lam):
        return float(np.mean(density_ratio((r - lam) / beta_reg, regularizer))) - 1.0

    # at lambda = max r every w <= w(0) <= 1, at lambda = min r - K every w >= 1: a bracket.
    hi = float(r.max())
    lo = float(r.min()) - 4.0 * beta_reg
    while excess(lo) < 0:
        lo -= 4.0 * beta_reg + (hi - lo)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if excess(mid) > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= tol * (1.0 + abs(mid)):
            break
    return 0.5 * (lo + hi)


class InferenceTimePessimismPolicy(Policy):
    """The InferenceTimePessimism sampler (see the module docstring)."""

    def __init__(self, n: int, beta_reg: float, regularizer: str, oracles: Oracles | None = None):
        super().__init__(oracles)
        self.n, self.beta_reg, self.regularizer = n, float(beta_reg), regularizer
        self.last_weights = None

    def _sample(self, x, k, rng):
        o, n = self.oracles, self.n
        if k == 0:
            return o.sample_ref(x, 0, rng)
        ys = o.sample_ref(x, n * k, rng)                                     # y_1..y_n ~ pi_ref, per output
        r = o.reward(x, ys, rng).reshape(k, n)                               # r_i = R(x, y_i)
        W = np.empty((k, n))
        for j in range(k):
            lam = solve_lambda(r[j], self.beta_reg, self.regularizer)        # mean_i w_i = 1
            W[j] = density_ratio((r[j] - lam) / self.beta_reg, self.regularizer)
        if not np.all(np.isfinite(W)):
            raise NumericalError(f"InferenceTimePessimism's density ratios are non-finite: beta_reg = {self.beta_reg:.3g} "
                                 f"is too small next to the rewards' range {float(np.ptp(r)):.3g}")
        P = W / W.sum(axis=1, keepdims=True)
        u = rng.random(k)
        idx = np.minimum((np.cumsum(P, axis=1) < u[:, None]).sum(axis=1), n - 1)   # i ∝ w_i
        self.last_weights = W
        return take(ys, np.arange(k) * n + idx)


@dataclass(frozen=True)
class InferenceTimePessimism(Algorithm):
    """InferenceTimePessimism; see the module docstring.

    Parameters
    ----------
    n : candidates per generated sample (>= 1): n weak calls and n reward queries per sample.
    beta_reg : regularization of the chi-squared objective (> 0); None uses the problem's beta.
    regularizer : 'chi2_kl' (chi-squared plus KL, default) or 'chi2'.
    """

    n: int = 16
    beta_reg: float | None = None
    regularizer: str = "chi2_kl"

    name = "inference_time_pessimism"

    def __post_init__(self):
        check_candidates(self.n)
        if self.beta_reg is not None:
            check_bound("beta_reg", self.beta_reg)
        check_choice("regularizer", self.regularizer, REGULARIZERS)

    def check_problem(self, problem: Problem) -> None:
        if problem.reward is None:
            raise ValueError("InferenceTimePessimism needs a reward oracle (it weighs candidates by their rewards); "
                             f"problem {problem.name!r} gives preferences only")

    def _run(self, problem: Problem, oracles: Oracles, rng: np.random.Generator, state: RunState) -> None:
        beta_reg = problem.beta if self.beta_reg is None else self.beta_reg
        state.policy = InferenceTimePessimismPolicy(self.n, beta_reg, self.regularizer)
        state.extras.update(inference_time=True, beta_reg=beta_reg, per_sample_weak_calls=self.n,
                            per_sample_feedback_queries=self.n)
