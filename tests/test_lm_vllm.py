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
pytest.importorskip("torch").set_num_threads(1)  # see spanex.lm.testing.ONE_THREAD_NOTE

from spanex.core.protocols import BaseModel, LogProbModel, TokenModel  # noqa: E402
from spanex.lm.loading import load_tokenizer  # noqa: E402
from spanex.lm.model import Response  # noqa: E402
from spanex.lm.testing import fixed_law_hf  # noqa: E402
from spanex.lm.vllm import VLLMModel  # noqa: E402

EOS = 2
LAW = {EOS: 0.3, 100: 0.4, 200: 0.3}


class FlatLogprobs:
    """vLLM's flat log-prob columns (FlatLogprobs): position i spans [start_indices[i], end_indices[i])."""

    def __init__(self, positions):
        self.start_indices, self.end_indices, self.token_ids, self.logprobs = [], [], [], []
        for pos in positions:
            self.start_indices.append(len(self.token_ids))
            for t, v in (pos or {}).items():
                self.token_ids.append(int(t))
                self.logprobs.append(float(v))
            self.end_indices.append(len(self.token_ids))

    def __len__(self):
        return len(self.start_indices)


class FakeEngine:
    """Serves the law LAW at every position; records every generate() call and its parameters.

    ``params`` may be one object or a list (one per prompt), as in vLLM. With ``flat_logprobs``
    the log-probs come as FlatLogprobs columns, else as lists of {token: Logprob} dicts; ``logprobs``
    = -1 (or >= V) returns every token of the vocabulary.
    """

    def __init__(self, tokenizer, law=LAW):
        self.tok = tokenizer
        self.law = law
        self.V = len(tokenizer)
        self.calls = []

    def get_tokenizer(self):
        return self.tok

    def _entry(self, k):
        full = {t: math.log(q) for t, q in self.law.items()}
        if k == -1 or k >= self.V:  # every token (the rest with a tiny probability)
            for t in range(self.V):
                full.setdefault(t, -1e4)
        return full

    def _wrap(self, positions, flat):
        if flat:
            return FlatLogprobs(positions)
        return [None if p is None else {t: SimpleNamespace(logprob=v) for t, v in p.items()} for p in positions]

    def generate(self, prompts, params, use_tqdm=False):
        self.calls.append((prompts, params))
        plist = params if isinstance(params, list) else [params] * len(prompts)
        assert len(plist) == len(prompts)
        outs = []
        for pr, par in zip(prompts, plist):
            ids = pr["prompt_token_ids"]
            flat = bool(getattr(par, "flat_logprobs", False))
            rng = np.random.default_rng(par.seed)
            toks, q = np.array(list(self.law)), np.array(list(self.law.values()))
            comps = []
            for _ in range(getattr(par, "n", 1)):
                seq, reason = [], "length"
                for _ in range(par.max_tokens):
                    t = int(rng.choice(toks, p=q))
                    seq.append(t)
                    if t == EOS:
                        reason = "stop"
                        break
                k = getattr(par, "logprobs", None)
                lps = self._wrap([self._entry(k)], flat) if k is not None else None
                comps.append(SimpleNamespace(token_ids=seq, text=self.tok.decode(seq, skip_special_tokens=True),
                                             finish_reason=reason, logprobs=lps))
            pl = None
            if getattr(par, "prompt_logprobs", None) is not None:
                pl = self._wrap([None] + [{int(t): math.log(self.law.get(int(t), 1e-30))} for t in ids[1:]], flat)
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
    assert m.preferred_batch == 32
    ys = m.sample("hi", 5, np.random.default_rng(0))
    assert len(ys) == 5 and all(isinstance(y, Response) for y in ys)
    (prompts, (params,)), = eng.calls
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
    assert eng.calls[0][1][0].seed == eng.calls[1][1][0].seed
    m.sample("hi", 4, np.random.default_rng(4))
    assert eng.calls[2][1][0].seed != eng.calls[0][1][0].seed


