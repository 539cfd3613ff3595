"""Algorithms: one module each, same interface ``run(problem, seed=..., budget=...) -> Result``.

``REGISTRY`` maps a short name to (module, class); :func:`get` imports lazily.
"""

from __future__ import annotations

import importlib

REGISTRY = {
    "spanner_sampling": ("spanex.algorithms.spanner_sampling", "SpannerSampling"),
    "online_dpo": ("spanex.algorithms.online_dpo", "OnlineDPO"),
    "xpo": ("spanex.algorithms.xpo", "XPO"),
    "best_of_n": ("spanex.algorithms.best_of_n", "BestOfN"),
    "inference_time_pessimism": ("spanex.algorithms.inference_time_pessimism", "InferenceTimePessimism"),
    "passive_regression": ("spanex.algorithms.passive_regression", "PassiveRegression"),
    "exhaustive_design": ("spanex.algorithms.exhaustive_design", "ExhaustiveDesign"),
    "mtss": ("spanex.algorithms.mtss", "MTSS"),
}


def get(name: str):
    """The algorithm class registered under `name`."""
    if name not in REGISTRY:
        raise ValueError(f"unknown algorithm {name!r}; known: {sorted(REGISTRY)}")
    mod, cls = REGISTRY[name]
    return getattr(importlib.import_module(mod), cls)


def make(name: str, **params):
    """Instantiate a registered algorithm with parameters."""
    return get(name)(**params)


def __getattr__(name):
    for mod, cls in REGISTRY.values():
        if cls == name:
            return getattr(importlib.import_module(mod), cls)
    raise AttributeError(name)
