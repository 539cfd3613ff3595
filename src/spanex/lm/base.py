"""What every LM backend shares, without torch: responses, prompts, prefixes, the token-level mixin.

A new backend (an OpenAI-compatible HTTP server, llama.cpp, ...) is one file: subclass
:class:`TokenizerLM` for prompt encoding and response decoding, implement ``sample(x, n, rng)``
(and optionally ``sample_many``, ``logprob`` and ``next_logprobs``), and pass the object to
:func:`spanex.lm.lm_problem`. Nothing here imports torch or transformers.

- :class:`Response`: a ``str`` that also carries the sampled token ids and whether EOS ended it.
- :class:`ChatPrompt`: a chat-message prompt (``[{"role": "user", "content": ...}, ...]``) made
  hashable, so it can key caches and ledgers like a string prompt. :func:`as_prompt` turns what a
  user writes (a str, a message list, a dict with a ``"prompt"`` field) into a str or a ChatPrompt.
- :func:`normalize_prefix`: a token prefix as a tuple of ints, cut after its first EOS.
- :class:`TokenizerLM`: prompt encoding (chat template, optional system prompt), response ids,
  decoding of token rows and prefixes, for any backend with a Hugging Face-style tokenizer.
- :class:`LogprobTokenLevel`: the token-level protocol (``next_probs``, ``sample_next``) from one
  method ``next_logprobs(x, prefixes) -> (n, V)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np

__all__ = ["Response", "ChatPrompt", "as_prompt", "normalize_prefix", "TokenizerLM",
           "LogprobTokenLevel", "sample_rows", "check_rng", "DEFAULT_PREFERRED_BATCH"]

#: pi_ref draws per refill of the core's per-prompt pool (absent attribute = 1).
DEFAULT_PREFERRED_BATCH = 32


class Response(str):
    """A sampled response: its text, plus the token ids and whether EOS ended it.

    Compares and hashes as its text. ``token_ids`` excludes the EOS token.
    """

    def __new__(cls, text: str, token_ids: Sequence[int] = (), finished: bool = True):
        obj = super().__new__(cls, text)
        obj.token_ids = tuple(int(t) for t in token_ids)
        obj.finished = bool(finished)
        return obj

    def __reduce__(self):
        return (Response, (str(self), self.token_ids, self.finished))

    def __repr__(self) -> str:
        return f"Response({str(self)!r}, n_tokens={len(self.token_ids)}, finished={self.finished})"


class ChatPrompt(tuple):
    """A chat prompt: a hashable tuple of (role, content) pairs.

    ``messages`` gives them back as the list of dicts chat templates and TRL reward functions use;
    ``str()`` is the last user message (what text-only components, e.g. a prompt-aware embedder,
    read).
    """

    def __new__(cls, messages):
        pairs = []
        for i, m in enumerate(messages):
            if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
                raise ValueError(f"chat message {i} must be a dict with 'role' and 'content', got {m!r}")
            role, content = m["role"], m["content"]
            if not isinstance(role, str) or not isinstance(content, str):
                raise ValueError(f"chat message {i}: 'role' and 'content' must be str, got {m!r}")
            pairs.append((role, content))
        if not pairs:
            raise ValueError("a chat prompt needs at least one message")
        return super().__new__(cls, pairs)

    @property
    def messages(self) -> list[dict]:
        return [{"role": r, "content": c} for r, c in self]

    def __str__(self) -> str:
        users = [c for r, c in self if r == "user"]
        return users[-1] if users else self[-1][1]

    def __repr__(self) -> str:
        return f"ChatPrompt({self.messages!r})"


def as_prompt(x) -> str | ChatPrompt:
    """A prompt as the backends take it: a non-empty str, or a ChatPrompt for a list of messages.

    Accepts a str, a ChatPrompt, a list/tuple of ``{"role", "content"}`` dicts, or a dict with a
    ``"prompt"`` field holding either (a row of a TRL-style dataset).
    """
    if isinstance(x, ChatPrompt):
        return x
    if isinstance(x, str):
        if not x.strip():
            raise ValueError("a prompt must be a non-empty string")
        return x
    if isinstance(x, Mapping):
        if "prompt" not in x:
            raise ValueError(f"a dict prompt needs a 'prompt' field (a dataset row), got keys {sorted(x)}")
        return as_prompt(x["prompt"])
    if isinstance(x, (list, tuple)):
        return ChatPrompt(x)
    raise TypeError(f"a prompt must be a str or a list of chat messages, got {type(x).__name__}")


def check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def normalize_prefix(p, vocab_size: int, eos_id: int) -> tuple:
    """A prefix as a tuple of ints in [0, vocab_size), cut after its first EOS (the sequence ended there)."""
    try:
        t = tuple(int(a) for a in p)
    except TypeError as e:
        raise TypeError(f"a prefix must be a sequence of token ids, got {type(p).__name__}") from e
    for a in t:
        if not 0 <= a < vocab_size:
            raise ValueError(f"token ids must be in [0, {vocab_size - 1}], got {a}")
    if eos_id in t:
        t = t[: t.index(eos_id) + 1]
    return t


class TokenizerLM:
    """Prompt encoding and response decoding for a backend with a Hugging Face-style tokenizer.

    Subclasses set ``tokenizer``, ``eos_id``, ``vocab_size``, ``chat_template`` (bool) and
    ``system_prompt`` (str or None), e.g. with :meth:`_init_tokenizer`.

    A str prompt becomes one user turn (after the system prompt, when one is set) plus the
    generation prompt; a :class:`ChatPrompt` is used as given (the system prompt is prepended only
    when it has no system message). Without a chat template a str prompt is tokenized as is and a
    ChatPrompt is refused.
    """

    tokenizer: Any
    eos_id: int
    vocab_size: int
    chat_template: bool = False
    system_prompt: str | None = None

    def _init_tokenizer(self, tokenizer, chat_template: bool | None, system_prompt: str | None) -> None:
        self.tokenizer = tokenizer
        has_template = getattr(tokenizer, "chat_template", None) is not None
        if chat_template and not has_template:
            raise ValueError("chat_template=True but the tokenizer has no chat template")
        self.chat_template = has_template if chat_template is None else bool(chat_template)
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise TypeError(f"system_prompt must be a str or None, got {type(system_prompt).__name__}")
        self.system_prompt = system_prompt
        if getattr(tokenizer, "eos_token_id", None) is None:
            raise ValueError("the tokenizer has no eos_token_id; responses could never end")
        self.eos_id = int(tokenizer.eos_token_id)

    def encode_prompt(self, x) -> list[int]:
        """Token ids of the prompt (with the chat template and generation prompt when enabled)."""
        x = as_prompt(x)
        if isinstance(x, ChatPrompt):
            if not self.chat_template:
                raise ValueError("a chat-message prompt needs a tokenizer with a chat template "
                                 "(and chat_template not False)")
            msgs = x.messages
            if self.system_prompt is not None and msgs[0]["role"] != "system":
                msgs = [{"role": "system", "content": self.system_prompt}] + msgs
        elif self.chat_template:
            msgs = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt is not None else [])
            msgs.append({"role": "user", "content": x})
        else:
            msgs = None
        if msgs is not None:
            ids = self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
            if hasattr(ids, "keys"):
                ids = ids["input_ids"]
        else:
            ids = self.tokenizer(x, add_special_tokens=True)["input_ids"]
        ids = [int(t) for t in ids]
        if not ids:
            raise ValueError("prompt x encodes to zero tokens; give a non-empty prompt or enable chat_template")
        return ids

    def response_ids(self, y) -> tuple[list[int], bool]:
        """(token ids without EOS, finished) of a response; plain strings are tokenized, finished."""
        if isinstance(y, Response):
            return list(y.token_ids), y.finished
        if not isinstance(y, str):
            raise TypeError(f"a response must be a str (or Response), got {type(y).__name__}")
        ids = self.tokenizer(y, add_special_tokens=False)["input_ids"]
        return [int(t) for t in ids], True

    def decode(self, ids: Sequence[int], finished: bool) -> Response:
        ids = [int(t) for t in ids]
        return Response(self.tokenizer.decode(ids, skip_special_tokens=True), ids, finished)

    def from_tokens(self, tokens) -> list[Response]:
        """Token rows (e.g. MTSS roll-outs of H tokens) -> Responses, cut at the first EOS.

        A row that contains EOS is a finished response made of the tokens before it (what follows
        EOS is not part of the response); a row without EOS was cut by the horizon.
        """
        out = []
        for row in tokens:
            ids = [int(t) for t in row]
            finished = self.eos_id in ids
            out.append(self.decode(ids[: ids.index(self.eos_id)] if finished else ids, finished))
        return out

    def norm_prefix(self, p) -> tuple:
        """:func:`normalize_prefix` with this model's vocabulary and EOS."""
        return normalize_prefix(p, self.vocab_size, self.eos_id)

    def decode_prefix(self, p) -> Response:
        """A token prefix as a Response (finished when it ends with EOS)."""
        t = self.norm_prefix(p)
        fin = bool(t) and t[-1] == self.eos_id
        return self.decode(t[:-1] if fin else t, fin)


