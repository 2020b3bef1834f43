"""The pytest plugin: options, scenario items, fixtures and the terminal summary.

Hooks only; the work is done by :class:`perfcheck.run.harness.Harness`, which knows
nothing of pytest. Importing this module does not import bcc.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from perfcheck.errors import PerfcheckError, WorkloadError
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.model.measurement import Measurement, RoundResult
from perfcheck.model.names import baseline_name_for
from perfcheck.model.outcome import ERROR, Status
from perfcheck.plugin import hookspecs
from perfcheck.plugin.fixtures import ProbeFixtures
from perfcheck.probes import probe_names
from perfcheck.run.ab import AB_HINT, ABCommands, run_ab
from perfcheck.run.harness import Harness
from perfcheck.run.settings import HarnessSettings, MissingBaseline
from perfcheck.stats.gate import ScenarioOutcome, failure_text, foreign_baseline_notice
from perfcheck.stats.history import DEFAULT_BASELINE_SESSIONS
from perfcheck.stats.history_gate import (
    DEFAULT_WINDOW,
    GATE_BASELINE,
    GATE_HISTORY,
    GATES,
    HISTORY_HINT,
    MIN_HISTORY,
)
from perfcheck.stats.sequential import DEFAULT_BATCH, DEFAULT_MAX_ROUNDS
from perfcheck.stats.verdict import format_comparison
from perfcheck.system.lock import HostLock
from perfcheck.system.targets import QUEUE_SETTING_NAME
from perfcheck.workloads.scenario import SCENARIO_DIR_NAME, Scenario, load_scenario, threshold_for

if TYPE_CHECKING:
    from perfcheck.report.results import Results
    from perfcheck.report.trend import TrendView

OPT_ENABLE = "--perfcheck"
OPT_UPDATE = "--perfcheck-update"
OPT_BASELINE_DIR = "--perfcheck-baseline-dir"
OPT_TARGET = "--perfcheck-target"
OPT_ALLOW_DESTRUCTIVE = "--perfcheck-allow-destructive"
OPT_SCHEDULER = "--perfcheck-scheduler"
OPT_QUEUE = "--perfcheck-queue"
OPT_ROUNDS = "--perfcheck-rounds"
OPT_SECONDS = "--perfcheck-seconds"
OPT_MISSING = "--perfcheck-missing"
OPT_MACHINE_CLASS = "--perfcheck-machine-class"
OPT_NO_TUNE = "--perfcheck-no-tune"
OPT_LOCK_TIMEOUT = "--perfcheck-lock-timeout"
OPT_REQUIRE = "--perfcheck-require"
OPT_SAVE = "--perfcheck-save"
OPT_REPORT = "--perfcheck-report"
OPT_MAX_ROUNDS = "--perfcheck-max-rounds"
OPT_STRICT = "--perfcheck-strict"
OPT_HOLM = "--perfcheck-holm"
OPT_NO_REPEAT = "--perfcheck-no-repeat"
OPT_RECORD = "--perfcheck-record"
OPT_BASELINE_SESSIONS = "--perfcheck-baseline-sessions"
OPT_CONTROL = "--perfcheck-control"
OPT_AB_A = "--perfcheck-ab-a"
OPT_AB_B = "--perfcheck-ab-b"
OPT_STORE = "--perfcheck-store"
OPT_LABEL = "--perfcheck-label"
OPT_TREND_SESSIONS = "--perfcheck-trend-sessions"
OPT_GATE = "--perfcheck-gate"
OPT_HISTORY_SESSIONS = "--perfcheck-history-sessions"
OPT_BISECT = "--perfcheck-bisect"

MARKER = "perfcheck"
SKIP_REASON = f"perfcheck measurement: run with {OPT_ENABLE} (needs root, bcc and fio)"

# The one place stash keys are declared: the run on the config, per-test state on items.
RUN_KEY = pytest.StashKey["PerfcheckRun"]()
RUN_PLUGIN_NAME = "perfcheck-run"
BISECT_PLUGIN_NAME = "perfcheck-bisect"
#: perfcheck_probes and perfcheck_scratch (perfcheck.plugin.fixtures).
FIXTURES_PLUGIN_NAME = "perfcheck-fixtures"
GATE_KEY = pytest.StashKey["PendingGate"]()
OUTCOME_KEY = pytest.StashKey[ScenarioOutcome]()
STORE_KEY = pytest.StashKey["StoreSettings"]()
SCENARIO_HASHES_KEY = pytest.StashKey[dict[str, str | None]]()


def queue_setting_arg(text: str) -> tuple[str, str]:
    """``--perfcheck-queue`` value ``NAME=VALUE`` -> ``(NAME, VALUE)``."""
    name, sep, value = text.partition("=")
    if not sep or not QUEUE_SETTING_NAME.fullmatch(name) or not value or "\n" in value:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give NAME=VALUE, NAME a file in /sys/block/<disk>/queue"
            " (e.g. nr_requests=4)"
        )
    return name, value


def in_range(kind: type[int] | type[float], low: float, high: float, what: str) -> Any:
    """An option ``type=``: a number of ``kind`` from ``low`` to ``high``, or a one-line
    usage error that says what to give (argparse names the option)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text}: give {low:g} to {high:g} {what}")
        return value

    return parse


