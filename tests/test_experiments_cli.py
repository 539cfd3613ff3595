"""`spanex run | report | list`: exit codes, clear errors, config overrides, end-to-end quick runs."""

import time

import pytest
from slow_experiment import slow_module  # noqa: F401 - fixture

from spanex.cli import main
from spanex.experiments import registry

SMALL = ["--set", "recipe_seeds=0", "--set", "base_tilts=[0.0, 1.0]", "--set", "n_seeds=1",
         "--set", "n_prompts=1", "--set", "n_responses=30", "--set", "T_exp=50", "--set", "T_span=20"]


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in registry.names():
        assert name in out


@pytest.mark.parametrize("argv, message", [
    (["run", "no-such-experiment"], "unknown experiment 'no-such-experiment'"),
    (["run", "spanner-scaling", "--set", "bogus=1"], "unknown config key(s) ['bogus']"),
    (["run", "spanner-scaling", "--set", "n_seeds=0"], "n_seeds must be in [1, 10000]"),
    (["run", "spanner-scaling", "--set", "beta=-1"], "beta must be in"),
    (["run", "spanner-scaling", "--set", "base_tilts=[1.0]"], "base_tilts needs at least 2 distinct values"),
    (["run", "spanner-scaling", "--set", "novalue"], "--set expects KEY=VALUE"),
    (["run", "spanner-scaling", "--workers", "0"], "--workers must be >= 1"),
    (["run", "spanner-scaling", "--config", "/nonexistent.toml"], "does not exist"),
    (["run", "all", "--set", "no-such.n_seeds=2"], "'no-such' is not an experiment"),
    # a key prefixed by another experiment's name is not silently ignored
    (["run", "spanner-scaling", "--set", "data-efficiency.n_seeds=2"], "'data-efficiency' is not being run"),
    (["run", "spanner-scaling", "--set", "n_seeds=[1,"], "is not a valid TOML value"),
    (["run", "spanner-scaling", "--set", "n seeds=1"], "KEY a name or PREFIX.NAME"),
    (["run", "spanner-scaling", "--set", "n_seeds=1\nbase_seed = 2"], "holds more than one value"),
    (["run", "spanner-scaling", "--set", "n_seeds=1979-05-27"], "holds a date"),
    (["run", "spanner-scaling", "--set", "eps_values=" + "[" * 3000 + "]" * 3000], "nested too deeply"),
    (["run", "spanner-scaling", "--set", "eps_values=" + "[" * 40 + "0.1" + "]" * 40], "nested more than 32"),
    (["run", "spanner-scaling", "--config", "/dev/null"], "'/dev/null' is not a regular file (a character device)"),
    (["run", "spanner-scaling", "--config", "/"], "is not a regular file (a directory)"),
    (["run", "no_such_module_xyz:Exp"], "no module named 'no_such_module_xyz'"),
    (["run", "spanex.experiments.base:NoSuchClass"], "has no attribute 'NoSuchClass'"),
    (["run", "collections:OrderedDict"], "is not a spanex Experiment (got class OrderedDict)"),
    (["run", "not a spec:"], "must look like 'package.module:ClassName'"),
    (["report", "/tmp", "--experiment", "no_such_module_xyz:Exp"], "no module named"),
])
def test_bad_arguments_exit_2_with_clear_message(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err                # one line


def test_bad_out_exits_2_before_running(tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("x")
    for out, message in ((f, "exists and is not a directory"),
                         (f / "sub", "cannot be created: a part of its path is a file"),
                         ("/proc/spanex-no/such", "cannot be created")):
        assert main(["run", "spanner-scaling", "--out", str(out), "--executor", "serial", "--no-progress",
                     *SMALL]) == 2
        err = capsys.readouterr().err
        assert f"--out '{out}' {message}" in err and err.count("\n") == 1, err
    assert f.read_text() == "x"


def test_spec_class_is_type_checked_before_it_is_instantiated(tmp_path, monkeypatch, capsys):
    """Reproducer: 'collections:OrderedDict' was instantiated before the type check."""
    mark = tmp_path / "instantiated"
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "notexp.py").write_text(f"class NotExp:\n    def __init__(self):\n        open({str(mark)!r}, 'w')\n")
    monkeypatch.syspath_prepend(str(mods))
    assert main(["run", "notexp:NotExp", "--out", str(tmp_path / "o")]) == 2
    assert "is not a spanex Experiment (got class NotExp)" in capsys.readouterr().err
    assert not mark.exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("content, message", [
    ("x = " + "[" * 3000 + "]" * 3000, "nested too deeply"),
    ("x = " + "[" * 40 + "1" + "]" * 40, "nested more than 32"),
    ("n_seeds = 1979-05-27", "holds a date"),
    (b"n_seeds = '\xff'", "is not UTF-8 text"),
    ("# padding\n" * 200_000, "more than the limit of 1048576"),
])
def test_bad_config_files_exit_2(tmp_path, capsys, content, message):
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["run", "spanner-scaling", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_config_tables_of_experiments_not_run_are_allowed(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[data-efficiency]\nn_seeds = 2\n[spanner-scaling]\nn_seeds = 1\nrecipe_seeds = 0\n"
                   "base_tilts = [0.0, 1.0]\nn_prompts = 1\nn_responses = 30\nT_exp = 100\nT_span = 20\n")
    assert main(["run", "spanner-scaling", "--config", str(cfg), "--out", str(tmp_path / "o"), "--executor",
                 "serial", "--no-progress"]) == 0
    assert "2 runs (0 already finished, 2 run now, 0 failed)" in capsys.readouterr().out


def test_report_loads_a_custom_experiment_only_when_asked(tmp_path, slow_module, capsys, monkeypatch):
    from spanex.experiments import registry

    out = tmp_path / "o"
    assert main(["run", slow_module, "--quick", "--out", str(out), "--executor", "serial", "--no-progress"]) == 0
    monkeypatch.setattr(registry, "_LOADED", {})                 # a fresh process: only the registry is known
    assert main(["report", str(out), "--no-export"]) == 0
    assert "not a registered experiment" in capsys.readouterr().out
    assert main(["report", str(out), "--no-export", "--experiment", slow_module]) == 0
    assert "[slow] y ∝ x^a: measured" in capsys.readouterr().out


def test_argparse_choices_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "spanner-scaling", "--executor", "dask"])
    assert e.value.code == 2
    assert "invalid choice: 'dask'" in capsys.readouterr().err


