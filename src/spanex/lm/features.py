"""Feature maps phi(x, y) in R^d for real language models.

A raw embedder followed by a fixed linear map to d dimensions (:class:`Projection`) and a smooth
bounded normalisation. Raw embedders (``features=`` of :func:`spanex.lm.lm_problem`):

- ``'hidden'`` (:class:`HiddenStateEmbedder`): the base LM's last-layer hidden states, mean-pooled
  over the positions [last prompt token, a_1, ..., a_n, EOS if finished] (R^576 for SmolLM2). This
  is the "frozen network, linear last layer" reading of the linear softmax class (paper-notes
  §1.2). It has a token-level version (:class:`HiddenStateTokenFeatures`) with the same
  definition on prefixes. Needs an :class:`~spanex.lm.model.HFModel`.
- any sentence-transformers model (:class:`SentenceTransformerEmbedder`): ``'minilm'`` (the shipped
  all-MiniLM-L6-v2, R^384), a local model directory or a cached Hub id, or a loaded
  ``SentenceTransformer``; embeddings come from the library's own ``encode``.
- a user callable ``embed(prompts, completions) -> array (n, D)`` (:class:`CallableEmbedder`), with
  prompts and completions as equal-length lists of str.

Projection (``projection=``), fitted on the setup pool of pi_ref responses:

- ``'pca'`` (default): whitened top-d principal directions of the raw embeddings;
- ``'supervised'``: d partial-least-squares directions of the raw embeddings against the reward
  on the setup pool (the first is the direction of largest covariance with the reward), each
  scaled to unit variance; it uses the setup pool's reward labels (count them as training data);
- ``'random'``: a fixed Gaussian random projection, seeded explicitly;
- ``'none'``: the centred raw embedding itself (d = its dimension).

Then phi = z / sqrt(c^2 + ||z||^2), with c the median ||z|| on the setup pool, so ||phi|| < 1
always (feature_norm_bound L = 1) without clipping or discarding the norm information.

:class:`LMFeatureMap` caches phi per (prompt, response), so no response is embedded twice;
``hits`` / ``misses`` count lookups.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.errors import check_choice, check_finite_array, check_int

PROJECTIONS = ("pca", "supervised", "random", "none")


@dataclass
class Projection:
    """phi = z / sqrt(c^2 + ||z||^2) with z = (h - mean) @ W; see the module docstring."""

    W: np.ndarray
    mean: np.ndarray
    c: float
    kind: str = "pca"
    explained_variance: float | None = None

    def __post_init__(self):
        self.W = check_finite_array("W", self.W, ndim=2)
        self.mean = check_finite_array("mean", self.mean, ndim=1, shape=(self.W.shape[0],))
        if not (np.isfinite(self.c) and self.c > 0):
            raise ValueError(f"c must be a positive finite number, got {self.c!r}")

    @property
    def d(self) -> int:
        return int(self.W.shape[1])

    @property
    def d_in(self) -> int:
        return int(self.W.shape[0])

    def __call__(self, H: np.ndarray) -> np.ndarray:
        H = np.asarray(H, dtype=np.float64)
        if H.ndim != 2 or H.shape[1] != self.d_in:
            raise ValueError(f"raw features must have shape (n, {self.d_in}), got {H.shape}")
        z = (H - self.mean) @ self.W
        return z / np.sqrt(self.c ** 2 + np.sum(z * z, axis=1, keepdims=True))

    @classmethod
    def fit(cls, H: np.ndarray, d: int | None, kind: str = "pca", seed: int = 0,
            targets: np.ndarray | None = None) -> "Projection":
        """Fit on raw embeddings H (n, d_in) of pi_ref samples (``targets``: their rewards, for 'supervised')."""
        check_choice("projection", kind, PROJECTIONS)
        H = check_finite_array("H", H, ndim=2)
        n, d_in = H.shape
        if kind == "none":
            d = d_in if d is None else check_int("d", d, low=d_in, high=d_in)
        else:
            d = check_int("d", d, low=1, high=d_in)
        if n < 2:
            raise ValueError(f"fitting a projection needs at least 2 samples, got {n}")
        mean = H.mean(axis=0)
        C = H - mean
        ev = None
        if kind in ("pca", "supervised") and d > n - 1:
            raise ValueError(f"projection={kind!r} to d={d} needs more than d setup samples (got {n}); lower d or "
                             f"draw more setup samples")
        if kind == "pca":
            _, s, Vt = np.linalg.svd(C, full_matrices=False)
            sd = s[:d] / np.sqrt(n - 1)
            if np.any(sd <= 1e-10 * max(sd[0], 1e-300)):
                raise ValueError(f"the setup samples span fewer than d={d} directions; lower d")
            W = Vt[:d].T / sd  # whitened: every kept direction has unit variance on pi_ref
            ev = float(np.sum(s[:d] ** 2) / np.sum(s ** 2))
        elif kind == "supervised":
            if targets is None:
                raise ValueError("projection='supervised' needs the setup pool's rewards (targets)")
            W = _pls_rotation(C, check_finite_array("targets", targets, ndim=1, shape=(n,)), d)
            W = W / (C @ W).std(axis=0, ddof=1)  # unit variance on pi_ref, like the whitened PCA
            ev = float(np.sum((C @ (W / np.linalg.norm(W, axis=0))) ** 2) / np.sum(C ** 2))
        elif kind == "random":
            W = np.random.default_rng(seed).standard_normal((d_in, d)) / np.sqrt(d_in)
        else:
            W = np.eye(d_in)
        z = C @ W
        c = float(np.median(np.linalg.norm(z, axis=1)))
        return cls(W=W, mean=mean, c=c if c > 0 else 1.0, kind=kind, explained_variance=ev)

    def to_arrays(self) -> dict:
        return {"W": self.W, "mean": self.mean, "c": np.array(self.c)}


def _pls_rotation(C: np.ndarray, r: np.ndarray, d: int) -> np.ndarray:
    """PLS1 (NIPALS) on centred C against r: the (d_in, d) map R with scores T = C @ R.

    Each weight w_a = X_a^T y_a / ||.|| is the direction of largest covariance with what the
    previous components left of the reward; X and y are deflated by each score t_a = X_a w_a.
    """
    X, y = C.copy(), r - r.mean()
    if not np.any(y):
        raise ValueError("projection='supervised' needs rewards that vary on the setup pool; they are constant")
    Ws, Ps = [], []
    first = None
    for a in range(d):
        w = X.T @ y
        nw = float(np.linalg.norm(w))
        first = nw if first is None else first
        if nw <= 1e-10 * first:
            raise ValueError(f"projection='supervised' found only {a} directions related to the reward; lower d "
                             f"(or use projection='pca')")
        w /= nw
        t = X @ w
        tt = float(t @ t)
        p = X.T @ t / tt
        X -= np.outer(t, p)
        y = y - t * (t @ y) / tt
        Ws.append(w)
        Ps.append(p)
    W, P = np.array(Ws).T, np.array(Ps).T
    return W @ np.linalg.inv(P.T @ W)


def response_key(y) -> tuple:
    """Cache key of a response: text, token ids (when known) and whether it finished."""
    ids = getattr(y, "token_ids", None)
    return (str(y), ids, getattr(y, "finished", True))


class HiddenStateEmbedder:
    """Mean-pooled last-layer hidden states of the base LM (see HFModel.score)."""

    kind = "hidden"

    def __init__(self, model):
        if not (hasattr(model, "score") and hasattr(model, "hidden_size")):
            raise TypeError(f"features='hidden' needs an HFModel (hidden states); {type(model).__name__} has none. "
                            f"Use a sentence-transformers model or a callable")
        self.model = model
        self.raw_dim = int(model.hidden_size)
        self.name = "hidden"

    def embed(self, x, ys) -> np.ndarray:
        return self.model.score(x, ys, logprob=False, hidden=True)[1].astype(np.float64)

    def spec(self) -> dict:
        return {"kind": self.kind, "model": getattr(self.model, "name", None)}


class SentenceTransformerEmbedder:
    """Embeddings from a sentence-transformers model (its own ``encode``), of the response text.

    ``model``: 'minilm' (the shipped all-MiniLM-L6-v2), a local directory or a cached Hub id, or a
    loaded ``SentenceTransformer`` (``name`` labels it in saved policies). ``include_prompt``: embed
    "prompt\\nresponse" instead.
    Nothing is downloaded unless ``local_files_only=False``.
    """

    kind = "sentence-transformers"

    def __init__(self, model="minilm", *, include_prompt: bool = False, batch_size: int = 64, device=None,
                 local_files_only: bool = True, name: str | None = None):
        if isinstance(model, str):
            from sentence_transformers import SentenceTransformer

            from .loading import _quiet_loading, minilm_path

            self.name = model
            path = str(minilm_path()) if model == "minilm" else model
            try:
                with _quiet_loading():
                    self.model = SentenceTransformer(path, device=device, local_files_only=local_files_only)
            except OSError as e:
                raise OSError(f"could not load the sentence-transformers model {model!r}: {e}. Nothing is "
                              f"downloaded: give a local directory or a cached Hub id") from e
        elif hasattr(model, "encode"):
            self.model = model
            self.name = name or type(model).__name__
        else:
            raise TypeError(f"model must be 'minilm', a model name or path, or a SentenceTransformer; got "
                            f"{type(model).__name__}")
        getter = getattr(self.model, "get_embedding_dimension", None) or getattr(
            self.model, "get_sentence_embedding_dimension", None)
        dim = getter() if getter is not None else None
        self.raw_dim = int(dim) if dim else None
        self.include_prompt = bool(include_prompt)
        self.batch_size = check_int("batch_size", batch_size, low=1)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        E = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                              show_progress_bar=False)
        E = np.asarray(E, dtype=np.float64).reshape(len(texts), -1)
        if self.raw_dim is None:
            self.raw_dim = E.shape[1]
        return E

    def embed(self, x, ys) -> np.ndarray:
        return self.embed_texts([f"{x}\n{y}" if self.include_prompt else str(y) for y in ys])

    def spec(self) -> dict:
        return {"kind": self.kind, "model": self.name, "include_prompt": self.include_prompt}


class CallableEmbedder:
    """A user embedder ``fn(prompts, completions) -> array (n, D)`` (equal-length lists of str)."""

    kind = "callable"

    def __init__(self, fn, raw_dim: int | None = None):
        if not callable(fn):
            raise TypeError(f"the embedder must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.raw_dim = raw_dim
        self.name = getattr(fn, "__qualname__", type(fn).__name__)

    def embed(self, x, ys) -> np.ndarray:
        ys = list(ys)
        E = np.asarray(self.fn([str(x)] * len(ys), [str(y) for y in ys]), dtype=np.float64)
        if E.ndim != 2 or E.shape[0] != len(ys):
            raise ValueError(f"the embedder must return an array of shape ({len(ys)}, D), got {E.shape}")
        if self.raw_dim is None:
            self.raw_dim = int(E.shape[1])
        elif E.shape[1] != self.raw_dim:
            raise ValueError(f"the embedder returned dimension {E.shape[1]}, earlier {self.raw_dim}")
        if not np.all(np.isfinite(E)):
            raise ValueError("the embedder returned non-finite values")
        return E

    def spec(self) -> dict:
        return {"kind": self.kind, "model": self.name}


@functools.lru_cache(maxsize=1)
def shared_minilm() -> SentenceTransformerEmbedder:
    """The shipped MiniLM embedder, loaded once per process (features='minilm' and the head reward share it)."""
    return SentenceTransformerEmbedder("minilm")


def make_embedder(features, model, **kwargs):
    """An embedder from ``features``: 'hidden', 'minilm', a sentence-transformers name/path or model,
    a callable ``fn(prompts, completions)``, or an object with ``embed(x, ys)`` and ``raw_dim``."""
    if isinstance(features, str):
        if features == "hidden":
            return HiddenStateEmbedder(model)
        return shared_minilm() if features == "minilm" and not kwargs else SentenceTransformerEmbedder(features, **kwargs)
    if hasattr(features, "embed") and hasattr(features, "raw_dim"):
        return features
    if hasattr(features, "encode"):
        return SentenceTransformerEmbedder(features, **kwargs)
    if callable(features):
        return CallableEmbedder(features)
    raise TypeError(f"features must be 'hidden', 'minilm', a sentence-transformers model (name, path or object) or "
                    f"a callable embed(prompts, completions); got {type(features).__name__}")


class LMFeatureMap:
    """phi(x, y) = projection(embedder(x, y)), cached per (prompt, response).

    Implements :class:`~spanex.core.protocols.FeatureMap`. ``cache_size`` bounds the number of
    cached rows (LRU); ``hits`` / ``misses`` count row lookups.
    """

    def __init__(self, embedder, projection: Projection, *, cache_size: int = 200_000):
        if embedder.raw_dim is not None and projection.d_in != embedder.raw_dim:
            raise ValueError(f"projection expects raw dimension {projection.d_in}, the embedder gives "
                             f"{embedder.raw_dim}")
        self.embedder = embedder
        self.projection = projection
        self.dim = projection.d
        self.cache_size = check_int("cache_size", cache_size, low=0)
        self._cache: OrderedDict = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __call__(self, x, ys) -> np.ndarray:
        ys = list(ys)
        out = np.empty((len(ys), self.dim))
        todo: dict = {}
        for i, y in enumerate(ys):
            key = (x, response_key(y))
            row = self._cache.get(key)
            if row is not None:
                self._cache.move_to_end(key)
                out[i] = row
                self.hits += 1
            else:
                todo.setdefault(key, []).append(i)
        if todo:
            keys = list(todo)
            firsts = [ys[todo[k][0]] for k in keys]
            phi = self.projection(self.embedder.embed(x, firsts))
            self.misses += len(keys)
            self.hits += sum(len(v) - 1 for v in todo.values())  # duplicates within the batch
            for k, row in zip(keys, phi):
                out[todo[k]] = row
                if self.cache_size:
                    self._cache[k] = row
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out

    def clear_cache(self) -> None:
        self._cache.clear()


class HiddenStateTokenFeatures:
    """Token-level phi_h(x, a_{1:h}): the projected mean hidden state of the prefix (TokenFeatureMap).

    Same pooling and projection as the sequence-level map, so phi_H of a complete response
    (its tokens plus EOS) equals phi(x, y).
    """

    def __init__(self, model, projection: Projection):
        if projection.d_in != model.hidden_size:
            raise ValueError(f"projection expects raw dimension {projection.d_in}, the model's hidden size is "
                             f"{model.hidden_size}")
        self.model = model
        self.projection = projection
        self.dim = projection.d

    def __call__(self, x, prefixes) -> np.ndarray:
        return self.projection(self.model.prefix_hidden(x, prefixes).astype(np.float64))


class TextTokenFeatures:
    """Token-level features for a text embedder: embed the decoded prefix (cached per prefix).

    Needs a backend with ``decode_prefix`` (any :class:`~spanex.lm.base.TokenizerLM`)."""

    def __init__(self, model, feature_map: LMFeatureMap):
        if not hasattr(model, "decode_prefix"):
            raise TypeError(f"token-level text features need a tokenizer backend; {type(model).__name__} has no "
                            f"decode_prefix")
        self.model = model
        self.feature_map = feature_map
        self.dim = feature_map.dim

    def __call__(self, x, prefixes) -> np.ndarray:
        return self.feature_map(x, [self.model.decode_prefix(p) for p in prefixes])
