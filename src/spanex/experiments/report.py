"""``spanex report DIR``: analyse every experiment stored under DIR and write ``DIR/report.md``.

For each experiment: the verdict lines (also printed), one PNG (``DIR/<experiment>.png``), the tidy
tables ``DIR/<experiment>/records.csv`` and ``.parquet``, and the run times of the sweep.
Only the records of the sweep points of the stored config are analysed.
"""

from __future__ import annotations

import datetime
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import registry
from .analysis import missing_verdict
from .base import Verdict, apply_overrides
from .store import CorruptRecord, Store, discover, export, frame


@dataclass
class ExperimentReport:
    name: str
    title: str
    description: str
    quick: bool
    config: dict
    n_expected: int
    n_finished: int
    n_errors: int
    wall_time: float
    verdicts: list[Verdict]
    plot: Path | None
    problems: list[str] = field(default_factory=list)


@dataclass
class Report:
    path: Path
    experiments: list[ExperimentReport]

    @property
    def verdicts(self) -> list[Verdict]:
        return [v for e in self.experiments for v in e.verdicts]


def analyse_store(store: Store, plot_path: Path | None = None, export_tables: bool = True) -> ExperimentReport:
    meta = store.read_meta()  # validated; CorruptRecord if not
    exp = registry.lookup(meta["experiment"])  # the registry only: a stored name never imports a module
    cfg = apply_overrides(exp.Config(), meta["config"], exp.name)
    keys = {t["key"] for t in exp.tasks(cfg)}
    scan = store.scan()  # valid records only; corrupt files are listed in the problems
    records = scan.load(keys)
    problems = scan.notes()
    extra = len(set(scan.records) - keys)
    if extra:
        problems.append(f"{extra} stored runs belong to another config and are not analysed")
    if len(records) < len(keys):
        problems.append(f"only {len(records)} of {len(keys)} runs finished; verdicts use what finished")
    verdicts: list[Verdict] = []
    plot = None
    if records:
        df = frame(records)
        try:
            verdicts = exp.analyse(cfg, df)
        except Exception:  # noqa: BLE001 - an analysis failure must not hide the other experiments
            problems.append("analysis failed: " + traceback.format_exc().strip().splitlines()[-1])
            verdicts = [missing_verdict(exp.name, "analysis", "analysis raised; see problems")]
        if plot_path is not None:
            try:
                _agg()
                exp.plot(cfg, df, plot_path)
                plot = plot_path
            except Exception:  # noqa: BLE001
                problems.append("plot failed: " + traceback.format_exc().strip().splitlines()[-1])
        if export_tables:
            try:
                export(records, store.dir / "records")
            except ModuleNotFoundError as e:
                problems.append(str(e))
    else:
        verdicts = [missing_verdict(exp.name, "all predictions", "no finished runs")]
    wall = sum(h.get("wall_time", 0.0) for h in meta.get("history", []))
    return ExperimentReport(exp.name, exp.title, exp.description, bool(meta.get("quick")), meta["config"],
                            len(keys), len(records), len(scan.errors), wall, verdicts, plot, problems)


def _unreadable(store: Store, error: Exception) -> ExperimentReport:
    """The entry of an experiment that cannot be analysed (e.g. its experiment.json is corrupt): why."""
    return ExperimentReport(store.experiment, "", "", False, {}, 0, 0, 0, 0.0,
                            [missing_verdict(store.experiment, "all predictions", "not analysed; see the note")],
                            None, [f"not analysed: {error}"])


def _agg():
    import matplotlib

    matplotlib.use("Agg", force=True)


