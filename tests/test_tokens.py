"""Token-tree backend: exact DP against brute force, coverage coefficients, the sequence view."""

import itertools
import math

import numpy as np
import pytest
from scipy.special import logsumexp

import spanex
from spanex.core import Ledger, Oracles, ReferencePolicy
from spanex.tokens import (ProductTreeExact, TokenTree, TokenTreeInstance, coverage_gap_example, decode, encode,
                           token_chain, token_linear, tree_problem)


def random_tree(A=3, H=3, d=2, n_prompts=2, seed=0):
    """pi_ref depends on the whole prefix (a fixed random table per prefix index); arbitrary reward."""
    rng = np.random.default_rng(seed)
    logits = [rng.standard_normal((n_prompts, A**h, A)) * 1.5 for h in range(H)]
    feats = [rng.standard_normal((n_prompts, A**h, d)) for h in range(H + 1)]
    rew = rng.standard_normal((n_prompts, A**H)) * 2.0

    def log_next(x, t):
        z = logits[t.shape[1]][x][encode(t, A)]
        return z - logsumexp(z, axis=1, keepdims=True)

    def features(x, t):
        return feats[t.shape[1]][x][encode(t, A)]

    def reward(x, t):
        return rew[x][encode(t, A)]

    return TokenTree(np.full(n_prompts, 1 / n_prompts), A, H, d, log_next, features, reward)


def brute_V(tree, x, prefix, beta):
    """V*_h(s_h) = beta log sum over completions of pi_ref(completion | s_h) exp(r*/beta), by enumeration."""
    h = len(prefix)
    terms = []
    for comp in itertools.product(range(tree.A), repeat=tree.H - h):
        seq = list(prefix) + list(comp)
        lp = 0.0
        for j in range(h, tree.H):
            lp += tree.log_next(x, np.array([seq[:j]], dtype=np.int64).reshape(1, j))[0, seq[j]]
        terms.append(lp + tree.reward(x, np.array([seq]))[0] / beta)
    return beta * logsumexp(terms)


def test_encode_decode_roundtrip_and_order():
    t = np.array([[0, 0, 1], [2, 1, 0], [1, 2, 2]])
    idx = encode(t, 3)
    assert idx.tolist() == [1, 21, 17]
    assert np.array_equal(decode(idx, 3, 3), t)
    assert np.array_equal(decode(np.arange(9), 3, 2)[:4], [[0, 0], [0, 1], [0, 2], [1, 0]])
    with pytest.raises(ValueError, match="tokens must lie in"):
        encode([[0, 3]], 3)
    with pytest.raises(ValueError, match="indices must lie in"):
        decode([9], 3, 2)


def test_soft_values_match_brute_force():
    tree = random_tree(A=3, H=3, seed=1)
    inst = TokenTreeInstance(tree)
    beta = 0.7
    for x in range(2):
        for h in range(0, 4):
            V = inst.V_star(x, beta, h)
            for i in [0, 5 % (3**h), 3**h - 1]:
                prefix = tuple(decode([i], 3, h)[0]) if h else ()
                assert V[i] == pytest.approx(brute_V(tree, x, prefix, beta), rel=1e-10, abs=1e-10)
        # V*_0 = beta log Z*(x) of the sequence-level tilt
        assert inst.V_star(x, beta, 0)[0] == pytest.approx(beta * inst.log_Z_star(x, beta), rel=1e-12)


def test_token_recursion_equals_sequence_tilt():
    inst = TokenTreeInstance(random_tree(A=2, H=5, seed=2))
    for beta in (0.3, 2.0):
        for x in range(2):
            assert np.allclose(inst.pi_star_token_law(x, beta), inst.pi_star(x, beta), atol=1e-12)
            # each pi*_h(.|s) is a distribution
            for h in range(1, 6):
                c = np.exp(inst.log_pi_star_cond(x, beta, h)).reshape(-1, 2)
                assert np.allclose(c.sum(axis=1), 1.0)


def test_ref_law_is_product_of_token_conditionals():
    tree = random_tree(A=3, H=2, seed=3)
    inst = TokenTreeInstance(tree)
    for y in range(9):
        t = decode([y], 3, 2)
        lp = tree.log_next(1, t[:, :0])[0, t[0, 0]] + tree.log_next(1, t[:, :1])[0, t[0, 1]]
        assert inst.log_ref[1][y] == pytest.approx(lp, abs=1e-12)
    assert inst.ref_probs[1].sum() == pytest.approx(1.0)


