"""token-level: Theorem 5.1 on the 2^H family (``token_chain``): token-level coverage C_cond ≤ 2
while sequence-level coverage C_cov ≈ 2^H.

Theorem 5.1 (paper-notes §3.4, §3.5): under autoregressive realizability MTSS replaces C_cov by
C_cond in the runtime. Every token MTSS outputs is drawn by a token-level SoftmaxSampler with
M_tok = e^2 C_cond, so one output sequence costs ≈ H (M_tok + Zhat/Z) ≈ 2 e^2 C_cond H token calls,
linear in H. SpannerSampling samples whole sequences by rejection from pi_ref with
M_rej = e^2 C_cov, so one output costs ≈ 2 e^2 C_cov sequence draws (each H token calls), exponential
in H. The cost per output sample is read from the ledger ('inference' label) after drawing
``n_inference`` samples from each run's output policy.

Predictions: MTSS token calls per output sample ∝ H (slope 1 ± 0.25 against H; C_cond is constant
along the family, the ± allows the e^2 C_cond constant to settle at small H); SpannerSampling's
sequence draws per output sample ∝ C_cov (slope 1 ± 0.2 against C_cov); MTSS's output is
eps-optimal in ≥ 1 − delta of the runs. SpannerSampling runs with a small fixed design (T_span =
T_exp = 50) to keep its exponential cost affordable: its suboptimality is reported, not predicted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.errors import check_int, check_real
from ..core.ledger import SAMPLE_KINDS
from .analysis import bootstrap_mean, fit_slope, missing_verdict, slope_verdict, value_verdict
from .base import BaseConfig, Experiment, RunOutput, RunSeeds
from .common import evaluate_result, save, thin_trace

_DESCRIPTION = __doc__.split("\n\n", 1)[1]
ALGORITHMS = ("mtss", "spanner_sampling")


@dataclass(frozen=True)
class TokenLevelConfig(BaseConfig):
    n_seeds: int = 5
    H_values: tuple = (2, 4, 6, 8, 10)
    c: float = 1.0
    beta: float = 0.2
    eps: float = 0.05
    delta: float = 0.1
    algorithms: tuple = ALGORITHMS
    spanner_T: int = 50
    n_inference: int = 16
    max_sample_calls: int = 20_000_000

    def __post_init__(self):
        super().__post_init__()
        self._check_sweep("H_values")
        for H in self.H_values:
            check_int("H_values entry", H, low=1, high=19)
        for k in ("c", "beta", "eps"):
            check_real(k, getattr(self, k), low=0, low_open=True)
        check_real("delta", self.delta, low=0, high=1, low_open=True, high_open=True)
        self._check_algorithms(ALGORITHMS)
        check_int("spanner_T", self.spanner_T, low=1)
        check_int("n_inference", self.n_inference, low=1)
        check_int("max_sample_calls", self.max_sample_calls, low=1)


class TokenLevel(Experiment):
    name = "token-level"
    title = "Theorem 5.1: MTSS pays H·C_cond per sample, sequence-level rejection pays C_cov ≈ 2^H"
    description = _DESCRIPTION
    Config = TokenLevelConfig
    requires = ("spanex.tokens", "spanex.algorithms.mtss", "spanex.algorithms.spanner_sampling")

    def quick_config(self):
        return TokenLevelConfig(n_seeds=2, H_values=(2, 4, 6), n_inference=8)

    def points(self, cfg) -> list[dict]:
        return [{"algorithm": a, "H": int(H), "c": cfg.c, "beta": cfg.beta, "eps": cfg.eps, "delta": cfg.delta,
                 "spanner_T": cfg.spanner_T, "n_inference": cfg.n_inference, "max_sample_calls": cfg.max_sample_calls}
                for H in cfg.H_values for a in cfg.algorithms]

    def run_one(self, point: dict, seeds: RunSeeds) -> RunOutput:
        import spanex
        from ..algorithms import get
        from ..instances import make

        H = point["H"]
        problem = make("token_chain", H=H, c=point["c"], beta=point["beta"])
        C = spanex.coverage(problem)
        C_cond = float(problem.exact.C_cond(problem.beta))
        if point["algorithm"] == "mtss":
            alg = get("mtss")(eps=point["eps"], delta=point["delta"])
        else:
            M = math.e ** 2 * C
            alg = get("spanner_sampling")(eps=point["eps"], delta=point["delta"], T_span=point["spanner_T"],
                                          T_exp=point["spanner_T"], M_rej=M, N_try=math.ceil(2 * M))
        result = alg.run(problem, seed=seeds.algorithm, budget={"max_sample_calls": point["max_sample_calls"]})
        m = evaluate_result(result, problem)
        n_inf = point["n_inference"]
        result.policy.sample(0, n_inf, np.random.default_rng(seeds.algorithm + 1))
        led = result.ledger
        token_calls = led.total(SAMPLE_KINDS, "inference") / n_inf
        m.update(C_cov=C, C_cond=C_cond, H=H, calls_per_sample=token_calls, sequence_draws_per_sample=token_calls / H,
                 success=float(m["suboptimality"] <= point["eps"]))
        return RunOutput(metrics=m, ledger=led.to_dict(), trace=thin_trace(result.trace), status=result.status,
                         wall_time=result.wall_time)

    def analyse(self, cfg, df) -> list:
        v = []
        n = self.name
        if "mtss" in cfg.algorithms:
            s = df[df["algorithm"] == "mtss"]
            try:
                v.append(slope_verdict(n, "MTSS token calls per output sample ∝ H^a",
                                       fit_slope(s["H"], s["calls_per_sample"], s["replicate"]), 1.0, 0.25,
                                       note=f"C_cond ≤ {s['C_cond'].max():.3g}"))
            except ValueError as e:
                v.append(missing_verdict(n, "MTSS token calls per output sample ∝ H^a", str(e)))
            est, lo, hi = bootstrap_mean(s["success"].astype(float), s["replicate"])
            v.append(value_verdict(n, "MTSS P(subopt ≤ eps)", est, lo, hi, 1 - cfg.delta, 0.0, "at least", len(s)))
        if "spanner_sampling" in cfg.algorithms:
            s = df[df["algorithm"] == "spanner_sampling"]
            try:
                v.append(slope_verdict(n, "SpannerSampling sequence draws per output sample ∝ C_cov^a",
                                       fit_slope(s["C_cov"], s["sequence_draws_per_sample"], s["replicate"]), 1.0, 0.2,
                                       note=f"C_cov up to {s['C_cov'].max():.3g}; eps-optimal in "
                                            f"{int(s['success'].sum())}/{len(s)} runs"))
            except ValueError as e:
                v.append(missing_verdict(n, "SpannerSampling sequence draws per output sample ∝ C_cov^a", str(e)))
        return v

    def plot(self, cfg, df, path) -> None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        for i, a in enumerate(cfg.algorithms):
            s = df[df["algorithm"] == a]
            if s.empty:
                continue
            g = s.groupby("H").agg(c=("calls_per_sample", "median"), sub=("suboptimality", "median"))
            axes[0].plot(g.index, g["c"], marker="o", ms=3, color=f"C{i}", label=f"{a}")
            axes[1].plot(g.index, g["sub"].clip(lower=1e-8), marker="o", ms=3, color=f"C{i}", label=a)
        cc = df.groupby("H")["C_cov"].first()
        axes[0].plot(cc.index, cc.values * cc.index, "k:", lw=1, label="H·C_cov")
        axes[0].set_ylabel("token calls per output sample", fontsize=7)
        axes[1].axhline(cfg.eps, color="k", ls="--", lw=1, label="eps")
        axes[1].set_ylabel("suboptimality (exact)", fontsize=7)
        for ax in axes:
            ax.set_yscale("log")
            ax.set_xlabel("H (C_cov ≈ 2^H, C_cond < 2)")
            ax.legend(fontsize=6)
        fig.suptitle("token-level (token_chain)", fontsize=9)
        save(fig, path)
