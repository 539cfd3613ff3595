"""HFModel on tiny models: protocols, seeds, exact laws, log-probs, padding, token level, KV cache."""

import math
import pickle

import numpy as np
import pytest

pytest.importorskip("torch").set_num_threads(1)  # see spanex.lm.testing.ONE_THREAD_NOTE
pytest.importorskip("transformers")

from spanex.core.protocols import BaseModel, LogProbModel, TokenModel  # noqa: E402
from spanex.lm.base import Response  # noqa: E402
from spanex.lm.testing import fixed_law_hf, tiny_hf  # noqa: E402

X = "Describe the ocean in a few words."
EOS = 2  # <|im_end|> in the SmolLM2 tokenizer
LAW = {EOS: 0.3, 100: 0.4, 200: 0.3}


@pytest.fixture(scope="module")
def hf():
    return tiny_hf(0, max_new_tokens=8, batch_size=4)


@pytest.fixture(scope="module")
def fixed():
    return fixed_law_hf(LAW, max_new_tokens=6)


def test_protocol_conformance(hf):
    assert isinstance(hf, BaseModel) and isinstance(hf, LogProbModel) and isinstance(hf, TokenModel)
    assert hf.cost_kind == "weak" and hf.cost_per_sample == 1
    assert hf.horizon == 8 and hf.vocab_size == 49152
    ys = hf.sample(X, 5, np.random.default_rng(0))
    assert isinstance(ys, list) and len(ys) == 5 and all(isinstance(y, Response) for y in ys)
    assert all(len(y.token_ids) <= 8 for y in ys)
    assert hf.sample(X, 0, np.random.default_rng(0)) == []
    lp = hf.logprob(X, ys)
    assert lp.shape == (5,) and np.all(np.isfinite(lp)) and np.all(lp < 0)
    P = hf.next_probs(X, [(), tuple(ys[0].token_ids[:2])])
    assert P.shape == (2, 49152)
    np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-9)
    a = hf.sample_next(X, [(), (100,)], np.random.default_rng(0))
    assert a.shape == (2,) and a.dtype.kind == "i" and np.all((a >= 0) & (a < 49152))


def test_same_seed_same_responses_and_batching_independent_of_caches(hf):
    a = hf.sample(X, 6, np.random.default_rng(7))
    hf.clear_caches()
    b = hf.sample(X, 6, np.random.default_rng(7))
    assert [y.token_ids for y in a] == [y.token_ids for y in b]
    c = hf.sample(X, 6, np.random.default_rng(8))
    assert [y.token_ids for y in a] != [y.token_ids for y in c]
    t1 = hf.sample_next(X, [()] * 20, np.random.default_rng(3))
    t2 = hf.sample_next(X, [()] * 20, np.random.default_rng(3))
    assert np.array_equal(t1, t2)


def test_sequence_logprob_equals_sum_of_token_logprobs(hf):
    ys = hf.sample(X, 3, np.random.default_rng(1))
    lp = hf.logprob(X, ys)
    for y, l in zip(ys, lp):
        seq = list(y.token_ids) + ([EOS] if y.finished else [])
        L = hf.next_logprobs(X, [tuple(seq[:h]) for h in range(len(seq))])
        tok_sum = sum(L[h, seq[h]] for h in range(len(seq)))
        # both in float32 from the same weights, incremental vs teacher-forced: agree to ~1e-5 per token
        assert abs(tok_sum - l) < 1e-3


def test_logprob_padding_invariance(hf):
    """Scoring a response alone or in a batch with longer ones (right padding) gives the same log-prob."""
    ys = hf.sample(X, 8, np.random.default_rng(2))
    short = Response("", (), True)
    batch = [short] + list(ys)
    together = hf.logprob(X, batch)
    alone = np.array([hf.logprob(X, [y])[0] for y in batch])
    np.testing.assert_allclose(together, alone, atol=1e-4)
    big = tiny_hf(0, max_new_tokens=8, batch_size=32)
    np.testing.assert_allclose(big.logprob(X, batch), together, atol=1e-4)


