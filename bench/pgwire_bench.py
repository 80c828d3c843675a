"""PostgreSQL wire-protocol benchmark (issue: serve SQL over pgwire). A lake table of N
narrow bank transactions, `loch serve` on a free port, then:
  1. a 10-row aggregate through psql (one session, \\timing) vs DuckDB in-process on the
     same Parquet files (libduckdb's C API called from this script); goal: ratio <= 1.2;
  2. transfer of the whole table (N rows) over the wire: psycopg text and binary, psql;
  3. C concurrent clients (psycopg, one connection each) running point queries by id for
     D seconds: queries/s, p50 and p99 latency.
Run alone: .venv/bin/python bench/pgwire_bench.py [--rows N] [--clients C] [--seconds D]"""
import argparse
import glob
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time

import psycopg

LOCH = os.environ.get("LOCH_BIN", "build/loch")
PASSWORD = "bench-Secret-1"

ROWS_SQL = ("SELECT i AS id, i % 1000 AS account_id, CAST((i % 100000) / 100.0 - 500 AS DECIMAL(18,2)) AS amount, "
            "CASE i % 3 WHEN 0 THEN 'EUR' WHEN 1 THEN 'USD' ELSE 'CHF' END AS currency, "
            "TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_microseconds(i * 1000) AS ts, "
            "'payment ' || (i % 977) AS memo FROM range({n}) t(i)")
AGG = ("SELECT account_id % 10 AS bucket, count(*) AS n, sum(amount) AS total, avg(amount) AS mean "
       "FROM {src} GROUP BY 1 ORDER BY 1")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loch(cfg, *args):
    t0 = time.perf_counter()
    p = subprocess.run([LOCH, "-c", cfg, *args], capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"loch {args[:2]} failed: {p.stderr}")
    return time.perf_counter() - t0, p.stdout


class InProcess:
    """DuckDB itself, in this process: loch's libduckdb through ctypes (the C API), no loch
    code in between. One database for the whole run, as the server keeps one."""

    def __init__(self):
        import ctypes
        self.ct = ctypes
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.lib = ctypes.CDLL(os.path.join(root, "third_party", "duckdb", "lib", "libduckdb.so"))
        self.lib.duckdb_row_count.restype = ctypes.c_uint64
        self.db, self.con = ctypes.c_void_p(), ctypes.c_void_p()
        assert self.lib.duckdb_open(None, ctypes.byref(self.db)) == 0
        assert self.lib.duckdb_connect(self.db, ctypes.byref(self.con)) == 0
        self.res = (ctypes.c_char * 256)()  # duckdb_result is 48 bytes

    def run(self, sql):
        """Seconds for sql, its result materialized (10 rows)."""
        t0 = time.perf_counter()
        rc = self.lib.duckdb_query(self.con, sql.encode(), self.ct.byref(self.res))
        n = self.lib.duckdb_row_count(self.ct.byref(self.res))
        dt = time.perf_counter() - t0
        self.lib.duckdb_destroy_result(self.ct.byref(self.res))
        assert rc == 0 and n == 10, (rc, n)
        return dt

    def close(self):
        self.lib.duckdb_disconnect(self.ct.byref(self.con))
        self.lib.duckdb_close(self.ct.byref(self.db))


