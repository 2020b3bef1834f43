"""What one scenario run produced: per-round histograms and scalars, plus context.

These are plain objects shared by the probe session, the workload runners, the
baseline store, the verdict and the reports. They know nothing of pytest or bcc.

Series names are dotted: ``<source>.<what>.<op>``, e.g. ``block.latency.read``
(a BPF probe) or ``fio.clat.read`` (fio's own completion latency). Scalars use the
same scheme, e.g. ``fio.iops.read``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from perfcheck.model.histogram import LogLinearHistogram

#: Which percentiles of every histogram become gated metrics.
GATED_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0)


def percentile_metric_name(series: str, pct: float) -> str:
    """``("block.latency.read", 99.0) -> "block.latency.read.p99"``."""
    text = f"{pct:g}".replace(".", "_")
    return f"{series}.p{text}"


@dataclass
class RoundResult:
    """One measured (or warm-up) round of a scenario."""

    index: int
    duration_s: float
    histograms: dict[str, LogLinearHistogram] = field(default_factory=dict)
    scalars: dict[str, float] = field(default_factory=dict)

    def metric_values(self) -> dict[str, float]:
        """Per-round values of every gated metric: histogram percentiles and scalars."""
        values: dict[str, float] = {}
        for series, hist in sorted(self.histograms.items()):
            if hist.total == 0:
                continue
            for pct in GATED_PERCENTILES:
                values[percentile_metric_name(series, pct)] = hist.percentile(pct)
        values.update(self.scalars)
        return values

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "duration_s": round(self.duration_s, 6),
            "histograms": {k: h.to_dict() for k, h in sorted(self.histograms.items())},
            "scalars": dict(sorted(self.scalars.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoundResult:
        return cls(
            index=int(data["index"]),
            duration_s=float(data["duration_s"]),
            histograms={k: LogLinearHistogram.from_dict(v) for k, v in data["histograms"].items()},
            scalars={k: float(v) for k, v in data["scalars"].items()},
        )


@dataclass
class Measurement:
    """All measured rounds of one scenario (warm-up excluded) and where they came from.

    ``environment`` is flat (str -> str|int|float): kernel release, CPU model, core
    count, target device model and scheduler, fio and bcc versions, ...
    ``provenance`` maps each probe name to the kernel events it was attached to, e.g.
    ``{"block.latency": ["tracepoint:block:block_rq_issue", ...]}``.
    """

    scenario: str
    rounds: list[RoundResult]
    environment: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, list[str]] = field(default_factory=dict)

    def metric_series(self) -> dict[str, list[float]]:
        """Metric name -> its per-round values (only metrics present in every round)."""
        per_round = [r.metric_values() for r in self.rounds]
        if not per_round:
            return {}
        names = set(per_round[0])
        for values in per_round[1:]:
            names &= set(values)
        return {name: [v[name] for v in per_round] for name in sorted(names)}

    def merged_histograms(self) -> dict[str, LogLinearHistogram]:
        """Each series merged over all rounds (for display, never for statistics)."""
        merged: dict[str, LogLinearHistogram] = {}
        for rnd in self.rounds:
            for series, hist in rnd.histograms.items():
                merged[series] = merged[series].merge(hist) if series in merged else hist
        return merged

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "rounds": [r.to_dict() for r in self.rounds],
            "environment": dict(sorted(self.environment.items())),
            "provenance": {k: list(v) for k, v in sorted(self.provenance.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        return cls(
            scenario=str(data["scenario"]),
            rounds=[RoundResult.from_dict(r) for r in data["rounds"]],
            environment=dict(data["environment"]),
            provenance={k: list(v) for k, v in data["provenance"].items()},
        )


def environment_diff(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """Environment facts whose values differ: ``[(key, before, after)]``, sorted; absent -> None."""
    keys = sorted(set(before) | set(after))
    return [(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]
