"""The lake's confinement against the filesystem (issue 12, findings 5 and 6 and the Low
list): names that would leave the state or warehouse folders are refused before any
path is built, an administrator's SQL in `loch serve` cannot follow a symlink out of the
lake (reads, COPY ... TO, over psql, psycopg and HTTP), files are the owner's alone, and
DuckDB spills into an absolute folder under the state folder."""
import os
import stat
import subprocess

import pytest

from access_fixtures import ADMIN_PASSWORD, Server, admin_lake, server, token_for  # noqa: F401
from conftest import LOCH, Lake

SECRET = "top-secret-outside-the-lake-4711"


def tree(root):
    """Every path under root (files, folders, symlinks), relative."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, n), root))
    return out


@pytest.fixture
def deep_lake(tmp_path):
    """A lake four folders below tmp_path, so a traversal of up to four levels from the
    state or warehouse folder stays inside tmp_path, where it can be seen."""
    root = tmp_path / "a" / "b" / "c" / "lake"
    subprocess.run([LOCH, "init", str(root)], check=True, capture_output=True)
    return Lake(root)


BAD_NAMES = [
    '"../../../escape_ns".t',
    '"../../escape_ns".t',
    'core."../../../../escape_t"',
    'core."a/b"',
    '"a/b".t',
    '"..".t',
    'core.".."',
    '"core\\x".t',
    'main.t',
    '"pg_catalog".t',
    '"information_schema".t',
    'core."x*"',
]


def test_traversal_names_create_nothing_outside(deep_lake, tmp_path):
    lake = deep_lake
    before = tree(tmp_path)
    for name in BAD_NAMES:
        p = lake.run("sql", f"CREATE TABLE {name} (a INT)", check=False)
        assert p.returncode != 0, name
        assert "SQLSTATE: 42602" in p.stderr, (name, p.stderr)
        assert "invalid" in p.stderr, (name, p.stderr)
        p = lake.run("sql", f"CREATE TABLE {name} AS SELECT 1 AS a", check=False)
        assert "SQLSTATE: 42602" in p.stderr, (name, p.stderr)
        p = lake.run("sql", f"DROP TABLE {name}", check=False)
        assert "SQLSTATE: 42602" in p.stderr, (name, p.stderr)
    p = lake.run("load", '../../../escape_ns.t', "/dev/null", check=False)
    assert p.returncode != 0
    lake.run("sql", "CREATE TABLE core.ok (a INT)")
    p = lake.run("sql", 'ALTER TABLE core.ok RENAME TO "../../x"', check=False)
    assert "SQLSTATE: 42602" in p.stderr, p.stderr
    after = tree(tmp_path)
    new = after - before
    # only the good table and its lock appeared, all inside the lake
    assert all(n.startswith("a/b/c/lake/") for n in new), sorted(new)
    assert not [n for n in after if "escape" in n], sorted(after)
    assert {n for n in new if "/locks/" in n} == {"a/b/c/lake/state/locks/core.ok.lock"}
    assert [r for r in lake.sql("SELECT 1 AS x")] == [{"x": 1}]
    # the catalog holds the one good table only
    tables = lake.catalog().list_tables("core")
    assert tables == [("core", "ok")]


def test_traversal_names_refused_over_the_wire(server, tmp_path):
    import psycopg
    lake = server.lake
    before = tree(tmp_path)
    dsn = dict(host="127.0.0.1", port=server.sql_port, dbname="lake", connect_timeout=10)
    with psycopg.connect(user="admin", password=ADMIN_PASSWORD, autocommit=True, **dsn) as c:
        for name in BAD_NAMES[:4]:
            with pytest.raises(psycopg.Error) as e:
                c.execute(f"CREATE TABLE {name} (a INT)")
            assert e.value.sqlstate == "42602", (name, str(e.value))
    r = server.sql('CREATE TABLE "../../../escape_ns".t (a INT)', token_for(lake, "admin"))
    assert r.status == 400 and "invalid" in r.text, r.text
    after = tree(tmp_path)
    assert not [n for n in after - before if "escape" in n or not n.startswith("lake/")], sorted(after - before)


# ---- symlinks in the warehouse ----

@pytest.fixture
def planted(server, tmp_path):
    """Symlinks dropped into the warehouse (and the state folder), pointing out of it."""
    lake = server.lake
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n")
    (outside / "secret.csv").write_text(f"s\n{SECRET}\n")
    (outside / "outdir").mkdir()
    wh = lake.root / "warehouse"
    (wh / "passwd_link").symlink_to("/etc/passwd")
    (wh / "secret_link").symlink_to(outside / "secret.txt")
    (wh / "secret_link.csv").symlink_to(outside / "secret.csv")
    (wh / "outdir_link").symlink_to(outside / "outdir")
    (wh / "dir_link").symlink_to(outside)
    (lake.root / "state" / "state_link").symlink_to(outside / "secret.txt")
    (wh / "inside.txt").write_text("inside the lake\n")
    lake.run("sql", "CREATE TABLE core.t AS SELECT 1 AS a")
    return wh, outside


def read_attempts(wh, lake):
    st = lake.root / "state"
    return [
        f"SELECT * FROM read_text('{wh}/passwd_link')",
        f"SELECT content FROM read_text('{wh}/secret_link')",
        f"SELECT * FROM read_blob('{wh}/secret_link')",
        f"SELECT * FROM read_csv('{wh}/secret_link.csv')",
        f"SELECT * FROM read_csv('{wh}/secret_link.csv', header = true, delim = ',')",
        f"SELECT * FROM '{wh}/secret_link.csv'",
        f"SELECT * FROM \"{wh}/secret_link.csv\"",
        f"FROM '{wh}/secret_link.csv'",
        f"SELECT * FROM read_text('{wh}/*_link')",
        f"SELECT * FROM read_text('{wh}/**/secret*')",
        f"SELECT * FROM read_text('{wh}/dir_link/secret.txt')",
        f"SELECT * FROM read_text(['{wh}/inside.txt', '{wh}/secret_link'])",
        f"SELECT * FROM glob('{wh}/dir_link/*')",
        f"SELECT * FROM read_text('{wh}/secret' || '_link')",
        f"SELECT * FROM read_text(concat('{wh}', '/secret_link'))",
        f"SELECT * FROM query('SELECT * FROM read_text(''{wh}/secret_link'')')",
        f"SELECT 1 WHERE EXISTS (SELECT * FROM read_text('{wh}/secret_link'))",
        f"WITH x AS (SELECT * FROM read_text('{wh}/secret_link')) SELECT * FROM x",
        f"SELECT * FROM read_text('{st}/state_link')",
        f"/* /* */ SELECT 1 */ SELECT * FROM read_text('{wh}/secret_link')",
        f"CREATE TABLE leak AS SELECT * FROM read_text('{wh}/secret_link')",
        f"CREATE VIEW leakv AS SELECT * FROM read_text('{wh}/secret_link')",
        f"INSERT INTO core.t SELECT length(content) FROM read_text('{wh}/secret_link')",
        f"CALL read_text('{wh}/secret_link')",
    ]


def write_attempts(wh):
    return [
        f"COPY (SELECT '{SECRET}' AS s) TO '{wh}/outdir_link/x.csv'",
        f"COPY (SELECT 1 AS a) TO '{wh}/dir_link/outdir/y.csv' (HEADER)",
        f"COPY core.t TO '{wh}/outdir_link/z.parquet' (FORMAT parquet)",
        f"/* /* */ SELECT 1 */ COPY (SELECT 1) TO '{wh}/outdir_link/w.csv'",
        f"COPY (SELECT 1 AS a) TO '{wh}/outdir_link/new/deeper.csv'",
        f"EXPORT DATABASE '{wh}/outdir_link/exp'",
        f"ATTACH '{wh}/outdir_link/db.duckdb' AS evil",
    ]


def test_symlinks_refused_for_the_administrator_psycopg(planted, server):
    import psycopg
    wh, outside = planted
    lake = server.lake
    dsn = dict(host="127.0.0.1", port=server.sql_port, dbname="lake", connect_timeout=10)
    with psycopg.connect(user="admin", password=ADMIN_PASSWORD, autocommit=True, **dsn) as c:
        for sql in read_attempts(wh, lake) + write_attempts(wh):
            with pytest.raises(psycopg.Error) as e:
                rows = c.execute(sql).fetchall()
                print("NOT REFUSED", sql, rows)
            assert e.value.sqlstate == "42501", (sql, e.value.sqlstate, str(e.value))
            assert SECRET not in str(e.value) and "root:" not in str(e.value)
        # honest use keeps working: files inside the lake, lake tables, COPY into the lake
        assert c.execute(f"SELECT content FROM read_text('{wh}/inside.txt')").fetchone() == ("inside the lake\n",)
        assert c.execute("SELECT a FROM core.t").fetchall() == [(1,)]
        c.execute(f"COPY (SELECT 42 AS a) TO '{wh}/ok.csv' (HEADER)")
        assert c.execute(f"SELECT a FROM read_csv('{wh}/ok.csv')").fetchall() == [(42,)]
        assert c.execute("SELECT count(*) FROM range(3)").fetchone() == (3,)
        assert c.execute(f"SELECT count(*) FROM glob('{wh}/*.txt')").fetchone() == (1,)
    assert os.listdir(outside / "outdir") == [], "a COPY wrote outside the lake"
    assert (lake.root / "warehouse" / "ok.csv").exists()
    assert lake.sql("SELECT a FROM core.t") == [{"a": 1}], "the refused INSERT changed the table"


def test_symlinks_refused_for_the_administrator_psql(planted, server):
    wh, outside = planted
    for sql in [f"SELECT * FROM read_text('{wh}/passwd_link')", f"SELECT * FROM '{wh}/secret_link.csv'",
                f"COPY (SELECT 1) TO '{wh}/outdir_link/x.csv'"]:
        p = subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(server.sql_port), "-U", "admin", "-d", "lake",
                            "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PGPASSWORD=ADMIN_PASSWORD, PGCONNECT_TIMEOUT="10"))
        assert p.returncode != 0, (sql, p.stdout)
        assert "permission denied" in p.stderr and "outside the lake" in p.stderr, p.stderr
        assert SECRET not in p.stdout + p.stderr and "root:" not in p.stdout
    assert os.listdir(outside / "outdir") == []


def test_symlinks_refused_for_the_administrator_http(planted, server):
    wh, outside = planted
    admin = token_for(server.lake, "admin")
    for sql in read_attempts(wh, server.lake)[:12] + write_attempts(wh)[:3]:
        r = server.sql(sql, admin)
        assert r.status == 403, (sql, r.status, r.text)
        assert SECRET not in r.text and "root:" not in r.text
        assert "outside the lake" in r.text or "computed argument" in r.text, r.text
    r = server.sql(f"SELECT content FROM read_text('{wh}/inside.txt')", admin)
    assert r.status == 200 and r.json()["rows"] == [["inside the lake\n"]], r.text
    assert os.listdir(outside / "outdir") == []


def test_confined_folders_are_real_paths(tmp_path):
    """A warehouse and state reached through a symlink are confined by their real paths:
    DuckDB's allowed_directories holds the real folders, and the lake works through them."""
    real = tmp_path / "real"
    subprocess.run([LOCH, "init", str(real)], check=True, capture_output=True,
                   env=dict(os.environ, LOCH_ADMIN_PASSWORD=ADMIN_PASSWORD))
    (tmp_path / "via").symlink_to(real)
    lake = Lake(tmp_path / "via")
    cfg = lake.config.read_text().replace(str(real), str(tmp_path / "via"))
    lake.config.write_text(cfg)
    s = Server(lake)
    try:
        admin = token_for(lake, "admin")
        assert s.sql("CREATE TABLE core.t AS SELECT 1 AS a", admin).status == 200
        r = s.sql("SELECT current_setting('allowed_directories') AS d, current_setting('temp_directory') AS t", admin)
        assert r.status == 200, r.text
        dirs, temp = r.json()["rows"][0]
        assert str(tmp_path / "via") not in str(dirs), dirs
        assert str(real / "warehouse") in str(dirs)
        # never the state folder: closing a descriptor of catalog.db drops SQLite's locks
        # (DuckDB itself allows its spill folder, state/tmp/duckdb, and nothing else there)
        assert all(str(real / "state") not in d or d.rstrip("/") == temp for d in dirs), dirs
        assert temp == str(real / "state" / "tmp" / "duckdb"), temp
        assert s.sql("SELECT a FROM core.t", admin).json()["rows"] == [[1]]
    finally:
        s.stop()


