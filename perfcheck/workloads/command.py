"""Any command as a round workload (``kind = "command"``): a program (an argv list, or a
shell string run by ``/bin/sh -c``) that perfcheck times and probes.

Per round the command runs once, or, with ``seconds``, again and again until the round
has lasted that long. Its wall time per run becomes the gated metric
``command.wall_seconds`` (lower is better); with ``seconds`` also
``command.runs_per_second``. Numbers the command prints become custom metrics
(:class:`CommandMetricSpec`), read from its output by a JSON path or a regular expression.

The command starts inside a cgroup of its own (probes that filter on a cgroup time its
tasks only), in a session of its own, tied to perfcheck's life (``PR_SET_PDEATHSIG``).
On a time-out, an interruption (Ctrl-C, SIGTERM) and after every run, whatever is left
in its cgroup is killed (``cgroup.kill``): a command that starts daemons or leaves its
process group leaves nothing behind. Its environment carries ``PERFCHECK_DEVICE`` (the
target), ``PERFCHECK_NETNS`` (the scenario's network namespace) and ``PERFCHECK_MOUNT``
(a filesystem on the target) when the scenario has them.

A failing run (not found, non-zero exit, killed, timed out) or a custom metric that
cannot be read is a one-line :class:`~perfcheck.errors.WorkloadError` naming the
scenario file, the command and the last lines of its standard error: an error, never a
regression.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from perfcheck.errors import WorkloadError
from perfcheck.model.names import HIGHER_IS_BETTER_PART, LOWER_IS_BETTER_PART
from perfcheck.system.cgroup import WorkloadCgroup
from perfcheck.text import one_line
from perfcheck.workloads.fio import die_with_parent
from perfcheck.workloads.rounds import WorkloadReport

#: The metric every command round has: mean wall time of one run, seconds (lower is better).
WALL_METRIC = "command.wall_seconds"
#: With ``seconds``: runs completed per second of the round (higher is better).
RATE_METRIC = "command.runs_per_second"
#: Custom metrics are named ``command.<direction>.<name>``, so the gate reads their
#: direction from the name (perfcheck.stats.verdict.default_rule), as every reader of a
#: results file can.
METRIC_PREFIXES: Mapping[str, str] = MappingProxyType(
    {"lower": f"command.{LOWER_IS_BETTER_PART}.", "higher": f"command.{HIGHER_IS_BETTER_PART}."}
)
DIRECTIONS: tuple[str, ...] = tuple(METRIC_PREFIXES)
STREAMS: tuple[str, ...] = ("stdout", "stderr")
#: Environment variables perfcheck sets for the command; a scenario may not set them.
ENV_DEVICE = "PERFCHECK_DEVICE"
ENV_NETNS = "PERFCHECK_NETNS"
ENV_MOUNT = "PERFCHECK_MOUNT"
RESERVED_ENV_PREFIX = "PERFCHECK_"
DEFAULT_TIMEOUT = 600.0
TIMEOUT_RANGE = (0.1, 86400.0)
#: Lines of standard error an error message quotes.
STDERR_TAIL_LINES = 3
#: Characters of output an unreadable metric's message quotes.
EXCERPT_CHARS = 80

_JSON_PATH_RE = re.compile(r"(?:[A-Za-z0-9_-]+|\[-?\d+\])(?:\.[A-Za-z0-9_-]+|\[-?\d+\])*")
_JSON_STEP_RE = re.compile(r"\[(-?\d+)\]|\.?([A-Za-z0-9_-]+)")
METRIC_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

JsonStep = str | int


def parse_json_path(text: str) -> tuple[JsonStep, ...]:
    """``"jobs[0].read.iops"`` -> ``("jobs", 0, "read", "iops")``: object keys separated by
    dots, list indices in brackets (negative ones count from the end). ValueError when
    ``text`` is not such a path."""
    if not _JSON_PATH_RE.fullmatch(text):
        raise ValueError(
            f"{text!r} is not a JSON path (keys of letters, digits, '_' or '-' joined by"
            " '.', list indices as [N], e.g. 'jobs[0].iops')"
        )
    steps: list[JsonStep] = []
    for match in _JSON_STEP_RE.finditer(text):
        index, key = match.groups()
        steps.append(int(index) if index is not None else key)
    return tuple(steps)


def json_path_text(path: Sequence[JsonStep]) -> str:
    """The inverse of :func:`parse_json_path`."""
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f".{step}" if text else step
    return text


def number_at(document: Any, path: Sequence[JsonStep]) -> float:
    """The number at ``path`` in a parsed JSON ``document`` (a number, or a string holding
    one). ValueError saying where the path stops when there is none."""
    value = document
    for depth, step in enumerate(path):
        where = json_path_text(path[:depth]) or "the top level"
        if isinstance(step, int):
            if not isinstance(value, list):
                raise ValueError(f"{where} is not a list")
            if not -len(value) <= step < len(value):
                raise ValueError(f"{where} has {len(value)} item(s), no [{step}]")
            value = value[step]
        else:
            if not isinstance(value, dict):
                raise ValueError(f"{where} is not an object")
            if step not in value:
                raise ValueError(f"{where} has no key {step!r}")
            value = value[step]
    return _as_number(value, json_path_text(path))


def _as_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{where} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{where} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{where} is not a finite number")
    return number


def parse_json_output(text: str) -> Any:
    """A command's output as JSON: the whole text, or else its last non-blank line (tools
    often print a line of JSON after other output). ValueError when neither parses."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    lines = [line for line in text.splitlines() if line.strip()]
    if lines:
        with contextlib.suppress(ValueError, RecursionError):
            return json.loads(lines[-1])
    raise ValueError("the output is not JSON (neither whole nor its last line)")


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot read a metric (it must compile with one capture group)."""
    try:
        compiled = re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        return f"is not a regular expression ({exc})"
    if compiled.groups != 1:
        return f"must have exactly one capture group (the number), it has {compiled.groups}"
    return None


def number_by_regex(text: str, pattern: str) -> float:
    """The number the first match of ``pattern`` captures in ``text`` (``^`` and ``$`` match
    at every line). ValueError when nothing matches or the capture is not a number."""
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise ValueError("the regex matches nothing")
    captured = match.group(1)
    if captured is None:
        raise ValueError("the regex's group captured nothing")
    return _as_number(captured.strip(), f"the capture {captured!r}")


@dataclass(frozen=True)
class CommandMetricSpec:
    """One ``[[workload.metrics]]``: a number read from each run's output."""

    name: str
    direction: str  # "lower" or "higher" is better
    unit: str = ""
    json: tuple[JsonStep, ...] | None = None
    regex: str | None = None
    stream: str = "stdout"

    @property
    def metric(self) -> str:
        """The gated metric's name, e.g. ``command.higher_is_better.tps``."""
        return METRIC_PREFIXES[self.direction] + self.name

    def describe(self) -> str:
        if self.json is not None:
            how = f"json {json_path_text(self.json)}"
        else:
            how = f"regex {self.regex}"
        unit = f", unit {self.unit}" if self.unit else ""
        return f"{self.metric}: {self.stream} {how}{unit}, {self.direction} is better"

    def read(self, stdout: str, stderr: str) -> float:
        """This metric's value in one run's output; ValueError saying why there is none."""
        text = stdout if self.stream == "stdout" else stderr
        if self.json is not None:
            return number_at(parse_json_output(text), self.json)
        if self.regex is None:
            raise ValueError("neither json nor regex is set")
        return number_by_regex(text, self.regex)


