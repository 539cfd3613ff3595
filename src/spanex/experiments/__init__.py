"""Theory-check experiments: each theorem of the paper becomes a sweep of the quantity in its bound,
an analysis that fits the measured slope, and a verdict (see ``docs/experiments.md``).

Command line: ``spanex list``, ``spanex run EXPERIMENT [--quick]``, ``spanex report DIR``.
Python: ``run_experiment(name, out_dir, quick=True)`` then ``write_report(out_dir)``.
"""

from .base import BaseConfig, Experiment, RunOutput, RunSeeds, Verdict
from .registry import REGISTRY, get, names


def __getattr__(name):  # keep `import spanex.experiments` light (no pandas/matplotlib)
    if name == "run_experiment":
        from .runner import run_experiment

        return run_experiment
    if name == "write_report":
        from .report import write_report

        return write_report
    raise AttributeError(f"module 'spanex.experiments' has no attribute {name!r}")


__all__ = ["BaseConfig", "Experiment", "RunOutput", "RunSeeds", "Verdict", "REGISTRY", "get", "names",
           "run_experiment", "write_report"]
