"""A private PostgreSQL server for tests: a cluster in a temporary directory, run by the
``postgres`` system user, listening only on a unix socket in that directory, stopped and
removed afterwards."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVER_USER = "postgres"


def server_bin() -> Path | None:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    return found[-1].parent if found else None


def missing_reason() -> str | None:
    if server_bin() is None:
        return "no PostgreSQL server installed: install the postgresql package (make setup)"
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        return f"no {SERVER_USER!r} user to run the server as (the postgresql package makes it)"
    if os.geteuid() != 0:
        return "starting a server as the postgres user needs root"
    return None


@contextmanager
def private_server() -> Iterator[str]:
    """Start a cluster; yield the socket directory (host= in a URL); stop and remove it."""
    bin_dir = server_bin()
    assert bin_dir is not None
    user = pwd.getpwnam(SERVER_USER)
    base = Path(tempfile.mkdtemp(prefix="perfcheck-pg-"))
    os.chown(base, user.pw_uid, user.pw_gid)
    data = base / "data"
    as_user = ["runuser", "-u", SERVER_USER, "--"]

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    started = False
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", SERVER_USER, "--auth=trust",
            "-E", "UTF8", "--no-sync")  # fmt: skip
        options = f"-k {base} -c listen_addresses='' -c fsync=off -c max_connections=100"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w",
            "-t", "60", "-o", options, "start")  # fmt: skip
        started = True
        yield str(base)
    finally:
        if started:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop")
        shutil.rmtree(base, ignore_errors=True)
