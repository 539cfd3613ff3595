"""``spanex run EXPERIMENT``: run (or resume) an experiment's sweep into a results directory.

Everything is checked before the first run starts (every experiment's config, the ``--config``
file, the ``--out`` directory and its writer's lock); a user error exits 2 with one line.
"""

from __future__ import annotations

import sys

from .executors import EXECUTORS


def add_arguments(parser) -> None:
    parser.add_argument("experiment", help="experiment name (see `spanex list`), 'all', or package.module:Class")
    parser.add_argument("--quick", action="store_true", help="the small version (all together < 5 min on 2 cores)")
    parser.add_argument("--out", default="runs", help="results directory (default: runs); one run writes into it "
                                                      "at a time")
    parser.add_argument("--executor", default="local", choices=EXECUTORS,
                        help="local process pool (default), serial in this process, or ray (extra 'dist')")
    parser.add_argument("--workers", type=int, default=None, help="parallel workers (default: all cores)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (TOML value syntax; EXPERIMENT.KEY=VALUE targets one of the "
                             "experiments run); repeatable")
    parser.add_argument("--config", default=None, metavar="FILE.toml", help="config overrides from a TOML file")
    parser.add_argument("--report", action="store_true", help="write the report of --out when done")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _error(msg: str) -> int:
    print(f"spanex run: error: {msg}", file=sys.stderr)
    return 2


def main(args) -> int:
    from ..cli import parse_sets
    from . import registry
    from .config import load_file, overrides_for
    from .store import OutputDirError, OutputLocked, lock_out

    if args.workers is not None and args.workers < 1:
        return _error(f"--workers must be >= 1, got {args.workers}")
    specs = registry.names() if args.experiment == "all" else [args.experiment]
    try:
        sets = parse_sets(args.sets)
        file_data = load_file(args.config) if args.config else {}
        exps = [(spec, registry.get(spec)) for spec in specs]
        running = [exp.name for _, exp in exps]
        plans = []
        for spec, exp in exps:
            ov = overrides_for(exp.name, file_data, sets, running, registry.names())
            exp.make_config(args.quick, ov)  # validate every config before anything runs
            plans.append((spec, exp, ov))
    except (ValueError, TypeError, ModuleNotFoundError) as e:
        return _error(str(e))
    try:
        with lock_out(args.out):  # held across every experiment of `run all`
            return _run(args, plans)
    except OutputDirError as e:
        return _error(f"--out {e}")
    except OutputLocked as e:
        return _error(str(e))


def _run(args, plans) -> int:
    from .runner import run_experiment

    failed = 0
    unavailable = []
    for spec, exp, ov in plans:
        try:
            exp.check_available()
        except ModuleNotFoundError as e:
            unavailable.append(str(e))
            print(f"spanex run: {e}", file=sys.stderr)
            continue
        try:
            summary = run_experiment(spec, args.out, quick=args.quick, overrides=ov, executor=args.executor,
                                     workers=args.workers, progress=not args.no_progress)
        except ModuleNotFoundError as e:
            return _error(str(e))
        for note in summary.notes:
            print(f"spanex run: {summary.experiment}: {note}", file=sys.stderr)
        print(summary.line())
        failed += summary.failed
    if args.report:
        from .report import write_report

        rep = write_report(args.out)
        print(f"report: {rep.path}")
    if failed:
        print(f"spanex run: {failed} run(s) failed; their tracebacks are under <out>/<experiment>/errors/ "
              "and the next `spanex run` retries them", file=sys.stderr)
        return 1
    if unavailable:
        return 3 if len(unavailable) == len(plans) else 0
    return 0
