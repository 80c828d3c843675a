"""Query limits per role (query.roles in loch.yaml) and bytes_scanned in the query history,
against a real `loch serve`: time limits name the config key they came from, a role's
memory limit is a DuckDB database of its own (its members' queries fail with 53200 where
the administrator's same query runs), and /v1/queries reports the bytes of the lake files
a query's scans covered, checked against PyIceberg's own reading of the table."""
import concurrent.futures
import os
import subprocess

import psycopg
import pytest

from access_fixtures import ADMIN_PASSWORD, Server, token_for
from conftest import LOCH, Lake

# About 3 s on this machine (2 cores): far beyond the 300 ms limits, done in time otherwise.
SLOW_SQL = "SELECT count(*) FROM range(15000) a, range(15000) b WHERE a.range + b.range > 5"
SLOW_COUNT = 15000 * 15000 - 21
# A list of 30M BIGINTs (> 240 MB) cannot spill: it fails under a 64 MB limit.
BIG_SQL = "SELECT sum(len(l)) AS n FROM (SELECT list(i) AS l FROM range(30000000) t(i))"
PW = "Us3r-pw-for-limits"


def make_lake(tmp_path, roles=None, timeout_ms=0, memory_mb=0):
    """A lake whose admin password is known and whose query section has these limits;
    roles is the YAML text of query.roles (indented under it)."""
    env = dict(os.environ, LOCH_ADMIN_PASSWORD=ADMIN_PASSWORD)
    subprocess.run([LOCH, "init", str(tmp_path / "lake")], check=True, capture_output=True, env=env)
    lake = Lake(tmp_path / "lake")
    cfg = lake.config.read_text()
    assert "  timeout_ms: 0    #" in cfg and "  memory_mb: 0     #" in cfg and "  threads: 0       #" in cfg
    cfg = cfg.replace("  timeout_ms: 0    #", f"  timeout_ms: {timeout_ms}    #")
    cfg = cfg.replace("  memory_mb: 0     #", f"  memory_mb: {memory_mb}     #")
    if roles:
        block = "".join(f"    {line.strip()}\n" for line in roles.strip().splitlines())
        cfg = cfg.replace("  threads: 0       # 0 = all cores\n", "  threads: 0       # 0 = all cores\n  roles:\n" + block)
    lake.config.write_text(cfg)
    return lake


def users(lake, *stmts):
    lake.run("sql", "; ".join(stmts))


def connect(server, user="admin", password=ADMIN_PASSWORD):
    return psycopg.connect(host="127.0.0.1", port=server.sql_port, user=user, password=password, dbname="lake",
                           sslmode="disable", autocommit=True)


def pg_error(server, user, sql):
    """The psycopg error the statement raises for user (None when it succeeds)."""
    with connect(server, user, PW if user != "admin" else ADMIN_PASSWORD) as c:
        try:
            c.execute(sql).fetchall()
        except psycopg.Error as e:
            return e
    return None


def pg_scalar(server, sql, user="admin"):
    with connect(server, user, PW if user != "admin" else ADMIN_PASSWORD) as c:
        return c.execute(sql).fetchone()[0]


@pytest.fixture
def serve():
    started = []

    def start(lake):
        s = Server(lake)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


# ---- time limits ----

def test_role_time_limit_names_its_key_and_others_go_on(tmp_path, serve):
    lake = make_lake(tmp_path, "slow: {timeout_ms: 300}")
    users(lake, "CREATE ROLE slow", f"CREATE USER sam WITH PASSWORD '{PW}' IN ROLE slow")
    server = serve(lake)
    sam_token, admin_token = token_for(lake, "sam"), token_for(lake, "admin")
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        admin_run = ex.submit(pg_scalar, server, SLOW_SQL)
        sam_run = ex.submit(pg_error, server, "sam", SLOW_SQL)
        http_run = ex.submit(server.sql, SLOW_SQL, sam_token)
        e = sam_run.result(timeout=60)
        r = http_run.result(timeout=60)
        # stopped at its limit: the administrator's same query, started first, is still running
        admin_still_running = not admin_run.done()
        assert admin_run.result(timeout=120) == SLOW_COUNT  # ... and runs to its end
    assert admin_still_running
    assert isinstance(e, psycopg.errors.QueryCanceled), e
    assert e.diag.sqlstate == "57014"
    assert e.diag.message_primary == "canceling statement due to statement timeout"
    assert e.diag.message_detail == "the limit is 300 ms (query.roles.slow.timeout_ms)"
    assert r.status == 400 and r.json()["error"]["sqlstate"] == "57014", r.body
    assert r.json()["error"]["detail"] == "the limit is 300 ms (query.roles.slow.timeout_ms)"
    # the server keeps serving both
    assert pg_scalar(server, "SELECT 41 + 1", "sam") == 42 and pg_scalar(server, "SELECT 7") == 7
    assert server.sql("SELECT 1 AS x", sam_token).json()["rows"] == [[1]]
    assert server.sql("SELECT 1 AS x", admin_token).json()["rows"] == [[1]]


