"""`loch maintain`: old snapshots expire, the files only they reached are removed, orphans
are removed once old enough (never fresh ones, which may be a write in flight), and the
table reads the same before and after, through loch and through PyIceberg."""
import os
import time
from pathlib import Path

from conftest import norm


def files_under(root: Path):
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


def test_expire_and_orphans(lake):
    lake.run("sql", "CREATE TABLE bank.tx AS SELECT i AS id, CAST(i * 1.01 AS DECIMAL(18,2)) AS amount "
                    "FROM range(2000) t(i)")
    for i in range(6):
        lake.run("sql", f"INSERT INTO bank.tx VALUES ({10000 + i}, {i}.25)")
        lake.run("sql", f"DELETE FROM bank.tx WHERE id = {i * 7}")
    before = lake.sql("SELECT * FROM bank.tx ORDER BY id")
    table_dir = lake.root / "warehouse" / "bank" / "tx"
    old_orphan = table_dir / "data" / "crashed-write.parquet"
    new_orphan = table_dir / "data" / "in-flight.parquet"
    old_orphan.write_bytes(b"PAR1 left by a crash")
    new_orphan.write_bytes(b"PAR1 being written")
    past = time.time() - 10 * 86400
    os.utime(old_orphan, (past, past))
    n_snaps = len(lake.catalog().load_table("bank.tx").snapshots())
    assert n_snaps == 13

    # a dry run changes nothing
    files0 = files_under(table_dir)
    out = lake.run("maintain", "--no-compact", "--dry-run", "--expire-older-than", "0s", "--retain-last", "2").stdout
    assert "[dry run] 11 snapshot(s) would expire" in out and "1 orphan file(s)" in out
    assert files_under(table_dir) == files0

    out = lake.run("maintain", "bank.tx", "--no-compact", "--expire-older-than", "0s", "--retain-last", "2").stdout
    assert "11 snapshot(s) expired, 2 kept" in out and "1 orphan file(s)" in out
    assert not old_orphan.exists()
    assert new_orphan.exists()  # too young to be judged an orphan
    files1 = files_under(table_dir)
    assert len(files1) < len(files0)

    # the current state is unchanged, read by loch and by PyIceberg
    assert lake.sql("SELECT * FROM bank.tx ORDER BY id") == before
    t = lake.catalog().load_table("bank.tx")
    assert len(t.snapshots()) == 2
    theirs = sorted(({k: norm(v) for k, v in r.items()} for r in t.scan().to_arrow().to_pylist()),
                    key=lambda r: r["id"])
    assert [r["id"] for r in theirs] == [r["id"] for r in before]
    assert [r["amount"] for r in theirs] == [norm(r["amount"]) for r in before]
    # every file the remaining snapshots reach still exists
    for task in t.scan().plan_files():
        assert Path(task.file.file_path.removeprefix("file://")).exists()
        for d in task.delete_files:
            assert Path(d.file_path.removeprefix("file://")).exists()
    # the older of the two kept snapshots still reads (time travel within retention)
    kept = [s.snapshot_id for s in t.snapshots()]
    assert lake.sql(f"SELECT count(*) AS n FROM bank.tx AT (VERSION => {kept[0]})")[0]["n"] == len(before) + 1

    # the table keeps taking writes; a second run finds nothing more to do
    lake.run("sql", "INSERT INTO bank.tx VALUES (99999, 1.00)")
    out = lake.run("maintain", "--no-compact", "--expire-older-than", "7d").stdout
    assert "0 snapshot(s) expired, 3 kept" in out


def test_bad_arguments_are_named(lake):
    p = lake.run("maintain", "--expire-older-than", "soon", check=False)
    assert p.returncode == 2 and "90s, 30m, 12h or 7d" in p.stderr
    p = lake.run("maintain", "--retain-last", "0", check=False)
    assert p.returncode == 2 and "at least 1" in p.stderr
    p = lake.run("maintain", "no.such", check=False)
    assert p.returncode == 1 and "no.such" in p.stderr
