"""spanner-scaling: Theorem 3.1's coverage claims: T_comp ∝ C_cov, T_data independent of C_cov.

Theorem 3.1 (paper-notes §3.2): SpannerSampling, with the weak oracle only, is eps-optimal with
T_data = Õ(R_max^2 d^2 log^2(1/delta) / (beta min(eps, beta))), which has no C_cov in it, and
T_comp = Õ(C_cov R_max^2 / beta^2) T_data^2, linear in C_cov.

Moving C_cov alone. pi_ref(y|x) ∝ exp(-lambda r*(x,y)/beta) under-weights the good responses of a
random linear bandit; raising lambda moves C_cov(pi*_beta) from ≈ 16 to ≈ 1000 while R_max, beta,
d and eps stay fixed. (Moving beta or the reward scale would also move T_data through R_max^2/beta.)

Measured, as outcomes. Every seed runs SpannerSampling once per lambda with sizes that do not
depend on C_cov: T_span prompts with at most N_try pair draws each (a fixed N_try, so the spanner
costs at most a C_cov-independent 2 T_span N_try calls), then T_exp exploration rounds; the sampler
finds its own envelope (no M is given, nothing reads C_cov). On the exact learning curve the run's
**T_data and T_comp at the first passage below eps** are read off the Ledger; T_comp adds the calls
one output sample costs (the output is a rejection sampler; measured on the final policy, whose
target is within eps of pi* like the policy at the first passage). A run that never passes below eps
is censored (its costs at the end are lower bounds).

Predictions. T_comp to reach eps ∝ C_cov^a with a = 1 ± 0.25: each exploration draw and each output
draw is a rejection sample whose acceptance rate is ≈ 1/(density ratio) ≈ 1/C_cov, while the number
of draws (the data) does not depend on C_cov; ±0.25 allows the C_cov-independent spanner cost at
the low end and per-anchor density ratios above C_cov. T_data to reach eps ∝ C_cov^a with
a = 0 ± 0.1 (coverage is not needed statistically; ±0.1 allows the tilt's effect on which pairs
pi_ref offers the spanner).

Recipe check. SpannerSampling with its default recipe (every size from eps, delta, d, beta, R_max)
must output an eps-optimal policy in ≥ 1 − delta of the runs, at every C_cov: a check of the
library's reconstructed parameter recipe, labelled as such.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import check_int, check_real
from .analysis import bootstrap_mean, fit_slope, missing_verdict, slope_diagnosis, slope_verdict, value_verdict
from .base import AlgorithmTable, Experiment, RunOutput, RunSeeds
from .common import (RecipeCurveConfig, first_passage, join_notes, loglog_panel, measure, provenance, save, spanner_learning_curve,
                     thin_trace)

_DESCRIPTION = __doc__.split("\n\n", 1)[1]


def _spanner_sampling(**params):
    from ..algorithms import get

    return get("spanner_sampling")(**params)


#: 'curve': fixed sizes, long exploration (the measurement); 'recipe': the default recipe for eps, delta
ALGORITHMS = AlgorithmTable({
    "spanner_sampling": lambda mode, eps, delta, T_span=None, N_try=None, T_exp=None, nu=None: (
        _spanner_sampling(eps=eps, delta=delta, T_span=T_span, N_try=N_try, T_exp=T_exp, nu=nu)
        if mode == "curve" else _spanner_sampling(eps=eps, delta=delta)),
})


@dataclass(frozen=True)
class SpannerScalingConfig(RecipeCurveConfig):
    """Knobs of the coverage sweep (defaults: the full version)."""

    n_seeds: int = 20
    N_try: int = 16                 # fixed for every C_cov: the spanner's cost does not scale with it
    T_exp: int = 2500
    d: int = 8
    base_tilts: tuple = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
    eps: float = 0.01               # the first passage below eps is the measurement

    def __post_init__(self):
        super().__post_init__()
        check_int("d", self.d, low=1)
        check_real("eps", self.eps, low=0, low_open=True)
        self._check_sweep("base_tilts")
        for t in self.base_tilts:
            check_real("base_tilts entry", t, low=0, high=5)


def tilted_linear_bandit(*, base_tilt: float, n_prompts, n_responses, d, beta, reward_scale, sigma, seed):
    """``linear_bandit`` features and theta*, with pi_ref(y|x) ∝ exp(-base_tilt r*(x,y)/beta).

    base_tilt = 0 is the uniform base model; larger values hide the good responses from pi_ref and
    raise C_cov(pi*_beta) = max_y exp(r*/beta) / E_ref exp(r*/beta) without changing R_max or beta.
    """
    from ..instances.linear import linear_bandit
    from ..tabular import tabular_problem

    p = linear_bandit(n_prompts=n_prompts, n_responses=n_responses, d=d, beta=beta, reward_scale=reward_scale,
                      sigma=sigma, ref="uniform", seed=seed)
    ex = p.exact
    refs = []
    for F in ex.features:
        z = -base_tilt * (F @ ex.theta_star) / beta
        w = np.exp(z - z.max())
        refs.append(w / w.sum())
    q = tabular_problem(ex.rho, refs, ex.features, theta_star=ex.theta_star, beta=beta, sigma=sigma,
                        B=p.B, feature_norm_bound=1.0, name="tilted_linear_bandit")
    q.meta.update(p.meta, base_tilt=base_tilt)
    return q


class SpannerScaling(Experiment):
    name = "spanner-scaling"
    title = "Theorem 3.1: T_comp to reach eps ∝ C_cov, T_data to reach eps independent of C_cov"
    description = _DESCRIPTION
    Config = SpannerScalingConfig
    requires = ("spanex.instances.linear",) + ALGORITHMS.requires()

    def quick_config(self):
        return SpannerScalingConfig(n_seeds=3, n_prompts=2, n_responses=100, base_tilts=(0.0, 0.75, 1.5), T_span=60,
                                    T_exp=600, eps=0.02, n_inference=8, recipe_seeds=2)

    def points(self, cfg) -> list[dict]:
        base = {**cfg.curve_point(), "d": cfg.d}
        pts = [{**base, "mode": "curve", "base_tilt": float(t), "eps": cfg.eps} for t in cfg.base_tilts]
        if cfg.recipe_seeds:
            pts += [{**base, "mode": "recipe", "base_tilt": float(t), "eps": cfg.recipe_eps, "delta": cfg.delta}
                    for t in cfg.base_tilts]
        return pts

    def replicates(self, cfg, point: dict) -> int:
        return cfg.n_seeds if point["mode"] == "curve" else cfg.recipe_seeds

    def run_one(self, point: dict, seeds: RunSeeds) -> RunOutput:
        import spanex

        problem = tilted_linear_bandit(**{k: point[k] for k in ("base_tilt", "n_prompts", "n_responses", "d", "beta",
                                                                "sigma")}, reward_scale=1.0, seed=seeds.instance)
        if point["mode"] == "recipe":
            alg = ALGORITHMS.make("spanner_sampling", mode="recipe", eps=point["eps"], delta=point["delta"])
            result = alg.run(problem, seed=seeds.algorithm)
            m = measure(result, problem, eps=point["eps"], n_inference=point["n_inference"], seed=seeds.algorithm + 1)
            m.update(C_cov=spanex.coverage(problem), hints=";".join(m["hints"]))     # recorded after the run
            return RunOutput(metrics=m, ledger=result.ledger.to_dict(), trace=thin_trace(result.trace),
                             status=result.status, wall_time=result.wall_time)
        alg = ALGORITHMS.make("spanner_sampling", mode="curve", eps=point["eps"], delta=0.1, T_span=point["T_span"],
                              N_try=point["N_try"], T_exp=point["T_exp"], nu=point["nu"])
        result = alg.run(problem, seed=seeds.algorithm)
        Td, Tc, sub = spanner_learning_curve(result, problem)
        final = measure(result, problem, eps=point["eps"], n_inference=point["n_inference"], seed=seeds.algorithm + 1)
        fd, fc = first_passage(Td, sub, point["eps"]), first_passage(Tc, sub, point["eps"])
        reached = bool(np.isfinite(fd))
        m = {"C_cov": spanex.coverage(problem), "reached": float(reached), "floor": float(sub[0]),
             "T_data_to_eps": fd if reached else float(Td[-1]),
             "T_comp_train_to_eps": fc if reached else float(Tc[-1]),
             "calls_per_sample": final["calls_per_sample"], "envelope": final["envelope"],
             "final_emitted": final["suboptimality"], "final_ideal": float(sub[-1]), "law": final["law"],
             "hints": ";".join(final["hints"]), "spanner_size": result.extras.get("spanner_size"),
             "T_comp_spanner": float(Tc[0]), "T_data_spanner": float(Td[0]),
             "T_data": float(result.ledger.reward_queries), "T_comp": float(result.ledger.sample_calls)}
        m["T_comp_to_eps"] = m["T_comp_train_to_eps"] + final["calls_per_sample"]
        return RunOutput(metrics=m, ledger=result.ledger.to_dict(), trace=thin_trace(result.trace),
                         status=result.status, wall_time=result.wall_time)

    # ---- analysis ------------------------------------------------------------------------------------
    def analyse(self, cfg, df) -> list:
        n = self.name
        v = []
        c = df[df["mode"] == "curve"]
        hints, prov = provenance(c)
        cens = c["reached"].astype(float) == 0
        why = {
            "T_comp": {
                "below": "T_comp to reach eps grew more slowly than C_cov. {diag} Likely the constants: the "
                         "spanner's C_cov-independent calls (at most 2 T_span N_try) and the anchors dominate at "
                         "small C_cov; or the instance: the self-calibrated envelope follows the per-anchor "
                         "truncated target, whose density ratio can stay below C_cov when truncation removes the "
                         "best responses (then check that the emitted law is still eps-optimal).",
                "above": "T_comp to reach eps grew faster than C_cov. {diag} Likely the reconstruction: the "
                         "per-anchor truncated targets of reward truncation can have density ratios above C_cov, "
                         "so each draw costs more than C_cov; or the data to reach eps grows with C_cov too (see "
                         "the T_data row), which multiplies the per-draw cost."},
            "T_data": {
                "above": "The data to reach eps grew with C_cov. {diag} The tilt changes which pairs pi_ref offers "
                         "the spanner: at large C_cov the pi_ref pairs say less about the directions pi* weights, "
                         "so exploration makes up for it. That is the instance interacting with the "
                         "reconstruction's average-case spanner (its coverage of pi*-relevant pairs is what the "
                         "theorem's Õ hides); if the slope stays off at every tilt, the prediction is wrong for "
                         "this family.",
                "below": "The data to reach eps fell as C_cov grew. {diag} The instance: the tilt also moves pi_ref "
                         "towards pi* in the directions the spanner covers (pi_ref's own suboptimality changes "
                         "with the tilt), so a fixed eps can be easier at large C_cov."},
        }
        for y, pred, tol, label in (("T_comp_to_eps", 1.0, 0.25, "T_comp"), ("T_data_to_eps", 0.0, 0.1, "T_data")):
            claim = f"{label} to first reach eps={cfg.eps:g} ∝ C_cov^a"
            try:
                f = fit_slope(c["C_cov"], c[y].astype(float), c["replicate"], censored=cens)
            except ValueError as e:
                v.append(missing_verdict(n, claim, str(e), oracle_hints=hints))
                continue
            diag = slope_diagnosis(c["C_cov"], c[y].astype(float), pred, tol, c["replicate"], cens)
            v.append(slope_verdict(n, claim, f, pred, tol, note=join_notes(f.describe(), _cov_note(c), prov),
                                   oracle_hints=hints,
                                   if_fails={k: t.format(diag=diag) for k, t in why[label].items()}))
        r = df[df["mode"] == "recipe"]
        claim = f"default recipe (eps={cfg.recipe_eps:g}): P(eps-optimal) ≥ 1 − delta, every C_cov"
        if r.empty:
            v.append(missing_verdict(n, claim, "no recipe runs (recipe_seeds = 0)", kind="recipe check"))
        else:
            rh, rprov = provenance(r)
            ok = (r["suboptimality"].astype(float) <= r["eps"].astype(float)).astype(float)
            est, lo, hi = bootstrap_mean(ok, r["replicate"])
            worst = float((r["suboptimality"] / r["eps"]).max())
            why = (f"The recipe's sizes did not deliver eps in 1 − delta of the runs (worst subopt/eps {worst:.3g}). "
                   "This is a check of the library's reconstructed constants (c1..c4, nu's floor), not of the "
                   "theorem: the theorem's Õ leaves them open.")
            v.append(value_verdict(n, claim, est, lo, hi, 1 - cfg.delta, 0.0, "at least", len(r),
                                   note=join_notes(f"max subopt/eps = {worst:.3g}", rprov), kind="recipe check",
                                   oracle_hints=rh, if_fails=why, basis="fraction of eps-optimal outputs"))
        return v

    def plot(self, cfg, df, path) -> None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
        c = df[df["mode"] == "curve"].assign(censored=lambda t: t["reached"] == 0)
        for ax, y, col in zip(axes[:2], ("T_comp_to_eps", "T_data_to_eps"), ("C0", "C1")):
            try:
                fit = fit_slope(c["C_cov"], c[y].astype(float), c["replicate"], censored=c["censored"], n_boot=200)
            except ValueError:
                fit = None
            loglog_panel(ax, c, "C_cov", y, fit=fit, color=col, censored="censored", group="base_tilt")
            ax.set_title(f"{y} (first passage below eps={cfg.eps:g}; ▲ censored)", fontsize=7)
        r = df[df["mode"] == "recipe"]
        if not r.empty:
            axes[2].scatter(r["C_cov"], r["suboptimality"].clip(lower=1e-6), s=10, color="C2")
            axes[2].axhline(cfg.recipe_eps, color="k", ls="--", lw=1, label="eps")
            axes[2].set_xscale("log")
            axes[2].set_yscale("log")
            axes[2].set_xlabel("C_cov")
            axes[2].set_title("recipe check: output suboptimality", fontsize=7)
            axes[2].legend(fontsize=6)
        else:
            axes[2].axis("off")
        fig.suptitle(self.name, fontsize=9)
        save(fig, path)


def _cov_note(c) -> str:
    return f"C_cov {float(c['C_cov'].min()):.3g} to {float(c['C_cov'].max()):.3g}"
