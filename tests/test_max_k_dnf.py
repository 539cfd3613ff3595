"""The Max-k-DNF instance: construction, exactness for small n, enumeration-free backend beyond."""

import math

import numpy as np
import pytest

from spanex import instances
from spanex.core import Ledger, Oracles
from spanex.instances.max_k_dnf import max_k_dnf


def _brute_satisfied(phi, y, n):
    """Term j satisfied iff every positive variable is 1 and every negated one is 0 (bit by bit)."""
    bits = [(y >> i) & 1 for i in range(n)]
    out = []
    for pos, neg in zip(phi.pos, phi.neg):
        ok = all(bits[i] == 1 for i in range(n) if (int(pos) >> i) & 1)
        ok &= all(bits[i] == 0 for i in range(n) if (int(neg) >> i) & 1)
        out.append(ok)
    return np.array(out)


def test_features_match_a_bit_by_bit_check():
    p = max_k_dnf(n=7, k=3, m_terms=9, seed=2)
    ys = np.arange(128)
    S = p.phi.satisfied(ys)
    for y in ys:
        assert np.array_equal(S[y], _brute_satisfied(p.phi, int(y), 7))
    # each term has k distinct literals, never both signs of a variable
    for pos, neg in zip(p.phi.pos, p.phi.neg):
        assert bin(int(pos)).count("1") + bin(int(neg)).count("1") == 3 and int(pos) & int(neg) == 0
    F = p.phi(0, ys)
    assert F.shape == (128, 10) and np.all(np.linalg.norm(F, axis=1) <= 1 + 1e-12)


def test_planted_assignment_is_optimal_and_rewards_bounded():
    c, beta = 1.5, 0.2
    p = max_k_dnf(n=10, k=3, m_terms=12, beta=beta, c=c, seed=1)
    ex = p.exact
    z = p.meta["z_star"]
    assert p.phi.satisfied([z]).all()                      # z* satisfies every term
    r = ex.rewards[0]
    assert r[z] == pytest.approx(r.max())
    assert r.min() >= 0 and r.max() <= c + 1e-12
    assert np.linalg.norm(ex.theta_star) == pytest.approx(c)
    # C_cov(pi*) <= e^{range(r*)/beta} <= e^{c/beta}
    assert 1 < ex.C_cov(beta) <= math.exp((r.max() - r.min()) / beta) * (1 + 1e-9) <= math.exp(c / beta)
    assert p.R_max == c and p.feature_norm_bound == 1.0


def test_exact_instance_agrees_with_backend():
    p = max_k_dnf(n=9, k=2, seed=3)
    ex = p.exact
    ys = np.arange(512)
    assert np.allclose(ex.features[0], p.phi(0, ys))
    assert np.allclose(ex.ref_probs[0], 1 / 512)
    assert np.allclose(ex.rewards[0], p.reward.mean(0, ys))
    o = Oracles(p, Ledger())
    assert len(o.enumerate(0)) == 512 and o.ledger.count("enum") == 512
    assert p.strong is not None


def test_uniform_reference_sampling():
    """Each bit of a uniform assignment is a fair coin: over 20000 draws its mean is within
    5 sd = 5 * 0.5 / sqrt(20000) = 0.018 of 1/2 (a union bound over 30 bits keeps the failure
    probability < 1e-4)."""
    p = max_k_dnf(n=30, k=3, seed=0)
    assert p.exact is None and p.strong is None            # no enumeration beyond exact_max_n
    ys = p.base.sample(0, 20000, np.random.default_rng(0))
    assert ys.dtype == np.int64 and ys.min() >= 0 and ys.max() < 2 ** 30
    bits = (ys[:, None] >> np.arange(30)) & 1
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 0.018)
    # a term of k = 3 literals holds with probability 1/8: sd of the mean over 20000 draws is
    # sqrt(7/64/20000) = 0.0023; 5 sd tolerance
    S = p.phi.satisfied(ys)
    assert np.all(np.abs(S.mean(axis=0) - 1 / 8) < 0.012)


def test_large_n_backend_has_no_exact_parts():
    p = max_k_dnf(n=62, k=4, m_terms=20, seed=0)
    o = Oracles(p, Ledger())
    ys = o.sample_ref(0, 100, np.random.default_rng(0))
    assert o.phi(0, ys).shape == (100, 21)
    assert o.reward(0, ys, np.random.default_rng(0)).shape == (100,)
    with pytest.raises(ValueError, match="strong"):
        o.sample_strong(0, np.zeros(21), 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="enumerable"):
        o.enumerate(0)


def test_preference_version_and_registry():
    p = instances.make("max_k_dnf", n=8, k=2, seed=0)
    pp = p.with_feedback("preference")
    assert pp.reward is None and pp.preference is not None
    o = Oracles(pp, Ledger())
    b = o.preference(0, np.array([p.meta["z_star"]] * 2000), np.zeros(2000, dtype=np.int64),
                     np.random.default_rng(0))
    # P(z* preferred) = sigmoid(r*(z*) - r*(0)) > 1/2 when z* satisfies more weight than 0
    diff = float(p.reward.mean(0, [p.meta["z_star"]])[0] - p.reward.mean(0, [0])[0])
    assert diff > 0
    # 5 sd of a Bernoulli mean over 2000 draws: 5 * 0.5 / sqrt(2000) = 0.056
    assert abs(b.mean() - 1 / (1 + math.exp(-diff))) < 0.056


def test_reproducible_and_seed_dependent():
    a, b, c = max_k_dnf(n=12, seed=4), max_k_dnf(n=12, seed=4), max_k_dnf(n=12, seed=5)
    assert np.array_equal(a.phi.pos, b.phi.pos) and np.array_equal(a.exact.theta_star, b.exact.theta_star)
    assert not (np.array_equal(a.phi.pos, c.phi.pos) and np.array_equal(a.phi.neg, c.phi.neg))


def test_unplanted_and_no_bias():
    p = max_k_dnf(n=8, k=2, m_terms=5, planted=False, bias=False, seed=0)
    assert p.meta["z_star"] is None and p.d == 5


@pytest.mark.parametrize("kw, err, match", [
    (dict(n=5, k=6), ValueError, "k must be in"),
    (dict(n=0), ValueError, "n"),
    (dict(n=63), ValueError, "n"),
    (dict(n=5, k=0), ValueError, "k"),
    (dict(m_terms=0), ValueError, "m_terms"),
    (dict(beta=0.0), ValueError, "beta"),
    (dict(c=-1.0), ValueError, "c"),
    (dict(exact_max_n=25), ValueError, "exact_max_n"),
    (dict(feedback="votes"), ValueError, "feedback"),
    (dict(n=4.5), TypeError, "n"),
])
def test_bad_inputs(kw, err, match):
    with pytest.raises(err, match=match):
        max_k_dnf(**kw)


def test_package_attribute_is_the_constructor_after_the_submodule_is_imported():
    import importlib

    import spanex.instances
    importlib.import_module("spanex.instances.max_k_dnf")     # binds nothing new: the package imported it
    for name in ("linear_bandit", "needle", "max_k_dnf"):
        assert callable(getattr(spanex.instances, name)), name
