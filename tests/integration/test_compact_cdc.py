"""Compaction beside replication: `loch maintain` rewrites a table while `loch replicate`
streams updates and deletes into it from PostgreSQL. The applier's flushes and the
rewrite's commit take turns under the table's commit lock; afterwards `loch validate`
finds the lake equal to the source: no lost and no resurrected row."""
import random
import threading
import time

from pgsource import PgServer, Source, pg, source, wait_for  # noqa: F401
from test_compact import all_referenced_exist, live_files


def churn(source, stop, seed):
    rnd = random.Random(seed)
    with source.conn() as c:
        while not stop.is_set():
            k = rnd.randint(1, 3000)
            op = rnd.random()
            if op < 0.5:
                c.execute("UPDATE acc SET bal = bal + 1, note = 'u' WHERE id BETWEEN %s AND %s", (k, k + 20))
            elif op < 0.8:
                c.execute("DELETE FROM acc WHERE id BETWEEN %s AND %s", (k, k + 5))
            else:
                c.execute("INSERT INTO acc SELECT g, 0, 'i' FROM generate_series(%s::int, %s::int) g "
                          "ON CONFLICT (id) DO UPDATE SET bal = acc.bal - 1", (k, k + 10))
            time.sleep(0.005)


def test_compaction_while_replicating(source, lake):
    source.execute("CREATE TABLE acc (id int PRIMARY KEY, bal bigint, note text)",
                   "INSERT INTO acc SELECT g, g, 'n' FROM generate_series(1, 3000) g")
    source.catch_up()
    p = source.start()
    stop = threading.Event()
    th = threading.Thread(target=churn, args=(source, stop, 7))
    th.start()
    runs = []
    try:
        time.sleep(1.5)
        for i in range(8):
            r = lake.run("maintain", "core.public.acc", "--expire-older-than", "0s", "--orphans-older-than", "1h",
                         check=False, timeout=120)
            runs.append(r)
            assert r.returncode == 0 or "writers kept changing" in r.stderr, r.stderr
            time.sleep(0.3)
            assert p.poll() is None, p.stderr.read()
    finally:
        stop.set()
        th.join()
    time.sleep(1)
    rc, err = source.stop(p)
    assert rc == 0, err
    print([r.stdout.strip()[-160:] for r in runs])
    assert sum("rewritten into" in r.stdout for r in runs) >= 2, [r.stdout + r.stderr for r in runs]
    assert "rewritten by maintenance" in err
    source.catch_up()
    v = lake.run("validate", "--source", "core", "--table", "public.acc", check=False)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "identical in the lake" in v.stdout
    all_referenced_exist(lake, "core.public.acc")
    # and a last compaction with nothing streaming leaves it equal too
    lake.run("maintain", "core.public.acc")
    assert live_files(lake, "core.public.acc")[1] == 0
    v = lake.run("validate", "--source", "core", "--table", "public.acc", check=False)
    assert v.returncode == 0, v.stdout + v.stderr


def test_replicate_maintains_by_itself(source, lake):
    source.execute("CREATE TABLE acc (id int PRIMARY KEY, bal bigint, note text)",
                   "INSERT INTO acc SELECT g, g, 'n' FROM generate_series(1, 3000) g")
    lake.config.write_text(lake.config.read_text() +
                           "maintenance:\n  interval_s: 1\n  min_files: 6\n  snapshot_age_s: 2\n")
    source.catch_up()
    p = source.start()
    stop = threading.Event()
    th = threading.Thread(target=churn, args=(source, stop, 11))
    th.start()
    counts = []
    try:
        for _ in range(12):
            time.sleep(0.5)
            counts.append(sum(live_files(lake, "core.public.acc")))
            assert p.poll() is None
    finally:
        stop.set()
        th.join()
    time.sleep(1.5)
    st = lake.run("status").stdout
    rc, err = source.stop(p)
    assert rc == 0, err
    assert "maintenance of core.public.acc" in err, err
    row = [l for l in st.splitlines() if "core.public.acc " in l][0]
    assert "never" not in row, st
    # without maintenance a flush adds a data and a delete file every 200 ms: ~60 by now
    assert max(counts[4:]) < 30, counts
    source.catch_up()
    v = lake.run("validate", "--source", "core", "--table", "public.acc", check=False)
    assert v.returncode == 0, v.stdout + v.stderr
    all_referenced_exist(lake, "core.public.acc")
