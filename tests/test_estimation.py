"""Estimators on relative features: ridge / Bradley–Terry fits (with XPO's linear term g) and PairwiseFit."""

import numpy as np
import pytest
from scipy.special import expit

from spanex.estimation import FEEDBACK_LOSS, PairwiseFit, logistic_fit, ridge_fit

# Newton stops when the squared Newton decrement (theta - theta*)^T H (theta - theta*) (to second order)
# is <= 2 tol = 2e-10, and H >= lam I, so each logistic fit is within sqrt(2e-10 / lam) of the minimizer
# and two fits of the same data (warm or cold started) within twice that.
def _newton_tol(lam):
    return 2 * np.sqrt(2e-10 / lam)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    V = rng.standard_normal((50, 3))
    return V, rng.standard_normal(3), (rng.random(50) < 0.5).astype(float), rng.standard_normal(50)


def test_fits_with_a_linear_term_are_stationary(data):
    """argmin L(theta) + <g, theta> + (lam/2)||theta||^2: the gradient vanishes at the returned theta."""
    V, g, b, t = data
    th = logistic_fit(V, b, 0.7, g=g)
    assert np.linalg.norm(V.T @ (expit(V @ th) - b) + g + 0.7 * th) < 1e-6
    th = ridge_fit(V, t, 0.7, g=g)                    # (1/2) sum (<theta, v> - t)^2 + <g, theta> + ...
    assert np.linalg.norm(V.T @ (V @ th - t) + g + 0.7 * th) < 1e-9
    # g = 0 is the plain fit, and the plain fits are stationary without g
    assert np.array_equal(logistic_fit(V, b, 0.7, g=np.zeros(3)), logistic_fit(V, b, 0.7))
    assert np.array_equal(ridge_fit(V, t, 0.7, g=np.zeros(3)), ridge_fit(V, t, 0.7))
    th = logistic_fit(V, b, 0.7)
    assert np.linalg.norm(V.T @ (expit(V @ th) - b) + 0.7 * th) < 1e-6
    with pytest.raises(ValueError, match="g"):
        ridge_fit(V, t, 0.7, g=np.zeros(4))
    with pytest.raises(ValueError, match="g"):
        logistic_fit(V, b, 0.7, g=[np.nan, 0.0, 0.0])


def test_pairwise_fit_exact_solvers_match_the_batch_fits(data):
    V, _, b, t = data
    ridge = PairwiseFit(3, 0.7, "squared")
    for lo in range(0, 50, 7):                         # batches of 7 (the last one 1): SM updates and inverses
        ridge.add(V[lo:lo + 7], t[lo:lo + 7])
    assert ridge.n == 50
    # PairwiseFit minimizes sum (<theta, v> - t)^2 + lam ||theta||^2: ridge_fit with the same lam
    assert np.allclose(ridge.theta, ridge_fit(V, t, 0.7), atol=1e-10)
    bt = PairwiseFit(3, 0.7, "logistic")               # refit_factor 1: Newton at every update
    for lo in range(0, 50, 10):
        bt.add(V[lo:lo + 10], b[lo:lo + 10])
    assert np.allclose(bt.theta, logistic_fit(V, b, 0.7), rtol=0, atol=_newton_tol(0.7))
    assert FEEDBACK_LOSS == {"reward": "squared", "preference": "logistic"}


def test_refit_factor_refits_geometrically(data):
    V, _, b, _ = data
    fit = PairwiseFit(3, 1.0, "logistic", refit_factor=2.0)
    fitted_at = []
    for n in range(1, 21):
        before = fit.theta
        fit.add(V[n - 1], [b[n - 1]])
        if not np.array_equal(fit.theta, before):
            fitted_at.append(n)
            assert np.allclose(fit.theta, logistic_fit(V[:n], b[:n], 1.0), rtol=0, atol=_newton_tol(1.0))
    assert fitted_at == [1, 2, 4, 8, 16]               # the data doubled since the last fit


def test_projection_and_sgd(data):
    V, _, _, t = data
    free = PairwiseFit(3, 0.1, "squared")
    free.add(V, 10 * t)
    r = 0.5 * np.linalg.norm(free.theta)
    ball = PairwiseFit(3, 0.1, "squared", radius=r)
    ball.add(V, 10 * t)
    assert np.linalg.norm(ball.theta) == pytest.approx(r) and np.allclose(ball.theta / r, free.theta / (2 * r))
    sgd = PairwiseFit(3, 0.7, "squared", solver="sgd", lr=0.3, sgd_steps=1)
    th = sgd.add(V[:10], t[:10])                       # one step from 0 on the mean loss
    assert np.allclose(th, -0.3 * (V[:10].T @ (0 - t[:10])) / 10)
    # many steps converge to the exact minimizer of the same (mean) loss
    many = PairwiseFit(3, 0.7, "squared", solver="sgd", lr=0.5, sgd_steps=2000)
    assert np.allclose(many.add(V, t), ridge_fit(V, t, 0.7), atol=1e-8)


@pytest.mark.parametrize("kw, match", [(dict(loss="hinge"), "loss"), (dict(solver="adam"), "solver"),
                                       (dict(refit_factor=0.5), "refit_factor"), (dict(radius=0.0), "radius"),
                                       (dict(lam=0.0), "lam"), (dict(lr=0.0), "lr"), (dict(sgd_steps=0), "sgd_steps")])
def test_pairwise_fit_bad_parameters(kw, match):
    args = dict(d=3, lam=1.0, loss="squared")
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        PairwiseFit(**args)


def test_pairwise_fit_bad_data():
    for loss in ("squared", "logistic"):
        with pytest.raises(ValueError, match="shape"):
            PairwiseFit(3, 1.0, loss).add(np.zeros((2, 4)), [0.0, 1.0])
    fit = PairwiseFit(2, 1.0, "logistic")
    assert np.array_equal(fit.add(np.zeros((0, 2)), []), np.zeros(2)) and fit.n == 0   # nothing to fit
