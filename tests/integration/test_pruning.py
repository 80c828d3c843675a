"""Pruning at planning: a SELECT whose WHERE excludes data files by their column bounds
and null counts reads only the others, and returns exactly what the full scan returns.
The full scan is the same query over a subquery of the table (which no WHERE reaches,
so nothing is pruned); EXPLAIN's "lake table" line and bytes_scanned show the files."""
import re

import psycopg
import pytest

from access_fixtures import ADMIN_PASSWORD, Server, admin_lake, token_for  # noqa: F401  (admin_lake: a fixture)
from conftest import Lake

FILES = 8


def make_table(lake: Lake):
    lake.run("sql", "CREATE TABLE core.t (id INT, s VARCHAR, d DECIMAL(10,2), f DOUBLE, ts TIMESTAMPTZ, n INT)")
    for k in range(FILES):  # one INSERT, one data file, ids [100k, 100k+99]
        nan = "WHEN id % 10 = 0 THEN 'NaN'::DOUBLE" if k == 2 else ""
        lake.run("sql", f"""INSERT INTO core.t
            SELECT id,
                   CASE WHEN id % 7 = 0 THEN '{chr(97 + k)}_long_shared_prefix_value_zzz'
                        ELSE '{chr(97 + k)}_long_shared_prefix_value_' || id END,
                   CAST((id - 400) / 100.0 AS DECIMAL(10,2)),
                   CASE {nan} WHEN id % 10 = 1 THEN -0.0 ELSE id * 1.5 - 300 END,
                   TIMESTAMPTZ '2024-01-01 00:00:00+00' + id * INTERVAL 1 HOUR,
                   CASE WHEN {k} = 3 THEN NULL WHEN {k} = 4 AND id % 2 = 0 THEN NULL ELSE id END
            FROM (SELECT range + {100 * k} AS id FROM range(100))""")
    # schema evolution: a column the old files lack, an int widened to long
    lake.run("sql", "ALTER TABLE core.t ADD COLUMN extra INT")
    lake.run("sql", "ALTER TABLE core.t ALTER COLUMN id TYPE BIGINT")
    lake.run("sql", "INSERT INTO core.t SELECT 3000000000 + range, 'zz', -99.99, NULL, "
                    "TIMESTAMPTZ '2030-06-01 12:00:00+02', NULL, range FROM range(10)")
    lake.run("sql", "INSERT INTO core.t SELECT 5000 + range, NULL, NULL, 1e300, NULL, 1, NULL FROM range(10)")
    # a position delete in the file of ids 100..199
    lake.run("sql", "DELETE FROM core.t WHERE id = 150")
    return FILES + 2


def rows(lake, sql):
    return lake.sql(sql)


def explain(lake, sql):
    out = lake.run("sql", "EXPLAIN " + sql).stdout
    m = re.search(r"lake table core\.t: (\d+) of (\d+) data files \(([^)]*)\), (\d+) of (\d+) delete files", out)
    assert m, out
    return int(m[1]), int(m[2]), int(m[4]), int(m[5])


# (WHERE, the most data files the pruned scan may read; None: no claim)
CASES = [
    ("id = 150", 1), ("id = 151", 1), ("id < 120", 2), ("id <= 99", 1), ("id > 750", 3), ("id >= 800", 2),
    ("id BETWEEN 250 AND 260", 1), ("id IN (5, 705, 99999)", 2), ("id = 3000000005", 1),
    ("id = 5.5", None), ("id > 5.5", None), ("id = '150'", 1), ("150 = id", 1), ("300 > id", 3),
    ("id < 50 OR id > 750", 4), ("id < 50 OR s = 'x'", None), ("NOT (id = 5)", None),
    ("n IS NULL", None), ("n IS NOT NULL", 9), ("n = 450", 1), ("n IS NULL AND id < 300", 2),
    ("s = 'a_long_shared_prefix_value_5'", 1), ("s = 'a_long_shared_prefix_value_zzz'", 1),
    ("s >= 'a_long_shared_prefix_value_99'", None), ("s > 'h'", 2), ("s < 'b'", 1),
    ("s = 'c_long_shared_prefix_value_zzzzzz'", 1), ("s LIKE 'a%'", None), ("s IS NULL", 1),
    ("d < -3.5", 2), ("d = -1.23", 1), ("d BETWEEN -0.5 AND 0.5", 2), ("d = -99.99", 1), ("d > 3", 1),
    ("f > 600", None), ("f < -250", 2), ("f = 'NaN'", None), ("f >= 0", None), ("f = 0", None),
    ("f <= -0.0", None), ("f = 1e300", 2), ("f < -1e308", None),
    ("ts < TIMESTAMPTZ '2024-01-02 00:00:00+00'", 1), ("ts > '2024-02-01'", None),
    ("ts = TIMESTAMP '2024-01-01 05:00:00'", 1), ("ts >= DATE '2030-06-01'", 1),
    ("ts = TIMESTAMPTZ '2030-06-01 10:00:00+00'", 1),
    ("extra IS NULL", None), ("extra = 7", 9), ("extra > 100", 8), ("extra IS NOT NULL", None),
    ("id = 150 AND n IS NULL", 1), ("id IN (1, NULL)", None), ("id = NULL", None),
]


