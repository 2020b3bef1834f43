"""Command scenarios on paper: the [workload] keys and their one-line errors, reading
custom metrics by JSON path and regex, how the gate reads their names."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfcheck.errors import ScenarioError
from perfcheck.model.measurement import Measurement, RoundResult
from perfcheck.model.outcome import Status
from perfcheck.report.html import render_report
from perfcheck.report.results import Results, ScenarioResult
from perfcheck.stats.gate import is_gated
from perfcheck.stats.verdict import Direction, default_rule, format_value
from perfcheck.system.cgroup import WorkloadCgroup
from perfcheck.workloads.command import (
    RATE_METRIC,
    WALL_METRIC,
    CommandMetricSpec,
    CommandRunner,
    CommandSpec,
    json_path_text,
    number_at,
    number_by_regex,
    parse_json_output,
    parse_json_path,
    stderr_tail,
)
from perfcheck.workloads.scenario import load_scenario

FULL = """\
description = "a command"
probes = ["block.latency"]

[workload]
kind = "command"
command = ["dd", "if=/dev/zero", "of=/dev/null"]
seconds = 2.5
cwd = "work"
timeout = 30
writes = true
netns = true

[workload.env]
LC_ALL = "C"
DEPTH = 4

[[workload.metrics]]
name = "tps"
json = "results[0].tps"
unit = "tx/s"
direction = "higher"

[[workload.metrics]]
name = "lat"
regex = 'latency: ([0-9.]+) ms'
stream = "stderr"
direction = "lower"
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "work").mkdir(exist_ok=True)
    path = tmp_path / "cmd.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, ("block.latency",))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message


def test_a_full_command_scenario_is_read(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, FULL), ("block.latency",))
    spec = scenario.workload.command
    assert spec is not None and scenario.workload.kind == "command"
    assert spec.argv == ("dd", "if=/dev/zero", "of=/dev/null") and spec.shell is None
    assert (spec.seconds, spec.timeout, spec.writes, spec.netns) == (2.5, 30.0, True, True)
    assert spec.cwd == (tmp_path / "work").resolve()
    assert dict(spec.env) == {"DEPTH": "4", "LC_ALL": "C"}
    assert scenario.round_seconds == 2.5  # the round is the repeat length
    tps, lat = spec.metrics
    assert (tps.metric, tps.json, tps.unit, tps.stream) == (
        "command.higher_is_better.tps",
        ("results", 0, "tps"),
        "tx/s",
        "stdout",
    )
    assert (lat.metric, lat.regex, lat.stream) == (
        "command.lower_is_better.lat",
        "latency: ([0-9.]+) ms",
        "stderr",
    )
    assert spec.shown == "dd if=/dev/zero of=/dev/null"


def test_a_shell_command_with_defaults(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, '[workload]\nkind = "command"\nshell = "true"\n'))
    spec = scenario.workload.command
    assert spec is not None
    assert (spec.shell, spec.argv, spec.seconds, spec.cwd, spec.writes, spec.netns) == (
        "true",
        None,
        None,
        None,
        False,
        False,
    )
    assert spec.timeout == 600.0 and spec.metrics == ()


@pytest.mark.parametrize(
    ("workload", "expected"),
    [
        ('shell = "true"\ncommand = ["true"]', "exactly one of 'workload.command'"),
        ("", "exactly one of 'workload.command'"),
        ("command = []", "'workload.command' is empty"),
        ('command = [""]', "'workload.command[0]' is empty"),
        ("command = [1]", "'workload.command[0]' must be a string, got integer 1"),
        ('shell = "  "', "'workload.shell' must be a non-empty command"),
        ('shell = "true"\nseconds = 0.1', "'workload.seconds' must be from 0.5 to 3600"),
        ('shell = "true"\ntimeout = 0', "'workload.timeout' must be from 0.1 to 86400"),
        ('shell = "true"\nwrites = 1', "'workload.writes' must be true or false, got integer"),
        ('shell = "true"\ncwd = "absent"', "'workload.cwd' 'absent' resolves to"),
        ('shell = "true"\nenv = {PERFCHECK_DEVICE = "x"}', "PERFCHECK_* variables"),
        ('shell = "true"\nenv = {"A B" = "x"}', "is not an environment variable name"),
        ('shell = "true"\njob = "x.fio"', "unknown key 'workload.job'"),
        ('shell = "true"\ntimeuot = 3', "(did you mean 'timeout'?)"),
    ],
)
def test_bad_workload_keys_are_one_line_errors(
    tmp_path: Path, workload: str, expected: str
) -> None:
    assert expected in error_of(tmp_path, f'[workload]\nkind = "command"\n{workload}\n')


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ('name = "x"\njson = "a"', "missing key 'workload.metrics[0].direction'"),
        ('direction = "lower"\njson = "a"', "missing key 'workload.metrics[0].name'"),
        ('name = "x"\ndirection = "up"\njson = "a"', "must be 'lower' or 'higher'"),
        ('name = "x"\ndirection = "lower"', "needs exactly one of 'json' and 'regex'"),
        ('name = "x"\ndirection = "lower"\njson = "a"\nregex = "(1)"', "exactly one of"),
        ('name = "x"\ndirection = "lower"\njson = "a..b"', "is not a JSON path"),
        ('name = "x"\ndirection = "lower"\nregex = "[0-9]+"', "exactly one capture group"),
        ('name = "x"\ndirection = "lower"\nregex = "(["', "is not a regular expression"),
        ('name = "a.b"\ndirection = "lower"\njson = "a"', "must be up to 64 letters"),
        ('name = "x"\ndirection = "lower"\njson = "a"\nstream = "out"', "'stdout' or 'stderr'"),
        ('name = "x"\ndirection = "lower"\njson = "a"\nunits = "s"', "(did you mean 'unit'?)"),
    ],
)
def test_bad_metrics_are_one_line_errors(tmp_path: Path, metric: str, expected: str) -> None:
    text = f'[workload]\nkind = "command"\nshell = "true"\n[[workload.metrics]]\n{metric}\n'
    assert expected in error_of(tmp_path, text)


