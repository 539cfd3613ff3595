"""MTSS (MultiTurnSpannerSampling, paper-notes §2.4 and §3.4): token-level exploration.

Notation
--------
A, H        vocabulary size and horizon; a response is y = a_{1:H}.
s_h         the prefix (x, a_{1:h}); phi_h(s_h) in R^d the token-level features.
beta        KL-regularization; pi*_beta ∝ pi_ref exp(r*/beta), also token by token:
            pi*_h(a|s) = pi_{h,ref}(a|s) exp((Q*_h(s a) - V*_{h-1}(s))/beta).
Q*_h, V*_h  soft Bellman values: V*_H = r*, V*_h(s) = beta log E_{a~pi_{h+1,ref}(.|s)} exp(Q*_{h+1}(s a)/beta),
            Q*_h(s_h) = V*_h(s_h). Autoregressive realizability: Q*_h(s_h) = <theta*_h, phi_h(s_h)>.
theta_h     the layer-h estimate of theta*_h (ridge regression).
nu          optional truncation threshold on ||phi_h(s a) - phi_h(s a')||_{Sigma_h^{-1}}.
M_tok       per-token density-ratio bound of the token sampler (~ C_cond, not C_cov).
C_cond      token-level coverage max_h sup pi*_h / pi_{h,ref}; C_cov its sequence-level counterpart.

Every generated token is drawn by the token-level SoftmaxSampler from pi_{h,ref}(.|s) through the
counted oracle ``sample_next``, so a sequence costs about H x (per-token coverage) <= H C_cond token calls,
against ~ C_cov <= C_cond^H for sequence-level rejection sampling.

Pseudocode (the paper's box is not available; this is the library's reconstruction, paper-notes
§2.4 [RECON]; every open choice is a parameter)::

    theta_h = 0, Sigma_h = lam I, D_h = {}                      for h = 1..H
    [optional token-level spanner, T_span > 0] for h = 1..H, T_span prompts x ~ rho:
        s ~ pi_ref rolled in to depth h-1; draw (a, a') ~ pi_{h,ref}(.|s)^2 (up to N_try pairs) until
        ||phi_h(s a) - phi_h(s a')||_{Sigma_span,h^-1} > nu_span; then D_h += {s a, s a'} (rewards at h = H)
    for k = 1..K:                                                 # K = n_rounds
        x_i ~ rho, i = 1..n                                       # n = rollouts per round
        roll in token by token, a_h ~ TokenSampler(f_h; s_{h-1})  # k = 1: pi_ref itself (theta = 0)
            f_h(a) = <theta_h, phi_h(s a) - phi_h(s a')> [* 1{||.||_{Sigma_h^-1} <= nu}], a' ~ pi_ref(.|s)
            (without truncation the anchor a' cancels in the softmax and is not drawn)
        r_i = R(x_i, y_i)                                         # one reward query per rollout
        D_h += {s_{i,h}}; for h < H store a_j ~ pi_{h+1,ref}(.|s_{i,h}), j = 1..m   (targets='sample')
        # backward induction (soft least-squares value iteration)
        theta_H = ridge(phi_H(s_H) -> r)
        for h = H-1..1:
            target(s_h) = beta log mean_j exp(<theta_{h+1}, phi_{h+1}(s_h a_j)>/beta)   ('sample')
                        | beta log sum_a pi_ref(a|s_h) exp(<theta_{h+1}, phi_{h+1}(s_h a)>/beta)  ('logprob')
            theta_h = ridge(phi_h(s_h) -> target)
        Sigma_h = lam I + sum_{D_h} phi_h phi_h^T
    output: the token-level sampler with theta_{1:H} (improper: a rejection sampler, not a pi_theta)

Open choices (parameters): the token-level spanner phase (off by default, ``T_span = 0``; its pairs
are labelled like any other state: rewards at layer H, soft-value targets below); roll-in with the
current estimate (default) or with pi_ref ('ref');
value targets from m pi_ref samples (log-mean-exp, biased by O(beta Var/m)) or from one
next-token-distribution query (exact, 'logprob'); truncation off by default (``nu=None``; with a
threshold, reward or policy truncation around a pi_ref anchor token as in SpannerSampling); ridge
``lam``; rounds K and rollouts n (default recipe n K = ceil(c_T d H log(1/delta) / min(eps, beta)));
the token sampler's envelope (M_tok None: certified by the vocabulary's scores for small vocabularies,
self-calibrated for large ones; M_tok given: the paper's sampler; no C_cond is ever read), its mode
('rejection' or 'logprob'), failure probability and fallback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ..core.algorithm import Algorithm, RunState
from ..core.errors import (ExactLawUnavailable, check_choice, check_count, check_int, check_memory,
                           check_real, check_recipe_size)
from ..core.ledger import checkpoint
from ..core.oracles import Oracles
from ..core.policy import Policy
from ..core.problem import Problem
from ..design import find_informative_pair, sherman_morrison
from ..estimation import ridge_fit, ridge_solve
from ..sampling.scores import TRUNCATIONS, prompt_counts, truncated_score
from ..sampling import SamplerState
from ..sampling.token_sampler import TOKEN_FALLBACKS, TokenSoftmaxSampler


@dataclass(frozen=True)
class MTSS(Algorithm):
    """Token-level exploration with per-token SoftmaxSamplers and soft value iteration.

    Parameters
    ----------
    eps, delta : target accuracy and failure probability (used by the default recipe).
    n_rounds : K, data-collection rounds (each followed by backward induction), >= 1.
    rollouts : n, trajectories (= reward queries) per round; None = recipe.
    c_T : constant of the recipe n K = ceil(c_T d H log(1/delta) / min(eps, beta)).
    lam : ridge regularization, > 0.
    roll_in : 'policy' (current estimate; the first round is pi_ref) or 'ref' (always pi_ref).
    targets : 'sample' (m_target pi_ref draws per state, log-mean-exp) or 'logprob' (exact).
    m_target : m, next-token draws per state for 'sample' targets.
    nu : truncation threshold (None = no truncation).
    truncation : 'reward' (score 0 outside the covered set) or 'policy' (probability 0 there).
    M_tok : None (default: an envelope without any bound: certified by enumerating the vocabulary's scores
        when it has at most ``vocab_limit`` tokens, self-calibrated otherwise) or a per-token density-ratio
        bound >= 1 for the paper's sampler.
    vocab_limit : largest vocabulary whose scores are enumerated for the certified envelope.
    delta_tok : per-token failure probability; None = delta / (4 (n K H + 1)).
    sampler_mode : 'rejection' or 'logprob' (see :mod:`spanex.sampling.token_sampler`).
    sampler_batch, fallback : token sampler options.
    T_span, N_try, nu_span : optional token-level spanner phase before the rounds (T_span prompts per
        layer, 0 = off; up to N_try pi_ref token pairs per prompt; informative above nu_span).
    """

    eps: float = 0.05
    delta: float = 0.1
    n_rounds: int = 4
    rollouts: int | None = None
    c_T: float = 1.0
    lam: float = 1.0
    roll_in: str = "policy"
    targets: str = "sample"
    m_target: int = 32
    nu: float | None = None
    truncation: str = "reward"
    M_tok: float | None = None
    vocab_limit: int = 256
    delta_tok: float | None = None
    sampler_mode: str = "rejection"
    sampler_batch: int | None = None
    fallback: str = "last"
    T_span: int = 0
    N_try: int = 64
    nu_span: float = 1.0

    name = "mtss"

    def __post_init__(self):
        check_real("eps", self.eps, low=0, low_open=True)
        check_real("delta", self.delta, low=0, high=1, low_open=True, high_open=True)
        check_int("n_rounds", self.n_rounds, low=1)
        if self.rollouts is not None:
            check_count("rollouts", self.rollouts)                             # prompts drawn at once per round
        check_real("c_T", self.c_T, low=0, low_open=True)
        check_real("lam", self.lam, low=0, low_open=True)
        check_choice("roll_in", self.roll_in, ("policy", "ref"))
        check_choice("targets", self.targets, ("sample", "logprob"))
        check_count("m_target", self.m_target)
        if self.nu is not None:
            check_real("nu", self.nu, low=0, low_open=True)
        check_choice("truncation", self.truncation, TRUNCATIONS)
        if self.M_tok is not None:
            check_real("M_tok", self.M_tok, low=1, high=1e12)
        check_int("vocab_limit", self.vocab_limit, low=1, high=1 << 24)
        if self.delta_tok is not None:
            check_real("delta_tok", self.delta_tok, low=0, high=1, low_open=True, high_open=True)
        check_choice("sampler_mode", self.sampler_mode, ("rejection", "logprob"))
        if self.sampler_batch is not None:
            check_int("sampler_batch", self.sampler_batch, low=1, high=1 << 30)   # the token sampler's range
        check_choice("fallback", self.fallback, TOKEN_FALLBACKS)
        check_count("T_span", self.T_span, low=0)                              # prompts drawn at once per layer
        check_int("N_try", self.N_try, low=1)
        check_real("nu_span", self.nu_span, low=0, low_open=True)

    def check_problem(self, problem: Problem) -> None:
        if problem.token_model is None or problem.token_phi is None:
            raise ValueError(f"MTSS needs token-level access (problem.token_model and problem.token_phi); "
                             f"problem {problem.name!r} lacks them")
        if problem.reward is None:
            raise ValueError(f"MTSS regresses rewards and needs a reward oracle; problem {problem.name!r} "
                             "offers preferences only")

    # ---- the recipe ------------------------------------------------------------------------------
    def resolve(self, problem: Problem) -> dict:
        """The parameters this run uses: the given ones, and the recipe for those left None."""
        H, d, beta = problem.token_model.horizon, problem.token_phi.dim, problem.beta
        if self.rollouts is not None:
            n = self.rollouts
        else:
            T = math.ceil(check_recipe_size("rollouts", lambda: self.c_T * d * H * math.log(1 / self.delta)
                                            / min(self.eps, beta), "c_T d H log(1/delta) / min(eps, beta)",
                                            c_T=self.c_T, d=d, H=H, delta=self.delta, eps=self.eps, beta=beta))
            n = max(1, math.ceil(T / self.n_rounds))
        check_memory(f"rollouts x H = {n} x {H} tokens per round", n * (H + 1))
        A = problem.token_model.vocab_size
        if self.sampler_mode == "logprob":
            M_tok, source = None, "unused (logprob mode)"
        elif self.M_tok is not None:
            M_tok, source = float(self.M_tok), "given (paper's sampler)"
        elif A <= self.vocab_limit:
            M_tok, source = None, "certified envelope (vocabulary scores enumerated)"
        else:
            M_tok, source = None, "self-calibrating envelope"
        delta_tok = self.delta_tok if self.delta_tok is not None else max(
            self.delta / (4 * (n * self.n_rounds * H + 1)), 1e-12)                # the token sampler's range
        return dict(H=H, d=d, rollouts=int(n), T_data=int(n * self.n_rounds), M_tok=M_tok, M_source=source,
                    delta_tok=float(delta_tok))

    # ---- the algorithm --------------------------------------------------------------------------
    def sampler(self, cfg: dict, beta: float) -> TokenSoftmaxSampler:
        """The token sampler of the roll-ins and of the output policy."""
        mode = "logprob" if self.sampler_mode == "logprob" else "auto"
        return TokenSoftmaxSampler(beta=beta, M=cfg["M_tok"], delta=cfg["delta_tok"], batch_size=self.sampler_batch,
                                   fallback=self.fallback, mode=mode, vocab_limit=self.vocab_limit)

    def _run(self, problem: Problem, oracles: Oracles, rng: np.random.Generator, state: RunState) -> None:
        cfg = self.resolve(problem)
        state.extras["resolved"] = cfg
        H, d, beta, n = cfg["H"], cfg["d"], problem.beta, cfg["rollouts"]
        sampler = self.sampler(cfg, beta)
        calib = SamplerState()                                          # per-prefix calibration (large vocabularies)
        thetas = np.zeros((H, d))                                       # theta_h = 0: pi_hat = pi_ref
        Sigma_inv = np.broadcast_to(np.eye(d) / self.lam, (H, d, d)).copy()
        X = [np.zeros((0, d)) for _ in range(H)]                        # phi_h(s_h) of the states in D_h
        C = [np.zeros((0, 0, d)) for _ in range(H - 1)]                 # phi_{h+1} of stored children
        LP = [np.zeros((0, 0)) for _ in range(H - 1)]                   # their log pi_ref ('logprob' only)
        R = [np.zeros(0)]                                               # rewards of D_H
        to_resp = _response_converter(problem)

        def add_states(h, x, states):
            """D_h += states (prefixes of length h at prompt x), with stored children when h < H."""
            X[h - 1] = np.concatenate([X[h - 1], oracles.token_phi(x, states)])
            if h < H:                                                   # children for the layer-h targets
                c, lp = self._children(oracles, x, states, rng)
                C[h - 1] = c if C[h - 1].size == 0 else np.concatenate([C[h - 1], c])
                if lp is not None:
                    LP[h - 1] = lp if LP[h - 1].size == 0 else np.concatenate([LP[h - 1], lp])
            else:
                R[0] = np.concatenate([R[0], oracles.reward(x, to_resp(np.asarray(states)), rng)])  # r = R(x, y)

        def make_policy(th, Si):
            return MTSSPolicy(th, Si, self.nu, beta, sampler, self.truncation, state=calib)

        state.policy = make_policy(thetas, Sigma_inv)
        totals = dict(clipped=0, failures=0, draws=0)
        if state.progress is not None:
            state.progress.total = self.n_rounds
        def refit():
            """Backward induction on D_1..D_H, the designs Sigma_h, and the current output policy."""
            th = self._fit(X, C, LP, R[0], beta)
            for h in range(H):
                checkpoint()
                A = self.lam * np.eye(d) + X[h].T @ X[h]
                Sigma_inv[h] = ridge_solve(A, np.eye(d), self.lam, float(np.trace(A)) - d * self.lam,
                                           f"MTSS's layer-{h + 1} design")
            state.policy = make_policy(th.copy(), Sigma_inv.copy())
            return th

        # ---- optional token-level spanner phase: informative pi_ref token pairs at every layer ----
        if self.T_span > 0:
            sizes = [self._token_spanner(oracles, rng, h, add_states) for h in range(1, H + 1)]
            thetas = refit()
            state.extras["spanner_sizes"] = sizes
            state.log(round=0, phase="spanner", T_data=oracles.ledger.reward_queries,
                      T_comp=oracles.ledger.sample_calls, spanner_sizes=sizes, theta=thetas.tolist())
        for k in range(self.n_rounds):
            xs = np.asarray(oracles.prompts(n, rng)).tolist()           # x_i ~ rho
            ref = self.roll_in == "ref" or X[H - 1].shape[0] == 0       # no reward data yet: theta = 0, pi_ref
            for x, cnt in prompt_counts(xs):                            # distinct x, cnt rollouts each
                # roll in token by token with the current estimate (pi_ref itself when theta = 0)
                toks, diag = rollout(oracles, x, cnt, H, None if ref else thetas, Sigma_inv, self.nu, beta,
                                     sampler, self.truncation, rng, calib)
                if diag is not None:
                    totals["clipped"] += int(diag["clipped"])
                    totals["failures"] += int(diag["failures"])
                    totals["draws"] += int(diag["draws"])
                for h in range(1, H + 1):                               # D_h += {s_{i,h}}; r_i = R(x_i, y_i)
                    add_states(h, x, [tuple(int(v) for v in row) for row in toks[:, :h]])
            thetas = refit()                                            # backward induction
            state.log(round=k + 1, phase="explore", T_data=oracles.ledger.reward_queries,
                      T_comp=oracles.ledger.sample_calls, token_calls=oracles.ledger.count("token"),
                      roll_in="ref" if ref else "policy", theta=thetas.tolist())
            if state.progress is not None:
                state.progress.update(1)
        state.extras.update(sampler_clipped=totals["clipped"], sampler_failures=totals["failures"],
                            sampler_draws=totals["draws"], theta_hat=thetas.tolist())

    def _fit(self, X, C, LP, R, beta) -> np.ndarray:
        """Backward induction (soft least-squares value iteration) on the data D_1..D_H."""
        H, d = len(X), X[0].shape[1]
        thetas = np.zeros((H, d))
        thetas[H - 1] = ridge_fit(X[H - 1], R, self.lam)                # theta_H: ridge of r on phi_H
        for h in range(H - 1, 0, -1):
            checkpoint()                                                # a run's max_seconds bounds the refit too
            if X[h - 1].shape[0] == 0:                                  # no data at this layer yet
                continue
            s = C[h - 1] @ thetas[h] / beta                             # <theta_{h+1}, phi_{h+1}(s_h a)>/beta
            if self.targets == "sample":                                # beta log mean_j exp(.)
                target = beta * (logsumexp(s, axis=1) - math.log(s.shape[1]))
            else:                                                       # beta log sum_a pi_ref(a|s_h) exp(.)
                target = beta * logsumexp(LP[h - 1] + s, axis=1)
            thetas[h - 1] = ridge_fit(X[h - 1], target, self.lam)
        return thetas

    def _token_spanner(self, oracles, rng, h, add_states) -> int:
        """Token-level spanner at layer h; returns the number of accepted pairs.

        For T_span prompts x ~ rho: roll in pi_ref to depth h-1 (prefix s), then draw token pairs
        (a, a') ~ pi_{h,ref}(.|s)^2 in doubling batches until ||phi_h(s a) - phi_h(s a')||_{Sigma^{-1}} > nu_span
        or N_try pairs are drawn. An informative pair adds s a and s a' to D_h (two reward queries at
        h = H; stored children at h < H) and Sigma += v v^T. Every drawn token is counted.
        """
        d = oracles.problem.token_phi.dim
        Sinv = np.eye(d) / self.lam
        accepted = 0
        for x, cnt in prompt_counts(np.asarray(oracles.prompts(self.T_span, rng)).tolist()):
            toks, _ = rollout(oracles, x, cnt, h - 1, None, None, None, 1.0, None, "reward", rng)   # s ~ pi_ref
            for row in toks:
                s = tuple(int(v) for v in row)

                def draw_pairs(k, x=x, s=s):                            # k pairs (a, a') ~ pi_ref(.|s)^2
                    a = oracles.sample_next(x, [s] * (2 * k), rng)
                    F = oracles.token_phi(x, [s + (int(t),) for t in a])
                    return F[:k] - F[k:], a

                hit = find_informative_pair(draw_pairs, Sinv, self.nu_span, self.N_try)
                if hit is not None:
                    a, k, i, v = hit
                    add_states(h, x, [s + (int(a[i]),), s + (int(a[k + i]),)])
                    Sinv = sherman_morrison(Sinv, v)                    # Sigma_span,h += v v^T
                    accepted += 1
        return accepted

    def _children(self, oracles, x, states, rng):
        """Stored children of layer-h states for the value targets: features (N, m or A, d) [+ log pi_ref]."""
        N = len(states)
        if self.targets == "sample":
            m = self.m_target
            par = [s for s in states for _ in range(m)]
            a = oracles.sample_next(x, par, rng)                        # a_j ~ pi_{h+1,ref}(.|s_h)
            feats = oracles.token_phi(x, [p + (int(t),) for p, t in zip(par, a)])
            return feats.reshape(N, m, -1), None
        P = oracles.next_probs(x, states)                               # one logprob query per state
        A = P.shape[1]
        feats = oracles.token_phi(x, [s + (a,) for s in states for a in range(A)])
        with np.errstate(divide="ignore"):
            return feats.reshape(N, A, -1), np.log(P)


def rollout(oracles: Oracles, x, n: int, H: int, thetas, Sigma_inv, nu, beta: float, sampler: TokenSoftmaxSampler,
            truncation: str, rng: np.random.Generator, state: SamplerState | None = None):
    """n responses at prompt x, token by token; returns ((n, H) tokens, sampler summary or None).

    ``thetas=None`` rolls out pi_ref itself (one 'token' call per token). Otherwise layer h draws
    a_h ~ TokenSampler(f_h; s_{h-1}) with f_h(a) = <theta_h, phi_h(s a)> (no truncation), or, with a
    threshold nu, f_h(a) = <theta_h, phi_h(s a) - phi_h(s a')> on the covered set around an anchor
    a' ~ pi_ref(.|s) (one extra token call), 0 ('reward') or -inf ('policy') outside it. ``state`` holds the
    sampler's per-prefix calibration sets (used when the vocabulary is too large to enumerate).
    """
    toks = np.zeros((n, 0), dtype=np.int64)
    summ = None if thetas is None else dict(clipped=0, failures=0, draws=0, calls=0)
    for h in range(1, H + 1):
        prefixes = [tuple(int(v) for v in row) for row in toks]
        if thetas is None:
            a = oracles.sample_next(x, prefixes, rng)
        else:
            a, diag = next_tokens(oracles, x, prefixes, thetas[h - 1], None if Sigma_inv is None else Sigma_inv[h - 1],
                                  nu, sampler, truncation, rng, state)
            summ["clipped"] += int(diag.clipped.sum())
            summ["failures"] += int((~diag.accepted).sum())
            summ["draws"] += int(diag.accepted.size)
            summ["calls"] += int(diag.calls.sum())
        toks = np.concatenate([toks, np.asarray(a, dtype=np.int64).reshape(n, 1)], axis=1)
    return toks, summ


def next_tokens(oracles: Oracles, x, prefixes, theta, Sigma_inv, nu, sampler: TokenSoftmaxSampler, truncation: str,
                rng: np.random.Generator, state: SamplerState | None = None):
    """One token per prefix from the (truncated) tilt of pi_ref by <theta, phi_h>; see :func:`rollout`."""
    if nu is None:
        def score(i, toks):
            p = prefixes[i]
            return oracles.token_phi(x, [p + (int(t),) for t in toks]) @ theta
        return sampler.sample(score, x, prefixes, oracles, rng, state=state)
    anchors = oracles.sample_next(x, prefixes, rng)                     # a' ~ pi_ref(.|s), one per draw
    phi_a = oracles.token_phi(x, [p + (int(t),) for p, t in zip(prefixes, anchors)])

    def score(i, toks):                                                 # f_h(a), truncated around a'
        return truncated_score(oracles.token_phi(x, [prefixes[i] + (int(t),) for t in toks]), phi_a[i], theta,
                               Sigma_inv, nu, truncation)
    keys = [(p, int(t)) for p, t in zip(prefixes, anchors)]
    return sampler.sample(score, x, prefixes, oracles, rng, keys=keys, state=state)


class MTSSPolicy(Policy):
    """The improper output of MTSS: a token-level sampler with theta_{1:H}.

    ``sample(x, n, rng)`` rolls out n responses token by token; every token is drawn by the
    token-level SoftmaxSampler through ``oracles.sample_next`` (counted under the bound label).
    Responses come back in the problem's sequence format (``problem.base.from_tokens`` when the
    base model offers it, else a list of token tuples).

    ``probs(x)`` is the exact law of what ``sample`` emits over the A^H sequence indices of an
    enumerable token tree: per prefix s the tilt pi_ref(.|s) exp(f_h/beta) normalized, averaged over the
    anchor a' ~ pi_ref(.|s) when truncating. Every draw follows that tilt exactly when the token sampler
    enumerates the vocabulary's scores (a certified envelope, the default for small vocabularies) or uses
    log-probabilities; otherwise (a calibrated or paper-mode envelope, random at every prefix) the law
    has no closed form and ``probs`` raises ExactLawUnavailable (evaluation samples it).
    """

    def __init__(self, thetas, Sigma_inv, nu, beta, sampler: TokenSoftmaxSampler, truncation="reward", oracles=None,
                 state: SamplerState | None = None):
        super().__init__(oracles)
        self.state = state if state is not None else SamplerState()
        self.thetas = np.asarray(thetas, dtype=float)
        self.Sigma_inv = np.asarray(Sigma_inv, dtype=float)
        self.nu = None if nu is None else float(nu)
        self.beta, self.sampler, self.truncation = float(beta), sampler, truncation
        self.last_diagnostics = None

    @property
    def H(self) -> int:
        return self.thetas.shape[0]

    def _sample(self, x, n, rng):
        toks, summ = rollout(self.oracles, x, n, self.H, self.thetas, self.Sigma_inv, self.nu, self.beta,
                             self.sampler, self.truncation, rng, self.state)
        self.last_diagnostics = summ
        return _response_converter(self.oracles.problem)(toks)

    def log_conditionals(self, x) -> list[np.ndarray]:
        """[log q_1, ..., log q_H], log q_h of shape (A^h,) at the index of a_{1:h} (enumerable trees)."""
        ex = self.exact_instance()
        if not hasattr(ex, "log_ref_cond") or not hasattr(ex, "phi_layer"):
            raise ExactLawUnavailable("exact probabilities need an enumerable token tree (TokenTreeInstance)")
        A, out = ex.A, []
        self.sampler.check_exact_law(A)
        for h in range(1, self.H + 1):
            Phi = ex.phi_layer(x, h)
            P = Phi.shape[0] // A
            lr = ex.log_ref_cond(x, h).reshape(P, A)
            if self.nu is None:                                         # the tilt by <theta_h, phi_h>
                z = lr + (Phi @ self.thetas[h - 1]).reshape(P, A) / self.beta
                out.append((z - logsumexp(z, axis=1, keepdims=True)).reshape(-1))
                continue
            F = Phi.reshape(P, A, -1)
            q = np.zeros((P, A))
            for b in range(A):                                          # anchor a' = b ~ pi_ref(.|s)
                f = truncated_score(F, F[:, b:b + 1, :], self.thetas[h - 1], self.Sigma_inv[h - 1], self.nu,
                                    self.truncation)
                z = lr + f / self.beta
                q += np.exp(lr[:, b:b + 1]) * np.exp(z - logsumexp(z, axis=1, keepdims=True))
            with np.errstate(divide="ignore"):
                out.append(np.log(q).reshape(-1))
        return out

    def probs(self, x):
        ex = self.exact_instance()
        if not hasattr(ex, "sequence_law"):
            raise ExactLawUnavailable("exact probabilities need an enumerable token tree (TokenTreeInstance)")
        return ex.sequence_law(self.log_conditionals(x))


def _response_converter(problem: Problem):
    """(n, H) tokens -> the problem's sequence-level response format."""
    conv = getattr(problem.base, "from_tokens", None)
    if conv is not None:
        return conv
    return lambda toks: [tuple(int(v) for v in row) for row in np.asarray(toks)]


