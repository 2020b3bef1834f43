"""Scenario files: parsing, defaults, one-line errors, threshold precedence, fuzzing."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfcheck.errors import ScenarioError
from perfcheck.workloads.scenario import (
    DEFAULT_ROUND_SECONDS,
    DEFAULT_ROUNDS,
    DEFAULT_WARMUP,
    Scenario,
    WorkloadSpec,
    discover_scenarios,
    load_scenario,
)
from tests.records import node_paths

KNOWN_PROBES = ("block.latency", "block.queue", "net.tcp.rtt")
WORKLOAD = '[workload]\nkind = "fio"\njob = "job.fio"\n'

FULL = """\
description = \"\"\"4 KiB random read,
    queue depth 1, direct I/O\"\"\"
probes = ["block.latency", "block.queue"]

[workload]
kind = "fio"
job = "jobs/randread-4k.fio"

[workload.options]
iodepth = 4
ioengine = "libaio"
rate_iops = 1.5

[rounds]
count = 7
warmup = 2
seconds = 3

[thresholds]
"block.latency.*.p50" = 0.10
"fio.iops.*" = 1
"""


def write_scenario(directory: Path, text: str, name: str = "randread-4k") -> Path:
    (directory / "job.fio").write_text("[global]\n")
    (directory / "jobs").mkdir(exist_ok=True)
    (directory / "jobs" / "randread-4k.fio").write_text("[global]\n")
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def scenario_error(path: Path, known: tuple[str, ...] | None = KNOWN_PROBES) -> str:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, known)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def make_scenario(thresholds: dict[str, float]) -> Scenario:
    return Scenario(
        name="s",
        path=Path("/s.toml"),
        description="",
        workload=WorkloadSpec("fio", Path("/j.fio")),
        probes=(),
        rounds=5,
        warmup=1,
        round_seconds=5.0,
        thresholds=thresholds,
    )


# -- valid files ----------------------------------------------------------------------


def test_full_scenario(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, FULL)
    scenario = load_scenario(path, KNOWN_PROBES)

    assert scenario.name == "randread-4k"
    assert scenario.path == path.resolve()
    assert scenario.description == "4 KiB random read, queue depth 1, direct I/O"
    assert scenario.probes == ("block.latency", "block.queue")
    assert scenario.workload.kind == "fio"
    assert scenario.workload.job == (tmp_path / "jobs" / "randread-4k.fio").resolve()
    assert scenario.workload.job.is_absolute()
    assert dict(scenario.workload.options) == {
        "iodepth": "4",
        "ioengine": "libaio",
        "rate_iops": "1.5",
    }
    assert (scenario.rounds, scenario.warmup, scenario.round_seconds) == (7, 2, 3.0)
    assert isinstance(scenario.round_seconds, float)
    assert dict(scenario.thresholds) == {"block.latency.*.p50": 0.10, "fio.iops.*": 1.0}


def test_minimal_scenario_uses_defaults(tmp_path: Path) -> None:
    scenario = load_scenario(write_scenario(tmp_path, WORKLOAD))
    assert scenario.description == ""
    assert scenario.probes == ()
    assert dict(scenario.workload.options) == {}
    assert scenario.rounds == DEFAULT_ROUNDS
    assert scenario.warmup == DEFAULT_WARMUP
    assert scenario.round_seconds == DEFAULT_ROUND_SECONDS
    assert dict(scenario.thresholds) == {}


def test_probes_are_not_checked_without_a_catalog(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, 'probes = ["future.probe"]\n' + WORKLOAD)
    assert load_scenario(path).probes == ("future.probe",)


def test_scenario_is_immutable_and_hashable(tmp_path: Path) -> None:
    scenario = load_scenario(write_scenario(tmp_path, FULL), KNOWN_PROBES)
    assert isinstance(scenario.thresholds, MappingProxyType)
    with pytest.raises(TypeError):
        scenario.thresholds["x"] = 1.0  # type: ignore[index]
    assert hash(scenario) == hash(load_scenario(scenario.path, KNOWN_PROBES))


def test_unquoted_dotted_threshold_keys_mean_the_same_metric(tmp_path: Path) -> None:
    text = WORKLOAD + "[thresholds]\nfio.iops.read = 0.2\n" + '"fio.clat.read.p99" = 0.3\n'
    scenario = load_scenario(write_scenario(tmp_path, text))
    assert dict(scenario.thresholds) == {"fio.iops.read": 0.2, "fio.clat.read.p99": 0.3}


@pytest.mark.parametrize(
    "table, value", [("rounds", "count = 3"), ("rounds", "count = 100"),
                     ("rounds", "warmup = 0"), ("rounds", "warmup = 10"),
                     ("rounds", "seconds = 0.5"), ("rounds", "seconds = 3600"),
                     ("thresholds", '"x" = 10'), ("thresholds", '"x" = 1e-9')],
)  # fmt: skip
def test_range_limits_are_inclusive(tmp_path: Path, table: str, value: str) -> None:
    load_scenario(write_scenario(tmp_path, f"{WORKLOAD}[{table}]\n{value}\n"))


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            'descripton = "x"\n' + WORKLOAD,
            "unknown key 'descripton' (did you mean 'description'?); allowed keys at the top "
            "level: ab_thresholds, block_sample, description, probes, rounds, target, thresholds,"
            " workload",
        ),
        (
            WORKLOAD + "[round]\ncount = 5\n",
            "unknown key 'round' (did you mean 'rounds'?)",
        ),
        (
            WORKLOAD + "[rounds]\ncout = 5\n",
            "unknown key 'rounds.cout' (did you mean 'count'?); allowed keys in [rounds]: "
            "count, seconds, warmup",
        ),
        (
            WORKLOAD + 'jobfile = "x"\n',
            "unknown key 'workload.jobfile' (did you mean 'job'?); allowed keys in [workload]: "
            "job, kind, options",
        ),
        (WORKLOAD + "zzz = 1\n", "unknown key 'workload.zzz'; allowed keys in [workload]"),
    ],
)
def test_unknown_keys(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in scenario_error(write_scenario(tmp_path, text))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("description = 3\n" + WORKLOAD, "'description' must be a string, got integer 3"),
        (
            'probes = "block.latency"\n' + WORKLOAD,
            "'probes' must be an array of probe names, got string",
        ),
        ("probes = [1]\n" + WORKLOAD, "'probes[0]' must be a probe name (string), got integer 1"),
        ('workload = "fio"\n', "'workload' must be a table, got string 'fio'"),
        (
            '[workload]\nkind = "fio"\njob = 5\n',
            "'workload.job' must be a path to the job file (string), got integer",
        ),
        (
            '[workload]\nkind = 1\njob = "job.fio"\n',
            "'workload.kind' must be a string, got integer 1",
        ),
        (
            WORKLOAD + 'options = ["x"]\n',
            "'workload.options' must be a table of fio options, got array",
        ),
        (
            WORKLOAD + "[workload.options]\ndirect = true\n",
            "'workload.options.direct' must be a string or a number, got boolean true",
        ),
        (WORKLOAD + "[workload.options]\nsize = 2024-01-01\n", "got date"),
        (WORKLOAD + '[rounds]\ncount = "5"\n', "'rounds.count' must be an integer, got string '5'"),
        (
            WORKLOAD + "[rounds]\ncount = true\n",
            "'rounds.count' must be an integer, got boolean true",
        ),
        (
            WORKLOAD + "[rounds]\nwarmup = 1.0\n",
            "'rounds.warmup' must be an integer, got float 1.0",
        ),
        (
            WORKLOAD + '[rounds]\nseconds = "5s"\n',
            "'rounds.seconds' must be a number of seconds, got string '5s'",
        ),
        (WORKLOAD + "rounds = 5\n", "'workload.rounds'"),
        ("rounds = 5\n" + WORKLOAD, "'rounds' must be a table, got integer 5"),
        (
            WORKLOAD + '[thresholds]\n"fio.iops.read" = "10%"\n',
            "'thresholds.\"fio.iops.read\"' must be a relative change such as 0.10, "
            "got string '10%'",
        ),
        (WORKLOAD + '[thresholds]\n"fio.iops.read" = {}\n', "got table"),
        (
            "thresholds = [0.1]\n" + WORKLOAD,
            "'thresholds' must be a table of metric = relative change, got array",
        ),
    ],
)
def test_wrong_types(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in scenario_error(write_scenario(tmp_path, text))


@pytest.mark.parametrize(
    "table, value, expected",
    [
        ("rounds", "count = 2", "'rounds.count' must be from 3 to 100, got 2"),
        ("rounds", "count = 101", "'rounds.count' must be from 3 to 100, got 101"),
        ("rounds", "warmup = -1", "'rounds.warmup' must be from 0 to 10, got -1"),
        ("rounds", "warmup = 11", "'rounds.warmup' must be from 0 to 10, got 11"),
        ("rounds", "seconds = 0.4", "'rounds.seconds' must be from 0.5 to 3600, got 0.4"),
        ("rounds", "seconds = 3601", "'rounds.seconds' must be from 0.5 to 3600, got 3601"),
        ("rounds", "seconds = nan", "got nan"),
        ("rounds", "seconds = inf", "got inf"),
        ("thresholds", '"x" = 0', "'thresholds.x' must be above 0 and at most 10"),
        ("thresholds", '"x" = -0.1', "got -0.1"),
        ("thresholds", '"x" = 10.5', "got 10.5"),
        ("thresholds", '"x" = nan', "got nan"),
        ("thresholds", '"x y" = 0.1', "'thresholds.\"x y\"' is not a metric name or pattern"),
        ("thresholds", '"" = 0.1', "is not a metric name or pattern"),
        ("workload.options", '"bad option" = 1', "is not a fio option name"),
        ("workload.options", 'name = "a\\nb"', "'workload.options.name' must be one line"),
        ("workload.options", "iodepth = inf", "must be a finite number"),
    ],
)
def test_values_out_of_range(tmp_path: Path, table: str, value: str, expected: str) -> None:
    path = write_scenario(tmp_path, f"{WORKLOAD}[{table}]\n{value}\n")
    assert expected in scenario_error(path)


def test_missing_job_file_names_both_paths(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, '[workload]\nkind = "fio"\njob = "../missing.fio"\n')
    message = scenario_error(path)
    assert "'../missing.fio'" in message
    assert str((tmp_path.parent / "missing.fio").resolve()) in message
    assert "relative to the scenario file" in message


def test_job_directory_is_not_a_job_file(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, '[workload]\nkind = "fio"\njob = "jobs"\n')
    assert "not an existing file" in scenario_error(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('description = "x"\n', "missing table [workload]"),
        ('[workload]\njob = "job.fio"\n', "missing key 'workload.kind'"),
        ('[workload]\nkind = "fio"\n', "missing key 'workload.job'"),
        (
            '[workload]\nkind = "netperf"\njob = "job.fio"\n',
            "'netperf' is not supported; supported kinds: fio, sockperf, iperf3",
        ),
    ],
)
def test_missing_or_unsupported_workload(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in scenario_error(write_scenario(tmp_path, text))


def test_unknown_probe_lists_the_known_ones(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, 'probes = ["block.latncy"]\n' + WORKLOAD)
    message = scenario_error(path)
    assert "unknown probe 'block.latncy' in probes (did you mean 'block.latency'?)" in message
    assert "known probes: block.latency, block.queue, net.tcp.rtt" in message


def test_duplicate_probe(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, 'probes = ["block.latency", "block.latency"]\n' + WORKLOAD)
    assert "'block.latency' is listed twice" in scenario_error(path)


def test_threshold_given_quoted_and_dotted(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, WORKLOAD + '[thresholds]\n"a.b" = 0.1\na.b = 0.2\n')
    assert "'thresholds.\"a.b\"' is given twice" in scenario_error(path)


@pytest.mark.parametrize(
    "text, line",
    [
        ('description = "x"\nprobes = [1,\n  oops\n' + WORKLOAD, 3),
        (WORKLOAD + "[rounds]\ncount = = 5\n", 5),
        ("[workload]\n[workload]\n", 2),
        ('description = "unterminated\n', 1),
    ],
)
def test_toml_syntax_error_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = write_scenario(tmp_path, text)
    message = scenario_error(path)
    assert message.startswith(f"{path}:{line}:")
    assert "invalid TOML" in message


def test_syntax_error_at_end_of_document(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, WORKLOAD + "[rounds")
    assert scenario_error(path).startswith(f"{path}:4:")


def test_not_utf8(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, "")
    path.write_bytes(b'description = "ok"\ndescription2 = "\xff"\n')
    assert scenario_error(path).startswith(f"{path}: not UTF-8 text at line 2")


def test_missing_file(tmp_path: Path) -> None:
    assert "no such scenario file" in scenario_error(tmp_path / "nope.toml")


@pytest.mark.parametrize("stem", ["bad..name", ".hidden", "with space", "x" * 129])
def test_file_name_must_be_a_safe_scenario_name(tmp_path: Path, stem: str) -> None:
    path = write_scenario(tmp_path, WORKLOAD, name=stem)
    message = scenario_error(path)
    assert "(the file name)" in message and "rename the file" in message


# -- threshold precedence -------------------------------------------------------------


def test_exact_name_beats_any_pattern() -> None:
    scenario = make_scenario(
        {"fio.iops.read": 0.05, "fio.iops.read*": 0.5, "fio.iops.rea?": 0.6, "*": 0.9}
    )
    assert scenario.threshold_for("fio.iops.read") == 0.05


def test_longest_pattern_wins() -> None:
    scenario = make_scenario(
        {"*": 0.9, "block.*": 0.5, "block.latency.*": 0.2, "block.latency.*.p99": 0.3}
    )
    assert scenario.threshold_for("block.latency.read.p99") == 0.3
    assert scenario.threshold_for("block.latency.read.p50") == 0.2
    assert scenario.threshold_for("block.queue.read.p50") == 0.5
    assert scenario.threshold_for("fio.iops.read") == 0.9


def test_equal_length_patterns_prefer_fewer_wildcards_then_alphabetical() -> None:
    fewer = make_scenario({"fio.??.read": 0.4, "fio.*w.read": 0.3})
    assert fewer.threshold_for("fio.bw.read") == 0.3
    alphabetical = make_scenario({"fio.iops.*": 0.1, "fio.*.read": 0.2})
    assert alphabetical.threshold_for("fio.iops.read") == 0.2
    reordered = make_scenario({"fio.*.read": 0.2, "fio.iops.*": 0.1})
    assert reordered.threshold_for("fio.iops.read") == 0.2


def test_no_match_is_none_and_matching_is_case_sensitive() -> None:
    scenario = make_scenario({"fio.iops.*": 0.1, "block.latency.[rw]*.p99": 0.2})
    assert scenario.threshold_for("FIO.IOPS.READ") is None
    assert scenario.threshold_for("net.tcp.rtt.p50") is None
    assert scenario.threshold_for("block.latency.write.p99") == 0.2
    assert scenario.threshold_for("block.latency.discard.p99") is None


def test_threshold_for_from_a_loaded_file(tmp_path: Path) -> None:
    scenario = load_scenario(write_scenario(tmp_path, FULL), KNOWN_PROBES)
    assert scenario.threshold_for("block.latency.read.p50") == 0.10
    assert scenario.threshold_for("fio.iops.write") == 1.0
    assert scenario.threshold_for("block.latency.read.p99") is None


# -- discovery ------------------------------------------------------------------------


def test_discover_scenarios(tmp_path: Path) -> None:
    for name in ("b.toml", "a.toml", "notes.md", ".#a.toml", "c.toml.bak"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.toml").write_text("")
    (tmp_path / "dir.toml").mkdir()
    assert discover_scenarios(tmp_path) == [tmp_path / "a.toml", tmp_path / "b.toml"]


def test_discover_in_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such scenario directory"):
        discover_scenarios(tmp_path / "nope")


# -- fuzzing --------------------------------------------------------------------------

FUZZ_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fuzz")
    (directory / "job.fio").write_text("[global]\n")
    return directory


def load_expecting_only_scenario_error(path: Path) -> None:
    try:
        load_scenario(path, KNOWN_PROBES)
    except ScenarioError as err:
        assert "\n" not in str(err)
        assert str(path) in str(err)


FRAGMENTS = [
    "description = ", "probes = ", "[workload]", "[workload.options]", "[rounds]",
    "[thresholds]", "[[rounds]]", 'kind = "fio"', 'job = "job.fio"', "count = ", "warmup = ",
    "seconds = ", '"fio.iops.*" = ', "a.b.c = ", '"block.latency"', "[", "]", "{", "}", ",",
    "=", '"', "'", "0.1", "5", "-1", "nan", "inf", "true", "1979-05-27", "#", "\n", " ",
]  # fmt: skip


@FUZZ_SETTINGS
@given(text=st.text(max_size=200) | st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
def test_fuzz_toml_text(fuzz_dir: Path, text: str) -> None:
    path = fuzz_dir / "fuzzed.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    load_expecting_only_scenario_error(path)


def toml_value(value: Any) -> str:
    """A tiny TOML writer for plain values: everything inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_value(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(data: dict[str, Any]) -> str:
    return "".join(f"{toml_value(key)} = {toml_value(value)}\n" for key, value in data.items())


toml_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
toml_scalars = (
    st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.floats() | toml_text
)
toml_values = st.recursive(
    toml_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(toml_text, children, max_size=4)
    ),
    max_leaves=12,
)
VALID_DOCUMENT: dict[str, Any] = {
    "description": "fuzzed",
    "probes": ["block.latency", "block.queue"],
    "workload": {"kind": "fio", "job": "job.fio", "options": {"bs": "4k", "iodepth": 2}},
    "rounds": {"count": 5, "warmup": 1, "seconds": 2.5},
    "thresholds": {"fio.iops.*": 0.1, "block.latency.*.p50": 0.2},
}