@pytest.mark.parametrize("bulk", [True])
def test_pruned_equals_full(lake, bulk):
    total = make_table(lake)
    for where, most in CASES:
        pruned = rows(lake, f"SELECT * FROM core.t WHERE {where} ORDER BY id, s")
        full = rows(lake, f"SELECT * FROM (SELECT * FROM core.t) AS t WHERE {where} ORDER BY id, s")
        assert pruned == full, where
        kept, before, _, _ = explain(lake, f"SELECT * FROM core.t WHERE {where}")
        assert before == total, where
        if most is not None:
            assert kept <= most, (where, kept)
        # aliases and qualified columns
        q = where.replace("id", "x.id") if where.startswith("id") else where
        assert rows(lake, f"SELECT * FROM core.t AS x WHERE {q} ORDER BY id, s") == full, q
    # the delete file goes with the file it applies to
    assert explain(lake, "SELECT * FROM core.t WHERE id < 50") == (1, total, 0, 1)
    assert explain(lake, "SELECT * FROM core.t WHERE id = 151") == (1, total, 1, 1)
    assert explain(lake, "SELECT * FROM core.t") == (total, total, 1, 1)
    # a later statement reads the whole table again
    assert rows(lake, "SELECT count(*) AS c FROM core.t") == [{"c": 819}]


def test_joins_subqueries_and_time_travel(lake):
    make_table(lake)
    full = "(SELECT * FROM core.t)"
    for sql in [
        "SELECT count(*) AS c FROM core.t a JOIN core.t b ON a.id = b.id WHERE a.id < 100",
        "SELECT count(*) AS c FROM core.t a LEFT JOIN core.t b ON a.id = b.id + 1000 WHERE b.id IS NULL",
        "SELECT count(*) AS c FROM core.t WHERE id IN (SELECT id FROM core.t WHERE id > 700)",
        "SELECT count(*) AS c FROM core.t o WHERE EXISTS (SELECT 1 FROM core.t i WHERE i.id = o.id + 1 AND i.id < 200)",
        "SELECT (SELECT count(*) FROM core.t WHERE id < 10) AS a, (SELECT count(*) FROM core.t WHERE id > 10) AS b",
        "WITH x AS (SELECT * FROM core.t WHERE id < 300) SELECT count(*) AS c FROM x WHERE id > 100",
        "SELECT count(*) AS c FROM core.t WHERE id < 100 UNION ALL SELECT count(*) FROM core.t WHERE id > 100",
        # column aliases rename the table's columns: n is the table's id here, id its n
        "SELECT count(*) AS c FROM core.t AS x(n, s, d, f, ts, id) WHERE id IS NULL AND n < 500",
        "SELECT count(*) AS c FROM core.t AS x(n, s, d, f, ts, id) WHERE id = 5",
        "SELECT id + 1000 AS n FROM core.t WHERE n IS NULL AND id < 10",
    ]:
        assert rows(lake, sql) == rows(lake, sql.replace("core.t", full)), sql
    hist = lake.catalog().load_table("core.t").snapshots()
    first_data = hist[0].snapshot_id  # after the first INSERT (CREATE makes none)
    for snap in (first_data, hist[-3].snapshot_id):
        for where in ("id < 150", "id = 5", "n IS NULL", "s > 'b'"):
            at = rows(lake, f"SELECT * FROM core.t AT (VERSION => {snap}) WHERE {where} ORDER BY id")
            ref = rows(lake, f"SELECT * FROM (SELECT * FROM core.t AT (VERSION => {snap})) WHERE {where} ORDER BY id")
            assert at == ref, (snap, where)
    out = lake.run("sql", f"EXPLAIN SELECT * FROM core.t AT (VERSION => {first_data}) WHERE id > 50").stdout
    assert f"lake table core.t at snapshot {first_data}: 1 of 1 data files" in out


