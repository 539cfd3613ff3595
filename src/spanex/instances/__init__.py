"""The instance zoo: ``name -> function`` building a Problem. Imported lazily."""

from __future__ import annotations

import importlib

REGISTRY = {
    "linear_bandit": ("spanex.instances.linear", "linear_bandit"),
    "needle": ("spanex.instances.needle", "needle"),
    "max_k_dnf": ("spanex.instances.max_k_dnf", "max_k_dnf"),
    "token_chain": ("spanex.tokens.instances", "token_chain"),
    "token_linear": ("spanex.tokens.instances", "token_linear"),
}


def get(name: str):
    if name not in REGISTRY:
        raise ValueError(f"unknown instance {name!r}; known: {sorted(REGISTRY)}")
    mod, fn = REGISTRY[name]
    return getattr(importlib.import_module(mod), fn)


def make(name: str, **params):
    return get(name)(**params)


def __getattr__(name):
    for mod, fn in REGISTRY.values():
        if fn == name:
            obj = getattr(importlib.import_module(mod), fn)
            # importing a submodule named like its function (e.g. needle.needle) binds the module on this
            # package; rebind the function so `spanex.instances.NAME(...)` always calls the constructor
            globals()[name] = obj
            return obj
    raise AttributeError(name)


# Cheap, numpy-only: imported eagerly, so that `from spanex.instances import NAME` gives the constructor even
# after `import spanex.instances.NAME` bound the submodule of the same name on this package.
from .linear import linear_bandit  # noqa: E402,F401
from .max_k_dnf import max_k_dnf  # noqa: E402,F401
from .needle import needle  # noqa: E402,F401
