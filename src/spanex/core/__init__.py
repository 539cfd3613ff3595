"""Core framework: problems, oracle protocols, the ledger, policies and the algorithm base."""

from .algorithm import Algorithm, Result, RunState
from .errors import (BudgetExhausted, ExactLawUnavailable, NumericalError, OracleKnowledgeError, SamplerFailure,
                     SpanexError, as_generator)
from .ledger import DATA_KINDS, SAMPLE_KINDS, Budget, Ledger
from .oracles import Oracles
from .policy import LinearSoftmaxPolicy, Policy, ReferencePolicy
from .problem import Problem, ProblemView
from .protocols import (BaseModel, FeatureMap, LogProbModel, PreferenceOracle, PromptSource, RewardOracle,
                        TokenFeatureMap, TokenModel)

__all__ = [
    "Algorithm", "Result", "RunState", "BudgetExhausted", "SamplerFailure", "SpanexError", "as_generator",
    "ExactLawUnavailable", "NumericalError", "OracleKnowledgeError", "ProblemView",
    "Budget", "Ledger", "SAMPLE_KINDS", "DATA_KINDS", "Oracles", "Policy", "ReferencePolicy",
    "LinearSoftmaxPolicy", "Problem", "BaseModel", "FeatureMap", "LogProbModel", "PreferenceOracle",
    "PromptSource", "RewardOracle", "TokenFeatureMap", "TokenModel",
]
