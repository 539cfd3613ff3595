"""``spanex demo --lm``: where a one-off training cost beats a per-sample cost, on a real LM.

SmolLM2-135M-Instruct (pi_ref) answers short everyday prompts; the reward is how upbeat the
answer is. Two rewards (``--lm-reward``):

- ``head`` (default): the log-odds of a logistic head on MiniLM embeddings, trained on a small
  labelled sentence set shipped with spanex: **realizable** in the demo's features (MiniLM, a
  supervised projection to d = 8; the held-out R^2 is printed);
- ``vader``: VADER's lexicon sentiment: **not realizable** (a linear function of the same kind of
  features explains only part of it; printed too).

For each seed, on the same problem:

- **SpannerSampling** learns from T reward queries (its spanner + exploration) and then
  generates with no reward query at all, paying pi_ref draws (rejection sampling) instead;
- **PassiveRegression** gets the same number of reward queries on pi_ref pairs (the fair peer);
- **Best-of-n on the learned reward** uses SpannerSampling's fitted reward to pick the best of
  n pi_ref draws (0 reward queries per sample);
- **Best-of-n on the true reward** queries the reward n times per generated sample;
- **Best-of-k** with k = SpannerSampling's pi_ref draws per sample, rounded and capped by the pool
  (same compute per sample; the draws/sample column shows the mean k);
- **pi_ref** itself.

Columns: training reward queries (incl. the setup pool's labels when the projection used them,
counted for every learned row alike), reward queries and pi_ref draws per generated sample, mean
true reward and a KL estimate, all as mean ± standard error over seeds. The KL column uses one
estimator for every row: the cross-fitted Donsker–Varadhan lower bound in phi
(:func:`spanex.lm.evaluate.lm_evaluate`, method 'fitted') against one shared set of pi_ref
reference draws per prompt, so rows are comparable (pi_ref's own value shows the estimator's
noise around 0).

Best-of-n rows are estimated from one pool of pi_ref draws per evaluation prompt (disjoint blocks
of n), charged under the 'eval' label like every other evaluation draw.

The total reward queries to produce K outputs are ``train + K * per_sample``: the plot
(``--lm-plot PATH``) shows mean reward against it for K = 1, 10, 100, 1000, so one reads off
where the one-off cost wins. The closing lines state what was measured, including where
SpannerSampling does not win.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from .core.errors import check_choice, check_int, check_real

REWARD_CHOICES = ("head", "vader", "both")
PROJECTIONS = ("supervised", "pca", "random", "none")
K_PANELS = (1, 10, 100, 1000)


@dataclass(frozen=True)
class LMDemoConfig:
    """Sizes of the LM demo (validated). See the module docstring for what each part measures."""

    model: str = "smollm2"
    reward: str = "head"
    features: str = "minilm"
    projection: str = "supervised"
    d: int = 8
    n_prompts: int = 8
    max_new_tokens: int = 12
    beta: float = 0.25
    eps: float = 0.05
    seeds: int = 3
    seed: int = 0
    setup_per_prompt: int = 16
    T_exp_max: int = 10
    T_span_max: int = 10
    n_try_max: int = 2
    eval_per_prompt: int = 2
    pool_per_prompt: int = 16
    n_ref: int = 8
    bon_ns: tuple = (2, 4, 8, 16)
    preferred_batch: int = 16
    threads: int = 1

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a non-empty name or path, got {self.model!r}")
        check_choice("reward", self.reward, REWARD_CHOICES)
        check_choice("projection", self.projection, PROJECTIONS)
        check_int("d", self.d, low=1, high=64)
        check_int("n_prompts", self.n_prompts, low=2, high=300)
        check_int("max_new_tokens", self.max_new_tokens, low=1, high=256)
        check_real("beta", self.beta, low=0, low_open=True)
        check_real("eps", self.eps, low=0, low_open=True)
        check_int("seeds", self.seeds, low=1, high=50)
        check_int("seed", self.seed, low=0)
        check_int("setup_per_prompt", self.setup_per_prompt, low=2)
        if self.projection != "none" and self.d >= self.n_prompts * self.setup_per_prompt:
            raise ValueError(f"d must be below the setup pool size n_prompts*setup_per_prompt = "
                             f"{self.n_prompts * self.setup_per_prompt}, got {self.d}")
        check_int("T_exp_max", self.T_exp_max, low=1)
        check_int("T_span_max", self.T_span_max, low=1)
        check_int("n_try_max", self.n_try_max, low=1)
        check_int("eval_per_prompt", self.eval_per_prompt, low=1)
        check_int("n_ref", self.n_ref, low=2)
        check_int("preferred_batch", self.preferred_batch, low=1)
        check_int("threads", self.threads, low=0)
        if not self.bon_ns or any(not isinstance(n, int) or n < 1 for n in self.bon_ns):
            raise ValueError(f"bon_ns must be positive ints, got {self.bon_ns!r}")
        check_int("pool_per_prompt", self.pool_per_prompt, low=max(self.bon_ns))

    @property
    def rewards(self) -> tuple:
        return ("head", "vader") if self.reward == "both" else (self.reward,)


QUICK = dict(n_prompts=4, max_new_tokens=8, setup_per_prompt=12, T_exp_max=6, T_span_max=6, n_try_max=2,
             eval_per_prompt=2, pool_per_prompt=8, n_ref=4, bon_ns=(2, 4, 8), seeds=2)


# ---- the SpannerSampling configuration -------------------------------------------------------------

def spanner_sampling_for(problem, cfg: LMDemoConfig):
    """SpannerSampling with the recipe for cfg.eps, its rounds capped by the demo's size; (algo, note).

    Everything else is the default: the sampler finds its own envelope (no M_rej), nu is the recipe's."""
    from .algorithms.spanner_sampling import SpannerSampling

    view = problem.view(False)  # what the algorithm itself sees
    probe = SpannerSampling(eps=cfg.eps, n_try_max=cfg.n_try_max).resolve(view)
    T_exp, T_span = min(probe["T_exp"], cfg.T_exp_max), min(probe["T_span"], cfg.T_span_max)
    algo = SpannerSampling(eps=cfg.eps, T_exp=T_exp, T_span=T_span, n_try_max=cfg.n_try_max)
    used = algo.resolve(view)
    note = (f"recipe for eps={cfg.eps}: T_exp={probe['T_exp']}, T_span={probe['T_span']}; run with "
            f"T_exp={T_exp}, T_span={T_span} (the demo's caps), N_try={used['N_try']}, nu={used['nu']:.3g}, "
            f"sampler: {used['M_source']}")
    return algo, note


