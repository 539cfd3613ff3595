"""LM problems on the tiny model: features, caches, rewards, prompts, ledger counts, evaluation."""

import os

import numpy as np
import pytest

pytest.importorskip("torch").set_num_threads(1)  # see spanex.lm.testing.ONE_THREAD_NOTE
pytest.importorskip("transformers")

import spanex  # noqa: E402
from spanex.core.ledger import Ledger  # noqa: E402
from spanex.core.oracles import Oracles  # noqa: E402
from spanex.core.policy import ReferencePolicy  # noqa: E402
from spanex.core.protocols import FeatureMap, PromptSource, TokenFeatureMap  # noqa: E402
from spanex.lm.evaluate import _dv, _fitted_dv, lm_evaluate  # noqa: E402
from spanex.lm.features import Projection  # noqa: E402
from spanex.lm.loading import _atomic_build, cache_dir  # noqa: E402
from spanex.lm.base import Response  # noqa: E402
from spanex.lm.problem import lm_problem  # noqa: E402
from spanex.lm.prompts import PromptSet, load_prompts  # noqa: E402
from spanex.lm.rewards import AnswerReward, SentimentReward, fit_linear  # noqa: E402
from spanex.lm.testing import tiny_hf  # noqa: E402


@pytest.fixture(scope="module")
def problem():
    return lm_problem(tiny_hf(0, max_new_tokens=6), n_prompts=6, d=6, setup_prompts=6, setup_per_prompt=6,
                      feedback="both", beta=0.5, seed=0)


def test_problem_conformance(problem):
    assert isinstance(problem, spanex.Problem) and problem.exact is None
    assert isinstance(problem.prompts, PromptSource) and isinstance(problem.phi, FeatureMap)
    assert isinstance(problem.token_phi, TokenFeatureMap) and problem.token_model is problem.base
    assert problem.d == 6 and problem.feature_norm_bound == 1.0
    assert problem.meta["setup_samples"] == 36 and problem.meta["n_prompts"] == 6
    x = problem.prompts.sample(1, np.random.default_rng(0))[0]
    ys = problem.base.sample(x, 4, np.random.default_rng(0))
    F = problem.phi(x, ys)
    assert F.shape == (4, 6) and np.all(np.linalg.norm(F, axis=1) < 1.0)
    r = problem.reward(x, ys, np.random.default_rng(0))
    assert r.shape == (4,) and np.all(np.abs(r) <= 1.0)
    b = problem.preference(x, ys[:2], ys[2:], np.random.default_rng(0))
    assert set(np.unique(b)) <= {0.0, 1.0}


def test_token_features_agree_with_sequence_features(problem):
    """phi_H of (response tokens + EOS) is phi(x, y) by construction (same pooling, same projection)."""
    x = problem.prompts.prompts[0]
    ys = problem.base.sample(x, 3, np.random.default_rng(5))
    seqs = [tuple(y.token_ids) + ((2,) if y.finished else ()) for y in ys]
    np.testing.assert_allclose(problem.token_phi(x, seqs), problem.phi(x, ys), atol=1e-4)


def test_feature_cache_embeds_each_response_once(problem):
    x = problem.prompts.prompts[1]
    ys = problem.base.sample(x, 5, np.random.default_rng(11))
    phi = problem.phi
    h0, m0 = phi.hits, phi.misses
    a = phi(x, ys + ys[:2])  # two duplicates inside the batch
    assert phi.misses - m0 == len({(str(y), y.token_ids) for y in ys})
    assert phi.hits - h0 == 2
    scored = problem.base.stats.scored
    b = phi(x, ys)
    assert problem.base.stats.scored == scored  # no model call on a full cache hit
    assert phi.hits - h0 == 7
    np.testing.assert_array_equal(a[:5], b)


