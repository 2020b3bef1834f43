"""Results of made-up runs for the results-store tests and benchmark: real objects, real
histograms, values drawn from a seeded generator."""

from __future__ import annotations

import random

from perfcheck.model.measurement import Measurement
from perfcheck.report.results import Results, ScenarioResult
from perfcheck.run.harness import Status
from tests.records import read_round


def make_measurement(scenario: str, rng: random.Random, rounds: int = 5) -> Measurement:
    made = []
    for index in range(rounds):
        values = [rng.lognormvariate(9.2, 0.2) for _ in range(200)]
        made.append(read_round(index, values, [v * 1.5 for v in values], rng.gauss(30_000, 1_000)))
    return Measurement(
        scenario=scenario,
        rounds=made,
        environment={"kernel.release": "6.18.44-test", "cpu.count": 2},
        provenance={"block.latency": ["tracepoint:block:block_rq_issue"]},
    )


def make_results(
    names: list[str], seed: int = 1, created_at: str = "2026-12-04T10:00:00Z"
) -> Results:
    rng = random.Random(seed)
    scenarios = {
        name: ScenarioResult(name, Status.NO_BASELINE, make_measurement(name, rng))
        for name in names
    }
    return Results(scenarios, "x86_64-2cpu-test", created_at=created_at)
