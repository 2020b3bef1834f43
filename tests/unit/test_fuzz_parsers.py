"""Every file perfcheck reads is data only: whatever the bytes, the only thing that escapes a
parser is its documented one-line error.

The number of generated inputs per parser comes from ``PERFCHECK_FUZZ_EXAMPLES`` (300 by
default, so the suite stays quick; ``make fuzz`` runs 10,000 per parser).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfcheck.errors import BaselineError, ScenarioError, WorkloadError
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.model.measurement import Measurement, RoundResult
from perfcheck.report.results import load_results
from perfcheck.store.baseline import Baseline, load_baseline_file
from perfcheck.workloads.fio import load_job_file, parse_fio_output
from perfcheck.workloads.scenario import load_scenario

EXAMPLES = int(os.environ.get("PERFCHECK_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# The fuzzed files' directory, under pytest's own temporary root (pruned by pytest).
WORK = Path()


@pytest.fixture(scope="module", autouse=True)
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    global WORK
    WORK = tmp_path_factory.mktemp("fuzz")


def valid_baseline_text() -> str:
    hist = LogLinearHistogram.from_values([5000, 6000, 7000, 90000])
    rounds = [
        RoundResult(i, 1.0, {"block.latency.read": hist}, {"fio.iops.read": 1000.0 + i})
        for i in range(3)
    ]
    measurement = Measurement("fuzz", rounds, {"kernel.release": "6.18"}, {"fio": ["x"]})
    return json.dumps(Baseline.record(measurement, "m").to_dict(), sort_keys=True)


VALID_BASELINE = valid_baseline_text()
VALID_SCENARIO = (
    'description = "d"\nprobes = ["block.latency"]\n[workload]\nkind = "fio"\n'
    'job = "j.fio"\n[rounds]\ncount = 5\nwarmup = 1\nseconds = 1.0\n'
    '[thresholds]\n"fio.iops.*" = 0.1\n'
)
VALID_FIO = json.dumps(
    {
        "fio version": "fio-3.33",
        "jobs": [
            {
                d: {
                    "total_ios": 1,
                    "io_bytes": 4096,
                    "iops": 1.0,
                    "bw_bytes": 4096,
                    "clat_ns": {"bins": {"8640": 1}},
                }
                for d in ("read", "write", "trim")
            }
        ],
    }
)


@st.composite
def mutated(draw: st.DrawFn, text: str) -> bytes:
    """A valid document with a few bytes changed, cut short, or spliced."""
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
    return bytes(data)


def inputs(valid: str) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=2048), mutated(valid))


def parses_or_fails_in_one_line(parse: Callable[[], object], error: type[Exception]) -> None:
    """Input is parsed, or refused with a one-line error of the parser's kind."""
    try:
        parse()
    except error as exc:
        assert "\n" not in str(exc)


def write(name: str, data: bytes) -> Path:
    path = WORK / name
    path.write_bytes(data)
    return path


@FUZZ
@given(inputs(VALID_BASELINE))
def test_baseline_parser(data: bytes) -> None:
    parses_or_fails_in_one_line(
        lambda: load_baseline_file(write("baseline.json", data)), BaselineError
    )


@FUZZ
@given(inputs(VALID_BASELINE))
def test_results_parser(data: bytes) -> None:
    parses_or_fails_in_one_line(lambda: load_results(write("results.json", data)), BaselineError)


@FUZZ
@given(inputs(VALID_SCENARIO))
def test_scenario_parser(data: bytes) -> None:
    (WORK / "j.fio").write_text("[j]\nrw=read\n")
    parses_or_fails_in_one_line(lambda: load_scenario(write("fuzz.toml", data)), ScenarioError)


@FUZZ
@given(inputs("[j]\nrw=randread\nbs=4k\n; comment\n"))
def test_fio_job_file_parser(data: bytes) -> None:
    parses_or_fails_in_one_line(lambda: load_job_file(write("job.fio", data)), ScenarioError)


@FUZZ
@given(st.one_of(st.text(max_size=2048), mutated(VALID_FIO).map(lambda b: b.decode("latin-1"))))
def test_fio_output_parser(text: str) -> None:
    parses_or_fails_in_one_line(lambda: parse_fio_output(text, source="fuzz"), WorkloadError)


def test_deeply_nested_fio_output_is_a_one_line_error() -> None:
    try:
        parse_fio_output('{"jobs": ' + "[" * 100_000, source="fuzz")
    except WorkloadError as exc:
        assert "\n" not in str(exc)
    else:
        raise AssertionError("nested garbage parsed")


def test_a_bucket_key_with_a_newline_is_still_a_one_line_error() -> None:
    # Found by the mutation fuzzer: the offending key is echoed in the JSON path.
    data = json.loads(VALID_BASELINE)
    data["measurement"]["rounds"][1]["histograms"]["block.latency.read"]["buckets"]["\n"] = 1
    path = write("newline-key.json", json.dumps(data).encode())
    try:
        load_baseline_file(path)
    except BaselineError as exc:
        assert "\n" not in str(exc) and "buckets/'\\n'" in str(exc)
    else:
        raise AssertionError("a bucket key that is not a number was accepted")