def test_ledger_counts_every_model_call(problem):
    """The ledger's weak-call count equals the number of sequences the model actually generated."""
    led = Ledger()
    o = Oracles(problem, led, "train")
    rng = np.random.default_rng(0)
    before = problem.base.stats.sequences
    x = o.prompts(1, rng)[0]
    ys = o.sample_ref(x, 5, rng)
    o.reward(x, ys, rng)
    o.phi(x, ys)
    o.logprob_ref(x, ys)
    o.next_probs(x, [(), (100,)])
    o.sample_next(x, [()] * 3, rng)
    o.token_phi(x, [(100,)])
    # the oracles draw pi_ref in batches of base.preferred_batch (a per-prompt pool); every draw is charged
    drawn = problem.base.stats.sequences - before
    assert drawn == led.count("weak") == problem.base.preferred_batch
    assert led.count("reward") == 5 and led.count("phi") == 6
    assert led.count("logprob") == 5 + 2 and led.count("token") == 3
    assert led.reward_queries == 5 and led.sample_calls == drawn + 7 + 3


def test_spanner_sampling_runs_with_honest_ledger(problem):
    from spanex.algorithms.spanner_sampling import SpannerSampling

    stats = problem.base.stats
    before = stats.sequences
    algo = SpannerSampling(T_span=4, N_try=2, T_exp=3, nu=0.5, sampler_batch=2)
    res = algo.run(problem, seed=0)
    assert res.status == "completed"
    assert stats.sequences - before == res.ledger.count("weak")  # every pi_ref draw was charged
    assert res.ledger.reward_queries > 0
    again = algo.run(problem, seed=0)
    assert again.ledger.to_dict() == res.ledger.to_dict()
    np.testing.assert_array_equal(again.extras["theta_hat"], res.extras["theta_hat"])
    ys = res.policy.sample(problem.prompts.prompts[0], 2, np.random.default_rng(0))
    assert len(ys) == 2 and res.ledger.count("weak", "inference") > 0
    assert res.ledger.count("weak") == again.ledger.count("weak")  # inference did not touch the train label


def test_lm_evaluate_charges_eval_only(problem):
    led = Ledger()
    pol = ReferencePolicy().bind(Oracles(problem, led, "inference"))
    ev = lm_evaluate(pol, problem, n_prompts=3, n_per_prompt=4, n_ref=4, seed=0)
    assert led.sample_calls == 0 and led.reward_queries == 0
    assert led.count("weak", "inference") == 0
    B = problem.base.preferred_batch  # each evaluated prompt's pool is filled with one batch of B >= 4 draws
    prompts = len({str(e) for e in Oracles(problem, Ledger(), "eval").prompts(3, np.random.default_rng(0))})
    assert led.count("weak", "eval") == prompts * B and led.count("reward", "eval") == 12
    assert ev.draws_per_sample == 1.0  # pi_ref uses one draw per sample; the rest of the batch stays pooled
    assert ev.kl_method == "exact" and ev.kl == 0.0 and ev.n_samples == 12 and len(ev.examples) == 3
    assert np.isfinite(ev.mean_reward) and -1 <= ev.mean_reward <= 1
    ev2 = lm_evaluate(pol, problem, n_prompts=3, n_per_prompt=4, n_ref=4, seed=0)
    assert ev2.mean_reward == ev.mean_reward and ev2.kl == ev.kl
    fitted = lm_evaluate(pol, problem, n_prompts=3, n_per_prompt=4, n_ref=4, kl="fitted", seed=0)
    assert fitted.kl_method == "fitted" and np.isfinite(fitted.kl) and fitted.n_ref_draws == 12
    assert led.count("weak", "eval") == 3 * prompts * B  # the reference draws came from the same pools
    assert led.count("phi", "eval") == 12 + 12
    with pytest.raises(ValueError, match="only available for the reference policy"):
        lm_evaluate(_NotRef().bind(Oracles(problem, led, "inference")), problem, kl="exact")


class _NotRef(ReferencePolicy):
    """Samples like pi_ref but is not the reference policy itself, so its KL is not known to be 0."""


