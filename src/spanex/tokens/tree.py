"""Token trees: autoregressive base models over a finite vocabulary (the exact token-level backend).

Notation (paper-notes §2.4)
---------------------------
A          the vocabulary {0, ..., A-1}; H the horizon; a response is y = a_{1:H} in A^H.
s_h        the state after h tokens, the prefix (x, a_{1:h}); s_0 = x.
pi_ref     pi_ref(y|x) = prod_h pi_{h,ref}(a_h | s_{h-1}), given token by token.
phi_h      token-level features phi_h(x, a_{1:h}) in R^d, 1 <= h <= H.
r*         the mean reward of a full response, r*(x, a_{1:H}).

A :class:`TokenTree` is given by three *vectorized* functions of a prompt and a batch of prefixes
written as an int array ``tokens`` of shape (n, h):

- ``log_next(x, tokens)`` for 0 <= h < H: (n, A) next-token log-probabilities log pi_{h+1,ref}(.|s_h);
- ``features(x, tokens)`` for 1 <= h <= H: (n, d) token features phi_h(s_h);
- ``reward(x, tokens)`` for h = H: (n,) mean rewards r*(x, a_{1:H}).

Prompts are the integers 0..K-1 drawn from ``rho``. Sequences and prefixes are indexed in base A,
first token most significant (:func:`encode` / :func:`decode`), so the children of prefix i at
depth h are i*A + a at depth h+1 and the index order is the lexicographic order of token strings.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..core.errors import check_distribution, check_int

#: trees with at most this many full sequences per prompt are enumerated exactly
MAX_ENUM_SEQUENCES = 10**6


def encode(tokens, A: int) -> np.ndarray:
    """Index of each row of `tokens` (n, h) in base A (first token most significant)."""
    A = check_int("A", A, low=1)
    t = np.asarray(tokens, dtype=np.int64)
    if t.ndim != 2:
        raise ValueError(f"tokens must be a 2-d array (n, h), got shape {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= A):
        raise ValueError(f"tokens must lie in [0, {A - 1}], got range [{t.min()}, {t.max()}]")
    if t.shape[1] and float(A) ** t.shape[1] >= 2.0**63:
        raise ValueError(f"A^h = {A}^{t.shape[1]} does not fit an int64 index; keep token arrays instead")
    idx = np.zeros(t.shape[0], dtype=np.int64)
    for j in range(t.shape[1]):
        idx = idx * A + t[:, j]
    return idx


def decode(idx, A: int, h: int) -> np.ndarray:
    """Inverse of :func:`encode`: the (n, h) token array of indices `idx` at depth h."""
    A = check_int("A", A, low=1)
    h = check_int("h", h, low=0)
    i = np.asarray(idx, dtype=np.int64).ravel().copy()
    if i.size and (i.min() < 0 or (h < 63 and i.max() >= A**h)):
        raise ValueError(f"indices must lie in [0, {A}^{h} - 1], got range [{i.min()}, {i.max()}]")
    out = np.empty((i.size, h), dtype=np.int64)
    for j in range(h - 1, -1, -1):
        out[:, j] = i % A
        i //= A
    return out


def all_prefixes(A: int, h: int) -> np.ndarray:
    """Every prefix of depth h as an (A^h, h) token array, in index order."""
    return decode(np.arange(A**h, dtype=np.int64), A, h)


def sample_categorical(log_p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of unnormalized log-probabilities (n, A), by inverse CDF in one uniform each."""
    lp = np.asarray(log_p, dtype=float)
    m = lp.max(axis=1, keepdims=True)
    c = np.cumsum(np.exp(lp - m), axis=1)
    u = rng.random(lp.shape[0]) * c[:, -1]
    a = (c <= u[:, None]).sum(axis=1)
    return np.minimum(a, lp.shape[1] - 1)   # u < c[-1] so a <= A-1 up to round-off


