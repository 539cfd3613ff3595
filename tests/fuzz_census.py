"""Count fuzz outcomes by kind: ``python tests/fuzz_census.py [--examples N] [--only PREFIX] [--show bad,unclear]``.

Runs every case of :mod:`fuzz_cases` on N derandomized hypothesis inputs (the same inputs on every run
of the same code) and prints, per case, how many gave a clear error, a finite result, a bad outcome (by
exception or check) and an unclear error. Not a test: tests/test_fuzz.py asserts the property on fewer
inputs. Each input runs under a 20 s alarm and a cap on the address space.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

import fuzz_cases  # noqa: E402


def run_isolated(case, inp):
    """case.run(inp) in a forked child, so that a crash (a segfault on a failed allocation) is one bad outcome
    instead of the end of the census."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                       # the child
        os.close(r)
        try:
            out = case.run(inp, case.time_limit)
            data = (out.kind, out.detail)
        except BaseException as e:                     # noqa: BLE001 - anything is an outcome here
            data = ("bad", f"{type(e).__name__}: {e}")
        os.write(w, pickle.dumps(data))
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return fuzz_cases.Outcome("bad", f"Crash: killed by signal {os.WTERMSIG(status)}")
    return fuzz_cases.Outcome(*pickle.loads(b"".join(chunks)))


def census(case, n: int):
    counts: Counter = Counter()
    details: dict = defaultdict(Counter)
    first: dict = {}

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case.strategy)
    def body(inp):
        out = run_isolated(case, inp)
        counts[out.kind] += 1
        if out.kind in ("bad", "unclear"):
            details[out.kind][out.detail[:160]] += 1
            first.setdefault(out.detail[:160], repr(inp)[:400])

    body()
    return counts, details, first


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--examples", type=int, default=150)
    p.add_argument("--only", default=None, help="run the cases whose name starts with this")
    p.add_argument("--show", default="bad,unclear", help="which kinds to list in detail")
    p.add_argument("--inputs", action="store_true", help="print the first input of each listed outcome")
    args = p.parse_args(argv)
    total: Counter = Counter()
    bad_kinds: Counter = Counter()
    show = set(args.show.split(",")) if args.show else set()
    fuzz_cases.warm_caches()                           # built once here, shared by the forked children
    with fuzz_cases.memory_cap(4 << 30):
        for case in fuzz_cases.all_cases():
            if args.only and not case.name.startswith(args.only):
                continue
            t0 = time.perf_counter()
            counts, details, first = census(case, args.examples)
            total.update(counts)
            for d, k in details.get("bad", {}).items():
                bad_kinds[d.split(":")[0]] += k
            n = sum(counts.values())
            print(f"{case.name:34s} n={n:4d} clear={counts['clear']:4d} finite={counts['finite']:4d} "
                  f"bad={counts['bad']:3d} unclear={counts['unclear']:3d}  ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
            for kind in ("bad", "unclear"):
                if kind in show:
                    for d, k in details.get(kind, Counter()).most_common(8):
                        print(f"    {kind} x{k}: {d}", flush=True)
                        if args.inputs:
                            print(f"        input: {first[d]}", flush=True)
    n = sum(total.values())
    print(f"TOTAL n={n} clear={total['clear']} finite={total['finite']} bad={total['bad']} "
          f"unclear={total['unclear']}")
    print("bad by kind:", dict(bad_kinds.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