def test_dv_estimators_on_gaussian_tilt():
    """pi_ref: phi ~ N(0, I_d); pi = pi_ref tilted by w: phi ~ N(w, I_d); KL(pi||pi_ref) = |w|^2/2.

    The DV bound with g = <w, phi> is tight. With n = 20000 samples per side and |w|^2 = 0.5
    (KL = 0.25): the first term's sd is |w|/sqrt(n) = 0.005; the log-mean-exp term's sd is
    sqrt(e^{|w|^2} - 1)/sqrt(n) = 0.0057 and its Jensen bias ~ (e^{|w|^2}-1)/(2n) = 1.6e-5.
    Tolerance 0.03 is > 4 combined sd. The fitted (cross-fitted) bound must recover it too, from below
    up to the same noise (its w is fitted on the other half).
    """
    rng = np.random.default_rng(0)
    d, n = 4, 20000
    w = np.array([0.5, -0.5, 0.0, 0.0])
    ref = rng.standard_normal((n, d))
    pi = rng.standard_normal((n, d)) + w
    assert abs(_dv(w, pi, ref) - 0.25) < 0.03
    fitted = _fitted_dv([pi[:10000], pi[10000:]], [ref[:10000], ref[10000:]], ridge=0.0)
    assert abs(fitted - 0.25) < 0.03
    # pi = pi_ref: KL 0; the fitted bound stays near 0 (cross-fitting keeps it from overfitting upward)
    same = _fitted_dv([ref[:5000]], [rng.standard_normal((5000, d))], ridge=0.0)
    assert abs(same) < 0.01


def test_projection_pca_and_random():
    rng = np.random.default_rng(0)
    H = rng.standard_normal((200, 10)) @ np.diag(np.arange(1, 11, dtype=float))
    P = Projection.fit(H, 3)
    Z = (H - P.mean) @ P.W
    np.testing.assert_allclose(Z.std(axis=0, ddof=1), 1.0, atol=1e-9)  # whitened
    assert P.explained_variance > 0.5  # the 3 largest of variances 1..100: (64+81+100)/385
    assert np.all(np.linalg.norm(P(H), axis=1) < 1)
    R1, R2 = Projection.fit(H, 3, kind="random", seed=4), Projection.fit(H, 3, kind="random", seed=4)
    np.testing.assert_array_equal(R1.W, R2.W)
    with pytest.raises(ValueError, match="d must be"):
        Projection.fit(H, 11)
    with pytest.raises(ValueError, match="projection must be one of"):
        Projection.fit(H, 3, kind="svd")
    with pytest.raises(ValueError, match="d must be"):
        Projection.fit(H, 3, kind="none")  # 'none' keeps the raw dimension
    with pytest.raises(ValueError, match=r"shape \(n, 10\)"):
        P(np.zeros((2, 9)))


def test_rewards():
    s = SentimentReward()
    r = s("x", ["I love this, it is wonderful!", "This is terrible and sad.", ""])
    assert r[0] > 0.5 and r[1] < -0.5 and r[2] == 0.0
    a = AnswerReward({"What is 2 plus 3?": "5"})
    np.testing.assert_array_equal(a("What is 2 plus 3?", ["5", "It is 5.", "6 or 5", "five", "-5"]), [1, 1, 0, 0, 0])
    with pytest.raises(ValueError, match="no reference answer"):
        a("other", ["1"])


def test_fit_linear_is_cross_validated_ridge():
    rng = np.random.default_rng(0)
    Phi = rng.standard_normal((100, 5))
    th = rng.standard_normal(5)
    fit = fit_linear(Phi, Phi @ th + 0.7)
    # exact linear reward: CV picks the smallest penalty (1e-4) and both R^2 are ~1
    assert fit.lam == 1e-4 and fit.r2_cv > 1 - 1e-6 and fit.r2_train > 1 - 1e-6
    np.testing.assert_allclose(fit.theta, th, atol=1e-4)
    assert abs(fit.intercept - 0.7) < 1e-4
    noise = fit_linear(Phi, rng.standard_normal(100))
    assert noise.r2_cv < 0.1  # pure noise: no held-out fit, whatever in-sample R^2 the fit has
    # many features, few samples: a fixed tiny penalty overfits, CV chooses a larger one and says how little
    # a linear function explains (the out-of-fold R^2 is what the ridge path achieves at its best penalty)
    X = rng.standard_normal((40, 30))
    y = X[:, 0] + 2.0 * rng.standard_normal(40)
    wide = fit_linear(X, y)
    assert wide.lam > 1e-2 and wide.r2_train > wide.r2_cv
    with pytest.raises(ValueError, match="at least 10 samples"):
        fit_linear(Phi[:6], Phi[:6, 0])


