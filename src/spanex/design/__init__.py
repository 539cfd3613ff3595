"""Experimental design: elliptical norms, pair feedback, the average-case spanner, G-optimal designs."""

from .elliptical import sherman_morrison, spanner_size_bound, sq_norms
from .feedback import FEEDBACKS, pair_feedback, resolve_feedback
from .spanner import InformativePair, SpannerResult, build_spanner, find_informative_pair

__all__ = ["sq_norms", "sherman_morrison", "spanner_size_bound", "build_spanner", "SpannerResult",
           "find_informative_pair", "InformativePair", "pair_feedback", "resolve_feedback", "FEEDBACKS"]
