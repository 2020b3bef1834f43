"""Network workloads without running them: what sockperf and iperf3 print becomes
histograms and scalars (or one-line errors), scenario keys of the network kinds, the
readiness check, and the direction and display of network metrics."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfcheck.errors import CapabilityError, ScenarioError, TargetError, WorkloadError
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.stats.gate import is_gated
from perfcheck.stats.verdict import format_value
from perfcheck.system.netns import parse_qdisc
from perfcheck.workloads import netload
from perfcheck.workloads.netload import (
    Iperf3ServerBusy,
    NetworkSpec,
    bound_socket_inodes,
    check_cpus,
    is_listening,
    parse_iperf3_json,
    parse_sockperf_full_log,
    parse_sockperf_output,
    require_tool,
    whole_seconds,
)
from perfcheck.workloads.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]

# What sockperf 3.7 prints (colour escapes included), trimmed.
SOCKPERF_OUTPUT = (
    "sockperf: \x1b[2;35m== version #3.7-no.git == \x1b[0m\n"
    "sockperf: Test end (interrupted by timer)\n"
    "sockperf: [Total Run] RunTime=1.000 sec; Warm up time=400 msec; SentMessages=53615;"
    " ReceivedMessages=53614\n"
    "sockperf: ========= Printing statistics for Server No: 0\n"
    "sockperf: [Valid Duration] RunTime=0.550 sec; SentMessages=27759; ReceivedMessages=27759\n"
    "sockperf: \x1b[2;35m====> avg-latency=9.900 (std-dev=69.981)\x1b[0m\n"
    "sockperf: # dropped messages = 3; # duplicated messages = 0; # out-of-order messages = 0\n"
    "sockperf: ---> percentile 50.000 =    6.805\n"
)

FULL_LOG = textwrap.dedent(
    """\
    ------------------------------
    test was performed using the following parameters: --mps=600000 --msg-size=64 --time=1
    ------------------------------
    sockperf: [Valid Duration] RunTime=0.550 sec; SentMessages=3; ReceivedMessages=3
    ------------------------------
    packet, txTime(sec), rxTime(sec), rtt(usec)
    0, 2.424138438, 2.424152048, 13.610
    1, 2.424152068, 2.424166189, 14.121
    2, 2.424166219, 2.424179799, 1013.580
    ------------------------------
    """
)


def iperf3_json(**overrides: Any) -> str:
    data: dict[str, Any] = {
        "start": {"test_start": {"protocol": "TCP", "num_streams": 2, "duration": 1}},
        "intervals": [],
        "end": {
            "streams": [
                {"sender": {"bytes": 10, "mean_rtt": 60, "sender": True}},
                {"sender": {"bytes": 10, "mean_rtt": 80, "sender": True}},
            ],
            "sum_sent": {"bytes": 2_000_000_000, "bits_per_second": 16e9, "retransmits": 7},
            "sum_received": {"bytes": 1_990_000_000, "bits_per_second": 15.9e9},
        },
    }
    data.update(overrides)
    return json.dumps(data, indent=1)


# -- sockperf ------------------------------------------------------------------------------


def test_sockperf_summary_is_read_through_its_colour_codes() -> None:
    summary = parse_sockperf_output(SOCKPERF_OUTPUT)
    assert summary == netload.SockperfSummary(
        valid_seconds=0.55, sent=27759, received=27759, dropped=3
    )


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (
            "sockperf: ERROR: Can`t connect socket (errno=111 Connection refused)\n",
            "sockperf ping-pong failed: sockperf: ERROR: Can`t connect socket",
        ),
        (
            "sockperf: Test ended\nsockperf: No messages were received from the server. Is the"
            " server down?\n",
            "No messages were received from the server",
        ),
        ("sockperf: Test ended\n", "no '[Valid Duration]' summary; last line: 'sockperf: Test"),
        ("", "last line: 'no output'"),
    ],
)
def test_sockperf_failures_are_one_line_errors_though_it_exits_0(output: str, message: str) -> None:
    with pytest.raises(WorkloadError) as err:
        parse_sockperf_output(output)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_full_log_rows_become_an_rtt_histogram_in_nanoseconds() -> None:
    hist = parse_sockperf_full_log(FULL_LOG)
    assert hist == LogLinearHistogram.from_values([13_610, 14_121, 1_013_580])


@given(st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=200))
def test_every_logged_round_trip_is_one_sample(rtts_ns: list[int]) -> None:
    rows = "".join(f"{i}, 1.0, 1.1, {ns / 1000:.3f}\n" for i, ns in enumerate(rtts_ns))
    text = f"summary\npacket, txTime(sec), rxTime(sec), rtt(usec)\n{rows}---------\n"
    assert parse_sockperf_full_log(text) == LogLinearHistogram.from_values(rtts_ns)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no header at all\n1, 2, 3, 4\n", "no 'packet, txTime(sec), ...' header"),
        (
            "packet, txTime(sec), rxTime(sec), latency(usec)\n0, 1.0, 1.1, 5.0\n",
            "one-way latency; run it with --full-rtt",
        ),
        ("packet, txTime(sec), rxTime(sec), rtt(usec)\n-----\n", "holds no round trips"),
        ("packet, txTime(sec), rxTime(sec), rtt(usec)\n0, 1.0, 1.1, abc\n", "unreadable row"),
        (
            "packet, txTime(sec), rxTime(sec), rtt(usec)\n0, 1.0, 1.1, -5.0\n",
            "latency must be >= 0 ns",
        ),
    ],
)
def test_a_broken_full_log_is_a_workload_error(text: str, message: str) -> None:
    with pytest.raises(WorkloadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_sockperf_full_log(text)


# -- iperf3 --------------------------------------------------------------------------------


def test_iperf3_json_gives_received_throughput_retransmits_and_mean_rtt() -> None:
    result = parse_iperf3_json(iperf3_json())
    assert result.bits_per_second == 15.9e9
    assert result.retransmits == 7
    assert result.mean_rtt_ns == 70_000.0  # mean of 60 us and 80 us
    assert result.bytes_received == 1_990_000_000
    assert result.streams == 2


def test_a_busy_iperf3_server_is_its_own_error_to_retry_on() -> None:
    with pytest.raises(Iperf3ServerBusy):
        parse_iperf3_json(iperf3_json(error="the server is busy running a test. try again later"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            iperf3_json(error="unable to connect to server: Connection refused"),
            "iperf3 client failed: unable to connect to server: Connection refused",
        ),
        ("iperf3: error - some text\n", "iperf3 printed no JSON"),
        ("[1, 2]", "not an object"),
        (iperf3_json(end={}), "lacks the end summary"),
    ],
)
def test_iperf3_failures_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(WorkloadError) as err:
        parse_iperf3_json(text)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


# -- readiness: /proc/<pid>/net tables and the server's own sockets -------------------------

TCP_TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2EF4 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 161520 1
   1: 0100007F:D842 0100007F:2EF4 06 00000000:00000000 03:0000176E 00000000     0        0 0 3
   2: 0100007F:2EF5 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 161999 1
"""
UDP_TABLE = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
10144: 0100007F:2F09 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 167472 2
"""


def test_bound_sockets_are_found_by_port_and_state() -> None:
    assert bound_socket_inodes(TCP_TABLE, 0x2EF4, tcp=True) == {161520}
    assert bound_socket_inodes(TCP_TABLE, 0x2EF5, tcp=True) == set()  # established, no listener
    assert bound_socket_inodes(UDP_TABLE, 0x2F09, tcp=False) == {167472}
    assert bound_socket_inodes(UDP_TABLE, 0x2F09, tcp=True) == set()


def fake_proc(root: Path, pid: int, table: str, inodes: list[int], proto: str = "tcp") -> None:
    (root / str(pid) / "net").mkdir(parents=True)
    (root / str(pid) / "net" / proto).write_text(table)
    fds = root / str(pid) / "fd"
    fds.mkdir()
    for fd, inode in enumerate(inodes):
        os.symlink(f"socket:[{inode}]", fds / str(fd))


def test_a_server_is_ready_only_when_its_own_socket_listens(tmp_path: Path) -> None:
    fake_proc(tmp_path, 10, TCP_TABLE, [161520])
    fake_proc(tmp_path, 11, TCP_TABLE, [999])  # someone else holds the port
    assert is_listening(10, 0x2EF4, tcp=True, proc_root=tmp_path)
    assert not is_listening(11, 0x2EF4, tcp=True, proc_root=tmp_path)
    assert not is_listening(12, 0x2EF4, tcp=True, proc_root=tmp_path)  # no such process


# -- small rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "whole"), [(0.5, 1), (1.0, 1), (1.4, 1), (2.6, 3), (10, 10)])
def test_rounds_last_whole_seconds_at_least_one(seconds: float, whole: int) -> None:
    assert whole_seconds(seconds) == whole


def test_pinning_to_a_cpu_this_process_cannot_use_is_refused() -> None:
    check_cpus(NetworkSpec("sockperf", server_cpu=1, client_cpu=0), allowed=[0, 1])
    with pytest.raises(TargetError) as err:
        check_cpus(NetworkSpec("sockperf", server_cpu=0, client_cpu=7), allowed=[0, 1])
    assert str(err.value) == (
        "'workload.client_cpu' = 7: no such CPU here (usable CPUs: 0, 1); pin to one of them"
        " or drop the key"
    )


@pytest.mark.parametrize("tool", ["sockperf", "iperf3"])
def test_a_missing_tool_is_one_line_with_its_install_command(
    monkeypatch: pytest.MonkeyPatch, tool: str
) -> None:
    monkeypatch.setattr(netload.shutil, "which", lambda name: None)
    with pytest.raises(CapabilityError) as err:
        require_tool(tool)
    assert str(err.value) == (
        f"{tool}: not found on PATH; install it with `apt-get install {tool}` (or `make setup`)"
    )


@pytest.mark.parametrize("tool", ["sockperf", "iperf3"])
def test_a_missing_tool_stops_a_network_scenario_before_any_namespace(
    monkeypatch: pytest.MonkeyPatch, tool: str
) -> None:
    monkeypatch.setattr(netload.shutil, "which", lambda name: None)
    created: list[object] = []
    monkeypatch.setattr(netload.NetnsTarget, "create", lambda *a: created.append(a))
    with pytest.raises(CapabilityError, match=f"apt-get install {tool}"):
        netload.NetworkLoad.start(NetworkSpec(tool))
    assert created == []


def test_settings_are_described_as_environment_facts() -> None:
    rr = NetworkSpec("sockperf", "udp", 4096, server_cpu=0, client_cpu=1)
    assert rr.describe() == {
        "workload.tool": "sockperf",
        "workload.protocol": "udp",
        "workload.server_cpu": "0",
        "workload.client_cpu": "1",
        "workload.message_size": "4096",
    }
    stream = NetworkSpec("iperf3", streams=4)
    assert stream.describe()["workload.streams"] == "4"
    assert stream.describe()["workload.server_cpu"] == "any"


def test_throughput_gates_and_the_rest_of_iperf3_is_kept_for_reading() -> None:
    assert is_gated("iperf3.bits_per_second")
    assert is_gated("sockperf.rtt.p99")
    assert not is_gated("iperf3.retransmits")
    assert not is_gated("iperf3.mean_rtt_ns")
    assert not is_gated("sockperf.round_trips_per_second")


@pytest.mark.parametrize(
    ("value", "text"),
    [(17.42e9, "17.4 Gbit/s"), (940e6, "940 Mbit/s"), (2e9, "2.00 Gbit/s"), (512.0, "512 bit/s")],
)
def test_bits_per_second_read_as_bit_rates(value: float, text: str) -> None:
    assert format_value("iperf3.bits_per_second", value) == text


# -- scenario files of the network kinds ---------------------------------------------------


def scenario(tmp_path: Path, workload: str, name: str = "net-x") -> Path:
    path = tmp_path / "scenarios" / f"{name}.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'description = "d"\n\n[workload]\n{textwrap.dedent(workload)}\n')
    return path


def test_a_sockperf_scenario_has_no_job_and_its_network_settings(tmp_path: Path) -> None:
    loaded = load_scenario(
        scenario(
            tmp_path,
            """\
            kind = "sockperf"
            protocol = "udp"
            message_size = 4096
            server_cpu = 1
            client_cpu = 0
            qdisc = "tbf rate 1gbit burst 512kb latency 20ms"
            """,
        )
    )
    assert loaded.workload.kind == "sockperf"
    assert loaded.workload.job is None
    assert loaded.workload.network == NetworkSpec(
        kind="sockperf",
        protocol="udp",
        message_size=4096,
        server_cpu=1,
        client_cpu=0,
        qdisc=parse_qdisc("tbf rate 1gbit burst 512kb latency 20ms"),
    )


def test_network_defaults(tmp_path: Path) -> None:
    rr = load_scenario(scenario(tmp_path, 'kind = "sockperf"', "rr")).workload.network
    stream = load_scenario(scenario(tmp_path, 'kind = "iperf3"', "st")).workload.network
    assert rr == NetworkSpec("sockperf", "tcp", 64, 1, None, None, None)
    assert stream == NetworkSpec("iperf3", "tcp", 64, 1, None, None, None)


@pytest.mark.parametrize(
    ("workload", "message"),
    [
        (
            'kind = "sockperf"\njob = "x.fio"',
            "unknown key 'workload.job'; allowed keys in [workload]: client_cpu, kind,"
            " message_size, protocol, qdisc, server_cpu",
        ),
        (
            'kind = "iperf3"\nmessage_size = 100',
            "unknown key 'workload.message_size'; allowed keys in [workload]: client_cpu,"
            " kind, qdisc, server_cpu, streams",
        ),
        (
            'kind = "sockperf"\nprotocl = "udp"',
            "unknown key 'workload.protocl' (did you mean 'protocol'?)",
        ),
        ('kind = "sockperf"\nprotocol = "sctp"', "'workload.protocol' 'sctp' is not supported;"),
        ('kind = "sockperf"\nprotocol = 6', "'workload.protocol' must be a string, got integer 6"),
        ('kind = "sockperf"\nmessage_size = 8', "'workload.message_size' must be from 14 to"),
        ('kind = "sockperf"\nmessage_size = 70000', "must be from 14 to 65507, got 70000"),
        ('kind = "sockperf"\nmessage_size = "64"', "must be an integer, got string '64'"),
        ('kind = "iperf3"\nstreams = 0', "'workload.streams' must be from 1 to 128, got 0"),
        ('kind = "iperf3"\nstreams = true', "'workload.streams' must be an integer, got boolean"),
        ('kind = "iperf3"\nserver_cpu = -1', "'workload.server_cpu' must be from 0 to 4095"),
        ('kind = "iperf3"\nclient_cpu = 1.5', "'workload.client_cpu' must be an integer"),
        (
            'kind = "iperf3"\nqdisc = "netem delay 1ms"',
            "'workload.qdisc' 'netem delay 1ms' starts with 'netem'; supported qdiscs: tbf, htb",
        ),
        ('kind = "iperf3"\nqdisc = 5', "'workload.qdisc' must be a string"),
        (
            'kind = "netperf"',
            "'workload.kind' 'netperf' is not supported; supported kinds: fio, sockperf, iperf3",
        ),
    ],
)
def test_bad_network_keys_are_one_line_errors_naming_file_and_key(
    tmp_path: Path, workload: str, message: str
) -> None:
    path = scenario(tmp_path, workload)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text


def test_fio_scenarios_still_need_their_job(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"missing key 'workload\.job'"):
        load_scenario(scenario(tmp_path, 'kind = "fio"'))


SHIPPED = ["net-tcp-rr-small", "net-tcp-rr-4k", "net-udp-rr", "net-tcp-stream", "net-tcp-stream-4"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_network_scenarios_load_with_the_probe_catalog(name: str) -> None:
    from perfcheck.probes import probe_names

    loaded = load_scenario(ROOT / "scenarios" / f"{name}.toml", known_probes=probe_names())
    assert loaded.workload.network is not None
    assert loaded.rounds >= 10, "one outlier round must not hide a regression"
    assert "net" in loaded.name  # selected by `pytest --perfcheck scenarios/ -k net`


def test_only_the_network_scenarios_are_named_net() -> None:
    named = sorted(p.stem for p in (ROOT / "scenarios").glob("*.toml") if "net" in p.stem)
    assert named == sorted(SHIPPED)


def test_a_servers_error_is_its_last_words_with_sockperfs_errno_line(tmp_path: Path) -> None:
    import subprocess
    import tempfile

    logdir = tempfile.TemporaryDirectory(dir=tmp_path)
    log = Path(logdir.name) / "server.log"
    log.write_text(
        "sockperf: \x1b[2;35m== version #3.7-no.git == \x1b[0m\n"
        "sockperf: ERROR: [fd=3] Can`t bind socket, IP to bind: 127.0.0.1:22508\n"
        " (errno=98 Address already in use)\n"
        "sockperf: cleanupAfterLoop() exit\n"
    )
    process = subprocess.Popen(["true"])
    process.wait()
    server = netload.NetworkServer("sockperf", 22508, True, process, log, logdir)
    assert server.last_words() == (
        "sockperf: ERROR: [fd=3] Can`t bind socket, IP to bind: 127.0.0.1:22508"
        " (errno=98 Address already in use)"
    )
    assert server.port_was_busy()
    log.write_text("iperf3: error - unable to start listener for connections: Bad address\n")
    assert not server.port_was_busy()
    assert server.last_words().endswith("Bad address")
    server.stop()
    assert not Path(logdir.name).exists()
