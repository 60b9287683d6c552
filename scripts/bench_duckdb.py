#!/usr/bin/env python3
"""DuckDB's side of `carelake bench compare`.

Reads a manifest (JSON on standard input): the Parquet files each table's current Delta
version lists, the queries, and the runs per query. Makes one DuckDB view per table over
exactly those files, runs each query warm `runs` times, and prints JSON: per query the times
in milliseconds and the rows (numbers as JSON numbers, timestamps as ISO text without a zone),
so the two sides'
answers can be compared exactly (carelake rounds the numbers of both sides alike).
"""

import datetime
import decimal
import json
import sys
import time

import duckdb


def normal(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value
    if isinstance(value, (float, decimal.Decimal)):
        return float(value)
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None).isoformat(timespec="seconds")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def main():
    manifest = json.load(sys.stdin)
    con = duckdb.connect()
    con.execute(f"SET threads = {int(manifest.get('threads', 2))}")
    for schema in sorted({t.split(".")[0] for t in manifest["tables"]}):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for table, files in manifest["tables"].items():
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{listed}])")
    out = {}
    for name, sql in manifest["queries"]:
        rows = con.execute(sql).fetchall()  # the warm-up run
        times = []
        for _ in range(manifest["runs"]):
            started = time.perf_counter()
            con.execute(sql).fetchall()
            times.append((time.perf_counter() - started) * 1e3)
        out[name] = {
            "times_ms": times,
            "rows": [[normal(v) for v in row] for row in rows],
        }
    json.dump({"duckdb": duckdb.__version__, "queries": out}, sys.stdout)


if __name__ == "__main__":
    main()
