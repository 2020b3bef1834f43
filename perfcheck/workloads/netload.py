"""Network load inside a private namespace: sockperf ping-pong and iperf3 bulk transfer.

A network scenario runs one server for all its rounds and one client per round, both in
the scenario's own namespace (:class:`~perfcheck.system.netns.NetnsTarget`) on 127.0.0.1:

``sockperf``
    ``sockperf server`` and, each round, ``sockperf ping-pong`` (TCP or UDP) with
    ``--full-rtt --full-log``: every round trip of the round's measured window becomes one
    sample of the ``sockperf.rtt`` histogram (ns). sockperf sleeps about 2 s after
    connecting and discards its first 0.4 s and last 0.05 s, so a round of ``-t N``
    seconds takes about N + 2.3 s and measures N - 0.45 s. Scalars:
    ``sockperf.round_trips_per_second`` (measured window) and
    ``sockperf.dropped_messages``.
``iperf3``
    ``iperf3 -s`` and, each round, ``iperf3 -c -J``, one or more TCP streams. Scalars:
    ``iperf3.bits_per_second`` (received, all streams), ``iperf3.retransmits`` and
    ``iperf3.mean_rtt_ns`` (the streams' mean smoothed RTT).

Both tools take whole seconds (``-t``), so a round lasts the round length rounded to
whole seconds, at least 1. The iperf3 PyPI wrapper is not used: it runs iperf3 in the
test process through libiperf and breaks under pytest's fd capture; a subprocess does
not.

The server gets a port picked at random in :data:`SERVER_PORTS` (below the kernel's
ephemeral range, so a client's own port never collides with it), and counts as ready
only when a socket of its own process listens on that port. A busy port means another
port, up to :data:`SERVER_START_ATTEMPTS` tries; any other failure is a one-line
``WorkloadError`` with the server's last words. Every child runs with
``PR_SET_PDEATHSIG`` (it dies with the harness, even on SIGKILL), optionally pinned to
a CPU and inside the run's workload cgroup (so probes can filter on it).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from perfcheck.errors import CapabilityError, TargetError, WorkloadError
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.system.cgroup import WorkloadCgroup
from perfcheck.system.environment import tool_version
from perfcheck.system.netns import LOOPBACK_ADDRESS, NetnsTarget, QdiscSpec
from perfcheck.system.processes import run_tempdir, run_within, stop_process
from perfcheck.text import ANSI_ESCAPE_RE
from perfcheck.workloads.fio import die_with_parent
from perfcheck.workloads.rounds import Workload, WorkloadReport

NETWORK_KINDS: tuple[str, ...] = ("sockperf", "iperf3")
SOCKPERF_PROTOCOLS: tuple[str, ...] = ("tcp", "udp")
#: sockperf's smallest message carries its own header; UDP's largest payload.
MESSAGE_SIZE_RANGE = (14, 65507)
STREAMS_RANGE = (1, 128)
CPU_RANGE = (0, 4095)

INSTALL_HINTS = {
    "sockperf": "install it with `apt-get install sockperf` (or `make setup`)",
    "iperf3": "install it with `apt-get install iperf3` (or `make setup`)",
}

#: Servers listen on a port from here: below the ephemeral range (32768-60999).
SERVER_PORTS = range(20000, 30000)
SERVER_START_ATTEMPTS = 3
SERVER_READY_TIMEOUT_S = 5.0
SERVER_STOP_GRACE_S = 2.0
#: A client round may run this much longer than its -t before it is killed.
CLIENT_TIMEOUT_MARGIN_S = 30.0
#: sockperf's fixed costs per run: ~2 s sleep after connecting, 0.45 s not measured.
SOCKPERF_STARTUP_S = 2.3
SOCKPERF_UNMEASURED_S = 0.45
#: iperf3's server takes a moment to accept the next test after one ends.
IPERF3_BUSY_RETRIES = 20
IPERF3_BUSY_WAIT_S = 0.1

_VALID_RE = re.compile(
    r"\[Valid Duration\] RunTime=([0-9.]+) sec; SentMessages=(\d+); ReceivedMessages=(\d+)"
)
_DROPPED_RE = re.compile(r"# dropped messages = (\d+)")
_FULL_LOG_HEADER_RE = re.compile(r"^packet,\s*txTime\(sec\),\s*rxTime\(sec\),\s*(\w+)\(usec\)")
_BUSY_PORT_WORDS = ("Address already in use", "errno=98")


@dataclass(frozen=True)
class NetworkSpec:
    """What a network scenario runs: the tool and its settings (perfcheck.workloads.scenario)."""

    kind: str
    protocol: str = "tcp"
    message_size: int = 64
    streams: int = 1
    server_cpu: int | None = None
    client_cpu: int | None = None
    qdisc: QdiscSpec | None = None

    def describe(self) -> dict[str, str]:
        """The settings as environment facts of a measurement."""
        facts = {
            "workload.tool": self.kind,
            "workload.protocol": self.protocol,
            "workload.server_cpu": "any" if self.server_cpu is None else str(self.server_cpu),
            "workload.client_cpu": "any" if self.client_cpu is None else str(self.client_cpu),
        }
        if self.kind == "sockperf":
            facts["workload.message_size"] = str(self.message_size)
        else:
            facts["workload.streams"] = str(self.streams)
        return facts


def require_tool(kind: str) -> str:
    """Path of the workload tool, or a one-line CapabilityError with the install command."""
    path = shutil.which(kind)
    if path is None:
        raise CapabilityError(f"{kind}: not found on PATH; {INSTALL_HINTS[kind]}")
    return path


def whole_seconds(seconds: float) -> int:
    """Round length as the tools take it: whole seconds, at least 1."""
    return max(1, round(seconds))


def check_cpus(spec: NetworkSpec, allowed: Iterable[int] | None = None) -> None:
    """The CPUs a scenario pins to must be ones this process may run on."""
    usable = sorted(allowed if allowed is not None else os.sched_getaffinity(0))
    for key, cpu in (("server_cpu", spec.server_cpu), ("client_cpu", spec.client_cpu)):
        if cpu is not None and cpu not in usable:
            raise TargetError(
                f"'workload.{key}' = {cpu}: no such CPU here (usable CPUs:"
                f" {', '.join(map(str, usable))}); pin to one of them or drop the key"
            )


def child_setup(cpu: int | None, cgroup: WorkloadCgroup | None) -> Callable[[], None]:
    """``preexec_fn`` of every server and client: die with the harness, join the workload
    cgroup, run on ``cpu`` (affinity is inherited through ``ip netns exec``)."""
    join = cgroup.preexec_fn() if cgroup is not None else None

    def setup() -> None:
        die_with_parent()
        if join is not None:
            join()
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return setup


# -- readiness: a socket of the server's own process bound to its port ------------------


def _socket_inodes(pid: int, proc_root: Path) -> set[int]:
    inodes: set[int] = set()
    with contextlib.suppress(OSError):
        for fd in (proc_root / str(pid) / "fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    return inodes


def bound_socket_inodes(table: str, port: int, tcp: bool) -> set[int]:
    """Inodes of the sockets in a ``/proc/net/{tcp,udp}`` table bound to ``port``: TCP in
    LISTEN (state 0A), UDP unconnected (state 07)."""
    want_state = "0A" if tcp else "07"
    inodes: set[int] = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or ":" not in fields[1]:
            continue
        with contextlib.suppress(ValueError):
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == want_state:
                inodes.add(int(fields[9]))
    return inodes


def is_listening(pid: int, port: int, tcp: bool, proc_root: Path = Path("/proc")) -> bool:
    """Whether process ``pid`` itself holds a socket bound to ``port`` (in its namespace)."""
    table_path = proc_root / str(pid) / "net" / ("tcp" if tcp else "udp")
    try:
        table = table_path.read_text()
    except OSError:
        return False
    return bool(bound_socket_inodes(table, port, tcp) & _socket_inodes(pid, proc_root))


def random_ports(rng: random.Random | None = None) -> Iterator[int]:
    """Endless random server ports from :data:`SERVER_PORTS`."""
    rng = rng or random.Random()
    while True:
        yield rng.choice(SERVER_PORTS)


def server_command(kind: str, protocol: str, port: int) -> list[str]:
    tool = require_tool(kind)
    if kind == "sockperf":
        proto = ["--tcp"] if protocol == "tcp" else []
        # --timeout=-1: block in epoll instead of waking every 10 ms between rounds.
        return [tool, "server", *proto, "-i", LOOPBACK_ADDRESS, "-p", str(port), "--timeout=-1"]
    return [tool, "-s", "-B", LOOPBACK_ADDRESS, "-p", str(port)]


@dataclass
class NetworkServer:
    """One server process in the namespace, on its own port, until :meth:`stop`."""

    kind: str
    port: int
    tcp: bool
    process: subprocess.Popen[bytes]
    log_path: Path
    _logdir: tempfile.TemporaryDirectory[str] = field(repr=False)

    @classmethod
    def start(
        cls,
        target: NetnsTarget,
        kind: str,
        protocol: str = "tcp",
        *,
        cpu: int | None = None,
        cgroup: WorkloadCgroup | None = None,
        ports: Iterable[int] | None = None,
        attempts: int = SERVER_START_ATTEMPTS,
        ready_timeout_s: float = SERVER_READY_TIMEOUT_S,
    ) -> NetworkServer:
        """Start the server and wait until it listens; a busy port means another port."""
        tcp = protocol == "tcp" or kind == "iperf3"
        port_iter = iter(ports if ports is not None else random_ports())
        failures: list[str] = []
        for _ in range(attempts):
            port = next(port_iter)
            logdir = run_tempdir(f"{kind}-server")
            log_path = Path(logdir.name) / "server.log"
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    target.command(server_command(kind, protocol, port)),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=child_setup(cpu, cgroup),
                )
            server = cls(kind, port, tcp, process, log_path, logdir)
            try:
                problem = server.wait_ready(ready_timeout_s)
            except BaseException:
                server.stop()
                raise
            if problem is None:
                return server
            busy = server.port_was_busy()
            server.stop()
            failures.append(f"port {port}: {problem}")
            if not busy:
                break  # only a busy port is worth another try
        raise WorkloadError(
            f"{kind} server did not start in network namespace {target.name}"
            f" ({'; '.join(failures)}); run `{kind} --help` there to check it works"
        )

    def wait_ready(self, timeout_s: float) -> str | None:
        """None once listening; else why not (its exit and last output, or a time-out)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"exited {self.process.returncode}: {self.last_words()}"
            if is_listening(self.process.pid, self.port, self.tcp):
                return None
            time.sleep(0.01)
        return f"not listening after {timeout_s:g} s: {self.last_words()}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        try:
            return ANSI_ESCAPE_RE.sub("", self.log_path.read_text(errors="replace"))
        except OSError:
            return ""

    def port_was_busy(self) -> bool:
        return any(word in self.output() for word in _BUSY_PORT_WORDS)

    def last_words(self) -> str:
        """The server's last error line (with sockperf's "(errno=...)" continuation), or
        its last line."""
        lines = [ln.strip() for ln in self.output().splitlines() if ln.strip()]
        for i in range(len(lines) - 1, -1, -1):
            if "error" in lines[i].lower():
                follow = lines[i + 1] if i + 1 < len(lines) else ""
                return f"{lines[i]} {follow}" if follow.startswith("(") else lines[i]
        return lines[-1] if lines else "no output"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; always reaped."""
        stop_process(self.process, SERVER_STOP_GRACE_S)
        self._logdir.cleanup()


# -- parsing what the tools report -----------------------------------------------------


@dataclass(frozen=True)
class SockperfSummary:
    """sockperf ping-pong's own accounting of its measured window."""

    valid_seconds: float
    sent: int
    received: int
    dropped: int


