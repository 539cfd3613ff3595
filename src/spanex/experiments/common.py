"""Helpers shared by the experiments: running an algorithm, exact learning curves, plotting.

Learning curves. SpannerSampling logs theta_t at every round (``trace_theta``); the policy it would
output after round t is the same improper sampler with theta_t (Sigma_span is fixed after Phase 1),
so its suboptimality is exact on tabular instances (``policy.probs``). From the curve
(T_data_t, T_comp_t, subopt_t) we read the **cost to reach eps** as a *last-exit time*: the T_data
(T_comp) at the first round from which the suboptimality stays <= eps until the end of the run.
This is conservative (a policy that dips below eps and comes back does not count) and defined
without choosing a stopping rule. It is +inf when the run never settles below eps.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .base import RunOutput

#: at most this many rounds of a learning curve are evaluated exactly (evenly spaced, always the last)
MAX_CURVE_POINTS = 200
#: trace rows kept in a record (evenly thinned) and per-row keys dropped (large arrays)
MAX_TRACE_ROWS = 200
_DROP_KEYS = ("theta",)


def thin_trace(trace: list[dict], max_rows: int = MAX_TRACE_ROWS) -> list[dict]:
    rows = [{k: v for k, v in r.items() if k not in _DROP_KEYS} for r in trace]
    if len(rows) <= max_rows:
        return rows
    idx = np.unique(np.linspace(0, len(rows) - 1, max_rows).round().astype(int))
    return [rows[i] for i in idx]


def evaluate_result(result, problem) -> dict:
    """Exact evaluation of a Result's output policy plus its ledger counts."""
    import spanex

    ev = spanex.evaluate(result.policy, problem)
    return {"suboptimality": ev.suboptimality, "J": ev.J, "J_star": ev.J_star, "kl_ref": ev.kl_ref,
            "exact_eval": ev.exact, "T_data": result.ledger.reward_queries, "T_comp": result.ledger.sample_calls}


def spanner_learning_curve(result, problem, max_points: int = MAX_CURVE_POINTS):
    """(T_data, T_comp, subopt) arrays over the rounds of a SpannerSampling run (exact evaluation).

    Uses ``SpannerSamplingPolicy.laws``, which shares the theta-independent truncation mask across
    all round fits theta_t.
    """
    pol = result.policy
    rows = [r for r in result.trace if "theta" in r]
    if not rows:
        raise ValueError("the run's trace has no theta (run SpannerSampling with trace_theta=True)")
    idx = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), max_points)).round().astype(int))
    thetas = np.array([rows[i]["theta"] for i in idx], dtype=float)
    ex = problem.exact
    beta = problem.beta
    sub = np.zeros(len(idx))
    for x in range(ex.n_prompts):
        laws = pol.laws(x, thetas)                                          # (k, N) exact ideal laws
        log_pi_star = ex.log_pi_star(x, beta)
        for j, probs in enumerate(laws):
            m = probs > 0
            sub[j] += ex.rho[x] * beta * float(np.sum(probs[m] * (np.log(probs[m]) - log_pi_star[m])))
    Td = np.array([rows[i]["T_data"] for i in idx], float)
    Tc = np.array([rows[i]["T_comp"] for i in idx], float)
    return Td, Tc, sub


def cost_to_reach(costs: np.ndarray, subopt: np.ndarray, eps: float) -> float:
    """Last-exit cost: costs[i] for the first i with subopt[j] <= eps for all j >= i; inf if none."""
    bad = np.flatnonzero(subopt > eps)
    if bad.size == 0:
        return float(costs[0])
    i = bad[-1] + 1
    return float(costs[i]) if i < costs.size else math.inf


def run_and_measure(algorithm, problem, seed: int, budget=None, *, curve: bool = False,
                    eps_levels=()) -> RunOutput:
    """Run `algorithm`, evaluate exactly, and (``curve``) read T_data / T_comp to reach each eps."""
    import spanex

    t0 = time.perf_counter()
    result = algorithm.run(problem, seed=seed, budget=budget)
    wall = time.perf_counter() - t0
    metrics = evaluate_result(result, problem)
    metrics["C_cov"] = spanex.coverage(problem)
    metrics["algorithm_wall_time"] = wall
    for k in ("spanner_size", "spanner_T_data", "spanner_T_comp", "sampler_failures", "sampler_clipped"):
        if k in result.extras:
            metrics[k] = result.extras[k]
    if "resolved" in result.extras:
        for k, v in result.extras["resolved"].items():
            if isinstance(v, (int, float, str)):
                metrics[f"param.{k}"] = v
    if curve:
        Td, Tc, sub = spanner_learning_curve(result, problem)
        for eps in eps_levels:
            metrics[f"T_data_to_eps@{eps:g}"] = cost_to_reach(Td, sub, eps)
            metrics[f"T_comp_to_eps@{eps:g}"] = cost_to_reach(Tc, sub, eps)
        metrics["curve_T_data"] = Td.tolist()
        metrics["curve_subopt"] = sub.tolist()
    return RunOutput(metrics=metrics, ledger=result.ledger.to_dict(), trace=thin_trace(result.trace),
                     status=result.status, wall_time=wall)


# ---- plotting helpers ------------------------------------------------------------------------------

def loglog_panel(ax, df, x: str, y: str, label: str | None = None, fit=None, color=None, marker="o"):
    """Scatter of every run, geometric mean per x, and the fitted line (if a SlopeFit is given)."""
    d = df[(df[x] > 0) & (df[y] > 0) & np.isfinite(df[x]) & np.isfinite(df[y])]
    if d.empty:
        return
    ax.scatter(d[x], d[y], s=8, alpha=0.35, color=color, marker=marker)
    g = d.groupby(x)[y].apply(lambda s: float(np.exp(np.mean(np.log(s)))))
    lab = label or y
    if fit is not None:
        lab += f" (slope {fit.slope:.2f} [{fit.lo:.2f}, {fit.hi:.2f}])"
        xs = np.array([d[x].min(), d[x].max()])
        ax.plot(xs, np.exp(fit.intercept) * xs ** fit.slope, "--", color=color, lw=1)
    ax.plot(g.index, g.values, marker=marker, ms=3, lw=1, color=color, label=lab)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.legend(fontsize=6, loc="best")


def save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    import matplotlib.pyplot as plt

    plt.close(fig)