class Psql:
    """One psql session fed a query at a time; its \\timing line is the wire side's time
    (client to server and back, result rendered by psql)."""

    def __init__(self, cmd, env):
        self.p = subprocess.Popen(cmd + ["-o", "/dev/null", "-q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
        self.p.stdin.write("\\timing on\n")

    def run(self, sql):
        self.p.stdin.write(sql + ";\n")
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise SystemExit("psql ended")
            m = re.match(r"Time: ([0-9.]+) ms", line)
            if m:
                return float(m.group(1)) / 1000
            if "ERROR" in line:
                raise SystemExit(f"psql: {line}")

    def close(self):
        self.p.stdin.close()
        self.p.wait(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--runs", type=int, default=10, help="queries per side per round")
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="loch-pgbench-")
    env = dict(os.environ, LOCH_ADMIN_PASSWORD=PASSWORD)
    subprocess.run([LOCH, "init", f"{root}/lake"], check=True, capture_output=True, env=env)
    cfg = f"{root}/lake/loch.yaml"
    port = free_port()
    text = open(cfg).read()
    text = re.sub(r'sql_listen: "[^"]*"', f'sql_listen: "127.0.0.1:{port}"', text)
    text = re.sub(r'http_listen: "[^"]*"', f'http_listen: "127.0.0.1:{free_port()}"', text)
    open(cfg, "w").write(text)
    loch(cfg, "sql", f"CREATE TABLE bench.tx AS {ROWS_SQL.format(n=a.rows)}")
    files = sorted(glob.glob(f"{root}/lake/warehouse/bench/tx/data/*.parquet"))
    print(f"rows: {a.rows:,}  files: {len(files)}  machine: {os.cpu_count()} cores")

    log = open(f"{root}/serve.log", "w")
    srv = subprocess.Popen([LOCH, "-c", cfg, "serve"], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        dsn = f"host=127.0.0.1 port={port} user=admin password={PASSWORD} dbname=lake sslmode=disable"
        penv = dict(os.environ, PGPASSWORD=PASSWORD, PGSSLMODE="disable")
        psql = ["psql", "-X", "-h", "127.0.0.1", "-p", str(port), "-U", "admin", "-d", "lake"]

        # 1. aggregate, 10 rows. The two sides alternate query by query, so load that comes
        # and goes on a shared machine hits both alike; both warm up first (the server's
        # first queries, the file just written); medians over all pairs.
        q = AGG.format(src="bench.tx")
        flist = "[" + ", ".join(f"'{f}'" for f in files) + "]"
        dq = AGG.format(src=f"read_parquet({flist})")
        wire, duck = [], []
        ps, ip = Psql(psql, penv), InProcess()
        for _ in range(5):
            ps.run(q)
            ip.run(dq)
        for _ in range(a.rounds * a.runs):
            wire.append(ps.run(q))
            duck.append(ip.run(dq))
        ps.close()
        ip.close()
        t_wire = statistics.median(wire)
        t_duck = statistics.median(duck)
        print(f"aggregate (10 rows): psql->loch {t_wire * 1000:.1f} ms, DuckDB in-process {t_duck * 1000:.1f} ms, "
              f"ratio {t_wire / t_duck:.2f} (goal <= 1.2)")

        # 2. transfer
        for binary in (False, True):
            with psycopg.connect(dsn, autocommit=True) as c:
                t0 = time.perf_counter()
                cur = c.cursor(binary=binary)
                cur.execute("SELECT * FROM bench.tx")
                n = 0
                while True:
                    rows = cur.fetchmany(10000)
                    if not rows:
                        break
                    n += len(rows)
                dt = time.perf_counter() - t0
            print(f"transfer {n:,} rows, psycopg {'binary' if binary else 'text  '}: {dt:.2f} s, "
                  f"{n / dt:,.0f} rows/s (includes Python decoding)")
        t0 = time.perf_counter()
        out = subprocess.run(psql + ["-A", "-t", "-c", "SELECT * FROM bench.tx"], capture_output=True, env=penv)
        dt = time.perf_counter() - t0
        mb = len(out.stdout) / 1e6
        print(f"transfer {a.rows:,} rows, psql: {dt:.2f} s, {a.rows / dt:,.0f} rows/s, {mb / dt:.1f} MB/s of text")

        # 3. concurrent point queries
        lat = []
        lock = threading.Lock()
        stop = time.perf_counter() + a.seconds
        errors = []

        def client():
            mine = []
            try:
                with psycopg.connect(dsn, autocommit=True) as c:
                    cur = c.cursor()
                    while time.perf_counter() < stop:
                        i = random.randrange(a.rows)
                        t = time.perf_counter()
                        cur.execute("SELECT id, amount, memo FROM bench.tx WHERE id = %s", (i,))
                        r = cur.fetchall()
                        mine.append(time.perf_counter() - t)
                        assert r and r[0][0] == i
            except Exception as e:  # reported below
                errors.append(e)
            with lock:
                lat.extend(mine)

        th = [threading.Thread(target=client) for _ in range(a.clients)]
        t0 = time.perf_counter()
        for t in th:
            t.start()
        for t in th:
            t.join()
        dt = time.perf_counter() - t0
        lat.sort()
        p = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000  # noqa: E731
        print(f"{a.clients} clients, point queries: {len(lat) / dt:,.0f} q/s, p50 {p(0.5):.1f} ms, "
              f"p99 {p(0.99):.1f} ms, errors {len(errors)}")
        if errors:
            print("first error:", errors[0])
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(30)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
