"""Numerical pieces shared by the samplers and the algorithms that drive them (numpy only, no oracle calls).

The truncated score (paper-notes §2.3; SpannerSampling's exploration and output, MTSS's tokens)
around an anchor y' ~ pi_ref, for a design Sigma and a threshold nu::

    f(y) = <theta, phi(y) - phi(y')>    if ||phi(y) - phi(y')||_{Sigma^{-1}} <= nu   (y is covered)
         = 0                            otherwise, with truncation='reward'
         = -inf                         otherwise, with truncation='policy' (y gets probability 0)

:func:`truncated_score` evaluates it row by row (each response row with its own or a shared anchor
and theta); :func:`truncated_score_table` evaluates it for every (anchor, response) pair of an
enumerated response set at once, as the exact laws need. Both take feature rows, never responses.

Also here: :data:`EXP_GUARD`, the exponent cap that keeps exp() finite, and the prompt key used to
group prompts (and to key per-prompt sampler state).
"""

from __future__ import annotations

import numpy as np

from ..core.errors import check_choice
from ..core.responses import prompt_key  # noqa: F401  (re-exported: the key of per-prompt state)
from ..design.elliptical import sq_norms

TRUNCATIONS = ("reward", "policy")

#: exp(x) overflows float64 above x ≈ 709.78. Exponents of bounds such as exp(2 R_max / beta) are
#: capped here so the bound stays a finite number (e^700 ≈ 1e304) that size checks can refuse.
EXP_GUARD = 700.0


_OUTSIDE = {"reward": 0.0, "policy": -np.inf}


def outside_score(truncation: str) -> float:
    """The score of an uncovered response: 0 for 'reward' truncation, -inf for 'policy' truncation."""
    score = _OUTSIDE.get(truncation) if type(truncation) is str else None
    if score is None:
        check_choice("truncation", truncation, TRUNCATIONS)
    return score


def truncated_score(F, anchor, theta, Sigma_inv, nu: float, truncation: str = "reward") -> np.ndarray:
    """f(y) for the feature rows F (shape (..., d)); see the module docstring.

    anchor : phi(y') of shape (d,) (one anchor for every row) or broadcastable to F (one per row).
    theta : shape (d,) (one theta for every row) or broadcastable to F (one per row).
    Returns the scores, shape F.shape[:-1].
    """
    V = np.asarray(F, dtype=float) - anchor                          # phi(y) - phi(y')
    theta = np.asarray(theta, dtype=float)
    if V.ndim == 2:                                                  # rows of responses (the common case)
        covered = sq_norms(V, Sigma_inv) <= nu * nu
    else:
        covered = sq_norms(V.reshape(-1, V.shape[-1]), Sigma_inv).reshape(V.shape[:-1]) <= nu * nu
    score = V @ theta if theta.ndim == 1 else np.einsum("...j,...j->...", V, theta)
    return np.where(covered, score, outside_score(truncation))


def truncated_score_table(F, anchors, thetas, Sigma_inv, nu: float, truncation: str = "reward",
                          sq_F=None) -> np.ndarray:
    """f_theta(y | a) for every theta, anchor a and response y of an enumerated set; shape (k, m, N).

    F : (N, d) features of all responses; anchors : (m,) row indices of the anchors in F;
    thetas : (k, d). ``sq_F`` (optional) is ``sq_norms(F, Sigma_inv)``, reused across calls.
    The coverage mask does not depend on theta, so it is computed once for all k thetas from
    ||phi_y - phi_a||^2 = ||phi_y||^2 + ||phi_a||^2 - 2 <phi_a, Sigma^{-1} phi_y> (O(m N d), no (m, N, d) array).
    """
    F = np.asarray(F, dtype=float)
    thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
    a = np.asarray(anchors)
    q = sq_norms(F, Sigma_inv) if sq_F is None else sq_F
    sq = q[None, :] + q[a, None] - 2 * ((F[a] @ Sigma_inv) @ F.T)   # ||phi_y - phi_a||^2_{Sigma^{-1}}
    covered = sq <= nu * nu
    S = (F @ thetas.T).T                                            # (k, N): <theta, phi_y>
    return np.where(covered[None], S[:, None, :] - S[:, a, None], outside_score(truncation))



class PromptIndex:
    """Distinct prompts in first-seen order: ``index(x)`` is x's position, adding x when it is new."""

    def __init__(self):
        self.prompts: list = []
        self._position: dict = {}

    def index(self, x) -> int:
        key = prompt_key(x)
        if key not in self._position:
            self._position[key] = len(self.prompts)
            self.prompts.append(x)
        return self._position[key]

    def __len__(self) -> int:
        return len(self.prompts)


def group_prompts(xs) -> tuple[list, np.ndarray]:
    """(distinct prompts in first-seen order, the group index of every x in xs)."""
    index = PromptIndex()
    inverse = np.array([index.index(x) for x in xs], dtype=np.int64)
    return index.prompts, inverse


def prompt_counts(xs) -> list[tuple]:
    """(prompt, multiplicity) for the distinct prompts of xs, in first-seen order."""
    prompts, inverse = group_prompts(xs)
    return list(zip(prompts, np.bincount(inverse, minlength=len(prompts)).tolist()))


__all__ = ["EXP_GUARD", "TRUNCATIONS", "outside_score", "truncated_score", "truncated_score_table",
           "prompt_key",
           "PromptIndex", "group_prompts", "prompt_counts"]
