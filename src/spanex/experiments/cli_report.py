"""``spanex report DIR``: verdicts, plots and a Markdown report of the experiments stored in DIR."""

from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("directory", help="results directory written by `spanex run` (or one experiment's subdirectory)")
    parser.add_argument("--no-export", action="store_true", help="do not write the CSV/Parquet tables")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the verdict rows as a JSON list to FILE")


def main(args) -> int:
    from .report import write_report

    try:
        rep = write_report(args.directory, export_tables=not args.no_export, json_path=args.json)
    except FileNotFoundError as e:
        print(f"spanex report: error: {e}", file=sys.stderr)
        return 2
    print(f"report: {rep.path}")
    if args.json:
        print(f"verdicts (JSON): {args.json}")
    return 0
