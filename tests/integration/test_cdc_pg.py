"""PostgreSQL change data capture against a real PostgreSQL 15: full load from the slot's
snapshot, streamed inserts/updates/deletes/truncates, exactly once across tables and
crashes, TOAST, types, tables without keys, schema changes, idle slots, clear errors.
Every check compares the lake (read by loch sql and by PyIceberg) with the source."""
import decimal
import signal
import sys
import subprocess
import time

import pytest

from conftest import norm, norm_loch  # noqa: F401
from pgsource import PgServer, Source, pg, source, wait_for  # noqa: F401


def lake_rows(lake, table, cols, order):
    return [tuple(r[c] for c in cols) for r in lake.sql(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")]


def iceberg_rows(lake, ns, name, cols, key):
    t = lake.catalog().load_table((*ns.split("."), name) if False else f"{ns}.{name}")
    rows = t.scan().to_arrow().to_pylist()
    return sorted((tuple(r[c] for c in cols) for r in rows), key=lambda r: tuple(r[i] for i in key))


def assert_deletes_sorted(lake, ns, name):
    """Every position delete file of the table is sorted by (file_path, pos), as the
    Iceberg spec requires of writers (readers may merge them without sorting)."""
    import pyarrow.parquet as pq
    seen = set()
    for task in lake.catalog().load_table(f"{ns}.{name}").scan().plan_files():
        for d in task.delete_files:
            if d.file_path in seen:
                continue
            seen.add(d.file_path)
            rows = pq.read_table(d.file_path.removeprefix("file://")).to_pylist()
            keys = [(r["file_path"], r["pos"]) for r in rows]
            assert keys == sorted(keys), d.file_path
    return len(seen)


def test_full_load_then_stream(source, lake):
    source.execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12,2))",
        "INSERT INTO accounts SELECT g, 'owner ' || g, g * 10.5 FROM generate_series(1, 1000) g",
    )
    source.catch_up()
    assert lake.sql("SELECT count(*) AS n, sum(balance) AS s FROM core.public.accounts") == [
        {"n": 1000, "s": decimal.Decimal("5255250.00")}]
    source.execute(
        "INSERT INTO accounts VALUES (1001, 'new', 1.25)",
        "UPDATE accounts SET balance = balance + 1 WHERE id <= 10",
        "UPDATE accounts SET id = 2000 WHERE id = 500",           # primary-key change
        "DELETE FROM accounts WHERE id BETWEEN 900 AND 949",
    )
    source.catch_up()
    src = source.rows("SELECT id, owner, balance FROM accounts ORDER BY id")
    got = lake_rows(lake, "core.public.accounts", ["id", "owner", "balance"], "id")
    assert got == [tuple(r) for r in src]
    ice = iceberg_rows(lake, "core.public", "accounts", ["id", "owner", "balance"], [0])
    assert ice == [tuple(r) for r in src]
    ch = lake.sql("SELECT _op, count(*) AS n FROM core.public.accounts_changes GROUP BY _op ORDER BY _op")
    assert ch == [{"_op": "D", "n": 50}, {"_op": "I", "n": 1}, {"_op": "U", "n": 11}]
    lsn = lake.sql("SELECT min(_lsn) AS a, count(DISTINCT _txid) AS t FROM core.public.accounts_changes")[0]
    assert lsn["a"] > 0 and lsn["t"] == 4


def test_truncate_and_reinsert(source, lake):
    source.execute("CREATE TABLE t (id bigint PRIMARY KEY, v text)",
                   "INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g")
    source.catch_up()
    source.execute("TRUNCATE t", "INSERT INTO t VALUES (1, 'after')")
    source.catch_up()
    assert lake.sql("SELECT id, v FROM core.public.t") == [{"id": 1, "v": "after"}]
    ops = [r["_op"] for r in lake.sql("SELECT _op FROM core.public.t_changes ORDER BY _lsn, _op DESC")]
    assert ops == ["T", "I"]


