"""Progress while a scenario runs: the scenario, round i/N and about how long is left.

A scenario can take minutes, so on a terminal one line is rewritten before every
round (``randread-4k: round 3/6, about 12 s left``) and left at the end saying how
long the rounds took. Nothing is shown under ``-q`` or when the output is not a
terminal (CI logs get the end-of-run summary table instead).

:class:`ScenarioProgress` is the :data:`~perfcheck.workloads.rounds.ProgressCallback` and
knows nothing of pytest; it talks to a :class:`ProgressSink`.
:class:`TerminalProgressSink` is the sink on pytest's terminal reporter.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pytest


def format_duration(seconds: float) -> str:
    """``7.2 -> "8 s"``, ``125 -> "2 min 05 s"``, ``3725 -> "1 h 02 min"`` (rounded up)."""
    whole = max(0, math.ceil(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def progress_text(
    scenario: str, round_no: int, total: int, is_warmup: bool, seconds_left: float
) -> str:
    """``randread-4k: warm-up round 1/6, about 12 s left``."""
    kind = "warm-up round" if is_warmup else "round"
    return f"{scenario}: {kind} {round_no}/{total}, about {format_duration(seconds_left)} left"


class ProgressSink(Protocol):
    """Where progress lines go: ``show`` replaces the line, ``done`` leaves the last one."""

    def show(self, text: str) -> None: ...

    def done(self, text: str) -> None: ...


class ScenarioProgress:
    """Progress callback ``(round_no, total, is_warmup)`` of one scenario's rounds.

    Time left before round i is the average length of the rounds so far times the
    rounds still to run; before the first round ends, each round is assumed to take
    ``round_seconds``. Call :meth:`finish` once the rounds are over (or failed).
    """

    def __init__(
        self,
        scenario: str,
        round_seconds: float,
        sink: ProgressSink,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scenario = scenario
        self.round_seconds = round_seconds
        self.sink = sink
        self.clock = clock
        self._started: float | None = None
        self._last_round = 0
        self._total = 0
        self._warmups = 0
        self._finished = False

    def seconds_left(self, round_no: int, total: int) -> float:
        """Estimated seconds until all ``total`` rounds are done, before round ``round_no``."""
        done = round_no - 1
        if self._started is None or done <= 0:
            per_round = self.round_seconds
        else:
            per_round = (self.clock() - self._started) / done
        return per_round * (total - done)

    def __call__(self, round_no: int, total: int, is_warmup: bool) -> None:
        if self._started is None:
            self._started = self.clock()
        self._last_round, self._total = round_no, total
        if is_warmup:
            self._warmups = max(self._warmups, round_no)
        left = self.seconds_left(round_no, total)
        self.sink.show(progress_text(self.scenario, round_no, total, is_warmup, left))

    def finish(self, completed: bool = True) -> None:
        """Leave the final line: how long the rounds took, or where they stopped."""
        if self._finished or self._started is None:
            return
        self._finished = True
        took = format_duration(self.clock() - self._started)
        if completed:
            measured = self._total - self._warmups
            warmup = f" + {self._warmups} warm-up" if self._warmups else ""
            text = f"{self.scenario}: {measured} rounds{warmup} in {took}"
        else:
            text = f"{self.scenario}: stopped in round {self._last_round}/{self._total}"
            text += f" after {took}"
        self.sink.done(text)

    @contextlib.contextmanager
    def running(self) -> Iterator[ScenarioProgress]:
        """``with progress.running(): measure(...)``: finish however the block ends."""
        try:
            yield self
        except BaseException:
            self.finish(completed=False)
            raise
        self.finish()


class TerminalProgressSink:
    """Rewrites one line of pytest's terminal output while a test runs.

    The line starts below the test's location; when the rounds are over the final
    line stays and the location is written again, so pytest's result letter (or
    word, with ``-v``) and its ``[ NN%]`` column land where they always do. Output is
    written with capturing suspended, as pytest's live logging does.
    """

    def __init__(self, reporter: Any, capture_manager: Any, nodeid: str) -> None:
        self.reporter = reporter
        self.capture_manager = capture_manager
        self.nodeid = nodeid
        self._started = False

    @contextlib.contextmanager
    def _uncaptured(self) -> Iterator[None]:
        if self.capture_manager is None:
            yield
            return
        with self.capture_manager.global_and_fixture_disabled():
            yield

    def show(self, text: str) -> None:
        with self._uncaptured():
            if not self._started:
                self.reporter.ensure_newline()
                self._started = True
            self.reporter.rewrite(f"  {text}", erase=True)
            self.reporter.flush()

    def done(self, text: str) -> None:
        if not self._started:
            return
        with self._uncaptured():
            self.reporter.rewrite(f"  {text}", erase=True)
            if self.reporter.verbosity <= 0:
                # Start the next line with the test's file, where the result letter goes.
                self.reporter.write_fspath_result(self.nodeid, "")
            else:
                # pytest writes the test's line again (with its result) on a new line.
                self.reporter.currentfspath = None
            self.reporter.flush()


def terminal_progress(
    config: pytest.Config, nodeid: str, scenario: str, round_seconds: float
) -> ScenarioProgress | None:
    """Progress on pytest's terminal for one scenario, or None (``-q``, not a terminal)."""
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if reporter is None or config.get_verbosity() < 0 or not reporter.isatty():
        return None
    sink = TerminalProgressSink(reporter, config.pluginmanager.getplugin("capturemanager"), nodeid)
    return ScenarioProgress(scenario, round_seconds, sink)
