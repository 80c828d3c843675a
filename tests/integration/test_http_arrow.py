"""Arrow IPC results over HTTP: POST /v1/sql with Accept: application/vnd.apache.arrow.stream
answers with an Arrow IPC stream that pyarrow reads with the exact types (decimal128,
timestamp[us, tz=UTC], utf8, ints, bools, dates, NULLs); errors before any row are JSON
with the right status, errors after rows cut the stream short."""
import datetime
import decimal
import http.client
import json

import pyarrow as pa
import pyarrow.ipc
import pytest

from access_fixtures import server, admin_lake, token_for  # noqa: F401

ARROW = "application/vnd.apache.arrow.stream"
N = 200_000
BIG = decimal.Decimal("123456789012345678901234567890.01")


def cents(n):
    return decimal.Decimal(n).scaleb(-2)


def read_arrow(r):
    assert r.status == 200, r.body[:500]
    assert r.headers["Content-Type"] == ARROW
    return pa.ipc.open_stream(r.body).read_all()


def make_table(lake):
    # Iceberg timestamptz / decimal / string / date / boolean / long columns, with NULLs and
    # non-ASCII text, 200k rows (many record batches).
    lake.run("sql", "CREATE TABLE bank.ledger AS SELECT i AS id, "
             "CAST(i AS DECIMAL(38,2)) + 123456789012345678901234567890.01 AS big_amount, "
             "CASE WHEN i % 5 = 0 THEN NULL ELSE CAST(CAST(i - 100000 AS DECIMAL(18,0)) * 0.01 AS DECIMAL(18,2)) "
             "END AS amount, "
             "TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_microseconds(i * 1000003) AS booked_at, "
             "DATE '2024-01-01' + CAST(i % 366 AS INTEGER) AS value_date, "
             "CASE WHEN i % 3 = 0 THEN NULL ELSE 'Zürich €' || i END AS memo, "
             "i % 2 = 0 AS even, CAST(i % 1000 AS INTEGER) AS branch "
             f"FROM range({N}) t(i)")


def test_http_arrow_lake_table_types_and_rows(server):
    lake = server.lake
    make_table(lake)
    admin = token_for(lake, "admin")
    t = read_arrow(server.sql("SELECT * FROM bank.ledger ORDER BY id", admin, accept=ARROW))
    assert t.num_rows == N
    s = t.schema
    assert s.field("id").type == pa.int64()
    assert s.field("amount").type == pa.decimal128(18, 2)
    assert pa.types.is_decimal(s.field("big_amount").type) and s.field("big_amount").type.scale == 2
    assert s.field("booked_at").type == pa.timestamp("us", tz="UTC")
    assert s.field("value_date").type == pa.date32()
    assert s.field("memo").type == pa.string()
    assert s.field("even").type == pa.bool_()
    assert s.field("branch").type == pa.int32()
    rows = t.to_pylist()
    base = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    for i in (0, 1, 2, 3, 5, 12345, N - 1):
        r = rows[i]
        assert r["id"] == i
        assert r["amount"] == (None if i % 5 == 0 else cents(i - 100000))
        assert r["booked_at"] == base + datetime.timedelta(microseconds=i * 1000003)
        assert r["value_date"] == datetime.date(2024, 1, 1) + datetime.timedelta(days=i % 366)
        assert r["memo"] == (None if i % 3 == 0 else f"Zürich €{i}")
        assert r["even"] == (i % 2 == 0) and r["branch"] == i % 1000
    # exact decimals, beyond what a double holds
    assert rows[N - 1]["big_amount"] == decimal.Context(prec=50).add(decimal.Decimal(N - 1), BIG)
    assert t.column("amount").null_count == N // 5
    assert t.column("memo").null_count == (N + 2) // 3
    # the same values as the JSON path
    j = server.sql("SELECT amount, memo FROM bank.ledger WHERE id = 12346", admin).json()
    assert j["rows"] == [[str(cents(12346 - 100000)), "Zürich €12346"]]


def test_http_arrow_empty_and_small_results(server):
    admin = token_for(server.lake, "admin")
    make_small = "CREATE TABLE bank.few AS SELECT 1 AS id, CAST(1.50 AS DECIMAL(18,2)) AS d, 'é' AS s"
    server.lake.run("sql", make_small)
    t = read_arrow(server.sql("SELECT * FROM bank.few WHERE id < 0", admin, accept=ARROW))
    assert t.num_rows == 0
    assert t.schema.names == ["id", "d", "s"] and t.schema.field("d").type == pa.decimal128(18, 2)
    t = read_arrow(server.sql("SELECT *, NULL AS n, TRUE AS b FROM bank.few", admin, accept=ARROW))
    assert t.to_pylist() == [{"id": 1, "d": decimal.Decimal("1.50"), "s": "é", "n": None, "b": True}]
    # a script answers with the last statement's result; a command with no columns
    t = read_arrow(server.sql("SELECT 1 AS one; SELECT 2 AS two", admin, accept=ARROW))
    assert t.to_pylist() == [{"two": 2}]
    t = read_arrow(server.sql("CREATE ROLE readers", admin, accept=ARROW))
    assert t.num_columns == 0 and t.num_rows == 0
    # Accept with weights: the highest q wins
    r = server.sql("SELECT 1 AS x", admin, accept=f"application/json;q=0.5, {ARROW}")
    assert read_arrow(r).to_pylist() == [{"x": 1}]
    r = server.sql("SELECT 1 AS x", admin, accept=f"{ARROW};q=0.2, application/json")
    assert r.headers["Content-Type"] == "application/json" and r.json()["rows"] == [[1]]
    r = server.sql("SELECT 1 AS x", admin, accept="application/xml")
    assert r.status == 406 and ARROW in r.json()["error"]["hint"]


def test_http_arrow_errors(server):
    admin = token_for(server.lake, "admin")
    # an error before any row: a JSON error with its status, not a broken stream
    r = server.sql("SELECT * FROM bank.missing", admin, accept=ARROW)
    assert r.status == 404 and r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"]["sqlstate"] == "42P01"
    r = server.sql("SELEC 1", admin, accept=ARROW)
    assert r.status == 400 and r.json()["error"]["sqlstate"] == "42601"
    r = server.sql("SELECT error('boom early') AS v", admin, accept=ARROW)
    assert r.status >= 400 and "boom early" in r.json()["error"]["message"]
    r = server.sql("SELECT 1", None, accept=ARROW)
    assert r.status == 401 and r.json()["error"]["sqlstate"] == "28P01"
    # an error after rows went out: the stream is cut short (no end-of-stream marker, the
    # chunked transfer fails), so no reader takes it for a whole result
    late = "SELECT CASE WHEN i > 3000000 THEN error('boom late') ELSE i END AS v FROM range(4000000) t(i)"
    c = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
    c.request("POST", "/v1/sql", json.dumps({"sql": late}),
              {"Authorization": f"Bearer {admin}", "Accept": ARROW})
    resp = c.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == ARROW
    with pytest.raises(http.client.IncompleteRead) as e:
        resp.read()
    c.close()
    with pytest.raises((pa.ArrowInvalid, OSError)):  # "expected to read N bytes"
        pa.ipc.open_stream(e.value.partial).read_all()
    q = server.request("GET", "/v1/queries?limit=1", token=admin).json()["queries"]
    assert q[0]["status"] == "error"
    assert read_arrow(server.sql("SELECT 1 AS still_serving", admin, accept=ARROW)).num_rows == 1
