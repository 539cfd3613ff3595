"""``spanex compare``: several algorithms on one instance, one budget and the same seeds; prints the table.

Every argument is checked before anything runs (the instance and algorithm parameters against their
signatures, the ``--csv`` destination), and a user error exits 2 with one line. A run that fails
becomes a row with status 'error', and its message is printed as one line per failed row (exit 1).
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from pathlib import Path

from ..cli import parse_sets, split_key
from .harness import DEFAULT_ALGORITHMS, RUN_ERRORS, check_seeds, compare
from .table import format_meta

#: `spanex compare` alone would run every peer for minutes; it prints its help instead
NEEDS_ARGUMENTS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instance", default="needle", help="instance name (spanex.instances registry)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="an instance parameter (KEY=VALUE) or an algorithm's (ALG.KEY=VALUE); TOML value "
                             "syntax, repeatable")
    parser.add_argument("--algorithms", default=",".join(DEFAULT_ALGORITHMS),
                        help="comma-separated registry names (default: all peers)")
    parser.add_argument("--param", action="append", default=[], metavar="ALG.KEY=VALUE",
                        help="an algorithm parameter, e.g. online_dpo.T=100 (same as --set ALG.KEY=VALUE)")
    parser.add_argument("--seeds", default="3", help="number of seeds (0..s-1) or a comma list")
    parser.add_argument("--max-reward-queries", type=int, default=None)
    parser.add_argument("--max-sample-calls", type=int, default=None)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--strong-oracle", choices=("exact", "weak"), default=None,
                        help="cost model of pi_theta draws for every proper algorithm (default: each its own)")
    parser.add_argument("--feedback", choices=("reward", "preference"), default=None,
                        help="use only this feedback (preference = Bradley-Terry version of the instance)")
    parser.add_argument("--oracle-hints", action="store_true",
                        help="let runs read exact instance quantities (e.g. --strong-oracle exact); rows list them")
    parser.add_argument("--n-inference", type=int, default=20, help="output samples to measure inference cost")
    parser.add_argument("--n-mc", type=int, default=2000, help="Monte Carlo samples when no exact law")
    parser.add_argument("--summary", action="store_true", help="print the mean over seeds per algorithm")
    parser.add_argument("--csv", default=None, help="also write the full table to this CSV file")


def _error(msg: str) -> int:
    print(f"spanex compare: error: {msg}", file=sys.stderr)
    return 2


def main(args) -> int:
    try:
        problem, algs, seeds, budget = _setup(args)
    except RUN_ERRORS as e:  # bad arguments, or an instance that cannot be built from them
        return _error(" ".join(str(e).split()) or type(e).__name__)
    try:
        table = compare(problem, algs, budget, seeds, strong_oracle=args.strong_oracle, oracle_hints=args.oracle_hints,
                        n_inference=args.n_inference, n_mc=args.n_mc, progress=True)
    except RUN_ERRORS as e:  # raised outside a run (the run errors are rows): an argument compare refused
        return _error(" ".join(str(e).split()) or type(e).__name__)
    print(format_meta(table.meta))
    print(table.summary().format() if args.summary else table.format())
    failed = 0
    for r in table:
        errors = [r[k] if k == "error" else f"{k.split('_')[0]}: {r[k]}"
                  for k in ("error", "inference_error", "eval_error") if r.get(k)]
        if errors:
            failed += 1
            print(f"spanex compare: {r['algorithm']} seed={r['seed']} failed: {'; '.join(errors)}", file=sys.stderr)
    if args.csv:
        try:
            table.to_csv(args.csv)
        except OSError as e:
            return _error(f"--csv {args.csv!r}: cannot write: {e.strerror or e}")
    return 1 if failed else 0


def _setup(args):
    """Problem, algorithms, seeds and budget from the arguments; ValueError/TypeError on a bad one."""
    from .. import algorithms as alg_registry
    from .. import instances
    from ..core.errors import check_int
    from ..core.ledger import Budget

    if args.csv:
        _check_output_file(args.csv, "--csv")
    seeds = check_seeds(_parse_seeds(args.seeds))
    check_int("--n-inference", args.n_inference, low=0)
    check_int("--n-mc", args.n_mc, low=1)
    budget = Budget(max_reward_queries=args.max_reward_queries, max_sample_calls=args.max_sample_calls,
                    max_seconds=args.max_seconds)
    make_instance = instances.get(args.instance)
    names = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    if not names:
        raise ValueError("--algorithms must name at least one algorithm")
    classes = {n: alg_registry.get(n) for n in names}
    inst_params: dict = {}
    per_alg: dict[str, dict] = {n: {} for n in names}
    sets = parse_sets(args.sets, "--set")
    params = parse_sets(args.param, "--param")
    for flag, items in (("--set", sets), ("--param", params)):
        for key, v in items.items():
            alg, field = split_key(key)
            if alg is None and flag == "--set":
                inst_params[field] = v
            elif alg in per_alg:
                per_alg[alg][field] = v
            else:
                raise ValueError(f"{flag} {key}: {'expected ALG.KEY with ' if alg is None else ''}"
                                 f"ALG one of --algorithms ({', '.join(names)})")
    _check_params(make_instance, inst_params, f"instance {args.instance!r}", "--set")
    for n in names:
        _check_params(classes[n], per_alg[n], f"algorithm {n!r}", f"--set {n}.")
    algs = {n: classes[n](**per_alg[n]) for n in names}  # validated before the instance is built
    problem = make_instance(**inst_params)
    if args.feedback is not None:
        problem = problem.with_feedback(args.feedback)
    return problem, algs, seeds, budget


def _parse_seeds(text: str):
    try:
        seeds = [int(t) for t in text.split(",")]
    except ValueError:
        raise ValueError(f"--seeds expects a count (e.g. 3) or a comma list of seeds (e.g. 0,1,5), "
                         f"got {text!r}") from None
    return seeds if "," in text else seeds[0]


def _check_params(target, params: dict, what: str, flag: str) -> None:
    """Every key of `params` must be a parameter of `target` (a function or a dataclass)."""
    sig = inspect.signature(target)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    known = [n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in params:
        if key not in known:
            sep = "" if flag.endswith(".") else " "
            raise ValueError(f"{flag}{sep}{key}: {what} has no parameter {key!r}; known: {', '.join(known)}")


def _check_output_file(path: str, flag: str) -> None:
    """A file can be written at `path`: its directory exists and is writable, and it is not a directory."""
    p = Path(path)
    parent = p.parent
    if p.is_dir():
        raise ValueError(f"{flag} {path!r} is a directory; give a file name")
    if not parent.is_dir():
        raise ValueError(f"{flag} {path!r}: the directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ValueError(f"{flag} {path!r} is not writable")
