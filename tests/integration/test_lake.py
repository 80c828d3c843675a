"""The lake engine end to end: loch writes Iceberg tables; loch and PyIceberg read them
back identically at every snapshot."""
import decimal
import os
import signal
import subprocess
import time

import pytest

from conftest import LOCH, norm, norm_loch

D = decimal.Decimal

CSV = """id,account_id,amount,currency,ts,memo,booked
1,100,12.34,EUR,2024-01-02 10:00:00.123456+00,Café au lait,2024-01-02
2,100,-0.01,EUR,2024-01-02 10:00:01.000001+00,,2024-01-02
3,200,99999999999999.99,USD,2024-01-03 23:59:59.999999+00,Überweisung → 東京,2024-01-03
4,300,,CHF,,null memo?,
"""


def lake_rows(lake, table, kinds, order="id", snapshot=None):
    at = f" AT (VERSION => {snapshot})" if snapshot else ""
    rows = lake.sql(f"SELECT * FROM {table}{at} ORDER BY {order}")
    return [{k: norm_loch(v, kinds.get(k)) for k, v in r.items()} for r in rows]


def iceberg_rows(lake, table, order="id", snapshot=None):
    t = lake.catalog().load_table(table)
    arrow = t.scan(snapshot_id=snapshot).to_arrow() if snapshot else t.scan().to_arrow()
    rows = [{k: norm(v) for k, v in r.items()} for r in arrow.to_pylist()]
    return sorted(rows, key=lambda r: (r[order] is None, r[order]))


KINDS = {"ts": "timestamptz", "booked": "date"}


def test_load_csv_exact_values(lake, tmp_path):
    f = tmp_path / "tx.csv"
    f.write_text(CSV, encoding="utf-8")
    out = lake.run("load", "core.public.tx", f).stdout
    assert "created core.public.tx: 4 rows" in out
    rows = lake.sql("SELECT id, amount, ts, memo, booked FROM core.public.tx ORDER BY id")
    assert rows[0]["amount"] == D("12.34")
    assert rows[2]["amount"] == D("99999999999999.99")  # exact to the last digit
    assert rows[1]["amount"] == D("-0.01")
    assert rows[0]["ts"].startswith("2024-01-02 10:00:00.123456")
    assert rows[1]["ts"].startswith("2024-01-02 10:00:01.000001")
    assert rows[2]["memo"] == "Überweisung → 東京"
    assert rows[0]["memo"] == "Café au lait"
    assert rows[3]["amount"] is None and rows[3]["ts"] is None and rows[3]["booked"] is None
    # PyIceberg, reading through the catalog alone, sees the same rows.
    assert lake_rows(lake, "core.public.tx", KINDS) == iceberg_rows(lake, "core.public.tx")


