"""loch serve over the PostgreSQL wire protocol, with real clients: psql, psycopg 3,
pgjdbc (a small Java program), and raw protocol bytes for bad input."""
import datetime as dt
import decimal
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from pgserver import (ADMIN_PASSWORD, Server, error_fields, msg, pg_lake, raw_connect, read_msg,  # noqa: F401
                      recv_exact, scram_login, server, startup_packet)

HERE = Path(__file__).resolve().parent

ACCOUNTS = """id,name,balance,opened,updated
1,alice,1200.50,2020-01-15,2024-03-01 09:30:00.123456
2,bob,-35.25,2021-06-30,2024-03-02 10:00:00
3,carol,0.00,2022-12-01,2024-03-03 11:15:30.5
"""


def load_accounts(lake):
    f = lake.root / "accounts.csv"
    f.write_text(ACCOUNTS)
    lake.run("load", "bank.accounts", f)


# ---------------------------------------------------------------- psql

def test_psql_reads_a_lake_table_and_reports_errors(server):
    load_accounts(server.lake)
    out = server.psql("-A", "-F", "|", "-t", "-c", "SELECT id, name, balance FROM bank.accounts ORDER BY id").stdout
    assert out.split() == ["1|alice|1200.50", "2|bob|-35.25", "3|carol|0.00"]
    p = server.psql("-c", "SELECT * FROM bank.nope", check=False)
    assert p.returncode != 0 and "bank.nope does not exist" in p.stderr
    # several statements in one simple-query message: psql shows each result
    out = server.psql("-A", "-t", "-c", "SELECT 1; SELECT 2").stdout
    assert out.split() == ["1", "2"]


def test_psql_describe_commands(server):
    load_accounts(server.lake)
    dn = server.psql("-c", r"\dn").stdout
    assert "bank" in dn
    dt_ = server.psql("-c", r"\dt bank.*").stdout
    assert "accounts" in dt_ and "bank" in dt_
    d = server.psql("-c", r"\d bank.accounts").stdout
    for col, typ in [("id", "bigint"), ("name", "character varying"), ("balance", "numeric(18,2)"),
                     ("opened", "date"), ("updated", "timestamp without time zone")]:
        line = next((l for l in d.splitlines() if l.strip().startswith(col + " ")), None)
        assert line is not None and typ in line, (col, typ, d)


# ---------------------------------------------------------------- psycopg

ALL_TYPES = """SELECT 1::SMALLINT AS i2, 2::INTEGER AS i4, 3000000000::BIGINT AS i8, 1.5::REAL AS f4,
  0.1::DOUBLE AS f8, 12345.678::DECIMAL(18,3) AS n, -0.05::DECIMAL(10,2) AS nneg,
  12345678901234567890.1234567890::DECIMAL(38,10) AS nwide, true AS b, 'héllo' AS t,
  '\\x00ff'::BLOB AS by, DATE '2024-02-29' AS d, TIMESTAMP '2024-03-01 12:34:56.789' AS ts,
  TIMESTAMPTZ '2024-03-01 12:34:56.789+00' AS tstz, '6ba7b810-9dad-11d1-80b4-00c04fd430c8'::UUID AS u,
  '{"a": [1, 2]}'::JSON AS j, NULL::INTEGER AS nul"""

EXPECTED = {
    "i2": 1, "i4": 2, "i8": 3000000000, "f4": 1.5, "f8": 0.1, "n": decimal.Decimal("12345.678"),
    "nneg": decimal.Decimal("-0.05"), "nwide": decimal.Decimal("12345678901234567890.1234567890"),
    "b": True, "t": "héllo", "by": b"\x00ff", "d": dt.date(2024, 2, 29),
    "ts": dt.datetime(2024, 3, 1, 12, 34, 56, 789000),
    "tstz": dt.datetime(2024, 3, 1, 12, 34, 56, 789000, tzinfo=dt.timezone.utc),
    "u": uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), "j": {"a": [1, 2]}, "nul": None,
}

OIDS = {"i2": 21, "i4": 23, "i8": 20, "f4": 700, "f8": 701, "n": 1700, "nneg": 1700, "nwide": 1700, "b": 16,
        "t": 1043, "by": 17, "d": 1082, "ts": 1114, "tstz": 1184, "u": 2950, "j": 114, "nul": 23}


