"""Scenario files: what to run, what to probe, how often, and what counts as a regression.

A scenario is a TOML file under ``scenarios/``; its name is the file name without
``.toml`` (letters, digits, ``.``, ``_``, ``-``; it names the baseline file too).
Example, ``scenarios/randread-4k.toml``::

    description = "4 KiB random read, queue depth 1, direct I/O"
    probes = ["block.latency"]

    [workload]
    kind = "fio"
    job = "randread-4k.fio"

    [workload.options]
    iodepth = 1

    [rounds]
    count = 5
    warmup = 1
    seconds = 5.0

    [thresholds]
    "block.latency.*.p50" = 0.10
    "fio.iops.*" = 0.10

Keys (anything else is an error that names the closest allowed key):

``description`` (string, optional)
    One line shown in reports. Runs of whitespace, newlines included, become
    single spaces.
``probes`` (array of strings, optional, default ``[]``)
    Probe names from the probe catalog, e.g. ``"block.latency"``. With no probes
    only the workload's own report (fio's latencies and IOPS) is measured.
``[workload]`` (table, required)
    ``kind`` (string, required): the workload tool: ``"fio"`` (disk I/O), or
    ``"sockperf"`` or ``"iperf3"`` (network load in a private network namespace, see
    :mod:`perfcheck.workloads.netload`), or ``"command"`` (any command). The other keys
    depend on the kind.

    For ``kind = "fio"``:
    ``job`` (string, required): the fio job file, relative to the scenario file.
    ``[workload.options]`` (table, optional): extra fio command-line options,
    ``name = value``; values are strings or numbers and are passed as
    ``--name=value``. Here and in the job file only the options of
    :data:`perfcheck.workloads.fio.ALLOWED_OPTIONS` are allowed (README, Safety).

    For ``kind = "sockperf"`` (ping-pong, request/response latency):
    ``protocol`` (string ``"tcp"`` or ``"udp"``, default ``"tcp"``).
    ``message_size`` (integer 14..65507, default 64): bytes per message.

    For ``kind = "iperf3"`` (bulk TCP throughput):
    ``streams`` (integer 1..128, default 1): parallel TCP streams (``iperf3 -P``).

    For ``kind = "command"`` (any command, see :mod:`perfcheck.workloads.command`):
    ``command`` (array of strings, an argv) or ``shell`` (string, run by ``/bin/sh -c``),
    exactly one. ``seconds`` (number 0.5..3600, optional): repeat the command until the
    round has lasted that long, which is then the round's length (``[rounds] seconds``
    does not apply); without it, one run per round. ``cwd`` (string, optional): the
    directory it runs in, relative to the scenario file (default: a temporary
    directory of the run). ``[workload.env]`` (table, optional): ``NAME = "value"`` added
    to its environment (not ``PERFCHECK_*``). ``timeout`` (number 0.1..86400, default
    600): seconds one run may take. ``writes`` (boolean, default false): it writes to its
    target. ``netns`` (boolean, default false): it runs in a private network namespace.
    ``[[workload.metrics]]`` (array of tables, optional): ``name``, ``direction``
    (``"lower"`` or ``"higher"`` is better), ``json`` (a path such as ``"a.b[0]"``) or
    ``regex`` (one capture group), exactly one; ``stream`` (``"stdout"``, the default,
    or ``"stderr"``), ``unit`` (string).

    For both network kinds:
    ``server_cpu``, ``client_cpu`` (integer, optional): pin the server or the client
    to that CPU; unpinned when absent.
    ``qdisc`` (string, optional): a root qdisc on the namespace's ``lo``, as ``tc``
    spells it after ``root``: ``"tbf rate 1gbit burst 512kb latency 20ms"``, or
    ``"htb rate 1gbit"`` (an htb root with one default class of those parameters).
    Network rounds last whole seconds (``seconds`` rounded, at least 1).
``[target]`` (table, optional; disk scenarios only)
    A filesystem made on the block target, the workload run in it (fio's ``directory=``,
    set by perfcheck); see :mod:`perfcheck.system.filesystems` and docs/scenarios.md.
    ``filesystem`` (string, required: ``"ext4"``, ``"xfs"`` or ``"btrfs"``);
    ``mkfs_options`` (array of strings, default ``[]``): argv words after mkfs's own,
    each flag and value on its allow-list; ``mount_options`` (string, default ``""``):
    ``mount -o`` options on its allow-list. Absent: the workload runs on the raw target.
``[ab_thresholds]`` (table, optional)
    The thresholds ``perfcheck ab`` applies instead of ``[thresholds]``, in the same
    form; where no key matches, the gate's default. Both sides of an interleaved run
    share one session, so thresholds widened to the spread between sessions (as the
    shipped disk scenarios' are) would hide what ``perfcheck ab`` can see. Without the
    table ``perfcheck ab`` uses ``[thresholds]``.
``block_sample`` (integer 1..1024, optional, default 1)
    Time 1 block request in N, chosen at random at issue, for ``block.latency`` and
    ``block.size`` (not ``block.queue_latency``, which must see every insertion). For
    very fast devices: the probe's cost per request falls, the latency distribution is
    the same, the request counts are 1/N. Baselines record it, and a measurement
    sampled differently from its baseline is refused.
``[rounds]`` (table, optional)
    ``count`` (integer 3..100, default 5): measured rounds; ``pytest
    --perfcheck-rounds`` overrides it. ``warmup`` (integer 0..10, default 1):
    rounds run first and discarded. ``seconds`` (number 0.5..3600, default 5.0):
    runtime of each round.
``[thresholds]`` (table, optional)
    Relative change that counts as a regression, per metric, as a number in
    (0, 10]: ``0.10`` means 10 %. Keys are metric names (``"fio.iops.read"``,
    ``"block.latency.read.p99"``) or fnmatch patterns (``"block.latency.*.p50"``);
    quote them, since they contain dots (unquoted dotted keys work too and are
    read as the same name). For a given metric the most specific key wins: an
    exact name beats any pattern; among patterns the longest wins, then the one
    with fewer wildcards, then the alphabetically first. A metric no key matches
    uses the default threshold of whoever compares.

Every problem found in a scenario file is a one-line ``ScenarioError`` naming the
file and the key at fault.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import math
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from perfcheck.errors import ScenarioError
from perfcheck.files import read_text_file
from perfcheck.model.names import name_problem
from perfcheck.probes.block import MAX_SAMPLE_EVERY, SAMPLED_PROBES, BlockQueueLatencyProbe
from perfcheck.system.filesystems import (
    FilesystemSpec,
    filesystem_problem,
    mkfs_options_problem,
    mount_options_problem,
)
from perfcheck.system.netns import parse_qdisc
from perfcheck.text import COMMON_TYPE_NAMES, clipped_repr, one_line, type_name
from perfcheck.workloads.command import (
    DIRECTIONS,
    ENV_NAME_RE,
    METRIC_NAME_RE,
    RESERVED_ENV_PREFIX,
    STREAMS,
    TIMEOUT_RANGE,
    CommandMetricSpec,
    CommandSpec,
    parse_json_path,
    regex_problem,
)
from perfcheck.workloads.fio import workload_option_problem
from perfcheck.workloads.netload import (
    CPU_RANGE,
    MESSAGE_SIZE_RANGE,
    NETWORK_KINDS,
    SOCKPERF_PROTOCOLS,
    STREAMS_RANGE,
    NetworkSpec,
)

WORKLOAD_KINDS: tuple[str, ...] = ("fio", *NETWORK_KINDS, "command")
DEFAULT_ROUNDS = 5
DEFAULT_WARMUP = 1
DEFAULT_ROUND_SECONDS = 5.0
ROUNDS_RANGE = (3, 100)
WARMUP_RANGE = (0, 10)
ROUND_SECONDS_RANGE = (0.5, 3600.0)
MAX_THRESHOLD = 10.0
#: Scenario files are hand-written and small; anything bigger is not one.
MAX_SCENARIO_BYTES = 1024 * 1024
SCENARIO_FIX = "give the path of a scenario *.toml file (see docs/scenarios.md)"

_TOP_KEYS = (
    "description",
    "probes",
    "block_sample",
    "workload",
    "rounds",
    "thresholds",
    "ab_thresholds",
    "target",
)
_TARGET_KEYS = ("filesystem", "mkfs_options", "mount_options")
_WORKLOAD_KEYS = ("kind", "job", "options")
_NETWORK_COMMON_KEYS = ("kind", "server_cpu", "client_cpu", "qdisc")
_NETWORK_WORKLOAD_KEYS = {
    "sockperf": (*_NETWORK_COMMON_KEYS, "protocol", "message_size"),
    "iperf3": (*_NETWORK_COMMON_KEYS, "streams"),
}
_COMMAND_KEYS = (
    "kind",
    "command",
    "shell",
    "seconds",
    "cwd",
    "env",
    "timeout",
    "writes",
    "netns",
    "metrics",
)
_COMMAND_METRIC_KEYS = ("name", "json", "regex", "unit", "direction", "stream")
_ROUNDS_KEYS = ("count", "warmup", "seconds")
_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_OPTION_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_METRIC_KEY_RE = re.compile(r"[A-Za-z0-9_.*?\[\]!-]+")
_WILDCARD_CHARS = frozenset("*?[")
_TOML_LOCATION_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


@dataclass(frozen=True)
class WorkloadSpec:
    """The workload a scenario runs: the tool, its job file and extra options (fio), or
    its network settings (``network``, for the network kinds; ``job`` is then None)."""

    kind: str
    job: Path | None
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    network: NetworkSpec | None = None
    command: CommandSpec | None = None


@dataclass(frozen=True)
class Scenario:
    """One scenario file, validated. Build it with :func:`load_scenario`."""

    name: str
    path: Path
    description: str
    workload: WorkloadSpec
    probes: tuple[str, ...]
    rounds: int
    warmup: int
    round_seconds: float
    thresholds: Mapping[str, float] = field(hash=False)
    #: Time 1 block request in this many (``block_sample``; 1: every request).
    block_sample: int = 1
    #: ``[ab_thresholds]``: what ``perfcheck ab`` applies instead of ``thresholds``.
    ab_thresholds: Mapping[str, float] | None = field(default=None, hash=False)
    #: ``[target]``: a filesystem made on the block target for the workload, or None (raw).
    filesystem: FilesystemSpec | None = None

    def ab_threshold_for(self, metric: str) -> float | None:
        """The threshold ``perfcheck ab`` applies: from ``[ab_thresholds]`` when the
        scenario has that table (the gate's default where no key matches), else as
        :meth:`threshold_for`."""
        if self.ab_thresholds is None:
            return self.threshold_for(metric)
        return threshold_for(self.ab_thresholds, metric)

    def threshold_for(self, metric: str) -> float | None:
        """The threshold of the most specific key matching ``metric``, or None.

        >>> s = Scenario("s", Path("s.toml"), "", WorkloadSpec("fio", Path("j.fio")), (),
        ...              5, 1, 5.0, {"fio.*": 0.2, "fio.iops.*": 0.1, "fio.iops.read": 0.05})
        >>> s.threshold_for("fio.iops.read"), s.threshold_for("fio.iops.write")
        (0.05, 0.1)
        >>> s.threshold_for("fio.clat.read.p99"), s.threshold_for("block.latency.read.p99")
        (0.2, None)
        """
        return threshold_for(self.thresholds, metric)


def threshold_for(thresholds: Mapping[str, float], metric: str) -> float | None:
    """The value of the most specific key of ``thresholds`` matching ``metric``, or None:
    an exact name, else the longest pattern, then the one with fewer wildcards."""
    if metric in thresholds:
        return thresholds[metric]
    matching = [key for key in thresholds if fnmatch.fnmatchcase(metric, key)]
    if not matching:
        return None
    best = min(matching, key=lambda key: (-len(key), _wildcard_count(key), key))
    return thresholds[best]


def load_scenario(path: Path, known_probes: Collection[str] | None = None) -> Scenario:
    """Read and validate one scenario file.

    ``known_probes``, when given, is the probe catalog the ``probes`` list is
    checked against. Every problem is a one-line ``ScenarioError`` naming ``path``.
    """
    path = Path(path)
    data = _read_toml(path)
    return _ScenarioReader(path, known_probes).read(data)


def discover_scenarios(directory: Path) -> list[Path]:
    """The scenario files (``*.toml``, hidden files skipped) in ``directory``, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ScenarioError(
            f"{directory}: no such scenario directory; pass a directory of *.toml scenario files"
        )
    return sorted(p for p in directory.glob("*.toml") if p.is_file() and not p.name.startswith("."))


def _read_toml(path: Path) -> dict[str, Any]:
    text = read_text_file(
        path,
        noun="scenario file",
        fix=SCENARIO_FIX,
        error=ScenarioError,
        max_bytes=MAX_SCENARIO_BYTES,
    )
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_LOCATION_RE.search(message)
        if match:
            location = f"{path}:{match.group(1)}:{match.group(2)}"
            message = message[: match.start()]
        else:
            message = message.replace("(at end of document)", "").strip()
            location = f"{path}:{text.count(chr(10)) + 1}"
        raise ScenarioError(
            f"{location}: invalid TOML: {one_line(message)}; fix the syntax (https://toml.io)"
        ) from exc
    except RecursionError as exc:
        raise ScenarioError(f"{path}: invalid TOML: nested too deeply") from exc


class _ScenarioReader:
    """Turns one parsed TOML document into a Scenario, with one-line errors."""

    def __init__(self, path: Path, known_probes: Collection[str] | None) -> None:
        self.path = path
        self.known_probes = None if known_probes is None else sorted(set(known_probes))

    def fail(self, message: str) -> NoReturn:
        raise ScenarioError(f"{self.path}: {message}")

    def read(self, data: dict[str, Any]) -> Scenario:
        name = self.path.name.removesuffix(".toml")
        problem = name_problem(name)
        if problem is not None:
            self.fail(f"scenario name {name!r} (the file name) {problem}; rename the file")
        self.check_keys(data, _TOP_KEYS, ())

        description = data.get("description", "")
        self.check_type(description, str, ("description",), "a string")
        probes = self.read_probes(data.get("probes", []))

        if "workload" not in data:
            self.fail('missing table [workload] (with kind = "fio" and job = "<job file>")')
        workload = self.read_workload(data["workload"])

        rounds_table = data.get("rounds", {})
        self.check_type(rounds_table, dict, ("rounds",), "a table")
        self.check_keys(rounds_table, _ROUNDS_KEYS, ("rounds",))
        rounds = self.read_int(rounds_table, "count", DEFAULT_ROUNDS, ROUNDS_RANGE)
        warmup = self.read_int(rounds_table, "warmup", DEFAULT_WARMUP, WARMUP_RANGE)
        seconds = self.read_seconds(rounds_table)
        if workload.command is not None:
            seconds = self.command_round_seconds(workload.command, rounds_table)

        thresholds = self.read_thresholds(data.get("thresholds", {}))
        block_sample = self.read_block_sample(data, probes)
        ab_thresholds = None
        if "ab_thresholds" in data:
            ab_thresholds = self.read_thresholds(data["ab_thresholds"], "ab_thresholds")
        filesystem = None
        if "target" in data:
            if workload.network is not None:
                self.fail(
                    f"[target] applies to disk scenarios; a {workload.kind} scenario runs in"
                    " a network namespace: remove [target]"
                )
            filesystem = self.read_target(data["target"])
        return Scenario(
            name=name,
            path=self.path.resolve(),
            description=" ".join(description.split()),
            workload=workload,
            probes=probes,
            rounds=rounds,
            warmup=warmup,
            round_seconds=seconds,
            thresholds=thresholds,
            block_sample=block_sample,
            ab_thresholds=ab_thresholds,
            filesystem=filesystem,
        )

    def read_target(self, table: Any) -> FilesystemSpec:
        """``[target]``: the filesystem to make on the block target, its mkfs and mount
        options, each checked against the allow-lists of perfcheck.system.filesystems."""
        self.check_type(table, dict, ("target",), "a table")
        self.check_keys(table, _TARGET_KEYS, ("target",))
        if "filesystem" not in table:
            self.fail("missing key 'target.filesystem' in [target] (e.g. filesystem = \"ext4\")")
        kind = table["filesystem"]
        self.check_type(kind, str, ("target", "filesystem"), "a string")
        problem = filesystem_problem(kind)
        if problem is not None:
            self.fail(f"'target.filesystem': {problem}")
        mkfs = table.get("mkfs_options", [])
        self.check_type(mkfs, list, ("target", "mkfs_options"), "an array of strings")
        for index, word in enumerate(mkfs):
            key = ("target", "mkfs_options", f"[{index}]")
            self.check_type(word, str, key, "a string (one argument)")
        problem = mkfs_options_problem(kind, mkfs)
        if problem is not None:
            self.fail(f"'target.mkfs_options': {problem}")
        mount = table.get("mount_options", "")
        self.check_type(mount, str, ("target", "mount_options"), "a string such as 'noatime'")
        problem = mount_options_problem(kind, mount)
        if problem is not None:
            self.fail(f"'target.mount_options': {problem}")
        return FilesystemSpec(kind=kind, mkfs_options=tuple(mkfs), mount_options=mount)

    def read_block_sample(self, data: Mapping[str, Any], probes: tuple[str, ...]) -> int:
        if "block_sample" not in data:
            return 1
        value = data["block_sample"]
        self.check_type(value, int, ("block_sample",), "an integer (time 1 request in N)")
        if not 1 <= value <= MAX_SAMPLE_EVERY:
            self.fail(f"'block_sample' must be from 1 to {MAX_SAMPLE_EVERY}, got {value}")
        # Sampling is decided at issue, so a queue latency (from insertion) would be wrong.
        queue = BlockQueueLatencyProbe.name
        if value > 1 and queue in probes:
            self.fail(
                f"'block_sample' = {value}: {queue} times every request from its"
                f" insertion and cannot be sampled; drop block_sample or {queue}"
            )
        if value > 1 and not set(SAMPLED_PROBES) & set(probes):
            self.fail(
                f"'block_sample' applies to the probes {' and '.join(SAMPLED_PROBES)}, and"
                " probes lists neither; drop block_sample"
            )
        return int(value)

    def check_keys(
        self, table: Mapping[str, Any], allowed: tuple[str, ...], where: tuple[str, ...]
    ) -> None:
        for key in table:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            scope = f"in [{'.'.join(where)}]" if where else "at the top level"
            self.fail(
                f"unknown key {_key_path(*where, key)}{hint}; "
                f"allowed keys {scope}: {', '.join(sorted(allowed))}"
            )

    def check_type(
        self,
        value: Any,
        expected: type | tuple[type, ...],
        key: tuple[str, ...],
        expected_name: str,
    ) -> None:
        # bool is an int in Python but never a number in a scenario.
        if isinstance(value, bool) and bool not in _as_tuple(expected):
            ok = False
        else:
            ok = isinstance(value, expected)
        if not ok:
            self.fail(
                f"{_key_path(*key)} must be {expected_name}, "
                f"got {_toml_type(value)} {_toml_repr(value)}"
            )

    def read_probes(self, probes: Any) -> tuple[str, ...]:
        self.check_type(probes, list, ("probes",), "an array of probe names")
        seen: list[str] = []
        for index, probe in enumerate(probes):
            self.check_type(probe, str, ("probes", f"[{index}]"), "a probe name (string)")
            if probe in seen:
                self.fail(f"probe {_toml_repr(probe)} is listed twice in probes")
            if self.known_probes is not None and probe not in self.known_probes:
                close = difflib.get_close_matches(probe, self.known_probes, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                known = ", ".join(self.known_probes) or "(none)"
                self.fail(
                    f"unknown probe {_toml_repr(probe)} in probes{hint}; known probes: {known}"
                )
            seen.append(probe)
        return tuple(seen)

    def read_workload(self, table: Any) -> WorkloadSpec:
        self.check_type(table, dict, ("workload",), "a table")
        kind = table.get("kind")
        if isinstance(kind, str) and kind in NETWORK_KINDS:
            return self.read_network_workload(table, kind)
        if kind == "command":
            return self.read_command_workload(table)
        if isinstance(kind, str) and kind not in WORKLOAD_KINDS:
            self.fail(
                f"'workload.kind' {_toml_repr(kind)} is not supported; supported kinds: "
                f"{', '.join(WORKLOAD_KINDS)}"
            )
        self.check_keys(table, _WORKLOAD_KEYS, ("workload",))
        for required in ("kind", "job"):
            if required not in table:
                self.fail(f"missing key {_key_path('workload', required)} in [workload]")
        kind = table["kind"]
        self.check_type(kind, str, ("workload", "kind"), "a string")
        if kind not in WORKLOAD_KINDS:
            self.fail(
                f"'workload.kind' {_toml_repr(kind)} is not supported; supported kinds: "
                f"{', '.join(WORKLOAD_KINDS)}"
            )
        job = table["job"]
        self.check_type(job, str, ("workload", "job"), "a path to the job file (string)")
        if not job.strip() or "\0" in job:
            self.fail(f"'workload.job' {_toml_repr(job)} is not a file name")
        try:
            job_path = (self.path.parent / job).resolve()
            job_is_file = job_path.is_file()
        except (OSError, RuntimeError, ValueError) as exc:
            self.fail(f"'workload.job' {_toml_repr(job)} cannot be resolved ({one_line(str(exc))})")
        if not job_is_file:
            self.fail(
                f"'workload.job' {_toml_repr(job)} resolves to {job_path}, which is not an "
                f"existing file; job paths are relative to the scenario file"
            )
        options = self.read_options(table.get("options", {}))
        return WorkloadSpec(kind=kind, job=job_path, options=options)

    def command_round_seconds(self, spec: CommandSpec, rounds_table: Mapping[str, Any]) -> float:
        # A command round is one run, or runs repeated for workload.seconds: one length.
        if "seconds" in rounds_table:
            self.fail(
                "'rounds.seconds' does not apply to a command scenario (a round is one run);"
                " set 'workload.seconds' to repeat the command for that long"
            )
        return spec.seconds if spec.seconds is not None else DEFAULT_ROUND_SECONDS

    def read_command_workload(self, table: Mapping[str, Any]) -> WorkloadSpec:
        self.check_keys(table, _COMMAND_KEYS, ("workload",))
        if ("command" in table) == ("shell" in table):
            self.fail(
                "a command scenario needs exactly one of 'workload.command' (an argv array)"
                " and 'workload.shell' (a string for /bin/sh -c)"
            )
        argv = shell = None
        if "command" in table:
            argv = table["command"]
            self.check_type(argv, list, ("workload", "command"), "an array of strings (argv)")
            if not argv:
                self.fail("'workload.command' is empty; give the program and its arguments")
            for index, word in enumerate(argv):
                self.check_type(word, str, ("workload", "command", f"[{index}]"), "a string")
                if "\0" in word:
                    self.fail(f"'workload.command[{index}]' holds a NUL character")
            if not argv[0]:
                self.fail("'workload.command[0]' is empty; give the program to run")
        else:
            shell = table["shell"]
            self.check_type(shell, str, ("workload", "shell"), "a string (run by /bin/sh -c)")
            if not shell.strip() or "\0" in shell:
                self.fail("'workload.shell' must be a non-empty command without NUL characters")
        seconds = None
        if "seconds" in table:
            seconds = self.read_workload_number(table, "seconds", ROUND_SECONDS_RANGE)
        timeout = self.read_workload_number(table, "timeout", TIMEOUT_RANGE)
        spec = CommandSpec(
            argv=None if argv is None else tuple(argv),
            shell=shell,
            seconds=seconds,
            cwd=self.read_command_cwd(table),
            env=self.read_command_env(table.get("env", {})),
            writes=self.read_workload_bool(table, "writes"),
            netns=self.read_workload_bool(table, "netns"),
            metrics=self.read_command_metrics(table.get("metrics", [])),
            **({} if timeout is None else {"timeout": timeout}),
        )
        return WorkloadSpec(kind="command", job=None, command=spec)

    def read_workload_number(
        self, table: Mapping[str, Any], key: str, bounds: tuple[float, float]
    ) -> float | None:
        if key not in table:
            return None
        value = table[key]
        self.check_type(value, (int, float), ("workload", key), "a number of seconds")
        low, high = bounds
        if not low <= value <= high:
            self.fail(f"'workload.{key}' must be from {low:g} to {high:g}, got {value}")
        return float(value)

    def read_workload_bool(self, table: Mapping[str, Any], key: str) -> bool:
        value = table.get(key, False)
        self.check_type(value, bool, ("workload", key), "true or false")
        return bool(value)

    def read_command_cwd(self, table: Mapping[str, Any]) -> Path | None:
        if "cwd" not in table:
            return None
        cwd = table["cwd"]
        self.check_type(cwd, str, ("workload", "cwd"), "a directory (string)")
        if not cwd.strip() or "\0" in cwd:
            self.fail(f"'workload.cwd' {_toml_repr(cwd)} is not a directory name")
        path: Path = (self.path.parent / cwd).resolve()
        if not path.is_dir():
            self.fail(
                f"'workload.cwd' {_toml_repr(cwd)} resolves to {path}, which is not an existing"
                " directory; it is relative to the scenario file"
            )
        return path

    def read_command_env(self, table: Any) -> Mapping[str, str]:
        self.check_type(table, dict, ("workload", "env"), 'a table of NAME = "value"')
        env: dict[str, str] = {}
        for name, value in table.items():
            key = ("workload", "env", name)
            if not ENV_NAME_RE.fullmatch(name):
                self.fail(f"{_key_path(*key)} is not an environment variable name")
            if name.startswith(RESERVED_ENV_PREFIX):
                self.fail(f"{_key_path(*key)}: {RESERVED_ENV_PREFIX}* variables are perfcheck's")
            self.check_type(value, (str, int, float), key, "a string or a number")
            if "\0" in str(value):
                self.fail(f"{_key_path(*key)} holds a NUL character")
            env[name] = str(value)
        return MappingProxyType(dict(sorted(env.items())))

    def read_command_metrics(self, metrics: Any) -> tuple[CommandMetricSpec, ...]:
        self.check_type(metrics, list, ("workload", "metrics"), "an array of tables")
        specs: list[CommandMetricSpec] = []
        for index, table in enumerate(metrics):
            where = ("workload", "metrics", f"[{index}]")
            self.check_type(table, dict, where, "a table")
            self.check_keys(table, _COMMAND_METRIC_KEYS, where)
            for required in ("name", "direction"):
                if required not in table:
                    self.fail(f"missing key {_key_path(*where, required)}")
            name = table["name"]
            self.check_type(name, str, (*where, "name"), "a string")
            if not METRIC_NAME_RE.fullmatch(name) or len(name) > 64:
                self.fail(
                    f"{_key_path(*where, 'name')} {_toml_repr(name)} must be up to 64 letters,"
                    " digits, '_' or '-'"
                )
            if any(s.name == name for s in specs):
                self.fail(f"metric {_toml_repr(name)} is defined twice in workload.metrics")
            direction = table["direction"]
            self.check_type(direction, str, (*where, "direction"), "a string")
            if direction not in DIRECTIONS:
                self.fail(
                    f"{_key_path(*where, 'direction')} must be 'lower' or 'higher' (which is"
                    f" better), got {_toml_repr(direction)}"
                )
            if ("json" in table) == ("regex" in table):
                self.fail(f"{_key_path(*where)} needs exactly one of 'json' and 'regex'")
            json_path = None
            if "json" in table:
                text = table["json"]
                self.check_type(text, str, (*where, "json"), "a JSON path such as 'a.b[0].c'")
                try:
                    json_path = parse_json_path(text)
                except ValueError as exc:
                    self.fail(f"{_key_path(*where, 'json')}: {exc}")
            regex = table.get("regex")
            if regex is not None:
                self.check_type(regex, str, (*where, "regex"), "a regular expression")
                problem = regex_problem(regex)
                if problem is not None:
                    self.fail(f"{_key_path(*where, 'regex')} {problem}")
            unit = table.get("unit", "")
            self.check_type(unit, str, (*where, "unit"), "a string")
            stream = table.get("stream", "stdout")
            self.check_type(stream, str, (*where, "stream"), "a string")
            if stream not in STREAMS:
                self.fail(f"{_key_path(*where, 'stream')} must be 'stdout' or 'stderr'")
            specs.append(
                CommandMetricSpec(
                    name=name,
                    direction=direction,
                    unit=one_line(unit, 32),
                    json=json_path,
                    regex=regex,
                    stream=stream,
                )
            )
        return tuple(specs)

    def read_network_workload(self, table: Mapping[str, Any], kind: str) -> WorkloadSpec:
        self.check_keys(table, _NETWORK_WORKLOAD_KEYS[kind], ("workload",))
        protocol = table.get("protocol", "tcp")
        self.check_type(protocol, str, ("workload", "protocol"), "a string")
        if protocol not in SOCKPERF_PROTOCOLS:
            self.fail(
                f"'workload.protocol' {_toml_repr(protocol)} is not supported; use"
                f" {' or '.join(repr(p) for p in SOCKPERF_PROTOCOLS)}"
            )
        qdisc = None
        if "qdisc" in table:
            text = table["qdisc"]
            self.check_type(text, str, ("workload", "qdisc"), "a string such as 'tbf rate 1gbit'")
            try:
                qdisc = parse_qdisc(text)
            except ValueError as exc:
                self.fail(f"'workload.qdisc' {_toml_repr(text)} {exc}")
        message_size = self.read_workload_int(table, "message_size", MESSAGE_SIZE_RANGE)
        streams = self.read_workload_int(table, "streams", STREAMS_RANGE)
        network = NetworkSpec(
            kind=kind,
            protocol=protocol,
            message_size=64 if message_size is None else message_size,
            streams=1 if streams is None else streams,
            server_cpu=self.read_workload_int(table, "server_cpu", CPU_RANGE),
            client_cpu=self.read_workload_int(table, "client_cpu", CPU_RANGE),
            qdisc=qdisc,
        )
        return WorkloadSpec(kind=kind, job=None, network=network)

    def read_workload_int(
        self, table: Mapping[str, Any], key: str, bounds: tuple[int, int]
    ) -> int | None:
        """An optional integer key of [workload] within ``bounds``; None when absent."""
        if key not in table:
            return None
        value = table[key]
        self.check_type(value, int, ("workload", key), "an integer")
        low, high = bounds
        if not low <= value <= high:
            self.fail(f"'workload.{key}' must be from {low} to {high}, got {value}")
        return int(value)

    def read_options(self, table: Any) -> Mapping[str, str]:
        key = ("workload", "options")
        self.check_type(table, dict, key, "a table of fio options")
        options: dict[str, str] = {}
        for name, value in table.items():
            if not _OPTION_NAME_RE.fullmatch(name):
                self.fail(f"{_key_path(*key, name)} is not a fio option name")
            self.check_type(value, (str, int, float), (*key, name), "a string or a number")
            if isinstance(value, float) and not math.isfinite(value):
                self.fail(f"{_key_path(*key, name)} must be a finite number, got {value}")
            text = str(value)
            if any(ch in text for ch in "\0\n\r"):
                self.fail(f"{_key_path(*key, name)} must be one line")
            problem = workload_option_problem(name, text)
            if problem is not None:
                self.fail(f"{_key_path(*key, name)}: {problem}")
            options[name] = text
        return MappingProxyType(dict(sorted(options.items())))

    def read_int(
        self, table: Mapping[str, Any], key: str, default: int, bounds: tuple[int, int]
    ) -> int:
        value = table.get(key, default)
        self.check_type(value, int, ("rounds", key), "an integer")
        low, high = bounds
        if not low <= value <= high:
            self.fail(f"'rounds.{key}' must be from {low} to {high}, got {value}")
        return int(value)

    def read_seconds(self, table: Mapping[str, Any]) -> float:
        value = table.get("seconds", DEFAULT_ROUND_SECONDS)
        self.check_type(value, (int, float), ("rounds", "seconds"), "a number of seconds")
        low, high = ROUND_SECONDS_RANGE
        if not low <= value <= high:
            self.fail(f"'rounds.seconds' must be from {low:g} to {high:g}, got {value}")
        return float(value)

    def read_thresholds(self, table: Any, name: str = "thresholds") -> Mapping[str, float]:
        self.check_type(table, dict, (name,), "a table of metric = relative change")
        thresholds: dict[str, float] = {}
        for metric, value in _flatten_dotted(table):
            key = (name, metric)
            if not _METRIC_KEY_RE.fullmatch(metric):
                self.fail(
                    f"{_key_path(*key)} is not a metric name or pattern "
                    "(letters, digits, '.', '_', '-' and the wildcards * ? [ ])"
                )
            if metric in thresholds:
                self.fail(f"{_key_path(*key)} is given twice (quoted and as dotted keys)")
            self.check_type(value, (int, float), key, "a relative change such as 0.10")
            if not 0 < value <= MAX_THRESHOLD:
                self.fail(
                    f"{_key_path(*key)} must be above 0 and at most {MAX_THRESHOLD:g} "
                    f"(0.10 means 10 %), got {value}"
                )
            thresholds[metric] = float(value)
        return MappingProxyType(thresholds)


def _flatten_dotted(table: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    # `a.b = 1` in TOML is the table {"a": {"b": 1}}; both spellings mean metric "a.b".
    items: list[tuple[str, Any]] = []
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            items.extend(_flatten_dotted(value, name))
        else:
            items.append((name, value))
    return items


def _wildcard_count(pattern: str) -> int:
    return sum(1 for ch in pattern if ch in _WILDCARD_CHARS)


def _as_tuple(expected: type | tuple[type, ...]) -> tuple[type, ...]:
    return expected if isinstance(expected, tuple) else (expected,)


def _key_path(*parts: str) -> str:
    """``("thresholds", "fio.iops.*")`` -> ``'thresholds."fio.iops.*"'``, as TOML spells it."""
    text = ""
    for part in parts:
        if part.startswith("["):
            text += part
            continue
        if not _BARE_KEY_RE.fullmatch(part):
            part = json.dumps(part if len(part) <= 60 else part[:57] + "...", ensure_ascii=False)
        text = f"{text}.{part}" if text else part
    return f"'{text}'"


# datetime before date: a datetime is a date too.
_TOML_TYPES = (
    *COMMON_TYPE_NAMES,
    (float, "float"),
    (dict, "table"),
    (datetime, "datetime"),
    (date, "date"),
    (time, "time"),
)


def _toml_type(value: Any) -> str:
    return type_name(value, _TOML_TYPES)


def _toml_repr(value: object) -> str:
    if isinstance(value, dict):
        return "{...}" if value else "{}"
    if isinstance(value, list):
        return f"[... {len(value)} item(s)]" if value else "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return clipped_repr(value)


SCENARIO_DIR_NAME = "scenarios"