def test_logprob_sums_response_positions_and_matches_hf(model, tok):
    m, eng = model
    ys = [Response("", (), True), Response("", (100, 200), True), Response("", (100, 100, 100), False)]
    lp = m.logprob("hi", ys)
    expect = [math.log(0.3), math.log(0.4) + math.log(0.3) + math.log(0.3), 3 * math.log(0.4)]
    np.testing.assert_allclose(lp, expect, atol=1e-12)
    params = eng.calls[-1][1]
    assert params.prompt_logprobs == 0 and params.max_tokens == 1 and params.flat_logprobs
    assert len(eng.calls[-1][0]) == 3  # all responses in one engine call
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
    assert eng.calls[-1][1].logprobs == -1 and eng.calls[-1][1].flat_logprobs  # full vocabulary, flat columns
    n_calls = len(eng.calls)
    a = m.sample_next("hi", [(100,)] * 4000, np.random.default_rng(0))
    assert len(eng.calls) == n_calls + 1 and len(eng.calls[-1][0]) == 1  # one request per distinct prefix
    # frequency sd <= 0.5/sqrt(4000) = 0.0079; 4 sd = 0.032
    for t, q in LAW.items():
        assert abs(np.mean(a == t) - q) < 0.032


def test_per_token_dicts_give_the_same_numbers(tok):
    """flat_logprobs=False (older vLLM): per-token dicts with logprobs=V; same log-probs."""
    eng = FakeEngine(tok)
    flat = VLLMModel(eng, max_new_tokens=6, params_factory=SimpleNamespace)
    old = VLLMModel(eng, max_new_tokens=6, params_factory=SimpleNamespace, flat_logprobs=False)
    ys = [Response("", (100, 200), True), Response("", (100,), False)]
    np.testing.assert_array_equal(flat.logprob("hi", ys), old.logprob("hi", ys))
    np.testing.assert_array_equal(flat.next_logprobs("hi", [(), (100,)]), old.next_logprobs("hi", [(), (100,)]))
    assert eng.calls[-1][1].logprobs == old.vocab_size and not hasattr(eng.calls[-1][1], "flat_logprobs")


def test_sample_many_is_one_engine_call_with_a_seed_per_prompt(model):
    m, eng = model
    chat = [{"role": "user", "content": "hello"}]
    out = m.sample_many(["hi", chat, "yo"], [3, 2, 0], np.random.default_rng(0))
    assert [len(o) for o in out] == [3, 2, 0]
    (prompts, params), = eng.calls
    assert len(prompts) == 2 and [p.n for p in params] == [3, 2]  # the n=0 prompt makes no request
    assert prompts[1]["prompt_token_ids"] == m.encode_prompt(chat) != m.encode_prompt("hi")
    assert params[0].seed != params[1].seed
    again = m.sample_many(["hi", chat, "yo"], [3, 2, 0], np.random.default_rng(0))
    assert [[y.token_ids for y in o] for o in again] == [[y.token_ids for y in o] for o in out]
    with pytest.raises(ValueError, match="one count per prompt"):
        m.sample_many(["hi"], [1, 2], np.random.default_rng(0))


def test_lm_problem_with_vllm_runs_spanner_sampling_and_mtss(model):
    """VLLMModel goes through lm_problem like any BaseModel: text features, token level, a real run."""
    from spanex.algorithms.mtss import MTSS
    from spanex.algorithms.spanner_sampling import SpannerSampling
    from spanex.lm.problem import lm_problem

    m, eng = model

    def embed(prompts, completions):  # a user embedder: counts of the three tokens' texts
        return np.array([[len(c), c.count(" "), float(len(c) == 0)] for c in completions], float)

    p = lm_problem(m, prompts=["hi", "hello there", "what now"], features=embed, d=2, reward="vader",
                   setup_per_prompt=8, beta=0.5, seed=0)
    assert p.meta["backend"] == "VLLMModel" and p.token_model is m and p.d == 2
    assert len(eng.calls) == 1 and len(eng.calls[0][0]) == 3  # the setup pool: one engine call for 3 prompts
    requests = m.requests
    res = SpannerSampling(T_span=2, N_try=2, T_exp=2, nu=1.0).run(p, seed=0)
    assert res.status == "completed"
    def completions(call):  # sampling requests carry n; scoring requests do not
        return sum(getattr(q, "n", 0) for q in (call[1] if isinstance(call[1], list) else [call[1]]))

    assert sum(completions(c) for c in eng.calls[1:]) == res.ledger.count("weak")  # every completion was charged
    assert m.requests > requests
    r2 = MTSS(n_rounds=1, rollouts=2, M_tok=2.0, delta_tok=0.5).run(p, seed=0)
    assert r2.ledger.count("token") > 0 and r2.ledger.reward_queries > 0


def test_truncated_logprobs_are_refused(tok):
    class Few(FakeEngine):
        def _entry(self, k):
            return super()._entry(20)

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
