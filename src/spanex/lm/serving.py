"""Keep and serve an output policy: ``save_policy(policy, dir, problem)``, ``load_policy(dir, model=...)``.

An improper output policy (SpannerSampling's) is not a set of weights: it is a parameter theta (or
one per round), the spanner's inverse design Sigma_span^{-1}, the truncation threshold nu, beta, a
rejection sampler's settings, and the feature map phi it scores responses with. A saved policy
directory holds exactly that:

- ``policy.json``: format name and version, the policy class and its settings (nu, beta,
  truncation; n for Best-of-N), the sampler class and settings, the feature configuration
  (embedder kind and name, projection kind, c) and the base model's name and generation
  settings (max_new_tokens, chat template, system prompt), for checking at load time;
- ``arrays.npz``: thetas / theta, Sigma_inv, the projection matrix W and mean.

``load_policy(dir, model=...)`` rebuilds phi (a sentence-transformers embedder is reloaded by its
name; 'hidden' features use ``model``; a callable embedder must be passed again as
``features=``) and returns a :class:`ServedPolicy`, whose ``generate(prompts, n)`` returns the
completions and what they cost in oracle calls (every pi_ref draw and every reward query,
counted by a Ledger like everywhere else). The base model must be the same pi_ref the policy was
trained against: its name and settings are checked.

Supported policies: SpannerSamplingPolicy, LinearSoftmaxPolicy (with a weak-oracle sampler),
BestOfNPolicy (needs ``reward=`` at load time: it queries the reward at inference) and
ReferencePolicy.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import as_generator, check_int
from ..core.ledger import Ledger
from ..core.oracles import Oracles
from ..core.problem import Problem
from .features import LMFeatureMap, Projection, make_embedder
from .prompts import PromptSet
from .rewards import TextReward

FORMAT = "spanex-lm-policy"
VERSION = 1


def _sampler_spec(sampler) -> dict | None:
    if sampler is None:
        return None
    if not dataclasses.is_dataclass(sampler):
        raise TypeError(f"cannot save a sampler of type {type(sampler).__name__} (not a dataclass)")
    fields = {f.name: getattr(sampler, f.name) for f in dataclasses.fields(sampler) if f.init}
    json.dumps(fields)  # settings must be plain data
    return {"class": f"{type(sampler).__module__}.{type(sampler).__qualname__}", "fields": fields}


def _sampler_from(spec):
    if spec is None:
        return None
    mod, _, cls = spec["class"].rpartition(".")
    return getattr(importlib.import_module(mod), cls)(**spec["fields"])


def _model_spec(model) -> dict:
    keys = ("name", "max_new_tokens", "min_new_tokens", "chat_template", "system_prompt", "vocab_size")
    return {k: getattr(model, k, None) for k in keys}


def save_policy(policy, directory, problem) -> Path:
    """Write ``policy`` (trained on ``problem``) to ``directory`` (created; files replaced atomically)."""
    from ..algorithms.best_of_n import BestOfNPolicy
    from ..algorithms.spanner_sampling import SpannerSamplingPolicy
    from ..core.policy import LinearSoftmaxPolicy, ReferencePolicy

    if not isinstance(getattr(problem, "projection", None), Projection):
        raise TypeError("problem must be an LM problem built by lm_problem (it carries the feature projection)")
    arrays: dict[str, np.ndarray] = {f"projection_{k}": v for k, v in problem.projection.to_arrays().items()}
    if isinstance(policy, SpannerSamplingPolicy):
        arrays.update(thetas=policy.thetas, Sigma_inv=policy.Sigma_inv)
        settings = {"nu": policy.nu, "beta": policy.beta, "truncation": policy.truncation}
        sampler = _sampler_spec(policy.sampler)
    elif isinstance(policy, LinearSoftmaxPolicy):
        if policy.sampler is None:
            raise ValueError("this LinearSoftmaxPolicy samples with an exact strong oracle, which a real LM does not "
                             "have; only weak-oracle samplers can be saved")
        arrays.update(theta=policy.theta)
        settings, sampler = {"beta": policy.beta}, _sampler_spec(policy.sampler)
    elif isinstance(policy, BestOfNPolicy):
        settings, sampler = {"n": policy.n}, None
    elif type(policy) is ReferencePolicy:
        settings, sampler = {}, None
    else:
        raise TypeError(f"cannot save a {type(policy).__name__}; supported: SpannerSamplingPolicy, "
                        f"LinearSoftmaxPolicy, BestOfNPolicy, ReferencePolicy")
    from .. import __version__

    meta = {"format": FORMAT, "version": VERSION, "spanex_version": __version__, "policy": type(policy).__name__,
            "settings": settings, "sampler": sampler, "beta": problem.beta,
            "features": {"embedder": problem.embedder.spec(), "projection": problem.projection.kind,
                         "d": problem.projection.d, "d_in": problem.projection.d_in},
            "model": _model_spec(problem.base), "reward": problem.meta.get("reward"),
            "problem": problem.name}
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tmp_npz, tmp_json = d / ".arrays.npz.tmp", d / ".policy.json.tmp"
    with open(tmp_npz, "wb") as f:
        np.savez(f, **arrays)
    tmp_json.write_text(json.dumps(meta, indent=2))
    os.replace(tmp_npz, d / "arrays.npz")
    os.replace(tmp_json, d / "policy.json")
    return d


class _NoReward:
    """Stands in for the reward oracle when a served policy needs none; calling it is a bug."""

    def __call__(self, x, ys, rng):
        raise RuntimeError("this served policy has no reward oracle (pass reward= to load_policy)")


@dataclass
class Generation:
    """What :meth:`ServedPolicy.generate` returns: completions per prompt and their oracle cost.

    ``cost`` holds the ledger counts the call added; pi_ref draws are made in batches of the base
    model's ``preferred_batch`` and charged when drawn, and ``pooled`` says how many of them wait in
    the pools for later calls (so ``cost['inference.weak'] - (pooled - previous pooled)`` were used)."""

    completions: list
    cost: dict
    pooled: int = 0

    def texts(self) -> list[list[str]]:
        return [[str(y) for y in ys] for ys in self.completions]


class ServedPolicy:
    """A loaded policy bound to counted oracles on the base model; see :func:`load_policy`."""

    def __init__(self, policy, problem: Problem, meta: dict, seed=0):
        self.policy = policy
        self.problem = problem
        self.meta = meta
        self.ledger = Ledger()
        self.rng = as_generator(seed)
        policy.bind(Oracles(problem, self.ledger, "inference"))

    def generate(self, prompts, n: int = 1, seed=None) -> Generation:
        """n completions for each prompt (a str, a chat-message list, or a list of either).

        ``seed``: None continues the served policy's own random stream (seeded at load time); an int
        or Generator makes this call reproducible on its own. ``cost``: the ledger counts this call
        added ('inference.weak' = pi_ref draws, 'inference.reward' = reward queries, ...).
        """
        n = check_int("n", n, low=1)
        if isinstance(prompts, str) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], dict)):
            prompts = [prompts]
        xs = PromptSet(list(prompts)).prompts
        rng = self.rng if seed is None else as_generator(seed)
        before = self.ledger.to_dict()
        out = [list(self.policy.sample(x, n, rng)) for x in xs]
        after = self.ledger.to_dict()
        cost = {k: after[k] - before.get(k, 0) for k in after if isinstance(after[k], (int, float))}
        return Generation(out, cost, self.policy.oracles.pooled_total())


def load_policy(directory, *, model=None, features=None, reward=None, seed=0) -> ServedPolicy:
    """A saved policy, ready to generate (see the module docstring).

    model : the base model (any BaseModel object, or a name/path for ``HFModel.from_pretrained``;
        default: the saved model name, e.g. 'SmolLM2-135M-Instruct' -> 'smollm2'). Its name and
        generation settings must match the saved ones.
    features : the embedder, when the saved one was a user callable.
    reward : a reward (shipped name, TextReward or TRL-style function), needed by Best-of-N.
    seed : seed of the served policy's random stream (see :meth:`ServedPolicy.generate`).
    """
    from ..algorithms.best_of_n import BestOfNPolicy
    from ..algorithms.spanner_sampling import SpannerSamplingPolicy
    from ..core.policy import LinearSoftmaxPolicy, ReferencePolicy
    from .problem import make_model, make_reward

    d = Path(directory)
    try:
        meta = json.loads((d / "policy.json").read_text())
    except FileNotFoundError as e:
        raise FileNotFoundError(f"no saved policy in {d} (policy.json missing)") from e
    if meta.get("format") != FORMAT:
        raise ValueError(f"{d} is not a saved spanex LM policy (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"{d} has policy format version {meta.get('version')}; this spanex reads version {VERSION}")
    with np.load(d / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    saved_model = meta["model"]
    if model is None:
        model = "smollm2" if saved_model.get("name") == "SmolLM2-135M-Instruct" else saved_model.get("name")
    if isinstance(model, str):
        kw = {k: saved_model[k] for k in ("max_new_tokens", "min_new_tokens", "chat_template", "system_prompt")
              if saved_model.get(k) is not None}
        model = make_model(model, **kw)
    got = _model_spec(model)
    diff = {k: (v, got.get(k)) for k, v in saved_model.items() if v is not None and got.get(k) != v}
    if diff:
        raise ValueError(f"the base model differs from the one the policy was trained against (saved, given): {diff}")
    emb_spec = meta["features"]["embedder"]
    if emb_spec["kind"] == "callable":
        if features is None:
            raise ValueError(f"the policy used a user embedder ({emb_spec['model']}); pass it again as features=")
        embedder = make_embedder(features, model)
    elif emb_spec["kind"] == "hidden":
        embedder = make_embedder("hidden", model)
    else:
        embedder = make_embedder(features if features is not None else emb_spec["model"], model,
                                 **({"include_prompt": True} if emb_spec.get("include_prompt") else {}))
    proj = Projection(W=arrays["projection_W"], mean=arrays["projection_mean"], c=float(arrays["projection_c"]),
                      kind=meta["features"]["projection"])
    phi = LMFeatureMap(embedder, proj)
    cls, st = meta["policy"], meta["settings"]
    if cls == "SpannerSamplingPolicy":
        policy = SpannerSamplingPolicy(arrays["thetas"], arrays["Sigma_inv"], st["nu"], st["beta"],
                                       _sampler_from(meta["sampler"]), st["truncation"])
    elif cls == "LinearSoftmaxPolicy":
        policy = LinearSoftmaxPolicy(arrays["theta"], st["beta"], sampler=_sampler_from(meta["sampler"]))
    elif cls == "BestOfNPolicy":
        if reward is None:
            raise ValueError("Best-of-N queries the reward at inference: pass reward= to load_policy")
        policy = BestOfNPolicy(st["n"])
    else:
        policy = ReferencePolicy()
    real: Any = None
    if reward is not None:
        real = reward if isinstance(reward, TextReward) else make_reward(reward, PromptSet(["(served)"]))
    from ..core.feedback import NoisyReward

    problem = Problem(prompts=PromptSet(["(served)"]), base=model, phi=phi, beta=float(meta["beta"]),
                      reward=NoisyReward(real) if real is not None else _NoReward(), name=f"served:{meta['problem']}")
    return ServedPolicy(policy, problem, meta, seed=seed)
