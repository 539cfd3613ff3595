"""Experimental design: elliptical norms, the average-case spanner, G-optimal designs."""

from .elliptical import sherman_morrison, spanner_size_bound, sq_norms
from .spanner import SpannerResult, build_spanner, query_pair_feedback

__all__ = ["sq_norms", "sherman_morrison", "spanner_size_bound", "build_spanner", "SpannerResult",
           "query_pair_feedback"]
