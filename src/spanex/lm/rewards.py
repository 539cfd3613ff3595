"""Real rewards on text, and their realizable "linearized" versions.

Real rewards (defined on the text, not through phi, so realizability is *not* assumed):

- :class:`SentimentReward`: VADER's compound sentiment score of the response, in [-1, 1]
  (``vadersentiment``, a lexicon and rules; deterministic, no model download).
- :class:`AnswerReward`: a verifiable check: 1 when the first integer in the response equals the
  prompt's reference answer, else 0 (for the ``'arithmetic'`` prompt set).

:func:`fit_linearized` fits theta* by ridge least squares of a real reward on phi over pi_ref
samples and reports its fit quality (R^2 on the fitting half and on a held-out half). The
resulting :class:`LinearizedReward` r_lin = <theta*, phi> + c is realizable by construction, so
the theory's guarantees apply to it exactly; the held-out R^2 says how much of the real reward
it captures. The intercept c is a constant shift and cancels in relative features.

Bradley–Terry preferences from either reward use :class:`spanex.core.feedback.BradleyTerry`.
All reward functions here are *mean* rewards r*(x, ys) -> array; the Problem wraps them in a
:class:`~spanex.core.feedback.NoisyReward` oracle (noise 'none' by default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..core.errors import check_real


class SentimentReward:
    """r*(x, y) = VADER compound score of y (in [-1, 1]); ``scale`` multiplies it."""

    low, high = -1.0, 1.0

    def __init__(self, scale: float = 1.0):
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.scale = check_real("scale", scale, low=0, low_open=True)
        self._vader = SentimentIntensityAnalyzer()
        self.low, self.high = -self.scale, self.scale

    def __call__(self, x, ys) -> np.ndarray:
        return np.array([self.scale * self._vader.polarity_scores(str(y))["compound"] for y in ys], dtype=float)

    def __repr__(self) -> str:
        return f"SentimentReward(scale={self.scale})"


_INT = re.compile(r"-?\d+")


class AnswerReward:
    """r*(x, y) = 1 if the first integer in y equals answers[x], else 0 (a verifiable reward)."""

    low, high = 0.0, 1.0

    def __init__(self, answers: dict):
        if not answers:
            raise ValueError("AnswerReward needs a non-empty {prompt: answer} dict (use the 'arithmetic' prompts)")
        self.answers = {str(k): str(v).strip() for k, v in answers.items()}

    def __call__(self, x, ys) -> np.ndarray:
        if x not in self.answers:
            raise ValueError(f"no reference answer for prompt {x!r}")
        a = self.answers[x]
        out = np.zeros(len(ys))
        for i, y in enumerate(ys):
            m = _INT.search(str(y).replace(",", ""))
            out[i] = float(m is not None and m.group(0) == a)
        return out


@dataclass
class LinearFit:
    """Quality of the least-squares fit of a real reward on phi."""

    theta: np.ndarray
    intercept: float
    r2_train: float
    r2_test: float
    n_train: int
    n_test: int
    residual_std: float

    def to_dict(self) -> dict:
        return {"theta_norm": float(np.linalg.norm(self.theta)), "intercept": self.intercept,
                "r2_train": self.r2_train, "r2_test": self.r2_test, "n_train": self.n_train,
                "n_test": self.n_test, "residual_std": self.residual_std}


def fit_linear(Phi: np.ndarray, r: np.ndarray, lam: float = 1e-3, seed: int = 0) -> LinearFit:
    """Ridge fit r ≈ c + <theta, phi> on a random half, R^2 on both halves, then refit on all.

    The reported theta is the fit on all samples; r2_test is the held-out R^2 of the half fit.
    """
    Phi = np.asarray(Phi, float)
    r = np.asarray(r, float)
    n, d = Phi.shape
    if n < 4:
        raise ValueError(f"fitting the linearized reward needs at least 4 samples, got {n}")
    lam = check_real("lam", lam, low=0)
    perm = np.random.default_rng(seed).permutation(n)
    tr, te = perm[: n // 2], perm[n // 2:]

    def fit(idx):
        X = np.hstack([Phi[idx], np.ones((len(idx), 1))])
        reg = lam * np.eye(d + 1)
        reg[d, d] = 0.0  # the intercept is not penalised
        w = np.linalg.solve(X.T @ X + reg, X.T @ r[idx])
        return w[:d], float(w[d])

    def r2(idx, th, c):
        res = r[idx] - (Phi[idx] @ th + c)
        var = np.var(r[idx])
        return float(1 - np.mean(res ** 2) / var) if var > 0 else float("nan")

    th_h, c_h = fit(tr)
    r2_tr, r2_te = r2(tr, th_h, c_h), r2(te, th_h, c_h)
    th, c = fit(perm)
    res = r - (Phi @ th + c)
    return LinearFit(theta=th, intercept=c, r2_train=r2_tr, r2_test=r2_te, n_train=len(tr), n_test=len(te),
                     residual_std=float(np.std(res)))


class LinearizedReward:
    """r_lin(x, y) = <theta*, phi(x, y)> + c: realizable by construction (see fit_linear)."""

    def __init__(self, phi, fit: LinearFit):
        self.phi = phi
        self.fit = fit
        self.theta = np.asarray(fit.theta, float)
        self.intercept = float(fit.intercept)

    def __call__(self, x, ys) -> np.ndarray:
        return self.phi(x, ys) @ self.theta + self.intercept

    def __repr__(self) -> str:
        return f"LinearizedReward(||theta*||={np.linalg.norm(self.theta):.3f}, R2_test={self.fit.r2_test:.3f})"
