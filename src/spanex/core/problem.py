"""The Problem: everything an alignment task consists of.

Notation (paper-notes §1): prompts x ~ rho; base model pi_ref(y|x); feature map phi(x, y) in R^d;
unknown reward r*(x, y) (realizable: r* = <theta*, phi>); KL-regularization beta > 0. The
objective is J_beta(pi) = E_x[E_{y~pi} r*(x,y) - beta KL(pi(.|x) || pi_ref(.|x))] and its maximizer
is pi*_beta(y|x) ∝ pi_ref(y|x) exp(r*(x,y)/beta).

Known bounds an algorithm may use: ``B`` (||theta|| <= B over the class Theta),
``feature_norm_bound`` L (||phi(x,y)|| <= L) and ``R_max`` (|<theta, phi>| <= R_max, default B*L).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import check_real
from .protocols import BaseModel, FeatureMap, PromptSource, TokenFeatureMap, TokenModel


@dataclass
class Problem:
    """An alignment problem. Backends build it; algorithms only read it through oracles.

    Parameters
    ----------
    prompts : PromptSource (rho).
    base : BaseModel (pi_ref, the weak sampling oracle).
    phi : FeatureMap of dimension d.
    beta : KL-regularization strength, > 0.
    reward : RewardOracle, or None when only preferences are available.
    preference : PreferenceOracle (Bradley-Terry), optional.
    B, feature_norm_bound, R_max : known bounds (R_max defaults to B * feature_norm_bound).
    exact : an exact evaluator (e.g. :class:`spanex.tabular.TabularInstance`) or None.
    token_model, token_phi : token-level access (MTSS), optional.
    strong : an exact strong sampling oracle ``strong(x, theta, n, rng)`` sampling pi_theta, optional.
    name : a label for reports.
    """

    prompts: PromptSource
    base: BaseModel
    phi: FeatureMap
    beta: float
    reward: Any = None
    preference: Any = None
    B: float = 1.0
    feature_norm_bound: float = 1.0
    R_max: float | None = None
    exact: Any = None
    token_model: TokenModel | None = None
    token_phi: TokenFeatureMap | None = None
    strong: Any = None
    name: str = "problem"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.beta = check_real("beta", self.beta, low=0, low_open=True)
        self.B = check_real("B", self.B, low=0, low_open=True)
        self.feature_norm_bound = check_real("feature_norm_bound", self.feature_norm_bound, low=0, low_open=True)
        if self.R_max is None:
            self.R_max = self.B * self.feature_norm_bound
        self.R_max = check_real("R_max", self.R_max, low=0, low_open=True)
        if self.reward is None and self.preference is None:
            raise ValueError("a Problem needs a reward oracle or a preference oracle (both are None)")
        d = getattr(self.phi, "dim", None)
        if not isinstance(d, int) or d < 1:
            raise ValueError(f"phi.dim must be a positive int, got {d!r}")

    @property
    def d(self) -> int:
        return self.phi.dim

    @property
    def feedback(self) -> str:
        """'reward' when a reward oracle exists, else 'preference'."""
        return "reward" if self.reward is not None else "preference"

    def with_feedback(self, feedback: str) -> "Problem":
        """A copy that exposes only one kind of feedback ('reward' or 'preference')."""
        import dataclasses

        if feedback == "reward":
            if self.reward is None:
                raise ValueError("feedback='reward' requested but the problem has no reward oracle")
            return dataclasses.replace(self, preference=None, name=f"{self.name}")
        if feedback == "preference":
            if self.preference is None:
                raise ValueError("feedback='preference' requested but the problem has no preference oracle")
            return dataclasses.replace(self, reward=None, name=f"{self.name}-pref")
        raise ValueError(f"feedback must be 'reward' or 'preference', got {feedback!r}")
