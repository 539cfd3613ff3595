"""OnlineDPO: the *proper, passive* baseline (paper-notes §2.5; covered by Theorem 4.1).

Notation
--------
pi_theta   the linear-softmax policy pi_ref(y|x) exp(<theta, phi(x,y)>/beta) / Z_theta(x).
v          relative feature phi(x, y1) - phi(x, y2) of a pair.
b          preference label (1 when y1 is preferred; Bradley–Terry: P(b=1) = sigmoid(r*(y1) - r*(y2))).

The DPO loss in the linear-softmax class. For pi_theta, beta log(pi_theta(y)/pi_ref(y)) =
<theta, phi(x,y)> - beta log Z_theta(x), so the DPO implicit reward margin of a pair is exactly
<theta, v>: beta and the partition function cancel, and the DPO loss

    L_DPO(theta) = - sum_i log sigmoid( <theta, v_i^+> )     (v^+ = phi(winner) - phi(loser))
                 = sum_i [ log(1 + e^{<theta, v_i>}) - b_i <theta, v_i> ]

is the Bradley–Terry log-loss on relative features: convex in theta. With numeric rewards
(reward feedback) we use its regression counterpart, the squared loss
sum_i (<theta, v_i> - (r1_i - r2_i))^2, whose minimizer is consistent for theta* under realizability
(the paper's SpannerSampling fits the same loss). Both carry a ridge term (``lam``).

Pseudocode (one pair per round; ``pairs_per_round`` pairs share a round)::

    theta_1 = 0                                  (pi_theta_1 = pi_ref)
    for t = 1..T:
        x ~ rho
        y1, y2 ~ pi_theta_t(.|x)                 strong oracle: exact, or weak by rejection (see below)
        feedback on (y1, y2): r1 - r2, or b
        theta_{t+1} = argmin_theta L_t(theta) + ridge      solver='exact': Newton / closed form
                                                            solver='sgd': sgd_steps gradient steps
    output pi_theta_{T+1}

Exploration is passive: both responses come from the current policy, so directions pi_theta does
not visit are never learned (data-inefficient when coverage is poor).

Cost model (``strong_oracle``): 'exact' draws pi_theta with the problem's exact strong oracle
(1 'strong' call per sample); 'weak' realizes it by rejection from pi_ref
(:class:`spanex.sampling.strong.WeakStrongSampler`, every pi_ref draw counted as 'weak'). The
output policy samples through the same cost model. ``result.extras['strong_oracle']`` records it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.algorithm import RunState
from ..core.errors import check_choice, check_count, check_int, check_real
from ..core.oracles import Oracles
from ..core.policy import LinearSoftmaxPolicy
from ..core.problem import Problem
from ..core.responses import take
from ..design.feedback import pair_feedback
from ..estimation import FEEDBACK_LOSS, SOLVERS, PairwiseFit
from ..sampling.strong import sample_pi_theta
from ._pi_theta import PiThetaAlgorithm


@dataclass(frozen=True)
class OnlineDPO(PiThetaAlgorithm):
    """OnlineDPO; see the module docstring.

    Parameters
    ----------
    T : rounds (>= 1).
    pairs_per_round : pairs drawn from pi_theta_t per round (each on its own prompt x ~ rho), >= 1.
    lam : ridge (> 0).
    feedback : 'auto' (reward oracle when present), 'reward' (squared loss) or 'preference' (DPO loss);
        keyword-only.
    solver : 'exact' (minimize the convex loss each round) or 'sgd' (``sgd_steps`` steps of size ``lr``).
    strong_oracle, M, sampler_delta, max_M : how pi_theta is sampled (keyword-only; see the module docstring
        and :class:`~spanex.algorithms._pi_theta.PiThetaAlgorithm`).
    """

    T: int = 200
    pairs_per_round: int = 1
    lam: float = 1.0
    solver: str = "exact"
    lr: float = 0.5
    sgd_steps: int = 1

    name = "online_dpo"

    def __post_init__(self):
        check_int("T", self.T, low=1)
        check_count("pairs_per_round", self.pairs_per_round)               # drawn at once each round
        check_real("lam", self.lam, low=0, low_open=True)
        check_choice("solver", self.solver, SOLVERS)
        check_real("lr", self.lr, low=0, low_open=True)
        check_int("sgd_steps", self.sgd_steps, low=1)
        super().__post_init__()

    def _run(self, problem: Problem, oracles: Oracles, rng: np.random.Generator, state: RunState) -> None:
        feedback, sampler = self._begin(problem, state)
        state.extras["loss"] = "squared" if feedback == "reward" else "dpo_logistic"
        fit = PairwiseFit(problem.d, self.lam, FEEDBACK_LOSS[feedback], solver=self.solver, lr=self.lr,
                          sgd_steps=self.sgd_steps)
        theta = fit.theta                                                     # theta_1 = 0: pi_ref
        state.policy = LinearSoftmaxPolicy(theta, problem.beta, sampler=sampler)
        if state.progress is not None:
            state.progress.total = self.T
        try:
            for t in range(self.T):
                xs = oracles.prompts(self.pairs_per_round, rng)               # x ~ rho
                V, targets = [], []
                for x in xs:
                    ys = sample_pi_theta(oracles, x, theta, 2, rng, sampler)  # y1, y2 ~ pi_theta_t(.|x)
                    y1, y2 = take(ys, [0]), take(ys, [1])
                    targets.append(pair_feedback(oracles, x, y1, y2, rng, feedback)[0])   # r1 - r2, or b
                    F = oracles.phi(x, ys)
                    V.append(F[0] - F[1])
                theta = fit.add(np.array(V), targets)                         # theta_{t+1} = argmin loss
                state.policy = LinearSoftmaxPolicy(theta, problem.beta, sampler=sampler)
                state.log(round=t + 1, T_data=oracles.ledger.reward_queries, T_comp=oracles.ledger.sample_calls,
                          theta_norm=float(np.linalg.norm(theta)))
                if state.progress is not None:
                    state.progress.update(1)
        finally:
            state.extras["theta_hat"] = theta.tolist()
            if sampler is not None:
                state.extras["weak_sampler"] = dict(sampler.stats)
