"""SpannerSampling (paper-notes §2.2-§2.3): improper, inference-time exploration with the weak oracle.

Notation
--------
beta      KL-regularization; the target is pi*_beta ∝ pi_ref exp(r*/beta).
phi       feature map; relative features phi(x, y, y') = phi(x, y) - phi(x, y').
theta     parameter of the linear reward <theta, phi>; theta^t is the ridge (or Bradley–Terry) fit.
nu        spanner / truncation threshold on ||phi(x,y,y')||_{Sigma_span^{-1}}.
Sigma_span, Psi_span   design matrix and accepted pairs of the Phase-1 spanner.
M_rej, delta_rej       SoftmaxSampler's density-ratio bound (None: its self-calibrating envelope, the
                       default) and failure probability per draw.
T_data, T_comp         reward queries and sampling-oracle calls (read them off the Ledger).

Pseudocode (S = seen in the paper's description, R = reconstruction, see paper-notes §2.3)::

    Sigma_span, Psi, D = SpannerPhase(T_span, N_try, nu, lam)                        (S)
    for t = 1..T_exp:
        theta_t = argmin_theta sum_D (<theta, phi(x,y1,y2)> - (r1 - r2))^2 + lam|theta|^2 (S; ridge R)
        x ~ rho ; y2 ~ pi_ref(.|x)                                                   (S)
        f_t(y) = <theta_t, phi(x,y,y2)> * 1{ ||phi(x,y,y2)||_{Sigma_span^-1} <= nu }   (S)
        y1 = SoftmaxSampler_{beta, M_rej, delta_rej}(f_t; x)                          (S)
        query feedback on (y1, y2); D += (x, y1, y2, r1, r2)                          (S)
    output: y' ~ pi_ref(.|x); SoftmaxSampler(f_{theta_hat}(., y'); x)   ('final')   (R)
            or the same with theta_t for t ~ Unif{1..T_exp}               ('mixture') (R)

RECON choices, all parameters: ridge lam (default 1) and optional projection onto the ball
||theta|| <= B; reward truncation (default; outside the covered set the score is 0) or policy
truncation (probability 0 there); truncation uses Sigma_span (not the running design); the output
mode; the cap ``n_try_max``; logistic loss for preferences (``regression='auto'``). The default
recipe (constants c1..c4 are knobs; the theory's constants are not sharp, the defaults are set for
practical sizes)::

    T_exp  = ceil(c2 R_max^2 d^2 log^2(1/delta) / (beta min(eps, beta)))   [x kappa, see below]
    T_span = ceil(c3 T_exp);  N_try = ceil(c4 (R_max/beta)^2 T_exp)  (capped by n_try_max)
    nu     = max(c1 beta / (R_max sqrt(d log(T_exp/delta))), sqrt(d / T_span))
             (the second term is the smallest threshold T_span spanner pairs can reach: below it
             most pairs stay uncovered and reward truncation returns pi_ref)
    M_rej  = None: SoftmaxSampler's self-calibrating envelope (no bound on C_cov is needed or used)
    delta_rej = delta / (4 (T_exp + 1))

The recipe reads only what a user has: eps, delta, beta, d and the *declared* R_max. The theory's
N_try also carries a factor C_cov (pairs that pi_ref rarely draws matter C_cov times more under
pi*), but C_cov is unknown to a user; the spanner then covers what pi_ref draws with probability
>~ 1/N_try, and the exploration phase, whose sampler does find the heavy responses, adds the rest.
With ``link_curvature=True`` and preference feedback, T_exp is multiplied by the Bradley–Terry
link-curvature factor kappa = (1 + e^{2 R_max})^2 / e^{2 R_max} = 1 / min_{|z| <= 2 R_max} sigmoid'(z)
(paper-notes §3.7: the logistic fit's confidence radius grows by kappa where rewards are far apart).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.algorithm import Algorithm, RunState
from ..core.errors import (MAX_COUNT, BudgetExhausted, ExactLawUnavailable, NumericalError, check_choice, check_int,
                           check_real, check_recipe_size)
from ..core.oracles import Oracles
from ..core.policy import Policy
from ..core.problem import Problem
from ..design import build_spanner, pair_feedback, resolve_feedback, spanner_size_bound, sq_norms
from ..estimation import FEEDBACK_LOSS, PairwiseFit
from ..sampling import FALLBACKS, SamplerState, SoftmaxSampler
from ..sampling.rejection import cap_N, emitted_law
from ..core.responses import prompt_key, take
from ..sampling.scores import EXP_GUARD, TRUNCATIONS, outside_score, truncated_score, truncated_score_table
from ..sampling.softmax_sampler import N_MAX

#: rounds whose anchors are drawn together (one batched call across prompts when the model offers it)
_PREFETCH_ROUNDS = 16
#: recipe sizes beyond this many rounds or pair draws are refused before anything is allocated
MAX_RECIPE_SIZE = MAX_COUNT
#: the feedback each ``regression`` loss is fitted on
_REGRESSION_FEEDBACK = {"auto": "auto", "squared": "reward", "logistic": "preference"}


@dataclass(frozen=True)
class SpannerSampling(Algorithm):
    """SpannerSampling; see the module docstring for the notation, pseudocode and recipe.

    Parameters
    ----------
    eps, delta : target suboptimality (> 0) and failure probability (in (0, 1)) of the recipe.
    nu, T_span, N_try, T_exp, delta_rej : override the recipe (None = recipe).
    M_rej : None (default: SoftmaxSampler's self-calibrating envelope) or a bound >= 1 on the density
        ratio of the sampler's targets, for the paper's sampler (about 2 M_rej calls per draw).
    lam : ridge / initial design (> 0).
    c1, c2, c3, c4 : recipe constants (> 0).
    n_try_max : cap on N_try (None = no cap).
    truncation : 'reward' (default) or 'policy'.
    output : 'final' (default) or 'mixture'.
    regression : 'auto' (squared loss for rewards, logistic for preferences), 'squared', 'logistic'.
    sampler_batch, fallback : SoftmaxSampler's proposal batch size and failure fallback.
    project : project theta onto ||theta|| <= problem.B after each fit.
    refit_factor : with the logistic loss, refit when the data has grown by this factor (>= 1).
    trace_theta : store theta_t in the trace (for learning curves).
    link_curvature : with preference feedback, multiply the recipe's T_exp by the Bradley–Terry link
        curvature factor (see the module docstring).
    pilot_factor : the self-calibrating sampler's calibration rule (see SoftmaxSampler).
    """

    eps: float = 0.05
    delta: float = 0.1
    nu: float | None = None
    lam: float = 1.0
    T_span: int | None = None
    N_try: int | None = None
    T_exp: int | None = None
    M_rej: float | None = None
    delta_rej: float | None = None
    c1: float = 10.0
    c2: float = 0.01
    c3: float = 1.0
    c4: float = 0.1
    n_try_max: int | None = None
    truncation: str = "reward"
    output: str = "final"
    regression: str = "auto"
    sampler_batch: int | None = None
    fallback: str = "last"
    project: bool = False
    refit_factor: float = 1.1
    trace_theta: bool = True
    link_curvature: bool = False
    pilot_factor: float = 16.0

    name = "spanner_sampling"

    def __post_init__(self):
        check_real("eps", self.eps, low=0, low_open=True)
        check_real("delta", self.delta, low=1e-300, high=1, high_open=True)       # log(1/delta) needs 1/delta finite
        check_real("lam", self.lam, low=0, low_open=True)
        for c in ("c1", "c2", "c3", "c4"):
            check_real(c, getattr(self, c), low=0, low_open=True)
        if self.nu is not None:
            check_real("nu", self.nu, low=0, low_open=True)
        for k in ("T_span", "T_exp"):
            if getattr(self, k) is not None:
                check_int(k, getattr(self, k), low=0)
        for k in ("N_try", "n_try_max"):
            if getattr(self, k) is not None:
                check_int(k, getattr(self, k), low=1)
        if self.sampler_batch is not None:
            check_int("sampler_batch", self.sampler_batch, low=1, high=1 << 30)   # SoftmaxSampler's range
        if self.M_rej is not None:
            check_real("M_rej", self.M_rej, low=1, high=1e12)
        if self.delta_rej is not None:
            check_real("delta_rej", self.delta_rej, low=1e-12, high=1, high_open=True)   # SoftmaxSampler's range
        check_choice("truncation", self.truncation, TRUNCATIONS)
        check_choice("output", self.output, ("final", "mixture"))
        check_choice("regression", self.regression, ("auto", "squared", "logistic"))
        check_choice("fallback", self.fallback, FALLBACKS)
        check_real("refit_factor", self.refit_factor, low=1)
        if not isinstance(self.link_curvature, bool):
            raise TypeError(f"link_curvature must be a bool, got {type(self.link_curvature).__name__}")
        check_real("pilot_factor", self.pilot_factor, low=1, high=1e6)

    # ---- the recipe ------------------------------------------------------------------------------
    def resolve(self, problem: Problem) -> dict:
        """The parameters this run uses: the given ones, and the recipe for those left None.

        Reads only beta, d and the declared R_max and feature-norm bound; sizes beyond
        MAX_RECIPE_SIZE are refused here, before anything is drawn or allocated."""
        R, d, beta = problem.R_max, problem.d, problem.beta
        feedback = resolve_feedback(problem, _REGRESSION_FEEDBACK[self.regression],
                                    what=f"regression={self.regression!r}")
        regression = FEEDBACK_LOSS[feedback]
        log1d = math.log(1 / self.delta)
        kappa = 1.0
        if self.link_curvature and feedback == "preference":
            kappa = math.exp(min(2 * R, EXP_GUARD)) + 2 + math.exp(-min(2 * R, EXP_GUARD))   # (1+e^{2R})^2/e^{2R}
        T_exp = self.T_exp if self.T_exp is not None else max(1, math.ceil(check_recipe_size(
            "T_exp", lambda: kappa * self.c2 * R**2 * d**2 * log1d**2 / (beta * min(self.eps, beta)),
            "c2 R_max^2 d^2 log^2(1/delta) / (beta min(eps, beta))", c2=self.c2, R_max=R, d=d, delta=self.delta,
            beta=beta, eps=self.eps)))
        T_span = self.T_span if self.T_span is not None else math.ceil(check_recipe_size(
            "T_span", lambda: self.c3 * T_exp, "c3 T_exp", c3=self.c3, T_exp=T_exp))
        # a spanner of T_span pairs has Sigma ~ T_span E[v v^T], so typical pairs have squared norm
        # ~ d / T_span: a threshold below sqrt(d / T_span) leaves most pairs uncovered (output ≈ pi_ref)
        nu_reachable = math.sqrt(d / max(T_span, 1))
        try:
            nu_theory = self.c1 * beta / (R * math.sqrt(d * math.log(max(T_exp, 2) / self.delta)))
        except ZeroDivisionError:                                       # R_max * sqrt(...) underflowed to 0
            nu_theory = math.inf
        nu = self.nu if self.nu is not None else max(nu_theory, nu_reachable)
        if not (math.isfinite(nu) and nu > 0):
            raise ValueError(f"nu: the recipe c1 beta / (R_max sqrt(d log(T_exp/delta))) gives {nu!r} with c1={self.c1!r}, "
                             f"beta={beta!r}, R_max={R!r}; pass nu explicitly")
        delta_rej = self.delta_rej if self.delta_rej is not None else max(self.delta / (4 * (T_exp + 1)), 1e-12)
        if self.N_try is not None:
            N_try = self.N_try
        else:
            N_try = max(1, math.ceil(check_recipe_size("N_try", lambda: self.c4 * (R / beta) ** 2 * T_exp,
                                              "c4 (R_max/beta)^2 T_exp", c4=self.c4, R_max=R, beta=beta, T_exp=T_exp)))
        if self.n_try_max is not None:
            N_try = min(N_try, self.n_try_max)
        return dict(T_exp=int(T_exp), nu=float(nu), nu_theory=float(nu_theory), nu_reachable=float(nu_reachable),
                    M_rej=None if self.M_rej is None else float(self.M_rej),
                    M_source="self-calibrating envelope" if self.M_rej is None else "given (paper's sampler)",
                    delta_rej=float(delta_rej), T_span=int(T_span), N_try=int(N_try), regression=regression,
                    feedback=feedback, link_curvature=float(kappa),
                    spanner_size_bound=spanner_size_bound(d, nu, self.lam, 2 * problem.feature_norm_bound))

    # ---- the algorithm --------------------------------------------------------------------------
    def sampler(self, cfg: dict, beta: float) -> SoftmaxSampler:
        """The SoftmaxSampler of exploration and of the output policy."""
        return SoftmaxSampler(beta=beta, M=cfg["M_rej"], delta=cfg["delta_rej"], batch_size=self.sampler_batch,
                              fallback=self.fallback, pilot_factor=self.pilot_factor)

    def _run(self, problem: Problem, oracles: Oracles, rng: np.random.Generator, state: RunState) -> None:
        cfg = self.resolve(problem)
        state.extras["resolved"] = cfg
        if state.progress is not None:
            state.progress.total = cfg["T_span"] + cfg["T_exp"]
        est = PairwiseFit(problem.d, self.lam, cfg["regression"], refit_factor=self.refit_factor,
                          radius=problem.B if self.project else None)
        sampler = self.sampler(cfg, problem.beta)
        calib = SamplerState()         # pi_ref draws seen per prompt: shared by every round and the output
        partial = {}
        cache: dict = {}               # the calibration set's feature rows, once Sigma_span is fixed

        def make_policy(thetas, Sigma_inv):
            return SpannerSamplingPolicy(np.atleast_2d(thetas), Sigma_inv, cfg["nu"], problem.beta, sampler,
                                         self.truncation, state=calib, features=cache.get("rows"))

        # ---- Phase 1: average-case spanner from pi_ref pairs ----
        try:
            span = build_spanner(oracles, rng, T_span=cfg["T_span"], N_try=cfg["N_try"], nu=cfg["nu"],
                                 lam=self.lam, feedback=cfg["feedback"],
                                 on_accept=lambda r: partial.__setitem__("span", r), progress=state.progress)
        except BudgetExhausted:
            if "span" in partial:  # stopped mid-spanner: the best we have is the fit on the spanner data
                s = partial["span"]
                est.add(s.V, s.targets)
                state.policy = make_policy(est.theta, s.Sigma_inv)
            raise
        est.add(span.V, span.targets)
        Sigma_inv = span.Sigma_inv                                       # truncation uses Sigma_span
        state.extras.update(spanner_size=span.size, spanner_pair_draws=span.pair_draws,
                            spanner_prompts_covered=span.prompts_covered, spanner_T_data=oracles.ledger.reward_queries,
                            spanner_T_comp=oracles.ledger.sample_calls)
        state.log(phase="spanner", round=0, T_data=oracles.ledger.reward_queries, T_comp=oracles.ledger.sample_calls,
                  spanner_size=span.size, **({"theta": est.theta.tolist()} if self.trace_theta else {}))
        thetas: list[np.ndarray] = []
        rows = cache["rows"] = _CalibrationFeatures(Sigma_inv)
        theta = est.theta
        state.policy = make_policy(theta, Sigma_inv)

        # ---- Phase 2: inference-time exploration ----
        sampler_calls, failures, clipped, calibration, envelope = 0, 0, 0, 0, 0.0
        nu, truncation, T_exp, mixture = cfg["nu"], self.truncation, cfg["T_exp"], self.output == "mixture"
        xs: list = []
        # the best-so-far policy after each round is the fit of the rounds done (final) or their mixture; it is
        # built when the run stops (here on an exception, below at the end), not at every round
        done, policy_theta = 0, None
        try:
            for t in range(T_exp):
                # theta_t = argmin squared/logistic loss (already checked finite if it is the last round's policy)
                theta_t = theta if theta is policy_theta else _finite_theta(theta)
                thetas.append(theta_t)
                if t % _PREFETCH_ROUNDS == 0:                            # prompts drawn lazily (budgets bound the
                    xs = list(oracles.prompts(min(_PREFETCH_ROUNDS, T_exp - t), rng))   # work); their anchors
                    oracles.prefetch(xs, 1, rng)                         # in one batched call across prompts
                x = xs[t % _PREFETCH_ROUNDS]                             # x ~ rho
                y2 = oracles.sample_ref(x, 1, rng)                       # anchor y2 ~ pi_ref(.|x)
                phi2 = oracles.phi(x, y2)[0]

                def f(ys, x=x, phi2=phi2, theta_t=theta_t):             # f_t(y), truncated around y2
                    return truncated_score(oracles.phi(x, ys), phi2, theta_t, Sigma_inv, nu, truncation)

                def on_calibration_set(R, owners, x=x, phi2=phi2, theta_t=theta_t):   # the same f_t, on R
                    return rows.scores(x, R, oracles.phi, phi2, theta_t, nu, truncation)
                y1, diag = sampler.sample(f, x, oracles, rng, state=calib,   # y1 ~ SoftmaxSampler(f_t; x)
                                          score_matrix=on_calibration_set)
                fb = pair_feedback(oracles, x, y1, y2, rng, cfg["feedback"])[0]   # r1 - r2, or b
                theta = est.add((oracles.phi(x, y1)[0] - phi2)[None, :], [fb])   # D += (x, y1, y2, feedback)
                calls = int(diag.proposals[0] + diag.partition_calls[0])   # diag.calls of the one draw
                accepted, clip = bool(diag.accepted[0]), bool(diag.clipped[0])
                sampler_calls += calls
                failures += not accepted
                clipped += clip
                calibration += int(diag.calibration_calls)
                envelope = max(envelope, diag.envelope) if diag.envelope == diag.envelope else envelope
                ledger = oracles.ledger
                row = dict(phase="explore", round=t + 1, T_data=ledger.reward_queries, T_comp=ledger.sample_calls,
                           sampler_calls=calls, accepted=accepted, clipped=clip,
                           ratio_bound=float(diag.ratio_bound[0]), envelope=float(diag.envelope))
                if self.trace_theta:
                    row["theta"] = theta_t.tolist()
                state.log(**row)
                if not mixture:
                    policy_theta = _finite_theta(theta)
                done = t + 1
                if state.progress is not None:
                    state.progress.update(1)
        except BaseException:
            if done:                                                     # stopped mid-exploration (a budget)
                state.policy = make_policy(np.array(thetas[:done]) if mixture else policy_theta, Sigma_inv)
            raise
        state.extras.update(sampler_calls=sampler_calls, sampler_failures=failures, sampler_clipped=clipped,
                            sampler_calibration_calls=calibration, pool_unused=oracles.pooled_total(),
                            sampler_envelope=envelope)
        final = np.array(thetas) if (mixture and thetas) else _finite_theta(theta)
        state.policy = make_policy(final, Sigma_inv)
        state.extras["theta_hat"] = est.theta.tolist()


class _CalibrationFeatures:
    """phi, phi Sigma_span^{-1} and ||phi||^2_{Sigma_span^{-1}} of each prompt's calibration set.

    Scoring the calibration set is the sampler's per-round work: every round has a new theta and a new
    anchor. The set only grows and Sigma_span is fixed after the spanner phase, so these rows are
    computed once per response; a round then costs O(|R| d) for the truncation mask
    ||phi_y - phi_a||^2 = ||phi_y||^2 + ||phi_a||^2 - 2 <phi_a, Sigma^{-1} phi_y> instead of O(|R| d^2).
    """

    def __init__(self, Sigma_inv):
        self.Sigma_inv = Sigma_inv
        self._rows: dict = {}

    def rows(self, x, R, phi):
        key = prompt_key(x)
        F, G, q = self._rows.get(key, (None, None, None))
        have = 0 if F is None else F.shape[0]
        if have > len(R):                                        # rows i stand for R[i]: R must be the whole set
            raise ValueError(f"the calibration set of {x!r} has {len(R)} entries, fewer than the {have} cached; "
                             "scores are computed on whole calibration sets only")
        if have < len(R):                                        # new entries of the (append-only) set
            Fn = phi(x, take(R, slice(have, None)))
            Gn = Fn @ self.Sigma_inv
            qn = np.einsum("ij,ij->i", Gn, Fn)
            F, G, q = (Fn, Gn, qn) if F is None else (np.vstack([F, Fn]), np.vstack([G, Gn]), np.concatenate([q, qn]))
            self._rows[key] = (F, G, q)
        return F, G, q

    def scores(self, x, R, phi, A, Th, nu: float, truncation: str) -> np.ndarray:
        """Truncated scores on R of the targets (anchor features A[i], theta Th[i]); shape (k, |R|)."""
        F, G, q = self.rows(x, R, phi)
        A, Th = np.asarray(A), np.asarray(Th)
        A = A[None, :] if A.ndim == 1 else A
        Th = Th[None, :] if Th.ndim == 1 else Th
        cross = A @ G.T
        cross *= 2                                               # 2 <phi_a, Sigma^{-1} phi_y>
        sq = q[None, :] + sq_norms(A, self.Sigma_inv)[:, None]
        sq -= cross                                              # ||phi_y - phi_a||^2_{Sigma^{-1}}
        score = Th @ F.T
        score -= np.einsum("ij,ij->i", Th, A)[:, None]           # <theta, phi_y - phi_a>
        return np.where(sq <= nu * nu, score, outside_score(truncation))


def _finite_theta(theta: np.ndarray) -> np.ndarray:
    if not np.isfinite(theta).all():
        raise NumericalError("the fitted theta became non-finite (lam too small for the data's scale?)")
    return theta


class SpannerSamplingPolicy(Policy):
    """The improper output of SpannerSampling.

    To sample at x: pick theta (the final fit, or uniformly one of the round fits for 'mixture'),
    draw an anchor y' ~ pi_ref(.|x), and return SoftmaxSampler's draw from
    q(y) ∝ pi_ref(y|x) exp(f(y)/beta) with the truncated score f. All draws go through the oracles
    the policy is bound to (label 'inference' for a Result's policy). The sampler's calibration
    sets (``state``, per prompt) are those of the training run, so inference continues where
    exploration left off.

    ``probs(x)`` is the exact law of the next draw on an exact instance: the pi_ref-mixture over
    anchors (and thetas) of the sampler's emitted law given the calibration set at x, clipping and
    fallback included (:meth:`SoftmaxSampler.law`). It first calibrates the set for every anchor,
    as a draw would, so the next draw does not change it. It costs O(k N^2) for k thetas and N
    responses. With the paper's sampler (M_rej given) the law has no closed form
    (ExactLawUnavailable: evaluation samples it).
    """

    #: exact probs enumerate anchor x response pairs; refuse beyond this many responses
    MAX_EXACT_RESPONSES = 20000
    #: exact laws are computed for blocks of (theta, anchor) rows holding about this many entries
    #: (32 MB per float64 array), so memory stays bounded whatever N and the number of thetas
    LAW_CHUNK_ENTRIES = 4_000_000

    def __init__(self, thetas, Sigma_inv, nu, beta, sampler: SoftmaxSampler, truncation="reward", oracles=None,
                 state: SamplerState | None = None, features: _CalibrationFeatures | None = None):
        super().__init__(oracles)
        self._rows = features if features is not None else _CalibrationFeatures(np.asarray(Sigma_inv, dtype=float))
        self.thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
        self.Sigma_inv = np.asarray(Sigma_inv, dtype=float)
        self.nu, self.beta, self.sampler, self.truncation = float(nu), float(beta), sampler, truncation
        self.state = state if state is not None else SamplerState()
        self.last_diagnostics = None

    @property
    def theta(self) -> np.ndarray:
        """The (mean) parameter of the policy."""
        return self.thetas.mean(axis=0)

    def _sample(self, x, n, rng):
        if n == 0:
            return self.oracles.sample_ref(x, 0, rng)
        o = self.oracles
        k = self.thetas.shape[0]
        which = rng.integers(k, size=n) if k > 1 else np.zeros(n, dtype=int)
        anchors = o.sample_ref(x, n, rng)                        # one anchor y' ~ pi_ref per draw
        A = o.phi(x, anchors)
        Th = self.thetas[which]

        def f(ys, owner):                                        # each draw's own anchor and theta
            return truncated_score(o.phi(x, ys), A[owner], Th[owner], self.Sigma_inv, self.nu, self.truncation)

        def on_calibration_set(R, owners):                       # the same, for every (draw, R) pair at once
            return self._rows.scores(x, R, o.phi, A[owners], Th[owners], self.nu, self.truncation)

        ys, diag = self.sampler.sample(f, x, o, rng, n=n, per_draw=True, state=self.state,
                                       score_matrix=on_calibration_set)
        self.last_diagnostics = diag
        return ys

    def probs(self, x, rng=None):
        return self.laws(x, rng=rng).mean(axis=0)

    def laws(self, x, thetas=None, rng=None) -> np.ndarray:
        """Exact law of the next draw at x for each theta (rows; default: the policy's own thetas), shape (k, N).

        The truncation mask ||phi(y) - phi(a)||_{Sigma_span^{-1}} <= nu does not depend on theta, so it
        is shared by every theta (learning curves evaluate many round fits at once this way).
        """
        if self.sampler.resolved_mode != "envelope":
            raise ExactLawUnavailable("the paper-mode SoftmaxSampler (M_rej given) has a random Zhat_M; its law "
                                      "is evaluated by sampling")
        sup = self.exact_instance().support(x)
        thetas = self.thetas if thetas is None else np.atleast_2d(np.asarray(thetas, dtype=float))
        F, log_ref = sup.phi, sup.log_ref
        N = F.shape[0]
        if N > self.MAX_EXACT_RESPONSES:
            raise ExactLawUnavailable(f"exact probs enumerate N^2 pairs; N={N} exceeds {self.MAX_EXACT_RESPONSES}")
        p_ref = np.exp(log_ref)
        anchors = np.flatnonzero(p_ref > 0)
        k, m = thetas.shape[0], anchors.size
        beta, o = self.beta, self.oracles

        def S(R, owners, start=0):                               # owner = (theta j, anchor i) as j * m + i
            return self._rows.scores(x, R, o.phi, F[anchors[owners % m]], thetas[owners // m], self.nu,
                                     self.truncation)[:, start:] / beta

        # calibrate for every (theta, anchor) target, exactly as the next draw at x would for its own
        mx, lse, r, _ = self.sampler.calibrate(x, o, self._rng(rng), self.state, S, np.arange(k * m))
        log_E = mx.reshape(k, m)
        log_Z = lse.reshape(k, m) - math.log(r)
        Ncap = cap_N(log_E, log_Z, self.sampler.delta, N_MAX)
        fb = self.sampler.fallback if self.sampler.fallback in ("last", "ref") else "raise"
        q = sq_norms(F, self.Sigma_inv)
        out = np.zeros((k, N))
        chunk = max(1, int(self.LAW_CHUNK_ENTRIES // max(N * k, 1)))
        for start in range(0, m, chunk):
            sl = slice(start, start + chunk)
            a = anchors[sl]
            f = truncated_score_table(F, a, thetas, self.Sigma_inv, self.nu, self.truncation, sq_F=q)  # (k, c, N)
            law = emitted_law(log_ref, f.reshape(-1, N) / beta, log_E[:, sl].ravel(), Ncap[:, sl].ravel(), fb)
            out += np.einsum("c,kcn->kn", p_ref[a], law.reshape(k, a.size, N))   # mixture over anchors a ~ pi_ref
        return out