def test_lifecycle_every_snapshot_reads_the_same(lake, tmp_path):
    f = tmp_path / "tx.csv"
    f.write_text(CSV, encoding="utf-8")
    lake.run("load", "core.public.tx", f)
    # append
    g = tmp_path / "more.csv"
    g.write_text("id,account_id,amount,currency,ts,memo,booked\n"
                 "5,100,1.00,EUR,2024-02-01 00:00:00+00,five,2024-02-01\n"
                 "6,400,2.50,GBP,2024-02-02 00:00:00+00,six,2024-02-02\n", encoding="utf-8")
    assert "appended to core.public.tx: 2 rows" in lake.run("load", "core.public.tx", g).stdout
    # delete by position
    assert "DELETE 2" in lake.run("sql", "DELETE FROM core.public.tx WHERE account_id = 100 AND id <> 5").stdout
    # schema evolution
    lake.run("sql", "ALTER TABLE core.public.tx ADD COLUMN channel VARCHAR")
    lake.run("sql", "ALTER TABLE core.public.tx RENAME COLUMN memo TO note")
    lake.run("sql", "ALTER TABLE core.public.tx ALTER COLUMN account_id TYPE BIGINT")
    lake.run("sql", "ALTER TABLE core.public.tx DROP COLUMN currency")
    # append again, with the new column
    lake.run("sql", "INSERT INTO core.public.tx (id, account_id, amount, ts, note, booked, channel) "
                    "VALUES (7, 9000000000, 7.77, TIMESTAMPTZ '2024-03-01 12:00:00.5+00', 'seven', DATE '2024-03-01', 'web')")
    # update = position delete + new row version
    assert "UPDATE 1" in lake.run("sql", "UPDATE core.public.tx SET note = 'SIX', amount = amount * 2 WHERE id = 6").stdout

    now = lake.sql("SELECT id, account_id, amount, note, channel FROM core.public.tx ORDER BY id")
    assert [r["id"] for r in now] == [3, 4, 5, 6, 7]
    assert now[3] == {"id": 6, "account_id": 400, "amount": D("5.00"), "note": "SIX", "channel": None}
    assert now[4]["account_id"] == 9000000000 and now[4]["channel"] == "web"

    t = lake.catalog().load_table("core.public.tx")
    snaps = [s.snapshot_id for s in t.snapshots()]
    assert len(snaps) >= 5
    for sid in snaps:
        ours = lake_rows(lake, "core.public.tx", KINDS, snapshot=sid)
        theirs = iceberg_rows(lake, "core.public.tx", snapshot=sid)
        assert ours == theirs, f"snapshot {sid} differs"
    # the newest snapshot through PyIceberg has the evolved schema and values
    cur = iceberg_rows(lake, "core.public.tx")
    assert [r["id"] for r in cur] == [3, 4, 5, 6, 7]
    assert cur[0]["note"] == "Überweisung → 東京" and "currency" not in cur[0]


def test_load_json_and_parquet(lake, tmp_path):
    j = tmp_path / "a.json"
    j.write_text('[{"id": 1, "name": "a", "score": 1.5}, {"id": 2, "name": null, "score": -2.25}]')
    lake.run("load", "sales.accounts", j)
    pq = tmp_path / "b.parquet"
    subprocess.run([LOCH, "-c", lake.config, "sql",
                    f"COPY (SELECT 3 AS id, 'c' AS name, 0.5 AS score) TO '{pq}' (FORMAT parquet)"],
                   check=True, capture_output=True)
    lake.run("load", "sales.accounts", pq)
    rows = lake.sql("SELECT id, name, score FROM sales.accounts ORDER BY id")
    assert rows == [{"id": 1, "name": "a", "score": D("1.5")}, {"id": 2, "name": None, "score": D("-2.25")},
                    {"id": 3, "name": "c", "score": D("0.5")}]
    assert iceberg_rows(lake, "sales.accounts") == [{k: norm(v) for k, v in r.items()} for r in rows]


def test_tables_describe_history(lake, tmp_path):
    f = tmp_path / "tx.csv"
    f.write_text(CSV, encoding="utf-8")
    lake.run("load", "core.public.tx", f)
    lake.run("sql", "DELETE FROM core.public.tx WHERE id = 1")
    assert lake.run("tables").stdout.split() == ["core.public.tx"]
    d = lake.run("describe", "core.public.tx").stdout
    assert "amount" in d and "decimal(" in d
    assert "rows       3 (4 written, 1 deleted)" in d
    h = lake.run("history", "core.public.tx").stdout.strip().split("\n")
    assert len(h) == 3 and "append" in h[1] and "delete" in h[2] and "(current)" in h[2]


def test_errors_are_clear_and_nonzero(lake, tmp_path):
    p = lake.run("sql", "SELECT * FROM core.public.nope", check=False)
    assert p.returncode != 0 and "nope" in p.stderr
    p = lake.run("sql", "SELEC 1", check=False)
    assert p.returncode != 0 and "syntax error" in p.stderr.lower()
    p = lake.run("load", "core.public.x", tmp_path / "missing.csv", check=False)
    assert p.returncode != 0 and "does not exist" in p.stderr
    p = lake.run("describe", "nodots", check=False)
    assert p.returncode != 0 and "NAMESPACE.TABLE" in p.stderr
    f = tmp_path / "nested.json"
    f.write_text('[{"id": 1, "tags": [1,2]}]')
    p = lake.run("load", "core.public.nested", f, check=False)
    assert p.returncode != 0 and "tags" in p.stderr and "CAST" in p.stderr
    # narrowing a column is refused, and the table is unchanged
    lake.run("load", "core.public.tx", (lambda q: (q.write_text(CSV, encoding="utf-8"), q)[1])(tmp_path / "t.csv"))
    p = lake.run("sql", "ALTER TABLE core.public.tx ALTER COLUMN account_id TYPE SMALLINT", check=False)
    assert p.returncode != 0
    assert len(lake.sql("SELECT * FROM core.public.tx")) == 4


