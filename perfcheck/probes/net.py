"""Network probes: ``net.softirq`` (time in the network softirqs) and ``tcp.srtt``
(TCP's smoothed round-trip time).

``net.softirq``
    ``softirq_entry`` -> ``softirq_exit`` on raw tracepoints, for NET_RX and NET_TX only,
    each its own series: ``net.softirq.net_rx``, ``net.softirq.net_tx``. This is the
    time ``net_rx_action``/``net_tx_action`` run, which bcc users measure with
    ``funcslower net_rx_action`` on kprobes; here it needs no kprobes. Softirqs do not
    nest on a CPU, so a per-CPU slot holds the entry time. The vector numbers come from
    ``/proc/softirqs``, which lists the softirqs in vector order. No filter: softirq
    work belongs to no process.
``tcp.srtt``
    ``tcp:tcp_probe``'s ``srtt`` (microseconds, stored as nanoseconds) for every segment
    received on an established connection; series ``tcp.srtt``. Filter ``port``: only
    connections whose local or remote port is that port (0: all).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from perfcheck.probes.catalog import ATTACH_RAW_TRACEPOINT, ATTACH_TRACEPOINT, CatalogProbe, setting
from perfcheck.probes.features import Unavailable, missing_raw_tracepoints, missing_tracepoints
from perfcheck.probes.maps import write_config

PROC_SOFTIRQS = Path("/proc/softirqs")

#: Softirq name in /proc/softirqs -> series suffix; the order is the maps' order.
NET_SOFTIRQS: tuple[tuple[str, str], ...] = (("NET_TX", "net_tx"), ("NET_RX", "net_rx"))

SOFTIRQ_RAW_TRACEPOINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("softirq_entry", ("unsigned int",)),
    ("softirq_exit", ("unsigned int",)),
)

NET_SOFTIRQ_C = r"""
/*
 * net.softirq: softirq_entry -> softirq_exit of NET_TX and NET_RX, per CPU.
 * pc_softirq_hist is indexed [0 NET_TX, 1 NET_RX] * PC_HIST_SLOTS + slot.
 */
struct pc_softirq_config {
    u32 net_tx_vec;
    u32 net_rx_vec;
    u32 ready;
    u32 pad;
};

struct pc_softirq_entry {
    u64 start_ns;
    u32 which;      /* 0 NET_TX, 1 NET_RX, 2 none */
    u32 pad;
};

BPF_ARRAY(pc_softirq_config, struct pc_softirq_config, 1);
BPF_PERCPU_ARRAY(pc_softirq_running, struct pc_softirq_entry, 1);
BPF_PERCPU_ARRAY(pc_softirq_hist, u64, 2 * PC_HIST_SLOTS);

RAW_TRACEPOINT_PROBE(softirq_entry)
{
    u32 zero = 0;
    struct pc_softirq_config *cfg = pc_softirq_config.lookup(&zero);
    if (!cfg || !cfg->ready)
        return 0;
    u32 vec = (u32)ctx->args[0];
    u32 which = vec == cfg->net_tx_vec ? 0 : vec == cfg->net_rx_vec ? 1 : 2;
    if (which == 2)
        return 0;
    struct pc_softirq_entry *e = pc_softirq_running.lookup(&zero);
    if (e) {
        e->start_ns = bpf_ktime_get_ns();
        e->which = which;
    }
    return 0;
}

RAW_TRACEPOINT_PROBE(softirq_exit)
{
    u32 zero = 0;
    struct pc_softirq_entry *e = pc_softirq_running.lookup(&zero);
    if (!e || !e->start_ns)
        return 0;
    u64 delta = bpf_ktime_get_ns() - e->start_ns;
    u32 which = e->which;
    e->start_ns = 0;
    if (which > 1)
        return 0;
    u32 slot = which * PC_HIST_SLOTS + perfcheck_bucket(delta);
    u64 *n = pc_softirq_hist.lookup(&slot);
    if (n)
        (*n)++;
    return 0;
}
"""

TCP_SRTT_C = r"""
/*
 * tcp.srtt: tcp:tcp_probe srtt (us) of connections on one port (0: all), in ns.
 */
