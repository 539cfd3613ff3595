"""Evaluation reports the law a policy emits (clipping included), exactly or by sampling."""

import math

import numpy as np
import pytest

import spanex
from spanex.core import Ledger, LinearSoftmaxPolicy, Oracles
from spanex.instances import needle
from spanex.sampling.strong import WeakStrongSampler


@pytest.fixture(scope="module")
def hay():
    return needle(N=512, c=1.0, beta=0.1, d=512)         # pi*(y*) = e^10 / (511 + e^10) ≈ 0.98, pi_ref(y*) = 1/512


def _policy(p, sampler, label="inference"):
    theta = p.exact.theta_star                           # the perfect fit: its ideal law is pi* itself
    return LinearSoftmaxPolicy(theta, p.beta, sampler=sampler).bind(Oracles(p, Ledger(), label))


def test_a_too_small_M_is_reported_as_what_it_emits(hay):
    # the paper's sampler with M = 2 clips the needle (its weight e^10 >> Zhat_M): the ideal law pi_theta would
    # be eps-optimal, the emitted law is not, and evaluation (by sampling: Zhat_M is random) says so
    pol = _policy(hay, WeakStrongSampler(M=2.0))
    ideal = hay.exact.suboptimality([hay.exact.tilted_probs(0, pol.theta, hay.beta)], hay.beta)
    ev = spanex.evaluate(pol, hay, n_mc=2000, seed=0)
    ref = spanex.evaluate(spanex.ReferencePolicy().bind(pol.oracles), hay)
    assert ideal < 1e-9
    assert ev.method == "monte_carlo" and not ev.exact
    # the draws put mass far below pi*(y*) on the needle; its plug-in suboptimality is close to pi_ref's,
    # and far above the ideal's (the plug-in KL bias is <= (N-1)/(2n) nats = 0.13, times beta = 0.013)
    assert ev.suboptimality > 0.5 * ref.suboptimality


def test_an_unseen_needle_is_reported_clipped_then_found(hay):
    # the self-calibrating envelope: a pilot of 32 draws rarely sees a 1/512 needle (with this seed it does not,
    # checked), so the law of the next draw clips it, and evaluation reports that law exactly
    pol = _policy(hay, WeakStrongSampler(pilot=32, pilot_factor=2.0))
    ev = spanex.evaluate(pol, hay, seed=0)
    star = hay.meta["y_star"]
    assert star not in set(np.asarray(pol.sampler.state.get(0)).tolist()) and ev.method == "exact"
    assert pol.probs(0)[star] < 0.1 and ev.suboptimality > 0.1          # pi*(y*) ≈ 0.98: far from eps-optimal
    # sampling proposes the needle sooner or later (each proposal w.p. 1/512); it exceeds the envelope, is
    # recorded as clipped and joins the calibration set, and the law reported from then on is pi*
    pol.sample(0, 2000, np.random.default_rng(0))
    assert pol.sampler.stats["clipped"] >= 1
    assert pol.probs(0)[star] == pytest.approx(hay.exact.pi_star(0, hay.beta)[star], rel=1e-6)


def test_monte_carlo_is_labelled_eval_and_arguments_are_checked(hay):
    pol = _policy(hay, WeakStrongSampler(M=2.0))
    led = pol.oracles.ledger
    spanex.evaluate(pol, hay, n_mc=100, seed=0)
    assert led.count("weak", "eval") > 0 and led.count("weak", "inference") == 0
    for kw, err in [(dict(n_mc=-5), ValueError), (dict(n_mc=2.5), TypeError), (dict(seed="x"), TypeError),
                    (dict(seed=None), ValueError)]:
        with pytest.raises(err):
            spanex.evaluate(pol, hay, **kw)
    with pytest.raises(TypeError, match="policy"):
        spanex.evaluate("pi", hay)
    with pytest.raises(TypeError):
        hay.exact.support(1.9)                                   # a prompt index like 1.9 is refused
