"""spanex.compare (spanex.comparison): peers on one problem, budget and seeds; the tidy table; the CLI."""

import csv
import io

import numpy as np
import pytest

import spanex
from spanex.algorithms.best_of_n import BestOfN
from spanex.algorithms.exhaustive_design import ExhaustiveDesign
from spanex.algorithms.online_dpo import OnlineDPO
from spanex.algorithms.xpo import XPO
from spanex.cli import main as cli_main
from spanex.comparison import Table, compare
from spanex.core import Budget
from spanex.instances.needle import needle


@pytest.fixture(scope="module")
def small():
    return needle(N=16, c=1.0, beta=0.5, seed=1)


def test_one_row_per_algorithm_and_seed_matching_direct_runs(small):
    algs = {"dpo": OnlineDPO(T=20, strong_oracle="exact"), "bon": BestOfN(n=3)}
    t = compare(small, algs, seeds=[3, 4], n_inference=5, oracle_hints=True)
    assert len(t) == 4 and [(r["algorithm"], r["seed"]) for r in t] == [("dpo", 3), ("dpo", 4), ("bon", 3), ("bon", 4)]
    direct = OnlineDPO(T=20, strong_oracle="exact").run(small, seed=3, oracle_hints=True)
    row = t.rows[0]
    assert row["T_data"] == direct.ledger.reward_queries and row["T_comp"] == direct.ledger.sample_calls
    assert row["T_comp.strong"] == 40 and row["cost_model"] == "exact"
    assert row["hints"] == "strong" and t.rows[2]["hints"] == "-"   # the idealized oracle is a hint, labelled
    assert row["subopt"] == pytest.approx(spanex.evaluate(direct.policy, small).suboptimality)
    assert row["eval"] == "exact" and row["status"] == "completed"
    assert t.meta["C_cov"] == pytest.approx(small.exact.C_cov(small.beta))
    # Best-of-3: nothing at training time, 3 weak calls and 3 reward queries per output sample
    bon = t.rows[2]
    assert bon["T_data"] == 0 and bon["T_comp"] == 0
    assert bon["inf_T_comp"] == 3 and bon["inf_T_data"] == 3
    # a proper policy with the exact strong oracle: 1 strong call per sample, no feedback
    assert row["inf_T_comp"] == 1 and row["inf_T_data"] == 0


def test_the_exact_strong_oracle_needs_an_explicit_opt_in(small):
    t = compare(small, {"dpo": OnlineDPO(T=5, strong_oracle="exact")}, seeds=1, n_inference=0)
    assert t.rows[0]["status"] == "error" and "oracle_hints" in t.rows[0]["error"]


def test_same_budget_for_everyone(small):
    t = compare(small, ["online_dpo", "xpo", "passive_regression"], Budget(max_reward_queries=30), seeds=2,
                n_inference=0)
    for r in t:
        assert r["T_data"] <= 30 and r["status"] == "budget_exhausted"
    assert t.meta["budget"]["max_reward_queries"] == 30


def test_strong_oracle_override_is_reported(small):
    t = compare(small, {"dpo": OnlineDPO(T=10), "xpo": XPO(T=5, n_mean=2), "bon": BestOfN(n=2)}, seeds=1,
                strong_oracle="weak", n_inference=3)
    by = {r["algorithm"]: r for r in t}
    assert by["dpo"]["cost_model"] == "weak" and by["dpo"]["T_comp.strong"] == 0 and by["dpo"]["T_comp.weak"] > 0
    assert by["xpo"]["cost_model"] == "weak" and by["xpo"]["T_comp.strong"] == 0
    assert by["bon"]["cost_model"] == "-"
    assert t.meta["strong_oracle"] == "weak"


def test_reproducible(small):
    a = compare(small, ["online_dpo", "best_of_n"], seeds=1, n_inference=4)
    b = compare(small, ["online_dpo", "best_of_n"], seeds=1, n_inference=4)
    drop = ("wall_time", "eval_time")
    assert [{k: v for k, v in r.items() if k not in drop} for r in a] == \
           [{k: v for k, v in r.items() if k not in drop} for r in b]


