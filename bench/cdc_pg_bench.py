"""PostgreSQL CDC benchmark (issue 4), all on this machine in one run:
  1. full load of pgbench_accounts (pgbench -i -s SCALE): loch rows/s vs
     `psql -c "COPY pgbench_accounts TO STDOUT" > /dev/null` (the physical read limit);
  2. streaming: pgbench's TPC-B at its maximum rate with `loch replicate` running: lag from
     source commit (_commit_ts) to lake commit (snapshot time) p50/p99, and loch's RSS;
  3. backlog: loch stopped, pgbench runs SECONDS; then `loch replicate --catch-up` drains it:
     row changes/s, vs the server's own pgoutput decoding of the same backlog
     (count(*) over pg_logical_slot_peek_binary_changes on a second slot).
The PostgreSQL server is a throw-away one (tests/integration/pgsource.py: fsync off)."""
import argparse
import shutil
import signal
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
os.environ.setdefault("LOCH_BIN", str(ROOT / "build" / "loch"))
from conftest import LOCH, Lake  # noqa: E402
from pgsource import PG_BIN, PgServer, Source  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    r = fn()
    return time.perf_counter() - t0, r


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def rss_sampler(pid, out, stop):
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out.append(int(line.split()[1]))
        except OSError:
            return
        time.sleep(0.2)


def pgbench(srv, db, *args):
    return subprocess.run([str(PG_BIN / "pgbench"), "-h", "127.0.0.1", "-p", str(srv.port), "-U", "postgres",
                           *args, db], capture_output=True, text=True, check=True)


