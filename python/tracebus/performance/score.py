"""The performance score: the formula behind ``PerformanceMetrics.performance_score``."""

from __future__ import annotations

import math

#: Caps of the three penalties of ``performance_score``.
DROP_PENALTY_CAP = 40.0
LATENCY_PENALTY_CAP = 30.0
SUBSCRIPTION_PENALTY_CAP = 20.0
#: Average handler latency (ms) above which the latency penalty starts.
LATENCY_THRESHOLD_MS = 10.0
#: Subscription count above which the subscription penalty starts.
SUBSCRIPTION_THRESHOLD = 1000
#: A system is healthy when its score is above this.
HEALTHY_SCORE = 70.0


def _check_non_negative(param: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{param} must be a number, got {type(value).__name__}")
    v = float(value)
    if math.isnan(v) or v < 0:
        raise ValueError(f"{param} must be a non-negative number, got {value!r}")
    return v


def performance_score(
    drop_ratio: float, average_latency_ms: float, active_subscriptions: int
) -> float:
    """The health score (0..100) from the reference, with every penalty capped::

        drop      = min(40, 100 * drop_ratio)                       # 1 point per 1 % lost
        latency   = min(30, max(0, average_latency_ms - 10))         # 1 point per ms over 10
        subs      = min(20, max(0, active_subscriptions - 1000) / 100)  # 1 per 100 over 1000
        score     = clamp(100 - drop - latency - subs, 0, 100)

    ``drop_ratio`` is the share of deliveries lost (dropped or evicted) in the interval;
    ``average_latency_ms`` the average handler time in the interval. The system counts as
    healthy when the score is above 70. Negative or NaN inputs raise ValueError.

    >>> performance_score(0.0, 2.0, 10)
    100.0
    >>> performance_score(0.05, 25.0, 1500)
    75.0
    """
    drop = _check_non_negative("drop_ratio", drop_ratio)
    lat = _check_non_negative("average_latency_ms", average_latency_ms)
    subs = _check_non_negative("active_subscriptions", active_subscriptions)
    penalty = (
        min(DROP_PENALTY_CAP, 100.0 * drop)
        + min(LATENCY_PENALTY_CAP, max(0.0, lat - LATENCY_THRESHOLD_MS))
        + min(SUBSCRIPTION_PENALTY_CAP, max(0.0, subs - SUBSCRIPTION_THRESHOLD) / 100.0)
    )
    return max(0.0, min(100.0, 100.0 - penalty))
