"""Compaction (`loch maintain`): small files and files with many deleted rows are rewritten
into fewer files in one Iceberg "replace" snapshot; the table reads the same, through loch
and through PyIceberg; a kill -9 at any moment loses nothing and leaves every referenced
file in place."""
import random
import re
import signal
import subprocess
import time
from pathlib import Path

from conftest import LOCH, norm


def live_files(lake, table):
    t = lake.catalog().load_table(table)
    tasks = list(t.scan().plan_files())
    deletes = {d.file_path for task in tasks for d in task.delete_files}
    return len(tasks), len(deletes)


def pyiceberg_rows(lake, table):
    t = lake.catalog().load_table(table)
    return sorted(({k: norm(v) for k, v in r.items()} for r in t.scan().to_arrow().to_pylist()),
                  key=lambda r: r["id"])


def loch_rows(lake, table):
    return [{k: norm(v) for k, v in r.items()} for r in lake.sql(f"SELECT * FROM {table} ORDER BY id")]


def all_referenced_exist(lake, table):
    t = lake.catalog().load_table(table)
    for task in t.scan().plan_files():
        assert Path(task.file.file_path.removeprefix("file://")).exists()
        for d in task.delete_files:
            assert Path(d.file_path.removeprefix("file://")).exists()


def small_table(lake, n_inserts=20, n_deletes=8):
    lake.run("sql", "CREATE TABLE bank.acc AS SELECT i AS id, CAST(i * 1.5 AS DECIMAL(18,2)) AS bal, "
                    "'n' || i AS name FROM range(1000) t(i)")
    script = []
    for i in range(n_inserts):
        script.append(f"INSERT INTO bank.acc SELECT 1000 + {i} * 50 + j, {i}.5, NULL FROM range(50) t(j)")
    for i in range(n_deletes):
        script.append(f"DELETE FROM bank.acc WHERE id % 97 = {i} OR id = {1000 + i * 50}")
    script.append("UPDATE bank.acc SET bal = bal + 1 WHERE id < 30")
    for stmt in script:
        lake.run("sql", stmt)


def test_compaction_keeps_rows_with_fewer_files(lake):
    small_table(lake)
    before = loch_rows(lake, "bank.acc")
    n_data0, n_del0 = live_files(lake, "bank.acc")
    assert n_data0 > 20 and n_del0 > 0

    out = lake.run("maintain", "bank.acc", "--dry-run").stdout
    assert "[dry run] compaction" in out
    assert live_files(lake, "bank.acc") == (n_data0, n_del0)

    p = lake.run("maintain", "bank.acc")
    assert "rewritten into 1" in p.stdout, p.stdout
    n_data1, n_del1 = live_files(lake, "bank.acc")
    assert n_data1 == 1 and n_del1 == 0
    t = lake.catalog().load_table("bank.acc")
    assert t.current_snapshot().summary.operation.value == "replace"
    assert loch_rows(lake, "bank.acc") == before
    assert pyiceberg_rows(lake, "bank.acc") == before
    all_referenced_exist(lake, "bank.acc")

    # deletes after the rewrite apply to the new file; a second run finds little to do
    lake.run("sql", "DELETE FROM bank.acc WHERE id < 10")
    lake.run("sql", "INSERT INTO bank.acc VALUES (5, 1.00, 'back')")
    after = loch_rows(lake, "bank.acc")
    assert [r["id"] for r in after] == sorted([r["id"] for r in before if r["id"] >= 10] + [5])
    assert pyiceberg_rows(lake, "bank.acc") == after
    # a file with a tenth of its rows deleted is rewritten without them
    lake.run("sql", "DELETE FROM bank.acc WHERE id % 5 = 1")
    lake.run("maintain", "bank.acc", "--expire-older-than", "0s")
    assert live_files(lake, "bank.acc")[1] == 0
    assert loch_rows(lake, "bank.acc") == pyiceberg_rows(lake, "bank.acc")
    assert len(loch_rows(lake, "bank.acc")) == len([r for r in after if r["id"] % 5 != 1])
    all_referenced_exist(lake, "bank.acc")


def test_target_size_property_and_no_compact(lake):
    small_table(lake, n_inserts=6, n_deletes=0)
    n0 = live_files(lake, "bank.acc")
    out = lake.run("maintain", "bank.acc", "--no-compact").stdout
    assert "compaction" not in out and live_files(lake, "bank.acc") == n0
    # a tiny target: groups stay near it, so several files come out
    lake.run("maintain", "bank.acc", "--target-file-size", "4000")
    n_data, _ = live_files(lake, "bank.acc")
    assert 1 < n_data < n0[0]


