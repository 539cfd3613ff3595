import numpy as np
import pytest

from spanex.core import Budget, BudgetExhausted, Ledger, Oracles
from spanex.core.errors import as_generator, check_distribution, check_int, check_real


def test_ledger_counts_by_kind_and_label():
    L = Ledger()
    L.charge("weak", 5)
    L.charge("strong", 2)
    L.charge("token", 3)
    L.charge("reward", 4)
    L.charge("preference", 1)
    L.charge("weak", 7, label="eval")
    L.charge("reward", 3, label="inference")
    L.charge("phi", 100)
    assert L.sample_calls == 10            # weak + strong + token, train label only
    assert L.reward_queries == 5           # reward + preference, train label only
    assert L.count("weak", "eval") == 7
    assert L.count("reward", "inference") == 3
    d = L.to_dict()
    assert d["T_comp"] == 10 and d["T_data"] == 5 and d["train.phi"] == 100


def test_budget_refuses_before_exceeding():
    L = Ledger(Budget(max_reward_queries=10, max_sample_calls=20))
    L.charge("reward", 8)
    with pytest.raises(BudgetExhausted):
        L.charge("reward", 3)              # 8 + 3 > 10: refused, nothing recorded
    assert L.reward_queries == 8
    L.charge("preference", 2)              # exactly at the cap is allowed
    assert L.reward_queries == 10
    L.charge("weak", 20)
    with pytest.raises(BudgetExhausted):
        L.charge("token", 1)
    assert L.sample_calls == 20
    L.charge("weak", 1000, label="eval")   # evaluation is never budgeted
    assert not L.can_afford("weak", 1)


@pytest.mark.parametrize("kw", [dict(max_reward_queries=-1), dict(max_sample_calls=-5), dict(max_seconds=0),
                                dict(max_reward_queries=1.5)])
def test_budget_rejects_bad_values(kw):
    with pytest.raises((ValueError, TypeError), match="budget"):
        Budget(**kw)


def test_ledger_rejects_unknown_kind_and_label():
    L = Ledger()
    with pytest.raises(ValueError, match="kind"):
        L.charge("magic", 1)
    with pytest.raises(ValueError, match="label"):
        L.charge("weak", 1, label="free")
    with pytest.raises(ValueError, match="n must be"):
        L.charge("weak", -1)


def test_oracles_charge_exactly_what_they_call(small_problem):
    L = Ledger()
    o = Oracles(small_problem, L)
    rng = np.random.default_rng(0)
    ys = o.sample_ref(0, 17, rng)
    o.reward(0, ys[:5], rng)
    o.preference(0, ys[:3], ys[3:6], rng)
    o.sample_strong(0, np.zeros(4), 4, rng)
    o.logprob_ref(0, ys[:2])
    o.enumerate(0)
    assert L.count("weak") == 17 and L.count("strong") == 4 and L.count("logprob") == 2
    assert L.count("enum") == 30
    assert L.count("reward") == 5 and L.count("preference") == 3
    assert L.sample_calls == 17 + 4 + 2 + 30 and L.reward_queries == 8


def test_refused_charge_means_no_call(small_problem):
    calls = []
    base = small_problem.base
    orig = base.sample
    base.sample = lambda x, n, rng: calls.append(n) or orig(x, n, rng)
    try:
        o = Oracles(small_problem, Ledger(Budget(max_sample_calls=10)))
        o.sample_ref(0, 10, np.random.default_rng(0))
        with pytest.raises(BudgetExhausted):
            o.sample_ref(0, 1, np.random.default_rng(0))
    finally:
        base.sample = orig
    assert calls == [10]


def test_validation_messages_name_the_argument():
    with pytest.raises(ValueError, match=r"beta must be in \(0"):
        check_real("beta", 0.0, low=0, low_open=True)
    with pytest.raises(ValueError, match="beta must be finite"):
        check_real("beta", float("nan"))
    with pytest.raises(TypeError, match="n must be an integer"):
        check_int("n", 2.5)
    with pytest.raises(ValueError, match="rho must sum to 1"):
        check_distribution("rho", [0.5, 0.6])
    with pytest.raises(ValueError, match="seed must be given explicitly"):
        as_generator(None)
    with pytest.raises(ValueError, match="seed must be in"):
        as_generator(-3)


# ---- batched pi_ref draws: the per-(label, prompt) pool -------------------------------------------

class _CountingBase:
    """A base model that records its calls: draws are consecutive integers, so order is visible."""

    cost_kind, cost_per_sample = "weak", 1

    def __init__(self, preferred_batch=1, many=False):
        self.preferred_batch = preferred_batch
        self.calls, self.next = [], 0
        if many:
            self.sample_many = self._many

    def sample(self, x, n, rng):
        self.calls.append((x, n))
        out = np.arange(self.next, self.next + n)
        self.next += n
        return out

    def _many(self, xs, ns, rng):
        self.calls.append(("many", tuple(ns)))
        return [self.sample(x, n, rng) for x, n in zip(xs, ns)][:]


def _pool_problem(base):
    from spanex.tabular import tabular_problem

    p = tabular_problem([1.0], [np.array([0.5, 0.5])], [np.eye(2)], theta_star=np.ones(2), B=2.0)
    import dataclasses

    return dataclasses.replace(p, base=base)


def test_pool_refills_in_preferred_batches_and_charges_every_draw():
    base = _CountingBase(preferred_batch=8)
    L = Ledger()
    o = Oracles(_pool_problem(base), L)
    rng = np.random.default_rng(0)
    a = o.sample_ref(0, 3, rng)
    b = o.sample_ref(0, 4, rng)
    assert list(a) == [0, 1, 2] and list(b) == [3, 4, 5, 6]    # consumed in order
    assert base.calls == [(0, 8)] and L.count("weak") == 8 and o.pooled(0) == 1
    c = o.sample_ref(0, 10, rng)                                # 1 pooled + a fresh batch of >= 9
    assert list(c[:1]) == [7] and L.count("weak") == 8 + 9 and o.pooled(0) == 0
    o.give_back(0, c[5:])                                       # unused draws return to the front
    assert list(o.sample_ref(0, 2, rng)) == list(c[5:7]) and L.count("weak") == 17


def test_pool_is_per_label_and_within_budget():
    base = _CountingBase(preferred_batch=8)
    L = Ledger(Budget(max_sample_calls=5))
    o = Oracles(_pool_problem(base), L)
    rng = np.random.default_rng(0)
    o.sample_ref(0, 2, rng)                                     # a batch of 8 would break the budget: 2 only
    assert L.sample_calls == 2 and o.pooled(0) == 0
    ev = o.with_label("eval")
    ev.sample_ref(0, 1, rng)
    assert ev.pooled(0) == 7 and o.pooled(0) == 0               # eval draws never feed training
    with pytest.raises(BudgetExhausted):
        o.sample_ref(0, 4, rng)


def test_prefetch_batches_across_prompts():
    base = _CountingBase(preferred_batch=4, many=True)
    L = Ledger()
    o = Oracles(_pool_problem(base), L)
    rng = np.random.default_rng(0)
    o.prefetch([0, 1, 0, 2], 3, rng)
    assert base.calls[0] == ("many", (4, 4, 4)) and L.count("weak") == 12
    o.sample_ref(1, 3, rng)
    assert len(base.calls) == 4                                 # served from the pool: no new call
