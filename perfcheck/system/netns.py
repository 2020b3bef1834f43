"""A private network namespace as the target of network scenarios.

Network scenarios never touch a real interface: the harness creates a namespace of its
own (``ip netns add perfcheck-net-<pid>-<token>``), brings up its loopback device, and
runs servers and clients inside it on 127.0.0.1. A scenario may put a qdisc on that
``lo`` (``tbf`` or ``htb``, to model a rate-limited link); it goes away with the
namespace. :meth:`NetnsTarget.close` stops whatever still runs inside and deletes the
namespace.

The name carries the creating process's pid, so a later run can find namespaces whose
creator died without cleaning up (SIGKILL, power loss) and delete them
(:func:`remove_leftover_namespaces`). The workload cgroups of such runs are removed there
too (:func:`remove_leftover_cgroups`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from perfcheck.errors import CapabilityError, TargetError
from perfcheck.system.cgroup import CGROUP_MARKER, cgroup2_root, kill_tasks
from perfcheck.system.processes import pid_alive, run_tool

#: Every namespace the harness creates is named ``<marker><pid>-<token>``.
NETNS_MARKER = "perfcheck-net-"
#: Where ``ip netns`` keeps its namespaces (bind mounts named after them).
NETNS_RUN_DIR = Path("/run/netns")
#: All traffic of a network scenario goes to this address, inside the namespace.
LOOPBACK_ADDRESS = "127.0.0.1"
#: Qdiscs a scenario may put on the namespace's ``lo``.
QDISC_KINDS: tuple[str, ...] = ("tbf", "htb")

IPROUTE2_INSTALL_HINT = "install iproute2 with `apt-get install iproute2` (or `make setup`)"

_NAME_RE = re.compile(rf"^{re.escape(NETNS_MARKER)}(\d+)-[0-9a-f]+$")
_CGROUP_NAME_RE = re.compile(rf"^{re.escape(CGROUP_MARKER)}(\d+)-[0-9a-f]+$")
_QDISC_WORD_RE = re.compile(r"^[A-Za-z0-9._:/-]+$")


def require_iproute2(tool: str = "ip") -> str:
    """Path of ``ip`` or ``tc``, or a one-line CapabilityError with the install command."""
    path = shutil.which(tool)
    if path is None:
        raise CapabilityError(
            f"{tool}: not found on PATH; network scenarios need it to set up their private"
            f" network namespace: {IPROUTE2_INSTALL_HINT}"
        )
    return path


@dataclass(frozen=True)
class QdiscSpec:
    """A root qdisc for the namespace's ``lo``, as a scenario writes it.

    ``tbf rate 1gbit burst 512kb latency 20ms`` becomes ``tc qdisc add dev lo root tbf
    rate 1gbit burst 512kb latency 20ms``. ``htb rate 1gbit [ceil ...] [burst ...]``
    becomes an ``htb`` root whose default class 1:1 carries those parameters, so all
    traffic is shaped by it (an ``htb`` root alone shapes nothing).
    """

    kind: str
    params: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join((self.kind, *self.params))

    def tc_commands(self, tc: str, namespace: str, device: str = "lo") -> list[list[str]]:
        base = [tc, "-n", namespace]
        if self.kind == "tbf":
            return [[*base, "qdisc", "add", "dev", device, "root", "tbf", *self.params]]
        return [
            [*base, "qdisc", "add", "dev", device, "root", "handle", "1:", "htb", "default", "1"],
            [
                *base,
                *("class", "add", "dev", device, "parent", "1:", "classid", "1:1", "htb"),
                *self.params,
            ],
        ]


def parse_qdisc(text: str) -> QdiscSpec:
    """``"tbf rate 1gbit burst 512kb latency 20ms"`` -> QdiscSpec; ValueError says what is wrong.

    >>> parse_qdisc("tbf rate 2gbit burst 512kb latency 20ms").text
    'tbf rate 2gbit burst 512kb latency 20ms'
    >>> parse_qdisc("htb rate 100mbit").params
    ('rate', '100mbit')
    """
    words = text.split()
    if not words:
        raise ValueError("is empty; give e.g. 'tbf rate 1gbit burst 512kb latency 20ms'")
    kind, params = words[0], tuple(words[1:])
    if kind not in QDISC_KINDS:
        raise ValueError(
            f"starts with {kind!r}; supported qdiscs: {', '.join(QDISC_KINDS)}"
            " (e.g. 'tbf rate 1gbit burst 512kb latency 20ms')"
        )
    if "rate" not in params:
        raise ValueError(f"has no 'rate' parameter; {kind} needs one, e.g. '{kind} rate 1gbit ...'")
    bad = [w for w in params if not _QDISC_WORD_RE.match(w)]
    if bad:
        raise ValueError(
            f"has a parameter {bad[0]!r} that is not a tc word (letters, digits, ._:/-)"
        )
    return QdiscSpec(kind, params)


def namespace_pids(name: str) -> list[int]:
    """Processes running inside namespace ``name`` (``ip netns pids``)."""
    ip = require_iproute2()
    proc = subprocess.run(
        [ip, "netns", "pids", name], capture_output=True, text=True, timeout=30, check=False
    )
    return [int(word) for word in proc.stdout.split() if word.isdigit()]


def _kill_all(pids: list[int], grace_s: float = 2.0) -> None:
    """SIGTERM, then SIGKILL what is still there after ``grace_s``."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class NetnsTarget:
    """A network namespace created by the harness, with ``lo`` up and an optional qdisc."""

    name: str
    qdisc: QdiscSpec | None = None
    created_by_harness: bool = True
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def create(cls, qdisc: QdiscSpec | None = None) -> NetnsTarget:
        if os.geteuid() != 0:
            raise CapabilityError(
                "a private network namespace needs root (CAP_SYS_ADMIN): run as root (sudo)"
            )
        ip = require_iproute2()
        tc = require_iproute2("tc") if qdisc is not None else ""
        name = f"{NETNS_MARKER}{os.getpid()}-{secrets.token_hex(4)}"
        run_tool([ip, "netns", "add", name], "create a private network namespace")
        target = cls(name=name, qdisc=qdisc)
        try:
            run_tool(
                [ip, "-n", name, "link", "set", "lo", "up"], f"bring up lo in namespace {name}"
            )
            if qdisc is not None:
                for cmd in qdisc.tc_commands(tc, name):
                    run_tool(cmd, f"put qdisc '{qdisc.text}' on lo in namespace {name}")
        except BaseException:  # interrupted or failed half-way: leave nothing behind
            target.close()
            raise
        return target

    @property
    def description(self) -> str:
        shaped = f", qdisc {self.qdisc.text}" if self.qdisc is not None else ""
        return f"network namespace {self.name} (lo {LOOPBACK_ADDRESS}{shaped})"

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs it, same pid)."""
        return [require_iproute2(), "netns", "exec", self.name, *argv]

    def facts(self) -> dict[str, str]:
        """What describes this target in a measurement's environment."""
        return {
            "target.kind": "netns",
            "target.address": LOOPBACK_ADDRESS,
            "target.qdisc": self.qdisc.text if self.qdisc is not None else "none",
        }

    def exists(self) -> bool:
        return (NETNS_RUN_DIR / self.name).exists()

    def close(self) -> None:
        """Stop every process still inside, then delete the namespace (and its qdisc)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(CapabilityError, OSError, subprocess.SubprocessError):
            _kill_all(namespace_pids(self.name))
        _delete_namespace(self.name)

    def __enter__(self) -> NetnsTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _delete_namespace(name: str) -> None:
    ip = shutil.which("ip")
    if ip is None:
        return
    # A namespace whose last process is still exiting can refuse; try again briefly.
    for _ in range(20):
        proc = subprocess.run(
            [ip, "netns", "delete", name], capture_output=True, text=True, timeout=30, check=False
        )
        if proc.returncode == 0 or not (NETNS_RUN_DIR / name).exists():
            return
        time.sleep(0.05)
    raise TargetError(
        f"`ip netns delete {name}` failed ({proc.stderr.strip() or proc.returncode});"
        f" delete it by hand: ip netns delete {name}"
    )


def leftover_namespaces(run_dir: Path = NETNS_RUN_DIR) -> list[tuple[str, int]]:
    """``(name, pid)`` of perfcheck namespaces whose creating process is gone."""
    try:
        names = sorted(p.name for p in run_dir.iterdir())
    except OSError:
        return []
    found = []
    for name in names:
        match = _NAME_RE.match(name)
        if match and not pid_alive(int(match.group(1))):
            found.append((name, int(match.group(1))))
    return found


def remove_leftover_namespaces(run_dir: Path = NETNS_RUN_DIR) -> list[str]:
    """Delete the namespaces (and stop the processes in them) of runs that were killed.

    Returns one line per thing removed, for the run to say what it cleaned.
    """
    if shutil.which("ip") is None:
        return []
    removed: list[str] = []
    for name, pid in leftover_namespaces(run_dir):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            inside = namespace_pids(name)
            if inside:
                _kill_all(inside)
                removed.append(f"stopped {len(inside)} process(es) in {name} (left by {pid})")
        try:
            _delete_namespace(name)
        except TargetError:
            continue
        removed.append(f"deleted network namespace {name} (left by process {pid})")
    return removed


def remove_leftover_cgroups(root: Path | None = None) -> list[str]:
    """Remove the workload cgroups (``perfcheck-<pid>-<token>``) of killed runs, killing
    what their workloads left running inside first."""
    root = root if root is not None else cgroup2_root()
    if root is None:
        return []
    removed: list[str] = []
    with contextlib.suppress(OSError):
        for path in sorted(root.iterdir()):
            match = _CGROUP_NAME_RE.match(path.name)
            if not match or not path.is_dir() or pid_alive(int(match.group(1))):
                continue
            with contextlib.suppress(OSError):
                kill_tasks(path)  # what its dead owner's workload left running
            try:
                path.rmdir()
            except OSError:
                continue
            removed.append(f"removed cgroup {path} (left by process {match.group(1)})")
    return removed


def remove_leftover_network() -> list[str]:
    """Everything network scenarios of killed runs left: namespaces, then cgroups."""
    return remove_leftover_namespaces() + remove_leftover_cgroups()


__all__ = [
    "LOOPBACK_ADDRESS",
    "NETNS_MARKER",
    "QDISC_KINDS",
    "NetnsTarget",
    "QdiscSpec",
    "leftover_namespaces",
    "namespace_pids",
    "parse_qdisc",
    "remove_leftover_cgroups",
    "remove_leftover_namespaces",
    "remove_leftover_network",
    "require_iproute2",
]
