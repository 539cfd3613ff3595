"""The Problem: everything an alignment task consists of.

Notation (paper-notes §1): prompts x ~ rho; base model pi_ref(y|x); feature map phi(x, y) in R^d;
unknown reward r*(x, y) (realizable: r* = <theta*, phi>); KL-regularization beta > 0. The
objective is J_beta(pi) = E_x[E_{y~pi} r*(x,y) - beta KL(pi(.|x) || pi_ref(.|x))] and its maximizer
is pi*_beta(y|x) ∝ pi_ref(y|x) exp(r*(x,y)/beta).

Known bounds an algorithm may use: ``B`` (||theta|| <= B over the class Theta),
``feature_norm_bound`` L (||phi(x,y)|| <= L) and ``R_max`` (|<theta, phi>| <= R_max, default B*L). They
are *declared* inputs of the problem, never computed from the unknown theta*.

The knowledge boundary. An algorithm never holds the Problem itself: :meth:`Problem.view` gives it a
:class:`ProblemView` with what a user has (prompts, the counted oracles behind ``base``, ``phi``,
``reward``/``preference``, token-level access, an enumerable response set, beta and the declared
bounds). The exact instance (``exact``: pi*, theta*, C_cov, C_cond, ...), the idealized exact strong
oracle (``strong``) and the instance's ``meta`` stay behind it: reaching for them raises
:class:`~spanex.core.errors.OracleKnowledgeError`, unless the run opted in with ``oracle_hints=True``,
in which case every use is recorded (``ProblemView.hints_used``, surfaced as ``Result.hints``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import OracleKnowledgeError, check_bound, check_log_weight
from .protocols import BaseModel, FeatureMap, PromptSource, TokenFeatureMap, TokenModel


@dataclass
class Problem:
    """An alignment problem. Backends build it; algorithms only read it through oracles.

    Parameters
    ----------
    prompts : PromptSource (rho).
    base : BaseModel (pi_ref, the weak sampling oracle).
    phi : FeatureMap of dimension d.
    beta : KL-regularization strength, in (0, MAX_MAGNITUDE], with R_max / beta <= MAX_LOG_WEIGHT (1e9; see
        :mod:`spanex.core.errors` for why float64 sets these ranges).
    reward : RewardOracle, or None when only preferences are available.
    preference : PreferenceOracle (Bradley-Terry), optional.
    B, feature_norm_bound, R_max : known bounds in (0, MAX_MAGNITUDE] = (0, 1e100] (R_max defaults to
        B * feature_norm_bound).
    exact : an exact evaluator (e.g. :class:`spanex.tabular.TabularInstance`) or None; evaluation only.
    token_model, token_phi : token-level access (MTSS), optional.
    strong : an idealized exact strong sampling oracle ``strong(x, theta, n, rng)`` sampling pi_theta,
        optional; an oracle hint (see the module docstring).
    response_set : an enumerable response set (``responses(x)``, e.g. a finite tabular Y), optional; what
        a user can list without knowing rewards (enumeration is charged as 'enum' calls).
    name : a label for reports.
    meta : instance parameters for reports (may hold hidden truths such as the needle's index).
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
    response_set: Any = None

    def __post_init__(self):
        # float64's ranges (spanex.core.errors): magnitudes up to MAX_MAGNITUDE, log-weights R_max/beta up to
        # MAX_LOG_WEIGHT; anything beyond would overflow or lose all precision later, so it is refused here
        self.beta = check_bound("beta", self.beta)
        self.B = check_bound("B", self.B)
        self.feature_norm_bound = check_bound("feature_norm_bound", self.feature_norm_bound)
        what = "R_max"
        if self.R_max is None:
            what = "R_max (default B * feature_norm_bound)"
            self.R_max = self.B * self.feature_norm_bound
        self.R_max = check_bound(what, self.R_max)
        check_log_weight(self.beta, self.R_max, what)
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

    def view(self, oracle_hints: bool = False) -> "ProblemView":
        """What an algorithm sees (see the module docstring)."""
        return ProblemView(self, oracle_hints)


#: attributes of a Problem an algorithm may read (what a user has)
USER_FIELDS = frozenset({"prompts", "base", "phi", "beta", "reward", "preference", "B", "feature_norm_bound",
                         "R_max", "token_model", "token_phi", "name", "response_set", "d", "feedback"})
#: exact quantities that exist for evaluation only (oracle hints)
HINT_FIELDS = frozenset({"exact", "strong", "meta"})


class ProblemView:
    """A Problem as an algorithm sees it: the user's quantities only (see the module docstring).

    ``hints_used`` lists the hint quantities read through this view (only possible with
    ``oracle_hints=True``), e.g. ``['exact.C_cov', 'strong']``.
    """

    __slots__ = ("_problem", "_allow", "_used")

    def __init__(self, problem: Problem, oracle_hints: bool = False):
        if isinstance(problem, ProblemView):
            problem = problem._problem
        object.__setattr__(self, "_problem", problem)
        object.__setattr__(self, "_allow", bool(oracle_hints))
        object.__setattr__(self, "_used", set())

    def __getattr__(self, name):
        if name in USER_FIELDS:
            return getattr(self._problem, name)
        if name in HINT_FIELDS:
            value = getattr(self._problem, name)
            if value is None:
                return None   # nothing to hide: the problem has no such quantity
            if not self._allow:
                raise OracleKnowledgeError(
                    f"problem.{name} is an exact quantity of the instance, for evaluation only; an algorithm "
                    f"sees beta, the declared bounds, prompts and the counted oracles. Pass oracle_hints=True to "
                    f"run(...) to use it as a labelled hint")
            return _Recorder(value, name, self._used)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name, value):
        raise AttributeError("a ProblemView is read-only")

    @property
    def oracle_hints(self) -> bool:
        return self._allow

    @property
    def hints_used(self) -> list[str]:
        return sorted(self._used)

    def with_feedback(self, feedback: str) -> "ProblemView":
        view = ProblemView(self._problem.with_feedback(feedback), self._allow)
        object.__setattr__(view, "_used", self._used)
        return view

    def __repr__(self) -> str:
        return f"ProblemView({self._problem.name!r}, oracle_hints={self._allow})"


class _Recorder:
    """Forwards to a hint object and records which of its parts were used."""

    __slots__ = ("_obj", "_name", "_used")

    def __init__(self, obj, name, used):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_used", used)

    def __getattr__(self, attr):
        self._used.add(f"{self._name}.{attr}")
        return getattr(self._obj, attr)

    def __getitem__(self, key):
        self._used.add(self._name)
        return self._obj[key]

    def __call__(self, *a, **k):
        self._used.add(self._name)
        return self._obj(*a, **k)

    def __bool__(self):
        return True
