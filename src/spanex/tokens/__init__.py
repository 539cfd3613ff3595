"""Exact autoregressive backend: token trees, soft Bellman values, C_cov and C_cond.

- :mod:`~spanex.tokens.tree`: :class:`TokenTree` (pi_ref token by token, phi_h, r*) and the
  encode/decode helpers between token strings and sequence indices.
- :mod:`~spanex.tokens.exact`: :class:`TokenTreeInstance` (enumeration, A^H <= 10^6; also a
  TabularInstance over sequences) and :class:`ProductTreeExact` (closed form for product trees).
- :mod:`~spanex.tokens.backend`: oracle adapters and :func:`tree_problem` (token-level and
  sequence-level views on one ledger).
- :mod:`~spanex.tokens.instances`: ``token_chain`` (the 2^H family), ``token_linear``
  (autoregressive-realizable random instance), ``coverage_gap_example``.
"""

from .backend import (TreeSequenceBase, TreeSequencePhi, TreeTokenModel, TreeTokenPhi, group_prefixes,
                      tree_problem)
from .exact import ProductTreeExact, TokenTreeInstance, accumulate_log_law
from .instances import coverage_gap_example, token_chain, token_linear
from .tree import MAX_ENUM_SEQUENCES, TokenTree, all_prefixes, decode, encode, sample_categorical

__all__ = ["TokenTree", "TokenTreeInstance", "ProductTreeExact", "tree_problem", "token_chain", "token_linear",
           "coverage_gap_example", "encode", "decode", "all_prefixes", "sample_categorical", "accumulate_log_law",
           "group_prefixes", "TreeTokenModel", "TreeTokenPhi", "TreeSequenceBase", "TreeSequencePhi",
           "MAX_ENUM_SEQUENCES"]
