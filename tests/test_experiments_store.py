"""The run store: atomic records, resume after SIGKILL without loss or duplicates, tidy export."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from spanex.experiments import store as store_mod
from spanex.experiments.base import make_task
from spanex.experiments.store import Store, atomic_write_json, export, tidy_rows

SLOW_EXPERIMENT = textwrap.dedent('''
    """A test experiment whose runs sleep, so that a sweep can be killed midway."""
    import time
    from dataclasses import dataclass

    import numpy as np

    from spanex.experiments.analysis import fit_slope, slope_verdict
    from spanex.experiments.base import BaseConfig, Experiment, RunOutput


    @dataclass(frozen=True)
    class Cfg(BaseConfig):
        n_seeds: int = 2
        n_points: int = 10
        sleep: float = 0.0
        fail_at: int = -1


    class Slow(Experiment):
        name = "slow"
        title = "test experiment"
        description = "y = 2 x^1.5 with noise"
        Config = Cfg

        def quick_config(self):
            return Cfg(n_points=4)

        def points(self, cfg):
            return [{"i": i, "sleep": cfg.sleep, "fail_at": cfg.fail_at} for i in range(cfg.n_points)]

        def run_one(self, point, seeds):
            time.sleep(point["sleep"])
            if point["i"] == point["fail_at"]:
                raise RuntimeError("planned failure")
            rng = np.random.default_rng(seeds.algorithm)
            x = float(point["i"] + 1)
            return RunOutput(metrics={"x": x, "y": 2 * x ** 1.5 * float(np.exp(0.01 * rng.standard_normal())),
                                      "instance_draw": float(np.random.default_rng(seeds.instance).random())},
                             ledger={"T_data": point["i"]}, trace=[{"round": 1}])

        def analyse(self, cfg, df):
            return [slope_verdict(self.name, "y ∝ x^a", fit_slope(df["x"], df["y"], df["replicate"]), 1.5, 0.1)]

        def plot(self, cfg, df, path):
            import matplotlib.pyplot as plt
            fig, ax = plt.subplots()
            ax.plot(df["x"], df["y"], "o")
            fig.savefig(path)
            plt.close(fig)
''')


@pytest.fixture
def slow_module(tmp_path, monkeypatch):
    d = tmp_path / "mods"
    d.mkdir()
    (d / "slowexp.py").write_text(SLOW_EXPERIMENT)
    monkeypatch.syspath_prepend(str(d))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(d), os.environ.get("PYTHONPATH", "")]))
    yield "slowexp:Slow"
    sys.modules.pop("slowexp", None)


def _record(key="k1", **extra):
    return {"key": key, "experiment": "e", "point": {"a": 1}, "replicate": 0, "base_seed": 0,
            "seeds": {"instance": 1, "algorithm": 2}, "status": "completed", "metrics": {"m": 1.5},
            "ledger": {"T_data": 3}, "trace": [], "wall_time": 0.1, **extra}


# ---- atomicity ---------------------------------------------------------------------------------------

def test_write_is_atomic_when_replace_fails(tmp_path, monkeypatch):
    s = Store(tmp_path, "e")
    s.write(_record("good"))

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(store_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        s.write(_record("bad"))
    assert s.finished_keys() == {"good"}
    assert not list(s.runs_dir.glob(".*.tmp"))               # the temp file was removed


def test_write_is_atomic_when_serialization_fails(tmp_path):
    s = Store(tmp_path, "e")
    with pytest.raises(TypeError):
        s.write(_record("bad", metrics={"x": object()}))     # not JSON-serializable mid-write
    assert s.finished_keys() == set()
    assert not list(s.runs_dir.glob("*"))


def test_leftover_temp_files_are_ignored_and_cleaned(tmp_path):
    s = Store(tmp_path, "e")
    s.write(_record("k1"))
    (s.runs_dir / ".k2.json.abc.tmp").write_text('{"key": "k2", "trunc')   # a writer killed mid-write
    assert s.finished_keys() == {"k1"}
    assert [r["key"] for r in s.load()] == ["k1"]
    assert s.clean_temp() == 1
    assert not list(s.runs_dir.glob(".*"))


def test_atomic_write_json_roundtrip_with_nonfinite(tmp_path):
    p = tmp_path / "a" / "b.json"
    atomic_write_json(p, {"x": float("inf"), "y": (1, 2)})
    assert json.loads(p.read_text()) == {"x": float("inf"), "y": [1, 2]}


def test_error_record_is_cleared_by_success(tmp_path):
    s = Store(tmp_path, "e")
    task = make_task("e", {"a": 1}, 0, 0)
    s.write_error(task, "Traceback ... boom")
    assert len(s.errors()) == 1
    s.write({**_record(task["key"])})
    assert s.errors() == []


# ---- keys --------------------------------------------------------------------------------------------

def test_keys_are_stable_and_distinguish_points_and_seeds():
    a = make_task("e", {"x": 1, "y": [1, 2]}, 0, 0)
    assert a == make_task("e", {"y": (1, 2), "x": 1}, 0, 0)          # order and tuple/list do not matter
    keys = {make_task("e", {"x": 1}, r, b)["key"] for r in range(3) for b in range(2)}
    assert len(keys) == 6
    assert make_task("e", {"x": 1}, 0, 0)["key"] != make_task("f", {"x": 1}, 0, 0)["key"]
    # the instance seed is shared across points of a replicate, the algorithm seed is not
    t1, t2 = make_task("e", {"x": 1}, 0, 0), make_task("e", {"x": 2}, 0, 0)
    assert t1["seeds"]["instance"] == t2["seeds"]["instance"]
    assert t1["seeds"]["algorithm"] != t2["seeds"]["algorithm"]


# ---- resume --------------------------------------------------------------------------------------------

def test_rerun_skips_finished_runs(tmp_path, slow_module):
    from spanex.experiments.runner import run_experiment

    s1 = run_experiment(slow_module, tmp_path, executor="serial", progress=False)
    assert (s1.total, s1.finished, s1.skipped) == (20, 20, 0)
    before = {p.name: p.read_bytes() for p in (tmp_path / "slow" / "runs").glob("*.json")}
    s2 = run_experiment(slow_module, tmp_path, executor="serial", progress=False)
    assert (s2.finished, s2.skipped) == (0, 20)
    after = {p.name: p.read_bytes() for p in (tmp_path / "slow" / "runs").glob("*.json")}
    assert before == after


def test_failed_runs_are_recorded_and_retried(tmp_path, slow_module):
    from spanex.experiments.runner import run_experiment

    s = run_experiment(slow_module, tmp_path, executor="serial", progress=False, overrides={"fail_at": 3})
    assert s.failed == 2 and s.finished == 18                  # point 3 fails for both seeds
    st = Store(tmp_path, "slow")
    assert len(st.errors()) == 2 and "planned failure" in st.errors()[0]["error"]


def test_sigkill_mid_sweep_then_resume_loses_and_duplicates_nothing(tmp_path, slow_module):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "spanex.cli", "run", slow_module, "--out", str(out), "--executor", "serial",
           "--no-progress", "--set", "sleep=0.15", "--set", "n_points=15"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    runs = out / "slow" / "runs"
    deadline = time.time() + 60
    while time.time() < deadline and (not runs.exists() or len(list(runs.glob("*.json"))) < 4):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = {p.name: p.read_bytes() for p in runs.glob("*.json")}
    assert 4 <= len(done) < 30, "the kill must land mid-sweep"
    for b in done.values():                                   # every record on disk is complete
        json.loads(b)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"({len(done)} already finished, {30 - len(done)} run now" in res.stdout
    final = {p.name: p.read_bytes() for p in runs.glob("*.json")}
    assert len(final) == 30
    assert all(final[k] == v for k, v in done.items())        # finished runs untouched
    keys = [json.loads(b)["key"] for b in final.values()]
    assert len(set(keys)) == 30                                # no duplicates
    assert not list(runs.glob(".*"))


# ---- export --------------------------------------------------------------------------------------------

def test_tidy_export_csv_and_parquet(tmp_path, slow_module):
    import pandas as pd

    from spanex.experiments.runner import run_experiment

    run_experiment(slow_module, tmp_path, quick=True, executor="serial", progress=False)
    recs = Store(tmp_path, "slow").load()
    rows = tidy_rows(recs)
    assert len(rows) == 8 and {"key", "replicate", "i", "x", "y", "ledger.T_data", "seed_algorithm"} <= set(rows[0])
    paths = export(recs, tmp_path / "t")
    a = pd.read_csv(paths[0]).sort_values("key").reset_index(drop=True)
    b = pd.read_parquet(paths[1]).sort_values("key").reset_index(drop=True)
    assert len(a) == len(b) == 8
    assert list(a["y"]) == pytest.approx(list(b["y"]))
    with pytest.raises(ValueError, match="format"):
        export(recs, tmp_path / "t", formats=("xlsx",))
