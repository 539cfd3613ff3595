"""spanner-scaling: Theorem 3.1 on random linear bandits.

Theorem 3.1 (paper-notes §3.2): SpannerSampling, with the weak oracle only, is eps-optimal with
T_data = Õ(R_max^2 d^2 log^2(1/delta) / (beta min(eps, beta))) and
T_comp = Õ(C_cov R_max^2 / beta^2) T_data^2. SpannerSampling runs with its default recipe
(every parameter derived from eps, delta, d, beta, R_max; M_rej = e^2 C_cov, N_try ∝ M_rej). Three
sweeps of the knobs in the bounds:

1. **coverage**: a worse base model. pi_ref(y|x) ∝ exp(-lambda r*(x,y)/beta) under-weights good
   responses; raising lambda moves C_cov(pi*_beta) over two decades while R_max, beta, d and eps,
   hence the recipe's data parameters, stay fixed. (Moving beta or the reward scale instead would
   also move T_data through its R_max^2/beta factor.) Predicted: T_comp ∝ C_cov (slope 1: the
   sampler spends ≈ 2 M_rej calls per draw, the spanner ≤ N_try ∝ M_rej per prompt); T_data flat
   (slope 0); the data needed to reach eps, read off the exact learning curve, flat too (slope 0:
   coverage is not needed statistically).
2. **eps**: the recipe for each eps. Predicted T_data ∝ 1/eps (slope 1, the fast rate of KL
   regularization; a slow rate would be 2) and T_comp ∝ T_data^2 ∝ 1/eps^2 (slope 2).
3. **d**: T_data ∝ d^2 (slope 2).

In every run the output must be eps-optimal with probability ≥ 1 − delta (the guarantee itself).

Tolerances (fixed before running): ±0.2 on the T_comp-vs-C_cov slope (C_cov-independent costs,
e.g. the anchors and the spanner pairs of informative prompts, flatten the low end); ±0.1 on the
T_data-vs-C_cov slope (only the random spanner size can move it); ±0.25 on the data-to-reach slope
(a noisy last-exit time, floored by the spanner's own data) and on the eps and d slopes (the Õ hides
log(T_exp/delta) factors inside nu and the adaptive spanner size); ±0.3 on the T_comp-vs-eps slope
(it compounds two such factors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import check_choice, check_int, check_real
from .analysis import bootstrap_mean, fit_slope, missing_verdict, slope_verdict, value_verdict
from .base import BaseConfig, Experiment, RunOutput, RunSeeds
from .common import loglog_panel, run_and_measure, save

SWEEPS = ("coverage", "eps", "d")
_DESCRIPTION = __doc__.split("\n\n", 1)[1]


@dataclass(frozen=True)
class SpannerScalingConfig(BaseConfig):
    """Knobs of the spanner-scaling / preferences sweeps (defaults: the full version)."""

    n_seeds: int = 6
    sweeps: tuple = SWEEPS
    feedback: str = "reward"
    # instance (linear_bandit features and theta*, pi_ref tilted by base_tilt)
    n_prompts: int = 4
    n_responses: int = 200
    d: int = 8
    beta: float = 0.2
    reward_scale: float = 1.0
    sigma: float = 0.5
    # SpannerSampling recipe
    eps: float = 0.05
    delta: float = 0.1
    # coverage sweep: lambda values of pi_ref ∝ exp(-lambda r*/beta)
    base_tilts: tuple = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
    reach_eps: float = 0.01
    # eps sweep
    eps_values: tuple = (0.1, 0.05, 0.025, 0.0125)
    # d sweep
    d_values: tuple = (4, 8, 12, 16)

    def __post_init__(self):
        super().__post_init__()
        if not self.sweeps or any(s not in SWEEPS for s in self.sweeps):
            raise ValueError(f"sweeps must be a non-empty subset of {list(SWEEPS)}, got {self.sweeps!r}")
        check_choice("feedback", self.feedback, ("reward", "preference"))
        for k in ("n_prompts", "d"):
            check_int(k, getattr(self, k), low=1)
        check_int("n_responses", self.n_responses, low=2)
        for k in ("beta", "reward_scale", "eps", "reach_eps"):
            check_real(k, getattr(self, k), low=0, low_open=True)
        check_real("sigma", self.sigma, low=0)
        check_real("delta", self.delta, low=0, high=1, low_open=True, high_open=True)
        _check_values("base_tilts", self.base_tilts, kind="tilt", n_min=2 if "coverage" in self.sweeps else 0)
        _check_values("eps_values", self.eps_values, kind="real", n_min=2 if "eps" in self.sweeps else 0)
        _check_values("d_values", self.d_values, kind="int", n_min=2 if "d" in self.sweeps else 0)


def _check_values(name, values, *, kind: str, n_min: int):
    if not isinstance(values, tuple):
        raise TypeError(f"{name} must be a list of numbers, got {values!r}")
    if len(set(values)) < n_min:
        raise ValueError(f"{name} needs at least {n_min} distinct values to fit a slope, got {list(values)}")
    for v in values:
        if kind == "real":
            check_real(f"{name} entry", v, low=0, low_open=True)
        elif kind == "tilt":
            check_real(f"{name} entry", v, low=0, high=5)
        else:
            check_int(f"{name} entry", v, low=1)


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
                        feature_norm_bound=1.0, name="tilted_linear_bandit")
    q.meta.update(p.meta, base_tilt=base_tilt)
    return q


class SpannerScaling(Experiment):
    name = "spanner-scaling"
    title = "Theorem 3.1: T_comp ∝ C_cov, T_data independent of C_cov, fast 1/eps rate"
    description = _DESCRIPTION
    Config = SpannerScalingConfig
    requires = ("spanex.algorithms.spanner_sampling", "spanex.instances.linear")

    def quick_config(self):
        return SpannerScalingConfig(n_seeds=3, n_prompts=2, n_responses=100, base_tilts=(0.0, 0.75, 1.5),
                                    eps_values=(0.1, 0.05, 0.025), d_values=(4, 8))

    # ---- sweep -------------------------------------------------------------------------------------
    def points(self, cfg) -> list[dict]:
        base = dict(n_prompts=cfg.n_prompts, n_responses=cfg.n_responses, d=cfg.d, beta=cfg.beta,
                    reward_scale=cfg.reward_scale, sigma=cfg.sigma, feedback=cfg.feedback, base_tilt=0.0,
                    eps=cfg.eps, delta=cfg.delta, reach_eps=cfg.reach_eps)
        pts = []
        if "coverage" in cfg.sweeps:
            pts += [{**base, "sweep": "coverage", "base_tilt": float(v)} for v in cfg.base_tilts]
        if "eps" in cfg.sweeps:
            pts += [{**base, "sweep": "eps", "eps": float(e)} for e in cfg.eps_values]
        if "d" in cfg.sweeps:
            pts += [{**base, "sweep": "d", "d": int(d)} for d in cfg.d_values]
        return pts

    def run_one(self, point: dict, seeds: RunSeeds) -> RunOutput:
        from ..algorithms.spanner_sampling import SpannerSampling

        problem = tilted_linear_bandit(**{k: point[k] for k in ("base_tilt", "n_prompts", "n_responses", "d", "beta",
                                                                "reward_scale", "sigma")}, seed=seeds.instance)
        problem = problem.with_feedback(point["feedback"])
        alg = SpannerSampling(eps=point["eps"], delta=point["delta"])
        levels = sorted({point["eps"], point["reach_eps"]})
        out = run_and_measure(alg, problem, seeds.algorithm, curve=True, eps_levels=levels)
        out.metrics["R_max"] = problem.R_max
        out.metrics["success"] = float(out.metrics["suboptimality"] <= point["eps"])
        return out

    # ---- analysis ------------------------------------------------------------------------------------
    def analyse(self, cfg, df) -> list:
        n = self.name
        v = []

        def slope(sub, x, y, claim, pred, tol, side="two-sided"):
            yy = sub[y].astype(float)
            ok = np.isfinite(yy)
            note = f"{int((~ok).sum())} of {len(sub)} runs never settled below eps (dropped)" if (~ok).any() else ""
            try:
                f = fit_slope(sub[x][ok], yy[ok], sub["replicate"][ok])
            except ValueError as e:
                return missing_verdict(n, claim, str(e))
            return slope_verdict(n, claim, f, pred, tol, side, note=note)

        reach = f"T_data_to_eps@{cfg.reach_eps:g}"
        if "coverage" in cfg.sweeps:
            c = df[df["sweep"] == "coverage"]
            v.append(slope(c, "C_cov", "T_comp", "coverage: T_comp ∝ C_cov^a", 1.0, 0.2))
            v.append(slope(c, "C_cov", "T_data", "coverage: T_data ∝ C_cov^a", 0.0, 0.1))
            v.append(slope(c, "C_cov", reach, f"coverage: T_data to reach {cfg.reach_eps:g} ∝ C_cov^a", 0.0, 0.25))
        if "eps" in cfg.sweeps:
            e = df[df["sweep"] == "eps"].assign(inv_eps=lambda t: 1.0 / t["eps"])
            v.append(slope(e, "inv_eps", "T_data", "eps: T_data ∝ (1/eps)^a", 1.0, 0.25))
            v.append(slope(e, "inv_eps", "T_comp", "eps: T_comp ∝ (1/eps)^a", 2.0, 0.3))
        if "d" in cfg.sweeps:
            dd = df[df["sweep"] == "d"]
            v.append(slope(dd, "d", "T_data", "d: T_data ∝ d^a", 2.0, 0.25))
        est, lo, hi = bootstrap_mean(df["success"].astype(float), df["replicate"])
        v.append(value_verdict(n, "P(subopt ≤ eps), every run", est, lo, hi, 1 - cfg.delta, 0.0, "at least",
                               len(df), note=f"max subopt/eps = {float((df['suboptimality'] / df['eps']).max()):.3g}"))
        return v

    def plot(self, cfg, df, path) -> None:
        import matplotlib.pyplot as plt

        panels = [s for s in SWEEPS if s in cfg.sweeps]
        fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.0), squeeze=False)
        reach = f"T_data_to_eps@{cfg.reach_eps:g}"
        for ax, s in zip(axes[0], panels):
            sub = df[df["sweep"] == s]
            if sub.empty:
                continue
            x = {"coverage": "C_cov", "eps": "inv_eps", "d": "d"}[s]
            sub = sub.assign(inv_eps=1.0 / sub["eps"])
            ys = ["T_comp", "T_data"] + ([reach] if s == "coverage" else [])
            for y, col in zip(ys, ("C0", "C1", "C2")):
                yy = sub[y].astype(float)
                ok = np.isfinite(yy)
                try:
                    fit = fit_slope(sub[x][ok], yy[ok], sub["replicate"][ok])
                except ValueError:
                    fit = None
                loglog_panel(ax, sub[ok].assign(**{y: yy[ok]}), x, y, fit=fit, color=col)
            ax.set_title(f"{s} sweep", fontsize=8)
        fig.suptitle(f"{self.name} ({cfg.feedback} feedback)", fontsize=9)
        save(fig, path)
