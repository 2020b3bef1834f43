"""Shared test configuration.

The first section makes CI strict about real-capability tests: with
``PERFCHECK_REQUIRE_REAL=1`` in the environment, a test marked ``realbpf`` or ``realfio``
that ends skipped is reported as failed, with its skip reason, because CI machines have
root, bcc, kernel headers, tracefs and fio, so a skip there hides a broken set-up.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

pytest_plugins = ["pytester"]

# pytester's in-process runs drop the modules a run imported when it ends, but compiled
# extension modules cannot be imported twice: SQLAlchemy's (the results store opens it at
# the end of every run) would break the second run. Imported here, they stay loaded.
import psycopg  # noqa: E402, F401

import perfcheck.store.sessions.sqlstore  # noqa: E402, F401

# --- real-capability tests must not skip when PERFCHECK_REQUIRE_REAL=1 -----------------

REQUIRE_REAL_ENV = "PERFCHECK_REQUIRE_REAL"
REAL_CAPABILITY_MARKERS: tuple[str, ...] = ("realbpf", "realfio", "realpostgres")


def _skip_reason(report: pytest.TestReport) -> str:
    # A skip's longrepr is (path, lineno, "Skipped: <reason>").
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if (
        os.environ.get(REQUIRE_REAL_ENV) == "1"
        and report.skipped
        and not hasattr(report, "wasxfail")
        and any(item.get_closest_marker(name) for name in REAL_CAPABILITY_MARKERS)
    ):
        markers = "/".join(m for m in REAL_CAPABILITY_MARKERS if item.get_closest_marker(m))
        report.outcome = "failed"
        report.longrepr = (
            f"{markers} test skipped with {REQUIRE_REAL_ENV}=1, which requires it to run: "
            f"{_skip_reason(report)}"
        )
    return report


# --- fixtures shared by the test modules --------------------------------------------------


@pytest.fixture(autouse=True)
def _private_host_lock(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process perfcheck runs (pytester with fakes) take a lock of their own, so the
    suite neither waits for nor blocks a real run on this host. Runs in a subprocess
    still take the real host-wide lock."""
    from perfcheck.system import lock

    monkeypatch.setattr(lock, "LOCK_PATH", tmp_path_factory.mktemp("lock") / "perfcheck.lock")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytest project with one scenario, ``scenarios/fake-reads.toml``, measured by the
    fake probe backend (see ``tests/fakeproject.py``)::

        def test_records(project):
            run(project, "--perfcheck-update").assert_outcomes(passed=1)
    """
    from tests.fakeproject import make_project

    return make_project(pytester)