@pytest.mark.parametrize("binary", [False, True])
def test_psycopg_types_text_and_binary(server, binary):
    with server.connect() as conn:
        cur = conn.cursor(binary=binary)
        cur.execute(ALL_TYPES)
        row = cur.fetchone()
        names = [d.name for d in cur.description]
        got = dict(zip(names, row))
        assert got == EXPECTED
        assert {d.name: d.type_code for d in cur.description} == OIDS
        # numeric typmod carries precision and scale
        n = next(d for d in cur.description if d.name == "n")
        assert (n.precision, n.scale) == (18, 3)


def test_psycopg_parameters_and_prepared_statements(server):
    load_accounts(server.lake)
    with server.connect() as conn:
        cur = conn.cursor()
        cur.execute("SELECT name, balance FROM bank.accounts WHERE id = %s", (2,))
        assert cur.fetchall() == [("bob", decimal.Decimal("-35.25"))]
        cur.execute("SELECT name FROM bank.accounts WHERE name = %s OR opened > %s ORDER BY id",
                    ("alice", dt.date(2022, 1, 1)))
        assert cur.fetchall() == [("alice",), ("carol",)]
        # a value that would break naive substitution stays a value
        cur.execute("SELECT count(*) FROM bank.accounts WHERE name = %s", ("x' OR '1'='1",))
        assert cur.fetchone() == (0,)
        cur.execute("SELECT %s::INTEGER + 1, %s, %s::TEXT", (41, "hé", None))
        assert cur.fetchone() == (42, "hé", None)
        # server-side prepared statement, executed many times with binary parameters
        for i in (1, 2, 3, 1):
            cur.execute("SELECT id, name FROM bank.accounts WHERE id = %b", (i,), prepare=True)
            assert cur.fetchone()[0] == i
        cur.execute("SELECT name FROM pg_prepared_statements") if False else None
        # binary parameters of several types
        cur.execute("SELECT %b::BIGINT, %b::DOUBLE, %b::BOOLEAN, %b::VARCHAR, %b::DATE, %b::TIMESTAMP",
                    (7, 2.5, True, "x", dt.date(2000, 1, 2), dt.datetime(1999, 12, 31, 23, 59, 59, 1)))
        assert cur.fetchone() == (7, 2.5, True, "x", dt.date(2000, 1, 2), dt.datetime(1999, 12, 31, 23, 59, 59, 1))


def test_psycopg_many_rows_streamed(server):
    with server.connect() as conn:
        cur = conn.cursor(binary=True)
        cur.execute("SELECT range AS i, range * 2 AS j, 'row ' || range AS s FROM range(100000)")
        n = 0
        total = 0
        for i, j, s in cur:
            assert j == 2 * i and s == f"row {i}"
            total += i
            n += 1
        assert n == 100000 and total == sum(range(100000))
        assert cur.statusmessage == "SELECT 100000"


def test_psycopg_cancel_long_query(server):
    with server.connect() as conn:
        cur = conn.cursor()
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        with pytest.raises(psycopg.errors.QueryCanceled) as e:
            cur.execute("SELECT count(*) FROM range(100000000000) a")
        assert e.value.sqlstate == "57014" and "user request" in str(e.value)
        cur.execute("SELECT 42")
        assert cur.fetchone() == (42,)


def test_query_timeout_from_config(pg_lake):
    s = Server(pg_lake, timeout_ms=300).start()
    try:
        with s.connect() as conn:
            cur = conn.cursor()
            with pytest.raises(psycopg.errors.QueryCanceled) as e:
                cur.execute("SELECT count(*) FROM range(100000000000) a")
            assert "statement timeout" in str(e.value)
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        s.stop()


def test_slow_query_does_not_stall_others(server):
    slow = server.connect()
    done = threading.Event()
    err = []

    def run():
        try:
            slow.execute("SELECT count(*) FROM range(100000000000) a")
        except psycopg.Error as e:
            err.append(e)
        done.set()

    t = threading.Thread(target=run)
    t.start()
    server.wait_running()
    with server.connect() as fast:
        for _ in range(20):
            assert fast.execute("SELECT 1 + 1").fetchone() == (2,)
    assert not done.is_set(), "the slow query should still be running"
    slow.cancel()
    t.join(30)
    assert done.is_set() and err and err[0].sqlstate == "57014"
    slow.close()