def parse_sockperf_output(text: str) -> SockperfSummary:
    """Read sockperf ping-pong's summary; its errors (it exits 0 on them) raise."""
    clean = ANSI_ESCAPE_RE.sub("", text)
    for line in clean.splitlines():
        if "ERROR" in line or "No messages were received" in line:
            raise WorkloadError(f"sockperf ping-pong failed: {line.strip()}")
    match = _VALID_RE.search(clean)
    if match is None:
        last = [ln.strip() for ln in clean.splitlines() if ln.strip()][-1:] or ["no output"]
        raise WorkloadError(
            f"sockperf ping-pong printed no '[Valid Duration]' summary; last line: {last[0]!r}"
        )
    dropped = _DROPPED_RE.search(clean)
    return SockperfSummary(
        valid_seconds=float(match.group(1)),
        sent=int(match.group(2)),
        received=int(match.group(3)),
        dropped=int(dropped.group(1)) if dropped else 0,
    )


def parse_sockperf_full_log(text: str) -> LogLinearHistogram:
    """``--full-log`` CSV (``packet, txTime(sec), rxTime(sec), rtt(usec)``) -> histogram, ns.

    sockperf writes its summary above the CSV and a rule below it; only the rows after
    the header count. The last column is in microseconds with nanosecond digits.
    """
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if _FULL_LOG_HEADER_RE.match(ln)), None)
    if start is None:
        raise WorkloadError("sockperf --full-log has no 'packet, txTime(sec), ...' header")
    column = _FULL_LOG_HEADER_RE.match(lines[start])
    if column is None or column.group(1) != "rtt":
        raise WorkloadError("sockperf --full-log holds one-way latency; run it with --full-rtt")
    values: list[int] = []
    for line in lines[start + 1 :]:
        if not line[:1].isdigit():
            continue
        try:
            usec = float(line.rsplit(",", 1)[1])
        except (IndexError, ValueError) as exc:
            raise WorkloadError(f"sockperf --full-log: unreadable row {line!r}") from exc
        values.append(round(usec * 1000.0))
    if not values:
        raise WorkloadError("sockperf --full-log holds no round trips")
    try:
        return LogLinearHistogram.from_values(values)
    except ValueError as exc:
        raise WorkloadError(f"sockperf --full-log: {exc}") from exc


