"""Best-of-N: the simplest inference-time peer.

It learns nothing at training time (T_data = T_comp = 0 under the 'train' label). Its output policy,
at prompt x, draws n responses from pi_ref with the weak oracle, queries their rewards and returns the
best one::

    y_1..y_n ~ pi_ref(.|x)            n weak-oracle calls
    r_i = R(x, y_i)                   n reward queries, spent at generation time
    return y_argmax_i r_i

Every call is charged to the oracles the policy is bound to: a Result's policy is bound to the
'inference' label, so the cost of each generated sample shows up as ``ledger.total(kinds,
'inference')`` (n weak calls + n reward queries per sample). With preference feedback only, the
best is found by a sequential "king of the hill" tournament (the current best meets each next
candidate; n - 1 preference queries per sample).

Best-of-N is not a KL-regularized method: as n grows it moves towards argmax r, not towards
pi*_beta, and its coverage is limited by pi_ref (it can only return responses pi_ref produces in n
draws). ``probs(x)`` gives its exact law on exact instances with noise-free or Gaussian rewards
(for evaluation only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr, logsumexp

from ..core.algorithm import Algorithm, RunState
from ..core.errors import ExactLawUnavailable, check_count, check_memory
from ..core.oracles import Oracles
from ..core.policy import Policy
from ..core.problem import Problem
from ..core.responses import take

#: exact law: rewards equal to this many decimals count as one value (ties share its mass by pi_ref)
_TIE_DECIMALS = 12
#: exact law with Gaussian noise: the quadrature grid spans every reward value +- this many sigma (the
#: Gaussian mass beyond 9 sigma is 2e-19, below float64 resolution next to 1) ...
_GRID_SIGMAS = 9
#: ... with this many equally spaced points (a rectangle rule; the law is renormalized afterwards)
_GRID_POINTS = 4001


def check_candidates(n) -> int:
    """n candidates per generated sample: a count whose n responses and n rewards fit in memory."""
    n = check_count("n", n)
    check_memory(f"n = {n} candidates per sample (n responses and n rewards)", 2 * n)
    return n


class BestOfNPolicy(Policy):
    """The Best-of-N sampler (see the module docstring)."""

    def __init__(self, n: int, oracles: Oracles | None = None):
        super().__init__(oracles)
        self.n = check_candidates(n)

    def _sample(self, x, k, rng):
        o, n = self.oracles, self.n
        if k == 0:
            return o.sample_ref(x, 0, rng)
        ys = o.sample_ref(x, n * k, rng)                                # y_1..y_n ~ pi_ref, for k outputs
        if o.problem.reward is not None:
            r = o.reward(x, ys, rng).reshape(k, n)                      # r_i = R(x, y_i)
            best = np.argmax(r, axis=1)                                 # argmax_i r_i
        else:                                                           # preferences: king of the hill
            best = np.zeros(k, dtype=int)
            for j in range(1, n):
                champ = take(ys, np.arange(k) * n + best)
                chall = take(ys, np.arange(k) * n + j)
                b = o.preference(x, chall, champ, rng)                  # 1: challenger preferred
                best = np.where(b > 0.5, j, best)
        return take(ys, np.arange(k) * n + best)

    def probs(self, x):
        """Exact law on an exact instance whose reward oracle is NoisyReward with noise 'none' or 'gaussian'.

        With Gaussian noise, one draw (y, r) has y ~ pi_ref and r = r*(y) + sigma Z; the output is
        the y of the largest of n i.i.d. such pairs, so
            P(out = y) = n pi_ref(y) ∫ phi_sigma(r - r*(y)) F(r)^{n-1} dr,
            F(r) = sum_y' pi_ref(y') Phi((r - r*(y'))/sigma),
        computed by quadrature per distinct reward value. Noise-free rewards: ties are broken by
        draw order (the first maximal draw wins), so responses of equal reward share its mass in
        proportion to pi_ref.
        """
        o = self.oracles
        ex = self.exact_instance()
        rw = o.problem.reward if o is not None else None
        noise = getattr(rw, "noise", None)
        if not hasattr(ex, "rewards") or noise not in ("none", "gaussian"):
            raise ExactLawUnavailable("exact Best-of-N law needs an exact instance with 'none' or 'gaussian' noise")
        if noise == "gaussian" and rw.sigma == 0:
            noise = "none"
        x = ex._x(x)                                                     # an integer prompt index (1.9 refused)
        p_ref, rstar = ex.ref_probs[x], ex.rewards[x]
        vals, inv = np.unique(np.round(rstar, _TIE_DECIMALS), return_inverse=True)
        mass = np.bincount(inv, weights=p_ref, minlength=vals.size)    # pi_ref mass per reward value
        n = self.n
        if noise == "none":
            cdf_le = np.cumsum(mass)                                     # P(r <= v_j)
            cdf_lt = cdf_le - mass                                       # P(r < v_j)
            win = cdf_le ** n - cdf_lt ** n                              # P(max = v_j)
        else:
            s = float(rw.sigma)
            grid = np.linspace(vals.min() - _GRID_SIGMAS * s, vals.max() + _GRID_SIGMAS * s, _GRID_POINTS)
            dr = grid[1] - grid[0]
            Z = (grid[None, :] - vals[:, None]) / s                      # (values, grid)
            logF = logsumexp(np.log(np.maximum(mass, 1e-300))[:, None] + log_ndtr(Z), axis=0)
            logf = -0.5 * Z ** 2 - np.log(s * np.sqrt(2 * np.pi))
            integrand = np.exp(logf + (n - 1) * logF[None, :])
            win = n * mass * integrand.sum(axis=1) * dr                  # P(out has value v_j)
            win = win / win.sum()                                        # remove quadrature error
        share = np.where(mass > 0, win / np.maximum(mass, 1e-300), 0.0)
        return p_ref * share[inv]


@dataclass(frozen=True)
class BestOfN(Algorithm):
    """Best-of-N; see the module docstring.

    Parameters
    ----------
    n : candidates per generated sample (>= 1, at most 1e9 and within memory); every sample costs n weak-oracle
        calls and n reward
        queries (or n - 1 preference queries) under the label of the oracles the policy is bound to.
    """

    n: int = 16

    name = "best_of_n"

    def __post_init__(self):
        check_candidates(self.n)

    def _run(self, problem: Problem, oracles: Oracles, rng: np.random.Generator, state: RunState) -> None:
        state.policy = BestOfNPolicy(self.n)                             # no training: all cost is at inference
        state.extras.update(inference_time=True, per_sample_weak_calls=self.n,
                            per_sample_feedback_queries=self.n if problem.reward is not None else self.n - 1)


__all__ = ["BestOfN", "BestOfNPolicy"]