def test_fixed_law_matches_closed_forms(fixed):
    """With next-token law p at every step, pi_ref is explicit.

    P(empty) = p_EOS = 0.3; a response of k non-EOS tokens that finished has probability
    prod p(a_i) * 0.3; a truncated one (6 tokens) prod p(a_i). With n = 4000 draws the empirical
    P(empty) has sd sqrt(0.3*0.7/4000) = 0.0072; 4 sd = 0.029.
    """
    model, p = fixed
    ys = model.sample("hi", 4000, np.random.default_rng(0))
    empty = np.mean([len(y.token_ids) == 0 for y in ys])
    assert abs(empty - 0.3) < 0.029
    assert all((str(y) == "") == (len(y.token_ids) == 0) for y in ys)
    assert all(y.finished or len(y.token_ids) == 6 for y in ys)
    lp = model.logprob("hi", ys[:50])
    expect = [sum(math.log(LAW[a]) for a in y.token_ids) + (math.log(0.3) if y.finished else 0.0) for y in ys[:50]]
    np.testing.assert_allclose(lp, expect, atol=1e-4)
    P = model.next_probs("hi", [(), (100, 200)])
    for tok, q in LAW.items():
        np.testing.assert_allclose(P[:, tok], q, atol=1e-6)
    # token-level sampling frequencies: sd of a frequency <= 0.5/sqrt(4000) = 0.0079; 4 sd = 0.032
    a = model.sample_next("hi", [(100,)] * 4000, np.random.default_rng(1))
    for tok, q in LAW.items():
        assert abs(np.mean(a == tok) - q) < 0.032


def test_min_new_tokens_renormalises_consistently():
    model, _ = fixed_law_hf(LAW, max_new_tokens=4, min_new_tokens=2)
    ys = model.sample("hi", 300, np.random.default_rng(0))
    assert min(len(y.token_ids) for y in ys) >= 2
    # first two tokens: EOS forbidden, so p(100) = 0.4/0.7, p(200) = 0.3/0.7
    y = Response("", (100, 200), True)
    expect = math.log(0.4 / 0.7) + math.log(0.3 / 0.7) + math.log(0.3)
    assert abs(model.logprob("hi", [y])[0] - expect) < 1e-4
    assert model.logprob("hi", [Response("", (), True)])[0] == -np.inf
    assert model.next_probs("hi", [()])[0, EOS] == 0.0


def test_ended_prefix_stays_at_eos(fixed):
    model, _ = fixed
    P = model.next_probs("hi", [(100, EOS), (EOS, 100, 100)])
    assert np.all(P[:, EOS] == 1.0) and np.all(P.sum(1) == 1.0)
    assert np.all(model.sample_next("hi", [(EOS,)] * 5, np.random.default_rng(0)) == EOS)


def test_kv_cache_incremental_equals_full_and_hits(hf):
    hf.clear_caches()
    hf.stats.reset()
    path = (100, 200, 300, 400)
    # full computation of a deep prefix with nothing cached
    full = hf.next_logprobs(X, [path])[0]
    assert hf.stats.kv_full == 1
    hf.clear_caches()
    for h in range(len(path) + 1):  # token-by-token roll-in: each step extends a cached parent
        inc = hf.next_logprobs(X, [path[:h]])[0]
    assert hf.stats.kv_incremental == len(path)
    np.testing.assert_allclose(inc, full, atol=1e-4)
    before = hf.stats.kv_hits
    hf.next_logprobs(X, [path, path[:2]])
    assert hf.stats.kv_hits == before + 2


def test_kv_cache_is_memory_bounded():
    hf = tiny_hf(0, kv_cache_mb=0.05)
    hf.next_logprobs(X, [(i,) for i in range(100, 160)])
    assert hf._kv.bytes <= 0.05 * 2**20 or len(hf._kv) == 1


def test_response_pickles_and_compares_as_text():
    y = Response("hello", (1, 2), False)
    z = pickle.loads(pickle.dumps(y))
    assert z == "hello" and z.token_ids == (1, 2) and z.finished is False
    assert hash(y) == hash("hello")


def test_plain_strings_are_tokenized_and_finished(hf):
    lp_str = hf.logprob(X, ["Hello world"])[0]
    ids = hf.tokenizer("Hello world", add_special_tokens=False)["input_ids"]
    lp_resp = hf.logprob(X, [Response("Hello world", ids, True)])[0]
    assert abs(lp_str - lp_resp) < 1e-5


def test_chat_template_is_used_when_available(hf):
    ids = hf.encode_prompt("Hi")
    text = hf.tokenizer.decode(ids)
    assert "<|im_start|>user\nHi<|im_end|>" in text and text.rstrip().endswith("<|im_start|>assistant")
    raw = tiny_hf(0, chat_template=False)
    assert "<|im_start|>" not in raw.tokenizer.decode(raw.encode_prompt("Hi"))
    sys = tiny_hf(0, system_prompt="Be kind.")
    assert "Be kind." in sys.tokenizer.decode(sys.encode_prompt("Hi"))


@pytest.mark.parametrize("kwargs, match", [
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"min_new_tokens": 9, "max_new_tokens": 8}, "min_new_tokens"),
    ({"batch_size": 0}, "batch_size"),
    ({"kv_cache_mb": -1}, "kv_cache_mb"),
])
def test_bad_construction_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tiny_hf(0, **kwargs)


