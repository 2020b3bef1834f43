"""``--perfcheck-bisect``: the run's exit status as ``git bisect run`` reads it.

``git bisect run`` marks a commit good on exit 0, bad on 1 to 127 except 125, skips it on
125 and stops the bisect on 128 or more. A perfcheck run says: 0 when every scenario
PASSed, 1 when one FAILed (a FAIL is confirmed before it stands, so it wins over anything
else in the run), 125 when one is INCONCLUSIVE or has no baseline, when nothing was
measured, or on any error (a test or collection error, a usage error once pytest has
parsed the command line, an unwritable results store): such a commit cannot be judged.
An interrupted run (Ctrl-C, SIGTERM) exits 130 and stops the bisect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import pytest

from perfcheck.model.outcome import Status

GOOD: Final[int] = 0
BAD: Final[int] = 1
SKIP: Final[int] = 125
#: 128 + SIGINT: git bisect run stops on any status of 128 or more.
STOP: Final[int] = 130


def bisect_status(
    statuses: Sequence[Status], exitstatus: int, failed: int, interrupted: bool
) -> tuple[int, str]:
    """The exit status for ``git bisect run`` and why, from the run's scenario statuses,
    pytest's exit status, its count of failed tests and collectors (``failed``), and
    whether a person or a signal stopped it (``interrupted``)."""
    fails = sum(1 for s in statuses if s is Status.FAIL)
    if interrupted:
        return STOP, "interrupted: stopping the bisect"
    if fails:
        return BAD, f"{fails} scenario(s) FAIL: this commit is bad"
    undecided = [s for s in statuses if s in (Status.INCONCLUSIVE, Status.NO_BASELINE)]
    if undecided:
        kinds = ", ".join(sorted({s.value for s in undecided}))
        return SKIP, f"{len(undecided)} scenario(s) {kinds}: this commit cannot be judged"
    if failed or exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return (
            SKIP,
            f"an error (pytest exit status {int(exitstatus)}): this commit cannot be judged",
        )
    if not statuses:
        return SKIP, "nothing was measured: this commit cannot be judged"
    return GOOD, f"{len(statuses)} scenario(s) PASS: this commit is good"


class BisectMode:
    """Registered under ``--perfcheck-bisect``: maps the run's outcome to its exit status
    at the end of the session and says so in the summary."""

    def __init__(self, statuses: Any) -> None:
        #: Returns the run's scenario statuses (none when perfcheck did not start).
        self.statuses = statuses
        self.interrupted = False
        self.said: str | None = None

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # Collection errors end a run through pytest's own Interrupted: those are errors.
        self.interrupted = not isinstance(excinfo.value, pytest.Session.Interrupted)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        code, why = bisect_status(
            self.statuses(), session.exitstatus, session.testsfailed, self.interrupted
        )
        self.said = f"perfcheck: --perfcheck-bisect: exit {code} ({why})"
        session.exitstatus = code

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.said is not None:
            terminalreporter.write_line(self.said, bold=True)