#: Option types that check the range where the option is declared.
rounds_arg = in_range(int, 3, 100, "measured rounds")
seconds_arg = in_range(float, 0.2, 3600, "seconds")
max_rounds_arg = in_range(int, 3, 100, "rounds")
sessions_arg = in_range(int, 1, 9, "sessions")
trend_sessions_arg = in_range(int, 2, 10_000, "sessions")
history_sessions_arg = in_range(int, MIN_HISTORY, 500, "sessions")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("perfcheck", "performance regression gates (perfcheck)")
    group.addoption(
        OPT_ENABLE,
        action="store_true",
        help="run perfcheck scenarios and measurements, and gate them on stored baselines",
    )
    group.addoption(
        OPT_UPDATE,
        action="store_true",
        help="record baselines from this run instead of comparing (implies --perfcheck)",
    )
    group.addoption(
        OPT_BASELINE_DIR,
        metavar="DIR",
        help="directory of baseline files (default: ini perfcheck_baseline_dir, or baselines/)",
    )
    group.addoption(
        OPT_TARGET,
        metavar="PATH",
        help="block device or file to run fio on (default: a scratch loop device in /dev/shm)",
    )
    group.addoption(
        OPT_ALLOW_DESTRUCTIVE,
        action="store_true",
        help="allow write workloads on a target that holds a filesystem, partitions or data,"
        " and a scenario's [target] filesystem on a --perfcheck-target",
    )
    group.addoption(
        OPT_SCHEDULER,
        metavar="NAME",
        help="set the target disk's I/O scheduler for this run (restored afterwards)",
    )
    group.addoption(
        OPT_QUEUE,
        action="append",
        type=queue_setting_arg,
        metavar="NAME=VALUE",
        help="set the target disk's /sys/block/<disk>/queue/NAME for this run, after the"
        " scheduler (restored afterwards); repeatable, e.g. nr_requests=4",
    )
    group.addoption(
        OPT_ROUNDS,
        type=rounds_arg,
        metavar="N",
        help="measured rounds per scenario (default: the scenario's, usually 5)",
    )
    group.addoption(
        OPT_SECONDS,
        type=seconds_arg,
        metavar="S",
        help="length of each round in seconds (default: the scenario's)",
    )
    group.addoption(
        OPT_MISSING,
        choices=[m.value for m in MissingBaseline],
        help="what a missing baseline does: skip (default, with the command that records it)"
        " or fail (for CI)",
    )
    group.addoption(
        OPT_REQUIRE,
        choices=["bpf"],
        metavar="bpf",
        help="fail when BPF probes cannot start (no root, no bcc, no headers) instead of"
        " comparing only the workloads' own metrics (for CI)",
    )
    group.addoption(
        OPT_LOCK_TIMEOUT,
        type=_lock_timeout,
        default=600.0,
        metavar="S",
        help="how long to wait for another perfcheck run on this host to finish (default 600;"
        " 0 fails at once)",
    )
    group.addoption(
        OPT_NO_TUNE,
        action="store_true",
        help="leave the kernel's workqueue affinity alone on loop-device targets (by default"
        " it is set to 'cpu' for the run, and restored, to cut round-to-round noise)",
    )
    group.addoption(
        OPT_MACHINE_CLASS,
        metavar="NAME",
        help="machine class that keys the baselines (default: arch, cores and CPU model)",
    )
    group.addoption(
        OPT_SAVE,
        metavar="PATH",
        help="write everything this run measured and decided to a results JSON file"
        " (read by perfcheck compare/show/report)",
    )
    group.addoption(
        OPT_REPORT,
        metavar="PATH",
        help="write a self-contained HTML report with histogram and per-round plots",
    )
    group.addoption(
        OPT_MAX_ROUNDS,
        type=max_rounds_arg,
        metavar="N",
        help="sequential rounds: while a metric is INCONCLUSIVE, measure up to N current"
        f" rounds in batches of {DEFAULT_BATCH}, alpha split over the looks (default"
        f" {DEFAULT_MAX_ROUNDS}; at most the initial rounds turns it off)",
    )
    group.addoption(
        OPT_STRICT,
        action="store_true",
        help="an INCONCLUSIVE scenario fails its test (by default it passes and is listed)",
    )
    group.addoption(
        OPT_NO_REPEAT,
        action="store_true",
        help="report a FAIL against a stored baseline at once, without first repeating the"
        " scenario in a fresh session (new scratch device) to confirm it",
    )
    group.addoption(
        OPT_HOLM,
        action="store_true",
        help="hold alpha for each scenario as a whole, not per metric (Holm's correction over"
        " its metrics): fewer false FAILs, less power",
    )
    group.addoption(
        OPT_RECORD,
        action="store_true",
        help="add each PASSING scenario's session to its baseline's history (the rounds stay);"
        " with enough sessions thresholds widen to how much sessions really differ",
    )
    group.addoption(
        OPT_BASELINE_SESSIONS,
        type=sessions_arg,
        metavar="N",
        help="with --perfcheck-update: measure each scenario in N fresh sessions (new scratch"
        " device each) and keep the most typical as its baseline, all N going into its"
        f" history (default {DEFAULT_BASELINE_SESSIONS}; 1 records the one session)",
    )
    group.addoption(
        OPT_CONTROL,
        action="store_true",
        help="measure a drift control (fixed CPU+memory workload) once per run and store it"
        " in baselines; when the machine got slower, FAILs become INCONCLUSIVE",
    )
    group.addoption(
        OPT_AB_A,
        metavar="CMD",
        help="interleaved A/B: set-up command of side A (see perfcheck ab)",
    )
    group.addoption(
        OPT_AB_B,
        metavar="CMD",
        help="interleaved A/B: set-up command of side B, judged against A (see perfcheck ab)",
    )
    _add_store_options(parser, group)
    group.addoption(
        OPT_GATE,
        choices=GATES,
        help="what a scenario is judged against: its stored baseline (default), or the recent"
        " sessions of its series in the results store (history; the stored baseline while"
        f" the series has fewer than {MIN_HISTORY} sessions)",
    )
    group.addoption(
        OPT_HISTORY_SESSIONS,
        type=history_sessions_arg,
        metavar="N",
        help=f"the history gate reads the newest N sessions of a series (default {DEFAULT_WINDOW})",
    )
    group.addoption(
        OPT_BISECT,
        action="store_true",
        help="exit status for git bisect run (implies --perfcheck): 0 all PASS, 1 a FAIL,"
        " 125 (skip) INCONCLUSIVE, no baseline or an error",
    )
    parser.addini("perfcheck_gate", "baseline or history (as --perfcheck-gate)", default="")
    parser.addini("perfcheck_history_sessions", "as --perfcheck-history-sessions", default="")
    parser.addini(
        "perfcheck_control", "measure the drift control (as --perfcheck-control)", type="bool"
    )
    parser.addini("perfcheck_baseline_dir", "directory of baseline files", default="baselines")
    parser.addini("perfcheck_missing", "skip or fail when a baseline is missing", default="skip")
    parser.addini("perfcheck_machine_class", "machine class that keys the baselines", default="")
    parser.addini("perfcheck_target", "default --perfcheck-target", default="")


