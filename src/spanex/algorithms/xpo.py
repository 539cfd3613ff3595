"""XPO, Exploratory Preference Optimization (Xie, Foster et al. 2024): the *proper, optimistic* baseline.

Notation as in :mod:`spanex.algorithms.online_dpo`; alpha is the optimism (exploration) coefficient.

Each round draws one response from the current policy and one from the base model, labels the pair,
and refits with the DPO loss plus XPO's exploration bonus on the pi_ref samples y~_i:

    F_t(theta) = L_DPO(theta) + alpha * sum_{i<=t} log pi_theta(y~_i | x_i) + (lam/2) ||theta||^2.

Minimizing the bonus lowers the likelihood of what pi_ref already produces, pushing pi_theta towards
responses not yet seen: optimism. With reward feedback L_DPO is replaced by its regression
counterpart (1/2) sum_i (<theta, v_i> - (r1_i - r2_i))^2 (the Gaussian log-loss), as in OnlineDPO.

Pseudocode (Xie et al. 2024, Alg. 1, in the linear-softmax class)::

    theta_1 = 0
    for t = 1..T:
        x ~ rho ; y ~ pi_theta_t(.|x) (strong oracle) ; y~ ~ pi_ref(.|x) (weak oracle)
        feedback on (y, y~)                                       (r - r~, or b)
        theta_{t+1} = argmin_theta F_t(theta)                     (optimizer below)
    output pi_theta_{T+1}

The optimizer. In the linear-softmax class
log pi_theta(y~|x) = <theta, phi(x,y~)>/beta - log Z_theta(x) + log pi_ref(y~|x), and log Z_theta is
convex, so the bonus is *concave* and F_t is a difference of convex functions (non-convex). We use
the convex-concave procedure (CCP, a majorize-minimize scheme): starting from theta_t, repeat
``mm_steps`` times

    mu_k(x)      = E_{y ~ pi_theta_k(.|x)} phi(x, y)              = beta * grad log Z_theta_k(x)
    theta_{k+1}  = argmin  L_DPO(theta) + (alpha/beta) sum_i <theta, phi(x_i, y~_i) - mu_k(x_i)>
                           + (lam/2) ||theta||^2                   (convex: Newton / closed form)

The linearization of the concave term upper-bounds it and is tight at theta_k, so with exact mu_k
every step decreases F_t. mu_k is not available in closed form (Z_theta sums over all of Y): it is
estimated from ``n_mean`` draws from pi_theta_k per distinct prompt, through the same strong
oracle as the exploration draws, so the optimizer's sampling cost is counted too (and grows with
C_cov(pi_theta_k) under the weak cost model). The Monte Carlo mu makes each step a stochastic
CCP step; decrease then holds up to the estimation error of mu.

Cost model (``strong_oracle``): 'exact' (1 'strong' call per pi_theta draw) or 'weak' (rejection
from pi_ref, :class:`spanex.sampling.strong.WeakStrongSampler`); recorded in ``result.extras``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.algorithm import RunState
from ..core.errors import MAX_MAGNITUDE, NumericalError, check_count, check_int, check_real
from ..core.oracles import Oracles
from ..core.policy import LinearSoftmaxPolicy
from ..core.problem import Problem
from ..design.feedback import pair_feedback
from ..estimation import logistic_fit, ridge_fit
from ..sampling.scores import PromptIndex
from ..sampling.strong import sample_pi_theta
from ._pi_theta import PiThetaAlgorithm


@dataclass(frozen=True)
class XPO(PiThetaAlgorithm):
    """XPO; see the module docstring.

    Parameters
    ----------
    T : rounds (>= 1).
    alpha : optimism coefficient (>= 0; 0 gives a DPO fit on (pi_theta, pi_ref) pairs).
    lam : ridge (> 0).
    feedback : 'auto', 'reward' or 'preference' (as in OnlineDPO); keyword-only.
    mm_steps : CCP steps per round (>= 1). The default 1 takes one CCP step per round from the warm
        start theta_t; since F_t changes by one pair per round, the rounds continue the iteration.
    n_mean : draws from pi_theta_k per distinct prompt to estimate mu_k (>= 1).
    strong_oracle, M, sampler_delta, max_M : how pi_theta is sampled (keyword-only; see
        :class:`~spanex.algorithms._pi_theta.PiThetaAlgorithm`).
    """

    T: int = 200
    alpha: float = 0.05
    lam: float = 1.0
    mm_steps: int = 1
    n_mean: int = 16

    name = "xpo"

    def __post_init__(self):
        check_int("T", self.T, low=1)
        check_real("alpha", self.alpha, low=0, high=MAX_MAGNITUDE)
        check_real("lam", self.lam, low=0, low_open=True)
        check_int("mm_steps", self.mm_steps, low=1)
        check_count("n_mean", self.n_mean)                                 # drawn at once per prompt
        super().__post_init__()

    def _run(self, problem: Problem, oracles: Oracles, rng: np.random.Generator, state: RunState) -> None:
        feedback, sampler = self._begin(problem, state)
        beta, d = problem.beta, problem.d
        state.extras.update(optimizer="ccp", loss="squared" if feedback == "reward" else "dpo_logistic")
        V, targets = np.zeros((0, d)), np.zeros(0)
        seen = PromptIndex()                      # distinct prompts among the x_i (first-seen order)
        inverse: list = []                        # x_i = seen.prompts[inverse[i]]
        bonus_phi = np.zeros((0, d))              # phi(x_i, y~_i) of the pi_ref samples y~_i
        theta = np.zeros(d)                       # theta_1 = 0: pi_ref
        state.policy = LinearSoftmaxPolicy(theta, beta, sampler=sampler)
        if state.progress is not None:
            state.progress.total = self.T
        mean_calls = 0
        try:
            for t in range(self.T):
                x = oracles.prompts(1, rng)[0]                                   # x ~ rho
                y = sample_pi_theta(oracles, x, theta, 1, rng, sampler)          # y ~ pi_theta_t(.|x)
                y_ref = oracles.sample_ref(x, 1, rng)                            # y~ ~ pi_ref(.|x)
                fb = pair_feedback(oracles, x, y, y_ref, rng, feedback)[0]       # r - r~, or b
                F = oracles.phi(x, y)[0], oracles.phi(x, y_ref)[0]
                V = np.vstack([V, F[0] - F[1]])
                targets = np.append(targets, fb)
                inverse.append(seen.index(x))
                bonus_phi = np.vstack([bonus_phi, F[1]])
                # theta_{t+1} = argmin F_t by CCP (see the module docstring)
                for _ in range(self.mm_steps):
                    if self.alpha == 0:
                        mu = np.zeros((len(seen), d))
                    else:
                        before = oracles.ledger.sample_calls
                        mu = np.array([oracles.phi(xk, sample_pi_theta(oracles, xk, theta, self.n_mean, rng, sampler))
                                       .mean(axis=0) for xk in seen.prompts])   # mu_k(x) ≈ E_{pi_theta_k} phi
                        mean_calls += oracles.ledger.sample_calls - before
                    with np.errstate(over="ignore", invalid="ignore"):
                        g = (self.alpha / beta) * (bonus_phi - mu[np.asarray(inverse)]).sum(axis=0)   # linearized bonus
                    if not np.all(np.isfinite(g)):
                        raise NumericalError(f"XPO's exploration bonus is non-finite: alpha / beta = "
                                             f"{self.alpha / beta:.3g} is too large for the features' scale")
                    # argmin L(theta) + <g, theta> + (lam/2)||theta||^2: closed form, or Newton from theta_k
                    theta = (ridge_fit(V, targets, self.lam, g=g) if feedback == "reward"
                             else logistic_fit(V, targets, self.lam, theta0=theta, g=g))
                    if self.alpha == 0:
                        break
                state.policy = LinearSoftmaxPolicy(theta, beta, sampler=sampler)
                state.log(round=t + 1, T_data=oracles.ledger.reward_queries, T_comp=oracles.ledger.sample_calls,
                          theta_norm=float(np.linalg.norm(theta)))
                if state.progress is not None:
                    state.progress.update(1)
        finally:
            state.extras["theta_hat"] = theta.tolist()
            state.extras["optimizer_sample_calls"] = mean_calls
            if sampler is not None:
                state.extras["weak_sampler"] = dict(sampler.stats)

