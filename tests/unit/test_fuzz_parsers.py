"""Every file perfcheck reads is data only: whatever the bytes, the only thing that escapes a
parser is its documented one-line error.

The number of generated inputs per parser comes from ``PERFCHECK_FUZZ_EXAMPLES`` (300 by
default, so the suite stays quick; ``make fuzz`` runs 10,000 per parser). Generated fio
job files are checked up to the point fio would start for each of them, and a sample of
one in :data:`FIO_RUN_SAMPLE` is run for real, read-only, against a guarded ext4 device.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from perfcheck.errors import BaselineError, ScenarioError, TargetError, WorkloadError
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.model.measurement import Measurement, RoundResult
from perfcheck.report.results import load_results
from perfcheck.store.baseline import Baseline, load_baseline_file
from perfcheck.system.targets import open_given_target
from perfcheck.workloads.fio import (
    FioRunner,
    load_job_file,
    parse_fio_output,
    read_job_file,
    screen_job_text,
    workload_option_problem,
)
from perfcheck.workloads.scenario import load_scenario
from tests.guarded import Ext4Device, ext4_device, sha256
from tests.realcaps import requires_fio

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
    # Up to the point fio would read it; test_fio_job_files_never_write_a_guarded_device
    # takes a sample through fio.
    parses_or_fails_in_one_line(lambda: read_job_file(write("job.fio", data)), ScenarioError)


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


# -- generated fio job files: nothing but the target is ever touched --------------------

#: One generated job file in this many goes through fio itself (its reading, then a run).
FIO_RUN_SAMPLE = 25
FIO_RUN_EXAMPLES = max(EXAMPLES // FIO_RUN_SAMPLE, 10)
FIO_RUN = settings(FUZZ, max_examples=FIO_RUN_EXAMPLES)

RW_MODES = [
    "read",
    "randread",
    "write",
    "randwrite",
    "rw",
    "readwrite",
    "randrw",
    "trim",
    "randtrim",
    "trimwrite",
    "randtrimwrite",
    "randread:8",
    "RandWrite",
]
#: Options a scenario may set, with values to try (and fio's other names for some).
ALLOWED_VALUES: dict[str, list[str]] = {
    "rw": RW_MODES,
    "readwrite": RW_MODES,
    "bs": ["4k", "64k", "4k,8k"],
    "blocksize": ["4k"],
    "iodepth": ["1", "16"],
    "direct": ["1", "0"],
    "size": ["8m", "4k", "100%"],
    "io_size": ["1m"],
    "offset": ["0", "4k"],
    "numjobs": ["1", "2"],
    "norandommap": ["1"],
    "ioengine": ["psync", "libaio", "io_uring", "pvsync2"],
    "mem": ["malloc"],
    "invalidate": ["1"],
    "fsync": ["1"],
}
#: Options a scenario may not set: each names files, runs commands, loads code, deletes,
#: grows or truncates files, retargets fio, or is a misspelling or abbreviation.
REFUSED_VALUES: dict[str, list[str]] = {
    "RW": RW_MODES,
    "ioengine": [
        "filedelete",
        "filecreate",
        "falloc",
        "sg",
        "null",
        "exec",
        "external:/nonexistent/x.so",
        "/nonexistent/x.so",
    ],
    "mem": ["mmap:{work}/buffers"],
    "iomem": ["mmapshared:{work}/buffers"],
    "filename": ["{victim}", "{victim}:{guarded}", "victim"],
    "directory": ["{work}"],
    "filename_format": ["{victim}"],
    "runtime": ["3600"],
    "timeout": ["3600"],
    "time_based": ["1"],
    "unlink": ["1"],
    "unlink_each_loop": ["1"],
    "create_only": ["1"],
    "fallocate": ["truncate", "native"],
    "fill_device": ["1"],
    "file_append": ["1"],
    "allow_file_create": ["1"],
    "allow_mounted_write": ["1"],
    "exec_prerun": ["truncate -s 0 {victim}"],
    "exec_postrun": ["truncate -s 0 {victim}"],
    "write_iolog": ["{victim}"],
    "read_iolog": ["{victim}"],
    "write_bw_log": ["{victim}"],
    "write_lat_log": ["{victim}"],
    "write_iops_log": ["{victim}"],
    "write_hist_log": ["{victim}"],
    "verify": ["crc32c"],
    "trim_percentage": ["50"],
    "zonemode": ["zbd"],
    "ioscheduler": ["none"],
    "cgroup": ["perfcheck-fuzz"],
    "profile": ["act"],
    "output": ["{victim}"],
    "unli": ["1"],
    "exec_pre": ["truncate -s 0 {victim}"],
}
OPTION_NAMES = sorted(set(ALLOWED_VALUES) | set(REFUSED_VALUES))


@st.composite
def option_line(draw: st.DrawFn, pool: dict[str, list[str]]) -> str:
    name = draw(st.sampled_from(sorted(pool)))
    value = draw(st.sampled_from(pool[name]))
    lead = draw(st.sampled_from(["", " ", "\t"]))
    around = draw(st.sampled_from(["", " "]))
    tail = draw(st.sampled_from(["", "", "", " ; comment", " # comment", ";", "#", "\r", "  "]))
    if draw(st.integers(0, 9)) == 0:
        return f"{lead}{name}{tail}"  # an option without a value
    return f"{lead}{name}{around}={around}{value}{tail}"


@st.composite
def long_line(draw: st.DrawFn) -> str:
    # fio reads lines in pieces of 8191 characters; the tail may become a line of its own.
    length = draw(st.sampled_from([4095, 4096, 4097, 8189, 8190, 8191, 8192, 8193]))
    head = draw(st.sampled_from(["#", ";", "description=", ""]))
    return head + "x" * (length - len(head)) + draw(option_line(REFUSED_VALUES))


def fio_job_line(clean: bool) -> st.SearchStrategy[str]:
    """A job file line: with ``clean``, only sections, comments and allowed options."""
    plain = st.sampled_from(["[global]", "[job2]", " [job3] ", "", "; note", "# note"])
    allowed = option_line(ALLOWED_VALUES)
    if clean:
        return st.one_of(plain, allowed, allowed, allowed)
    return st.one_of(
        plain,
        allowed,
        option_line(REFUSED_VALUES),
        st.sampled_from(["include {include}", "  include {include} ; x", "include other.fio"]),
        st.sampled_from(["size=${HOME}", "bs=$pagesize", "iodepth=$ncpus", "[job"]),
        long_line(),
        st.sampled_from(["# " + "y" * 8000, "bs=4k\x01rw=randwrite", "bs=4k\x00rw=write"]),
    )


@st.composite
def fio_job(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """A job file's text and its scenario's ``[workload.options]``; ``{victim}``,
    ``{guarded}``, ``{include}`` and ``{work}`` stand for paths filled in later. Half
    the files hold only what a scenario may say, so that fio runs them."""
    clean = draw(st.booleans())
    lines = draw(st.lists(fio_job_line(clean), min_size=1, max_size=8))
    if draw(st.integers(0, 4)):
        lines.insert(0, "[job]")
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))
    options = draw(
        st.one_of(
            st.just({}),
            st.dictionaries(
                st.sampled_from(["rw", "readwrite", "bs", "ioengine", *sorted(REFUSED_VALUES)]),
                st.sampled_from(["4k", "psync", "randwrite", "randtrimwrite", "{victim}", "$HOME"]),
                max_size=2,
            ),
        )
    )
    return text, options


def fill(text: str, paths: dict[str, Path]) -> str:
    for name, path in paths.items():
        text = text.replace("{" + name + "}", str(path))
    return text


@pytest.fixture(scope="module")
def guarded() -> Iterator[tuple[Ext4Device, dict[str, Path]]]:
    """A guarded ext4 device (the target) and the files a job file may aim at."""
    victim = WORK / "victim"
    victim.write_bytes(b"v" * 65536)
    include = WORK / "other.fio"
    include.write_text(f"rw=randwrite\nfilename={victim}\n")
    with ext4_device(WORK) as dev:
        yield dev, {"victim": victim, "guarded": dev.device, "include": include, "work": WORK}


@FUZZ
@given(fio_job())
def test_fio_job_files_are_screened(job: tuple[str, dict[str, str]]) -> None:
    """Up to the point fio would read it: each generated job file is refused with one line
    naming the file (and line), or handed to fio with only allowed option names."""
    text, options = job
    paths = {"victim": WORK / "victim", "guarded": WORK / "g", "include": WORK / "o", "work": WORK}
    path = WORK / "job.fio"
    try:
        for name, value in options.items():
            problem = workload_option_problem(name, fill(value, paths))
            if problem is not None:
                raise ScenarioError(f"fuzz.toml: [workload.options]: {problem}")
        screen_job_text(path, fill(text, paths))
    except ScenarioError as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith((f"{path}:", "fuzz.toml: [workload.options]: "))
        event("refused before fio")
        return
    event("handed to fio")


@pytest.mark.realfio
@requires_fio
@FIO_RUN
@given(job=fio_job())
def test_fio_job_files_never_write_a_guarded_device(
    guarded: tuple[Ext4Device, dict[str, Path]], job: tuple[str, dict[str, str]]
) -> None:
    """A sample through fio itself: its reading of the job, then a run on the guarded
    ext4 device; the device, the files the job names and the directory stay as they were."""
    device, paths = guarded
    text, options = job
    path = write("job.fio", fill(text, paths).encode())
    before = sorted(p.name for p in WORK.iterdir())
    victim = sha256(paths["victim"])
    try:
        checked = load_job_file(
            path, {k: fill(v, paths) for k, v in options.items()}, WORK / "fuzz.toml"
        )
        target = open_given_target(device.device, checked.writes, allow_destructive=False)
        FioRunner(checked, target.path, target.writable).run(0.05)
        event("fio ran")
    except (ScenarioError, TargetError, WorkloadError) as exc:
        assert "\n" not in str(exc)
        event(type(exc).__name__)
    device.assert_intact()
    assert sha256(paths["victim"]) == victim
    assert sorted(p.name for p in WORK.iterdir()) == before
