"""coverage-lower-bound: Theorem 2.1 on the needle family.

Theorem 2.1 (paper-notes §3.1): any learner in the sampling-oracle framework that outputs an
eps-optimal policy spends T_comp ≥ Ω(min{e^{Ω(d)}, e^{Ω(1/beta)}, C_cov}) sampling-oracle calls
unless it queries rewards on ≳ |Y|/8 responses. On ``needle`` (uniform pi_ref over N responses,
theta* = c phi(y*)) the hidden y* has pi_ref-mass 1/N and C_cov ≈ min(e^{c/beta}, N). Per instance,
eps = ``eps_fraction`` × the suboptimality of the best policy that never emits y*
(beta log(1/(1 - pi*(y*))), recorded), so an eps-optimal policy must emit y*, and a weak-oracle draw
hits y* with probability 1/N.

Same rules for everyone. Every algorithm samples with the weak oracle only and the library's default
sampler rule (the sampler finds its own envelope; no M, no exact strong oracle, nothing reads C_cov),
and its output is judged on the law its sampler *emits*. With d < N the features are random sign
vectors, whose largest |<phi_i, phi_j>| (recorded) lets the rewards of other responses leak the
needle's direction, so a learner can learn theta* from few queries; it must still find y* to emit it.

Measured, as outcomes. Each algorithm runs on a budget ladder (sizes 2, 4, 8, ...: rounds, pairs, or
Best-of-N's n), a fresh run per rung, until a rung's emitted law is eps-optimal with
T_data_total < |Y|/8 (the escape not taken); the ladder stops once a rung's T_data reaches |Y|/8.
OnlineDPO and XPO thus get fewer than |Y|/16 rounds (2 queries each), so the escape is not built in.
The measurement is T_comp_total at that rung (training calls plus the calls of one output sample).

Prediction: a *violation* is a run that reaches eps below the escape with T_comp_total < C_cov/8.
A learner whose calls are draws that each hit y* with probability ≤ 1/N finds it within N/8 draws
with probability ≤ 1/8 (union bound), so every algorithm's violation rate among its runs that reached
eps is at most 1/8 (verdict: the 95% interval lies below 1/8). An algorithm that never reaches eps
below the escape does not test the bound (inconclusive; its ladder results are listed). Exhaustive
design enumerates Y (T_comp ≥ |Y| ≥ C_cov by construction): its row is a recipe check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import check_int, check_real
from .analysis import bootstrap_mean, missing_verdict, value_verdict
from .base import AlgorithmTable, Experiment, RunOutput, RunSeeds
from .common import LadderConfig, join_notes, ladder_output, point_ladder, provenance, save

_DESCRIPTION = __doc__.split("\n\n", 1)[1]


def _get(name):
    from ..algorithms import get

    return get(name)


#: every algorithm sized by one ladder rung `size`, weak oracle only, default sampler rule
ALGORITHMS = AlgorithmTable({
    "spanner_sampling": lambda size: _get("spanner_sampling")(T_span=size, T_exp=size, N_try=64, nu=0.5),
    "online_dpo": lambda size: _get("online_dpo")(T=size, strong_oracle="weak"),
    "xpo": lambda size: _get("xpo")(T=size, strong_oracle="weak"),
    "passive_regression": lambda size: _get("passive_regression")(T=size, strong_oracle="weak"),
    "exhaustive_design": lambda size: _get("exhaustive_design")(T=size, strong_oracle="weak"),
    "best_of_n": lambda size: _get("best_of_n")(n=size),
})
#: rows whose outcome the algorithm's construction fixes
RECIPE_CHECKS = {"exhaustive_design": "enumerates Y, so T_comp ≥ |Y| ≥ C_cov by construction"}


@dataclass(frozen=True)
class CoverageLowerBoundConfig(LadderConfig):
    n_seeds: int = 6
    N_values: tuple = (256, 1024, 4096, 8192)
    d: int = 32
    c: float = 1.0
    beta: float = 0.1
    eps_fraction: float = 0.75
    algorithms: tuple = tuple(ALGORITHMS.names)

    def __post_init__(self):
        super().__post_init__()
        self._check_sweep("N_values")
        for N in self.N_values:
            check_int("N_values entry", N, low=16)
        check_int("d", self.d, low=2)
        for k in ("c", "beta"):
            check_real(k, getattr(self, k), low=0, low_open=True)
        check_real("eps_fraction", self.eps_fraction, low=0, high=1, low_open=True, high_open=True)
        self._check_algorithms(ALGORITHMS)


def needle_facts(problem) -> dict:
    """C_cov, the suboptimality of the best policy that never emits y*, and max |<phi_i, phi_j>|."""
    import spanex

    ex = problem.exact
    F = ex.features[0]
    beta = problem.beta
    p_star = ex.pi_star(0, beta)
    y_star = int(problem.meta["y_star"])
    # best policy avoiding y*: pi* conditioned on y != y*, suboptimality beta log(1 / (1 - pi*(y*)))
    miss = float(beta * np.log(1.0 / max(1.0 - p_star[y_star], 1e-300)))
    worst = 0.0
    for start in range(0, F.shape[0], 1024):                     # chunks: N^2 inner products
        G = np.abs(F[start:start + 1024] @ F.T)
        G[np.arange(G.shape[0]), np.arange(start, start + G.shape[0])] = 0.0
        worst = max(worst, float(G.max()))
    return {"C_cov": spanex.coverage(problem), "subopt_without_needle": miss, "max_inner": worst}


class CoverageLowerBound(Experiment):
    name = "coverage-lower-bound"
    title = "Theorem 2.1: no eps-optimal learner spends fewer than ~C_cov calls unless T_data ~ |Y|"
    description = _DESCRIPTION
    Config = CoverageLowerBoundConfig
    requires = ("spanex.instances.needle",) + ALGORITHMS.requires()

    def quick_config(self):
        return CoverageLowerBoundConfig(n_seeds=2, N_values=(64, 512), d=16, n_inference=8, rungs=6,
                                        algorithms=("spanner_sampling", "online_dpo", "passive_regression",
                                                    "exhaustive_design", "best_of_n"), max_sample_calls=2_000_000)

    def points(self, cfg) -> list[dict]:
        return [{"N": int(N), "d": min(cfg.d, int(N)), "c": cfg.c, "beta": cfg.beta, "eps_fraction": cfg.eps_fraction,
                 "algorithm": a, **cfg.ladder_point()} for N in cfg.N_values for a in cfg.algorithms]

    def run_one(self, point: dict, seeds: RunSeeds) -> RunOutput:
        from ..instances.needle import needle

        problem = needle(N=point["N"], c=point["c"], beta=point["beta"], d=point["d"], seed=seeds.instance)
        facts = needle_facts(problem)
        eps = point["eps_fraction"] * facts["subopt_without_needle"]
        escape = point["N"] / 8
        ladder = point_ladder(point, lambda s: ALGORITHMS.make(point["algorithm"], size=s), problem, seeds.algorithm,
                              eps, valid=lambda m: m["T_data_total"] < escape, stop=lambda r: r.T_data_total >= escape)
        any_success = any(r.suboptimality <= eps for r in ladder.rungs)
        out = ladder_output(ladder, {**facts, "eps": eps, "N": point["N"], "eps_optimal_any_rung": float(any_success)})
        m = out.metrics
        m["violation"] = float(ladder.reached and m["T_comp_total_to_eps"] < facts["C_cov"] / 8)
        return out

    def analyse(self, cfg, df) -> list:
        v = []
        for a in cfg.algorithms:
            sub = df[df["algorithm"] == a]
            reached = sub[sub["reached"] > 0]
            kind = "recipe check" if a in RECIPE_CHECKS else "theorem"
            claim = f"{a}: P(T_comp < C_cov/8 | eps-optimal emitted law with T_data < |Y|/8)"
            hints, prov = provenance(sub)
            facts = (f"max |<phi_i, phi_j>| up to {float(sub['max_inner'].max()):.2f}; eps = {cfg.eps_fraction:g} × "
                     f"the suboptimality without the needle ({float(sub['eps'].min()):.3g} to "
                     f"{float(sub['eps'].max()):.3g})" if not sub.empty else "")
            extra = RECIPE_CHECKS.get(a, "")
            if sub.empty:
                v.append(missing_verdict(self.name, claim, "no finished runs", kind=kind))
                continue
            if reached.empty:
                n_any = int(sub["eps_optimal_any_rung"].sum())
                why = (f"no run reached eps below the escape in {len(sub)} runs ({n_any} eps-optimal only with "
                       f"T_data ≥ |Y|/8); the bound was not tested")
                v.append(missing_verdict(self.name, claim, join_notes(why, extra), kind=kind, oracle_hints=hints,
                                         n_runs=len(sub)))
                continue
            est, lo, hi = bootstrap_mean(reached["violation"].astype(float), reached["replicate"])
            ratio = float((reached["T_comp_total_to_eps"] / reached["C_cov"]).min())
            note = join_notes(f"reached eps below the escape in {len(reached)}/{len(sub)} runs; min T_comp_total/C_cov "
                              f"there {ratio:.3g}", facts, extra, prov)
            why = (f"{a} emitted an eps-optimal law with fewer than C_cov/8 calls and fewer than |Y|/8 queries in "
                   f"{int(reached['violation'].sum())} runs (min T_comp/C_cov {ratio:.3g}). A weak-oracle draw hits "
                   "y* with probability 1/N and eps is below what missing y* costs, so this points to the "
                   "accounting (a sampling call not charged) or to an emitted law that the evaluation did not "
                   "see (check the law column), not to the theorem.")
            v.append(value_verdict(self.name, claim, est, lo, hi, 0.125, 0.0, "at most", len(reached), note=note,
                                   kind=kind, oracle_hints=hints, if_fails=why, basis="violation rate over runs"))
        return v

    def plot(self, cfg, df, path) -> None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        for i, a in enumerate(cfg.algorithms):
            sub = df[df["algorithm"] == a]
            if sub.empty:
                continue
            col = f"C{i}"
            good = sub["reached"] > 0
            for ax, y in zip(axes, ("T_comp_total_to_eps", "T_data_total_to_eps")):
                ax.scatter(sub["C_cov"][good], sub[y][good].clip(lower=0.5), s=14, color=col, label=a)
                ax.scatter(sub["C_cov"][~good], sub[y][~good].clip(lower=0.5), s=14, facecolors="none",
                           edgecolors=col, marker="^")
        xs = np.array([df["C_cov"].min(), df["C_cov"].max()])
        axes[0].plot(xs, xs / 8, "k--", lw=1, label="C_cov / 8")
        axes[1].plot(df["C_cov"], df["N"] / 8, "k:", lw=1, label="|Y| / 8")
        for ax, y in zip(axes, ("T_comp_total at the first eps-optimal rung", "T_data_total there")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("C_cov")
            ax.set_ylabel(y, fontsize=7)
        axes[0].legend(fontsize=6)
        fig.suptitle("coverage-lower-bound (filled: reached eps below |Y|/8; ▲ censored: largest cost tried)",
                     fontsize=9)
        save(fig, path)
