"""The comparison harness: every algorithm x seed on one problem under one budget, one row each.

See :mod:`spanex.comparison` for the columns of a row.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

import numpy as np

from ..core.algorithm import Algorithm
from ..core.errors import SpanexError, as_generator, check_int
from ..core.ledger import DATA_KINDS, SAMPLE_KINDS, Budget
from ..core.problem import Problem
from ..evaluation import evaluate
from .table import Table

DEFAULT_ALGORITHMS = ("spanner_sampling", "online_dpo", "xpo", "best_of_n", "inference_time_pessimism",
                      "passive_regression", "exhaustive_design")

#: What a run (training, inference draws or evaluation) may raise and still give a row with status
#: 'error' rather than end the whole table: spanex's own errors, bad values and types reaching the
#: numerics (numpy's LinAlgError is a ValueError), running out of memory, overflow and division by
#: zero (ArithmeticError), and an operation the problem does not support.
RUN_ERRORS = (SpanexError, ValueError, TypeError, MemoryError, ArithmeticError, NotImplementedError)

#: at most this many seeds per algorithm (the limit of an experiment's n_seeds too): a larger count is a
#: typo that would otherwise run, or allocate, for hours
MAX_SEEDS = 10_000

#: Seed s of a comparison draws the inference samples from SeedSequence([s, INFERENCE_SEED_TAG]) and
#: the Monte Carlo evaluation from SeedSequence([s, EVAL_SEED_TAG]): streams apart from the run's own
#: (seeded by s alone) and from each other. The two primes are arbitrary; changing them changes tables.
INFERENCE_SEED_TAG = 7919
EVAL_SEED_TAG = 104729


# ---- the comparison ------------------------------------------------------------------------------

def resolve_algorithms(algorithms) -> dict[str, Algorithm]:
    """dict name -> Algorithm; accepts a dict, a list of registry names / Algorithm instances, or 'a,b,c'."""
    from .. import algorithms as registry

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


def check_seeds(seeds) -> list:
    """An int s (-> [0, ..., s-1]) or a non-empty list of non-negative int seeds, as a list."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        return list(range(check_int("seeds", seeds, low=1, high=MAX_SEEDS)))
    seeds = list(seeds)
    if not seeds or len(seeds) > MAX_SEEDS:
        raise ValueError(f"seeds must be a count in [1, {MAX_SEEDS}] or a list of 1 to {MAX_SEEDS} seeds")
    for s in seeds:
        check_int("seed", s, low=0)
    return seeds


