"""Prompts: the shipped sets, and rho over whatever prompts a user has.

Shipped (no downloads):

- ``'everyday'``: 300 short open-ended prompts (60 everyday topics x 5 templates)
  (``data/lm_prompts_everyday.txt``).
- ``'arithmetic'``: 200 one-step arithmetic questions with integer answers, for the verifiable
  answer-check reward (``data/lm_prompts_arithmetic.json``).

User prompts (:func:`as_prompt_set`), as practitioners hold them:

- a list (or any iterable) of str;
- a list of chat-message lists ``[{"role": "user", "content": ...}, ...]`` (conversational, as in
  TRL datasets), kept as hashable :class:`~spanex.lm.base.ChatPrompt` objects;
- a Hugging Face ``datasets.Dataset`` (or a dict of columns, or a list of row dicts) with a
  ``"prompt"`` column of either kind; the other columns travel with each prompt (for example a
  reference answer) and reach a TRL-style reward function as keyword arguments;
- a single ``datasets`` column (``ds["prompt"]``) or a pandas Series: any iterable of the above.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from ..core.errors import check_choice, check_int
from .base import as_prompt

PROMPT_SETS = ("everyday", "arithmetic")


@dataclass
class PromptSet:
    """rho: the uniform distribution over a list of prompts (PromptSource).

    ``prompts`` are str or ChatPrompt (anything :func:`~spanex.lm.base.as_prompt` accepts is
    converted). ``columns`` optionally maps a prompt to its extra fields (e.g. {"answer": "12"}).
    """

    prompts: list
    columns: dict = field(default_factory=dict)
    name: str = "custom"

    def __post_init__(self):
        items = list(self.prompts)
        if not items:
            raise ValueError("prompts must be a non-empty list of strings or chat-message lists")
        out = []
        for i, p in enumerate(items):
            try:
                out.append(as_prompt(p))
            except (TypeError, ValueError) as e:
                raise type(e)(f"prompts[{i}]: {e}") from None
        self.prompts = out
        self.columns = {as_prompt(k): dict(v) for k, v in self.columns.items()}

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def answers(self) -> dict:
        """{prompt: reference answer} for the prompts that have an 'answer' column."""
        return {p: c["answer"] for p, c in self.columns.items() if "answer" in c}

    def sample(self, n: int, rng: np.random.Generator) -> list:
        """n prompts drawn uniformly with replacement."""
        n = check_int("n", n, low=0)
        return [self.prompts[i] for i in rng.integers(len(self.prompts), size=n)]

    def subset(self, n: int, rng: np.random.Generator | None = None) -> "PromptSet":
        """The first n prompts (or n drawn without replacement when rng is given)."""
        n = check_int("n", n, low=1, high=len(self.prompts))
        idx = np.arange(n) if rng is None else np.sort(rng.choice(len(self.prompts), size=n, replace=False))
        ps = [self.prompts[i] for i in idx]
        return PromptSet(ps, {p: self.columns[p] for p in ps if p in self.columns}, name=f"{self.name}[{n}]")


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
        ps = PromptSet([it["prompt"] for it in items], {it["prompt"]: {"answer": it["answer"]} for it in items},
                       name=name)
    if n is not None:
        ps = ps.subset(n, None if seed is None else np.random.default_rng(seed))
    return ps


def _from_rows(rows, prompt_column: str, name: str) -> PromptSet:
    prompts, columns = [], {}
    for i, row in enumerate(rows):
        if prompt_column not in row:
            raise ValueError(f"row {i} has no {prompt_column!r} column (columns: {sorted(row)}); pass prompt_column=")
        x = as_prompt(row[prompt_column])
        prompts.append(x)
        extra = {k: v for k, v in row.items() if k != prompt_column}
        if extra:
            columns[x] = extra
    return PromptSet(prompts, columns, name=name)


def as_prompt_set(prompts, prompt_column: str = "prompt") -> PromptSet:
    """A PromptSet from any of the forms in the module docstring."""
    if isinstance(prompts, PromptSet):
        return prompts
    if isinstance(prompts, str):
        return load_prompts(prompts)
    if hasattr(prompts, "column_names") and hasattr(prompts, "__iter__"):  # a datasets.Dataset
        if prompt_column not in prompts.column_names:
            raise ValueError(f"the dataset has no {prompt_column!r} column (columns: {prompts.column_names}); "
                             f"pass prompt_column=")
        return _from_rows(iter(prompts), prompt_column, getattr(prompts, "info", None) and
                          getattr(prompts.info, "dataset_name", None) or "dataset")
    if isinstance(prompts, Mapping):  # a dict of columns
        if prompt_column not in prompts:
            raise ValueError(f"a dict of columns needs a {prompt_column!r} column, got {sorted(prompts)}")
        cols = {k: list(v) for k, v in prompts.items()}
        n = len(cols[prompt_column])
        if any(len(v) != n for v in cols.values()):
            raise ValueError("every column must have as many rows as the prompt column")
        return _from_rows(({k: v[i] for k, v in cols.items()} for i in range(n)), prompt_column, "columns")
    if isinstance(prompts, Iterable):
        items = list(prompts)
        if items and isinstance(items[0], Mapping) and prompt_column in items[0]:
            return _from_rows(items, prompt_column, "rows")
        return PromptSet(items)
    raise TypeError(f"prompts must be a prompt-set name {PROMPT_SETS}, a list of str or chat-message lists, a "
                    f"dataset (or column) or a PromptSet, got {type(prompts).__name__}")
