"""spanex.lm.base without torch, and a toy BaseModel written here going through lm_problem.

The toy backend is what a user writes for a new server: a class with ``sample(x, n, rng)`` that
returns strings. It has no tokenizer, no token level and no torch.
"""

import subprocess
import sys

import numpy as np
import pytest

from spanex.lm.base import ChatPrompt, LogprobTokenLevel, Response, as_prompt, normalize_prefix


def test_base_imports_without_torch():
    code = ("import sys, spanex.lm.base, spanex.lm, spanex.lm.prompts, spanex.lm_demo; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_no_process_wide_offline_variables():
    """Loading uses local_files_only; importing the LM modules sets no environment variable."""
    code = ("import os, spanex.lm.loading, spanex.lm.model; "
            "print(os.environ.get('HF_HUB_OFFLINE'), os.environ.get('TRANSFORMERS_OFFLINE'))")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    pytest.importorskip("torch")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == ["None", "None"]


def test_response_and_chat_prompt():
    y = Response("hi", [5, 6], finished=False)
    assert y == "hi" and y.token_ids == (5, 6) and not y.finished and hash(y) == hash("hi")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a fruit."}]
    c = as_prompt(msgs)
    assert isinstance(c, ChatPrompt) and c.messages == msgs and str(c) == "Name a fruit."
    assert hash(c) == hash(as_prompt(list(msgs))) and c == ChatPrompt(msgs)  # hashable, by value
    assert as_prompt({"prompt": "hello", "answer": "x"}) == "hello"  # a dataset row
    with pytest.raises(ValueError, match="non-empty"):
        as_prompt("  ")
    with pytest.raises(ValueError, match="'role' and 'content'"):
        as_prompt([{"role": "user"}])
    with pytest.raises(TypeError, match="a prompt must be"):
        as_prompt(3)
    with pytest.raises(ValueError, match="'prompt' field"):
        as_prompt({"question": "?"})


def test_normalize_prefix():
    assert normalize_prefix([3, 1, 2, 2, 7], vocab_size=10, eos_id=2) == (3, 1, 2)
    assert normalize_prefix((), 10, 2) == ()
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 9\]"):
        normalize_prefix([10], 10, 2)
    with pytest.raises(TypeError, match="sequence of token ids"):
        normalize_prefix(5, 10, 2)


class ToyTokens(LogprobTokenLevel):
    """Next-token law p at every position (vocabulary 4), for the mixin."""

    vocab_size = 4
    p = np.array([0.1, 0.2, 0.3, 0.4])

    def next_logprobs(self, x, prefixes):
        return np.tile(np.log(self.p), (len(prefixes), 1))


def test_token_level_mixin_draws_the_law():
    m = ToyTokens()
    np.testing.assert_allclose(m.next_probs("x", [(), (1,)]), np.tile(m.p, (2, 1)))
    a = m.sample_next("x", [(0,)] * 20000, np.random.default_rng(0))
    # frequency sd <= 0.5/sqrt(20000) = 0.0035; 5 sd = 0.018
    np.testing.assert_allclose(np.bincount(a, minlength=4) / a.size, m.p, atol=0.018)
    with pytest.raises(TypeError, match="rng must be"):
        m.sample_next("x", [()], 0)


class ToyServer:
    """A user's own backend: answers are 'yes'/'no' with prompt-dependent odds (no tokenizer, no torch)."""

    cost_kind = "weak"
    cost_per_sample = 1

    def __init__(self):
        self.drawn = 0

    def sample(self, x, n, rng):
        p_yes = 0.3 + 0.4 * (len(str(x)) % 2)
        self.drawn += n
        return [("yes" if u < p_yes else "no") + "!" * int(k) for u, k in zip(rng.random(n), rng.integers(0, 3, n))]


def embed(prompts, completions):
    return np.array([[c.startswith("yes"), c.count("!"), len(p) % 3] for p, c in zip(prompts, completions)], float)


def likes_yes(prompts, completions, **kwargs):
    return [1.0 if c.startswith("yes") else 0.0 for c in completions]


def test_toy_backend_through_lm_problem_and_spanner_sampling():
    from spanex.algorithms.spanner_sampling import SpannerSampling
    from spanex.lm.problem import lm_problem

    srv = ToyServer()
    p = lm_problem(srv, prompts=["a", "bb", "ccc", "dddd"], features=embed, d=3, projection="pca",
                   reward=likes_yes, setup_per_prompt=12, beta=0.5, seed=0, R_max=1.0)
    assert p.token_model is None and p.meta["backend"] == "ToyServer" and srv.drawn == p.meta["setup_samples"] == 48
    assert p.meta["R_max_source"] == "given" and p.R_max == 1.0
    # the reward is a linear function of the first raw feature; phi's bounded normalisation bends it a
    # little (r2 ~0.98 here), while a reward unrelated to the features has no held-out fit at all
    assert p.linear_fit.r2_cv > 0.9
    noise = lm_problem(setup=p.setup, prompts=p.prompts, features=embed, d=3, R_max=1.0,
                       reward=lambda prompts, completions: list(np.random.default_rng(0).random(len(completions))))
    assert noise.linear_fit.r2_cv < 0.2 and srv.drawn == 48  # the pool was reused: no new draws
    before = srv.drawn
    res = SpannerSampling(T_span=4, N_try=2, T_exp=4, nu=1.0).run(p, seed=1)
    assert res.status == "completed" and srv.drawn - before == res.ledger.count("weak")
    assert res.ledger.reward_queries > 0
    with pytest.raises(ValueError, match="token_level=True needs"):
        lm_problem(srv, prompts=["a", "bb"], features=embed, d=2, reward=likes_yes, setup_per_prompt=6,
                   token_level=True)
    with pytest.raises(TypeError, match="features='hidden' needs an HFModel"):
        lm_problem(srv, prompts=["a", "bb"], features="hidden", d=2, reward=likes_yes, setup_per_prompt=6)
    with pytest.raises(TypeError, match="model must be"):
        lm_problem(object(), prompts=["a"], features=embed)
