"""`spanex run | report | list`: exit codes, clear errors, config overrides, end-to-end quick runs."""

import time

import pytest

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
])
def test_bad_arguments_exit_2_with_clear_message(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


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
