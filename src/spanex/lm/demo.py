"""``spanex demo --lm``: align SmolLM2-135M-Instruct towards positive sentiment on CPU.

What it does (defaults; ``--lm-quick`` halves most sizes):

1. builds ``lm_problem('smollm2', prompts='everyday', n_prompts=8, features='minilm', d=8,
   reward='sentiment', beta=0.25)``: the real VADER sentiment reward, not realizable in phi; the
   held-out R^2 of its best linear fit on phi is printed;
2. runs SpannerSampling with explicit sizes (C_cov is unknown on a real LM, so the recipe cannot
   set them): T_span, N_try, T_exp, M_rej, delta_rej, nu;
3. evaluates pi_ref, SpannerSampling's output policy and Best-of-N at a matched reward-query
   budget: n = max(2, round(T_data / n_eval)), so Best-of-N's reward queries over the n_eval
   evaluation samples are about SpannerSampling's training T_data (SpannerSampling's output
   policy makes no reward queries at all). Mean real reward (with its standard error), an
   estimate of KL(pi || pi_ref) (see :mod:`spanex.lm.evaluate`), T_data, T_comp, inference cost,
   wall time and example generations are printed.

Every pi_ref draw of the whole demo goes through one progress bar whose total is estimated up
front; the time estimate is calibrated on the first model calls (the setup pool).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass


from ..core.errors import check_choice, check_int, check_real


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the LM demo (validated)."""

    n_prompts: int = 8
    max_new_tokens: int = 20
    beta: float = 0.25
    features: str = "minilm"
    d: int = 8
    setup_per_prompt: int = 8
    T_span: int = 8
    N_try: int = 4
    nu: float = 0.5
    T_exp: int = 12
    M_rej: float = 4.0
    delta_rej: float = 0.5
    sampler_batch: int = 8
    eval_per_prompt: int = 3
    n_ref: int = 6
    seed: int = 0

    def __post_init__(self):
        check_int("n_prompts", self.n_prompts, low=2, high=300)
        check_int("max_new_tokens", self.max_new_tokens, low=1, high=256)
        check_real("beta", self.beta, low=0, low_open=True)
        check_choice("features", self.features, ("minilm", "hidden"))
        check_int("d", self.d, low=1, high=64)
        check_int("setup_per_prompt", self.setup_per_prompt, low=2)
        if self.d >= self.n_prompts * self.setup_per_prompt:
            raise ValueError(f"d must be below the setup pool size n_prompts*setup_per_prompt = "
                             f"{self.n_prompts * self.setup_per_prompt}, got {self.d}")
        check_int("T_span", self.T_span, low=1)
        check_int("N_try", self.N_try, low=1)
        check_real("nu", self.nu, low=0, low_open=True)
        check_int("T_exp", self.T_exp, low=0)
        check_real("M_rej", self.M_rej, low=1)
        check_real("delta_rej", self.delta_rej, low=0, high=1, low_open=True, high_open=True)
        check_int("sampler_batch", self.sampler_batch, low=1)
        check_int("eval_per_prompt", self.eval_per_prompt, low=2)
        check_int("n_ref", self.n_ref, low=2)
        check_int("seed", self.seed, low=0)

    @property
    def n_eval(self) -> int:
        return self.n_prompts * self.eval_per_prompt

    def sampler_draws(self) -> float:
        """Expected pi_ref draws per SoftmaxSampler output: M partition draws, then proposal batches.

        A proposal is accepted with probability ~ Z/Zhat ~ 1/M (when nothing clips), so a batch of
        b fails with probability (1 - 1/M)^b and the number of batches is ~ 1/(1 - that).
        """
        M = math.ceil(self.M_rej)
        fail = (1 - 1 / M) ** self.sampler_batch if M > 1 else 0.0
        return M + self.sampler_batch / max(1 - fail, 1e-9)

    def estimate_calls(self) -> float:
        """Expected number of batched pi_ref calls (each costs ~max_new_tokens decoding steps).

        On a CPU, a decoding step costs almost the same at batch 2 as at batch 16, so wall time
        follows the number of calls more than the number of responses.
        """
        M = math.ceil(self.M_rej)
        fail = (1 - 1 / M) ** self.sampler_batch if M > 1 else 0.0
        per_draw = 2 + 1 / max(1 - fail, 1e-9)  # anchor, partition, proposal batches
        return (self.n_prompts                                  # setup pool
                + self.T_span * 2                               # spanner: ~2 pair batches per prompt
                + self.T_exp * per_draw                         # exploration
                + self.n_prompts                                # eval pi_ref
                + self.n_prompts * (per_draw + 1)               # eval SpannerSampling (+ KL reference draws)
                + self.n_prompts)                               # eval Best-of-N

    def estimate_draws(self) -> dict:
        """Expected pi_ref draws per stage (spanner: ~2 pair batches per prompt)."""
        s = self.sampler_draws()
        return {
            "setup": self.n_prompts * self.setup_per_prompt,
            "spanner": self.T_span * 2 * min(self.N_try, 3),
            "exploration": self.T_exp * (1 + s),
            "eval pi_ref": self.n_eval,
            "eval SpannerSampling": self.n_eval * (1 + s) + self.n_prompts * self.n_ref,
            "eval Best-of-N": self.n_eval * 4,
        }


