"""spanex: computationally efficient exploration for aligning language models.

Implements the sampling-oracle framework of Foster, Mhammedi and Rohatgi (2025), "Is a Good
Foundation Necessary for Efficient RL? The Computational Role of the Base Model in Exploration":
exact instances, SpannerSampling, MTSS and proper/inference-time baselines, all with a Ledger that
counts T_data (reward queries) and T_comp (sampling-oracle calls).
"""

from .core import (Algorithm, Budget, BudgetExhausted, Ledger, LinearSoftmaxPolicy, Oracles, Policy, Problem,
                   ReferencePolicy, Result)
from .evaluation import Evaluation, coverage, evaluate
from .sampling import SoftmaxSampler
from .tabular import TabularInstance, tabular_problem

__version__ = "0.1.0"

_LAZY = {
    "SpannerSampling": ("spanex.algorithms.spanner_sampling", "SpannerSampling"),
    "instances": ("spanex.instances", None),
    "compare": ("spanex.comparison", "compare"),  # the function; the package is spanex.comparison
}


def __getattr__(name):  # lazy imports keep `import spanex` light and free of cycles
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        m = importlib.import_module(mod)
        return m if attr is None else getattr(m, attr)
    raise AttributeError(f"module 'spanex' has no attribute {name!r}")


__all__ = ["Algorithm", "Budget", "BudgetExhausted", "Ledger", "LinearSoftmaxPolicy", "Oracles", "Policy",
           "Problem", "ReferencePolicy", "Result", "Evaluation", "coverage", "evaluate", "SoftmaxSampler",
           "TabularInstance", "tabular_problem", "SpannerSampling", "instances", "compare", "__version__"]