def test_linearized_target_is_realizable():
    p = lm_problem(tiny_hf(0, max_new_tokens=6), n_prompts=6, d=4, setup_prompts=6, setup_per_prompt=6,
                   target="linearized", seed=1)
    x = p.prompts.prompts[0]
    ys = p.base.sample(x, 4, np.random.default_rng(0))
    np.testing.assert_allclose(p.reward(x, ys, np.random.default_rng(0)),
                               p.phi(x, ys) @ p.linear_fit.theta + p.linear_fit.intercept, atol=1e-12)
    assert p.R_max == pytest.approx(2 * np.linalg.norm(p.linear_fit.theta))  # range of <theta, phi>, ||phi|| < 1
    assert p.meta["R_max_source"].startswith("bound of the linear fit")


def test_prompt_sets():
    ev, ar = load_prompts("everyday"), load_prompts("arithmetic")
    assert len(ev) == 300 and len(set(ev.prompts)) == 300 and not any(p.startswith("#") for p in ev.prompts)
    assert len(ar) == 200 and all(p in ar.answers for p in ar.prompts)
    assert ar.subset(5).answers == {p: ar.answers[p] for p in ar.prompts[:5]}
    a = ev.sample(10, np.random.default_rng(3))
    assert a == ev.sample(10, np.random.default_rng(3)) and all(x in ev.prompts for x in a)
    assert load_prompts("everyday", n=5).prompts == ev.prompts[:5]
    with pytest.raises(ValueError, match="name must be one of"):
        load_prompts("poems")
    with pytest.raises(ValueError, match="non-empty"):
        PromptSet([])


@pytest.mark.parametrize("kwargs, match", [
    ({"features": 3}, "features must be"),
    ({"features": "no-such-org/no-such-embedder"}, "Nothing is downloaded"),
    ({"target": "both"}, "target must be one of"),
    ({"beta": 0.0}, "beta must be in"),
    ({"reward": "toxicity"}, "reward must be one of"),
    ({"model": "no-such-org/no-such-model"}, "Nothing is downloaded"),
    ({"model": 3}, "model must be"),
    ({"projection": "svd"}, "projection must be one of"),
    ({"d": None}, "d must be a positive int"),
    ({"d": 0}, "d must be in"),
])
def test_lm_problem_validation(kwargs, match):
    args = dict(model=tiny_hf(0), n_prompts=4, setup_prompts=2, setup_per_prompt=3, d=2)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError, OSError), match=match):
        lm_problem(**args)


def test_cache_dir_env_and_atomic_build(tmp_path, monkeypatch):
    monkeypatch.setenv("SPANEX_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    final = tmp_path / "c" / "thing"

    def crash(tmp):
        (tmp / "half.bin").write_bytes(b"x")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        _atomic_build(final, crash)
    assert not final.exists() and os.listdir(tmp_path / "c") == []  # no half-written cache, no temp left

    calls = []
    _atomic_build(final, lambda tmp: (calls.append(1), (tmp / "ok").write_text("1")))
    _atomic_build(final, lambda tmp: calls.append(2))  # already there: not rebuilt
    assert calls == [1] and (final / "ok").read_text() == "1"


def test_response_text_features_are_keyed_by_tokens(problem):
    """Two responses with the same text but different token ids are different pi_ref outcomes."""
    x = problem.prompts.prompts[2]
    ids = problem.base.tokenizer("Hello", add_special_tokens=False)["input_ids"]
    a, b = Response("Hello", ids, True), Response("Hello", ids, False)
    F = problem.phi(x, [a, b])
    assert not np.allclose(F[0], F[1])
