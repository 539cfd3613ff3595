"""spanex demo --lm on the tiny model: the table's costs add up to the model's actual work."""

import argparse

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from spanex.lm import demo  # noqa: E402
from spanex.lm.testing import tiny_hf  # noqa: E402


def test_demo_runs_and_every_draw_is_accounted_for():
    cfg = demo.DemoConfig(n_prompts=2, max_new_tokens=4, setup_per_prompt=3, d=2, T_span=2, N_try=2, T_exp=2,
                          M_rej=2, sampler_batch=2, eval_per_prompt=2, n_ref=2)
    lines = []
    out = demo.run_demo(cfg, model=tiny_hf(0, max_new_tokens=4), out=lines.append, progress=False)
    rows = {r["policy"]: r for r in out["rows"]}
    assert set(rows) == {"pi_ref", "SpannerSampling", f"Best-of-{out['n_bon']}"}
    assert rows["pi_ref"]["T_data"] == 0 and rows["pi_ref"]["kl"] == 0.0
    assert rows["SpannerSampling"]["T_data"] > 0 and rows["SpannerSampling"]["kl_method"] == "plugin"
    bon = rows[f"Best-of-{out['n_bon']}"]
    assert bon["T_data"] == 0 and bon["policy_reward_queries"] == out["n_bon"] * cfg.n_eval
    # every response the model generated is on some ledger (train or eval), or in the setup pool
    counted = out["meta"]["setup_samples"] + sum(r["T_comp"] + r["weak_eval"] for r in out["rows"])
    assert out["sequences"] == counted
    text = "\n".join(lines)
    assert "expected work" in text and "Example generations" in text and "SpannerSampling" in text


def test_cli_options_and_validation():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    demo.add_arguments(p)
    cfg = demo.config_from_args(p.parse_args(["--lm-quick", "--lm-prompts", "3"]))
    assert cfg.n_prompts == 3 and cfg.max_new_tokens == demo.QUICK["max_new_tokens"]
    assert demo.config_from_args(p.parse_args([])) == demo.DemoConfig()
    assert demo.main(p.parse_args(["--lm-beta", "-1"])) == 2
    with pytest.raises(ValueError, match="n_prompts"):
        demo.DemoConfig(n_prompts=1)
