"""Policies: what an algorithm returns.

A policy samples through ledger-counted oracles (``sample(x, n, rng)``). On exact instances it may also
give ``probs(x)``: the exact law of what ``sample(x, ...)`` emits next (clipping, fallbacks and the
sampler's calibration included), an array over the enumerable response set. Policies reach the exact
instance only through its evaluation interface (``support(x)``: log pi_ref and phi over the response
set), attached after the run (:meth:`Policy.attach_exact`); ``sample()`` never uses it. Computing a
law may calibrate a sampler first, exactly as the next draw would: those draws are charged to the
policy's label (evaluation relabels to 'eval').
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scipy.special import logsumexp

from .errors import ExactLawUnavailable, check_finite_array, check_int
from .oracles import Oracles


class Policy:
    """Base class. Subclasses implement ``_sample`` and optionally ``probs``."""

    #: proper policies are members of the linear-softmax class Pi.
    proper: bool = False

    def __init__(self, oracles: Oracles | None = None):
        self.oracles = oracles
        self._exact = None
        self.law_rng: np.random.Generator | None = None

    def bind(self, oracles: Oracles) -> "Policy":
        """Attach the (counted) oracles this policy samples through; returns self."""
        self.oracles = oracles
        return self

    def attach_exact(self, exact) -> "Policy":
        """Attach an exact instance's evaluation interface (for ``probs``); returns self."""
        self._exact = exact
        return self

    def exact_instance(self):
        """The exact instance used by ``probs``: the attached one, or that of a plain bound Problem."""
        if self._exact is not None:
            return self._exact
        from .problem import Problem

        prob = self.oracles.problem if self.oracles is not None else None
        if isinstance(prob, Problem) and prob.exact is not None:
            return prob.exact
        raise ExactLawUnavailable(f"{type(self).__name__}.probs needs an exact instance (none attached)")

    def _rng(self, rng=None) -> np.random.Generator:
        """The generator of calibration draws made while computing a law (explicit, or the policy's own)."""
        if rng is not None:
            return rng
        if self.law_rng is None:
            self.law_rng = np.random.default_rng(0)
        return self.law_rng

    def sample(self, x: Any, n: int, rng: np.random.Generator):
        """n responses from this policy at prompt x; every oracle call is charged to the ledger."""
        n = check_int("n", n, low=0)
        if self.oracles is None:
            raise ValueError("policy is not bound to oracles; call policy.bind(oracles) first")
        return self._sample(x, n, rng)

    def _sample(self, x, n, rng):  # pragma: no cover - abstract
        raise NotImplementedError

    def probs(self, x: Any) -> np.ndarray:
        """Exact law over the response set of x (exact instances only)."""
        raise NotImplementedError(f"{type(self).__name__} has no exact probabilities")

    @property
    def has_probs(self) -> bool:
        return type(self).probs is not Policy.probs


class ReferencePolicy(Policy):
    """pi_ref itself (what an algorithm returns before it has learned anything)."""

    def _sample(self, x, n, rng):
        return self.oracles.sample_ref(x, n, rng)

    def probs(self, x):
        return np.exp(self.exact_instance().support(x).log_ref)


class LinearSoftmaxPolicy(Policy):
    """pi_theta(y|x) ∝ pi_ref(y|x) exp(<theta, phi(x,y)>/beta): a member of the class Pi.

    Sampling uses the problem's exact strong oracle (one 'strong' call per sample; an oracle hint), or,
    when ``sampler`` is given, a weak-oracle realization ``sampler(oracles, x, theta, n, rng)`` whose
    pi_ref draws are charged to T_comp. ``probs`` is the law of what is emitted: pi_theta itself with
    the exact oracle, the sampler's law (``sampler.law``) otherwise.
    """

    proper = True

    def __init__(self, theta, beta: float, oracles: Oracles | None = None, sampler=None):
        super().__init__(oracles)
        self.theta = check_finite_array("theta", theta, ndim=1)
        self.beta = float(beta)
        self.sampler = sampler

    def _sample(self, x, n, rng):
        if self.sampler is not None:
            return self.sampler(self.oracles, x, self.theta, n, rng)
        return self.oracles.sample_strong(x, self.theta, n, rng)

    def probs(self, x, rng=None):
        sup = self.exact_instance().support(x)
        if self.sampler is None:
            return tilt(sup.log_ref, sup.phi @ self.theta / self.beta)
        law = getattr(self.sampler, "law", None)
        if law is None:
            raise ExactLawUnavailable(f"sampler {type(self.sampler).__name__} reports no exact law")
        return law(self.oracles, x, self.theta, sup.log_ref, sup.phi, self._rng(rng))


def tilt(log_ref: np.ndarray, s: np.ndarray) -> np.ndarray:
    """pi_ref(y) exp(s(y)) normalized (log space)."""
    z = np.asarray(log_ref, dtype=float) + np.asarray(s, dtype=float)
    return np.exp(z - logsumexp(z))
