"""Results files: everything one run measured and decided, in one JSON file.

``pytest --perfcheck --perfcheck-save results.json`` writes one; ``perfcheck
compare``, ``show`` and ``report`` read them (and baseline files, which hold a
single measurement). The layout, checked on load against
``perfcheck/store/schemas/results-v2.json`` (JSON Schema draft 2020-12)::

    {
     "schema_version": 2, "kind": "perfcheck-results",
     "created_at": "2024-05-01T12:00:00Z", "perfcheck_version": "0.1.0",
     "machine_class": "x86_64-8cpu-...", "alpha": 0.01, "update": false,
     "host": "ci-runner-3" | null, "git_commit": "<sha>" | null,   (where the run was, and
     "labels": {"kernel_commit": "1a2b3c", ...},                    its CI labels)
     "scenarios": {
      "<name>": {
       "name": "<name>", "status": "PASS|FAIL|INCONCLUSIVE|RECORDED|NO BASELINE",
       "measurement": {...same as in a baseline file...},
       "baseline": null | {"path", "recorded_at", "machine_class",
                           "perfcheck_version", "measurement"},
       "baseline_path": "<file the baseline is, was written to, or would be>" | null,
       "comparisons": [{...MetricComparison.to_dict()...}, ...],
       "decision": {"looks", "baseline_rounds", "current_rounds",    (optional: how the
                    "environment_changes", "widened_thresholds",      verdict was reached)
                    "drift", "repeat", "gate", "history"},
       "scenario_hash": "<sha256 of the scenario and job files>" | null,
       "recording": {"baseline_session": 2,                    (optional: a baseline from
                     "other_sessions": [measurement, ...]}     several sessions)
      }
     },
     "control": {"workload", "recorded_at", "rounds"},  (optional: the run's drift
                                                        control, --perfcheck-control)
     "errors": {"<name>": "<one-line error>"}           (optional: scenarios that ended
    }                                                   in ERROR, without a verdict)

Version 1 files (before host, git commit, labels, scenario hashes and a recording's other
sessions were kept) are still read: those fields are then None, empty or absent.

JSON has no infinity, so a comparison's ``change`` and ``worse_by`` -- infinite
when the baseline median is 0 and the current one is not -- are stored as the
strings ``"+inf"`` and ``"-inf"``; every other number is a plain JSON number.
Files are written like baselines (sorted keys, one value per line, atomically).

Any problem reading a file -- unreadable, not JSON, another ``kind`` or
``schema_version``, a schema violation -- is a one-line
:class:`~perfcheck.errors.BaselineError` naming the file and the problem.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

import jsonschema
import jsonschema.exceptions
import referencing

from perfcheck import __version__
from perfcheck.errors import BaselineError
from perfcheck.model.control import ControlMeasurement
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.model.measurement import Measurement
from perfcheck.model.outcome import Status
from perfcheck.stats.gate import ScenarioOutcome, ScenarioVerdict
from perfcheck.stats.verdict import (
    DEFAULT_ALPHA,
    Direction,
    MetricComparison,
    MetricRule,
    Verdict,
    worst,
)
from perfcheck.store.baseline import (
    BASELINE_KIND,
    Baseline,
    encoded_json,
    read_json_file,
    write_json_atomic,
)
from perfcheck.text import change_text, clipped_repr, one_line, utc_timestamp

RESULTS_SCHEMA_VERSION: Final[int] = 2
READABLE_RESULTS_VERSIONS: Final[tuple[int, ...]] = (1, 2)
RESULTS_KIND: Final[str] = "perfcheck-results"
#: Larger files are refused before parsing; a results file holds a few baselines' worth.
MAX_RESULTS_BYTES: Final[int] = 256 * 1024 * 1024

#: Percentiles shown for every histogram by ``show``, the report and JUnit properties.
DISPLAY_PERCENTILES: Final[tuple[float, ...]] = (50.0, 90.0, 99.0, 99.9)

RECREATE_HINT: Final[str] = "re-create it with `pytest --perfcheck --perfcheck-save FILE`"

# Measurements are laid out as in baseline schema version 1 (unchanged since).
_BASELINE_SCHEMA_RESOURCE = "schemas/baseline-v1.json"
# The drift control is laid out as in baseline schema version 2.
_CONTROL_SCHEMA_RESOURCE = "schemas/baseline-v2.json"
_INFINITY_TEXT: Final[Mapping[str, float]] = {"+inf": math.inf, "-inf": -math.inf}


def percentile_label(pct: float) -> str:
    """``50.0 -> "p50"``, ``99.9 -> "p99.9"``."""
    return f"p{pct:g}"


def series_percentiles(hist: LogLinearHistogram) -> dict[str, float]:
    """``{"count": n, "p50": ns, "p90": ns, "p99": ns, "p99.9": ns}``; only the count if empty."""
    values: dict[str, float] = {"count": float(hist.total)}
    if hist.total:
        for pct in DISPLAY_PERCENTILES:
            values[percentile_label(pct)] = hist.percentile(pct)
    return values


def percentile_properties(measurement: Measurement) -> list[tuple[str, str]]:
    """JUnit-style properties of each series, all rounds merged: sample count and percentiles.

    ``("perfcheck.merged.block.latency.read.count", "15000")``,
    ``("perfcheck.merged.block.latency.read.p99_9_ns", "81234")``, ... (latencies in whole ns).
    """
    properties: list[tuple[str, str]] = []
    for series, hist in sorted(measurement.merged_histograms().items()):
        for label, value in series_percentiles(hist).items():
            name = "count" if label == "count" else f"{label.replace('.', '_')}_ns"
            properties.append((f"perfcheck.merged.{series}.{name}", f"{value:.0f}"))
    return properties


def summary_table(scenarios: Iterable[ScenarioResult]) -> list[tuple[Status | None, str]]:
    """Aligned plain-text lines: a header (status None), then ``(status, line)`` per scenario.

    Columns: scenario, verdict, the metric that got worst (the FAIL or INCONCLUSIVE
    one when there is one), its change and p-value.
    """
    header = ("scenario", "verdict", "worst metric", "change", "p-value")
    rows: list[tuple[Status, tuple[str, ...]]] = []
    for result in scenarios:
        moved = result.most_moved()
        if moved is None:
            cells = (result.name, result.status.value, "-", "-", "-")
        else:
            change = change_text(moved.change)
            cells = (result.name, result.status.value, moved.metric, change, f"{moved.p_value:.2g}")
        rows.append((result.status, cells))
    widths = [max(len(cells[i]) for cells in [header, *(c for _, c in rows)]) for i in range(5)]

    def line(cells: tuple[str, ...]) -> str:
        left = "  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(cells[:3]))
        right = "  ".join(f"{cell:>{widths[i + 3]}}" for i, cell in enumerate(cells[3:]))
        return f"{left}  {right}".rstrip()

    return [(None, line(header)), *((status, line(cells)) for status, cells in rows)]


# -- comparisons to and from JSON ----------------------------------------------------------


def _finite_or_text(value: float) -> float | str:
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return value


def _from_finite_or_text(value: Any) -> float:
    if isinstance(value, str):
        return _INFINITY_TEXT[value]
    return float(value)


def comparison_to_json(comparison: MetricComparison) -> dict[str, Any]:
    """:meth:`MetricComparison.to_dict` with an infinite change written as ``"+inf"``/``"-inf"``."""
    data = comparison.to_dict()
    data["change"] = _finite_or_text(comparison.change)
    data["worse_by"] = _finite_or_text(comparison.worse_by)
    return data


def comparison_from_json(data: Mapping[str, Any]) -> MetricComparison:
    """Inverse of :func:`comparison_to_json` (for data already checked against the schema)."""
    rounds_needed = data["rounds_needed"]
    return MetricComparison(
        metric=str(data["metric"]),
        rule=MetricRule(Direction(data["direction"]), float(data["threshold"])),
        baseline=tuple(float(v) for v in data["baseline"]),
        current=tuple(float(v) for v in data["current"]),
        baseline_median=float(data["baseline_median"]),
        current_median=float(data["current_median"]),
        change=_from_finite_or_text(data["change"]),
        worse_by=_from_finite_or_text(data["worse_by"]),
        p_value=float(data["p_value"]),
        alpha=float(data["alpha"]),
        verdict=Verdict(data["verdict"]),
        rounds_needed=None if rounds_needed is None else int(rounds_needed),
        reason=str(data["reason"]),
    )


def decision_of(verdict: ScenarioVerdict) -> dict[str, Any]:
    """How a verdict was reached, for the results file: rounds and looks, environment
    changes (probe provenance included), thresholds the history widened, drift."""
    drift = verdict.drift
    return {
        "looks": verdict.looks,
        "baseline_rounds": len(verdict.baseline.measurement.rounds),
        "current_rounds": len(verdict.measurement.rounds),
        "environment_changes": [
            {"key": key, "baseline": before, "current": after}
            for key, before, after in verdict.environment_changes()
        ],
        "widened_thresholds": [
            {
                "metric": w.metric,
                "threshold": w.threshold,
                "widened_to": w.widened_to,
                "spread": w.spread,
                "sessions": w.sessions,
            }
            for w in verdict.widened
        ],
        "drift": None
        if drift is None
        else {"drifted": drift.drifted, "slowdown": drift.slowdown, "text": drift.text},
        "repeat": verdict.repeat,
        "gate": verdict.gate,
        "history": None if verdict.history is None else verdict.history.to_dict(),
    }


# -- the objects ---------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    """What one run did with one scenario: its measurement, baseline and verdicts."""

    name: str
    status: Status
    measurement: Measurement
    baseline: Baseline | None = None
    baseline_path: Path | None = None
    comparisons: list[MetricComparison] = field(default_factory=list)
    #: How the verdict was reached (:func:`decision_of`), None without a verdict.
    decision: dict[str, Any] | None = None
    #: SHA-256 of the scenario file and its job file; None for a test or when unknown.
    scenario_hash: str | None = None
    #: A baseline recorded from several sessions: the others, in the order measured...
    other_sessions: list[Measurement] = field(default_factory=list)
    #: ...and the position (1-based, among all of them) of ``measurement``, the baseline.
    baseline_session: int | None = None

    @classmethod
    def from_outcome(cls, outcome: ScenarioOutcome) -> ScenarioResult:
        verdict = outcome.verdict
        return cls(
            name=outcome.name,
            status=outcome.status,
            measurement=outcome.measurement,
            baseline=verdict.baseline if verdict is not None else None,
            baseline_path=outcome.baseline_path,
            comparisons=list(verdict.comparisons) if verdict is not None else [],
            decision=decision_of(verdict) if verdict is not None else None,
            other_sessions=list(outcome.other_sessions),
            baseline_session=outcome.baseline_session,
        )

    def measured_sessions(self) -> list[tuple[Measurement, int | None]]:
        """Every session measured for this scenario: ``measurement`` first, then a
        recording's others, each with its position in the recording (None when alone)."""
        if self.baseline_session is None:
            return [(self.measurement, None)]
        others = [i for i in range(1, len(self.other_sessions) + 2) if i != self.baseline_session]
        return [
            (self.measurement, self.baseline_session),
            *zip(self.other_sessions, others, strict=True),
        ]

    @property
    def worst(self) -> MetricComparison | None:
        """The FAIL or INCONCLUSIVE metric most in need of attention, None if all PASS."""
        return worst(self.comparisons)

    def most_moved(self) -> MetricComparison | None:
        """The metric that got worst (largest ``worse_by``), whatever its verdict."""
        return self.worst or max(self.comparisons, key=lambda c: c.worse_by, default=None)

    def as_verdict(self) -> ScenarioVerdict | None:
        """The :class:`ScenarioVerdict` this result came from, when it had a baseline."""
        if self.baseline is None:
            return None
        return ScenarioVerdict(self.name, self.measurement, self.baseline, list(self.comparisons))

    def to_dict(self) -> dict[str, Any]:
        baseline: dict[str, Any] | None = None
        if self.baseline is not None:
            baseline = {
                "path": None if self.baseline.path is None else str(self.baseline.path),
                "recorded_at": self.baseline.recorded_at,
                "machine_class": self.baseline.machine_class,
                "perfcheck_version": self.baseline.perfcheck_version,
                "measurement": self.baseline.measurement.to_dict(),
            }
        data: dict[str, Any] = {
            "name": self.name,
            "status": self.status.value,
            "measurement": self.measurement.to_dict(),
            "baseline": baseline,
            "baseline_path": None if self.baseline_path is None else str(self.baseline_path),
            "comparisons": [comparison_to_json(c) for c in self.comparisons],
        }
        if self.decision is not None:
            data["decision"] = self.decision
        data["scenario_hash"] = self.scenario_hash
        if self.baseline_session is not None and self.other_sessions:
            data["recording"] = {
                "baseline_session": self.baseline_session,
                "other_sessions": [m.to_dict() for m in self.other_sessions],
            }
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioResult:
        """From data already checked against the schema; ValueError if inconsistent."""
        name = str(data["name"])
        measurement = Measurement.from_dict(data["measurement"])
        if measurement.scenario != name:
            raise ValueError(f"scenario {name!r} holds a measurement of {measurement.scenario!r}")
        baseline: Baseline | None = None
        stored = data["baseline"]
        if stored is not None:
            baseline = Baseline(
                scenario=name,
                machine_class=str(stored["machine_class"]),
                measurement=Measurement.from_dict(stored["measurement"]),
                recorded_at=str(stored["recorded_at"]),
                perfcheck_version=str(stored["perfcheck_version"]),
                path=None if stored["path"] is None else Path(stored["path"]),
            )
        path = data["baseline_path"]
        recording = data.get("recording")
        others = [] if recording is None else recording["other_sessions"]
        chosen = None if recording is None else int(recording["baseline_session"])
        if chosen is not None and chosen > len(others) + 1:
            raise ValueError(f"baseline_session {chosen} of {len(others) + 1} sessions")
        return cls(
            name=name,
            status=Status(data["status"]),
            measurement=measurement,
            baseline=baseline,
            baseline_path=None if path is None else Path(path),
            comparisons=[comparison_from_json(c) for c in data["comparisons"]],
            decision=data.get("decision"),
            scenario_hash=data.get("scenario_hash"),
            other_sessions=[Measurement.from_dict(m) for m in others],
            baseline_session=chosen,
        )


