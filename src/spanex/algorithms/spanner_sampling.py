"""SpannerSampling (paper-notes §2.2-§2.3): improper, inference-time exploration with the weak oracle.

Notation
--------
beta      KL-regularization; the target is pi*_beta ∝ pi_ref exp(r*/beta).
phi       feature map; relative features phi(x, y, y') = phi(x, y) - phi(x, y').
theta     parameter of the linear reward <theta, phi>; theta^t is the ridge (or Bradley–Terry) fit.
nu        spanner / truncation threshold on ||phi(x,y,y')||_{Sigma_span^{-1}}.
Sigma_span, Psi_span   design matrix and accepted pairs of the Phase-1 spanner.
M_rej, delta_rej       SoftmaxSampler's density-ratio bound and failure probability.
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

    T_exp  = ceil(c2 R_max^2 d^2 log^2(1/delta) / (beta min(eps, beta)))
    T_span = ceil(c3 T_exp);  N_try = ceil(c4 M_rej (R_max/beta)^2 T_exp)  (capped by n_try_max)
    nu     = max(c1 beta / (R_max sqrt(d log(T_exp/delta))), sqrt(d / T_span))
             (the second term is the smallest threshold T_span spanner pairs can reach: below it
             most pairs stay uncovered and reward truncation returns pi_ref)
    M_rej  = e^2 C_cov when the problem knows C_cov exactly, else exp(2 R_max/beta) (C_cov's worst case
             for rewards in [-R_max, R_max]); delta_rej = delta / (4 (T_exp + 1))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.algorithm import Algorithm, RunState
from ..core.errors import BudgetExhausted, check_choice, check_int, check_real
from ..core.oracles import Oracles
from ..core.policy import Policy
from ..core.problem import Problem
from ..design import build_spanner, pair_feedback, resolve_feedback, spanner_size_bound, sq_norms
from ..estimation import FEEDBACK_LOSS, PairwiseFit
from ..sampling import FALLBACKS, SoftmaxSampler
from ..sampling.scores import EXP_GUARD, TRUNCATIONS, truncated_score, truncated_score_table

#: the largest M_rej the worst-case default exp(2 R_max/beta) may choose. A SoftmaxSampler draw costs
#: about 2 M_rej oracle calls, so beyond this a run would quietly spend > 1e7 calls per round; the user
#: must then pass M_rej (an upper bound on C_cov) instead
_M_WORST_CASE_CAP = 1e7
#: the feedback each ``regression`` loss is fitted on
_REGRESSION_FEEDBACK = {"auto": "auto", "squared": "reward", "logistic": "preference"}


@dataclass(frozen=True)
class SpannerSampling(Algorithm):
    """SpannerSampling; see the module docstring for the notation, pseudocode and recipe.

    Parameters
    ----------
    eps, delta : target suboptimality (> 0) and failure probability (in (0, 1)) of the recipe.
    nu, T_span, N_try, T_exp, M_rej, delta_rej : override the recipe (None = recipe).
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
    c4: float = 1e-3
    n_try_max: int | None = None
    truncation: str = "reward"
    output: str = "final"
    regression: str = "auto"
    sampler_batch: int | None = None
    fallback: str = "last"
    project: bool = False
    refit_factor: float = 1.1
    trace_theta: bool = True

    name = "spanner_sampling"

    def __post_init__(self):
        check_real("eps", self.eps, low=0, low_open=True)
        check_real("delta", self.delta, low=0, high=1, low_open=True, high_open=True)
        check_real("lam", self.lam, low=0, low_open=True)
        for c in ("c1", "c2", "c3", "c4"):
            check_real(c, getattr(self, c), low=0, low_open=True)
        if self.nu is not None:
            check_real("nu", self.nu, low=0, low_open=True)
        for k in ("T_span", "T_exp"):
            if getattr(self, k) is not None:
                check_int(k, getattr(self, k), low=0)
        for k in ("N_try", "n_try_max", "sampler_batch"):
            if getattr(self, k) is not None:
                check_int(k, getattr(self, k), low=1)
        if self.M_rej is not None:
            check_real("M_rej", self.M_rej, low=1)
        if self.delta_rej is not None:
            check_real("delta_rej", self.delta_rej, low=0, high=1, low_open=True, high_open=True)
        check_choice("truncation", self.truncation, TRUNCATIONS)
        check_choice("output", self.output, ("final", "mixture"))
        check_choice("regression", self.regression, ("auto", "squared", "logistic"))
        check_choice("fallback", self.fallback, FALLBACKS)
        check_real("refit_factor", self.refit_factor, low=1)

    # ---- the recipe ------------------------------------------------------------------------------
    def resolve(self, problem: Problem) -> dict:
        """The parameters this run uses: the given ones, and the recipe for those left None."""
        R, d, beta = problem.R_max, problem.d, problem.beta
        log1d = math.log(1 / self.delta)
        T_exp = self.T_exp if self.T_exp is not None else max(
            1, math.ceil(self.c2 * R**2 * d**2 * log1d**2 / (beta * min(self.eps, beta))))
        T_span = self.T_span if self.T_span is not None else math.ceil(self.c3 * T_exp)
        # a spanner of T_span pairs has Sigma ~ T_span E[v v^T], so typical pairs have squared norm
        # ~ d / T_span: a threshold below sqrt(d / T_span) leaves most pairs uncovered (output ≈ pi_ref)
        nu_reachable = math.sqrt(d / max(T_span, 1))
        nu_theory = self.c1 * beta / (R * math.sqrt(d * math.log(max(T_exp, 2) / self.delta)))
        nu = self.nu if self.nu is not None else max(nu_theory, nu_reachable)
        if self.M_rej is not None:
            M_rej, M_source = float(self.M_rej), "given"
        elif problem.exact is not None and hasattr(problem.exact, "C_cov"):
            M_rej, M_source = math.e**2 * float(problem.exact.C_cov(beta)), "e^2 * C_cov (known)"
        else:
            M_rej, M_source = math.exp(min(2 * R / beta, EXP_GUARD)), "exp(2 R_max / beta) (worst case)"
            if M_rej > _M_WORST_CASE_CAP:
                raise ValueError(f"M_rej: the worst-case bound exp(2 R_max/beta) = {M_rej:.3g} exceeds "
                                 f"{_M_WORST_CASE_CAP:.0e}; pass M_rej (an upper bound on C_cov) explicitly")
        delta_rej = self.delta_rej if self.delta_rej is not None else self.delta / (4 * (T_exp + 1))
        if self.N_try is not None:
            N_try = self.N_try
        else:
            N_try = max(1, math.ceil(self.c4 * M_rej * (R / beta) ** 2 * T_exp))
        if self.n_try_max is not None:
            N_try = min(N_try, self.n_try_max)
        feedback = resolve_feedback(problem, _REGRESSION_FEEDBACK[self.regression],
                                    what=f"regression={self.regression!r}")
        regression = FEEDBACK_LOSS[feedback]
        return dict(T_exp=int(T_exp), nu=float(nu), nu_theory=float(nu_theory), nu_reachable=float(nu_reachable),
                    M_rej=float(M_rej), M_source=M_source,
                    delta_rej=float(delta_rej), T_span=int(T_span), N_try=int(N_try), regression=regression,
                    feedback=feedback,
                    spanner_size_bound=spanner_size_bound(d, nu, self.lam, 2 * problem.feature_norm_bound))

    # ---- the algorithm --------------------------------------------------------------------------
    def _run(self, problem: Problem, oracles: Oracles, rng: np.random.Generator, state: RunState) -> None:
        cfg = self.resolve(problem)
        state.extras["resolved"] = cfg
        if state.progress is not None:
            state.progress.total = cfg["T_span"] + cfg["T_exp"]
        est = PairwiseFit(problem.d, self.lam, cfg["regression"], refit_factor=self.refit_factor,
                          radius=problem.B if self.project else None)
        sampler = SoftmaxSampler(beta=problem.beta, M=cfg["M_rej"], delta=cfg["delta_rej"],
                                 batch_size=self.sampler_batch, fallback=self.fallback)
        partial = {}

        def make_policy(thetas, Sigma_inv):
            return SpannerSamplingPolicy(np.atleast_2d(thetas), Sigma_inv, cfg["nu"], problem.beta, sampler,
                                         self.truncation)

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
        state.policy = make_policy(est.theta, Sigma_inv)

        # ---- Phase 2: inference-time exploration ----
        xs = oracles.prompts(cfg["T_exp"], rng) if cfg["T_exp"] else []
        sampler_calls, failures, clipped = 0, 0, 0
        for t in range(cfg["T_exp"]):
            theta_t = est.theta                                          # theta_t = argmin squared/logistic loss
            thetas.append(theta_t)
            x = xs[t]                                                    # x ~ rho
            y2 = oracles.sample_ref(x, 1, rng)                           # anchor y2 ~ pi_ref(.|x)
            phi2 = oracles.phi(x, y2)[0]

            def f(ys, x=x, phi2=phi2, theta_t=theta_t):                 # f_t(y), truncated around y2
                return truncated_score(oracles.phi(x, ys), phi2, theta_t, Sigma_inv, cfg["nu"], self.truncation)
            y1, diag = sampler.sample(f, x, oracles, rng)                # y1 ~ SoftmaxSampler(f_t; x)
            fb = pair_feedback(oracles, x, y1, y2, rng, cfg["feedback"])[0]   # r1 - r2, or b
            est.add((oracles.phi(x, y1)[0] - phi2)[None, :], [fb])      # D += (x, y1, y2, feedback)
            sampler_calls += int(diag.calls.sum())
            failures += int((~diag.accepted).sum())
            clipped += int(diag.clipped.sum())
            row = dict(phase="explore", round=t + 1, T_data=oracles.ledger.reward_queries,
                       T_comp=oracles.ledger.sample_calls, sampler_calls=int(diag.calls[0]),
                       accepted=bool(diag.accepted[0]), clipped=bool(diag.clipped[0]),
                       ratio_bound=float(diag.ratio_bound[0]))
            if self.trace_theta:
                row["theta"] = theta_t.tolist()
            state.log(**row)
            state.policy = make_policy(np.array(thetas) if self.output == "mixture" else est.theta, Sigma_inv)
            if state.progress is not None:
                state.progress.update(1)
        state.extras.update(sampler_calls=sampler_calls, sampler_failures=failures, sampler_clipped=clipped)
        final = np.array(thetas) if (self.output == "mixture" and thetas) else est.theta
        state.policy = make_policy(final, Sigma_inv)
        state.extras["theta_hat"] = est.theta.tolist()


