"""The run store: atomic records, resume after SIGKILL without loss or duplicates, crafted and corrupt
records, temp-file ownership, one writer per output directory, tidy export."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from slow_experiment import slow_module  # noqa: F401 - fixture

from spanex.experiments import store as store_mod
from spanex.experiments.base import make_task
from spanex.experiments.store import (MAX_RECORD_BYTES, CorruptRecord, OutputLocked, Store, atomic_write_json,
                                      export, lock_out, tidy_rows)


def _record(point=None, replicate=0, experiment="e", **extra):
    """A valid record: the fields of its task (key, seeds) plus a run's outputs."""
    task = make_task(experiment, point or {"a": 1}, replicate, 0)
    return {**task, "status": "completed", "metrics": {"m": 1.5}, "ledger": {"T_data": 3}, "trace": [],
            "wall_time": 0.1, **extra}


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ---- atomicity ---------------------------------------------------------------------------------------

def test_write_is_atomic_when_replace_fails(tmp_path, monkeypatch):
    s = Store(tmp_path, "e")
    good = _record({"a": 1})
    s.write(good)

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(store_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        s.write(_record({"a": 2}))
    assert s.finished_keys() == {good["key"]}
    assert not list(s.runs_dir.glob(".*.tmp"))               # the temp file was removed


def test_write_is_atomic_when_serialization_fails(tmp_path):
    s = Store(tmp_path, "e")
    with pytest.raises(TypeError):
        s.write(_record(metrics={"x": object()}))             # not JSON-serializable
    assert s.finished_keys() == set()
    assert not list(s.runs_dir.glob("*"))


def test_store_refuses_to_write_what_it_would_not_read_back(tmp_path, monkeypatch):
    s = Store(tmp_path, "e")
    with pytest.raises(ValueError, match="does not hash to its key"):
        s.write({**_record(), "point": {"a": 2}})             # contents that do not match the key
    with pytest.raises(ValueError, match="has no 'metrics'"):
        s.write({k: v for k, v in _record().items() if k != "metrics"})
    with pytest.raises(ValueError, match="nested more than"):
        s.write(_record(metrics={"deep": _nested(40)}))
    monkeypatch.setattr(store_mod, "MAX_RECORD_BYTES", 300)
    with pytest.raises(ValueError, match="more than the store's limit of 300"):
        s.write(_record(trace=[{"row": i} for i in range(100)]))
    assert not list(s.runs_dir.glob("*"))


def test_atomic_write_json_roundtrip_with_nonfinite(tmp_path):
    p = tmp_path / "a" / "b.json"
    atomic_write_json(p, {"x": float("inf"), "y": (1, 2)})
    assert json.loads(p.read_text()) == {"x": float("inf"), "y": [1, 2]}


def test_error_record_is_cleared_by_success(tmp_path):
    s = Store(tmp_path, "e")
    rec = _record()
    s.write_error(make_task("e", {"a": 1}, 0, 0), "Traceback ... boom")
    assert len(s.errors()) == 1
    s.write(rec)
    assert s.errors() == []


# ---- temporary files belong to their writer ------------------------------------------------------------

def test_temp_files_carry_the_writer_pid_and_are_cleaned_only_for_dead_writers(tmp_path):
    s = Store(tmp_path, "e")
    good = _record()
    s.write(good)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead, mine, theirs = (s.runs_dir / f".k.json.{pid}.0123abcd.tmp" for pid in
                              (_dead_pid(), os.getpid(), live.pid))
        foreign = s.runs_dir / ".k.json.abc.tmp"                    # not named by spanex
        for p in (dead, mine, theirs, foreign):
            p.write_text('{"key": "k", "trunc')                     # a writer killed (or busy) mid-write
        assert s.finished_keys() == {good["key"]}                  # temp files are never records
        assert s.corrupt() == []
        assert s.clean_temp() == 2
        assert sorted(p.name for p in s.runs_dir.glob(".*")) == sorted([theirs.name, foreign.name])
    finally:
        live.kill()
        live.wait()
    assert s.clean_temp() == 1                                     # its writer is gone now
    assert [p.name for p in s.runs_dir.glob(".*")] == [foreign.name]


WRITER = textwrap.dedent('''
    import os, sys, time
    from spanex.experiments import store
    real_fsync = os.fsync
    def slow_fsync(fd):          # hold the temp file open until the test says go
        open(sys.argv[2], "w").close()
        while not os.path.exists(sys.argv[3]):
            time.sleep(0.01)
        real_fsync(fd)
    store.os.fsync = slow_fsync
    store.atomic_write_json(os.path.join(sys.argv[1], "r.json"), {"x": 1})
''')


def test_clean_temp_leaves_another_writers_in_flight_file_alone(tmp_path):
    """Reproducer: a starting run's clean_temp() deleted another run's in-flight temporary file, whose
    os.replace then failed."""
    d = tmp_path / "e" / "runs"
    d.mkdir(parents=True)
    ready, go = tmp_path / "ready", tmp_path / "go"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(d), str(ready), str(go)],
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not ready.exists() and writer.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        assert ready.exists(), writer.stderr.read() if writer.poll() is not None else "writer did not start"
        assert len(list(d.glob(".r.json.*.tmp"))) == 1
        assert Store(tmp_path, "e").clean_temp() == 0
        go.touch()
        assert writer.wait(timeout=60) == 0, writer.stderr.read()
    finally:
        writer.kill()
    assert json.loads((d / "r.json").read_text()) == {"x": 1}
    assert not list(d.glob(".*"))


