"""Small, cached LM fixtures for tests and examples (loaded once per process).

- :func:`tiny_hf`: the randomly initialised tiny Llama with the real SmolLM2 tokenizer.
- :func:`fixed_law_hf`: a tiny model whose next-token law is the *same known distribution* at
  every position (the output layer is replaced by a bias-only layer), so sequence laws, empty
  responses and log-probs can be checked against closed forms.
"""

from __future__ import annotations

import functools

#: Why the LM tests (and ``spanex demo --lm``) run torch with one intra-op thread.
ONE_THREAD_NOTE = ("tiny models spend more on thread hand-offs than they save, and on 2 shared cores two "
                   "spinning OpenMP threads measured 5-30x slower than one (SmolLM2, batch 32 x 16 tokens: "
                   "3.5 s with 1 thread, 6-70 s with 2, load average 7)")

import numpy as np


@functools.lru_cache(maxsize=4)
def _tiny(seed: int):
    from .loading import tiny_model

    return tiny_model(seed)


def tiny_hf(seed: int = 0, **kwargs):
    """A fresh HFModel around the (cached) tiny random model; kwargs go to HFModel."""
    from .model import HFModel

    m, tok = _tiny(seed)
    kwargs.setdefault("max_new_tokens", 8)
    return HFModel(m, tok, name=f"tiny-llama(seed={seed})", **kwargs)


def fixed_law_hf(token_probs: dict, **kwargs):
    """(HFModel, p) with next-token law p at every position; token_probs maps token id -> probability.

    Tokens not listed get probability 0 (logit -inf is avoided: they get a logit 60 below the
    smallest listed one, i.e. a probability below 1e-26, which no test can observe).
    """
    import copy

    import torch

    from .model import HFModel

    m, tok = _tiny(0)
    m = copy.deepcopy(m)
    V = m.config.vocab_size
    ids = np.array(list(token_probs), dtype=int)
    pr = np.array([token_probs[i] for i in ids], dtype=float)
    if np.any(pr <= 0) or abs(pr.sum() - 1) > 1e-9:
        raise ValueError("token_probs must be positive and sum to 1")
    logits = np.full(V, np.log(pr).min() - 60.0)
    logits[ids] = np.log(pr)
    head = torch.nn.Linear(m.config.hidden_size, V, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor(logits, dtype=torch.float32))
    m.lm_head = head
    p = np.exp(logits - logits.max())
    p /= p.sum()
    kwargs.setdefault("max_new_tokens", 6)
    return HFModel(m, tok, name="fixed-law", **kwargs), p
