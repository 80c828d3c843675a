"""A throw-away PostgreSQL 15 server for CDC tests: initdb in a temp folder as the
`postgres` OS user, wal_level=logical, a free loopback port. One server per test module;
each test gets its own database and its own source (slot and publications) so tests do
not see each other's changes."""
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
_counter = itertools.count(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, wal_level="logical"):
        self.dir = Path(tempfile.mkdtemp(prefix="loch-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.wal_level = wal_level
        pw = pwd.getpwnam("postgres")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._as_pg([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                     "-E", "UTF8", "--locale=C"])
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(textwrap.dedent(f"""
                listen_addresses = '127.0.0.1'
                port = {self.port}
                unix_socket_directories = '{self.dir}'
                wal_level = {wal_level}
                max_replication_slots = 40
                max_wal_senders = 40
                fsync = off
                synchronous_commit = off
                full_page_writes = off
                wal_sender_timeout = 60s
                shared_buffers = 64MB
            """))
        with open(self.data / "pg_hba.conf", "a") as f:
            f.write("host replication all 127.0.0.1/32 trust\n")
        self.start()

    def _as_pg(self, args, **kw):
        return subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, **kw)

    def start(self):
        self._as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "start"])

    def stop(self, mode="fast"):
        self._as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def restart(self):
        self.stop()
        self.start()

    def url(self, db="postgres", user="postgres"):
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def connect(self, db="postgres", user="postgres", autocommit=True):
        return psycopg.connect(self.url(db, user), autocommit=autocommit)

    def close(self):
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Source:
    """One database plus its loch source entry."""

    def __init__(self, server, lake, name="core", tables=('"public.*"',), exclude=(), user="postgres"):
        self.server = server
        self.lake = lake
        self.n = next(_counter)
        self.db = f"db{self.n}"
        self.name = name
        self.slot = f"loch_{name}_{self.n}"
        with server.connect() as c:
            c.execute(f"CREATE DATABASE {self.db}")
        cfg = lake.config.read_text()
        excl = f"\n    exclude: [{', '.join(exclude)}]" if exclude else ""
        cfg += textwrap.dedent(f"""
            sources:
              - name: {name}
                type: postgres
                url: {server.url(self.db, user)}
                tables: [{', '.join(tables)}]
                slot: {self.slot}
                publication: loch_{name}_{self.n}""") + excl + "\n"
        cfg = cfg.replace("flush_interval_ms: 1000", "")
        lake.config.write_text(cfg + "flush_interval_ms: 200\n")
        self.procs = []

    def conn(self):
        return self.server.connect(self.db)

    def execute(self, *stmts):
        with self.conn() as c:
            for s in stmts:
                c.execute(s)

    def rows(self, sql):
        with self.conn() as c:
            return c.execute(sql).fetchall()

    def catch_up(self, check=True, timeout=300):
        return self.lake.run("replicate", "--source", self.name, "--catch-up", check=check, timeout=timeout)

    def start(self):
        from conftest import LOCH
        p = subprocess.Popen([LOCH, "-c", str(self.lake.config), "replicate", "--source", self.name],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=60):
        p.send_signal(sig)
        out, err = p.communicate(timeout=timeout)
        return p.returncode, err

    def slot_info(self):
        with self.server.connect() as c:
            return c.execute("SELECT confirmed_flush_lsn, active FROM pg_replication_slots WHERE slot_name = %s",
                             (self.slot,)).fetchone()

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        try:
            with self.server.connect() as c:
                c.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                          "WHERE slot_name = %s AND NOT active", (self.slot,))
        except Exception:
            pass


@pytest.fixture(scope="module")
def pg():
    s = PgServer()
    yield s
    s.close()


@pytest.fixture
def source(pg, lake):
    s = Source(pg, lake)
    yield s
    s.cleanup()


def wait_for(fn, timeout=30, interval=0.2):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
