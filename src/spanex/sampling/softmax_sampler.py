"""SoftmaxSampler: draws from q_f(y|x) ∝ pi_ref(y|x) exp(f(y)/beta) with the weak oracle (paper-notes §2.1).

Only pi_ref draws (``oracles.sample_ref``, counted) and scores f(y) of drawn responses are used. Two
modes; see :mod:`spanex.sampling.rejection` for the law of a rejection draw with envelope E,
q_E ∝ pi_ref min(exp(f/beta), E), its acceptance rate Z_E/E and the proposal cap N.

``'envelope'`` (the default, ``M=None``): a self-calibrating envelope. No bound on the density ratio is
needed. The sampler keeps, per prompt, a *calibration set*: pi_ref draws it has seen (a pilot, then
every proposal it consumes). The envelope of a target is the largest weight exp(f/beta) on that set
and the partition estimate Zhat its mean there::

    R = calibration set at x (pi_ref draws; extended by doubling until it holds
        max(pilot, pilot_factor * C_hat) draws, C_hat = max_R exp(f/beta) / mean_R exp(f/beta))
    E = max_R exp(f/beta) ;  Zhat = mean_R exp(f/beta) ;  N = ceil(4 (E/Zhat) log(4/delta))
    repeat for each draw: y ~ pi_ref ; accept with prob min(1, exp(f(y)/beta) / E) ; R += {y}
    (after N proposals without acceptance: fallback)

Proposals come from the prompt's pool of pi_ref draws (``Oracles.sample_ref``) and the ones a draw
did not need return to it, so batching wastes nothing but the pool left at the end. A draw costs
about E / Z ≈ the target's coverage sup q/pi_ref in proposals (the limit of any rejection sampler);
the calibration set is shared by every draw and every score at the prompt (all thetas, all anchors),
so its cost is amortized. Calibration is a self-consistency rule, not a certificate: when a response
of high weight has pi_ref mass far below 1/C_hat it may stay unseen, and then it is clipped (the
coverage barrier; no sampling rule can see it). A consumed proposal above the envelope is such a
case made visible: it is recorded (``clipped``) and raises the envelope of later draws.

The law of the next draw given the calibration set is exactly
``(1 - (1-a)^N) q_E + (1-a)^N (fallback law)`` (:func:`~spanex.sampling.rejection.emitted_law`), and
:meth:`SoftmaxSampler.law` returns it: policies report it as their ``probs()``.

``'paper'`` (``M`` given, or ``mode='paper'``): the paper's SoftmaxSampler_{beta, M, delta}::

    draw y'_1..y'_M ~ pi_ref ; Zhat_M = sum_j exp(f(y'_j)/beta)          # M calls
    N = ceil(4 M log(4/delta)) ; for i = 1..N: y_i ~ pi_ref, accept w.p. min(1, exp(f(y_i)/beta)/Zhat_M)

It costs about 2M calls per draw and its law depends on the random Zhat_M, so it has no closed form:
evaluation samples it (label 'eval'). With ``mode='paper'`` and ``M=None``, M = e^2 C_hat from the
calibration set.

RECON choices (documented parameters): the calibration rule (``pilot``, ``pilot_factor``), the
fallback on failure (``'last'`` returns the last proposal, itself a pi_ref draw; ``'ref'`` a fresh
counted pi_ref draw; ``'none'`` returns None; ``'raise'`` raises SamplerFailure); in paper mode Zhat
from fresh draws (not reusing proposals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..core.errors import ExactLawUnavailable, SamplerFailure, check_choice, check_int, check_real
from ..core.responses import concat, prompt_key, take
from .scores import EXP_GUARD
from .rejection import (calibration_need, cap_N, emitted_law, log_mean_exp, one_draw,
                        rejection_rounds)

FALLBACKS = ("last", "ref", "none", "raise")
MODES = ("auto", "envelope", "paper")
#: the paper-mode margin of M over the estimated coverage when M is not given (the library's M_rej
#: recipe before self-calibration: e^2 C)
PAPER_MARGIN = math.e ** 2
#: owners x calibration-set entries evaluated at once when per-draw scores are calibrated
_CHUNK = 1 << 20
#: a safety cap on proposals per draw; the envelope mode never reaches it, since its E/Zhat (a max over
#: a mean on the calibration set) is at most the set's size, so N <= 4 |R| log(4/delta)
N_MAX = 1 << 50


@dataclass
class SamplerDiagnostics:
    """Per-draw diagnostics of a batch of draws (arrays have one entry per draw).

    proposals : proposals consumed by each draw.
    partition_calls : calls spent on the draw's own partition estimate (paper mode: M; else 0).
    accepted : whether the draw was accepted (False: the fallback was used).
    log_Zhat : log of the partition estimate (a mean over the calibration set; paper mode: the sum Zhat_M).
    log_E : log of the envelope the draw used (paper mode: log Zhat_M).
    ratio_bound : the draw's estimated coverage, exp(largest log-weight seen - log mean weight).
    clipped : some consumed proposal exceeded the envelope, so the law (1) clipped it.
    N : each draw's proposal cap.
    calibration_calls : pi_ref draws added to the calibration set by this call (envelope mode).
    returned : proposals drawn but not consumed (given back to the prompt's pool, still charged).
    """

    proposals: np.ndarray
    partition_calls: np.ndarray
    accepted: np.ndarray
    log_Zhat: np.ndarray
    log_E: np.ndarray
    ratio_bound: np.ndarray
    clipped: np.ndarray
    N: np.ndarray
    mode: str = "envelope"
    M: float = float("nan")
    calibration_calls: int = 0
    returned: int = 0

    @property
    def envelope(self) -> float:
        """The largest envelope of the batch relative to its partition estimate, max E/Zhat: the M the
        sampler found for itself (paper mode: the given M)."""
        return self.M

    @property
    def calls(self) -> np.ndarray:
        """Calls attributed to each draw (proposals + its own partition estimate)."""
        return self.proposals + self.partition_calls

    @property
    def acceptance_rate(self) -> float:
        """Accepted draws per proposal consumed."""
        tot = int(self.proposals.sum())
        return float(self.accepted.sum()) / tot if tot else 0.0

    @property
    def ratio_exceeds_M(self) -> bool:
        """The run shows its envelope was too small (a clipped draw, or in paper mode a ratio above M)."""
        if self.mode == "paper":
            return bool(np.any(self.ratio_bound > self.M))
        return bool(np.any(self.clipped))

    def summary(self) -> dict:
        return {"mode": self.mode, "draws": int(self.accepted.size), "accepted": int(self.accepted.sum()),
                "failures": int((~self.accepted).sum()), "calls": int(self.calls.sum()),
                "calibration_calls": int(self.calibration_calls), "returned": int(self.returned),
                "acceptance_rate": self.acceptance_rate, "ratio_bound_max": float(self.ratio_bound.max(initial=0.0)),
                "clipped_draws": int(self.clipped.sum()), "M": self.M, "N_max": int(self.N.max(initial=0))}


class SamplerState:
    """Calibration sets of a self-calibrating sampler: per key (a prompt, or a prompt and a prefix), the
    proposal draws seen so far. Policies and algorithms keep one per run so that the calibration is
    shared by all their draws; its draws were charged when they were drawn."""

    def __init__(self):
        self._sets: dict = {}

    def get(self, key):
        return self._sets.get(key)

    def size(self, key) -> int:
        r = self._sets.get(key)
        return 0 if r is None else len(r)

    def add(self, key, ys) -> None:
        if len(ys) == 0:
            return
        r = self._sets.get(key)
        self._sets[key] = ys if r is None or len(r) == 0 else concat([r, ys])

    def keys(self):
        return list(self._sets)

    def __len__(self) -> int:
        return len(self._sets)


class SamplerParams:
    """Fields shared by the sequence- and token-level samplers (declared by each dataclass): ``beta``,
    ``M``, ``delta``, ``mode``, ``pilot``, ``pilot_factor``, ``max_calibration``, ``batch_size``,
    ``fallback``; validation, the resolved mode and the paper-mode cap N."""

    def _check_params(self, fallbacks) -> None:
        check_real("beta", self.beta, low=0, low_open=True)
        if self.M is not None:
            check_real("M", self.M, low=1, high=1e12)
        check_real("delta", self.delta, low=1e-12, high=1, high_open=True)
        check_choice("mode", self.mode, MODES)
        check_int("pilot", self.pilot, low=1, high=1 << 30)
        check_real("pilot_factor", self.pilot_factor, low=1, high=1e6)
        check_int("max_calibration", self.max_calibration, low=self.pilot, high=1 << 40)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, low=1, high=1 << 30)
        check_choice("fallback", self.fallback, fallbacks)
        if self.mode == "envelope" and self.M is not None:
            raise ValueError("mode='envelope' finds its own envelope; M must be None (give M for mode='paper')")

    @property
    def resolved_mode(self) -> str:
        """'envelope' or 'paper' ('auto': paper when M is given)."""
        if self.mode == "auto":
            return "envelope" if self.M is None else "paper"
        return self.mode

    @property
    def N(self) -> int:
        """Paper mode's proposal cap per draw: ceil(4 ceil(M) log(4/delta)) (M given)."""
        if self.M is None:
            raise ValueError("N is fixed only when M is given (paper mode); the envelope mode caps each "
                             "draw by its own estimate, see SamplerDiagnostics.N")
        return paper_N(self.M, self.delta)

    @property
    def max_calls_per_draw(self) -> int:
        """Paper mode, worst case per draw: M + N (+1 for the 'ref' fallback)."""
        return int(math.ceil(self.M)) + self.N + (1 if self.fallback == "ref" else 0)

    def _paper_batch(self, M: float) -> int:
        b = self.batch_size if self.batch_size is not None else max(1, int(math.ceil(M / 4)))
        return min(b, paper_N(M, self.delta))


def paper_N(M: float, delta: float) -> int:
    return int(math.ceil(4 * math.ceil(M) * math.log(4 / delta)))


@dataclass(frozen=True)
class SoftmaxSampler(SamplerParams):
    """Rejection sampler for q_f ∝ pi_ref exp(f/beta) through the weak oracle; see the module docstring.

    Parameters
    ----------
    beta : temperature (the problem's KL-regularization), > 0.
    M : None (default: self-calibrating envelope) or a bound on sup_y q_f(y)/pi_ref(y) >= 1 for the
        paper's sampler (about 2M calls per draw).
    delta : failure probability per draw, in [1e-12, 1).
    mode : 'auto' (envelope when M is None, else paper), 'envelope' or 'paper'.
    pilot : smallest calibration set (pi_ref draws per prompt), >= 1.
    pilot_factor : the calibration set holds at least pilot_factor x the estimated coverage, >= 1.
    max_calibration : largest calibration set per prompt; beyond it the rule stops (diagnostics say so
        through ``calibration_calls`` and the clip flags).
    batch_size : paper mode's proposals per round (None: ceil(M/4)); the envelope mode sizes its own.
    fallback : behaviour when a draw gives up ('last', 'ref', 'none', 'raise').
    """

    beta: float
    M: float | None = None
    delta: float = 0.05
    mode: str = "auto"
    pilot: int = 32
    pilot_factor: float = 16.0
    max_calibration: int = 1 << 20
    batch_size: int | None = None
    fallback: str = "last"

    def __post_init__(self):
        self._check_params(FALLBACKS)

    # ---- drawing ---------------------------------------------------------------------------------
    def sample(self, f: Callable[..., np.ndarray], x: Any, oracles, rng: np.random.Generator, n: int = 1,
               per_draw: bool = False, state: SamplerState | None = None,
               score_matrix: Callable[[Any, np.ndarray], np.ndarray] | None = None):
        """n draws from q_f(.|x) through ``oracles.sample_ref`` (all calls counted).

        ``f(ys)`` scores a batch of responses; with ``per_draw=True`` it is called as ``f(ys, owner)``
        (``owner[i]`` the draw response i is scored for), so every draw may have its own target (e.g.
        its own anchor). ``state`` keeps the calibration sets across calls (default: a fresh one).
        ``score_matrix(R, owners)`` may give the (len(owners), len(R)) scores of the draws' targets on
        the calibration set R faster than ``f`` (on tiled responses for per-draw targets; owners is [0]
        for a single target). R is always the whole calibration set of x, which only grows by appending,
        so a score_matrix may cache per entry of it.
        Returns (responses, SamplerDiagnostics); with fallback 'none' failed draws are None (a list).
        """
        if type(n) is not int or n < 1:
            n = check_int("n", n, low=1)
        if state is None:
            state = SamplerState()
        if self.resolved_mode == "paper":
            return self._sample_paper(f, x, oracles, rng, n, per_draw, state, score_matrix)
        if n == 1 and not per_draw:
            return self._sample_one(f, x, oracles, rng, state, score_matrix)
        return self._sample_envelope(f, x, oracles, rng, n, per_draw, state, score_matrix)

    def _scores(self, f, per_draw, score_matrix):
        """(R, owners, start) -> (len(owners), len(R) - start) log-weights s = f/beta of the draws' targets on
        the calibration set's entries R[start:] (R is always the whole set: ``score_matrix`` may cache per
        entry of it, so it is given the whole set and its columns from ``start`` are kept)."""
        beta = self.beta

        def S(R, owners, start=0):
            owners = np.asarray(owners, dtype=np.int64)
            if score_matrix is not None:
                M = np.asarray(score_matrix(R, owners if per_draw else np.zeros(1, np.int64)), dtype=float)
                M = M[:, start:] / beta
                return M if per_draw else np.broadcast_to(M[0], (owners.size, M.shape[1]))
            if start:
                R = take(R, slice(start, None))
            if not per_draw:
                row = np.asarray(f(R), dtype=float) / beta
                return np.broadcast_to(row, (owners.size, row.size))
            r = len(R)
            idx = np.tile(np.arange(r), owners.size)
            return (np.asarray(f(take(R, idx), np.repeat(owners, r)), dtype=float) / beta).reshape(owners.size, r)

        return S

    def calibrate(self, x, oracles, rng, state: SamplerState, S, owners: np.ndarray):
        """Extend the calibration set of x until the rule holds for the targets of ``owners``; returns
        (running max, running logsumexp, set size) of their log-weights on it and the draws added."""
        key = prompt_key(x)
        added = 0
        R = state.get(key)
        if R is None or len(R) < self.pilot:
            k = self.pilot - (0 if R is None else len(R))
            state.add(key, oracles.sample_ref(x, k, rng))
            added += k
            R = state.get(key)
        mx, lse = _stats(S, R, owners)
        while True:
            r = len(R)
            need = calibration_need(_max_log_coverage(mx, lse, r), self.pilot, self.pilot_factor)
            if r >= need or r >= self.max_calibration:
                return mx, lse, r, added
            k = int(min(max(need - r, r), self.max_calibration - r))   # at least double: O(log) rounds
            state.add(key, oracles.sample_ref(x, k, rng))
            added += k
            R = state.get(key)
            m2, l2 = _stats(S, R, owners, start=r)                  # the new entries R[r:]
            mx, lse = np.fmax(mx, m2), np.logaddexp(lse, l2)

    def _sample_envelope(self, f, x, oracles, rng, n, per_draw, state, score_matrix):
        S = self._scores(f, per_draw, score_matrix)
        owners_all = np.arange(n)
        mx, lse, r, added = self.calibrate(x, oracles, rng, state, S, owners_all if per_draw else np.zeros(1, int))
        grow_to = 2 * calibration_need(float(np.max(mx - (lse - math.log(r)))), self.pilot, self.pilot_factor)
        if not per_draw:
            mx, lse = np.full(n, mx[0]), np.full(n, lse[0])
        beta = self.beta
        key = prompt_key(x)

        def propose(owners):
            return oracles.sample_ref(x, owners.size, rng)

        def log_weight(ys, owners):
            return np.asarray(f(ys, owners) if per_draw else f(ys), dtype=float) / beta

        def give_back(ys, owners):
            oracles.give_back(x, ys)

        diag = _empty_diag(n, "envelope")
        diag.calibration_calls = added
        acc_parts, last_parts = [], []
        start, wave = 0, 64
        while start < n:                                           # waves: later draws see what earlier ones found
            idx = np.arange(start, min(n, start + wave))
            log_E = mx[idx]
            log_Z = lse[idx] - math.log(r)
            N = cap_N(log_E, log_Z, self.delta, N_MAX)
            batch = np.ceil(np.exp(np.minimum(log_E - log_Z, 30.0))).astype(np.int64)
            rr = rejection_rounds(lambda o: propose(o), lambda ys, o: log_weight(ys, idx[o]), log_E, N, batch, rng,
                                  give_back)
            _fill_diag(diag, idx, rr, log_E, log_Z, N)
            ai, ay = rr.responses("accepted")
            li, ly = rr.responses("last")
            acc_parts.append((idx[ai], ay))
            last_parts.append((idx[li], ly))
            ys_c, own_c, lw_c = rr.consumed_all()
            # consumed proposals join R: those above their envelope always (they raise it for later draws),
            # the others while R is below twice what the calibration rule asks (keeps its scans short)
            over = lw_c > log_E[own_c]
            ys_c = take(ys_c, _joining(over, max(0, grow_to - r - int(over.sum())), self.max_calibration - r))
            state.add(key, ys_c)
            r_before, r = r, r + len(ys_c)
            start += idx.size
            if start < n and len(ys_c):                            # update the running stats of later draws
                rest = np.arange(start, n)
                m2, l2 = _stats(S, state.get(key), rest if per_draw else np.zeros(1, int), start=r_before)
                if not per_draw:
                    m2, l2 = np.full(rest.size, m2[0]), np.full(rest.size, l2[0])
                mx[rest], lse[rest] = np.fmax(mx[rest], m2), np.logaddexp(lse[rest], l2)
            wave *= 2
        return self._finish(x, oracles, rng, n, diag, acc_parts, last_parts)

    def _sample_one(self, f, x, oracles, rng, state, score_matrix):
        """:meth:`_sample_envelope` for one draw of one target (an exploration round's draw): the same
        calibration, proposals, uniforms, decisions and diagnostics, with scalars for the per-draw arrays."""
        beta = self.beta
        if score_matrix is not None:                               # S(R, owners, start): see _scores
            def S(R, owners, start=0):
                return np.asarray(score_matrix(R, _ONE_TARGET), dtype=float)[:, start:] / beta
        else:
            def S(R, owners, start=0):
                return (np.asarray(f(take(R, slice(start, None)) if start else R), dtype=float) / beta)[None, :]
        mx, lse, r, added = self.calibrate(x, oracles, rng, state, S, _ONE_TARGET)
        log_E = float(mx[0])
        log_Z = float(lse[0]) - math.log(r)
        grow_to = 2 * calibration_need(log_E - log_Z, self.pilot, self.pilot_factor)
        N = cap_N(log_E, log_Z, self.delta, N_MAX)
        b = float(np.exp(min(log_E - log_Z, 30.0)))                 # proposals per round ~ E / Zhat
        b = max(1, math.ceil(b)) if b == b else 1

        def propose(k):
            return oracles.sample_ref(x, k, rng)

        def log_weight(ys):
            return np.asarray(f(ys), dtype=float) / beta

        def give_back(ys):
            oracles.give_back(x, ys)

        with np.errstate(divide="ignore", invalid="ignore"):
            rr = one_draw(propose, log_weight, log_E, N, b, rng, give_back)
            seen = rr.max_seen if rr.max_seen >= log_E or log_E != log_E else log_E   # np.fmax(log_E, max_seen)
            ratio = float(np.exp(min(seen - log_Z, EXP_GUARD)))
            M = float(np.exp(min(log_E - log_Z, EXP_GUARD))) if math.isfinite(log_E) and math.isfinite(log_Z) else math.nan
        diag = SamplerDiagnostics(proposals=np.array([rr.used], np.int64), partition_calls=np.zeros(1, np.int64),
                                  accepted=np.array([rr.accepted]), log_Zhat=np.array([log_Z]),
                                  log_E=np.array([log_E]), ratio_bound=np.array([ratio]),
                                  clipped=np.array([rr.clipped]), N=np.array([N], np.int64), mode="envelope", M=M,
                                  calibration_calls=added, returned=rr.returned)
        ys_c, lw_c = rr.consumed_all()
        # consumed proposals join R as in _sample_envelope: those above the envelope always, the others
        # while R is below twice what the calibration rule asks
        over = lw_c > log_E if rr.clipped else None                 # clipped: some consumed proposal is over
        n_over = 0 if over is None else int(np.count_nonzero(over))
        room = max(0, grow_to - r - n_over)
        if n_over == 0 and room == 0:                              # none of them (R is large enough)
            ys_c = ys_c[:0]
        elif len(lw_c) - n_over > room or len(lw_c) > self.max_calibration - r:   # not all of them
            ys_c = take(ys_c, _joining(lw_c > log_E, room, self.max_calibration - r))
        if len(ys_c):
            state.add(prompt_key(x), ys_c)
        if rr.accepted:
            return rr.response, diag
        return self._finish(x, oracles, rng, 1, diag, [], [] if rr.response is None else [(_ONE_TARGET, rr.response)])

    def _sample_paper(self, f, x, oracles, rng, n, per_draw, state, score_matrix):
        beta = self.beta
        M = self.M
        diag = _empty_diag(n, "paper")
        if M is None:                                              # M = e^2 C_hat from the calibration set
            S = self._scores(f, per_draw, score_matrix)
            mx, lse, r, added = self.calibrate(x, oracles, rng, state, S,
                                               np.arange(n) if per_draw else np.zeros(1, int))
            logC = _max_log_coverage(mx, lse, r)
            M = max(1.0, PAPER_MARGIN * math.exp(min(logC, EXP_GUARD)))
            diag.calibration_calls = added
        M_int = int(math.ceil(M))
        N = paper_N(M, self.delta)

        def lw_of(ys, owner):
            return np.asarray(f(ys, owner) if per_draw else f(ys), dtype=float) / beta

        # (1) partition estimates: M fresh draws per output draw, one batched oracle call.
        part = oracles.sample_ref(x, M_int * n, rng)
        lw_part = lw_of(part, np.repeat(np.arange(n), M_int)).reshape(n, M_int)
        with np.errstate(divide="ignore"):
            log_Zhat = log_mean_exp(lw_part, axis=1) + math.log(M_int)          # log of the SUM Zhat_M
        # (2) rejection with envelope Zhat_M per draw (all -inf weights: Zhat = 0, nothing accepted)
        b = np.full(n, self._paper_batch(M), dtype=np.int64)
        rr = rejection_rounds(lambda o: oracles.sample_ref(x, o.size, rng), lambda ys, o: lw_of(ys, o),
                              log_Zhat, np.full(n, N, dtype=np.int64), b, rng, lambda ys, o: oracles.give_back(x, ys))
        seen = np.fmax(lw_part.max(axis=1), rr.max_seen)
        diag.proposals, diag.accepted, diag.clipped = rr.used, rr.accepted, rr.clipped
        diag.log_Zhat, diag.log_E, diag.N = log_Zhat, log_Zhat.copy(), np.full(n, N, dtype=np.int64)
        with np.errstate(invalid="ignore"):
            diag.ratio_bound = np.where(np.isfinite(log_Zhat),
                                        np.exp(np.minimum(seen - (log_Zhat - math.log(M_int)), EXP_GUARD)), np.inf)
        diag.partition_calls = np.full(n, M_int, dtype=np.int64)
        diag.M = float(M)
        diag.returned = rr.returned
        ai, ay = rr.responses("accepted")
        li, ly = rr.responses("last")
        return self._finish(x, oracles, rng, n, diag, [(ai, ay)], [(li, ly)])

    def _finish(self, x, oracles, rng, n, diag, acc_parts, last_parts):
        """Assemble the draws in order and apply the fallback to the ones that gave up."""
        if n == 1 and diag.accepted[0] and len(acc_parts) == 1:   # the common single draw
            return acc_parts[0][1], diag
        out: list = [None] * n
        for idx, ys in acc_parts:
            for j, i in enumerate(idx):
                out[int(i)] = take(ys, [j])
        failed = np.flatnonzero(~diag.accepted)
        if failed.size:
            if self.fallback == "raise":
                i = int(failed[0])
                raise SamplerFailure(f"SoftmaxSampler ({diag.mode}): no acceptance in N={int(diag.N[i])} proposals; "
                                     f"estimated density ratio {diag.ratio_bound[i]:.3g}")
            if self.fallback == "last":
                for idx, ys in last_parts:
                    for j, i in enumerate(idx):
                        out[int(i)] = take(ys, [j])
            elif self.fallback == "ref":
                fresh = oracles.sample_ref(x, failed.size, rng)
                for j, i in enumerate(failed):
                    out[int(i)] = take(fresh, [j])
                diag.proposals[failed] += 1
        if self.fallback == "none" and failed.size:
            return [None if o is None else take(o, 0) for o in out], diag
        return concat(out), diag

    # ---- the emitted law ---------------------------------------------------------------------------
    def law(self, log_p: np.ndarray, S_support: np.ndarray, S_calib: np.ndarray) -> np.ndarray:
        """Exact law of the next draw of each target given the calibration set (envelope mode).

        log_p : (m,) log pi_ref over an enumerated support. S_support : (k, m) scores f (not divided by
        beta) of k targets on the support; S_calib : (k, r) their scores on the calibration set.
        Returns (k, m). Paper mode has no closed form (its Zhat_M is random): ExactLawUnavailable.
        """
        if self.resolved_mode == "paper":
            raise ExactLawUnavailable("the paper-mode SoftmaxSampler's law depends on its random Zhat_M; "
                                      "evaluate it by sampling")
        S_support = np.atleast_2d(np.asarray(S_support, float)) / self.beta
        S_calib = np.atleast_2d(np.asarray(S_calib, float)) / self.beta
        log_E = S_calib.max(axis=1)
        log_Z = log_mean_exp(S_calib, axis=1)
        N = cap_N(log_E, log_Z, self.delta, N_MAX)
        fb = self.fallback if self.fallback in ("last", "ref") else "raise"
        return emitted_law(log_p, S_support, log_E, N, fb)


#: the owner array of a single target (read-only: it is handed to score callbacks)
_ONE_TARGET = np.zeros(1, np.int64)
_ONE_TARGET.flags.writeable = False


def _joining(over: np.ndarray, room: int, cap: int) -> np.ndarray:
    """Indices of the consumed proposals that join the calibration set: every one above its envelope
    (``over``), the others while ``room`` lasts, at most ``cap`` in all (in order)."""
    keep = over | (np.cumsum(~over) <= room)
    keep &= np.cumsum(keep) <= cap
    return np.flatnonzero(keep)


def _max_log_coverage(mx, lse, r: int) -> float:
    """max over targets of log C_hat = log(max / mean) of the weights on a set of r draws (0 for a target
    whose weights are all 0 there), from their running max ``mx`` and logsumexp ``lse``."""
    if mx.size == 1:
        m = float(mx[0])
        return m - (float(lse[0]) - math.log(r)) if math.isfinite(m) else 0.0
    return float(np.max(np.where(np.isfinite(mx), mx - (lse - math.log(r)), 0.0)))


def _stats(S, R, owners, start: int = 0):
    """Per-owner (max, logsumexp) of the log-weights S(R, owners, start) on the calibration set's entries
    R[start:], chunked to bound memory."""
    owners = np.asarray(owners, dtype=np.int64)
    if owners.size == 1:                                         # one target (the common case): no chunking
        row = np.asarray(S(R, owners, start), dtype=float).reshape(-1)
        m = float(row.max())
        if not math.isfinite(m):
            return np.array([m]), np.array([m])
        e = row - m
        with np.errstate(under="ignore"):
            np.exp(e, out=e)
        return np.array([m]), np.array([m + math.log(float(e.sum()))])
    r = max(len(R), 1)                                           # S scores the whole set before slicing
    step = max(1, _CHUNK // r)
    mx = np.empty(owners.size)
    lse = np.empty(owners.size)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for a in range(0, owners.size, step):
            M = np.asarray(S(R, owners[a:a + step], start), dtype=float)
            m = M.max(axis=1)
            mx[a:a + step] = m
            ms = np.where(np.isfinite(m), m, 0.0)
            lse[a:a + step] = np.where(np.isfinite(m), ms + np.log(np.exp(M - ms[:, None]).sum(axis=1)), m)
    return mx, lse


def _empty_diag(n: int, mode: str) -> SamplerDiagnostics:
    z = np.zeros(n)
    return SamplerDiagnostics(proposals=np.zeros(n, np.int64), partition_calls=np.zeros(n, np.int64),
                              accepted=np.zeros(n, bool), log_Zhat=z.copy(), log_E=z.copy(), ratio_bound=z.copy(),
                              clipped=np.zeros(n, bool), N=np.zeros(n, np.int64), mode=mode)


def _fill_diag(diag, idx, rr, log_E, log_Z, N) -> None:
    diag.proposals[idx] = rr.used
    diag.accepted[idx] = rr.accepted
    diag.clipped[idx] = rr.clipped
    diag.log_E[idx] = log_E
    diag.log_Zhat[idx] = log_Z
    diag.N[idx] = N
    with np.errstate(invalid="ignore"):
        diag.ratio_bound[idx] = np.exp(np.minimum(np.fmax(log_E, rr.max_seen) - log_Z, EXP_GUARD))
    diag.returned += rr.returned
    ok = np.isfinite(diag.log_E) & np.isfinite(diag.log_Zhat)
    if ok.any():
        diag.M = float(np.max(np.exp(np.minimum(diag.log_E[ok] - diag.log_Zhat[ok], EXP_GUARD))))
