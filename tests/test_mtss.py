"""MTSS: reaches eps on realizable token trees, exact ideal law, reproducibility, budgets, validation."""

import math

import numpy as np
import pytest

import spanex
from spanex.algorithms.mtss import MTSS, MTSSPolicy
from spanex.core import Budget, Ledger, Oracles
from spanex.sampling.token_sampler import TokenSoftmaxSampler
from spanex.tokens import token_chain, token_linear


def test_reaches_eps_on_autoregressive_realizable_instance():
    prob = token_linear(H=3, A=3, k=3, beta=1.0, w_scale=2.0, seed=0)
    res = MTSS(eps=0.05).run(prob, seed=0)
    assert res.status == "completed"
    ev = spanex.evaluate(res.policy, prob)
    assert ev.exact
    assert ev.suboptimality <= 0.05
    # and it learned something: pi_ref itself is far from eps-optimal here
    ref = spanex.evaluate(spanex.ReferencePolicy(res.policy.oracles), prob)
    assert ref.suboptimality > 0.4
    assert res.ledger.reward_queries == res.extras["resolved"]["T_data"]


def test_reaches_eps_on_the_chain_with_logprob_targets():
    prob = token_chain(H=6, c=1.0, beta=0.25)
    res = MTSS(eps=0.05, targets="logprob", n_rounds=3).run(prob, seed=1)
    assert spanex.evaluate(res.policy, prob).suboptimality <= 0.05
    assert res.ledger.count("logprob") > 0                         # next-token distribution queries counted


def test_policy_samples_follow_probs_and_are_counted():
    prob = token_chain(H=3, c=1.0, beta=0.5)
    H, d = 3, 2
    thetas = np.tile([0.4, 0.0], (H, 1))
    sampler = TokenSoftmaxSampler(beta=0.5)               # certified envelope: the vocabulary's scores
    ledger = Ledger()
    for nu in (None, 0.5):
        Sigma_inv = np.broadcast_to(np.eye(d), (H, d, d)).copy()
        pol = MTSSPolicy(thetas, Sigma_inv, nu, 0.5, sampler, "policy", oracles=Oracles(prob, ledger, "inference"))
        p = pol.probs(0)
        assert p.shape == (8,) and p.sum() == pytest.approx(1.0)
        n = 4000
        ys = pol.sample(0, n, np.random.default_rng(3))
        emp = np.bincount(ys, minlength=8) / n
        # exact sampling (a certified envelope never clips): sd <= sqrt(1/(4n)) = 0.0079; 5 sd = 0.04
        assert np.max(np.abs(emp - p)) < 0.04
    assert ledger.count("token", "inference") > 0 and ledger.sample_calls == 0   # nothing charged to train
    # nu = 0.5 with Sigma = I covers no token change (||Δphi|| = 1 > 0.5): policy truncation keeps the
    # anchor only, so the law is pi_ref itself
    assert np.allclose(pol.probs(0), prob.exact.ref_probs[0])


def test_inference_cost_per_sample_tracks_H_times_C_cond():
    # measured outcome: the token calls a sample needs, against C_cond (an evaluation quantity, never given
    # to MTSS): each token costs its prefix's coverage in proposals (<= C_cond) with a certified envelope,
    # so a sample costs between H and H C_cond, nowhere near C_cov = C_cond^H ≈ 240 sequences here
    H = 8
    prob = token_chain(H=H, c=1.0, beta=0.2)
    res = MTSS(eps=0.1, n_rounds=2, rollouts=40).run(prob, seed=2)
    assert res.extras["resolved"]["M_tok"] is None and res.hints == []
    C_cond, C_cov = prob.exact.C_cond(prob.beta), spanex.coverage(prob)
    before = res.ledger.count("token", "inference")
    n = 400
    res.policy.sample(0, n, np.random.default_rng(0))
    per_sample = (res.ledger.count("token", "inference") - before) / n
    assert H <= per_sample <= H * C_cond and C_cov > 100