# ---- evaluation helpers ------------------------------------------------------------------------------

def _bon_pick(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the best of each disjoint block of n (first maximum wins), for one prompt's pool."""
    blocks = len(scores) // n
    s = scores[: blocks * n].reshape(blocks, n)
    return np.arange(blocks) * n + np.argmax(s, axis=1)


def evaluate_seed(problem, res_ss, res_pr, cfg: LMDemoConfig, seed: int, ref_pool: dict) -> list[dict]:
    """Rows of one seed: every number charged to an 'eval' ledger (see the module docstring).

    ``ref_pool`` keeps the seed's pool of pi_ref draws per prompt, so the two rewards of one seed
    are evaluated on the same draws (they are i.i.d. pi_ref draws either way).
    """
    from .core.ledger import Ledger
    from .core.oracles import Oracles
    from .lm.evaluate import _fitted_dv, lm_evaluate

    rng = np.random.default_rng([seed, 1])
    xs = list(problem.prompts.prompts)
    real = problem.real_reward
    setup_q = problem.meta["setup_reward_queries"]
    theta = np.asarray(res_ss.extras["theta_hat"], float)
    # the shared pool and reference draws: pi_ref draws with their true rewards and features
    led = Ledger()
    o = Oracles(problem, led, "eval")
    pool = ref_pool.setdefault(("pool", seed), {})
    for x in xs:
        if x not in pool:
            ys = o.sample_ref(x, cfg.pool_per_prompt + cfg.n_ref, rng)
            pool[x] = ys
    phi_ref, P_r, P_phi = {}, {}, {}
    for x in xs:
        ys = pool[x]
        F = o.phi(x, ys)
        led.charge("reward", cfg.pool_per_prompt, "eval")
        P_r[x] = np.asarray(real(x, ys[: cfg.pool_per_prompt]), float)
        P_phi[x] = F[: cfg.pool_per_prompt]
        phi_ref[x] = F[cfg.pool_per_prompt:]
    train_ss = res_ss.ledger.reward_queries + setup_q
    rows = []

    def add(name, train, rq, draws, rewards, phis):
        R = np.array([np.mean(r) for r in rewards])
        kl = _fitted_dv(phis, [phi_ref[x] for x in xs], 1.0)
        rows.append(dict(policy=name, train_queries=train, rq_per_sample=rq, draws_per_sample=draws,
                         reward=float(np.mean(np.concatenate(rewards))), reward_se_prompts=float(
                             R.std(ddof=1) / np.sqrt(len(R))), kl=float(kl)))

    add("pi_ref", 0, 0.0, 1.0, [P_r[x] for x in xs], [P_phi[x] for x in xs])
    for name, res, train in (("SpannerSampling", res_ss, train_ss),
                             ("PassiveRegression", res_pr, res_pr.ledger.reward_queries + setup_q)):
        ev = lm_evaluate(res.policy, problem, prompts=xs, n_per_prompt=cfg.eval_per_prompt, kl="fitted",
                         ref=phi_ref, seed=np.random.default_rng([seed, 2, len(rows)]), n_examples=2)
        rows.append(dict(policy=name, train_queries=train, rq_per_sample=ev.reward_queries_per_sample,
                         draws_per_sample=ev.draws_per_sample, reward=ev.mean_reward, reward_se_prompts=ev.reward_se,
                         kl=ev.kl, examples=ev.examples))
    k = int(min(max(1, round(rows[1]["draws_per_sample"])), cfg.pool_per_prompt))  # capped by the pool
    for n, label in [(n, f"Best-of-{n}") for n in cfg.bon_ns] + [(k, "Best-of-k")]:
        picks_true = {x: _bon_pick(P_r[x], n) for x in xs}
        add(f"{label} true reward", 0, float(n), float(n), [P_r[x][picks_true[x]] for x in xs],
            [P_phi[x][picks_true[x]] for x in xs])
        picks_lrn = {x: _bon_pick(P_phi[x] @ theta, n) for x in xs}
        add(f"{label} learned reward", train_ss, 0.0, float(n), [P_r[x][picks_lrn[x]] for x in xs],
            [P_phi[x][picks_lrn[x]] for x in xs])
    for r in rows:
        r["seed"] = seed
    return rows


def aggregate(rows_by_seed: list[list[dict]]) -> list[dict]:
    """Mean and standard error over seeds of every numeric column, row by row (rows matched by name)."""
    names = [r["policy"] for r in rows_by_seed[0]]
    out = []
    for name in names:
        rs = [next(r for r in rows if r["policy"] == name) for rows in rows_by_seed if
              any(r["policy"] == name for r in rows)]
        agg = {"policy": name, "seeds": len(rs)}
        for key in ("train_queries", "rq_per_sample", "draws_per_sample", "reward", "kl", "seconds"):
            v = np.array([r[key] for r in rs], float)
            agg[key] = float(v.mean())
            agg[key + "_se"] = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
        out.append(agg)
    return out


def total_queries(row: dict, K: int) -> float:
    """Reward queries spent to produce K outputs: the one-off training cost plus K per-sample costs."""
    return row["train_queries"] + K * row["rq_per_sample"]


def claims(table: list[dict]) -> list[str]:
    """What the measured table supports, in words (differences beyond 2 standard errors count)."""
    by = {r["policy"]: r for r in table}
    ss, ref, pr = by["SpannerSampling"], by["pi_ref"], by["PassiveRegression"]
    out = []

    def cmp(a, b):
        diff = a["reward"] - b["reward"]
        se = math.sqrt(a["reward_se"] ** 2 + b["reward_se"] ** 2) if a["seeds"] > 1 else float("nan")
        if not np.isfinite(se):
            return diff, se, "one seed only: no standard error"
        verdict = "higher" if diff > 2 * se else "lower" if diff < -2 * se else "not distinguishable"
        return diff, se, verdict

    for other in (ref, pr):
        diff, se, v = cmp(ss, other)
        out.append(f"SpannerSampling vs {other['policy']}: {diff:+.3f} ± {se:.3f} ({v}).")
    for name, r in by.items():
        if not name.startswith("Best-of-") or "true reward" not in name:
            continue
        diff, se, v = cmp(ss, r)
        q = r["rq_per_sample"]
        K_star = ss["train_queries"] / q if q > 0 else float("inf")
        out.append(f"vs {name}: reward {diff:+.3f} ± {se:.3f} ({v}); SpannerSampling spends fewer total reward "
                   f"queries for K > {K_star:.0f} outputs (one-off {ss['train_queries']:.0f} vs {q:.0f} per output).")
    return out


# ---- the run --------------------------------------------------------------------------------------------

class _Bar:
    """One progress line over pi_ref draws (the model's progress hook), with the current stage."""

    def __init__(self, enabled: bool, out):
        self.bar = None
        self.out = out
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(unit="draw", desc="setup", dynamic_ncols=True)

    def stage(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_description(name)

    def update(self, k: int) -> None:
        if self.bar is not None:
            self.bar.update(k)

    def write(self, msg: str) -> None:
        (self.bar.write if self.bar is not None else self.out)(msg)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def estimate_seconds(cfg: LMDemoConfig, sec_per_draw: float, n_rewards: int) -> float:
    """Expected wall time of the runs from the measured seconds per pi_ref draw on the setup pool.

    Draws per reward and seed: SpannerSampling's spanner (~2 per try) and exploration (~draws per
    sample + 1 anchor per round), its evaluation, PassiveRegression's pairs and evaluation, the
    shared pool; DRAWS_PER_SAMPLE is the measured rejection cost per output (see docs/lm.md).
    Small calls are slower per draw than the setup pool's batches: SMALL_CALL_FACTOR. A rough
    estimate (measured 15% low to 2x high); the one printed after the first seed extrapolates that
    seed's measured time (within 7% in the runs of docs/lm.md).
    """
    per_seed = (cfg.T_span_max * cfg.n_try_max * 2 * 0.5
                + cfg.T_exp_max * (1 + DRAWS_PER_SAMPLE)
                + cfg.n_prompts * cfg.eval_per_prompt * DRAWS_PER_SAMPLE * 2
                + cfg.T_exp_max
                + cfg.n_prompts * (cfg.pool_per_prompt + cfg.n_ref))
    return SMALL_CALL_FACTOR * sec_per_draw * per_seed * cfg.seeds * n_rewards


#: calibration of estimate_seconds on this demo's measured runs (docs/lm.md): SpannerSampling and
#: PassiveRegression used 15-47 pi_ref draws per output sample with the self-calibrating sampler
DRAWS_PER_SAMPLE = 25.0
SMALL_CALL_FACTOR = 1.5


def run_demo(cfg: LMDemoConfig, *, model=None, out=print, progress: bool = True, plot: str | None = None) -> dict:
    """Run the demo and print its tables; returns the per-reward tables and metadata.

    ``model``: a BaseModel object to use instead of loading ``cfg.model`` (tests pass the tiny model).
    """
    import torch

    from .algorithms.passive_regression import PassiveRegression
    from .lm.problem import lm_problem, make_model

    t_start = time.perf_counter()
    threads_before = torch.get_num_threads()
    if cfg.threads:  # see spanex.lm.testing.ONE_THREAD_NOTE: one thread is the robust choice on shared cores
        torch.set_num_threads(cfg.threads)
    out(f"spanex demo --lm: SpannerSampling vs PassiveRegression vs Best-of-n on a real LM; "
        f"seeds {cfg.seed}..{cfg.seed + cfg.seeds - 1}, beta={cfg.beta}, eps={cfg.eps}")
    t0 = time.perf_counter()
    base = model if model is not None else make_model(cfg.model, max_new_tokens=cfg.max_new_tokens, batch_size=32,
                                                       preferred_batch=cfg.preferred_batch)
    out(f"  model {getattr(base, 'name', type(base).__name__)} ready in {time.perf_counter() - t0:.1f} s; "
        f"{cfg.n_prompts} everyday prompts, <= {getattr(base, 'max_new_tokens', '?')} new tokens, "
        f"features {cfg.features} -> {cfg.projection} d={cfg.d}")
    bar = _Bar(progress, out)
    old_hook = getattr(base, "progress_hook", None)
    if hasattr(base, "progress_hook"):
        base.progress_hook = bar.update
    problems, results = {}, {}
    try:
        setup = None
        for rw in cfg.rewards:
            bar.stage(f"setup ({rw})")
            t0 = time.perf_counter()
            p = lm_problem(base if setup is None else None, prompts="everyday", n_prompts=cfg.n_prompts,
                           features=cfg.features, d=None if cfg.projection == "none" else cfg.d,
                           projection=cfg.projection, reward=rw, beta=cfg.beta, setup_prompts=cfg.n_prompts,
                           setup_per_prompt=cfg.setup_per_prompt, setup=setup, seed=cfg.seed)
            setup = p.setup
            problems[rw] = p
            fit, m = p.meta["linear_fit"], p.meta
            bar.write(f"  [{rw}] problem in {time.perf_counter() - t0:.1f} s: pi_ref mean reward "
                      f"{m['ref_reward_mean']:+.3f} (sd {m['ref_reward_std']:.3f}) on {m['setup_samples']} setup "
                      f"draws; held-out R^2 of the reward in phi (5-fold CV ridge): {fit['r2_cv']:.2f}; "
                      f"R_max={p.R_max:.2f} ({m['R_max_source']})")
        sec_per_draw = setup.seconds / max(setup.size, 1)
        est = estimate_seconds(cfg, sec_per_draw, len(cfg.rewards))
        bar.write(f"  setup pool: {setup.size} draws in {setup.seconds:.1f} s ({sec_per_draw:.2f} s/draw batched) "
                  f"-> rough estimate of the runs ~{est / 60:.1f} min (refined after the first seed)")
        t_runs = time.perf_counter()
        ref_pool: dict = {}
        for i, s in enumerate(range(cfg.seed, cfg.seed + cfg.seeds)):
            for rw, p in problems.items():
                bar.stage(f"seed {s} {rw}: SpannerSampling")
                algo, note = spanner_sampling_for(p, cfg)
                if i == 0:
                    bar.write(f"  [{rw}] SpannerSampling: {note}")
                res_ss = algo.run(p, seed=s, progress=lambda ev, s=s, rw=rw: bar.stage(
                    f"seed {s} {rw}: SpannerSampling round {ev['done']}/{ev['total']}"))
                ex = res_ss.extras
                bar.write(f"  [{rw} seed {s}] SpannerSampling: {res_ss.ledger.reward_queries} reward queries, spanner "
                          f"{ex.get('spanner_size')} pairs, ||theta_hat|| {np.linalg.norm(ex['theta_hat']):.2f}, "
                          f"sampler failures {ex.get('sampler_failures')}, clipped {ex.get('sampler_clipped')}")
                bar.stage(f"seed {s} {rw}: PassiveRegression")
                T_pairs = max(1, math.ceil(res_ss.ledger.reward_queries / 2))
                res_pr = PassiveRegression(T=T_pairs, batch_size=T_pairs).run(p, seed=s, progress=lambda ev, s=s, rw=rw: (
                    bar.stage(f"seed {s} {rw}: PassiveRegression {ev['done']}/{ev['total']}")))
                bar.stage(f"seed {s} {rw}: evaluation")
                t_ev = time.perf_counter()
                rows = evaluate_seed(p, res_ss, res_pr, cfg, s, ref_pool)
                secs = {"SpannerSampling": res_ss.wall_time, "PassiveRegression": res_pr.wall_time}
                for r in rows:
                    r["seconds"] = secs.get(r["policy"], 0.0)
                bar.write(f"  [{rw} seed {s}] times: SpannerSampling {res_ss.wall_time:.0f} s, PassiveRegression "
                          f"{res_pr.wall_time:.0f} s, evaluation {time.perf_counter() - t_ev:.0f} s")
                results.setdefault(rw, []).append(rows)
            if i == 0 and cfg.seeds > 1:
                per_seed = time.perf_counter() - t_runs
                bar.write(f"  seed {s} took {per_seed:.0f} s -> estimated total "
                          f"~{(time.perf_counter() - t_start + per_seed * (cfg.seeds - 1)) / 60:.1f} min")
    finally:
        if hasattr(base, "progress_hook"):
            base.progress_hook = old_hook
        bar.close()
        torch.set_num_threads(threads_before)
    runs_s = time.perf_counter() - t_runs
    tables = {rw: aggregate(rs) for rw, rs in results.items()}
    for rw, table in tables.items():
        p = problems[rw]
        out("")
        out(f"reward '{rw}' ({'realizable' if rw == 'head' else 'not realizable'} in phi: held-out R^2 "
            f"{p.meta['linear_fit']['r2_cv']:.2f}); mean ± s.e. over {cfg.seeds} seed(s); "
            f"{cfg.n_prompts} prompts x {cfg.eval_per_prompt} samples (learned policies), "
            f"{cfg.pool_per_prompt} pool draws per prompt (pi_ref, Best-of-n)")
        for line in format_table(table):
            out(line)
        for line in claims(table):
            out("  " + line)
    wall = time.perf_counter() - t_start
    out("")
    out("KL: cross-fitted Donsker-Varadhan lower bound in phi, same pi_ref reference draws for every row. "
        "Training queries include the setup pool's reward labels (used by the supervised projection) for "
        "every learned row.")
    out("MTSS (token-level) is not in this table: its token-by-token roll-outs do not fit the demo's time "
        "on CPU (docs/lm.md).")
    out(f"total wall time {wall / 60:.1f} min (runs {runs_s / 60:.1f} min; estimated {est / 60:.1f} min)")
    if plot:
        plot_tables(tables, plot, {rw: problems[rw].meta["linear_fit"]["r2_cv"] for rw in tables})
        out(f"plot written to {plot}")
    return {"tables": tables, "rows": results, "config": dataclasses.asdict(cfg), "wall_s": wall, "runs_s": runs_s,
            "estimated_runs_s": est, "meta": {rw: p.meta for rw, p in problems.items()}}


def format_table(table: list[dict]) -> list[str]:
    head = (f"  {'policy':<34} {'train RQ':>8} {'RQ/sample':>9} {'draws/sample':>12} {'reward':>16} "
            f"{'KL_DV(phi)':>15}")
    lines = [head, "  " + "-" * (len(head) - 2)]
    for r in table:
        lines.append(f"  {r['policy']:<34} {r['train_queries']:>8.0f} {r['rq_per_sample']:>9.1f} "
                     f"{r['draws_per_sample']:>12.1f} {r['reward']:>+8.3f} ± {r['reward_se']:<5.3f} "
                     f"{r['kl']:>7.3f} ± {r['kl_se']:<5.3f}")
    return lines


def plot_tables(tables: dict, path: str, r2: dict | None = None) -> None:
    """Mean reward against total reward queries to produce K outputs, one panel per K and reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rws = list(tables)
    fig, axes = plt.subplots(len(rws), len(K_PANELS), figsize=(4 * len(K_PANELS), 3.4 * len(rws)), squeeze=False,
                             sharey="row")
    styles = {"SpannerSampling": ("C3", "*", 14), "PassiveRegression": ("C0", "s", 8), "pi_ref": ("k", "o", 7)}
    for i, rw in enumerate(rws):
        table = tables[rw]
        for j, K in enumerate(K_PANELS):
            ax = axes[i, j]
            for kind, color, marker in (("true reward", "C2", "^"), ("learned reward", "C1", "v")):
                rows = [r for r in table if r["policy"].startswith("Best-of-") and r["policy"].endswith(kind)
                        and not r["policy"].startswith("Best-of-k")]
                xs = [total_queries(r, K) for r in rows]
                ax.errorbar(xs, [r["reward"] for r in rows], yerr=[r["reward_se"] for r in rows], color=color,
                            marker=marker, label=f"Best-of-n, {kind}" if j == 0 else None, capsize=2)
                for r, x in zip(rows, xs):
                    ax.annotate(r["policy"].split()[0].replace("Best-of-", "n="), (x, r["reward"]), fontsize=7,
                                xytext=(3, 3), textcoords="offset points")
            for name, (color, marker, size) in styles.items():
                r = next(r for r in table if r["policy"] == name)
                ax.errorbar([total_queries(r, K)], [r["reward"]], yerr=[r["reward_se"]], color=color,
                            marker=marker, markersize=size, linestyle="none", capsize=2,
                            label=name if j == 0 else None)
            ax.set_xscale("symlog", linthresh=1.0)  # 0 queries (pi_ref) stays on the axis
            ax.set_xlim(left=0)
            ax.set_title(f"{rw}: K = {K} output{'s' if K > 1 else ''}" + (f" (R² {r2[rw]:.2f})" if r2 and j == 0 else ""), fontsize=9)
            ax.set_xlabel("total reward queries (training + K × per sample)", fontsize=8)
            if j == 0:
                ax.set_ylabel("mean true reward", fontsize=8)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- command line ------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    d = LMDemoConfig()
    g = p.add_argument_group("real language model (with --lm); --seed, --seeds, --beta and --eps apply too")
    g.add_argument("--lm-model", default=d.model,
                   help="base model: 'smollm2' (shipped), a local model directory, a cached Hub id or a .gguf file")
    g.add_argument("--lm-reward", choices=REWARD_CHOICES, default=d.reward,
                   help="'head' (realizable, default), 'vader' (not realizable) or 'both'")
    g.add_argument("--lm-features", default=d.features,
                   help="'minilm' (default), 'hidden', or a sentence-transformers model name or path")
    g.add_argument("--lm-projection", choices=PROJECTIONS, default=d.projection, help="feature projection")
    g.add_argument("--lm-d", type=int, default=None, help=f"feature dimension (default {d.d})")
    g.add_argument("--lm-prompts", type=int, default=None, help=f"number of prompts (default {d.n_prompts})")
    g.add_argument("--lm-max-new-tokens", type=int, default=None,
                   help=f"response length cap (default {d.max_new_tokens})")
    g.add_argument("--lm-t-exp", type=int, default=None,
                   help=f"cap on SpannerSampling's exploration rounds (default {d.T_exp_max})")
    g.add_argument("--lm-threads", type=int, default=None,
                   help=f"torch intra-op threads during the run (default {d.threads}; 0 keeps torch's default)")
    g.add_argument("--lm-quick", action="store_true", help="a smaller, faster run (<= 2 min on 2 cores)")
    g.add_argument("--lm-plot", default=None, metavar="PATH", help="write the reward-vs-total-queries plot (PNG)")
    g.add_argument("--lm-no-progress", action="store_true", help="no progress bar")


#: the shared options' defaults when --lm is given and they are not
LM_BETA, LM_EPS = 0.25, 0.05


def config_from_args(args) -> LMDemoConfig:
    kw = dict(QUICK) if getattr(args, "lm_quick", False) else {}
    for opt, field in (("lm_prompts", "n_prompts"), ("lm_max_new_tokens", "max_new_tokens"),
                       ("lm_t_exp", "T_exp_max"), ("lm_d", "d"), ("lm_threads", "threads")):
        v = getattr(args, opt, None)
        if v is not None:
            kw[field] = v
    kw.update(model=args.lm_model, reward=args.lm_reward, features=args.lm_features,
              projection=args.lm_projection, seed=getattr(args, "seed", 0))
    if getattr(args, "seeds", None) is not None:
        kw["seeds"] = args.seeds
    kw["beta"] = LM_BETA if getattr(args, "beta", None) is None else args.beta
    kw["eps"] = LM_EPS if getattr(args, "eps", None) is None else args.eps
    return LMDemoConfig(**kw)


def main(args) -> int:
    try:
        cfg = config_from_args(args)
    except (ValueError, TypeError) as e:
        print(f"error: {e}")
        return 2
    try:
        run_demo(cfg, progress=not getattr(args, "lm_no_progress", False), plot=getattr(args, "lm_plot", None))
    except (ModuleNotFoundError, OSError) as e:
        print(f"spanex demo --lm: {e}")
        return 2
    return 0
