"""Every input form of lm_problem, on small fixtures: prompts, rewards, features and projections."""

import numpy as np
import pytest

pytest.importorskip("torch").set_num_threads(1)  # see spanex.lm.testing.ONE_THREAD_NOTE
pytest.importorskip("transformers")

from spanex.lm.base import ChatPrompt  # noqa: E402
from spanex.lm.features import Projection  # noqa: E402
from spanex.lm.problem import lm_problem  # noqa: E402
from spanex.lm.prompts import as_prompt_set  # noqa: E402
from spanex.lm.rewards import TRLReward  # noqa: E402
from spanex.lm.testing import tiny_hf  # noqa: E402

CHATS = [[{"role": "user", "content": "Name a colour."}],
         [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Say hello."}]]


class FakeDataset:
    """The parts of datasets.Dataset that as_prompt_set uses: column_names and iteration over row dicts."""

    def __init__(self, rows):
        self.rows = rows
        self.column_names = list(rows[0])

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, col):
        return [r[col] for r in self.rows]


def test_prompt_forms():
    rows = [{"prompt": "What is 2+2?", "answer": "4"}, {"prompt": CHATS[0], "answer": "red"}]
    ds = FakeDataset(rows)
    for ps in (as_prompt_set(ds), as_prompt_set(rows), as_prompt_set({"prompt": [r["prompt"] for r in rows],
                                                                     "answer": ["4", "red"]})):
        assert ps.prompts[0] == "What is 2+2?" and isinstance(ps.prompts[1], ChatPrompt)
        assert ps.columns[ps.prompts[1]] == {"answer": "red"} and ps.answers[ps.prompts[0]] == "4"
    col = as_prompt_set(ds["prompt"])  # a single column: the prompts only
    assert len(col) == 2 and col.columns == {}
    assert as_prompt_set(iter(["a", "b"])).prompts == ["a", "b"]  # any iterable
    with pytest.raises(ValueError, match="no 'question' column"):
        as_prompt_set(ds, prompt_column="question")
    with pytest.raises(ValueError, match=r"prompts\[1\]"):
        as_prompt_set(["ok", ""])
    with pytest.raises(TypeError, match="prompts must be"):
        as_prompt_set(3)


def test_real_datasets_column_if_installed():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"prompt": ["Hi there.", "Tell me a joke."], "level": [1, 2]})
    ps = as_prompt_set(ds)
    assert ps.prompts == ["Hi there.", "Tell me a joke."] and ps.columns["Tell me a joke."] == {"level": 2}
    assert as_prompt_set(ds["prompt"]).prompts == ps.prompts


def test_chat_prompts_on_the_hf_model():
    hf = tiny_hf(0, max_new_tokens=3, system_prompt="Be brief.")
    ids = hf.encode_prompt(CHATS[0])
    text = hf.tokenizer.decode(ids)
    assert "Be brief." in text and "Name a colour." in text  # the system prompt is added to a chat without one
    own = hf.tokenizer.decode(hf.encode_prompt(CHATS[1]))
    assert "Answer in French." in own and "Be brief." not in own  # a chat's own system message is kept
    assert hf.encode_prompt("Name a colour.") == ids  # a str is one user turn
    ys = hf.sample(CHATS[1], 2, np.random.default_rng(0))
    assert len(ys) == 2 and np.all(np.isfinite(hf.logprob(ChatPrompt(CHATS[1]), ys)))


def test_trl_reward_conventions():
    seen = {}

    def reward_fn(prompts, completions, completion_ids=None, answer=None, **kwargs):
        seen.update(prompts=prompts, completions=completions, ids=completion_ids, answer=answer)
        return [float(len(completion_ids[i])) for i in range(len(completions))]

    from spanex.lm.base import Response

    chat = ChatPrompt(CHATS[0])
    r = TRLReward(reward_fn, columns={chat: {"answer": "red"}})
    out = r(chat, [Response("blue", (5, 6), True), Response("", (), True)])
    np.testing.assert_array_equal(out, [2.0, 0.0])
    assert seen["prompts"] == [CHATS[0]] * 2 and seen["answer"] == ["red", "red"]  # conversational, like TRL
    assert seen["completions"][0] == [{"role": "assistant", "content": "blue"}]
    plain = TRLReward(lambda prompts, completions: [len(c) for c in completions])
    np.testing.assert_array_equal(plain("hi", ["abc", "de"]), [3, 2])
    with pytest.raises(ValueError, match="one float per completion"):
        TRLReward(lambda p, c: [1.0])("hi", ["a", "b"])
    with pytest.raises(ValueError, match="non-finite"):
        TRLReward(lambda p, c: [float("nan")] * len(c))("hi", ["a"])
    with pytest.raises(ValueError, match="returned None"):
        TRLReward(lambda p, c: [None] * len(c))("hi", ["a"])


