"""Oracle adapters of a token tree, at the token level and as a sequence-level view.

A tree problem offers both views of the same base model on the same ledger:

- token level (MTSS): ``token_model.sample_next(x, prefixes, rng)`` (one 'token' call per prefix),
  ``token_model.next_probs(x, prefixes)`` (one 'logprob' query per prefix), ``token_phi``;
- sequence level (SpannerSampling and every sequence-level algorithm): ``base.sample(x, n, rng)``
  rolls out H token draws per response and declares ``cost_kind='token'``, ``cost_per_sample=H``,
  so :meth:`spanex.core.Oracles.sample_ref` charges a full response as H token calls.

Response format of the sequence view: on enumerable trees (A^H <= 10^6) a response is the integer
index of its token string (:func:`~spanex.tokens.tree.encode`), so the exact evaluator is a
:class:`~spanex.tabular.TabularInstance` over indices; otherwise a batch of responses is an (n, H)
int array of tokens. ``base.to_tokens`` / ``base.from_tokens`` convert between the two.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.errors import check_bound, check_choice, check_int
from ..core.feedback import BradleyTerry, NoisyReward
from ..core.problem import Problem
from ..tabular.instance import InverseCDF, TabularResponses, TabularStrong
from .exact import ProductTreeExact, TokenTreeInstance
from .tree import TokenTree, decode, encode, sample_categorical


def group_prefixes(prefixes: Sequence[tuple]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Group a list of token tuples by length: {h: (positions, (n_h, h) token array)}."""
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prefixes):
        by_len.setdefault(len(p), []).append(i)
    out = {}
    for h, pos in by_len.items():
        toks = np.array([prefixes[i] for i in pos], dtype=np.int64).reshape(len(pos), h)
        out[h] = (np.asarray(pos, dtype=np.int64), toks)
    return out


class TreeTokenModel:
    """The token-level sampling oracle of a tree (TokenModel protocol).

    On enumerable trees next-token laws are read from the exact tables (fast); otherwise the tree's
    ``log_next`` is evaluated. The law is the same either way.
    """

    def __init__(self, tree: TokenTree, exact: TokenTreeInstance | None = None):
        self.tree, self.exact = tree, exact
        self.horizon, self.vocab_size = tree.H, tree.A

    def log_next(self, x, prefixes: Sequence[tuple]) -> np.ndarray:
        n = len(prefixes)
        out = np.empty((n, self.tree.A))
        for h, (pos, toks) in group_prefixes(prefixes).items():
            if h >= self.tree.H:
                raise ValueError(f"prefixes must have length < H = {self.tree.H} to have a next token, got {h}")
            if self.exact is not None:
                idx = encode(toks, self.tree.A)
                table = self.exact.log_ref_cond(self.tree.check_prompt(x), h + 1).reshape(-1, self.tree.A)
                out[pos] = table[idx]
            else:
                out[pos] = self.tree.log_next(x, toks)
        return out

    def sample_next(self, x, prefixes: Sequence[tuple], rng: np.random.Generator) -> np.ndarray:
        if len(prefixes) == 0:
            return np.zeros(0, dtype=np.int64)
        return sample_categorical(self.log_next(x, prefixes), rng)

    def next_probs(self, x, prefixes: Sequence[tuple]) -> np.ndarray:
        if len(prefixes) == 0:
            return np.zeros((0, self.tree.A))
        return np.exp(self.log_next(x, prefixes))


class TreeTokenPhi:
    """phi_h(x, a_{1:h}) of a batch of prefixes of any lengths 1..H (TokenFeatureMap protocol)."""

    def __init__(self, tree: TokenTree, exact: TokenTreeInstance | None = None):
        self.tree, self.exact = tree, exact

    @property
    def dim(self) -> int:
        return self.tree.d

    def __call__(self, x, prefixes: Sequence[tuple]) -> np.ndarray:
        out = np.empty((len(prefixes), self.tree.d))
        for h, (pos, toks) in group_prefixes(prefixes).items():
            if self.exact is not None and 1 <= h <= self.tree.H:
                out[pos] = self.exact.phi_layer(self.tree.check_prompt(x), h)[encode(toks, self.tree.A)]
            else:
                out[pos] = self.tree.features(x, toks)
        return out