def test_errors_are_rows_unless_asked_to_raise():
    from spanex.instances.max_k_dnf import max_k_dnf

    p = max_k_dnf(n=22, exact_max_n=20)
    t = compare(p, {"ed": ExhaustiveDesign(T=4), "bon": BestOfN(n=2)}, seeds=1, n_inference=2, n_mc=5)
    by = {r["algorithm"]: r for r in t}
    assert by["ed"]["status"] == "error" and "enumerable" in by["ed"]["error"]
    assert by["bon"]["status"] == "completed" and by["bon"]["eval"] == "reward-mc"
    with pytest.raises(ValueError, match="enumerable"):
        compare(p, {"ed": ExhaustiveDesign(T=4)}, seeds=1, catch_errors=False)


def test_table_conveniences(small):
    t = compare(small, ["best_of_n", "online_dpo"], seeds=2, n_inference=2)
    text = t.to_csv()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 4 and rows[0]["algorithm"] == "best_of_n"
    s = t.summary()
    assert len(s) == 2 and s.rows[0]["n"] == 2
    dpo = t.where(algorithm="online_dpo")
    assert s.rows[1]["subopt"] == pytest.approx(np.mean(dpo.column("subopt")))
    out = t.format()
    assert "online_dpo" in out and "T_data" in out and "seed" in out
    assert t.to_pandas().shape[0] == 4


def test_spanex_compare_is_a_plain_function(small):
    import spanex.comparison
    import spanex.comparison.cli  # noqa: F401 - importing the package and its CLI must not shadow the function

    from spanex import compare as fn

    assert fn is spanex.compare is spanex.comparison.compare is compare
    assert type(spanex.comparison) is type(spanex)                 # an ordinary module, no callable-module trick
    t = spanex.compare(small, ["best_of_n"], seeds=1, n_inference=0)
    assert isinstance(t, Table) and len(t) == 1


@pytest.mark.parametrize("exc", [MemoryError("Unable to allocate 253 GiB"), TypeError("bad\ntype"),
                                 OverflowError("math range error"), ZeroDivisionError("float division by zero")])
def test_every_run_error_is_a_row(small, exc, monkeypatch):
    def boom(self, problem, seed=None, budget=None, **kw):
        raise exc

    monkeypatch.setattr(OnlineDPO, "run", boom)
    t = compare(small, {"dpo": OnlineDPO(T=5), "bon": BestOfN(n=2)}, seeds=1, n_inference=0)
    by = {r["algorithm"]: r for r in t}
    assert by["dpo"]["status"] == "error" and by["bon"]["status"] == "completed"
    assert by["dpo"]["error"] == f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    with pytest.raises(type(exc)):
        compare(small, {"dpo": OnlineDPO(T=5)}, seeds=1, catch_errors=False)


@pytest.mark.parametrize("kw, err", [
    (dict(algorithms=[]), ValueError), (dict(algorithms=["nope"]), ValueError),
    (dict(algorithms={"a": 3}), TypeError), (dict(seeds=0), ValueError), (dict(seeds=[]), ValueError),
    (dict(seeds=[-1]), ValueError), (dict(seeds=10**9), ValueError), (dict(seeds=[0] * 10_001), ValueError), (dict(n_inference=-1), ValueError), (dict(n_mc=0), ValueError),
    (dict(strong_oracle="cheap"), ValueError), (dict(budget=5), TypeError),
])
def test_bad_inputs(small, kw, err):
    args = dict(algorithms=["best_of_n"], seeds=1)
    args.update(kw)
    with pytest.raises(err):
        compare(small, **args)


def test_problem_type_checked():
    with pytest.raises(TypeError, match="Problem"):
        compare("needle", ["best_of_n"])


def test_cli_prints_the_table(capsys, tmp_path):
    out_csv = tmp_path / "t.csv"
    code = cli_main(["compare", "--instance", "needle", "--set", "N=16", "--set", "beta=0.5",
                     "--algorithms", "best_of_n,online_dpo", "--param", "online_dpo.T=10", "--param", "best_of_n.n=3",
                     "--seeds", "2", "--max-reward-queries", "12", "--n-inference", "2", "--csv", str(out_csv)])
    assert code == 0
    out = capsys.readouterr().out
    assert "problem=needle" in out and "C_cov=" in out and "max_reward_queries=12" in out
    assert out.count("online_dpo") == 2 and out.count("best_of_n") == 2
    assert len(out_csv.read_text().strip().splitlines()) == 5


