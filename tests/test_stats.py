"""Bootstrap CIs are reproducible and sensible; the paired non-inferiority test gets known cases right."""

import math

import numpy as np
import pytest

from sftasks.scorers.stats import bootstrap_ci, bootstrap_means, paired_noninferiority


def test_bootstrap_is_deterministic_in_its_seed():
    values = np.random.default_rng(1).random(57)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)
    np.testing.assert_array_equal(bootstrap_means(values, resamples=500, seed=7),
                                  bootstrap_means(list(values), resamples=500, seed=7))


def test_bootstrap_chunking_does_not_change_the_numbers(monkeypatch):
    import sftasks.scorers.stats as stats

    values = np.random.default_rng(2).random(40)
    whole = bootstrap_means(values, resamples=300, seed=5)
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 40 * 7)  # 7 resamples per chunk
    np.testing.assert_array_equal(whole, bootstrap_means(values, resamples=300, seed=5))


def test_bootstrap_ci_brackets_the_mean_and_matches_normal_theory():
    rng = np.random.default_rng(0)
    values = (rng.random(400) < 0.6).astype(float)
    low, high = bootstrap_ci(values, resamples=4000)
    mean = values.mean()
    assert low < mean < high
    half_width = 1.96 * math.sqrt(mean * (1 - mean) / values.size)
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)


def test_bootstrap_ci_edge_cases():
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))


def test_identical_scores_are_preserved():
    a = np.random.default_rng(3).integers(0, 2, 200).astype(float)
    r = paired_noninferiority(a, a.copy(), delta=0.05)
    assert r.verdict == "preserved" and r.diff == 0.0 and r.ci_low == 0.0 and r.p_value < 0.001


def test_total_collapse_is_degraded():
    r = paired_noninferiority(np.ones(50), np.zeros(50), delta=0.05)
    assert r.verdict == "degraded" and r.diff == -1.0 and r.p_value == 1.0


def _pairs(n, drop, seed):
    """Baseline right on ~70% of samples; the candidate loses exactly `drop * n` of those right answers."""
    rng = np.random.default_rng(seed)
    a = (rng.random(n) < 0.7).astype(float)
    b = a.copy()
    lost = rng.choice(np.flatnonzero(a == 1), size=int(round(drop * n)), replace=False)
    b[lost] = 0.0
    return a, b


def test_a_small_drop_well_inside_the_margin_is_preserved():
    a, b = _pairs(1000, drop=0.01, seed=4)  # true drop 1 point, margin 5 points
    r = paired_noninferiority(a, b, delta=0.05)
    assert r.diff == pytest.approx(-0.01)
    assert r.verdict == "preserved" and r.ci_low > -0.05 and r.p_value < 0.05


def test_a_drop_well_beyond_the_margin_is_degraded():
    a, b = _pairs(1000, drop=0.15, seed=5)
    r = paired_noninferiority(a, b, delta=0.05)
    assert r.verdict == "degraded" and r.ci_high < -0.05 and r.p_value > 0.95


def test_too_few_samples_are_inconclusive():
    a, b = _pairs(20, drop=0.05, seed=6)  # a drop equal to the margin on 20 samples decides nothing
    r = paired_noninferiority(a, b, delta=0.05)
    assert r.verdict == "inconclusive" and r.ci_low < -0.05 < r.ci_high


def test_pairing_is_what_makes_the_test_sharp():
    """With the pairing destroyed (b shuffled), the same means give a far wider interval."""
    a, b = _pairs(400, drop=0.02, seed=7)
    paired = paired_noninferiority(a, b)
    unpaired = paired_noninferiority(a, np.random.default_rng(0).permutation(b))
    assert paired.diff == pytest.approx(unpaired.diff)
    assert (paired.ci_high - paired.ci_low) < 0.5 * (unpaired.ci_high - unpaired.ci_low)


def test_the_test_is_one_sided_and_deterministic():
    a, b = _pairs(300, drop=0.0, seed=8)
    better = b.copy()
    better[np.flatnonzero(b == 0)[:30]] = 1.0  # the candidate is better: still "preserved", not flagged
    r = paired_noninferiority(a, better, seed=11)
    assert r.diff > 0 and r.verdict == "preserved"
    assert paired_noninferiority(a, better, seed=11) == r


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        paired_noninferiority([1.0, 0.0], [1.0])
    with pytest.raises(ValueError):
        paired_noninferiority([], [])
    with pytest.raises(ValueError):
        paired_noninferiority([1.0], [1.0], alpha=0.7)
