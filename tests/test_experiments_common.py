"""Experiment helpers: learning curves equal the policy's exact law, first passages, budget ladders
(censoring, bisection, seeds), hints and algorithm tables."""

import math
from dataclasses import dataclass

import numpy as np
import pytest

from spanex.core.algorithm import Algorithm
from spanex.core.policy import ReferencePolicy
from spanex.experiments.base import AlgorithmTable, requires_of
from spanex.experiments.common import (curve_rows, first_passage, hints_of, run_ladder, spanner_learning_curve)


def test_learning_curve_matches_policy_probs():
    from spanex.algorithms.spanner_sampling import SpannerSampling, SpannerSamplingPolicy
    from spanex.experiments.spanner_scaling import tilted_linear_bandit

    p = tilted_linear_bandit(base_tilt=0.5, n_prompts=2, n_responses=60, d=4, beta=0.2, reward_scale=1.0,
                             sigma=0.5, seed=3)
    for truncation in ("reward", "policy"):
        r = SpannerSampling(eps=0.1, truncation=truncation).run(p, seed=1)
        Td, Tc, sub = spanner_learning_curve(r, p, max_points=7)
        rows = [x for x in r.trace if "theta" in x]
        idx = curve_rows(len(rows), 7)
        assert idx[0] == 0 and idx[-1] == len(rows) - 1             # the spanner-only fit and the last round
        assert len(sub) == len(idx) and list(Td) == [rows[i]["T_data"] for i in idx]
        pol = r.policy
        for j, i in enumerate(idx):
            q = SpannerSamplingPolicy(np.asarray(rows[i]["theta"])[None, :], pol.Sigma_inv, pol.nu, pol.beta,
                                      pol.sampler, pol.truncation, oracles=pol.oracles, state=pol.state)
            q.attach_exact(p.exact)
            exact = p.exact.suboptimality([q.probs(x) for x in range(2)], p.beta)
            assert sub[j] == pytest.approx(exact, rel=1e-9, abs=1e-12)


def test_curve_rows_is_geometric():
    idx = curve_rows(10_000, 50)
    assert idx[0] == 0 and idx[-1] == 9_999 and np.all(np.diff(idx) > 0)
    # relative spacing: every gap beyond the first few rows is at most ~20% of the index
    big = idx[idx > 100]
    assert np.max(np.diff(big) / big[:-1]) < 0.25
    assert list(curve_rows(5, 50)) == [0, 1, 2, 3, 4]


def test_first_passage():
    costs = np.array([10, 20, 30, 40, 50.0])
    assert first_passage(costs, np.array([.5, .05, .2, .05, .01]), 0.1) == 20     # a dip counts
    assert first_passage(costs, np.array([.05, .5, .5, .5, .5]), 0.1) == 10
    assert math.isinf(first_passage(costs, np.array([.5, .5, .5, .5, .2]), 0.1))


# ---- budget ladders on a fake algorithm with a known success threshold ----------------------------------

class _Stub(ReferencePolicy):
    """A policy whose exact law is pi* (subopt 0) or pi_ref, chosen by the algorithm."""

    def __init__(self, good: bool):
        super().__init__()
        self.good = good

    def probs(self, x):
        ex = self.exact_instance()                           # the evaluation interface, attached after the run
        return ex.pi_star(x, self.oracles.problem.beta) if self.good else ex.ref_probs[x]


@dataclass
class _Threshold(Algorithm):
    """Spends `size` weak calls and `size` reward queries; eps-optimal iff size >= threshold."""

    size: int = 1
    threshold: int = 10
    name = "spanner_sampling"

    def _run(self, problem, oracles, rng, state):
        x = 0
        ys = oracles.sample_ref(x, self.size, rng)
        oracles.reward(x, ys, rng)
        state.policy = _Stub(self.size >= self.threshold)


@pytest.fixture(scope="module")
def bandit():
    from spanex.instances import linear_bandit

    return linear_bandit(n_prompts=1, n_responses=30, d=4, beta=0.2, seed=0)


def test_ladder_stops_at_the_first_success_and_reports_its_cost(bandit):
    lad = run_ladder(lambda s: _Threshold(size=s, threshold=10), bandit, [2, 4, 8, 16, 32], seed=0, eps=0.01,
                     n_inference=2)
    assert lad.reached and lad.hit.size == 16 and [r.size for r in lad.rungs] == [2, 4, 8, 16]
    assert lad.at_eps("T_data") == 16 and lad.at_eps("T_comp") == 16
    m = lad.metrics()
    assert m["reached"] == 1.0 and m["size_at_eps"] == 16 and m["T_comp_total_to_eps"] >= 16


def test_ladder_bisection_finds_the_threshold(bandit):
    lad = run_ladder(lambda s: _Threshold(size=s, threshold=11), bandit, [2, 4, 8, 16, 32], seed=0, eps=0.01,
                     n_inference=1, bisect=4)
    # between 8 (fails) and 16 (succeeds): 11 (ok), 9 (fails), 10 (fails) -> 11
    assert lad.hit.size == 11


