"""Policies: what an algorithm returns.

A policy samples through ledger-counted oracles (``sample(x, n, rng)``); on exact instances it may
also give the exact law it samples (``probs(x)``, an array over the enumerable response set).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import check_finite_array, check_int
from .oracles import Oracles


class Policy:
    """Base class. Subclasses implement ``_sample`` and optionally ``probs``."""

    #: proper policies are members of the linear-softmax class Pi.
    proper: bool = False

    def __init__(self, oracles: Oracles | None = None):
        self.oracles = oracles

    def bind(self, oracles: Oracles) -> "Policy":
        """Attach the (counted) oracles this policy samples through; returns self."""
        self.oracles = oracles
        return self

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
        ex = self.oracles.problem.exact
        if ex is None:
            raise NotImplementedError("no exact instance")
        return ex.ref_probs[x]


class LinearSoftmaxPolicy(Policy):
    """pi_theta(y|x) ∝ pi_ref(y|x) exp(<theta, phi(x,y)>/beta): a member of the class Pi.

    Sampling uses the problem's exact strong oracle (one 'strong' call per sample), or, when
    ``sampler`` is given, a weak-oracle realization ``sampler(oracles, x, theta, n, rng)`` whose
    pi_ref draws are charged to T_comp.
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

    def probs(self, x):
        ex = self.oracles.problem.exact if self.oracles is not None else None
        if ex is None:
            raise NotImplementedError("no exact instance")
        return ex.tilted_probs(x, self.theta, self.beta)
