"""Experiment registry: ``name -> (module, class)``, imported lazily.

``get(spec)`` also accepts ``"package.module:ClassName"`` for experiments defined outside spanex.
"""

from __future__ import annotations

import importlib

from .base import Experiment

REGISTRY = {
    "coverage-lower-bound": ("spanex.experiments.coverage_lower_bound", "CoverageLowerBound"),
    "spanner-scaling": ("spanex.experiments.spanner_scaling", "SpannerScaling"),
    "data-efficiency": ("spanex.experiments.data_efficiency", "DataEfficiency"),
    "proper-vs-improper": ("spanex.experiments.proper_vs_improper", "ProperVsImproper"),
    "token-level": ("spanex.experiments.token_level", "TokenLevel"),
    "preferences": ("spanex.experiments.preferences", "Preferences"),
}


def names() -> list[str]:
    return list(REGISTRY)


def get(spec: str) -> Experiment:
    """An instance of the experiment registered as `spec` (or at ``module:Class``)."""
    if spec in REGISTRY:
        mod, cls = REGISTRY[spec]
    elif ":" in spec:
        mod, cls = spec.split(":", 1)
    else:
        raise ValueError(f"unknown experiment {spec!r}; known: {', '.join(REGISTRY)} "
                         "(or give 'package.module:ClassName')")
    obj = getattr(importlib.import_module(mod), cls)
    exp = obj() if isinstance(obj, type) else obj
    if not isinstance(exp, Experiment):
        raise TypeError(f"{spec!r} is not a spanex Experiment (got {type(exp).__name__})")
    return exp
