"""The run store: one JSON record per finished run, written atomically; resumable sweeps.

Layout of an output directory ``DIR``::

    DIR/<experiment>/experiment.json      name, config, quick flag, versions (rewritten by each `run`)
    DIR/<experiment>/runs/<key>.json      one record per finished run
    DIR/<experiment>/errors/<key>.json    the traceback of a run that raised (retried on the next `run`)

A record is written to a temporary file in the same directory, flushed, fsync'ed and renamed over
its final name with :func:`os.replace`, which is atomic on POSIX. A process killed at any moment
therefore leaves either no record or a complete one; stray temporary files (``.*.tmp``) are ignored
and removed. The key of a run is a hash of (experiment, point, replicate, base seed), so re-running
the same sweep finds the finished keys and skips them: nothing finished is lost or duplicated.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

from .base import jsonable

RECORD_VERSION = 1


def versions() -> dict:
    import numpy
    import scipy

    import spanex

    return {"spanex": spanex.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "python": platform.python_version()}


def atomic_write_json(path: Path, obj) -> None:
    """Write `obj` as JSON to `path` atomically (temp file in the same directory + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(jsonable(obj), f, sort_keys=True, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class Store:
    """Records of one experiment under ``root/<experiment>``."""

    def __init__(self, root, experiment: str):
        self.root = Path(root)
        self.experiment = experiment
        self.dir = self.root / experiment
        self.runs_dir = self.dir / "runs"
        self.errors_dir = self.dir / "errors"

    # ---- metadata ------------------------------------------------------------------------------
    def write_meta(self, meta: dict) -> None:
        atomic_write_json(self.dir / "experiment.json", meta)

    def read_meta(self) -> dict | None:
        p = self.dir / "experiment.json"
        return json.loads(p.read_text()) if p.exists() else None

    # ---- records -------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        return self.runs_dir / f"{key}.json"

    def finished_keys(self) -> set[str]:
        if not self.runs_dir.exists():
            return set()
        return {p.stem for p in self.runs_dir.glob("*.json") if not p.name.startswith(".")}

    def has(self, key: str) -> bool:
        return self.path(key).exists()

    def write(self, record: dict) -> None:
        """Write a finished run's record (atomically); clears an earlier error of the same key."""
        key = record["key"]
        atomic_write_json(self.path(key), {"record_version": RECORD_VERSION, **record})
        err = self.errors_dir / f"{key}.json"
        if err.exists():
            err.unlink()

    def write_error(self, task: dict, error: str) -> None:
        atomic_write_json(self.errors_dir / f"{task['key']}.json", {**task, "error": error})

    def errors(self) -> list[dict]:
        if not self.errors_dir.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.errors_dir.glob("*.json"))]

    def load(self, keys=None) -> list[dict]:
        """All records (or those with the given keys), sorted by key."""
        if not self.runs_dir.exists():
            return []
        paths = sorted(self.runs_dir.glob("*.json"))
        want = None if keys is None else set(keys)
        out = []
        for p in paths:
            if p.name.startswith(".") or (want is not None and p.stem not in want):
                continue
            out.append(json.loads(p.read_text()))
        return out

    def clean_temp(self) -> int:
        """Remove temporary files left by a killed writer; returns how many."""
        n = 0
        for d in (self.dir, self.runs_dir, self.errors_dir):
            if d.exists():
                for p in d.glob(".*.tmp"):
                    p.unlink(missing_ok=True)
                    n += 1
        return n


def discover(root) -> list[Store]:
    """Stores under `root`: its experiment subdirectories, or `root` itself if it is one."""
    root = Path(root)
    if (root / "experiment.json").exists():
        return [Store(root.parent, root.name)]
    if not root.is_dir():
        return []
    return [Store(root, p.name) for p in sorted(root.iterdir()) if (p / "experiment.json").exists()]


# ---- tidy export ---------------------------------------------------------------------------------------

def tidy_rows(records: list[dict]) -> list[dict]:
    """One flat row per record: key, replicate, seeds, ``point.*``, ``metric.*``, ``ledger.*``, status."""
    rows = []
    for r in records:
        row = {"experiment": r["experiment"], "key": r["key"], "replicate": r["replicate"],
               "base_seed": r["base_seed"], "seed_instance": r["seeds"]["instance"],
               "seed_algorithm": r["seeds"]["algorithm"], "status": r.get("status"),
               "wall_time": r.get("wall_time")}
        for k, v in r["point"].items():
            row[k] = v if not isinstance(v, (list, dict)) else json.dumps(v)
        for k, v in r.get("metrics", {}).items():
            row[k] = v if not isinstance(v, (list, dict)) else json.dumps(v)
        for k, v in r.get("ledger", {}).items():
            row[f"ledger.{k}"] = v
        rows.append(row)
    return rows


def frame(records: list[dict]):
    """A pandas DataFrame of :func:`tidy_rows` (needs the ``io`` extra)."""
    try:
        import pandas as pd
    except ModuleNotFoundError as e:  # pragma: no cover - depends on the install
        raise ModuleNotFoundError("the analysis and export need pandas: pip install 'spanex[io]'") from e
    return pd.DataFrame(tidy_rows(records))


def export(records: list[dict], path_stem, formats=("csv", "parquet")) -> list[Path]:
    """Write the tidy table as ``<stem>.csv`` and/or ``<stem>.parquet``; returns the paths written."""
    df = frame(records)
    out = []
    for fmt in formats:
        p = Path(f"{path_stem}.{fmt}")
        if fmt == "csv":
            df.to_csv(p, index=False)
        elif fmt == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ModuleNotFoundError as e:  # pragma: no cover
                raise ModuleNotFoundError("Parquet export needs pyarrow: pip install 'spanex[io]'") from e
            df.to_parquet(p, index=False)
        else:
            raise ValueError(f"export format must be 'csv' or 'parquet', got {fmt!r}")
        out.append(p)
    return out
