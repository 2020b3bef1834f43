"""Baseline files: round trip, stable bytes, atomic writes, one-line errors, fuzzing."""

from __future__ import annotations

import copy
import json
import os
import signal
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfcheck.errors import BaselineError
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.model.measurement import Measurement, RoundResult
from perfcheck.model.names import safe_name
from perfcheck.store.baseline import (
    MAX_BASELINE_BYTES,
    SCHEMA_VERSION,
    Baseline,
    BaselineStore,
    baseline_schema,
    dump_json,
    load_baseline_file,
    write_json_atomic,
)
from tests.records import node_paths

SCENARIO = "randread-4k"
MACHINE = "x86_64-4cpu-test"


def make_measurement(scenario: str = SCENARIO, rounds: int = 3) -> Measurement:
    return Measurement(
        scenario=scenario,
        rounds=[
            RoundResult(
                index=i,
                duration_s=5.0 + i / 10,
                histograms={
                    "block.latency.read": LogLinearHistogram.from_values(
                        [40, 900, 12_000 + 1000 * i, 80_000, 2_500_000]
                    ),
                    "fio.clat.read": LogLinearHistogram.from_values([15_000, 16_000 + i]),
                },
                scalars={"fio.iops.read": 20_000.5 + i, "fio.bw.read": 80_000.0},
            )
            for i in range(rounds)
        ],
        environment={"kernel.release": "6.1.0-test", "cpu.count": 4, "cpu.model": "Test CPU"},
        provenance={"block.latency": ["tracepoint:block:block_rq_issue"]},
    )


def make_baseline(scenario: str = SCENARIO, machine_class: str = MACHINE) -> Baseline:
    return Baseline(
        scenario=scenario,
        machine_class=machine_class,
        measurement=make_measurement(scenario),
        recorded_at="2024-05-01T12:00:00Z",
        perfcheck_version="0.1.0",
    )