# ---- crafted and corrupt records ---------------------------------------------------------------------

def _nested(depth: int):
    v = 0
    for _ in range(depth):
        v = [v]
    return v


def _craft(s: Store, kind: str, tmp_path) -> str:
    """Put a crafted file at a record's place; return the reason pattern the store must give."""
    rec = _record({"a": kind})
    p = s.path(rec["key"])
    text = json.dumps({"record_version": 1, **rec})
    s.runs_dir.mkdir(parents=True, exist_ok=True)
    if kind == "truncated":
        p.write_text(text[: len(text) // 2])
        return "not valid JSON"
    if kind == "empty":
        p.write_bytes(b"")
        return "not valid JSON"
    if kind == "not-utf8":
        p.write_bytes(text.encode()[:20] + b"\xff\xfe" + text.encode()[20:])
        return "not UTF-8"
    if kind == "deep-json":
        p.write_text("[" * 100_000 + "]" * 100_000)
        return "nested"
    if kind == "deep-but-parsable":
        p.write_text(json.dumps({**json.loads(text), "metrics": {"m": _nested(200)}}))
        return "nested more than 32"
    if kind == "array":
        p.write_text("[1, 2]")
        return "not a record"
    if kind == "missing-key":
        p.write_text(json.dumps({k: v for k, v in json.loads(text).items() if k != "seeds"}))
        return "has no 'seeds'"
    if kind == "wrong-type":
        p.write_text(json.dumps({**json.loads(text), "replicate": "0"}))
        return "'replicate' of type str"
    if kind == "bool-for-int":
        p.write_text(json.dumps({**json.loads(text), "base_seed": True}))
        return "'base_seed' of type bool"
    if kind == "wrong-ledger":
        p.write_text(json.dumps({**json.loads(text), "ledger": {"T_data": "many"}}))
        return "ledger count"
    if kind == "other-key":                      # a valid record copied under another run's name
        other = _record({"a": "other"})
        p.write_text(json.dumps({"record_version": 1, **other}))
        return "not the key of its file name"
    if kind == "tampered-point":                 # the point edited after the run
        p.write_text(json.dumps({**json.loads(text), "point": {"a": "edited"}}))
        return "does not hash to its key"
    if kind == "tampered-seeds":
        p.write_text(json.dumps({**json.loads(text), "seeds": {"instance": 1, "algorithm": 2}}))
        return "seeds that do not derive"
    if kind == "other-experiment":
        p.write_text(json.dumps({"record_version": 1, **_record({"a": kind}, experiment="f")}))
        return "not the key of its file name"
    if kind == "future-version":
        p.write_text(json.dumps({**json.loads(text), "record_version": 2}))
        return "record_version 2"
    if kind == "huge-int":
        p.write_text(text[:-1] + ', "x": ' + "9" * 5000 + "}")
        return "not valid JSON"
    if kind == "directory":
        p.mkdir()
        return "not a regular file \\(a directory\\)"
    if kind == "dangling-symlink":
        p.symlink_to(tmp_path / "nowhere.json")
        return "symlink to a missing file"
    if kind == "symlink-dev-zero":
        p.symlink_to("/dev/zero")
        return "not a regular file \\(a character device\\)"
    if kind == "symlink-huge-file":
        big = tmp_path / "big.json"
        with open(big, "wb") as f:              # sparse: costs no disk
            f.truncate(MAX_RECORD_BYTES + 1)
        p.symlink_to(big)
        return f"more than the limit of {MAX_RECORD_BYTES}"
    if kind == "fifo":
        os.mkfifo(p)                             # an open() without O_NONBLOCK would wait forever
        return "not a regular file \\(a FIFO\\)"
    raise AssertionError(kind)


CRAFTED = ["truncated", "empty", "not-utf8", "deep-json", "deep-but-parsable", "array", "missing-key", "wrong-type",
           "bool-for-int", "wrong-ledger", "other-key", "tampered-point", "tampered-seeds", "other-experiment",
           "future-version", "huge-int", "directory", "dangling-symlink", "symlink-dev-zero", "symlink-huge-file",
           "fifo"]


def test_a_crafted_record_is_replaced_by_the_rerun(tmp_path):
    s = Store(tmp_path, "e")
    for kind in CRAFTED:
        _craft(s, kind, tmp_path)
    assert len(s.corrupt()) == len(CRAFTED) and s.finished_keys() == set()
    stuck = s.path(_record({"a": "directory"})["key"])
    for kind in CRAFTED:
        rec = _record({"a": kind})
        if kind == "directory":                                    # never deleted: this run's error instead
            with pytest.raises(ValueError, match="which is a directory"):
                s.write(rec)
        else:
            s.write(rec)
    assert [c.path for c in s.corrupt()] == [stuck]
    assert len(s.finished_keys()) == len(CRAFTED) - 1
    assert not any(p.is_symlink() for p in s.runs_dir.iterdir())


def test_error_records_keep_the_end_of_a_long_traceback(tmp_path):
    s = Store(tmp_path, "e")
    s.write_error(make_task("e", {"a": 1}, 0, 0), "x" * 10**7 + "\nValueError: the cause")
    (err,) = s.errors()
    assert err["error"].endswith("ValueError: the cause") and len(err["error"]) < 10**5


@pytest.mark.parametrize("kind", CRAFTED)
def test_crafted_record_is_listed_as_corrupt_and_not_finished(tmp_path, kind):
    s = Store(tmp_path, "e")
    good = _record({"a": "good"})
    s.write(good)
    reason = _craft(s, kind, tmp_path)
    scan = s.scan()
    assert set(scan.records) == {good["key"]}                 # the good record still reads
    assert len(scan.corrupt) == 1
    bad = scan.corrupt[0]
    assert bad.path == s.path(_record({"a": kind})["key"])
    assert re.search(reason, bad.reason), bad.reason
    assert "\n" not in bad.line() and bad.key == bad.path.stem
    assert s.finished_keys() == {good["key"]} and [r["key"] for r in s.load()] == [good["key"]]
    assert not s.has(bad.key)
    with pytest.raises(CorruptRecord):
        s.read(bad.key)
    assert scan.notes()[0].startswith("corrupt: runs/")


def test_corrupt_error_records_and_meta_are_reported(tmp_path):
    s = Store(tmp_path, "e")
    s.errors_dir.mkdir(parents=True)
    (s.errors_dir / "abc.json").write_text('{"key": "abc"}')                 # no 'error'
    (s.errors_dir / "def.json").write_text('{"key": "def", "error": "x"}')   # valid
    scan = s.scan()
    assert list(scan.errors) == ["def"] and [c.path.name for c in scan.corrupt] == ["abc.json"]
    assert s.read_meta() is None
    s.meta_path.write_text('{"experiment": "e", "config": {}, "history": [{"wall_time": "long"}]}')
    with pytest.raises(CorruptRecord, match="history"):
        s.read_meta()
    s.meta_path.write_text('{"experiment": "other", "config": {}}')
    with pytest.raises(CorruptRecord, match="sits in the directory 'e'"):
        s.read_meta()


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


def test_a_record_too_large_to_store_is_that_runs_error(tmp_path, slow_module, monkeypatch):
    from spanex.experiments.runner import run_experiment

    monkeypatch.setattr(store_mod, "MAX_RECORD_BYTES", 2000)   # a record is ~700 bytes + 5 per payload entry
    s = run_experiment(slow_module, tmp_path, quick=True, executor="serial", progress=False,
                       overrides={"payload": 1000})
    assert (s.finished, s.failed) == (0, 8)
    assert "cannot be stored" in Store(tmp_path, "slow").errors()[0]["error"]


def _corrupt_some(runs, names):
    """Damage three finished records in three ways; return their names."""
    a, b, c = names[:3]
    (runs / a).write_bytes((runs / a).read_bytes()[:40])       # truncated
    (runs / b).write_bytes(b"\xff" * 100)                      # garbage, not UTF-8
    (runs / c).unlink()
    (runs / c).symlink_to("/dev/zero")                         # would be read forever
    return {a, b, c}


def test_sigkill_mid_sweep_then_resume_loses_and_duplicates_nothing_and_redoes_corrupt(tmp_path, slow_module):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "spanex.cli", "run", slow_module, "--out", str(out), "--executor", "serial",
           "--no-progress", "--set", "sleep=0.15", "--set", "n_points=15"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    runs = out / "slow" / "runs"
    deadline = time.time() + 60
    while time.time() < deadline and (not runs.exists() or len(list(runs.glob("*.json"))) < 6):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = {p.name: p.read_bytes() for p in runs.glob("*.json")}
    assert 6 <= len(done) < 30, "the kill must land mid-sweep"
    for b in done.values():                                   # every record on disk is complete
        json.loads(b)
    damaged = _corrupt_some(runs, sorted(done))
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    n_good = len(done) - len(damaged)
    assert f"({n_good} already finished, {30 - n_good} run now, 0 failed; 3 corrupt records run again)" in res.stdout
    assert res.stderr.count("corrupt: runs/") == 3            # each damaged record is named
    final = {p.name: p.read_bytes() for p in runs.glob("*.json")}
    assert len(final) == 30
    assert all(final[k] == v for k, v in done.items() if k not in damaged)   # finished runs untouched
    s = Store(out, "slow")
    assert s.corrupt() == [] and len(s.finished_keys()) == 30
    for name in damaged:                                      # redone: the same record as before the damage
        redone, before = json.loads(final[name]), json.loads(done[name])
        assert not (runs / name).is_symlink()
        assert {k: v for k, v in redone.items() if k not in ("timing", "wall_time")} == \
               {k: v for k, v in before.items() if k not in ("timing", "wall_time")}
    keys = [json.loads(b)["key"] for b in final.values()]
    assert len(set(keys)) == 30                                # no duplicates
    assert not list(runs.glob(".*"))


# ---- the report on a damaged store -----------------------------------------------------------------------

def test_report_renders_from_good_records_and_lists_corrupt_ones(tmp_path, slow_module):
    from spanex.experiments.report import write_report
    from spanex.experiments.runner import run_experiment

    run_experiment(slow_module, tmp_path, executor="serial", progress=False)
    runs = tmp_path / "slow" / "runs"
    damaged = _corrupt_some(runs, sorted(p.name for p in runs.glob("*.json")))
    lines = []
    rep = write_report(tmp_path, export_tables=False, echo=lines.append)
    (exp,) = rep.experiments
    assert (exp.n_expected, exp.n_finished) == (20, 17)
    # the slope of y = 2 x^1.5 e^{0.01 z} from the 17 good runs: standard error ~0.01 / sqrt(sum (log x - mean)^2)
    # ~ 0.004, so 0.05 is > 10 standard errors
    assert exp.verdicts[0].n_runs == 17 and exp.verdicts[0].measured == pytest.approx(1.5, abs=0.05)
    text = rep.path.read_text()
    for name in damaged:
        assert name in text and any(name in ln for ln in lines)
    # a resume redoes them, and the report is whole again
    s = run_experiment(slow_module, tmp_path, executor="serial", progress=False)
    assert (s.skipped, s.finished, s.redone) == (17, 3, 3)
    rep = write_report(tmp_path, export_tables=False, echo=lambda _: None)
    assert rep.experiments[0].n_finished == 20 and "corrupt" not in rep.path.read_text()


def test_experiment_json_cannot_import_modules(tmp_path, slow_module):
    """Reproducer: experiment.json's spec drove importlib ('this:s' imported `this`; 'collections:OrderedDict'
    was instantiated before the type check). Stored names resolve only through the registry."""
    from spanex.experiments.report import write_report
    from spanex.experiments.runner import run_experiment

    run_experiment(slow_module, tmp_path / "res", quick=True, executor="serial", progress=False)
    for name, spec in (("evil", "this:s"), ("collections:OrderedDict", "collections:OrderedDict")):
        d = tmp_path / "res" / name
        d.mkdir()
        (d / "experiment.json").write_text(json.dumps({"experiment": name, "spec": spec, "config": {}}))
    (tmp_path / "res" / "broken").mkdir()
    (tmp_path / "res" / "broken" / "experiment.json").write_text('{"experiment": "bro')
    sys.modules.pop("this", None)
    rep = write_report(tmp_path / "res", export_tables=False, echo=lambda _: None)
    assert "this" not in sys.modules
    by = {e.name: e for e in rep.experiments}
    assert by["slow"].n_finished == 8                         # loaded from the command line: reported
    assert "not a registered experiment" in by["evil"].problems[0]
    assert "not a registered experiment" in by["collections:OrderedDict"].problems[0]
    assert "not valid JSON" in by["broken"].problems[0]


# ---- one writer per output directory -----------------------------------------------------------------------

HOLDER = textwrap.dedent('''
    import sys, time
    from spanex.experiments.store import lock_out
    with lock_out(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
''')


def test_a_second_writer_is_refused_at_once_and_the_lock_dies_with_its_holder(tmp_path, slow_module):
    """Reproducer: two runs into one --out both did all the work."""
    from spanex.cli import main
    from spanex.experiments.runner import run_experiment

    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        lock = re.escape(f"lock '{out / '.spanex.lock'}'")
        with pytest.raises(OutputLocked, match=rf"pid {holder.pid} .*{lock}"):
            run_experiment(slow_module, out, quick=True, executor="serial", progress=False)
        assert not (out / "slow").exists()                      # refused before writing anything
        t0 = time.perf_counter()
        code = main(["run", slow_module, "--out", str(out), "--executor", "serial", "--no-progress"])
        assert code == 2 and time.perf_counter() - t0 < 30       # at once, not after the sweep
    finally:
        holder.send_signal(signal.SIGKILL)                      # the kernel releases a dead holder's lock
        holder.wait()
    s = run_experiment(slow_module, out, quick=True, executor="serial", progress=False)
    assert s.finished == 8


def test_lock_is_reentrant_in_its_thread_and_refused_to_other_threads(tmp_path):
    errors = []

    def other():
        try:
            with lock_out(tmp_path):
                pass
        except OutputLocked as e:
            errors.append(str(e))

    with lock_out(tmp_path):
        with lock_out(tmp_path):                                  # `run all` holds it around each run
            t = threading.Thread(target=other)
            t.start()
            t.join()
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 2 and "another thread" in errors[0]
    t = threading.Thread(target=other)                            # released: free for anyone
    t.start()
    t.join()
    assert len(errors) == 2


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
