"""Lake engine benchmark (issue: the lake engine). Narrow bank transactions, N rows:
  1. append + commit through loch vs DuckDB's own COPY ... TO parquet of the same rows;
  2. GROUP BY through `loch sql` vs DuckDB read_parquet over the same files;
  3. the same after deleting 1% of the rows by position.
Both sides run in the same `loch` binary (DuckDB embedded), so process start-up is the
same; each timing is the median of several runs."""
import argparse
import pathlib
import os
import statistics
import subprocess
import tempfile
import time

LOCH = os.environ.get("LOCH_BIN", "build/loch")

ROWS_SQL = ("SELECT i AS id, i % 1000 AS account_id, CAST((i % 100000) / 100.0 - 500 AS DECIMAL(18,2)) AS amount, "
            "CASE i % 3 WHEN 0 THEN 'EUR' WHEN 1 THEN 'USD' ELSE 'CHF' END AS currency, "
            "TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_microseconds(i * 1000) AS ts, "
            "'payment ' || (i % 977) AS memo FROM range({n}) t(i)")


def loch(cfg, *args):
    t0 = time.perf_counter()
    p = subprocess.run([LOCH, "-c", cfg, *args], capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"loch {args} failed: {p.stderr}")
    return dt, p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="loch-bench-")
    subprocess.run([LOCH, "init", f"{root}/lake"], check=True, capture_output=True)
    cfg = f"{root}/lake/loch.yaml"
    rows = ROWS_SQL.format(n=a.rows)
    print(f"rows: {a.rows:,}  runs: {a.runs} (median)  machine: {os.cpu_count()} cores")

    # 1. write throughput
    def duck_copy():
        out = f"{root}/copy.parquet"
        if os.path.exists(out):
            os.unlink(out)
        return loch(cfg, "sql", f"COPY ({rows}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")[0]

    n = [0]

    def loch_append():
        n[0] += 1
        return loch(cfg, "sql", f"CREATE TABLE bench.tx{n[0]} AS {rows}")[0]

    copies, appends = [], []
    for _ in range(a.runs):  # alternately, so load that comes and goes hits both alike
        copies.append(duck_copy())
        appends.append(loch_append())
    t_copy, t_loch = statistics.median(copies), statistics.median(appends)
    print(f"write   duckdb COPY to parquet: {t_copy:.2f} s ({a.rows / t_copy:,.0f} rows/s)")
    print(f"write   loch append + commit:   {t_loch:.2f} s ({a.rows / t_loch:,.0f} rows/s)")
    print(f"write   throughput ratio loch/duckdb = {t_copy / t_loch:.2f}  (floor 0.8)")

    # 2. aggregate
    q = "SELECT account_id, sum(amount) FROM {} GROUP BY 1"
    data_dir = f"{root}/lake/warehouse/bench/tx1/data"
    def paired(ours_sql, duck_sql, n):
        """Runs the two queries alternately n times each (so load that comes and goes on
        the machine hits both alike) and returns their medians."""
        ours, duck = [], []
        for _ in range(n):
            ours.append(loch(cfg, "sql", "--format", "csv", ours_sql)[0])
            duck.append(loch(cfg, "sql", "--format", "csv", duck_sql)[0])
        return statistics.median(ours), statistics.median(duck)

    # the data files as they are now: the DELETE below adds a delete file to the same folder
    files = sorted(str(p) for p in pathlib.Path(data_dir).glob("*.parquet"))
    duck_q = q.format("read_parquet([" + ", ".join(f"'{f}'" for f in files) + "])")
    t_ours, t_duck = paired(q.format("bench.tx1"), duck_q, a.runs + 4)
    print(f"query   duckdb read_parquet: {t_duck:.3f} s   loch sql: {t_ours:.3f} s   ratio {t_ours / t_duck:.2f}  (ceiling 1.15)")

    # 3. after deleting 1% by position
    dt, out = loch(cfg, "sql", "DELETE FROM bench.tx1 WHERE id % 100 = 7")
    print(f"delete  1% of rows by position: {dt:.2f} s ({out.strip()})")
    t_ours_d, t_duck_d = paired(q.format("bench.tx1"), duck_q, a.runs + 4)
    print(f"query   after 1% deletes: loch sql {t_ours_d:.3f} s   read_parquet (no deletes) {t_duck_d:.3f} s   "
          f"ratio {t_ours_d / t_duck_d:.2f}  (ceiling 1.5)")
    subprocess.run(["rm", "-rf", root])


if __name__ == "__main__":
    main()
