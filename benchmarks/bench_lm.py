"""Benchmarks of the real-LM backend (spanex.lm). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_lm.py            # SmolLM2-135M-Instruct (fp32, CPU)
    .venv/bin/python benchmarks/bench_lm.py --tiny     # the tiny random model (a smoke run)

1. Sampling throughput: HFModel.sample vs raw ``model.generate`` at the same batch size, same
   prompt, same number of new tokens (EOS forbidden for both via min_new_tokens, so both do
   exactly the same work); target: wrapper overhead <= 20%.
2. Token-level loop: a batch of prefixes rolled in token by token through ``sample_next``
   (incremental KV cache), tokens/s.
3. Feature throughput: MiniLM embeddings and mean-pooled hidden states, responses/s; and a
   cache-hit pass.
4. End-to-end SpannerSampling on a small lm_problem: the share of wall time spent outside oracle
   calls (model sampling/scoring, feature embedding, reward); target <= 10%.
5. Batching across prompts: ``sample_many`` over 8 prompts x 2 draws (one decoding loop, prompts
   left-padded together) against 8 ``sample`` calls of 2.

Timings are the best of ``--reps`` repetitions after a warm-up; they depend on the machine's load.
torch runs with ``--threads`` intra-op threads (default 1: see spanex.lm.testing.ONE_THREAD_NOTE).
The vLLM backend and HFModel on CUDA need a GPU machine; they were not run here.
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np


def best_of(reps, fn):
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="use the tiny random model (fast smoke run)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from spanex.lm.loading import load_smollm2, tiny_model
    from spanex.lm.model import HFModel

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    t0 = time.perf_counter()
    model, tok = tiny_model(0) if args.tiny else load_smollm2()
    print(f"model load: {time.perf_counter() - t0:.2f} s ({'tiny' if args.tiny else 'SmolLM2-135M-Instruct fp32'})")
    B, T = args.batch, args.tokens
    x = "Describe a rainy Monday in a few words."

    # ---- 1. sampling: wrapper vs raw generate ----
    hf = HFModel(model, tok, max_new_tokens=T, min_new_tokens=T, batch_size=B)
    ids = torch.tensor([hf.encode_prompt(x)] * B)
    g = torch.Generator().manual_seed(0)

    def raw():
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
        with torch.inference_mode():
            model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=0, top_p=1.0,
                           temperature=1.0, max_new_tokens=T, min_new_tokens=T, pad_token_id=tok.pad_token_id)

    rng = np.random.default_rng(0)
    t_raw = best_of(args.reps, raw)
    t_hf = best_of(args.reps, lambda: hf.sample(x, B, rng))
    print(f"\n[1] sampling, batch {B} x {T} new tokens")
    print(f"  raw generate : {t_raw:7.2f} s  {B / t_raw:7.2f} seq/s  {B * T / t_raw:8.1f} tok/s")
    print(f"  HFModel      : {t_hf:7.2f} s  {B / t_hf:7.2f} seq/s  {B * T / t_hf:8.1f} tok/s")
    print(f"  wrapper overhead: {100 * (t_hf / t_raw - 1):+.1f}% (target <= +20%)")

    # ---- 2. token-level loop ----
    hf_tok = HFModel(model, tok, max_new_tokens=T, batch_size=B)

    def roll():
        hf_tok.clear_caches()
        r = np.random.default_rng(1)
        prefixes = [()] * B
        for _ in range(T):
            a = hf_tok.sample_next(x, prefixes, r)
            prefixes = [p + (int(t),) for p, t in zip(prefixes, a)]

    t_tok = best_of(args.reps, roll)
    print(f"\n[2] token-level roll-in (sample_next + full next-token distributions), batch {B} x {T} steps")
    print(f"  {t_tok:7.2f} s  {B * T / t_tok:8.1f} tok/s  ({1000 * t_tok / T:.0f} ms/step; "
          f"sequence sampling: {1000 * t_hf / T:.0f} ms/step)")

    # ---- 3. features ----
    from spanex.lm.features import HiddenStateEmbedder, LMFeatureMap, Projection, shared_minilm

    ys = hf_tok.sample(x, 64, np.random.default_rng(2))
    mini = shared_minilm()
    hid = HiddenStateEmbedder(hf_tok)
    t_mini = best_of(args.reps, lambda: mini.embed(x, ys))
    t_hid = best_of(args.reps, lambda: hid.embed(x, ys))
    fm = LMFeatureMap(mini, Projection.fit(mini.embed(x, ys), 8))
    fm(x, ys)
    t_hit = best_of(args.reps, lambda: fm(x, ys))
    print(f"\n[3] features on {len(ys)} responses")
    print(f"  MiniLM embeddings       : {len(ys) / t_mini:8.1f} resp/s")
    print(f"  hidden states (scoring) : {len(ys) / t_hid:8.1f} resp/s")
    print(f"  LMFeatureMap cache hits : {len(ys) / t_hit:8.0f} resp/s")

    # ---- 5. batching across prompts ----
    from spanex.lm.prompts import load_prompts

    xs = load_prompts("everyday", n=8).prompts
    hf_b = HFModel(model, tok, max_new_tokens=T, batch_size=32)
    t_many = best_of(args.reps, lambda: hf_b.sample_many(xs, [2] * len(xs), np.random.default_rng(3)))
    t_each = best_of(args.reps, lambda: [hf_b.sample(xx, 2, np.random.default_rng(3)) for xx in xs])
    print(f"\n[5] {len(xs)} prompts x 2 draws, {T} new tokens")
    print(f"  sample_many (one loop)  : {t_many:7.2f} s")
    print(f"  sample per prompt       : {t_each:7.2f} s  ({t_each / t_many:.1f}x the time)")

    if args.skip_e2e:
        return
    # ---- 4. end-to-end share outside oracle calls ----
    from spanex.algorithms.spanner_sampling import SpannerSampling
    from spanex.lm.problem import lm_problem

    def end_to_end(preferred_batch):
        hf_e = HFModel(model, tok, max_new_tokens=T, batch_size=32)
        hf_e.preferred_batch = preferred_batch
        problem = lm_problem(hf_e, n_prompts=4, features="minilm", d=8, beta=0.25, setup_prompts=4,
                             setup_per_prompt=6, reward="vader")
        spent = {"model": 0.0, "features": 0.0, "reward": 0.0}

        def timed(key, fn):
            @functools.wraps(fn)
            def w(*a, **k):
                t0 = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    spent[key] += time.perf_counter() - t0
            return w

        calls = [0]
        inner = problem.base.sample_many

        def counted(*a, **k):
            calls[0] += 1
            return inner(*a, **k)

        problem.base.sample_many = timed("model", counted)  # sample() goes through it
        problem.phi.embedder.embed = timed("features", problem.phi.embedder.embed)
        problem.reward.mean = timed("reward", problem.reward.mean)
        seq0 = hf_e.stats.sequences                          # the setup pool's draws are not the run's
        model0 = spent["model"]
        calls0 = calls[0]
        algo = SpannerSampling(T_span=4, N_try=3, T_exp=6)  # default sampler: self-calibrating envelope
        t0 = time.perf_counter()
        res = algo.run(problem, seed=0)
        wall = time.perf_counter() - t0
        inside = sum(spent.values())
        seqs, n_calls = hf_e.stats.sequences - seq0, calls[0] - calls0
        print(f"\n[4] SpannerSampling end to end (T_span=4, N_try=3, T_exp=6; {T} tokens; "
              f"pool refill preferred_batch={preferred_batch})")
        print(f"  model calls: {n_calls} for {seqs} sequences; mean batch {seqs / max(n_calls, 1):.1f}")
        print(f"  wall {wall:.2f} s; T_data={res.ledger.reward_queries}, T_comp={res.ledger.sample_calls}")
        print("  inside oracles: " + ", ".join(f"{k} {v:.2f} s" for k, v in spent.items()))
        print(f"  share outside oracle calls: {100 * (1 - inside / wall):.1f}% (target <= 10%)")
        return (spent["model"] - model0) / max(res.ledger.sample_calls, 1)

    per_pooled = end_to_end(32)
    per_unpooled = end_to_end(1)                           # every call draws exactly what it needs
    print(f"\n  model time per T_comp unit: pooled {1e3 * per_pooled:.1f} ms, unpooled {1e3 * per_unpooled:.1f} ms "
          f"({per_unpooled / per_pooled:.1f}x less with the pool; target >= 3x)")


if __name__ == "__main__":
    main()
