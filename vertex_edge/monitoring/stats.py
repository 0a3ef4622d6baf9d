"""The drift statistics, in numpy and the standard library (no SciPy in this project).

* :func:`ks_2samp` - two-sample Kolmogorov-Smirnov distance and its asymptotic p-value (ties
  handled: both empirical CDFs are evaluated on the pooled values, right-continuous);
* :func:`chi2_contingency` - chi-square test of two histograms (a 2 x k table), for the
  predicted-class distribution;
* :func:`binom_sf` - one-sided exact binomial tail P(X >= k), for the OOD rate;
* :func:`two_proportion_less` - one-sided two-proportion z-test, for accuracy on feedback labels;
* :func:`chi2_sf` - the chi-square survival function (regularised upper incomplete gamma).

Each is checked against known values in ``tests/monitoring/test_stats.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution."""
    if lam < 0.2:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2.0 * (-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
    return min(1.0, max(0.0, total))


def ks_2samp(a: np.ndarray, b: np.ndarray) -> TestResult:
    """Two-sample KS: D = sup |F_a - F_b| and its asymptotic p-value (Stephens' small-sample factor)."""
    a = np.sort(np.asarray(a, dtype=np.float64)[~np.isnan(a)])
    b = np.sort(np.asarray(b, dtype=np.float64)[~np.isnan(b)])
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return TestResult(float("nan"), 1.0)
    pooled = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, pooled, side="right") / n
    cdf_b = np.searchsorted(b, pooled, side="right") / m
    d = float(np.max(np.abs(cdf_a - cdf_b)))
    en = math.sqrt(n * m / (n + m))
    return TestResult(d, kolmogorov_sf((en + 0.12 + 0.11 / en) * d))


def _gamma_series(a: float, x: float) -> float:
    """Regularised lower incomplete gamma P(a, x) by its series (x < a + 1)."""
    term = total = 1.0 / a
    ap = a
    for _ in range(10_000):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * 1e-15:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_fraction(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) by its continued fraction (x >= a + 1)."""
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for a chi-square variable with ``df`` degrees of freedom."""
    if df <= 0:
        return float("nan")
    if x <= 0:
        return 1.0
    a, half = df / 2.0, x / 2.0
    if half < a + 1.0:
        return max(0.0, 1.0 - _gamma_series(a, half))
    return min(1.0, _gamma_fraction(a, half))


def chi2_contingency(counts_a: np.ndarray, counts_b: np.ndarray) -> TestResult:
    """Chi-square test that two histograms over the same bins come from one distribution
    (bins empty in both are left out; df = bins used - 1)."""
    table = np.vstack([np.asarray(counts_a, np.float64), np.asarray(counts_b, np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return TestResult(0.0, 1.0)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    return TestResult(stat, chi2_sf(stat, table.shape[1] - 1))


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact (summed in log space)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    j = np.arange(k, n + 1, dtype=np.float64)
    lgam = np.vectorize(math.lgamma)
    logs = math.lgamma(n + 1) - lgam(j + 1) - lgam(n - j + 1) + j * math.log(p) + (n - j) * math.log1p(-p)
    top = float(logs.max())
    return float(min(1.0, math.exp(top) * np.exp(logs - top).sum()))


def two_proportion_less(hits_a: int, n_a: int, hits_b: int, n_b: int) -> TestResult:
    """One-sided z-test that proportion a is lower than proportion b; statistic = p_a - p_b."""
    if n_a == 0 or n_b == 0:
        return TestResult(float("nan"), 1.0)
    pa, pb = hits_a / n_a, hits_b / n_b
    pooled = (hits_a + hits_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return TestResult(pa - pb, 1.0 if pa >= pb else 0.0)
    z = (pa - pb) / se
    return TestResult(pa - pb, 0.5 * math.erfc(-z / math.sqrt(2.0)))


def total_variation(share_a: np.ndarray, share_b: np.ndarray) -> float:
    """Half the L1 distance between two distributions (0..1)."""
    return float(0.5 * np.abs(np.asarray(share_a) - np.asarray(share_b)).sum())
