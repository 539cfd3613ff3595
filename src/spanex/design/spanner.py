"""Average-case spanner from pi_ref pairs (Phase 1 of SpannerSampling, paper-notes §2.2).

Sigma_span (the design) starts at lam I. For each of T_span prompts x ~ rho, pairs
(y, y') ~ pi_ref(.|x)^2 are drawn until one is *informative*, ||phi(x,y) - phi(x,y')||_{Sigma^{-1}} > nu,
or N_try pairs have been drawn. An informative pair is kept (Psi_span), its feedback queried (two
rewards, or one preference), and Sigma += v v^T (Sherman–Morrison for Sigma^{-1}). A prompt with no
informative pair within N_try draws counts as covered and costs no feedback.

Pairs are drawn in batches whose size doubles within a prompt (1, 2, 4, ... pairs), so a prompt
that needs k draws wastes fewer than k extra draws; every drawn pair is charged. The number of
accepted pairs obeys the elliptical-potential bound (:func:`spanner_size_bound`) whatever T_span is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

from ..core.errors import check_int, check_real
from ..core.responses import take
from .elliptical import sherman_morrison, sq_norms
from .feedback import pair_feedback


@dataclass
class SpannerResult:
    Sigma: np.ndarray
    Sigma_inv: np.ndarray
    V: np.ndarray                 # accepted relative features phi(x,y1) - phi(x,y2), one row per pair
    targets: np.ndarray           # r1 - r2 (rewards) or b (preferences: 1 if y1 preferred)
    prompts: list                 # the prompt of each accepted pair
    pair_draws: int = 0           # pairs drawn (each costs 2 sampling calls)
    prompts_seen: int = 0
    prompts_covered: int = 0      # prompts with no informative pair within N_try draws
    trace: list = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.V.shape[0]


class InformativePair(NamedTuple):
    """The pair a search stopped at: pair i of the last batch of k pairs, with relative feature v."""

    batch: Any                    # what ``draw_pairs`` returned to identify the batch (e.g. its responses)
    k: int
    i: int
    v: np.ndarray


def find_informative_pair(draw_pairs: Callable[[int], tuple], Sigma_inv, nu: float, N_try: int,
                          max_batch: int | None = None) -> InformativePair | None:
    """Draw pairs in batches of 1, 2, 4, ... until one is informative, ||v||_{Sigma^{-1}} > nu, or
    N_try pairs have been drawn; the first informative pair in draw order, or None.

    ``draw_pairs(k)`` draws k pairs (every draw charged by the caller's oracles) and returns
    ``(V, batch)``: their relative features V (k, d) and whatever identifies them. ``max_batch``
    caps one batch (None: no cap). Doubling wastes fewer than k draws on a search that needs k.
    """
    nu2 = nu * nu
    drawn, b = 0, 1
    while drawn < N_try:
        k = min(b, N_try - drawn) if max_batch is None else min(b, N_try - drawn, max_batch)
        V, batch = draw_pairs(k)
        informative = sq_norms(V, Sigma_inv) > nu2                   # ||v||_{Sigma^{-1}} > nu
        drawn += k
        i = int(informative.argmax())                                # first informative pair in draw order
        if informative[i]:
            return InformativePair(batch, k, i, V[i])
        b *= 2
    return None


#: prompts drawn (and their first pairs prefetched) at a time
PROMPT_CHUNK = 16


def build_spanner(oracles, rng: np.random.Generator, *, T_span: int, N_try: int, nu: float, lam: float = 1.0,
                  feedback: str = "reward", max_batch: int = 4096, on_accept=None, progress=None) -> SpannerResult:
    """Run the spanner phase; see the module docstring. ``on_accept(result)`` is called after each acceptance.

    ``max_batch`` caps the pairs drawn in one oracle call, so a large N_try never asks the backend for
    one huge batch (a real LM generates a batch at once).
    """
    T_span = check_int("T_span", T_span, low=0)
    N_try = check_int("N_try", N_try, low=1)
    nu = check_real("nu", nu, low=0, low_open=True)
    lam = check_real("lam", lam, low=0, low_open=True)
    d = oracles.problem.d
    res = SpannerResult(Sigma=lam * np.eye(d), Sigma_inv=np.eye(d) / lam, V=np.zeros((0, d)),
                        targets=np.zeros(0), prompts=[])
    # accepted rows and targets, in buffers that double when full (res.V, res.targets are views of their
    # filled part, so an acceptance costs O(d), not a copy of all the rows so far)
    V_buf, t_buf = np.empty((0, d)), np.empty(0)
    xs: list = []
    for t in range(T_span):
        if t % PROMPT_CHUNK == 0:                                    # prompts drawn lazily, a chunk at a time,
            xs = list(oracles.prompts(min(PROMPT_CHUNK, T_span - t), rng))   # so a budget bounds the work
            oracles.prefetch(xs, 2, rng)                             # first pairs: one batched call across prompts
        x = xs[t % PROMPT_CHUNK]                                     # x^t ~ rho
        res.prompts_seen += 1

        def draw_pairs(k, x=x):
            ys = oracles.sample_ref(x, 2 * k, rng)                   # (y, y') ~ pi_ref(.|x)^{⊗2}, k pairs
            F = oracles.phi(x, ys)
            res.pair_draws += k
            return F[:k] - F[k:], ys                                 # relative features

        hit = find_informative_pair(draw_pairs, res.Sigma_inv, nu, N_try, max_batch)
        if hit is not None:
            ys, k, i, v = hit
            target = pair_feedback(oracles, x, take(ys, [i]), take(ys, [k + i]), rng, feedback)[0]
            n = res.V.shape[0]
            if n == V_buf.shape[0]:
                V_buf = np.concatenate([V_buf, np.empty((max(n, 16), d))])
                t_buf = np.concatenate([t_buf, np.empty(max(n, 16))])
            V_buf[n], t_buf[n] = v, target
            res.prompts.append(x)
            res.Sigma += np.outer(v, v)                              # Sigma_span += v v^T
            res.Sigma_inv = sherman_morrison(res.Sigma_inv, v)
            res.V, res.targets = V_buf[:n + 1], t_buf[:n + 1]
            if on_accept is not None:
                on_accept(res)
        else:
            res.prompts_covered += 1                                 # no informative pair: x is covered
        if progress is not None:
            progress.update(1)
    return res
