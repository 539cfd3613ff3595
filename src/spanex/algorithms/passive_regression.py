"""Passive regression: the ablation of SpannerSampling with no spanner and no truncation.

It draws T pairs (y1, y2) ~ pi_ref(.|x)^2 on prompts x ~ rho, queries feedback on every pair, fits
theta on the relative features (ridge on r1 - r2, or the Bradley–Terry MLE for preferences), and
outputs pi_theta_hat::

    for t = 1..T:  x ~ rho ; y1, y2 ~ pi_ref(.|x) ; feedback on (y1, y2)       (2 weak calls, 2 rewards / 1 pref)
    theta_hat = argmin sum_t loss(<theta, phi(x,y1) - phi(x,y2)>, feedback) + ridge
    output pi_theta_hat

What the comparison shows: every pair costs feedback, informative or not, so directions that
pi_ref rarely visits are learned only at the rate pi_ref visits them; SpannerSampling pays feedback
only for informative pairs (the spanner) and then explores on-policy with truncation.

The output pi_theta_hat is sampled through the chosen cost model (``strong_oracle``: 'weak' by
default, rejection from pi_ref with :class:`~spanex.sampling.strong.WeakStrongSampler`, since the
method otherwise uses only the weak oracle; 'exact' uses the exact strong oracle). Draws happen only
when the output policy is sampled (label 'inference'); training uses pi_ref only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.algorithm import RunState
from ..core.errors import check_count, check_int, check_real
from ..core.oracles import Oracles
from ..core.policy import LinearSoftmaxPolicy
from ..core.problem import Problem
from ..core.responses import take
from ..design.feedback import pair_feedback
from ..estimation import FEEDBACK_LOSS, PairwiseFit
from ..sampling.scores import prompt_counts
from ._pi_theta import PiThetaAlgorithm


@dataclass(frozen=True)
class PassiveRegression(PiThetaAlgorithm):
    """Passive regression on pi_ref pairs; see the module docstring.

    Parameters
    ----------
    T : pairs (>= 1).
    batch_size : pairs per refit (>= 1); the best-so-far policy is updated after each batch.
    lam : ridge (> 0).
    feedback : 'auto', 'reward' or 'preference'; keyword-only.
    strong_oracle : cost model of the output policy ('weak' default, or 'exact'); keyword-only.
    M, sampler_delta, max_M : rules of the weak realization (keyword-only; see
        :class:`~spanex.algorithms._pi_theta.PiThetaAlgorithm`).
    """

    T: int = 200
    batch_size: int = 64
    lam: float = 1.0
    strong_oracle: str = field(default="weak", kw_only=True)   # the base's parameter, with another default

    name = "passive_regression"

    def __post_init__(self):
        check_int("T", self.T, low=1)
        check_count("batch_size", self.batch_size)                         # pairs drawn at once
        check_real("lam", self.lam, low=0, low_open=True)
        super().__post_init__()

    def _run(self, problem: Problem, oracles: Oracles, rng: np.random.Generator, state: RunState) -> None:
        feedback, sampler = self._begin(problem, state)
        fit = PairwiseFit(problem.d, self.lam, FEEDBACK_LOSS[feedback])
        state.policy = LinearSoftmaxPolicy(fit.theta, problem.beta, sampler=sampler)
        done = 0
        while done < self.T:
            k = min(self.batch_size, self.T - done)
            xs = oracles.prompts(k, rng)                                       # x ~ rho
            V, targets = [], []
            for x, c in prompt_counts(xs):                                     # distinct x, c pairs each
                ys = oracles.sample_ref(x, 2 * c, rng)                          # (y1, y2) ~ pi_ref(.|x)^2, c pairs
                F = oracles.phi(x, ys)
                y1, y2 = take(ys, np.arange(c)), take(ys, np.arange(c, 2 * c))
                targets.append(pair_feedback(oracles, x, y1, y2, rng, feedback))   # r1 - r2, or b
                V.append(F[:c] - F[c:])
            theta = fit.add(np.vstack(V), np.concatenate(targets))              # theta_hat on all pairs so far
            done += k
            state.policy = LinearSoftmaxPolicy(theta, problem.beta, sampler=sampler)
            state.log(pairs=done, T_data=oracles.ledger.reward_queries, T_comp=oracles.ledger.sample_calls)
        state.extras["theta_hat"] = fit.theta.tolist()