@dataclass
class Results:
    """The scenarios of one run (or the one measurement of a baseline file), by name.

    ``source_kind`` says what the file was: :data:`RESULTS_KIND` or, for a baseline
    file read as results, ``"perfcheck-baseline"``; ``path`` is where it was read from.
    """

    scenarios: dict[str, ScenarioResult]
    machine_class: str
    alpha: float = DEFAULT_ALPHA
    update: bool = False
    created_at: str = field(default_factory=utc_timestamp)
    perfcheck_version: str = __version__
    path: Path | None = None
    source_kind: str = RESULTS_KIND
    #: The run's drift control (--perfcheck-control), or a baseline file's.
    control: ControlMeasurement | None = None
    #: Where the run was: its host, the git commit of its checkout (None when unknown).
    host: str | None = None
    git_commit: str | None = None
    #: The labels CI gave the run (kernel commit, build id, branch).
    labels: dict[str, str] = field(default_factory=dict)
    #: The schema version of the file read (older files lack host, commit, labels, hashes).
    schema_version: int = RESULTS_SCHEMA_VERSION
    #: Scenario -> the one-line error that stopped its measurement (ERROR, no verdict).
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_outcomes(
        cls,
        outcomes: Iterable[ScenarioOutcome],
        machine_class: str,
        alpha: float = DEFAULT_ALPHA,
        update: bool = False,
    ) -> Results:
        """Results of a run; a scenario checked twice keeps its last outcome (as baselines do)."""
        scenarios = {o.name: ScenarioResult.from_outcome(o) for o in outcomes}
        return cls(scenarios, machine_class, alpha=alpha, update=update)

    @classmethod
    def from_baseline(cls, baseline: Baseline) -> Results:
        """A baseline file seen as results: one RECORDED scenario, its own measurement."""
        result = ScenarioResult(
            name=baseline.scenario,
            status=Status.RECORDED,
            measurement=baseline.measurement,
            baseline_path=baseline.path,
        )
        return cls(
            {baseline.scenario: result},
            baseline.machine_class,
            created_at=baseline.recorded_at,
            perfcheck_version=baseline.perfcheck_version,
            path=baseline.path,
            source_kind=BASELINE_KIND,
            control=baseline.control,
        )

    @property
    def thresholds(self) -> dict[str, float]:
        """Metric -> the threshold its comparison used in this run (scenario overrides too)."""
        return {c.metric: c.rule.threshold for s in self.scenarios.values() for c in s.comparisons}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "kind": RESULTS_KIND,
            "created_at": self.created_at,
            "perfcheck_version": self.perfcheck_version,
            "machine_class": self.machine_class,
            "alpha": self.alpha,
            "update": self.update,
            "host": self.host,
            "git_commit": self.git_commit,
            "labels": dict(sorted(self.labels.items())),
            "scenarios": {name: s.to_dict() for name, s in sorted(self.scenarios.items())},
        }
        if self.control is not None:
            data["control"] = self.control.to_dict()
        if self.errors:
            data["errors"] = dict(sorted(self.errors.items()))
        return data

    @classmethod
    def from_dict(cls, data: Any, path: Path | None = None) -> Results:
        """Validate parsed JSON against the results schema and build the results.

        Raises a one-line ``BaselineError`` naming ``path`` (or "results data").
        """
        where = str(path) if path is not None else "results data"
        check_results_data(data, where)
        scenarios: dict[str, ScenarioResult] = {}
        for key, item in data["scenarios"].items():
            try:
                scenario = ScenarioResult.from_dict(item)
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                raise BaselineError(
                    f"{where}: scenario {key!r} is inconsistent ({one_line(str(exc))}); "
                    f"{RECREATE_HINT}"
                ) from exc
            if scenario.name != key:
                raise BaselineError(
                    f"{where}: scenario {key!r} is named {scenario.name!r} inside; {RECREATE_HINT}"
                )
            scenarios[key] = scenario
        return cls(
            scenarios=scenarios,
            machine_class=data["machine_class"],
            alpha=float(data["alpha"]),
            update=bool(data["update"]),
            created_at=data["created_at"],
            perfcheck_version=data["perfcheck_version"],
            path=path,
            control=(
                ControlMeasurement.from_dict(data["control"])
                if data.get("control") is not None
                else None
            ),
            host=data.get("host"),
            git_commit=data.get("git_commit"),
            labels=dict(data.get("labels") or {}),
            schema_version=int(data["schema_version"]),
            errors=dict(data.get("errors", {})),
        )


