"""The two-sided tail of Student's t distribution, in plain Python: the p-value of a correlation.

A build scores a few dozen correlations; importing scipy.special for them cost 0.15-0.3 s of every
build (it pulls numpy's array-API shims and f2py). The tail is the regularized incomplete beta
function I_x(df/2, 1/2) at x = df / (df + t^2), evaluated with its continued fraction (Lentz's
method, Numerical Recipes 6.4) on the side where it converges, so a small p keeps its relative
precision. tests/test_build_fixed_cost.py holds it to scipy.special.stdtr within 1e-13 (relative; 1e-12
from 1000 degrees of freedom, where both lose digits in the exponent).
"""

from __future__ import annotations

import math
import sys

_EPS = 1e-16  # a step changing the fraction by less than this ends it
_TINY = 1e-300  # keeps Lentz's denominators off zero
_MAX_STEPS = 100_000  # the fraction needs O(sqrt(df)) steps: never reached for a scorecard's periods


def two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for T ~ Student's t with ``df`` >= 1 degrees of freedom (2 * scipy.special.stdtr(df, -|t|))."""
    t = abs(t)
    if math.isinf(t):
        return 0.0
    if t == 0:
        return 1.0
    a, b = df / 2.0, 0.5
    t2 = t * t
    x, y = df / (df + t2), t2 / (df + t2)  # y = 1 - x, without the cancellation
    # log of x^a y^b / B(a, b); log(x) = -log1p(t^2/df) keeps its precision when t is small
    front = math.exp(_log_gamma_half_ratio(a) - math.lgamma(b) - a * math.log1p(t2 / df) + b * math.log(y))
    if x >= (a + 1) / (a + b + 2):
        return 1.0 - front * _beta_fraction(b, a, y) / b
    p = front * _beta_fraction(a, b, x) / a
    return p if p >= sys.float_info.min else 0.0  # as scipy: no subnormal p-values


def _log_gamma_half_ratio(a: float) -> float:
    """log(Gamma(a + 1/2) / Gamma(a)), without the cancellation of two large lgamma values when a is large."""
    if a < 20:
        return math.lgamma(a + 0.5) - math.lgamma(a)
    # Stirling's series: the (z - 1/2) log z - z parts combine into a log1p; the corrections are small
    return a * math.log1p(0.5 / a) + 0.5 * math.log(a) - 0.5 + _stirling_correction(a + 0.5) - _stirling_correction(a)


def _stirling_correction(z: float) -> float:
    """lgamma(z) - ((z - 1/2) log z - z + log(2 pi) / 2) for z >= 20 (the terms up to z^-9; the next is < 1e-18)."""
    w = 1.0 / (z * z)
    return (1 / 12 - w * (1 / 360 - w * (1 / 1260 - w * (1 / 1680 - w / 1188)))) / z


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), converging fast for x < (a + 1) / (a + b + 2)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = _nonzero(1.0 - qab * x / qap)
    d = 1.0 / d
    h = d
    for m in range(1, _MAX_STEPS + 1):
        m2 = 2 * m
        step = m * (b - m) * x / ((qam + m2) * (a + m2))  # the even step
        d = 1.0 / _nonzero(1.0 + step * d)
        c = _nonzero(1.0 + step / c)
        h *= d * c
        step = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))  # the odd step
        d = 1.0 / _nonzero(1.0 + step * d)
        c = _nonzero(1.0 + step / c)
        delta = d * c
        h *= delta
        if abs(delta - 1.0) <= _EPS:
            break
    return h


def _nonzero(value: float) -> float:
    return value if abs(value) >= _TINY else _TINY