def test_bad_config_names_file_and_line(tmp_path):
    cfg = tmp_path / "loch.yaml"
    cfg.write_text("warehouse: /tmp/w\nstate: /tmp/s\nflush_interval_ms: fast\n")
    p = subprocess.run([LOCH, "-c", cfg, "tables"], capture_output=True, text=True)
    assert p.returncode != 0
    assert f"{cfg}:3" in p.stderr and "flush_interval_ms" in p.stderr
    p = subprocess.run([LOCH, "-c", tmp_path / "none.yaml", "tables"], capture_output=True, text=True)
    assert p.returncode != 0 and "loch init" in p.stderr


def test_kill_during_commits_leaves_a_committed_snapshot(lake):
    lake.run("sql", "CREATE TABLE core.public.c (batch BIGINT, n BIGINT)")
    script = "".join(f"INSERT INTO core.public.c SELECT {b}, range FROM range(1000);\n" for b in range(1, 2000))
    p = subprocess.Popen([LOCH, "-c", lake.config, "sql"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, text=True)
    p.stdin.write(script)
    p.stdin.close()
    # wait until some batches are committed, then kill at an arbitrary moment
    deadline = time.time() + 60
    while time.time() < deadline:
        h = lake.run("history", "core.public.c", check=False).stdout
        if h.count("append") >= 3:
            break
        time.sleep(0.05)
    time.sleep(0.137)
    p.send_signal(signal.SIGKILL)
    p.wait()
    rows = lake.sql("SELECT count(*) AS n, count(DISTINCT batch) AS b, max(batch) AS m FROM core.public.c")[0]
    assert rows["n"] == rows["b"] * 1000  # whole batches only
    assert rows["b"] == rows["m"]  # a prefix of the batches, none half-written
    assert rows["b"] >= 1
    arrow = lake.catalog().load_table("core.public.c").scan().to_arrow()
    assert arrow.num_rows == rows["n"]
    # and the table keeps working after the crash
    lake.run("sql", "INSERT INTO core.public.c VALUES (1000, 1)")
    assert lake.sql("SELECT count(*) AS n FROM core.public.c")[0]["n"] == rows["n"] + 1


def test_column_added_without_new_snapshot_is_readable_and_updatable(lake):
    lake.run("sql", "CREATE TABLE bank.acc (id BIGINT PRIMARY KEY, balance DECIMAL(18,2))")
    lake.run("sql", "INSERT INTO bank.acc VALUES (1, 10.00), (2, 20.00)")
    lake.run("sql", "ALTER TABLE bank.acc ADD COLUMN status VARCHAR")
    assert lake.sql("SELECT id, status FROM bank.acc ORDER BY id") == [{"id": 1, "status": None},
                                                                       {"id": 2, "status": None}]
    assert "UPDATE 1" in lake.run("sql", "UPDATE bank.acc SET status = 'frozen' WHERE id = 2").stdout
    assert lake.sql("SELECT id, status FROM bank.acc ORDER BY id") == [{"id": 1, "status": None},
                                                                       {"id": 2, "status": "frozen"}]


def test_drop_then_create_again(lake):
    lake.run("sql", "CREATE TABLE core.public.t AS SELECT 1 AS x")
    lake.run("sql", "DROP TABLE core.public.t")
    lake.run("sql", "CREATE TABLE core.public.t AS SELECT 2 AS x")  # the old files stay beside it
    assert lake.sql("SELECT x FROM core.public.t") == [{"x": 2}]
    t = lake.catalog().load_table("core.public.t")
    assert t.scan().to_arrow().to_pylist() == [{"x": 2}]
