"""Filesystems on the target: made with mkfs, mounted where only root can reach, always
unmounted.

A scenario's ``[target] filesystem = "ext4"`` (or ``"xfs"``, ``"btrfs"``) makes that
filesystem on the run's block target, mounts it and runs the workload in it. The mount point
is a directory of its own in root's state directory, ``/run/perfcheck/mnt-<pid>-<random>``
(mode 0700), not a private mount namespace: fio, a command workload and bcc's probes then
need nothing special (no ``setns`` before exec, no namespace to hold open), the mount is
visible to ``findmnt`` while it exists, and no other user can reach into it.

Every mount is journalled before it is made (``mnt-<pid>-<random>.json`` beside the mount
point: the mount point, the device and, once mounted, the kernel's mount id), so a run
killed outright leaves something the next run can act on: :func:`remove_leftover_mounts`
unmounts a dead run's filesystem (before the scratch loop device under it is detached)
only when ``/proc/self/mountinfo`` shows that very mount: the journalled mount point, the
journalled device and, when known, mount id. A mount perfcheck did not make is never
touched, whatever its path.

mkfs and mount options come from the scenario, which may come from a pull request: each
is checked against an allow-list (:func:`mkfs_options_problem`,
:func:`mount_options_problem`); none may name a file or another device, load code or
make the kernel panic on an error.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from perfcheck.errors import CapabilityError, TargetError
from perfcheck.system.processes import run_tool
from perfcheck.system.statedir import (
    ForeignStateFile,
    boot_id,
    left_by_dead_runs,
    new_private_dir,
    private_dir,
    read_own_file,
    state_dir,
    why_not_private,
    write_journal,
)

PROC_FILESYSTEMS = Path("/proc/filesystems")
MOUNTINFO = Path("/proc/self/mountinfo")
MODULES_ROOT = Path("/lib/modules")
#: The mount point's and its journal's names: ``mnt-<pid>-<8 hex digits>[.json]``.
MOUNT_MARKER = "mnt-"
_MOUNT_NAME = re.compile(rf"{MOUNT_MARKER}([0-9]+)-[0-9a-f]{{8}}")
_JOURNAL_NAME = re.compile(rf"{MOUNT_MARKER}([0-9]+)-[0-9a-f]{{8}}\.json(\.tmp)?")
#: Always added to a scenario's mount options: no device node or set-uid file a workload
#: could make in the filesystem means anything.
FORCED_MOUNT_OPTIONS = ("nodev", "nosuid")
#: A value inside an option: no path separator, no blanks, no list separator (^ negates a
#: feature).
_VALUE = re.compile(r"[A-Za-z0-9_.:+^-]*")
_LABEL = re.compile(r"[A-Za-z0-9_.-]{1,12}")


@dataclass(frozen=True)
class FilesystemKind:
    """One filesystem perfcheck can make: its mkfs tool, the Debian package that ships it,
    the flags that make mkfs quiet and non-interactive, and what may be given to it."""

    name: str
    mkfs: str
    package: str
    batch_flags: tuple[str, ...]
    version_flag: str
    #: Flags before any option a scenario gives (a scenario's later flags override them).
    default_flags: tuple[str, ...]
    #: mkfs flags a scenario may give: flag -> None (takes no value), () (a plain value),
    #: or the names allowed in its ``name[=value],...`` list.
    mkfs_flags: Mapping[str, tuple[str, ...] | None]
    #: Mount options of this filesystem a scenario may give (besides the generic ones):
    #: name -> allowed values (None: no value; (): any plain value).
    mount_options: Mapping[str, tuple[str, ...] | None]


#: Mount options of any filesystem (the VFS's): name -> allowed values, as above.
GENERIC_MOUNT_OPTIONS: Mapping[str, tuple[str, ...] | None] = {
    name: None
    for name in (
        "rw",
        "sync",
        "async",
        "dirsync",
        "atime",
        "noatime",
        "diratime",
        "nodiratime",
        "relatime",
        "norelatime",
        "strictatime",
        "nostrictatime",
        "lazytime",
        "nolazytime",
        "nodev",
        "nosuid",
        "noexec",
        "exec",
        "iversion",
        "noiversion",
    )
}

_BARRIER = {"barrier": ("0", "1"), "nobarrier": None}

FILESYSTEMS: Mapping[str, FilesystemKind] = {
    "ext4": FilesystemKind(
        name="ext4",
        mkfs="mkfs.ext4",
        package="e2fsprogs",
        batch_flags=("-q", "-F"),
        version_flag="-V",
        # Without these, a kernel thread fills the inode tables and journal for minutes
        # after the first mount, and its I/O lands in the measured rounds.
        default_flags=("-E", "lazy_itable_init=0,lazy_journal_init=0"),
        mkfs_flags={
            "-b": (),
            "-C": (),
            "-g": (),
            "-G": (),
            "-i": (),
            "-I": (),
            "-j": None,
            "-J": ("size",),
            "-L": (),
            "-m": (),
            "-N": (),
            "-O": (),
            "-T": (),
            "-E": (
                "stride",
                "stripe_width",
                "stripe-width",
                "lazy_itable_init",
                "lazy_journal_init",
                "packed_meta_blocks",
                "num_backup_sb",
                "discard",
                "nodiscard",
                "assume_storage_prezeroed",
            ),
        },
        mount_options={
            "data": ("journal", "ordered", "writeback"),
            **_BARRIER,
            "commit": (),
            "journal_checksum": None,
            "nojournal_checksum": None,
            "journal_async_commit": None,
            "delalloc": None,
            "nodelalloc": None,
            "auto_da_alloc": None,
            "noauto_da_alloc": None,
            "discard": None,
            "nodiscard": None,
            "dioread_lock": None,
            "dioread_nolock": None,
            "inode_readahead_blks": (),
            "stripe": (),
            "min_batch_time": (),
            "max_batch_time": (),
            "journal_ioprio": (),
            "init_itable": (),
            "noinit_itable": None,
            "block_validity": None,
            "noblock_validity": None,
            "nombcache": None,
            "errors": ("continue", "remount-ro"),
            "acl": None,
            "noacl": None,
            "user_xattr": None,
            "nouser_xattr": None,
        },
    ),
    "xfs": FilesystemKind(
        name="xfs",
        mkfs="mkfs.xfs",
        package="xfsprogs",
        batch_flags=("-q", "-f"),
        version_flag="-V",
        default_flags=(),
        mkfs_flags={
            "-b": ("size",),
            "-s": ("size",),
            "-d": ("agcount", "agsize", "su", "sw", "sunit", "swidth"),
            "-i": ("size", "maxpct", "align", "attr", "projid32bit", "sparse", "nrext64"),
            "-l": ("size", "version", "su", "sunit", "lazy-count"),
            "-m": ("crc", "finobt", "reflink", "rmapbt", "bigtime", "inobtcount", "uuid"),
            "-n": ("size", "version", "ftype"),
            "-L": (),
            "-K": None,
        },
        mount_options={
            "allocsize": (),
            "attr2": None,
            "noattr2": None,
            "discard": None,
            "nodiscard": None,
            "filestreams": None,
            "ikeep": None,
            "noikeep": None,
            "inode32": None,
            "inode64": None,
            "largeio": None,
            "nolargeio": None,
            "logbufs": (),
            "logbsize": (),
            "noalign": None,
            "swalloc": None,
            "wsync": None,
            "sunit": (),
            "swidth": (),
        },
    ),
    "btrfs": FilesystemKind(
        name="btrfs",
        mkfs="mkfs.btrfs",
        package="btrfs-progs",
        batch_flags=("-q", "-f"),
        version_flag="--version",
        default_flags=(),
        mkfs_flags={
            "-L": (),
            "-n": (),
            "-s": (),
            "-b": (),
            "-O": (),
            "-R": (),
            "-m": (),
            "-d": (),
            "--csum": (),
            "-K": None,
            "--nodiscard": None,
            "-M": None,
            "--mixed": None,
        },
        mount_options={
            **_BARRIER,
            "commit": (),
            "compress": (),
            "compress-force": (),
            "ssd": None,
            "nossd": None,
            "ssd_spread": None,
            "nossd_spread": None,
            "space_cache": ("v2",),
            "autodefrag": None,
            "noautodefrag": None,
            "datacow": None,
            "nodatacow": None,
            "datasum": None,
            "nodatasum": None,
            "discard": ("sync", "async"),
            "nodiscard": None,
            "flushoncommit": None,
            "noflushoncommit": None,
            "max_inline": (),
            "thread_pool": (),
        },
    ),
}


@dataclass(frozen=True)
class FilesystemSpec:
    """What a scenario asks for: a filesystem kind, mkfs options (argv words, after the
    filesystem's defaults) and mount options (``a,b=c``; ``""`` for the defaults)."""

    kind: str
    mkfs_options: tuple[str, ...] = ()
    mount_options: str = ""

    @property
    def filesystem(self) -> FilesystemKind:
        return FILESYSTEMS[self.kind]

    def mount_option_list(self) -> list[str]:
        """The options perfcheck mounts with: the scenario's, then the forced ones."""
        given = [o for o in self.mount_options.split(",") if o]
        return given + [o for o in FORCED_MOUNT_OPTIONS if o not in given]

    def facts(self) -> dict[str, str]:
        """What the scenario asked for, as the environment records it (a baseline made
        with other values is not comparable: :data:`perfcheck.stats.gate.INCOMPARABLE_KEYS`)."""
        return {
            "target.filesystem": self.kind,
            "target.filesystem.mkfs_options": " ".join(self.mkfs_options),
            "target.filesystem.mount_options": self.mount_options,
        }


def filesystem_problem(name: str) -> str | None:
    """Why ``name`` is not a filesystem perfcheck makes, or None."""
    if name in FILESYSTEMS:
        return None
    return f"{name!r} is not a filesystem perfcheck makes; use one of {', '.join(FILESYSTEMS)}"


def _value_list_problem(flag: str, value: str, allowed: tuple[str, ...]) -> str | None:
    for item in value.split(",") if allowed else ():
        name = item.split("=", 1)[0]
        if name not in allowed:
            return f"{flag} {name!r} is not allowed; allowed: {', '.join(allowed)}"
    if not _VALUE.fullmatch(value.replace(",", "").replace("=", "")):
        return f"{flag} {value!r}: only letters, digits and _ . : + ^ - are allowed in a value"
    return None


def mkfs_options_problem(kind: str, options: list[str] | tuple[str, ...]) -> str | None:
    """Why mkfs of ``kind`` may not be given ``options`` (argv words), or None.

    Each flag must be one :attr:`FilesystemKind.mkfs_flags` allows, each value plain (no
    '/', so no path or device) and, where the flag takes a list, only allowed names: an
    external journal, a prototype or root directory, or another device is refused.
    """
    flags = FILESYSTEMS[kind].mkfs_flags
    words = list(options)
    index = 0
    while index < len(words):
        flag = words[index]
        if flag not in flags:
            what = "a further device or file" if not flag.startswith("-") else "not allowed"
            return (
                f"mkfs.{kind} option {flag!r} is {what}; allowed: {', '.join(sorted(flags))}"
                " (a value goes in the next item)"
            )
        allowed = flags[flag]
        index += 1
        if allowed is None:
            continue
        if index == len(words):
            return f"mkfs.{kind} option {flag} needs a value in the next item"
        value = words[index]
        index += 1
        if flag == "-L" and not _LABEL.fullmatch(value):
            return f"mkfs.{kind} label {value!r}: 1-12 letters, digits, _ . -"
        problem = _value_list_problem(flag, value, allowed)
        if problem is not None:
            return f"mkfs.{kind} option {problem}"
    return None


def mount_options_problem(kind: str, options: str) -> str | None:
    """Why ``kind`` may not be mounted with ``options`` (``a,b=c``), or None.

    Only the VFS's generic options and the filesystem's own ones that name no file or
    device are allowed (no ``loop``, ``offset``, ``journal_path``, ``logdev``, ``device``,
    no ``errors=panic``), with plain values.
    """
    known = {**GENERIC_MOUNT_OPTIONS, **FILESYSTEMS[kind].mount_options}
    for item in options.split(","):
        if not item:
            continue
        name, equals, value = item.partition("=")
        if name not in known:
            allowed_names = ", ".join(sorted(known))
            return f"mount option {name!r} is not allowed for {kind}; allowed: {allowed_names}"
        allowed = known[name]
        if allowed is None:
            if equals:
                return f"mount option {name!r} takes no value"
            continue
        if not equals or not _VALUE.fullmatch(value) or not value:
            return f"mount option {name!r} needs a plain value ({name}=...)"
        if allowed and value not in allowed:
            return f"mount option {name}={value} is not allowed; use one of {', '.join(allowed)}"
    return None


# -- what the machine offers ---------------------------------------------------------


def kernel_supports(kind: str, proc: Path = PROC_FILESYSTEMS, modules: Path = MODULES_ROOT) -> bool:
    """Whether the running kernel can mount ``kind``: built in or loaded
    (``/proc/filesystems``), or a module of that name ``mount`` can load."""
    with contextlib.suppress(OSError):
        for line in proc.read_text().splitlines():
            if line.split() and line.split()[-1] == kind:
                return True
    release = os.uname().release
    with contextlib.suppress(OSError):
        for line in (modules / release / "modules.dep").read_text().splitlines():
            module = line.split(":", 1)[0]
            if Path(module).name.split(".ko", 1)[0] == kind:
                return True
    return False


def require_filesystem(kind: str, where: str) -> str:
    """The path of ``kind``'s mkfs, after checking the kernel can mount it; a one-line
    ``CapabilityError`` starting with ``where`` (the scenario file and key) otherwise."""
    fs = FILESYSTEMS[kind]
    mkfs = shutil.which(fs.mkfs)
    if mkfs is None:
        raise CapabilityError(
            f"{where}: {fs.mkfs} not found; install it: `apt-get install {fs.package}`"
        )
    if not kernel_supports(kind):
        raise CapabilityError(
            f"{where}: this kernel cannot mount {kind} (not in {PROC_FILESYSTEMS}, no module);"
            f" boot a kernel with {kind} support"
        )
    if shutil.which("mount") is None or shutil.which("umount") is None:
        raise CapabilityError(f"{where}: mount/umount not found; install util-linux")
    return mkfs


def mkfs_version(kind: str) -> str:
    """The first line mkfs prints about its version (``mke2fs 1.47.0 (5-Feb-2023)``)."""
    fs = FILESYSTEMS[kind]
    path = shutil.which(fs.mkfs)
    if path is None:
        return "absent"
    try:
        proc = subprocess.run(
            [path, fs.version_flag], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


# -- mountinfo -----------------------------------------------------------------------


@dataclass(frozen=True)
class MountEntry:
    """One line of ``/proc/self/mountinfo``."""

    mount_id: int
    dev: str
    mount_point: str
    options: str
    fstype: str
    source: str
    super_options: str


def _unescape(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def mount_entries(mountinfo: Path = MOUNTINFO) -> list[MountEntry]:
    """The mounts of this mount namespace, in the kernel's order (a later mount on the
    same point hides an earlier one)."""
    entries: list[MountEntry] = []
    with contextlib.suppress(OSError):
        for line in mountinfo.read_text().splitlines():
            head, sep, tail = line.partition(" - ")
            parts, rest = head.split(), tail.split()
            if not sep or len(parts) < 6 or len(rest) < 3:
                continue
            entries.append(
                MountEntry(
                    mount_id=int(parts[0]),
                    dev=parts[2],
                    mount_point=_unescape(parts[4]),
                    options=parts[5],
                    fstype=rest[0],
                    source=_unescape(rest[1]),
                    super_options=rest[2],
                )
            )
    return entries


def _top_mount_at(path: Path, mountinfo: Path = MOUNTINFO) -> MountEntry | None:
    found = [e for e in mount_entries(mountinfo) if e.mount_point == str(path)]
    return found[-1] if found else None


# -- making and removing one -----------------------------------------------------------


def _dev_text(device: Path) -> str:
    rdev = os.stat(device).st_rdev
    return f"{os.major(rdev)}:{os.minor(rdev)}"


def _is_ours(entry: MountEntry, journal: Mapping[str, object]) -> bool:
    """Whether a mount is the one a journal describes: at its mount point, of its device
    (btrfs reports an anonymous device number, so its source names the device), and with
    its mount id once that was journalled."""
    if entry.mount_point != journal.get("mount_point"):
        return False
    if entry.dev != journal.get("dev") and entry.source != journal.get("device"):
        return False
    mount_id = journal.get("mount_id")
    return mount_id is None or entry.mount_id == mount_id


def _umount(path: Path) -> None:
    run_tool(["umount", str(path)], f"unmount perfcheck's filesystem at {path}", timeout_s=120)


@dataclass
class MountedFilesystem:
    """A filesystem perfcheck made on ``device`` and mounted at ``mount_point``; released
    by :meth:`close` (unmounted, its directory and journal removed)."""

    spec: FilesystemSpec
    device: Path
    mount_point: Path
    journal: Path
    mount_id: int | None = None
    mkfs_version: str = "unknown"
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def create(
        cls, spec: FilesystemSpec, device: Path, where: str, directory: Path | None = None
    ) -> MountedFilesystem:
        """mkfs ``spec`` on ``device`` (a block device), then mount it in a new directory
        of ``directory`` (root's state directory). ``where`` (the scenario file and key)
        starts every error."""
        mkfs = require_filesystem(spec.kind, where)
        if not device.is_block_device():
            raise TargetError(
                f"{where}: {device} is not a block device; a filesystem target needs one"
                " (the scratch loop device, or --perfcheck-target /dev/...)"
            )
        fs = spec.filesystem
        run_tool(
            [mkfs, *fs.batch_flags, *fs.default_flags, *spec.mkfs_options, str(device)],
            f"make {spec.kind} on {device} ({where})",
            timeout_s=300,
        )
        base = state_dir() if directory is None else private_dir(directory)
        mount_point = new_private_dir(base, MOUNT_MARKER)
        journal = mount_point.with_name(mount_point.name + ".json")
        mounted = cls(spec, device, mount_point, journal, mkfs_version=mkfs_version(spec.kind))
        # From the journal entry on: an interruption anywhere still unmounts and forgets.
        try:
            mounted._write_journal()
            options = ",".join(spec.mount_option_list())
            run_tool(
                ["mount", "-t", spec.kind, "-o", options, str(device), str(mount_point)],
                f"mount {spec.kind} from {device} with {options!r} ({where})",
                timeout_s=120,
            )
            entry = _top_mount_at(mount_point)
            if entry is not None:
                mounted.mount_id = entry.mount_id
                mounted._write_journal()
        except BaseException:
            mounted.close()
            raise
        return mounted

    def _journal_content(self) -> dict[str, object]:
        return {
            "mount_point": str(self.mount_point),
            "device": str(self.device),
            "dev": _dev_text(self.device),
            "mount_id": self.mount_id,
        }

    def _write_journal(self) -> None:
        write_journal(self.journal, self._journal_content())

    def facts(self) -> dict[str, str]:
        """The filesystem as the environment records it: what the scenario asked for, the
        options the kernel reports for the mount, the mkfs tool's version."""
        facts = dict(self.spec.facts())
        entry = _top_mount_at(self.mount_point)
        if entry is not None:
            facts["target.filesystem.mounted"] = f"{entry.options} ({entry.super_options})"
        facts.update(_superblock_facts(self.spec.kind, self.device))
        facts[f"tool.{self.spec.filesystem.mkfs}"] = self.mkfs_version
        return facts

    def close(self) -> None:
        """Unmount (only the mount this object made), remove the directory and journal."""
        if self._closed:
            return
        self._closed = True
        entry = _top_mount_at(self.mount_point)
        if entry is not None and _is_ours(entry, self._journal_content()):
            _umount(self.mount_point)
        with contextlib.suppress(FileNotFoundError):
            self.mount_point.rmdir()
        self.journal.unlink(missing_ok=True)

    def __enter__(self) -> MountedFilesystem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: What ``dumpe2fs -h`` says of an ext4 superblock that mkfs's configuration decides (a
#: host's ``mke2fs.conf`` can change both), as environment keys.
_EXT4_SUPERBLOCK_FACTS = {
    "Filesystem features": "target.filesystem.features",
    "Default mount options": "target.filesystem.default_mount_options",
}


def _superblock_facts(kind: str, device: Path) -> dict[str, str]:
    """The features and default mount options mkfs wrote (ext4, when dumpe2fs exists)."""
    dumpe2fs = shutil.which("dumpe2fs")
    if kind != "ext4" or dumpe2fs is None:
        return {}
    try:
        proc = subprocess.run(
            [dumpe2fs, "-h", str(device)], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    facts: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        name, _, value = line.partition(":")
        if name in _EXT4_SUPERBLOCK_FACTS:
            facts[_EXT4_SUPERBLOCK_FACTS[name]] = " ".join(value.split())
    return facts


# -- after a killed run ----------------------------------------------------------------


def _journal(path: Path) -> dict[str, object]:
    try:
        doc = json.loads(read_own_file(path))
    except ValueError:
        raise ForeignStateFile("not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("mount_point"), str):
        raise ForeignStateFile("not a journal of a mount")
    if not isinstance(doc.get("device"), str) or not isinstance(doc.get("dev"), str):
        raise ForeignStateFile("not a journal of a mount")
    if doc.get("mount_id") is not None and not isinstance(doc.get("mount_id"), int):
        raise ForeignStateFile("not a journal of a mount")
    return doc


def remove_leftover_mounts(directory: Path | None = None) -> list[str]:
    """Unmount the filesystems of runs that died without unmounting them (SIGKILL, OOM),
    and remove their mount points and journals. Run before the scratch loop devices are
    detached: a mounted device cannot be.

    A journal ``mnt-<pid>-<random>.json`` of a dead process names the mount point beside
    it, its device and mount id; only a mount at that point of that device (and id) is
    unmounted. A journal of an earlier boot is removed (the reboot unmounted it). Returns
    one line per thing done or skipped.
    """
    if directory is None and os.geteuid() != 0:
        return []  # only root mounts
    base = state_dir() if directory is None else directory
    lines: list[str] = []
    for path, match, pid in left_by_dead_runs(base, _JOURNAL_NAME, lines):
        if match.group(2):  # an interrupted journal write; the journal rules
            path.unlink(missing_ok=True)
            continue
        mount_point = path.with_name(path.name.removesuffix(".json"))
        try:
            journal = _journal(path)
        except ForeignStateFile as exc:
            lines.append(f"skipped {path}: {exc}; perfcheck did not write it")
            continue
        if journal["mount_point"] != str(mount_point):
            lines.append(
                f"skipped {path}: it names another mount point; perfcheck did not write it"
            )
            continue
        if journal.get("boot_id") != boot_id():  # the reboot unmounted it
            lines += _remove_mount_dir(mount_point)
            path.unlink(missing_ok=True)
            continue
        entry = _top_mount_at(mount_point)
        if entry is not None:
            if not _is_ours(entry, journal):
                lines.append(
                    f"skipped {mount_point}: mounted from {entry.source}, not the"
                    f" {journal['device']} process {pid} mounted; left alone"
                )
                continue
            try:
                _umount(mount_point)
            except TargetError as exc:
                lines.append(f"could not unmount {mount_point} (left by process {pid}): {exc}")
                continue
            lines.append(f"unmounted {mount_point} ({journal['device']}, left by process {pid})")
        lines += _remove_mount_dir(mount_point)
        path.unlink(missing_ok=True)
    # Mount points whose journal is gone (killed between mkdir and the journal write).
    for path, _, _ in left_by_dead_runs(base, _MOUNT_NAME, lines):
        if not path.with_name(f"{path.name}.json").exists():
            lines += _remove_mount_dir(path)
    return lines


def _remove_mount_dir(path: Path) -> list[str]:
    """Remove an empty mount point of a dead run (never a mounted or foreign one)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return []
    why = why_not_private(st)
    if why is not None:
        return [f"skipped {path}: {why}, not a mount point perfcheck made"]
    if _top_mount_at(path) is not None:
        return [f"skipped {path}: something is mounted on it"]
    try:
        path.rmdir()
    except OSError as exc:
        return [f"skipped {path}: cannot remove it ({exc.strerror})"]
    return [f"removed {path}"]