def test_coverage_gap_example_hand_checked():
    # e = exp(-L/beta): w(00) = e, other weights 1, Z* = (3 + e)/4.
    # C_cov = max pi*/pi_ref = 1/Z* = 4/(3+e). Layer 2 at prefix 0: pi*(1|0) = 1/(1+e), ratio 2/(1+e);
    # layer 1: ratios 4/(3+e) and 2(1+e)/(3+e); prefix 1: ratio 1. So C_cond = 2/(1+e) > C_cov for e < 1.
    for L, beta in [(2.0, 1.0), (30.0, 1.0), (1.0, 0.5)]:
        ex = coverage_gap_example(L=L, beta=beta).exact
        e = math.exp(-L / beta)
        assert ex.C_cov(beta) == pytest.approx(4 / (3 + e), rel=1e-12)
        assert ex.C_cond(beta) == pytest.approx(2 / (1 + e), rel=1e-12)
        assert ex.C_cond(beta) > ex.C_cov(beta)


def test_c_cov_at_most_c_cond_power_H():
    for seed in range(3):
        inst = TokenTreeInstance(random_tree(A=2, H=4, seed=seed))
        for beta in (0.5, 1.5):
            assert inst.C_cov(beta) <= inst.C_cond(beta) ** 4 * (1 + 1e-12)
            assert inst.C_cov(beta) >= 1.0 and inst.C_cond(beta) >= 1.0


def test_chain_closed_form_matches_enumeration():
    beta, c, H = 0.3, 0.8, 6
    prob = token_chain(H=H, c=c, beta=beta, p1=0.3)
    ex, st = prob.exact, prob.meta["structured"]
    assert isinstance(ex, TokenTreeInstance) and isinstance(st, ProductTreeExact)
    assert ex.C_cov(beta) == pytest.approx(st.C_cov(beta), rel=1e-10)
    assert ex.C_cond(beta) == pytest.approx(st.C_cond(beta), rel=1e-10)
    assert ex.J_star(beta) == pytest.approx(st.J_star(beta), rel=1e-10)
    for h in (0, 2, H):
        t = decode(np.arange(2**h), 2, h)
        assert np.allclose(ex.V_star(0, beta, h), st.V_star(0, beta, t), atol=1e-10)
    # realizability at every layer with one theta*: Q*_h = <theta*, phi_h>
    th = prob.meta["theta_star_tokens"]
    for h in range(1, H + 1):
        assert np.allclose(ex.phi_layer(0, h) @ th[h - 1], ex.Q_star(0, beta, h), atol=1e-10)


def test_chain_two_to_the_H_family_up_to_64():
    # p1 = 1/2: pi*_h(1) = e^{c/b}/(1+e^{c/b}), ratio 2/(1+e^{-c/b}) = C_cond; C_cov = C_cond^H.
    beta, c = 0.2, 1.0
    cc = 2 / (1 + math.exp(-c / beta))
    for H in (2, 16, 40, 64):
        prob = token_chain(H=H, c=c, beta=beta)
        assert prob.exact.C_cond(beta) == pytest.approx(cc, rel=1e-12)
        assert prob.exact.C_cov(beta) == pytest.approx(cc**H, rel=1e-10)
        assert prob.exact.C_cond(beta) <= 2
    assert token_chain(H=64, c=5.0, beta=0.2).exact.C_cov(0.2) >= 2.0**64 * 0.99


def test_token_linear_is_autoregressive_realizable():
    beta = 0.8
    prob = token_linear(H=3, A=3, k=2, beta=beta, seed=4)
    ex, th = prob.exact, prob.meta["theta_star_tokens"]
    for x in range(2):
        for h in range(1, 4):
            assert np.allclose(ex.phi_layer(x, h) @ th[h - 1], ex.Q_star(x, beta, h), atol=1e-10)
    assert ex.J_star(beta) == pytest.approx(0.0, abs=1e-10)      # pi* = pi_theta*, Z* = 1 by construction
    # the sequence view is realizable with theta*_H
    assert np.allclose(ex.features[0] @ th[-1], ex.rewards[0], atol=1e-10)


def test_sequence_view_charges_H_token_calls_and_samples_pi_ref():
    prob = token_linear(H=3, A=2, k=2, beta=1.0, n_prompts=1, seed=5)
    ledger = Ledger()
    o = Oracles(prob, ledger)
    n = 40000
    ys = o.sample_ref(0, n, np.random.default_rng(0))
    assert ledger.count("token") == 3 * n and ledger.count("weak") == 0
    emp = np.bincount(ys, minlength=8) / n
    # each frequency has sd <= sqrt(1/4n) = 0.0025; 6 sd = 0.015 bounds all 8 entries comfortably
    assert np.max(np.abs(emp - prob.exact.ref_probs[0])) < 0.015
    assert prob.phi(0, ys[:5]).shape == (5, prob.d)


