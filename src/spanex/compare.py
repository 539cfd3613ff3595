"""Peers in one harness: run several algorithms on the same problem, budget and seeds, and tabulate.

``compare(problem, algorithms, budget, seeds)`` runs every algorithm once per seed, each with its own
Ledger under the same :class:`~spanex.core.Budget`, and returns a tidy :class:`Table` with one row
per algorithm x seed:

- ``T_data`` (reward + preference queries) and ``T_comp`` (sampling-oracle calls) of training, and
  T_comp by kind (``T_comp.weak``, ``T_comp.strong``, ``T_comp.token``, ``T_comp.logprob``,
  ``T_comp.enum``);
- ``cost_model``: how pi_theta draws were paid for ('exact' strong oracle, 'weak' rejection from
  pi_ref), for the algorithms that sample pi_theta; '-' for the others;
- ``subopt``: J_beta(pi*) - J_beta(pi_hat), exact when the problem has an exact instance and the
  output policy has an exact law (``eval='exact'``), a plug-in Monte Carlo estimate otherwise
  (``eval='mc'``, evaluation calls charged to the 'eval' label, never to the algorithm);
- ``inf_T_comp``, ``inf_T_data``: the cost of *one sample* of the output policy, measured by
  drawing ``n_inference`` samples (prompts x ~ rho) and reading the ledger's 'inference' label.
  Inference-time methods (Best-of-N, InferenceTimePessimism) spend their reward queries here;
- ``wall_time`` (seconds of training), ``status`` ('completed', 'budget_exhausted' or 'error').

The same function backs ``spanex compare`` on the command line.
"""

from __future__ import annotations

import argparse
import ast
import csv
import dataclasses
import io
import math
import sys
import time
import types
from typing import Any, Iterable

import numpy as np

from .core.algorithm import Algorithm
from .core.errors import SpanexError, as_generator, check_int
from .core.ledger import DATA_KINDS, SAMPLE_KINDS, Budget
from .core.problem import Problem
from .evaluation import evaluate

DEFAULT_ALGORITHMS = ("spanner_sampling", "online_dpo", "xpo", "best_of_n", "inference_time_pessimism",
                      "passive_regression", "exhaustive_design")
DEFAULT_COLUMNS = ("algorithm", "seed", "status", "cost_model", "T_data", "T_comp", "T_comp.weak", "T_comp.strong",
                   "T_comp.token", "T_comp.enum", "subopt", "eval", "inf_T_comp", "inf_T_data", "wall_time")