def _settings(config: pytest.Config) -> HarnessSettings:
    def opt(name: str) -> Any:
        return config.getoption(name.lstrip("-").replace("-", "_"))

    root = config.rootpath
    base_dir = opt(OPT_BASELINE_DIR) or config.getini("perfcheck_baseline_dir")
    target = opt(OPT_TARGET) or config.getini("perfcheck_target") or None
    missing = opt(OPT_MISSING) or config.getini("perfcheck_missing") or "skip"
    try:
        missing_mode = MissingBaseline(missing)
    except ValueError:
        raise pytest.UsageError(
            f"perfcheck_missing = {missing!r} in the ini file: use 'skip' or 'fail'"
        ) from None
    rounds, seconds = opt(OPT_ROUNDS), opt(OPT_SECONDS)
    max_rounds, baseline_sessions = opt(OPT_MAX_ROUNDS), opt(OPT_BASELINE_SESSIONS)
    ab_a, ab_b = opt(OPT_AB_A), opt(OPT_AB_B)
    if (ab_a is None) != (ab_b is None):
        raise pytest.UsageError(f"{OPT_AB_A} and {OPT_AB_B} go together: give both commands")
    update, record = bool(opt(OPT_UPDATE)), bool(opt(OPT_RECORD))
    gate, window = _gate_settings(config, opt(OPT_GATE), opt(OPT_HISTORY_SESSIONS))
    if update and opt(OPT_BISECT):
        raise pytest.UsageError(
            f"{OPT_BISECT} judges each commit; {OPT_UPDATE} records baselines: drop one"
        )
    if ab_a is not None and (update or record):
        raise pytest.UsageError(
            f"{OPT_AB_A}/{OPT_AB_B} compare two set-ups in one run and store nothing: drop"
            f" {OPT_UPDATE if update else OPT_RECORD}"
        )
    if update and record:
        raise pytest.UsageError(
            f"{OPT_RECORD} adds a passing run to a baseline's history; {OPT_UPDATE} already"
            " adds the recording: drop one"
        )
    return HarnessSettings(
        baseline_dir=(root / base_dir) if not os.path.isabs(base_dir) else Path(base_dir),
        update=bool(opt(OPT_UPDATE)),
        target=Path(target) if target else None,
        allow_destructive=bool(opt(OPT_ALLOW_DESTRUCTIVE)),
        scheduler=opt(OPT_SCHEDULER),
        queue=tuple(opt(OPT_QUEUE) or ()),
        rounds=rounds,
        seconds=seconds,
        missing=missing_mode,
        machine_class=opt(OPT_MACHINE_CLASS) or config.getini("perfcheck_machine_class") or None,
        tune=not opt(OPT_NO_TUNE),
        require_bpf=opt(OPT_REQUIRE) == "bpf",
        max_rounds=max_rounds if max_rounds is not None else DEFAULT_MAX_ROUNDS,
        strict=bool(opt(OPT_STRICT)),
        holm=bool(opt(OPT_HOLM)),
        repeat_fails=not opt(OPT_NO_REPEAT),
        record=record,
        baseline_sessions=(
            baseline_sessions if baseline_sessions is not None else DEFAULT_BASELINE_SESSIONS
        ),
        control=bool(opt(OPT_CONTROL) or config.getini("perfcheck_control")),
        ab_commands=(ab_a, ab_b) if ab_a is not None and ab_b is not None else None,
        gate=gate,
        history_window=window,
    )


def _gate_settings(config: pytest.Config, gate: str | None, window: int | None) -> tuple[str, int]:
    """--perfcheck-gate and --perfcheck-history-sessions, or their ini keys (checked)."""
    gate = gate or config.getini("perfcheck_gate") or GATE_BASELINE
    if gate not in GATES:
        raise pytest.UsageError(
            f"perfcheck_gate = {gate!r} in the ini file: use {' or '.join(GATES)}"
        )
    if window is None:
        text = config.getini("perfcheck_history_sessions")
        try:
            window = history_sessions_arg(text) if text else DEFAULT_WINDOW
        except argparse.ArgumentTypeError as exc:
            raise pytest.UsageError(f"perfcheck_history_sessions in the ini file: {exc}") from None
    return gate, int(window)


def _enabled(config: pytest.Config) -> bool:
    return bool(
        config.getoption("perfcheck")
        or config.getoption("perfcheck_update")
        or config.getoption("perfcheck_bisect")
    )


