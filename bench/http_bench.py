"""HTTP API benchmark: `loch serve` on a generated lake table; 16 concurrent clients
running short point queries over POST /v1/sql (queries/s, p50/p99 latency), and the
transfer rate of one large result as JSON and as CSV.

    LOCH_BIN=build/loch .venv/bin/python bench/http_bench.py [--rows N] [--clients C] [--seconds S]
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from access_fixtures import Server, token_for  # noqa: E402
from conftest import LOCH, Lake  # noqa: E402


def post(port, token, sql, accept="application/json"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.request("POST", "/v1/sql", json.dumps({"sql": sql}),
              {"Authorization": f"Bearer {token}", "Accept": accept, "Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError(f"{r.status}: {body[:300]!r}")
    return body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="loch-http-bench-"))
    subprocess.run([LOCH, "init", str(root / "lake")], check=True, capture_output=True,
                   env=dict(os.environ, LOCH_ADMIN_PASSWORD="bench-admin"))
    lake = Lake(root / "lake")
    lake.run("sql", f"CREATE TABLE bench.accounts AS SELECT i AS id, i % 1000 AS branch, "
                    f"CAST(i * 1.25 AS DECIMAL(18,2)) AS balance, 'customer ' || i AS name "
                    f"FROM range({a.rows}) t(i)")
    server = Server(lake)
    try:
        token = token_for(lake, "admin")
        port = server.http_port
        post(port, token, "SELECT 1 FROM bench.accounts LIMIT 1")  # warm the view

        lat = []
        stop = time.time() + a.seconds

        def client(k):
            mine, i = [], k
            while time.time() < stop:
                t0 = time.perf_counter()
                post(port, token, f"SELECT id, balance, name FROM bench.accounts WHERE id = {i * 7919 % a.rows}")
                mine.append(time.perf_counter() - t0)
                i += a.clients
            return mine

        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(a.clients) as ex:
            for m in ex.map(client, range(a.clients)):
                lat.extend(m)
        wall = time.time() - t0
        lat.sort()
        p99 = lat[int(len(lat) * 0.99) - 1] if lat else float("nan")
        print(f"http point queries: {a.clients} clients, {len(lat)} queries in {wall:.1f} s: "
              f"{len(lat) / wall:.0f} queries/s, p50 {statistics.median(lat) * 1000:.1f} ms, "
              f"p99 {p99 * 1000:.1f} ms")

        for accept in ("application/json", "text/csv"):
            t0 = time.perf_counter()
            body = post(port, token, "SELECT * FROM bench.accounts", accept)
            dt = time.perf_counter() - t0
            print(f"http {accept} result of {a.rows} rows: {len(body) / 1e6:.1f} MB in {dt:.2f} s "
                  f"({a.rows / dt:,.0f} rows/s, {len(body) / 1e6 / dt:.1f} MB/s)")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
