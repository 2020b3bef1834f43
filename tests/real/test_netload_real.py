"""sockperf and iperf3 for real, inside a private namespace: one round each gives what the
scenarios gate on; a busy port is retried; a server that cannot start or dies is a clear
one-line error; a run stopped by SIGTERM, Ctrl-C or SIGKILL leaves no namespace, server
or cgroup behind."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from perfcheck.errors import WorkloadError
from perfcheck.system.cgroup import CGROUP_MARKER, cgroup2_root
from perfcheck.system.netns import (
    NETNS_MARKER,
    NETNS_RUN_DIR,
    NetnsTarget,
    namespace_pids,
    parse_qdisc,
    remove_leftover_network,
)
from perfcheck.system.processes import remove_leftover_tempdirs
from perfcheck.workloads import netload
from perfcheck.workloads.netload import NetworkLoad, NetworkServer, NetworkSpec
from tests.realcaps import requires_bpf, sigint_as_a_terminal_would

ROOT = Path(__file__).resolve().parents[2]


def missing(*tools: str) -> str | None:
    if os.geteuid() != 0:
        return "needs root for a private network namespace"
    for tool in ("ip", "tc", *tools):
        if shutil.which(tool) is None:
            return f"{tool} not installed (run `make setup`)"
    return None


needs_sockperf = pytest.mark.skipif(
    missing("sockperf") is not None, reason=str(missing("sockperf"))
)
needs_iperf3 = pytest.mark.skipif(missing("iperf3") is not None, reason=str(missing("iperf3")))


@pytest.fixture
def namespace() -> Iterator[NetnsTarget]:
    with NetnsTarget.create() as target:
        yield target


@needs_sockperf
@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_one_sockperf_round_is_every_round_trip_as_a_histogram(protocol: str) -> None:
    load = NetworkLoad.start(NetworkSpec("sockperf", protocol, 64, server_cpu=0, client_cpu=0))
    try:
        assert namespace_pids(load.target.name) == [load.server.process.pid]
        report = load.workload.run(1.0)
    finally:
        load.close()
    rtt = report.histograms["sockperf.rtt"]
    assert rtt.total > 1000
    assert 1_000 < rtt.percentile(50) < 10_000_000  # ns: a loopback round trip
    assert report.scalars["sockperf.round_trips_per_second"] > 1000
    assert report.scalars["sockperf.dropped_messages"] == 0
    assert not (NETNS_RUN_DIR / load.target.name).exists()
    assert load.server.process.poll() is not None


@needs_iperf3
def test_one_iperf3_round_is_held_to_the_namespaces_tbf_rate() -> None:
    spec = NetworkSpec(
        "iperf3", streams=2, qdisc=parse_qdisc("tbf rate 500mbit burst 256kb latency 20ms")
    )
    load = NetworkLoad.start(spec, with_cgroup=cgroup2_root() is not None)
    try:
        report = load.workload.run(1.0)
        if load.cgroup is not None:
            assert load.server.process.pid in load.cgroup.pids()
            assert load.probe_settings()["cgroup_id"] == load.cgroup.id
    finally:
        load.close()
    bits = report.scalars["iperf3.bits_per_second"]
    assert 0.25e9 < bits < 0.55e9  # the qdisc, not the CPU, sets the pace
    assert report.scalars["iperf3.mean_rtt_ns"] > 0
    if load.cgroup is not None:
        assert not load.cgroup.path.exists()


LISTENER = """
import socket, sys, time
kind = socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.bind(("127.0.0.1", int(sys.argv[2])))
if kind == socket.SOCK_STREAM:
    s.listen()
