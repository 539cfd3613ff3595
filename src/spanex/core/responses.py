"""Backend-agnostic helpers for batches of responses (numpy arrays or Python lists)."""

from __future__ import annotations

from typing import Any

import numpy as np


def take(ys: Any, idx) -> Any:
    """ys[idx] for an index array / slice, for numpy arrays and lists alike."""
    if isinstance(ys, np.ndarray):
        return ys[idx]
    if isinstance(idx, slice):
        return ys[idx]
    idx = np.atleast_1d(np.asarray(idx))
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    return [ys[int(i)] for i in idx]


def concat(batches: list) -> Any:
    """Join batches of responses."""
    if not batches:
        return []
    if all(isinstance(b, np.ndarray) for b in batches):
        return np.concatenate(batches)
    out: list = []
    for b in batches:
        out.extend(list(b))
    return out


def length(ys: Any) -> int:
    return len(ys)


def prompt_key(x: Any):
    """A dict key for a prompt: the prompt itself when hashable, else its repr (e.g. chat-message lists)."""
    try:
        hash(x)
        return x
    except TypeError:
        return repr(x)
