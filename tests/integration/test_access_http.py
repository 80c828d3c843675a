"""Users, roles, passwords, tokens and the HTTP API: passwords only as SCRAM verifiers,
deny by default for non-administrators (SQLSTATE 42501), bearer tokens, JSON/CSV
results, the caller's query history, /metrics, and bad requests answered cleanly."""
import base64
import concurrent.futures
import csv
import hashlib
import hmac
import io
import os
import re
import sqlite3
import stat
import time
import subprocess

import pytest

from access_fixtures import ADMIN_PASSWORD, Server, admin_lake, files_containing, server, token_for  # noqa: F401
from conftest import LOCH

CSV_DATA = "id,amount,name\n1,12.34,alpha\n2,-0.01,\"b,eta\"\n3,99999999999999.99,gamma\n"
ALICE_PW = "Al1ce-secret-pw"


def load_accounts(lake):
    src = lake.root / "accounts.csv"
    src.write_text(CSV_DATA)
    lake.run("load", "bank.accounts", src)


def principals(lake):
    db = sqlite3.connect(lake.root / "state" / "catalog.db")
    try:
        return {r[0]: r[1:] for r in db.execute("SELECT name, kind, can_login, scram FROM loch_principals")}
    finally:
        db.close()


def scram_ok(verifier, password):
    """Checks a PostgreSQL-format SCRAM-SHA-256 verifier against a password (RFC 5802)."""
    m = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", verifier)
    assert m, verifier
    iters, salt = int(m[1]), base64.b64decode(m[2])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iters)
    stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return base64.b64decode(m[3]) == stored and base64.b64decode(m[4]) == server_key


def sql_fails(lake, sql, *extra):
    p = lake.run("sql", *extra, sql, check=False)
    assert p.returncode != 0, p.stdout
    return p.stderr


# ---- users, roles and verifiers through `loch sql` ----