def test_reproducible_by_seed():
    prob = token_linear(H=2, A=3, k=2, beta=1.0, seed=3)
    a = MTSS(rollouts=30, n_rounds=2).run(prob, seed=11)
    b = MTSS(rollouts=30, n_rounds=2).run(prob, seed=11)
    c = MTSS(rollouts=30, n_rounds=2).run(prob, seed=12)
    assert np.array_equal(a.policy.thetas, b.policy.thetas)
    assert a.ledger.to_dict() == b.ledger.to_dict()
    assert not np.array_equal(a.policy.thetas, c.policy.thetas)
    ya = a.policy.sample(0, 5, np.random.default_rng(0))
    yb = b.policy.sample(0, 5, np.random.default_rng(0))
    assert np.array_equal(ya, yb)


def test_budgets_are_respected():
    prob = token_linear(H=3, A=3, k=2, beta=1.0, seed=0)
    res = MTSS(rollouts=50, n_rounds=4).run(prob, seed=0, budget=Budget(max_reward_queries=120))
    assert res.status == "budget_exhausted"
    assert res.ledger.reward_queries <= 120
    assert isinstance(res.policy, MTSSPolicy)
    assert res.policy.thetas.any()                                  # the fit after the completed rounds
    res = MTSS(rollouts=50, n_rounds=4).run(prob, seed=0, budget=Budget(max_sample_calls=5000))
    assert res.status == "budget_exhausted" and res.ledger.sample_calls <= 5000


def test_truncated_run_and_policy_roll_in_variants():
    prob = token_linear(H=2, A=3, k=2, beta=1.0, seed=1)
    for kw in (dict(nu=2.0, truncation="reward"), dict(nu=2.0, truncation="policy"), dict(roll_in="ref"),
               dict(sampler_mode="logprob")):
        res = MTSS(rollouts=60, n_rounds=2, **kw).run(prob, seed=0)
        p = res.policy.probs(0)
        assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0)


def test_spanner_sampling_runs_on_the_sequence_view():
    from spanex.algorithms.spanner_sampling import SpannerSampling

    H = 4
    prob = token_chain(H=H, c=1.0, beta=0.5)
    res = SpannerSampling(T_span=20, N_try=10, T_exp=5).run(prob, seed=0)
    assert res.status == "completed"
    # every sequence-level draw is H token calls on the same ledger; no 'weak' calls exist here
    assert res.ledger.count("weak") == 0 and res.ledger.count("token") % H == 0 and res.ledger.count("token") > 0
    ev = spanex.evaluate(res.policy, prob)
    assert ev.exact and math.isfinite(ev.suboptimality)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="eps must be in"):
        MTSS(eps=0)
    with pytest.raises(ValueError, match="n_rounds must be in"):
        MTSS(n_rounds=0)
    with pytest.raises(ValueError, match="targets must be one of"):
        MTSS(targets="exact")
    with pytest.raises(ValueError, match="M_tok must be in"):
        MTSS(M_tok=0.5)
    with pytest.raises(ValueError, match="nu must be in"):
        MTSS(nu=-1.0)
    with pytest.raises(ValueError, match="roll_in must be one of"):
        MTSS(roll_in="mix")
    tab = spanex.tabular_problem([1.0], [np.array([0.5, 0.5])], [np.eye(2)], theta_star=np.ones(2), B=2.0)
    with pytest.raises(ValueError, match="MTSS needs token-level access"):
        MTSS().run(tab, seed=0)
    # no exact C_cond, no bound given: MTSS finds its own envelope
    prob = token_chain(H=24, c=1.0, beta=0.2)
    import dataclasses
    blind = dataclasses.replace(prob, exact=None)
    res = MTSS(n_rounds=1, rollouts=5).run(blind, seed=0)
    assert res.status == "completed" and res.hints == []
    with pytest.raises(ValueError, match="seed must be given"):
        MTSS().run(prob, seed=None)


