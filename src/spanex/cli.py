"""The ``spanex`` command line.

Subcommands live in their own modules; each exposes ``add_arguments(parser)`` and
``main(args) -> int`` (an exit code). Modules are imported only when their subcommand runs, so
the core command works without optional extras installed.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "demo": ("spanex.demo", "run SpannerSampling on the default instance (--lm: align SmolLM2)"),
    "compare": ("spanex.compare", "run several algorithms on one problem and print a table"),
    "run": ("spanex.experiments.cli_run", "run an experiment sweep (resumable)"),
    "report": ("spanex.experiments.cli_report", "write the Markdown report of an experiment directory"),
    "list": ("spanex.experiments.cli_list", "list the experiments"),
}


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spanex", description="spanex: efficient exploration for LM alignment")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (mod, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if load is None or load == name:
            try:
                module = importlib.import_module(mod)
            except ModuleNotFoundError as e:  # an optional part not installed/available
                p.set_defaults(_unavailable=f"`spanex {name}` is unavailable: {e}")
                continue
            module.add_arguments(p)
            p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(load=command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_unavailable", None):
        print(args._unavailable, file=sys.stderr)
        return 2
    return int(args._main(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
