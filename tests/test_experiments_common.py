"""Experiment helpers: the vectorized learning curve equals the policy's exact law, last-exit times."""

import math

import numpy as np
import pytest

from spanex.experiments.common import cost_to_reach, spanner_learning_curve


def test_learning_curve_matches_policy_probs():
    from spanex.algorithms.spanner_sampling import SpannerSampling, SpannerSamplingPolicy
    from spanex.experiments.spanner_scaling import tilted_linear_bandit

    p = tilted_linear_bandit(base_tilt=0.5, n_prompts=2, n_responses=60, d=4, beta=0.2, reward_scale=1.0,
                             sigma=0.5, seed=3)
    for truncation in ("reward", "policy"):
        r = SpannerSampling(eps=0.1, truncation=truncation).run(p, seed=1)
        Td, Tc, sub = spanner_learning_curve(r, p, max_points=7)
        rows = [x for x in r.trace if "theta" in x]
        idx = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), 7)).round().astype(int))
        assert len(sub) == len(idx) and list(Td) == [rows[i]["T_data"] for i in idx]
        pol = r.policy
        for j, i in enumerate(idx):
            q = SpannerSamplingPolicy(np.asarray(rows[i]["theta"])[None, :], pol.Sigma_inv, pol.nu, pol.beta,
                                      pol.sampler, pol.truncation, oracles=pol.oracles)
            exact = p.exact.suboptimality([q.probs(x) for x in range(2)], p.beta)
            assert sub[j] == pytest.approx(exact, rel=1e-9, abs=1e-12)


def test_cost_to_reach_is_a_last_exit_time():
    costs = np.array([10, 20, 30, 40, 50.0])
    assert cost_to_reach(costs, np.array([.5, .05, .2, .05, .01]), 0.1) == 40      # dips at 20 do not count
    assert cost_to_reach(costs, np.array([.05, .05, .05, .05, .01]), 0.1) == 10
    assert math.isinf(cost_to_reach(costs, np.array([.5, .05, .05, .05, .2]), 0.1))