BPF_ARRAY(pc_tcp_port, u32, 1);
BPF_PERCPU_ARRAY(pc_tcp_srtt_hist, u64, PC_HIST_SLOTS);

TRACEPOINT_PROBE(tcp, tcp_probe)
{
    u32 zero = 0;
    u32 *port = pc_tcp_port.lookup(&zero);
    if (port && *port && args->sport != *port && args->dport != *port)
        return 0;
    u32 slot = perfcheck_bucket((u64)args->srtt * 1000);
    u64 *n = pc_tcp_srtt_hist.lookup(&slot);
    if (n)
        (*n)++;
    return 0;
}
"""


def softirq_vectors(proc_softirqs: Path = PROC_SOFTIRQS) -> dict[str, int]:
    """Softirq name -> vector number, from the row order of ``/proc/softirqs``."""
    rows = proc_softirqs.read_text().splitlines()[1:]  # the first line names the CPUs
    return {row.split(":", 1)[0].strip(): i for i, row in enumerate(rows) if ":" in row}


class NetSoftirqProbe(CatalogProbe):
    name: ClassVar[str] = "net.softirq"
    summary: ClassVar[str] = "time in the NET_RX and NET_TX softirqs, each apart (softirqs)"
    tracepoints: ClassVar[tuple[tuple[str, str], ...]] = (
        ("irq", "softirq_entry"),
        ("irq", "softirq_exit"),
    )
    C_SOURCE: ClassVar[str] = NET_SOFTIRQ_C
    attach: ClassVar[str] = ATTACH_RAW_TRACEPOINT

    @classmethod
    def unavailable(cls) -> Unavailable | None:
        missing = missing_tracepoints(cls.tracepoints) or missing_raw_tracepoints(
            SOFTIRQ_RAW_TRACEPOINTS
        )
        if missing is not None:
            return missing
        try:
            vectors = softirq_vectors()
        except OSError as exc:
            return Unavailable(f"{PROC_SOFTIRQS}: unreadable ({exc})", "mount /proc")
        absent = [name for name, _ in NET_SOFTIRQS if name not in vectors]
        if absent:
            return Unavailable(
                f"{PROC_SOFTIRQS} lists no {', '.join(absent)} softirq",
                "use a kernel with networking (CONFIG_NET=y)",
            )
        return None

    def series_names(self) -> list[str]:
        return [f"net.softirq.{suffix}" for _, suffix in NET_SOFTIRQS]

    def configure(self, bpf: Any, settings: Mapping[str, int]) -> None:
        vectors = softirq_vectors()
        # A softirq entered while the probe was detached must not be timed from then.
        bpf[b"pc_softirq_running"].clear()
        write_config(
            bpf[b"pc_softirq_config"],
            {"net_tx_vec": vectors["NET_TX"], "net_rx_vec": vectors["NET_RX"], "ready": 1},
        )

    HIST_MAP: ClassVar[bytes] = b"pc_softirq_hist"


class TcpSrttProbe(CatalogProbe):
    name: ClassVar[str] = "tcp.srtt"
    summary: ClassVar[str] = "TCP smoothed round-trip time per received segment (tcprtt)"
    tracepoints: ClassVar[tuple[tuple[str, str], ...]] = (("tcp", "tcp_probe"),)
    C_SOURCE: ClassVar[str] = TCP_SRTT_C
    attach: ClassVar[str] = ATTACH_TRACEPOINT
    filters: ClassVar[tuple[str, ...]] = ("port",)

    def series_names(self) -> list[str]:
        return ["tcp.srtt"]

    def configure(self, bpf: Any, settings: Mapping[str, int]) -> None:
        port = setting(settings, "port")
        if port > 0xFFFF:
            raise ValueError(f"probe setting 'port' must be a TCP port, got {port}")
        table = bpf[b"pc_tcp_port"]
        table[table.Key(0)] = table.Leaf(port)

    HIST_MAP: ClassVar[bytes] = b"pc_tcp_srtt_hist"


__all__ = [
    "NET_SOFTIRQ_C",
    "TCP_SRTT_C",
    "NetSoftirqProbe",
    "TcpSrttProbe",
    "softirq_vectors",
]