def test_errors_have_sqlstate_and_position(server):
    with server.connect() as conn:
        with pytest.raises(psycopg.errors.SyntaxError) as e:
            conn.execute("SELECT 1; SELEC 2")
        assert e.value.sqlstate == "42601"
        assert int(e.value.diag.statement_position) == 11  # "SELEC" in the whole message
        with pytest.raises(psycopg.errors.UndefinedTable) as e:
            conn.execute("SELECT * FROM bank.missing")
        assert e.value.sqlstate == "42P01"
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SELECT 1 / 0::INTEGER, 'x'::INTEGER")
        assert e.value.sqlstate == "22P02"
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute("SELECT no_such_column FROM range(3)")
        assert conn.execute("SELECT 'still here'").fetchone() == ("still here",)


def test_client_settings_and_transactions(server):
    with server.connect() as conn:
        for stmt in ("SET extra_float_digits = 3", "SET application_name = 'bi tool'", "SET DateStyle = ISO",
                     "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED"):
            conn.execute(stmt)
        assert conn.execute("SHOW transaction isolation level").fetchone() == ("read committed",)
        assert conn.execute("SHOW application_name").fetchone() == ("bi tool",)
        conn.autocommit = False
        with conn.transaction():
            assert conn.execute("SELECT 5").fetchone() == (5,)
        assert conn.info.parameter_status("server_version").startswith("16")
        assert conn.info.parameter_status("TimeZone") == "UTC"
        assert conn.info.parameter_status("integer_datetimes") == "on"


# ---------------------------------------------------------------- users and passwords

def test_wrong_password_and_unknown_user_look_the_same(server):
    msgs = []
    for user, pw in (("admin", "wrong"), ("nosuchuser", "wrong")):
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(server.dsn(user, pw))
        msgs.append(str(e.value).replace(user, "USER"))
        assert "password authentication failed" in str(e.value)
    assert msgs[0] == msgs[1]
    # the right password still works afterwards
    with server.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_non_admin_is_denied_lake_tables(server):
    load_accounts(server.lake)
    with server.connect() as conn:
        conn.execute("CREATE USER bob WITH PASSWORD 'bob-pw-42'")
    with server.connect("bob", "bob-pw-42") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            conn.execute("SELECT * FROM bank.accounts")
        assert e.value.sqlstate == "42501"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM bank.accounts WHERE id = %s", (1,))
    # the lake views an admin session made are not listed to bob by DuckDB's own catalog
    with server.connect() as admin:
        admin.execute("SELECT count(*) FROM bank.accounts")
    with server.connect("bob", "bob-pw-42") as conn:
        for q in ("SELECT table_schema, table_name FROM information_schema.tables",
                  "SELECT relname FROM pg_class", "SELECT column_name FROM information_schema.columns"):
            assert conn.execute(q).fetchall() == [], q
    # psql's catalog commands list nothing for bob (and do not fail)
    out = server.psql("-c", r"\dt bank.*", user="bob", password="bob-pw-42").stdout + \
        server.psql("-c", r"\dt", user="bob", password="bob-pw-42").stdout
    assert "accounts" not in out
    log = server.log_text()
    assert "bob-pw-42" not in log and ADMIN_PASSWORD not in log
    assert "query user=bob" in log and "status=42501" in log


# ---------------------------------------------------------------- bad input

def expect_fatal_or_close(sock, code="08P01"):
    t, body = read_msg(sock)
    if t is None:
        return
    assert t == b"E", (t, body)
    f = error_fields(body)
    assert f["C"] == code, f
    assert read_msg(sock)[0] is None  # and the connection is closed


@pytest.fixture
def witness(server):
    """A connection that must keep working while others misbehave."""
    conn = server.connect()
    yield conn
    assert conn.execute("SELECT 'alive'").fetchone() == ("alive",)
    conn.close()


