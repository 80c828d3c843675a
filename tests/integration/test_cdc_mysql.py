"""MariaDB -> lake through the binlog: full load, streaming, types, DDL, crash/restart and
refusals, against a throw-away MariaDB (mysource.py), read back by loch and PyIceberg."""
import decimal
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import LOCH, norm
from mysource import REPL_PASSWORD, MariaDB, mariadb_available

# make test needs MariaDB (scripts/setup installs it): missing, the suite fails, never skips.
if not mariadb_available():
    pytest.fail("mariadbd / mariadb-install-db not found: run scripts/setup (make test does)", pytrace=False)

D = decimal.Decimal


@pytest.fixture(scope="module")
def mdb(tmp_path_factory):
    root = tmp_path_factory.mktemp("mariadb")
    # a self-signed certificate, so TLS logins can be tested
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem")],
                   check=True, capture_output=True)
    m = MariaDB(root / "srv", extra_args=[f"--ssl-cert={root / 'cert.pem'}", f"--ssl-key={root / 'key.pem'}"])
    m.install()
    m.start()
    m.create_repl_user()
    yield m
    m.stop()


def configure(lake, mdb, name, tables, extra=""):
    text = lake.config.read_text()
    text += (f"sources:\n  - name: {name}\n    type: mysql\n    url: {mdb.url}\n"
             f"    password_env: LOCH_TEST_MYSQL_PW\n    tables: {tables}\n{extra}")
    lake.config.write_text(text)
    os.environ["LOCH_TEST_MYSQL_PW"] = REPL_PASSWORD


def catch_up(lake, source, check=True):
    return lake.run("replicate", "--source", source, "--catch-up", check=check, timeout=120)


def source_rows(mdb, db, table, cols, order="id"):
    conn = mdb.connect(db)
    with conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(cols)} FROM `{table}` ORDER BY {order}")
        rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    conn.close()
    return rows


def lake_table_rows(lake, table, cols, order="id"):
    t = lake.catalog().load_table(table)
    rows = t.scan().to_arrow().to_pylist()
    rows = [{c: r[c] for c in cols} for r in rows]
    return sorted(rows, key=lambda r: r[order])


def fresh_db(mdb, name, ddl):
    mdb.root_sql(f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}")
    mdb.root_sql(ddl, db=name)


def test_full_load_then_streaming_dml(lake, mdb):
    fresh_db(mdb, "bank", """
        CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(40) NOT NULL, balance DECIMAL(18,2));
        INSERT INTO accounts VALUES (1, 'alice', 100.00), (2, 'bob', -5.50), (3, 'carol', NULL),
                                    (6, 'quote " comma , newline \n end', 0), (7, '', 0);
    """)
    configure(lake, mdb, "core_my", '["bank.*"]')
    catch_up(lake, "core_my")
    rows = lake.sql("SELECT id, owner, balance FROM core_my.bank.accounts ORDER BY id")
    assert rows == [{"id": 1, "owner": "alice", "balance": D("100.00")},
                    {"id": 2, "owner": "bob", "balance": D("-5.50")},
                    {"id": 3, "owner": "carol", "balance": None},
                    {"id": 6, "owner": 'quote " comma , newline \n end', "balance": D("0.00")},
                    {"id": 7, "owner": "", "balance": D("0.00")}]
    # streaming: inserts, updates, deletes, a multi-statement transaction
    mdb.root_sql("""
        INSERT INTO accounts VALUES (4, 'dave', 1.01);
        UPDATE accounts SET balance = balance + 1 WHERE id = 1;
        DELETE FROM accounts WHERE id = 2;
        START TRANSACTION;
        INSERT INTO accounts VALUES (5, 'erin', 5.00);
        UPDATE accounts SET owner = 'carol2' WHERE id = 3;
        UPDATE accounts SET id = 30 WHERE id = 3;
        COMMIT;
    """, db="bank")
    catch_up(lake, "core_my")
    cols = ["id", "owner", "balance"]
    want = source_rows(mdb, "bank", "accounts", cols)
    got = lake.sql("SELECT id, owner, balance FROM core_my.bank.accounts ORDER BY id")
    assert got == want
    assert lake_table_rows(lake, "core_my.bank.accounts", cols) == want
    ch = lake.sql("SELECT _op, count(*) AS n FROM core_my.bank.accounts_changes GROUP BY _op ORDER BY _op")
    assert {r["_op"]: r["n"] for r in ch} == {"D": 1, "I": 2, "U": 3}


TYPES_DDL = """
CREATE TABLE t (
  id INT PRIMARY KEY,
  ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED, mi MEDIUMINT,
  mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
  d DECIMAL(38,10), d2 DECIMAL(5,0), d3 DECIMAL(12,4), f FLOAT, dbl DOUBLE, bt BIT(12), b64 BIT(64), bo BOOL,
  c CHAR(10), vc VARCHAR(300), tx TEXT, bn BINARY(4), vb VARBINARY(20), bl BLOB,
  dt DATE, tm TIME(6), dtm DATETIME(6), ts TIMESTAMP(6) NULL, yr YEAR,
  en ENUM('low','mid','high'), st SET('a','b','c'), js JSON
) DEFAULT CHARSET=utf8mb4
"""