QUICK = dict(n_prompts=4, max_new_tokens=12, setup_per_prompt=6, T_span=4, T_exp=6, eval_per_prompt=2, n_ref=4)


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("real language model (with --lm)")
    d = DemoConfig()
    g.add_argument("--lm-prompts", type=int, default=None, help=f"number of prompts (default {d.n_prompts})")
    g.add_argument("--lm-max-new-tokens", type=int, default=None,
                   help=f"response length cap (default {d.max_new_tokens})")
    g.add_argument("--lm-beta", type=float, default=d.beta, help=f"KL-regularization (default {d.beta})")
    g.add_argument("--lm-features", choices=["minilm", "hidden"], default=d.features,
                   help="feature map: MiniLM sentence embeddings or mean-pooled SmolLM2 hidden states")
    g.add_argument("--lm-d", type=int, default=d.d, help=f"feature dimension (default {d.d})")
    g.add_argument("--lm-t-exp", type=int, default=None, help=f"exploration rounds T_exp (default {d.T_exp})")
    g.add_argument("--lm-quick", action="store_true", help="a smaller, faster run (about half the default)")
    g.add_argument("--lm-no-progress", action="store_true", help="no progress bar")


def config_from_args(args) -> DemoConfig:
    kw = dict(QUICK) if getattr(args, "lm_quick", False) else {}
    for opt, field in (("lm_prompts", "n_prompts"), ("lm_max_new_tokens", "max_new_tokens"),
                       ("lm_t_exp", "T_exp")):
        v = getattr(args, opt, None)
        if v is not None:
            kw[field] = v
    kw.update(beta=args.lm_beta, features=args.lm_features, d=args.lm_d, seed=getattr(args, "seed", 0))
    return DemoConfig(**kw)


