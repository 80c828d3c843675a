"""Fixtures for loch's integration tests: a fresh lake per test, the real `loch` binary,
and PyIceberg opening the same catalog.db as an independent reader."""
import datetime as dt
import decimal
import json
import os
import subprocess
from pathlib import Path

import pytest

LOCH = os.environ.get("LOCH_BIN") or str(Path(__file__).resolve().parents[2] / "build" / "loch")


class Lake:
    def __init__(self, root: Path):
        self.root = root
        self.config = root / "loch.yaml"

    def run(self, *args, input=None, check=True, timeout=300):
        p = subprocess.run([LOCH, "-c", str(self.config), *map(str, args)], input=input,
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"loch {' '.join(map(str, args))} failed ({p.returncode}):\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def sql(self, query):
        """Rows of the last result as dicts; decimals exact. `loch sql --format json` prints
        HTTP's form, {"columns": [{"name", "type"}], "rows": [[...]], "tag"}, one line per
        result, with DECIMAL values as strings holding every digit."""
        out = self.run("sql", "--format", "json", query).stdout
        lines = [l for l in out.splitlines() if l.startswith("{")]
        if not lines:
            return []
        res = json.loads(lines[-1], parse_float=decimal.Decimal)
        names = [c["name"] for c in res["columns"]]
        dec = [c["type"].startswith("DECIMAL") for c in res["columns"]]
        return [{n: (decimal.Decimal(v) if d and v is not None else v) for n, d, v in zip(names, dec, row)}
                for row in res["rows"]]

    def catalog(self):
        from pyiceberg.catalog.sql import SqlCatalog
        return SqlCatalog("loch", uri=f"sqlite:///{self.root}/state/catalog.db",
                          warehouse=f"file://{self.root}/warehouse")


@pytest.fixture
def lake(tmp_path):
    subprocess.run([LOCH, "init", str(tmp_path / "lake")], check=True, capture_output=True)
    return Lake(tmp_path / "lake")


def norm(v):
    """One comparable form for a value read by loch (JSON text) or PyIceberg (Python)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
            return ("tz", v.isoformat(sep=" ", timespec="microseconds"))
        return ("ts", v.isoformat(sep=" ", timespec="microseconds"))
    if isinstance(v, dt.date):
        return ("date", v.isoformat())
    if isinstance(v, dt.time):
        return ("time", v.isoformat(timespec="microseconds"))
    if isinstance(v, (int, decimal.Decimal)):
        return decimal.Decimal(v)
    if isinstance(v, float):
        return decimal.Decimal(repr(v))
    if isinstance(v, bytes):
        return v
    return v


def norm_loch(v, kind):
    """Parses loch's JSON text for a column of the given Iceberg kind."""
    if v is None:
        return None
    if kind == "timestamptz":
        return norm(dt.datetime.fromisoformat(v.replace("+00", "+00:00") if v.endswith("+00") else v))
    if kind == "timestamp":
        return norm(dt.datetime.fromisoformat(v))
    if kind == "date":
        return norm(dt.date.fromisoformat(v))
    if kind == "time":
        return norm(dt.time.fromisoformat(v))
    if kind in ("double", "float"):
        return decimal.Decimal(repr(float(v)))
    return norm(v)
