"""Exhaustive design: G-optimal design over the whole response set, then regression.

The statistically efficient but computationally naive peer. It enumerates every response of every
prompt, computes a G-optimal (Kiefer–Wolfowitz) design on the relative features against an anchor,
queries feedback only on the design's support, and regresses::

    X = distinct prompts among n_prompt_draws draws x ~ rho
    for x in X:  Y_x = enumerate(x)                        |Y_x| sampling-oracle calls, kind 'enum'
                 v(x, y) = phi(x, y) - phi(x, y0(x))        anchor y0(x) = first enumerated response
    w = G-optimal design over {v(x, y)}                     Frank–Wolfe (spanex.design.g_optimal)
    n(x, y) = round(T w(x, y))                              Hamilton apportionment, sum = T
    query feedback on n(x, y) copies of (y, y0(x))          2 rewards (or 1 preference) per pair
    theta_hat = ridge / Bradley–Terry fit on those pairs ; output pi_theta_hat

Why an anchor: phi(x,y) - phi(x,y') = v(x,y) - v(x,y'), so the anchored vectors span every relative
feature, and a design on them predicts every relative reward with variance <= 2 (1 + tol) r / T
(Kiefer–Wolfowitz: g(w) = r at the optimum). Feedback is therefore data-efficient (poly(d), no
coverage), but the computation scales with |Y|: each enumerated response counts as one sampling-oracle
call under the kind 'enum', so T_comp = sum_x |Y_x|. This is the Theorem 2.1 escape clause made
concrete (it also touches every response, although it queries feedback on only O(d^2) of them).

The output pi_theta_hat is sampled through ``strong_oracle`` ('weak' default: rejection from pi_ref;
'exact': the exact strong oracle), at inference only.
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
from ..design.g_optimal import g_optimal_design, round_design
from ..estimation import FEEDBACK_LOSS, PairwiseFit
from ..sampling.scores import group_prompts
from ._pi_theta import PiThetaAlgorithm


@dataclass(frozen=True)
class ExhaustiveDesign(PiThetaAlgorithm):
    """Exhaustive G-optimal design; see the module docstring.

    Parameters
    ----------
    T : feedback pairs allocated by the design (>= 1).
    n_prompt_draws : draws from rho used to find the prompt set (>= 1; all distinct prompts seen are designed over).
    lam : ridge (> 0).
    feedback : 'auto', 'reward' or 'preference'; keyword-only.
    fw_tol, fw_max_iter : Frank–Wolfe stopping rule (g(w) <= (1 + fw_tol) r) and iteration cap.
    strong_oracle : cost model of the output policy ('weak' default, or 'exact'); keyword-only.
    M, sampler_delta, max_M : rules of the weak realization (keyword-only; see
        :class:`~spanex.algorithms._pi_theta.PiThetaAlgorithm`).
    """

    T: int = 200
    n_prompt_draws: int = 64
    lam: float = 1.0
    fw_tol: float = 0.05
    fw_max_iter: int = 20000
    strong_oracle: str = field(default="weak", kw_only=True)   # the base's parameter, with another default

    name = "exhaustive_design"

    def __post_init__(self):
        check_count("T", self.T)                                           # apportioned at once
        check_count("n_prompt_draws", self.n_prompt_draws)                 # drawn at once
        check_real("lam", self.lam, low=0, low_open=True)
        check_real("fw_tol", self.fw_tol, low=0, low_open=True)
        check_int("fw_max_iter", self.fw_max_iter, low=1)
        super().__post_init__()

    def check_problem(self, problem: Problem) -> None:
        if problem.response_set is None:
            raise ValueError(f"ExhaustiveDesign enumerates the response set; problem {problem.name!r} has no "
                             "enumerable response set")
        super().check_problem(problem)                                    # feedback and strong oracle

    def _run(self, problem: Problem, oracles: Oracles, rng: np.random.Generator, state: RunState) -> None:
        feedback, sampler = self._begin(problem, state)
        fit = PairwiseFit(problem.d, self.lam, FEEDBACK_LOSS[feedback])
        state.policy = LinearSoftmaxPolicy(fit.theta, problem.beta, sampler=sampler)
        # X = distinct prompts among n_prompt_draws draws from rho
        prompts, _ = group_prompts(oracles.prompts(self.n_prompt_draws, rng))
        # enumerate Y_x (each response counted as an 'enum' call); anchored relative features
        blocks, owner, index, anchors, enumerated = [], [], [], [], []
        for j, x in enumerate(prompts):
            ys = oracles.enumerate(x)                                      # |Y_x| 'enum' calls
            F = oracles.phi(x, ys)
            anchors.append(take(ys, [0]))                                  # y0(x): first enumerated response
            enumerated.append(ys)
            blocks.append(F - F[0])                                        # v(x, y) = phi(x,y) - phi(x,y0)
            owner.append(np.full(len(ys), j))
            index.append(np.arange(len(ys)))
        V_all, owner, index = np.vstack(blocks), np.concatenate(owner), np.concatenate(index)
        if not np.any(V_all):
            state.extras.update(design="degenerate: all relative features are zero")
            return
        design = g_optimal_design(V_all, tol=self.fw_tol, max_iter=self.fw_max_iter)   # Frank–Wolfe
        counts = round_design(design.weights, self.T)                       # n(x, y), sum = T
        state.extras.update(n_prompts=len(prompts), n_enumerated=int(V_all.shape[0]), design_rank=design.rank,
                            design_max_variance=design.max_variance, design_iterations=design.iterations,
                            design_converged=design.converged, design_support=int((counts > 0).sum()))
        # query feedback on the allocated (y, y0(x)) pairs, prompt by prompt
        for j, x in enumerate(prompts):
            sel = np.flatnonzero((owner == j) & (counts > 0))
            if sel.size == 0:
                continue
            reps = counts[sel]
            y1 = take(enumerated[j], index[np.repeat(sel, reps)])              # the designed responses y
            y0 = _repeat(anchors[j], int(reps.sum()))
            fb = pair_feedback(oracles, x, y1, y0, rng, feedback)              # r(y) - r(y0), or b
            theta = fit.add(V_all[np.repeat(sel, reps)], fb)
            state.policy = LinearSoftmaxPolicy(theta, problem.beta, sampler=sampler)
        state.log(T_data=oracles.ledger.reward_queries, T_comp=oracles.ledger.sample_calls, **{
            k: state.extras[k] for k in ("design_rank", "design_max_variance", "design_support")})
        state.extras["theta_hat"] = fit.theta.tolist()


def _repeat(y, k):
    if isinstance(y, np.ndarray):
        return np.repeat(y, k)
    return list(y) * k

