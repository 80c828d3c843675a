"""A non-administrator attacks `loch serve` (issue 12): over psql (simple protocol), psycopg
(extended protocol) and HTTP, statements that smuggle lake reads, file access, writes and
forgeries past the guard. Whatever the wrapping, the attacker gets no lake row, no file,
no setting that names the lake, and nothing the administrator later reads is forged.
The servers run real clients against the real binary; every check reads the outcome."""
import itertools
import json
import os
import random
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from conftest import LOCH, Lake
from pgserver import ADMIN_PASSWORD, Server

SECRET = "SECRET-7731-ROW"
MALLORY_PW = "mallory-Pw-99"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    root = tmp_path_factory.mktemp("sec")
    env = dict(os.environ, LOCH_ADMIN_PASSWORD=ADMIN_PASSWORD)
    subprocess.run([LOCH, "init", str(root / "lake")], check=True, capture_output=True, env=env)
    lake = Lake(root / "lake")
    f = root / "accounts.csv"
    f.write_text("id,name,balance\n" + "".join(f"{i},{SECRET if i == 2 else 'n' + str(i)},{i * 10}\n"
                                                 for i in range(1, 6)))
    lake.run("load", "bank.core.accounts", f)
    lake.run("sql", f"CREATE USER mallory WITH PASSWORD '{MALLORY_PW}'")
    s = Server(lake).start()
    s.token = lake.run("token", "create", "--user", "mallory").stdout.strip().splitlines()[-1]
    s.admin_token = lake.run("token", "create", "--user", "admin").stdout.strip().splitlines()[-1]
    yield s
    s.stop()


def paths(s):
    wh = (s.lake.root / "warehouse").resolve()
    st = (s.lake.root / "state").resolve()
    return wh, st


def forbidden_text(s):
    """What no answer to mallory may contain: a lake row, a verifier, a lake path."""
    wh, st = paths(s)
    return [SECRET, "SCRAM-SHA-256$", str(wh), str(st), str(s.lake.root.resolve())]


