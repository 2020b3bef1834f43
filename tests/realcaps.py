"""Skip conditions for tests that need the real machine: each names the missing capability
and its fix. CI (PERFCHECK_REQUIRE_REAL=1) turns these skips into failures."""

from __future__ import annotations

import os
import shutil

import pytest


def real_bpf_missing() -> str | None:
    """Why real BPF tests cannot run here (perfcheck's own check, plus the block
    tracepoints they attach to), or None."""
    from perfcheck.probes.features import bpf_prerequisites_missing, missing_tracepoints

    why = bpf_prerequisites_missing() or missing_tracepoints([("block", "block_rq_issue")])
    return None if why is None else str(why)


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