def test_ladder_censoring_valid_and_stop(bandit):
    never = run_ladder(lambda s: _Threshold(size=s, threshold=10 ** 6), bandit, [2, 4, 8], seed=0, eps=0.01,
                       n_inference=1)
    assert not never.reached and never.metrics()["reached"] == 0.0
    assert never.at_eps("T_data") == 8                      # censored: the largest cost tried, a lower bound
    # success only counts when valid; stop ends the ladder
    lad = run_ladder(lambda s: _Threshold(size=s, threshold=4), bandit, [2, 4, 8, 16], seed=0, eps=0.01,
                     n_inference=1, valid=lambda m: m["T_data"] < 8, stop=lambda r: r.T_data >= 8)
    assert lad.hit.size == 4
    lad = run_ladder(lambda s: _Threshold(size=s, threshold=8), bandit, [2, 4, 8, 16], seed=0, eps=0.01,
                     n_inference=1, valid=lambda m: m["T_data"] < 8, stop=lambda r: r.T_data >= 8)
    assert not lad.reached and [r.size for r in lad.rungs] == [2, 4, 8]


def test_ladder_seeds_depend_on_size_only(bandit):
    a = run_ladder(lambda s: _Threshold(size=s, threshold=8), bandit, [2, 4, 8], seed=5, eps=0.01, n_inference=1)
    b = run_ladder(lambda s: _Threshold(size=s, threshold=8), bandit, [4, 8], seed=5, eps=0.01, n_inference=1)
    assert a.rungs[1].seed == b.rungs[0].seed and a.rungs[2].seed == b.rungs[1].seed


# ---- hints and tables ----------------------------------------------------------------------------------

@dataclass
class _R:
    extras: dict


def test_hints_of_reads_result_hints_or_the_recorded_sources():
    class WithHints(_R):
        hints = ("C_cov",)

    assert hints_of(WithHints({})) == ["C_cov"]
    assert hints_of(_R({"resolved": {"M_source": "e^2 * C_cov (known)"}})) == ["C_cov"]
    assert hints_of(_R({"resolved": {"M_source": "e^2 * C_cond (known)"}})) == ["C_cond"]
    assert hints_of(_R({"weak_sampler": {"rule": "known"}, "strong_oracle": "weak"})) == ["C_cov(pi_theta)"]
    assert hints_of(_R({"strong_oracle": "exact"})) == ["exact strong oracle"]
    assert hints_of(_R({"resolved": {"M_source": "given"}, "weak_sampler": {"rule": "doubling"}})) == []


def test_algorithm_table_derives_requires_and_rejects_unknown_names():
    t = AlgorithmTable({"xpo": lambda size: size, "mtss": lambda size: -size})
    assert t.requires() == ("spanex.algorithms.xpo", "spanex.algorithms.mtss")
    assert t.make("mtss", size=3) == -3 and "xpo" in t and list(t) == ["xpo", "mtss"]
    with pytest.raises(ValueError, match="not in this experiment's table"):
        t.make("online_dpo", size=1)
    with pytest.raises(ValueError, match="not registered"):
        AlgorithmTable({"no_such_algorithm": lambda: None})
    assert requires_of(("a", "b"), ("b", "c")) == ("a", "b", "c")


def test_every_experiment_requires_its_table_modules():
    from spanex.experiments import registry

    for name in registry.names():
        exp = registry.get(name)
        mods = exp.requires
        assert len(mods) == len(set(mods)), name
        exp.check_available()
        for m in mods:
            assert m.startswith("spanex."), (name, m)


def _tables():
    import importlib

    from spanex.experiments import registry

    for name in registry.names():
        mod = importlib.import_module(registry.REGISTRY[name][0])
        for attr, obj in vars(mod).items():
            if isinstance(obj, AlgorithmTable):
                yield f"{name}.{attr}", obj


#: the parameters that size a sampler's envelope, or choose the strong oracle, in any algorithm
_ENVELOPE_FIELDS = ("M_rej", "M_tok", "M", "M0", "known_margin", "strong_oracle")


def test_experiments_leave_every_sampler_envelope_to_the_algorithm():
    # No experiment may pass M_rej, M_tok or M (or a 'known' rule): the samplers find their own envelope.
    # Every sizer of every table is called with every mode, and each envelope parameter of the
    # algorithm it builds must be the class default (strong_oracle must be 'weak' where it exists).
    import dataclasses
    import inspect

    sizes = dict(size=4, budget=64, eps=0.05, delta=0.1, T_span=4, N_try=4, T_exp=4, nu=0.5)
    checked = 0
    for label, table in _tables():
        for name in table:
            params = inspect.signature(table.sizers[name]).parameters
            variants = [dict(mode=m) for m in ("curve", "recipe")] if "mode" in params else [{}]
            variants = [{**v, "link_curvature": False} for v in variants] if "link_curvature" in params else variants
            for extra in variants:
                alg = table.make(name, **{k: v for k, v in sizes.items() if k in params}, **extra)
                defaults = {f.name: f.default for f in dataclasses.fields(type(alg))}
                for f in _ENVELOPE_FIELDS:
                    if f not in defaults:
                        continue
                    if f == "strong_oracle":
                        assert getattr(alg, f) == "weak", (label, name, f)
                    else:
                        assert getattr(alg, f) == defaults[f], (label, name, f, getattr(alg, f))
                checked += 1
    assert checked >= 15
