"""proper-vs-improper: Theorem 4.1 on Max-k-DNF instances, n = 8..14 variables (|Y| = 2^n).

Theorem 4.1 (paper-notes §3.3): under rETH no *proper* algorithm (one that explores with and outputs
linear-softmax policies pi_theta) is both data-efficient and compute-efficient, while SpannerSampling's
improper, inference-time exploration costs poly(d, C_cov(pi*_beta)). With the weak oracle a proper
learner pays about C_cov(pi_theta) pi_ref draws per draw from pi_theta, and XPO's optimistic theta's
tilt towards assignments satisfying many terms, which pi_ref (uniform) produces with probability
2^{-Ω(n)}.

The family. ``max_k_dnf`` with m = n terms of k literals, c/beta = kappa fixed (so C_cov(pi*_beta)
is bounded by e^{kappa} whatever n is), and beta chosen per instance so that pi_ref's suboptimality
is exactly ``ref_subopt`` (the suboptimality is beta KL(pi_ref || pi*) and the KL depends on
c/beta only). With a fixed beta instead, pi_ref gets *closer* to pi* as n grows (the reward is an
average of n term indicators) and the instances get easier with |Y|. The reward noise scales with c.

Measured, as outcomes. Every algorithm runs on a doubling ladder of sizes T = 2, 4, ..., 2^rungs
(rounds for OnlineDPO and XPO; T_span = T_exp = T for SpannerSampling), a fresh run per rung, until a
rung's emitted law is eps-optimal; every sampler calibrates its own envelope (none is given). The cost
to reach eps is that rung's T_comp_total (training calls plus the calls of one output sample); the
envelope is the largest density-ratio bound the run's samplers settled on. A ladder that runs out of
rungs or budget is censored (a lower bound).

Predictions (slopes of log cost on log |Y| over the n values). XPO: its cost to reach eps grows faster
than any polynomial of n could explain, slope ≥ the slope of n^2 over the range (``poly_slope``,
0.27 for n = 8..14). SpannerSampling: its cost divided by C_cov(pi*_beta) is polynomial in n, slope
0 ± poly_slope (T_data grows at most like d^2 with d = n + 1). OnlineDPO: no prediction. It is
passive (it samples from its own plain fit, which is not pushed towards rare assignments), so its
sampling cost stays near C_cov(pi_theta) ≈ C_cov(pi*), and whether its data suffices depends on how
well pi_ref covers pi*, which the family keeps bounded; Theorem 4.1 says that *some* instance
defeats every proper method, not that this one defeats OnlineDPO. Its slope is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.errors import check_int, check_real
from .analysis import fit_slope, missing_verdict, slope_diagnosis, slope_verdict
from .base import AlgorithmTable, Experiment, RunOutput, RunSeeds
from .common import LadderConfig, join_notes, ladder_output, point_ladder, provenance, save

_DESCRIPTION = __doc__.split("\n\n", 1)[1]


def _get(name):
    from ..algorithms import get

    return get(name)


ALGORITHMS = AlgorithmTable({
    "spanner_sampling": lambda size, eps: _get("spanner_sampling")(eps=eps, T_span=size, T_exp=size, N_try=64),
    "online_dpo": lambda size, eps: _get("online_dpo")(T=size, strong_oracle="weak"),
    "xpo": lambda size, eps: _get("xpo")(T=size, strong_oracle="weak"),
})


@dataclass(frozen=True)
class ProperVsImproperConfig(LadderConfig):
    n_seeds: int = 6
    n_values: tuple = (8, 10, 12, 14)
    k: int = 3
    kappa: float = 5.0
    ref_subopt: float = 0.15
    sigma_rel: float = 0.1
    eps: float = 0.03
    algorithms: tuple = tuple(ALGORITHMS.names)
    n_inference: int = 8

    def __post_init__(self):
        super().__post_init__()
        self._check_sweep("n_values")
        for n in self.n_values:
            check_int("n_values entry", n, low=3, high=14)
        check_int("k", self.k, low=1, high=min(self.n_values))
        for k in ("kappa", "ref_subopt", "eps"):
            check_real(k, getattr(self, k), low=0, low_open=True)
        check_real("sigma_rel", self.sigma_rel, low=0)
        if self.eps >= self.ref_subopt:
            raise ValueError(f"eps must be below ref_subopt ({self.ref_subopt}) so that pi_ref is not eps-optimal, "
                             f"got {self.eps}")
        self._check_algorithms(ALGORITHMS)

    @property
    def poly_slope(self) -> float:
        """Slope of log(n^2) on log(2^n) between the smallest and the largest n: what a cost polynomial
        of degree 2 in n (T_data ∝ d^2, d = n + 1) shows on log |Y| axes."""
        lo, hi = min(self.n_values), max(self.n_values)
        return 2 * math.log(hi / lo) / ((hi - lo) * math.log(2))


def calibrated_dnf(n: int, k: int, kappa: float, ref_subopt: float, sigma_rel: float, seed: int):
    """max_k_dnf with c/beta = kappa and beta such that pi_ref's suboptimality is ref_subopt."""
    from ..instances.max_k_dnf import max_k_dnf

    unit = max_k_dnf(n=n, k=k, beta=1.0, c=kappa, seed=seed)           # KL(pi_ref || pi*) depends on c/beta only
    kl = unit.exact.suboptimality([unit.exact.ref_probs[0]], 1.0)
    beta = ref_subopt / kl
    p = max_k_dnf(n=n, k=k, beta=beta, c=kappa * beta, sigma=sigma_rel * kappa * beta, seed=seed)
    p.meta.update(kappa=kappa, ref_subopt=ref_subopt)
    return p


