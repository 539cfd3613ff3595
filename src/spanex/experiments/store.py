"""The run store: one JSON record per finished run, written atomically; resumable sweeps.

Layout of an output directory ``DIR``::

    DIR/.spanex.lock                      the writer's lock (see :func:`lock_out`)
    DIR/<experiment>/experiment.json      name, config, quick flag, versions (rewritten by each `run`)
    DIR/<experiment>/runs/<key>.json      one record per finished run
    DIR/<experiment>/errors/<key>.json    the traceback of a run that raised (retried on the next `run`)

**Writing.** A record is written to a temporary file in the same directory, flushed, fsync'ed and
renamed over its final name with :func:`os.replace`, which is atomic on POSIX. A process killed at
any moment therefore leaves either no record or a complete one. A temporary file is named
``.<name>.<pid>.<random>.tmp`` after the process writing it; :meth:`Store.clean_temp` removes only
those whose writer is this process or no longer alive, never another live writer's.

**One writer.** :func:`lock_out` holds an OS lock (``fcntl.flock``) on ``DIR/.spanex.lock`` for the
whole of a run; a second run into the same ``DIR`` is refused at once (:class:`OutputLocked`).
The kernel drops the lock when its holder dies, even by SIGKILL. The lock is POSIX-only.

**Reading.** A record counts as finished only if it reads back as a record: a regular file of at
most :data:`MAX_RECORD_BYTES`, UTF-8 JSON nested at most :data:`spanex.limits.MAX_DEPTH` levels,
with every field of the schema (:func:`record_problem`) and a key that matches its file name and
its contents (experiment, point, replicate, base seed, seeds). Anything else is *corrupt*: it is
listed (:meth:`Store.scan`), its run is done again by the next `run` (which replaces the file), and
the report is made from the good records. Nothing read from a store is trusted further than that.

The key of a run is a hash of (experiment, point, replicate, base seed), so re-running the same
sweep finds the finished keys and skips them: nothing finished is lost or duplicated.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import SpanexError
from ..limits import LimitError, check_plain, read_bounded
from .base import jsonable, make_task

RECORD_VERSION = 1

#: A stored file (record, error record, experiment.json) larger than this is refused before it is
#: read. Records of the built-in experiments are about 50 KB (traces are thinned to 200 rows), so
#: the limit leaves a factor of 160 for custom experiments while bounding what a crafted file costs.
MAX_RECORD_BYTES = 8 * 2**20

#: an error record keeps at most this many characters of the traceback (its end)
MAX_ERROR_CHARS = 64_000

LOCK_NAME = ".spanex.lock"

_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]{1,10})\.[0-9a-f]{8}\.tmp")


def versions() -> dict:
    import numpy
    import scipy

    import spanex

    return {"spanex": spanex.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "python": platform.python_version()}


# ---- errors ------------------------------------------------------------------------------------------

class CorruptRecord(ValueError):
    """A stored file that does not read back as what it should be; ``reason`` says why."""

    def __init__(self, path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path} {reason}")


class OutputLocked(SpanexError):
    """Another process (or thread) is writing into the same output directory."""


class OutputDirError(ValueError):
    """The output directory cannot be created or written (a file is in the way, no permission, ...)."""


# ---- writing -----------------------------------------------------------------------------------------

def atomic_write_json(path: Path, obj, *, max_bytes: int | None = None) -> None:
    """Write `obj` as JSON to `path` atomically (temp file in the same directory + os.replace).

    The text is serialized first, so an object that is not JSON-able (TypeError) or larger than
    `max_bytes` (ValueError) leaves nothing behind. The temp file carries this process's pid.
    """
    path = Path(path)
    data = json.dumps(jsonable(obj), sort_keys=True, indent=1).encode()
    if max_bytes is not None and len(data) > max_bytes:
        raise ValueError(f"{path.name} would have {len(data)} bytes, more than the store's limit of {max_bytes} "
                         "(MAX_RECORD_BYTES); keep large arrays out of metrics and traces")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except (OverflowError, ValueError):  # not a pid this system can have
        return False
    return True


# ---- reading -----------------------------------------------------------------------------------------

def read_json(path, max_bytes: int = MAX_RECORD_BYTES):
    """The JSON value stored at `path`, bounded in size and depth; CorruptRecord if it is not one."""
    try:
        data = read_bounded(path, max_bytes)
    except LimitError as e:
        raise CorruptRecord(path, e.reason) from None
    except FileNotFoundError:
        if os.path.islink(path):
            raise CorruptRecord(path, "is a symlink to a missing file") from None
        raise
    except OSError as e:
        raise CorruptRecord(path, f"cannot be read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptRecord(path, f"is not UTF-8 text (bad byte at offset {e.start})") from None
    try:
        obj = json.loads(text)
    except RecursionError:
        raise CorruptRecord(path, "is nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, and integers too long to convert
        raise CorruptRecord(path, f"is not valid JSON ({e})") from None
    try:
        return check_plain(obj)
    except LimitError as e:
        raise CorruptRecord(path, e.reason) from None


_RECORD_FIELDS = {"key": str, "experiment": str, "point": dict, "replicate": int, "base_seed": int,
                  "seeds": dict, "status": str, "metrics": dict, "ledger": dict, "trace": list,
                  "wall_time": (int, float), "record_version": int}
_OPTIONAL_FIELDS = {"versions": dict, "timing": dict}
_ERROR_FIELDS = {"key": str, "error": str}
_META_FIELDS = {"experiment": str, "config": dict}
_META_OPTIONAL = {"quick": bool, "history": list, "spec": str, "title": str, "complete": bool}


def _is(v, types) -> bool:
    """isinstance, except that a bool is not a number here."""
    types = types if isinstance(types, tuple) else (types,)
    return isinstance(v, types) and (bool in types or not isinstance(v, bool))


def _shape_problem(obj, what: str, required: dict, optional: dict | None = None) -> str | None:
    """Why `obj` is not a JSON object with the `required` (and any `optional`) fields of the given types."""
    if not isinstance(obj, dict):
        return f"holds a JSON {type(obj).__name__}, not {what}"
    for fields, needed in ((required, True), (optional or {}, False)):
        for k, types in fields.items():
            if k not in obj:
                if needed:
                    return f"has no {k!r}"
            elif not _is(obj[k], types):
                want = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
                return f"has {k!r} of type {type(obj[k]).__name__}, expected {want}"
    return None


def record_problem(rec, key: str, experiment: str) -> str | None:
    """Why `rec` is not a valid record of run `key` of `experiment`, or None when it is."""
    problem = _shape_problem(rec, "a record object", _RECORD_FIELDS, _OPTIONAL_FIELDS)
    if problem:
        return problem
    if rec["record_version"] != RECORD_VERSION:
        return f"has record_version {rec['record_version']}; this spanex reads version {RECORD_VERSION}"
    if rec["key"] != key:
        return f"holds key {rec['key']!r}, not the key of its file name"
    if rec["experiment"] != experiment:
        return f"belongs to experiment {rec['experiment']!r}, not {experiment!r}"
    if rec["replicate"] < 0 or rec["base_seed"] < 0:
        return "has a negative replicate or base_seed"
    seeds = rec["seeds"]
    if set(seeds) != {"instance", "algorithm"} or not all(_is(v, int) for v in seeds.values()):
        return "has seeds that are not {'instance': int, 'algorithm': int}"
    if not all(_is(v, (int, float)) for v in rec["ledger"].values()):
        return "has a ledger count that is not a number"
    try:
        task = make_task(experiment, rec["point"], rec["replicate"], rec["base_seed"])
    except (ValueError, TypeError, OverflowError):
        return "has a point, replicate or base_seed that cannot be hashed to a key"
    if task["key"] != key:
        return "has a point, replicate or base_seed that does not hash to its key"
    if task["seeds"] != seeds:
        return "has seeds that do not derive from its point, replicate and base_seed"
    return None


def error_problem(rec, key: str) -> str | None:
    """Why `rec` is not a valid error record of run `key`, or None when it is."""
    problem = _shape_problem(rec, "an error record object", _ERROR_FIELDS)
    if problem or rec["key"] == key:
        return problem
    return f"holds key {rec['key']!r}, not the key of its file name"


def meta_problem(meta, experiment: str) -> str | None:
    """Why `meta` is not a valid ``experiment.json`` of `experiment`, or None when it is."""
    problem = _shape_problem(meta, "an object", _META_FIELDS, _META_OPTIONAL)
    if problem:
        return problem
    if meta["experiment"] != experiment:
        return f"names experiment {meta['experiment']!r} but sits in the directory {experiment!r}"
    if any(_shape_problem(h, "", {}, {"wall_time": (int, float)}) for h in meta.get("history", [])):
        return "has a history entry that is not an object with a numeric wall_time"
    return None


@dataclass(frozen=True)
class Corrupt:
    """A stored file that is not what it should be: where, and why (one line)."""

    path: Path
    reason: str

    @property
    def key(self) -> str:
        return self.path.stem

    def line(self) -> str:
        return f"{self.path.parent.name}/{self.path.name} {self.reason}"

    def to_dict(self) -> dict:
        return {"path": str(self.path), "reason": self.reason}


@dataclass
class Scan:
    """What a store holds: valid records and error records by key, and the corrupt files."""

    records: dict[str, dict] = field(default_factory=dict)
    errors: dict[str, dict] = field(default_factory=dict)
    corrupt: list[Corrupt] = field(default_factory=list)

    def load(self, keys=None) -> list[dict]:
        """The valid records (those with the given keys, if any), sorted by key."""
        want = None if keys is None else set(keys)
        return [self.records[k] for k in sorted(self.records) if want is None or k in want]

    def notes(self, limit: int = 20) -> list[str]:
        """One line per corrupt file (at most `limit`, then a count), for reports and logs."""
        lines = [f"corrupt: {c.line()}; ignored, and redone by the next `spanex run`" for c in self.corrupt[:limit]]
        if len(self.corrupt) > limit:
            lines.append(f"corrupt: {len(self.corrupt) - limit} more files")
        return lines


class Store:
    """Records of one experiment under ``root/<experiment>``.

    Reading: :meth:`scan` (everything, once), :meth:`load`, :meth:`finished_keys`, :meth:`errors`,
    :meth:`corrupt`, :meth:`read`, :meth:`read_meta`. Writing (by the one holder of
    :func:`lock_out`): :meth:`write`, :meth:`write_error`, :meth:`write_meta`, :meth:`clean_temp`.
    """

    def __init__(self, root, experiment: str):
        self.root = Path(root)
        self.experiment = experiment
        self.dir = self.root / experiment
        self.runs_dir = self.dir / "runs"
        self.errors_dir = self.dir / "errors"
        self.meta_path = self.dir / "experiment.json"

    # ---- metadata ------------------------------------------------------------------------------
    def write_meta(self, meta: dict) -> None:
        atomic_write_json(self.meta_path, meta, max_bytes=MAX_RECORD_BYTES)

    def read_meta(self) -> dict | None:
        """The stored ``experiment.json`` (None if there is none); CorruptRecord if it is not valid."""
        if not os.path.lexists(self.meta_path):
            return None
        meta = read_json(self.meta_path)
        problem = meta_problem(meta, self.experiment)
        if problem:
            raise CorruptRecord(self.meta_path, problem)
        return meta

    # ---- records -------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        return self.runs_dir / f"{key}.json"

    def read(self, key: str) -> dict:
        """The valid record of run `key`; FileNotFoundError if absent, CorruptRecord if not valid."""
        path = self.path(key)
        rec = read_json(path)
        problem = record_problem(rec, key, self.experiment)
        if problem:
            raise CorruptRecord(path, problem)
        return rec

    def scan(self) -> Scan:
        """Read every record and error record once: the valid ones by key, and the corrupt files."""
        out = Scan()
        for d, valid, check in ((self.runs_dir, out.records, lambda r, k: record_problem(r, k, self.experiment)),
                                (self.errors_dir, out.errors, error_problem)):
            for p in _json_files(d):
                try:
                    rec = read_json(p)
                except FileNotFoundError:  # removed while we listed: not there
                    continue
                except CorruptRecord as e:
                    out.corrupt.append(Corrupt(p, e.reason))
                    continue
                problem = check(rec, p.stem)
                if problem:
                    out.corrupt.append(Corrupt(p, problem))
                else:
                    valid[p.stem] = rec
        return out

    def load(self, keys=None) -> list[dict]:
        """The valid records (or those with the given keys), sorted by key."""
        return self.scan().load(keys)

    def finished_keys(self) -> set[str]:
        """Keys of the runs with a valid record (a corrupt record does not count as finished)."""
        return set(self.scan().records)

    def has(self, key: str) -> bool:
        try:
            self.read(key)
        except (FileNotFoundError, CorruptRecord):
            return False
        return True

    def errors(self) -> list[dict]:
        """The valid error records, sorted by key."""
        errs = self.scan().errors
        return [errs[k] for k in sorted(errs)]

    def corrupt(self) -> list[Corrupt]:
        """The corrupt records and error records."""
        return self.scan().corrupt

    def write(self, record: dict) -> None:
        """Write a finished run's record (atomically); clears an earlier error of the same key.

        ValueError if the record does not fit the schema or the size limit, TypeError if it is not
        JSON-able: the store never writes a record it would not read back as finished.
        """
        key = record["key"]
        full = jsonable({"record_version": RECORD_VERSION, **record})
        check_plain(full, f"the record of run {key}")
        problem = record_problem(full, key, self.experiment)
        if problem:
            raise ValueError(f"the record of run {key} {problem}")
        path = self.path(key)
        if path.is_dir() and not path.is_symlink():  # os.replace cannot put a file there; never delete a dir
            raise ValueError(f"the record of run {key} cannot replace {str(path)!r}, which is a directory")
        atomic_write_json(path, full, max_bytes=MAX_RECORD_BYTES)
        err = self.errors_dir / f"{key}.json"
        if os.path.lexists(err):
            err.unlink()

    def write_error(self, task: dict, error: str) -> None:
        """Store the error text of a failed run (its last MAX_ERROR_CHARS characters: the end of a
        traceback says what went wrong)."""
        if len(error) > MAX_ERROR_CHARS:
            error = "...\n" + error[-MAX_ERROR_CHARS:]
        atomic_write_json(self.errors_dir / f"{task['key']}.json", {**task, "error": error},
                          max_bytes=MAX_RECORD_BYTES)

    def clean_temp(self) -> int:
        """Remove the temporary files of writers that are this process or no longer alive; returns how
        many. A live writer's temporary file (another process's) is left alone."""
        n = 0
        for d in (self.dir, self.runs_dir, self.errors_dir):
            if not d.is_dir():
                continue
            for p in d.glob(".*.tmp"):
                m = _TEMP.fullmatch(p.name)
                if m is None:
                    continue  # not named by spanex: not ours to remove
                pid = int(m["pid"])
                if pid == os.getpid() or not _pid_alive(pid):
                    p.unlink(missing_ok=True)
                    n += 1
        return n


def _json_files(d: Path) -> list[Path]:
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("*.json") if not p.name.startswith("."))


# ---- one writer per output directory -------------------------------------------------------------------

_HELD: dict[str, list] = {}  # real path of a lock file -> [fd, owning thread, depth]
_HELD_GUARD = threading.Lock()


def make_out_dir(root) -> Path:
    """Create the output directory `root` (and its parents); OutputDirError if it cannot be."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputDirError(f"{str(root)!r} exists and is not a directory") from None
    except NotADirectoryError:
        raise OutputDirError(f"{str(root)!r} cannot be created: a part of its path is a file") from None
    except OSError as e:
        raise OutputDirError(f"{str(root)!r} cannot be created: {e.strerror or e}") from None
    if not root.is_dir():
        raise OutputDirError(f"{str(root)!r} is not a directory")
    return root