def test_transaction_across_tables_is_whole(source, lake):
    source.execute(
        "CREATE TABLE checking (id int PRIMARY KEY, balance numeric(12,2) NOT NULL)",
        "CREATE TABLE savings (id int PRIMARY KEY, balance numeric(12,2) NOT NULL)",
        "INSERT INTO checking SELECT g, 1000 FROM generate_series(1, 50) g",
        "INSERT INTO savings SELECT g, 1000 FROM generate_series(1, 50) g",
    )
    source.catch_up()
    p = source.start()

    def transfers():
        with source.conn() as c:
            for i in range(200):
                a = i % 50 + 1
                with c.transaction():
                    c.execute("UPDATE checking SET balance = balance - 7 WHERE id = %s", (a,))
                    c.execute("UPDATE savings SET balance = balance + 7 WHERE id = %s", (a,))
                time.sleep(0.01)
    import threading
    w = threading.Thread(target=transfers)
    w.start()
    try:
        # A reader takes both tables' pointers in one catalog read (as a query engine
        # pinning a snapshot of the catalog does) at every moment: transfers are whole.
        import sqlite3
        from pyiceberg.table import StaticTable
        db = lake.root / "state" / "catalog.db"
        seen, deadline = set(), time.time() + 90
        while time.time() < deadline:
            with sqlite3.connect(db) as c:
                locs = dict(c.execute("SELECT table_name, metadata_location FROM iceberg_tables WHERE "
                                      "table_namespace = 'core.public' AND table_name IN ('checking', 'savings')"))
            if len(locs) < 2:
                continue
            tot = sum(sum(r["balance"] for r in StaticTable.from_metadata(locs[t]).scan().to_arrow().to_pylist())
                      for t in ("checking", "savings"))
            assert tot == decimal.Decimal("100000.00"), locs
            seen.add(tuple(sorted(locs.values())))
            if lake.sql("SELECT count(*) AS n FROM core.public.checking_changes")[0]["n"] == 200:
                break
        assert lake.sql("SELECT count(*) AS n FROM core.public.checking_changes")[0]["n"] == 200
        assert len(seen) >= 3   # the reader saw the tables move
    finally:
        w.join()
        rc, err = source.stop(p)
    assert rc == 0, err
    src = source.rows("SELECT id, balance FROM checking ORDER BY id")
    assert lake_rows(lake, "core.public.checking", ["id", "balance"], "id") == [tuple(r) for r in src]