class ProperVsImproper(Experiment):
    name = "proper-vs-improper"
    title = "Theorem 4.1: proper exploration (OnlineDPO, XPO; weak oracle) vs SpannerSampling on Max-k-DNF"
    description = _DESCRIPTION
    Config = ProperVsImproperConfig
    requires = ("spanex.instances.max_k_dnf",) + ALGORITHMS.requires()

    def quick_config(self):
        return ProperVsImproperConfig(n_seeds=2, n_values=(6, 8, 10), rungs=8, n_inference=4,
                                      max_sample_calls=1_000_000)

    def points(self, cfg) -> list[dict]:
        return [{"algorithm": a, "n": int(n), "k": cfg.k, "kappa": cfg.kappa, "ref_subopt": cfg.ref_subopt,
                 "sigma_rel": cfg.sigma_rel, "eps": cfg.eps, **cfg.ladder_point()}
                for n in cfg.n_values for a in cfg.algorithms]

    def run_one(self, point: dict, seeds: RunSeeds) -> RunOutput:
        import spanex

        problem = calibrated_dnf(point["n"], point["k"], point["kappa"], point["ref_subopt"], point["sigma_rel"],
                                 seeds.instance)
        ladder = point_ladder(point, lambda s: ALGORITHMS.make(point["algorithm"], size=s, eps=point["eps"]), problem,
                              seeds.algorithm, point["eps"])
        facts = {"C_cov": spanex.coverage(problem), "n": point["n"], "Y_size": 2.0 ** point["n"],
                 "beta": problem.beta, "c": problem.meta["c"],
                 "ref_subopt_measured": problem.exact.suboptimality([problem.exact.ref_probs[0]], problem.beta)}
        out = ladder_output(ladder, facts)
        out.metrics["envelope_max"] = max((r.envelope for r in ladder.rungs if r.envelope is not None), default=None)
        return out

    def analyse(self, cfg, df) -> list:
        n = self.name
        v = []
        poly = cfg.poly_slope
        fits = {}
        for a in cfg.algorithms:
            s = df[df["algorithm"] == a]
            try:
                fits[a] = fit_slope(s["Y_size"], s["T_comp_total_to_eps"].astype(float), s["replicate"],
                                    censored=s["reached"] == 0)
            except ValueError as e:
                fits[a] = str(e)
        others = "; ".join(f"{a} (no prediction): slope {f.slope:.3g} [{f.lo:.3g}, {f.hi:.3g}]"
                           for a, f in fits.items() if a == "online_dpo" and not isinstance(f, str))
        if "xpo" in cfg.algorithms:
            s = df[df["algorithm"] == "xpo"]
            claim = f"xpo: T_comp to reach eps ∝ |Y|^a, a ≥ {poly:.2g} (faster than n^2)"
            hints, prov = provenance(s)
            f = fits["xpo"]
            if isinstance(f, str):
                v.append(missing_verdict(n, claim, f, oracle_hints=hints))
            else:
                why = ("XPO reached eps without a cost growing faster than a polynomial in n. "
                       + slope_diagnosis(s["Y_size"], s["T_comp_total_to_eps"].astype(float), poly, 0.0,
                                         s["replicate"], s["reached"] == 0)
                       + " The theorem is a worst case under rETH: this family (the instance) may not force XPO's "
                         "optimism onto rare assignments at these n, or its self-calibrated sampler may emit a "
                         "clipped law that still counts as eps-optimal (see the envelope panel).")
                v.append(slope_verdict(n, claim, f, poly, 0.0, side="at least", oracle_hints=hints, if_fails=why,
                                       note=join_notes(f.describe(), _envelope_note(s), others, prov)))
        if "spanner_sampling" in cfg.algorithms:
            s = df[df["algorithm"] == "spanner_sampling"]
            claim = "spanner_sampling: T_comp to reach eps / C_cov(pi*) ∝ |Y|^a, a ≈ 0"
            hints, prov = provenance(s)
            y = s["T_comp_total_to_eps"].astype(float) / s["C_cov"].astype(float)
            try:
                f = fit_slope(s["Y_size"], y, s["replicate"], censored=s["reached"] == 0)
            except ValueError as e:
                v.append(missing_verdict(n, claim, str(e), oracle_hints=hints))
            else:
                diag = slope_diagnosis(s["Y_size"], y, 0.0, poly, s["replicate"], s["reached"] == 0)
                why = {"above": "SpannerSampling's cost per unit of coverage grew faster than a degree-2 polynomial "
                                "of n. " + diag + " The reconstruction, if the rung reaching eps grows faster than "
                                "d^2 (N_try and nu are fixed while d = n + 1 grows, see the rung panel); the "
                                "instance, if the output sampler's envelope grows faster than C_cov(pi*) (per-anchor "
                                "truncated targets, see the envelope panel).",
                       "below": "SpannerSampling's cost per unit of coverage fell with n. " + diag + " The "
                                "instance: C_cov(pi*) grows with n in this family while the sampler's envelope "
                                "follows the truncated target, which can grow more slowly."}
                v.append(slope_verdict(n, claim, f, 0.0, poly, oracle_hints=hints, if_fails=why,
                                       note=join_notes(f.describe(), f"C_cov {float(s['C_cov'].min()):.3g} to "
                                                                     f"{float(s['C_cov'].max()):.3g}",
                                                       _envelope_note(s), prov)))
        return v

    def plot(self, cfg, df, path) -> None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
        for i, a in enumerate(cfg.algorithms):
            s = df[df["algorithm"] == a]
            if s.empty:
                continue
            g = s.groupby("n").agg(t=("T_comp_total_to_eps", lambda x: float(np.exp(np.mean(np.log(x))))))
            axes[0].plot(2.0 ** g.index, g["t"], marker="o", ms=3, color=f"C{i}", label=a)
            cens = s[s["reached"] == 0]
            axes[0].scatter(2.0 ** cens["n"], cens["T_comp_total_to_eps"], marker="^", color=f"C{i}", s=14)
            e = s[s["envelope_max"].notna()] if "envelope_max" in s else s.iloc[:0]
            if not e.empty:
                ge = e.groupby("n")["envelope_max"].median()
                axes[1].plot(2.0 ** ge.index, ge.values, marker="o", ms=3, color=f"C{i}", label=a)
            gs = s.groupby("n")["size_at_eps"].median()
            axes[2].plot(2.0 ** gs.index, gs.values, marker="o", ms=3, color=f"C{i}", label=a)
        titles = ("T_comp to reach eps (▲ censored)", "sampler envelope (median of max M)", "rung T reaching eps")
        for ax, y in zip(axes, titles):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("|Y| = 2^n")
            ax.set_title(y, fontsize=7)
            ax.legend(fontsize=6)
        fig.suptitle("proper-vs-improper (max_k_dnf, pi_ref suboptimality fixed)", fontsize=9)
        save(fig, path)


def _envelope_note(s) -> str:
    if "envelope_max" not in s or s["envelope_max"].isna().all():
        return ""
    g = s.groupby("n")["envelope_max"].median()
    return "median envelope by n: " + ", ".join(f"{int(k)}: {v:.3g}" for k, v in g.items())
