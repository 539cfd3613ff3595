"""What an experiment is: an instance family, a sweep of the knob in a theorem's bound, and an
analysis that turns the finished runs into verdicts (the bsuite pattern).

An :class:`Experiment` subclass declares

- ``name``, ``title`` and ``description`` (what is predicted and why),
- ``Config``: a frozen dataclass of its knobs (defaults = the full version) and ``quick()``,
- ``points(cfg)``: the sweep, a list of JSON-able dicts that each fully specify one run (apart from
  the seed), so that a run is a pure function of ``(point, seeds)``; ``replicates(cfg, point)`` says
  how many seeds a point runs (``cfg.n_seeds`` by default),
- its algorithms, in an :class:`AlgorithmTable` (``name -> function that sizes it``), from which
  ``requires`` is derived,
- ``run_one(point, seeds)``: one run, returning a :class:`RunOutput`,
- ``analyse(cfg, frame)``: a list of :class:`Verdict`, one per prediction,
- ``plot(cfg, frame, path)``: one PNG.

Seeds. Replicate ``r`` of a sweep with base seed ``s`` uses the *instance* seed
``SeedSequence([s, r])`` (the same instance across the sweep points of a replicate, so a sweep over
beta changes only beta) and the *algorithm* seed ``SeedSequence([s, r, h(point)])`` with ``h`` a
stable hash of the point. Every executor derives them the same way, hence identical records.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..core.errors import check_int

OUTCOMES = ("holds", "does not hold", "inconclusive")


@dataclass(frozen=True)
class BaseConfig:
    """Fields every experiment has.

    n_seeds : number of replicates (independent instances and algorithm seeds) per sweep point.
    base_seed : root of every seed of the experiment.
    """

    n_seeds: int = 5
    base_seed: int = 0

    def __post_init__(self):
        check_int("n_seeds", self.n_seeds, low=1, high=10_000)
        check_int("base_seed", self.base_seed, low=0)

    def to_dict(self) -> dict:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def _check_sweep(self, name: str) -> None:
        """A slope needs the swept field `name` to take at least 2 distinct values."""
        values = getattr(self, name)
        if len(set(values)) < 2:
            raise ValueError(f"{name} needs at least 2 distinct values, got {list(values)}")

    def _check_algorithms(self, allowed) -> None:
        """``self.algorithms`` must be a non-empty subset of `allowed`."""
        bad = [a for a in self.algorithms if a not in allowed]
        if not self.algorithms or bad:
            raise ValueError(f"algorithms must be a non-empty subset of {list(allowed)}, got {list(self.algorithms)}")


@dataclass(frozen=True)
class RunSeeds:
    """The two integer seeds of one run (see the module docstring)."""

    instance: int
    algorithm: int

    @classmethod
    def derive(cls, base_seed: int, replicate: int, point: dict) -> "RunSeeds":
        inst = np.random.SeedSequence([int(base_seed), int(replicate)]).generate_state(1, dtype=np.uint32)[0]
        alg = np.random.SeedSequence([int(base_seed), int(replicate), point_hash32(point)]).generate_state(
            1, dtype=np.uint32)[0]
        return cls(int(inst), int(alg))


@dataclass
class RunOutput:
    """What ``run_one`` returns: scalar metrics plus the run's ledger, trace and status."""

    metrics: dict
    ledger: dict = field(default_factory=dict)
    trace: list = field(default_factory=list)
    status: str = "completed"
    wall_time: float = 0.0


KINDS = ("theorem", "recipe check")


