"""Samplers that realize tilted laws through the weak sampling oracle."""

from .rejection import emitted_law
from .softmax_sampler import FALLBACKS, MODES, SamplerDiagnostics, SamplerState, SoftmaxSampler

__all__ = ["SoftmaxSampler", "SamplerDiagnostics", "SamplerState", "FALLBACKS", "MODES", "emitted_law"]