def test_large_H_runs_on_token_arrays_with_structured_C_cond():
    # 2^24 sequences: no enumeration; the token sampler's envelope comes from the 2 tokens' own scores
    prob = spanex.instances.make("token_chain", H=24, c=1.0, beta=0.2)
    res = MTSS(rollouts=20, n_rounds=1).run(prob, seed=0)
    assert res.extras["resolved"]["M_tok"] is None and res.extras["resolved"]["M_source"].startswith("certified")
    ys = res.policy.sample(0, 4, np.random.default_rng(0))
    assert ys.shape == (4, 24) and set(np.unique(ys)) <= {0, 1}
    with pytest.raises(NotImplementedError, match="enumerable token tree"):
        res.policy.probs(0)


def test_truncated_policy_law_mixes_over_anchors():
    # Sigma = I, nu = 0.6: at the root only the pair of tokens {1, 2} is "covered" (||Δphi|| = 0.07,
    # the others 0.63); at depth 2 some pairs are covered and some not. probs(x) averages the
    # truncated tilt over the anchor a' ~ pi_ref; the sampler must reproduce it.
    prob = token_linear(H=2, A=3, k=2, beta=1.0, n_prompts=1, w_scale=2.0, seed=8)
    th = prob.meta["theta_star_tokens"]
    d = th.shape[1]
    sampler = TokenSoftmaxSampler(beta=1.0)                         # certified envelope: no clipping
    Sinv = np.broadcast_to(np.eye(d), (2, d, d)).copy()
    free = MTSSPolicy(th, Sinv, None, 1.0, sampler, oracles=Oracles(prob, Ledger(), "inference")).probs(0)
    for trunc in ("reward", "policy"):
        pol = MTSSPolicy(th, Sinv, 0.6, 1.0, sampler, trunc, oracles=Oracles(prob, Ledger(), "inference"))
        p = pol.probs(0)
        assert np.max(np.abs(p - free)) > 0.05 and np.max(np.abs(p - prob.exact.ref_probs[0])) > 0.05
        n = 6000
        ys = pol.sample(0, n, np.random.default_rng(5))
        # sd <= sqrt(1/(4n)) = 0.0065 per entry; 5 sd = 0.033
        assert np.max(np.abs(np.bincount(ys, minlength=9) / n - p)) < 0.033
    assert np.allclose(free, prob.exact.pi_star(0, 1.0))          # theta = theta*: the law is pi*


def test_token_level_spanner_phase():
    from spanex.design import spanner_size_bound

    prob = token_linear(H=3, A=3, k=3, beta=1.0, w_scale=2.0, seed=0)
    res = MTSS(eps=0.05, T_span=40, N_try=32, nu_span=0.5, rollouts=100, n_rounds=2).run(prob, seed=0)
    sizes = res.extras["spanner_sizes"]
    assert len(sizes) == 3 and min(sizes) >= 1
    # elliptical potential: each layer's spanner is bounded whatever T_span is (||Δphi|| <= 2 L)
    bound = spanner_size_bound(prob.token_phi.dim, 0.5, 1.0, 2 * prob.feature_norm_bound)
    assert max(sizes) <= min(bound, 40)
    # one reward query per rollout plus two per accepted layer-H pair
    assert res.ledger.reward_queries == 2 * 100 + 2 * sizes[-1]
    assert res.trace[0]["phase"] == "spanner"
    assert spanex.evaluate(res.policy, prob).suboptimality <= 0.05
    with pytest.raises(ValueError, match="T_span must be in"):
        MTSS(T_span=-1)
    with pytest.raises(ValueError, match="nu_span must be in"):
        MTSS(nu_span=0.0)


def test_horizon_one_is_a_bandit():
    prob = token_chain(H=1, c=1.0, beta=0.2)
    res = MTSS(rollouts=200, n_rounds=2).run(prob, seed=0)
    assert spanex.evaluate(res.policy, prob).suboptimality <= 0.01
