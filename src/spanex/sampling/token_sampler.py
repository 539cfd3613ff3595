"""Token-level SoftmaxSampler: one next token a ~ q(a|s) ∝ pi_{h,ref}(a|s) exp(f(s, a)/beta).

This is SoftmaxSampler (paper-notes §2.1) applied to a single next-token distribution instead of
a whole response: the proposals are next-token draws ``oracles.sample_next(x, [s]*k)`` (one
'token' call each), so a draw costs about M + Zhat/Z_f <= M + N token calls, where M bounds the
*per-token* density ratio sup_a q(a|s)/pi_{h,ref}(a|s) (~ C_cond for MTSS's targets) rather than the
sequence-level one (~ C_cov). It reuses :func:`~spanex.sampling.softmax_sampler.rejection_sample`.

A batch of draws may sit at different prefixes and have different score functions (e.g. their own
anchor token). Draws are grouped by a hashable key (default: the prefix); draws sharing a key
share the target, so each group is one batched rejection run whose proposals come from one
oracle call per round.

Two modes (the paper's token-level sampler is not specified; both are documented choices):

- ``'rejection'`` (default): rejection sampling with proposals from ``sample_next`` only.
- ``'logprob'``: one next-token-distribution query ``next_probs`` per group (charged as a
  'logprob' query) and the exact tilt over the whole vocabulary (scores of all A children are
  computed). No rejection; useful for small vocabularies (paper-notes §3.7, log-probability queries).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy.special import logsumexp

from ..core.errors import SamplerFailure, check_choice
from .softmax_sampler import RejectionParams, SamplerDiagnostics, rejection_sample

TOKEN_FALLBACKS = ("last", "ref", "raise")
TOKEN_MODES = ("rejection", "logprob")


@dataclass(frozen=True)
class TokenSoftmaxSampler(RejectionParams):
    """Rejection sampler for the next token; see the module docstring.

    Parameters
    ----------
    beta : temperature (the problem's KL-regularization), > 0.
    M : upper bound on the per-token density ratio sup_a q(a|s) / pi_{h,ref}(a|s), >= 1.
    delta : failure probability per draw, in (0, 1); N = ceil(4 ceil(M) log(4/delta)) proposals at most.
    batch_size : proposals per oracle call within a group; None means ceil(M/4) (waste is charged).
    fallback : on failure, 'last' (the last proposal, itself a pi_ref draw), 'ref' (a fresh counted
        pi_ref token) or 'raise' (SamplerFailure). A rollout always needs a token, so no 'none'.
    mode : 'rejection' or 'logprob' (see the module docstring).
    """

    beta: float
    M: float
    delta: float = 0.05
    batch_size: int | None = None
    fallback: str = "last"
    mode: str = "rejection"

    def __post_init__(self):
        self._check_params(TOKEN_FALLBACKS)
        check_choice("mode", self.mode, TOKEN_MODES)

    def sample(self, score: Callable[[int, np.ndarray], np.ndarray], x: Any, prefixes: Sequence[tuple], oracles,
               rng: np.random.Generator, keys: Sequence | None = None):
        """One next token per prefix, a_i ~ q_i(.|prefixes[i]) ∝ pi_ref(.|prefixes[i]) exp(f_i/beta).

        ``score(i, tokens)`` returns f_i(a) for an int array of candidate tokens (draw i's prefix is
        ``prefixes[i]``); draws with equal ``keys[i]`` (default: equal prefixes) must have the same f.
        Returns (tokens (n,) int array, SamplerDiagnostics with one entry per draw).
        """
        n = len(prefixes)
        if keys is not None and len(keys) != n:
            raise ValueError(f"keys must have one entry per prefix ({n}), got {len(keys)}")
        groups: dict[Any, list[int]] = {}
        for i in range(n):
            groups.setdefault(keys[i] if keys is not None else prefixes[i], []).append(i)
        tokens = np.zeros(n, dtype=np.int64)
        proposals = np.zeros(n, dtype=np.int64)
        partition = np.zeros(n, dtype=np.int64)
        accepted = np.ones(n, dtype=bool)
        log_Zhat = np.zeros(n)
        ratio = np.ones(n)
        clipped = np.zeros(n, dtype=bool)
        if self.mode == "logprob":
            self._sample_logprob(score, x, prefixes, groups, oracles, rng, tokens, ratio, log_Zhat)
        else:
            beta = self.beta
            for members in groups.values():
                rep = members[0]
                prefix = tuple(prefixes[rep])

                def propose(k, prefix=prefix):
                    return oracles.sample_next(x, [prefix] * k, rng)

                def log_weight(toks, rep=rep):
                    return _unique_scores(score, rep, np.asarray(toks, dtype=np.int64)) / beta

                out, last, used, acc, lz, rb, cl, M_int = rejection_sample(
                    propose, log_weight, len(members), self.M, self.N, self._batch(), rng)
                for j, i in enumerate(members):
                    if acc[j]:
                        tokens[i] = int(np.asarray(out[j]).ravel()[0])
                    elif self.fallback == "raise":
                        raise SamplerFailure(f"TokenSoftmaxSampler: no acceptance in N={self.N} proposals "
                                             f"(M={self.M}) at prefix of length {len(prefix)}; estimated "
                                             f"density ratio {rb[j]:.3g}")
                    elif self.fallback == "last":
                        tokens[i] = int(np.asarray(last[j]).ravel()[0])
                    else:
                        tokens[i] = int(oracles.sample_next(x, [prefix], rng)[0])
                        used[j] += 1
                idx = np.asarray(members)
                proposals[idx], partition[idx], accepted[idx] = used, M_int, acc
                log_Zhat[idx], ratio[idx], clipped[idx] = lz, rb, cl
        diag = SamplerDiagnostics(proposals=proposals, partition_calls=partition, accepted=accepted,
                                  log_Zhat=log_Zhat, ratio_bound=ratio, clipped=clipped, M=float(self.M), N=self.N)
        return tokens, diag

    def _sample_logprob(self, score, x, prefixes, groups, oracles, rng, tokens, ratio, log_Zhat):
        reps = [m[0] for m in groups.values()]
        P = oracles.next_probs(x, [tuple(prefixes[i]) for i in reps])       # one 'logprob' query per group
        A = P.shape[1]
        all_a = np.arange(A)
        for g, members in enumerate(groups.values()):
            with np.errstate(divide="ignore"):
                lp = np.log(P[g])
            f = np.asarray(score(members[0], all_a), dtype=float) / self.beta
            z = lp + f
            lz = logsumexp(z)
            q = np.exp(z - lz)
            c = np.cumsum(q)
            u = rng.random(len(members)) * c[-1]
            a = np.minimum((c[None, :] <= u[:, None]).sum(axis=1), A - 1)
            idx = np.asarray(members)
            tokens[idx] = a
            log_Zhat[idx] = lz
            ok = P[g] > 0
            ratio[idx] = float(np.exp(np.max((f - lz)[ok])))


def _unique_scores(score, rep: int, toks: np.ndarray) -> np.ndarray:
    """score(rep, .) evaluated once per distinct token (proposal batches repeat few tokens)."""
    if toks.size == 0:
        return np.zeros(0)
    u, inv = np.unique(toks, return_inverse=True)
    return np.asarray(score(rep, u), dtype=float)[inv]
