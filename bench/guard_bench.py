"""What the restricted path costs (issue 12): a non-administrator's statement is parsed by
DuckDB, checked, turned back into DuckDB's text and run on the restricted engine; an
administrator's runs on the process engine. `loch serve` on a free port, one psycopg
connection each, N small statements (extended protocol, prepared once by psycopg's
automatic preparation off: every statement goes through Parse), median and p99 latency.
Run alone: .venv/bin/python bench/guard_bench.py [--n N]"""
import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import tempfile
import time

import psycopg

LOCH = os.environ.get("LOCH_BIN", "build/loch")
PASSWORD = "bench-Secret-1"
USER_PW = "bench-user-Pw-2"
SQL = "SELECT sum(i) AS s FROM range(100) t(i) WHERE i > %s"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(conn, n):
    lat = []
    for k in range(n):
        t0 = time.perf_counter()
        conn.execute(SQL, (k % 50,), prepare=False).fetchone()
        lat.append(time.perf_counter() - t0)
    lat.sort()
    return statistics.median(lat) * 1e3, lat[int(len(lat) * 0.99)] * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, LOCH_ADMIN_PASSWORD=PASSWORD)
        subprocess.run([LOCH, "init", f"{d}/lake"], check=True, capture_output=True, env=env)
        cfg = f"{d}/lake/loch.yaml"
        port, hport = free_port(), free_port()
        text = open(cfg).read()
        text = re.sub(r'sql_listen: "[^"]*"', f'sql_listen: "127.0.0.1:{port}"', text)
        text = re.sub(r'http_listen: "[^"]*"', f'http_listen: "127.0.0.1:{hport}"', text)
        open(cfg, "w").write(text)
        subprocess.run([LOCH, "-c", cfg, "sql", f"CREATE USER analyst WITH PASSWORD '{USER_PW}'"], check=True,
                       capture_output=True)
        log = open(f"{d}/serve.log", "wb")
        srv = subprocess.Popen([LOCH, "-c", cfg, "serve"], stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            dsn = f"host=127.0.0.1 port={port} dbname=lake sslmode=disable"
            res = {}
            for who, pw in (("admin", PASSWORD), ("analyst", USER_PW)):
                with psycopg.connect(f"{dsn} user={who} password={pw}", autocommit=True) as c:
                    run(c, 100)  # warm up
                    res[who] = run(c, a.n)
            print(f"guard_bench: {a.n} statements '{SQL}' over psycopg, one connection each")
            for who, (p50, p99) in res.items():
                print(f"  {who:8s} p50 {p50:6.3f} ms   p99 {p99:6.3f} ms")
            print(f"  restricted path costs {res['analyst'][0] - res['admin'][0]:+.3f} ms at the median")
        finally:
            srv.send_signal(signal.SIGTERM)
            srv.wait(timeout=30)


if __name__ == "__main__":
    main()
