"""The ``spanex`` command line.

Subcommands live in their own modules; each exposes ``add_arguments(parser)`` and
``main(args) -> int`` (an exit code). Modules are imported only when their subcommand runs, so
the core command works without optional extras installed. A module that sets
``NEEDS_ARGUMENTS = True`` prints its help (exit 2) when called with no arguments at all.

Exit codes: 0 success, 1 some runs failed (their errors are stored or printed), 2 a user error
(one line on stderr, nothing done), 3 nothing could run (a required extra is missing).

``KEY=VALUE`` items (``--set``, ``--param``) share one syntax on every subcommand, parsed here by
:func:`parse_sets`: the value is TOML (``3``, ``0.5``, ``true``, ``[1, 2]``, ``"text"``); a bare word
that is not TOML (``logistic``) is a string. ``PREFIX.KEY`` targets one component (an experiment of
``spanex run all``, an algorithm of ``spanex compare``); naming a component that is not part of the
command is an error.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import tomllib

from .limits import check_plain

#: subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "demo": ("spanex.demo", "run SpannerSampling on the default instance (--lm: align SmolLM2)"),
    "compare": ("spanex.comparison.cli", "run several algorithms on one problem and print a table"),
    "run": ("spanex.experiments.cli_run", "run an experiment sweep (resumable)"),
    "report": ("spanex.experiments.cli_report", "write the Markdown report of an experiment directory"),
    "list": ("spanex.experiments.cli_list", "list the experiments"),
}

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)?")


# ---- KEY=VALUE items ---------------------------------------------------------------------------------

def parse_value(text: str, what: str = "value"):
    """A TOML value (``3``, ``[0.1, 0.2]``, ``"x"``, ``true``); a bare word that is not TOML is a string.

    Raises ValueError for text that starts like a TOML array, table or quoted string but does not
    parse, for more than one value, and for values nested deeper than :data:`spanex.limits.MAX_DEPTH`.
    """
    text = text.strip()
    try:
        doc = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError as e:
        if text[:1] in ("[", "{", '"', "'"):
            raise ValueError(f"{what}: {text!r} is not a valid TOML value ({e})") from None
        return text
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None  # tomllib recurses per level
    if set(doc) != {"v"}:
        raise ValueError(f"{what}: {text!r} holds more than one value")
    return check_plain(doc["v"], what)  # LimitError is a ValueError


def parse_sets(items, what: str = "--set") -> dict:
    """``["a=1", "exp.b=[1,2]"]`` -> ``{"a": 1, "exp.b": [1, 2]}`` (a repeated key: the last wins).

    A key is a name or ``PREFIX.NAME`` (letters, digits, '_' and '-'); raises ValueError on a bad item.
    """
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"{what} expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip()
        if not _KEY.fullmatch(k):
            raise ValueError(f"{what} expects KEY=VALUE with KEY a name or PREFIX.NAME, got {item!r}")
        out[k] = parse_value(v, f"{what} {k}")
    return out


def split_key(key: str) -> tuple[str | None, str]:
    """``"exp.key"`` -> ``("exp", "key")``; ``"key"`` -> ``(None, "key")``."""
    prefix, dot, name = key.rpartition(".")
    return (prefix, name) if dot else (None, key)


# ---- the command -------------------------------------------------------------------------------------

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
            p.set_defaults(_main=module.main, _parser=p,
                           _needs_arguments=getattr(module, "NEEDS_ARGUMENTS", False))
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
    if args._needs_arguments and argv[argv.index(args.command) + 1:] == []:
        args._parser.print_help()  # like `spanex` without a command: the usage, not a default run
        return 2
    return int(args._main(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