def test_bad_call_arguments(hf):
    with pytest.raises(TypeError, match="a prompt must be a str"):
        hf.sample(3, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n must be"):
        hf.sample(X, -1, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng must be"):
        hf.sample(X, 1, 0)
    with pytest.raises(ValueError, match="token ids must be in"):
        hf.next_probs(X, [(49152,)])
    with pytest.raises(TypeError, match="response must be a str"):
        hf.logprob(X, [3])


def _deterministic_draw(logp, g):
    """Greedy, except that an argmax divisible by 3 becomes EOS: rows end at different steps."""
    import torch

    tok = torch.argmax(logp, dim=-1)
    return torch.where(tok % 3 == 0, torch.full_like(tok, EOS), tok)


def test_sample_many_pads_prompts_without_changing_the_law(hf, monkeypatch):
    """Left-padded decoding of several prompts gives the next-token laws of each prompt alone.

    With a deterministic draw (a function of the row's log-probs), every row must produce the same
    tokens as when its prompt is decoded alone (no padding, cached prompt); rows end at different
    steps, so finished rows leaving a padded batch are covered.
    """
    import spanex.lm.model as mod

    monkeypatch.setattr(mod, "_draw", _deterministic_draw)
    prompts = ["Hi.", "Describe a long and winding mountain road in exactly three short words.",
               [{"role": "user", "content": "Name a fruit."}]]
    alone = [hf.sample(x, 2, np.random.default_rng(0)) for x in prompts]
    together = hf.sample_many(prompts, [2, 2, 2], np.random.default_rng(0))
    assert [[y.token_ids for y in ys] for ys in together] == [[y.token_ids for y in ys] for ys in alone]
    assert len({len(ys[0].token_ids) for ys in together}) > 1  # the rows did end at different steps
    st = hf._start_states(prompts[:2])
    np.testing.assert_allclose(st[2][0].numpy(), hf._prompt_state(prompts[0]).logp.numpy(), atol=1e-4)


def test_sample_many_counts_and_chunks(hf):
    before = hf.stats.sequences
    hooked = []
    hf.progress_hook = hooked.append
    try:
        out = hf.sample_many(["a", "b", "c"], [0, 5, 3], np.random.default_rng(0))
    finally:
        hf.progress_hook = None
    assert [len(o) for o in out] == [0, 5, 3] and hf.stats.sequences - before == 8
    assert sum(hooked) == 8 and hf.preferred_batch == 32
    small = tiny_hf(0, batch_size=3, preferred_batch=5)
    seen = []
    small.progress_hook = seen.append
    assert len(small.sample(X, 7, np.random.default_rng(0))) == 7 and seen == [3, 3, 1]  # chunks of batch_size
    assert small.preferred_batch == 5
    with pytest.raises(ValueError, match="one count per prompt"):
        hf.sample_many(["a"], [1, 1], np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"ns\[1\] must be"):
        hf.sample_many(["a", "b"], [1, -1], np.random.default_rng(0))


def test_from_pretrained_local_directory_dtype_and_device(hf, tmp_path):
    from spanex.lm.model import HFModel

    hf.model.save_pretrained(tmp_path)
    hf.tokenizer.save_pretrained(tmp_path)
    again = HFModel.from_pretrained(str(tmp_path), device="cpu", max_new_tokens=8)
    assert again.name == str(tmp_path) and str(again.device) == "cpu"
    np.testing.assert_allclose(again.next_logprobs(X, [(), (100,)]), hf.next_logprobs(X, [(), (100,)]), atol=1e-5)
    bf = HFModel.from_pretrained(str(tmp_path), dtype="bfloat16", max_new_tokens=4)
    assert next(bf.model.parameters()).dtype.is_floating_point and str(next(bf.model.parameters()).dtype) == \
        "torch.bfloat16"
    lp = bf.next_logprobs(X, [()])  # log-probs still float32-normalised
    assert abs(np.exp(lp).sum() - 1) < 1e-4
    ys = bf.sample(X, 2, np.random.default_rng(0))
    assert np.all(np.isfinite(bf.logprob(X, ys))) and bf.prefix_hidden(X, [()]).dtype == np.float32
    with pytest.raises(OSError, match="Nothing is downloaded"):
        HFModel.from_pretrained(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="dtype must be"):
        HFModel.from_pretrained(str(tmp_path), dtype="float8")
    with pytest.raises(ValueError, match="device must be"):
        HFModel.from_pretrained(str(tmp_path), device="gpu0")
