"""The strong sampling oracle y ~ pi_theta(.|x), two ways (paper-notes §1.5, §2.5).

Proper algorithms (OnlineDPO, XPO, ...) explore with members of the linear-softmax class

    pi_theta(y|x) ∝ pi_ref(y|x) exp(<theta, phi(x,y)>/beta).

How much a draw from pi_theta costs is the crux of Theorem 4.1, so spanex offers two cost models and
every proper algorithm records which one it used (``strong_oracle`` in its config and ``result.extras``):

``'weak'`` (the default)
    :class:`WeakStrongSampler`: rejection sampling from pi_ref with SoftmaxSampler and the score
    f(y) = <theta, phi(x, y)>. Every pi_ref draw (calibration, proposals, draws of a too-small M
    that is then doubled) is a counted 'weak' call. A draw costs about C_cov(pi_theta) =
    sup_y pi_theta(y|x)/pi_ref(y|x) calls, so optimistic (large, exploratory) theta's cost
    exponentially many. Nothing is capped silently: a budget stops the run.

``'exact'``
    The problem's idealized exact strong oracle (:meth:`spanex.core.Oracles.sample_strong`, by
    enumeration on tabular problems): one 'strong' call per sample, whatever theta is. It models
    "fine-tune, then sample" at unit cost and is an *oracle hint*: it needs ``run(...,
    oracle_hints=True)`` and the Result lists it.

How the weak realization finds its envelope (``M=``):

- ``None`` (default): SoftmaxSampler's self-calibrating envelope (:mod:`spanex.sampling.softmax_sampler`):
  no bound needed, about C_cov(pi_theta) calls per draw, and an exact emitted law given the
  calibration set (so ``probs()`` of the policy is what its draws follow). The calibration set of a
  prompt is shared by every theta the run samples there.
- ``<float>``: the paper's sampler with this M (about 2M calls per draw).
- ``'worst_case'``: the paper's sampler with the sound bound exp(2 ||theta|| L / beta), L the declared
  feature-norm bound (|<theta, phi(y)> - <theta, phi(y')>| <= 2 ||theta|| L). Often astronomically loose.
- ``'doubling'``: the paper's sampler from ``M0`` (or half the M that the last call at the prompt ended
  with), doubled while the run shows it too small (a draw failed, or a seen response exceeded Zhat_M);
  it stops at the worst-case bound.

``max_M`` refuses (SamplerFailure, naming the M needed) a paper-mode draw whose M exceeds it, so an
unbudgeted run fails loudly instead of allocating ~M responses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import SamplerFailure, check_choice, check_int, check_real
from ..core.responses import prompt_key
from .scores import EXP_GUARD
from .softmax_sampler import FALLBACKS, SamplerState, SoftmaxSampler

STRONG_ORACLES = ("exact", "weak")
M_RULES = ("doubling", "worst_case")


@dataclass
class WeakStrongSampler:
    """Weak-oracle realization of the strong oracle; callable ``(oracles, x, theta, n, rng) -> responses``.

    Usable as ``LinearSoftmaxPolicy(theta, beta, sampler=WeakStrongSampler(...))``. See the module
    docstring for the cost model and the rules for M.

    Parameters
    ----------
    M : None (self-calibrating, default), 'doubling', 'worst_case' or a float >= 1 (paper mode).
    delta : per-draw failure probability of SoftmaxSampler, in [1e-12, 1).
    M0 : first M of the doubling rule, >= 1.
    max_M : largest paper-mode M a draw may use (default 1e8); beyond it a SamplerFailure names the M needed.
    fallback : SoftmaxSampler's behaviour on failure ('last', 'ref', 'raise'; the doubling rule retries).
    batch_size : paper mode's proposals per round (None: ceil(M/4)).
    pilot, pilot_factor : the self-calibrating envelope's calibration rule.

    The instance keeps per-prompt calibration sets and the doubling rule's last M (warm starts) and
    running totals (``stats``). Build a fresh sampler per run (the algorithms do) so runs stay
    reproducible by seed.
    """

    M: Any = None
    delta: float = 0.05
    M0: float = 2.0
    max_M: float = 1e8
    fallback: str = "last"
    batch_size: int | None = None
    pilot: int = 32
    pilot_factor: float = 16.0
    _last_M: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    state: SamplerState = field(default_factory=SamplerState, init=False, repr=False, compare=False)
    stats: dict = field(default_factory=lambda: {"draws": 0, "calls": 0, "doublings": 0, "max_M": 0.0,
                                                 "failures": 0, "clipped": 0, "rule": None}, init=False,
                        repr=False, compare=False)

    def __post_init__(self):
        if isinstance(self.M, str):
            check_choice("M", self.M, M_RULES + ("auto", "known"))
            if self.M in ("auto", "known"):
                raise ValueError(f"M={self.M!r} read C_cov(pi_theta) from the exact instance, which an algorithm "
                                 "may not know; use M=None (self-calibrating), 'doubling', 'worst_case' or a number")
        elif self.M is not None:
            self.M = check_real("M", self.M, low=1, high=1e12)
        self.delta = check_real("delta", self.delta, low=1e-12, high=1, high_open=True)
        self.M0 = check_real("M0", self.M0, low=1, high=1e12)
        self.max_M = check_real("max_M", self.max_M, low=1, high=1e15)
        check_choice("fallback", self.fallback, ("last", "ref", "raise"))
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, low=1, high=1 << 30)
        check_int("pilot", self.pilot, low=1, high=1 << 30)
        check_real("pilot_factor", self.pilot_factor, low=1, high=1e6)

    # ---- the rules for M ---------------------------------------------------------------------------
    @staticmethod
    def worst_case_M(theta, beta: float, L: float) -> float:
        """exp(2 ||theta|| L / beta): sup_y pi_theta(y)/pi_ref(y) <= e^{(max f - min f)/beta}."""
        return float(math.exp(min(2.0 * float(np.linalg.norm(theta)) * L / beta, EXP_GUARD)))

    def rule(self) -> str:
        """'envelope' (M None), 'given', 'doubling' or 'worst_case'."""
        if self.M is None:
            return "envelope"
        return self.M if isinstance(self.M, str) else "given"

    def _check_M(self, M: float) -> float:
        if M > self.max_M:
            raise SamplerFailure(f"sampling pi_theta by rejection from pi_ref needs M = {M:.4g} > max_M = "
                                 f"{self.max_M:.4g} (||theta|| too large for beta); pass a budget to stop the "
                                 "run instead, or raise max_M")
        return M

    def softmax_sampler(self, beta: float, M: float | None = None, fallback: str | None = None) -> SoftmaxSampler:
        return SoftmaxSampler(beta=beta, M=M, delta=self.delta, batch_size=self.batch_size,
                              fallback=fallback or self.fallback, pilot=self.pilot, pilot_factor=self.pilot_factor)

    # ---- drawing -----------------------------------------------------------------------------------
    def __call__(self, oracles, x, theta, n: int, rng: np.random.Generator):
        n = check_int("n", n, low=0)
        theta = np.asarray(theta, dtype=float)
        problem = oracles.problem
        beta = problem.beta
        if n == 0:
            return oracles.sample_ref(x, 0, rng)

        def f(ys):  # score of pi_theta: f(y) = <theta, phi(x, y)>
            return oracles.phi(x, ys) @ theta

        start = oracles.ledger.total(("weak", "token"), oracles.label)
        rule = self.rule()
        self.stats["rule"] = rule
        if rule == "envelope":
            ys, diag = self.softmax_sampler(beta).sample(f, x, oracles, rng, n, state=self.state)
            self._record(n, oracles, start, diag.M, diag)
            return ys
        M_sound = self.worst_case_M(theta, beta, problem.feature_norm_bound)
        if rule == "given" or rule == "worst_case" or M_sound <= self.M0:
            M = float(self.M) if rule == "given" else max(1.0, M_sound)
            ys, diag = self.softmax_sampler(beta, self._check_M(M)).sample(f, x, oracles, rng, n)
            self._record(n, oracles, start, M, diag)
            return ys
        # doubling: M <- max(M0, last/2); repeat: run; if some draw failed or clipped, M <- 2M.
        M = min(max(self.M0, self._last_M.get(prompt_key(x), self.M0) / 2.0), M_sound)
        while True:
            self._check_M(M)
            sound = M >= M_sound
            ys, diag = self.softmax_sampler(beta, M, "last" if sound else "none").sample(f, x, oracles, rng, n)
            too_small = (not diag.accepted.all()) or diag.ratio_exceeds_M
            if sound or not too_small:
                break
            M = min(2.0 * M, M_sound)                        # thrown-away draws stay charged
            self.stats["doublings"] += 1
        self._last_M[prompt_key(x)] = M
        self._record(n, oracles, start, M, diag)
        return ys

    def _record(self, n, oracles, start, M, diag):
        self.stats["draws"] += n
        self.stats["calls"] += oracles.ledger.total(("weak", "token"), oracles.label) - start
        if M == M:                                           # not NaN
            self.stats["max_M"] = max(self.stats["max_M"], float(M))
        self.stats["failures"] += int((~diag.accepted).sum())
        self.stats["clipped"] += int(diag.clipped.sum())

    # ---- the emitted law ---------------------------------------------------------------------------
    def law(self, oracles, x, theta, log_ref: np.ndarray, phi_support: np.ndarray, rng) -> np.ndarray:
        """Exact law of the next draw at x given the calibration set (self-calibrating rule only).

        Calibrates first when the set is not yet large enough for theta (charging ``oracles``' label),
        exactly as the next draw would. Other rules raise ExactLawUnavailable (evaluate by sampling).
        """
        from ..core.errors import ExactLawUnavailable

        if self.rule() != "envelope":
            raise ExactLawUnavailable(f"the paper-mode realization (M rule {self.rule()!r}) has a random Zhat_M; "
                                      "its law is evaluated by sampling")
        theta = np.asarray(theta, dtype=float)
        beta = oracles.problem.beta
        sampler = self.softmax_sampler(beta)

        def f(ys):
            return oracles.phi(x, ys) @ theta

        sampler.calibrate(x, oracles, rng, self.state, sampler._scores(f, False, None), np.zeros(1, np.int64))
        R = self.state.get(prompt_key(x))
        return sampler.law(log_ref, (phi_support @ theta)[None, :], f(R)[None, :])[0]


def make_strong_sampler(strong_oracle: str, **weak_params):
    """None for the exact strong oracle ('exact'), a fresh WeakStrongSampler for 'weak'."""
    check_choice("strong_oracle", strong_oracle, STRONG_ORACLES)
    if strong_oracle == "exact":
        return None
    return WeakStrongSampler(**weak_params)


def sample_pi_theta(oracles, x, theta, n: int, rng: np.random.Generator, sampler=None):
    """n draws from pi_theta(.|x): exact strong oracle when sampler is None, else the sampler."""
    if sampler is None:
        return oracles.sample_strong(x, theta, n, rng)
    return sampler(oracles, x, theta, n, rng)


__all__ = ["WeakStrongSampler", "make_strong_sampler", "sample_pi_theta", "STRONG_ORACLES", "M_RULES", "FALLBACKS"]
