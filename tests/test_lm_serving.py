"""Saving an output policy, loading it back, and generating with an honest cost."""

import json

import numpy as np
import pytest

pytest.importorskip("torch").set_num_threads(1)  # see spanex.lm.testing.ONE_THREAD_NOTE
pytest.importorskip("transformers")

from spanex.algorithms.best_of_n import BestOfN  # noqa: E402
from spanex.algorithms.passive_regression import PassiveRegression  # noqa: E402
from spanex.algorithms.spanner_sampling import SpannerSampling  # noqa: E402
from spanex.lm.problem import lm_problem  # noqa: E402
from spanex.lm.serving import load_policy, save_policy  # noqa: E402
from spanex.lm.testing import tiny_hf  # noqa: E402

PROMPTS = ["Describe the sea.", "Describe a forest.", "Describe a city."]


@pytest.fixture(scope="module")
def problem():
    return lm_problem(tiny_hf(0, max_new_tokens=4), prompts=PROMPTS, features="minilm", d=3,
                      projection="supervised", reward="head", setup_per_prompt=8, beta=0.5, seed=0)


@pytest.fixture(scope="module")
def spanner(problem):
    return SpannerSampling(T_span=3, N_try=2, T_exp=3, nu=1.0).run(problem,
                                                                                                        seed=0)


def test_spanner_sampling_policy_round_trip(problem, spanner, tmp_path):
    save_policy(spanner.policy, tmp_path / "pol", problem)
    meta = json.loads((tmp_path / "pol" / "policy.json").read_text())
    assert meta["format"] == "spanex-lm-policy" and meta["version"] == 1
    assert meta["features"]["embedder"] == {"kind": "sentence-transformers", "model": "minilm",
                                            "include_prompt": False}
    served = load_policy(tmp_path / "pol", model=problem.base)
    pol = served.policy
    np.testing.assert_array_equal(pol.thetas, spanner.policy.thetas)
    np.testing.assert_array_equal(pol.Sigma_inv, spanner.policy.Sigma_inv)
    assert (pol.nu, pol.beta, pol.truncation, pol.sampler) == (spanner.policy.nu, spanner.policy.beta,
                                                               spanner.policy.truncation, spanner.policy.sampler)
    x = PROMPTS[0]
    np.testing.assert_allclose(served.problem.phi(x, ["a calm blue sea"]), problem.phi(x, ["a calm blue sea"]))
    # two loads generate the same completions at the same cost with the same seed
    gen = served.generate(x, n=2, seed=3)
    again = load_policy(tmp_path / "pol", model=problem.base).generate(x, n=2, seed=3)
    assert gen.texts() == again.texts() and gen.cost == again.cost
    assert gen.cost["inference.weak"] - gen.pooled > 2  # rejection sampling uses several pi_ref draws
    assert gen.cost.get("inference.reward", 0) == 0  # no reward query at inference
    two = served.generate([x, [{"role": "user", "content": "Hi"}]], n=1, seed=0)
    assert len(two.completions) == 2 and served.ledger.count("weak", "inference") == \
        gen.cost["inference.weak"] + two.cost["inference.weak"]


def test_linear_softmax_and_best_of_n_and_reference(problem, tmp_path):
    pr = PassiveRegression(T=4, batch_size=4).run(problem, seed=0)
    save_policy(pr.policy, tmp_path / "pr", problem)
    served = load_policy(tmp_path / "pr", model=problem.base)
    np.testing.assert_array_equal(served.policy.theta, pr.policy.theta)
    assert served.generate(PROMPTS[1], 2, seed=0).cost["inference.weak"] >= 2
    bon = BestOfN(n=3).run(problem, seed=0)
    save_policy(bon.policy, tmp_path / "bon", problem)
    with pytest.raises(ValueError, match="pass reward= to load_policy"):
        load_policy(tmp_path / "bon", model=problem.base)
    g = load_policy(tmp_path / "bon", model=problem.base, reward="head").generate(PROMPTS[2], 2, seed=0)
    # n draws and n queries per sample; draws come in a batch of preferred_batch, the rest wait in the pool
    assert g.cost["inference.weak"] - g.pooled == 6 and g.cost["inference.reward"] == 6
    assert g.cost["inference.weak"] == problem.base.preferred_batch
    from spanex.core.policy import ReferencePolicy

    save_policy(ReferencePolicy(), tmp_path / "ref", problem)
    g = load_policy(tmp_path / "ref", model=problem.base).generate(PROMPTS[0], 3)
    assert g.cost["inference.weak"] - g.pooled == 3


def test_load_checks_model_format_and_features(problem, spanner, tmp_path):
    save_policy(spanner.policy, tmp_path / "p", problem)
    with pytest.raises(ValueError, match="base model differs"):
        load_policy(tmp_path / "p", model=tiny_hf(0, max_new_tokens=5))
    meta = json.loads((tmp_path / "p" / "policy.json").read_text())
    meta["version"] = 99
    (tmp_path / "p" / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format version 99"):
        load_policy(tmp_path / "p", model=problem.base)
    with pytest.raises(FileNotFoundError, match="no saved policy"):
        load_policy(tmp_path / "nothing")
    with pytest.raises(TypeError, match="must be an LM problem"):
        save_policy(spanner.policy, tmp_path / "q", object())


def test_callable_features_must_be_passed_again(tmp_path):
    def embed(prompts, completions):
        return np.array([[len(c), c.count("e"), 1.0 + len(p)] for p, c in zip(prompts, completions)], float)

    p = lm_problem(tiny_hf(0, max_new_tokens=4), prompts=PROMPTS, features=embed, d=2, reward="vader",
                   setup_per_prompt=6, seed=0)
    res = SpannerSampling(T_span=2, N_try=2, T_exp=1, nu=1.0).run(p, seed=0)
    save_policy(res.policy, tmp_path / "c", p)
    with pytest.raises(ValueError, match="pass it again as features="):
        load_policy(tmp_path / "c", model=p.base)
    served = load_policy(tmp_path / "c", model=p.base, features=embed)
    assert len(served.generate(PROMPTS[0], 1, seed=0).completions[0]) == 1