replacements = (
    toml_values
    | st.integers(min_value=-5, max_value=200)
    | st.floats(min_value=-1, max_value=5000)
    | st.sampled_from(["fio", "sockperf", "job.fio", "missing.fio", "nope", "", "a.b"])
)


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    """The valid document with one node replaced, deleted, or given an extra key."""
    document = copy.deepcopy(VALID_DOCUMENT)
    where = draw(st.sampled_from(node_paths(document)[1:]))
    parent = document
    for step in where[:-1]:
        parent = parent[step]
    action = draw(st.sampled_from(["replace", "delete", "add key"]))
    if action == "replace":
        parent[where[-1]] = draw(replacements)
    elif action == "delete":
        del parent[where[-1]]
    elif isinstance(parent, dict):
        parent[draw(toml_text)] = draw(replacements)
    return document


scenario_documents = st.one_of(
    mutated_documents(), st.dictionaries(toml_text, toml_values, max_size=4)
)


@FUZZ_SETTINGS
@given(document=scenario_documents)
def test_fuzz_toml_documents(fuzz_dir: Path, document: dict[str, Any]) -> None:
    path = fuzz_dir / "fuzzed.toml"
    path.write_text(toml_document(document), encoding="utf-8")
    load_expecting_only_scenario_error(path)


