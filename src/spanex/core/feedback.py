"""Reward and preference oracles built from a mean-reward function r*(x, ys).

Noise models (paper-notes §1.3 leaves the model open, so it is a parameter):

- ``"none"``: r = r*(x, y).
- ``"gaussian"``: r = r* + N(0, sigma^2)  (sub-Gaussian).
- ``"uniform"``: r = r* + U[-sigma, sigma]  (bounded noise).
- ``"bernoulli"``: r in {low, high} with mean r* (bounded rewards; needs low <= r* <= high).

Bradley-Terry preferences: b ~ Bernoulli(sigmoid((r*(x,y1) - r*(x,y2)) / temperature)), b = 1 means
y1 is preferred.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy.special import expit

from .errors import MAX_MAGNITUDE, check_choice, check_log_weight, check_real

NOISE_MODELS = ("none", "gaussian", "uniform", "bernoulli")


@dataclass
class NoisyReward:
    """Reward oracle r = r*(x, y) + noise; ``mean`` maps (x, ys) -> r*(x, ys)."""

    mean: Callable[[Any, Any], np.ndarray]
    noise: str = "gaussian"
    sigma: float = 0.1
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self):
        check_choice("noise", self.noise, NOISE_MODELS)
        self.sigma = check_real("sigma", self.sigma, low=0, high=MAX_MAGNITUDE)
        self.low = check_real("low", self.low, low=-MAX_MAGNITUDE, high=MAX_MAGNITUDE)
        self.high = check_real("high", self.high, low=-MAX_MAGNITUDE, high=MAX_MAGNITUDE)
        if self.noise == "bernoulli" and not self.low < self.high:
            raise ValueError(f"noise='bernoulli' needs low < high, got low={self.low}, high={self.high}")

    def check_range(self, r_min: float, r_max: float) -> None:
        """With noise='bernoulli', refuse mean rewards outside [low, high] (known when the instance is built)."""
        if self.noise == "bernoulli" and (r_min < self.low - 1e-12 or r_max > self.high + 1e-12):
            raise ValueError(f"noise='bernoulli' needs r* in [low, high] = [{self.low}, {self.high}]; the rewards "
                             f"range over [{r_min:.4g}, {r_max:.4g}] (set low and high, or use another noise)")

    def __call__(self, x, ys, rng):
        r = np.asarray(self.mean(x, ys), dtype=float)
        if self.noise == "none":
            return r.copy()
        if self.noise == "gaussian":
            return r + self.sigma * rng.standard_normal(r.shape)
        if self.noise == "uniform":
            return r + rng.uniform(-self.sigma, self.sigma, r.shape)
        p = (r - self.low) / (self.high - self.low)
        if np.any((p < -1e-12) | (p > 1 + 1e-12)):
            raise ValueError(f"noise='bernoulli' needs r* in [low, high] = [{self.low}, {self.high}]; "
                             f"got r* in [{r.min()}, {r.max()}]")
        return np.where(rng.random(r.shape) < np.clip(p, 0, 1), self.high, self.low)

    def check_log_weight(self, beta: float, r_bound: float) -> None:
        """Refuse observed rewards whose scale over beta exceeds MAX_LOG_WEIGHT: fits on them give log-weights
        <theta, phi>/beta of that size (see :mod:`spanex.core.errors`). ``r_bound`` bounds |r*|."""
        noise = {"none": 0.0, "bernoulli": max(abs(self.low), abs(self.high))}.get(self.noise, self.sigma)
        check_log_weight(beta, r_bound + noise, f"the observed rewards' scale max |r*| + {self.noise!r} noise "
                                                f"(sigma = {self.sigma:.4g})")

    @property
    def sub_gaussian_scale(self) -> float:
        """A sub-Gaussian parameter of the noise (used for confidence radii)."""
        if self.noise == "bernoulli":
            return (self.high - self.low) / 2
        return self.sigma


@dataclass
class BradleyTerry:
    """Preference oracle: P(y1 > y2) = sigmoid((r*(x,y1) - r*(x,y2)) / temperature)."""

    mean: Callable[[Any, Any], np.ndarray]
    temperature: float = 1.0

    def __post_init__(self):
        self.temperature = check_real("temperature (bt_temperature)", self.temperature, low=0, high=MAX_MAGNITUDE, low_open=True)

    def prob(self, x, y1s, y2s) -> np.ndarray:
        diff = np.asarray(self.mean(x, y1s), float) - np.asarray(self.mean(x, y2s), float)
        return expit(diff / self.temperature)

    def __call__(self, x, y1s, y2s, rng):
        p = self.prob(x, y1s, y2s)
        return (rng.random(p.shape) < p).astype(float)
