"""Pruning benchmark (issue 14): a point query on account_id over a table sorted by it,
written as many files (one INSERT ... SELECT ... ORDER BY account_id per file, so each
file holds a narrow account_id range). The same query runs pruned (WHERE on the table)
and unpruned (the same WHERE over a subquery of the table, which reads every file;
DuckDB still skips row groups inside each file by their Parquet statistics), through
`loch serve` over pgwire on one warm connection: the median of --runs runs each.
Files and bytes read come from EXPLAIN's "lake table" line and bytes_scanned.

The speed-up depends on how many files the table has: the unpruned read opens every
file but DuckDB skips their row groups by (cached) footer statistics, so it costs about
0.07 ms per file, while the pruned read costs planning plus one file's scan (4-7 ms).
Measured on 2 shared cores, 50 M rows: 200 files 2.2x, 1000 files 11.8x, 2000 files
(the default, built in under 3 minutes) 34.9x; 1 file read in each."""
import argparse
import os
import re
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

import psycopg

LOCH = os.environ.get("LOCH_BIN", "build/loch")
PW = "bench-Pw-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000_000, help="rows in the table (the issue asks 50 M)")
    ap.add_argument("--files", type=int, default=2000, help="data files (one INSERT each)")
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="loch-prune-bench-")
    env = dict(os.environ, LOCH_ADMIN_PASSWORD=PW)
    subprocess.run([LOCH, "init", f"{root}/lake"], check=True, capture_output=True, env=env)
    cfg = f"{root}/lake/loch.yaml"
    per = a.rows // a.files
    t0 = time.perf_counter()
    script = ["CREATE TABLE bench.accounts (account_id BIGINT, branch INT, balance DECIMAL(18,2), owner VARCHAR)"]
    for f in range(a.files):
        script.append(f"INSERT INTO bench.accounts SELECT i AS account_id, CAST(hash(i) % 500 AS INT) AS branch, "
                      f"CAST((hash(i) % 10000000) / 100.0 - 50000 AS DECIMAL(18,2)) AS balance, "
                      f"'owner ' || (hash(i) % 100000) AS owner "
                      f"FROM range({f * per}, {(f + 1) * per}) t(i) ORDER BY account_id")
    p = subprocess.run([LOCH, "-c", cfg, "sql"], input=";\n".join(script), capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(f"building the table failed: {p.stderr}")
    build = time.perf_counter() - t0

    sql_port, http_port = free_port(), free_port()
    text = open(cfg).read()
    text = text.replace('sql_listen: "127.0.0.1:5433"', f'sql_listen: "127.0.0.1:{sql_port}"')
    text = text.replace('http_listen: "127.0.0.1:8181"', f'http_listen: "127.0.0.1:{http_port}"')
    open(cfg, "w").write(text)
    srv = subprocess.Popen([LOCH, "-c", cfg, "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        dsn = f"host=127.0.0.1 port={sql_port} user=admin password={PW} dbname=loch"
        for _ in range(300):
            try:
                conn = psycopg.connect(dsn, autocommit=True)
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        else:
            raise SystemExit("loch serve did not come up")
        key = a.rows // 2 + 17
        pruned = f"SELECT * FROM bench.accounts WHERE account_id = {key}"
        full = f"SELECT * FROM (SELECT * FROM bench.accounts) AS a WHERE account_id = {key}"

        def timed(sql):
            ts, res = [], None
            for _ in range(a.runs):
                t = time.perf_counter()
                got = conn.execute(sql, prepare=False).fetchall()  # planned each time, as typed
                ts.append(time.perf_counter() - t)
                assert res is None or got == res
                res = got
            return statistics.median(ts), res

        t_full, r_full = timed(full)
        t_pruned, r_pruned = timed(pruned)
        assert r_full == r_pruned and len(r_pruned) == 1, (r_full, r_pruned)
        plan = conn.execute("EXPLAIN " + pruned).fetchall()
        line = next(r[1] for r in plan if r[0] == "lake_pruning")
        m = re.search(r"(\d+) of (\d+) data files \(([^)]*) of ([^)]*)\)", line)
        kept, total = int(m[1]), int(m[2])
        # bytes_scanned from the query history (HTTP API, admin's token not needed: pgwire rows)
        conn.close()
        tok = subprocess.run([LOCH, "-c", cfg, "token", "create", "--user", "admin"], capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()[-1]
        req = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/queries?limit=50",
                                     headers={"Authorization": f"Bearer {tok}"})
        import json
        hist = json.loads(urllib.request.urlopen(req).read())["queries"]
        scanned = {q["sql"]: q["bytes_scanned"] for q in hist}
    finally:
        srv.terminate()
        srv.wait(30)
    print(f"rows: {a.rows:,}  files: {a.files}  runs: {a.runs} (median)  machine: {os.cpu_count()} cores  "
          f"(table built in {build:.1f} s)")
    print(f"point query on account_id: {line}")
    print(f"  files read: {kept} of {total} ({100.0 * kept / total:.1f}%, goal <= 5%)")
    print(f"  bytes_scanned: pruned {scanned.get(pruned, -1):,}  unpruned {scanned.get(full, -1):,}")
    print(f"  time: pruned {t_pruned * 1000:.1f} ms  unpruned {t_full * 1000:.1f} ms  "
          f"speed-up {t_full / t_pruned:.1f}x (goal >= 20x)")


if __name__ == "__main__":
    main()