def test_kill9_during_streaming_then_restart(source, lake):
    source.execute("CREATE TABLE ledger (id bigserial PRIMARY KEY, acct int NOT NULL, amount numeric(14,2))",
                   "CREATE TABLE totals (acct int PRIMARY KEY, total numeric(14,2) NOT NULL)",
                   "INSERT INTO totals SELECT g, 0 FROM generate_series(1, 20) g")
    source.catch_up()
    writer = subprocess.Popen(
        [sys.executable, "-c", f"""
import psycopg, random
with psycopg.connect({source.server.url(source.db)!r}, autocommit=True) as c:
    for i in range(3000):
        a = random.randint(1, 20); amt = random.randint(-500, 500)
        with c.transaction():
            c.execute("INSERT INTO ledger (acct, amount) VALUES (%s, %s)", (a, amt))
            c.execute("UPDATE totals SET total = total + %s WHERE acct = %s", (amt, a))
            if i % 7 == 0:
                c.execute("DELETE FROM ledger WHERE id = (SELECT min(id) FROM ledger)")
"""])
    try:
        for _ in range(4):
            p = source.start()
            time.sleep(1.5)
            p.send_signal(signal.SIGKILL)
            p.wait()
    finally:
        assert writer.wait(timeout=300) == 0
    assert source.rows("SELECT count(*) FROM ledger")[0][0] > 2000
    source.catch_up()
    for table, cols, key in (("ledger", ["id", "acct", "amount"], "id"), ("totals", ["acct", "total"], "acct")):
        src = source.rows(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {key}")
        assert lake_rows(lake, f"core.public.{table}", cols, key) == [tuple(r) for r in src], table
    assert assert_deletes_sorted(lake, "core.public", "ledger") > 1
    # the change log holds each change once
    n_ins = lake.sql("SELECT count(*) AS n, count(DISTINCT id) AS d FROM core.public.ledger_changes WHERE _op = 'I'")
    assert n_ins == [{"n": 3000, "d": 3000}]


def test_toast_unchanged_keeps_old_value(source, lake):
    big = "x" * 100000 + "end"
    source.execute("CREATE TABLE docs (id int PRIMARY KEY, body text, n int)",
                   "ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL")
    with source.conn() as c:
        c.execute("INSERT INTO docs VALUES (1, %s, 0), (2, %s, 0)", (big, big + "2"))
    source.catch_up()
    source.execute("UPDATE docs SET n = 1 WHERE id = 1")          # body not sent: unchanged TOAST
    source.execute("BEGIN; INSERT INTO docs VALUES (3, repeat('y', 50000), 0); "
                   "UPDATE docs SET n = 5 WHERE id = 3; UPDATE docs SET n = 6 WHERE id = 2; COMMIT")
    source.catch_up()
    got = lake.sql("SELECT id, length(body) AS l, right(body, 3) AS e, n FROM core.public.docs ORDER BY id")
    assert got == [{"id": 1, "l": 100003, "e": "end", "n": 1}, {"id": 2, "l": 100004, "e": "nd2", "n": 6},
                   {"id": 3, "l": 50000, "e": "yyy", "n": 5}]
    ch = lake.sql("SELECT id, length(body) AS l FROM core.public.docs_changes WHERE _op = 'U' ORDER BY id")
    assert ch == [{"id": 1, "l": 100003}, {"id": 2, "l": 100004}, {"id": 3, "l": 50000}]


def test_no_primary_key_tables(source, lake, capfd):
    source.execute("CREATE TABLE events (ts timestamptz, what text)",
                   "CREATE TABLE audit (who text, what text)",
                   "ALTER TABLE audit REPLICA IDENTITY FULL",
                   "INSERT INTO events VALUES ('2024-01-01 10:00+00', 'a')",
                   "INSERT INTO audit VALUES ('u1', 'x'), ('u2', 'y')")
    p = source.catch_up()
    assert "events has no primary key" in p.stderr and "REPLICA IDENTITY FULL" in p.stderr
    # the application's own UPDATE and DELETE keep working on the key-less table
    source.execute("INSERT INTO events VALUES ('2024-01-02 10:00+00', 'b')",
                   "UPDATE events SET what = 'c' WHERE what = 'a'", "DELETE FROM events WHERE what = 'b'",
                   "UPDATE audit SET what = 'z' WHERE who = 'u1'", "DELETE FROM audit WHERE who = 'u2'",
                   "INSERT INTO audit VALUES ('u3', 'w')")
    source.catch_up()
    assert lake.sql("SELECT what FROM core.public.events ORDER BY what") == [{"what": "a"}, {"what": "b"}]
    assert lake.sql("SELECT who, what FROM core.public.audit ORDER BY who") == [
        {"who": "u1", "what": "z"}, {"who": "u3", "what": "w"}]


def test_wal_level_replica_is_a_clear_error(lake):
    srv = PgServer(wal_level="replica")
    try:
        s = Source(srv, lake)
        p = s.catch_up(check=False)
        assert p.returncode != 0
        assert "wal_level is 'replica'" in p.stderr and "wal_level = logical" in p.stderr
    finally:
        srv.close()


def test_missing_privileges_are_named(pg, lake):
    s = Source(pg, lake, user="plain")
    pg.connect().execute("DROP ROLE IF EXISTS plain")
    pg.connect().execute("CREATE ROLE plain LOGIN")
    p = s.catch_up(check=False)
    assert p.returncode != 0 and "lacks the REPLICATION privilege" in p.stderr
    with pg.connect() as c:
        c.execute("ALTER ROLE plain REPLICATION")
    s.execute("CREATE TABLE secret (id int PRIMARY KEY)")
    p = s.catch_up(check=False)
    assert p.returncode != 0 and "no SELECT privilege on table public.secret" in p.stderr
    s.cleanup()


def test_unsupported_type_is_named(source, lake):
    source.execute("CREATE TABLE shapes (id int PRIMARY KEY, p point)")
    p = source.catch_up(check=False)
    assert p.returncode != 0
    assert 'column "p" of table public.shapes has type point' in p.stderr


def test_slot_in_use(source, lake):
    source.execute("CREATE TABLE t (id int PRIMARY KEY)")
    p = source.start()
    try:
        wait_for(lambda: (source.slot_info() or (None, False))[1])
        q = source.catch_up(check=False)
        assert q.returncode != 0 and "in use" in q.stderr
    finally:
        rc, _ = source.stop(p)
    assert rc == 0


def test_add_column_while_replicating(source, lake):
    source.execute("CREATE TABLE c (id int PRIMARY KEY, a text)", "INSERT INTO c VALUES (1, 'one')")
    source.catch_up()
    source.execute("ALTER TABLE c ADD COLUMN b int DEFAULT 7", "INSERT INTO c VALUES (2, 'two', 8)",
                   "ALTER TABLE c RENAME COLUMN a TO name", "UPDATE c SET name = 'uno' WHERE id = 1",
                   "ALTER TABLE c ALTER COLUMN b TYPE bigint", "INSERT INTO c VALUES (3, 'three', 9000000000)",
                   "ALTER TABLE c DROP COLUMN name", "INSERT INTO c VALUES (4, 4)")
    source.catch_up()
    assert lake.sql("SELECT id, b FROM core.public.c ORDER BY id") == [
        {"id": 1, "b": 7}, {"id": 2, "b": 8}, {"id": 3, "b": 9000000000}, {"id": 4, "b": 4}]
    cols = [f.name for f in lake.catalog().load_table("core.public.c").schema().fields]
    assert cols == ["id", "b"]


def test_idle_slot_advances(source, lake):
    source.execute("CREATE TABLE quiet (id int PRIMARY KEY)", "CREATE TABLE other (id int)")
    source2 = source  # other is outside the publication when excluded below
    p = source.start()
    try:
        wait_for(lambda: lake.run("tables", check=False).stdout.count("quiet") > 0)
        time.sleep(1)
        before = source.slot_info()[0]
        with source2.server.connect() as c:   # WAL written elsewhere (another database)
            c.execute("CREATE TABLE IF NOT EXISTS busy (x int)")
            for _ in range(20):
                c.execute("INSERT INTO busy SELECT generate_series(1, 1000)")
        with source.server.connect() as c:
            end = c.execute("SELECT pg_current_wal_lsn()").fetchone()[0]

        def advanced():
            lsn = source.slot_info()[0]
            return lsn if lsn >= end else None
        wait_for(advanced, timeout=40)
        assert source.slot_info()[0] > before
    finally:
        rc, _ = source.stop(p)
    assert rc == 0


TYPES = [
    ("c_smallint", "smallint", ["-32768", "32767"]),
    ("c_int", "integer", ["-2147483648", "0"]),
    ("c_bigint", "bigint", ["9223372036854775807", "-9223372036854775808"]),
    ("c_num", "numeric(38,10)", ["1234567890123456789012345678.0123456789", "-0.0000000001"]),
    ("c_num_free", "numeric", ["3.14159265358979323846264338327950288419716939937510", "1e-40"]),
    ("c_real", "real", ["'NaN'", "'-Infinity'"]),
    ("c_double", "double precision", ["'Infinity'", "0.1"]),
    ("c_money", "money", ["-1234567.89", "0.01"]),
    ("c_bool", "boolean", ["true", "false"]),
    ("c_text", "text", ["'héllo ''quoted'' \\ back'", "''"]),
    ("c_varchar", "varchar(5)", ["'abc'", "'a,b\"c'"]),
    ("c_char", "char(3)", ["'a'", "'xyz'"]),
    ("c_bytea", "bytea", ["'\\x00ff10'::bytea", "''::bytea"]),
    ("c_date", "date", ["'2024-02-29'", "'1900-01-01'"]),
    ("c_time", "time", ["'23:59:59.999999'", "'00:00:00'"]),
    ("c_ts", "timestamp", ["'2024-01-02 03:04:05.123456'", "'1999-12-31 23:59:59'"]),
    ("c_tstz", "timestamptz", ["'2024-01-02 03:04:05.654321+05:30'", "'2000-01-01 00:00:00+00'"]),
    ("c_interval", "interval", ["'1 year 2 months 3 days 04:05:06.5'", "'-1 day'"]),
    ("c_uuid", "uuid", ["'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'00000000-0000-0000-0000-000000000000'"]),
    ("c_json", "json", ["'{\"a\": [1, 2]}'", "'null'"]),
    ("c_jsonb", "jsonb", ["'{\"b\": {\"c\": true}}'", "'[]'"]),
    ("c_arr", "integer[]", ["'{1,2,NULL}'", "'{}'"]),
    ("c_enum", "mood", ["'happy'", "'sad'"]),
    ("c_domain", "positive_amount", ["12.50", "0.01"]),
]

EXPECT = {
    "c_smallint": ("int", ["-32768", "32767"]),
    "c_int": ("int", ["-2147483648", "0"]),
    "c_bigint": ("long", ["9223372036854775807", "-9223372036854775808"]),
    "c_num": ("decimal(38, 10)", ["1234567890123456789012345678.0123456789", "-0.0000000001"]),
    "c_num_free": ("string", ["3.14159265358979323846264338327950288419716939937510",
                              "0.0000000000000000000000000000000000000001"]),
    "c_real": ("float", ["nan", "-inf"]),
    "c_double": ("double", ["inf", "0.1"]),
    "c_money": ("decimal(19, 2)", ["-1234567.89", "0.01"]),
    "c_bool": ("boolean", ["true", "false"]),
    "c_text": ("string", ["héllo 'quoted' \\ back", ""]),
    "c_varchar": ("string", ["abc", 'a,b"c']),
    "c_char": ("string", ["a  ", "xyz"]),
    "c_bytea": ("binary", ["00ff10", ""]),
    "c_date": ("date", ["2024-02-29", "1900-01-01"]),
    "c_time": ("time", ["23:59:59.999999", "00:00:00"]),
    "c_ts": ("timestamp", ["2024-01-02 03:04:05.123456", "1999-12-31 23:59:59"]),
    "c_tstz": ("timestamptz", ["2024-01-01 21:34:05.654321+00", "2000-01-01 00:00:00+00"]),
    "c_interval": ("string", ["P1Y2M3DT4H5M6.5S", "P-1D"]),
    "c_uuid": ("uuid", ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00000000-0000-0000-0000-000000000000"]),
    "c_json": ("string", ['{"a": [1, 2]}', "null"]),
    "c_jsonb": ("string", ['{"b": {"c": true}}', "[]"]),
    "c_arr": ("string", ["{1,2,NULL}", "{}"]),
    "c_enum": ("string", ["happy", "sad"]),
    "c_domain": ("decimal(10, 2)", ["12.50", "0.01"]),
}


def test_types_exact(source, lake):
    source.execute("CREATE TYPE mood AS ENUM ('sad', 'happy')",
                   "CREATE DOMAIN positive_amount AS numeric(10,2) CHECK (VALUE > 0)")
    cols = ", ".join(f"{n} {t}" for n, t, _ in TYPES)
    source.execute(f"CREATE TABLE ty (id int PRIMARY KEY, {cols})")
    names = ", ".join(n for n, _, _ in TYPES)
    # row 1 by the full load, row 2 by the stream, row 3 all NULL by the stream
    source.execute(f"INSERT INTO ty (id, {names}) VALUES (1, {', '.join(v[0] for _, _, v in TYPES)})")
    source.catch_up()
    source.execute(f"INSERT INTO ty (id, {names}) VALUES (2, {', '.join(v[1] for _, _, v in TYPES)})",
                   "INSERT INTO ty (id) VALUES (3)")
    source.catch_up()
    schema = {f.name: str(f.field_type) for f in lake.catalog().load_table("core.public.ty").schema().fields}
    sel = ", ".join(f"CAST({n} AS VARCHAR) AS {n}" if EXPECT[n][0] != "binary" else f"hex({n}) AS {n}"
                    for n, _, _ in TYPES)
    rows = lake.sql(f"SELECT id, {sel} FROM core.public.ty ORDER BY id")
    for n, _, _ in TYPES:
        want_type, want = EXPECT[n]
        assert schema[n] == want_type, n
        got = [rows[0][n], rows[1][n]]
        if want_type == "binary":
            got = [g.lower() for g in got]
        assert got == want, n
        assert rows[2][n] is None, n


def test_status_and_validate(source, lake):
    source.execute("CREATE TABLE acc (id int PRIMARY KEY, owner text, bal numeric(10,2), t timestamptz, b bytea)",
                   "INSERT INTO acc SELECT g, 'o' || g, g, now(), '\\x01'::bytea FROM generate_series(1, 500) g",
                   "CREATE TABLE empty_one (id int PRIMARY KEY)",
                   "CREATE TABLE nokey (a int, b text)", "INSERT INTO nokey VALUES (1, 'x'), (1, 'x')")
    source.catch_up()
    source.execute("UPDATE acc SET bal = bal + 1 WHERE id < 10")
    source.catch_up()
    st = lake.run("status").stdout
    assert "core.public.acc" in st and " 500 " in st and "core.public.acc_changes" not in st
    v = lake.run("validate", "--source", "core", check=False)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "core.public.acc: 500 rows at the source, identical in the lake" in v.stdout
    assert "core.public.nokey: 2 rows at the source, identical" in v.stdout
    # damage the lake behind replication's back: validate names the keys
    lake.run("sql", "UPDATE core.public.acc SET owner = 'evil' WHERE id = 3")
    lake.run("sql", "DELETE FROM core.public.acc WHERE id = 7")
    v = lake.run("validate", "--source", "core", "--table", "public.acc", check=False)
    assert v.returncode == 1
    assert "row (id=3) differs" in v.stdout and "row (id=7) only in the source" in v.stdout
    assert "2 differing rows" in v.stdout
    v = lake.run("validate", "--source", "core", "--table", "public.nope", check=False)
    assert v.returncode == 1 and "no replicated table public.nope" in v.stderr


def test_source_restart_reconnects(source, lake):
    source.execute("CREATE TABLE r (id int PRIMARY KEY, v int)", "INSERT INTO r VALUES (1, 1)")
    p = source.start()
    try:
        wait_for(lambda: lake.run("tables", check=False).stdout.count("core.public.r\n") > 0)
        source.server.restart()                     # drops loch's connections
        source.execute("INSERT INTO r SELECT g, g FROM generate_series(2, 100) g")
        wait_for(lambda: lake.sql("SELECT count(*) AS n FROM core.public.r")[0]["n"] == 100, timeout=60)
        source.execute("UPDATE r SET v = -v")
        wait_for(lambda: lake.sql("SELECT sum(v) AS s FROM core.public.r")[0]["s"] == -5050, timeout=60)
    finally:
        rc, err = source.stop(p)
    assert rc == 0, err
    assert "reconnecting" in err


def test_new_and_dropped_tables_while_replicating(source, lake):
    source.execute("CREATE TABLE first (id int PRIMARY KEY)", "INSERT INTO first VALUES (1)")
    p = source.start()
    try:
        wait_for(lambda: lake.run("tables", check=False).stdout.count("core.public.first\n") > 0)
        source.execute("CREATE TABLE second (id int PRIMARY KEY, v text)",
                       "INSERT INTO second SELECT g, 'v' || g FROM generate_series(1, 300) g")
        with source.conn() as c:                    # changes while it is being discovered and copied
            for i in range(1, 50):
                c.execute("UPDATE second SET v = 'w' || id WHERE id = %s", (i,))
                c.execute("DELETE FROM second WHERE id = %s", (300 - i,))
                time.sleep(0.05)
        source.execute("DROP TABLE first")
        source.execute("INSERT INTO second VALUES (1000, 'late')")
        want = [tuple(r) for r in source.rows("SELECT id, v FROM second ORDER BY id")]
        def same():
            try:
                return lake_rows(lake, "core.public.second", ["id", "v"], "id") == want
            except AssertionError:
                return False
        wait_for(same, timeout=60)
    finally:
        rc, err = source.stop(p)
    assert rc == 0, err
    assert "new table public.second" in err and "public.first is gone" in err
    # the dropped table's lake tables stay, as history
    assert lake.sql("SELECT id FROM core.public.first") == [{"id": 1}]
    # a table created while loch is stopped is loaded by the next run
    source.execute("CREATE TABLE third (id int PRIMARY KEY)", "INSERT INTO third VALUES (3)")
    source.catch_up()
    assert lake.sql("SELECT id FROM core.public.third") == [{"id": 3}]


def test_full_load_under_writes_is_consistent(source, lake):
    """Writes running while the parallel full load reads: each change is in the snapshot
    or in the stream, never both, never neither."""
    source.execute("CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL, pad text)",
                   "INSERT INTO big SELECT g, 0, repeat('p', 100) FROM generate_series(1, 200000) g",
                   "CREATE TABLE small (id int PRIMARY KEY, v int NOT NULL)",
                   "INSERT INTO small SELECT g, 0 FROM generate_series(1, 100) g")
    writer = subprocess.Popen([sys.executable, "-c", f"""
import psycopg, random
with psycopg.connect({source.server.url(source.db)!r}, autocommit=True) as c:
    for i in range(1500):
        with c.transaction():
            k = random.randint(1, 200000)
            c.execute("UPDATE big SET v = v + 1 WHERE id = %s", (k,))
            c.execute("UPDATE small SET v = v + 1 WHERE id = %s", (k % 100 + 1,))
            c.execute("INSERT INTO big VALUES (%s, 1, 'new')", (200000 + i + 1,))
"""])
    try:
        time.sleep(0.3)
        p = source.catch_up()
    finally:
        assert writer.wait(timeout=300) == 0
    assert "rows/s (done)" in p.stderr
    source.catch_up()
    for t in ("big", "small"):
        src = source.rows(f"SELECT id, v FROM {t} ORDER BY id")
        assert lake_rows(lake, f"core.public.{t}", ["id", "v"], "id") == [tuple(r) for r in src], t
    tot = lake.sql("SELECT sum(v) AS s FROM core.public.big")[0]["s"]
    assert tot == source.rows("SELECT sum(v) FROM big")[0][0]


def test_million_row_transaction(source, lake):
    source.execute("CREATE TABLE m (id bigint PRIMARY KEY, v int)")
    source.catch_up()
    source.execute("INSERT INTO m SELECT g, 1 FROM generate_series(1, 1000000) g")
    source.catch_up(timeout=600)
    assert lake.sql("SELECT count(*) AS n, sum(v) AS s FROM core.public.m") == [{"n": 1000000, "s": 1000000}]
    source.execute("BEGIN; UPDATE m SET v = 2 WHERE id % 2 = 0; DELETE FROM m WHERE id % 10 = 1; COMMIT")
    source.catch_up(timeout=600)
    assert lake.sql("SELECT count(*) AS n, sum(v) AS s FROM core.public.m") == [
        {"n": 900000, "s": source.rows("SELECT sum(v) FROM m")[0][0]}]
    assert lake.sql("SELECT count(*) AS n FROM core.public.m_changes") == [{"n": 1000000 + 500000 + 100000}]


def test_many_small_transactions(source, lake):
    source.execute("CREATE TABLE s (id int PRIMARY KEY, v int)")
    source.catch_up()
    with source.conn() as c:
        for i in range(2000):
            c.execute("INSERT INTO s VALUES (%s, %s)", (i, i))
            if i % 3 == 0:
                c.execute("UPDATE s SET v = -v WHERE id = %s", (i,))
    source.catch_up()
    assert lake_rows(lake, "core.public.s", ["id", "v"], "id") == [
        tuple(r) for r in source.rows("SELECT id, v FROM s ORDER BY id")]
    assert lake.sql("SELECT count(DISTINCT _txid) AS n FROM core.public.s_changes") == [{"n": 2000 + 667}]


def test_interrupted_full_load_resumes_by_key(source, lake):
    import sqlite3
    source.execute("CREATE TABLE huge (id int PRIMARY KEY, v int NOT NULL, pad text)",
                   "INSERT INTO huge SELECT g, 0, repeat('x', 200) FROM generate_series(1, 1200000) g",
                   "CREATE TABLE nk (a int, b text)", "INSERT INTO nk SELECT g, 'b' FROM generate_series(1, 1000) g")
    p = source.start()
    db = lake.root / "state" / "catalog.db"

    def progress():
        with sqlite3.connect(db) as c:
            r = c.execute("SELECT value FROM loch_kv WHERE key = 'cdc.core.load.public.huge'").fetchone()
        return r and r[0] != '"done"' and r[0]
    try:
        first = wait_for(progress, timeout=120, interval=0.05)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    # changes after the snapshot, to rows already loaded and rows not loaded yet
    source.execute("UPDATE huge SET v = 1 WHERE id % 100000 = 7", "DELETE FROM huge WHERE id % 250000 = 3",
                   "INSERT INTO huge VALUES (2000000, 5, 'late')", "INSERT INTO nk VALUES (-1, 'late')")
    r = source.catch_up(timeout=600)
    assert "continuing the full load after key" in r.stderr, r.stderr
    assert f"after key {first}" in r.stderr
    got = lake.sql("SELECT count(*) AS n, count(DISTINCT id) AS d, sum(v) AS s FROM core.public.huge")[0]
    want = source.rows("SELECT count(*), count(DISTINCT id), sum(v) FROM huge")[0]
    assert (got["n"], got["d"], got["s"]) == tuple(want)
    assert lake.sql("SELECT count(*) AS n FROM core.public.nk") == [{"n": 1001}]
    v = lake.run("validate", "--source", "core", check=False)
    assert v.returncode == 0, v.stdout


def test_full_load_ranges_on_awkward_composite_keys(source, lake):
    """Key ranges of a big table continue after the last row of the previous range; keys
    with commas, quotes, newlines, bytea and money must come back exactly (600k rows: more
    than two ranges)."""
    source.execute(
        "CREATE TABLE ck (t text, b bytea, m money, n int, v int NOT NULL, PRIMARY KEY (t, b, m, n))",
        "INSERT INTO ck SELECT (ARRAY['a,b', 'q\"u\"o', E'l1\\nl2', '', ' sp '])[1 + g % 5], "
        "decode(lpad(to_hex(g % 7), 2, '0'), 'hex'), (g % 3)::numeric::money, g, g % 10 "
        "FROM generate_series(1, 600000) g")
    source.catch_up(timeout=600)
    got = lake.sql("SELECT count(*) AS n, count(DISTINCT n) AS d, sum(v) AS s FROM core.public.ck")[0]
    want = source.rows("SELECT count(*), count(DISTINCT n), sum(v) FROM ck")[0]
    assert (got["n"], got["d"], got["s"]) == tuple(want)
    v = lake.run("validate", "--source", "core", check=False, timeout=600)
    assert v.returncode == 0, v.stdout


def test_awkward_text_in_full_load_and_stream(source, lake):
    vals = ["line1\nline2", "cr\r\nlf", 'quote " and , comma', "", "tab\tand \\backslash", "ünïcødé ✓",
            "\\N", "NULL", " leading and trailing "]
    source.execute("CREATE TABLE w (id int PRIMARY KEY, t text, b bytea)")
    with source.conn() as c:
        for i, v in enumerate(vals):
            c.execute("INSERT INTO w VALUES (%s, %s, %s)", (i, v, v.encode()))
        c.execute("INSERT INTO w VALUES (100, NULL, NULL)")
    source.catch_up()
    with source.conn() as c:
        for i, v in enumerate(vals):
            c.execute("INSERT INTO w VALUES (%s, %s, %s)", (1000 + i, v, v.encode()))
    source.catch_up()
    got = {r["id"]: (r["t"], r["b"]) for r in lake.sql("SELECT id, t, hex(b) AS b FROM core.public.w")}
    for i, v in enumerate(vals):
        for k in (i, 1000 + i):
            assert got[k] == (v, v.encode().hex().upper()), (k, v)
    assert got[100] == (None, None)


def test_loch_serve_replicates_in_the_background(source, lake):
    import re
    from pgsource import free_port
    cfg = lake.config.read_text()
    cfg = re.sub(r'sql_listen: "[^"]*"', f'sql_listen: "127.0.0.1:{free_port()}"', cfg)
    cfg = re.sub(r'http_listen: "[^"]*"', f'http_listen: "127.0.0.1:{free_port()}"', cfg)
    lake.config.write_text(cfg)
    source.execute("CREATE TABLE sv (id int PRIMARY KEY, v text)", "INSERT INTO sv VALUES (1, 'a')")
    from conftest import LOCH
    p = subprocess.Popen([LOCH, "-c", str(lake.config), "serve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    source.procs.append(p)
    try:
        def rows():
            try:
                return lake.sql("SELECT id, v FROM core.public.sv ORDER BY id")
            except AssertionError:
                return None
        try:
            wait_for(lambda: rows() == [{"id": 1, "v": "a"}], timeout=60)
        except AssertionError:
            p.send_signal(signal.SIGTERM)
            raise AssertionError(p.communicate(timeout=60)[1])
        source.execute("INSERT INTO sv VALUES (2, 'b')", "UPDATE sv SET v = 'z' WHERE id = 1")
        wait_for(lambda: rows() == [{"id": 1, "v": "z"}, {"id": 2, "v": "b"}], timeout=60)
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "replicating source core" in err


def test_primary_key_column_renamed(source, lake):
    source.execute("CREATE TABLE pk (id int PRIMARY KEY, v text)", "INSERT INTO pk VALUES (1, 'a'), (2, 'b')")
    source.catch_up()
    source.execute("ALTER TABLE pk RENAME COLUMN id TO pid", "UPDATE pk SET v = 'x' WHERE pid = 1")
    source.catch_up()
    source.execute("DELETE FROM pk WHERE pid = 2", "INSERT INTO pk VALUES (3, 'c')")
    source.catch_up()   # a new run rebuilds the key index from files written under both names
    assert lake.sql("SELECT pid, v FROM core.public.pk ORDER BY pid") == [{"pid": 1, "v": "x"}, {"pid": 3, "v": "c"}]


def test_key_index_saved_at_stop_is_used_only_while_it_holds(source, lake, monkeypatch):
    """A clean stop saves each table's key index; the next start uses it instead of reading
    every key from the lake, but only while the lake table is the one it was saved for:
    a stale copy (the table moved on) or a damaged one is ignored, and the lake stays equal
    to the source through all of it."""
    monkeypatch.setenv("LOCH_LOG", "debug")
    source.execute("CREATE TABLE acct (id int PRIMARY KEY, owner text, balance numeric(12,2))",
                   "CREATE TABLE log (at timestamptz, what text)",  # insert-only: keeps no index
                   "INSERT INTO acct SELECT g, 'o' || g, g FROM generate_series(1, 5000) g")
    source.catch_up()
    kxdir = lake.root / "state" / "keyidx"
    step = [0]

    def change_and_check(expect_in_log=None, expect_not_in_log=None):
        step[0] += 1
        k = step[0]
        source.execute(f"UPDATE acct SET balance = balance + {k} WHERE id % 7 = {k % 7}",
                       f"DELETE FROM acct WHERE id % 97 = {k}",
                       f"INSERT INTO acct SELECT g, 'n' || g, {k} FROM generate_series({5000 + 100 * k}, "
                       f"{5000 + 100 * k + 49}) g",
                       f"UPDATE acct SET id = id + 100000 WHERE id = {k * 11}",  # a key change
                       # rows changed against their order in the lake files
                       "DO $$ BEGIN FOR i IN REVERSE 4000..3000 BY 13 LOOP "
                       "UPDATE acct SET owner = owner || '.' WHERE id = i; END LOOP; END $$",
                       f"INSERT INTO log VALUES (now(), 'step {k}')")
        err = source.catch_up().stderr
        src = source.rows("SELECT id, owner, balance FROM acct ORDER BY id")
        assert lake_rows(lake, "core.public.acct", ["id", "owner", "balance"], "id") == [tuple(r) for r in src]
        assert lake.sql("SELECT count(*) AS n FROM core.public.log") == [{"n": k}]
        if expect_in_log:
            assert expect_in_log in err, err[-3000:]
        if expect_not_in_log:
            assert expect_not_in_log not in err, err[-3000:]
        return err

    change_and_check(expect_not_in_log="saved at the last stop")  # built from the lake, saved at exit
    saved = sorted(kxdir.glob("*.kx"))
    assert len(saved) == 1  # acct only: the insert-only table keeps none
    # the index saved at that stop is used by the next start (and saved again at its stop)
    change_and_check(expect_in_log="key index of core.public.acct: 4998 keys, saved at the last stop")
    old = saved[0].read_bytes()
    change_and_check(expect_in_log="saved at the last stop")
    # a copy from an earlier state of the table is ignored (and removed)
    saved[0].write_bytes(old)
    change_and_check(expect_not_in_log="saved at the last stop")
    # a damaged one too, with a warning
    data = bytearray(saved[0].read_bytes())
    data[len(data) // 2] ^= 0x40
    saved[0].write_bytes(bytes(data))
    change_and_check(expect_in_log="rebuilding the key index of core.public.acct")
    # a crash leaves no index behind that a restart could take for current
    change_and_check()
    p = source.start()
    source.execute("UPDATE acct SET balance = -1 WHERE id < 100")
    wait_for(lambda: lake.sql("SELECT count(*) AS n FROM core.public.acct WHERE balance = -1")[0]["n"] > 0)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not list(kxdir.glob("*.kx"))
    change_and_check(expect_not_in_log="saved at the last stop")
    assert assert_deletes_sorted(lake, "core.public", "acct") > 1


def test_table_name_that_would_leave_the_lake_is_refused(source, lake):
    """A source table whose name would become a path out of the lake is refused, naming
    it, before any file, folder or lock is made of it (issue 12, finding 6)."""
    import os
    source.execute('CREATE TABLE "../../../evil" (id int PRIMARY KEY); INSERT INTO "../../../evil" VALUES (1)')
    top = lake.root.parent
    before = {os.path.join(d, n) for d, ds, fs in os.walk(top) for n in ds + fs}
    p = source.catch_up(check=False)
    assert p.returncode != 0
    assert "cannot replicate table public.../../../evil" in p.stderr, p.stderr
    assert "names may not contain \"/\"" in p.stderr and "exclude" in p.stderr, p.stderr
    after = {os.path.join(d, n) for d, ds, fs in os.walk(top) for n in ds + fs}
    assert not [x for x in after - before if "evil" in x], sorted(after - before)
