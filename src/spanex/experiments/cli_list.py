"""``spanex list``: the experiments, what each predicts, and whether it can run here."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--verbose", "-v", action="store_true", help="print each experiment's description")


def main(args) -> int:
    from . import registry

    for name in registry.names():
        try:
            exp = registry.get(name)
            exp.check_available()
            n_quick = len(exp.tasks(exp.make_config(True)))
            n_full = len(exp.tasks(exp.make_config(False)))
            status = f"{n_quick} quick / {n_full} full runs"
        except ModuleNotFoundError as e:
            exp = None
            status = f"unavailable: {e}"
        title = exp.title if exp is not None else ""
        print(f"{name:22s} {title}  [{status}]")
        if args.verbose and exp is not None:
            print("    " + exp.description.strip().replace("\n", "\n    ") + "\n")
    return 0
