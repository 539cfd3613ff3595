"""Core benchmarks: tabular sampling throughput, SoftmaxSampler cost vs coverage, SpannerSampling overhead.

    .venv/bin/python benchmarks/bench_core.py [--quick]

Prints three tables:
1. weak-oracle sampling throughput of the tabular backend (samples/s), inverse CDF against the alias table;
2. SoftmaxSampler oracle calls per exact sample divided by the target's coverage sup q_f/pi_ref (the cost of
   rejection with the exact envelope, the physical limit) for the default self-calibrating sampler, the paper's
   sampler at M = e^2 C and the exact-envelope limit, each with the TV of 20,000 draws relative to that of
   20,000 exact i.i.d. draws (and a chi-square p-value for the default);
3. SpannerSampling's own time per round (wall time outside oracle/backend calls) and its share.
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


def _tv(ys, q):
    return 0.5 * np.abs(np.bincount(np.asarray(ys), minlength=q.size) / len(ys) - q).sum()


def _chi2_p(ys, q):
    """Pearson chi-square p-value of the draws against q; responses of expected count < 5 are pooled."""
    from scipy.stats import chi2

    n = len(ys)
    obs = np.bincount(np.asarray(ys), minlength=q.size).astype(float)
    exp = n * q
    small = exp < 5
    o = np.append(obs[~small], obs[small].sum())
    e = np.append(exp[~small], exp[small].sum())
    keep = e > 0
    stat = float(np.sum((o[keep] - e[keep]) ** 2 / e[keep]))
    return float(chi2.sf(stat, int(keep.sum()) - 1))


def bench_sampler(quick: bool):
    print("\n## SoftmaxSampler: oracle calls per exact sample / the target's coverage, and TV of the draws")
    print("   (100 draws at one prompt, mean over seeds; TV at 20,000 draws / mean TV of 20,000 exact i.i.d. draws)")
    print("   (chi2 p: Pearson test of the default's 20,000 draws against the target)")
    print(f"{'beta':>6} {'coverage':>9} | {'default':>8} {'TV ratio':>8} {'chi2 p':>7} | {'paper e^2C':>10} "
          f"{'TV ratio':>8} | {'exact E':>8} {'TV ratio':>8}")
    from spanex.sampling import SamplerState
    from spanex.sampling.rejection import rejection_rounds

    seeds = 5 if quick else 20
    n_tv = 20_000
    for beta in (1.0, 0.3, 0.15, 0.1, 0.07):
        p = linear_bandit(n_prompts=1, n_responses=500, beta=beta, seed=1)
        C = spanex.coverage(p)
        r = p.exact.rewards[0]
        q = p.exact.pi_star(0, beta)
        ref = p.exact.ref_probs[0]
        f = lambda y: r[y]
        exact_tv = np.mean([_tv(p.exact.sample_from(q, n_tv, np.random.default_rng(100 + i)), q) for i in range(10)])
        row = []
        for make in (lambda: spanex.SoftmaxSampler(beta=beta),
                     lambda: spanex.SoftmaxSampler(beta=beta, M=math.e ** 2 * C, delta=0.01)):
            cost = []
            for sd in range(seeds):
                L = Ledger()
                make().sample(f, 0, Oracles(p, L), np.random.default_rng(sd), n=100)
                cost.append(L.count("weak") / 100 / C)
            ys, _ = make().sample(f, 0, Oracles(p, Ledger()), np.random.default_rng(99), n=n_tv, state=SamplerState())
            row += [np.mean(cost), _tv(ys, q) / exact_tv]
            if len(row) == 2:
                row.append(_chi2_p(ys, q))
        # the limit: a certified envelope E = max exp(r/beta) (known only to an oracle): E/Z = C calls per draw
        rng = np.random.default_rng(7)
        cdf = np.cumsum(ref) / ref.sum()
        draw = lambda k: np.minimum(np.searchsorted(cdf, rng.random(k), side="right"), r.size - 1)
        rr = rejection_rounds(lambda o: draw(o.size), lambda ys, o: r[ys] / beta, np.full(n_tv, r.max() / beta),
                              np.full(n_tv, 1 << 40), np.full(n_tv, max(1, int(C))), rng)
        ai, ay = rr.responses("accepted")
        row += [rr.used.mean() / C, _tv(ay, q) / exact_tv]
        print(f"{beta:>6} {C:>9.1f} | {row[0]:>8.2f} {row[1]:>8.2f} {row[2]:>7.2f} | {row[3]:>10.2f} {row[4]:>8.2f} | "
              f"{row[5]:>8.2f} {row[6]:>8.2f}")


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
    print("\n## SpannerSampling: the algorithm's own time per round (outside backend oracle/feature calls)")
    print("   (T_exp = 1000 rounds after the recipe's spanner, best of 3; the sampler finds its own envelope)")
    print(f"{'d':>4} {'N':>6} {'rounds':>7} {'wall s':>8} {'oracle s':>9} {'overhead/round us':>18} {'overhead share':>15}")
    for d, N in ([(8, 200), (32, 2000)] if quick else [(8, 200), (32, 2000), (64, 10000)]):
        best = None
        for _ in range(3):
            p = linear_bandit(d=d, n_responses=N, seed=0)
            acc = [0.0]
            p.base.sample = _Timed(p.base.sample, acc)
            p.phi = _Timed(p.phi, acc)
            p.phi.dim = d
            p.reward = _Timed(p.reward, acc)
            algo = SpannerSampling(T_exp=1000, n_try_max=200)
            t0 = time.perf_counter()
            res = algo.run(p, seed=0)
            wall = time.perf_counter() - t0
            rounds = res.extras["resolved"]["T_span"] + res.extras["resolved"]["T_exp"]
            if best is None or wall - acc[0] < best[0]:
                best = (wall - acc[0], wall, acc[0], rounds)
        over, wall, inside, rounds = best
        print(f"{d:>4} {N:>6} {rounds:>7} {wall:>8.3f} {inside:>9.3f} {1e6 * over / rounds:>18.1f} {over / wall:>15.1%}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (seconds)")
    args = ap.parse_args(argv)
    bench_sampling(args.quick)
    bench_sampler(args.quick)
    bench_overhead(args.quick)


if __name__ == "__main__":
    main()
