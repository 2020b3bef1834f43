"""What the results store keeps of one session, built from a run, a results file or a
baseline's history. Plain objects: no database code here.

A session is one scenario measured once on one machine: its per-metric per-round values
and their median, the histograms of all its rounds merged, its verdict, and where it came
from (machine class, host, kernel release, the checkout's git commit, the scenario file's
hash, the probe points, the environment, labels CI passes in).

Its id is a hash of what was measured (machine class, scenario, time and the measurement
itself), so the same session reaches the store once however often it is sent: the run
that measured it, an upload of its results file, a retried upload.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import statistics
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from perfcheck import __version__

if TYPE_CHECKING:
    from perfcheck.model.measurement import Measurement
    from perfcheck.report.results import Results, ScenarioResult
    from perfcheck.store.baseline import Baseline
    from perfcheck.workloads.scenario import Scenario

#: Where a session came from.
SOURCE_RUN: Final[str] = "run"
SOURCE_RESULTS_FILE: Final[str] = "results-file"
SOURCE_BASELINE: Final[str] = "baseline"
SOURCE_BASELINE_HISTORY: Final[str] = "baseline-history"

#: CI labels from the environment: ``PERFCHECK_LABELS="kernel=abc123,build=42"``.
LABELS_ENV: Final[str] = "PERFCHECK_LABELS"
LABEL_KEY: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_LABEL_VALUE: Final[int] = 200

_ID_CHARS: Final[int] = 32


@dataclass(frozen=True)
class MetricRecord:
    """One metric of a session: its per-round values (None when only the median was kept,
    as in a baseline's history), their median, and its verdict when it was compared."""

    metric: str
    median: float
    rounds: tuple[float, ...] | None = None
    verdict: str | None = None
    change: float | None = None
    p_value: float | None = None


@dataclass
class StoredSession:
    """One session as the store keeps it."""

    session_id: str
    recorded_at: str
    scenario: str
    machine_class: str
    status: str
    source: str
    kernel_release: str
    rounds: int
    perfcheck_version: str = __version__
    host: str | None = None
    git_commit: str | None = None
    scenario_hash: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, list[str]] = field(default_factory=dict)
    metrics: dict[str, MetricRecord] = field(default_factory=dict)
    #: Series -> the sparse histogram of all rounds merged (``LogLinearHistogram.to_dict``).
    histograms: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: How the verdict was reached (``perfcheck.report.results.decision_of``), when it was.
    decision: dict[str, Any] | None = None


# -- ids -----------------------------------------------------------------------------------


def content_id(*parts: Any) -> str:
    """A stable id from JSON-able parts: the first 32 hex digits of their SHA-256."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_ID_CHARS]


def measurement_id(machine_class: str, recorded_at: str, measurement: Measurement) -> str:
    """The id of a measured session; the same after a results file's JSON round trip."""
    return content_id("measurement", machine_class, recorded_at, measurement.to_dict())


# -- labels, host, checkout ------------------------------------------------------------------


def parse_label(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> ``(KEY, VALUE)``; ValueError saying what a label must look like."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not LABEL_KEY.fullmatch(key) or not value:
        raise ValueError(
            f"label {text!r}: give KEY=VALUE, KEY of letters, digits, '_', '.', '-'"
            " (e.g. kernel_commit=1a2b3c)"
        )
    if len(value) > MAX_LABEL_VALUE or any(c in value for c in "\r\n\0"):
        raise ValueError(
            f"label {key}: the value must be one line of at most {MAX_LABEL_VALUE} characters"
        )
    return key, value


def labels_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Labels from ``$PERFCHECK_LABELS`` (``k=v,k2=v2``); ValueError naming the variable."""
    text = (os.environ if environ is None else environ).get(LABELS_ENV, "")
    labels: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            key, value = parse_label(part)
        except ValueError as exc:
            raise ValueError(f"${LABELS_ENV}: {exc}") from None
        labels[key] = value
    return labels


def host_name() -> str:
    return socket.gethostname()


def git_commit(directory: Path) -> str | None:
    """The commit checked out in ``directory`` (a git work tree), or None when there is none."""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else None


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


# -- sessions from results and baselines -----------------------------------------------------


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def metric_records(result: ScenarioResult) -> dict[str, MetricRecord]:
    """Each metric of a result's measurement, with its comparison's verdict when it has one."""
    compared = {c.metric: c for c in result.comparisons}
    records: dict[str, MetricRecord] = {}
    for metric, values in result.measurement.metric_series().items():
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


def session_from_result(
    result: ScenarioResult,
    *,
    machine_class: str,
    recorded_at: str,
    source: str,
    perfcheck_version: str = __version__,
    labels: Mapping[str, str] | None = None,
    host: str | None = None,
    commit: str | None = None,
    scenario_digest: str | None = None,
) -> StoredSession:
    measurement = result.measurement
    return StoredSession(
        session_id=measurement_id(machine_class, recorded_at, measurement),
        recorded_at=recorded_at,
        scenario=result.name,
        machine_class=machine_class,
        status=result.status.value,
        source=source,
        kernel_release=str(measurement.environment.get("kernel.release", "unknown")),
        rounds=len(measurement.rounds),
        perfcheck_version=perfcheck_version,
        host=host,
        git_commit=commit,
        scenario_hash=scenario_digest,
        labels=dict(labels or {}),
        environment=dict(measurement.environment),
        provenance={k: list(v) for k, v in measurement.provenance.items()},
        metrics=metric_records(result),
        histograms={k: h.to_dict() for k, h in sorted(measurement.merged_histograms().items())},
        decision=result.decision,
    )


def sessions_from_results(
    results: Results,
    *,
    source: str,
    labels: Mapping[str, str] | None = None,
    host: str | None = None,
    commit: str | None = None,
    scenario_hashes: Mapping[str, str | None] | None = None,
) -> list[StoredSession]:
    """One session per scenario of a run or a results file, stamped with the run's time."""
    hashes = scenario_hashes or {}
    return [
        session_from_result(
            result,
            machine_class=results.machine_class,
            recorded_at=results.created_at,
            source=source,
            perfcheck_version=results.perfcheck_version,
            labels=labels,
            host=host,
            commit=commit,
            scenario_digest=hashes.get(name),
        )
        for name, result in sorted(results.scenarios.items())
    ]


def sessions_from_baseline(
    baseline: Baseline, labels: Mapping[str, str] | None = None
) -> list[StoredSession]:
    """A baseline file's sessions: each session of its history (medians only; the baseline's
    own rounds are one of them), or, for a file without history, its one measurement."""
    from perfcheck.model.outcome import Status
    from perfcheck.model.session import SOURCE_RECORD
    from perfcheck.report.results import ScenarioResult

    if not baseline.history:
        result = ScenarioResult(baseline.scenario, Status.RECORDED, baseline.measurement)
        return [
            session_from_result(
                result,
                machine_class=baseline.machine_class,
                recorded_at=baseline.recorded_at,
                source=SOURCE_BASELINE,
                perfcheck_version=baseline.perfcheck_version,
                labels=labels,
            )
        ]
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


def merged_labels(*sources: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Later sources win: environment labels, then command-line ones."""
    labels: dict[str, str] = {}
    for source in sources:
        labels.update(source)
    return labels
