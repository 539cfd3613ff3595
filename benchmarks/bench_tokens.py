"""Token-level vs sequence-level exploration on the 2^H family, and the speed of the exact DP.

Part 1. On ``token_chain(H, c, beta)`` (binary tokens, uniform pi_ref, r* = c * #ones) train MTSS and
SpannerSampling on the same problem, then draw output samples from each returned policy and read the
oracle calls per output sample off the ledger's 'inference' label (token calls; a sequence-level
pi_ref draw is H token calls). Theory: MTSS ~ H * C_cond (each token an exact draw at its prefix's
coverage <= C_cond, with the certified vocabulary envelope), SpannerSampling ~ H * C_cov (each output
~ C_cov sequences of H tokens with its self-calibrating envelope). Neither is told C_cond or C_cov. The
suboptimality of each output policy's emitted law is printed where it is computable (SpannerSampling's
exact law enumerates N^2 anchor pairs, N = 2^H <= 20000).

Part 2. MTSS alone for H = 24..64 (no enumeration; the mean reward of its samples against
E_{pi*} r*), with H C_cov, the least a sequence-level rejection sampler pays per sample, for scale.

Part 3. Wall time of the exact token-level DP: enumeration (TokenTreeInstance: tables, V*_0..V*_H,
C_cond) against the closed form for the product family (ProductTreeExact).

Usage: python benchmarks/bench_tokens.py [--H-max 16] [--c 1.0] [--beta 0.2] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import spanex
from spanex.algorithms.mtss import MTSS
from spanex.algorithms.spanner_sampling import SpannerSampling
from spanex.tokens import TokenTreeInstance, token_chain, token_linear


def per_sample_calls(res, n: int, seed: int) -> tuple[float, float]:
    """Token calls per output sample (inference label) and the sampling wall time per sample."""
    before = res.ledger.count("token", "inference")
    t = time.perf_counter()
    res.policy.sample(0, n, np.random.default_rng(seed))
    wall = time.perf_counter() - t
    return (res.ledger.count("token", "inference") - before) / n, wall / n


def subopt(res, prob) -> float:
    try:
        return spanex.evaluate(res.policy, prob).suboptimality
    except (ValueError, NotImplementedError):
        return float("nan")


def table(H_max: int, c: float, beta: float, seed: int, ss_token_budget: float) -> None:
    print(f"token_chain: binary tokens, uniform pi_ref, r* = c #ones, c = {c}, beta = {beta}")
    print("calls = token-level oracle calls per output sample ('inference' label of the ledger)")
    hdr = (f"{'H':>3} {'C_cond':>7} {'C_cov':>10} | {'MTSS calls':>10} {'/(H Ccond)':>10} {'subopt':>8} | "
           f"{'SS calls':>11} {'/(H Ccov)':>9} {'subopt':>8} {'n_out':>5} | {'SS/MTSS':>9}")
    print(hdr)
    print("-" * len(hdr))
    for H in range(2, H_max + 1):
        prob = token_chain(H=H, c=c, beta=beta)
        ex = prob.exact
        C_cond, C_cov = ex.C_cond(beta), ex.C_cov(beta)
        mt = MTSS(eps=0.05, n_rounds=2, rollouts=100).run(prob, seed=seed)
        m_calls, _ = per_sample_calls(mt, 200, seed + 1)
        m_sub = subopt(mt, prob)
        # nu = 2: the recipe nu ~ beta / R_max is far below the relative-feature norms (up to H) here and
        # truncates every pair (the output is then pi_ref); nu = 2 lets SpannerSampling learn theta*.
        ss = SpannerSampling(eps=0.05, nu=2.0, T_span=20, N_try=20, T_exp=5).run(prob, seed=seed)
        # the benchmark (not the algorithm) sizes the output sample from C_cov: about H C_cov calls per draw
        n_out = int(max(3, min(200, ss_token_budget / (2 * C_cov * H))))
        s_calls, _ = per_sample_calls(ss, n_out, seed + 1)
        s_sub = subopt(ss, prob) if 2**H <= 20000 else float("nan")
        print(f"{H:>3} {C_cond:>7.3f} {C_cov:>10.1f} | {m_calls:>10.1f} {m_calls / (H * C_cond):>10.2f} "
              f"{m_sub:>8.1e} | {s_calls:>11.0f} {s_calls / (H * C_cov):>9.2f} {s_sub:>8.1e} {n_out:>5} | "
              f"{s_calls / m_calls:>9.1f}")


def beyond_enumeration(c: float, beta: float, seed: int) -> None:
    print("\nMTSS beyond enumeration (C_cond, C_cov in closed form; H C_cov, the least any sequence-level "
          "rejection sampler pays per sample, is printed, not run)")
    print(f"{'H':>3} {'C_cond':>7} {'C_cov':>10} | {'MTSS calls':>10} {'/(H Ccond)':>10} {'mean r*':>8} "
          f"{'H c pi*(1)':>10} | {'H C_cov':>10}")
    for H in (24, 32, 48, 64):
        prob = token_chain(H=H, c=c, beta=beta)
        ex = prob.exact
        C_cond, C_cov = ex.C_cond(beta), ex.C_cov(beta)
        mt = MTSS(eps=0.05, n_rounds=2, rollouts=100).run(prob, seed=seed)
        before = mt.ledger.count("token", "inference")
        ys = mt.policy.sample(0, 100, np.random.default_rng(seed + 1))
        calls = (mt.ledger.count("token", "inference") - before) / 100
        mean_r = float(np.mean(prob.reward.mean(0, ys)))
        best = H * c * float(np.exp(ex.log_pi_star_tokens(beta)[0, 1]))          # E_{pi*} r* = H c pi*_h(1)
        print(f"{H:>3} {C_cond:>7.3f} {C_cov:>10.3g} | {calls:>10.1f} {calls / (H * C_cond):>10.2f} {mean_r:>8.2f} "
              f"{best:>10.2f} | {H * C_cov:>10.2g}")


def dp_speed() -> None:
    print("\nexact DP wall time (enumeration: tables + V*_0..V*_H + C_cond; closed form: product family)")
    print(f"{'instance':<34} {'sequences':>10} {'enum (s)':>9} {'closed (s)':>10}  C_cond / C_cov")
    for H in (10, 14, 17, 19):
        prob_t = time.perf_counter()
        prob = token_chain(H=H, c=1.0, beta=0.2)
        t_build = time.perf_counter() - prob_t
        t = time.perf_counter()
        cc, cv = prob.exact.C_cond(0.2), prob.exact.C_cov(0.2)
        t_enum = t_build + time.perf_counter() - t
        st = prob.meta["structured"]
        t = time.perf_counter()
        cc2, cv2 = st.C_cond(0.2), st.C_cov(0.2)
        t_closed = time.perf_counter() - t
        assert math.isclose(cc, cc2, rel_tol=1e-9) and math.isclose(cv, cv2, rel_tol=1e-8)
        print(f"{prob.name:<34} {2**H:>10} {t_enum:>9.3f} {t_closed:>10.5f}  {cc:.3f} / {cv:.4g}")
    for H in (32, 64):
        st = token_chain(H=H, c=1.0, beta=0.2).exact
        t = time.perf_counter()
        cc, cv = st.C_cond(0.2), st.C_cov(0.2)
        print(f"{'token_chain(H=%d) closed form' % H:<34} {'2^%d' % H:>10} {'-':>9} {time.perf_counter() - t:>10.5f}"
              f"  {cc:.3f} / {cv:.4g}")
    for H in (6, 8, 10):
        t = time.perf_counter()
        prob = token_linear(H=H, A=3, k=4, beta=1.0, n_prompts=1)
        assert isinstance(prob.exact, TokenTreeInstance)
        cc, cv = prob.exact.C_cond(1.0), prob.exact.C_cov(1.0)
        print(f"{'token_linear(H=%d, A=3, k=4)' % H:<34} {3**H:>10} {time.perf_counter() - t:>9.3f} {'-':>10}"
              f"  {cc:.3f} / {cv:.4g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--H-max", type=int, default=16)
    ap.add_argument("--c", type=float, default=1.0)
    ap.add_argument("--beta", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ss-token-budget", type=float, default=3e7,
                    help="cap on SpannerSampling inference token calls per H (sets its number of output samples)")
    ap.add_argument("--skip-dp", action="store_true")
    ap.add_argument("--quick", action="store_true", help="H <= 10 and a 1e6 SpannerSampling token budget (seconds)")
    args = ap.parse_args()
    if args.quick:
        args.H_max, args.ss_token_budget = min(args.H_max, 10), min(args.ss_token_budget, 1e6)
    table(args.H_max, args.c, args.beta, args.seed, args.ss_token_budget)
    beyond_enumeration(args.c, args.beta, args.seed)
    if not args.skip_dp:
        dp_speed()


if __name__ == "__main__":
    main()