def http_sql(s, sql, token):
    req = urllib.request.Request(f"http://127.0.0.1:{s.http_port}/v1/sql", data=json.dumps({"sql": sql}).encode(),
                                 method="POST", headers={"Authorization": f"Bearer {token}",
                                                         "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def via_psycopg(s, sql):
    """(ok, text): rows or the error, through the extended protocol."""
    try:
        with psycopg.connect(s.dsn("mallory", MALLORY_PW), autocommit=True) as c:
            cur = c.execute(sql, prepare=True)
            return True, repr(cur.fetchall() if cur.description else cur.statusmessage)
    except psycopg.Error as e:
        return False, f"{getattr(e, 'sqlstate', None)} {e}"


def via_psql(s, sql):
    p = s.psql("-c", sql, user="mallory", password=MALLORY_PW, check=False)
    return p.returncode == 0, p.stdout + p.stderr


def via_http(s, sql):
    status, body = http_sql(s, sql, s.token)
    return status == 200, body


def assert_clean(s, how, sql, ok, text):
    # an error may quote what the attacker typed; what else it says must hold nothing
    for lit in sorted(re.findall(r"'([^']*)'|\"([^\"]*)\"", sql), key=lambda t: -len(t[0] + t[1])):
        if lit[0] + lit[1]:
            text = text.replace(lit[0] + lit[1], "<typed>")
    for bad in forbidden_text(s):
        assert bad not in text, f"{how}: {sql!r} leaked {bad!r}: {text[:500]}"


def lake_files(s):
    wh, st = paths(s)
    out = set()
    for root in (wh, st):
        for p in root.rglob("*"):
            rel = p.relative_to(s.lake.root.resolve())
            if "restricted" in rel.parts or "tmp" in rel.parts or p.name.startswith("catalog.db"):
                continue
            out.add(str(rel))
    return out


def admin_rows(s):
    with psycopg.connect(s.dsn(), autocommit=True) as c:
        return c.execute("SELECT id, name FROM bank.core.accounts ORDER BY id").fetchall()


# ---- the reported findings, as regression tests ----

def smuggled(s):
    wh, st = paths(s)
    glob = f"{wh}/bank/core/accounts/data/*.parquet"
    meta = next((wh / "bank/core/accounts/metadata").glob("*.metadata.json"))
    pre = "/* /* */ SET timezone = 'UTC' */ "
    return [
        pre + "SELECT * FROM bank.core.accounts",
        pre + f"SELECT * FROM read_blob('{st}/catalog.db')",
        pre + f"COPY (SELECT 1 AS x) TO '{wh}/pwned.csv'",
        pre + f"COPY (SELECT 1 AS x) TO '{st}/pwned.csv'",
        pre + f"ATTACH '{st}/catalog.db' AS c",
        pre + "CREATE MACRO lower(x) AS 'FORGED'",
        pre + "CREATE OR REPLACE VIEW bank.core.accounts AS SELECT 2 AS id, 'FORGED' AS name",
        pre + "CREATE OR REPLACE VIEW accounts AS SELECT 'FORGED' AS name",
        f"SELECT * FROM '{glob}', (WITH \"{glob}\" AS (SELECT 1) SELECT 1)",
        f"SELECT EXISTS (SELECT * FROM '{glob}' WHERE name = '{SECRET}'), (WITH \"{glob}\" AS (SELECT 1) SELECT 1)",
        f"(WITH \"{glob}\" AS (SELECT 1) SELECT 'x') UNION ALL SELECT name FROM '{glob}'",
        f"SELECT (SELECT max(name) FROM '{glob}') AS m, (WITH \"{glob}\" AS (SELECT 1) SELECT 1)",
        f"FROM '{glob}' SELECT *, (WITH \"{glob}\" AS (SELECT 1) SELECT 1)",
        f"SELECT * FROM '{meta}', (WITH \"{meta}\" AS (SELECT 1) SELECT 1)",
        "SELECT * FROM t, (WITH t AS (SELECT 1) SELECT 1)",
        "SELECT * FROM bank.core.accounts",
        f"SELECT * FROM read_parquet('{glob}')",
        f"SELECT * FROM read_text('{st}/catalog.db')",
        "SELECT * FROM query('SELECT * FROM bank.core.accounts')",
    ]


def info_probes(s):
    return [
        "SELECT current_setting('allowed_directories')",
        "SELECT current_setting('temp_directory')",
        "SELECT name, setting FROM pg_settings",
        "SELECT pg_get_viewdef(x) FROM range(0, 4000) t(x)",
        "SELECT json_serialize_plan('SELECT * FROM bank.core.accounts')",
        "SHOW ALL TABLES",
        "SHOW DATABASES",
        "SELECT * FROM duckdb_databases()",
        "SELECT * FROM duckdb_views()",
        "SELECT datname FROM pg_database",
        "SELECT 1; SELECT datname FROM pg_database",
        "SELECT 1; SELECT name, setting FROM pg_settings",
        "SELECT 1; SELECT * FROM bank.core.accounts",
    ]


@pytest.mark.parametrize("how", ["psql", "psycopg", "http"])
def test_smuggled_statements_reach_nothing(srv, how):
    run = {"psql": via_psql, "psycopg": via_psycopg, "http": via_http}[how]
    before = lake_files(srv)
    want = admin_rows(srv)
    assert (2, SECRET) in want
    for sql in smuggled(srv) + info_probes(srv):
        if how == "psycopg" and sql.count(";"):
            continue  # the extended protocol carries one statement
        ok, text = run(srv, sql)
        assert_clean(srv, how, sql, ok, text)
        if "bank.core.accounts" in sql or ".parquet" in sql or "catalog.db" in sql or "COPY" in sql \
                or "CREATE" in sql or "ATTACH" in sql:
            assert not ok or "42501" in text, f"{how}: {sql!r} was allowed: {text[:300]}"
    # nothing was written into the lake or the state folder, nothing forged
    assert lake_files(srv) == before
    assert admin_rows(srv) == want
    ok, text = via_http(srv, "SELECT lower('ABC') AS l")
    assert ok and "FORGED" not in text and "abc" in text
    status, body = http_sql(srv, "SELECT name FROM bank.core.accounts WHERE id = 2", srv.admin_token)
    assert status == 200 and SECRET in body and "FORGED" not in body


def test_denials_name_what_was_refused_without_an_existence_oracle(srv):
    with psycopg.connect(srv.dsn("mallory", MALLORY_PW), autocommit=True) as c:
        msgs = []
        for name in ("bank.core.accounts", "bank.core.nosuch"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
                c.execute(f"SELECT * FROM {name}")
            msgs.append(str(e.value).replace(name, "NAME"))
            assert f"permission denied for relation {name}" in str(e.value)
        assert msgs[0] == msgs[1]
        # honest statements still work, and the client SETs psql and drivers send
        assert c.execute("SELECT sum(i) FROM range(10) t(i)").fetchone() == (45,)
        c.execute("SET application_name = 'x'")
        assert c.execute("SELECT %s::int + 1", (41,)).fetchone() == (42,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            c.execute("SELECT current_setting('allowed_directories')")
        assert "current_setting" in str(e.value)


def test_restricted_engine_holds_when_the_guard_is_bypassed(srv):
    """The second wall: the engine a non-administrator's statements run on has no file
    access, no lake object and a read-only catalog. `loch sql --as` runs there too;
    the statements below are refused by the guard, and the restricted database itself is
    shown to hold nothing of the lake through what the guard does allow."""
    lake = srv.lake
    p = lake.run("sql", "--as", "mallory", "--format", "json",
                 "SELECT count(*) AS n FROM pg_settings WHERE setting LIKE '%/%'", check=False)
    assert p.returncode == 0, p.stderr
    for bad in forbidden_text(srv):
        assert bad not in p.stdout
    p = lake.run("sql", "--as", "mallory", "--format", "json", "SELECT datname FROM pg_database", check=False)
    assert p.returncode == 0 and "lake" in p.stdout and str(lake.root) not in p.stdout, p.stdout + p.stderr


# ---- property: allowed statements wrapped every way never reach data ----

def wrappers():
    return [
        lambda q: q,
        lambda q: f"/* c */ {q}",
        lambda q: f"/* /* nested */ SET timezone = 'UTC' */ {q}",
        lambda q: f"-- line\n{q}",
        lambda q: f"SELECT * FROM ({q}) sub",
        lambda q: f"WITH w AS ({q}) SELECT * FROM w",
        lambda q: f"WITH w AS (SELECT 1) SELECT * FROM ({q}) x, w",
        lambda q: f"SELECT EXISTS ({q}) AS e",
        lambda q: f"SELECT 1 AS a UNION ALL SELECT count(*) FROM ({q}) u",
        lambda q: f"SELECT (SELECT count(*) FROM ({q}) s) AS n",
        lambda q: f"SELECT * FROM range(1) r, LATERAL ({q}) l",
        lambda q: f"({q})",
        lambda q: f"SELECT * FROM ({q}) x WHERE 1 = (WITH t AS (SELECT 1) SELECT 1)",
    ]


def cores(s):
    wh, st = paths(s)
    glob = f"{wh}/bank/core/accounts/data/*.parquet"
    return [
        "SELECT * FROM bank.core.accounts",
        "SELECT * FROM \"bank\".\"core\".\"accounts\"",
        f"SELECT * FROM '{glob}'",
        f"SELECT * FROM '{glob}', (WITH \"{glob}\" AS (SELECT 1) SELECT 1) z",
        f"SELECT * FROM read_parquet('{glob}')",
        f"SELECT * FROM parquet_scan(['{glob}'])",
        f"SELECT content FROM read_text('{st}/catalog.db')",
        f"SELECT content FROM read_blob('{wh}/bank/core/accounts/metadata/*.json')",
        f"SELECT * FROM glob('{wh}/**')",
        "SELECT * FROM accounts, (WITH accounts AS (SELECT 1) SELECT 1) z",
        "FROM bank.core.accounts",
    ]


def test_property_wrapped_reads_never_reach_a_file(srv):
    rnd = random.Random(12)
    combos = list(itertools.product(cores(srv), wrappers()))
    for core, wrap in combos:
        sql = wrap(core)
        ok, text = via_http(srv, sql)
        assert_clean(srv, "http", sql, ok, text)
        assert not ok, f"allowed: {sql!r}: {text[:300]}"
    # a sample through the extended protocol and psql too (each starts a connection)
    for core, wrap in rnd.sample(combos, 25):
        sql = wrap(core)
        for how, run in (("psycopg", via_psycopg), ("psql", via_psql)):
            ok, text = run(srv, sql)
            assert_clean(srv, how, sql, ok, text)
            assert not ok, f"{how} allowed: {sql!r}: {text[:300]}"
