"""A run's, a results file's or a baseline's sessions as the results store keeps them
(:class:`~perfcheck.store.sessions.records.StoredSession`): the conversion from what a
run reports to what the store holds."""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from perfcheck.model.measurement import Measurement
from perfcheck.model.outcome import Status
from perfcheck.model.session import SOURCE_RECORD
from perfcheck.report.results import Results, ScenarioResult
from perfcheck.store.baseline import Baseline
from perfcheck.store.sessions.records import (
    SOURCE_BASELINE,
    SOURCE_BASELINE_HISTORY,
    MetricRecord,
    StoredSession,
    content_id,
    measurement_id,
)

if TYPE_CHECKING:
    from perfcheck.store.sessions.records import RecentSession
    from perfcheck.store.sessions.sqlstore import StoreLocation
    from perfcheck.workloads.scenario import Scenario


def scenario_hash(scenario: Scenario) -> str | None:
    """SHA-256 of the scenario file and its job file, or None if one cannot be read."""
    digest = hashlib.sha256()
    paths = [scenario.path]
    job = scenario.workload.job
    if job is not None:
        paths.append(job if job.is_absolute() else scenario.path.parent / job)
    try:
        for path in paths:
            digest.update(path.read_bytes())
            digest.update(b"\0")
    except OSError:
        return None
    return digest.hexdigest()


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def metric_records(
    result: ScenarioResult, measurement: Measurement | None = None
) -> dict[str, MetricRecord]:
    """Each metric of ``measurement`` (default: the result's), with its comparison's verdict
    when it has one (only the result's own measurement was compared)."""
    measured = result.measurement if measurement is None else measurement
    compared = {c.metric: c for c in result.comparisons} if measured is result.measurement else {}
    records: dict[str, MetricRecord] = {}
    for metric, values in measured.metric_series().items():
        if not values:
            continue
        comparison = compared.get(metric)
        records[metric] = MetricRecord(
            metric=metric,
            median=float(statistics.median(values)),
            rounds=tuple(float(v) for v in values),
            verdict=None if comparison is None else comparison.verdict.value,
            change=None if comparison is None else _finite(comparison.change),
            p_value=None if comparison is None else comparison.p_value,
        )
    return records


def sessions_from_results(
    results: Results,
    *,
    source: str,
    labels: Mapping[str, str] | None = None,
) -> list[StoredSession]:
    """Every session of a run or a results file, stamped with the run's time, host,
    checkout commit and labels (``labels`` add to the file's and win over them): one per
    scenario, and for a baseline recorded from several sessions, each of them."""
    stored = []
    for name, result in sorted(results.scenarios.items()):
        measured = result.measured_sessions()
        for measurement, position in measured:
            decision = result.decision
            if position is not None:
                # How a recording's session was used (a recording has no verdict to keep).
                decision = {
                    "recording": {
                        "session": position,
                        "sessions": len(measured),
                        "baseline": position == result.baseline_session,
                    }
                }
            stored.append(
                StoredSession(
                    session_id=measurement_id(
                        results.machine_class, results.created_at, measurement
                    ),
                    recorded_at=results.created_at,
                    scenario=name,
                    machine_class=results.machine_class,
                    status=result.status.value,
                    source=source,
                    kernel_release=str(measurement.environment.get("kernel.release", "unknown")),
                    rounds=len(measurement.rounds),
                    perfcheck_version=results.perfcheck_version,
                    host=results.host,
                    git_commit=results.git_commit,
                    scenario_hash=result.scenario_hash,
                    labels={**results.labels, **(labels or {})},
                    environment=dict(measurement.environment),
                    provenance={k: list(v) for k, v in measurement.provenance.items()},
                    metrics=metric_records(result, measurement),
                    histograms={
                        k: h.to_dict() for k, h in sorted(measurement.merged_histograms().items())
                    },
                    decision=decision,
                )
            )
    return stored


def sessions_from_baseline(
    baseline: Baseline, labels: Mapping[str, str] | None = None
) -> list[StoredSession]:
    """A baseline file's sessions: each session of its history (medians only; the baseline's
    own rounds are one of them), or, for a file without history, its one measurement."""
    if not baseline.history:
        # The file seen as results: one RECORDED scenario stamped with its recording.
        return sessions_from_results(
            Results.from_baseline(baseline), source=SOURCE_BASELINE, labels=labels
        )
    sessions = []
    for summary in baseline.history:
        sessions.append(
            StoredSession(
                session_id=content_id(
                    "summary", baseline.machine_class, baseline.scenario, summary.to_dict()
                ),
                recorded_at=summary.recorded_at,
                scenario=baseline.scenario,
                machine_class=baseline.machine_class,
                # Sessions --perfcheck-record added had PASSed; a refresh's were recorded.
                status=(
                    Status.PASS.value if summary.source == SOURCE_RECORD else Status.RECORDED.value
                ),
                source=SOURCE_BASELINE_HISTORY,
                kernel_release=summary.kernel,
                rounds=summary.rounds,
                perfcheck_version=baseline.perfcheck_version,
                labels=dict(labels or {}),
                # A history entry keeps no environment: the baseline's may be another kernel's.
                provenance={k: list(v) for k, v in baseline.measurement.provenance.items()},
                metrics={
                    m: MetricRecord(metric=m, median=float(v))
                    for m, v in sorted(summary.medians.items())
                },
            )
        )
    return sessions


@dataclass
class SeriesHistory:
    """Where the history gate reads each scenario's series: the results store, this run's
    labels (to name this run) and each scenario's content hash, noted as it runs."""

    location: StoreLocation
    labels: dict[str, str] = field(default_factory=dict)
    scenario_hashes: Mapping[str, str | None] = field(default_factory=dict)

    def recent(self, scenario: str, machine_class: str, last: int) -> list[RecentSession]:
        """The newest ``last`` sessions of the scenario's series, oldest first."""
        from perfcheck.store.sessions.sqlstore import open_store

        with open_store(self.location, create=True) as store:
            return store.recent_sessions(
                scenario, machine_class, self.scenario_hashes.get(scenario), last
            )
