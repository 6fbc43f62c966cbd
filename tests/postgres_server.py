"""A throwaway PostgreSQL cluster for the database tests (issue 15): a real server, no mocks.

``initdb`` in a temporary folder (as the ``postgres`` user when the tests run
as root, else as the current user), listening on 127.0.0.1 only on a free
port, scram-sha-256 authentication with a random password; stopped and
removed at exit.  When no server can be started the tests skip, except
under ``CI=true``, where they fail (.ci/run installs Debian's postgresql).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

USER = "crm"


def _bindir() -> Path | None:
    """Where initdb and pg_ctl are: ``$PG_BINDIR``, Debian's newest /usr/lib/postgresql/N/bin, or PATH."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    """A running cluster: host, port, superuser ``crm`` and its password."""

    host: str
    port: int
    password: str
    folder: Path
    as_user: list[str]
    bindir: Path

    def uri(self, dbname: str = "postgres", *, password: bool = True, query: str = "") -> str:
        """A libpq URI of a database (with the password in it, unless ``password=False``)."""
        auth = f"{USER}:{quote(self.password, safe='')}" if password else USER
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}" + (f"?{query}" if query else "")

    def sql(self, statement: str, dbname: str = "postgres") -> None:
        """Run one statement (autocommit) as the superuser."""
        import adbc_driver_postgresql.dbapi as pg

        with pg.connect(self.uri(dbname), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(statement)

    def createdb(self, name: str) -> str:
        """A new empty database; its URI (with the password)."""
        self.sql(f'CREATE DATABASE "{name}"')
        return self.uri(name)


def start() -> PgServer:
    """Start a cluster; raise RuntimeError saying why it cannot be."""
    bindir = _bindir()
    if bindir is None or not (bindir / "initdb").exists():
        raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="crm-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root and there is no 'postgres' user to run the server as") from None
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    os.chmod(folder, 0o700)
    password = "pw-" + secrets.token_hex(12)
    pwfile = folder / "pwfile"
    pwfile.write_text(password + "\n")
    if as_user:
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    data = folder / "data"
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    try:
        subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
                        "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], **run)  # fmt: skip
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {exc.stderr.strip()[-500:]}") from None
    pwfile.unlink()
    for _attempt in range(5):
        port = _free_port()
        opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=40")  # fmt: skip
        res = subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                              str(folder / "server.log"), "-w", "-t", "60", "start"],
                             capture_output=True, text=True, timeout=90)  # fmt: skip
        if res.returncode == 0:
            return PgServer("127.0.0.1", port, password, folder, as_user, bindir)
        time.sleep(0.5)
    log = (folder / "server.log").read_text(errors="replace")[-500:] if (folder / "server.log").exists() else ""
    shutil.rmtree(folder, ignore_errors=True)
    raise RuntimeError(f"pg_ctl start failed: {res.stderr.strip()[-300:]} {log}")


def stop(server: PgServer) -> None:
    """Stop the cluster and remove its folder."""
    subprocess.run([*server.as_user, str(server.bindir / "pg_ctl"), "-D", str(server.folder / "data"),
                    "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)  # fmt: skip
    shutil.rmtree(server.folder, ignore_errors=True)


def server_or_skip() -> PgServer:
    """A started cluster, or skip (fail under CI=true) saying why not."""
    try:
        import adbc_driver_postgresql.dbapi  # noqa: F401
    except ImportError as exc:
        why = f"the ADBC PostgreSQL driver is not installed ({exc}): pip install -e '.[test]'"
    else:
        try:
            return start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            why = str(exc)
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and no PostgreSQL server could be started: {why}")
    pytest.skip(f"no PostgreSQL server could be started: {why}")