def _lock_timeout(text: str) -> float:
    """``--perfcheck-lock-timeout``: seconds, finite and not negative (``nan`` waited forever)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds; give 0 or more (0: fail at once if held)"
        )
    return seconds


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(scenario=None, baseline=None, thresholds=None): a test measured by perfcheck;"
        " scenario names the scenario file the block_latency fixture runs, baseline the"
        " baseline name (default: the test id), thresholds maps metric names or patterns"
        " to relative thresholds, e.g. {'block.latency.read.p99': 0.3}",
    )
    if config.getoption("perfcheck_bisect"):
        from perfcheck.plugin.bisect import BisectMode

        config.pluginmanager.register(BisectMode(lambda: _statuses(config)), BISECT_PLUGIN_NAME)
    if not config.pluginmanager.has_plugin(FIXTURES_PLUGIN_NAME):
        fixtures = ProbeFixtures(_harness, _apply_outcome, MARKER, SKIP_REASON)
        config.pluginmanager.register(fixtures, FIXTURES_PLUGIN_NAME)
    if not _enabled(config):
        return
    if hasattr(config, "workerinput"):
        raise pytest.UsageError(
            "perfcheck measurements must run serially: drop -n/--dist (pytest-xdist) when"
            f" using {OPT_ENABLE}"
        )
    harness = Harness(_settings(config))
    config.hook.pytest_perfcheck_harness(config=config, harness=harness)
    run = PerfcheckRun(config, harness)
    config.stash[RUN_KEY] = run
    run.previous_sigterm = _interrupt_on_sigterm()
    try:
        run.lock.acquire(config.getoption("perfcheck_lock_timeout"), on_wait=_tell(config))
    except PerfcheckError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.pluginmanager.register(run, RUN_PLUGIN_NAME)
    _check_output_paths(config)
    _configure_store(config)


def _statuses(config: pytest.Config) -> list[Status]:
    harness = _harness(config)
    return [o.status for o in harness.outcomes] if harness is not None else []


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, Any, Any]:
    """Under --perfcheck-bisect, a usage error found while starting (a bad ini value, an
    unreachable store, the host lock) exits 125: git bisect skips the commit."""
    try:
        return (yield)
    except pytest.UsageError as exc:
        if not config.getoption("perfcheck_bisect", False):
            raise
        from perfcheck.plugin.bisect import SKIP

        sys.stderr.write(f"ERROR: {exc}\nperfcheck: {OPT_BISECT}: exit {SKIP} (a usage error)\n")
        return SKIP


def _interrupt_on_sigterm() -> Any:
    """CI time-outs send SIGTERM: make it unwind like Ctrl-C, so fio is killed, the
    scratch device removed and the scheduler restored on the way out. Returns the handler
    it replaced (None off the main thread, where none is set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"perfcheck: stopped by signal {signum}")

    return signal.signal(signal.SIGTERM, interrupt)


def _tell(config: pytest.Config) -> Any:
    def write(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)

    return write


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is not None:
        del config.stash[RUN_KEY]
        run.close()
        if config.pluginmanager.is_registered(run):
            config.pluginmanager.unregister(run)


def _harness(config: pytest.Config) -> Harness | None:
    """The run's harness, None without --perfcheck."""
    run = config.stash.get(RUN_KEY, None)
    return run.harness if run is not None else None


# -- scenario files as items ---------------------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".toml" and file_path.parent.name == SCENARIO_DIR_NAME:
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    """A scenario file: one item, loaded (and validated) when it runs, so a broken file
    fails its own item and the others still run."""

    def collect(self) -> Iterator[pytest.Item]:
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioItem(pytest.Item):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_marker(MARKER)

    def load(self) -> Scenario:
        return load_scenario(self.path, known_probes=probe_names())

    def runtest(self) -> None:
        harness = self.config.stash[RUN_KEY].harness
        # Reported outside the handlers, so the one line comes without its exception chain.
        error: PerfcheckError | None = None
        try:
            scenario = self.load()
            _note_scenario(self.config, scenario.name, scenario)
            ab = harness.settings.ab_commands
            if ab is not None:
                commands = ABCommands(*ab)
                outcome = run_ab(
                    harness, scenario.name, scenario, commands, scenario.ab_threshold_for
                )
            else:
                measurement = _measure_with_progress(self, harness, scenario)
                outcome = harness.check(
                    scenario.name,
                    measurement,
                    scenario.threshold_for,
                    _more_rounds(harness, scenario, measurement),
                    _measure_again(self, harness, scenario),
                )
        except PerfcheckError as exc:
            error = exc
        if isinstance(error, WorkloadError):
            _workload_error(self, harness, str(error))
        if error is not None:
            pytest.fail(str(error), pytrace=False)
        _apply_outcome(self, outcome)

    def reportinfo(self) -> tuple[Path, int, str]:
        # A line number is required for skip reports; the scenario is the whole file.
        return self.path, 0, f"perfcheck scenario {self.name}"


#: The user property that marks an item whose workload failed, an ERROR, not a FAIL.
ERROR_PROPERTY = ("perfcheck.status", ERROR)


def _workload_error(item: pytest.Item, harness: Harness, message: str) -> NoReturn:
    """The workload failed (its command exited non-zero, its output had no metric): the
    scenario has no verdict; pytest reports it as an error (pytest_report_teststatus)."""
    __tracebackhide__ = True
    harness.errors[item.name] = message
    item.user_properties.append(ERROR_PROPERTY)
    pytest.fail(message, pytrace=False)


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str] | None:
    if report.when == "call" and report.failed and ERROR_PROPERTY in report.user_properties:
        return "error", "E", ERROR
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    harness = _harness(config)
    wanted: set[str] = set()
    for item in items:
        uses = isinstance(item, ScenarioItem) or "block_latency" in getattr(
            item, "fixturenames", ()
        )
        if not uses:
            continue
        if harness is None:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))
            continue
        if isinstance(item, ScenarioItem):
            # A broken scenario is reported when its item runs.
            with contextlib.suppress(PerfcheckError):
                wanted.update(item.load().probes)
        else:
            wanted.add("block.latency")
    if harness is not None:
        harness.want_probes(wanted)


def _refresh_command(item: pytest.Item) -> str:
    base_dir = item.config.getoption("perfcheck_baseline_dir")
    where = f" {OPT_BASELINE_DIR}={base_dir}" if base_dir else ""
    return f"pytest {OPT_UPDATE}{where} '{item.nodeid}'"


