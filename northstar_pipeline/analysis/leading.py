"""Does the North Star lead an outcome? A distributed-lag test on complete periods.

For each lag k in 1..max_lag, the outcome's relative change at t is regressed on its own change at
t-1 (so a trend or momentum in the outcome is not credited to the North Star) and on the North
Star's change at t-k:

    dy_t = a + b * dy_(t-1) + c_k * dx_(t-k) + e_t

The evidence for a lead at k is the t-test of c_k (a one-restriction Granger F-test: F = t^2),
with the t distribution from scipy. The best lag is the one with the smallest p-value; since it is
the best of ``max_lag`` tries, its p-value is Bonferroni-corrected (times max_lag, capped at 1).
Relative changes (not levels) keep two growing series from looking related just because both
grow. Too few complete periods is its own verdict, never a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True, slots=True)
class LeadTest:
    lag: int | None  # the best lag, in periods
    effect: float | None  # c at the best lag: outcome change per unit of North Star change
    p_value: float | None  # raw, at the best lag
    p_corrected: float | None  # Bonferroni over the lags tried
    n: int  # observations in the regression at the best lag (or changes available)
    lags_tried: int
    enough_history: bool


def relative_changes(values: Sequence[float | None]) -> list[float | None]:
    """v_t / v_(t-1) - 1 over the magnitude; None where either value is missing or the previous is 0."""
    out: list[float | None] = [None]
    for previous, current in zip(values, values[1:]):
        if previous is None or current is None or previous == 0:
            out.append(None)
        else:
            out.append((current - previous) / abs(previous))
    return out


def test_lead(leader: Sequence[float | None], outcome: Sequence[float | None], *, max_lag: int,
              min_periods: int) -> LeadTest:
    """``leader`` and ``outcome``: values of consecutive complete periods, oldest first, same periods."""
    dx, dy = relative_changes(leader), relative_changes(outcome)
    available = sum(1 for a, b in zip(dx, dy) if a is not None and b is not None)
    if available < min_periods:
        return LeadTest(None, None, None, None, available, max_lag, False)
    best: tuple[float, int, float, int] | None = None
    for lag in range(1, max_lag + 1):
        rows = [(dy[t], dy[t - 1], dx[t - lag]) for t in range(max(lag, 2), len(dy))
                if dy[t] is not None and dy[t - 1] is not None and dx[t - lag] is not None]
        if len(rows) < 5:
            continue
        y = np.array([r[0] for r in rows])
        design = np.column_stack([np.ones(len(rows)), [r[1] for r in rows], [r[2] for r in rows]])
        coef, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
        dof = len(rows) - 3
        if rank < 3 or dof <= 0:
            continue
        residual = y - design @ coef
        sigma2 = float(residual @ residual) / dof
        cov = sigma2 * np.linalg.inv(design.T @ design)
        se = float(np.sqrt(cov[2, 2]))
        if se == 0:
            continue
        t_stat = float(coef[2]) / se
        p = float(2 * stats.t.sf(abs(t_stat), dof))
        if best is None or p < best[0]:
            best = (p, lag, float(coef[2]), len(rows))
    if best is None:
        return LeadTest(None, None, None, None, available, max_lag, False)
    p, lag, effect, n = best
    return LeadTest(lag, effect, p, min(1.0, p * max_lag), n, max_lag, True)