class Table:
    """A tidy table: a list of row dicts plus ``meta`` (problem, budget, seeds, C_cov).

    No pandas needed; :meth:`to_pandas` converts when pandas is installed.
    """

    def __init__(self, rows: list[dict], meta: dict | None = None):
        self.rows = list(rows)
        self.meta = dict(meta or {})

    @property
    def columns(self) -> list[str]:
        cols: list[str] = []
        for r in self.rows:
            for k in r:
                if k not in cols:
                    cols.append(k)
        return cols

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def column(self, name: str) -> list:
        return [r.get(name) for r in self.rows]

    def where(self, **equal) -> "Table":
        """Rows whose columns equal the given values."""
        return Table([r for r in self.rows if all(r.get(k) == v for k, v in equal.items())], self.meta)

    def summary(self, by: str = "algorithm") -> "Table":
        """Mean of every numeric column per value of `by` (over seeds); 'n' counts the rows."""
        groups: dict = {}
        for r in self.rows:
            groups.setdefault(r.get(by), []).append(r)
        out = []
        for key, rs in groups.items():
            row: dict[str, Any] = {by: key, "n": len(rs)}
            for c in self.columns:
                if c in (by, "seed"):
                    continue
                vals = [r.get(c) for r in rs]
                nums = [v for v in vals if isinstance(v, (int, float, np.integer, np.floating))
                        and not isinstance(v, bool)]
                if nums and len(nums) == len(vals):
                    row[c] = float(np.mean(nums))
                elif all(v == vals[0] for v in vals):
                    row[c] = vals[0]
                else:
                    row[c] = "/".join(sorted({str(v) for v in vals}))
            out.append(row)
        return Table(out, self.meta)

    def to_pandas(self):
        try:
            import pandas as pd
        except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
            raise ModuleNotFoundError("Table.to_pandas needs pandas (pip install 'spanex[io]')") from e
        return pd.DataFrame(self.rows, columns=self.columns)

    def to_csv(self, path=None) -> str:
        """CSV text of the table (all columns); also written to `path` when given."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: _plain(v) for k, v in r.items()})
        text = buf.getvalue()
        if path is not None:
            with open(path, "w", newline="") as fh:
                fh.write(text)
        return text

    def format(self, columns: Iterable[str] | None = None) -> str:
        """Fixed-width text; by default the DEFAULT_COLUMNS present, minus T_comp kinds that are all zero."""
        if columns is None:
            columns = [c for c in DEFAULT_COLUMNS if c in self.columns
                       and not (c.startswith("T_comp.") and _empty(self.column(c)))]
            columns += [c for c in self.columns if c not in DEFAULT_COLUMNS and c in ("n",)]
        columns = list(columns)
        cells = [[_fmt(r.get(c)) for c in columns] for r in self.rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return f"Table({len(self.rows)} rows, columns={self.columns})"


def _empty(vals) -> bool:
    return all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0) for v in vals)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "nan"
        if v == 0:
            return "0"
        if abs(v) >= 1e5 or abs(v) < 1e-3:
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


def _plain(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


# ---- the comparison ------------------------------------------------------------------------------

def resolve_algorithms(algorithms) -> dict[str, Algorithm]:
    """dict name -> Algorithm; accepts a dict, a list of registry names / Algorithm instances, or 'a,b,c'."""
    from . import algorithms as registry

    if isinstance(algorithms, str):
        algorithms = [a.strip() for a in algorithms.split(",") if a.strip()]
    if isinstance(algorithms, Algorithm):
        algorithms = [algorithms]
    if isinstance(algorithms, dict):
        items = list(algorithms.items())
    else:
        items = []
        for a in algorithms:
            if isinstance(a, str):
                items.append((a, registry.make(a)))
            else:
                items.append((getattr(a, "name", type(a).__name__), a))
    if not items:
        raise ValueError("algorithms must name at least one algorithm")
    out: dict[str, Algorithm] = {}
    for name, alg in items:
        if not isinstance(name, str):
            raise TypeError(f"algorithm names must be strings, got {name!r}")
        if isinstance(alg, str):
            alg = registry.make(alg)
        if not isinstance(alg, Algorithm):
            raise TypeError(f"algorithms[{name!r}] must be a spanex Algorithm, got {type(alg).__name__}")
        if name in out:
            raise ValueError(f"duplicate algorithm name {name!r}; pass a dict to name the variants")
        out[name] = alg
    return out


def _seeds(seeds) -> list:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        return list(range(check_int("seeds", seeds, low=1)))
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must be a positive int or a non-empty list of seeds")
    for s in seeds:
        check_int("seed", s, low=0)
    return seeds


def compare(problem: Problem, algorithms, budget: Budget | dict | None = None, seeds=(0, 1, 2), *,
            strong_oracle: str | None = None, n_inference: int = 20, n_mc: int = 2000,
            catch_errors: bool = True, progress: bool = False) -> Table:
    """Run every algorithm on `problem` for every seed and tabulate (see the module docstring).

    Parameters
    ----------
    problem : the Problem (the same object for every run).
    algorithms : dict name -> Algorithm, or a list of registry names / Algorithm instances, or 'a,b'.
    budget : Budget (or dict, or None) applied to every run (train label).
    seeds : an int s (seeds 0..s-1) or a list of non-negative int seeds.
    strong_oracle : None keeps each algorithm's own cost model; 'exact' or 'weak' sets it for every
        algorithm that samples pi_theta (has a ``strong_oracle`` field).
    n_inference : output samples drawn to measure the per-sample inference cost (>= 0; 0 skips).
    n_mc : Monte Carlo samples per prompt when the exact law is not available (>= 1).
    catch_errors : record a run that raises (other than a budget stop, which is a normal result) as
        status 'error' and continue; False re-raises.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a spanex Problem, got {type(problem).__name__}")
    algs = resolve_algorithms(algorithms)
    seeds = _seeds(seeds)
    budget = Budget.coerce(budget)
    n_inference = check_int("n_inference", n_inference, low=0)
    n_mc = check_int("n_mc", n_mc, low=1)
    if strong_oracle is not None:
        if strong_oracle not in ("exact", "weak"):
            raise ValueError(f"strong_oracle must be None, 'exact' or 'weak', got {strong_oracle!r}")
        algs = {k: (dataclasses.replace(a, strong_oracle=strong_oracle) if hasattr(a, "strong_oracle") else a)
                for k, a in algs.items()}
    meta = _problem_meta(problem)
    meta.update(budget=dataclasses.asdict(budget), seeds=seeds, strong_oracle=strong_oracle,
                n_inference=n_inference)
    rows = []
    total = len(algs) * len(seeds)
    for name, alg in algs.items():
        for seed in seeds:
            row = run_one(problem, name, alg, seed, budget, n_inference=n_inference, n_mc=n_mc,
                          catch_errors=catch_errors)
            rows.append(row)
            if progress:
                print(f"[{len(rows)}/{total}] {name} seed={seed}: {row['status']}", file=sys.stderr)
    return Table(rows, meta)


