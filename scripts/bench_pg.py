#!/usr/bin/env python3
"""Query latency over carelake's Postgres wire protocol, from psycopg (a real client).

Start a server first, e.g. on a demo lake:
    carelake demo --no-serve && CARELAKE_PASSWORD=... carelake serve
then:
    PGPASSWORD=... python3 scripts/bench_pg.py --port 5433 --user carelake --clients 4 --queries 200

Each client opens its own connection (SCRAM sign-in, a session of its own) and runs the queries
below in turn: a point lookup with a server-side parameter, and an aggregate over
analytics.fact_encounter. Prints connections/s, queries/s and p50/p90/p99 latency per query kind.
"""

import argparse
import os
import statistics
import threading
import time

import psycopg

QUERIES = {
    "point lookup (parameter)": (
        "SELECT encounter_id, facility_id, length_of_stay_days FROM analytics.fact_encounter "
        "WHERE encounter_id = %s",
        lambda i: (f"E{i + 1:010d}",),
    ),
    "aggregate by facility": (
        "SELECT facility_id, count(*), avg(length_of_stay_days) FROM analytics.fact_encounter "
        "WHERE encounter_class = 'inpatient' GROUP BY facility_id",
        lambda i: None,
    ),
}


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5433)
    parser.add_argument("--user", default="carelake")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--queries", type=int, default=200, help="per client and kind")
    args = parser.parse_args()
    password = os.environ.get("PGPASSWORD", "")
    times = {kind: [] for kind in QUERIES}
    connect_times = []
    lock = threading.Lock()

    def client(n):
        started = time.perf_counter()
        with psycopg.connect(host=args.host, port=args.port, user=args.user, password=password,
                             dbname="carelake", sslmode="disable") as conn:
            with lock:
                connect_times.append(time.perf_counter() - started)
            cur = conn.cursor()
            for i in range(args.queries):
                for kind, (sql, params) in QUERIES.items():
                    t = time.perf_counter()
                    cur.execute(sql, params(n * args.queries + i))
                    cur.fetchall()
                    with lock:
                        times[kind].append(time.perf_counter() - t)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    total = sum(len(v) for v in times.values())
    print(f"{args.clients} clients, {total} queries in {elapsed:.2f} s = {total / elapsed:.0f} queries/s")
    print(f"sign-in (SCRAM + session): median {statistics.median(connect_times) * 1e3:.1f} ms")
    for kind, values in times.items():
        print(f"{kind:28} p50 {percentile(values, 50) * 1e3:7.2f} ms  p90 {percentile(values, 90) * 1e3:7.2f} ms"
              f"  p99 {percentile(values, 99) * 1e3:7.2f} ms  ({len(values)} queries)")


if __name__ == "__main__":
    main()