class SpannerSamplingPolicy(Policy):
    """The improper output of SpannerSampling.

    To sample at x: pick theta (the final fit, or uniformly one of the round fits for 'mixture'),
    draw an anchor y' ~ pi_ref(.|x), and return SoftmaxSampler's draw from
    q(y) ∝ pi_ref(y|x) exp(f(y)/beta) with the truncated score f. All draws go through the oracles
    the policy is bound to (label 'inference' for a Result's policy).

    ``probs(x)`` is the exact *ideal* law on an exact instance: the pi_ref-mixture over anchors (and
    over thetas) of the truncated tilts, i.e. what the sampler produces when it neither clips nor
    fails (M_rej above the density ratio). It costs O(k N^2) for k thetas and N responses.
    """

    #: exact probs enumerate anchor x response pairs; refuse beyond this many responses
    MAX_EXACT_RESPONSES = 20000
    #: exact laws are computed for blocks of anchors holding about this many (theta, anchor, response)
    #: entries (32 MB per float64 array), so memory stays bounded whatever N and the number of thetas
    LAW_CHUNK_ENTRIES = 4_000_000

    def __init__(self, thetas, Sigma_inv, nu, beta, sampler: SoftmaxSampler, truncation="reward", oracles=None):
        super().__init__(oracles)
        self.thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
        self.Sigma_inv = np.asarray(Sigma_inv, dtype=float)
        self.nu, self.beta, self.sampler, self.truncation = float(nu), float(beta), sampler, truncation
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

        ys, diag = self.sampler.sample(f, x, o, rng, n=n, per_draw=True)
        self.last_diagnostics = diag
        return ys

    def probs(self, x):
        return self.laws(x).mean(axis=0)

    def laws(self, x, thetas=None) -> np.ndarray:
        """Exact ideal law at x for each theta (rows; default: the policy's own thetas), shape (k, N).

        The truncation mask ||phi(y) - phi(a)||_{Sigma_span^{-1}} <= nu does not depend on theta, so it
        is computed once per chunk of anchors a and shared by every theta (learning curves evaluate
        many round fits at once this way).
        """
        ex = self.oracles.problem.exact if self.oracles is not None else None
        if ex is None or not hasattr(ex, "features"):
            raise NotImplementedError("exact probabilities need an exact (tabular) instance")
        thetas = self.thetas if thetas is None else np.atleast_2d(np.asarray(thetas, dtype=float))
        F = ex.features[int(x)]
        N = F.shape[0]
        if N > self.MAX_EXACT_RESPONSES:
            raise ValueError(f"exact probs enumerate N^2 pairs; N={N} exceeds {self.MAX_EXACT_RESPONSES}")
        log_ref, p_ref = ex.log_ref[int(x)], ex.ref_probs[int(x)]
        q = sq_norms(F, self.Sigma_inv)                         # ||phi_y||^2 in Sigma^{-1}, shared by the chunks
        anchors = np.flatnonzero(p_ref > 0)
        k = thetas.shape[0]
        out = np.zeros((k, N))
        chunk = max(1, int(self.LAW_CHUNK_ENTRIES // max(N * k, 1)))
        for start in range(0, anchors.size, chunk):
            a = anchors[start:start + chunk]
            f = truncated_score_table(F, a, thetas, self.Sigma_inv, self.nu, self.truncation, sq_F=q)  # (k, m, N)
            z = log_ref + f / self.beta                         # log of the tilt pi_ref exp(f/beta), per anchor
            z -= z.max(axis=2, keepdims=True)                   # the anchor itself is always covered: finite max
            w = np.exp(z)
            w /= w.sum(axis=2, keepdims=True)
            for j in range(k):
                out[j] += p_ref[a] @ w[j]                       # mixture over the anchors a ~ pi_ref
        return out
