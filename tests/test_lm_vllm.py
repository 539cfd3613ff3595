"""The vLLM backend's request/response handling, against a fake engine (vllm is not installed here).

The fake engine serves a known next-token law p (the same at every position, like
``spanex.lm.testing.fixed_law_hf``) and answers requests the way vLLM's ``LLM.generate`` does:
RequestOutput-like objects with ``outputs`` (text, token_ids, finish_reason, logprobs) and
``prompt_logprobs`` (None at position 0, then {token: Logprob}). It also records every request's
parameters, so the tests check what the backend asks for, not only what it returns.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("transformers")

from spanex.core.protocols import BaseModel, LogProbModel, TokenModel  # noqa: E402
from spanex.lm.loading import load_tokenizer  # noqa: E402
from spanex.lm.model import Response  # noqa: E402
from spanex.lm.testing import fixed_law_hf  # noqa: E402
from spanex.lm.vllm import VLLMModel  # noqa: E402

EOS = 2
LAW = {EOS: 0.3, 100: 0.4, 200: 0.3}


class FakeEngine:
    def __init__(self, tokenizer, law=LAW):
        self.tok = tokenizer
        self.law = law
        self.V = len(tokenizer)
        self.calls = []

    def get_tokenizer(self):
        return self.tok

    def _lp_entry(self, k):
        # vLLM returns at least the top-k; with k >= V it returns every token (tiny probability for the rest)
        full = {t: SimpleNamespace(logprob=math.log(q)) for t, q in self.law.items()}
        if k >= self.V:
            for t in range(self.V):
                full.setdefault(t, SimpleNamespace(logprob=-1e4))
        return full

    def generate(self, prompts, params, use_tqdm=False):
        self.calls.append((prompts, params))
        outs = []
        for pr in prompts:
            ids = pr["prompt_token_ids"]
            rng = np.random.default_rng(params.seed)
            toks, q = np.array(list(self.law)), np.array(list(self.law.values()))
            comps = []
            for _ in range(getattr(params, "n", 1)):
                seq, reason = [], "length"
                for _ in range(params.max_tokens):
                    t = int(rng.choice(toks, p=q))
                    seq.append(t)
                    if t == EOS:
                        reason = "stop"
                        break
                lps = [self._lp_entry(getattr(params, "logprobs", None) or 0)] if getattr(params, "logprobs", None) else None
                comps.append(SimpleNamespace(token_ids=seq, text=self.tok.decode(seq, skip_special_tokens=True),
                                             finish_reason=reason, logprobs=lps))
            pl = None
            if getattr(params, "prompt_logprobs", None) is not None:
                pl = [None] + [{int(t): SimpleNamespace(logprob=math.log(self.law.get(int(t), 1e-30)))}
                               for t in ids[1:]]
            outs.append(SimpleNamespace(outputs=comps, prompt_logprobs=pl))
        return outs


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture
def model(tok):
    eng = FakeEngine(tok)
    return VLLMModel(eng, max_new_tokens=6, params_factory=SimpleNamespace), eng


def test_protocols_and_sampling_requests(model):
    m, eng = model
    assert isinstance(m, BaseModel) and isinstance(m, LogProbModel) and isinstance(m, TokenModel)
    ys = m.sample("hi", 5, np.random.default_rng(0))
    assert len(ys) == 5 and all(isinstance(y, Response) for y in ys)
    (prompts, params), = eng.calls
    assert len(prompts) == 1 and params.n == 5  # one request, n samples sharing the prompt (prefix cache)
    assert params.temperature == 1.0 and params.top_p == 1.0 and params.top_k == 0 and params.max_tokens == 6
    assert prompts[0]["prompt_token_ids"] == m.encode_prompt("hi")
    for y in ys:  # EOS is stripped from the ids and recorded as finished
        assert EOS not in y.token_ids and (y.finished or len(y.token_ids) == 6)
    assert m.sample("hi", 0, np.random.default_rng(0)) == []


def test_seeds_flow_from_the_generator(model):
    m, eng = model
    a = m.sample("hi", 4, np.random.default_rng(3))
    b = m.sample("hi", 4, np.random.default_rng(3))
    assert [y.token_ids for y in a] == [y.token_ids for y in b]
    assert eng.calls[0][1].seed == eng.calls[1][1].seed
    m.sample("hi", 4, np.random.default_rng(4))
    assert eng.calls[2][1].seed != eng.calls[0][1].seed


def test_logprob_sums_response_positions_and_matches_hf(model, tok):
    m, eng = model
    ys = [Response("", (), True), Response("", (100, 200), True), Response("", (100, 100, 100), False)]
    lp = m.logprob("hi", ys)
    expect = [math.log(0.3), math.log(0.4) + math.log(0.3) + math.log(0.3), 3 * math.log(0.4)]
    np.testing.assert_allclose(lp, expect, atol=1e-12)
    params = eng.calls[-1][1]
    assert params.prompt_logprobs == 0 and params.max_tokens == 1
    # the same law served by the HF backend gives the same sequence log-probs
    hf, _ = fixed_law_hf(LAW, max_new_tokens=6)
    np.testing.assert_allclose(hf.logprob("hi", ys), expect, atol=1e-4)


def test_token_level_full_distribution(model):
    m, eng = model
    P = m.next_probs("hi", [(), (100,), (100, EOS)])
    assert P.shape == (3, m.vocab_size)
    for t, q in LAW.items():
        np.testing.assert_allclose(P[:2, t], q, atol=1e-9)
    assert P[2, EOS] == 1.0
    assert len(eng.calls[-1][0]) == 2  # the ended prefix needs no request
    assert eng.calls[-1][1].logprobs == m.vocab_size
    n_calls = len(eng.calls)
    a = m.sample_next("hi", [(100,)] * 4000, np.random.default_rng(0))
    assert len(eng.calls) == n_calls + 1 and len(eng.calls[-1][0]) == 1  # one request per distinct prefix
    # frequency sd <= 0.5/sqrt(4000) = 0.0079; 4 sd = 0.032
    for t, q in LAW.items():
        assert abs(np.mean(a == t) - q) < 0.032


def test_truncated_logprobs_are_refused(tok):
    class Few(FakeEngine):
        def _lp_entry(self, k):
            return super()._lp_entry(20)

    m = VLLMModel(Few(tok), params_factory=SimpleNamespace)
    with pytest.raises(RuntimeError, match="max_logprobs"):
        m.next_probs("hi", [()])


def test_validation(tok):
    eng = FakeEngine(tok)
    with pytest.raises(ValueError, match="min_new_tokens must be 0"):
        VLLMModel(eng, min_new_tokens=1, params_factory=SimpleNamespace)
    with pytest.raises(ValueError, match="max_new_tokens"):
        VLLMModel(eng, max_new_tokens=0, params_factory=SimpleNamespace)
    m = VLLMModel(eng, params_factory=SimpleNamespace)
    with pytest.raises(TypeError, match="rng must be"):
        m.sample("hi", 1, 0)
    with pytest.raises(ValueError, match="token ids must be in"):
        m.next_probs("hi", [(10**6,)])


def test_without_vllm_installed_the_default_factory_explains(tok):
    m = VLLMModel(FakeEngine(tok))
    with pytest.raises(ModuleNotFoundError, match="separate GPU environment"):
        m.sample("hi", 1, np.random.default_rng(0))
