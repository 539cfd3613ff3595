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

import numpy as np

from ..core.errors import check_int, check_real
from ..core.responses import take
from .elliptical import sherman_morrison, sq_norms


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


def query_pair_feedback(oracles, x, y1, y2, rng, feedback: str) -> float:
    """Feedback on one pair: r1 - r2 (2 reward queries) or b in {0,1} (1 preference query)."""
    if feedback == "reward":
        r = oracles.reward(x, _join(y1, y2), rng)
        return float(r[0] - r[1])
    return float(oracles.preference(x, y1, y2, rng)[0])


def _join(y1, y2):
    if isinstance(y1, np.ndarray):
        return np.concatenate([y1, y2])
    return list(y1) + list(y2)


def build_spanner(oracles, rng: np.random.Generator, *, T_span: int, N_try: int, nu: float, lam: float = 1.0,
                  feedback: str = "reward", max_batch: int = 4096, on_accept=None, progress=None) -> SpannerResult:
    """Run the spanner phase; see the module docstring. ``on_accept(result)`` is called after each acceptance."""
    T_span = check_int("T_span", T_span, low=0)
    N_try = check_int("N_try", N_try, low=1)
    nu = check_real("nu", nu, low=0, low_open=True)
    lam = check_real("lam", lam, low=0, low_open=True)
    d = oracles.problem.d
    res = SpannerResult(Sigma=lam * np.eye(d), Sigma_inv=np.eye(d) / lam, V=np.zeros((0, d)),
                        targets=np.zeros(0), prompts=[])
    rows, targets = [], []
    nu2 = nu * nu
    xs = oracles.prompts(T_span, rng) if T_span else []
    for t in range(T_span):
        x = xs[t]                                                    # x^t ~ rho
        res.prompts_seen += 1
        drawn, b, accepted = 0, 1, False
        while drawn < N_try and not accepted:
            k = min(b, N_try - drawn, max_batch)
            ys = oracles.sample_ref(x, 2 * k, rng)                   # (y, y') ~ pi_ref(.|x)^{⊗2}, k pairs
            F = oracles.phi(x, ys)
            V = F[:k] - F[k:]                                        # relative features
            informative = sq_norms(V, res.Sigma_inv) > nu2           # ||v||_{Sigma^{-1}} > nu
            drawn += k
            res.pair_draws += k
            if informative.any():
                i = int(np.argmax(informative))                      # first informative pair in draw order
                y1, y2 = take(ys, [i]), take(ys, [k + i])
                targets.append(query_pair_feedback(oracles, x, y1, y2, rng, feedback))
                rows.append(V[i])
                res.prompts.append(x)
                res.Sigma += np.outer(V[i], V[i])                    # Sigma_span += v v^T
                res.Sigma_inv = sherman_morrison(res.Sigma_inv, V[i])
                res.V = np.asarray(rows)
                res.targets = np.asarray(targets)
                accepted = True
                if on_accept is not None:
                    on_accept(res)
            b *= 2
        if not accepted:
            res.prompts_covered += 1                                 # no informative pair: x is covered
        if progress is not None:
            progress.update(1)
    return res
