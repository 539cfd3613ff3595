"""Run an experiment's sweep into a store, skipping finished runs (resume after any kill)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from . import registry
from .executors import run_tasks
from .store import CorruptRecord, Store, lock_out, versions


@dataclass
class RunSummary:
    experiment: str
    directory: Path
    total: int
    skipped: int
    finished: int
    failed: int
    wall_time: float
    #: corrupt records of this sweep found on disk and run again
    redone: int = 0
    #: one line per thing found wrong in the store (corrupt files, an unreadable experiment.json)
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        redone = f"; {self.redone} corrupt records run again" if self.redone else ""
        return (f"{self.experiment}: {self.total} runs ({self.skipped} already finished, {self.finished} run now, "
                f"{self.failed} failed{redone}) in {self.wall_time:.1f} s -> {self.directory}")


def run_experiment(spec: str, out="runs", *, quick: bool = False, overrides: dict | None = None,
                   executor: str = "local", workers: int | None = None, progress: bool = True) -> RunSummary:
    """Run (or resume) the sweep of experiment `spec` into ``out/<name>``.

    Each finished run is written atomically by this (parent) process as soon as it finishes, so a
    kill at any moment loses only the runs in flight; a failed run is recorded under ``errors/`` and
    retried by the next call. A run counts as finished only if its record reads back valid, so a
    corrupt record (truncated, edited, replaced) is run again and its file replaced. The writer's
    lock of `out` is held throughout (:func:`~spanex.experiments.store.lock_out`): a second run into
    the same `out` raises :class:`~spanex.experiments.store.OutputLocked` at once.
    """
    exp = registry.get(spec)
    exp.check_available()
    cfg = exp.make_config(quick, overrides)
    tasks = [{**t, "spec": spec} for t in exp.tasks(cfg)]
    with lock_out(out):
        return _run_locked(exp, spec, cfg, tasks, out, quick, overrides, executor, workers, progress)


def _run_locked(exp, spec, cfg, tasks, out, quick, overrides, executor, workers, progress) -> RunSummary:
    store = Store(out, exp.name)
    store.clean_temp()
    scan = store.scan()
    keys = {t["key"] for t in tasks}
    done = set(scan.records) & keys
    pending = [t for t in tasks if t["key"] not in done]
    redo = {c.key for c in scan.corrupt if c.path.parent == store.runs_dir} & keys
    notes = scan.notes()
    meta = {"experiment": exp.name, "spec": spec, "title": exp.title, "quick": quick, "config": cfg.to_dict(),
            "overrides": dict(overrides or {}), "versions": versions(), "n_tasks": len(tasks),
            "executor": executor, "workers": workers, "started": time.time()}
    try:
        prev = store.read_meta() or {}
    except CorruptRecord as e:
        notes.append(f"corrupt: {e}; rewritten (its run history is lost)")
        prev = {}
    meta["history"] = prev.get("history", [])
    store.write_meta(meta)
    t0 = time.perf_counter()
    finished = failed = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), initial=len(tasks) - len(pending), desc=exp.name, unit="run",
                   dynamic_ncols=True)
    try:
        for task, record, error in run_tasks(pending, executor, workers):
            if record is not None:
                try:
                    store.write(record)
                except (ValueError, TypeError) as e:  # a record the store would not read back
                    record, error = None, f"the run finished but its record cannot be stored: {e}"
                else:
                    done.add(task["key"])
                    finished += 1
            if record is None:
                store.write_error(task, error)
                failed += 1
                if bar is not None:
                    bar.write(f"run {task['key']} of {exp.name} failed:\n{error.strip().splitlines()[-1]}")
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    meta["history"].append({"started": meta["started"], "wall_time": wall, "ran": finished, "failed": failed,
                            "skipped": len(tasks) - len(pending), "executor": executor, "workers": workers})
    meta["complete"] = len(done) == len(tasks)
    store.write_meta(meta)
    return RunSummary(exp.name, store.dir, len(tasks), len(tasks) - len(pending), finished, failed, wall,
                      redone=len(redo), notes=notes)