def _apply_outcome(item: pytest.Item, outcome: ScenarioOutcome) -> None:
    """Turn an outcome into the item's result: fail, skip or pass (with properties)."""
    __tracebackhide__ = True
    item.user_properties.append(("perfcheck.status", outcome.status.value))
    if outcome.note is not None:
        item.user_properties.append(("perfcheck.note", outcome.note))
    item.user_properties.extend(_percentile_properties(outcome))
    item.stash[OUTCOME_KEY] = outcome
    if outcome.verdict is not None:
        item.user_properties.append(("perfcheck.gate", outcome.verdict.gate))
        for c in outcome.verdict.comparisons:
            item.user_properties.append((f"perfcheck.{c.metric}", format_comparison(c)))
    harness = item.config.stash[RUN_KEY].harness
    if outcome.status is Status.NO_BASELINE:
        message = (
            f"no baseline for {outcome.name} on machine class {harness.machine_class}"
            f" ({outcome.baseline_path}): record it with {_refresh_command(item)}"
        )
        if harness.settings.missing is MissingBaseline.FAIL:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    hint = AB_HINT if harness.settings.ab_commands is not None else None
    if outcome.verdict is not None and outcome.verdict.history is not None:
        hint = HISTORY_HINT
    if outcome.status is Status.FAIL and outcome.verdict is not None:
        pytest.fail(failure_text(outcome.verdict, _refresh_command(item), hint), pytrace=False)
    strict = harness.settings.strict
    if outcome.status is Status.INCONCLUSIVE and outcome.verdict is not None and strict:
        text = failure_text(outcome.verdict, _refresh_command(item), hint)
        pytest.fail(f"{text}\n(INCONCLUSIVE fails the test under {OPT_STRICT})", pytrace=False)


# -- fixtures for Python tests ---------------------------------------------------------------


@dataclass
class BlockLatencyRounds:
    """Per-round histograms (ns) of a measured scenario, for a test's own assertions."""

    measurement: Measurement

    @property
    def rounds(self) -> list[RoundResult]:
        return self.measurement.rounds

    def per_round(
        self, op: str = "read", source: str = "block.latency"
    ) -> list[LogLinearHistogram]:
        """``source`` is ``block.latency`` (the BPF probe) or ``fio.clat`` (fio's own)."""
        key = f"{source}.{op}"
        return [r.histograms.get(key, LogLinearHistogram.empty()) for r in self.rounds]

    def merged(self, op: str = "read", source: str = "block.latency") -> LogLinearHistogram:
        total = LogLinearHistogram.empty()
        for hist in self.per_round(op, source):
            total = total.merge(hist)
        return total

    def __len__(self) -> int:
        return len(self.rounds)


@dataclass
class PendingGate:
    name: str
    measurement: Measurement
    thresholds: dict[str, float]
    #: Adds current rounds for sequential looks (perfcheck.stats.sequential).
    more: Callable[[int], None] | None = None
    #: Measures the scenario anew, to repeat a FAIL in a fresh session.
    again: Callable[[], tuple[Measurement, Callable[[int], None] | None]] | None = None


def _resolve_scenario(request: pytest.FixtureRequest, ref: str) -> Path:
    candidates = [Path(ref), request.path.parent / ref, request.config.rootpath / ref]
    candidates.append(request.config.rootpath / SCENARIO_DIR_NAME / f"{ref}.toml")
    for path in candidates:
        if path.is_file():
            return path
    raise pytest.UsageError(
        f"{request.node.nodeid}: perfcheck marker names scenario {ref!r}, which is neither a"
        f" file nor {SCENARIO_DIR_NAME}/{ref}.toml under {request.config.rootpath}"
    )


@pytest.fixture
def block_latency(request: pytest.FixtureRequest) -> BlockLatencyRounds:
    """Block-layer latency (BPF, issue -> complete) of every measured round of the scenario
    named by the test's ``perfcheck`` marker; after the test body passes, the rounds are
    also gated against the test's baseline. Needs ``--perfcheck``.

    Example::

        @pytest.mark.perfcheck(scenario="randread-4k", thresholds={"*.p99": 0.3})
        def test_randread(block_latency):
            assert len(block_latency) == 5
            assert block_latency.merged("read").percentile(50) < 50_000  # ns
    """
    harness = _harness(request.config)
    if harness is None:
        pytest.skip(SKIP_REASON)
    if harness.settings.ab_commands is not None:
        pytest.skip("perfcheck ab compares scenario files only, not block_latency tests")
    marker = request.node.get_closest_marker(MARKER)
    kwargs = marker.kwargs if marker is not None else {}
    ref = kwargs.get("scenario")
    if not ref:
        raise pytest.UsageError(
            f"{request.node.nodeid}: block_latency needs @pytest.mark.perfcheck(scenario=...)"
        )
    try:
        scenario = load_scenario(_resolve_scenario(request, ref), known_probes=probe_names())
        if "block.latency" not in scenario.probes:
            scenario = _with_block_probe(scenario)
        measurement = _measure_with_progress(request.node, harness, scenario)
    except PerfcheckError as exc:
        pytest.fail(str(exc), pytrace=False)
    name = kwargs.get("baseline") or baseline_name_for(request.node.nodeid.split("::", 1)[-1])
    _note_scenario(request.config, name, scenario)
    thresholds = {**scenario.thresholds, **dict(kwargs.get("thresholds") or {})}
    request.node.stash[GATE_KEY] = PendingGate(
        name,
        measurement,
        thresholds,
        _more_rounds(harness, scenario, measurement),
        _measure_again(request.node, harness, scenario),
    )
    return BlockLatencyRounds(measurement)