def test_fuzz_dumper_writes_valid_scenarios(fuzz_dir: Path) -> None:
    # Guards the fuzz test above against a dumper that only ever produces syntax errors.
    document = {
        "description": 'quote " and \\ and\ttab',
        "probes": ["block.latency"],
        "workload": {"kind": "fio", "job": "job.fio", "options": {"bs": "4k", "iodepth": 2}},
        "rounds": {"count": 3, "seconds": 0.5},
        "thresholds": {"fio.iops.*": 0.25},
    }
    path = fuzz_dir / "dumped.toml"
    path.write_text(toml_document(document), encoding="utf-8")
    scenario = load_scenario(path, KNOWN_PROBES)
    assert scenario.description == 'quote " and \\ and tab'
    assert dict(scenario.workload.options) == {"bs": "4k", "iodepth": "2"}
    assert scenario.threshold_for("fio.iops.read") == 0.25


# -- block_sample -------------------------------------------------------------------------


def test_block_sample_defaults_to_every_request_and_is_read(tmp_path: Path) -> None:
    assert load_scenario(write_scenario(tmp_path, WORKLOAD)).block_sample == 1
    text = 'probes = ["block.latency"]\nblock_sample = 16\n' + WORKLOAD
    assert load_scenario(write_scenario(tmp_path, text)).block_sample == 16


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            'probes = ["block.latency"]\nblock_sample = 0\n',
            "'block_sample' must be from 1 to 1024, got 0",
        ),
        (
            'probes = ["block.latency"]\nblock_sample = true\n',
            "'block_sample' must be an integer (time 1 request in N), got boolean",
        ),
        (
            'probes = ["block.latency", "block.queue_latency"]\nblock_sample = 4\n',
            "block.queue_latency times every request from its insertion and cannot be sampled",
        ),
        (
            'probes = ["sched.runqlat"]\nblock_sample = 4\n',
            "'block_sample' applies to the probes block.latency and block.size",
        ),
    ],
)
def test_bad_block_sample_is_one_line_naming_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_scenario(tmp_path, text + WORKLOAD))
    message = str(info.value)
    assert expected in message and "\n" not in message


def test_ab_thresholds_are_what_perfcheck_ab_applies(tmp_path: Path) -> None:
    text = (
        WORKLOAD
        + '[thresholds]\n"*.p99" = 2.0\n"fio.iops.*" = 0.35\n'
        + '[ab_thresholds]\n"*.p99" = 0.2\n'
    )
    scenario = load_scenario(write_scenario(tmp_path, text))
    assert scenario.threshold_for("block.latency.read.p99") == 2.0
    assert scenario.ab_threshold_for("block.latency.read.p99") == 0.2
    # Where [ab_thresholds] has no key, the gate's default applies, not [thresholds].
    assert scenario.ab_threshold_for("fio.iops.read") is None
    # Without the table, perfcheck ab applies [thresholds].
    plain = load_scenario(write_scenario(tmp_path, WORKLOAD + '[thresholds]\n"*.p99" = 2.0\n'))
    assert plain.ab_thresholds is None and plain.ab_threshold_for("x.p99") == 2.0
    message = scenario_error(write_scenario(tmp_path, WORKLOAD + '[ab_thresholds]\n"x" = 0\n'))
    assert "'ab_thresholds.x' must be above 0" in message