def test_token_oracle_law_and_counts():
    prob = token_linear(H=2, A=3, k=2, beta=1.0, n_prompts=1, seed=6)
    ledger = Ledger()
    o = Oracles(prob, ledger)
    n = 30000
    a = o.sample_next(0, [(1,)] * n, np.random.default_rng(1))
    p = o.next_probs(0, [(1,), (2,)])
    assert ledger.count("token") == n and ledger.count("logprob") == 2
    assert np.allclose(p.sum(axis=1), 1.0)
    # sd of each frequency <= sqrt(1/4n) ~ 0.0029; 6 sd = 0.017
    assert np.max(np.abs(np.bincount(a, minlength=3) / n - p[0])) < 0.017
    # mixed prefix lengths in one call
    phis = o.token_phi(0, [(0,), (1, 2), (2,)])
    assert phis.shape == (3, prob.token_phi.dim)
    assert np.allclose(phis[1], prob.exact.phi_layer(0, 2)[encode([[1, 2]], 3)[0]])


def test_non_enumerable_tree_uses_token_arrays():
    prob = token_chain(H=30, c=1.0, beta=0.5)
    assert isinstance(prob.exact, ProductTreeExact)
    ledger = Ledger()
    o = Oracles(prob, ledger)
    ys = o.sample_ref(0, 7, np.random.default_rng(0))
    assert ys.shape == (7, 30) and ledger.count("token") == 210
    r = prob.reward.mean(0, ys)
    assert np.allclose(r, ys.sum(axis=1) * 1.0)
    assert np.allclose(prob.phi(0, ys)[:, 0], ys.sum(axis=1))


def test_evaluate_reference_policy_exactly():
    # pi_ref of the chain with p1 = 1/2: subopt = beta KL(pi_ref || pi*) = beta H KL(Bern(1/2) || Bern(q)),
    # q = e^{c/b}/(1+e^{c/b}).
    beta, c, H = 0.5, 1.0, 5
    prob = token_chain(H=H, c=c, beta=beta)
    pol = ReferencePolicy(Oracles(prob, Ledger(), "eval"))
    ev = spanex.evaluate(pol, prob)
    q = 1 / (1 + math.exp(-c / beta))
    kl = 0.5 * math.log(0.5 / q) + 0.5 * math.log(0.5 / (1 - q))
    assert ev.exact and ev.suboptimality == pytest.approx(beta * H * kl, rel=1e-10)


def test_bad_inputs_are_rejected_clearly():
    with pytest.raises(ValueError, match="H must be in"):
        token_chain(H=0)
    with pytest.raises(ValueError, match="H must be in"):
        token_chain(H=65)
    with pytest.raises(ValueError, match="c must be in"):
        token_chain(c=-1.0)
    with pytest.raises(ValueError, match="beta must be in"):
        token_chain(beta=0.0)
    with pytest.raises(ValueError, match="p1 must be in"):
        token_chain(p1=1.0)
    with pytest.raises(ValueError, match="A must be in"):
        token_linear(A=1)
    with pytest.raises(TypeError, match="H must be an integer"):
        token_linear(H=2.5)
    with pytest.raises(ValueError, match="rho must sum to 1"):
        TokenTree([0.5, 0.4], 2, 2, 1, None, None, None)
    with pytest.raises(ValueError, match="vocab_size must be in"):
        TokenTree([1.0], 1, 2, 1, None, None, None)

    def bad_log_next(x, t):
        return np.zeros((t.shape[0], 2))                             # not normalized

    tree = TokenTree([1.0], 2, 2, 1, bad_log_next, lambda x, t: np.ones((t.shape[0], 1)),
                     lambda x, t: np.zeros(t.shape[0]))
    with pytest.raises(ValueError, match="normalized log-probabilities"):
        TokenTreeInstance(tree)
    good = token_chain(H=3).meta["tree"]
    with pytest.raises(ValueError, match="prefix length h must be in"):
        good.features(0, np.zeros((1, 0), dtype=int))
    with pytest.raises(ValueError, match="prompt x must be in"):
        good.log_next(3, np.zeros((1, 0), dtype=int))
    with pytest.raises(ValueError, match="exact enumeration"):
        TokenTreeInstance(token_chain(H=25).meta["tree"])
    with pytest.raises(ValueError, match="theta_star does not realize"):
        tree_problem(good, 1.0, theta_star=np.array([5.0, 0.0]))


def test_exact_strong_oracle_on_enumerable_trees():
    prob = token_chain(H=3, c=1.0, beta=0.5)
    ledger = Ledger()
    o = Oracles(prob, ledger)
    theta = np.array([0.3, 0.0])
    n = 20000
    ys = o.sample_strong(0, theta, n, np.random.default_rng(4))
    assert ledger.count("strong") == n and ledger.count("token") == 0
    # sd of each frequency <= sqrt(1/(4n)) = 0.0035; 5 sd = 0.018
    assert np.max(np.abs(np.bincount(ys, minlength=8) / n - prob.exact.tilted_probs(0, theta, 0.5))) < 0.018
    assert token_chain(H=24).strong is None                       # no enumeration, no exact strong oracle