@dataclass(frozen=True)
class CommandSpec:
    """A command scenario's ``[workload]``: what runs, where, with what, and for how long."""

    argv: tuple[str, ...] | None = None
    shell: str | None = None
    #: Repeat the command until the round has lasted this long; None: one run per round.
    seconds: float | None = None
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    #: Seconds one run may take before it is killed and the scenario errs.
    timeout: float = DEFAULT_TIMEOUT
    #: The command writes to the target (which decides the target's safety checks).
    writes: bool = False
    #: The command gets a private network namespace (it runs inside it).
    netns: bool = False
    metrics: tuple[CommandMetricSpec, ...] = ()

    def __post_init__(self) -> None:
        if (self.argv is None) == (self.shell is None):
            raise ValueError("a command is an argv or a shell string, exactly one")

    @property
    def shown(self) -> str:
        """The command as a person would type it, on one line."""
        text = self.shell if self.shell is not None else shlex.join(self.argv or ())
        return one_line(text, 100)

    def describe(self) -> dict[str, str]:
        """Facts for the environment (a change of command shows in the diff)."""
        facts = {"command": self.shown, "command.mode": "repeat" if self.seconds else "once"}
        if self.netns:
            facts["command.netns"] = "private"
        return facts

    def provenance(self) -> list[str]:
        return ["wall time of each run (monotonic clock)"] + [m.describe() for m in self.metrics]


def stderr_tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    """The last non-blank ``lines`` of ``text`` on one line, ``|``-separated."""
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return one_line(" | ".join(tail)) if tail else "no output on stderr"


@dataclass(frozen=True)
class CommandRun:
    """One run of the command."""

    seconds: float
    stdout: str
    stderr: str


