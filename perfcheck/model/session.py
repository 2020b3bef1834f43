"""Session summaries: one session of a scenario as the per-metric median of its rounds.

A baseline keeps a bounded history of them; :mod:`perfcheck.stats.history` turns that
history into session-to-session spread and wider thresholds.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from perfcheck.model.measurement import Measurement

#: How a session got into a history: a baseline was recorded (refresh), or a passing
#: run was added with --perfcheck-record (record).
SOURCE_REFRESH = "refresh"
SOURCE_RECORD = "record"


@dataclass(frozen=True)
class SessionSummary:
    """One session of a scenario, summarised: per-metric median of its rounds."""

    recorded_at: str
    kernel: str
    rounds: int
    medians: Mapping[str, float]
    source: str = SOURCE_REFRESH

    def to_dict(self) -> dict[str, Any]:
        return {
            "recorded_at": self.recorded_at,
            "kernel": self.kernel,
            "rounds": self.rounds,
            "source": self.source,
            "medians": dict(sorted(self.medians.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionSummary:
        return cls(
            recorded_at=str(data["recorded_at"]),
            kernel=str(data["kernel"]),
            rounds=int(data["rounds"]),
            medians={str(k): float(v) for k, v in data["medians"].items()},
            source=str(data["source"]),
        )


def summarize(
    measurement: Measurement,
    recorded_at: str,
    source: str = SOURCE_REFRESH,
    metrics: Iterable[str] | None = None,
) -> SessionSummary:
    """The summary of a measured session (``metrics``: only these, e.g. the gated ones)."""
    series = measurement.metric_series()
    wanted = set(metrics) if metrics is not None else set(series)
    medians = {m: float(statistics.median(v)) for m, v in series.items() if m in wanted and v}
    return SessionSummary(
        recorded_at=recorded_at,
        kernel=str(measurement.environment.get("kernel.release", "unknown")),
        rounds=len(measurement.rounds),
        medians=medians,
        source=source,
    )