def test_init_admin_password_generated(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LOCH_ADMIN_PASSWORD"}
    p = subprocess.run([LOCH, "init", str(tmp_path / "l")], capture_output=True, text=True, env=env, check=True)
    pw_file = tmp_path / "l" / "state" / "admin.password"
    assert str(pw_file) in p.stdout
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    pw = pw_file.read_text().strip()
    assert len(pw) >= 20
    db = sqlite3.connect(tmp_path / "l" / "state" / "catalog.db")
    kind, login, verifier = db.execute(
        "SELECT kind, can_login, scram FROM loch_principals WHERE name = 'admin'").fetchone()
    db.close()
    assert (kind, login) == ("user", 1)
    assert scram_ok(verifier, pw)
    # the password is only in admin.password, never in the catalog
    assert [f.name for f in files_containing(tmp_path / "l" / "state", pw.encode())] == ["admin.password"]


def test_init_admin_password_from_env(admin_lake):
    assert not (admin_lake.root / "state" / "admin.password").exists()
    assert scram_ok(principals(admin_lake)["admin"][2], ADMIN_PASSWORD)


def test_create_user_stores_only_a_verifier(admin_lake):
    lake = admin_lake
    out = lake.run("sql", f"CREATE USER alice WITH PASSWORD '{ALICE_PW}'").stdout
    assert out.strip() == "CREATE ROLE"
    kind, login, verifier = principals(lake)["alice"]
    assert (kind, login) == ("user", 1)
    assert verifier.startswith("SCRAM-SHA-256$4096:")
    assert scram_ok(verifier, ALICE_PW)
    assert not scram_ok(verifier, ALICE_PW + "x")
    assert files_containing(lake.root, ALICE_PW.encode()) == []

    lake.run("sql", "ALTER USER alice WITH PASSWORD 'N3w-pw-for-alice'")
    verifier2 = principals(lake)["alice"][2]
    assert scram_ok(verifier2, "N3w-pw-for-alice") and verifier2 != verifier
    lake.run("sql", "CREATE USER quoted WITH PASSWORD 'it''s $ok'")
    assert scram_ok(principals(lake)["quoted"][2], "it's $ok")
    # psql's \password sends a ready verifier: stored as given
    lake.run("sql", f"ALTER USER alice PASSWORD '{verifier}'")
    assert principals(lake)["alice"][2] == verifier


def test_role_statements_and_tags(admin_lake):
    lake = admin_lake
    out = lake.run("sql", "CREATE ROLE analysts; CREATE USER Bob LOGIN PASSWORD 'b0b-pw' IN ROLE analysts; "
                          "CREATE USER \"Carol\" WITH PASSWORD 'c-pw'; GRANT analysts TO \"Carol\"; "
                          "REVOKE analysts FROM bob; ALTER ROLE analysts NOLOGIN").stdout.split()
    assert " ".join(out) == "CREATE ROLE CREATE ROLE CREATE ROLE GRANT ROLE REVOKE ROLE ALTER ROLE"
    p = principals(lake)
    assert p["analysts"][:2] == ("role", 0) and p["analysts"][2] is None
    assert "bob" in p and "Carol" in p  # bare names fold to lower case, quoted keep theirs
    db = sqlite3.connect(lake.root / "state" / "catalog.db")
    members = sorted(db.execute("SELECT role, member FROM loch_role_members"))
    db.close()
    assert members == [("analysts", "Carol")]

    err = sql_fails(lake, "GRANT nosuchrole TO bob")
    assert 'role "nosuchrole" does not exist' in err and "SQLSTATE: 42704" in err
    err = sql_fails(lake, "CREATE USER bob WITH PASSWORD 'x'")
    assert "already exists" in err and "SQLSTATE: 42710" in err
    err = sql_fails(lake, "CREATE USER dave WITH SUPERUSER")
    assert "SUPERUSER" in err and "GRANT admin TO" in err
    err = sql_fails(lake, "GRANT SELECT ON bank.accounts TO bob")
    assert "not supported yet" in err and "SQLSTATE: 0A000" in err
    err = sql_fails(lake, "DROP USER admin")
    assert "no administrator" in err
    assert lake.run("sql", "DROP USER bob, \"Carol\"; DROP ROLE IF EXISTS ghost").stdout.split() == \
        ["DROP", "ROLE", "DROP", "ROLE"]
    assert set(principals(lake)) == {"admin", "analysts"}


def test_non_admin_denied_admin_allowed(admin_lake):
    lake = admin_lake
    load_accounts(lake)
    lake.run("sql", f"CREATE USER alice WITH PASSWORD '{ALICE_PW}'; CREATE ROLE ops")
    err = sql_fails(lake, "SELECT * FROM bank.accounts", "--as", "alice")
    assert "permission denied for relation bank.accounts" in err and "SQLSTATE: 42501" in err
    assert "12.34" not in err
    # no file, no table function, no writes, no role changes for non-admins
    for sql in ["SELECT * FROM read_csv('/etc/passwd')", f"SELECT * FROM '{lake.root}/accounts.csv'",
                "COPY (SELECT 1) TO '/tmp/x.csv'", "ATTACH '/tmp/x.db' AS x", "INSTALL httpfs",
                "PRAGMA version", "INSERT INTO bank.accounts VALUES (9, 1, 'x')", "DELETE FROM bank.accounts",
                "CREATE USER mallory WITH PASSWORD 'm'", "GRANT admin TO alice",
                "SELECT * FROM (SELECT * FROM bank.accounts) t",
                "WITH x AS (SELECT 1) SELECT * FROM x, bank.accounts",
                "SET search_path = 'bank'", "SELECT * FROM query('SELECT * FROM bank.accounts')",
                # catalog listings would show lake table names, columns and file paths
                "SELECT * FROM information_schema.tables", "SELECT * FROM information_schema.views",
                "SELECT relname FROM pg_catalog.pg_class", "SELECT * FROM pg_attribute",
                "SELECT * FROM pg_catalog.pg_namespace", "SELECT * FROM duckdb_views()"]:
        err = sql_fails(lake, sql, "--as", "alice")
        assert "SQLSTATE: 42501" in err, (sql, err)
    assert "bank.accounts" in sql_fails(lake, "SELECT (SELECT sum(amount) FROM bank.accounts)", "--as", "alice")
    # harmless things still work
    assert lake.run("sql", "--as", "alice", "--format", "csv",
                    "WITH x AS (SELECT 41 AS v) SELECT v + 1 FROM x").stdout.splitlines()[-1] == "42"
    assert "SQLSTATE: 42601" in sql_fails(lake, "SELEC 1", "--as", "alice")
    assert lake.run("sql", "--as", "alice", "--format", "csv",
                    "SELECT typname FROM pg_catalog.pg_type WHERE typname = 'int4'").stdout.split() == ["typname", "int4"]
    # the local administrator and members of admin (directly or through roles) read
    assert len(lake.sql("SELECT * FROM bank.accounts")) == 3
    lake.run("sql", "GRANT admin TO ops; GRANT ops TO alice")
    assert lake.run("sql", "--as", "alice", "--format", "csv",
                    "SELECT count(*) FROM bank.accounts").stdout.splitlines()[-1] == "3"
    lake.run("sql", "REVOKE ops FROM alice")
    assert "SQLSTATE: 42501" in sql_fails(lake, "SELECT * FROM bank.accounts", "--as", "alice")
    # anyone may change their own password, and only that
    lake.run("sql", "--as", "alice", "ALTER USER alice WITH PASSWORD 'self-chosen-pw'")
    assert scram_ok(principals(lake)["alice"][2], "self-chosen-pw")
    for sql in ["ALTER USER alice WITH PASSWORD 'x' LOGIN", "ALTER USER admin WITH PASSWORD 'x'",
                "ALTER USER alice WITH PASSWORD NULL"]:
        assert "SQLSTATE: 42501" in sql_fails(lake, sql, "--as", "alice"), sql
    # an unknown principal is denied too
    assert "SQLSTATE: 42501" in sql_fails(lake, "SELECT * FROM bank.accounts", "--as", "nobody")


# ---- tokens ----

def test_tokens_hashed_listed_revoked(admin_lake):
    lake = admin_lake
    lake.run("sql", "CREATE USER alice WITH PASSWORD 'pw'")
    out = lake.run("token", "create", "--user", "alice", "--expires", "7").stdout.strip().splitlines()
    token = out[-1]
    assert re.fullmatch(r"loch_[A-Za-z0-9_-]{43}", token)
    db = sqlite3.connect(lake.root / "state" / "catalog.db")
    rows = db.execute("SELECT id, hash, user_name, expires_at - created_at FROM loch_tokens").fetchall()
    db.close()
    assert len(rows) == 1
    tid, h, user, ttl = rows[0]
    assert h == hashlib.sha256(token.encode()).hexdigest() and user == "alice" and ttl == 7 * 86400
    assert files_containing(lake.root, token.encode()) == []
    listing = lake.run("token", "list").stdout
    assert tid in listing and "alice" in listing
    assert lake.run("token", "create", "--user", "ghost", check=False).returncode == 1
    lake.run("token", "revoke", tid)
    assert tid not in lake.run("token", "list").stdout
    assert lake.run("token", "revoke", tid, check=False).returncode == 1


# ---- HTTP ----

def test_http_results_json_csv(server):
    lake = server.lake
    load_accounts(lake)
    admin = token_for(lake, "admin")
    r = server.sql("SELECT id, amount, name, amount * 2 AS twice, id / 4 AS q, id > 1 AS big, NULL AS n "
                   "FROM bank.accounts ORDER BY id", admin)
    assert r.status == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    j = r.json()
    assert [c["name"] for c in j["columns"]] == ["id", "amount", "name", "twice", "q", "big", "n"]
    assert j["columns"][1]["type"] == "DECIMAL(18,2)"
    assert j["tag"] == "SELECT 3"
    # decimals are exact strings; integers and floats numbers; booleans and NULL native
    assert j["rows"][0] == [1, "12.34", "alpha", "24.68", 0.25, False, None]
    assert j["rows"][2][1] == "99999999999999.99"
    r = server.sql("SELECT id, amount, name FROM bank.accounts ORDER BY id", admin, accept="text/csv")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows == [["id", "amount", "name"], ["1", "12.34", "alpha"], ["2", "-0.01", "b,eta"],
                    ["3", "99999999999999.99", "gamma"]]
    # a command returns its tag; several statements return the last result
    j = server.sql("CREATE ROLE auditors; SELECT 7 AS seven", admin).json()
    assert j["rows"] == [[7]] and j["tag"] == "SELECT 1"


def test_http_auth_and_deny(server):
    lake = server.lake
    load_accounts(lake)
    lake.run("sql", f"CREATE USER alice WITH PASSWORD '{ALICE_PW}'")
    alice = token_for(lake, "alice")
    for tok in [None, "loch_wrong", alice[:-1] + ("A" if alice[-1] != "A" else "B"), "Basic abc"]:
        r = server.sql("SELECT 1", tok)
        assert r.status == 401, (tok, r.text)
        assert r.json()["error"]["sqlstate"] == "28P01"
        assert "Bearer" in r.headers.get("WWW-Authenticate", "")
    r = server.sql("SELECT * FROM bank.accounts", alice)
    assert r.status == 403
    e = r.json()["error"]
    assert e["sqlstate"] == "42501" and "bank.accounts" in e["message"] and e["hint"]
    assert server.sql("SELECT 1 + 1 AS two", alice).json()["rows"] == [[2]]
    r = server.sql("SELECT * FROM read_parquet('/etc/passwd')", alice)
    assert r.status == 403
    # a revoked token stops working at once
    tid = lake.run("token", "list", "--user", "alice").stdout.splitlines()[1].split()[0]
    lake.run("token", "revoke", tid)
    assert server.sql("SELECT 1", alice).status == 401
    # an expired-by-drop user: dropping the user drops its tokens
    bob = (lake.run("sql", "CREATE USER bob WITH PASSWORD 'x'"), token_for(lake, "bob"))[1]
    assert server.sql("SELECT 1", bob).status == 200
    lake.run("sql", "DROP USER bob")
    assert server.sql("SELECT 1", bob).status == 401


def test_http_history_is_per_caller_and_redacted(server):
    lake = server.lake
    lake.run("sql", "CREATE USER alice WITH PASSWORD 'pw'")
    admin, alice = token_for(lake, "admin"), token_for(lake, "alice")
    assert server.sql("SELECT 1 AS a", admin).status == 200
    assert server.sql("CREATE USER carol WITH PASSWORD 'Carol-S3cret-pw'", admin).status == 200
    assert server.sql("SELECT 2 AS b, 3 AS c", alice).status == 200
    assert server.sql("SELECT nope FROM nowhere.t", alice).status == 403  # no table enumeration either
    r = server.request("GET", "/v1/queries", token=alice)
    assert r.status == 200
    q = r.json()["queries"]
    assert [x["sql"] for x in q] == ["SELECT nope FROM nowhere.t", "SELECT 2 AS b, 3 AS c"]
    assert q[0]["status"] == "error" and q[0]["sqlstate"] == "42501"
    assert q[1]["status"] == "ok" and q[1]["rows"] == 1 and q[1]["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", q[1]["start"])
    assert "bytes_scanned" in q[1]
    mine = [x["sql"] for x in server.request("GET", "/v1/queries", token=admin).json()["queries"]]
    assert mine == ["CREATE USER carol WITH PASSWORD '********'", "SELECT 1 AS a"]
    assert server.request("GET", "/v1/queries?limit=1", token=admin).json()["queries"][0]["sql"].startswith("CREATE")
    assert server.request("GET", "/v1/queries?limit=x", token=admin).status == 400
    assert server.request("GET", "/v1/queries").status == 401
    # the password is nowhere: not in the catalog, not in the server log
    assert files_containing(lake.root, b"Carol-S3cret-pw") == []


def test_http_metrics(server):
    lake = server.lake
    admin = token_for(lake, "admin")
    server.sql("SELECT 1", admin)
    server.sql("SELECT * FROM nowhere.t", admin)
    r = server.request("GET", "/metrics", token=admin)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for line in r.text.splitlines():
        if line.startswith("#") or not line:
            assert line == "" or re.match(r"# (HELP|TYPE) loch_\w+ ", line), line
            continue
        m = re.fullmatch(r'(loch_\w+)\{(\w+)="([^"]*)"\} (-?[0-9.e+]+)', line)
        assert m, line
        samples[(m[1], m[3])] = float(m[4])
    assert samples[("loch_queries_total", "http")] >= 2
    assert samples[("loch_query_errors_total", "http")] >= 1
    assert samples[("loch_connections_total", "http")] >= 3
    assert ("loch_queries_total", "pgwire") in samples
    assert "loch_replication_lag_seconds" in r.text


def test_http_bad_requests_keep_serving(server):
    admin = token_for(server.lake, "admin")
    cases = [
        (server.request("POST", "/v1/sql", token=admin, raw=b"{not json"), 400, "not JSON"),
        (server.request("POST", "/v1/sql", token=admin, raw=b"[1,2]"), 400, "sql"),
        (server.request("POST", "/v1/sql", {"sql": 42}, token=admin), 400, "sql"),
        (server.request("POST", "/v1/sql", {"sql": ""}, token=admin), 400, "sql"),
        (server.request("POST", "/v1/sql", token=admin, raw=b'{"sql": "SELECT \\u0000 1"}'), 400, "NUL"),
        (server.request("POST", "/v1/sql", token=admin, raw=b"x" * (2 << 20)), 413, "limit"),
        (server.request("GET", "/v1/sql", token=admin), 405, "POST"),
        (server.request("DELETE", "/metrics"), 405, "GET"),
        (server.request("GET", "/v2/nothing", token=admin), 404, "no route"),
        (server.sql("SELEC 1", admin), 400, "syntax"),
        (server.sql("SELECT 1", admin, accept="image/png"), 406, "Accept"),
    ]
    for r, status, word in cases:
        assert r.status == status, (status, r.text)
        assert r.headers["Content-Type"].startswith("application/json")
        e = r.json()["error"]
        assert word in e["message"] + (e.get("hint") or ""), e
        assert re.fullmatch(r"[0-9A-Z]{5}", e["sqlstate"])
    assert server.sql("SELECT 42 AS answer", admin).json()["rows"] == [[42]]
    assert server.proc.poll() is None


def test_http_concurrent_clients(server):
    lake = server.lake
    load_accounts(lake)
    admin = token_for(lake, "admin")

    def one(i):
        r = server.sql(f"SELECT count(*) + {i} AS n FROM bank.accounts", admin)
        return r.status, r.json()["rows"][0][0]

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(one, range(40)))
    assert results == [(200, 3 + i) for i in range(40)]


