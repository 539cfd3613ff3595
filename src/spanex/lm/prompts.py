"""Prompt sets shipped with spanex (no downloads) and the PromptSource over them.

- ``'everyday'``: 300 short open-ended prompts (60 everyday topics x 5 templates), for the
  sentiment reward (``data/lm_prompts_everyday.txt``).
- ``'arithmetic'``: 200 one-step arithmetic questions with integer answers, for the verifiable
  answer-check reward (``data/lm_prompts_arithmetic.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Sequence

import numpy as np

from ..core.errors import check_choice, check_int

PROMPT_SETS = ("everyday", "arithmetic")


@dataclass
class PromptSet:
    """rho: the uniform distribution over a list of prompt strings (PromptSource).

    ``answers`` optionally maps a prompt to its reference answer (verifiable rewards).
    """

    prompts: list
    answers: dict = field(default_factory=dict)
    name: str = "custom"

    def __post_init__(self):
        self.prompts = list(self.prompts)
        if not self.prompts:
            raise ValueError("prompts must be a non-empty list of strings")
        bad = [p for p in self.prompts if not isinstance(p, str) or not p.strip()]
        if bad:
            raise ValueError(f"every prompt must be a non-empty str; got {bad[:3]!r}")

    def __len__(self) -> int:
        return len(self.prompts)

    def sample(self, n: int, rng: np.random.Generator) -> list[str]:
        """n prompts drawn uniformly with replacement."""
        n = check_int("n", n, low=0)
        return [self.prompts[i] for i in rng.integers(len(self.prompts), size=n)]

    def subset(self, n: int, rng: np.random.Generator | None = None) -> "PromptSet":
        """The first n prompts (or n drawn without replacement when rng is given)."""
        n = check_int("n", n, low=1, high=len(self.prompts))
        idx = np.arange(n) if rng is None else np.sort(rng.choice(len(self.prompts), size=n, replace=False))
        ps = [self.prompts[i] for i in idx]
        return PromptSet(ps, {p: self.answers[p] for p in ps if p in self.answers}, name=f"{self.name}[{n}]")


def load_prompts(name: str = "everyday", n: int | None = None, seed: int | None = None) -> PromptSet:
    """A shipped prompt set; ``n`` keeps the first n prompts (or a seeded random subset when seed is given)."""
    check_choice("name", name, PROMPT_SETS)
    data = resources.files("spanex") / "data"
    if name == "everyday":
        text = (data / "lm_prompts_everyday.txt").read_text(encoding="utf-8")
        ps = PromptSet([ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")],
                       name=name)
    else:
        obj = json.loads((data / "lm_prompts_arithmetic.json").read_text(encoding="utf-8"))
        items = obj["items"]
        ps = PromptSet([it["prompt"] for it in items], {it["prompt"]: it["answer"] for it in items}, name=name)
    if n is not None:
        ps = ps.subset(n, None if seed is None else np.random.default_rng(seed))
    return ps


def as_prompt_set(prompts) -> PromptSet:
    """A PromptSet from a shipped set's name, a list of strings, or a PromptSet."""
    if isinstance(prompts, PromptSet):
        return prompts
    if isinstance(prompts, str):
        return load_prompts(prompts)
    if isinstance(prompts, Sequence):
        return PromptSet(list(prompts))
    raise TypeError(f"prompts must be a prompt-set name {PROMPT_SETS}, a list of str or a PromptSet, "
                    f"got {type(prompts).__name__}")
