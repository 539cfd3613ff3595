"""Token-tree instances (registered in :mod:`spanex.instances` as ``token_chain`` and ``token_linear``).

- :func:`token_chain`: the C_cond <= 2 / C_cov ~ 2^H family (paper-notes §3.5): binary tokens,
  prefix-independent pi_ref, additive reward c * sum_h 1[a_h = 1]. pi*_beta is a product law, so
  every quantity is exact for any H (closed form via :class:`~spanex.tokens.exact.ProductTreeExact`;
  by enumeration as well when 2^H <= 10^6).
- :func:`token_linear`: an autoregressive-realizable random instance (paper-notes §2.4): a small
  random recurrent "language model" pi_ref with Q*_h(s_h) = <theta*_h, phi_h(s_h)> exactly.
- :func:`coverage_gap_example`: the H = 2 instance of paper-notes §1.6 where C_cond > C_cov.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp

from ..core.errors import (MAX_MAGNITUDE, check_bound, check_count, check_int, check_log_weight, check_memory,
                           check_real)
from ..core.problem import Problem
from .backend import tree_problem
from .exact import ProductTreeExact
from .tree import MAX_ENUM_SEQUENCES, TokenTree


def token_chain(H: int = 8, c: float = 1.0, beta: float = 0.2, *, p1: float = 0.5, noise: str = "gaussian",
                sigma: float = 0.1, feedback: str = "both", name: str | None = None) -> Problem:
    """The 2^H family: C_cond = max_a pi*_h(a)/pi_ref(a) <= 1/min(p1, 1-p1), C_cov = C_cond^H.

    Binary tokens with pi_{h,ref}(1 | s) = p1 at every prefix; r*(a_{1:H}) = c * sum_h 1[a_h = 1].
    Token features phi_h(a_{1:h}) = (n_1(a_{1:h}), H - h) with n_1 the number of ones (d = 2).
    Q*_h(s_h) = c n_1(a_{1:h}) + beta (H - h) log Z with Z = 1 - p1 + p1 e^{c/beta}, so one
    theta* = (c, beta log Z) realizes every layer (``problem.meta['theta_star_tokens']`` repeats it)
    and the sequence view (phi = phi_H = (n_1, 0), r* = <theta*, phi_H>).
    With p1 = 1/2: C_cond = 2 / (1 + e^{-c/beta}) < 2 and C_cov = C_cond^H -> 2^H as c/beta grows.

    Parameters
    ----------
    H : horizon, 1..64 (enumerable, with a TabularInstance view, up to H = 19).
    c : per-token reward of token 1, > 0.  beta : KL-regularization, > 0.
    p1 : pi_ref probability of token 1, in (0, 1).
    noise, sigma, feedback : reward oracle (see :mod:`spanex.core.feedback`).
    """
    H = check_int("H", H, low=1, high=64)
    c = check_bound("c", c)
    check_real("c * H (the largest reward)", c * H, high=MAX_MAGNITUDE)
    beta = check_bound("beta", beta)
    check_log_weight(beta, c * H, "c * H (the largest reward)")
    p1 = check_real("p1", p1, low=0, high=1, low_open=True, high_open=True)
    log_p = np.log([1 - p1, p1])

    def log_next(x, t):
        return np.broadcast_to(log_p, (t.shape[0], 2)).copy()

    def features(x, t):
        return np.stack([t.sum(axis=1).astype(float), np.full(t.shape[0], float(H - t.shape[1]))], axis=1)

    def reward(x, t):
        return c * t.sum(axis=1).astype(float)

    tree = TokenTree([1.0], 2, H, 2, log_next, features, reward, name=f"token_chain(H={H})")
    structured = ProductTreeExact([1.0], np.tile([1 - p1, p1], (H, 1)), np.tile([0.0, c], (H, 1)))
    log_Z = float(structured.log_Z_tokens(beta)[0])
    theta_seq = np.array([c, beta * log_Z])
    theta_tokens = np.tile(theta_seq, (H, 1))
    return tree_problem(tree, beta, structured=structured, theta_star=theta_seq if tree.enumerable else None,
                        noise=noise, sigma=sigma, feedback=feedback, B=float(np.linalg.norm(theta_seq)),
                        feature_norm_bound=float(H),
                        R_max=c * H, reward_range=(0.0, c * H), name=name or f"token_chain(H={H},c={c:g},beta={beta:g})",
                        meta={"family": "token_chain", "H": H, "A": 2, "c": c, "p1": p1,
                              "theta_star": theta_seq, "theta_star_tokens": theta_tokens, "tree": tree,
                              "structured": structured})


class _RecurrentTree:
    """A random recurrent LM: z_0 = tanh(P_x), z_h = tanh(U z_{h-1} + E[a_h]), psi_h = z_h / sqrt(k).

    pi_{h+1,ref}(.|s_h) = softmax(ref_scale * W z_h / sqrt(k)). With w_h in R^k (||w_h|| = w_scale):

        log Z_h(s_{h-1}) = log sum_a pi_{h,ref}(a|s_{h-1}) exp(<w_h, psi_h(s_{h-1} a)> / beta)
        c_h(s_{h-1})     = sum_{i<h} <w_i, psi_i(s_i)> - beta sum_{i<=h} log Z_i(s_{i-1})
        phi_h(s_h)       = (psi_h(s_h), c_h(s_{h-1})),   theta*_h = (w_h, 1),   r* = <theta*_H, phi_H>
    """

    def __init__(self, H, A, k, n_prompts, beta, w_scale, ref_scale, rng):
        self.H, self.A, self.k, self.beta, self.ref_scale = H, A, k, beta, ref_scale
        self.P = np.tanh(rng.standard_normal((n_prompts, k)))
        self.U = rng.standard_normal((k, k)) * (0.9 / math.sqrt(k))
        self.E = rng.standard_normal((A, k))
        self.W = rng.standard_normal((A, k))
        w = rng.standard_normal((H, k))
        self.w = w / np.linalg.norm(w, axis=1, keepdims=True) * w_scale

    def _log_ref(self, z):
        logits = self.ref_scale * (z @ self.W.T) / math.sqrt(self.k)
        return logits - logsumexp(logits, axis=1, keepdims=True)

    def walk(self, x, t):
        """z_h (n, k) and c_h (n,) along prefixes t (n, h)."""
        n, h = t.shape
        z = np.broadcast_to(self.P[x], (n, self.k)).copy()
        c = np.zeros(n)
        sk = math.sqrt(self.k)
        for i in range(h):                              # layer i+1
            pre = z @ self.U.T                                          # (n, k)
            z_all = np.tanh(pre[:, None, :] + self.E[None, :, :])      # psi_{i+1}(s_i a) * sqrt(k), all a
            log_Z = logsumexp(self._log_ref(z) + (z_all @ self.w[i]) / (sk * self.beta), axis=1)
            c -= self.beta * log_Z                                      # - beta log Z_{i+1}(s_i)
            z = z_all[np.arange(n), t[:, i]]
            if i < h - 1:
                c += (z @ self.w[i]) / sk                               # + <w_{i+1}, psi_{i+1}(s_{i+1})>
        return z, c

    def log_next(self, x, t):
        return self._log_ref(self.walk(x, t)[0])

    def features(self, x, t):
        z, c = self.walk(x, t)
        return np.concatenate([z / math.sqrt(self.k), c[:, None]], axis=1)

    def reward(self, x, t):
        z, c = self.walk(x, t)
        return (z @ self.w[-1]) / math.sqrt(self.k) + c


def token_linear(H: int = 4, A: int = 3, k: int = 3, beta: float = 1.0, *, n_prompts: int = 2,
                 w_scale: float = 1.0, ref_scale: float = 1.0, seed: int = 0, noise: str = "gaussian",
                 sigma: float = 0.1, feedback: str = "both", name: str | None = None) -> Problem:
    """Autoregressive-realizable random instance: Q*_h(s_h) = <theta*_h, phi_h(s_h)> exactly.

    pi_ref is a random recurrent LM over A tokens (see :class:`_RecurrentTree`); d = k + 1. The
    construction fixes theta*_h = (w_h, 1) and defines the reward as the log-ratio of the
    autoregressive policy pi_h ∝ pi_{h,ref} exp(<w_h, psi_h>/beta) to pi_ref, so pi*_beta is exactly
    that policy (pi* in Pi_auto) and the soft value of every prefix is linear in phi_h; the last
    coordinate of phi_h carries the accumulated value of the path (a prefix-only quantity, which
    cancels in the token softmax). J_beta(pi*) = 0. Sequence level: r* = <theta*_H, phi_H>, so the
    sequence view is realizable too.

    Parameters
    ----------
    H, A, k : horizon (>= 1), vocabulary (>= 2), recurrent width (>= 1).
    beta : KL-regularization, > 0 (the instance is built for this beta).
    n_prompts : number of prompts (uniform rho).
    w_scale : ||w_h||; per-token log density ratios of pi* are at most 2 w_scale / beta.
    ref_scale : sharpness of pi_ref's next-token logits.
    seed : seed of the random instance.
    """
    H = check_int("H", H, low=1, high=64)
    A = check_count("A", A, low=2)
    k = check_count("k", k)
    beta = check_bound("beta", beta)
    n_prompts = check_count("n_prompts", n_prompts)
    w_scale = check_bound("w_scale", w_scale)
    check_real("2 H w_scale (the reward bound)", 2 * H * w_scale, high=MAX_MAGNITUDE)
    check_log_weight(beta, 2 * H * w_scale, "2 H w_scale (the reward bound)")
    ref_scale = check_real("ref_scale", ref_scale, low=0, high=MAX_MAGNITUDE)
    check_int("seed", seed, low=0)
    check_memory(f"the recurrent model (A = {A}, k = {k}, H = {H}, n_prompts = {n_prompts})",
                 (2 * A + k + H + n_prompts) * k)
    if float(A) ** H <= MAX_ENUM_SEQUENCES:     # enumerable: exact tables of A^H sequences x (k + 1) features
        check_memory(f"the exact tables (A^H = {A}^{H} sequences x (k + 1) = {k + 1} features x {n_prompts} prompts)",
                     float(A) ** H * (k + 4) * n_prompts)
    rt = _RecurrentTree(H, A, k, n_prompts, beta, w_scale, ref_scale, np.random.default_rng(seed))
    tree = TokenTree(np.full(n_prompts, 1 / n_prompts), A, H, k + 1, rt.log_next, rt.features, rt.reward,
                     name=f"token_linear(H={H},A={A})")
    theta_tokens = np.concatenate([rt.w, np.ones((H, 1))], axis=1)
    L = math.sqrt(1 + ((2 * H - 1) * w_scale) ** 2)                 # ||psi|| <= 1, |c_h| <= (2h-1) w_scale
    return tree_problem(tree, beta, theta_star=theta_tokens[-1] if tree.enumerable else None, noise=noise,
                        sigma=sigma, feedback=feedback, B=float(np.linalg.norm(theta_tokens[-1])),
                        feature_norm_bound=L, R_max=2 * H * w_scale,
                        name=name or f"token_linear(H={H},A={A},k={k},beta={beta:g},seed={seed})",
                        meta={"family": "token_linear", "H": H, "A": A, "theta_star": theta_tokens[-1],
                              "theta_star_tokens": theta_tokens, "tree": tree})


def coverage_gap_example(L: float = 30.0, beta: float = 1.0) -> Problem:
    """H = 2, binary, uniform pi_ref, r*(00) = -L and 0 elsewhere (paper-notes §1.6).

    As L -> inf, pi*_beta -> uniform on {01, 10, 11}: C_cov -> 4/3 while C_cond -> 2 (the prefix 0,
    rarely visited by pi*, forces token 1). Exactly, with e = exp(-L/beta):
    C_cov = 4 / (3 + e) and C_cond = 2 / (1 + e). Features phi_h = (1[a_{1:h} = 0^h], 1).
    """
    L = check_bound("L", L)
    beta = check_bound("beta", beta)
    check_log_weight(beta, L, "L")
    log_half = np.log([0.5, 0.5])

    def log_next(x, t):
        return np.broadcast_to(log_half, (t.shape[0], 2)).copy()

    def features(x, t):
        return np.stack([(t.sum(axis=1) == 0).astype(float), np.ones(t.shape[0])], axis=1)

    def reward(x, t):
        return -L * (t.sum(axis=1) == 0)

    tree = TokenTree([1.0], 2, 2, 2, log_next, features, reward, name="coverage_gap")
    return tree_problem(tree, beta, theta_star=np.array([-L, 0.0]), B=L, R_max=L, name=f"coverage_gap(L={L:g})")
