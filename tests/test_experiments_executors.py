"""Executors: serial, local process pool and Ray give identical records for the same seeds."""

import pytest

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
