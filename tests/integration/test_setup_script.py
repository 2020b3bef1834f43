"""scripts/setup-machine.sh: what it reports without root, run against stubbed system commands.

The stubs (id, uname, dpkg-query, mountpoint) shadow the real ones on PATH, so these tests
never change the machine: without root the script must stop before changing anything.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "setup-machine.sh"
# A release with no /lib/modules directory, so kernel headers always count as missing.
FAKE_RELEASE = "0.0.0-no-such-kernel"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def write_stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def stub_commands(bin_dir: Path, *, uninstalled: set[str], unmounted: set[str]) -> None:
    bin_dir.mkdir(exist_ok=True)
    write_stub(bin_dir, "id", 'if [ "$1" = -u ]; then echo 1000; else echo uid=1000; fi\n')
    write_stub(bin_dir, "uname", f'if [ "$1" = -r ]; then echo {FAKE_RELEASE}; fi\n')
    missing = " ".join(sorted(uninstalled))
    # Like dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n': unknown packages print nothing.
    write_stub(
        bin_dir,
        "dpkg-query",
        f"""missing=" {missing} "
for arg in "$@"; do
  case "$arg" in -*) continue ;; esac
  case "$missing" in *" $arg "*) ;; *) echo "$arg ii " ;; esac
done
""",
    )
    unmounted_paths = " ".join(sorted(unmounted))
    write_stub(
        bin_dir,
        "mountpoint",
        f"""unmounted=" {unmounted_paths} "
case "$unmounted" in *" ${{@: -1}} "*) exit 1 ;; *) exit 0 ;; esac
""",
    )
    # Anything that would change the machine fails loudly if the script ever reached it.
    for command in ("apt-get", "mount", "ln", "mkdir"):
        write_stub(bin_dir, command, f'echo "{command} must not run without root" >&2; exit 99\n')


def run_script(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LC_ALL": "C"}
    return subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, env=env, check=False
    )


def test_script_parses() -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_without_root_names_everything_missing_in_one_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    stub_commands(
        bin_dir,
        uninstalled={"fio", "chromium"},
        unmounted={"/sys/kernel/debug", "/sys/kernel/tracing"},
    )
    result = run_script(bin_dir)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert line == (
        f"setup: missing fio, chromium, kernel headers for {FAKE_RELEASE}, debugfs mount, "
        "tracefs mount; run: sudo make setup"
    )


def test_without_root_reports_only_what_is_missing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    stub_commands(bin_dir, uninstalled=set(), unmounted={"/sys/kernel/tracing"})
    result = run_script(bin_dir)
    assert result.returncode == 1
    assert result.stderr == (
        f"setup: missing kernel headers for {FAKE_RELEASE}, tracefs mount; run: sudo make setup\n"
    )
