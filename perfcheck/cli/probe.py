"""``perfcheck probes`` (the catalog and what this machine can load) and ``perfcheck probe
NAME`` (one probe run like a bcc tool: a log2 histogram and percentiles per interval).

Examples::

    perfcheck probes
    perfcheck probe block.latency --device /dev/loop0 --interval 1 --duration 10
    perfcheck probe sched.runqlat --pid 1234
    perfcheck probe tcp.srtt --port 5201 --json
    perfcheck probe ufunc.latency --function c:nanosleep --pid 1234
    perfcheck probe block.queue_latency --ebpf

bcc is imported only once a probe is started, so ``--help``, ``--ebpf`` and
``perfcheck probes`` work without it.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from perfcheck.errors import CapabilityError, TargetError
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.probes import CATALOG
from perfcheck.probes.base import Probe, ProbeCounters
from perfcheck.probes.block import SAMPLE_SETTING, SAMPLED_PROBES, check_sample
from perfcheck.probes.catalog import UNIT_BYTES, CatalogProbe
from perfcheck.probes.features import Unavailable, bpf_prerequisites_missing, missing_tracepoints
from perfcheck.probes.func import FuncLatencyProbe, UserFuncLatencyProbe
from perfcheck.probes.session import ProbeSession, build_program
from perfcheck.probes.syscall import top_syscalls

#: Percentiles printed under each histogram.
SHOWN_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0)
#: At most this many series per interval (syscall.latency has one per syscall).
MAX_SERIES_SHOWN = 6
_NS_PER_UNIT = {"nsecs": 1, "usecs": 1_000, "msecs": 1_000_000}
_UNIT_SHORT = {"nsecs": "ns", "usecs": "us", "msecs": "ms"}


# -- perfcheck probes -----------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogRow:
    """One probe as ``perfcheck probes`` shows it."""

    name: str
    summary: str
    attach: str
    events: list[str]
    filters: list[str]
    unit: str
    optional: bool
    available: bool
    reason: str
    fix: str


#: The subcommands of this module (see :func:`perfcheck.cli.commands_of`).
COMMANDS: dict[str, str] = {
    "probes": "the probe catalog: events, filters, and which probes can load on this machine",
    "probe": "run one probe like a bcc tool: log2 histogram and percentiles per interval",
}


def catalog_rows(
    catalog: Mapping[str, type[Probe]] = CATALOG,
    prerequisites: Callable[[], Unavailable | None] = bpf_prerequisites_missing,
) -> list[CatalogRow]:
    """Every catalog probe with its availability here; machine-wide gaps apply to all."""
    machine = prerequisites()
    rows = []
    for name in sorted(catalog):
        cls = catalog[name]
        if issubclass(cls, CatalogProbe):
            why = cls.unavailable() or machine
            summary, attach, events = cls.summary, cls.attach, cls.events()
            filters, unit, optional = list(cls.filters), cls.unit, cls.optional
        else:
            why = missing_tracepoints(cls.tracepoints) or machine
            summary, attach = "", "tracepoint"
            events = [f"tracepoint:{cat}:{event}" for cat, event in cls.tracepoints]
            filters, unit, optional = [], "ns", False
        rows.append(
            CatalogRow(
                name=name,
                summary=summary,
                attach=attach,
                events=events,
                filters=filters,
                unit=unit,
                optional=optional,
                available=why is None,
                reason=why.reason if why else "",
                fix=why.fix if why else "",
            )
        )
    return rows


def add_probes_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the catalog as JSON")


def cmd_probes(args: argparse.Namespace) -> int:
    """Print the catalog; exit 0 whatever is available (it is a report, not a check)."""
    rows = catalog_rows()
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], indent=2, sort_keys=True))
        return 0

    from rich.table import Table
    from rich.text import Text

    from perfcheck.cli.console import stdout_console, stdout_is_terminal

    table = Table(title="perfcheck probes", expand=stdout_is_terminal(), show_lines=True)
    table.add_column("probe", ratio=2, overflow="fold")
    table.add_column("events", ratio=3, overflow="fold")
    table.add_column("filters", ratio=1, overflow="fold")
    table.add_column("here", no_wrap=True)
    table.add_column("why not / fix", ratio=3, overflow="fold")
    for row in rows:
        name = Text(row.name + (" (optional)" if row.optional else ""))
        name.append(f"\n{row.summary}", style="dim")
        if row.unit != "ns":
            name.append(f"\nvalues in {row.unit}", style="dim")
        status = Text("yes", style="green") if row.available else Text("no", style="yellow")
        detail = Text("") if row.available else Text(f"{row.reason}\nfix: {row.fix}")
        events = Text(row.attach.replace("_", " "), style="dim")
        for event in row.events:
            events.append("\n" + event.removeprefix(row.attach + ":"))
        table.add_row(name, events, Text(" ".join(row.filters) or "-"), status, detail)
    console = stdout_console()
    console.print(table)
    usable = sum(row.available for row in rows)
    console.print(Text(f"{usable} of {len(rows)} probes can load on this machine"))
    return 0


# -- perfcheck probe NAME -------------------------------------------------------------------


def add_probe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(CATALOG), metavar="NAME", help="probe to run")
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--device", help="disk for block probes: /dev/NAME, a partition, or NAME (e.g. loop0)"
    )
    target.add_argument("--pid", type=int, help="only this process (sched, syscall, func)")
    target.add_argument(
        "--cgroup", type=Path, help="only tasks in this cgroup v2 directory (sched, syscall)"
    )
    target.add_argument("--port", type=int, help="only TCP connections on this port (tcp.srtt)")
    parser.add_argument(
        "--function",
        help="function to time: a kernel function for func.latency (default"
        f" {FuncLatencyProbe.DEFAULT_FUNCTION}), LIBRARY:FUNCTION for ufunc.latency"
        f" (default {UserFuncLatencyProbe.DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="time 1 request in N, chosen at random (block.latency, block.size; for very"
        " fast devices: less overhead, same distribution, 1/N of the counts)",
    )
    parser.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: at Ctrl-C)"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between reports (default 1)"
    )
    parser.add_argument(
        "--unit",
        choices=sorted(_NS_PER_UNIT),
        default="usecs",
        help="unit of latency histograms (default usecs)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per interval: histograms in the results-file schema",
    )
    parser.add_argument(
        "--ebpf", action="store_true", help="print the generated BPF C program and exit"
    )


def make_probe(name: str, function: str | None) -> Probe:
    cls = CATALOG[name]
    if cls is FuncLatencyProbe:
        return FuncLatencyProbe(function or FuncLatencyProbe.DEFAULT_FUNCTION)
    if cls is UserFuncLatencyProbe:
        try:
            return UserFuncLatencyProbe(function or UserFuncLatencyProbe.DEFAULT_TARGET)
        except ValueError as exc:
            raise TargetError(f"--function: {exc}") from exc
    if function is not None:
        raise TargetError(f"--function applies to func.latency and ufunc.latency, not {name}")
    return cls()


def device_dev_t(device: str, sysfs_block: Path = Path("/sys/block")) -> int:
    """Kernel dev_t of the whole disk named by ``device`` (a path or a disk name)."""
    from perfcheck.system.targets import disk_dev_numbers, disk_of, kernel_dev

    path = Path(device)
    if not path.is_absolute() and (sysfs_block / device).is_dir():
        major, minor = disk_dev_numbers(device)
        return kernel_dev(major, minor)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise TargetError(
            f"--device {device}: {exc.strerror}; give /dev/NAME or a disk name from /sys/block"
        ) from exc
    if not stat.S_ISBLK(st.st_mode):
        raise TargetError(f"--device {device}: not a block device")
    disk = disk_of(os.major(st.st_rdev), os.minor(st.st_rdev))
    return kernel_dev(*disk_dev_numbers(disk))


def probe_settings(args: argparse.Namespace, probe: Probe) -> dict[str, int]:
    """Settings for ``configure`` from the command line, checked against what the probe uses."""
    filters = probe.filters if isinstance(probe, CatalogProbe) else ("dev",)
    given = {
        "dev": args.device,
        "pid": args.pid,
        "cgroup_id": args.cgroup,
        "port": args.port,
    }
    settings: dict[str, int] = {}
    sample = getattr(args, "sample", None)
    if sample is not None:
        options = probe.options if isinstance(probe, CatalogProbe) else ()
        if SAMPLE_SETTING not in options:
            raise TargetError(
                f"--sample does not apply to {probe.name} ({' and '.join(SAMPLED_PROBES)}"
                " can be sampled)"
            )
        try:
            check_sample(int(sample))
        except ValueError as exc:
            raise TargetError(f"--sample: {exc}") from exc
        settings[SAMPLE_SETTING] = int(sample)
    for key, value in given.items():
        if value is None:
            continue
        if key not in filters:
            flag = {"dev": "--device", "cgroup_id": "--cgroup"}.get(key, f"--{key}")
            raise TargetError(
                f"{flag} does not apply to {probe.name}"
                f" (it filters on: {', '.join(filters) or 'nothing'})"
            )
        if key == "dev":
            settings[key] = device_dev_t(value)
        elif key == "cgroup_id":
            settings[key] = _cgroup_id(value)
        else:
            settings[key] = int(value)
    if "dev" in filters and "dev" not in settings:
        raise TargetError(f"{probe.name} times one disk: pass --device (e.g. --device /dev/vda)")
    return settings


def _cgroup_id(path: Path) -> int:
    from perfcheck.system.cgroup import cgroup_id

    try:
        return cgroup_id(path)
    except OSError as exc:
        raise TargetError(f"--cgroup {path}: {exc.strerror}; give a cgroup v2 directory") from exc


def series_to_show(probe: Probe, seen: ProbeCounters) -> list[str]:
    """Non-empty series, syscalls ordered by total time, at most MAX_SERIES_SHOWN."""
    if probe.name == "syscall.latency":
        names = [f"syscall.latency.{row[0]}" for row in top_syscalls(seen.counters)]
    else:
        names = sorted(seen.histograms)
    return [n for n in names if n in seen.histograms and seen.histograms[n].total][
        :MAX_SERIES_SHOWN
    ]


def _value_text(value: float, unit: str) -> str:
    if unit == UNIT_BYTES:
        return f"{value:.0f} B"
    return f"{value / _NS_PER_UNIT[unit]:.1f} {_UNIT_SHORT[unit]}"


def render_histogram(name: str, hist: LogLinearHistogram, unit: str) -> str:
    """One series: its log2 view, then count and percentiles, like a bcc tool prints it."""
    if unit == UNIT_BYTES:
        # Bytes use the log2 rows of nanoseconds: same numbers, another word.
        view = hist.log2_view("nsecs", label=f"{name} (bytes):").replace("nsecs", "bytes", 1)
    else:
        view = hist.log2_view(unit, label=f"{name}:")
    pcts = "  ".join(
        f"p{pct:g} {_value_text(hist.percentile(pct), unit)}" for pct in SHOWN_PERCENTILES
    )
    return f"{view}\n     count {hist.total}  {pcts}"


def render_interval(
    probe: Probe, seen: ProbeCounters, index: int, seconds: float, unit: str
) -> str:
    series_unit = probe.unit if isinstance(probe, CatalogProbe) else "ns"
    shown_unit = UNIT_BYTES if series_unit == UNIT_BYTES else unit
    stamp = time.strftime("%H:%M:%S")
    lines = [f"{stamp}  {probe.name}  interval {index} ({seconds:.2f} s)"]
    if probe.name == "syscall.latency":
        top = top_syscalls(seen.counters)
        if top:
            lines.append(f"{'syscall':<20} {'calls':>10} {'total ' + _UNIT_SHORT[unit]:>14}")
            for name, calls, total_ns in top:
                lines.append(f"{name:<20} {calls:>10} {total_ns / _NS_PER_UNIT[unit]:>14.1f}")
    names = series_to_show(probe, seen)
    if not names:
        lines.append("     (no events)")
    for name in names:
        lines.append(render_histogram(name, seen.histograms[name], shown_unit))
    return "\n".join(lines) + "\n"


def interval_document(
    probe: Probe, seen: ProbeCounters, index: int, seconds: float
) -> dict[str, object]:
    """An interval as JSON: histograms as results files store them (``to_dict()``)."""
    return {
        "probe": probe.name,
        "provenance": probe.provenance(),
        "unit": probe.unit if isinstance(probe, CatalogProbe) else "ns",
        "index": index,
        "duration_s": round(seconds, 6),
        "histograms": {
            name: hist.to_dict() for name, hist in sorted(seen.histograms.items()) if hist.total
        },
        "counters": dict(sorted(seen.counters.items())),
    }


def cmd_probe(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run one probe until ``--duration`` or Ctrl-C, reporting every ``--interval``."""
    stream = out if out is not None else sys.stdout
    probe = make_probe(args.name, args.function)
    if args.ebpf:
        stream.write(build_program([probe]))
        return 0
    if args.interval <= 0 or (args.duration is not None and args.duration <= 0):
        raise TargetError("--interval and --duration must be positive numbers of seconds")
    why = probe.unavailable() if isinstance(probe, CatalogProbe) else None
    why = why or bpf_prerequisites_missing()
    if why is not None:
        raise CapabilityError(f"probe {probe.name} cannot load here: {why.reason}; fix: {why.fix}")
    settings = probe_settings(args, probe)
    session = ProbeSession([probe])
    session.start()
    try:
        session.configure(settings)
        if not args.json:
            stream.write(
                f"Tracing {probe.name} ({', '.join(probe.provenance())})"
                f" in {session.compile_seconds or 0:.2f} s; Ctrl-C to end.\n"
            )
            stream.flush()
        _report_loop(session, probe, args, stream)
    finally:
        session.close()
    return 0


def _report_loop(
    session: ProbeSession, probe: Probe, args: argparse.Namespace, stream: TextIO
) -> None:
    started = time.monotonic()
    deadline = None if args.duration is None else started + args.duration
    index = 0
    before, mark = session.snapshot(), time.monotonic()
    interrupted = False
    while not interrupted:
        end = mark + args.interval
        if deadline is not None:
            end = min(end, deadline)
        try:
            time.sleep(max(0.0, end - time.monotonic()))
        except KeyboardInterrupt:
            interrupted = True
        after, now = session.snapshot(), time.monotonic()
        seen = after.since(before)
        if args.json:
            stream.write(json.dumps(interval_document(probe, seen, index, now - mark)) + "\n")
        else:
            stream.write(render_interval(probe, seen, index, now - mark, args.unit) + "\n")
        stream.flush()
        index += 1
        before, mark = after, now
        if deadline is not None and now >= deadline - 1e-3:
            break


__all__ = [
    "CatalogRow",
    "add_probe_arguments",
    "add_probes_arguments",
    "catalog_rows",
    "cmd_probe",
    "cmd_probes",
    "device_dev_t",
    "interval_document",
    "make_probe",
    "probe_settings",
    "render_histogram",
    "render_interval",
]