def run_demo(cfg: DemoConfig, *, model="smollm2", out=print, progress: bool = True) -> dict:
    """Run the demo; returns the table rows and metadata (``model`` may be an HFModel for tests)."""
    from ..algorithms.best_of_n import BestOfN
    from ..algorithms.spanner_sampling import SpannerSampling
    from ..core.ledger import Ledger
    from ..core.oracles import Oracles
    from ..core.policy import ReferencePolicy
    from .evaluate import lm_evaluate
    from .problem import lm_problem, make_model

    t_start = time.perf_counter()
    est = cfg.estimate_draws()
    total = int(sum(est.values()))
    out(f"spanex demo --lm: SpannerSampling vs pi_ref vs Best-of-N on a real LM (seed {cfg.seed})")
    out(f"  {cfg.n_prompts} prompts, <= {cfg.max_new_tokens} new tokens, features={cfg.features} (d={cfg.d}), "
        f"reward=VADER sentiment, beta={cfg.beta}")
    out(f"  expected work: ~{total} responses sampled from pi_ref "
        f"({', '.join(f'{k} {v:.0f}' for k, v in est.items())})")
    t0 = time.perf_counter()
    hf = make_model(model, max_new_tokens=cfg.max_new_tokens, batch_size=32)
    out(f"  model {hf.name} loaded in {time.perf_counter() - t0:.1f} s")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="resp", desc="sampling pi_ref", dynamic_ncols=True)
    hf.progress_hook = bar.update if bar is not None else None
    try:
        t0 = time.perf_counter()
        problem = lm_problem(hf, prompts="everyday", n_prompts=cfg.n_prompts, features=cfg.features, d=cfg.d,
                             reward="sentiment", target="real", beta=cfg.beta, setup_prompts=cfg.n_prompts,
                             setup_per_prompt=cfg.setup_per_prompt, seed=cfg.seed)
        setup_s = time.perf_counter() - t0
        per_call = setup_s / cfg.n_prompts  # the setup pool is one batched call per prompt
        msg = (f"  setup pool: {problem.meta['setup_samples']} responses in {setup_s:.1f} s "
               f"({per_call:.2f} s per batched call) -> estimated total time "
               f"~{per_call * cfg.estimate_calls() / 60:.1f} min (~{cfg.estimate_calls():.0f} calls; "
               f"more if the machine is busy)")
        (bar.write if bar is not None else out)(msg)
        fit = problem.meta["linear_fit"]
        (bar.write if bar is not None else out)(
            f"  pi_ref mean sentiment on the setup pool {problem.meta['ref_reward_mean']:+.3f} "
            f"(sd {problem.meta['ref_reward_std']:.3f}); best linear fit on phi: held-out R^2 = {fit['r2_test']:.2f}")

        rows = []
        # ---- SpannerSampling ----
        algo = SpannerSampling(T_span=cfg.T_span, N_try=cfg.N_try, nu=cfg.nu, T_exp=cfg.T_exp, M_rej=cfg.M_rej,
                               delta_rej=cfg.delta_rej, sampler_batch=cfg.sampler_batch)
        t0 = time.perf_counter()
        res = algo.run(problem, seed=cfg.seed)
        train_s = time.perf_counter() - t0
        T_data = res.ledger.reward_queries
        n_bon = max(2, int(round(T_data / cfg.n_eval)))
        # ---- evaluation (each policy under the 'eval' label of its own ledger) ----
        ref_ledger = Ledger()
        ref_policy = ReferencePolicy().bind(Oracles(problem, ref_ledger, "inference"))
        bon = BestOfN(n=n_bon).run(problem, seed=cfg.seed)
        entries = [("pi_ref", ref_policy, ref_ledger, None, 0.0),
                   ("SpannerSampling", res.policy, res.ledger, res, train_s),
                   (f"Best-of-{n_bon}", bon.policy, bon.ledger, bon, bon.wall_time)]
        evals = {}
        for name, pol, led, r, tr_s in entries:
            t0 = time.perf_counter()
            kl = "auto" if name != f"Best-of-{n_bon}" else "none"  # BoN: the exact bound is reported
            ev = lm_evaluate(pol, problem, n_prompts=cfg.n_prompts, n_per_prompt=cfg.eval_per_prompt,
                             n_ref=cfg.n_ref, kl=kl, seed=cfg.seed + 1)
            ev_s = time.perf_counter() - t0
            evals[name] = ev
            weak_eval = led.count("weak", "eval")
            rq_eval = led.count("reward", "eval")
            rows.append(dict(policy=name, mean_reward=ev.mean_reward, se=ev.reward_se, kl=ev.kl,
                             kl_method=ev.kl_method, kl_upper=ev.kl_upper, T_data=led.reward_queries,
                             T_comp=led.sample_calls, weak_eval=weak_eval,
                             policy_reward_queries=(rq_eval - ev.n_samples), ref_draws=ev.n_ref_draws,
                             train_s=tr_s, eval_s=ev_s))
    finally:
        hf.progress_hook = None
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t_start
    ex = res.extras
    out("")
    out(f"SpannerSampling: spanner {ex.get('spanner_size')} pairs from {ex.get('spanner_pair_draws')} pair draws; "
        f"{cfg.T_exp} exploration rounds; sampler failures {ex.get('sampler_failures')}, "
        f"clipped draws {ex.get('sampler_clipped')} (M_rej={cfg.M_rej})")
    out(f"Best-of-N matched budget: n = max(2, round(T_data / n_eval)) = max(2, round({T_data}/{cfg.n_eval})) = {n_bon}")
    head = (f"{'policy':<16} {'reward':>8} {'±se':>6} {'KL est':>7} {'T_data':>7} {'T_comp':>7} "
            f"{'inf. RQ/sample':>14} {'pi_ref/sample':>13} {'train s':>8} {'eval s':>7}")
    out(head)
    out("-" * len(head))
    for r in rows:
        kl = "-" if r["kl"] is None else f"{r['kl']:.3f}"
        if r["kl_upper"] is not None:
            kl = f"<={r['kl_upper']:.3f}"
        n = cfg.n_eval
        out(f"{r['policy']:<16} {r['mean_reward']:>+8.3f} {r['se']:>6.3f} {kl:>7} {r['T_data']:>7} {r['T_comp']:>7} "
            f"{r['policy_reward_queries'] / n:>14.1f} {(r['weak_eval'] - r['ref_draws']) / n:>13.1f} "
            f"{r['train_s']:>8.1f} {r['eval_s']:>7.1f}")
    out("KL est: pi_ref 0 exactly; SpannerSampling: Donsker-Varadhan estimate with its own tilt theta/beta "
        "(spanex.lm.evaluate); Best-of-n: the exact bound log n - (n-1)/n.")
    out("inf. RQ/sample, pi_ref/sample: reward queries and pi_ref draws each generated sample costs at inference.")
    out("")
    out("Example generations:")
    for name, ev in evals.items():
        for e in ev.examples[:2]:
            out(f"  [{name}] {e['prompt']!r} -> {e['response'].strip()!r} (sentiment {e['reward']:+.2f})")
    out(f"total wall time {wall:.1f} s ({hf.stats.sequences} responses sampled from pi_ref)")
    return {"rows": rows, "config": asdict(cfg), "wall_s": wall, "n_bon": n_bon, "meta": problem.meta,
            "sequences": hf.stats.sequences, "estimated_sequences": total}


def main(args) -> int:
    try:
        cfg = config_from_args(args)
    except (ValueError, TypeError) as e:
        print(f"error: {e}")
        return 2
    try:
        run_demo(cfg, progress=not getattr(args, "lm_no_progress", False))
    except ModuleNotFoundError as e:
        print(f"spanex demo --lm: {e}")
        return 2
    return 0
