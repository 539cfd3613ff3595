"""Samplers that realize tilted laws through the weak sampling oracle."""

from .softmax_sampler import FALLBACKS, SamplerDiagnostics, SoftmaxSampler, rejection_sample

__all__ = ["SoftmaxSampler", "SamplerDiagnostics", "rejection_sample", "FALLBACKS"]
