"""The network namespace target without touching the machine: qdisc specs, tc commands,
names of leftovers, and what is refused before anything is created."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfcheck.errors import CapabilityError, TargetError
from perfcheck.system import netns
from perfcheck.system.netns import (
    NETNS_MARKER,
    NetnsTarget,
    QdiscSpec,
    leftover_namespaces,
    parse_qdisc,
    remove_leftover_cgroups,
)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(proc.stdout)


def test_tbf_is_one_tc_command_on_lo_of_the_namespace() -> None:
    spec = parse_qdisc("tbf rate 2gbit burst 512kb latency 20ms")
    assert spec == QdiscSpec("tbf", ("rate", "2gbit", "burst", "512kb", "latency", "20ms"))
    assert spec.tc_commands("tc", "ns1") == [
        ["tc", "-n", "ns1", "qdisc", "add", "dev", "lo", "root", "tbf",
         "rate", "2gbit", "burst", "512kb", "latency", "20ms"],
    ]  # fmt: skip


def test_htb_gets_a_default_class_that_carries_the_rate() -> None:
    spec = parse_qdisc("htb rate 100mbit ceil 200mbit")
    qdisc, klass = spec.tc_commands("tc", "ns1")
    assert qdisc == ["tc", "-n", "ns1", "qdisc", "add", "dev", "lo", "root", "handle", "1:",
                     "htb", "default", "1"]  # fmt: skip
    assert klass == ["tc", "-n", "ns1", "class", "add", "dev", "lo", "parent", "1:",
                     "classid", "1:1", "htb", "rate", "100mbit", "ceil", "200mbit"]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("netem delay 10ms", "starts with 'netem'; supported qdiscs: tbf, htb"),
        ("tbf burst 10kb latency 1ms", "has no 'rate' parameter"),
        ("tbf rate 1gbit; reboot", "'1gbit;' that is not a tc word"),
        ("htb rate $(id)", "'$(id)' that is not a tc word"),
    ],
)
def test_bad_qdiscs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_qdisc(text)


@given(st.lists(st.from_regex(r"[A-Za-z0-9._:/-]{1,12}", fullmatch=True), max_size=6))
def test_a_parsed_qdisc_reads_back_as_written(extra: list[str]) -> None:
    text = " ".join(["tbf", "rate", "1gbit", *extra])
    assert parse_qdisc(text).text == text


def test_names_of_dead_runs_are_leftovers_and_nothing_else(tmp_path: Path) -> None:
    dead = dead_pid()
    for name in (
        f"{NETNS_MARKER}{dead}-0badcafe",  # a killed run's
        f"{NETNS_MARKER}{os.getpid()}-12345678",  # this live process's
        f"perfcheck-test-{dead}",  # someone else's naming
        f"{NETNS_MARKER}{dead}-notahexTOKEN",
        "blue",
    ):
        (tmp_path / name).touch()
    assert leftover_namespaces(tmp_path) == [(f"{NETNS_MARKER}{dead}-0badcafe", dead)]


def test_no_run_dir_means_no_leftovers(tmp_path: Path) -> None:
    assert leftover_namespaces(tmp_path / "absent") == []


def test_leftover_cgroups_of_dead_runs_are_removed_when_empty(tmp_path: Path) -> None:
    dead = dead_pid()
    gone = tmp_path / f"perfcheck-{dead}-00aa11bb"
    alive = tmp_path / f"perfcheck-{os.getpid()}-00aa11bb"
    busy = tmp_path / f"perfcheck-{dead}-22cc33dd"
    other = tmp_path / "system.slice"
    for path in (gone, alive, busy, other):
        path.mkdir()
    (busy / "cgroup.procs").write_text("")  # not empty: rmdir fails, it is left alone
    removed = remove_leftover_cgroups(tmp_path)
    assert removed == [f"removed cgroup {gone} (left by process {dead})"]
    assert not gone.exists() and alive.exists() and busy.exists() and other.exists()


def test_without_ip_the_error_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.shutil, "which", lambda name: None)
    with pytest.raises(CapabilityError) as err:
        netns.require_iproute2("tc")
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("tc: not found on PATH")
    assert "apt-get install iproute2" in text


def test_without_root_no_namespace_is_attempted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    calls: list[object] = []
    monkeypatch.setattr(netns.subprocess, "run", lambda *a, **k: calls.append(a))
    with pytest.raises(CapabilityError, match="needs root"):
        NetnsTarget.create()
    assert calls == []


def test_a_failing_qdisc_deletes_the_half_made_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda name: f"/sbin/{name}")
    commands: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        commands.append(cmd)
        failing = "qdisc" in cmd
        return subprocess.CompletedProcess(
            cmd, 2 if failing else 0, "", "Error: bad rate" if failing else ""
        )

    monkeypatch.setattr(netns.subprocess, "run", fake_run)
    with pytest.raises(TargetError) as err:
        NetnsTarget.create(parse_qdisc("tbf rate 1zbit burst 1kb latency 1ms"))
    assert "Error: bad rate" in str(err.value) and "\n" not in str(err.value)
    name = commands[0][3]
    assert commands[0] == ["/sbin/ip", "netns", "add", name]
    assert name.startswith(f"{NETNS_MARKER}{os.getpid()}-")
    assert ["/sbin/ip", "netns", "delete", name] in commands


def test_facts_name_the_qdisc() -> None:
    plain = NetnsTarget("n", None, _closed=True)
    shaped = NetnsTarget("n", parse_qdisc("tbf rate 1gbit burst 512kb latency 5ms"), _closed=True)
    assert plain.facts()["target.qdisc"] == "none"
    assert shaped.facts()["target.qdisc"] == "tbf rate 1gbit burst 512kb latency 5ms"
    assert shaped.facts()["target.kind"] == "netns"
