"""Skip conditions for tests that need the real machine: each names the missing capability
and its fix. CI (PERFCHECK_REQUIRE_REAL=1) turns these skips into failures."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

import pytest


def _bcc_importable() -> bool:
    try:
        import bcc  # noqa: F401
    except ImportError:
        return False
    return True


def _tracefs() -> bool:
    return any(
        (root / "events" / "block" / "block_rq_issue").is_dir()
        for root in (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
    )


def real_bpf_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to load BPF programs"
    if not _bcc_importable():
        return "bcc not importable (python3-bpfcc; run `make setup`)"
    build = Path("/lib/modules") / platform.release() / "build" / "include"
    if not build.is_dir():
        return f"kernel headers missing at {build} (run `make setup`)"
    if not _tracefs():
        return "tracefs not mounted or block tracepoints absent (run `make setup`)"
    return None


def real_fio_missing() -> str | None:
    if shutil.which("fio") is None:
        return "fio not installed (run `make setup`)"
    if os.geteuid() != 0:
        return "needs root for a scratch loop device"
    if shutil.which("losetup") is None:
        return "losetup not installed (util-linux)"
    return None


requires_bpf = pytest.mark.skipif(real_bpf_missing() is not None, reason=str(real_bpf_missing()))
requires_fio = pytest.mark.skipif(real_fio_missing() is not None, reason=str(real_fio_missing()))


def sigint_as_a_terminal_would() -> None:
    """``preexec_fn`` for a run that a test interrupts with SIGINT: a shell's background
    job (a CI script started with ``&``) passes SIGINT on ignored, and Python then never
    turns it into KeyboardInterrupt; a run under a terminal's Ctrl-C has it at default."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


#: The marks of a test that runs real bcc programs around real fio.
REAL_BPF_AND_FIO = [pytest.mark.realbpf, pytest.mark.realfio, requires_bpf, requires_fio]