def test_bad_toml_and_yaml_config(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("n_seeds = = 3")
    assert main(["run", "spanner-scaling", "--config", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    y = tmp_path / "c.yaml"
    y.write_text("n_seeds: 2\n")
    try:
        import yaml  # noqa: F401
    except ModuleNotFoundError:
        assert main(["run", "spanner-scaling", "--config", str(y)]) == 2
        assert "use a TOML file" in capsys.readouterr().err


def test_report_on_missing_directory_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no experiment results" in capsys.readouterr().err


def test_run_with_toml_config_then_report(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("n_seeds = 2\n[spanner-scaling]\nn_responses = 30\nn_prompts = 1\nrecipe_seeds = 0\n"
                   "base_tilts = [0.0, 1.5]\nT_exp = 100\n")
    out = tmp_path / "res"
    assert main(["run", "spanner-scaling", "--config", str(cfg), "--out", str(out), "--executor", "serial",
                 "--no-progress", "--quick"]) == 0
    assert "4 runs (0 already finished, 4 run now, 0 failed)" in capsys.readouterr().out
    # --set overrides the file; a changed config is a new sweep point set
    assert main(["run", "spanner-scaling", "--config", str(cfg), "--set", "base_tilts=[0.0, 1.5]", "--out", str(out),
                 "--executor", "serial", "--no-progress", "--quick"]) == 0
    assert "(4 already finished, 0 run now" in capsys.readouterr().out
    assert main(["report", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "## spanner-scaling" in text and "| spanner-scaling | T_comp to first reach eps" in text
    assert (out / "spanner-scaling.png").stat().st_size > 1000
    assert (out / "spanner-scaling" / "records.csv").exists()
    assert (out / "spanner-scaling" / "records.parquet").exists()


def test_failed_runs_exit_1(tmp_path, capsys, monkeypatch):
    from spanex.experiments import spanner_scaling

    def boom(self, point, seeds):
        raise RuntimeError("kaput")

    monkeypatch.setattr(spanner_scaling.SpannerScaling, "run_one", boom)
    assert main(["run", "spanner-scaling", "--out", str(tmp_path), "--executor", "serial", "--no-progress",
                 *SMALL]) == 1
    err = capsys.readouterr().err
    assert "2 run(s) failed" in err


@pytest.mark.slow
def test_all_quick_experiments_end_to_end(tmp_path, capsys):
    """Every experiment's --quick version through the CLI, then `spanex report` (CI runs this)."""
    out = tmp_path / "quick"
    t0 = time.perf_counter()
    assert main(["run", "all", "--quick", "--out", str(out), "--workers", "2", "--no-progress"]) == 0
    assert main(["report", str(out)]) == 0
    elapsed = time.perf_counter() - t0
    text = (out / "report.md").read_text()
    for name in registry.names():
        exp = registry.get(name)
        n_tasks = len(exp.tasks(exp.make_config(True)))
        assert len(list((out / name / "runs").glob("*.json"))) == n_tasks, name
        assert f"## {name}" in text
        assert (out / f"{name}.png").exists()
    assert "analysis failed" not in text and "plot failed" not in text
    print(f"all quick experiments + report: {elapsed:.0f} s")


def test_verdict_table_escapes_pipes():
    import re

    from spanex.experiments.analysis import missing_verdict
    from spanex.experiments.report import verdict_table

    row = verdict_table([missing_verdict("e", "P(T_data < |Y|/8 | ok)", "n | m")]).splitlines()[2]
    assert len(re.findall(r"(?<!\\)\|", row)) == 10         # 9 cells -> 10 unescaped separators