def write_doc(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


def assert_one_line_naming(err: BaselineError, path: Path) -> str:
    message = str(err)
    assert "\n" not in message
    assert str(path) in message
    return message


# -- round trip and stable output -----------------------------------------------------


def test_round_trip_through_the_store(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path / "baselines")
    original = make_baseline()

    store.queue(original)
    written = store.flush()

    path = tmp_path / "baselines" / MACHINE / f"{SCENARIO}.json"
    assert written == [path]
    assert original.path == path
    loaded = store.load(SCENARIO, MACHINE)
    assert loaded is not None
    assert loaded.path == path
    assert loaded.to_dict() == original.to_dict()
    assert loaded.measurement.metric_series() == original.measurement.metric_series()
    assert loaded.measurement.rounds[1].histograms == original.measurement.rounds[1].histograms


def test_from_dict_inverts_to_dict() -> None:
    original = make_baseline()
    again = Baseline.from_dict(original.to_dict())
    assert again.to_dict() == original.to_dict()
    assert again.path is None


def test_file_layout_is_review_friendly(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    write_json_atomic(path, make_baseline().to_dict())
    text = path.read_text(encoding="utf-8")

    assert text.endswith("}\n")
    data = json.loads(text)
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["kind"] == "perfcheck-baseline"
    assert "thresholds" not in data
    assert list(data) == sorted(data)
    # Bucket indices read in numeric order, not as strings ("1000" before "114").
    buckets = data["measurement"]["rounds"][0]["histograms"]["block.latency.read"]["buckets"]
    assert [int(k) for k in buckets] == sorted(int(k) for k in buckets)
    assert len(buckets) == 5


def test_same_baseline_gives_identical_bytes(tmp_path: Path) -> None:
    first = make_baseline()
    # Same content, every dict built in a different insertion order.
    second = make_baseline()
    for rnd in second.measurement.rounds:
        rnd.histograms = dict(reversed(rnd.histograms.items()))
        rnd.scalars = dict(reversed(rnd.scalars.items()))
    second.measurement.environment = dict(reversed(second.measurement.environment.items()))

    write_json_atomic(tmp_path / "a.json", first.to_dict())
    write_json_atomic(tmp_path / "b.json", second.to_dict())
    write_json_atomic(tmp_path / "c.json", load_baseline_file(tmp_path / "a.json").to_dict())

    content = (tmp_path / "a.json").read_bytes()
    assert (tmp_path / "b.json").read_bytes() == content
    assert (tmp_path / "c.json").read_bytes() == content


def test_record_stamps_time_and_version() -> None:
    recorded = Baseline.record(make_measurement(), MACHINE)
    assert recorded.scenario == SCENARIO
    assert recorded.perfcheck_version
    Baseline.from_dict(recorded.to_dict())  # the timestamp passes the schema


# -- atomic writes --------------------------------------------------------------------


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize(
    "bad_value", [float("nan"), float("inf"), object(), {1: "int key"}], ids=repr
)
def test_failed_serialisation_leaves_old_file_intact(tmp_path: Path, bad_value: object) -> None:
    path = tmp_path / "b.json"
    write_json_atomic(path, {"version": "old"})
    before = path.read_bytes()

    with pytest.raises((TypeError, ValueError)):
        write_json_atomic(path, {"a": [1, 2, {"deep": bad_value}]})

    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_disk_write_leaves_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "b.json"
    write_json_atomic(path, {"version": "old"})
    before = path.read_bytes()

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(OSError, match="No space left"):
        write_json_atomic(path, {"version": "new"})

    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_write_creates_directories_and_readable_files(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "b.json"
    write_json_atomic(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_rewrite_keeps_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    write_json_atomic(path, {"a": 1})
    os.chmod(path, 0o664)
    write_json_atomic(path, {"a": 2})
    assert stat.S_IMODE(path.stat().st_mode) == 0o664


def test_flush_with_unencodable_value_writes_nothing(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    good = make_baseline("good")
    bad = make_baseline("bad")
    bad.measurement.rounds[0].scalars["fio.iops.read"] = float("nan")
    store.queue(good)
    store.queue(bad)

    with pytest.raises(BaselineError) as info:
        store.flush()

    message = assert_one_line_naming(info.value, store.path_for("bad", MACHINE))
    assert "'bad'" in message
    assert not store.path_for("good", MACHINE).exists()
    assert not (tmp_path / MACHINE).exists() or leftovers(tmp_path / MACHINE) == []
    assert len(store.pending) == 2


def test_flush_refuses_a_baseline_the_loader_would_reject(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    baseline = make_baseline()
    baseline.recorded_at = "yesterday"
    store.queue(baseline)
    with pytest.raises(BaselineError, match="recorded_at"):
        store.flush()
    assert not store.path_for(SCENARIO, MACHINE).exists()


def test_flush_reports_an_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = BaselineStore(blocker)
    store.queue(make_baseline())
    with pytest.raises(BaselineError) as info:
        store.flush()
    assert_one_line_naming(info.value, store.path_for(SCENARIO, MACHINE))


# -- the queue ------------------------------------------------------------------------


def test_writes_wait_for_flush(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.queue(make_baseline())
    assert not store.path_for(SCENARIO, MACHINE).exists()
    assert store.load(SCENARIO, MACHINE) is None
    store.flush()
    assert store.pending == []
    assert store.load(SCENARIO, MACHINE) is not None


def test_discard_drops_queued_writes(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.queue(make_baseline())
    store.discard()
    assert store.pending == []
    assert store.flush() == []
    assert list(tmp_path.iterdir()) == []


def test_a_later_queue_replaces_an_earlier_one(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    first, other, second = make_baseline(), make_baseline("other"), make_baseline()
    second.recorded_at = "2024-06-01T00:00:00Z"
    store.queue(first)
    store.queue(other)
    store.queue(second)
    assert store.pending == [other, second]
    store.flush()
    loaded = store.load(SCENARIO, MACHINE)
    assert loaded is not None
    assert loaded.recorded_at == "2024-06-01T00:00:00Z"


def test_load_missing_returns_none_and_file_loader_raises(tmp_path: Path) -> None:
    assert BaselineStore(tmp_path).load(SCENARIO, MACHINE) is None
    missing = tmp_path / "nope.json"
    with pytest.raises(BaselineError) as info:
        load_baseline_file(missing)
    assert_one_line_naming(info.value, missing)


def test_load_rejects_a_file_stored_under_another_name(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    path = store.path_for("other-scenario", MACHINE)
    path.parent.mkdir(parents=True)
    write_json_atomic(path, make_baseline().to_dict())
    with pytest.raises(BaselineError) as info:
        store.load("other-scenario", MACHINE)
    message = assert_one_line_naming(info.value, path)
    assert SCENARIO in message and "other-scenario" in message


# -- names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["randread-4k", "x86_64-4cpu-amd-epyc", "a", "v1.2", "A" * 128, "0rounds"]
)
def test_safe_name_accepts(name: str) -> None:
    assert safe_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["../etc", "a/b", "/abs", "..", ".", ".hidden", "a..b", "", "A" * 129, "a b", "-x", "é", "a\n"],
)
def test_safe_name_rejects_naming_the_bad_name(name: str) -> None:
    with pytest.raises(ValueError) as info:
        safe_name(name)
    assert repr(name)[:20] in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("scenario, machine", [("../x", MACHINE), (SCENARIO, "a/b")])
def test_store_rejects_unsafe_names(tmp_path: Path, scenario: str, machine: str) -> None:
    store = BaselineStore(tmp_path)
    with pytest.raises(BaselineError, match="rename"):
        store.path_for(scenario, machine)
    with pytest.raises(BaselineError):
        store.load(scenario, machine)
    with pytest.raises(BaselineError):
        store.queue(make_baseline(scenario, machine))


# -- corrupted files ------------------------------------------------------------------


def valid_doc() -> dict[str, Any]:
    return make_baseline().to_dict()


def first_hist(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["measurement"]["rounds"][0]["histograms"]["block.latency.read"]  # type: ignore[no-any-return]


def mutated(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    doc = valid_doc()
    change(doc)
    return doc


BROKEN_DOCUMENTS: dict[str, tuple[Any, str]] = {
    "wrong schema_version": (
        mutated(lambda d: d.update(schema_version=3)),
        "unknown schema_version 3 (this perfcheck reads 1 and 2)",
    ),
    "old schema_version": (
        mutated(lambda d: d.update(schema_version=0)),
        "unknown schema_version 0",
    ),
    "missing key": (mutated(lambda d: d.pop("measurement")), "'measurement' is a required"),
    "missing round key": (
        mutated(lambda d: d["measurement"]["rounds"][2].pop("scalars")),
        "measurement/rounds/2: 'scalars' is a required property",
    ),
    "wrong type": (
        mutated(lambda d: d["measurement"]["rounds"][1].update(duration_s="5s")),
        "measurement/rounds/1/duration_s: expected number, got string '5s'",
    ),
    "negative count": (
        mutated(lambda d: first_hist(d)["buckets"].update({"7": -1})),
        "histograms/block.latency.read/buckets/7: -1 is below the minimum 0",
    ),
    "bucket index 1024": (
        mutated(lambda d: first_hist(d)["buckets"].update({"1024": 1})),
        "buckets/1024: '1024' is not a bucket index",
    ),
    "bucket index with leading zero": (
        mutated(lambda d: first_hist(d)["buckets"].update({"07": 1})),
        "buckets/07",
    ),
    "fractional count": (
        mutated(lambda d: first_hist(d)["buckets"].update({"7": 1.5})),
        "expected integer",
    ),
    "count written as a float": (
        mutated(lambda d: first_hist(d)["buckets"].update({"7": 1.0})),
        "inconsistent measurement",
    ),
    "other scheme": (
        mutated(lambda d: first_hist(d).update(scheme="log2-us")),
        "expected 'loglinear-k5-ns'",
    ),
    "other slot count": (mutated(lambda d: first_hist(d).update(slots=512)), "expected 1024"),
    "negative iops": (
        mutated(
            lambda d: d["measurement"]["rounds"][0]["scalars"].update({"fio.iops.read": -1e308})
        ),
        "scalars/fio.iops.read: -1e+308 is below the minimum 0",
    ),
    "no rounds": (
        mutated(lambda d: d["measurement"].update(rounds=[])),
        "measurement/rounds: needs at least 1",
    ),
    "unknown key": (mutated(lambda d: d.update(thresholds={})), "'thresholds' was unexpected"),
    "unsafe scenario name": (
        mutated(lambda d: d.update(scenario="../../etc/passwd")),
        "is not a name usable as a file name",
    ),
    "bad timestamp": (mutated(lambda d: d.update(recorded_at="May 1st")), "recorded_at"),
    "measurement of another scenario": (
        mutated(lambda d: d["measurement"].update(scenario="seqwrite")),
        "but its measurement is of 'seqwrite'",
    ),
    "results file": (mutated(lambda d: d.update(kind="perfcheck-results")), "not a perfcheck"),
    "top level array": ([1, 2, 3], "top level is a JSON array"),
    "nested environment": (
        mutated(lambda d: d["measurement"]["environment"].update(cpu={"model": "x"})),
        "environment/cpu: expected string or number or boolean or null, got an object with 1 key",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_DOCUMENTS))
def test_invalid_document_is_one_line_error(tmp_path: Path, case: str) -> None:
    doc, expected = BROKEN_DOCUMENTS[case]
    path = write_doc(tmp_path / "b.json", doc)
    with pytest.raises(BaselineError) as info:
        load_baseline_file(path)
    message = assert_one_line_naming(info.value, path)
    assert expected in message
    assert "perfcheck refresh" in message


def valid_text() -> str:
    return dump_json(valid_doc())


BROKEN_FILES: dict[str, tuple[bytes, str]] = {
    "truncated": (valid_text()[:500].encode(), "truncated: the JSON ends early at line"),
    "empty": (b"", "truncated"),
    "garbage": (b"<<<<<<< HEAD\n{}\n", "not valid JSON at line 1:1"),
    "trailing garbage": (valid_text().encode() + b"}\n", "not valid JSON at line"),
    "not utf-8": (b'{"a": "\xff\xfe"}', "not UTF-8"),
    "NaN literal": (valid_text().replace("20000.5", "NaN").encode(), "NaN"),
    "huge float": (valid_text().replace("20000.5", "1e999").encode(), "out of range"),
    "duplicate key": (b'{"kind": "perfcheck-baseline", "kind": "x"}', "appears twice"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_FILES))
def test_unparsable_file_is_one_line_error(tmp_path: Path, case: str) -> None:
    content, expected = BROKEN_FILES[case]
    path = tmp_path / "b.json"
    path.write_bytes(content)
    with pytest.raises(BaselineError) as info:
        load_baseline_file(path)
    message = assert_one_line_naming(info.value, path)
    assert expected in message
    assert "version control" in message


def test_oversized_file_is_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "b.json"
    with open(path, "wb") as fh:  # sparse: costs no disk space
        fh.truncate(MAX_BASELINE_BYTES + 1)

    def must_not_parse(*args: object, **kwargs: object) -> object:
        raise AssertionError("parsed an oversized file")

    monkeypatch.setattr(json, "loads", must_not_parse)
    with pytest.raises(BaselineError) as info:
        load_baseline_file(path)
    assert "larger than 64 MiB" in assert_one_line_naming(info.value, path)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.mkdir()
    with pytest.raises(BaselineError) as info:
        load_baseline_file(path)
    assert "is a directory" in assert_one_line_naming(info.value, path)


def test_fifo_instead_of_file_is_refused_at_once(tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer; a run would hang holding the lock."""
    path = tmp_path / "b.json"
    os.mkfifo(path)

    def hung(signum: int, frame: object) -> None:
        raise AssertionError("waited on a FIFO")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        with pytest.raises(BaselineError) as info:
            load_baseline_file(path)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert "is a FIFO, not a regular file" in assert_one_line_naming(info.value, path)


# -- the schema -----------------------------------------------------------------------


def test_schema_is_valid_draft_2020_12_package_data() -> None:
    schema = baseline_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(valid_doc())


# -- fuzzing --------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)

FUZZ_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "b.json"


def load_expecting_only_baseline_error(path: Path) -> None:
    try:
        load_baseline_file(path)
    except BaselineError as err:
        assert "\n" not in str(err)
        assert str(path) in str(err)


@FUZZ_SETTINGS
@given(content=st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(fuzz_file: Path, content: bytes) -> None:
    fuzz_file.write_bytes(content)
    load_expecting_only_baseline_error(fuzz_file)


@FUZZ_SETTINGS
@given(value=json_values)
def test_fuzz_arbitrary_json(fuzz_file: Path, value: Any) -> None:
    fuzz_file.write_text(json.dumps(value), encoding="utf-8")
    load_expecting_only_baseline_error(fuzz_file)


VALID_DOC = valid_doc()
VALID_PATHS = node_paths(VALID_DOC)[1:]


@FUZZ_SETTINGS
@given(where=st.sampled_from(VALID_PATHS), replacement=json_values, drop=st.booleans())
def test_fuzz_mutated_valid_baseline(
    fuzz_file: Path, where: tuple[Any, ...], replacement: Any, drop: bool
) -> None:
    # Replacing (or deleting) one node of a valid file reaches the deep checks.
    doc = copy.deepcopy(VALID_DOC)
    parent = doc
    for step in where[:-1]:
        parent = parent[step]
    if drop:
        del parent[where[-1]]
    else:
        parent[where[-1]] = replacement
    fuzz_file.write_text(json.dumps(doc), encoding="utf-8")
    load_expecting_only_baseline_error(fuzz_file)


finite_floats = st.floats(min_value=0, max_value=1e12, allow_nan=False)
series_names = st.from_regex(r"[a-z]{1,8}(\.[a-z0-9_]{1,8}){1,3}", fullmatch=True)


@st.composite
def measurements(draw: st.DrawFn) -> Measurement:
    rounds = []
    for index in range(draw(st.integers(min_value=1, max_value=4))):
        histograms = draw(
            st.dictionaries(
                series_names,
                st.lists(st.integers(min_value=0, max_value=2**40), max_size=20).map(
                    LogLinearHistogram.from_values
                ),
                max_size=3,
            )
        )
        scalars = draw(st.dictionaries(series_names, finite_floats, max_size=3))
        rounds.append(RoundResult(index, draw(finite_floats), histograms, scalars))
    environment = draw(
        st.dictionaries(
            series_names, st.text(max_size=30) | st.integers() | finite_floats, max_size=4
        )
    )
    return Measurement(SCENARIO, rounds, environment, {"block.latency": ["tracepoint:a:b"]})


@settings(max_examples=50, deadline=None)
@given(measurement=measurements())
def test_any_measurement_round_trips_byte_for_byte(
    fuzz_file: Path, measurement: Measurement
) -> None:
    original = Baseline(SCENARIO, MACHINE, measurement, "2024-05-01T12:00:00Z", "0.1.0")
    write_json_atomic(fuzz_file, original.to_dict())
    content = fuzz_file.read_bytes()
    loaded = load_baseline_file(fuzz_file)
    assert loaded.to_dict() == original.to_dict()
    write_json_atomic(fuzz_file, loaded.to_dict())
    assert fuzz_file.read_bytes() == content
