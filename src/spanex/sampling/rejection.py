"""The machinery shared by every rejection sampler in spanex (sequence level, token level, pi_theta).

Target of one draw: q(y) ∝ p(y) exp(s(y)), where p is the proposal law (pi_ref(.|x), or a next-token
distribution pi_{h,ref}(.|s)) and s = f/beta a log-weight computable on any response. With an
envelope E (log_E = log E) and acceptance probability min(1, exp(s(y)) / E), a draw that is accepted
has *exactly* the law

    q_E(y) ∝ p(y) min(exp(s(y)), E)                                            (1)

whatever E is: E >= sup exp(s) gives the target itself, a smaller E *clips* the responses above it
(accepted with probability 1 instead of proportionally, so under-represented). The acceptance
probability per proposal is a = Z_E / E with Z_E = E_p min(exp(s), E); the expected number of
proposals per accepted draw is 1/a, which is the target's coverage sup q/p = sup exp(s) / Z when
E = sup exp(s): the physical limit of rejection sampling.

A draw gives up after N proposals (probability (1 - a)^N) and then follows a *fallback*: 'last' (the
N-th proposal, itself a rejected draw: law p(y) (1 - min(exp(s), E)/E) / (1 - a)), 'ref' (a fresh
proposal: law p) or 'raise'. :func:`emitted_law` is the exact law of (1) mixed with the fallback; it is
what the samplers report as the law they emit.

This module holds the vectorized rejection loop (:func:`rejection_rounds`), the exact emitted law
(:func:`emitted_law`) and the calibration rule of the self-calibrating envelope
(:func:`calibration_need`). The samplers are :class:`~spanex.sampling.SoftmaxSampler` and
:class:`~spanex.sampling.TokenSoftmaxSampler`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy.special import logsumexp

from ..core.responses import concat, take
from .scores import EXP_GUARD



def log_mean_exp(s: np.ndarray, axis=-1) -> np.ndarray:
    """log mean exp(s) along `axis` (stable; -inf when every entry is -inf)."""
    s = np.asarray(s, dtype=float)
    with np.errstate(divide="ignore"):
        return logsumexp(s, axis=axis) - math.log(s.shape[axis])


def cap_N(log_E: np.ndarray, log_Zhat: np.ndarray, delta: float, N_max: int) -> np.ndarray:
    """Proposal cap per draw, N = ceil(4 (E / Zhat) log(4/delta)), within [1, N_max].

    E / Zhat estimates 1/a, the expected proposals per acceptance; with the true a the failure
    probability (1 - a)^N <= exp(-4 log(4/delta)) = (delta/4)^4 (paper-notes §2.1's constants).
    For float arguments (one draw) the same arithmetic on scalars returns an int."""
    if type(log_E) is float and type(log_Zhat) is float:
        N = 4.0 * float(np.exp(min(log_E - log_Zhat, EXP_GUARD))) * math.log(4.0 / delta)   # min: NaN stays NaN
        return min(max(math.ceil(N), 1), N_max) if math.isfinite(N) else N_max
    ratio = np.exp(np.minimum(np.asarray(log_E, float) - np.asarray(log_Zhat, float), EXP_GUARD))
    N = np.ceil(4.0 * ratio * math.log(4.0 / delta))
    N = np.where(np.isfinite(N), N, N_max)
    return np.clip(N, 1, N_max).astype(np.int64)


@dataclass
class Rounds:
    """Outcome of :func:`rejection_rounds` for n draws (arrays have one entry per draw)."""

    n: int
    used: np.ndarray          # proposals consumed by each draw
    accepted: np.ndarray
    clipped: np.ndarray       # some consumed proposal had s > log_E (the law (1) clipped it)
    max_seen: np.ndarray      # largest log-weight among the draw's consumed proposals
    consumed: list = field(default_factory=list)         # consumed proposals (responses), per round
    consumed_owner: list = field(default_factory=list)   # their draw index
    consumed_lw: list = field(default_factory=list)      # their log-weights
    returned: int = 0         # proposals drawn but not consumed (given back, or wasted without give_back)
    _acc: list = field(default_factory=list)     # (draw indices, their accepted responses), per round
    _last: list = field(default_factory=list)    # (draw indices, their last consumed proposal), per round

    def responses(self, which: str = "accepted"):
        """(draw indices sorted, responses in that order) of the accepted draws ('accepted') or the last
        consumed proposal of the draws that failed ('last')."""
        parts = self._acc if which == "accepted" else self._last
        if not parts:
            return np.zeros(0, np.int64), []
        if len(parts) == 1:                                        # one round: already in draw order
            return parts[0]
        idx = np.concatenate([i for i, _ in parts])
        ys = concat([y for _, y in parts])
        order = np.argsort(idx, kind="stable")
        return idx[order], take(ys, order)

    def consumed_all(self):
        """(responses, owner, log-weight) of every consumed proposal, in consumption order."""
        if not self.consumed:
            return [], np.zeros(0, np.int64), np.zeros(0)
        if len(self.consumed) == 1:
            return self.consumed[0], self.consumed_owner[0], self.consumed_lw[0]
        return concat(self.consumed), np.concatenate(self.consumed_owner), np.concatenate(self.consumed_lw)


def rejection_rounds(propose: Callable[[np.ndarray], Any], log_weight: Callable[[Any, np.ndarray], np.ndarray],
                     log_E: np.ndarray, N: np.ndarray, batch: np.ndarray, rng: np.random.Generator,
                     give_back: Callable[[Any, np.ndarray], None] | None = None) -> Rounds:
    """Run n independent rejection draws, vectorized across draws.

    Draw i proposes from its own proposal law, accepts a proposal y with probability
    min(1, exp(s_i(y) - log_E[i])) and gives up after N[i] proposals. Each round gives every active
    draw ``batch[i]`` proposals (at most what it has left); the proposals after its first acceptance
    were not looked at by any decision, so they are handed to ``give_back(ys, owners)`` (in their
    original order) to be reused as fresh proposals, or counted as ``returned`` waste without it.

    propose(owners) returns one fresh proposal per entry of ``owners`` (draw indices), charged by the
    caller's oracle; log_weight(ys, owners) returns s_owner(y) for each. Draws are *sequentially
    valid*: each draw's accepted response has the law (1) of the module docstring given its envelope.
    """
    n = int(np.size(log_E))
    log_E = np.asarray(log_E, dtype=float)
    N = np.asarray(N, dtype=np.int64)
    batch = np.maximum(np.asarray(batch, dtype=np.int64), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if n == 1:
            return _one_draw(propose, log_weight, float(log_E[0]), int(N[0]), int(batch[0]), rng, give_back)
        return _rounds(propose, log_weight, log_E, N, batch, rng, give_back, n)


def _one_draw(propose, log_weight, log_E: float, N: int, b0: int, rng, give_back) -> Rounds:
    """:func:`rejection_rounds` for a single draw (the common case inside an exploration round): the
    proposals, uniforms and decisions of :func:`one_draw`, reported as :class:`Rounds`."""
    def propose_k(k):
        return propose(np.zeros(k, np.int64))

    def log_weight_1(ys):
        return log_weight(ys, np.zeros(len(ys), np.int64))

    give_back_1 = None if give_back is None else (lambda ys: give_back(ys, np.zeros(len(ys), np.int64)))
    d = one_draw(propose_k, log_weight_1, log_E, N, b0, rng, give_back_1)
    res = Rounds(n=1, used=np.full(1, d.used, np.int64), accepted=np.full(1, d.accepted),
                 clipped=np.full(1, d.clipped), max_seen=np.full(1, d.max_seen), returned=d.returned)
    res.consumed, res.consumed_lw = d.consumed, d.consumed_lw
    res.consumed_owner = [np.zeros(len(lw), np.int64) for lw in d.consumed_lw]
    if d.accepted:
        res._acc.append((np.zeros(1, np.int64), d.response))
    elif d.response is not None:
        res._last.append((np.zeros(1, np.int64), d.response))
    return res


class OneDraw:
    """Outcome of :func:`one_draw`: proposals ``used``, ``accepted``, ``clipped`` (a consumed proposal above
    the envelope), ``max_seen`` (largest consumed log-weight), ``returned`` (proposals given back),
    ``response`` (the accepted one, or after N proposals the last; a batch of one; None when N = 0) and the
    consumed proposals with their log-weights, one entry per round."""

    __slots__ = ("used", "accepted", "clipped", "max_seen", "returned", "response", "consumed", "consumed_lw")

    def __init__(self):
        self.used, self.accepted, self.clipped, self.max_seen, self.returned = 0, False, False, -math.inf, 0
        self.response = None
        self.consumed: list = []
        self.consumed_lw: list = []

    def consumed_all(self):
        """(responses, log-weights) of every consumed proposal, in consumption order."""
        if len(self.consumed) == 1:
            return self.consumed[0], self.consumed_lw[0]
        if not self.consumed:
            return [], np.zeros(0)
        return concat(self.consumed), np.concatenate(self.consumed_lw)


def one_draw(propose: Callable[[int], Any], log_weight: Callable[[Any], np.ndarray], log_E: float, N: int, b0: int,
             rng: np.random.Generator, give_back: Callable[[Any], None] | None = None) -> OneDraw:
    """One rejection draw with envelope log_E, proposal cap N and ``b0`` proposals per round (>= 1), with
    scalar bookkeeping: ``propose(k)`` returns k fresh proposals, ``log_weight(ys)`` their log-weights,
    ``give_back(ys)`` takes the proposals after the acceptance. Call it where divide/invalid floating-point
    warnings are ignored (as :func:`rejection_rounds` does): log(0) and inf - inf are expected here."""
    res = OneDraw()
    used = 0
    while used < N:
        b = min(b0, N - used)
        ys = propose(b)
        lw = np.asarray(log_weight(ys), dtype=float)
        accept = np.log(rng.random(b)) < lw - log_E
        hit = int(accept.argmax())                               # the first acceptance, if any
        if not accept[hit]:
            hit = -1
        c = hit + 1 if hit >= 0 else b
        lw_c = lw[:c]
        res.consumed.append(take(ys, slice(0, c)))
        res.consumed_lw.append(lw_c)
        m = float(lw_c.max())
        res.max_seen = max(res.max_seen, m)
        if not m <= log_E:                                       # some consumed proposal above the envelope
            res.clipped |= bool(np.any(lw_c > log_E))
        used += c
        if c < b:
            res.returned += b - c
            if give_back is not None:
                give_back(take(ys, slice(c, None)))
        if hit >= 0:
            res.accepted = True
            res.response = take(ys, slice(hit, hit + 1))
            break
        if used >= N:
            res.response = take(ys, slice(c - 1, c))
    res.used = used
    return res


def _rounds(propose, log_weight, log_E, N, batch, rng, give_back, n) -> Rounds:
    res = Rounds(n=n, used=np.zeros(n, np.int64), accepted=np.zeros(n, bool), clipped=np.zeros(n, bool),
                 max_seen=np.full(n, -np.inf))
    active = np.arange(n)
    while active.size:
        b = np.minimum(batch[active], N[active] - res.used[active])
        owners = np.repeat(active, b)
        starts = np.concatenate([[0], np.cumsum(b)[:-1]])
        pos = np.arange(owners.size) - np.repeat(starts, b)       # position within the draw's batch
        ys = propose(owners)
        lw = np.asarray(log_weight(ys, owners), dtype=float)
        excess = lw - log_E[owners]                                # > 0: clipped by the envelope
        accept = np.log(rng.random(owners.size)) < excess
        cand = np.where(accept, pos, np.iinfo(np.int64).max)
        first = np.minimum.reduceat(cand, starts) if owners.size else cand
        got = first < b
        c = np.where(got, first + 1, b)                            # proposals consumed per active draw
        keep = pos < np.repeat(c, b)
        kidx = np.flatnonzero(keep)
        res.consumed.append(take(ys, kidx))
        res.consumed_owner.append(owners[kidx])
        res.consumed_lw.append(lw[kidx])
        lw_k = np.where(keep, lw, -np.inf)
        ex_k = np.where(keep, excess, -np.inf)
        res.max_seen[active] = np.fmax(res.max_seen[active], np.maximum.reduceat(lw_k, starts))
        res.clipped[active] |= np.maximum.reduceat(ex_k, starts) > 0
        ends = starts + c - 1                                      # index of the last consumed proposal
        if got.any():
            res._acc.append((active[got], take(ys, ends[got])))
        res.accepted[active] = got
        res.used[active] += c
        gave_up = ~got & (res.used[active] >= N[active])
        if gave_up.any():
            res._last.append((active[gave_up], take(ys, ends[gave_up])))
        unused = np.flatnonzero(~keep)
        if unused.size:
            res.returned += int(unused.size)
            if give_back is not None:
                give_back(take(ys, unused), owners[unused])
        active = active[~got & (res.used[active] < N[active])]
    return res


@np.errstate(divide="ignore", invalid="ignore", over="ignore")
def emitted_law(log_p: np.ndarray, S: np.ndarray, log_E: np.ndarray, N: np.ndarray | None = None,
                fallback: str = "last") -> np.ndarray:
    """Exact law of an envelope rejection draw over an enumerated support; see the module docstring.

    log_p : (m,) log proposal probabilities (-inf off the support).
    S : (k, m) log-weights s(y) of k targets (rows); ``-inf`` = probability 0.
    log_E : (k,) log-envelopes. N : (k,) proposal caps (None: no cap, i.e. no failure).
    Returns (k, m): for each row (1 - (1-a)^N) q_E + (1-a)^N fallback-law, q_E ∝ p min(exp(s), E).
    ``fallback='raise'`` returns the law conditional on success.
    """
    S = np.atleast_2d(np.asarray(S, dtype=float))
    log_E = np.asarray(log_E, dtype=float).reshape(-1, 1)
    log_p = np.asarray(log_p, dtype=float)[None, :]
    clip = np.minimum(S, log_E)                                    # log min(exp(s), E)
    z = log_p + clip
    log_ZE = logsumexp(z, axis=1, keepdims=True)
    q = np.exp(z - log_ZE)
    if N is None or fallback == "raise":
        return q
    log_a = np.minimum(log_ZE - log_E, 0.0)                        # acceptance probability per proposal
    a = np.exp(log_a)
    log_fail = np.asarray(N, dtype=float).reshape(-1, 1) * np.log1p(-np.minimum(a, 1.0))
    fail = np.exp(log_fail)                                        # (1 - a)^N (0 when a = 1)
    if fallback == "ref":
        fb = np.exp(log_p)
    else:                                                          # 'last': a rejected proposal
        rej = np.exp(log_p) * (1.0 - np.exp(clip - log_E))
        tot = rej.sum(axis=1, keepdims=True)
        fb = np.where(tot > 0, rej / np.where(tot > 0, tot, 1.0), np.exp(log_p))
    return (1.0 - fail) * q + fail * fb


def calibration_need(log_C_hat: float, pilot: int, pilot_factor: float) -> int:
    """How many proposal draws a calibration set should hold for targets whose estimated coverage is
    C_hat = exp(log_C_hat) = max exp(s) / mean exp(s) over the set (its sup q/p over what was seen).

    The rule asks for max(pilot, pilot_factor * C_hat) draws, so that a response region of proposal mass
    ~1/C_hat, the scale at which the target's mass concentrates, is seen about pilot_factor times. It is
    a self-consistency rule, not a certificate: a region of mass far below 1/C_hat that carries much of
    the target's mass (a needle) can stay unseen, which no sampling-based rule can detect (the coverage
    lower bound). Draws then clip it, and the reported law (:func:`emitted_law`) says so.
    """
    c = float(log_C_hat)
    c = c if math.isfinite(c) else 0.0
    return int(max(pilot, math.ceil(pilot_factor * math.exp(min(c, EXP_GUARD)))))
