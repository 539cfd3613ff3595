"""Executors: serial, local process pool and Ray give identical records for the same seeds; local
workers do not outlive their parent."""

import os
import signal
import subprocess
import sys
import time

import pytest
from slow_experiment import slow_module  # noqa: F401 - fixture

from spanex.experiments import registry
from spanex.experiments.executors import execute_task, run_tasks
from spanex.experiments.store import Store

# a real experiment, cut down to 4 small runs (2 coverage points x 2 seeds)
OVERRIDES = {"recipe_seeds": 0, "base_tilts": [0.0, 1.0], "n_seeds": 2, "n_prompts": 2, "n_responses": 40,
             "T_exp": 50, "T_span": 20}
VOLATILE = ("timing", "wall_time")


def _tasks():
    exp = registry.get("spanner-scaling")
    cfg = exp.make_config(True, OVERRIDES)
    return [{**t, "spec": "spanner-scaling"} for t in exp.tasks(cfg)]


def _comparable(rec):
    r = {k: v for k, v in rec.items() if k not in VOLATILE}
    r["metrics"] = {k: v for k, v in rec["metrics"].items() if "wall_time" not in k}
    return r


def _run(executor, workers=None):
    out = {}
    for task, rec, err in run_tasks(_tasks(), executor, workers):
        assert err is None, err
        out[task["key"]] = _comparable(rec)
    return out


@pytest.fixture(scope="module")
def serial_records():
    return _run("serial")


def test_serial_is_reproducible(serial_records):
    again = {t["key"]: _comparable(execute_task(t)) for t in _tasks()}
    assert again == serial_records
    assert len(serial_records) == 4


def test_local_pool_matches_serial(serial_records):
    assert _run("local", 2) == serial_records


def test_different_seeds_give_different_records(serial_records):
    recs = list(serial_records.values())
    assert len({r["seeds"]["algorithm"] for r in recs}) == 4
    assert len({r["metrics"]["T_comp"] for r in recs}) > 1


@pytest.mark.ray
def test_ray_matches_serial(serial_records):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert _run("ray", 2) == serial_records
    finally:
        ray.shutdown()


def test_unknown_executor_is_refused():
    with pytest.raises(ValueError, match="executor must be one of"):
        list(run_tasks(_tasks(), "dask"))


def test_runner_writes_one_record_per_task(tmp_path, serial_records):
    from spanex.experiments.runner import run_experiment

    s = run_experiment("spanner-scaling", tmp_path, quick=True, overrides=OVERRIDES, executor="serial",
                       progress=False)
    assert s.finished == 4
    stored = {r["key"]: _comparable({k: v for k, v in r.items() if k != "record_version"})
              for r in Store(tmp_path, "spanner-scaling").load()}
    assert stored == serial_records


# ---- workers exit with their parent ------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    """The live child processes of `pid`, from /proc (a zombie has finished: it is not counted)."""
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    state, ppid = f.read().rsplit(")", 1)[1].split()[:2]   # fields after the command name
            except (OSError, ValueError):
                continue
            if int(ppid) == pid and state != "Z":
                kids.append(int(d))
    return kids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads the process tree from /proc")
def test_workers_and_resource_tracker_exit_when_the_parent_is_killed(tmp_path, slow_module):
    """Reproducer: after kill -9 of `spanex run`, its 2 spawn workers and the resource tracker stayed alive."""
    from spanex.experiments.executors import PARENT_POLL_SECONDS

    cmd = [sys.executable, "-m", "spanex.cli", "run", slow_module, "--out", str(tmp_path), "--executor", "local",
           "--workers", "2", "--no-progress", "--set", "sleep=120", "--set", "n_points=2", "--set", "n_seeds=1"]
    parent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(kids) < 3:        # 2 workers + the resource tracker
            time.sleep(0.05)
            kids = _children(parent.pid)
        assert len(kids) == 3, kids
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        # a worker notices within PARENT_POLL_SECONDS; allow for a loaded machine
        deadline = time.time() + 20 * PARENT_POLL_SECONDS + 10
        while time.time() < deadline and any(_alive(k) for k in kids):
            time.sleep(0.05)
        assert [k for k in kids if _alive(k)] == []
    finally:
        parent.kill()
        for k in kids:                                          # never leave an orphan behind, even on failure
            if _alive(k):
                os.kill(k, signal.SIGKILL)