# ---- file modes and the temp folder ----

def mode(p):
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_files_are_the_owners_alone(server):
    lake = server.lake
    admin = token_for(lake, "admin")
    assert server.sql("CREATE TABLE core.m AS SELECT range AS a FROM range(100)", admin).status == 200
    assert server.sql("INSERT INTO core.m VALUES (1000)", admin).status == 200
    state, wh = lake.root / "state", lake.root / "warehouse"
    assert mode(state / "catalog.db") == 0o600
    for p in [state / "catalog.db-wal", state / "catalog.db-shm"]:
        if p.exists():
            assert mode(p) == 0o600, p
    assert mode(state) == 0o700 and mode(wh) == 0o700 and mode(lake.root) == 0o700
    seen_files = 0
    for root in (state, wh):
        for dirpath, dirnames, filenames in os.walk(root):
            assert mode(dirpath) == 0o700, dirpath
            for f in filenames:
                p = os.path.join(dirpath, f)
                assert mode(p) & 0o077 == 0, (p, oct(mode(p)))
                seen_files += 1
    assert seen_files > 5
    # DuckDB spills under the state folder, by an absolute path, in a private folder
    r = server.sql("SELECT current_setting('temp_directory') AS t", admin)
    assert r.json()["rows"] == [[str(state / "tmp" / "duckdb")]]
    assert mode(state / "tmp" / "duckdb") == 0o700
    assert not (lake.root / ".tmp").exists() and not os.path.exists(".tmp")