def test_bytes_scanned_and_sessions(admin_lake):
    lake = admin_lake
    total = make_table(lake)
    server = Server(lake)
    try:
        admin = token_for(lake, "admin")
        assert server.sql("SELECT * FROM core.t", admin).status == 200
        assert server.sql("SELECT * FROM core.t WHERE id = 42", admin).status == 200
        q = server.request("GET", "/v1/queries?limit=2", token=admin).json()["queries"]
        got = {x["sql"]: x["bytes_scanned"] for x in q}
        full, point = got["SELECT * FROM core.t"], got["SELECT * FROM core.t WHERE id = 42"]
        assert 0 < point < full / 5, got
        # two sessions: a pruned view of one is never the other's table
        dsn = f"host=127.0.0.1 port={server.sql_port} user=admin password={ADMIN_PASSWORD} dbname=loch"
        with psycopg.connect(dsn, autocommit=True) as a, psycopg.connect(dsn, autocommit=True) as b:
            assert a.execute("SELECT count(*) FROM core.t WHERE id < 100").fetchone()[0] == 100
            assert b.execute("SELECT count(*) FROM core.t").fetchone()[0] == 819
            assert a.execute("SELECT count(*) FROM core.t").fetchone()[0] == 819
            st = "SELECT count(*) FROM core.t WHERE id > 700"
            assert a.execute(st, prepare=True).fetchone()[0] == 119
            assert b.execute("SELECT count(*) FROM core.t WHERE id < 10").fetchone()[0] == 10
            assert a.execute(st, prepare=True).fetchone()[0] == 119
            plan = a.execute("EXPLAIN SELECT * FROM core.t WHERE id = 42").fetchall()
            assert any(r[0] == "lake_pruning" and f"1 of {total} data files" in r[1] for r in plan), plan
    finally:
        server.stop()


def test_pruned_equals_pyiceberg_full_scan(lake):
    """An independent reader: PyIceberg's scan of every file (position deletes applied),
    filtered here in Python, against loch's pruned reads."""
    import datetime as dt
    from decimal import Decimal as D
    make_table(lake)
    rows_all = lake.catalog().load_table("core.t").scan().to_arrow().to_pylist()
    utc = dt.timezone.utc
    checks = [
        ("id < 120", lambda r: r["id"] < 120),
        ("id IN (5, 705, 3000000009)", lambda r: r["id"] in (5, 705, 3000000009)),
        ("s = 'a_long_shared_prefix_value_zzz'", lambda r: r["s"] == "a_long_shared_prefix_value_zzz"),
        ("s > 'g_long_shared_prefix_value_750'", lambda r: r["s"] is not None and r["s"] > "g_long_shared_prefix_value_750"),
        ("d BETWEEN -0.5 AND 0.5", lambda r: r["d"] is not None and D("-0.5") <= r["d"] <= D("0.5")),
        ("d < -3.5", lambda r: r["d"] is not None and r["d"] < D("-3.5")),
        ("ts < TIMESTAMPTZ '2024-01-02 00:00:00+00'",
         lambda r: r["ts"] is not None and r["ts"] < dt.datetime(2024, 1, 2, tzinfo=utc)),
        ("ts >= TIMESTAMPTZ '2030-06-01 10:00:00+00'",
         lambda r: r["ts"] is not None and r["ts"] >= dt.datetime(2030, 6, 1, 10, tzinfo=utc)),
        ("n IS NULL AND id < 500", lambda r: r["n"] is None and r["id"] < 500),
        ("extra > 5", lambda r: r["extra"] is not None and r["extra"] > 5),
    ]
    for where, keep in checks:
        got = [r["id"] for r in lake.sql(f"SELECT id FROM core.t WHERE {where} ORDER BY id")]
        want = sorted(r["id"] for r in rows_all if keep(r))
        assert got == want, where
        kept, total, _, _ = explain(lake, f"SELECT id FROM core.t WHERE {where}")
        assert kept < total, where