TYPE_ROWS = [
    "(1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, "
    "-9223372036854775808, 18446744073709551615, '1234567890123456789012345678.0123456789', 99999, "
    "-12345678.9876, 3.14159, 2.718281828459045, b'101010101010', b'1111111111111111111111111111111111111111111111111111111111111111', TRUE, "
    "'abc', 'Überweisung → 東京 😀', 'long text', x'00ff1000', x'deadbeef', x'000102', "
    "'2024-02-29', '23:59:59.999999', '1999-12-31 23:59:59.000001', '2024-01-02 10:00:00.123456', 2024, "
    "'high', 'a,c', '{\"k\": [1, 2.5, \"x\"], \"n\": null}')",
    "(2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '-0.0000000001', -1, 0, -1.5, -1e300, b'0', b'0', FALSE, "
    "'', '', '', x'', x'', x'', '1000-01-01', '00:00:00', '1000-01-01 00:00:00', '1970-01-01 00:00:01', 1901, "
    "'low', '', '[]')",
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
]

TYPE_COLS = ["id", "ti", "tu", "si", "su", "mi", "mu", "i", "iu", "bi", "bu", "d", "d2", "d3", "f", "dbl",
             "bt", "b64", "bo", "c", "vc", "tx", "bn", "vb", "bl", "dt", "tm", "dtm", "ts", "yr", "en", "st",
             "js"]


