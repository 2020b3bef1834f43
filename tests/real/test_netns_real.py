"""The private network namespace on the real machine: created with lo up and its qdisc,
deleted with everything in it, and found again by the next run when its creator was
killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perfcheck.system.netns import (
    NETNS_MARKER,
    NETNS_RUN_DIR,
    NetnsTarget,
    namespace_pids,
    parse_qdisc,
    remove_leftover_namespaces,
)

ROOT = Path(__file__).resolve().parents[2]


def network_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create a network namespace"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (iproute2; run `make setup`)"
    return None


pytestmark = pytest.mark.skipif(network_missing() is not None, reason=str(network_missing()))


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def test_namespace_has_lo_up_and_the_qdisc_and_goes_away_on_close() -> None:
    qdisc = parse_qdisc("tbf rate 1gbit burst 512kb latency 20ms")
    with NetnsTarget.create(qdisc) as target:
        assert target.name.startswith(f"{NETNS_MARKER}{os.getpid()}-")
        assert (NETNS_RUN_DIR / target.name).exists()
        assert "UP" in ip("-n", target.name, "link", "show", "lo").split(">")[0]
        shown = subprocess.run(
            ["tc", "-n", target.name, "qdisc", "show", "dev", "lo"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        assert "tbf" in shown and "rate 1Gbit" in shown
        # Inside, 127.0.0.1 answers: the loopback device works.
        probe = subprocess.run(
            target.command([sys.executable, "-c", "import socket; s = socket.socket();"
                            " s.bind(('127.0.0.1', 0)); s.listen(); print('ok')"]),
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        assert probe.stdout.strip() == "ok"
    assert not (NETNS_RUN_DIR / target.name).exists()
    target.close()  # a second close is harmless


def test_close_stops_what_still_runs_inside() -> None:
    target = NetnsTarget.create()
    sleeper = subprocess.Popen(target.command(["sleep", "60"]))
    try:
        deadline = time.monotonic() + 10
        while sleeper.pid not in namespace_pids(target.name):
            assert time.monotonic() < deadline, "sleep never showed up in the namespace"
            time.sleep(0.02)
        target.close()
        assert sleeper.wait(timeout=10) != 0
        assert not (NETNS_RUN_DIR / target.name).exists()
    finally:
        sleeper.kill()
        target.close()


ORPHAN = """
import subprocess, sys, time
from perfcheck.workloads.fio import die_with_parent
from perfcheck.system.netns import NetnsTarget
target = NetnsTarget.create()
subprocess.Popen(target.command(["sleep", "60"]), preexec_fn=die_with_parent)
print(target.name, flush=True)
time.sleep(60)
"""


def test_a_killed_runs_namespace_is_removed_by_the_next_run_and_no_one_elses() -> None:
    mine = NetnsTarget.create()  # this process is alive: never a leftover
    orphan = subprocess.Popen(
        [sys.executable, "-c", ORPHAN], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert orphan.stdout is not None
        name = orphan.stdout.readline().strip()
        assert name.startswith(f"{NETNS_MARKER}{orphan.pid}-")
        orphan.send_signal(signal.SIGKILL)
        orphan.wait(timeout=10)
        deadline = time.monotonic() + 10
        while namespace_pids(name):  # its sleep dies with its parent (PR_SET_PDEATHSIG)
            assert time.monotonic() < deadline, "a process outlived the run that started it"
            time.sleep(0.05)
        assert (NETNS_RUN_DIR / name).exists()

        removed = remove_leftover_namespaces()
        assert f"deleted network namespace {name} (left by process {orphan.pid})" in removed
        assert not (NETNS_RUN_DIR / name).exists()
        assert (NETNS_RUN_DIR / mine.name).exists()
    finally:
        orphan.kill()
        mine.close()
        if "name" in locals() and (NETNS_RUN_DIR / name).exists():
            subprocess.run(["ip", "netns", "delete", name], check=False)
