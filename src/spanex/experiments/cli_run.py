"""``spanex run EXPERIMENT``: run (or resume) an experiment's sweep into a results directory."""

from __future__ import annotations

import sys

from .executors import EXECUTORS


def add_arguments(parser) -> None:
    parser.add_argument("experiment", help="experiment name (see `spanex list`), 'all', or package.module:Class")
    parser.add_argument("--quick", action="store_true", help="the small version (all together < 5 min on 2 cores)")
    parser.add_argument("--out", default="runs", help="results directory (default: runs)")
    parser.add_argument("--executor", default="local", choices=EXECUTORS,
                        help="local process pool (default), serial in this process, or ray (extra 'dist')")
    parser.add_argument("--workers", type=int, default=None, help="parallel workers (default: all cores)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (TOML value syntax); repeatable")
    parser.add_argument("--config", default=None, metavar="FILE.toml", help="config overrides from a TOML file")
    parser.add_argument("--report", action="store_true", help="write the report of --out when done")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _error(msg: str) -> int:
    print(f"spanex run: error: {msg}", file=sys.stderr)
    return 2


def main(args) -> int:
    from . import registry
    from .config import load_file, overrides_for, parse_sets

    if args.workers is not None and args.workers < 1:
        return _error(f"--workers must be >= 1, got {args.workers}")
    names = registry.names()
    specs = names if args.experiment == "all" else [args.experiment]
    try:
        sets = parse_sets(args.sets)
        file_data = load_file(args.config) if args.config else {}
        plans = []
        for spec in specs:
            exp = registry.get(spec)
            ov = overrides_for(exp.name, file_data, sets, names)
            exp.make_config(args.quick, ov)  # validate every config before anything runs
            plans.append((spec, exp, ov))
    except (ValueError, TypeError) as e:
        return _error(str(e))
    except ModuleNotFoundError as e:
        return _error(str(e))
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
