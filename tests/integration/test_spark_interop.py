"""Spark reads what loch writes, with no loch in the way: Spark's own Iceberg JdbcCatalog
opens state/catalog.db as is (catalog name `loch`), and every snapshot of a table that
went through appends, position deletes, an update and schema evolution reads the same
rows in Spark as through `loch sql ... AT (VERSION => id)`; a table compacted by
`loch maintain` (many small files and position deletes rewritten into one) reads the same
rows in Spark as through loch."""
import datetime as dt
import decimal
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import LOCH, Lake, norm, norm_loch

ROOT = Path(__file__).resolve().parents[2]
JARS = ROOT / "third_party" / "jars"
SPARK_JARS = [JARS / "iceberg-spark-runtime-3.5_2.12-1.12.0.jar", JARS / "sqlite-jdbc-3.50.3.0.jar"]
KINDS = {"ts": "timestamptz", "booked": "date"}
D = decimal.Decimal


@pytest.fixture(scope="module")
def history_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("spark")
    subprocess.run([LOCH, "init", str(root / "lake")], check=True, capture_output=True)
    lake = Lake(root / "lake")
    lake.run("sql", "CREATE TABLE core.public.tx AS SELECT i AS id, i % 7 AS account_id, "
                    "CAST(i * 12.345 AS DECIMAL(18,3)) AS amount, 'Zahlung → ' || i AS memo, "
                    "TIMESTAMPTZ '2024-01-01 00:00:00.000001+00' + to_microseconds(i * 1000003) AS ts, "
                    "CAST(DATE '2024-01-01' + CAST(i % 30 AS INTEGER) AS DATE) AS booked, "
                    "CASE WHEN i % 5 = 0 THEN NULL ELSE CAST(i AS INTEGER) END AS small "
                    "FROM range(500) t(i)")
    lake.run("sql", "DELETE FROM core.public.tx WHERE id % 10 = 3")
    lake.run("sql", "UPDATE core.public.tx SET memo = 'geändert', amount = -amount WHERE id % 50 = 1")
    lake.run("sql", "ALTER TABLE core.public.tx RENAME COLUMN memo TO note")
    lake.run("sql", "ALTER TABLE core.public.tx ALTER COLUMN small TYPE BIGINT")
    lake.run("sql", "ALTER TABLE core.public.tx ADD COLUMN channel VARCHAR")
    lake.run("sql", "INSERT INTO core.public.tx (id, account_id, amount, note, ts, booked, small, channel) "
                    "VALUES (1000, 1, 0.001, NULL, NULL, NULL, 9000000000, 'web')")
    lake.run("sql", "ALTER TABLE core.public.tx DROP COLUMN account_id")
    lake.run("sql", "DELETE FROM core.public.tx WHERE id BETWEEN 100 AND 150")
    return lake


