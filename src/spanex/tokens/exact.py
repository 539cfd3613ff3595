"""Exact token-level quantities: soft Bellman values, pi*_beta token by token, C_cov and C_cond.

KL-regularized soft Bellman recursion (paper-notes §2.4; transitions are deterministic, the state is
the prefix s_h):

    V*_H(s_H)     = r*(x, a_{1:H})
    V*_h(s_h)     = beta log E_{a ~ pi_{h+1,ref}(.|s_h)} exp(V*_{h+1}(s_h a) / beta)       (h < H)
    Q*_h(s_h)     = V*_h(s_h)          (the value of reaching prefix s_h; h >= 1)
    pi*_h(a|s)    = pi_{h,ref}(a|s) exp((Q*_h(s a) - V*_{h-1}(s)) / beta)
    V*_0(x)       = beta log Z*(x),  so J_beta(pi*_beta) = E_x V*_0(x)

The product over h of the pi*_h equals the sequence-level tilt pi_ref exp(r*/beta) / Z*. Coverage:

    C_cov  = sup_{x, y} pi*_beta(y|x) / pi_ref(y|x)
    C_cond = max_h sup_{x, a_{1:h}} pi*_h(a_h|s_{h-1}) / pi_{h,ref}(a_h|s_{h-1})
           = exp(max (Q*_h(s a) - V*_{h-1}(s)) / beta)

The sup in C_cond runs over *every* prefix with pi_{h,ref}(a_h|s_{h-1}) > 0 (not only those pi*
visits), so C_cond <= C_cov can fail (paper-notes §1.6); always C_cov <= C_cond^H.

Two evaluators:

- :class:`TokenTreeInstance` enumerates a tree with A^H <= 10^6 sequences per prompt. It *is* a
  :class:`~spanex.tabular.TabularInstance` over the A^H sequence indices (so J, KL, suboptimality
  and C_cov of sequence-level policies work unchanged) and adds the token-level tables.
- :class:`ProductTreeExact` uses structure instead: prefix-independent pi_{h,ref} = p_h and additive
  rewards r* = sum_h g_h(a_h). Then pi*_beta is a product law and everything is closed-form for any
  H (the 2^H family of paper-notes §3.5 up to H = 64 and beyond).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ..core.errors import check_distribution, check_finite_array, check_int, check_real
from ..tabular.instance import TabularInstance
from .tree import TokenTree, decode

_CHUNK = 1 << 16


def _layer_eval(fn, x, A: int, h: int, width: int | None = None) -> np.ndarray:
    """fn(x, tokens) on every prefix of depth h, in index order, in chunks (bounded memory)."""
    n = A**h
    outs = []
    for start in range(0, n, _CHUNK):
        idx = np.arange(start, min(n, start + _CHUNK), dtype=np.int64)
        outs.append(np.asarray(fn(x, decode(idx, A, h))))
    return np.concatenate(outs, axis=0)


def accumulate_log_law(log_conds: list[np.ndarray], A: int) -> np.ndarray:
    """Sequence log-law from per-layer conditionals.

    ``log_conds[h-1]`` has shape (A^h,): log q_h(a_h | a_{1:h-1}) at the index of a_{1:h}. Returns
    log q(a_{1:H}) = sum_h log q_h, shape (A^H,).
    """
    lp = np.zeros(1)
    for c in log_conds:
        lp = np.repeat(lp, A) + c
    return lp


class TokenTreeInstance(TabularInstance):
    """Exact evaluator of an enumerable :class:`~spanex.tokens.tree.TokenTree`.

    Sequence level (inherited from TabularInstance): responses of prompt x are the indices
    0..A^H-1 of the sequences (:func:`~spanex.tokens.tree.encode`), ``ref_probs[x]``,
    ``features[x]`` (= phi_H of the full sequence), ``rewards[x]``, ``log_ref[x]`` (exact, summed
    token log-probabilities), ``pi_star``, ``J``, ``suboptimality``, ``C_cov``.

    Token level: ``log_ref_cond(x, h)``, ``phi_layer(x, h)``, ``soft_values(x, beta)`` (V*_0..V*_H),
    ``Q_star``, ``V_star``, ``log_pi_star_cond``, ``pi_star_token_law`` and ``C_cond``.

    Parameters
    ----------
    tree : an enumerable TokenTree (A^H <= 10^6).
    theta_star : optional sequence-level realizable parameter (r* = <theta*, phi_H>), recorded
        for reference; it is checked against the tree's rewards.
    """

    def __init__(self, tree: TokenTree, theta_star=None):
        if not isinstance(tree, TokenTree):
            raise TypeError(f"tree must be a TokenTree, got {type(tree).__name__}")
        if not tree.enumerable:
            raise ValueError(f"tree has A^H = {tree.A}^{tree.H} sequences per prompt; exact enumeration "
                             f"is limited to 10^6 (use ProductTreeExact for structured trees)")
        self.tree = tree
        self.A, self.H = tree.A, tree.H
        A, H = self.A, self.H
        self._cond: list[list[np.ndarray]] = []
        ref_probs, feats, rewards, log_refs = [], [], [], []
        for x in range(tree.n_prompts):
            conds = []
            for h in range(H):                                        # children of depth-h prefixes
                lp = _layer_eval(tree.log_next, x, A, h)              # (A^h, A)
                err = np.abs(logsumexp(lp, axis=1))
                if np.any(~np.isfinite(err)) or err.max() > 1e-8:
                    raise ValueError(f"tree.log_next must return normalized log-probabilities; at prompt {x}, "
                                     f"depth {h} a row has log-sum {float(err.max())!r}")
                conds.append(lp.reshape(-1))
            self._cond.append(conds)
            lseq = accumulate_log_law(conds, A)
            log_refs.append(lseq)
            ref_probs.append(np.exp(lseq))
            feats.append(_layer_eval(tree.features, x, A, H))
            rewards.append(_layer_eval(tree.reward, x, A, H))
        super().__init__(tree.rho, ref_probs, feats, rewards=rewards)
        self.log_ref = log_refs                                        # exact (no log of rounded probs)
        if theta_star is not None:
            th = check_finite_array("theta_star", theta_star, ndim=1, shape=(self.d,))
            for x in range(self.n_prompts):
                gap = float(np.max(np.abs(self.features[x] @ th - self.rewards[x])))
                if gap > 1e-6 * max(1.0, float(np.max(np.abs(self.rewards[x])))):
                    raise ValueError(f"theta_star does not realize the rewards (max gap {gap:.3g} at prompt {x})")
            self.theta_star = th
        self._phi: dict[tuple[int, int], np.ndarray] = {(x, H): self.features[x] for x in range(self.n_prompts)}
        self._V: dict[tuple[int, float], list[np.ndarray]] = {}

    # ---- token-level tables --------------------------------------------------------------------
    def log_ref_cond(self, x, h: int) -> np.ndarray:
        """(A^h,) array: log pi_{h,ref}(a_h | a_{1:h-1}) at the index of a_{1:h}, 1 <= h <= H."""
        h = check_int("h", h, low=1, high=self.H)
        return self._cond[self._x(x)][h - 1]

    def phi_layer(self, x, h: int) -> np.ndarray:
        """(A^h, d) array: phi_h of every depth-h prefix, 1 <= h <= H (cached)."""
        h = check_int("h", h, low=1, high=self.H)
        key = (self._x(x), h)
        if key not in self._phi:
            self._phi[key] = _layer_eval(self.tree.features, key[0], self.A, h)
        return self._phi[key]

    def soft_values(self, x, beta: float) -> list[np.ndarray]:
        """[V*_0, ..., V*_H]: V*_h has shape (A^h,) (V*_0 is (1,) = beta log Z*(x))."""
        beta = check_real("beta", beta, low=0, low_open=True)
        key = (self._x(x), beta)
        if key not in self._V:
            x = key[0]
            A = self.A
            V = [None] * (self.H + 1)
            V[self.H] = self.rewards[x]
            for h in range(self.H - 1, -1, -1):
                # V*_h(s) = beta log sum_a pi_ref(a|s) exp(V*_{h+1}(s a)/beta)
                z = (self._cond[x][h] + V[h + 1] / beta).reshape(A**h, A)
                V[h] = beta * logsumexp(z, axis=1)
            self._V[key] = V
        return self._V[key]

    def V_star(self, x, beta: float, h: int) -> np.ndarray:
        """V*_h over the depth-h prefixes, 0 <= h <= H."""
        h = check_int("h", h, low=0, high=self.H)
        return self.soft_values(x, beta)[h]

    def Q_star(self, x, beta: float, h: int) -> np.ndarray:
        """Q*_h(x, a_{1:h}) over the depth-h prefixes, 1 <= h <= H (equal to V*_h; see module docstring)."""
        h = check_int("h", h, low=1, high=self.H)
        return self.soft_values(x, beta)[h]

    def log_pi_star_cond(self, x, beta: float, h: int) -> np.ndarray:
        """(A^h,) array: log pi*_h(a_h | a_{1:h-1}) = log pi_ref + (Q*_h(s a) - V*_{h-1}(s)) / beta."""
        h = check_int("h", h, low=1, high=self.H)
        V = self.soft_values(x, beta)
        return self.log_ref_cond(x, h) + (V[h] - np.repeat(V[h - 1], self.A)) / beta

    def pi_star_token_law(self, x, beta: float) -> np.ndarray:
        """The law over A^H sequences of the token-by-token pi*_h (equals the sequence-level tilt)."""
        conds = [self.log_pi_star_cond(x, beta, h) for h in range(1, self.H + 1)]
        return np.exp(accumulate_log_law(conds, self.A))

    def sequence_law(self, log_conds: list[np.ndarray]) -> np.ndarray:
        """Probabilities over the A^H sequences of a token-level policy given its H log-conditionals."""
        if len(log_conds) != self.H:
            raise ValueError(f"log_conds must have one array per layer (H = {self.H}), got {len(log_conds)}")
        for h, c in enumerate(log_conds, start=1):
            if np.shape(c) != (self.A**h,):
                raise ValueError(f"log_conds[{h - 1}] must have shape ({self.A**h},), got {np.shape(c)}")
        return np.exp(accumulate_log_law([np.asarray(c, float) for c in log_conds], self.A))

    def log_cond_ratio_max(self, beta: float) -> float:
        """max over x (rho > 0), h, prefixes and tokens with pi_ref > 0 of log pi*_h / pi_{h,ref}."""
        best = -np.inf
        for x in range(self.n_prompts):
            if self.rho[x] == 0:
                continue
            V = self.soft_values(x, beta)
            for h in range(1, self.H + 1):
                ok = np.isfinite(self._cond[x][h - 1])
                r = (V[h] - np.repeat(V[h - 1], self.A)) / beta
                best = max(best, float(np.max(r[ok])))
        return best

    def C_cond(self, beta: float) -> float:
        """Token-level coverage max_h sup pi*_h / pi_{h,ref} (see the module docstring)."""
        return float(np.exp(self.log_cond_ratio_max(beta)))


class ProductTreeExact:
    """Closed-form exact quantities for a product tree with additive rewards (any H).

    pi_{h,ref}(a | s_{h-1}) = p_h(a) for every prefix and prompt, and r*(x, a_{1:H}) = sum_h g_h(a_h).
    With Z_h = sum_a p_h(a) exp(g_h(a)/beta):

        pi*_h(a | s) = p_h(a) exp(g_h(a)/beta) / Z_h        (a product law)
        V*_h(s_h)    = sum_{i<=h} g_i(a_i) + beta sum_{i>h} log Z_i
        J_beta(pi*)  = beta sum_h log Z_h
        C_cond       = max_h max_a exp(g_h(a)/beta) / Z_h,   C_cov = prod_h max_a exp(g_h(a)/beta) / Z_h

    Parameters
    ----------
    rho : prompt probabilities (the law is the same at every prompt).
    ref_token_probs : (H, A) array, row h-1 is p_h.
    token_rewards : (H, A) array, row h-1 is g_h.
    """

    def __init__(self, rho, ref_token_probs, token_rewards):
        self.rho = check_distribution("rho", rho)
        P = check_finite_array("ref_token_probs", ref_token_probs, ndim=2)
        self.H, self.A = P.shape
        self.p = np.stack([check_distribution(f"ref_token_probs[{h}]", P[h]) for h in range(self.H)])
        self.g = check_finite_array("token_rewards", token_rewards, ndim=2, shape=(self.H, self.A))
        with np.errstate(divide="ignore"):
            self.log_p = np.log(self.p)

    @property
    def n_prompts(self) -> int:
        return self.rho.size

    def log_Z_tokens(self, beta: float) -> np.ndarray:
        """(H,) array of log Z_h."""
        beta = check_real("beta", beta, low=0, low_open=True)
        return logsumexp(self.log_p + self.g / beta, axis=1)

    def log_pi_star_tokens(self, beta: float) -> np.ndarray:
        """(H, A) array of log pi*_h(a)."""
        return self.log_p + self.g / beta - self.log_Z_tokens(beta)[:, None]

    def log_Z_star(self, x, beta: float) -> float:
        return float(np.sum(self.log_Z_tokens(beta)))

    def J_star(self, beta: float) -> float:
        return float(beta * np.sum(self.log_Z_tokens(beta)))

    def _log_ratios(self, beta: float) -> np.ndarray:
        r = self.g / beta - self.log_Z_tokens(beta)[:, None]
        return np.where(self.p > 0, r, -np.inf)

    def C_cov(self, beta: float) -> float:
        return float(np.exp(np.sum(np.max(self._log_ratios(beta), axis=1))))

    def log_C_cov(self, beta: float) -> float:
        return float(np.sum(np.max(self._log_ratios(beta), axis=1)))

    def C_cond(self, beta: float) -> float:
        return float(np.exp(np.max(self._log_ratios(beta))))

    def V_star(self, x, beta: float, tokens) -> np.ndarray:
        """V*_h at prefixes (n, h), 0 <= h <= H."""
        t = np.asarray(tokens, dtype=np.int64)
        if t.ndim != 2 or t.shape[1] > self.H:
            raise ValueError(f"tokens must have shape (n, h) with h <= {self.H}, got {t.shape}")
        h = t.shape[1]
        past = self.g[np.arange(h)[None, :], t].sum(axis=1) if h else np.zeros(t.shape[0])
        return past + beta * float(np.sum(self.log_Z_tokens(beta)[h:]))

    Q_star = V_star

    def suboptimality_product(self, log_q, beta: float) -> float:
        """J(pi*) - J(q) = beta sum_h KL(q_h || pi*_h) for a product-law policy q (H, A log-probs)."""
        lq = check_finite_array("log_q", np.where(np.isneginf(log_q), -1e300, log_q), ndim=2,
                                shape=(self.H, self.A))
        q = np.exp(lq)
        ls = self.log_pi_star_tokens(beta)
        m = q > 0
        return float(beta * np.sum(np.where(m, q * (lq - np.where(m, ls, 0.0)), 0.0)))