def test_garbage_startup_packet(server, witness):
    for junk in (b"\x00\x00\x00\x10GARBAGEGARBAGE!!"[:16], b"\xff\xff\xff\xff", b"\x00\x00\x00\x03",
                 os.urandom(64), b"GET / HTTP/1.1\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        s.sendall(junk)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may have answered and closed already (ENOTCONN)
        expect_fatal_or_close(s)
        s.close()
        assert witness.execute("SELECT 1").fetchone() == (1,)


def test_unsupported_protocol_version(server, witness):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    body = struct.pack("!I", 2 << 16) + b"user\0admin\0\0"
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    t, b = read_msg(s)
    assert t == b"E" and "unsupported frontend protocol" in error_fields(b)["M"]


def test_ssl_and_gssenc_requests_refused_politely_without_tls(server, witness):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    s.sendall(struct.pack("!II", 8, 80877104))  # GSSENCRequest
    assert recv_exact(s, 1) == b"N"
    s.sendall(struct.pack("!II", 8, 80877103))  # SSLRequest, TLS off
    assert recv_exact(s, 1) == b"N"
    got = scram_login(s)
    assert got[-1][0] == b"Z"


def test_unknown_message_type(server, witness):
    s = raw_connect(server)
    s.sendall(msg(b"z", b"hello"))
    t, body = read_msg(s)
    assert t == b"E" and "unknown message type 'z'" in error_fields(body)["M"]


def test_oversized_and_lying_lengths(server, witness):
    s = raw_connect(server)
    s.sendall(b"Q" + struct.pack("!I", 0x7FFFFFF0))  # claims 2 GB
    expect_fatal_or_close(s)
    s = raw_connect(server)
    s.sendall(b"Q" + struct.pack("!I", 2))  # shorter than the length word itself
    expect_fatal_or_close(s)
    s = raw_connect(server)
    s.sendall(b"Q" + struct.pack("!I", 1000) + b"SELECT 1\0")  # then hangs up: truncated
    s.shutdown(socket.SHUT_WR)
    assert read_msg(s)[0] is None
    # a Bind whose parameter length points past the end of the message
    s = raw_connect(server)
    s.sendall(msg(b"P", b"\0SELECT $1::INTEGER\0\0\0"))
    s.sendall(msg(b"B", b"\0\0\0\0\0\x01" + struct.pack("!i", 500) + b"12\0\0"))
    t, body = read_msg(s)
    assert t == b"1"
    t, body = read_msg(s)
    assert t == b"E" and error_fields(body)["C"] == "08P01"
    # a query message whose text has no terminating NUL
    s = raw_connect(server)
    s.sendall(msg(b"Q", b"SELECT 1"))
    expect_fatal_or_close(s)


def test_extended_protocol_row_limit_and_errors_skip_to_sync(server, witness):
    s = raw_connect(server)
    s.sendall(msg(b"P", b"st\0SELECT range FROM range(5)\0\0\0") +
              msg(b"B", b"p1\0st\0\0\0\0\0\0\0") +
              msg(b"E", b"p1\0" + struct.pack("!i", 2)) +
              msg(b"E", b"p1\0" + struct.pack("!i", 2)) +
              msg(b"E", b"p1\0" + struct.pack("!i", 0)) + msg(b"S"))
    seen = []
    while True:
        t, body = read_msg(s)
        seen.append(t)
        if t == b"Z":
            break
    assert seen == [b"1", b"2", b"D", b"D", b"s", b"D", b"D", b"s", b"D", b"C", b"Z"], seen
    # an error in the middle of a batch: everything up to Sync is skipped, then it works again
    s.sendall(msg(b"P", b"\0SELECT 1 FROM\0\0\0") + msg(b"B", b"\0\0\0\0\0\0\0\0") + msg(b"E", b"\0\0\0\0\0") + msg(b"S") +
              msg(b"Q", b"SELECT 7\0"))
    seen = []
    while len([x for x in seen if x == b"Z"]) < 2:
        t, body = read_msg(s)
        seen.append(t)
    assert seen == [b"E", b"Z", b"T", b"D", b"C", b"Z"], seen


# ---------------------------------------------------------------- TLS

def make_cert(d: Path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-keyout", str(d / "server.key"), "-out", str(d / "server.crt")],
                   check=True, capture_output=True)
    return d / "server.crt", d / "server.key"


def test_tls_required_refuses_plain_connections(pg_lake):
    cert, key = make_cert(pg_lake.root)
    s = Server(pg_lake, tls={"mode": "required", "cert": cert, "key": key}).start()
    try:
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(s.dsn(sslmode="disable"))
        assert "requires TLS" in str(e.value)
        with psycopg.connect(s.dsn(sslmode="require")) as conn:
            assert conn.execute("SELECT 'over tls'").fetchone() == ("over tls",)
            assert conn.pgconn.ssl_in_use
        p = s.psql("-A", "-t", "-c", "SELECT 40 + 2", check=False)
        assert p.returncode != 0  # psql with sslmode=disable is refused
    finally:
        s.stop()


# ---------------------------------------------------------------- JDBC

def test_pgjdbc_queries_and_metadata(server, tmp_path):
    jar = "/usr/share/java/postgresql.jar"
    if not (Path(jar).exists() and shutil.which("javac")):
        pytest.fail("pgjdbc or javac missing: run scripts/setup")
    load_accounts(server.lake)
    src = HERE.parent / "interop" / "JdbcProbe.java"
    subprocess.run(["javac", "-d", str(tmp_path), "-cp", jar, str(src)], check=True, capture_output=True)
    p = subprocess.run(["java", "-cp", f"{tmp_path}:{jar}", "JdbcProbe",
                        f"jdbc:postgresql://127.0.0.1:{server.port}/lake?sslmode=disable", "admin", ADMIN_PASSWORD],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = dict(l.split("=", 1) for l in p.stdout.splitlines() if "=" in l)
    assert lines["query"] == "2|bob|-35.25"
    assert lines["count"] == "3"
    assert lines["fetch"] == "1000"
    assert "bank.accounts" in lines["tables"].split(",")
    assert lines["columns"].startswith("id:int8,name:varchar,balance:numeric")
    assert "bank" in lines["schemas"].split(",")
    assert lines["pks"] == "0"
    assert lines["prepared"] == "8|s7|2024-01-02 03:04:05.123456|-12.34"


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_slow_reader_does_not_grow_server_memory(server, witness):
    """A 20 GB result to a client that does not read: rows stream, so the server blocks on
    the socket instead of buffering the result."""
    s = raw_connect(server)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(msg(b"Q", b"SELECT repeat('x', 1000) AS s FROM range(20000000)\0"))
    server.wait_running()
    time.sleep(1.5)  # streaming until the socket buffers are full
    before = rss_mb(server.proc.pid)
    time.sleep(3)
    after = rss_mb(server.proc.pid)
    assert after - before < 100, (before, after)
    # the client reads a little, and the stream goes on
    t, body = read_msg(s)
    assert t == b"T"
    for _ in range(1000):
        t, body = read_msg(s)
        assert t == b"D"
    s.close()


def test_metrics_count_pgwire_queries_connections_and_failed_logins(server):
    import urllib.request

    token = server.lake.run("token", "create", "--user", "admin").stdout.strip().splitlines()[-1]

    def metrics():
        req = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/metrics",
                                     headers={"Authorization": f"Bearer {token}"})
        body = urllib.request.urlopen(req, timeout=10).read().decode()
        out = {}
        for line in body.splitlines():
            if line.startswith("loch_") and 'protocol="pgwire"' in line:
                name, value = line.rsplit(" ", 1)
                out[name.split("{")[0]] = float(value)
        return out

    with server.connect() as conn:
        for _ in range(3):
            conn.execute("SELECT 1")
        with pytest.raises(psycopg.Error):
            conn.execute("SELECT * FROM nowhere.nothing")
        m = metrics()
        assert m["loch_connections_open"] >= 1
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.dsn("admin", "not-the-password"))
    m = metrics()
    assert m["loch_queries_total"] >= 4 and m["loch_query_errors_total"] >= 1
    assert m["loch_auth_failures_total"] >= 1 and m["loch_connections_total"] >= 1
    assert m["loch_queries_running"] == 0  # every statement that started has stopped


