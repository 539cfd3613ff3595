"""preferences: the spanner-scaling sweeps with Bradley–Terry preference feedback.

SpannerSampling only uses rewards through differences r(x, y1) − r(x, y2) on relative features
(paper-notes §3.7), so with pairwise feedback b ~ Bernoulli(sigmoid(r*(y1) − r*(y2))) the least
squares step becomes the Bradley–Terry (logistic) MLE and Theorem 3.1's shape should survive:
T_comp ∝ C_cov (slope 1), T_data flat in C_cov (slope 0), the fast 1/eps rate (slope 1) and at most
d^2 growth in d. Each preference query counts once in T_data. The confidence radii pick up the
link-function curvature factor e^{O(R_max)}, which changes constants (more data per eps) but not the
slopes in C_cov and 1/eps; along the reward-scale sweep it can bend the T_data-to-eps slope.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .spanner_scaling import SpannerScaling, SpannerScalingConfig

_DESCRIPTION = __doc__.split("\n\n", 1)[1]


@dataclass(frozen=True)
class PreferencesConfig(SpannerScalingConfig):
    feedback: str = "preference"


class Preferences(SpannerScaling):
    name = "preferences"
    title = "Theorem 3.1 with Bradley–Terry preferences (logistic regression on relative features)"
    description = _DESCRIPTION
    Config = PreferencesConfig

    def quick_config(self):
        q = super().quick_config()
        return PreferencesConfig(**{f.name: getattr(q, f.name) for f in dataclasses.fields(q) if f.name != "feedback"})
