"""Anomalies, measured: EWMA baselines of a monitor's per-interval figures and a z-score band.

Each figure (``rate.type.<event type>``, ``rate.source.<source>``, ``drop_rate``,
``p99_latency_ms``) keeps an exponentially weighted mean and variance of its past values.
A value is out of band when ``|value - mean| / std > threshold`` (``std`` floored at
``max(min_std, rel_std * |mean|)``, so a flat baseline does not make every wiggle infinite);
``intervals`` out-of-band samples in a row make one anomaly. While out of band the baseline
is frozen (an excursion is not learnt as normal); once reported, it learns again, so a lasting
change of level becomes the new normal instead of an alarm every interval. Nothing here runs
per event: the detector sees one value per figure per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Anomaly", "AnomalyConfig", "AnomalyDetector"]


def _positive(name: str, value: float, *, integer: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        kind = "an int" if integer else "a number"
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be > 0 and finite, got {value!r}")


@dataclass(frozen=True, slots=True)
class AnomalyConfig:
    """Settings of ``PerformanceMonitor(anomalies=...)`` (``True`` means these defaults).

    - ``alpha``: EWMA weight of a new value (0 < alpha ≤ 1; 0.2 ≈ the last ~10 samples).
    - ``threshold``: the band's half-width in standard deviations (z-score).
    - ``intervals``: out-of-band samples in a row that make an anomaly (N).
    - ``warmup``: samples a figure needs before it is judged.
    - ``min_std`` / ``rel_std``: the floor of the standard deviation, absolute (in the
      figure's unit: events/s, ms) and relative to the baseline.
    - ``only``: prefixes of the figures judged (e.g. ``("rate.",)``); None: every figure.
    """

    alpha: float = 0.2
    threshold: float = 3.0
    intervals: int = 3
    warmup: int = 5
    min_std: float = 0.1
    rel_std: float = 0.1
    only: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _positive("alpha", self.alpha)
        if self.alpha > 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha!r}")
        _positive("threshold", self.threshold)
        _positive("intervals", self.intervals, integer=True)
        _positive("warmup", self.warmup, integer=True)
        _positive("min_std", self.min_std)
        if isinstance(self.rel_std, bool) or not isinstance(self.rel_std, (int, float)):
            raise TypeError(f"rel_std must be a number, got {type(self.rel_std).__name__}")
        if not (self.rel_std >= 0 and math.isfinite(self.rel_std)):
            raise ValueError(f"rel_std must be >= 0 and finite, got {self.rel_std!r}")
        if self.only is not None and not (
            isinstance(self.only, tuple) and all(isinstance(p, str) for p in self.only)
        ):
            raise TypeError(f"only must be a tuple of str or None, got {self.only!r}")


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One figure that left its band for ``intervals`` samples in a row."""

    metric: str
    baseline: float
    observed: float
    z_score: float
    intervals: int
    timestamp: float

    def describe(self) -> str:
        """``rate.type.service.failed 2.5 vs baseline 0 (z=+25.0, 3 intervals)``."""
        return (
            f"{self.metric} {self.observed:.3g} vs baseline {self.baseline:.3g} "
            f"(z={self.z_score:+.1f}, {self.intervals} intervals)"
        )


@dataclass(slots=True)
class _Baseline:
    mean: float = 0.0
    var: float = 0.0
    n: int = 0
    out: int = 0  # out-of-band samples in a row
    reported: bool = False  # the current excursion was reported

    def learn(self, x: float, alpha: float) -> None:
        if self.n == 0:
            self.mean, self.var = x, 0.0
        else:
            diff = x - self.mean
            incr = alpha * diff
            self.mean += incr
            self.var = (1 - alpha) * (self.var + diff * incr)
        self.n += 1


@dataclass
class AnomalyDetector:
    """The baselines of every figure seen so far; ``observe`` one sample at a time."""

    config: AnomalyConfig = field(default_factory=AnomalyConfig)
    _baselines: dict[str, _Baseline] = field(default_factory=dict)
    _samples: int = 0

    def observe(self, values: dict[str, float], timestamp: float) -> list[Anomaly]:
        """Judges one sample's figures against their baselines, then learns them; returns
        the anomalies this sample completes. A figure absent from a sample counts as 0 once
        it has been seen (an event type that stops is a rate of 0); one appearing late is
        judged against the zeros it had until then."""
        cfg = self.config
        found: list[Anomaly] = []
        if cfg.only is not None:
            values = {k: v for k, v in values.items() if k.startswith(cfg.only)}
        for name in values:
            if name not in self._baselines:
                # Unseen until now: it was 0 in each earlier sample.
                self._baselines[name] = _Baseline(n=self._samples)
        for name, b in self._baselines.items():
            x = float(values.get(name, 0.0))
            if b.n >= cfg.warmup:
                std = max(math.sqrt(max(b.var, 0.0)), cfg.min_std, cfg.rel_std * abs(b.mean))
                z = (x - b.mean) / std
                if abs(z) > cfg.threshold:
                    b.out += 1
                    if b.out >= cfg.intervals and not b.reported:
                        found.append(Anomaly(name, b.mean, x, z, b.out, timestamp))
                        b.reported = True
                    if not b.reported:
                        continue  # frozen while an excursion is pending
                else:
                    b.out, b.reported = 0, False
            b.learn(x, cfg.alpha)
        self._samples += 1
        return found

    def baseline(self, metric: str) -> tuple[float, float] | None:
        """(mean, standard deviation) of a figure's baseline, or None if never seen."""
        b = self._baselines.get(metric)
        return None if b is None else (b.mean, math.sqrt(max(b.var, 0.0)))
