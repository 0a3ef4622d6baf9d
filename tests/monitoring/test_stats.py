"""Each drift statistic on data with a known answer (reference values from standard tables)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vertex_edge.monitoring.stats import (
    binom_sf,
    chi2_contingency,
    chi2_sf,
    kolmogorov_sf,
    ks_2samp,
    total_variation,
    two_proportion_less,
)


@pytest.mark.parametrize(
    ("x", "df", "expected"),
    [(3.841458820694124, 1, 0.05), (18.307038053275146, 10, 0.05), (6.634896601021214, 1, 0.01), (0.5, 3, 0.9188914),
     (2.0, 2, math.exp(-1.0)), (0.0, 4, 1.0)],
)  # fmt: skip
def test_chi_square_survival_function(x: float, df: int, expected: float) -> None:
    assert chi2_sf(x, df) == pytest.approx(expected, rel=1e-6)


def test_kolmogorov_distribution() -> None:
    assert kolmogorov_sf(1.3580986393225507) == pytest.approx(0.05, rel=1e-6)  # the 5 % critical value
    assert kolmogorov_sf(1.6276236115189) == pytest.approx(0.01, rel=1e-4)
    assert kolmogorov_sf(0.1) == 1.0


def test_ks_distance_by_hand() -> None:
    # F_a jumps at 1, 2; F_b at 3, 4: the largest gap is 1 (after 2, before 3)
    assert ks_2samp(np.array([1.0, 2.0]), np.array([3.0, 4.0])).statistic == 1.0
    assert ks_2samp(np.array([1.0, 2.0, 3.0, 4.0]), np.array([3.0, 4.0])).statistic == 0.5
    # ties: identical samples have distance 0 and p = 1
    same = np.array([0.0, 0.0, 1.0, 1.0, 1.0])
    result = ks_2samp(same, same)
    assert result.statistic == 0.0 and result.p_value == 1.0


def test_ks_on_normal_samples() -> None:
    rng = np.random.default_rng(0)
    p_values = [ks_2samp(rng.normal(size=500), rng.normal(size=3000)).p_value for _ in range(400)]
    assert 0.025 <= np.mean(np.array(p_values) < 0.05) <= 0.075  # 5 % false alarms at the 5 % level
    reference = rng.normal(size=3000)
    shifted = ks_2samp(rng.normal(0.5, 1.0, size=500), reference)
    assert shifted.p_value < 1e-10 and 0.15 < shifted.statistic < 0.25  # D is about Phi(0.25) - Phi(-0.25) = 0.197


def test_chi_square_of_two_histograms() -> None:
    # the 2x2 table [[50, 10], [10, 50]]: chi2 = 120 * (50*50 - 10*10)^2 / (60^4) = 53.33
    result = chi2_contingency(np.array([50, 10]), np.array([10, 50]))
    assert result.statistic == pytest.approx(53.333333, rel=1e-6)
    assert result.p_value == pytest.approx(chi2_sf(53.333333, 1), rel=1e-5)
    assert chi2_contingency(np.array([10, 20, 0]), np.array([20, 40, 0])).p_value == pytest.approx(1.0)


def test_exact_binomial_tail() -> None:
    assert binom_sf(5, 10, 0.5) == pytest.approx(638 / 1024)
    assert binom_sf(10, 10, 0.5) == pytest.approx(1 / 1024)
    assert binom_sf(0, 10, 0.3) == 1.0 and binom_sf(11, 10, 0.3) == 0.0
    assert binom_sf(1, 500, 0.02) == pytest.approx(1 - 0.98**500)


def test_two_proportion_test() -> None:
    same = two_proportion_less(90, 100, 900, 1000)
    assert same.statistic == 0.0 and same.p_value == pytest.approx(0.5)
    lower = two_proportion_less(70, 100, 900, 1000)
    # z = -0.2 / sqrt(p(1-p)(1/100 + 1/1000)), p = 970/1100
    z = -0.2 / math.sqrt((970 / 1100) * (130 / 1100) * (1 / 100 + 1 / 1000))
    assert lower.p_value == pytest.approx(0.5 * math.erfc(-z / math.sqrt(2)))


def test_total_variation() -> None:
    assert total_variation(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == 0.5