def test_problem_from_chat_dataset_with_trl_reward_and_columns():
    rows = [{"prompt": CHATS[0], "target": "e"}, {"prompt": CHATS[1], "target": "o"}]

    def has_target(prompts, completions, target, **kwargs):
        return [float(t in c[0]["content"]) for c, t in zip(completions, target)]

    p = lm_problem(tiny_hf(0, max_new_tokens=4), prompts=FakeDataset(rows), features="hidden", d=3,
                   reward=has_target, setup_per_prompt=6, beta=0.5, seed=0)
    assert all(isinstance(x, ChatPrompt) for x in p.prompts.prompts)
    assert p.meta["R_max_source"].startswith("range on the setup pool")
    x = p.prompts.prompts[1]
    ys = p.base.sample(x, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(p.reward(x, ys, np.random.default_rng(0)),
                                  [float("o" in str(y)) for y in ys])


def test_sentence_transformer_features_by_name_and_object():
    from spanex.lm.features import SentenceTransformerEmbedder, shared_minilm
    from spanex.lm.loading import minilm_path

    mini = shared_minilm()
    assert mini.raw_dim == 384
    E = mini.embed_texts(["a cat", "a kitten", "stock prices"])
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)  # MiniLM ends with a Normalize module
    assert E[0] @ E[1] > E[0] @ E[2] + 0.3  # cat ~ kitten, not stocks
    by_path = SentenceTransformerEmbedder(str(minilm_path()))
    np.testing.assert_allclose(by_path.embed_texts(["a cat"]), E[:1], atol=1e-6)
    by_obj = SentenceTransformerEmbedder(mini.model, name="mine")
    assert by_obj.spec() == {"kind": "sentence-transformers", "model": "mine", "include_prompt": False}
    with pytest.raises(OSError, match="Nothing is downloaded"):
        SentenceTransformerEmbedder("no-such-org/no-such-model")


def test_projections_and_large_d():
    rng = np.random.default_rng(0)
    H = rng.standard_normal((150, 80)) @ np.diag(np.linspace(3, 0.5, 80))
    w = rng.standard_normal(80)
    r = H @ w
    for kind in ("pca", "supervised", "random"):
        P = Projection.fit(H, 64, kind=kind, seed=1, targets=r)
        assert P.d == 64 and np.all(np.linalg.norm(P(H), axis=1) < 1)
    none = Projection.fit(H, None, kind="none")
    assert none.d == 80
    # supervised: the first direction is the covariance direction X^T r, so a d=1 projection keeps the
    # part of r that is linear in H, which PCA's top direction (chosen without r) does not
    sup = Projection.fit(H, 1, kind="supervised", targets=r)
    pca = Projection.fit(H, 1, kind="pca")
    zs, zp = (H - sup.mean) @ sup.W, (H - pca.mean) @ pca.W
    assert abs(np.corrcoef(zs[:, 0], r)[0, 1]) > abs(np.corrcoef(zp[:, 0], r)[0, 1])
    with pytest.raises(ValueError, match="needs the setup pool's rewards"):
        Projection.fit(H, 3, kind="supervised")
    with pytest.raises(ValueError, match="rewards that vary"):
        Projection.fit(H, 3, kind="supervised", targets=np.ones(150))
    with pytest.raises(ValueError, match="more than d setup samples"):
        Projection.fit(H[:20], 32, kind="pca")


def test_supervised_projection_reports_an_honest_held_out_fit():
    """With the supervised projection the labels shaped phi; the CV refits phi inside every fold, so a
    reward that is pure noise still gets no held-out fit (a fit on the full-pool phi would look good)."""
    rng = np.random.default_rng(1)
    H = rng.standard_normal((60, 40))
    noise = rng.standard_normal(60)

    from spanex.lm.rewards import fit_linear

    P = Projection.fit(H, 8, kind="supervised", targets=noise)
    naive = fit_linear(P(H), noise)

    def refit(tr):
        q = Projection.fit(H[tr], 8, kind="supervised", targets=noise[tr])
        return lambda idx: q(H[idx])

    honest = fit_linear(P(H), noise, refit=refit)
    assert naive.r2_cv > 0.3 and honest.r2_cv < 0.1