# -- schema --------------------------------------------------------------------------------


def _schema_resource(name: str) -> dict[str, Any]:
    text = resources.files("perfcheck.store").joinpath(name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _schema_name(version: int) -> str:
    return f"schemas/results-v{version}.json"


@cache
def _results_validator(version: int = RESULTS_SCHEMA_VERSION) -> jsonschema.Draft202012Validator:
    schema = _schema_resource(_schema_name(version))
    jsonschema.Draft202012Validator.check_schema(schema)
    # The measurement layout (and the drift control's) is defined once, in the baseline
    # schemas.
    registry: referencing.Registry[Any] = referencing.Registry()
    for name in (_BASELINE_SCHEMA_RESOURCE, _CONTROL_SCHEMA_RESOURCE):
        baseline_schema = _schema_resource(name)
        registry = registry.with_resource(
            baseline_schema["$id"], referencing.Resource.from_contents(baseline_schema)
        )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def results_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) results files are written and checked against."""
    return _schema_resource(_schema_name(RESULTS_SCHEMA_VERSION))


def check_results_data(data: Any, where: str) -> None:
    """Raise a one-line ``BaselineError`` unless ``data`` is a valid results document."""
    if not isinstance(data, dict):
        raise BaselineError(
            f"{where}: not a perfcheck results file (the JSON is not an object); {RECREATE_HINT}"
        )
    kind = data.get("kind")
    if kind != RESULTS_KIND:
        raise BaselineError(
            f"{where}: not a perfcheck results file (kind is {clipped_repr(kind)}, expected "
            f"{RESULTS_KIND!r}); {RECREATE_HINT}"
        )
    version = data.get("schema_version")
    if type(version) is not int or version not in READABLE_RESULTS_VERSIONS:
        newer = type(version) is int and version > RESULTS_SCHEMA_VERSION
        fix = f"upgrade perfcheck, or {RECREATE_HINT}" if newer else RECREATE_HINT
        readable = " and ".join(str(v) for v in READABLE_RESULTS_VERSIONS)
        raise BaselineError(
            f"{where}: results schema_version {clipped_repr(version)} is not one this perfcheck "
            f"reads ({readable}); {fix}"
        )
    error = jsonschema.exceptions.best_match(_results_validator(version).iter_errors(data))
    if error is not None:
        at = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        raise BaselineError(
            f"{where}: schema violation at JSON path {at}: {one_line(error.message)}; "
            f"{RECREATE_HINT}"
        )


# -- files ---------------------------------------------------------------------------------


def write_results(path: Path, results: Results) -> None:
    """Write ``results`` to ``path`` atomically; a file ``load_results`` would refuse is never
    written. Raises ``BaselineError`` naming the file on any problem."""
    data = results.to_dict()
    text = encoded_json(data, f"{path}: cannot save results")
    check_results_data(json.loads(text), f"{path} (not written)")
    try:
        write_json_atomic(path, data)
    except OSError as exc:
        raise BaselineError(
            f"{path}: cannot write results ({exc.strerror or exc}); "
            "check that its directory is writable"
        ) from exc


def load_results(path: Path) -> Results:
    """Read a results file or a baseline file (a single measurement) as :class:`Results`.

    Every problem is a one-line ``BaselineError`` naming ``path``.
    """
    data = _read_json(path)
    if isinstance(data, dict) and data.get("kind") == BASELINE_KIND:
        return Results.from_baseline(Baseline.from_dict(data, path=path))
    if isinstance(data, dict) and data.get("kind") != RESULTS_KIND:
        raise BaselineError(
            f"{path}: neither a perfcheck results file nor a baseline (kind is "
            f"{clipped_repr(data.get('kind'))}); give a file written by --perfcheck-save or a "
            "baseline file"
        )
    return Results.from_dict(data, path=path)


def _read_json(path: Path) -> Any:
    return read_json_file(
        path, noun="results or baseline file", max_bytes=MAX_RESULTS_BYTES, fix=RECREATE_HINT
    )