def test_cli_summary_and_preferences(capsys):
    code = cli_main(["compare", "--set", "N=16", "--algorithms", "online_dpo", "--param", "online_dpo.T=5",
                     "--seeds", "0,1", "--feedback", "preference", "--summary", "--n-inference", "0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "needle-pref" in out and out.count("online_dpo") == 1


def test_cli_set_targets_algorithms_like_param(capsys):
    a = ["compare", "--set", "N=16", "--algorithms", "online_dpo", "--seeds", "1", "--n-inference", "0"]
    assert cli_main([*a, "--param", "online_dpo.T=5"]) == 0
    via_param = capsys.readouterr().out
    assert cli_main([*a, "--set", "online_dpo.T=5"]) == 0
    via_set = capsys.readouterr().out
    strip = [ln.rsplit(None, 1)[0] for ln in via_param.splitlines()]      # all but the wall time
    assert strip == [ln.rsplit(None, 1)[0] for ln in via_set.splitlines()]
    assert via_set.splitlines()[-1].split()[5] == "10"                    # T_data = 2T: one pair per round


def test_cli_without_arguments_prints_usage(capsys, monkeypatch):
    import spanex.comparison.cli as cli

    monkeypatch.setattr(cli, "compare", lambda *a, **k: pytest.fail("must not run"))
    assert cli_main(["compare"]) == 2
    assert "usage: spanex compare" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--set", "N"], "--set expects KEY=VALUE"),
    (["--set", "N=1", "--algorithms", "best_of_n"], "N must be"),
    (["--algorithms", "best_of_n", "--param", "xpo.T=3"], "--param xpo.T: ALG one of --algorithms (best_of_n)"),
    (["--algorithms", "best_of_n", "--set", "xpo.T=3"], "--set xpo.T: ALG one of --algorithms (best_of_n)"),
    (["--algorithms", "best_of_n", "--param", "T=3"], "expected ALG.KEY"),
    (["--set", "bogus=3", "--algorithms", "best_of_n"], "--set bogus: instance 'needle' has no parameter 'bogus'"),
    (["--algorithms", "best_of_n", "--set", "best_of_n.bogus=3"], "algorithm 'best_of_n' has no parameter 'bogus'"),
    (["--set", "N=" + "[" * 3000 + "]" * 3000], "nested too deeply"),
    (["--set", "N=" + "[" * 40 + "1" + "]" * 40], "nested more than 32"),
    (["--instance", "nope"], "unknown instance 'nope'"),
    (["--algorithms", "nope"], "unknown algorithm 'nope'"),
    (["--algorithms", " , "], "--algorithms must name at least one algorithm"),
    (["--seeds", "two"], "--seeds expects a count"),
    (["--seeds=-1,2"], "seed must be in"),
    (["--algorithms", "best_of_n", "--n-mc", "0"], "--n-mc must be in"),
    (["--algorithms", "best_of_n", "--max-seconds", "-1"], "max_seconds"),
])
def test_cli_bad_arguments_exit_2_with_one_line(capsys, monkeypatch, argv, message):
    assert cli_main(["compare", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_csv_destination_is_checked_before_any_run(tmp_path, capsys, monkeypatch):
    import spanex.comparison.cli as cli

    monkeypatch.setattr(cli, "compare", lambda *a, **k: pytest.fail("must not run"))
    for path, message in ((tmp_path / "missing" / "t.csv", "does not exist"), (tmp_path, "is a directory")):
        assert cli_main(["compare", "--algorithms", "best_of_n", "--csv", str(path)]) == 2
        assert message in capsys.readouterr().err


def test_cli_failed_runs_are_one_line_each_and_exit_1(capsys, monkeypatch):
    def boom(self, problem, seed=None, budget=None, **kw):
        raise MemoryError("Unable to allocate 253. GiB for an array\nwith shape (1, 2)")

    monkeypatch.setattr(OnlineDPO, "run", boom)
    code = cli_main(["compare", "--set", "N=16", "--algorithms", "online_dpo,best_of_n", "--seeds", "2",
                     "--n-inference", "0"])
    assert code == 1
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if "failed" in ln]
    assert lines == [f"spanex compare: online_dpo seed={s} failed: MemoryError: Unable to allocate 253. GiB for an "
                     "array with shape (1, 2)" for s in (0, 1)]
    assert "Traceback" not in captured.err and captured.out.count("best_of_n") == 2
