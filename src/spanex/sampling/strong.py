"""The strong sampling oracle y ~ pi_theta(.|x), two ways (paper-notes §1.5, §2.5).

Proper algorithms (OnlineDPO, XPO, ...) explore with members of the linear-softmax class

    pi_theta(y|x) ∝ pi_ref(y|x) exp(<theta, phi(x,y)>/beta).

How much a draw from pi_theta costs is the crux of Theorem 4.1, so spanex offers two cost models
and every proper algorithm records which one it used (``strong_oracle`` in its config and
``result.extras``):

``'exact'``
    The problem's exact strong oracle (:meth:`spanex.core.Oracles.sample_strong`, by enumeration on
    tabular problems): **one 'strong' call per sample**, whatever theta is. This models "fine-tune
    the model, then sample from it" at unit cost.

``'weak'``
    :class:`WeakStrongSampler`: rejection sampling from pi_ref with SoftmaxSampler and the score
    f(y) = <theta, phi(x, y)>. Every pi_ref draw (partition estimate, proposals, thrown-away batch
    remainders, draws of a too-small M that is then doubled) is a counted 'weak' call. A draw costs
    ≈ M (1 + 4 log(4/delta)) calls with M ≥ C_cov(pi_theta) = sup_y pi_theta(y|x)/pi_ref(y|x), so
    optimistic (large, exploratory) theta's cost exponentially many calls. Nothing is capped: a
    budget stops the run and the ledger shows where the calls went.

Choosing M. C_cov(pi_theta) = sup_y pi_theta(y|x)/pi_ref(y|x) decides both the cost and the
exactness of a draw; the rules (``M=``):

- ``<float>``: a given bound, used as is.
- ``'known'``: ``known_margin`` x C_cov(pi_theta) at the prompt (default margin e^2, the margin
  SpannerSampling uses for M_rej), with C_cov(pi_theta) computed exactly from the problem's exact
  instance. It models a realization *given* a correct coverage bound, the same knowledge
  SpannerSampling's default M_rej = e^2 C_cov(pi*) assumes, so the two are compared on equal terms.
  The exact instance is used for this number only; the draws still come from pi_ref.
- ``'worst_case'``: the sound bound exp(2 ||theta|| L / beta), where L is the problem's feature-norm
  bound (|<theta, phi(y)> - <theta, phi(y')>| <= 2 ||theta|| L bounds log sup w). Often astronomically
  loose.
- ``'doubling'``: start at ``M0`` (or at half of the M that the last call at the same prompt ended
  with) and double while the run shows that M was too small: a draw failed, or some seen response
  had exp(f/beta) > Zhat_M (the sampler's ``ratio_bound`` exceeds M, i.e. clipping). Doubling stops at
  the worst-case bound. It tracks C_cov(pi_theta) when the heavy responses are visible in
  M (1 + 4 log(4/delta)) draws; when they are not (a needle of pi_ref mass << 1/M) it stops early and
  the draws follow a clipped law (cheap but not pi_theta), which no sampling-based rule can detect:
  the coverage barrier itself. Exact evaluation (``policy.probs``) reports pi_theta's law, not the
  clipped one, so compare methods under 'doubling' with care.
- ``'auto'`` (default): 'known' when the problem has an exact instance, else 'doubling'.

``max_M`` refuses (with :class:`~spanex.core.errors.SamplerFailure`, naming the M needed) a draw
whose M exceeds it, so an unbudgeted run fails loudly instead of allocating ~M responses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import SamplerFailure, check_choice, check_int, check_real
from .scores import prompt_key as _key
from .softmax_sampler import FALLBACKS, SoftmaxSampler

STRONG_ORACLES = ("exact", "weak")
M_RULES = ("auto", "known", "doubling", "worst_case")


@dataclass
class WeakStrongSampler:
    """Weak-oracle realization of the strong oracle; callable ``(oracles, x, theta, n, rng) -> responses``.

    Usable as ``LinearSoftmaxPolicy(theta, beta, sampler=WeakStrongSampler(...))``. See the module
    docstring for the cost model and the rules for M.

    Parameters
    ----------
    M : 'auto' (default), 'known', 'doubling', 'worst_case' or a float >= 1 (see the module docstring).
    delta : per-draw failure probability of SoftmaxSampler, in (0, 1).
    M0 : first M of the doubling rule, >= 1.
    known_margin : the factor of the 'known' rule, >= 1 (default e^2).
    max_M : largest M a draw may use (default 1e8); beyond it a SamplerFailure names the M needed.
    fallback : SoftmaxSampler's behaviour on failure (only used for a fixed float M; the doubling
        rule retries instead, and 'worst_case' is sound, so failures there have prob. <= delta).
    batch_size : SoftmaxSampler proposals per oracle call (None: ceil(M/4)).

    The instance keeps, per prompt, the last M the doubling rule ended with (warm start) and
    running totals (``stats``). Build a fresh sampler per run (the algorithms do) so runs stay
    reproducible by seed.
    """

    M: Any = "auto"
    delta: float = 0.05
    M0: float = 2.0
    known_margin: float = math.e ** 2
    max_M: float = 1e8
    fallback: str = "last"
    batch_size: int | None = None
    _last_M: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    stats: dict = field(default_factory=lambda: {"draws": 0, "calls": 0, "doublings": 0, "max_M": 0.0,
                                                 "failures": 0, "rule": None}, init=False, repr=False,
                        compare=False)

    def __post_init__(self):
        if isinstance(self.M, str):
            check_choice("M", self.M, M_RULES)
        else:
            self.M = check_real("M", self.M, low=1)
        self.delta = check_real("delta", self.delta, low=0, high=1, low_open=True, high_open=True)
        self.M0 = check_real("M0", self.M0, low=1)
        self.known_margin = check_real("known_margin", self.known_margin, low=1)
        self.max_M = check_real("max_M", self.max_M, low=1)
        check_choice("fallback", self.fallback, FALLBACKS)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, low=1)

    # ---- the rules for M -----------------------------------------------------------------------
    @staticmethod
    def worst_case_M(theta, beta: float, L: float) -> float:
        """exp(2 ||theta|| L / beta): sup_y pi_theta(y)/pi_ref(y) <= e^{max f - min f}/beta."""
        return float(math.exp(min(2.0 * float(np.linalg.norm(theta)) * L / beta, 700.0)))

    def rule(self, problem) -> str:
        """The rule this sampler applies on `problem` ('auto' resolved)."""
        if not isinstance(self.M, str):
            return "given"
        if self.M == "auto":
            ex = problem.exact
            return "known" if ex is not None and hasattr(ex, "tilted_probs") else "doubling"
        if self.M == "known" and (problem.exact is None or not hasattr(problem.exact, "tilted_probs")):
            raise ValueError(f"M='known' needs an exact instance to compute C_cov(pi_theta); problem "
                             f"{problem.name!r} has none (use M='doubling', 'worst_case' or a number)")
        return self.M

    def known_M(self, problem, x, theta) -> float:
        """known_margin * sup_y pi_theta(y|x)/pi_ref(y|x), from the exact instance."""
        ex = problem.exact
        log_q = ex.log_tilted(x, ex.features[int(x)] @ theta, problem.beta)
        log_ref = ex.log_ref[int(x)]
        m = np.isfinite(log_ref)
        return float(self.known_margin * math.exp(min(float(np.max(log_q[m] - log_ref[m])), 700.0)))

    def _check_M(self, M: float) -> float:
        if M > self.max_M:
            raise SamplerFailure(f"sampling pi_theta by rejection from pi_ref needs M = {M:.4g} > max_M = "
                                 f"{self.max_M:.4g} (||theta|| too large for beta); pass a budget to stop the "
                                 "run instead, or raise max_M")
        return M

    def _sampler(self, beta: float, M: float, fallback: str) -> SoftmaxSampler:
        return SoftmaxSampler(beta=beta, M=M, delta=self.delta, batch_size=self.batch_size, fallback=fallback)

    # ---- drawing -----------------------------------------------------------------------------
    def __call__(self, oracles, x, theta, n: int, rng: np.random.Generator):
        n = check_int("n", n, low=0)
        theta = np.asarray(theta, dtype=float)
        problem = oracles.problem
        beta = problem.beta
        if n == 0:
            return oracles.sample_ref(x, 0, rng)

        def f(ys):  # score of pi_theta: f(y) = <theta, phi(x, y)>
            return oracles.phi(x, ys) @ theta

        start = oracles.ledger.total(("weak",), oracles.label)
        rule = self.rule(problem)
        self.stats["rule"] = rule
        M_sound = self.worst_case_M(theta, beta, problem.feature_norm_bound)
        if rule in ("given", "known"):                       # a given / known bound
            M = float(self.M) if rule == "given" else max(1.0, self.known_M(problem, x, theta))
            ys, diag = self._sampler(beta, self._check_M(M), self.fallback).sample(f, x, oracles, rng, n)
            self._record(n, oracles, start, M, int((~diag.accepted).sum()))
            return ys
        if rule == "worst_case" or M_sound <= self.M0:      # the sound bound
            M = max(1.0, M_sound)
            ys, diag = self._sampler(beta, self._check_M(M), self.fallback).sample(f, x, oracles, rng, n)
            self._record(n, oracles, start, M, int((~diag.accepted).sum()))
            return ys
        # doubling: M <- max(M0, last/2); repeat: run; if some draw failed or clipped, M <- 2M.
        M = min(max(self.M0, self._last_M.get(_key(x), self.M0) / 2.0), M_sound)
        while True:
            self._check_M(M)
            sound = M >= M_sound
            ys, diag = self._sampler(beta, M, "last" if sound else "none").sample(f, x, oracles, rng, n)
            too_small = (not diag.accepted.all()) or diag.ratio_exceeds_M
            if sound or not too_small:
                break
            M = min(2.0 * M, M_sound)                        # thrown-away draws stay charged
            self.stats["doublings"] += 1
        self._last_M[_key(x)] = M
        self._record(n, oracles, start, M, int((~diag.accepted).sum()))
        return ys

    def _record(self, n, oracles, start, M, failures):
        self.stats["draws"] += n
        self.stats["calls"] += oracles.ledger.total(("weak",), oracles.label) - start
        self.stats["max_M"] = max(self.stats["max_M"], float(M))
        self.stats["failures"] += failures


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


__all__ = ["WeakStrongSampler", "make_strong_sampler", "sample_pi_theta", "STRONG_ORACLES", "M_RULES"]
