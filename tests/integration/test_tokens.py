"""Bearer tokens always expire (issue 12, Low list): a default expiry when none is given,
a configurable maximum, and no `--expires 0` that would make a token live for ever."""
import re
import time

from access_fixtures import Server, admin_lake, server, token_for  # noqa: F401


def created(lake, *extra):
    return lake.run("token", "create", "--user", "admin", *extra, check=False)


def expiry_days(lake, token_id):
    """Days between created and expires of token_id in `loch token list`."""
    for line in lake.run("token", "list").stdout.splitlines():
        if line.startswith(token_id):
            c, e = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", line)[:2]
            t = [time.mktime(time.strptime(x, "%Y-%m-%d %H:%M:%SZ")) for x in (c, e)]
            return round((t[1] - t[0]) / 86400)
    raise AssertionError(f"token {token_id} not listed")


def test_tokens_always_expire(admin_lake):
    lake = admin_lake
    p = created(lake)
    assert p.returncode == 0, p.stderr
    assert "expires in 30 days" in p.stdout
    tid = p.stdout.split()[1]
    assert expiry_days(lake, tid) == 30
    p = created(lake, "--expires", "0")
    assert p.returncode != 0
    assert "1 to 365 days" in p.stderr and "auth.token_max_expiry_days" in p.stderr, p.stderr
    p = created(lake, "--expires", "366")
    assert p.returncode != 0 and "1 to 365 days" in p.stderr, p.stderr
    p = created(lake, "--expires", "365")
    assert p.returncode == 0 and expiry_days(lake, p.stdout.split()[1]) == 365
    assert "never" not in lake.run("token", "list").stdout
    assert " - " not in lake.run("token", "list").stdout.split("\n", 1)[1]


def test_token_expiry_configurable(admin_lake):
    lake = admin_lake
    cfg = lake.config.read_text()
    lake.config.write_text(cfg + "\nauth:\n  token_default_expiry_days: 7\n  token_max_expiry_days: 10\n")
    p = created(lake)
    assert p.returncode == 0 and "expires in 7 days" in p.stdout, p.stdout + p.stderr
    p = created(lake, "--expires", "11")
    assert p.returncode != 0 and "1 to 10 days" in p.stderr, p.stderr
    lake.config.write_text(cfg + "\nauth:\n  token_default_expiry_days: 20\n  token_max_expiry_days: 10\n")
    p = created(lake)
    assert p.returncode != 0 and "token_default_expiry_days" in p.stderr, p.stderr
    lake.config.write_text(cfg + "\nauth:\n  token_max_expiry_days: 0\n")
    p = created(lake)
    assert p.returncode != 0 and "token_max_expiry_days" in p.stderr, p.stderr


def test_expired_token_refused_over_http(server):
    import hashlib
    import sqlite3
    lake = server.lake
    tok, legacy = token_for(lake, "admin", "--expires", "1"), token_for(lake, "admin")
    assert server.sql("SELECT 1 AS x", tok).status == 200
    assert server.sql("SELECT 1 AS x", legacy).status == 200
    db = sqlite3.connect(lake.root / "state" / "catalog.db")
    with db:
        db.execute("UPDATE loch_tokens SET expires_at = strftime('%s', 'now') - 1 WHERE hash = ?",
                   (hashlib.sha256(tok.encode()).hexdigest(),))
        # a token stored by an older loch with no expiry, made over a year ago
        db.execute("UPDATE loch_tokens SET expires_at = 0, created_at = strftime('%s', 'now') - 400 * 86400 "
                   "WHERE hash = ?", (hashlib.sha256(legacy.encode()).hexdigest(),))
    db.close()
    assert server.sql("SELECT 1 AS x", tok).status == 401
    assert server.sql("SELECT 1 AS x", legacy).status == 401