def source_typed(mdb, db):
    """The source rows in the lake's types: what the user expects to find."""
    import datetime as dt
    conn = mdb.connect(db)
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("SELECT " + ", ".join(
            f"CAST({c} AS UNSIGNED)" if c in ("bt", "b64") else c for c in TYPE_COLS) + " FROM t ORDER BY id")
        out = []
        for r in cur.fetchall():
            row = dict(zip(TYPE_COLS, r))
            if row["tm"] is not None:  # PyMySQL gives TIME as timedelta
                s = int(row["tm"].total_seconds())
                row["tm"] = dt.time(s // 3600, s // 60 % 60, s % 60, row["tm"].microseconds)
            if row["ts"] is not None:
                row["ts"] = row["ts"].replace(tzinfo=dt.timezone.utc)
            if row["f"] is not None:  # FLOAT: compare as the single-precision value
                import struct
                row["f"] = struct.unpack("f", struct.pack("f", row["f"]))[0]
            if row["st"] is not None:
                row["st"] = ",".join(sorted(row["st"])) if isinstance(row["st"], set) else row["st"]
            out.append({k: norm(v) for k, v in row.items()})
    conn.close()
    return out


def lake_typed(lake, table):
    import json
    rows = lake.catalog().load_table(table).scan().to_arrow().to_pylist()
    out = []
    for r in sorted(rows, key=lambda r: r["id"]):
        row = {c: r[c] for c in TYPE_COLS}
        out.append({k: norm(v) for k, v in row.items()})
    return out


def normalise_json(rows):
    import json
    for r in rows:
        if r["js"] is not None:
            r["js"] = json.loads(r["js"])
    return rows


def test_types_exact_full_load_and_streaming(lake, mdb):
    fresh_db(mdb, "typ", TYPES_DDL + ";\nINSERT INTO t VALUES " + TYPE_ROWS[0])
    configure(lake, mdb, "ty", '["typ.t"]')
    catch_up(lake, "ty")
    # rows 2 and 3 arrive through the binlog, row 1 is updated through it
    mdb.root_sql("INSERT INTO t VALUES " + ",".join(TYPE_ROWS[1:]) +
                 "; INSERT INTO t SELECT 11, ti, tu, si, su, mi, mu, i, iu, bi, bu, d, d2, d3, f, dbl, bt, b64, bo, c, "
                 "vc, tx, bn, vb, bl, dt, tm, dtm, ts, yr, en, st, js FROM t WHERE id = 1", db="typ")
    catch_up(lake, "ty")
    schema = {f.name: str(f.field_type) for f in lake.catalog().load_table("ty.typ.t").schema().fields}
    assert schema["bu"] == "decimal(20, 0)" and schema["iu"] == "long" and schema["i"] == "int"
    assert schema["d"] == "decimal(38, 10)" and schema["f"] == "float" and schema["dbl"] == "double"
    assert schema["ts"] == "timestamptz" and schema["dtm"] == "timestamp" and schema["tm"] == "time"
    assert schema["bn"] == "binary" and schema["vc"] == "string" and schema["js"] == "string"
    assert schema["dt"] == "date" and schema["yr"] == "int" and schema["b64"] == "decimal(20, 0)"
    want = normalise_json(source_typed(mdb, "typ"))
    got = normalise_json(lake_typed(lake, "ty.typ.t"))
    assert got == want
    # the loaded row (1) and its streamed copy (11) are identical apart from the key
    by_id = {r["id"]: r for r in got}
    assert {**by_id[D(1)], "id": None} == {**by_id[D(11)], "id": None}


def test_truncate_and_schema_changes(lake, mdb):
    fresh_db(mdb, "ddl", """
        CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10));
        INSERT INTO a VALUES (1, 'x'), (2, 'y');
        CREATE TABLE b (id INT PRIMARY KEY, n INT);
        INSERT INTO b VALUES (1, 10);
    """)
    configure(lake, mdb, "dd", '["ddl.*"]')
    catch_up(lake, "dd")
    mdb.root_sql("""
        TRUNCATE TABLE a;
        INSERT INTO a VALUES (3, 'z');
        ALTER TABLE b ADD COLUMN note VARCHAR(20);
        INSERT INTO b VALUES (2, 20, 'added');
        ALTER TABLE b RENAME COLUMN n TO amount;
        UPDATE b SET amount = 11 WHERE id = 1;
        ALTER TABLE b DROP COLUMN note;
        INSERT INTO b VALUES (3, 30);
        ALTER TABLE b MODIFY COLUMN amount BIGINT;
        INSERT INTO b VALUES (4, 9000000000);
        CREATE TABLE c (id INT PRIMARY KEY, s VARCHAR(5));
        INSERT INTO c VALUES (1, 'new');
    """, db="ddl")
    catch_up(lake, "dd")
    assert lake.sql("SELECT id, v FROM dd.ddl.a ORDER BY id") == [{"id": 3, "v": "z"}]
    assert lake.sql("SELECT * FROM dd.ddl.b ORDER BY id") == [
        {"id": 1, "amount": 11}, {"id": 2, "amount": 20}, {"id": 3, "amount": 30}, {"id": 4, "amount": 9000000000}]
    assert lake.sql("SELECT * FROM dd.ddl.c") == [{"id": 1, "s": "new"}]
    # a rename read right after a restart (nothing of b declared yet) keeps the values
    mdb.root_sql("ALTER TABLE b RENAME COLUMN amount TO amt", db="ddl")
    catch_up(lake, "dd")
    mdb.root_sql("INSERT INTO b VALUES (5, 5)", db="ddl")
    catch_up(lake, "dd")
    assert lake.sql("SELECT id, amt FROM dd.ddl.b ORDER BY id") == [
        {"id": 1, "amt": 11}, {"id": 2, "amt": 20}, {"id": 3, "amt": 30}, {"id": 4, "amt": 9000000000},
        {"id": 5, "amt": 5}]
    amount = [f for f in lake.catalog().load_table("dd.ddl.b").schema().fields if f.name == "amt"][0]
    assert str(amount.field_type) == "long"  # widened in place: same field id, old files still read
    # a dropped table empties its current state (history stays); re-created, it continues
    mdb.root_sql("DROP TABLE c; CREATE TABLE c (id INT PRIMARY KEY, s VARCHAR(5)); INSERT INTO c VALUES (2, 'again')",
                 db="ddl")
    catch_up(lake, "dd")
    assert lake.sql("SELECT * FROM dd.ddl.c ORDER BY id") == [{"id": 2, "s": "again"}]
    assert sorted(r["_op"] for r in lake.sql("SELECT _op FROM dd.ddl.c_changes")) == ["I", "I", "T"]
    ops = lake.sql("SELECT _op FROM dd.ddl.a_changes ORDER BY _commit_ts, _op")
    assert "T" in [r["_op"] for r in ops]


def lake_tables(lake):
    return lake.run("tables").stdout.split()


def test_rename_table_keeps_rows_and_history(lake, mdb):
    fresh_db(mdb, "ren", """
        CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10));
        INSERT INTO a VALUES (1, 'one'), (2, 'two'), (3, 'three');
    """)
    configure(lake, mdb, "rn", '["ren.a", "ren.a2", "ren.a3", "ren.back"]')
    catch_up(lake, "rn")
    mdb.root_sql("""
        UPDATE a SET v = 'two!' WHERE id = 2;
        INSERT INTO a VALUES (4, 'four');
        RENAME TABLE a TO a2;
        INSERT INTO a2 VALUES (5, 'five');
        UPDATE a2 SET v = 'one!' WHERE id = 1;
        DELETE FROM a2 WHERE id = 3;
    """, db="ren")
    catch_up(lake, "rn")
    want = source_rows(mdb, "ren", "a2", ["id", "v"])
    assert [r["id"] for r in want] == [1, 2, 4, 5]
    assert lake.sql("SELECT id, v FROM rn.ren.a2 ORDER BY id") == want
    assert lake_table_rows(lake, "rn.ren.a2", ["id", "v"]) == want
    tables = lake_tables(lake)
    assert "rn.ren.a2" in tables and "rn.ren.a2_changes" in tables
    assert "rn.ren.a" not in tables and "rn.ren.a_changes" not in tables
    # the history from before the rename moved with the table
    ops = lake.sql("SELECT id, _op FROM rn.ren.a2_changes ORDER BY _commit_ts, id")
    assert sorted((r["id"], r["_op"]) for r in ops) == [(1, "U"), (2, "U"), (3, "D"), (4, "I"), (5, "I")]
    assert len(lake.catalog().load_table("rn.ren.a2").snapshots()) >= 3
    # ALTER TABLE ... RENAME TO, then streaming goes on under the name after a restart
    mdb.root_sql("ALTER TABLE a2 RENAME TO a3", db="ren")
    catch_up(lake, "rn")
    mdb.root_sql("UPDATE a3 SET v = 'four!' WHERE id = 4; INSERT INTO a3 VALUES (6, 'six')", db="ren")
    catch_up(lake, "rn")
    assert lake.sql("SELECT id, v FROM rn.ren.a3 ORDER BY id") == source_rows(mdb, "ren", "a3", ["id", "v"])
    assert "rn.ren.a2" not in lake_tables(lake)
    # renamed out of the followed tables: emptied, as for DROP; back in: continues the lake table
    mdb.root_sql("RENAME TABLE a3 TO gone", db="ren")
    catch_up(lake, "rn")
    assert lake.sql("SELECT count(*) AS n FROM rn.ren.a3") == [{"n": 0}]
    assert "rn.ren.gone" not in lake_tables(lake)


def test_rename_swap_chain_and_stale_target(lake, mdb):
    fresh_db(mdb, "sw", """
        CREATE TABLE b (id INT PRIMARY KEY, n INT);
        INSERT INTO b VALUES (1, 10), (2, 20);
        CREATE TABLE c (id INT PRIMARY KEY, s VARCHAR(5), extra INT);
        INSERT INTO c VALUES (1, 'c1', 7);
        CREATE TABLE d (id INT PRIMARY KEY, x INT);
        INSERT INTO d VALUES (1, 100);
        CREATE TABLE e (id INT PRIMARY KEY, y INT);
        INSERT INTO e VALUES (1, 1), (2, 2);
        CREATE TABLE f (id INT PRIMARY KEY, y INT);
        INSERT INTO f VALUES (7, 70);
    """)
    # tmp_swap and d1 are not followed: only the net effect of each statement counts
    configure(lake, mdb, "sp", '["sw.b", "sw.c", "sw.d", "sw.d2", "sw.e", "sw.f"]')
    catch_up(lake, "sp")
    mdb.root_sql("""
        INSERT INTO b VALUES (3, 30);
        RENAME TABLE b TO tmp_swap, c TO b, tmp_swap TO c;
        INSERT INTO b VALUES (2, 'c2', 8);
        UPDATE c SET n = 21 WHERE id = 2;
        DELETE FROM c WHERE id = 1;
        RENAME TABLE d TO d1, d1 TO d2;
        UPDATE d2 SET x = 101 WHERE id = 1;
        DROP TABLE e;
        RENAME TABLE f TO e;
        INSERT INTO e VALUES (8, 80);
    """, db="sw")
    catch_up(lake, "sp")
    assert lake.sql("SELECT id, s, extra FROM sp.sw.b ORDER BY id") == source_rows(mdb, "sw", "b", ["id", "s", "extra"])
    assert lake.sql("SELECT id, n FROM sp.sw.c ORDER BY id") == [{"id": 2, "n": 21}, {"id": 3, "n": 30}]
    assert lake.sql("SELECT id, n FROM sp.sw.c ORDER BY id") == source_rows(mdb, "sw", "c", ["id", "n"])
    assert lake.sql("SELECT id, x FROM sp.sw.d2") == [{"id": 1, "x": 101}]
    assert lake.sql("SELECT id, y FROM sp.sw.e ORDER BY id") == [{"id": 7, "y": 70}, {"id": 8, "y": 80}]
    # each _changes went with its table: c's holds b's insert of 3 from before the swap
    assert sorted((r["id"], r["_op"]) for r in lake.sql("SELECT id, _op FROM sp.sw.c_changes")) == [
        (1, "D"), (2, "U"), (3, "I")]
    assert sorted((r["id"], r["_op"]) for r in lake.sql("SELECT id, _op FROM sp.sw.b_changes")) == [(2, "I")]
    tables = lake_tables(lake)
    assert "sp.sw.d" not in tables and "sp.sw.d1" not in tables and "sp.sw.f" not in tables
    # the lake table the dropped e left behind was moved aside with its history, not lost
    aside = [t for t in tables if t.startswith("sp.sw.e_dropped_") and not t.endswith("_changes")]
    assert len(aside) == 1
    assert aside[0] + "_changes" in tables
    assert lake.sql(f"SELECT count(*) AS n FROM {aside[0]}") == [{"n": 0}]  # emptied by the DROP
    assert [r["_op"] for r in lake.sql(f"SELECT _op FROM {aside[0]}_changes")] == ["T"]


def test_kill_9_around_a_rename(lake, mdb):
    fresh_db(mdb, "crr", "CREATE TABLE k (id INT PRIMARY KEY, v INT)")
    configure(lake, mdb, "kr", '["crr.*"]', "    server_id: 4343\n")
    catch_up(lake, "kr")
    cmd = [LOCH, "-c", str(lake.config), "replicate", "--source", "kr"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    conn = mdb.connect("crr")
    cur = conn.cursor()
    names = ["k", "k1", "k2", "k3"]
    n = 0
    for round in range(3):
        for _ in range(30):
            n += 1
            cur.execute("START TRANSACTION")
            cur.execute(f"INSERT INTO {names[round]} VALUES (%s, %s)", (n, n))
            cur.execute(f"UPDATE {names[round]} SET v = v + 1 WHERE id = %s", (max(1, n - 3),))
            cur.execute("COMMIT")
        cur.execute(f"RENAME TABLE {names[round]} TO {names[round + 1]}")
        time.sleep(0.4 + 0.3 * round)
        p.send_signal(signal.SIGKILL)  # at an arbitrary moment around the rename
        p.wait()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    p.send_signal(signal.SIGKILL)
    p.wait()
    conn.close()
    catch_up(lake, "kr")
    want = source_rows(mdb, "crr", "k3", ["id", "v"])
    assert len(want) == 90
    assert lake.sql("SELECT id, v FROM kr.crr.k3 ORDER BY id") == want
    assert lake.sql("SELECT count(*) AS n FROM kr.crr.k3_changes WHERE _op = 'I'") == [{"n": 90}]
    assert [t for t in lake_tables(lake) if t.startswith("kr.")] == ["kr.crr.k3", "kr.crr.k3_changes"]


def test_kill_9_and_restart_lake_equals_source(lake, mdb):
    fresh_db(mdb, "crash", "CREATE TABLE k (id INT PRIMARY KEY, v INT, pad VARCHAR(100))")
    configure(lake, mdb, "cr", '["crash.*"]', "    server_id: 4242\n")
    catch_up(lake, "cr")
    p = subprocess.Popen([LOCH, "-c", str(lake.config), "replicate", "--source", "cr"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    conn = mdb.connect("crash")
    cur = conn.cursor()
    n = 0
    for round in range(6):
        for _ in range(40):
            n += 1
            cur.execute("START TRANSACTION")
            cur.execute("INSERT INTO k VALUES (%s, %s, REPEAT('p', 50))", (n, n))
            cur.execute("UPDATE k SET v = v + 1 WHERE id = %s", (max(1, n - 3),))
            if n % 7 == 0:
                cur.execute("DELETE FROM k WHERE id = %s", (n - 5,))
            cur.execute("COMMIT")
        time.sleep(0.3 + 0.2 * round)
        if round % 2 == 1:  # kill -9 at an arbitrary moment, restart
            p.send_signal(signal.SIGKILL)
            p.wait()
            p = subprocess.Popen([LOCH, "-c", str(lake.config), "replicate", "--source", "cr"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    p.send_signal(signal.SIGKILL)
    p.wait()
    conn.close()
    catch_up(lake, "cr")
    cols = ["id", "v", "pad"]
    want = source_rows(mdb, "crash", "k", cols)
    assert len(want) > 200
    assert lake.sql("SELECT id, v, pad FROM cr.crash.k ORDER BY id") == want
    assert lake_table_rows(lake, "cr.crash.k", cols) == want


def wait_for(fn, timeout=60, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def lake_kv(lake, key):
    import sqlite3
    with sqlite3.connect(lake.root / "state" / "catalog.db") as c:
        r = c.execute("SELECT value FROM loch_kv WHERE key = ?", (key,)).fetchone()
    return r and r[0]


def test_interrupted_full_load_resumes_by_key(lake, mdb):
    """kill -9 in the middle of a full load: the next run continues after the last key
    range committed (never from the start), streams from the first run's position, and
    the lake ends equal to the source, including changes made while loch was down."""
    fresh_db(mdb, "resume", """
        CREATE TABLE huge (id INT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(200));
        INSERT INTO huge SELECT seq, 0, REPEAT('x', 150) FROM seq_1_to_900000;
        CREATE TABLE nk (a INT, b VARCHAR(5));
        INSERT INTO nk SELECT seq, 'b' FROM seq_1_to_1000;
    """)
    configure(lake, mdb, "rs", '["resume.*"]')
    p = subprocess.Popen([LOCH, "-c", str(lake.config), "replicate", "--source", "rs"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = wait_for(lambda: (v := lake_kv(lake, "cdc.rs.load.resume.huge")) and v != '"done"' and v)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert lake_kv(lake, "cdc.rs.checkpoint") is None
    # changes after the first snapshot, to rows loaded and rows not loaded yet
    mdb.root_sql("UPDATE huge SET v = 1 WHERE id % 100000 = 7; DELETE FROM huge WHERE id % 250000 = 3; "
                 "INSERT INTO huge VALUES (2000000, 5, 'late'); INSERT INTO nk VALUES (-1, 'late')", db="resume")
    r = lake.run("replicate", "--source", "rs", "--catch-up", timeout=300)
    assert f"continuing the full load after key {first}" in r.stderr, r.stderr
    got = lake.sql("SELECT count(*) AS n, count(DISTINCT id) AS d, sum(v) AS s FROM rs.resume.huge")[0]
    want = mdb.root_sql("SELECT count(*), count(DISTINCT id), sum(v) FROM huge", db="resume").split()
    assert [got["n"], got["d"], got["s"]] == [int(x) for x in want]
    assert lake.sql("SELECT count(*) AS n FROM rs.resume.nk") == [{"n": 1001}]
    assert lake_kv(lake, "cdc.rs.load") is None and lake_kv(lake, "cdc.rs.load.resume.huge") is None
    v = lake.run("validate", "--source", "rs", check=False, timeout=300)
    assert v.returncode == 0, v.stdout


def test_parallel_full_load_under_writes_converges(lake, mdb):
    """Two readers with their own snapshots load while a writer changes every table: each
    change reaches the lake once, keyed tables converge, the key-less one (read from the
    stream's own snapshot) gets no row twice. Composite keys of awkward types go through
    more than one key range."""
    fresh_db(mdb, "busy", """
        CREATE TABLE a (id INT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(100));
        INSERT INTO a SELECT seq, 0, REPEAT('a', 80) FROM seq_1_to_300000;
        CREATE TABLE b (t VARCHAR(20), bin VARBINARY(4), ts DATETIME(6), n INT, v INT NOT NULL,
                        PRIMARY KEY (t, bin, ts, n));
        INSERT INTO b SELECT ELT(1 + seq % 5, 'a,b', 'q"u''o', 'l1\nl2', '', ' sp'), UNHEX(LPAD(HEX(seq % 7), 2, '0')),
                             TIMESTAMP('2024-01-01') + INTERVAL (seq % 3) SECOND, seq, seq % 10
                      FROM seq_1_to_300000;
        CREATE TABLE c (x INT, y VARCHAR(10));
        INSERT INTO c SELECT seq, 'c' FROM seq_1_to_20000;
    """)
    configure(lake, mdb, "bz", '["busy.*"]')
    writer = subprocess.Popen([sys.executable, "-c", f"""
import random, pymysql
c = pymysql.connect(unix_socket={str(mdb.socket)!r}, user="root", database="busy", autocommit=False)
cur = c.cursor()
for i in range(600):
    k = random.randint(1, 300000)
    cur.execute("UPDATE a SET v = v + 1 WHERE id = %s", (k,))
    cur.execute("UPDATE b SET v = v + 1 WHERE n = %s", (k,))
    cur.execute("INSERT INTO a VALUES (%s, 1, 'new')", (300000 + i + 1,))
    cur.execute("INSERT INTO c VALUES (%s, 'w')", (-i,))
    c.commit()
"""])
    try:
        time.sleep(0.2)
        p = lake.run("replicate", "--source", "bz", "--catch-up", timeout=300)
    finally:
        assert writer.wait(timeout=300) == 0
    assert "rows/s (done)" in p.stderr
    lake.run("replicate", "--source", "bz", "--catch-up", timeout=300)
    for t, key in (("a", "id"), ("b", "n")):
        got = lake.sql(f"SELECT count(*) AS n, count(DISTINCT {key}) AS d, sum(v) AS s FROM bz.busy.{t}")[0]
        want = mdb.root_sql(f"SELECT count(*), count(DISTINCT {key}), sum(v) FROM {t}", db="busy").split()
        assert [got["n"], got["d"], got["s"]] == [int(x) for x in want], t
    assert lake.sql("SELECT count(*) AS n, count(DISTINCT x) AS d FROM bz.busy.c") == [{"n": 20600, "d": 20600}]
    v = lake.run("validate", "--source", "bz", check=False, timeout=300)
    assert v.returncode == 0, v.stdout


def test_refusals_name_the_setting(lake, mdb, tmp_path):
    configure(lake, mdb, "rf", '["nothing.*"]')
    mdb.root_sql("SET GLOBAL binlog_format = 'STATEMENT'")
    try:
        p = catch_up(lake, "rf", check=False)
    finally:
        mdb.root_sql("SET GLOBAL binlog_format = 'ROW'")
    assert p.returncode != 0
    assert "binlog_format=STATEMENT" in p.stderr and "binlog_format=ROW" in p.stderr
    mdb.root_sql("SET GLOBAL binlog_row_image = 'MINIMAL'")
    try:
        p = catch_up(lake, "rf", check=False)
    finally:
        mdb.root_sql("SET GLOBAL binlog_row_image = 'FULL'")
    assert p.returncode != 0 and "binlog_row_image" in p.stderr and "FULL" in p.stderr
    mdb.root_sql("SET GLOBAL binlog_row_metadata = 'MINIMAL'")
    try:
        p = catch_up(lake, "rf", check=False)
    finally:
        mdb.root_sql("SET GLOBAL binlog_row_metadata = 'FULL'")
    assert p.returncode != 0 and "binlog_row_metadata=MINIMAL" in p.stderr and "binlog_row_metadata=FULL" in p.stderr
    mdb.restart("--skip-log-bin")
    try:
        p = catch_up(lake, "rf", check=False)
    finally:
        mdb.restart()
    assert p.returncode != 0 and "binary logging is off" in p.stderr and "log_bin" in p.stderr
    # a user without REPLICATION SLAVE
    mdb.create_repl_user("weak", "weak-pw", grants="SELECT")
    cfg = lake.config.read_text().replace("mysql://repl@", "mysql://weak@")
    lake.config.write_text(cfg)
    os.environ["LOCH_TEST_MYSQL_PW"] = "weak-pw"
    p = catch_up(lake, "rf", check=False)
    os.environ["LOCH_TEST_MYSQL_PW"] = REPL_PASSWORD
    assert p.returncode != 0 and "REPLICATION SLAVE" in p.stderr and "GRANT" in p.stderr
    # a wrong password
    os.environ["LOCH_TEST_MYSQL_PW"] = "wrong"
    p = catch_up(lake, "rf", check=False)
    os.environ["LOCH_TEST_MYSQL_PW"] = REPL_PASSWORD
    assert p.returncode != 0 and "refused the login" in p.stderr


def test_status_and_validate(lake, mdb):
    fresh_db(mdb, "val", TYPES_DDL + ";\nINSERT INTO t VALUES " + ",".join(TYPE_ROWS))
    mdb.root_sql("CREATE TABLE nokey (a INT, b VARCHAR(5)); INSERT INTO nokey VALUES (1, 'x'), (1, 'x')", db="val")
    configure(lake, mdb, "va", '["val.*"]')
    catch_up(lake, "va")
    mdb.root_sql("UPDATE t SET vc = 'changed', d = d + 1 WHERE id = 1; INSERT INTO nokey VALUES (2, 'y')", db="val")
    catch_up(lake, "va")
    st = lake.run("status").stdout
    assert "va.val.t" in st
    v = lake.run("validate", "--source", "va", check=False)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "va.val.t: 3 rows at the source, identical in the lake" in v.stdout
    assert "va.val.nokey: 3 rows at the source, identical" in v.stdout
    lake.run("sql", "DELETE FROM va.val.t WHERE id = 2")
    v = lake.run("validate", "--source", "va", "--table", "val.t", check=False)
    assert v.returncode == 1 and "row (id=2) only in the source" in v.stdout


def test_server_restart_and_large_transaction(lake, mdb):
    fresh_db(mdb, "big", "CREATE TABLE r (id INT PRIMARY KEY, v VARCHAR(20))")
    configure(lake, mdb, "bg", '["big.*"]')
    catch_up(lake, "bg")
    p = subprocess.Popen([LOCH, "-c", str(lake.config), "replicate", "--source", "bg"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # one transaction of 60,000 row changes (several rows events, binlog cache spill)
        mdb.root_sql("SET SESSION max_recursive_iterations = 100000; START TRANSACTION; "
                     "INSERT INTO r WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 40000) "
                     "SELECT n, CONCAT('v', n) FROM s; "
                     "UPDATE r SET v = 'updated' WHERE id <= 10000; DELETE FROM r WHERE id > 30000; COMMIT", db="big")
        time.sleep(1)
        mdb.restart()  # the server goes away under a running replication
        mdb.root_sql("INSERT INTO r VALUES (50001, 'after restart')", db="big")
        deadline = time.time() + 60
        while time.time() < deadline:
            rows = lake.sql("SELECT count(*) AS n FROM bg.big.r WHERE id = 50001")
            if rows and rows[0]["n"] == 1:
                break
            time.sleep(0.5)
        assert p.poll() is None, "replication must survive a server restart"
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert b"reconnecting" in err
    want = source_rows(mdb, "big", "r", ["id", "v"])
    assert len(want) == 30001
    assert lake.sql("SELECT id, v FROM bg.big.r ORDER BY id") == want


def purge_before(mdb, keep):
    """PURGE BINARY LOGS TO keep, retried: the server holds a file until its binlog
    checkpoint has passed it."""
    for _ in range(50):
        mdb.root_sql(f"PURGE BINARY LOGS TO '{keep}'")
        if mdb.root_sql("SHOW BINARY LOGS").split()[0] == keep:
            return
        mdb.root_sql("FLUSH BINARY LOGS")
        time.sleep(0.2)
    raise AssertionError("the server kept its old binlogs")


def test_purged_binlog_resumes_by_gtid_or_refuses(lake, mdb):
    fresh_db(mdb, "pur", "CREATE TABLE p (id INT PRIMARY KEY, v INT); INSERT INTO p VALUES (1, 1)")
    configure(lake, mdb, "pu", '["pur.*"]')
    catch_up(lake, "pu")
    # loch is stopped; the file holding the saved position is rotated away and purged,
    # the changes after it live in later files: resumed through the GTID position
    mdb.root_sql("FLUSH BINARY LOGS")
    keep = mdb.root_sql("SHOW MASTER STATUS").split()[0]
    mdb.root_sql("INSERT INTO p VALUES (2, 2); UPDATE p SET v = 10 WHERE id = 1", db="pur")
    purge_before(mdb, keep)
    p = catch_up(lake, "pu")
    assert "resuming from GTID" in p.stderr
    assert lake.sql("SELECT id, v FROM pu.pur.p ORDER BY id") == source_rows(mdb, "pur", "p", ["id", "v"])
    # changes loch never read are purged: refused, with how to re-snapshot
    mdb.root_sql("FLUSH BINARY LOGS; INSERT INTO p VALUES (3, 3); FLUSH BINARY LOGS", db="pur")
    purge_before(mdb, mdb.root_sql("SHOW MASTER STATUS").split()[0])
    p = catch_up(lake, "pu", check=False)
    assert p.returncode != 0
    assert "purged" in p.stderr and "re-snapshot" in p.stderr
    # without a GTID in the checkpoint, a purged file is refused before streaming
    import sqlite3
    db = sqlite3.connect(lake.root / "state" / "catalog.db")
    db.execute("UPDATE loch_kv SET value = ? WHERE key = ?", ("binlog.000001:4", "cdc.pu.checkpoint"))
    db.commit()
    db.close()
    p = catch_up(lake, "pu", check=False)
    assert p.returncode != 0
    assert "was purged" in p.stderr and "re-snapshot" in p.stderr


def test_ed25519_and_tls_logins(lake, mdb):
    fresh_db(mdb, "auth", "CREATE TABLE a (id INT PRIMARY KEY); INSERT INTO a VALUES (1), (2)")
    mdb.root_sql("INSTALL SONAME 'auth_ed25519'")
    mdb.root_sql("CREATE USER 'ed'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-pw'); "
                 "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'ed'@'%'")
    # a user that may only log in over TLS
    mdb.root_sql("CREATE USER 'sec'@'%' IDENTIFIED BY 'sec-pw' REQUIRE SSL; "
                 "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'sec'@'%'")
    configure(lake, mdb, "au", '["auth.*"]')
    base = lake.config.read_text()
    try:
        lake.config.write_text(base.replace("mysql://repl@", "mysql://ed@"))
        os.environ["LOCH_TEST_MYSQL_PW"] = "ed-pw"
        catch_up(lake, "au")
        assert lake.sql("SELECT count(*) AS n FROM au.auth.a") == [{"n": 2}]
        mdb.root_sql("INSERT INTO a VALUES (3)", db="auth")
        os.environ["LOCH_TEST_MYSQL_PW"] = "sec-pw"
        lake.config.write_text(base.replace("mysql://repl@", "mysql://sec@"))
        p = catch_up(lake, "au", check=False)  # without TLS the server refuses the login
        assert p.returncode != 0 and "refused the login of sec" in p.stderr
        lake.config.write_text(base.replace("mysql://repl@", "mysql://sec@").replace(
            f":{mdb.port}\n", f":{mdb.port}/?tls=require\n"))
        catch_up(lake, "au")
        assert lake.sql("SELECT count(*) AS n FROM au.auth.a") == [{"n": 3}]
    finally:
        os.environ["LOCH_TEST_MYSQL_PW"] = REPL_PASSWORD


def test_checkpoint_advances_when_only_other_tables_change(lake, mdb):
    fresh_db(mdb, "idle", "CREATE TABLE followed (id INT PRIMARY KEY); CREATE TABLE other (id INT PRIMARY KEY)")
    configure(lake, mdb, "id", '["idle.followed"]')
    catch_up(lake, "id")
    import sqlite3

    def saved():
        db = sqlite3.connect(lake.root / "state" / "catalog.db")
        (v,) = db.execute("SELECT value FROM loch_kv WHERE key = 'cdc.id.checkpoint'").fetchone()
        db.close()
        return v

    before = saved()
    p = subprocess.Popen([LOCH, "-c", str(lake.config), "replicate", "--source", "id"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 40
        n = 0
        while time.time() < deadline and saved() == before:
            n += 1
            mdb.root_sql(f"INSERT INTO other VALUES ({n})", db="idle")
            time.sleep(0.5)
        assert saved() != before, "the checkpoint must follow the binlog even without followed changes"
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(60)
    assert lake.sql("SELECT count(*) AS n FROM id.idle.followed") == [{"n": 0}]


def test_xa_transaction_on_a_followed_table_is_refused_not_skipped(lake, mdb):
    fresh_db(mdb, "xa", "CREATE TABLE t (id INT PRIMARY KEY); CREATE TABLE other (id INT PRIMARY KEY)")
    configure(lake, mdb, "xa", '["xa.t"]')
    catch_up(lake, "xa")
    mdb.root_sql("XA START 'o'; INSERT INTO other VALUES (1); XA END 'o'; XA PREPARE 'o'; XA COMMIT 'o'", db="xa")
    mdb.root_sql("INSERT INTO t VALUES (1)", db="xa")
    catch_up(lake, "xa")  # an XA transaction on a table loch does not follow is no concern
    assert lake.sql("SELECT id FROM xa.xa.t") == [{"id": 1}]
    mdb.root_sql("XA START 'a'; INSERT INTO t VALUES (2); XA END 'a'; XA PREPARE 'a'; XA COMMIT 'a'", db="xa")
    p = catch_up(lake, "xa", check=False)
    assert p.returncode != 0 and "XA transaction" in p.stderr