def test_which_entry_applies(tmp_path, serve):
    """The user's own entry beats role entries; among roles the strictest non-zero value
    wins, through nested roles too; 0 (no limit) holds only when nothing stricter applies;
    without entries the global limit holds."""
    lake = make_lake(tmp_path, """
        slow: {timeout_ms: 300}
        vip: {timeout_ms: 700}
        loose: {timeout_ms: 5000}
        tight: {timeout_ms: 400}
        etl: {timeout_ms: 0}
        admin: {timeout_ms: 0}
    """, timeout_ms=250)
    users(lake, "CREATE ROLE slow", "CREATE ROLE loose", "CREATE ROLE tight", "CREATE ROLE etl", "CREATE ROLE inner",
          "GRANT tight TO inner",
          f"CREATE USER plain WITH PASSWORD '{PW}'",
          f"CREATE USER vip WITH PASSWORD '{PW}' IN ROLE slow",
          f"CREATE USER both WITH PASSWORD '{PW}' IN ROLE loose",
          "GRANT tight TO both",
          f"CREATE USER deep WITH PASSWORD '{PW}' IN ROLE inner",
          f"CREATE USER etl1 WITH PASSWORD '{PW}' IN ROLE etl",
          f"CREATE USER etl2 WITH PASSWORD '{PW}' IN ROLE etl",
          "GRANT slow TO etl2")
    server = serve(lake)
    want = {
        "plain": "the limit is 250 ms (query.timeout_ms)",
        "vip": "the limit is 700 ms (query.roles.vip.timeout_ms)",      # own entry, though slow is stricter
        "both": "the limit is 400 ms (query.roles.tight.timeout_ms)",   # the stricter of two roles
        "deep": "the limit is 400 ms (query.roles.tight.timeout_ms)",   # through a nested role
        "etl2": "the limit is 300 ms (query.roles.slow.timeout_ms)",    # 0 yields to a stricter entry
    }
    with concurrent.futures.ThreadPoolExecutor(len(want) + 2) as ex:
        runs = {u: ex.submit(pg_error, server, u, SLOW_SQL) for u in want}
        etl = ex.submit(pg_scalar, server, SLOW_SQL, "etl1")      # etl: no limit, not the global 250 ms
        admin = ex.submit(pg_scalar, server, SLOW_SQL)            # admin's own entry: no limit
        assert etl.result(timeout=180) == SLOW_COUNT
        assert admin.result(timeout=180) == SLOW_COUNT
        for u, detail in want.items():
            e = runs[u].result(timeout=60)
            assert e is not None and e.diag.sqlstate == "57014", (u, e)
            assert e.diag.message_detail == detail, u


# ---- memory limits ----

def test_role_memory_limit_is_its_own_database(tmp_path, serve):
    lake = make_lake(tmp_path, "small: {memory_mb: 64}")
    users(lake, "CREATE ROLE small", f"CREATE USER mia WITH PASSWORD '{PW}' IN ROLE small",
          f"CREATE USER ned WITH PASSWORD '{PW}'")
    server = serve(lake)
    mia_token = token_for(lake, "mia")
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        mia = ex.submit(pg_error, server, "mia", BIG_SQL)
        admin = ex.submit(pg_scalar, server, BIG_SQL)
        ned = ex.submit(pg_scalar, server, BIG_SQL, "ned")  # not in the role: the global (default) limit
        e = mia.result(timeout=120)
        assert admin.result(timeout=120) == 30000000
        assert ned.result(timeout=120) == 30000000
    assert e is not None and e.diag.sqlstate == "53200", e
    assert "Out of Memory" in e.diag.message_primary
    r = server.sql(BIG_SQL, mia_token)
    assert r.status == 500 and r.json()["error"]["sqlstate"] == "53200", r.body
    # the role's members still run what fits
    assert pg_scalar(server, "SELECT sum(i) FROM range(1000) t(i)", "mia") == 499500
    assert server.sql("SELECT 2 AS x", mia_token).json()["rows"] == [[2]]


def test_admin_in_a_resource_group_reads_the_lake(tmp_path, serve):
    """Sessions on a resource group's database read lake views, with deletes applied
    through loch_keep masks registered in that database."""
    lake = make_lake(tmp_path, "admin: {memory_mb: 512}")
    src = tmp_path / "acc.csv"
    src.write_text("id,amount\n" + "".join(f"{i},{i * 10}\n" for i in range(1, 101)))
    lake.run("load", "bank.acc", src)
    lake.run("sql", "DELETE FROM bank.acc WHERE id <= 10")
    server = serve(lake)
    assert pg_scalar(server, "SELECT count(*) FROM bank.acc") == 90
    assert pg_scalar(server, "SELECT min(id) FROM bank.acc") == 11
    r = server.sql("SELECT count(*) AS n, CAST(sum(amount) AS BIGINT) AS s FROM bank.acc", token_for(lake, "admin"))
    assert r.status == 200 and r.json()["rows"] == [[90, sum(i * 10 for i in range(11, 101))]], r.body
    # ... and that database has the group's limit (512 MB = 488.2 MiB), not the global default
    assert pg_scalar(server, "SELECT current_setting('memory_limit')") == "488.2 MiB"
    # psql's catalog queries are answered there too
    env = dict(os.environ, PGPASSWORD=ADMIN_PASSWORD, PGSSLMODE="disable", PGCONNECT_TIMEOUT="10")
    p = subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(server.sql_port), "-U", "admin", "-d", "lake",
                        "-c", r"\dt bank.*"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0 and "acc" in p.stdout, p.stderr