def verdict_table(verdicts: list[Verdict]) -> str:
    """The Markdown verdict table: one row per prediction, its kind, provenance and the reasoning."""
    rows = ["| experiment | prediction | kind | measured [95% CI] | predicted | verdict | rule: why this verdict "
            "| measured how | n |",
            "|---|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        meas = "–" if v.measured != v.measured else f"{v.measured:.3g} [{v.lo:.3g}, {v.hi:.3g}]"
        pred = "–" if v.predicted != v.predicted else f"{v.predicted:.3g} ± {v.tolerance:.3g}"
        note = f" ({v.note})" if v.note else ""
        claim, rule = _cell(v.claim), _cell(v.rule + note)
        rows.append(f"| {v.experiment} | {claim} | {v.kind} | {meas} | {pred} | **{v.verdict}** | {rule} "
                    f"| {v.provenance()} | {v.n_runs} |")
    return "\n".join(rows)


def failure_paragraphs(verdicts: list[Verdict]) -> str:
    """One paragraph per prediction that does not hold (its likely cause), or '' when none failed."""
    failed = [v for v in verdicts if v.verdict == "does not hold"]
    if not failed:
        return ""
    out = ["### Predictions that do not hold", ""]
    for v in failed:
        text = v.failure or "No diagnosis was recorded for this prediction."
        out += [f"**{v.experiment}: {v.claim}** (measured {v.measured:.3g} [{v.lo:.3g}, {v.hi:.3g}], predicted "
                f"{v.predicted:.3g} ± {v.tolerance:.3g}). {text}", ""]
    return "\n".join(out)


def write_json(verdicts: list[Verdict], path) -> Path:
    """The verdict rows as a JSON list (see :meth:`Verdict.json_row`)."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([v.json_row() for v in verdicts], indent=1, allow_nan=False) + "\n")
    return path


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (a bare '|' would split the cell)."""
    return text.replace("|", "\\|")


def write_report(root, *, export_tables: bool = True, echo=print, json_path=None) -> Report:
    """Analyse every experiment under `root`, write ``root/report.md`` and the plots; return the Report.

    json_path : also write the verdict rows there as a JSON list (``spanex report DIR --json FILE``).
    """
    root = Path(root)
    stores = discover(root)
    if not stores:
        raise FileNotFoundError(f"no experiment results under {str(root)!r} (expected <DIR>/<experiment>/"
                                "experiment.json, as written by `spanex run`)")
    out_dir = root.parent if (root / "experiment.json").exists() else root
    reports = []
    for store in stores:
        try:
            rep = analyse_store(store, out_dir / f"{store.experiment}.png", export_tables)
        except (CorruptRecord, ValueError, TypeError) as e:  # e.g. a corrupt experiment.json: report the others
            rep = _unreadable(store, e)
        reports.append(rep)
        for v in rep.verdicts:
            echo(v.line())
        for p in rep.problems:
            echo(f"[{rep.name}] note: {p}")
    md = _markdown(reports, out_dir)
    path = out_dir / "report.md"
    path.write_text(md)
    if json_path is not None:
        write_json([v for r in reports for v in r.verdicts], json_path)
    return Report(path, reports)


def _markdown(reports: list[ExperimentReport], out_dir: Path) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    verdicts = [v for r in reports for v in r.verdicts]
    lines = ["# spanex theory checks", "",
             f"Generated {now} by `spanex report`. Verdict rule: a prediction **holds** when the 95% "
             "bootstrap interval (over seeds) lies inside the predicted band, **does not hold** when it "
             "lies entirely outside, and is **inconclusive** otherwise (see `spanex.experiments.analysis`). "
             "The rule column says which of these happened and why. *kind*: a theorem check, or a recipe check "
             "(a check of the library's parameter recipe). *measured how*: whether the quantity is an outcome "
             "of the runs (not fixed by an input) and whether any run behind it used an oracle hint.",
             "", "## Verdicts", "", verdict_table(verdicts), "", failure_paragraphs(verdicts)]
    for r in reports:
        lines += [f"## {r.name}: {r.title}", "", r.description.strip(), "",
                  f"- version: {'quick' if r.quick else 'full'}; runs finished {r.n_finished}/{r.n_expected}"
                  f"{'; errors ' + str(r.n_errors) if r.n_errors else ''}; sweep wall time {r.wall_time:.0f} s",
                  f"- config: `{_compact(r.config)}`"]
        lines += [f"- note: {p}" for p in r.problems]
        lines.append("")
        if r.plot is not None:
            lines += [f"![{r.name}]({r.plot.relative_to(out_dir).as_posix()})", ""]
        lines += [verdict_table(r.verdicts), ""]
    return "\n".join(lines)


def _compact(cfg: dict) -> str:
    import json

    return json.dumps(cfg, separators=(", ", "="))[1:-1].replace('"', "")
