"""Rewards on text, and how linear they are in the features.

Shipped rewards (mean rewards r*(x, ys) -> array, subclasses of :class:`TextReward` with declared
bounds ``low``/``high``):

- :class:`SentimentReward` (``'vader'``, alias ``'sentiment'``): VADER's compound sentiment of the
  response, in [-1, 1] (a lexicon and rules). Not defined through any embedding: the
  **non-realizable** case.
- :class:`HeadReward` (``'head'``): the log-odds of a logistic "upbeat vs gloomy" head on
  all-MiniLM-L6-v2 sentence embeddings, trained (deterministically, at construction) on a small
  labelled sentence set shipped with spanex (``data/lm_sentences_upbeat.tsv``, 60 + 60 sentences).
  It is linear in the MiniLM embedding e(y): r = <w, e(y)> + b, and |r - b| <= ||w|| because
  ||e|| = 1, so its declared range is [b - ||w||, b + ||w||]. Features built from MiniLM keep it
  (nearly) **realizable**; how nearly is measured, not assumed (``problem.linear_fit``).
- :class:`AnswerReward` (``'answer'``): a verifiable check for the ``'arithmetic'`` prompts.

User rewards are TRL-style functions ``reward_fn(prompts, completions, **kwargs) -> list[float]``
(:class:`TRLReward`): equal-length lists, prompts as the user wrote them (str, or a list of chat
messages, in which case each completion is ``[{"role": "assistant", "content": text}]`` as in
TRL), extra dataset columns and ``completion_ids`` as keyword arguments when the function accepts
them.

:func:`fit_linear` measures how much of a reward a linear function of phi explains: ridge
regression with the penalty chosen by k-fold cross-validation, and the cross-validated
(out-of-fold) R^2 at that penalty. :class:`LinearizedReward` is the fitted <theta, phi> + c,
realizable by construction.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np

from ..core.errors import check_finite_array, check_int, check_real
from .base import ChatPrompt


class TextReward:
    """A mean reward r*(x, ys) -> array over a batch of responses to one prompt, with declared bounds."""

    low: float | None = None
    high: float | None = None
    name: str = "reward"

    def __call__(self, x, ys) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class SentimentReward(TextReward):
    """r*(x, y) = VADER compound score of y (in [-1, 1]); ``scale`` multiplies it."""

    name = "vader"

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


class AnswerReward(TextReward):
    """r*(x, y) = 1 if the first integer in y equals answers[x], else 0 (a verifiable reward)."""

    low, high = 0.0, 1.0
    name = "answer"

    def __init__(self, answers: dict):
        if not answers:
            raise ValueError("AnswerReward needs a non-empty {prompt: answer} dict (use the 'arithmetic' prompts)")
        self.answers = {str(k): str(v).strip() for k, v in answers.items()}

    def __call__(self, x, ys) -> np.ndarray:
        if str(x) not in self.answers:
            raise ValueError(f"no reference answer for prompt {x!r}")
        a = self.answers[str(x)]
        out = np.zeros(len(ys))
        for i, y in enumerate(ys):
            m = _INT.search(str(y).replace(",", ""))
            out[i] = float(m is not None and m.group(0) == a)
        return out


def load_labelled_sentences(name: str = "upbeat") -> tuple[list[str], np.ndarray]:
    """The shipped labelled sentence set: (sentences, labels in {0, 1})."""
    if name != "upbeat":
        raise ValueError(f"name must be 'upbeat', got {name!r}")
    text = (resources.files("spanex") / "data" / "lm_sentences_upbeat.tsv").read_text(encoding="utf-8")
    rows = [ln.split("\t", 1) for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [s for _, s in rows], np.array([float(lab) for lab, _ in rows])


class HeadReward(TextReward):
    """Log-odds of a logistic head on sentence embeddings: r(y) = <w, e(y)> + b (see the module docstring).

    Parameters
    ----------
    lam : L2 penalty of the logistic fit (> 0). It sets the head's scale: the default 3 gives
        ||w|| = 2.9 (a declared range of ±2.9 around b), a spread under SmolLM2 close to VADER's
        (sd 0.36 vs 0.4), and still classifies held-out labelled sentences perfectly (5-fold CV).
    embedder : a sentence embedder with ``embed_texts`` and unit-norm outputs (default: the shipped
        MiniLM, shared with ``features='minilm'``).
    """

    name = "head"

    def __init__(self, lam: float = 3.0, embedder=None):
        from ..estimation import logistic_fit

        self.lam = check_real("lam", lam, low=0, low_open=True)
        if embedder is None:
            from .features import shared_minilm

            embedder = shared_minilm()
        self.embedder = embedder
        texts, labels = load_labelled_sentences("upbeat")
        E = self.embedder.embed_texts(texts)
        norms = np.linalg.norm(E, axis=1)
        if not np.allclose(norms, 1.0, atol=1e-3):
            raise ValueError("HeadReward needs unit-norm sentence embeddings (its declared range relies on it)")
        wb = logistic_fit(np.hstack([E, np.ones((len(E), 1))]), labels, lam=self.lam)
        self.w, self.b = wb[:-1], float(wb[-1])
        self.train_accuracy = float(np.mean((E @ self.w + self.b > 0) == (labels > 0.5)))
        nw = float(np.linalg.norm(self.w))
        self.low, self.high = self.b - nw, self.b + nw

    def __call__(self, x, ys) -> np.ndarray:
        return self.embedder.embed_texts([str(y) for y in ys]) @ self.w + self.b

    def __repr__(self) -> str:
        return f"HeadReward(||w||={np.linalg.norm(self.w):.2f}, b={self.b:+.2f}, lam={self.lam})"


class TRLReward(TextReward):
    """A TRL-style ``reward_fn(prompts, completions, **kwargs) -> list[float]`` as a mean reward.

    ``columns`` maps a prompt to its extra dataset fields (e.g. a reference answer), passed as
    keyword lists like TRL does when the function accepts them (by name or through ``**kwargs``);
    ``completion_ids`` is passed the same way. ``low``/``high``: declared bounds, if known.
    """

    def __init__(self, fn, columns: dict | None = None, low: float | None = None, high: float | None = None):
        if not callable(fn):
            raise TypeError(f"reward_fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.columns = columns or {}
        self.name = getattr(fn, "__name__", type(fn).__name__)
        self.low, self.high = low, high
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        self._var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self._names = set(params)

    def _wants(self, key: str) -> bool:
        return self._var_kw or key in self._names

    def __call__(self, x, ys) -> np.ndarray:
        ys = list(ys)
        n = len(ys)
        if isinstance(x, ChatPrompt):
            prompts = [x.messages for _ in range(n)]
            completions = [[{"role": "assistant", "content": str(y)}] for y in ys]
        else:
            prompts, completions = [x] * n, [str(y) for y in ys]
        kw = {}
        if self._wants("completion_ids"):
            kw["completion_ids"] = [list(getattr(y, "token_ids", ())) for y in ys]
        for key, val in self.columns.get(x, {}).items():
            if self._wants(key) and key not in ("prompts", "completions", "completion_ids"):
                kw[key] = [val] * n
        out = self.fn(prompts, completions, **kw)
        if out is None or len(out) != n:
            raise ValueError(f"reward_fn must return one float per completion ({n}), got "
                             f"{None if out is None else len(out)}")
        if any(v is None for v in out):
            raise ValueError("reward_fn returned None for some completion; every completion needs a reward here")
        r = np.asarray(out, dtype=float)
        if not np.all(np.isfinite(r)):
            raise ValueError(f"reward_fn returned non-finite rewards: {r[~np.isfinite(r)][:3]}")
        return r

    def __repr__(self) -> str:
        return f"TRLReward({self.name})"


# ---- how linear a reward is in phi -------------------------------------------------------------------

#: ridge penalties tried by cross-validation (features have ||phi|| < 1)
RIDGE_GRID = tuple(float(v) for v in np.logspace(-4, 3, 15))


@dataclass
class LinearFit:
    """Ridge fit of a reward on phi: r ≈ <theta, phi> + intercept, penalty chosen by cross-validation.

    ``r2_cv`` is the out-of-fold R^2 at the chosen penalty (what a linear function of phi explains
    on responses it was not fitted on); ``r2_train`` the in-sample R^2 of the final fit.
    """

    theta: np.ndarray
    intercept: float
    lam: float
    r2_cv: float
    r2_train: float
    n: int
    folds: int
    residual_std: float

    def to_dict(self) -> dict:
        return {"theta_norm": float(np.linalg.norm(self.theta)), "intercept": self.intercept, "lam": self.lam,
                "r2_cv": self.r2_cv, "r2_train": self.r2_train, "n": self.n, "folds": self.folds,
                "residual_std": self.residual_std}


def _ridge_path(X, y, lams):
    """Ridge solutions (with an unpenalised intercept) for every penalty: (thetas (L, d), intercepts (L,))."""
    m, c = X.mean(axis=0), y.mean()
    U, s, Vt = np.linalg.svd(X - m, full_matrices=False)
    uy = U.T @ (y - c)
    th = np.array([Vt.T @ (s / (s * s + lam) * uy) for lam in lams])
    return th, c - th @ m


def fit_linear(Phi: np.ndarray, r: np.ndarray, *, folds: int = 5, lams=RIDGE_GRID, seed: int = 0,
               refit=None) -> LinearFit:
    """Cross-validated ridge fit of r on Phi (see :class:`LinearFit`).

    ``refit(train_idx) -> map``: when the features themselves were fitted with the labels (the
    supervised projection), refit them inside each fold; ``map(idx)`` then returns the fold's
    features of the samples idx, so the held-out R^2 is not inflated by the projection.
    """
    Phi = check_finite_array("Phi", Phi, ndim=2)
    r = check_finite_array("r", r, ndim=1, shape=(Phi.shape[0],))
    n = Phi.shape[0]
    folds = check_int("folds", folds, low=2, high=max(2, n))
    if n < 2 * folds:
        raise ValueError(f"fitting the reward on phi needs at least {2 * folds} samples for {folds}-fold "
                         f"cross-validation, got {n}")
    lams = np.asarray(lams, dtype=float)
    parts = np.array_split(np.random.default_rng(seed).permutation(n), folds)
    pred = np.zeros((lams.size, n))
    for te in parts:
        tr = np.setdiff1d(np.arange(n), te)
        if refit is None:
            Xtr, Xte = Phi[tr], Phi[te]
        else:
            fmap = refit(tr)
            Xtr, Xte = fmap(tr), fmap(te)
        th, c = _ridge_path(Xtr, r[tr], lams)
        pred[:, te] = th @ Xte.T + c[:, None]
    var = float(np.var(r))
    r2 = 1 - np.mean((pred - r[None, :]) ** 2, axis=1) / var if var > 0 else np.full(lams.size, np.nan)
    best = int(np.nanargmax(r2)) if np.any(np.isfinite(r2)) else 0
    th, c = _ridge_path(Phi, r, lams[best:best + 1])
    res = r - (Phi @ th[0] + c[0])
    return LinearFit(theta=th[0], intercept=float(c[0]), lam=float(lams[best]), r2_cv=float(r2[best]),
                     r2_train=float(1 - np.mean(res ** 2) / var) if var > 0 else float("nan"), n=n, folds=folds,
                     residual_std=float(np.std(res)))


class LinearizedReward(TextReward):
    """r_lin(x, y) = <theta, phi(x, y)> + c: realizable by construction (see fit_linear)."""

    name = "linearized"

    def __init__(self, phi, fit: LinearFit):
        self.phi = phi
        self.fit = fit
        self.theta = np.asarray(fit.theta, float)
        self.intercept = float(fit.intercept)
        nt = float(np.linalg.norm(self.theta))  # ||phi|| < 1
        self.low, self.high = self.intercept - nt, self.intercept + nt

    def __call__(self, x, ys) -> np.ndarray:
        return self.phi(x, ys) @ self.theta + self.intercept

    def __repr__(self) -> str:
        return f"LinearizedReward(||theta||={np.linalg.norm(self.theta):.3f}, R2_cv={self.fit.r2_cv:.3f})"
