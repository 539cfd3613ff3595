"""``spanex report DIR``: verdicts, plots and a Markdown report of the experiments stored in DIR.

The experiments are found by the names stored in DIR, through the registry only. An experiment
run from a ``package.module:Class`` spec is loaded by giving the same spec here (``--experiment``):
a results directory never makes spanex import a module.
"""

from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("directory", help="results directory written by `spanex run` (or one experiment's subdirectory)")
    parser.add_argument("--no-export", action="store_true", help="do not write the CSV/Parquet tables")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the verdict rows as a JSON list to FILE")
    parser.add_argument("--experiment", dest="specs", action="append", default=[], metavar="package.module:Class",
                        help="load an experiment defined outside spanex, to report its stored runs (repeatable)")


def _error(msg: str) -> int:
    print(f"spanex report: error: {msg}", file=sys.stderr)
    return 2


def main(args) -> int:
    from . import registry
    from .report import write_report

    try:
        for spec in args.specs:
            registry.get(spec)
    except (ValueError, TypeError) as e:
        return _error(str(e))
    try:
        rep = write_report(args.directory, export_tables=not args.no_export, json_path=args.json)
    except FileNotFoundError as e:
        return _error(str(e))
    print(f"report: {rep.path}")
    if args.json:
        print(f"verdicts (JSON): {args.json}")
    return 0