def test_sigterm_stops_the_server_during_a_long_query(pg_lake):
    s = Server(pg_lake).start()
    conn = s.connect()
    errors = []

    def run():
        try:
            conn.execute("SELECT count(*) FROM range(100000000000) a")
        except psycopg.Error as e:
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    s.wait_running()
    s.stop()  # SIGTERM: exits 0 after interrupting the query and closing the connection
    t.join(30)
    assert not t.is_alive() and errors
    log = s.log.read_text()
    assert "SIGTERM received" in log and "loch serve: stopped" in log


def test_sessions_share_tables_with_deletes(server):
    """Tables with position deletes read through per-connection row masks: a session must
    never read another (closed) session's masks."""
    load_accounts(server.lake)
    server.lake.run("sql", "DELETE FROM bank.accounts WHERE id = 2")
    for _ in range(3):
        with server.connect() as conn:
            assert conn.execute("SELECT id FROM bank.accounts ORDER BY id").fetchall() == [(1,), (3,)]
    a, b = server.connect(), server.connect()
    for _ in range(3):
        assert a.execute("SELECT count(*) FROM bank.accounts").fetchone() == (2,)
        assert b.execute("SELECT count(*) FROM bank.accounts").fetchone() == (2,)
    a.close()
    assert b.execute("SELECT sum(id) FROM bank.accounts").fetchone() == (4,)
    b.close()


