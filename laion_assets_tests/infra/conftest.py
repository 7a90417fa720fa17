"""A real PostgreSQL server on loopback for the instance tests (Debian's package, no Docker).

The server runs as an unprivileged OS user (postgres refuses root): when the tests run as root,
every server command goes through `runuser -u postgres`, and the data folder is that user's.
It listens on 127.0.0.1 only, on a free port, with its socket in its own temporary folder, and
is stopped (`pg_ctl stop -m fast`) at teardown whatever the tests did.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

INSTALL_HINT = "run scripts/system-packages.sh (`make test` does) to install PostgreSQL"
SERVER_USER = "postgres"  # created by Debian's postgresql package
ROLE, PASSWORD = "laion", "laion-test-password"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str

    def connect(self, dbname: str = "postgres"):
        return psycopg2.connect(host=self.host, port=self.port, user=self.user,
                                password=self.password, dbname=dbname)

    def create_database(self, name: str) -> str:
        conn = self.connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name


def postgres_bin() -> Path:
    """The newest `/usr/lib/postgresql/<version>/bin` holding initdb and pg_ctl; fails if none."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")
             if Path(p).with_name("pg_ctl").exists()]
    if not found:
        pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) not found under "
                    f"/usr/lib/postgresql/*/bin: {INSTALL_HINT}", pytrace=False)
    return max(found, key=lambda p: _version(p.parent.name))


def _version(name: str) -> tuple:
    return tuple(int(x) if x.isdigit() else 0 for x in name.split("."))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_server():
    bin_dir = postgres_bin()
    as_root = os.geteuid() == 0
    if as_root:
        try:
            account = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.fail(f"no OS user {SERVER_USER!r} to run the server as (tests run as root): "
                        f"{INSTALL_HINT}", pytrace=False)
        prefix = ["runuser", "-u", SERVER_USER, "--"]
    else:
        prefix = []
    # Not under pytest's tmp_path: root's pytest folders are 0700, closed to the server's user.
    base = Path(tempfile.mkdtemp(prefix="laion-pg-"))
    data, sockets, log = base / "data", base / "sockets", base / "server.log"
    sockets.mkdir()
    (base / "pwfile").write_text(PASSWORD + "\n")
    if as_root:
        for path in (base, sockets, base / "pwfile"):
            os.chown(path, account.pw_uid, account.pw_gid)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *args], cwd=base, capture_output=True, text=True,
                              timeout=120)

    port = _free_port()
    started = False
    try:
        init = run(str(bin_dir / "initdb"), "-D", str(data), "-U", ROLE,
                   f"--pwfile={base / 'pwfile'}", "--auth-local=trust",
                   "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
        assert init.returncode == 0, f"initdb failed:\n{init.stdout}\n{init.stderr}"
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        start = run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                    "-o", options, "start")
        started = True  # stop even a half-started server
        assert start.returncode == 0, (f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n"
                                       f"{_read(log)}")
        yield PostgresServer("127.0.0.1", port, ROLE, PASSWORD)
    finally:
        if started:
            stop = run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
            if stop.returncode != 0 and "not running" not in stop.stderr + stop.stdout:
                print(f"pg_ctl stop failed:\n{stop.stdout}\n{stop.stderr}\n{_read(log)}")
        shutil.rmtree(base, ignore_errors=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-4000:]
    except OSError:
        return ""
