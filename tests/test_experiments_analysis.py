"""Slope fitting (censoring, fixed effects) and the verdict rule on synthetic data with known slopes."""

import numpy as np
import pytest

from spanex.experiments.analysis import (bootstrap_mean, decide, decide_why, fit_slope, local_slopes, slope_diagnosis,
                                         slope_verdict)


def _synthetic(slope, noise, n_seeds=8, seed=0):
    rng = np.random.default_rng(seed)
    xs = np.geomspace(10, 1000, 6)
    x = np.tile(xs, n_seeds)
    reps = np.repeat(np.arange(n_seeds), xs.size)
    y = 3.0 * x ** slope * np.exp(noise * rng.standard_normal(x.size))
    return x, y, reps


def test_exact_power_law_recovers_slope_and_intercept():
    x, y, reps = _synthetic(1.5, 0.0)
    f = fit_slope(x, y, reps)
    assert f.slope == pytest.approx(1.5, abs=1e-12)
    assert np.exp(f.intercept) == pytest.approx(3.0, rel=1e-10)
    assert f.lo == pytest.approx(1.5, abs=1e-9) and f.hi == pytest.approx(1.5, abs=1e-9)


@pytest.mark.parametrize("slope", [-1.0, 0.0, 0.7, 2.0])
def test_noisy_slope_interval_covers_truth(slope):
    # log-normal noise sd 0.3 on 48 runs over 2 decades: the OLS slope has sd
    # 0.3 / sqrt(sum (log x - mean)^2) = 0.3 / sqrt(8 * 9.8) ≈ 0.034, so a 95% interval is ≈ ±0.07.
    x, y, reps = _synthetic(slope, 0.3, seed=1)
    f = fit_slope(x, y, reps, seed=2)
    assert f.lo <= slope <= f.hi
    assert f.hi - f.lo < 0.25
    assert abs(f.slope - slope) < 0.12          # > 3 sd


def test_interval_width_shrinks_with_more_seeds():
    # the bootstrap sd scales as 1/sqrt(n_seeds): 32 seeds give about half the width of 8
    w = []
    for n in (8, 32):
        x, y, reps = _synthetic(1.0, 0.3, n_seeds=n, seed=3)
        f = fit_slope(x, y, reps, seed=4)
        w.append(f.hi - f.lo)
    assert w[1] < 0.75 * w[0]


def test_replicate_bootstrap_keeps_within_seed_dependence():
    # a per-seed random offset in the slope (shared by all points of a seed) is real uncertainty:
    # resampling seeds must see it, resampling single runs would not.
    rng = np.random.default_rng(5)
    xs = np.geomspace(1, 100, 5)
    n_seeds = 10
    seed_slopes = 1.0 + 0.3 * rng.standard_normal(n_seeds)
    x = np.tile(xs, n_seeds)
    reps = np.repeat(np.arange(n_seeds), xs.size)
    y = x ** np.repeat(seed_slopes, xs.size)
    f = fit_slope(x, y, reps, seed=6)
    # sd of the mean of 10 slopes with sd 0.3 is 0.095: the interval must be at least ~2 * 1.5 * 0.06 wide
    assert f.hi - f.lo > 0.15
    assert f.lo <= seed_slopes.mean() <= f.hi


def test_single_replicate_uses_run_bootstrap():
    x, y, _ = _synthetic(0.5, 0.2, n_seeds=1, seed=7)
    f = fit_slope(x, y)
    assert f.n_replicates == 1 and f.lo < f.hi


