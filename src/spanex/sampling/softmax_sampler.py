"""SoftmaxSampler_{beta, M, delta}: rejection sampling from pi_ref (paper-notes §2.1).

Target: q_f(y|x) ∝ pi_ref(y|x) exp(f(y)/beta) for a score function f, using only the weak
sampling oracle. With w(y) = q_f(y)/pi_ref(y) = exp(f(y)/beta)/Z_f, Z_f = E_{pi_ref} exp(f/beta):

    draw y'_1..y'_M ~ pi_ref                         # partition estimate, M oracle calls
    Zhat_M = sum_j exp(f(y'_j)/beta)                 # a SUM: Zhat_M ≈ M Z_f
    N = ceil(4 M log(4/delta))
    for i = 1..N: draw y_i ~ pi_ref                  # proposals (drawn in batches; all counted)
        accept with prob min(1, exp(f(y_i)/beta) / Zhat_M); return y_i if accepted
    on failure: fallback (configurable)

If sup w <= Zhat_M / Z_f (≈ M) the accepted sample has exactly the law q_f; otherwise responses
with exp(f/beta) > Zhat_M are *clipped* (accepted with probability 1 instead of proportionally)
and the diagnostics say so. Everything is computed in log space, so beta down to 1e-3 and large
scores do not overflow. ``f`` may return -inf (probability 0, used by policy truncation).

RECON choices (documented parameters): Zhat from fresh samples (not reusing proposals); the
fallback on failure (``'last'`` returns the last proposal, itself a pi_ref draw; ``'ref'`` draws a
fresh counted pi_ref sample; ``'none'`` returns None; ``'raise'`` raises SamplerFailure); M is
given (an upper bound on the density ratio, ~C_cov) rather than found by doubling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..core.errors import SamplerFailure, check_choice, check_int, check_real
from ..core.responses import concat, take

FALLBACKS = ("last", "ref", "none", "raise")


@dataclass
class SamplerDiagnostics:
    """Per-draw diagnostics of a batch of SoftmaxSampler draws (arrays have one entry per draw).

    proposals : proposal oracle calls charged to each draw (batch waste included).
    partition_calls : calls spent on the partition estimate (M per draw).
    accepted : whether the draw was accepted (False: the fallback was used).
    log_Zhat : log Zhat_M.
    ratio_bound : estimate of sup w over everything seen: max exp(f/beta) / (Zhat_M / M).
    clipped : some proposal had exp(f/beta) > Zhat_M, so clipping may have biased the law.
    """

    proposals: np.ndarray
    partition_calls: np.ndarray
    accepted: np.ndarray
    log_Zhat: np.ndarray
    ratio_bound: np.ndarray
    clipped: np.ndarray
    M: float
    N: int

    @property
    def calls(self) -> np.ndarray:
        return self.proposals + self.partition_calls

    @property
    def acceptance_rate(self) -> float:
        """Accepted draws per proposal drawn."""
        tot = int(self.proposals.sum())
        return float(self.accepted.sum()) / tot if tot else 0.0

    @property
    def ratio_exceeds_M(self) -> bool:
        return bool(np.any(self.ratio_bound > self.M))

    def summary(self) -> dict:
        return {"draws": int(self.accepted.size), "accepted": int(self.accepted.sum()),
                "failures": int((~self.accepted).sum()), "calls": int(self.calls.sum()),
                "acceptance_rate": self.acceptance_rate, "ratio_bound_max": float(self.ratio_bound.max(initial=0.0)),
                "clipped_draws": int(self.clipped.sum()), "M": self.M, "N": self.N}


# -inf scores (probability 0) are allowed; Zhat = 0 then makes log Zhat = -inf, and the resulting
# -inf - -inf = nan comparisons are False (never accepted), so numpy's warnings for them are silenced.
@np.errstate(divide="ignore", invalid="ignore")
def rejection_sample(propose: Callable[[int], Any], log_weight: Callable[..., np.ndarray], n: int, M: float,
                     N: int, batch_size: int, rng: np.random.Generator, per_draw: bool = False):
    """Core of SoftmaxSampler, shared with the token-level sampler.

    propose(k) returns k fresh base draws *and charges them*; log_weight(ys) returns f(y)/beta.
    With ``per_draw=True`` the n draws may have different score functions: log_weight(ys, owner)
    gets ``owner[i]``, the index of the draw that response i belongs to.
    Returns (accepted response per draw or None, last proposal per draw, proposals used, accepted,
    log Zhat, density-ratio estimate, clipped flags, ceil(M)).
    """
    M_int = int(math.ceil(M))

    def lw_of(ys, owner):
        return np.asarray(log_weight(ys, owner) if per_draw else log_weight(ys), dtype=float)

    # (1) partition estimates: M fresh draws per output draw, one batched oracle call.
    part = propose(M_int * n)
    lw_part = lw_of(part, np.repeat(np.arange(n), M_int)).reshape(n, M_int)
    m = np.max(lw_part, axis=1)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    log_Zhat = m_safe + np.log(np.sum(np.exp(lw_part - m_safe[:, None]), axis=1))
    log_Zhat = np.where(np.isfinite(m), log_Zhat, -np.inf)  # all -inf: Zhat = 0, nothing can be accepted
    max_seen = m.copy()
    # (2) rejection: each active draw gets `b` proposals per round until accepted or N used.
    out: list = [None] * n
    last: list = [None] * n
    used = np.zeros(n, dtype=np.int64)
    accepted = np.zeros(n, dtype=bool)
    clipped = np.zeros(n, dtype=bool)
    active = np.arange(n)
    while active.size:
        b = int(min(batch_size, N - used[active].min()))
        b = max(b, 1)
        ys = propose(b * active.size)
        lw = lw_of(ys, np.repeat(active, b)).reshape(active.size, b)
        log_acc = lw - log_Zhat[active, None]  # log of exp(f/beta)/Zhat; > 0 means clipped
        accept = np.log(rng.random((active.size, b))) < log_acc
        max_seen[active] = np.fmax(max_seen[active], lw.max(axis=1))
        # proposals beyond a draw's own N are not part of its run (batch remainder), but were drawn
        # and are charged by propose(); they cannot be accepted.
        within = (used[active, None] + np.arange(1, b + 1)[None, :]) <= N
        accept &= within
        first = np.where(accept.any(axis=1), accept.argmax(axis=1), -1)
        for row, i in enumerate(active):
            if first[row] >= 0:
                j = first[row]
                out[i] = take(ys, [row * b + j])
                accepted[i] = True
                clipped[i] |= bool(np.any(log_acc[row, : j + 1][within[row, : j + 1]] > 0))
            else:
                clipped[i] |= bool(np.any(log_acc[row][within[row]] > 0))
                k = int(within[row].sum())
                last[i] = take(ys, [row * b + max(k - 1, 0)])
        used[active] += b
        done = accepted[active] | (used[active] >= N)
        active = active[~done]
    ratio_bound = np.exp(np.minimum(max_seen - (log_Zhat - math.log(M_int)), 700.0))
    ratio_bound = np.where(np.isfinite(log_Zhat), ratio_bound, np.inf)
    return out, last, used, accepted, log_Zhat, ratio_bound, clipped, M_int


class RejectionParams:
    """Parameters shared by the sequence- and token-level rejection samplers (fields ``beta``, ``M``,
    ``delta``, ``batch_size``, ``fallback``): validation, the proposal cap N and the batch size."""

    def _check_params(self, fallbacks) -> None:
        check_real("beta", self.beta, low=0, low_open=True)
        check_real("M", self.M, low=1)
        check_real("delta", self.delta, low=0, high=1, low_open=True, high_open=True)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, low=1)
        check_choice("fallback", self.fallback, fallbacks)

    @property
    def N(self) -> int:
        """Proposal cap per draw: ceil(4 ceil(M) log(4/delta))."""
        return int(math.ceil(4 * math.ceil(self.M) * math.log(4 / self.delta)))

    @property
    def max_calls_per_draw(self) -> int:
        """Worst-case oracle calls of one draw: M + N + one batch remainder (+1 for the 'ref' fallback)."""
        return int(math.ceil(self.M)) + self.N + self._batch() - 1 + (1 if self.fallback == "ref" else 0)

    def _batch(self) -> int:
        b = self.batch_size if self.batch_size is not None else max(1, int(math.ceil(self.M / 4)))
        return min(b, self.N)


@dataclass(frozen=True)
class SoftmaxSampler(RejectionParams):
    """Rejection sampler for q_f ∝ pi_ref exp(f/beta); see the module docstring.

    Parameters
    ----------
    beta : temperature (the problem's KL-regularization), > 0.
    M : upper bound on the density ratio sup_y q_f(y)/pi_ref(y) (≈ C_cov for SpannerSampling's
        targets), >= 1. Costs M + N weak-oracle calls per draw at most.
    delta : failure probability per draw, in (0, 1). N = ceil(4 M log(4/delta)).
    batch_size : proposals per oracle call; None means ceil(M/4) (waste of a batch is charged).
    fallback : behaviour when no proposal is accepted ('last', 'ref', 'none', 'raise').
    """

    beta: float
    M: float
    delta: float = 0.05
    batch_size: int | None = None
    fallback: str = "last"

    def __post_init__(self):
        self._check_params(FALLBACKS)

    def sample(self, f: Callable[..., np.ndarray], x: Any, oracles, rng: np.random.Generator, n: int = 1,
               per_draw: bool = False):
        """n independent draws from q_f(.|x) through ``oracles.sample_ref`` (all calls counted).

        ``f(ys)`` scores a batch of responses; with ``per_draw=True`` it is called as ``f(ys, owner)``
        so each of the n draws can have its own score function (e.g. its own anchor).
        Returns (responses, SamplerDiagnostics). Draws that failed follow ``fallback``; with
        'none' their slot holds None (so responses is a list).
        """
        n = check_int("n", n, low=1)
        beta = self.beta

        def propose(k):
            return oracles.sample_ref(x, k, rng)

        def log_weight(ys, owner=None):
            return np.asarray(f(ys, owner) if per_draw else f(ys), dtype=float) / beta

        out, last, used, accepted, log_Zhat, ratio, clipped, M_int = rejection_sample(
            propose, log_weight, n, self.M, self.N, self._batch(), rng, per_draw=per_draw)
        for i in range(n):
            if not accepted[i]:
                if self.fallback == "raise":
                    raise SamplerFailure(f"SoftmaxSampler: no acceptance in N={self.N} proposals (M={self.M}); "
                                         f"estimated density ratio {ratio[i]:.3g}")
                if self.fallback == "last":
                    out[i] = last[i]
                elif self.fallback == "ref":
                    out[i] = oracles.sample_ref(x, 1, rng)
                    used[i] += 1
        diag = SamplerDiagnostics(proposals=used, partition_calls=np.full(n, M_int, dtype=np.int64),
                                  accepted=accepted, log_Zhat=log_Zhat, ratio_bound=ratio, clipped=clipped,
                                  M=float(self.M), N=self.N)
        if self.fallback == "none" and not accepted.all():
            return [None if o is None else take(o, 0) for o in out], diag
        return concat(out), diag