@dataclass(frozen=True)
class Iperf3Result:
    bits_per_second: float
    retransmits: int
    mean_rtt_ns: float
    bytes_received: int
    streams: int


class Iperf3ServerBusy(WorkloadError):
    """The iperf3 server is still finishing the previous test: try again shortly."""


def parse_iperf3_json(text: str) -> Iperf3Result:
    """Read ``iperf3 -c -J`` output (errors are in its JSON: it may exit 0 on them)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        first = text.strip().splitlines()[:1] or ["no output"]
        raise WorkloadError(f"iperf3 printed no JSON ({exc}); first line: {first[0]!r}") from exc
    if not isinstance(data, dict):
        raise WorkloadError("iperf3's JSON is not an object")
    error = data.get("error")
    if error:
        if "busy" in str(error):
            raise Iperf3ServerBusy(f"iperf3: {error}")
        raise WorkloadError(f"iperf3 client failed: {error}")
    try:
        end = data["end"]
        received = end["sum_received"]
        sent = end["sum_sent"]
        streams = end["streams"]
        rtts = [float(s["sender"]["mean_rtt"]) for s in streams if "mean_rtt" in s["sender"]]
        return Iperf3Result(
            bits_per_second=float(received["bits_per_second"]),
            retransmits=int(sent.get("retransmits", 0)),
            mean_rtt_ns=1000.0 * sum(rtts) / len(rtts) if rtts else 0.0,
            bytes_received=int(received["bytes"]),
            streams=len(streams),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WorkloadError(f"iperf3's JSON lacks the end summary ({exc!r})") from exc


# -- one round each --------------------------------------------------------------------


def _run_client(
    cmd: list[str], timeout_s: float, setup: Callable[[], None], tool: str
) -> subprocess.CompletedProcess[str]:
    too_slow = f"{tool} client did not finish within {timeout_s:.0f} s; killed"
    return run_within(cmd, timeout_s, too_slow, stdin=subprocess.DEVNULL, preexec_fn=setup)


@dataclass
class SockperfWorkload:
    """sockperf ping-pong as a round workload: one client run per round."""

    target: NetnsTarget
    server: NetworkServer
    spec: NetworkSpec
    cgroup: WorkloadCgroup | None = None

    def command(self, seconds: int, full_log: Path) -> list[str]:
        proto = ["--tcp"] if self.spec.protocol == "tcp" else []
        return self.target.command(
            [
                require_tool("sockperf"),
                "ping-pong",
                *proto,
                *("-i", LOOPBACK_ADDRESS, "-p", str(self.server.port)),
                *("-t", str(seconds), "-m", str(self.spec.message_size)),
                *("--full-rtt", "--full-log", str(full_log)),
            ]
        )

    def run(self, seconds: float) -> WorkloadReport:
        whole = whole_seconds(seconds)
        with run_tempdir("sockperf") as tmp:
            full_log = Path(tmp) / "full-log.csv"
            proc = _run_client(
                self.command(whole, full_log),
                whole + SOCKPERF_STARTUP_S + CLIENT_TIMEOUT_MARGIN_S,
                child_setup(self.spec.client_cpu, self.cgroup),
                "sockperf",
            )
            try:
                summary = parse_sockperf_output(proc.stdout + proc.stderr)
                if proc.returncode != 0:
                    raise WorkloadError(f"sockperf ping-pong exited {proc.returncode}")
                rtt = parse_sockperf_full_log(full_log.read_text(errors="replace"))
            except (WorkloadError, OSError) as exc:
                raise WorkloadError(f"{exc}{self._server_state()}") from exc
        return WorkloadReport(
            histograms={"sockperf.rtt": rtt},
            scalars={
                "sockperf.round_trips_per_second": summary.received / summary.valid_seconds
                if summary.valid_seconds > 0
                else 0.0,
                "sockperf.dropped_messages": float(summary.dropped),
            },
            ios=summary.received,
            io_bytes=2 * summary.received * self.spec.message_size,
        )

    def _server_state(self) -> str:
        if self.server.alive():
            return ""
        return f" (the server exited {self.server.process.returncode}: {self.server.last_words()})"


@dataclass
class Iperf3Workload:
    """iperf3 as a round workload: one client run (one or more TCP streams) per round."""

    target: NetnsTarget
    server: NetworkServer
    spec: NetworkSpec
    cgroup: WorkloadCgroup | None = None

    def command(self, seconds: int) -> list[str]:
        return self.target.command(
            [
                require_tool("iperf3"),
                *("-c", LOOPBACK_ADDRESS, "-p", str(self.server.port)),
                *("-t", str(seconds), "-P", str(self.spec.streams)),
                *("-J", "--connect-timeout", "3000"),
            ]
        )

    def run(self, seconds: float) -> WorkloadReport:
        whole = whole_seconds(seconds)
        setup = child_setup(self.spec.client_cpu, self.cgroup)
        for attempt in range(IPERF3_BUSY_RETRIES + 1):
            proc = _run_client(
                self.command(whole), whole + CLIENT_TIMEOUT_MARGIN_S, setup, "iperf3"
            )
            try:
                result = parse_iperf3_json(proc.stdout)
            except Iperf3ServerBusy:
                if attempt == IPERF3_BUSY_RETRIES:
                    raise
                time.sleep(IPERF3_BUSY_WAIT_S)
                continue
            except WorkloadError as exc:
                state = ""
                if not self.server.alive():
                    state = (
                        f" (the server exited {self.server.process.returncode}:"
                        f" {self.server.last_words()})"
                    )
                raise WorkloadError(f"{exc}{state}") from exc
            return WorkloadReport(
                scalars={
                    "iperf3.bits_per_second": result.bits_per_second,
                    "iperf3.retransmits": float(result.retransmits),
                    "iperf3.mean_rtt_ns": result.mean_rtt_ns,
                },
                ios=0,
                io_bytes=result.bytes_received,
            )
        raise AssertionError("unreachable")  # pragma: no cover


NetworkWorkload = SockperfWorkload | Iperf3Workload

#: What each tool's numbers are, as a measurement's provenance records it.
PROVENANCE: Mapping[str, list[str]] = {
    "sockperf": ["sockperf ping-pong --full-rtt --full-log: every round trip, ns"],
    "iperf3": ["iperf3 -c -J: end.sum_received bits_per_second, sum_sent retransmits, mean_rtt"],
}


class NetworkSetup(Protocol):
    """What a network measurement needs from a started scenario (real or fake)."""

    @property
    def spec(self) -> NetworkSpec: ...
    @property
    def workload(self) -> Workload: ...
    def probe_settings(self) -> dict[str, int]: ...
    def facts(self) -> dict[str, Any]: ...
    def provenance(self) -> dict[str, list[str]]: ...
    def command_environment(self) -> dict[str, str]: ...
    def close(self) -> None: ...


@dataclass
class NetworkLoad:
    """One network scenario's namespace, cgroup and server, and its per-round client.

    Started together by :meth:`start`, stopped together by :meth:`close` (server, then
    anything left in the namespace and the namespace itself, then the cgroup).
    """

    spec: NetworkSpec
    target: NetnsTarget
    server: NetworkServer
    workload: NetworkWorkload
    cgroup: WorkloadCgroup | None = None
    _closed: bool = False

    @classmethod
    def start(
        cls,
        spec: NetworkSpec,
        *,
        with_cgroup: bool = False,
        ports: Iterable[int] | None = None,
    ) -> NetworkLoad:
        """Check the tools and CPUs, then create the namespace, cgroup and server."""
        require_tool(spec.kind)
        check_cpus(spec)
        target = NetnsTarget.create(spec.qdisc)
        cgroup: WorkloadCgroup | None = None
        try:
            cgroup = WorkloadCgroup.create() if with_cgroup else None
            server = NetworkServer.start(
                target, spec.kind, spec.protocol, cpu=spec.server_cpu, cgroup=cgroup, ports=ports
            )
        except BaseException:
            target.close()
            if cgroup is not None:
                cgroup.close()
            raise
        workload: NetworkWorkload = (
            SockperfWorkload(target, server, spec, cgroup)
            if spec.kind == "sockperf"
            else Iperf3Workload(target, server, spec, cgroup)
        )
        return cls(spec, target, server, workload, cgroup)

    def probe_settings(self) -> dict[str, int]:
        """Probe filters: the server's port (``tcp.srtt``) and the workload cgroup."""
        return {
            "port": self.server.port,
            "cgroup_id": self.cgroup.id if self.cgroup is not None else 0,
        }

    def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {**self.target.facts(), **self.spec.describe()}
        facts[f"tool.{self.spec.kind}"] = tool_version(self.spec.kind)
        return facts

    def provenance(self) -> dict[str, list[str]]:
        return {self.spec.kind: list(PROVENANCE[self.spec.kind])}

    def command_environment(self) -> dict[str, str]:
        """For ``perfcheck ab``'s commands: the namespace the scenario's traffic runs in."""
        return {"PERFCHECK_NETNS": self.target.name}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.server.stop()
        finally:
            try:
                self.target.close()
            finally:
                if self.cgroup is not None:
                    self.cgroup.close()


__all__ = [
    "CPU_RANGE",
    "MESSAGE_SIZE_RANGE",
    "NETWORK_KINDS",
    "SOCKPERF_PROTOCOLS",
    "STREAMS_RANGE",
    "Iperf3Result",
    "Iperf3ServerBusy",
    "Iperf3Workload",
    "NetworkLoad",
    "NetworkServer",
    "NetworkSetup",
    "NetworkSpec",
    "NetworkWorkload",
    "SockperfSummary",
    "SockperfWorkload",
    "bound_socket_inodes",
    "check_cpus",
    "child_setup",
    "is_listening",
    "parse_iperf3_json",
    "parse_sockperf_full_log",
    "parse_sockperf_output",
    "require_tool",
    "whole_seconds",
]
