"""Core benchmarks: tabular sampling throughput, SoftmaxSampler cost vs coverage, SpannerSampling overhead.

    .venv/bin/python benchmarks/bench_core.py [--quick]

Prints three tables:
1. weak-oracle sampling throughput of the tabular backend (samples/s) for growing response sets;
2. SoftmaxSampler oracle calls per accepted sample next to the target's exact density-ratio bound
   sup q_f/pi_ref (the coverage, which lower-bounds the cost of any rejection sampler) and M;
3. SpannerSampling's own overhead (wall time outside oracle/backend calls) per round and as a share.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import spanex
from spanex.algorithms.spanner_sampling import SpannerSampling
from spanex.core import Ledger, Oracles
from spanex.instances import linear_bandit
from spanex.tabular import TabularInstance


def bench_sampling(quick: bool):
    print("## tabular weak-oracle sampling: TabularInstance.sample_ref by inverse CDF vs alias table")
    print("(best of 3 rounds; build = the first draw on a fresh instance, which builds and caches the sampler)")
    methods = ("inverse_cdf", "alias")
    print(f"{'responses N':>12} {'batch':>8} {'inverse_cdf /s':>16} {'alias /s':>16} {'alias ns/draw':>14} "
          f"{'speedup':>8}")
    builds = []
    for N in (10**3, 10**6):
        ref = np.random.default_rng(0).dirichlet(np.ones(N))
        build = {m: [] for m in methods}
        for _ in range(3):
            for m in methods:
                fresh = TabularInstance([1.0], [ref], [np.zeros((N, 1))], theta_star=[0.0])
                t0 = time.perf_counter()
                fresh.sample_ref(0, 1, np.random.default_rng(0), method=m)
                build[m].append(time.perf_counter() - t0)
        builds.append((N, {m: min(t) for m, t in build.items()}))
        inst = fresh  # its caches now hold both samplers
        for batch in (1, 1000, 100_000):
            reps = max(1, (20_000 if quick else 500_000) // batch)
            best = {m: np.inf for m in methods}
            for _ in range(3):
                for m in methods:
                    rng = np.random.default_rng(1)
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        inst.sample_ref(0, batch, rng, method=m)
                    best[m] = min(best[m], time.perf_counter() - t0)
            rate = {m: reps * batch / best[m] for m in methods}
            print(f"{N:>12} {batch:>8} {rate['inverse_cdf']:>16,.0f} {rate['alias']:>16,.0f} "
                  f"{1e9 / rate['alias']:>14.1f} {rate['alias'] / rate['inverse_cdf']:>7.1f}x")
    print(f"{'responses N':>12} {'build ms: inverse_cdf':>22} {'alias':>8}")
    for N, b in builds:
        print(f"{N:>12} {1e3 * b['inverse_cdf']:>22.2f} {1e3 * b['alias']:>8.2f}")


def bench_sampler(quick: bool):
    print("\n## SoftmaxSampler: oracle calls per accepted sample vs the target's coverage")
    print(f"{'beta':>6} {'coverage':>10} {'M':>10} {'calls/sample':>13} {'calls/coverage':>15} {'clipped':>8}")
    n = 500 if quick else 5000
    for beta in (1.0, 0.3, 0.15, 0.1, 0.07):
        p = linear_bandit(n_prompts=1, n_responses=500, beta=beta, seed=1)
        C = spanex.coverage(p)
        M = math.e**2 * C
        sampler = spanex.SoftmaxSampler(beta=beta, M=M, delta=0.01)
        L = Ledger()
        scores = p.exact.rewards[0]
        _, diag = sampler.sample(lambda y: scores[y], 0, Oracles(p, L), np.random.default_rng(0), n=n)
        cps = L.count("weak") / n
        print(f"{beta:>6} {C:>10.2f} {M:>10.1f} {cps:>13.1f} {cps / C:>15.2f} {int(diag.clipped.sum()):>8}")


class _Timed:
    """Wraps a backend callable and accumulates the time spent inside it."""

    def __init__(self, fn, acc):
        self.fn, self.acc = fn, acc

    def __call__(self, *a, **k):
        t0 = time.perf_counter()
        try:
            return self.fn(*a, **k)
        finally:
            self.acc[0] += time.perf_counter() - t0


def bench_overhead(quick: bool):
    print("\n## SpannerSampling: the algorithm's own overhead (outside backend oracle/feature calls)")
    print(f"{'d':>4} {'N':>6} {'rounds':>7} {'wall s':>8} {'oracle s':>9} {'overhead/round us':>18} {'overhead share':>15}")
    for d, N in ([(8, 200), (32, 2000)] if quick else [(8, 200), (32, 2000), (64, 10000)]):
        p = linear_bandit(d=d, n_responses=N, seed=0)
        acc = [0.0]
        p.base.sample = _Timed(p.base.sample, acc)
        p.phi = _Timed(p.phi, acc)
        p.phi.dim = d
        p.reward = _Timed(p.reward, acc)
        algo = SpannerSampling(T_exp=200 if quick else 1000, n_try_max=200)
        t0 = time.perf_counter()
        res = algo.run(p, seed=0)
        wall = time.perf_counter() - t0
        rounds = res.extras["resolved"]["T_span"] + res.extras["resolved"]["T_exp"]
        over = wall - acc[0]
        print(f"{d:>4} {N:>6} {rounds:>7} {wall:>8.3f} {acc[0]:>9.3f} {1e6 * over / rounds:>18.1f} {over / wall:>15.1%}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (seconds)")
    args = ap.parse_args(argv)
    bench_sampling(args.quick)
    bench_sampler(args.quick)
    bench_overhead(args.quick)


if __name__ == "__main__":
    main()
