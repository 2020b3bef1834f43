"""Measurements, baselines and results built in memory, for the store and report tests."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from perfcheck.model.control import ControlMeasurement
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.model.measurement import Measurement, RoundResult
from perfcheck.model.outcome import Status
from perfcheck.report.results import Results, write_results
from perfcheck.stats.gate import ScenarioOutcome, judge
from perfcheck.store.baseline import Baseline, BaselineStore


def read_round(
    index: int, block: Iterable[float], clat: Iterable[float], iops: float
) -> RoundResult:
    """One round of a read workload: the block probe's and fio's latencies (ns), IOPS."""
    return RoundResult(
        index=index,
        duration_s=1.0,
        histograms={
            "block.latency.read": LogLinearHistogram.from_values(block),
            "fio.clat.read": LogLinearHistogram.from_values(clat),
        },
        scalars={"fio.iops.read": iops},
    )


def make_measurement(
    name: str = "randread-4k",
    scale: float = 1.0,
    rounds: int = 5,
    seed: int = 1,
    samples: int = 400,
    environment: dict[str, object] | None = None,
) -> Measurement:
    """Rounds of lognormal latencies around ``scale`` x 20 us, plus fio's IOPS."""
    rng = random.Random(seed)
    result = []
    for index in range(rounds):
        wobble = scale * (1.0 + rng.uniform(-0.02, 0.02))
        block = [rng.lognormvariate(math.log(20_000 * wobble), 0.25) for _ in range(samples)]
        clat = [v + 2_000 for v in block]
        result.append(read_round(index, block, clat, 40_000.0 / wobble))
    env: dict[str, object] = {"kernel.release": "6.1.0", "cpu.model": "Test CPU"}
    env.update(environment or {})
    return Measurement(
        scenario=name,
        rounds=result,
        environment=env,
        provenance={"block.latency": ["tracepoint:block:block_rq_issue"]},
    )


def make_baseline(measurement: Measurement, path: Path | None = None) -> Baseline:
    baseline = Baseline.record(measurement, "test-machine")
    baseline.path = path
    return baseline


def judged_outcome(
    name: str, before_scale: float, after_scale: float, path: Path | None = None
) -> ScenarioOutcome:
    baseline = make_baseline(make_measurement(name, before_scale, seed=1), path)
    current = make_measurement(name, after_scale, seed=2, environment={"kernel.release": "6.2.0"})
    verdict = judge(name, current, baseline)
    status = Status(verdict.verdict.value)
    return ScenarioOutcome(name, status, current, verdict, path)


def make_results(tmp_path: Path) -> Results:
    """Four scenarios: a FAIL, a PASS, one RECORDED and one without baseline."""
    base_dir = tmp_path / "baselines" / "test-machine"
    outcomes = [
        judged_outcome("slower", 1.0, 1.6, base_dir / "slower.json"),
        judged_outcome("same", 1.0, 1.0, base_dir / "same.json"),
        ScenarioOutcome(
            "recorded", Status.RECORDED, make_measurement("recorded"), None, base_dir / "r.json"
        ),
        ScenarioOutcome(
            "missing", Status.NO_BASELINE, make_measurement("missing"), None, base_dir / "m.json"
        ),
    ]
    return Results.from_outcomes(outcomes, "test-machine")


def node_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a parsed JSON or TOML document (keys and list indices), the root
    ``()`` first."""
    paths = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            paths.extend(node_paths(child, (*prefix, key)))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            paths.extend(node_paths(child, (*prefix, index)))
    return paths


def write_run(
    path: Path,
    scale: float,
    seed: int,
    name: str = "randread-4k",
    control: ControlMeasurement | None = None,
) -> Path:
    """A results file of one scenario measured at ``scale`` x the reference latency."""
    outcome = ScenarioOutcome(name, Status.RECORDED, make_measurement(name, scale, seed=seed))
    results = Results.from_outcomes([outcome], "test-machine")
    results.control = control
    write_results(path, results)
    return path


def write_baseline(root: Path, scale: float, seed: int, name: str = "randread-4k") -> Path:
    store = BaselineStore(root)
    store.queue(make_baseline(make_measurement(name, scale, seed=seed)))
    [path] = store.flush()
    return path


def runs_with_a_step(
    count: int, step_at: int, factor: float, name: str = "randread-4k"
) -> list[Results]:
    """``count`` runs of one scenario an hour apart, each labelled ``build=<100 + i>``,
    latencies ``factor`` times longer from run ``step_at`` on (oldest first)."""
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 12, 1, tzinfo=UTC)
    runs = []
    for i in range(count):
        scale = factor if i >= step_at else 1.0
        outcome = ScenarioOutcome(
            name, Status.NO_BASELINE, make_measurement(name, scale, seed=i + 1)
        )
        results = Results.from_outcomes([outcome], "test-machine")
        results.created_at = (start + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        results.labels = {"build": str(100 + i)}
        runs.append(results)
    return runs


def store_of(path: Path, runs: Iterable[Results]) -> Any:
    """A SQLite results store at ``path`` holding every session of ``runs``; its location."""
    from perfcheck.run.sessions import sessions_from_results
    from perfcheck.store.sessions.records import SOURCE_RUN
    from perfcheck.store.sessions.sqlstore import append_sessions, store_location

    location = store_location(str(path), path.parent)
    assert location is not None
    append_sessions(
        location, [s for r in runs for s in sessions_from_results(r, source=SOURCE_RUN)]
    )
    return location