# ---- config errors ----

@pytest.mark.parametrize("roles,message", [
    ("x: {timeot_ms: 300}", 'unknown key "timeot_ms" in query.roles.x'),
    ("x: {timeout_ms: -5}", "query.roles.x.timeout_ms must be between 0 and"),
    ("x: {memory_mb: -1}", "query.roles.x.memory_mb must be between 0 and"),
    ("x: {memory_mb: lots}", 'expected a number for query.roles.x.memory_mb, got "lots"'),
    ("x: [1, 2]", "expected a mapping (key: value lines) for query.roles.x, got a list"),
    ("x:", "query.roles.x has no limits"),
])
def test_bad_roles_config(tmp_path, roles, message):
    lake = make_lake(tmp_path, roles)
    p = lake.run("tables", check=False)
    assert p.returncode != 0 and message in p.stderr, p.stderr
    assert "loch.yaml:" in p.stderr  # file and line named
    if "timeot" in roles:
        assert 'did you mean "timeout_ms"' in p.stderr
    p = subprocess.run([LOCH, "-c", str(lake.config), "serve"], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and message in p.stderr


def test_init_config_still_loads_with_roles_example(tmp_path):
    lake = make_lake(tmp_path)
    assert "# roles:" in lake.config.read_text()
    lake.run("tables")
    cfg = lake.config.read_text().replace("  # roles:\n  #   analysts:", "  roles:\n    analysts:")
    cfg = cfg.replace("  #   etl: {timeout_ms: 0}", "    etl: {timeout_ms: 0}")
    lake.config.write_text(cfg)
    lake.run("tables")  # the documented example is valid as written


# ---- bytes_scanned ----

def iceberg_bytes(lake, name):
    """file_size_in_bytes of the data and delete files of the table's current snapshot,
    as PyIceberg plans a full scan."""
    t = lake.catalog().load_table(name)
    data = dels = 0
    seen = set()
    for task in t.scan().plan_files():
        data += task.file.file_size_in_bytes
        for d in task.delete_files:
            if d.file_path not in seen:
                seen.add(d.file_path)
                dels += d.file_size_in_bytes
    return data, dels


def test_bytes_scanned_in_history(tmp_path, serve):
    lake = make_lake(tmp_path)
    for part in range(2):  # two data files
        src = tmp_path / f"acc{part}.csv"
        src.write_text("id,amount,name\n" + "".join(f"{i},{i}.5,name{i}\n" for i in range(part * 500, part * 500 + 500)))
        lake.run("load", "bank.acc", src)
    lake.run("sql", f"CREATE USER alice WITH PASSWORD '{PW}'")
    server = serve(lake)
    admin, alice = token_for(lake, "admin"), token_for(lake, "alice")
    data, dels = iceberg_bytes(lake, "bank.acc")
    assert data > 0 and dels == 0
    assert server.sql("SELECT * FROM bank.acc", admin).status == 200
    assert server.sql("SELECT 1", admin).status == 200
    assert server.sql("SELECT count(*) AS n FROM bank.acc a JOIN bank.acc b USING (id)", admin).status == 200
    assert server.sql("SELECT 2", alice).status == 200
    q = server.request("GET", "/v1/queries", token=admin).json()["queries"]
    got = {x["sql"]: x["bytes_scanned"] for x in q}
    assert got["SELECT * FROM bank.acc"] == data
    assert got["SELECT 1"] == 0
    assert got["SELECT count(*) AS n FROM bank.acc a JOIN bank.acc b USING (id)"] == 2 * data  # two scans
    assert server.request("GET", "/v1/queries", token=alice).json()["queries"][0]["bytes_scanned"] == 0

    # deletes: the delete file the scan applies counts too (and the view made before is not reused)
    lake.run("sql", "DELETE FROM bank.acc WHERE id < 100")
    data2, dels2 = iceberg_bytes(lake, "bank.acc")
    assert dels2 > 0
    with connect(server) as c:
        assert c.execute("SELECT count(*) FROM bank.acc").fetchone()[0] == 900
        assert c.execute("SELECT count(*) FROM bank.acc WHERE id > %s", (900,), prepare=True).fetchone()[0] == 99
        assert c.execute("SELECT 3").fetchone()[0] == 3
    q = server.request("GET", "/v1/queries?limit=3", token=admin).json()["queries"]
    assert all(x["protocol"] == "pgwire" for x in q), q
    got = {x["sql"]: x["bytes_scanned"] for x in q}
    assert got["SELECT count(*) FROM bank.acc"] == data2 + dels2  # simple protocol
    assert got["SELECT count(*) FROM bank.acc WHERE id > $1"] == data2 + dels2  # extended protocol
    assert got["SELECT 3"] == 0
