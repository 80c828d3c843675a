"""MySQL/MariaDB CDC benchmark (issue 5), against a throw-away MariaDB with sysbench tables:
  1. full load: `loch replicate --catch-up` on a fresh lake, rows/s, vs
     `mariadb -e "SELECT * FROM ..." > /dev/null` over the same tables (goal ratio >= 0.5);
  2. streaming: sysbench oltp_write_only at its maximum rate while `loch replicate` runs;
     lag = time from a marker transaction's commit to its GTID being durable in the lake's
     checkpoint (p50/p99, goal p99 <= 2 s), and loch's peak RSS;
  3. backlog: loch stopped, oltp_write_only runs for --backlog-s; then `loch replicate
     --catch-up` drains it: row changes/s, vs `mariadb-binlog --read-from-remote-server
     --raw` over the same binlog files (goal ratio >= 0.5).
Runnable alone: .venv/bin/python bench/cdc_mysql_bench.py [--tables 8 --rows 1000000]."""
import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from mysource import REPL_PASSWORD, MariaDB  # noqa: E402

LOCH = os.environ.get("LOCH_BIN", "build/loch")
SRC = "sb"


def sysbench(m, test, *args):
    cmd = ["sysbench", test, "--db-driver=mysql", f"--mysql-socket={m.socket}", "--mysql-user=root",
           "--mysql-db=sbtest", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def loch(cfg, *args, timeout=3600):
    t0 = time.perf_counter()
    p = subprocess.run([LOCH, "-c", cfg, *args], capture_output=True, text=True, timeout=timeout)
    dt = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"loch {args} failed: {p.stderr}")
    return dt, p.stdout


def checkpoint(root):
    db = sqlite3.connect(f"{root}/lake/state/catalog.db", timeout=10)
    try:
        row = db.execute("SELECT value FROM loch_kv WHERE key = ?", (f"cdc.{SRC}.checkpoint",)).fetchone()
    except sqlite3.OperationalError:
        row = None
    db.close()
    return row[0] if row else ""


def gtid_seq(cp, domain="0"):
    for g in cp.split("gtid=")[-1].split(","):
        parts = g.split("-")
        if len(parts) == 3 and parts[0] == domain:
            return int(parts[2])
    return -1