def compare(problem: Problem, algorithms, budget: Budget | dict | None = None, seeds=(0, 1, 2), *,
            strong_oracle: str | None = None, n_inference: int = 20, n_mc: int = 2000,
            catch_errors: bool = True, progress: bool = False, oracle_hints: bool = False) -> Table:
    """Run every algorithm on `problem` for every seed and tabulate (columns: see :mod:`spanex.comparison`).

    Parameters
    ----------
    problem : the Problem (the same object for every run).
    algorithms : dict name -> Algorithm, or a list of registry names / Algorithm instances, or 'a,b'.
    budget : Budget (or dict, or None) applied to every run (train label).
    seeds : an int s (seeds 0..s-1) or a list of non-negative int seeds.
    strong_oracle : None keeps each algorithm's own cost model; 'exact' or 'weak' sets it for every
        algorithm that samples pi_theta (has a ``strong_oracle`` field). 'exact' is an oracle hint.
    oracle_hints : let the runs read exact instance quantities (e.g. the idealized strong oracle); every
        row says which it used in its ``hints`` column.
    n_inference : output samples drawn to measure the per-sample inference cost (>= 0; 0 skips).
    n_mc : Monte Carlo samples per prompt when the exact law is not available (>= 1).
    catch_errors : record a run that raises one of :data:`RUN_ERRORS` as a row with status 'error' and
        the one-line message in ``error`` (``inference_error`` / ``eval_error`` for the later steps),
        and continue; False re-raises. A budget stop is a normal result, not an error.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a spanex Problem, got {type(problem).__name__}")
    algs = resolve_algorithms(algorithms)
    seeds = check_seeds(seeds)
    budget = Budget.coerce(budget)
    n_inference = check_int("n_inference", n_inference, low=0)
    n_mc = check_int("n_mc", n_mc, low=1)
    if strong_oracle is not None:
        if strong_oracle not in ("exact", "weak"):
            raise ValueError(f"strong_oracle must be None, 'exact' or 'weak', got {strong_oracle!r}")
        algs = {k: (dataclasses.replace(a, strong_oracle=strong_oracle) if hasattr(a, "strong_oracle") else a)
                for k, a in algs.items()}
    meta = _problem_meta(problem)
    if not isinstance(oracle_hints, bool):
        raise TypeError(f"oracle_hints must be a bool, got {type(oracle_hints).__name__}")
    meta.update(budget=dataclasses.asdict(budget), seeds=seeds, strong_oracle=strong_oracle,
                n_inference=n_inference, oracle_hints=oracle_hints)
    rows = []
    total = len(algs) * len(seeds)
    for name, alg in algs.items():
        for seed in seeds:
            row = run_one(problem, name, alg, seed, budget, n_inference=n_inference, n_mc=n_mc,
                          catch_errors=catch_errors, oracle_hints=oracle_hints)
            rows.append(row)
            if progress:
                print(f"[{len(rows)}/{total}] {name} seed={seed}: {row['status']}", file=sys.stderr)
    return Table(rows, meta)


def run_one(problem: Problem, name: str, alg: Algorithm, seed, budget: Budget, *, n_inference: int = 20,
            n_mc: int = 2000, catch_errors: bool = True, oracle_hints: bool = False) -> dict:
    """One row of :func:`compare`."""
    row: dict[str, Any] = {"algorithm": name, "seed": seed}
    so = getattr(alg, "strong_oracle", None)
    row["cost_model"] = so if so is not None else "-"
    try:
        res = alg.run(problem, seed=seed, budget=budget, oracle_hints=oracle_hints)
    except RUN_ERRORS as e:
        if not catch_errors:
            raise
        row.update(status="error", error=error_line(e))
        return row
    led = res.ledger
    row.update(status=res.status, T_data=led.reward_queries, T_comp=led.sample_calls)
    for k in SAMPLE_KINDS:
        row[f"T_comp.{k}"] = led.count(k, "train")
    row["cost_model"] = res.extras.get("strong_oracle", row["cost_model"])
    row["hints"] = ",".join(res.hints) if res.hints else "-"    # exact quantities the run used (oracle hints)
    # inference cost per output sample (label 'inference')
    if n_inference:
        rng = as_generator(np.random.SeedSequence([int(seed), INFERENCE_SEED_TAG]))
        c0, d0 = led.total(SAMPLE_KINDS, "inference"), led.total(DATA_KINDS, "inference")
        try:
            xs = problem.prompts.sample(n_inference, rng)
            for x in xs:
                res.policy.sample(x, 1, rng)
            row["inf_T_comp"] = (led.total(SAMPLE_KINDS, "inference") - c0) / n_inference
            row["inf_T_data"] = (led.total(DATA_KINDS, "inference") - d0) / n_inference
        except RUN_ERRORS as e:
            if not catch_errors:
                raise
            row.update(inf_T_comp=float("nan"), inf_T_data=float("nan"), inference_error=error_line(e))
    # evaluation (label 'eval')
    t0 = time.perf_counter()
    try:
        ev = evaluate(res.policy, problem, n_mc=n_mc,
                      seed=as_generator(np.random.SeedSequence([int(seed), EVAL_SEED_TAG])))
        row.update(subopt=ev.suboptimality, J=ev.J, mean_reward=ev.mean_reward,
                   eval={"exact": "exact", "monte_carlo": "mc"}.get(ev.method, "reward-mc"))
    except RUN_ERRORS as e:
        if not catch_errors:
            raise
        row.update(subopt=None, eval="error", eval_error=error_line(e))
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


def error_line(e: BaseException) -> str:
    """``"Type: message"`` on one line (whitespace runs, newlines included, become one space)."""
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__
