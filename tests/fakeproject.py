"""A pytest project measured by the fake probe backend, for in-process plugin tests.

The project has ``scenarios/reads.fio`` and one or more scenario files that run it with
the ``block.latency`` probe; its conftest makes the fake backend answer instead of bcc
and fio (:mod:`perfcheck.run.fake`). The ``project`` fixture in ``tests/conftest.py``
builds the default one; a module that needs another conftest or other scenarios
overrides ``project`` with :func:`make_project`.

Environment variables the default conftest reads: ``FAKE_SLOWDOWN`` (latency factor),
``FAKE_SEED``, ``FAKE_SLOW_SESSIONS`` (the fresh sessions, 0 the run's first, that are
slowed down; default all) and ``FAKE_TTY=1`` (output as a terminal would show it).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

FAKE_CONFTEST = textwrap.dedent(
    """
    import math
    import os
    import random
    from pathlib import Path

    import pytest

    from perfcheck.run.fake import FakeProbeBackend, use_fakes


    def pytest_perfcheck_harness(config, harness):
        backend = FakeProbeBackend()
        slowdown = float(os.environ.get("FAKE_SLOWDOWN", "1.0"))
        rng = random.Random(int(os.environ.get("FAKE_SEED", "1")))
        # Only these fresh sessions (0: the run's first) are slowed down, when set.
        slow_sessions = os.environ.get("FAKE_SLOW_SESSIONS")

        def latency(round_no, i):
            slow = slow_sessions is None or str(harness.fresh_sessions) in slow_sessions.split(",")
            return int(rng.lognormvariate(math.log(10_000 * (slowdown if slow else 1.0)), 0.05))

        use_fakes(harness, latency, backend)


    @pytest.hookimpl(trylast=True)
    def pytest_configure(config):
        # FAKE_TTY=1 lets a test see what a terminal would show.
        if os.environ.get("FAKE_TTY") == "1":
            config.pluginmanager.getplugin("terminalreporter").isatty = lambda: True
    """
)

FIO_JOB = "[reads]\nrw=randread\nbs=4k\n"


def scenario_text(rounds: int = 5) -> str:
    """A scenario of ``rounds`` half-second rounds of ``reads.fio`` under block.latency."""
    return textwrap.dedent(
        f"""
        description = "fake reads"
        probes = ["block.latency"]

        [workload]
        kind = "fio"
        job = "reads.fio"

        [rounds]
        count = {rounds}
        warmup = 1
        seconds = 0.5
        """
    )


SCENARIO = scenario_text()


def make_project(
    pytester: pytest.Pytester,
    conftest: str = FAKE_CONFTEST,
    scenarios: Mapping[str, str] | None = None,
) -> pytest.Pytester:
    """Write ``conftest`` and ``scenarios/`` (name -> TOML; default one ``fake-reads``)."""
    pytester.makeconftest(conftest)
    directory = pytester.mkdir("scenarios")
    (directory / "reads.fio").write_text(FIO_JOB)
    for name, text in (scenarios or {"fake-reads": SCENARIO}).items():
        (directory / f"{name}.toml").write_text(text)
    return pytester


def run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in the project, in process, without the cache and with skip reasons shown."""
    return p.runpytest("-p", "no:cacheprovider", "-rs", *args)


def record_then_slow_down(p: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, by: float) -> Path:
    """Record the project's baselines, then make every fake latency ``by`` times longer;
    returns where a run may save its results."""
    run(p, "--perfcheck-update", "scenarios/").assert_outcomes(passed=1)
    monkeypatch.setenv("FAKE_SLOWDOWN", str(by))
    return p.path / "results.json"