class TokenTree:
    """An autoregressive base model with token features and an outcome reward; see the module docstring.

    Parameters
    ----------
    rho : (K,) prompt probabilities; prompts are 0..K-1.
    vocab_size : A >= 2.
    horizon : H >= 1.
    dim : d, the dimension of phi_h.
    log_next, features, reward : the vectorized functions described in the module docstring.
    name : a label.
    """

    def __init__(self, rho, vocab_size: int, horizon: int, dim: int,
                 log_next: Callable, features: Callable, reward: Callable, name: str = "token_tree"):
        self.rho = check_distribution("rho", rho)
        self.A = check_int("vocab_size", vocab_size, low=2)
        self.H = check_int("horizon", horizon, low=1)
        self.d = check_int("dim", dim, low=1)
        self._log_next, self._features, self._reward = log_next, features, reward
        self.name = name

    @property
    def n_prompts(self) -> int:
        return self.rho.size

    @property
    def n_sequences(self) -> float:
        """A^H (a float, since it can exceed int64)."""
        return float(self.A) ** self.H

    @property
    def enumerable(self) -> bool:
        return self.n_sequences <= MAX_ENUM_SEQUENCES

    # ---- validated evaluation ----------------------------------------------------------------
    def check_prompt(self, x) -> int:
        if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
            raise TypeError(f"prompt x must be an int in [0, {self.n_prompts - 1}], got {type(x).__name__} {x!r}")
        if not 0 <= int(x) < self.n_prompts:
            raise ValueError(f"prompt x must be in [0, {self.n_prompts - 1}], got {x}")
        return int(x)

    def _tokens(self, tokens, lo: int, hi: int) -> np.ndarray:
        t = np.asarray(tokens, dtype=np.int64)
        if t.ndim != 2:
            raise ValueError(f"tokens must be a 2-d array (n, h), got shape {t.shape}")
        if not lo <= t.shape[1] <= hi:
            raise ValueError(f"prefix length h must be in [{lo}, {hi}], got {t.shape[1]}")
        if t.size and (t.min() < 0 or t.max() >= self.A):
            raise ValueError(f"tokens must lie in [0, {self.A - 1}], got range [{t.min()}, {t.max()}]")
        return t

    def log_next(self, x, tokens) -> np.ndarray:
        """log pi_{h+1,ref}(.|x, a_{1:h}) for prefixes (n, h), 0 <= h < H: shape (n, A), rows normalized."""
        t = self._tokens(tokens, 0, self.H - 1)
        out = np.asarray(self._log_next(self.check_prompt(x), t), dtype=float)
        if out.shape != (t.shape[0], self.A):
            raise ValueError(f"log_next returned shape {out.shape}, expected {(t.shape[0], self.A)}")
        return out

    def features(self, x, tokens) -> np.ndarray:
        """phi_h(x, a_{1:h}) for prefixes (n, h), 1 <= h <= H: shape (n, d)."""
        t = self._tokens(tokens, 1, self.H)
        out = np.asarray(self._features(self.check_prompt(x), t), dtype=float)
        if out.shape != (t.shape[0], self.d):
            raise ValueError(f"features returned shape {out.shape}, expected {(t.shape[0], self.d)}")
        return out

    def reward(self, x, tokens) -> np.ndarray:
        """r*(x, a_{1:H}) for full sequences (n, H): shape (n,)."""
        t = self._tokens(tokens, self.H, self.H)
        out = np.asarray(self._reward(self.check_prompt(x), t), dtype=float)
        if out.shape != (t.shape[0],):
            raise ValueError(f"reward returned shape {out.shape}, expected {(t.shape[0],)}")
        return out

    def sample(self, x, n: int, rng: np.random.Generator) -> np.ndarray:
        """n full sequences y ~ pi_ref(.|x), rolled out token by token: an (n, H) token array."""
        n = check_int("n", n, low=0)
        t = np.zeros((n, 0), dtype=np.int64)
        for _ in range(self.H):
            a = sample_categorical(self.log_next(x, t), rng) if n else np.zeros(0, dtype=np.int64)
            t = np.concatenate([t, a[:, None]], axis=1)
        return t