def test_wide_catalog_made_private_at_open(admin_lake):
    lake = admin_lake
    db = lake.root / "state" / "catalog.db"
    os.chmod(db, 0o644)
    p = lake.run("sql", "SELECT 1 AS x")
    assert mode(db) == 0o600
    assert "made it 0600" in p.stderr, p.stderr


def test_init_makes_private_folders(tmp_path):
    old = os.umask(0o022)
    try:
        subprocess.run([LOCH, "init", str(tmp_path / "lake")], check=True, capture_output=True)
    finally:
        os.umask(old)
    root = tmp_path / "lake"
    assert mode(root) == 0o700 and mode(root / "state") == 0o700 and mode(root / "warehouse") == 0o700
    assert mode(root / "state" / "catalog.db") == 0o600
    assert mode(root / "loch.yaml") & 0o077 == 0


def test_admin_sql_cannot_touch_the_state_folder_yet_spills_there(tmp_path):
    """An administrator's SQL reads and writes the warehouse, never the state folder (a
    read of catalog.db by DuckDB would drop SQLite's POSIX locks for the whole process;
    a COPY there could overwrite its journal); DuckDB still spills into state/tmp."""
    env = dict(os.environ, LOCH_ADMIN_PASSWORD=ADMIN_PASSWORD)
    subprocess.run([LOCH, "init", str(tmp_path / "lake")], check=True, capture_output=True, env=env)
    lake = Lake(tmp_path / "lake")
    cfg = lake.config.read_text()
    assert "  memory_mb: 0     #" in cfg
    lake.config.write_text(cfg.replace("  memory_mb: 0     #", "  memory_mb: 200     #"))
    s = Server(lake)
    try:
        admin = token_for(lake, "admin")
        st = (lake.root / "state").resolve()
        assert s.sql("SELECT 1 AS one", admin).status == 200  # the engines are open from here on
        before = sorted(p.name for p in st.iterdir())
        for sql in (f"SELECT * FROM read_blob('{st}/catalog.db')",
                    f"SELECT * FROM read_text('{st}/catalog.db-wal')",
                    f"COPY (SELECT 1 AS x) TO '{st}/catalog.db-wal' (FORMAT csv)",
                    f"COPY (SELECT 1 AS x) TO '{st}/x.csv' (FORMAT csv)"):
            r = s.sql(sql, admin)
            assert r.status != 200 and "SCRAM" not in r.text, (sql, r.text)
        assert sorted(p.name for p in st.iterdir()) == before
        # a sort bigger than the memory limit spills to state/tmp/duckdb and succeeds
        r = s.sql("SELECT count(*) AS n, max(s) AS m FROM (SELECT i, md5(i::VARCHAR) || repeat('x', 200) AS s "
                  "FROM range(3000000) t(i) ORDER BY s DESC LIMIT 2999999)", admin)
        assert r.status == 200 and r.json()["rows"][0][0] == 2999999, r.text
        ok = subprocess.run(["sqlite3", str(st / "catalog.db"), "PRAGMA integrity_check"], capture_output=True,
                            text=True)
        assert ok.stdout.strip() == "ok", ok.stdout + ok.stderr
    finally:
        s.stop()