@contextlib.contextmanager
def lock_out(root):
    """Hold the writer's lock of output directory `root` (created if needed) for the ``with`` block.

    Raises :class:`OutputLocked` at once if another process or another thread holds it, naming the
    lock file and the holder's pid. Re-entrant in the thread that holds it (``spanex run all`` holds
    it around every experiment's run).
    """
    import fcntl

    root = make_out_dir(root)
    path = root / LOCK_NAME
    real = os.path.realpath(path)
    me = threading.get_ident()
    with _HELD_GUARD:
        held = _HELD.get(real)
        if held is not None and held[1] != me:
            raise OutputLocked(f"{str(root)!r} is being written by another thread of this process "
                               f"(lock {str(path)!r}); one results directory takes one writer at a time")
        if held is not None:
            held[2] += 1
    if held is not None:
        try:
            yield path
        finally:
            with _HELD_GUARD:
                held[2] -= 1
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
        raise OutputDirError(f"cannot create the lock file {str(path)!r}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            raise OutputLocked(f"{str(root)!r} is being written by another spanex run ({holder}, lock "
                               f"{str(path)!r}); one results directory takes one writer at a time: wait for "
                               "it to finish or use another output directory") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}\n".encode())
        with _HELD_GUARD:
            _HELD[real] = [fd, me, 1]
        try:
            yield path
        finally:
            with _HELD_GUARD:
                del _HELD[real]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return "".join(c if c.isprintable() else "?" for c in text) or "holder unknown"


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