@dataclass(frozen=True)
class Verdict:
    """One prediction confronted with the measurement.

    claim : the prediction, in words.
    measured, lo, hi : the estimate and its 95% bootstrap interval.
    predicted, tolerance : the prediction; ``rule`` says how the verdict was reached and why.
    verdict : 'holds', 'does not hold' or 'inconclusive'.
    kind : 'theorem' (a check of the paper's claim) or 'recipe check' (a check of the library's
        parameter recipe, whose sizes are formulas: the claim is about the recipe, not the theorem).
    outcome : True when the measured quantity is an outcome of the runs (the first budget reaching
        eps, the calls a self-calibrated sampler needed), False when an input fixes it.
    oracle_hints : True when some run behind the verdict used an exact quantity of the instance
        (C_cov, C_cond, theta*, an exact strong oracle) that a user would not have.
    failure : for a prediction that does not hold, the paragraph on its likely cause
        (reconstruction, constants, instance, or a wrong prediction).
    """

    experiment: str
    claim: str
    measured: float
    lo: float
    hi: float
    predicted: float
    tolerance: float
    verdict: str
    rule: str
    n_runs: int
    note: str = ""
    kind: str = "theorem"
    outcome: bool = True
    oracle_hints: bool = False
    failure: str = ""

    def __post_init__(self):
        if self.verdict not in OUTCOMES:
            raise ValueError(f"verdict must be one of {OUTCOMES}, got {self.verdict!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def provenance(self) -> str:
        """'measured outcome, no oracle hint' (or what differs from it)."""
        if self.measured != self.measured:                    # NaN: nothing was measured
            return "not measured" + (", oracle hints used" if self.oracle_hints else "")
        what = "measured outcome" if self.outcome else "set by an input"
        return f"{what}, {'oracle hints used' if self.oracle_hints else 'no oracle hint'}"

    def line(self) -> str:
        kind = "" if self.kind == "theorem" else f" [{self.kind}]"
        return (f"[{self.experiment}] {self.claim}{kind}: measured {self.measured:.3g} "
                f"[{self.lo:.3g}, {self.hi:.3g}], predicted {self.predicted:.3g} ± {self.tolerance:.3g} "
                f"-> {self.verdict.upper()} ({self.provenance()}; n={self.n_runs}"
                f"{'; ' + self.note if self.note else ''})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def json_row(self) -> dict:
        """The row of ``spanex report --json``: strict JSON (NaN -> null)."""
        def num(v):
            return None if v is None or not np.isfinite(v) else float(v)

        return {"experiment": self.experiment, "prediction": self.claim, "measured": num(self.measured),
                "ci_low": num(self.lo), "ci_high": num(self.hi), "predicted": num(self.predicted),
                "tolerance": num(self.tolerance), "verdict": self.verdict, "outcome": bool(self.outcome),
                "oracle_hints": bool(self.oracle_hints), "kind": self.kind, "rule": self.rule, "note": self.note,
                "n_runs": int(self.n_runs), "failure": self.failure}


@dataclass(frozen=True)
class AlgorithmTable:
    """An experiment's algorithms: ``name -> sizer``, where ``sizer(**size)`` returns the configured
    algorithm for one run (``size`` holds what the experiment varies, e.g. a ladder rung).

    The names are those of :data:`spanex.algorithms.REGISTRY`; :meth:`requires` derives the modules
    the experiment needs from them. Adding an algorithm to an experiment is one entry here.
    """

    sizers: dict

    def __post_init__(self):
        from ..algorithms import REGISTRY

        unknown = [n for n in self.sizers if n not in REGISTRY]
        if unknown:
            raise ValueError(f"algorithm table names {unknown} are not registered in spanex.algorithms "
                             f"(known: {sorted(REGISTRY)})")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.sizers)

    def requires(self) -> tuple[str, ...]:
        from ..algorithms import REGISTRY

        return tuple(REGISTRY[n][0] for n in self.sizers)

    def make(self, name: str, **size):
        if name not in self.sizers:
            raise ValueError(f"algorithm {name!r} is not in this experiment's table; known: {list(self.sizers)}")
        return self.sizers[name](**size)

    def __iter__(self):
        return iter(self.sizers)

    def __contains__(self, name) -> bool:
        return name in self.sizers


class Experiment:
    """Base class; see the module docstring. Subclasses are stateless."""

    name: ClassVar[str] = "experiment"
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[type] = BaseConfig
    #: importable modules the experiment needs (checked before running; clear error if missing)
    requires: ClassVar[tuple[str, ...]] = ()

    # ---- configuration -------------------------------------------------------------------------
    def quick_config(self):
        """The ``--quick`` configuration (subclasses override)."""
        return self.Config()

    def make_config(self, quick: bool = False, overrides: dict | None = None):
        """Full or quick config with overrides applied (validated by the dataclass)."""
        cfg = self.quick_config() if quick else self.Config()
        return apply_overrides(cfg, overrides or {}, self.name)

    def check_available(self) -> None:
        """Raise a clear ModuleNotFoundError if a required part of spanex is not installed."""
        import importlib

        for mod in self.requires:
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as e:
                raise ModuleNotFoundError(
                    f"experiment {self.name!r} requires {mod!r}, which is not available ({e})") from e

    # ---- the sweep -------------------------------------------------------------------------------
    def points(self, cfg) -> list[dict]:
        raise NotImplementedError

    def replicates(self, cfg, point: dict) -> int:
        """How many replicates (seeds) a sweep point runs; ``cfg.n_seeds`` unless overridden."""
        return cfg.n_seeds

    def tasks(self, cfg) -> list[dict]:
        """Every (point, replicate) of the sweep as a task dict with its store key."""
        return [make_task(self.name, point, r, cfg.base_seed) for point in self.points(cfg)
                for r in range(self.replicates(cfg, point))]

    def run_one(self, point: dict, seeds: RunSeeds) -> RunOutput:
        raise NotImplementedError

    # ---- analysis ---------------------------------------------------------------------------------
    def analyse(self, cfg, frame) -> list[Verdict]:
        raise NotImplementedError

    def plot(self, cfg, frame, path) -> None:
        raise NotImplementedError


def requires_of(*groups) -> tuple[str, ...]:
    """The modules of several ``requires`` tuples (e.g. instance modules and algorithm tables), once each."""
    return tuple(dict.fromkeys(m for g in groups for m in g))


# ---- tasks and keys ---------------------------------------------------------------------------------

def canonical_json(obj) -> str:
    return json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"))


def point_hash32(point: dict) -> int:
    return int.from_bytes(hashlib.sha256(canonical_json(point).encode()).digest()[:4], "little")


def run_key(experiment: str, point: dict, replicate: int, base_seed: int) -> str:
    """Stable key of a run: a hash of (experiment, point, replicate, base seed)."""
    blob = canonical_json({"experiment": experiment, "point": point, "replicate": int(replicate),
                           "base_seed": int(base_seed)})
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def make_task(experiment: str, point: dict, replicate: int, base_seed: int) -> dict:
    point = _jsonable(point)
    seeds = RunSeeds.derive(base_seed, replicate, point)
    return {"key": run_key(experiment, point, replicate, base_seed), "experiment": experiment, "point": point,
            "replicate": int(replicate), "base_seed": int(base_seed),
            "seeds": {"instance": seeds.instance, "algorithm": seeds.algorithm}}


# ---- overrides ---------------------------------------------------------------------------------------

def apply_overrides(cfg, overrides: dict, experiment: str):
    """``dataclasses.replace`` with type coercion (lists -> tuples) and a clear error on unknown keys."""
    if not overrides:
        return cfg
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} for experiment {experiment!r}; "
                         f"known keys: {sorted(fields)}")
    changes = {}
    for k, v in overrides.items():
        cur = getattr(cfg, k)
        if isinstance(cur, tuple) and isinstance(v, (list, tuple)):
            v = tuple(v)
        elif isinstance(cur, tuple) and not isinstance(v, (list, tuple)):
            v = (v,)
        elif isinstance(cur, float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        changes[k] = v
    return dataclasses.replace(cfg, **changes)


def _jsonable(v: Any):
    """Plain JSON types (tuples -> lists, numpy scalars -> Python)."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)  # NaN / inf are written as JSON NaN / Infinity, which json reads back
    return v


jsonable = _jsonable