class LogprobTokenLevel:
    """Token-level protocol from ``next_logprobs(x, prefixes) -> (n, V)``: full next-token distributions
    and one next-token draw per prefix by inverse CDF with the numpy Generator (HFModel, VLLMModel)."""

    vocab_size: int

    def next_logprobs(self, x, prefixes: Sequence[tuple]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def next_probs(self, x, prefixes: Sequence[tuple]) -> np.ndarray:
        """(n, V) next-token distributions pi_{h+1,ref}(.|x, prefix); rows sum to 1."""
        lp = self.next_logprobs(x, prefixes)
        p = np.exp(lp - lp.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def sample_next(self, x, prefixes: Sequence[tuple], rng: np.random.Generator) -> np.ndarray:
        """One next token per prefix (inverse CDF with the numpy Generator), shape (n,)."""
        check_rng(rng)
        return sample_rows(self.next_probs, x, prefixes, rng, self.vocab_size)


def sample_rows(next_probs, x, prefixes, rng: np.random.Generator, vocab_size: int) -> np.ndarray:
    """One token per prefix by inverse CDF with the numpy Generator (one uniform per prefix, in order).

    Distributions are computed once per *distinct* prefix, so a batch of many copies of a prefix
    costs one row of memory, not one per copy.
    """
    keys = [tuple(int(a) for a in p) for p in prefixes]
    uniq = list(dict.fromkeys(keys))
    where = {k: i for i, k in enumerate(uniq)}
    row = np.array([where[k] for k in keys], dtype=np.int64)
    u = rng.random(len(keys))
    if not uniq:
        return np.zeros(0, dtype=np.int64)
    c = np.cumsum(next_probs(x, uniq), axis=1)
    out = np.empty(len(keys), dtype=np.int64)
    for j in range(len(uniq)):
        m = row == j
        out[m] = np.searchsorted(c[j], u[m] * c[j, -1], side="right")
    return np.minimum(out, vocab_size - 1)