def test_nonpositive_values_are_dropped_and_too_few_x_rejected():
    f = fit_slope([1, 10, 100, 5], [1, 10, 100, 0])
    assert f.n_runs == 3 and f.slope == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two distinct positive x"):
        fit_slope([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="equal length"):
        fit_slope([1, 2], [1, 2, 3])


def test_decide_rule():
    assert decide(0.9, 1.1, 1.0, 0.2) == "holds"
    assert decide(0.7, 1.1, 1.0, 0.2) == "inconclusive"
    assert decide(1.3, 1.5, 1.0, 0.2) == "does not hold"
    assert decide(-0.5, -0.3, 1.0, 0.2) == "does not hold"
    assert decide(float("nan"), 1.0, 1.0, 0.2) == "inconclusive"
    assert decide(0.95, 1.0, 0.9, 0.0, "at least") == "holds"
    assert decide(0.5, 0.95, 0.9, 0.0, "at least") == "inconclusive"
    assert decide(0.5, 0.8, 0.9, 0.0, "at least") == "does not hold"
    assert decide(1.0, 1.9, 2.0, 0.0, "at most") == "holds"
    assert decide(2.1, 2.5, 2.0, 0.0, "at most") == "does not hold"
    with pytest.raises(ValueError, match="side"):
        decide(0, 1, 0, 0, "sideways")


def test_verdict_on_wrong_prediction_does_not_hold():
    x, y, reps = _synthetic(2.0, 0.1, seed=8)
    f = fit_slope(x, y, reps)
    ok = slope_verdict("e", "c", f, 2.0, 0.2, if_fails="why")
    bad = slope_verdict("e", "c", f, 1.0, 0.2, if_fails="why")
    assert ok.verdict == "holds" and ok.failure == ""            # the paragraph is kept only for a failure
    assert bad.verdict == "does not hold" and bad.failure == "why"
    assert "lies entirely above [0.8, 1.2]" in bad.rule and "lies inside [1.8, 2.2]" in ok.rule
    texts = {"above": "too steep", "below": "too flat"}             # the paragraph follows the direction
    assert slope_verdict("e", "c", f, 1.0, 0.2, if_fails=texts).failure == "too steep"
    assert slope_verdict("e", "c", f, 3.0, 0.2, if_fails=texts).failure == "too flat"


def test_bootstrap_mean_of_indicator():
    v = np.r_[np.ones(18), np.zeros(2)]
    est, lo, hi = bootstrap_mean(v, np.arange(20))
    assert est == pytest.approx(0.9)
    # binomial sd sqrt(0.9 * 0.1 / 20) = 0.067: a 95% interval spans roughly ±0.13
    assert 0.7 < lo < 0.9 < hi <= 1.0


def test_interval_coverage_is_nominal_with_few_seeds():
    # 200 synthetic sweeps with 3 seeds each; a calibrated 95% interval misses the true slope in
    # 5% of them (binomial sd sqrt(.05 * .95 / 200) = 0.015). An uncorrected percentile bootstrap
    # misses ~12-15% with this few seeds; the bound 0.10 is 3 sd above the nominal rate.
    misses = 0
    for s in range(200):
        x, y, reps = _synthetic(1.0, 0.3, n_seeds=3, seed=100 + s)
        f = fit_slope(x, y, reps, seed=s, n_boot=300)
        misses += not (f.lo <= 1.0 <= f.hi)
    assert misses / 200 <= 0.10


def test_decide_why_says_which_edge():
    assert decide_why(0.8, 1.1, 1.0, 0.3) == ("holds", "95% CI [0.8, 1.1] lies inside [0.7, 1.3]")
    assert decide_why(0.5, 1.1, 1.0, 0.3)[1] == "95% CI [0.5, 1.1] straddles the lower edge 0.7 of [0.7, 1.3]"
    assert decide_why(0.9, 1.5, 1.0, 0.3)[1] == "95% CI [0.9, 1.5] straddles the upper edge 1.3 of [0.7, 1.3]"
    assert decide_why(0.5, 1.5, 1.0, 0.3)[1].endswith("is wider than [0.7, 1.3] (more seeds needed)")
    assert decide_why(-1, 0.2, 1.0, 0.3) == ("does not hold", "95% CI [-1, 0.2] lies entirely below [0.7, 1.3]")
    assert decide_why(0.2, 0.3, 0.125, 0.0, "at most") == ("does not hold", "95% CI [0.2, 0.3] lies entirely above 0.125")
    assert decide_why(0.0, 0.3, 0.125, 0.0, "at most")[0] == "inconclusive"
    assert decide_why(float("nan"), 1, 1, 0)[0] == "inconclusive"


def _censored_sweep(slope, n_seeds, seed, cens_quantile=0.7, seed_sd=0.5, noise=0.4):
    """log y = log 3 + slope log x + seed offset + noise, right-censored above a cap (a budget).

    The cap is the cens_quantile of all log y, so ~30% of the runs (mostly the large-x ones when
    slope > 0) only give the lower bound y >= cap, like a ladder that ran out of budget.
    """
    rng = np.random.default_rng(seed)
    xs = np.geomspace(10, 1000, 6)
    x = np.tile(xs, n_seeds)
    reps = np.repeat(np.arange(n_seeds), xs.size)
    ly = np.log(3.0) + slope * np.log(x) + np.repeat(seed_sd * rng.standard_normal(n_seeds), xs.size) \
        + noise * rng.standard_normal(x.size)
    cap = np.quantile(ly, cens_quantile)
    return x, np.exp(np.minimum(ly, cap)), reps, ly > cap


@pytest.mark.parametrize("slope", [0.0, 1.0, 2.0])
def test_censored_fit_recovers_the_slope_where_dropping_or_clipping_is_biased(slope):
    # 20 seeds x 6 points, ~30% censored. The censored-normal (Tobit) MLE is consistent; dropping
    # censored runs keeps only the low draws at large x, and taking the bound as the value flattens
    # the top (biased down). Noise sd 0.4 on 120 runs over 2 decades gives the slope an sd of
    # 0.4 / sqrt(120 * var(log x) = 120 * 2.9) ≈ 0.02, plus the seed offsets' share (the interval
    # says ~0.04): 0.12 is ~3 sd.
    x, y, reps, cens = _censored_sweep(slope, 20, seed=11)
    f = fit_slope(x, y, reps, censored=cens)
    assert f.n_censored == int(cens.sum()) > 20
    assert abs(f.slope - slope) < 0.12 and f.lo <= slope <= f.hi
    if slope > 0:
        clipped = fit_slope(x, y, reps).slope                    # the bound taken as the value
        assert clipped < slope - 0.12                            # the bias the Tobit fit removes


def test_censored_interval_coverage():
    # 40 synthetic sweeps of 8 seeds with ~30% censoring: a calibrated 95% interval misses the true
    # slope in ~5% of them (binomial sd sqrt(.05 * .95 / 40) = 0.034); 0.15 is 3 sd above nominal.
    misses = 0
    for s in range(40):
        x, y, reps, cens = _censored_sweep(1.0, 8, seed=200 + s)
        f = fit_slope(x, y, reps, censored=cens, n_boot=120, seed=s)
        misses += not (f.lo <= 1.0 <= f.hi)
    assert misses / 40 <= 0.15


def test_censoring_that_leaves_one_x_is_not_a_slope():
    x = np.array([1, 1, 10, 10, 100, 100.0])
    y = np.array([1, 2, 5, 5, 9, 9.0])
    with pytest.raises(ValueError, match="uncensored runs at two distinct x"):
        fit_slope(x, y, censored=[False, False, True, True, True, True])


def test_fixed_effects_remove_between_seed_confounding():
    # Each seed sees its own x range (an eps ladder cut at its own floor), and harder seeds (larger
    # intercept) see smaller x: pooled OLS mixes that into the slope, the within-seed fit does not.
    rng = np.random.default_rng(3)
    x, y, reps = [], [], []
    for r in range(20):
        hard = rng.uniform(0, 2)
        xs = np.geomspace(10, 100, 4) * np.exp(-hard)            # hard seeds: smaller x
        x += list(xs)
        y += list(np.exp(hard * 2.0 + 1.0 * np.log(xs) + 0.05 * rng.standard_normal(xs.size)))
        reps += [r] * xs.size
    x, y, reps = map(np.asarray, (x, y, reps))
    pooled = fit_slope(x, y, reps)
    within = fit_slope(x, y, reps, fixed_effects=True)
    assert abs(within.slope - 1.0) < 0.05 and within.lo <= 1.0 <= within.hi
    assert pooled.slope < 0.5                                    # -1 per unit of hard: strongly biased


def test_local_slopes_and_diagnosis_tell_curvature_from_offset():
    x = np.tile(np.geomspace(1, 1e4, 8), 3)
    reps = np.repeat(np.arange(3), 8)
    bent = x + 100.0              # a constant offset: slope log(1.5)/log(52) ≈ 0.1 below x ≈ 52, ≈ 0.8 above
    a1, a2 = local_slopes(x, bent, reps)
    assert a1 < 0.2 and a2 > 0.75
    assert "lower-order terms" in slope_diagnosis(x, bent, 1.0, 0.25, reps)
    steep = x ** 2.0
    assert "same side over the whole range" in slope_diagnosis(x, steep, 1.0, 0.25, reps)