def test_wire_users_created_over_the_wire(server):
    """An administrator creates a user over the PostgreSQL protocol; the user logs in with
    SCRAM against the stored verifier, is denied lake tables, and no password is logged."""
    import psycopg
    lake = server.lake
    load_accounts(lake)
    dsn = dict(host="127.0.0.1", port=server.sql_port, dbname="lake", connect_timeout=10)
    with psycopg.connect(user="admin", password=ADMIN_PASSWORD, **dsn) as c:
        assert c.execute("SELECT count(*) FROM bank.accounts").fetchone() == (3,)
        c.execute("CREATE USER wendy WITH PASSWORD 'W3ndy-wire-pw'")
    with psycopg.connect(user="wendy", password="W3ndy-wire-pw", **dsn) as c:
        assert c.execute("SELECT 40 + 2").fetchone() == (42,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            c.execute("SELECT * FROM bank.accounts")
        assert "bank.accounts" in str(e.value)
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(user="wendy", password="wrong", **dsn)
    msg_wrong_pw = str(e.value).replace("wendy", "X")
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(user="nosuchuser", password="wrong", **dsn)
    assert str(e.value).replace("nosuchuser", "X") == msg_wrong_pw  # no user enumeration
    # the wire's queries are in the same history, listed per caller over HTTP
    with psycopg.connect(user="wendy", password="W3ndy-wire-pw", autocommit=True, **dsn) as c:
        c.execute("ALTER USER wendy WITH PASSWORD 'W3ndy-wire-pw'")  # own password: allowed
        c.execute("SELECT 'from the wire' AS w")
    wendy = token_for(lake, "wendy")
    q = server.request("GET", "/v1/queries", token=wendy).json()["queries"]
    wire = [x for x in q if x["protocol"] == "pgwire"]
    assert [x["sql"] for x in wire][:2] == ["SELECT 'from the wire' AS w", "ALTER USER wendy WITH PASSWORD '********'"]
    assert any(x["sqlstate"] == "42501" for x in wire)
    assert all(x["user"] == "wendy" for x in q)
    server.stop()
    assert files_containing(lake.root, b"W3ndy-wire-pw") == []


def test_http_query_time_limit(admin_lake):
    s = Server(admin_lake, timeout_ms=300)
    try:
        admin = token_for(admin_lake, "admin")
        r = s.sql("SELECT count(*) FROM range(100000000000) a", admin)
        assert r.status == 400, r.text
        e = r.json()["error"]
        assert e["sqlstate"] == "57014" and "timeout" in e["message"]
        assert s.sql("SELECT 1 AS fast", admin).json()["rows"] == [[1]]
    finally:
        s.stop()


def test_http_streams_large_results_and_late_errors(server):
    """One read statement streams: a large result arrives whole; an error after rows
    have gone out ends the JSON body with an "error" member (the status was already 200),
    and truncates a CSV body (the transfer fails, so the client cannot take it as whole)."""
    admin = token_for(server.lake, "admin")
    n = 300_000
    j = server.sql(f"SELECT i, i % 7 = 0 AS seven, CAST(i / 100 AS DECIMAL(18,2)) AS d FROM range({n}) t(i)",
                   admin).json()
    assert j["tag"] == f"SELECT {n}" and len(j["rows"]) == n
    assert j["rows"][n - 1] == [n - 1, (n - 1) % 7 == 0, f"{(n - 1) / 100:.2f}"]
    late = "SELECT CASE WHEN i > 3000000 THEN error('boom late') ELSE i END AS v FROM range(4000000) t(i)"
    r = server.sql(late, admin)
    assert r.status == 200
    j = r.json()
    assert "tag" not in j and "boom late" in j["error"]["message"] and len(j["rows"]) < 4000000
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
    c.request("POST", "/v1/sql", '{"sql": "%s"}' % late,
              {"Authorization": f"Bearer {admin}", "Accept": "text/csv"})
    resp = c.getresponse()
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    c.close()
    q = server.request("GET", "/v1/queries?limit=2", token=admin).json()["queries"]
    assert [x["status"] for x in q] == ["error", "error"]
    assert server.sql("SELECT 1 AS still_serving", admin).json()["rows"] == [[1]]


def test_http_stop_interrupts_running_queries(admin_lake):
    s = Server(admin_lake)
    admin = token_for(admin_lake, "admin")
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        slow = [ex.submit(s.sql, "SELECT count(*) FROM range(1000000000000) a", admin) for _ in range(2)]
        time.sleep(1.5)
        t0 = time.time()
        s.stop()  # asserts a clean exit
        assert time.time() - t0 < 20
        for f in slow:
            try:
                r = f.result(timeout=30)
                assert r.status >= 400  # interrupted: an error, never a result
            except OSError:
                pass  # or the connection closed