class TreeSequenceBase:
    """Sequence-level view of pi_ref: a response is H token draws (charged as H 'token' calls)."""

    cost_kind = "token"

    def __init__(self, tree: TokenTree, exact: TokenTreeInstance | None = None):
        self.tree, self.exact = tree, exact
        self.cost_per_sample = tree.H
        self.indexed = exact is not None

    def to_tokens(self, ys) -> np.ndarray:
        """(n, H) token array of a batch of responses."""
        if self.indexed:
            return decode(np.asarray(ys, dtype=np.int64), self.tree.A, self.tree.H)
        t = np.asarray(ys, dtype=np.int64)
        return t.reshape(-1, self.tree.H) if t.size else np.zeros((0, self.tree.H), dtype=np.int64)

    def from_tokens(self, tokens) -> np.ndarray:
        """The response format of this view for an (n, H) token array."""
        t = np.asarray(tokens, dtype=np.int64).reshape(-1, self.tree.H)
        return encode(t, self.tree.A) if self.indexed else t

    def sample(self, x, n: int, rng: np.random.Generator):
        n = check_int("n", n, low=0)
        if not self.indexed:
            return self.tree.sample(x, n, rng)
        # roll out token by token through the exact next-token tables: idx_h = idx_{h-1} A + a_h
        A = self.tree.A
        idx = np.zeros(n, dtype=np.int64)
        x = self.tree.check_prompt(x)
        for h in range(1, self.tree.H + 1):
            table = self.exact.log_ref_cond(x, h).reshape(-1, A)
            a = sample_categorical(table[idx], rng) if n else np.zeros(0, dtype=np.int64)
            idx = idx * A + a
        return idx

    def logprob(self, x, ys) -> np.ndarray:
        if self.indexed:
            return self.exact.log_ref[self.tree.check_prompt(x)][np.asarray(ys, dtype=np.int64)]
        t = self.to_tokens(ys)
        lp = np.zeros(t.shape[0])
        for h in range(self.tree.H):
            lp += self.tree.log_next(x, t[:, :h])[np.arange(t.shape[0]), t[:, h]]
        return lp


class TreeSequencePhi:
    """Sequence features phi(x, y) = phi_H(x, a_{1:H})."""

    def __init__(self, base: TreeSequenceBase):
        self.base = base

    @property
    def dim(self) -> int:
        return self.base.tree.d

    def __call__(self, x, ys) -> np.ndarray:
        if self.base.indexed:
            return self.base.exact.features[self.base.tree.check_prompt(x)][np.asarray(ys, dtype=np.int64)]
        return self.base.tree.features(x, self.base.to_tokens(ys))


class TreeMeanReward:
    """r*(x, y) of full responses (the mean of the reward oracle)."""

    def __init__(self, base: TreeSequenceBase):
        self.base = base

    def __call__(self, x, ys) -> np.ndarray:
        if self.base.indexed:
            return self.base.exact.rewards[self.base.tree.check_prompt(x)][np.asarray(ys, dtype=np.int64)]
        return self.base.tree.reward(x, self.base.to_tokens(ys))


class TreePrompts:
    """x ~ rho, by inverse CDF (the tabular instances' sampler)."""

    def __init__(self, tree: TokenTree):
        self.tree = tree
        self._sampler = InverseCDF(tree.rho, name="rho")

    def sample(self, n, rng):
        return self._sampler.sample(n, rng)


def tree_problem(tree: TokenTree, beta: float, *, structured: ProductTreeExact | None = None,
                 theta_star=None, noise: str = "gaussian", sigma: float = 0.1, low: float = 0.0,
                 high: float = 1.0, feedback: str = "both", bt_temperature: float = 1.0,
                 B: float = 1.0, feature_norm_bound: float = 1.0, R_max: float | None = None,
                 name: str = "token_tree", meta: dict | None = None, reward_range: tuple | None = None) -> Problem:
    """A :class:`~spanex.core.Problem` with both the token-level and the sequence-level view of `tree`.

    ``problem.exact`` is a :class:`TokenTreeInstance` when the tree is enumerable, else
    `structured` (e.g. a :class:`ProductTreeExact`), else None. Reward feedback is
    ``NoisyReward(r*, noise, sigma)``; preferences are Bradley-Terry on r*. On enumerable trees
    ``problem.strong`` is the exact strong oracle y ~ pi_theta(.|x) ∝ pi_ref exp(<theta, phi_H>/beta)
    over the A^H sequences (one 'strong' call per response), so the proper baselines run too.
    ``reward_range`` (min, max) of r*, when known, lets a non-enumerable tree check ``noise='bernoulli'``'s
    [low, high] when it is built (an enumerable one reads it off its table).
    """
    beta = check_bound("beta", beta)
    check_choice("feedback", feedback, ("reward", "preference", "both"))
    exact = TokenTreeInstance(tree, theta_star=theta_star) if tree.enumerable else None
    if exact is not None:
        beta = exact.check_beta(beta)                  # max |r*| / beta <= MAX_LOG_WEIGHT
    base = TreeSequenceBase(tree, exact)
    mean = TreeMeanReward(base)
    reward = NoisyReward(mean, noise=noise, sigma=sigma, low=low, high=high) if feedback != "preference" else None
    if reward is not None and exact is not None:
        reward.check_range(min(float(r.min()) for r in exact.rewards), max(float(r.max()) for r in exact.rewards))
    elif reward is not None and reward_range is not None:
        reward.check_range(*reward_range)
    if reward is not None:
        reward.check_log_weight(beta, exact.max_abs_reward if exact is not None else
                                float(R_max if R_max is not None else B * feature_norm_bound))
    pref = BradleyTerry(mean, temperature=bt_temperature) if feedback != "reward" else None
    return Problem(prompts=TreePrompts(tree), base=base, phi=TreeSequencePhi(base), beta=beta, reward=reward,
                   preference=pref, B=B, feature_norm_bound=feature_norm_bound, R_max=R_max,
                   exact=exact if exact is not None else structured,
                   strong=TabularStrong(exact, beta) if exact is not None else None,
                   token_model=TreeTokenModel(tree, exact), token_phi=TreeTokenPhi(tree, exact),
                   response_set=TabularResponses(exact) if exact is not None else None,
                   name=name, meta=dict(meta or {}))
