"""MariaDB -> lake through the binlog: full load, streaming, types, DDL, crash/restart and
refusals, against a throw-away MariaDB (mysource.py), read back by loch and PyIceberg."""
import decimal
import os
import signal
import subprocess
import time

import pytest

from conftest import LOCH, norm
from mysource import REPL_PASSWORD, MariaDB, mariadb_available

pytestmark = pytest.mark.skipif(not mariadb_available(), reason="mariadbd not installed")

D = decimal.Decimal


@pytest.fixture(scope="module")
def mdb(tmp_path_factory):
    m = MariaDB(tmp_path_factory.mktemp("mariadb"))
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
    return lake.run("replicate", "--source", source, "--catch-up", check=check, timeout=300)


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
        INSERT INTO accounts VALUES (1, 'alice', 100.00), (2, 'bob', -5.50), (3, 'carol', NULL);
    """)
    configure(lake, mdb, "core_my", '["bank.*"]')
    catch_up(lake, "core_my")
    rows = lake.sql("SELECT id, owner, balance FROM core_my.bank.accounts ORDER BY id")
    assert rows == [{"id": 1, "owner": "alice", "balance": D("100.00")},
                    {"id": 2, "owner": "bob", "balance": D("-5.50")},
                    {"id": 3, "owner": "carol", "balance": None}]
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
