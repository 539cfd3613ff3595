"""spanex demo --lm on the tiny model: rows, columns, accounting, options, plot."""

import argparse

import numpy as np
import pytest

pytest.importorskip("torch").set_num_threads(1)  # see spanex.lm.testing.ONE_THREAD_NOTE
pytest.importorskip("transformers")

from spanex import demo as cli_demo  # noqa: E402
from spanex import lm_demo  # noqa: E402
from spanex.lm.testing import tiny_hf  # noqa: E402

TINY = dict(n_prompts=3, max_new_tokens=3, setup_per_prompt=6, d=3, T_exp_max=2, T_span_max=2, n_try_max=2,
            eval_per_prompt=2, pool_per_prompt=4, n_ref=2, bon_ns=(2, 4), seeds=2)


class HashedEmbedder:
    """A fast stand-in for MiniLM: unit-norm bag-of-character-bigram vectors (deterministic)."""

    raw_dim, kind, name = 32, "sentence-transformers", "minilm"

    def embed_texts(self, texts):
        E = np.full((len(texts), self.raw_dim), 1e-3)
        for i, t in enumerate(texts):
            for a, b in zip(t, t[1:]):
                E[i, (ord(a) * 31 + ord(b)) % self.raw_dim] += 1.0
        return E / np.linalg.norm(E, axis=1, keepdims=True)

    def embed(self, x, ys):
        return self.embed_texts([str(y) for y in ys])

    def spec(self):
        return {"kind": self.kind, "model": self.name, "include_prompt": False}


@pytest.fixture
def fast_minilm(monkeypatch):
    import spanex.lm.features as features

    fake = HashedEmbedder()
    monkeypatch.setattr(features, "shared_minilm", lambda: fake)
    return fake


def test_demo_rows_columns_and_costs(tmp_path, fast_minilm):
    cfg = lm_demo.LMDemoConfig(**TINY)
    lines = []
    model = tiny_hf(0, max_new_tokens=3)
    before = model.stats.sequences
    out = lm_demo.run_demo(cfg, model=model, out=lines.append, progress=False, plot=str(tmp_path / "p.png"))
    table = {r["policy"]: r for r in out["tables"]["head"]}
    expected = {"pi_ref", "SpannerSampling", "PassiveRegression", "Best-of-2 true reward", "Best-of-2 learned reward",
                "Best-of-4 true reward", "Best-of-4 learned reward"}
    assert expected <= set(table) and {"Best-of-k true reward", "Best-of-k learned reward"} <= set(table)
    ss, pr = table["SpannerSampling"], table["PassiveRegression"]
    setup_q = out["meta"]["head"]["setup_reward_queries"]
    assert setup_q == 18  # supervised projection: the setup labels count as training queries
    # the fair peer gets the same reward queries (SpannerSampling's own, rounded up to whole pairs)
    for rows in out["rows"]["head"]:
        r = {x["policy"]: x for x in rows}
        assert 0 <= r["PassiveRegression"]["train_queries"] - r["SpannerSampling"]["train_queries"] <= 1
        assert r["Best-of-2 learned reward"]["train_queries"] == r["SpannerSampling"]["train_queries"]
    assert ss["rq_per_sample"] == 0 and pr["rq_per_sample"] == 0 and ss["draws_per_sample"] > 1
    assert table["Best-of-4 true reward"]["rq_per_sample"] == 4 and table["Best-of-4 learned reward"]["rq_per_sample"] == 0
    assert table["pi_ref"]["train_queries"] == 0 and table["pi_ref"]["draws_per_sample"] == 1
    assert all(np.isfinite(r["reward"]) and np.isfinite(r["kl"]) and r["seeds"] == 2 for r in table.values())
    assert model.stats.sequences > before
    text = "\n".join(lines)
    assert "held-out R^2" in text and "rough estimate" in text and "SpannerSampling vs pi_ref" in text
    assert (tmp_path / "p.png").stat().st_size > 10_000
    # the plot's x: total queries to produce K outputs = training + K * per sample
    assert lm_demo.total_queries(table["Best-of-4 true reward"], 10) == 40
    assert lm_demo.total_queries(ss, 1000) == ss["train_queries"]


def test_claims_follow_the_numbers():
    def row(name, reward, se, train=0, rq=0.0):
        return {"policy": name, "reward": reward, "reward_se": se, "seeds": 3, "train_queries": train,
                "rq_per_sample": rq}

    table = [row("pi_ref", 0.0, 0.01), row("SpannerSampling", 0.10, 0.01, train=40),
             row("PassiveRegression", 0.10, 0.01, train=40), row("Best-of-4 true reward", 0.30, 0.01, rq=4.0)]
    text = " ".join(lm_demo.claims(table))
    assert "vs pi_ref: +0.100" in text and "(higher)" in text
    assert "vs PassiveRegression: +0.000" in text and "not distinguishable" in text
    assert "Best-of-4 true reward: reward -0.200" in text and "(lower)" in text and "for K > 10 outputs" in text


def test_cli_options_and_shared_flags():
    p = argparse.ArgumentParser()
    cli_demo.add_arguments(p)
    cfg = lm_demo.config_from_args(p.parse_args(["--lm", "--seeds", "4", "--beta", "0.7", "--eps", "0.2",
                                                 "--lm-model", "/some/dir", "--lm-reward", "both",
                                                 "--lm-features", "hidden", "--lm-d", "12"]))
    assert (cfg.seeds, cfg.beta, cfg.eps, cfg.model, cfg.reward, cfg.features, cfg.d) == (
        4, 0.7, 0.2, "/some/dir", "both", "hidden", 12)
    default = lm_demo.config_from_args(p.parse_args(["--lm"]))
    assert (default.beta, default.eps, default.seeds) == (lm_demo.LM_BETA, lm_demo.LM_EPS, 3)
    quick = lm_demo.config_from_args(p.parse_args(["--lm", "--lm-quick"]))
    assert quick.n_prompts == lm_demo.QUICK["n_prompts"] and quick.seeds == lm_demo.QUICK["seeds"]
    assert lm_demo.main(p.parse_args(["--lm", "--beta", "-1"])) == 2
    assert lm_demo.main(p.parse_args(["--lm", "--lm-d", "65"])) == 2
    with pytest.raises(ValueError, match="n_prompts"):
        lm_demo.LMDemoConfig(n_prompts=1)
    with pytest.raises(ValueError, match="pool_per_prompt"):
        lm_demo.LMDemoConfig(pool_per_prompt=4, bon_ns=(2, 8))
