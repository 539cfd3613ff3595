import numpy as np
import pytest

import spanex


@pytest.fixture
def small_problem():
    """One prompt, 30 responses, d=4 random unit features, ||theta*||=1, beta=0.5."""
    rng = np.random.default_rng(123)
    N, d = 30, 4
    F = rng.standard_normal((N, d))
    F /= np.linalg.norm(F, axis=1, keepdims=True)
    theta = rng.standard_normal(d)
    theta /= np.linalg.norm(theta)
    ref = rng.dirichlet(np.ones(N))
    return spanex.tabular_problem([1.0], [ref], [F], theta_star=theta, beta=0.5, B=float(np.linalg.norm(theta)))