def test_a_metric_defined_twice_is_refused(tmp_path: Path) -> None:
    metric = '[[workload.metrics]]\nname = "x"\ndirection = "lower"\njson = "a"\n'
    text = f'[workload]\nkind = "command"\nshell = "true"\n{metric}{metric}'
    assert "metric 'x' is defined twice" in error_of(tmp_path, text)


def test_rounds_seconds_does_not_apply_to_a_command(tmp_path: Path) -> None:
    text = '[workload]\nkind = "command"\nshell = "true"\n[rounds]\nseconds = 2\n'
    assert "set 'workload.seconds' to repeat" in error_of(tmp_path, text)


# -- reading metrics -------------------------------------------------------------------------

json_keys = st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True)
json_numbers = st.one_of(
    st.integers(-(10**12), 10**12), st.floats(allow_nan=False, allow_infinity=False)
)
json_leaves = st.one_of(st.none(), st.booleans(), st.text(max_size=5), json_numbers)
json_documents = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(json_keys, inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def documents_with_a_number(draw: st.DrawFn) -> tuple[Any, tuple[str | int, ...], float]:
    """A JSON document, a path in it, and the number placed at that path."""
    value = draw(json_numbers)
    steps: list[str | int] = []
    node: Any = value
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            siblings = draw(st.lists(json_documents, max_size=3))
            index = draw(st.integers(0, len(siblings)))
            siblings.insert(index, node)
            negative = draw(st.booleans())
            steps.insert(0, index - len(siblings) if negative else index)
            node = siblings
        else:
            others = draw(st.dictionaries(json_keys, json_documents, max_size=3))
            key = draw(json_keys)
            others[key] = node
            steps.insert(0, key)
            node = others
    if not steps:  # a path has at least one step
        node, steps = {"v": node}, ["v"]
    return node, tuple(steps), float(value)


@given(documents_with_a_number())
def test_a_json_path_finds_its_number(case: tuple[Any, tuple[str | int, ...], float]) -> None:
    document, steps, value = case
    text = json_path_text(steps)
    assert parse_json_path(text) == steps
    assert number_at(parse_json_output(json.dumps(document)), parse_json_path(text)) == value


@given(json_documents, st.lists(st.one_of(json_keys, st.integers(-3, 3)), min_size=1, max_size=4))
def test_a_json_path_returns_a_number_or_says_why_not(
    document: Any, steps: list[str | int]
) -> None:
    try:
        value = number_at(document, steps)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert math.isfinite(value)


def test_json_path_errors_say_where_the_path_stops() -> None:
    doc = {"a": {"b": [1, {"c": "x"}]}, "s": "12.5", "t": True}
    with pytest.raises(ValueError, match="a has no key 'c'"):
        number_at(doc, parse_json_path("a.c"))
    with pytest.raises(ValueError, match=r"a.b has 2 item\(s\), no \[2\]"):
        number_at(doc, parse_json_path("a.b[2]"))
    with pytest.raises(ValueError, match=r"a.b\[1\].c is not a number"):
        number_at(doc, parse_json_path("a.b[1].c"))
    with pytest.raises(ValueError, match="a is not a list"):
        number_at(doc, parse_json_path("a[0]"))
    with pytest.raises(ValueError, match="t is not a number"):
        number_at(doc, ("t",))  # true is not 1
    assert number_at(doc, ("s",)) == 12.5  # tools print numbers as strings too
    assert number_at([5, 6], parse_json_path("[-1]")) == 6.0


def test_json_output_may_be_the_last_line_after_other_output() -> None:
    assert parse_json_output('warming up\n{"tps": 3}\n\n') == {"tps": 3}
    with pytest.raises(ValueError, match="not JSON"):
        parse_json_output("tps: 3\n")


@given(
    st.floats(min_value=0, max_value=1e12, allow_nan=False),
    st.text(alphabet="abc xyz:\n", max_size=20),
    st.text(alphabet="abc xyz:\n", max_size=20),
)
def test_a_regex_reads_the_number_it_captures(value: float, before: str, after: str) -> None:
    text = f"{before}\nlatency: {value!r} ms\n{after}"
    assert number_by_regex(text, r"^latency: (\S+) ms$") == value


def test_regex_errors() -> None:
    with pytest.raises(ValueError, match="matches nothing"):
        number_by_regex("nothing here", r"tps=(\d+)")
    with pytest.raises(ValueError, match="is not a number"):
        number_by_regex("tps=abc", r"tps=(\w+)")
    with pytest.raises(ValueError, match="captured nothing"):
        number_by_regex("tps=", r"tps=(\d+)?")


def test_a_metric_reads_its_own_stream() -> None:
    spec = CommandMetricSpec("s", "lower", regex=r"copied, ([0-9.]+) s", stream="stderr")
    assert spec.read(stdout="copied, 9 s", stderr="x\n8 bytes copied, 0.5 s, 16 B/s\n") == 0.5


def test_stderr_tail_is_the_last_lines_on_one_line() -> None:
    assert stderr_tail("a\n\nb\nc\nd\n") == "b | c | d"
    assert stderr_tail("") == "no output on stderr"


# -- how the gate reads command metrics ----------------------------------------------------


def test_command_metrics_gate_in_the_direction_their_names_say() -> None:
    assert default_rule(WALL_METRIC).direction is Direction.HIGHER_IS_WORSE
    assert default_rule(RATE_METRIC).direction is Direction.LOWER_IS_WORSE
    # The name's direction wins over a rate-like ending.
    lower = CommandMetricSpec("rows_per_second", "lower", json=("a",)).metric
    higher = CommandMetricSpec("latency", "higher", json=("a",)).metric
    assert default_rule(lower).direction is Direction.HIGHER_IS_WORSE
    assert default_rule(higher).direction is Direction.LOWER_IS_WORSE
    assert all(is_gated(m) for m in (WALL_METRIC, RATE_METRIC, lower, higher))
    assert format_value(WALL_METRIC, 0.0123) == "12.3 ms"


def test_errors_go_into_the_results_file_and_back() -> None:
    measurement = Measurement("fine", [RoundResult(0, 1.0, {}, {WALL_METRIC: 1.0})], {}, {})
    fine = ScenarioResult(name="fine", status=Status.RECORDED, measurement=measurement)
    message = "scenarios/bad.toml: command `false` exited 1: no output on stderr"
    results = Results({"fine": fine}, "m", errors={"bad": message})
    data = results.to_dict()
    assert data["errors"] == {"bad": message}
    assert Results.from_dict(json.loads(json.dumps(data))).errors == {"bad": message}
    del data["errors"]  # files from before errors existed
    assert Results.from_dict(data).errors == {}


def test_the_shipped_example_reads_and_its_regex_reads_dd() -> None:
    root = Path(__file__).resolve().parents[2]
    scenario = load_scenario(root / "scenarios" / "command-dd-direct.toml")
    spec = scenario.workload.command
    assert spec is not None and spec.shell is not None and "$PERFCHECK_DEVICE" in spec.shell
    (metric,) = spec.metrics
    dd_says = "20000+0 records in\n20000+0 records out\n81920000 bytes (82 MB, 78 MiB) copied,"
    assert metric.read("", dd_says + " 0.473 s, 173 MB/s\n") == 0.473
    assert metric.read("", dd_says + " 1.2e-05 s, 173 GB/s\n") == 1.2e-05
    assert not spec.writes  # it only reads the device


def test_the_runner_sets_only_the_perfcheck_variables_it_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PERFCHECK_MOUNT", "/inherited")  # never passed on unless given
    monkeypatch.setenv("KEPT", "1")
    spec = CommandSpec(shell="true", env=MappingProxyType({"LC_ALL": "C"}))
    cgroup = WorkloadCgroup(path=tmp_path, id=0)
    bare = CommandRunner(spec, tmp_path / "s.toml", cgroup, tmp_path).environment()
    assert "PERFCHECK_MOUNT" not in bare and "PERFCHECK_DEVICE" not in bare
    assert (bare["KEPT"], bare["LC_ALL"]) == ("1", "C")
    given = CommandRunner(
        spec,
        tmp_path / "s.toml",
        cgroup,
        tmp_path,
        device=Path("/dev/loop7"),
        netns="perfcheck-net-1-ab",
        mount=Path("/mnt/fs"),
    ).environment()
    assert (given["PERFCHECK_DEVICE"], given["PERFCHECK_NETNS"], given["PERFCHECK_MOUNT"]) == (
        "/dev/loop7",
        "perfcheck-net-1-ab",
        "/mnt/fs",
    )


def test_the_html_report_lists_errors() -> None:
    message = "scenarios/bad.toml: command `false` exited 1: no output on stderr"
    html = render_report(Results({}, "m", errors={"bad": message}))
    assert "1 ERROR" in html
    assert "bad: scenarios/bad.toml: command `false` exited 1: no output on stderr" in html