def run_one(problem: Problem, name: str, alg: Algorithm, seed, budget: Budget, *, n_inference: int = 20,
            n_mc: int = 2000, catch_errors: bool = True) -> dict:
    """One row of :func:`compare`."""
    row: dict[str, Any] = {"algorithm": name, "seed": seed}
    so = getattr(alg, "strong_oracle", None)
    row["cost_model"] = so if so is not None else "-"
    try:
        res = alg.run(problem, seed=seed, budget=budget)
    except (SpanexError, ValueError, FloatingPointError, np.linalg.LinAlgError) as e:
        if not catch_errors:
            raise
        row.update(status="error", error=f"{type(e).__name__}: {e}")
        return row
    led = res.ledger
    row.update(status=res.status, T_data=led.reward_queries, T_comp=led.sample_calls)
    for k in SAMPLE_KINDS:
        row[f"T_comp.{k}"] = led.count(k, "train")
    row["cost_model"] = res.extras.get("strong_oracle", row["cost_model"])
    # inference cost per output sample (label 'inference')
    if n_inference:
        rng = as_generator(np.random.SeedSequence([int(seed), 7919]))
        c0, d0 = led.total(SAMPLE_KINDS, "inference"), led.total(DATA_KINDS, "inference")
        try:
            xs = problem.prompts.sample(n_inference, rng)
            for x in xs:
                res.policy.sample(x, 1, rng)
            row["inf_T_comp"] = (led.total(SAMPLE_KINDS, "inference") - c0) / n_inference
            row["inf_T_data"] = (led.total(DATA_KINDS, "inference") - d0) / n_inference
        except (SpanexError, ValueError) as e:
            if not catch_errors:
                raise
            row.update(inf_T_comp=float("nan"), inf_T_data=float("nan"), inference_error=f"{type(e).__name__}: {e}")
    # evaluation (label 'eval')
    t0 = time.perf_counter()
    try:
        ev = evaluate(res.policy, problem, n_mc=n_mc, seed=as_generator(np.random.SeedSequence([int(seed), 104729])))
        row.update(subopt=ev.suboptimality, J=ev.J, mean_reward=ev.mean_reward,
                   eval="exact" if ev.exact else ("mc" if ev.suboptimality is not None else "reward-mc"))
    except (SpanexError, ValueError, NotImplementedError) as e:
        if not catch_errors:
            raise
        row.update(subopt=None, eval="error", eval_error=f"{type(e).__name__}: {e}")
    row["eval_time"] = time.perf_counter() - t0
    row["wall_time"] = res.wall_time
    if "budget_stop" in res.extras:
        row["budget_stop"] = res.extras["budget_stop"]
    return row


def _problem_meta(problem: Problem) -> dict:
    meta = {"problem": problem.name, "beta": problem.beta, "d": problem.d, "params": dict(problem.meta)}
    ex = problem.exact
    if ex is not None and hasattr(ex, "C_cov"):
        meta["C_cov"] = float(ex.C_cov(problem.beta))
        meta["n_responses"] = int(sum(ex.n_responses(x) for x in range(ex.n_prompts)))
    return meta


