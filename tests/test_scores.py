"""The shared truncated score, the exp guard and prompt grouping (spanex.sampling.scores)."""

import math
import sys

import numpy as np
import pytest

from spanex.sampling.scores import (EXP_GUARD, PromptIndex, group_prompts, outside_score, prompt_counts, prompt_key,
                                    truncated_score, truncated_score_table)


def _spd_inverse(rng, d):
    B = rng.standard_normal((d, d))
    return np.linalg.inv(B @ B.T + 0.5 * np.eye(d))


def _brute(F, anchor, theta, Sinv, nu, truncation):
    """The definition, one response at a time."""
    out = []
    for y in range(F.shape[0]):
        v = F[y] - anchor
        covered = math.sqrt(v @ Sinv @ v) <= nu
        out.append(theta @ v if covered else (0.0 if truncation == "reward" else -math.inf))
    return np.array(out)


@pytest.mark.parametrize("truncation", ["reward", "policy"])
def test_truncated_score_matches_the_definition(truncation):
    rng = np.random.default_rng(0)
    d, n = 5, 200
    F, anchor, theta = rng.standard_normal((n, d)), rng.standard_normal(d), rng.standard_normal(d)
    Sinv = _spd_inverse(rng, d)
    # nu = the median norm (n even: the mean of the two middle norms, so no row sits on the boundary)
    nu = float(np.median(np.sqrt(np.einsum("ij,jk,ik->i", F - anchor, Sinv, F - anchor))))
    f = truncated_score(F, anchor, theta, Sinv, nu, truncation)
    ref = _brute(F, anchor, theta, Sinv, nu, truncation)
    assert np.array_equal(np.isfinite(f), np.isfinite(ref))
    fin = np.isfinite(ref)
    assert np.allclose(f[fin], ref[fin], rtol=1e-12, atol=1e-12)
    assert np.sum(f == outside_score(truncation)) == n // 2     # half the rows are uncovered


def test_truncated_score_boundary_is_covered_and_rows_broadcast():
    # ||v|| == nu exactly counts as covered (the indicator is ||.|| <= nu)
    F = np.array([[0.5, 0.0], [0.0, 0.75]])
    f = truncated_score(F, np.zeros(2), np.array([2.0, 1.0]), np.eye(2), 0.5, "policy")
    assert f[0] == 1.0 and f[1] == -np.inf
    # per-row anchors and thetas, and a leading batch axis, agree with the row-by-row evaluation
    rng = np.random.default_rng(1)
    P, A, d = 4, 6, 3
    F = rng.standard_normal((P, A, d))
    Sinv, theta = _spd_inverse(rng, d), rng.standard_normal(d)
    for b in range(A):
        f = truncated_score(F, F[:, b:b + 1, :], theta, Sinv, 1.0, "reward")
        assert f.shape == (P, A)
        for p in range(P):
            assert np.allclose(f[p], _brute(F[p], F[p, b], theta, Sinv, 1.0, "reward"), rtol=1e-12, atol=1e-12)
    G, anchors, thetas = rng.standard_normal((8, d)), rng.standard_normal((8, d)), rng.standard_normal((8, d))
    f = truncated_score(G, anchors, thetas, Sinv, 1.0, "reward")
    assert np.allclose(f, [_brute(G[i:i + 1], anchors[i], thetas[i], Sinv, 1.0, "reward")[0] for i in range(8)],
                       rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("truncation", ["reward", "policy"])
def test_score_table_agrees_with_rowwise_scores(truncation):
    rng = np.random.default_rng(2)
    N, d, k = 60, 4, 3
    F, thetas, Sinv = rng.standard_normal((N, d)), rng.standard_normal((k, d)), _spd_inverse(rng, d)
    anchors = np.array([0, 7, 7, 59])
    T = truncated_score_table(F, anchors, thetas, Sinv, 1.5, truncation)
    assert T.shape == (k, anchors.size, N)
    for j in range(k):
        for m, a in enumerate(anchors):
            row = truncated_score(F, F[a], thetas[j], Sinv, 1.5, truncation)
            # the mask agrees (no pair sits within round-off of the boundary here) and the scores to 1e-12
            assert np.array_equal(np.isfinite(T[j, m]), np.isfinite(row))
            assert np.array_equal(T[j, m] == outside_score(truncation), row == outside_score(truncation))
            assert np.allclose(T[j, m], row, rtol=1e-12, atol=1e-12)
            assert T[j, m, a] == 0.0                       # the anchor itself: covered, score 0


def test_outside_score_and_exp_guard():
    assert outside_score("reward") == 0.0 and outside_score("policy") == -np.inf
    with pytest.raises(ValueError, match="truncation"):
        outside_score("hard")
    assert math.isfinite(math.exp(EXP_GUARD)) and EXP_GUARD < math.log(sys.float_info.max)


def test_prompt_keys_and_grouping():
    assert prompt_key(3) == 3 and prompt_key("a b") == "a b"
    assert prompt_key([1, 2]) == repr([1, 2])                # unhashable prompts are keyed by their repr
    xs = ["b", "a", "b", "c", "a", "b"]
    prompts, inverse = group_prompts(xs)
    assert prompts == ["b", "a", "c"] and inverse.tolist() == [0, 1, 0, 2, 1, 0]
    assert prompt_counts(xs) == [("b", 3), ("a", 2), ("c", 1)]
    arrays = [np.array([1, 2]), np.array([3]), np.array([1, 2])]
    idx = PromptIndex()
    assert [idx.index(x) for x in arrays] == [0, 1, 0] and len(idx) == 2 and idx.prompts[1] is arrays[1]
    assert prompt_counts(np.array([5, 5, 2])) == [(5, 2), (2, 1)]
