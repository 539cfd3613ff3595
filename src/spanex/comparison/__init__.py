"""Peers in one harness: run several algorithms on the same problem, budget and seeds, and tabulate.

``spanex.compare(problem, algorithms, budget, seeds)`` (the function :func:`compare`, also
importable as ``from spanex import compare``) runs every algorithm once per seed, each with its own
Ledger under the same :class:`~spanex.core.Budget`, and returns a tidy :class:`Table` with one row
per algorithm x seed:

- ``T_data`` (reward + preference queries) and ``T_comp`` (sampling-oracle calls) of training, and
  T_comp by kind (``T_comp.weak``, ``T_comp.strong``, ``T_comp.token``, ``T_comp.logprob``,
  ``T_comp.enum``);
- ``cost_model``: how pi_theta draws were paid for ('exact' strong oracle, 'weak' rejection from
  pi_ref), for the algorithms that sample pi_theta; '-' for the others;
- ``subopt``: J_beta(pi*) - J_beta(pi_hat), exact when the problem has an exact instance and the
  output policy has an exact law (``eval='exact'``), a plug-in Monte Carlo estimate otherwise
  (``eval='mc'``, evaluation calls charged to the 'eval' label, never to the algorithm);
- ``inf_T_comp``, ``inf_T_data``: the cost of *one sample* of the output policy, measured by
  drawing ``n_inference`` samples (prompts x ~ rho) and reading the ledger's 'inference' label.
  Inference-time methods (Best-of-N, InferenceTimePessimism) spend their reward queries here;
- ``wall_time`` (seconds of training), ``status`` ('completed', 'budget_exhausted' or 'error').

Modules: :mod:`~spanex.comparison.harness` (the runs), :mod:`~spanex.comparison.table` (the table),
:mod:`~spanex.comparison.cli` (``spanex compare``).
"""

from .harness import DEFAULT_ALGORITHMS, RUN_ERRORS, compare, error_line, resolve_algorithms, run_one
from .table import DEFAULT_COLUMNS, Table, format_meta

__all__ = ["compare", "run_one", "Table", "resolve_algorithms", "format_meta", "error_line", "DEFAULT_ALGORITHMS",
           "DEFAULT_COLUMNS", "RUN_ERRORS"]