def format_meta(meta: dict) -> str:
    parts = [f"problem={meta.get('problem')}", f"beta={meta.get('beta')}", f"d={meta.get('d')}"]
    if meta.get("params"):
        parts.append("params=" + ",".join(f"{k}={v}" for k, v in meta["params"].items()))
    if "C_cov" in meta:
        parts.append(f"C_cov={meta['C_cov']:.4g}")
        parts.append(f"|Y|={meta['n_responses']}")
    b = meta.get("budget") or {}
    parts.append("budget=" + (",".join(f"{k}={v}" for k, v in b.items() if v is not None) or "none"))
    parts.append(f"strong_oracle={meta.get('strong_oracle') or 'per-algorithm'}")
    return "  ".join(parts)


# ---- command line: `spanex compare` ----------------------------------------------------------------

def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _key_values(items, what: str) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"{what} expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = _value(v.strip())
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instance", default="needle", help="instance name (spanex.instances registry)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="instance parameter (repeatable)")
    parser.add_argument("--algorithms", default=",".join(DEFAULT_ALGORITHMS),
                        help="comma-separated registry names (default: all peers)")
    parser.add_argument("--param", action="append", metavar="ALG.KEY=VALUE",
                        help="algorithm parameter, e.g. online_dpo.T=100 (repeatable)")
    parser.add_argument("--seeds", default="3", help="number of seeds (0..s-1) or a comma list")
    parser.add_argument("--max-reward-queries", type=int, default=None)
    parser.add_argument("--max-sample-calls", type=int, default=None)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--strong-oracle", choices=("exact", "weak"), default=None,
                        help="cost model of pi_theta draws for every proper algorithm (default: each its own)")
    parser.add_argument("--feedback", choices=("reward", "preference"), default=None,
                        help="use only this feedback (preference = Bradley-Terry version of the instance)")
    parser.add_argument("--n-inference", type=int, default=20, help="output samples to measure inference cost")
    parser.add_argument("--n-mc", type=int, default=2000, help="Monte Carlo samples when no exact law")
    parser.add_argument("--summary", action="store_true", help="print the mean over seeds per algorithm")
    parser.add_argument("--csv", default=None, help="also write the full table to this CSV file")


def main(args) -> int:
    from . import instances

    try:
        problem = instances.make(args.instance, **_key_values(args.set, "--set"))
        if args.feedback is not None:
            problem = problem.with_feedback(args.feedback)
        names = [a.strip() for a in args.algorithms.split(",") if a.strip()]
        params = _key_values(args.param, "--param")
        per_alg: dict[str, dict] = {n: {} for n in names}
        for key, v in params.items():
            alg, _, field = key.partition(".")
            if alg not in per_alg or not field:
                raise ValueError(f"--param {key}=...: expected ALG.KEY with ALG one of {names}")
            per_alg[alg][field] = v
        from . import algorithms as registry

        algs = {n: registry.make(n, **per_alg[n]) for n in names}
        seeds = [int(s) for s in args.seeds.split(",")] if "," in args.seeds else int(args.seeds)
        budget = Budget(max_reward_queries=args.max_reward_queries, max_sample_calls=args.max_sample_calls,
                        max_seconds=args.max_seconds)
        table = compare(problem, algs, budget, seeds, strong_oracle=args.strong_oracle,
                        n_inference=args.n_inference, n_mc=args.n_mc, progress=True)
    except (ValueError, TypeError) as e:
        print(f"spanex compare: {e}", file=sys.stderr)
        return 2
    print(format_meta(table.meta))
    print(table.summary().format() if args.summary else table.format())
    errors = [r for r in table if r.get("status") == "error"]
    for r in errors:
        print(f"error: {r['algorithm']} seed={r['seed']}: {r.get('error')}", file=sys.stderr)
    if args.csv:
        table.to_csv(args.csv)
    return 0


class _CallableModule(types.ModuleType):
    """`spanex.compare` is both this module and the function: importing the submodule rebinds the
    package attribute to the module, so the module forwards calls to :func:`compare`."""

    def __call__(self, *args, **kwargs):
        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["compare", "run_one", "Table", "resolve_algorithms", "format_meta", "DEFAULT_ALGORITHMS"]