def lags(lake, table, since=0.0):
    """Per change committed at the source after `since` (Unix time): lake snapshot time -
    source commit time, in seconds."""
    import pyarrow.parquet as pq
    t = lake.catalog().load_table(table)
    snap_ms = {s.snapshot_id: s.timestamp_ms for s in t.snapshots()}
    out = []
    for e in t.inspect.entries().to_pylist():
        if e["status"] != 1:
            continue
        path = e["data_file"]["file_path"].removeprefix("file://")
        ts = pq.read_table(path, columns=["_commit_ts"]).column(0).to_pylist()
        when = snap_ms[e["snapshot_id"]] / 1000
        out.extend(when - x.timestamp() for x in ts if x.timestamp() >= since)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=60, help="backlog pgbench duration")
    ap.add_argument("--stream-seconds", type=int, default=30)
    ap.add_argument("--clients", type=int, default=4)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="loch-cdcbench-"))
    subprocess.run([LOCH, "init", str(tmp / "lake")], check=True, capture_output=True)
    lake = Lake(tmp / "lake")
    srv = PgServer()
    try:
        src = Source(srv, lake, tables=('"public.pgbench_*"',))
        cfg = lake.config.read_text().replace("flush_interval_ms: 200", "flush_interval_ms: 1000")
        lake.config.write_text(cfg)
        print(f"# loch CDC benchmark: pgbench -s {a.scale}, {os.cpu_count()} cores, PostgreSQL 15 (fsync off)")
        pgbench(srv, src.db, "-i", "-s", str(a.scale), "-q")
        n_acc = src.rows("SELECT count(*) FROM pgbench_accounts")[0][0]

        # 1. full load
        psql = PG_BIN / "psql"
        t_copy, _ = timed(lambda: subprocess.run(
            f'{psql} -h 127.0.0.1 -p {srv.port} -U postgres -d {src.db} -c "COPY pgbench_accounts TO STDOUT" > /dev/null',
            shell=True, check=True))
        t_load, p = timed(lambda: src.catch_up(timeout=3600))
        acc_line = [l for l in p.stderr.splitlines() if "pgbench_accounts" in l and "done" in l]
        copy_rate, load_rate = n_acc / t_copy, n_acc / t_load
        print(f"full load: {n_acc} accounts: COPY to /dev/null {t_copy:.2f} s ({copy_rate:,.0f} rows/s); "
              f"loch full load (all pgbench tables, committed) {t_load:.2f} s ({load_rate:,.0f} rows/s); "
              f"ratio {load_rate / copy_rate:.2f} (goal >= 0.5)")
        if acc_line:
            print(f"  {acc_line[-1].strip()}")

        # 2. streaming under TPC-B at full speed
        # LOCH_LOG=debug in the environment shows each flush; stderr goes to a file (a pipe
        # nobody reads until the end would fill up and stall loch)
        errf = open(tmp / "stream.err", "w+")
        proc = subprocess.Popen([LOCH, "-c", str(lake.config), "replicate", "--source", src.name],
                                stdout=subprocess.DEVNULL, stderr=errf, text=True)
        rss, stop = [], threading.Event()
        th = threading.Thread(target=rss_sampler, args=(proc.pid, rss, stop))
        th.start()
        # steady state: a few transactions through every table first, so loch has declared
        # the tables and built their key indexes (a restart's cost, reported on its own)
        t0 = time.time()
        pgbench(srv, src.db, "-c", "1", "-t", "10", "-n")
        with srv.connect(src.db) as c:
            target = c.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
            while time.time() - t0 < 600:
                done = c.execute("SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
                                 "WHERE slot_name = %s", (target, src.slot)).fetchone()
                if done and done[0]:
                    break
                time.sleep(0.1)
        print(f"  loch ready (tables declared, key indexes of {n_acc:,} accounts built) {time.time() - t0:.1f} s "
              f"after start")
        t_stream = time.time()
        r = pgbench(srv, src.db, "-c", str(a.clients), "-j", "2", "-T", str(a.stream_seconds), "-n")
        tps = [l for l in r.stdout.splitlines() if l.startswith("tps")]
        time.sleep(4)
        stop.set()
        th.join()
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        errf.seek(0)
        err = errf.read()
        errf.close()
        fl = [int(l.rsplit(" in ", 1)[1].split()[0]) for l in err.splitlines() if "flushed" in l and " ms" in l]
        if os.environ.get("BENCH_SLOW"):  # with LOCH_LOG=debug: what the slow flushes did
            Path(os.environ["BENCH_SLOW"]).write_text(err)
            for l in err.splitlines():
                if ("applier: " in l and int(l.split("applier: ")[1].split()[0]) >= 200) or (
                        "flushed" in l and int(l.rsplit(" in ", 1)[1].split()[0]) >= 800):
                    print("  slow:", l[:200])
        if fl:
            print(f"  flushes (LOCH_LOG=debug): {len(fl)}, duration p50 {statistics.median(fl)} ms, max {max(fl)} ms")
        ls = lags(lake, f"{src.name}.public.pgbench_history_changes", since=t_stream)
        print(f"streaming: TPC-B {a.clients} clients {a.stream_seconds} s: {tps[0] if tps else '?'}; "
              f"{len(ls)} transactions; lag p50 {statistics.median(ls):.3f} s, p99 {pct(ls, 99):.3f} s "
              f"(goal p99 <= 2 s at flush_interval_ms 1000); loch RSS max {max(rss) / 1024:.0f} MB")

        # 3. backlog drain vs the server's own decoding of the same backlog
        with srv.connect(src.db) as c:
            c.execute("SELECT pg_create_logical_replication_slot('bench_peek', 'pgoutput')")
        pgbench(srv, src.db, "-c", str(a.clients), "-j", "2", "-T", str(a.seconds), "-n")
        pubs = f"loch_{src.name}_{src.n},loch_{src.name}_{src.n}_ins"
        with srv.connect(src.db) as c:
            t_peek, n_changes = timed(lambda: c.execute(
                "SELECT count(*) FILTER (WHERE get_byte(data, 0) IN (73, 85, 68)) FROM "
                "pg_logical_slot_peek_binary_changes('bench_peek', NULL, NULL, 'proto_version', '1', "
                "'publication_names', %s)", (pubs,)).fetchone()[0])
            c.execute("SELECT pg_drop_replication_slot('bench_peek')")
        t_drain, dr = timed(lambda: src.catch_up(timeout=3600))
        for l in dr.stderr.splitlines():
            if "flushed" in l or ("applier:" in l and int(l.split("applier: ")[1].split()[0]) >= 100):
                print("  drain:", l.split(" ", 2)[2][:150])
        peek_rate, drain_rate = n_changes / t_peek, n_changes / t_drain
        print(f"backlog: {n_changes} row changes from {a.seconds} s of TPC-B: server pgoutput decoding "
              f"{t_peek:.2f} s ({peek_rate:,.0f} changes/s); loch --catch-up {t_drain:.2f} s "
              f"({drain_rate:,.0f} changes/s, includes start-up, the key index read back and saved again); ratio "
              f"{drain_rate / peek_rate:.2f} (goal >= 0.25)")
        v = lake.run("validate", "--source", src.name, check=False, timeout=3600)
        print("validate after the benchmark:", "identical" if v.returncode == 0 else v.stdout[-2000:])
        src.cleanup()
    finally:
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)  # the lake of a scale-100 run: gigabytes


if __name__ == "__main__":
    main()
