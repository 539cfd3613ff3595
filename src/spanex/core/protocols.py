"""Protocols every backend implements (tabular, token trees, Hugging Face, vLLM).

Algorithms never call these directly: they go through :class:`spanex.core.oracles.Oracles`, which
charges the :class:`~spanex.core.ledger.Ledger` first.

Conventions
-----------
- A *prompt* x is any hashable object (an int on tabular instances, a string for LMs).
- A *batch of responses* ``ys`` is whatever the backend's ``sample`` returns: a 1-d ``np.ndarray`` of
  ints on tabular instances, a list of strings (or token-id tuples) for LMs. Use
  :func:`spanex.core.responses.take` / :func:`~spanex.core.responses.concat` to index and join them.
- A *prefix* (token level) is a tuple of token ids ``a_{1:h}``; the prompt is passed separately.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class PromptSource(Protocol):
    """The prompt distribution rho."""

    def sample(self, n: int, rng: np.random.Generator) -> Sequence[Any]: ...


@runtime_checkable
class BaseModel(Protocol):
    """The base model pi_ref at the sequence level (the weak sampling oracle).

    ``cost_kind`` / ``cost_per_sample`` say how one drawn response is charged: ``("weak", 1)`` for a
    sequence-level oracle, ``("token", H)`` for a sequence view of a token-level model (a full
    response is H token calls).
    """

    cost_kind: str
    cost_per_sample: int

    def sample(self, x: Any, n: int, rng: np.random.Generator) -> Any:
        """n i.i.d. responses y ~ pi_ref(.|x)."""
        ...


@runtime_checkable
class LogProbModel(Protocol):
    """Optional: log pi_ref(y|x) for given responses (a log-probability query, counted)."""

    def logprob(self, x: Any, ys: Any) -> np.ndarray: ...


@runtime_checkable
class FeatureMap(Protocol):
    """phi: X x Y -> R^d, evaluated on a batch of responses to one prompt."""

    dim: int

    def __call__(self, x: Any, ys: Any) -> np.ndarray:
        """Array of shape (len(ys), dim)."""
        ...


@runtime_checkable
class RewardOracle(Protocol):
    """Noisy reward r with E[r | x, y] = r*(x, y)."""

    def __call__(self, x: Any, ys: Any, rng: np.random.Generator) -> np.ndarray: ...


@runtime_checkable
class PreferenceOracle(Protocol):
    """Pairwise feedback: 1 where y1 is preferred to y2 (Bradley-Terry: P = sigmoid(r*(y1) - r*(y2)))."""

    def __call__(self, x: Any, y1s: Any, y2s: Any, rng: np.random.Generator) -> np.ndarray: ...


@runtime_checkable
class TokenModel(Protocol):
    """Token-level access to pi_ref: pi_{h,ref}(a | x, a_{1:h-1}) over a vocabulary of size A.

    ``horizon`` is H (responses are at most H tokens), ``vocab_size`` is A. Prefixes are tuples of
    token ids. ``sample_next`` is one token-level oracle call per prefix; ``next_probs`` returns the
    full next-token distribution (a log-probability query per prefix).
    """

    horizon: int
    vocab_size: int

    def sample_next(self, x: Any, prefixes: Sequence[tuple], rng: np.random.Generator) -> np.ndarray:
        """One next token per prefix, shape (len(prefixes),)."""
        ...

    def next_probs(self, x: Any, prefixes: Sequence[tuple]) -> np.ndarray:
        """Next-token distributions, shape (len(prefixes), vocab_size)."""
        ...


@runtime_checkable
class TokenFeatureMap(Protocol):
    """phi_h(x, a_{1:h}) in R^d for a batch of prefixes (h = len(prefix))."""

    dim: int

    def __call__(self, x: Any, prefixes: Sequence[tuple]) -> np.ndarray: ...
