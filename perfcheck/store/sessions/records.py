"""What the results store keeps of one session (built from a run, a results file or a
baseline's history by :mod:`perfcheck.run.sessions`). Plain objects: no database code here.

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
import os
import re
import socket
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from perfcheck import __version__

if TYPE_CHECKING:
    from perfcheck.model.measurement import Measurement

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


# -- sessions from results and baselines -----------------------------------------------------


def merged_labels(*sources: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Later sources win: environment labels, then command-line ones."""
    labels: dict[str, str] = {}
    for source in sources:
        labels.update(source)
    return labels


@dataclass(frozen=True)
class RecentSession:
    """One stored session of a series as the history gate reads it: its per-metric
    medians and what names it (time, id, kernel, commit, labels)."""

    session_id: str
    recorded_at: str
    status: str
    kernel_release: str
    host: str | None = None
    git_commit: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    medians: dict[str, float] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, list[str]] = field(default_factory=dict)

    def names(self) -> str:
        """``2026-12-04T16:00:00Z 1a2b3c4d5e6f (kernel_commit=abc, kernel 6.18...)``."""
        said = [f"{k}={v}" for k, v in sorted(self.labels.items())]
        if self.git_commit:
            said.append(f"commit {self.git_commit[:12]}")
        said.append(f"kernel {self.kernel_release}")
        return f"{self.recorded_at} {self.session_id[:12]} ({', '.join(said)})"
