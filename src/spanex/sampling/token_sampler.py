"""Token-level SoftmaxSampler: one next token a ~ q(a|s) ∝ pi_{h,ref}(a|s) exp(f(s, a)/beta).

This is SoftmaxSampler (paper-notes §2.1) applied to one next-token distribution instead of a whole
response: proposals are next-token draws ``oracles.sample_next(x, [s] * k)`` (one 'token' call each),
so a draw costs about the *per-token* density ratio sup_a q(a|s)/pi_{h,ref}(a|s) (~ C_cond for MTSS's
targets) in token calls, rather than the sequence-level one (~ C_cov). The rejection machinery and the
emitted law are those of :mod:`spanex.sampling.rejection`.

A batch of draws may sit at different prefixes and have different score functions (e.g. their own
anchor token). Draws are grouped by a hashable key (default: the prefix); draws sharing a key share the
target, and all groups are drawn together, one oracle call per round.

Modes (the paper's token-level sampler is not specified; all are documented choices):

- ``'envelope'`` (default): rejection with an envelope found without any bound on the density ratio.
  With a vocabulary of at most ``vocab_limit`` tokens (``envelope='vocab'``, the default there) the
  score f(s, a) is evaluated on *every* token (features only: 'phi' records, no sampling call), so
  E = max_a exp(f/beta) is certified and every draw follows q exactly, at E/Z ≈ the prefix's coverage
  in token calls. With a larger vocabulary (an LM) the envelope is calibrated per prefix as in
  :class:`~spanex.sampling.SoftmaxSampler` (``envelope='calibrated'``).
- ``'paper'`` (``M`` given): the paper's sampler per prefix (M fresh tokens for Zhat_M, N = 4M log(4/delta)).
- ``'logprob'``: one next-token-distribution query ``next_probs`` per group (a 'logprob' query) and the
  exact tilt over the whole vocabulary; no rejection (paper-notes §3.7, log-probability queries).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy.special import logsumexp

from ..core.errors import ExactLawUnavailable, SamplerFailure, check_choice, check_int
from ..core.responses import prompt_key
from .scores import EXP_GUARD
from .rejection import calibration_need, cap_N, log_mean_exp, rejection_rounds
from .softmax_sampler import N_MAX, SamplerDiagnostics, SamplerParams, SamplerState, _empty_diag, paper_N

TOKEN_FALLBACKS = ("last", "ref", "raise")
TOKEN_MODES = ("auto", "envelope", "paper", "logprob")
ENVELOPES = ("auto", "vocab", "calibrated")


@dataclass(frozen=True)
class TokenSoftmaxSampler(SamplerParams):
    """Rejection sampler for the next token; see the module docstring.

    Parameters
    ----------
    beta : temperature (the problem's KL-regularization), > 0.
    M : None (default: an envelope without a bound) or a per-token density-ratio bound >= 1 (paper mode).
    delta : failure probability per draw (calibrated and paper modes), in [1e-12, 1).
    mode : 'auto' (envelope, or paper when M is given), 'envelope', 'paper' or 'logprob'.
    envelope : 'auto' ('vocab' when the vocabulary has at most ``vocab_limit`` tokens, else
        'calibrated'), 'vocab' or 'calibrated'.
    vocab_limit : largest vocabulary whose scores are enumerated for a certified envelope.
    pilot, pilot_factor, max_calibration : the calibration rule per prefix (see SoftmaxSampler).
    batch_size : paper mode's proposals per round (None: ceil(M/4)).
    fallback : on failure, 'last' (the last proposal, itself a pi_ref draw), 'ref' (a fresh counted
        pi_ref token) or 'raise' (SamplerFailure). A roll-out always needs a token, so no 'none'.
    """

    beta: float
    M: float | None = None
    delta: float = 0.05
    mode: str = "auto"
    envelope: str = "auto"
    vocab_limit: int = 256
    pilot: int = 8
    pilot_factor: float = 16.0
    max_calibration: int = 1 << 16
    batch_size: int | None = None
    fallback: str = "last"

    def __post_init__(self):
        mode = self.mode
        if mode == "logprob":                                  # SamplerParams knows the rejection modes only
            object.__setattr__(self, "mode", "auto")
        try:
            self._check_params(TOKEN_FALLBACKS)
        finally:
            object.__setattr__(self, "mode", mode)
        check_choice("mode", self.mode, TOKEN_MODES)
        check_choice("envelope", self.envelope, ENVELOPES)
        check_int("vocab_limit", self.vocab_limit, low=1, high=1 << 24)
        if self.mode == "paper" and self.M is None:
            raise ValueError("mode='paper' needs M (a per-token density-ratio bound >= 1); M=None uses an envelope")

    @property
    def resolved_mode(self) -> str:
        if self.mode == "logprob":
            return "logprob"
        if self.mode == "auto":
            return "envelope" if self.M is None else "paper"
        return self.mode

    def envelope_kind(self, vocab_size: int) -> str:
        """'vocab' (certified by enumerating the vocabulary's scores) or 'calibrated'."""
        if self.envelope == "auto":
            return "vocab" if vocab_size <= self.vocab_limit else "calibrated"
        return self.envelope

    def emits_exact_tilt(self, vocab_size: int) -> bool:
        """Whether every draw follows q exactly (logprob mode, or a certified vocabulary envelope)."""
        mode = self.resolved_mode
        return mode == "logprob" or (mode == "envelope" and self.envelope_kind(vocab_size) == "vocab")

    # ---- drawing -----------------------------------------------------------------------------------
    def sample(self, score: Callable[[int, np.ndarray], np.ndarray], x: Any, prefixes: Sequence[tuple], oracles,
               rng: np.random.Generator, keys: Sequence | None = None, state: SamplerState | None = None):
        """One next token per prefix, a_i ~ q_i(.|prefixes[i]) ∝ pi_ref(.|prefixes[i]) exp(f_i/beta).

        ``score(i, tokens)`` returns f_i(a) for an int array of candidate tokens (draw i's prefix is
        ``prefixes[i]``); draws with equal ``keys[i]`` (default: equal prefixes) must have the same f.
        ``state`` keeps calibration sets across calls (calibrated envelope only).
        Returns (tokens (n,) int array, SamplerDiagnostics with one entry per draw).
        """
        n = len(prefixes)
        if keys is not None and len(keys) != n:
            raise ValueError(f"keys must have one entry per prefix ({n}), got {len(keys)}")
        groups: dict[Any, list[int]] = {}
        for i in range(n):
            groups.setdefault(keys[i] if keys is not None else tuple(prefixes[i]), []).append(i)
        members = list(groups.values())
        reps = np.array([m[0] for m in members], dtype=np.int64)
        group_of = np.empty(n, dtype=np.int64)
        for g, m in enumerate(members):
            group_of[m] = g
        gprefix = [tuple(prefixes[r]) for r in reps]
        mode = self.resolved_mode
        diag = _empty_diag(n, mode)
        tokens = np.zeros(n, dtype=np.int64)
        if n == 0:
            return tokens, diag
        if mode == "logprob":
            self._sample_logprob(score, x, gprefix, reps, members, oracles, rng, tokens, diag)
            return tokens, diag
        beta = self.beta

        def log_weight(toks, owners):
            """f/beta of candidate tokens, owners = draw indices; one score call per (group, distinct token)."""
            toks = np.asarray(toks, dtype=np.int64)
            out = np.empty(toks.size)
            g_of = group_of[owners]
            for g in np.unique(g_of):
                m = g_of == g
                out[m] = _unique_scores(score, int(reps[g]), toks[m]) / beta
            return out

        def propose(owners):
            return np.asarray(oracles.sample_next(x, [gprefix[g] for g in group_of[owners]], rng), dtype=np.int64)

        A = _vocab(oracles)
        if mode == "paper":
            M_int = int(math.ceil(self.M))
            part_owner = np.repeat(np.arange(n), M_int)
            lw = log_weight(propose(part_owner), part_owner).reshape(n, M_int)
            with np.errstate(divide="ignore"):
                log_E = log_mean_exp(lw, axis=1) + math.log(M_int)          # log Zhat_M (a sum)
            log_Z = log_E.copy()
            N = np.full(n, paper_N(self.M, self.delta), dtype=np.int64)
            batch = np.full(n, self._paper_batch(self.M), dtype=np.int64)
            diag.partition_calls = np.full(n, M_int, dtype=np.int64)
            diag.M = float(self.M)
            seen0 = lw.max(axis=1)
        elif self.envelope_kind(A) == "vocab":
            all_a = np.arange(A)
            S = np.stack([np.asarray(score(int(r), all_a), dtype=float) for r in reps]) / beta     # (G, A)
            log_E = S.max(axis=1)[group_of]                                 # certified: no clipping
            log_Z = np.full(n, np.nan)
            N = np.full(n, N_MAX, dtype=np.int64)
            batch = np.ones(n, dtype=np.int64)
            seen0 = log_E.copy()
        else:
            st = state if state is not None else SamplerState()
            gE, gZ, added = self._calibrate(x, gprefix, reps, score, oracles, rng, st)
            log_E, log_Z = gE[group_of], gZ[group_of]
            N = cap_N(log_E, log_Z, self.delta, N_MAX)
            batch = np.maximum(1, np.ceil(np.exp(np.minimum(log_E - log_Z, 30.0)) / 4)).astype(np.int64)
            diag.calibration_calls = added
            seen0 = log_E.copy()
        rr = rejection_rounds(propose, log_weight, log_E, N, batch, rng)
        ai, ay = rr.responses("accepted")
        tokens[ai] = np.asarray(ay, dtype=np.int64).ravel()
        failed = np.flatnonzero(~rr.accepted)
        if failed.size:
            if self.fallback == "raise":
                i = int(failed[0])
                raise SamplerFailure(f"TokenSoftmaxSampler: no acceptance in N={int(N[i])} proposals at a prefix "
                                     f"of length {len(prefixes[i])}")
            if self.fallback == "last":
                li, ly = rr.responses("last")
                tokens[li] = np.asarray(ly, dtype=np.int64).ravel()
            else:
                tokens[failed] = propose(failed)
                rr.used[failed] += 1
        if mode == "envelope" and self.envelope_kind(A) == "calibrated" and state is not None:
            ys_c, own_c, _ = rr.consumed_all()                      # consumed tokens join their prefix's set
            ys_c = np.asarray(ys_c, dtype=np.int64)
            for g in np.unique(group_of[own_c]) if own_c.size else []:
                state.add((prompt_key(x), gprefix[g]), ys_c[group_of[own_c] == g])
        diag.proposals, diag.accepted, diag.clipped = rr.used, rr.accepted, rr.clipped
        diag.log_E, diag.log_Zhat, diag.N = log_E, log_Z, N
        with np.errstate(invalid="ignore"):
            ref = np.where(np.isfinite(log_Z), log_Z, log_E)
            diag.ratio_bound = np.exp(np.minimum(np.fmax(seen0, rr.max_seen) - ref, EXP_GUARD))
        diag.returned = rr.returned
        return tokens, diag

    def _calibrate(self, x, gprefix, reps, score, oracles, rng, state):
        """Per-group calibration sets (tokens seen at the prefix), extended together; returns per-group
        log E = max score, log Zhat = log mean exp score, and the token draws added."""
        G = len(gprefix)
        keys = [(prompt_key(x), p) for p in gprefix]
        added = 0
        log_E, log_Z = np.empty(G), np.empty(G)
        pending = np.arange(G)
        while pending.size:
            want = []
            for g in pending:
                r = state.size(keys[g])
                if r < self.pilot:
                    want.append(self.pilot - r)
                    continue
                s = _unique_scores(score, int(reps[g]), np.asarray(state.get(keys[g]), dtype=np.int64)) / self.beta
                log_E[g], log_Z[g] = s.max(), float(log_mean_exp(s))
                need = calibration_need(log_E[g] - log_Z[g], self.pilot, self.pilot_factor)
                want.append(0 if r >= min(need, self.max_calibration) else min(max(need - r, r), self.max_calibration - r))
            want = np.asarray(want, dtype=np.int64)
            todo = pending[want > 0]
            if not todo.size:
                break
            k = want[want > 0]
            owners = np.repeat(todo, k)
            toks = np.asarray(oracles.sample_next(x, [gprefix[g] for g in owners], rng), dtype=np.int64)
            added += int(toks.size)
            for g in todo:
                state.add(keys[g], toks[owners == g])
            pending = todo
        return log_E, log_Z, added

    def _sample_logprob(self, score, x, gprefix, reps, members, oracles, rng, tokens, diag):
        P = oracles.next_probs(x, gprefix)                                 # one 'logprob' query per group
        A = P.shape[1]
        all_a = np.arange(A)
        for g, m in enumerate(members):
            with np.errstate(divide="ignore"):
                lp = np.log(P[g])
            f = np.asarray(score(int(reps[g]), all_a), dtype=float) / self.beta
            z = lp + f
            lz = logsumexp(z)
            c = np.cumsum(np.exp(z - lz))
            u = rng.random(len(m)) * c[-1]
            idx = np.asarray(m)
            tokens[idx] = np.minimum(np.searchsorted(c, u, side="right"), A - 1)
            diag.log_Zhat[idx] = lz
            diag.log_E[idx] = lz
            ok = P[g] > 0
            diag.ratio_bound[idx] = float(np.exp(min(float(np.max((f - lz)[ok])), EXP_GUARD)))
        diag.accepted[:] = True

    # ---- the emitted law ---------------------------------------------------------------------------
    def check_exact_law(self, vocab_size: int) -> None:
        """Raise ExactLawUnavailable unless every draw follows the tilt q exactly (see emits_exact_tilt)."""
        if not self.emits_exact_tilt(vocab_size):
            raise ExactLawUnavailable(
                f"the token sampler's law ({self.resolved_mode} mode, "
                f"{self.envelope_kind(vocab_size) if self.resolved_mode == 'envelope' else 'Zhat_M'} envelope) "
                "depends on random calibration at every prefix; evaluate it by sampling")


def _vocab(oracles) -> int:
    tm = getattr(oracles.problem, "token_model", None)
    return int(getattr(tm, "vocab_size", 1 << 30))


def _unique_scores(score, rep: int, toks: np.ndarray) -> np.ndarray:
    """score(rep, .) evaluated once per distinct token (proposal batches repeat few tokens)."""
    if toks.size == 0:
        return np.zeros(0)
    u, inv = np.unique(toks, return_inverse=True)
    return np.asarray(score(rep, u), dtype=float)[inv]


__all__ = ["TokenSoftmaxSampler", "TOKEN_FALLBACKS", "TOKEN_MODES", "ENVELOPES", "SamplerDiagnostics"]
