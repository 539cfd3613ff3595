"""Ledger-counted access to a Problem's oracles: the only way algorithms reach pi_ref and rewards.

Batched pi_ref draws. Draws from pi_ref do not depend on anything an algorithm learns, so
:meth:`Oracles.sample_ref` serves them from a per-(label, prompt) *pool*: the pool is refilled from the
base model in batches of at least ``base.preferred_batch`` draws (an optional attribute of the base
model, default 1) and consumed in order. Every drawn response is charged when it is drawn, including
the ones still in the pool when the run ends. The law of what a caller receives is unchanged: pool
entries are i.i.d. pi_ref draws that nothing has looked at. A caller that drew more than it used may
:meth:`~Oracles.give_back` responses whose values influenced nothing (they return to the front of the
pool, already charged). :meth:`~Oracles.prefetch` fills the pools of many prompts at once, through the
base model's optional ``sample_many(xs, ns, rng)`` (one batched call across prompts).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import check_int
from .ledger import Ledger
from .problem import Problem
from .responses import concat, prompt_key, take


class Oracles:
    """Counted oracles of one problem, charging one ledger under one label.

    Every method charges the ledger *before* calling the backend, so a refused charge
    (:class:`~spanex.core.errors.BudgetExhausted`) means the call was not made.
    """

    def __init__(self, problem: Problem, ledger: Ledger, label: str = "train", _pools: dict | None = None):
        self.problem = problem
        self.ledger = ledger
        self.label = label
        # label -> prompt key -> buffered pi_ref draws (already charged); shared by with_label copies
        self._pools: dict = {} if _pools is None else _pools
        # the base model's constants, read once (hot path)
        base = problem.base
        self._base = base
        self._kind = getattr(base, "cost_kind", "weak")
        self._per = getattr(base, "cost_per_sample", 1)
        self._batch = max(1, int(getattr(base, "preferred_batch", 1) or 1))
        self._phi = problem.phi

    def with_label(self, label: str) -> "Oracles":
        """Same problem, ledger and pools, charging another label (e.g. 'inference', 'eval').
        Each label has its own pools, so draws charged to one label are never used by another."""
        return Oracles(self.problem, self.ledger, label, self._pools)

    # ---- prompts (rho is not an oracle: drawing prompts is free) ------------------------------
    def prompts(self, n: int, rng: np.random.Generator):
        check_int("n", n, low=1)
        return self.problem.prompts.sample(n, rng)

    # ---- sampling oracles (T_comp) --------------------------------------------------------------
    def sample_ref(self, x: Any, n: int, rng: np.random.Generator):
        """n responses y ~ pi_ref(.|x) (weak oracle), served in order from the prompt's pool."""
        if type(n) is not int or n < 0:
            n = check_int("n", n, low=0)
        pool = self._pools.get(self.label)
        if pool is None:
            pool = self._pool()
        key = prompt_key(x)
        have = pool.get(key)
        k = 0 if have is None else len(have)
        if k < n:
            fresh = self._draw(x, n - k, rng)
            if k == 0 and len(fresh) == n:                 # nothing pooled and nothing left over: all of it
                if have is not None:
                    del pool[key]
                return fresh
            have = fresh if have is None or k == 0 else concat([have, fresh])
        out, rest = take(have, slice(0, n)), take(have, slice(n, None))
        if len(rest):
            pool[key] = rest
        else:
            pool.pop(key, None)
        return out

    def give_back(self, x: Any, ys) -> None:
        """Return unused pi_ref draws of prompt x to the front of its pool (they stay charged).

        Only for responses whose values influenced nothing the caller did: they are then still i.i.d.
        pi_ref draws independent of everything seen so far."""
        if len(ys) == 0:
            return
        pool = self._pool()
        key = prompt_key(x)
        have = pool.get(key)
        pool[key] = ys if have is None or len(have) == 0 else concat([ys, have])

    def prefetch(self, xs, n: int, rng: np.random.Generator) -> None:
        """Make sure the pool of every prompt in xs holds at least n draws, drawing the shortfalls in one
        batched call across prompts when the base model offers ``sample_many`` (each draw charged)."""
        n = check_int("n", n, low=0)
        pool = self._pool()
        need: dict = {}
        for x in xs:
            key = prompt_key(x)
            if key not in need:
                have = pool.get(key)
                short = n - (0 if have is None else len(have))
                if short > 0:
                    need[key] = (x, max(short, self._preferred_batch()))
        if not need:
            return
        base = self._base
        items = list(need.values())
        self._charge_draws(sum(k for _, k in items))
        many = getattr(base, "sample_many", None)
        if many is not None:
            batches = many([x for x, _ in items], [k for _, k in items], rng)
        else:
            batches = [base.sample(x, k, rng) for x, k in items]
        for (x, _), ys in zip(items, batches):
            key = prompt_key(x)
            have = pool.get(key)
            pool[key] = ys if have is None or len(have) == 0 else concat([have, ys])

    def pooled(self, x: Any) -> int:
        """Draws of prompt x waiting in this label's pool (charged, not yet used)."""
        have = self._pool().get(prompt_key(x))
        return 0 if have is None else len(have)

    def pooled_total(self) -> int:
        """Draws waiting in all of this label's pools (charged, not yet used)."""
        return sum(len(v) for v in self._pool().values())

    def _pool(self) -> dict:
        return self._pools.setdefault(self.label, {})

    def _preferred_batch(self) -> int:
        return self._batch

    def _charge_draws(self, k: int) -> None:
        self.ledger.charge(self._kind, k * self._per, self.label)

    def _draw(self, x, k: int, rng):
        """k or more fresh draws from the base model (a batch of preferred_batch when the budget allows)."""
        want = max(k, self._batch)
        if want > k and self.label == "train":        # round up only within the budget
            if not self.ledger.can_afford(self._kind, want * self._per):
                want = k
        self._charge_draws(want)
        return self._base.sample(x, want, rng)

    def sample_strong(self, x: Any, theta: np.ndarray, n: int, rng: np.random.Generator):
        """n responses y ~ pi_theta(.|x) from an exact strong oracle (1 'strong' call each)."""
        n = check_int("n", n, low=0)
        if self.problem.strong is None:
            raise ValueError(f"problem {self.problem.name!r} has no exact strong sampling oracle; "
                             "use a weak-oracle realization (rejection sampling from pi_ref) instead")
        self.ledger.charge("strong", n, self.label)
        return self.problem.strong(x, np.asarray(theta, dtype=float), n, rng)

    def logprob_ref(self, x: Any, ys) -> np.ndarray:
        """log pi_ref(y|x) for each y (one 'logprob' query per response)."""
        base = self.problem.base
        if not hasattr(base, "logprob"):
            raise ValueError(f"the base model of {self.problem.name!r} offers no log-probabilities")
        self.ledger.charge("logprob", len(ys), self.label)
        return np.asarray(base.logprob(x, ys), dtype=float)

    def enumerate(self, x: Any):
        """All responses of a finite response set (each touched response counts as one 'enum' call)."""
        rs = self.problem.response_set
        if rs is None:
            raise ValueError(f"problem {self.problem.name!r} has no enumerable response set")
        ys = rs.responses(x)
        self.ledger.charge("enum", len(ys), self.label)
        return ys

    # ---- token-level oracles -----------------------------------------------------------------
    def sample_next(self, x: Any, prefixes: Sequence[tuple], rng: np.random.Generator) -> np.ndarray:
        tm = self._token_model()
        self.ledger.charge("token", len(prefixes), self.label)
        return np.asarray(tm.sample_next(x, prefixes, rng))

    def next_probs(self, x: Any, prefixes: Sequence[tuple]) -> np.ndarray:
        tm = self._token_model()
        self.ledger.charge("logprob", len(prefixes), self.label)
        return np.asarray(tm.next_probs(x, prefixes), dtype=float)

    def token_phi(self, x: Any, prefixes: Sequence[tuple]) -> np.ndarray:
        if self.problem.token_phi is None:
            raise ValueError(f"problem {self.problem.name!r} has no token-level feature map")
        self.ledger.charge("phi", len(prefixes), self.label)
        return np.asarray(self.problem.token_phi(x, prefixes), dtype=float)

    def _token_model(self):
        if self.problem.token_model is None:
            raise ValueError(f"problem {self.problem.name!r} has no token-level model (TokenModel)")
        return self.problem.token_model

    # ---- features (free, recorded for information) ---------------------------------------------
    def phi(self, x: Any, ys) -> np.ndarray:
        self.ledger.charge("phi", len(ys), self.label)
        return np.asarray(self._phi(x, ys), dtype=float)

    # ---- feedback oracles (T_data) -------------------------------------------------------------
    def reward(self, x: Any, ys, rng: np.random.Generator) -> np.ndarray:
        if self.problem.reward is None:
            raise ValueError(f"problem {self.problem.name!r} has no reward oracle (preference feedback only)")
        self.ledger.charge("reward", len(ys), self.label)
        return np.asarray(self.problem.reward(x, ys, rng), dtype=float)

    def preference(self, x: Any, y1s, y2s, rng: np.random.Generator) -> np.ndarray:
        if self.problem.preference is None:
            raise ValueError(f"problem {self.problem.name!r} has no preference oracle")
        if len(y1s) != len(y2s):
            raise ValueError(f"y1s and y2s must have equal length, got {len(y1s)} and {len(y2s)}")
        self.ledger.charge("preference", len(y1s), self.label)
        return np.asarray(self.problem.preference(x, y1s, y2s, rng), dtype=float)