def test_kill9_during_compaction_loses_nothing(lake):
    small_table(lake, n_inserts=30, n_deletes=10)
    before = loch_rows(lake, "bank.acc")
    rnd = random.Random(14)
    for i in range(6):
        p = subprocess.Popen([LOCH, "-c", str(lake.config), "maintain", "bank.acc", "--expire-older-than", "0s",
                              "--orphans-older-than", "0s"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.02, 0.4))
        p.send_signal(signal.SIGKILL)
        p.wait()
        all_referenced_exist(lake, "bank.acc")
        assert loch_rows(lake, "bank.acc") == before
        lake.run("sql", f"INSERT INTO bank.acc VALUES ({100000 + i}, 1.00, 'k')")
        before = loch_rows(lake, "bank.acc")
    lake.run("maintain", "bank.acc")
    assert loch_rows(lake, "bank.acc") == before
    assert pyiceberg_rows(lake, "bank.acc") == before
    all_referenced_exist(lake, "bank.acc")


def explain_files(lake, sql):
    out = lake.run("sql", "EXPLAIN " + sql).stdout
    m = re.search(r"lake table core\.s: (\d+) of (\d+) data files", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def test_sort_order_clusters_compacted_files_so_point_queries_prune(lake):
    """ALTER TABLE .. WRITE ORDERED BY (Spark's spelling) sets the Iceberg sort order;
    compaction then writes files ordered by it with disjoint bounds, so a point query on
    the column reads 1 of N files; WRITE UNORDERED resets it."""
    ids = list(range(2400))
    random.Random(14).shuffle(ids)
    lake.run("sql", "CREATE TABLE core.s (id BIGINT, v VARCHAR, n INT)")
    for k in range(12):
        vals = ", ".join(f"({i}, 'v{i}', {i % 5 if i % 9 else 'NULL'})" for i in ids[k * 200:(k + 1) * 200])
        lake.run("sql", f"INSERT INTO core.s VALUES {vals}")
    lake.run("sql", "DELETE FROM core.s WHERE id % 100 = 7")
    before = loch_rows(lake, "core.s")
    assert explain_files(lake, "SELECT * FROM core.s WHERE id = 1234") == (12, 12)  # random order: no pruning

    lake.run("sql", "ALTER TABLE core.s WRITE ORDERED BY id")
    t = lake.catalog().load_table("core.s")
    order = t.sort_order()
    assert order.order_id >= 1 and [f.source_id for f in order.fields] == [t.schema().find_field("id").field_id]
    assert str(order.fields[0].direction).lower().endswith("asc")
    size = max(task.file.file_size_in_bytes for task in t.scan().plan_files())

    lake.run("maintain", "core.s", "--target-file-size", str(size * 4))
    n_data, n_del = live_files(lake, "core.s")
    assert 1 < n_data < 12 and n_del == 0
    assert explain_files(lake, "SELECT * FROM core.s WHERE id = 1234") == (1, n_data)
    assert lake.sql("SELECT v FROM core.s WHERE id = 1234") == [{"v": "v1234"}]
    assert lake.sql("SELECT count(*) AS c FROM core.s WHERE id = 1207") == [{"c": 0}]
    assert loch_rows(lake, "core.s") == before
    assert pyiceberg_rows(lake, "core.s") == before

    # the sorted column cannot be dropped while the table is ordered by it
    p = lake.run("sql", "ALTER TABLE core.s DROP COLUMN id", check=False)
    assert p.returncode != 0 and "ordered by it" in p.stderr
    lake.run("sql", "ALTER TABLE core.s WRITE ORDERED BY n DESC NULLS LAST, id")
    order = lake.catalog().load_table("core.s").sort_order()
    assert [str(f.null_order).lower().endswith("last") for f in order.fields] == [True, False]
    lake.run("sql", "ALTER TABLE core.s WRITE UNORDERED")
    assert lake.catalog().load_table("core.s").sort_order().is_unsorted
    p = lake.run("sql", "ALTER TABLE core.s WRITE ORDERED BY nope", check=False)
    assert p.returncode != 0 and "nope" in p.stderr
    assert loch_rows(lake, "core.s") == before
