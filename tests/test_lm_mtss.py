"""MTSS on a (tiny) real LM: token roll-outs come back as Responses, so the text reward oracle sees text."""

import numpy as np
import pytest

pytest.importorskip("torch").set_num_threads(1)  # see spanex.lm.testing.ONE_THREAD_NOTE

from spanex.algorithms.mtss import MTSS  # noqa: E402
from spanex.lm.base import Response  # noqa: E402
from spanex.lm.problem import lm_problem  # noqa: E402
from spanex.lm.testing import tiny_hf  # noqa: E402


@pytest.fixture(scope="module")
def problem():
    return lm_problem(tiny_hf(0, max_new_tokens=4), n_prompts=3, d=4, setup_prompts=3, setup_per_prompt=4,
                      beta=0.5, seed=0)


def test_from_tokens_inverts_sampling(problem):
    hf = problem.base
    ys = hf.sample(problem.prompts.prompts[0], 8, np.random.default_rng(0))
    H = hf.horizon
    junk = (hf.eos_id + 1) % hf.vocab_size
    rows = []
    for y in ys:   # a token roll-out has exactly H tokens: EOS (counted in H) then whatever followed
        ids = list(y.token_ids) + ([hf.eos_id] if y.finished else [])
        assert len(ids) <= H
        rows.append(ids + [junk] * (H - len(ids)))
    back = hf.from_tokens(rows)
    for y, b in zip(ys, back):
        assert isinstance(b, Response)
        assert (str(b), b.token_ids, b.finished) == (str(y), y.token_ids, y.finished)
    # the tiny model rarely ends early, so check the EOS cut on constructed rows: tokens after EOS are dropped
    a = ys[0].token_ids[0]
    cut = hf.from_tokens([[a, hf.eos_id, junk, junk][:H], [hf.eos_id] + [junk] * (H - 1)])
    assert (cut[0].token_ids, cut[0].finished, str(cut[0])) == ((a,), True, hf.tokenizer.decode([a]))
    assert (cut[1].token_ids, cut[1].finished, str(cut[1])) == ((), True, "")


def test_mtss_runs_on_an_lm_and_queries_rewards_on_text(problem):
    seen = []
    reward = problem.reward

    def spy(x, ys, rng):
        seen.extend(ys)
        return reward(x, ys, rng)

    problem.reward = spy
    try:
        res = MTSS(n_rounds=1, rollouts=4, M_tok=2.0, delta_tok=0.5, m_target=2, sampler_batch=2).run(problem, seed=0)
    finally:
        problem.reward = reward
    assert res.status == "completed"
    assert seen and all(isinstance(y, Response) for y in seen)
    assert res.ledger.count("token") > 0 and res.ledger.reward_queries == len(seen)
    out = res.policy.sample(problem.prompts.prompts[0], 2, np.random.default_rng(1))
    assert len(out) == 2 and all(isinstance(y, Response) for y in out)
    assert res.ledger.count("token", "inference") > 0