@pytest.fixture(scope="module")
def spark(history_lake):
    for j in SPARK_JARS:
        assert j.exists(), f"{j} missing: run scripts/setup"
    assert shutil.which("java"), "java missing: run scripts/setup"
    from pyspark.sql import SparkSession
    root = history_lake.root
    s = (SparkSession.builder.master("local[1]").appName("loch-interop")
         .config("spark.jars", ",".join(map(str, SPARK_JARS)))
         .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
         .config("spark.sql.catalog.loch", "org.apache.iceberg.spark.SparkCatalog")
         .config("spark.sql.catalog.loch.catalog-impl", "org.apache.iceberg.jdbc.JdbcCatalog")
         .config("spark.sql.catalog.loch.uri", f"jdbc:sqlite:{root}/state/catalog.db")
         .config("spark.sql.catalog.loch.jdbc.schema-version", "V1")
         .config("spark.sql.catalog.loch.warehouse", f"file://{root}/warehouse")
         .config("spark.sql.session.timeZone", "UTC")
         .config("spark.ui.enabled", "false")
         .config("spark.driver.memory", "1g")
         .getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


def spark_rows(spark, table, snapshot):
    df = spark.sql(f"SELECT * FROM loch.{table} VERSION AS OF {snapshot}")
    # Spark hands timestamptz values over as naive datetimes in the session zone (UTC).
    utc = {f.name for f in df.schema.fields if f.dataType.typeName() == "timestamp"}
    rows = [{k: norm(v.replace(tzinfo=dt.timezone.utc) if k in utc and v is not None else v)
             for k, v in r.asDict().items()} for r in df.collect()]
    return sorted(rows, key=lambda r: r["id"])


def loch_rows(lake, table, snapshot):
    rows = lake.sql(f"SELECT * FROM {table} AT (VERSION => {snapshot}) ORDER BY id")
    return [{k: norm_loch(v, KINDS.get(k)) for k, v in r.items()} for r in rows]


def test_spark_lists_what_loch_wrote(history_lake, spark):
    assert [r[0] for r in spark.sql("SHOW NAMESPACES IN loch").collect()] == ["core"]
    assert [r.tableName for r in spark.sql("SHOW TABLES IN loch.core.public").collect()] == ["tx"]


def test_spark_reads_every_snapshot_like_loch(history_lake, spark):
    snaps = [r.snapshot_id for r in
             spark.sql("SELECT snapshot_id FROM loch.core.public.tx.snapshots ORDER BY committed_at").collect()]
    assert len(snaps) >= 5
    for sid in snaps:
        assert spark_rows(spark, "core.public.tx", sid) == loch_rows(history_lake, "core.public.tx", sid), \
            f"snapshot {sid} differs between Spark and loch"


def test_spark_current_state_has_deletes_and_evolution_applied(history_lake, spark):
    cur = {r.id: r.asDict() for r in spark.sql("SELECT * FROM loch.core.public.tx").collect()}
    assert 3 not in cur and 13 not in cur and 120 not in cur  # position deletes applied
    assert cur[1]["note"] == "geändert" and cur[1]["amount"] == D("-12.345")
    assert cur[2]["note"] == "Zahlung → 2" and cur[2]["channel"] is None
    assert cur[1000]["small"] == 9000000000 and cur[1000]["channel"] == "web"
    assert "account_id" not in cur[2] and "memo" not in cur[2]
    assert cur[0]["small"] is None
    # the aggregate Spark computes equals loch's, exact to the last decimal digit
    ours = history_lake.sql("SELECT count(*) AS n, sum(amount) AS s FROM core.public.tx")[0]
    theirs = spark.sql("SELECT count(*) AS n, sum(amount) AS s FROM loch.core.public.tx").collect()[0]
    assert (theirs.n, theirs.s) == (ours["n"], ours["s"])


def test_spark_reads_compacted_table_like_loch(spark, tmp_path):
    # A lake of its own, so the history lake's listings stay as they are. Iceberg's JdbcCatalog
    # keys rows by catalog name ("loch"), so the catalog keeps its name in a child session
    # (own SQL conf and catalogs, same JVM and SparkContext: no second start-up).
    subprocess.run([LOCH, "init", str(tmp_path / "lake")], check=True, capture_output=True)
    lake = Lake(tmp_path / "lake")
    lake.run("sql", "CREATE TABLE bank.acc AS SELECT i AS id, CAST(i * 1.5 AS DECIMAL(18,2)) AS bal, "
                    "'n' || i AS name FROM range(300) t(i)")
    for i in range(8):
        lake.run("sql", f"INSERT INTO bank.acc SELECT 300 + {i} * 20 + j, {i}.25, 'b{i}' FROM range(20) t(j)")
    lake.run("sql", "DELETE FROM bank.acc WHERE id % 7 = 3")
    lake.run("sql", "UPDATE bank.acc SET bal = -bal, name = 'geändert' WHERE id % 11 = 0")

    def files():
        tasks = list(lake.catalog().load_table("bank.acc").scan().plan_files())
        return len(tasks), len({d.file_path for t in tasks for d in t.delete_files})

    n_data0, n_del0 = files()
    assert n_data0 > 8 and n_del0 > 0
    before = [{k: norm_loch(v, None) for k, v in r.items()}
              for r in lake.sql("SELECT * FROM bank.acc ORDER BY id")]
    p = lake.run("maintain", "bank.acc")
    assert "rewritten into 1" in p.stdout, p.stdout
    assert files() == (1, 0)

    spark = spark.newSession()
    cat = "spark.sql.catalog.loch"
    spark.conf.set(cat, "org.apache.iceberg.spark.SparkCatalog")
    spark.conf.set(f"{cat}.catalog-impl", "org.apache.iceberg.jdbc.JdbcCatalog")
    spark.conf.set(f"{cat}.uri", f"jdbc:sqlite:{lake.root}/state/catalog.db")
    spark.conf.set(f"{cat}.jdbc.schema-version", "V1")
    spark.conf.set(f"{cat}.warehouse", f"file://{lake.root}/warehouse")
    assert spark.sql("SELECT operation FROM loch.bank.acc.snapshots "
                     "ORDER BY committed_at DESC LIMIT 1").collect()[0].operation == "replace"
    theirs = sorted(({k: norm(v) for k, v in r.asDict().items()}
                     for r in spark.sql("SELECT * FROM loch.bank.acc").collect()),
                    key=lambda r: r["id"])
    ours = [{k: norm_loch(v, None) for k, v in r.items()} for r in lake.sql("SELECT * FROM bank.acc ORDER BY id")]
    assert ours == before
    assert theirs == ours
    assert len(ours) == 460 - len([i for i in range(460) if i % 7 == 3])
