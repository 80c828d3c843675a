"""Fixtures for the PostgreSQL wire-protocol tests: a fresh lake with an `admin` password,
`loch serve` on free loopback ports, and helpers to talk raw protocol bytes."""
import os
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import LOCH, Lake

ADMIN_PASSWORD = "admin-Secret-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `loch serve` for one lake."""

    def __init__(self, lake: Lake, tls=None, timeout_ms=0):
        self.lake = lake
        self.port = free_port()
        self.http_port = free_port()
        cfg = lake.config.read_text()
        cfg = re.sub(r'sql_listen: "[^"]*"', f'sql_listen: "127.0.0.1:{self.port}"', cfg)
        cfg = re.sub(r'http_listen: "[^"]*"', f'http_listen: "127.0.0.1:{self.http_port}"', cfg)
        if tls:
            cfg = re.sub(r'mode: "off".*', f'mode: "{tls["mode"]}"\n    cert: "{tls["cert"]}"\n    key: "{tls["key"]}"', cfg)
        cfg = re.sub(r"timeout_ms: 0", f"timeout_ms: {timeout_ms}", cfg)
        lake.config.write_text(cfg)
        self.log = lake.root / "serve.log"
        self.proc = None

    def start(self):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([LOCH, "-c", str(self.lake.config), "serve"], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"loch serve exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("loch serve did not listen in time:\n" + self.log.read_text())

    def stop(self):
        """SIGTERM; the server must shut down cleanly (exit code 0) in time."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("loch serve did not stop on SIGTERM")
            assert rc == 0, f"loch serve exited {rc}:\n{self.log.read_text()}"
        self.logf.close()

    def dsn(self, user="admin", password=ADMIN_PASSWORD, **kw):
        parts = {"host": "127.0.0.1", "port": self.port, "user": user, "password": password, "dbname": "lake",
                 "sslmode": "disable"}
        parts.update(kw)
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def connect(self, user="admin", password=ADMIN_PASSWORD, **kw):
        import psycopg
        return psycopg.connect(self.dsn(user, password, **kw), autocommit=True)

    def psql(self, *args, user="admin", password=ADMIN_PASSWORD, check=True, input=None):
        env = dict(os.environ, PGPASSWORD=password, PGSSLMODE="disable", PGCONNECT_TIMEOUT="10")
        p = subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", "lake",
                            "-v", "ON_ERROR_STOP=1", *args], capture_output=True, text=True, env=env, input=input,
                           timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"psql failed ({p.returncode}):\nstdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def metric(self, name, protocol="pgwire"):
        """The value of metric `name` for `protocol` in GET /metrics (an admin token)."""
        import urllib.request
        if not getattr(self, "_metrics_token", None):
            out = self.lake.run("token", "create", "--user", "admin").stdout
            self._metrics_token = out.strip().splitlines()[-1]
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/metrics",
                                     headers={"Authorization": f"Bearer {self._metrics_token}"})
        body = urllib.request.urlopen(req, timeout=10).read().decode()
        for line in body.splitlines():
            if line.startswith(name + "{") and f'protocol="{protocol}"' in line:
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no {name} for {protocol} in /metrics:\n{body}")

    def wait_running(self, n=1, protocol="pgwire", timeout=30):
        """Waits until at least n statements run (loch_queries_running): "the query is now
        running", as a condition rather than a sleep."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.metric("loch_queries_running", protocol) >= n:
                return
            time.sleep(0.02)
        raise AssertionError(f"no {n} {protocol} statement(s) running after {timeout} s")

    def log_text(self):
        self.logf.flush()
        return self.log.read_text()


@pytest.fixture
def pg_lake(tmp_path):
    env = dict(os.environ, LOCH_ADMIN_PASSWORD=ADMIN_PASSWORD)
    subprocess.run([LOCH, "init", str(tmp_path / "lake")], check=True, capture_output=True, env=env)
    return Lake(tmp_path / "lake")


@pytest.fixture
def server(pg_lake):
    s = Server(pg_lake).start()
    yield s
    s.stop()


# ---- raw protocol helpers (for bad-input tests) ----

def startup_packet(user="admin", database="lake", extra=None):
    params = {"user": user, "database": database, **(extra or {})}
    body = struct.pack("!I", 196608) + b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


def msg(t: bytes, body: bytes = b""):
    return t + struct.pack("!I", len(body) + 4) + body


def read_msg(sock):
    """One backend message as (type, body); (None, b"") at EOF."""
    hdr = recv_exact(sock, 5)
    if hdr is None:
        return None, b""
    t, n = hdr[:1], struct.unpack("!I", hdr[1:])[0]
    body = recv_exact(sock, n - 4) if n > 4 else b""
    return t, body


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except (ConnectionResetError, socket.timeout):
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def error_fields(body):
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode()
    return out


def scram_login(sock, user="admin", password=ADMIN_PASSWORD):
    """Runs startup + SCRAM-SHA-256 on a raw socket; returns messages up to ReadyForQuery."""
    import base64
    import hashlib
    import hmac
    sock.sendall(startup_packet(user))
    t, body = read_msg(sock)
    assert t == b"R" and struct.unpack("!I", body[:4])[0] == 10, (t, body)
    cnonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n=,r={cnonce}"
    cf = ("n,," + first_bare).encode()
    sock.sendall(msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(cf)) + cf))
    t, body = read_msg(sock)
    assert t == b"R" and struct.unpack("!I", body[:4])[0] == 11, (t, body)
    server_first = body[4:].decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salt, iters = base64.b64decode(attrs["s"]), int(attrs["i"])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iters)
    ckey = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(ckey).digest()
    final_wo = f"c=biws,r={attrs['r']}"
    auth = f"{first_bare},{server_first},{final_wo}".encode()
    sig = hmac.new(stored, auth, "sha256").digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(ckey, sig))).decode()
    sock.sendall(msg(b"p", f"{final_wo},p={proof}".encode()))
    got = []
    while True:
        t, body = read_msg(sock)
        assert t is not None, "connection closed during login"
        got.append((t, body))
        if t in (b"Z", b"E"):
            return got


def raw_connect(server, login=True):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    if login:
        got = scram_login(s)
        assert got[-1][0] == b"Z", got
    return s