def _with_block_probe(scenario: Scenario) -> Scenario:
    from dataclasses import replace

    return replace(scenario, probes=(*scenario.probes, "block.latency"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield
    pending = item.stash.get(GATE_KEY, None)
    if pending is not None:
        harness = item.config.stash[RUN_KEY].harness
        thresholds = pending.thresholds
        try:
            outcome = harness.check(
                pending.name,
                pending.measurement,
                lambda metric: threshold_for(thresholds, metric),
                pending.more,
                pending.again,
            )
        except PerfcheckError as exc:
            pytest.fail(str(exc), pytrace=False)
        _apply_outcome(item, outcome)
    return result


def _test_paths(config: pytest.Config) -> str:
    """The paths this run was given, for commands the summary shows (default: scenarios/)."""
    args = [a for a in config.invocation_params.args if not str(a).startswith("-")]
    paths = [a for a in args if Path(a.split("::")[0]).exists() or "::" in a]
    return " ".join(paths) or f"{SCENARIO_DIR_NAME}/"


# -- end of session ------------------------------------------------------------------------


class PerfcheckRun:
    """One ``--perfcheck`` run: its harness, the host lock and the SIGTERM handler it
    replaced. Registered as a plugin only when perfcheck is on (as pytest's junitxml
    registers its LogXML), so a run without it pays for nothing."""

    def __init__(self, config: pytest.Config, harness: Harness) -> None:
        self.config = config
        self.harness = harness
        self.lock = HostLock()
        self.previous_sigterm: Any = None
        #: What --perfcheck-save and --perfcheck-report did, for the summary.
        self.saved: list[str] = []

    def close(self) -> None:
        self.harness.close()
        self.lock.release()
        if self.previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self.previous_sigterm)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        harness = self.harness
        try:
            interrupted = exitstatus in (
                pytest.ExitCode.INTERRUPTED,
                pytest.ExitCode.INTERNAL_ERROR,
            )
            if (harness.settings.update or harness.settings.record) and not interrupted:
                harness.flush()
            else:
                harness.discard()  # an interrupted run records nothing
            # Built once, so the results file and the results store hold the same sessions.
            results = (
                _stamped(session.config, harness.results())
                if harness.outcomes or harness.errors
                else None
            )
            # The store first: the HTML report's trend plot reads this run's sessions back.
            stored = _store_results(session, results)
            self.saved += _save_results(session, harness, results)
            self.saved += stored
        finally:
            harness.close()

    def pytest_terminal_summary(
        self, terminalreporter: Any, exitstatus: int, config: pytest.Config
    ) -> None:
        harness = self.harness
        for notice in harness.notices:
            terminalreporter.write_line(f"perfcheck: {notice}")
        if not harness.outcomes and not harness.errors:
            return
        terminalreporter.write_sep("-", "perfcheck")
        verdicts = [o.verdict for o in harness.outcomes if o.verdict is not None]
        for text in foreign_baseline_notice(verdicts, _test_paths(config)):
            terminalreporter.write_line(text)
        _write_summary_table(terminalreporter, config, harness)
        for message in self.saved:
            terminalreporter.write_line(message, red="failed" in message)
        for line in summary_lines(harness):
            terminalreporter.write_line(line)


def summary_lines(harness: Harness) -> list[str]:
    """The perfcheck summary's lines after the table: what was measured, where baselines
    went, what stays undecided and what to do next. Reads the run, writes nothing."""
    counts: dict[Status, int] = {}
    for outcome in harness.outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    parts = [f"{n} {s.value}" for s, n in sorted(counts.items(), key=lambda kv: kv[0].value)]
    if harness.errors:
        parts.append(f"{len(harness.errors)} {ERROR}")
    where = harness.store.root / harness.machine_class
    out = [
        f"perfcheck: {len(harness.outcomes)} measured on {harness.machine_class}: "
        + ", ".join(parts)
    ]
    out += [f"perfcheck: {ERROR} {name}: {message}" for name, message in harness.errors.items()]
    if harness.settings.update:
        out.append(f"perfcheck: baselines written to {where}/")
    elif harness.settings.gate == GATE_HISTORY:
        judged = [o.verdict.gate if o.verdict is not None else None for o in harness.outcomes]
        line = (
            f"perfcheck: gate history (the last {harness.settings.history_window} sessions of"
            f" each series): {judged.count(GATE_HISTORY)} judged by their history,"
            f" {judged.count(GATE_BASELINE)} by the stored baseline"
        )
        if None in judged:
            line += f", {judged.count(None)} by neither (no history, no baseline)"
        out.append(line)
    for outcome in harness.outcomes:
        if outcome.note is not None:
            out.append(f"  {outcome.name}: {outcome.note}")
    for outcome in harness.outcomes:
        if outcome.status is Status.INCONCLUSIVE and outcome.verdict is not None:
            for c in outcome.verdict.inconclusive():
                out.append(f"  {outcome.name}: {format_comparison(c)}")
            for text in outcome.verdict.attention_lines():
                out.append(f"    {text}")
    extended = [
        f"{o.name} {o.verdict.looks} looks, {len(o.measurement.rounds)} rounds"
        for o in harness.outcomes
        if o.verdict is not None and o.verdict.looks > 1
    ]
    if extended:
        out.append(f"perfcheck: sequential rounds (undecided at first): {'; '.join(extended)}")
    if counts.get(Status.INCONCLUSIVE) and not harness.settings.strict:
        out.append(f"perfcheck: INCONCLUSIVE does not fail the run; {OPT_STRICT} makes it fail")
    if harness.settings.record and not harness.settings.update:
        added = sum(1 for o in harness.outcomes if o.status is Status.PASS)
        out.append(f"perfcheck: {added} passing session(s) added to their baselines' history")
    missing = [o.name for o in harness.outcomes if o.status is Status.NO_BASELINE]
    if missing:
        out.append(
            f"perfcheck: no baseline for {', '.join(missing)}: record with {OPT_UPDATE}"
            " (see the skip reasons, -rs)"
        )
    if counts.get(Status.FAIL) and harness.settings.ab_commands is not None:
        # An A/B run reads no baseline: there is nothing to re-record.
        out.append(
            "perfcheck: B measured worse than A on the metrics marked FAIL"
            + (
                ", in this run and again in a fresh session"
                if harness.settings.repeat_fails
                else f" (not repeated: {OPT_NO_REPEAT}); run it without {OPT_NO_REPEAT} to confirm"
            )
            + "; if B's cost is expected, nothing needs updating"
        )
    elif counts.get(Status.FAIL):
        failed = [o.verdict for o in harness.outcomes if o.status is Status.FAIL]
        if all(v is not None and v.history is not None for v in failed):
            out.append(f"perfcheck: {HISTORY_HINT}")
        else:
            out.append(
                f"perfcheck: if a change is intended, re-record its baseline with {OPT_UPDATE}"
            )
    return out


# -- results file, HTML report, progress, summary table, JUnit and pytest-html extras -------


def _output_paths(config: pytest.Config) -> list[tuple[str, Path]]:
    paths = []
    for option in (OPT_SAVE, OPT_REPORT):
        value = config.getoption(option.lstrip("-").replace("-", "_"))
        if value:
            path = Path(value)
            paths.append(
                (option, path if path.is_absolute() else config.invocation_params.dir / path)
            )
    return paths


def _check_output_paths(config: pytest.Config) -> None:
    """Refuse an unwritable results or report path before minutes of measuring, not after."""
    for option, path in _output_paths(config):
        if path.is_dir():
            raise pytest.UsageError(f"{option} {path}: is a directory; give a file name")
        existing = path.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise pytest.UsageError(f"{option} {path}: cannot create a file in {existing}")


def _more_rounds(
    harness: Harness, scenario: Scenario, measurement: Measurement
) -> Callable[[int], None]:
    """Adds current rounds to ``measurement`` for sequential looks (perfcheck.stats.sequential)."""

    def more(rounds: int) -> None:
        harness.measure_more(scenario, measurement, rounds)

    return more


def _measure_again(
    item: pytest.Item, harness: Harness, scenario: Scenario
) -> Callable[[], tuple[Measurement, Callable[[int], None] | None]]:
    """Measures the scenario anew, for a FAIL to be repeated in a fresh session."""

    def again() -> tuple[Measurement, Callable[[int], None] | None]:
        measurement = _measure_with_progress(item, harness, scenario)
        return measurement, _more_rounds(harness, scenario, measurement)

    return again


def _measure_with_progress(item: pytest.Item, harness: Harness, scenario: Scenario) -> Measurement:
    from perfcheck.plugin.progress import terminal_progress

    seconds = harness.settings.seconds or scenario.round_seconds
    progress = terminal_progress(item.config, item.nodeid, scenario.name, seconds)
    if progress is None:
        return harness.measure(scenario)
    with progress.running():
        return harness.measure(scenario, progress)


def _percentile_properties(outcome: ScenarioOutcome) -> list[tuple[str, object]]:
    from perfcheck.report.results import percentile_properties

    return list(percentile_properties(outcome.measurement))


def _save_results(session: pytest.Session, harness: Harness, results: Results | None) -> list[str]:
    """Write --perfcheck-save and --perfcheck-report (after baselines were flushed); what
    was written or failed, one line each."""
    paths = _output_paths(session.config)
    if not paths:
        return []
    from perfcheck.report.html import write_report
    from perfcheck.report.results import write_results

    results = results if results is not None else harness.results()
    messages: list[str] = []
    for option, path in paths:
        try:
            if option == OPT_SAVE:
                write_results(path, results)
                messages.append(f"perfcheck: results saved to {path}")
            else:
                write_report(path, results, trends=_trends(session.config, results))
                messages.append(f"perfcheck: HTML report written to {path}")
        except (PerfcheckError, OSError) as exc:
            messages.append(f"perfcheck: {option} failed: {exc}")
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
    return messages


def _write_summary_table(terminalreporter: Any, config: pytest.Config, harness: Harness) -> None:
    from perfcheck.report.results import ScenarioResult, summary_table

    if config.get_verbosity() >= 0:
        colours = {
            Status.FAIL: {"red": True, "bold": True},
            Status.INCONCLUSIVE: {"yellow": True},
            Status.PASS: {"green": True},
        }
        latest = {o.name: ScenarioResult.from_outcome(o) for o in harness.outcomes}
        for status, text in summary_table(latest.values()):
            terminalreporter.write_line(text, **colours.get(status, {}) if status else {})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # pytest-html, when installed and writing a report: the scenario's table and plots.
    outcome = item.stash.get(OUTCOME_KEY, None)
    html_plugin = item.config.pluginmanager.getplugin("html")
    if (
        outcome is not None
        and report.when == "call"
        and html_plugin is not None
        and item.config.getoption("htmlpath", None)
    ):
        from perfcheck.report.html import scenario_fragment
        from perfcheck.report.results import ScenarioResult

        fragment = scenario_fragment(ScenarioResult.from_outcome(outcome))
        extras = [*getattr(report, "extras", []), html_plugin.extras.html(fragment)]
        setattr(report, "extras", extras)  # noqa: B010 - an attribute pytest-html reads
    return report


# -- results store: every run's sessions appended at the end (perfcheck.store.sessions) ---------

STORE_ENV = "PERFCHECK_STORE"


@dataclass
class StoreSettings:
    location: Any  # perfcheck.store.sessions.sqlstore.StoreLocation, or None: switched off
    #: Named by option, environment or ini: a failure to store fails the run.
    explicit: bool
    labels: dict[str, str]
    #: Sessions in each trend plot of the HTML report.
    trend_sessions: int


def _label_arg(text: str) -> tuple[str, str]:
    from perfcheck.store.sessions.records import parse_label

    try:
        return parse_label(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_store_options(parser: pytest.Parser, group: Any) -> None:
    group.addoption(
        OPT_STORE,
        metavar="URL",
        help="results store every run appends its sessions to: a SQLite file (default"
        " .perfcheck/results.sqlite under the rootdir, or $PERFCHECK_STORE), postgresql://..."
        " for a fleet, or 'none' to store nothing",
    )
    group.addoption(
        OPT_LABEL,
        action="append",
        type=_label_arg,
        metavar="KEY=VALUE",
        help="label this run's sessions in the store (kernel commit, build id, branch);"
        " repeatable; also $PERFCHECK_LABELS='k=v,k2=v2'",
    )
    parser.addini("perfcheck_store", "results store URL or path (as --perfcheck-store)", default="")
    group.addoption(
        OPT_TREND_SESSIONS,
        type=trend_sessions_arg,
        metavar="N",
        help="sessions in each trend plot of the HTML report (--perfcheck-report), read from"
        " the results store (default 50)",
    )
    parser.addini(
        "perfcheck_trend_sessions",
        "sessions in each trend plot of the HTML report (as --perfcheck-trend-sessions)",
        default="",
    )


def _configure_store(config: pytest.Config) -> None:
    """Check the store URL and labels before measuring; the store is opened at the end."""
    from perfcheck.errors import PerfcheckError as Error
    from perfcheck.store.sessions.records import labels_from_env
    from perfcheck.store.sessions.sqlstore import store_location

    if config.stash[RUN_KEY].harness.settings.ab_commands is not None:
        return  # A/B sides are two set-ups of one run, not sessions of a series
    named = (
        config.getoption("perfcheck_store")
        or os.environ.get(STORE_ENV)
        or config.getini("perfcheck_store")
    )
    try:
        labels = labels_from_env()
        location = store_location(named, config.rootpath)
    except (ValueError, Error) as exc:
        raise pytest.UsageError(f"{OPT_STORE}: {exc}") from None
    labels.update(dict(config.getoption("perfcheck_label") or ()))
    trend_sessions = config.getoption("perfcheck_trend_sessions")
    if trend_sessions is None:
        from perfcheck.report.trend import DEFAULT_TREND_SESSIONS

        ini = config.getini("perfcheck_trend_sessions")
        try:
            trend_sessions = trend_sessions_arg(ini) if ini else DEFAULT_TREND_SESSIONS
        except argparse.ArgumentTypeError as exc:
            raise pytest.UsageError(f"perfcheck_trend_sessions in the ini file: {exc}") from None
    if named and location is not None:
        # A store the user named must work: find out before minutes of measuring.
        from perfcheck.store.sessions.sqlstore import open_store

        try:
            open_store(location, create=True).close()
        except Error as exc:
            raise pytest.UsageError(f"{OPT_STORE}: {exc}") from None
    config.stash[STORE_KEY] = StoreSettings(location, bool(named), labels, trend_sessions)
    hashes: dict[str, str | None] = {}
    config.stash[SCENARIO_HASHES_KEY] = hashes
    harness = config.stash[RUN_KEY].harness
    if harness.settings.gate == GATE_HISTORY and location is not None:
        from perfcheck.run.sessions import SeriesHistory

        harness.history_source = SeriesHistory(location, labels, hashes)


def _note_scenario(config: pytest.Config, name: str, scenario: Scenario) -> None:
    hashes = config.stash.get(SCENARIO_HASHES_KEY, None)
    if hashes is not None:
        from perfcheck.run.sessions import scenario_hash

        hashes[name] = scenario_hash(scenario)


def _stamped(config: pytest.Config, results: Results) -> Results:
    """``results`` with where the run was (host, checkout commit), its labels and each
    scenario file's hash: what the results file carries and the store keeps."""
    from perfcheck.store.sessions.records import git_commit, host_name

    settings = config.stash.get(STORE_KEY, None)
    results.host = host_name()
    results.git_commit = git_commit(config.rootpath)
    results.labels = dict(settings.labels) if settings is not None else {}
    hashes = config.stash.get(SCENARIO_HASHES_KEY, {})
    for name, result in results.scenarios.items():
        result.scenario_hash = hashes.get(name)
    return results


def _trends(config: pytest.Config, results: Results) -> TrendView:
    """The HTML report's trend plots, read back from the store this run appended to."""
    from perfcheck.report.trend import load_trends

    settings = config.stash.get(STORE_KEY, None)
    if settings is None:
        return load_trends(results, None, off_reason="an A/B run stores no sessions to plot")
    return load_trends(
        results,
        settings.location,
        settings.trend_sessions,
        off_reason=f"the results store is off ({OPT_STORE}=none), so there is no history",
    )


def _store_results(session: pytest.Session, results: Results | None) -> list[str]:
    """Append the run's sessions to the results store, one transaction each; what was
    stored or failed, one line."""
    settings = session.config.stash.get(STORE_KEY, None)
    if settings is None or settings.location is None or results is None or not results.scenarios:
        return []
    from perfcheck.run.sessions import sessions_from_results
    from perfcheck.store.sessions.records import SOURCE_RUN
    from perfcheck.store.sessions.sqlstore import append_sessions

    messages: list[str] = []
    sessions = sessions_from_results(results, source=SOURCE_RUN)
    where = settings.location.display
    try:
        count = append_sessions(settings.location, sessions)
    except (PerfcheckError, ValueError, TypeError) as exc:  # a value JSON cannot hold too
        messages.append(f"perfcheck: {OPT_STORE} failed: {exc}")
        if settings.explicit and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        return messages
    already = f" ({count.present} already there)" if count.present else ""
    messages.append(
        f"perfcheck: {count.added} session(s) appended to {where}{already}; see perfcheck history"
    )
    return messages