@dataclass
class CommandRunner:
    """Runs a scenario's command, one run at a time, in ``cgroup``.

    ``device``, ``netns`` and ``mount`` go into the command's environment as
    ``PERFCHECK_DEVICE``, ``PERFCHECK_NETNS`` and ``PERFCHECK_MOUNT`` when given;
    ``wrap`` turns the argv into the one to start (e.g. ``ip netns exec <name> ...``).
    ``cwd`` is where it runs when the scenario names no directory.
    """

    spec: CommandSpec
    source: Path
    cgroup: WorkloadCgroup
    cwd: Path
    device: Path | None = None
    netns: str | None = None
    mount: Path | None = None
    wrap: Callable[[list[str]], list[str]] | None = None

    def argv(self) -> list[str]:
        argv = ["/bin/sh", "-c", self.spec.shell] if self.spec.shell is not None else []
        argv = argv or list(self.spec.argv or ())
        return self.wrap(argv) if self.wrap is not None else argv

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.spec.env)
        for name, value in (
            (ENV_DEVICE, self.device),
            (ENV_NETNS, self.netns),
            (ENV_MOUNT, self.mount),
        ):
            if value is not None:
                env[name] = str(value)
            else:
                env.pop(name, None)
        return env

    def fail(self, what: str, stderr: str | None = None) -> WorkloadError:
        """The one-line error: scenario file, command, what happened, its stderr's tail."""
        tail = f": {stderr_tail(stderr)}" if stderr is not None else ""
        return WorkloadError(f"{self.source}: command `{self.spec.shown}` {what}{tail}")

    def run(self) -> CommandRun:
        """Run the command once to completion; a one-line WorkloadError when it cannot
        start, exits non-zero, is killed or outlasts its timeout. Whatever it leaves in
        its cgroup is killed before this returns or raises."""
        join = self.cgroup.preexec_fn()

        def child_setup() -> None:
            die_with_parent()
            join()

        cwd = self.spec.cwd if self.spec.cwd is not None else self.cwd
        want_stdout = any(m.stream == "stdout" for m in self.spec.metrics)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if want_stdout else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
                preexec_fn=child_setup,
                cwd=cwd,
                env=self.environment(),
            )
        except FileNotFoundError as exc:
            raise self.fail(f"cannot start: {exc.filename or exc.strerror} not found") from exc
        except OSError as exc:
            raise self.fail(f"cannot start: {exc.strerror or exc}") from exc
        try:
            stdout, stderr = proc.communicate(timeout=self.spec.timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            _, stderr = proc.communicate()
            raise self.fail(
                f"did not finish within {self.spec.timeout:g} s (workload.timeout); killed",
                stderr or "",
            ) from None
        except BaseException:
            self._kill(proc)
            raise
        elapsed = time.monotonic() - started
        # Daemons it started, or children that outlived it.
        self.cgroup.kill()
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            raise self.fail(f"was killed by {name}", stderr or "")
        if proc.returncode != 0:
            raise self.fail(f"exited {proc.returncode}", stderr or "")
        return CommandRun(seconds=elapsed, stdout=stdout or "", stderr=stderr or "")

    def _kill(self, proc: subprocess.Popen[str]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.cgroup.kill()
        proc.wait()

    def read_metrics(self, run: CommandRun) -> dict[str, float]:
        """The custom metrics of one run; a one-line WorkloadError for one it cannot read."""
        values: dict[str, float] = {}
        for index, metric in enumerate(self.spec.metrics):
            text = run.stdout if metric.stream == "stdout" else run.stderr
            try:
                values[metric.metric] = metric.read(run.stdout, run.stderr)
            except ValueError as exc:
                excerpt = one_line(text.strip()[-EXCERPT_CHARS:], EXCERPT_CHARS + 10)
                raise WorkloadError(
                    f"{self.source}: metric {metric.name!r} (workload.metrics[{index}]) cannot"
                    f" be read from the {metric.stream} of `{self.spec.shown}`: {exc}; read:"
                    f" {excerpt!r}"
                ) from None
        return values


@dataclass
class CommandWorkload:
    """A command as a round workload: one run per round, or runs repeated for the round's
    length when the scenario sets ``seconds``."""

    runner: CommandRunner

    def run(self, seconds: float) -> WorkloadReport:
        repeat = self.runner.spec.seconds is not None
        runs: list[CommandRun] = []
        started = time.monotonic()
        while True:
            runs.append(self.runner.run())
            if not repeat or time.monotonic() - started >= seconds:
                break
        elapsed = time.monotonic() - started
        scalars = {WALL_METRIC: statistics.fmean(r.seconds for r in runs)}
        if repeat:
            scalars[RATE_METRIC] = len(runs) / elapsed if elapsed > 0 else 0.0
        per_run = [self.runner.read_metrics(r) for r in runs]
        for metric in self.runner.spec.metrics:
            scalars[metric.metric] = statistics.fmean(v[metric.metric] for v in per_run)
        return WorkloadReport(scalars=scalars)


__all__ = [
    "DIRECTIONS",
    "ENV_DEVICE",
    "ENV_MOUNT",
    "ENV_NETNS",
    "RATE_METRIC",
    "STREAMS",
    "WALL_METRIC",
    "CommandMetricSpec",
    "CommandRunner",
    "CommandSpec",
    "CommandWorkload",
    "number_at",
    "number_by_regex",
    "parse_json_output",
    "parse_json_path",
    "regex_problem",
]
