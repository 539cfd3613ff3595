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
