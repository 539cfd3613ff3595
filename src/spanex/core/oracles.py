"""Ledger-counted access to a Problem's oracles: the only way algorithms reach pi_ref and rewards."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import check_int
from .ledger import Ledger
from .problem import Problem


class Oracles:
    """Counted oracles of one problem, charging one ledger under one label.

    Every method charges the ledger *before* calling the backend, so a refused charge
    (:class:`~spanex.core.errors.BudgetExhausted`) means the call was not made.
    """

    def __init__(self, problem: Problem, ledger: Ledger, label: str = "train"):
        self.problem = problem
        self.ledger = ledger
        self.label = label

    def with_label(self, label: str) -> "Oracles":
        """Same problem and ledger, charging another label (e.g. 'inference', 'eval')."""
        return Oracles(self.problem, self.ledger, label)

    # ---- prompts (rho is not an oracle: drawing prompts is free) ------------------------------
    def prompts(self, n: int, rng: np.random.Generator):
        check_int("n", n, low=1)
        return self.problem.prompts.sample(n, rng)

    # ---- sampling oracles (T_comp) --------------------------------------------------------------
    def sample_ref(self, x: Any, n: int, rng: np.random.Generator):
        """n responses y ~ pi_ref(.|x) (weak oracle)."""
        n = check_int("n", n, low=0)
        base = self.problem.base
        self.ledger.charge(getattr(base, "cost_kind", "weak"), n * getattr(base, "cost_per_sample", 1), self.label)
        return base.sample(x, n, rng)

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
        ex = self.problem.exact
        if ex is None or not hasattr(ex, "responses"):
            raise ValueError(f"problem {self.problem.name!r} has no enumerable response set")
        ys = ex.responses(x)
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
        return np.asarray(self.problem.phi(x, ys), dtype=float)

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
