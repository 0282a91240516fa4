"""Confidence intervals for result tables: the normal quantile, Wilson, the median bootstrap and
the formatted cells."""
import math

import numpy as np
import pytest

from dbayes_tf import stats

Z95 = 1.959963985


def _wilson_reference(k: int, n: int, z: float) -> tuple[float, float]:
    """Closed-form Wilson bounds written out independently of the module."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = (z / (1 + z * z / n)) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("confidence, z", [(0.95, 1.959963985), (0.99, 2.575829304),
                                           (0.90, 1.644853627)])
def test_normal_quantile_matches_known_values(confidence, z):
    assert stats.normal_quantile(0.5 + confidence / 2) == pytest.approx(z, abs=1e-9)
    assert stats.normal_quantile(0.5 - confidence / 2) == pytest.approx(-z, abs=1e-9)


@pytest.mark.parametrize("p", [1e-12, 1e-6, 0.001, 0.02425, 0.1, 0.5, 0.7, 0.97575, 0.999999])
def test_normal_quantile_inverts_the_cdf(p):
    x = stats.normal_quantile(p)
    assert 0.5 * math.erfc(-x / math.sqrt(2)) == pytest.approx(p, rel=1e-9)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_normal_quantile_rejects_p_outside_open_unit_interval(p):
    with pytest.raises(ValueError):
        stats.normal_quantile(p)


def test_wilson_textbook_example():
    lower, upper = stats.wilson_interval(81, 263)
    ref_lower, ref_upper = _wilson_reference(81, 263, Z95)
    assert lower == pytest.approx(ref_lower, abs=1e-8)
    assert upper == pytest.approx(ref_upper, abs=1e-8)
    assert lower == pytest.approx(0.2553, abs=5e-4)
    assert upper == pytest.approx(0.3662, abs=5e-4)


def test_wilson_zero_and_all_successes():
    lower, upper = stats.wilson_interval(0, 10)
    assert lower == 0.0
    assert upper == pytest.approx(_wilson_reference(0, 10, Z95)[1], abs=1e-8)
    assert upper == pytest.approx(0.2775, abs=5e-4)
    lower, upper = stats.wilson_interval(10, 10)
    assert upper == 1.0
    assert lower == pytest.approx(_wilson_reference(10, 10, Z95)[0], abs=1e-8)
    assert lower == pytest.approx(1 - 0.2775, abs=5e-4)


def test_wilson_other_confidence_and_width():
    lower, upper = stats.wilson_interval(30, 60, confidence=0.99)
    ref = _wilson_reference(30, 60, 2.575829304)
    assert (lower, upper) == pytest.approx(ref, abs=1e-8)
    narrow = stats.wilson_interval(30, 60, confidence=0.90)
    assert lower < narrow[0] < 0.5 < narrow[1] < upper


def test_wilson_no_trials_is_nan():
    lower, upper = stats.wilson_interval(0, 0)
    assert math.isnan(lower) and math.isnan(upper)


@pytest.mark.parametrize("k, n, conf", [(-1, 10, 0.95), (11, 10, 0.95), (1, -1, 0.95),
                                        (1, 10, 0.0), (1, 10, 1.0), (1, 10, 95),
                                        (1.5, 10, 0.95)])
def test_wilson_rejects_invalid_input(k, n, conf):
    with pytest.raises(ValueError):
        stats.wilson_interval(k, n, confidence=conf)


def test_bootstrap_is_deterministic_for_a_seed():
    values = np.random.default_rng(1).lognormal(size=200)
    a = stats.bootstrap_median_interval(values, seed=3)
    b = stats.bootstrap_median_interval(values, seed=3)
    c = stats.bootstrap_median_interval(values, seed=4)
    assert a == b
    assert a != c


def test_bootstrap_contains_sample_median():
    values = np.random.default_rng(2).normal(loc=5.0, size=301)
    lower, upper = stats.bootstrap_median_interval(values)
    assert lower < np.median(values) < upper


def test_bootstrap_narrows_as_n_grows():
    rng = np.random.default_rng(3)
    small = stats.bootstrap_median_interval(rng.normal(size=50), resamples=500)
    large = stats.bootstrap_median_interval(rng.normal(size=5000), resamples=500)
    # The width shrinks like 1/sqrt(n): about 10x here; 4x leaves room for sampling noise.
    assert (large[1] - large[0]) * 4 < small[1] - small[0]


def test_bootstrap_chunking_matches_one_block(monkeypatch):
    values = np.random.default_rng(4).exponential(size=37)
    whole = stats.bootstrap_median_interval(values, resamples=300, seed=9)
    # The generator fills row after row, so drawing in small chunks must give the same numbers.
    monkeypatch.setattr(stats, "_CHUNK_ENTRIES", 37 * 7)
    chunked = stats.bootstrap_median_interval(values, resamples=300, seed=9)
    assert chunked == pytest.approx(whole, abs=0)


def test_bootstrap_coverage_is_near_nominal():
    rng = np.random.default_rng(2024)
    true_median = math.log(2)  # median of Exp(1)
    reps = 200
    covered = 0
    for rep in range(reps):
        sample = rng.exponential(scale=1.0, size=101)
        lower, upper = stats.bootstrap_median_interval(sample, resamples=400, seed=rep)
        covered += lower <= true_median <= upper
    assert 0.88 <= covered / reps <= 0.99


def test_bootstrap_of_the_mean_covers_a_skewed_mean_and_is_reproducible():
    rng = np.random.default_rng(7)
    covered = 0
    for rep in range(200):
        sample = rng.exponential(scale=1.0, size=60)  # mean 1, skewed as L2 differences are
        lower, upper = stats.bootstrap_mean_interval(sample, resamples=400, seed=rep)
        assert lower <= sample.mean() <= upper
        covered += lower <= 1.0 <= upper
    assert 0.88 <= covered / 200 <= 0.99
    values = rng.normal(size=30)
    assert stats.bootstrap_mean_interval(values, seed=1) == \
        stats.bootstrap_mean_interval(values, seed=1)
    assert stats.bootstrap_mean_interval([0.25]) == (0.25, 0.25)
    with pytest.raises(ValueError):
        stats.bootstrap_mean_interval([1.0, float("inf")])


def test_bootstrap_edge_cases():
    lower, upper = stats.bootstrap_median_interval([])
    assert math.isnan(lower) and math.isnan(upper)
    assert stats.bootstrap_median_interval([2.5]) == (2.5, 2.5)
    assert stats.bootstrap_median_interval([3.0] * 20) == (3.0, 3.0)


@pytest.mark.parametrize("kwargs", [{"confidence": 0.0}, {"confidence": 1.0},
                                    {"resamples": 0}, {"resamples": 2.5}])
def test_bootstrap_rejects_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        stats.bootstrap_median_interval([1.0, 2.0, 3.0], **kwargs)


def test_bootstrap_rejects_non_finite_values():
    with pytest.raises(ValueError):
        stats.bootstrap_median_interval([1.0, float("nan"), 3.0])


def test_format_rate():
    lower, upper = _wilson_reference(81, 263, Z95)
    assert stats.format_rate(81, 263) == f"30.8% [{100 * lower:.1f}, {100 * upper:.1f}]"
    assert stats.format_rate(81, 263) == "30.8% [25.5, 36.6]"
    assert stats.format_rate(0, 10) == "0.0% [0.0, 27.8]"
    assert stats.format_rate(10, 10) == "100.0% [72.2, 100.0]"
    assert stats.format_rate(0, 0) == "n/a"


def test_format_median():
    values = np.random.default_rng(5).normal(loc=1.5, scale=0.3, size=400)
    text = stats.format_median(values)
    lower, upper = stats.bootstrap_median_interval(values)
    assert text == f"{np.median(values):.2f} [{lower:.2f}, {upper:.2f}]"
    assert stats.format_median([]) == "n/a"
    assert stats.format_median([1.234]) == "1.23 [1.23, 1.23]"


def test_paired_difference_matches_a_published_value():
    # 2 x 2 paired table [[59, 6], [16, 80]]: both / first only / second only / neither. The
    # R package contingencytables (Fagerland, Lydersen & Laake's book, ch. 8) prints Newcombe's
    # square-and-add interval -0.0621 (-0.1186 to -0.0046) for it.
    lower, upper = stats.paired_difference_interval(59, 6, 16, 80)
    assert (round(lower, 4), round(upper, 4)) == (-0.1186, -0.0046)


def test_paired_difference_is_antisymmetric_and_bounded():
    lower, upper = stats.paired_difference_interval(30, 12, 3, 27)
    swapped = stats.paired_difference_interval(30, 3, 12, 27)
    assert swapped == pytest.approx((-upper, -lower))
    assert lower < 9 / 72 < upper
    assert stats.paired_difference_interval(72, 0, 0, 0)[0] >= -1.0
    assert stats.paired_difference_interval(0, 72, 0, 0)[1] == 1.0
    assert all(math.isnan(v) for v in stats.paired_difference_interval(0, 0, 0, 0))
    with pytest.raises(ValueError):
        stats.paired_difference_interval(1, -1, 0, 0)


def test_paired_difference_covers_the_true_difference_95_percent_of_the_time():
    # Two correlated attacks on 72 attempts: the interval must hold the true difference in
    # about 95% of repeated experiments (Newcombe's method is slightly conservative).
    rng = np.random.default_rng(0)
    cells = np.array([0.55, 0.25, 0.05, 0.15])  # both, first only, second only, neither
    truth = cells[1] - cells[2]
    draws = rng.multinomial(72, cells, size=2000)
    covered = [low <= truth <= high
               for low, high in (stats.paired_difference_interval(*row) for row in draws)]
    assert 0.93 <= np.mean(covered) <= 0.99
    # ... and it is narrower than the unpaired difference of the two Wilson intervals would be
    low, high = stats.paired_difference_interval(40, 18, 4, 10)
    first, second = stats.wilson_interval(58, 72), stats.wilson_interval(44, 72)
    assert high - low < (first[1] - second[0]) - (first[0] - second[1])
