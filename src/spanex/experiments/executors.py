"""Executors: run a sweep's tasks serially, on a local process pool, or on Ray.

A task is a plain dict (see :func:`spanex.experiments.base.make_task`) carrying the experiment's
spec, the point, the replicate and the two derived seeds, and :func:`execute_task` (a top-level
function, so it pickles under the ``spawn`` start method and on Ray) turns it into a record. The
record depends only on the task, so every executor gives identical records for the same seeds, apart
from the ``timing`` entry.

Executors yield ``(task, record, error)`` as runs finish, in completion order; the caller (the
runner, in the parent process) writes each record at once, so a kill loses no finished run.

Local workers watch their parent (:func:`watch_parent`): when it dies, even by SIGKILL, they exit
within :data:`PARENT_POLL_SECONDS`, and multiprocessing's resource tracker, whose pipe they held
open, exits after them. No orphan keeps computing runs nobody will record.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from typing import Iterable, Iterator

EXECUTORS = ("serial", "local", "ray")

#: how often a local worker checks that its parent is alive (the bound on how long it outlives it)
PARENT_POLL_SECONDS = 0.5


def execute_task(task: dict) -> dict:
    """Run one task and return its record (raises what the run raises)."""
    from . import registry
    from .base import RunSeeds, jsonable

    exp = registry.get(task.get("spec", task["experiment"]))
    seeds = RunSeeds(**task["seeds"])
    t_start = time.time()
    t0 = time.perf_counter()
    out = exp.run_one(task["point"], seeds)
    wall = time.perf_counter() - t0
    from .store import versions

    return jsonable({
        "key": task["key"], "experiment": task["experiment"], "point": task["point"],
        "replicate": task["replicate"], "base_seed": task["base_seed"], "seeds": task["seeds"],
        "status": out.status, "metrics": out.metrics, "ledger": out.ledger, "trace": out.trace,
        "wall_time": out.wall_time, "versions": versions(),
        "timing": {"started": t_start, "task_seconds": wall, "pid": os.getpid()},
    })


def _safe(task: dict):
    try:
        return task, execute_task(task), None
    except Exception:  # noqa: BLE001 - reported to the caller, stored as an error record
        return task, None, traceback.format_exc()


def run_tasks(tasks: list[dict], executor: str = "local", workers: int | None = None) -> Iterator[tuple]:
    """Yield ``(task, record | None, error_text | None)`` for every task as it finishes."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {executor!r}")
    if not tasks:
        return iter(())
    if executor == "serial":
        return (_safe(t) for t in tasks)
    if executor == "local":
        return _local(tasks, workers)
    return _ray(tasks, workers)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def _local(tasks: list[dict], workers: int | None) -> Iterator[tuple]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    workers = workers or default_workers()
    if workers == 1:
        yield from (_safe(t) for t in tasks)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx, initializer=watch_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_safe, t) for t in tasks]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for f in futures:
                f.cancel()


def watch_parent(parent_pid: int) -> None:
    """Start a daemon thread that ends this process as soon as its parent is no longer `parent_pid`.

    A worker whose parent died is re-parented (to init or a subreaper), so ``os.getppid()`` changes;
    the parent's pid is passed in rather than read here, so a worker that starts after its parent
    died exits too. ``os._exit`` skips cleanup on purpose: nothing the worker holds is wanted.
    """
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="spanex-watch-parent", daemon=True).start()


def _ray(tasks: list[dict], workers: int | None) -> Iterator[tuple]:
    try:
        import ray
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("--executor ray needs Ray: pip install 'spanex[dist]'") from e
    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=workers or default_workers(), include_dashboard=False, log_to_driver=False)
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_safe)
        pending = [remote.remote(t) for t in tasks]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)
    finally:
        if started:
            ray.shutdown()


def drain(it: Iterable) -> list:
    return list(it)