def changes_count(cfg, tables):
    q = " + ".join(f"(SELECT count(*) FROM {SRC}.sbtest.sbtest{i}_changes)" for i in range(1, tables + 1))
    _, out = loch(cfg, "sql", "--format", "csv", f"SELECT {q} AS n")
    return int(out.strip().splitlines()[-1])


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", type=int, default=8)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--stream-s", type=int, default=60)
    ap.add_argument("--backlog-s", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--flush-ms", type=int, default=1000, help="loch.yaml flush_interval_ms")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="loch-mybench-")
    m = MariaDB(Path(root) / "mariadb")
    m.install()
    m.start()
    try:
        run(a, root, m)
    finally:
        m.stop()
        shutil.rmtree(root, ignore_errors=True)  # gigabytes: MariaDB's data and binlogs, the lake


def run(a, root, m):
    m.create_repl_user()
    m.root_sql("CREATE DATABASE sbtest; CREATE DATABASE bench; "
               "CREATE TABLE bench.marker (id INT PRIMARY KEY, t DOUBLE)")
    print(f"MariaDB {m.root_sql('SELECT VERSION()').strip()}; sysbench oltp_read_write prepare: "
          f"{a.tables} tables x {a.rows:,} rows; {os.cpu_count()} cores; flush_interval_ms {a.flush_ms}")
    sysbench(m, "oltp_read_write", f"--tables={a.tables}", f"--table-size={a.rows}", "prepare")
    subprocess.run([LOCH, "init", f"{root}/lake"], check=True, capture_output=True)
    cfg = f"{root}/lake/loch.yaml"
    text = Path(cfg).read_text().replace("flush_interval_ms: 1000", f"flush_interval_ms: {a.flush_ms}")
    Path(cfg).write_text(text)
    with open(cfg, "a") as f:
        f.write(f"sources:\n  - name: {SRC}\n    type: mysql\n    url: {m.url}\n"
                f"    password_env: LOCH_BENCH_MYSQL_PW\n    tables: [\"sbtest.*\", \"bench.*\"]\n")
    os.environ["LOCH_BENCH_MYSQL_PW"] = REPL_PASSWORD
    total = a.tables * a.rows

    # 1. full load
    t_select = 0.0
    for i in range(1, a.tables + 1):
        t0 = time.perf_counter()
        subprocess.run(["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{m.port}", "-urepl",
                        f"-p{REPL_PASSWORD}", "-e", f"SELECT * FROM sbtest.sbtest{i}"],
                       check=True, stdout=subprocess.DEVNULL)
        t_select += time.perf_counter() - t0
    t_load, _ = loch(cfg, "replicate", "--source", SRC, "--catch-up")
    print(f"full load: loch {total / t_load:,.0f} rows/s ({t_load:.2f} s); "
          f"mariadb SELECT > /dev/null {total / t_select:,.0f} rows/s ({t_select:.2f} s); "
          f"ratio {t_select / t_load:.2f} (goal >= 0.5)")

    # 2. streaming lag under oltp_write_only at full rate
    p = subprocess.Popen([LOCH, "-c", cfg, "replicate", "--source", SRC],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # steady state: one change through every table first, so loch has declared them and
    # built their key indexes (a restart's cost, reported on its own)
    t_ready = time.perf_counter()
    sysbench(m, "oltp_write_only", f"--tables={a.tables}", f"--table-size={a.rows}", "--threads=1",
             "--events=" + str(4 * a.tables), "--time=0", "--rate=0", "run")
    warm = m.connect("bench")
    wc = warm.cursor()
    wc.execute("INSERT INTO marker VALUES (0, 0)")
    wc.execute("SELECT @@last_gtid")
    wdom, _, wseq = wc.fetchone()[0].split("-")
    while gtid_seq(checkpoint(root), wdom) < int(wseq) and time.perf_counter() - t_ready < 600:
        time.sleep(0.05)
    warm.close()
    print(f"  loch ready (tables declared, key indexes of {a.tables} x {a.rows:,} rows built) "
          f"{time.perf_counter() - t_ready:.1f} s after start")
    stop = threading.Event()
    load = threading.Thread(target=lambda: sysbench(
        m, "oltp_write_only", f"--tables={a.tables}", f"--table-size={a.rows}", f"--threads={a.threads}",
        f"--time={a.stream_s}", "--rate=0", "--report-interval=0", "run"))
    load.start()
    lags, rss = [], 0
    conn = m.connect("bench")
    cur = conn.cursor()
    i = 0
    t_end = time.time() + a.stream_s - 1
    while time.time() < t_end:
        i += 1
        cur.execute("INSERT INTO marker VALUES (%s, %s)", (i, time.time()))
        t0 = time.perf_counter()
        cur.execute("SELECT @@last_gtid")
        g = cur.fetchone()[0]
        dom, _, seq = g.split("-")
        seq = int(seq)
        while gtid_seq(checkpoint(root), dom) < seq and time.perf_counter() - t0 < 60:
            rss = max(rss, rss_kb(p.pid))
            time.sleep(0.02)
        lags.append(time.perf_counter() - t0)
        rss = max(rss, rss_kb(p.pid))
        time.sleep(0.2)
    load.join()
    conn.close()
    p.send_signal(signal.SIGTERM)
    p.wait(120)
    lags.sort()
    p50 = statistics.median(lags)
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    print(f"streaming (oltp_write_only, {a.threads} threads, max rate, {a.stream_s} s): lag p50 {p50:.2f} s, "
          f"p99 {p99:.2f} s over {len(lags)} markers (goal p99 <= 2 s); loch peak RSS {rss / 1024:.0f} MiB")

    # 3. backlog drain
    before = changes_count(cfg, a.tables)
    cp = checkpoint(root)
    first_file = cp.split(":")[0]
    sysbench(m, "oltp_write_only", f"--tables={a.tables}", f"--table-size={a.rows}", f"--threads={a.threads}",
             f"--time={a.backlog_s}", "--rate=0", "run")
    last_file = m.root_sql("SHOW MASTER STATUS").split()[0]
    os.environ["LOCH_LOG"] = os.environ.get("BENCH_LOG", "info")
    t0 = time.perf_counter()
    pd = subprocess.Popen([LOCH, "-c", cfg, "replicate", "--source", SRC, "--catch-up"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    t_start = None
    for line in pd.stderr:  # "streaming from": the lake is open, the stream begins
        if "streaming from" in line and t_start is None:
            t_start = time.perf_counter() - t0
        if os.environ.get("BENCH_LOG") and "applier:" not in line:
            print(f"  drain {time.perf_counter() - t0:6.2f} s: {line.rstrip()[:160]}")
    if pd.wait():
        raise SystemExit("loch replicate --catch-up failed")
    t_drain = time.perf_counter() - t0
    n = changes_count(cfg, a.tables) - before
    files = [first_file]
    k = int(first_file.split(".")[-1])
    while files[-1] != last_file:
        k += 1
        files.append(f"{first_file.rsplit('.', 1)[0]}.{k:06d}")
    out = Path(root) / "raw"
    out.mkdir()
    t0 = time.perf_counter()
    subprocess.run(["mariadb-binlog", "--no-defaults", "--read-from-remote-server", "--raw", "-h127.0.0.1",
                    f"-P{m.port}", "-urepl", f"-p{REPL_PASSWORD}", f"--result-file={out}/", *files],
                   check=True, capture_output=True)
    t_raw = time.perf_counter() - t0
    print(f"backlog ({a.backlog_s} s of oltp_write_only, {n:,} row changes): loch --catch-up {n / t_drain:,.0f} "
          f"row changes/s ({t_drain:.2f} s); mariadb-binlog --raw {n / t_raw:,.0f} row events/s ({t_raw:.2f} s); "
          f"ratio {t_raw / t_drain:.2f} (goal >= 0.5); of which start-up until the stream begins "
          f"{t_start or 0:.2f} s")


if __name__ == "__main__":
    main()
