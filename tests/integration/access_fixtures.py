"""Fixtures for the access and HTTP tests: a lake with `loch serve` running on free
loopback ports, and a tiny HTTP client (stdlib only) for its API."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import LOCH, Lake

ADMIN_PASSWORD = "adm1n-Pw-for-tests"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode()


class Server:
    """`loch serve` on free ports; stderr (the server log) goes to a file."""

    def __init__(self, lake: Lake, timeout_ms=0):
        self.lake = lake
        self.sql_port, self.http_port = free_port(), free_port()
        cfg = lake.config.read_text()
        cfg = cfg.replace('sql_listen: "127.0.0.1:5433"', f'sql_listen: "127.0.0.1:{self.sql_port}"')
        cfg = cfg.replace('http_listen: "127.0.0.1:8181"', f'http_listen: "127.0.0.1:{self.http_port}"')
        if timeout_ms:
            assert "timeout_ms: 0 " in cfg
            cfg = cfg.replace("timeout_ms: 0 ", f"timeout_ms: {timeout_ms} ")
        lake.config.write_text(cfg)
        self.log_path = lake.root / "serve.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([LOCH, "-c", str(lake.config), "serve"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                if self.request("GET", "/healthz").status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"loch serve did not come up:\n{self.log_text()}")
            time.sleep(0.1)

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def request(self, method, path, body=None, token=None, headers=None, raw=None):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method,
                                     headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return Response(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, dict(e.headers), e.read())

    def sql(self, sql, token, accept=None):
        return self.request("POST", "/v1/sql", {"sql": sql}, token=token,
                            headers={"Accept": accept} if accept else None)

    def stop(self):
        """Stops the server with SIGTERM; it must exit cleanly (0, and under the
        sanitizers without a report)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"loch serve did not stop on SIGTERM:\n{self.log_text()}")
        if not self.log.closed:
            self.log.close()
        log = self.log_text()
        assert self.proc.returncode == 0 and "Sanitizer" not in log, \
            f"loch serve exited with {self.proc.returncode}:\n{log[-5000:]}"


@pytest.fixture
def admin_lake(tmp_path):
    """A lake whose admin password is known."""
    env = dict(os.environ, LOCH_ADMIN_PASSWORD=ADMIN_PASSWORD)
    p = subprocess.run([LOCH, "init", str(tmp_path / "lake")], check=True, capture_output=True, text=True, env=env)
    assert "from $LOCH_ADMIN_PASSWORD" in p.stdout
    return Lake(tmp_path / "lake")


@pytest.fixture
def server(admin_lake):
    s = Server(admin_lake)
    yield s
    s.stop()


def token_for(lake: Lake, user: str, *extra) -> str:
    out = lake.run("token", "create", "--user", user, *extra).stdout
    return out.strip().splitlines()[-1]


def files_containing(root: Path, needle: bytes):
    """Every file under root whose bytes contain needle."""
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and needle in p.read_bytes():
            hits.append(p)
    return hits