print("bound", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(
    ("kind", "protocol"),
    [
        pytest.param("sockperf", "tcp", marks=needs_sockperf),
        pytest.param("sockperf", "udp", marks=needs_sockperf),
        pytest.param("iperf3", "tcp", marks=needs_iperf3),
    ],
)
def test_a_busy_port_is_retried_on_another(
    namespace: NetnsTarget, kind: str, protocol: str
) -> None:
    busy, free = random.Random(kind + protocol).sample(netload.SERVER_PORTS, 2)
    squatter = subprocess.Popen(
        namespace.command([sys.executable, "-c", LISTENER, protocol, str(busy)]),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert squatter.stdout is not None and squatter.stdout.readline().strip() == "bound"
        server = NetworkServer.start(namespace, kind, protocol, ports=[busy, free])
        try:
            assert server.port == free
            assert netload.is_listening(server.process.pid, free, tcp=server.tcp)
            assert not netload.is_listening(server.process.pid, busy, tcp=server.tcp)
        finally:
            server.stop()
    finally:
        squatter.kill()
        squatter.wait()


@needs_iperf3
def test_every_port_busy_is_one_clear_error(namespace: NetnsTarget) -> None:
    port = 23456
    squatter = subprocess.Popen(
        namespace.command([sys.executable, "-c", LISTENER, "tcp", str(port)]),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert squatter.stdout is not None and squatter.stdout.readline().strip() == "bound"
        with pytest.raises(WorkloadError) as err:
            NetworkServer.start(namespace, "iperf3", ports=[port] * 3)
    finally:
        squatter.kill()
        squatter.wait()
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"iperf3 server did not start in network namespace {namespace.name}")
    assert text.count("Address already in use") == 3
    assert namespace_pids(namespace.name) == []  # no half-started server left


@needs_sockperf
def test_a_server_that_cannot_start_is_one_clear_error(
    namespace: NetnsTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        netload,
        "server_command",
        lambda kind, protocol, port: ["sockperf", "server", "-i", "127.0.0.2x", "-p", str(port)],
    )
    with pytest.raises(WorkloadError) as err:
        NetworkServer.start(namespace, "sockperf", "tcp", ready_timeout_s=3.0)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"sockperf server did not start in network namespace {namespace.name}")
    assert "; run `sockperf --help` there" in text
    assert namespace_pids(namespace.name) == []


@needs_iperf3
def test_a_server_that_died_is_named_in_the_rounds_error() -> None:
    load = NetworkLoad.start(NetworkSpec("iperf3"))
    try:
        load.server.process.kill()
        load.server.process.wait()
        with pytest.raises(WorkloadError) as err:
            load.workload.run(1.0)
    finally:
        load.close()
    text = str(err.value)
    assert "\n" not in text
    assert "iperf3 client failed: unable to connect" in text
    assert "(the server exited -9:" in text


# -- a real run stopped from outside ------------------------------------------------------

SCENARIO = ROOT / "scenarios" / "net-tcp-stream.toml"


def start_run(tmp_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
            "--perfcheck", "--perfcheck-update", f"--perfcheck-baseline-dir={tmp_path / 'b'}",
            "--perfcheck-rounds=3", str(SCENARIO),
        ],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=sigint_as_a_terminal_would,
    )  # fmt: skip


def namespaces_of(pid: int) -> list[str]:
    return sorted(p.name for p in NETNS_RUN_DIR.glob(f"{NETNS_MARKER}{pid}-*"))


def cgroups_of(pid: int) -> list[Path]:
    root = cgroup2_root()
    return sorted(root.glob(f"{CGROUP_MARKER}{pid}-*")) if root is not None else []


def wait_for_server(proc: subprocess.Popen[bytes], timeout: float = 300.0) -> tuple[str, list[int]]:
    """The run's namespace, once a server runs in it; and the processes inside. Generous:
    the run may first wait for another run on this host to release the host lock."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "the run ended before its server started"
        assert time.monotonic() < deadline, "no namespace with a server appeared"
        for name in namespaces_of(proc.pid):
            inside = namespace_pids(name)
            if inside:
                return name, inside
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.realbpf
@requires_bpf
@needs_iperf3
def test_a_stopped_run_leaves_no_namespace_server_or_cgroup(tmp_path: Path, signum: int) -> None:
    proc = start_run(tmp_path)
    try:
        name, inside = wait_for_server(proc)
        time.sleep(random.Random(signum).uniform(0.0, 3.0))  # somewhere in the rounds
        proc.send_signal(signum)
        assert proc.wait(timeout=60) != 0
    finally:
        proc.kill()
    assert namespaces_of(proc.pid) == []
    assert not (NETNS_RUN_DIR / name).exists()
    assert [pid for pid in inside if alive(pid)] == [], "a server outlived its run"
    assert cgroups_of(proc.pid) == []
    assert not list(Path(tempfile.gettempdir()).glob(f"perfcheck-*-{proc.pid}-*")), "files left"
    assert not list((tmp_path / "b").rglob("*.json")), "an interrupted run wrote a baseline"


@pytest.mark.realbpf
@requires_bpf
@needs_iperf3
def test_after_sigkill_nothing_runs_and_the_next_run_removes_the_rest(tmp_path: Path) -> None:
    proc = start_run(tmp_path)
    try:
        name, inside = wait_for_server(proc)
        time.sleep(random.Random(9).uniform(0.0, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while [pid for pid in inside if alive(pid)] or namespace_pids(name):
            assert time.monotonic() < deadline, "a server or client outlived its killed run"
            time.sleep(0.05)
        assert (NETNS_RUN_DIR / name).exists()
        cleaned = remove_leftover_network()
        assert f"deleted network namespace {name} (left by process {proc.pid})" in cleaned
        assert namespaces_of(proc.pid) == []
        assert cgroups_of(proc.pid) == []
        [logdir] = sorted(Path(tempfile.gettempdir()).glob(f"perfcheck-iperf3-server-{proc.pid}-*"))
        assert f"removed {logdir} (left by process {proc.pid})" in remove_leftover_tempdirs()
        assert not logdir.exists()
    finally:
        proc.kill()
        for leftover in namespaces_of(proc.pid):
            subprocess.run(["ip", "netns", "delete", leftover], check=False)
