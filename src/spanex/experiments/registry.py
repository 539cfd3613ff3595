"""Experiment registry: ``name -> (module, class)``, imported lazily.

Two ways to name an experiment, with different trust:

- :func:`get` takes what a *user* typed (the command line, a Python call): a registered name or a
  ``"package.module:ClassName"`` spec for an experiment defined outside spanex. A spec is imported,
  checked to be an :class:`Experiment` subclass *before* it is instantiated, and remembered under
  its name for the rest of the process.
- :func:`lookup` takes a name read from a *file* (``experiment.json``): it resolves only registered
  names and the specs :func:`get` loaded in this process, and never imports anything. A results
  directory therefore cannot make spanex import a module (``spanex report DIR --experiment SPEC``
  loads a custom experiment explicitly).
"""

from __future__ import annotations

import importlib
import re

from .base import Experiment

REGISTRY = {
    "coverage-lower-bound": ("spanex.experiments.coverage_lower_bound", "CoverageLowerBound"),
    "spanner-scaling": ("spanex.experiments.spanner_scaling", "SpannerScaling"),
    "data-efficiency": ("spanex.experiments.data_efficiency", "DataEfficiency"),
    "proper-vs-improper": ("spanex.experiments.proper_vs_improper", "ProperVsImproper"),
    "token-level": ("spanex.experiments.token_level", "TokenLevel"),
    "preferences": ("spanex.experiments.preferences", "Preferences"),
}

#: experiments loaded from ``module:Class`` specs in this process, by their ``name``
_LOADED: dict[str, Experiment] = {}

_SPEC = re.compile(r"(?P<mod>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*):(?P<cls>[A-Za-z_]\w*)")
#: an experiment name is a directory name of the store and the prefix of ``--set NAME.KEY``
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def names() -> list[str]:
    return list(REGISTRY)


def get(spec: str) -> Experiment:
    """The experiment registered as `spec`, or the one at ``package.module:ClassName`` (imported)."""
    if not isinstance(spec, str):
        raise TypeError(f"experiment must be a name or 'package.module:ClassName', got {type(spec).__name__}")
    if spec in REGISTRY:
        mod, cls = REGISTRY[spec]
        return _instantiate(getattr(importlib.import_module(mod), cls), spec)
    if spec in _LOADED:
        return _LOADED[spec]
    if ":" in spec:
        return _load(spec)
    raise ValueError(f"unknown experiment {spec!r}; known: {', '.join(REGISTRY)} "
                     "(or give 'package.module:ClassName')")


def lookup(name: str) -> Experiment:
    """The experiment called `name` in a stored file: a registered one, or one :func:`get` loaded in
    this process from a spec. Never imports a module named by the file."""
    if isinstance(name, str) and name in REGISTRY:
        return get(name)
    if isinstance(name, str) and name in _LOADED:
        return _LOADED[name]
    raise ValueError(f"experiment {name!r} is not a registered experiment; if it was run from a "
                     "'package.module:ClassName' spec, load it with the same spec (spanex report DIR "
                     "--experiment package.module:ClassName)")


def _load(spec: str) -> Experiment:
    m = _SPEC.fullmatch(spec)
    if m is None:
        raise ValueError(f"experiment spec {spec!r} must look like 'package.module:ClassName'")
    mod_name, cls_name = m["mod"], m["cls"]
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name is not None and (mod_name == e.name or mod_name.startswith(e.name + ".")):
            raise ValueError(f"experiment spec {spec!r}: no module named {e.name!r}") from None
        raise ValueError(f"experiment spec {spec!r}: importing {mod_name!r} failed: {e}") from None
    except Exception as e:  # noqa: BLE001 - the user's module failed to import: one clear line
        raise ValueError(f"experiment spec {spec!r}: importing {mod_name!r} failed: "
                         f"{type(e).__name__}: {e}") from None
    if not hasattr(module, cls_name):
        raise ValueError(f"experiment spec {spec!r}: module {mod_name!r} has no attribute {cls_name!r}")
    exp = _instantiate(getattr(module, cls_name), spec)
    if exp.name in REGISTRY:
        raise ValueError(f"experiment spec {spec!r} is called {exp.name!r}, the name of a built-in experiment; "
                         "give it another name")
    if not _NAME.fullmatch(exp.name):
        raise ValueError(f"experiment spec {spec!r} is called {exp.name!r}; a name is 1-64 letters, digits, "
                         "'_' or '-', starting with a letter or digit")
    prev = _LOADED.get(exp.name)
    if prev is not None and _where(prev) != _where(exp):  # the same class re-imported is fine
        raise ValueError(f"experiment spec {spec!r} is called {exp.name!r}, like {_where(prev)} loaded earlier; "
                         "give it another name")
    _LOADED[exp.name] = exp
    return exp


def _where(exp: Experiment) -> str:
    return f"{type(exp).__module__}:{type(exp).__qualname__}"


def _instantiate(obj, spec: str) -> Experiment:
    """`obj` if it is an Experiment instance, ``obj()`` if it is an Experiment subclass (checked first)."""
    if isinstance(obj, Experiment):
        return obj
    if not (isinstance(obj, type) and issubclass(obj, Experiment)):
        what = f"class {obj.__name__}" if isinstance(obj, type) else type(obj).__name__
        raise TypeError(f"{spec!r} is not a spanex Experiment (got {what})")
    try:
        return obj()
    except Exception as e:  # noqa: BLE001 - a user's experiment class failed to construct: one clear line
        raise ValueError(f"experiment {spec!r}: {obj.__name__}() raised {type(e).__name__}: {e}") from None
