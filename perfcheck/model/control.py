"""The drift control's measurement: per-round timings of a fixed CPU and memory workload.

Measured by :mod:`perfcheck.workloads.control`, stored with baselines and results, judged
by :mod:`perfcheck.stats.drift`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from perfcheck.text import utc_timestamp

#: Name and version of the control workload; controls of different workloads never compare.
CONTROL_WORKLOAD = "cpu-mem-walk-v1"


@dataclass
class ControlMeasurement:
    """Per-round control values (ns per pass) by CPU, and the workload that made them."""

    rounds: dict[int, list[float]]
    workload: str = CONTROL_WORKLOAD
    recorded_at: str = field(default_factory=utc_timestamp)

    def metric_series(self) -> dict[str, list[float]]:
        return {metric_name(cpu): list(v) for cpu, v in sorted(self.rounds.items())}

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "recorded_at": self.recorded_at,
            "rounds": {str(cpu): list(v) for cpu, v in sorted(self.rounds.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ControlMeasurement:
        return cls(
            rounds={int(cpu): [float(x) for x in v] for cpu, v in data["rounds"].items()},
            workload=str(data["workload"]),
            recorded_at=str(data["recorded_at"]),
        )


def metric_name(cpu: int) -> str:
    return f"control.cpu{cpu}.ns"