def test_suspended_portal_survives_another_statement(server, witness):
    """A portal stopped by its row limit can still be read after other statements ran
    (JDBC reads metadata while a fetch-size result set is open)."""
    s = raw_connect(server)
    s.sendall(msg(b"P", b"a\0SELECT range FROM range(5)\0\0\0") + msg(b"B", b"pa\0a\0\0\0\0\0\0\0") +
              msg(b"E", b"pa\0" + struct.pack("!i", 2)) +
              msg(b"P", b"b\0SELECT 42\0\0\0") + msg(b"B", b"pb\0b\0\0\0\0\0\0\0") +
              msg(b"E", b"pb\0" + struct.pack("!i", 0)) +
              msg(b"E", b"pa\0" + struct.pack("!i", 0)) + msg(b"S"))
    seen, values = [], []
    while True:
        t, body = read_msg(s)
        seen.append(t)
        if t == b"D":
            n = struct.unpack("!I", body[2:6])[0]
            values.append(body[6:6 + n].decode())
        if t == b"Z":
            break
    assert seen == [b"1", b"2", b"D", b"D", b"s", b"1", b"2", b"D", b"C", b"D", b"D", b"D", b"C", b"Z"], seen
    assert values == ["0", "1", "42", "2", "3", "4"]


def test_server_sql_reaches_no_file_outside_the_lake(server, tmp_path):
    """Even the administrator's SQL over the wire cannot read, write or attach files
    outside the warehouse and state folders, nor unlock that; lake tables still read."""
    load_accounts(server.lake)
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    with server.connect() as conn:
        assert conn.execute("SELECT count(*) FROM bank.accounts").fetchone() == (3,)
        for stmt in (f"SELECT * FROM read_csv('{outside}')",
                     "SELECT * FROM read_csv('/etc/passwd')",
                     f"COPY (SELECT 1) TO '{tmp_path}/leak.csv'",
                     f"ATTACH '{tmp_path}/x.duckdb' AS x",
                     "SET enable_external_access = true",
                     "SET lock_configuration = false"):
            with pytest.raises(psycopg.Error):
                conn.execute(stmt)
        assert not (tmp_path / "leak.csv").exists() and not (tmp_path / "x.duckdb").exists()
        assert conn.execute("SELECT count(*) FROM bank.accounts").fetchone() == (3,)


def test_named_prepared_statement_reads_the_table_as_it_is_now(server):
    """A statement prepared once (psycopg's prepare=True: a named statement, as JDBC's after
    a few runs) and executed again later reads the table's current snapshot, not the files
    it was prepared on, and is never pruned to them."""
    server.lake.run("sql", "CREATE TABLE bank.p AS SELECT i AS id FROM range(10) t(i)")
    with server.connect() as a, server.connect() as b:
        q = "SELECT count(*) FROM bank.p WHERE id >= %s"
        assert a.execute(q, (5,), prepare=True).fetchone() == (5,)
        b.execute("INSERT INTO bank.p SELECT i FROM range(10, 15) t(i)")
        assert a.execute(q, (5,), prepare=True).fetchone() == (10,)
        b.execute("DELETE FROM bank.p WHERE id < 7")
        assert a.execute(q, (5,), prepare=True).fetchone() == (8,)
        assert a.execute(q, (0,), prepare=True).fetchone() == (8,)
