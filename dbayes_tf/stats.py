"""Uncertainty for the numbers in result tables.

Every rate in a report (attack success, detection rate, accuracy) is given with a 95% Wilson
score interval, and every median distortion (and mean paired difference of distortion) with a
percentile-bootstrap interval, so that a
difference between two cells can be judged against the noise of a finite number of images.

References:
    E. B. Wilson (1927). Probable inference, the law of succession, and statistical inference.
        Journal of the American Statistical Association 22(158), 209-212.
    B. Efron and R. J. Tibshirani (1993). An Introduction to the Bootstrap. Chapman & Hall,
        ch. 13 (the percentile interval).
    R. G. Newcombe (1998). Improved confidence intervals for the difference between binomial
        proportions based on paired data. Statistics in Medicine 17(22), 2635-2650 (method 10,
        "square-and-add" on Wilson intervals, used for paired attack runs).

Only numpy and the standard library are used: scipy is not a dependency of the package.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "bootstrap_mean_interval",
    "bootstrap_median_interval",
    "format_median",
    "format_rate",
    "normal_quantile",
    "paired_difference_interval",
    "wilson_interval",
]

# Coefficients of Acklam's rational approximation to the inverse standard normal CDF
# (relative error < 1.15e-9 before refinement).
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
      3.754408661907416e00)
_P_LOW = 0.02425

# Bootstrap index matrices are drawn in chunks of at most this many entries (~32 MB of int64),
# so a 10^6-value input does not need a resamples x n matrix in memory at once.
_CHUNK_ENTRIES = 1 << 22


def _check_confidence(confidence: float) -> None:
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")


def normal_quantile(p: float) -> float:
    """Inverse of the standard normal CDF, accurate to about 1e-9 (absolute) for 0 < p < 1."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be strictly between 0 and 1, got {p!r}")
    if p < _P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        x = ((((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5])
             / ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0))
    elif p <= 1.0 - _P_LOW:
        q = p - 0.5
        r = q * q
        x = ((((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
             / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0))
    else:
        q = math.sqrt(-2.0 * math.log1p(-p))
        x = -((((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5])
              / ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0))
    # One Halley step against the exact CDF takes the ~1e-9 relative error of the rational
    # approximation down to float precision. erfc rather than 1 + erf keeps the tails accurate.
    err = 0.5 * math.erfc(-x / math.sqrt(2.0)) - p
    u = err * math.sqrt(2.0 * math.pi) * math.exp(0.5 * x * x)
    return x - u / (1.0 + 0.5 * x * u)


def wilson_interval(successes: int, trials: int,
                    confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / trials``.

    Unlike the normal (Wald) interval it stays inside [0, 1] and does not collapse to a point
    at 0% or 100%, which is where attack success rates often sit. ``trials == 0`` gives
    ``(nan, nan)``: there is nothing to estimate.
    """
    _check_confidence(confidence)
    if int(successes) != successes or int(trials) != trials:
        raise ValueError(f"successes and trials must be integers, got {successes!r}, {trials!r}")
    successes, trials = int(successes), int(trials)
    if trials < 0:
        raise ValueError(f"trials must be >= 0, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return (math.nan, math.nan)
    z = normal_quantile(0.5 + confidence / 2.0)
    n = float(trials)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    # At p = 0 or 1 the bound is exactly 0 or 1 in exact arithmetic; pin it so rounding does
    # not print "-0.0" or a bound a hair above 100%.
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == trials else min(1.0, centre + half)
    return (lower, upper)


def paired_difference_interval(both: int, only_first: int, only_second: int, neither: int,
                               confidence: float = 0.95) -> tuple[float, float]:
    """Interval for p1 - p2, the difference of two success rates measured on the same trials
    (two attacks on the same attempts): Newcombe's method 10, which combines the Wilson
    intervals of p1 and p2 with the correlation of the paired outcomes.

    Pairing is what makes a difference between two runs on the same images detectable: the
    trials both attacks win or both lose carry no evidence about the difference, and two
    unpaired Wilson intervals would overlap long after the paired one excludes zero.
    ``(nan, nan)`` when there are no trials.
    """
    _check_confidence(confidence)
    counts = (both, only_first, only_second, neither)
    if any(int(c) != c or c < 0 for c in counts):
        raise ValueError(f"counts must be integers >= 0, got {counts}")
    a, b, c, d = (int(x) for x in counts)
    n = a + b + c + d
    if n == 0:
        return (math.nan, math.nan)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, confidence)
    l2, u2 = wilson_interval(a + c, n, confidence)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    # Newcombe's continuity correction of the correlation: a positive ad - bc shrinks by n/2
    cross = max(cross - n / 2.0, 0.0) if cross > 0 else cross
    phi = cross / math.sqrt(margins) if margins else 0.0
    below = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2,
                          0.0))
    above = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2,
                          0.0))
    difference = p1 - p2
    return (max(-1.0, difference - below), min(1.0, difference + above))


def bootstrap_median_interval(values: ArrayLike, confidence: float = 0.95,
                              resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median of ``values`` (see ``_bootstrap``)."""
    return _bootstrap(values, np.median, confidence, resamples, seed)


def bootstrap_mean_interval(values: ArrayLike, confidence: float = 0.95,
                            resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (see ``_bootstrap``): for paired
    differences of distortion, whose spread is far from normal when a few attempts dominate."""
    return _bootstrap(values, np.mean, confidence, resamples, seed)


def _bootstrap(values: ArrayLike, statistic, confidence: float, resamples: int,
               seed: int) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic`` (a numpy reduction taking ``axis``).

    The generator is ``np.random.default_rng(seed)``, so the same call always gives the same
    interval (a re-rendered report must not change its numbers). Empty input gives
    ``(nan, nan)``; a single value ``v`` gives ``(v, v)``. Non-finite values are an error rather
    than silently dropped: the caller knows whether NaN means "attack failed" or a bug.
    """
    _check_confidence(confidence)
    if isinstance(resamples, bool) or int(resamples) != resamples or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
    resamples = int(resamples)
    data = np.asarray(values, dtype=float).ravel()
    if data.size == 0:
        return (math.nan, math.nan)
    if not np.all(np.isfinite(data)):
        raise ValueError("values must all be finite (drop NaN/inf before calling)")
    if data.size == 1:
        v = float(data[0])
        return (v, v)
    n = data.size
    rng = np.random.default_rng(seed)
    estimates = np.empty(resamples, dtype=float)
    rows_per_chunk = max(1, _CHUNK_ENTRIES // n)
    for start in range(0, resamples, rows_per_chunk):
        stop = min(resamples, start + rows_per_chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        estimates[start:stop] = statistic(data[idx], axis=1)
    alpha = 1.0 - confidence
    lower, upper = np.quantile(estimates, [alpha / 2.0, 1.0 - alpha / 2.0])
    return (float(lower), float(upper))


# A verdict is decided when the 95% interval of its fooled fraction leaves out one half.
VERDICT_CONFIDENCE = 0.95


def undecided(fooled_rate, draws) -> np.ndarray:
    """Per verdict: does the 95% Wilson interval of the fraction of fooled draws still hold
    1/2? Then the majority is a coin toss that more draws could turn."""
    fooled_rate = np.atleast_1d(np.asarray(fooled_rate, np.float64))
    draws = np.broadcast_to(np.asarray(draws, np.int64), fooled_rate.shape)
    out = np.zeros(fooled_rate.shape, bool)
    for i, (rate, n) in enumerate(zip(fooled_rate, draws, strict=True)):
        low, high = wilson_interval(int(round(rate * n)), int(n), VERDICT_CONFIDENCE)
        out[i] = low <= 0.5 <= high
    return out


def format_rate(successes: int, trials: int, *, decimals: int = 1,
                show_n: bool = False) -> str:
    """``"45.0% [38.2, 51.9]"``: the rate (to ``decimals`` places, as the paper beside it
    prints it) and its 95% Wilson interval, all in percent; ``show_n`` adds ``" (n=...)"``."""
    if trials == 0:
        return "n/a"
    lower, upper = wilson_interval(int(successes), int(trials))
    text = f"{100.0 * successes / trials:.{decimals}f}% [{100.0 * lower:.1f}, {100.0 * upper:.1f}]"
    return f"{text} (n={int(trials)})" if show_n else text


def format_median(values: ArrayLike) -> str:
    """``"1.52 [1.41, 1.63]"``: the median and its 95% bootstrap interval, two decimals."""
    data = np.asarray(values, dtype=float).ravel()
    if data.size == 0:
        return "n/a"
    lower, upper = bootstrap_median_interval(data)
    return f"{float(np.median(data)):.2f} [{lower:.2f}, {upper:.2f}]"
