#!/usr/bin/env python3
"""Crash consistency: kill carelake with SIGKILL at random points, many times, and check that
nothing is lost and nothing is stored twice.

Batch scenarios (bulk load, clinical loads, pipeline run, CDC apply, OPTIMIZE and VACUUM) run
their commands once uninterrupted in a reference lake; then, per iteration, a copy of the
starting lake runs the same commands, is killed at a random instant within the reference's
duration, reruns the commands to completion, and must hold exactly the reference's row count
in every table, with `carelake check` sound (every Delta table opens, every file in place).

Service scenarios (streamed HTTP events, MLLP with acknowledgements) kill a server while
clients send; after a restart every acknowledged event or message must be in the lake exactly
once.

    scripts/crash.py --bin target/debug/carelake --iterations 20 [--scenario load,stream,...]

Only the Python standard library is used. Prints one line per iteration and a summary table;
exits 1 when any iteration lost or doubled a row.
"""

import argparse
import base64
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

PASSWORD = "a long crash-test password"


class Harness:
    def __init__(self, binary, work, patients, seed):
        self.bin = os.path.abspath(binary)
        self.work = work
        self.patients = patients
        self.rng = random.Random(seed)
        self.data = os.path.join(work, "data")

    # --- running carelake -------------------------------------------------------------------
    def env(self, lake):
        env = dict(os.environ)
        env["CARELAKE_LAKE"] = lake
        env.pop("CARELAKE_LOG", None)
        return env

    def run(self, lake, args, check=True):
        p = subprocess.run(
            [self.bin, *args],
            env=self.env(lake),
            cwd=self.work,
            capture_output=True,
            text=True,
        )
        if check and p.returncode != 0:
            raise SystemExit(
                f"carelake {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
            )
        return p

    def scalar(self, lake, sql):
        out = self.run(lake, ["sql", sql, "--format", "csv"]).stdout.splitlines()
        return out[1] if len(out) > 1 else ""

    def counts(self, lake):
        """Row count of every table in the catalog."""
        out = self.run(
            lake,
            [
                "sql",
                "SELECT zone, table_name FROM system.tables WHERE kind = 'table' ORDER BY 1, 2",
                "--format",
                "csv",
            ],
        ).stdout.splitlines()[1:]
        tables = []
        for row in out:
            if not row.strip():
                continue
            zone, name = row.strip().split(",", 1)
            # system.tables names a table with its zone or without it, by version
            tables.append(name if "." in name else f"{zone}.{name}")
        if not tables:
            return {}
        sql = " UNION ALL ".join(f"SELECT '{t}' AS t, count(*) AS n FROM {t}" for t in tables)
        rows = self.run(lake, ["sql", sql, "--format", "csv"]).stdout.splitlines()[1:]
        return dict((r.split(",")[0], int(r.split(",")[1])) for r in rows)

    def check(self, lake):
        p = self.run(lake, ["check"], check=False)
        return p.returncode == 0, p.stdout + p.stderr

    def add_user(self, lake):
        env = self.env(lake)
        env["CARELAKE_PASSWORD"] = PASSWORD
        subprocess.run(
            [self.bin, "user", "add", "crash", "--roles", "admin"],
            env=env,
            cwd=self.work,
            check=True,
            capture_output=True,
        )

    def new_lake(self, name):
        lake = os.path.join(self.work, name)
        shutil.rmtree(lake, ignore_errors=True)
        self.run(lake, ["init"])
        return lake

    # --- input ------------------------------------------------------------------------------
    def prepare(self):
        if not os.path.exists(os.path.join(self.data, "encounters.csv")):
            lake = self.new_lake("gen-lake")
            self.run(
                lake,
                ["generate", "--patients", str(self.patients), "--out", self.data],
            )
        parts = os.path.join(self.work, "parts")
        if not os.path.exists(parts):
            os.makedirs(parts)
            with open(os.path.join(self.data, "encounters.csv")) as f:
                header, *rows = f.read().splitlines()
            n = 6
            for i in range(n):
                with open(os.path.join(parts, f"encounters_{i}.csv"), "w") as out:
                    out.write("\n".join([header, *rows[i::n]]) + "\n")
        feed = os.path.join(self.work, "feed")
        if not os.path.exists(feed):
            os.makedirs(feed)
            rng = random.Random(7)
            ts = 0
            for batch in range(4):
                lines = ["member_id,name,plan,op,commit_ts"]
                for _ in range(3000):
                    ts += 1
                    member = rng.randrange(4000)
                    op = rng.choice("IIUUD")
                    lines.append(f"{member},member {member},plan {rng.randrange(9)},{op},{ts}")
                with open(os.path.join(feed, f"changes_{batch}.csv"), "w") as out:
                    out.write("\n".join(lines) + "\n")
        small = os.path.join(self.work, "small")
        if not os.path.exists(small):
            os.makedirs(small)
            for i in range(16):
                with open(os.path.join(small, f"beds_{i:02}.csv"), "w") as out:
                    out.write("ward,bed,day\n")
                    out.write("".join(f"W{i},{b},{d}\n" for b in range(40) for d in range(25)))

    # --- batch scenarios -------------------------------------------------------------------
    def batch_scenarios(self):
        d, w = self.data, self.work
        csv_loads = [
            ["load", os.path.join(d, f), "--into", f"raw.{f[:-4]}"]
            for f in sorted(os.listdir(d))
            if f.endswith(".csv")
        ]
        clinical = [
            ["load", os.path.join(d, "hl7")],
            ["load", os.path.join(d, "fhir")],
            ["load", os.path.join(d, "x12")],
        ]
        small = [
            ["load", os.path.join(w, "small", f), "--into", "raw.beds"]
            for f in sorted(os.listdir(os.path.join(w, "small")))
        ]
        return {
            # name: (commands that make the starting lake, commands that are killed)
            "load": ([], [["load", os.path.join(w, "parts"), "--into", "raw.encounters"]]
                     + csv_loads[:4]),
            "clinical": ([], clinical),
            "run": (csv_loads + clinical, [["run"]]),
            "cdc": ([], [["load", "--cdc", os.path.join(w, "feed"), "--into",
                          "curated.members", "--key", "member_id"]]),
            "optimize": (small, [["sql", "OPTIMIZE raw.beds"],
                                 ["sql", "VACUUM raw.beds RETAIN 0 HOURS"]]),
        }

    def batch(self, name, setup, commands, iterations, report):
        start = self.new_lake(f"{name}-start")
        for c in setup:
            self.run(start, c)
        reference = os.path.join(self.work, f"{name}-reference")
        shutil.rmtree(reference, ignore_errors=True)
        shutil.copytree(start, reference, symlinks=True)
        began = time.monotonic()
        for c in commands:
            self.run(reference, c)
        duration = time.monotonic() - began
        expected = self.counts(reference)
        print(f"{name}: reference {duration:.1f} s, {len(expected)} tables, "
              f"{sum(expected.values())} rows", flush=True)
        for i in range(iterations):
            lake = os.path.join(self.work, f"{name}-try")
            shutil.rmtree(lake, ignore_errors=True)
            shutil.copytree(start, lake, symlinks=True)
            at = self.rng.uniform(0.02, 0.98) * duration
            killed_in = self.run_and_kill(lake, commands, at)
            for c in commands:
                self.run(lake, c)
            got = self.counts(lake)
            sound, text = self.check(lake)
            diff = {t: (expected.get(t), got.get(t)) for t in set(expected) | set(got)
                    if expected.get(t) != got.get(t)}
            ok = not diff and sound
            report.append((name, ok, killed_in))
            status = "ok" if ok else "FAILED"
            print(f"  {name} #{i + 1}: killed at {at:.2f} s during {killed_in}: {status}",
                  flush=True)
            if diff:
                print(f"    counts differ (expected, found): {diff}", flush=True)
            if not sound:
                print(f"    check: {text}", flush=True)
            if not ok:
                kept = os.path.join(self.work, f"{name}-failed-{i + 1}")
                shutil.rmtree(kept, ignore_errors=True)
                shutil.move(lake, kept)
                print(f"    kept in {kept}", flush=True)

    def run_and_kill(self, lake, commands, at):
        """Runs `commands` in order and kills the one running `at` seconds in."""
        began = time.monotonic()
        for c in commands:
            p = subprocess.Popen([self.bin, *c], env=self.env(lake), cwd=self.work,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            while p.poll() is None:
                if time.monotonic() - began >= at:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                    return " ".join(c[:2])
                time.sleep(0.005)
        return "nothing (all finished)"

    # --- service scenarios -----------------------------------------------------------------
    def serve(self, lake, args):
        p = subprocess.Popen([self.bin, "serve", "--pg-listen", "off", *args],
                             env=self.env(lake), cwd=self.work, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        lines = []
        while True:
            line = p.stdout.readline()
            if not line:
                raise SystemExit(f"serve ended before it was ready: {lines}")
            if line.startswith("Press Ctrl-C"):
                break
            lines.append(line)
        threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
        return p, "".join(lines)

    @staticmethod
    def port_of(lines, marker):
        for line in lines.splitlines():
            if marker in line:
                for word in line.replace("/", " ").split():
                    host, _, port = word.rpartition(":")
                    if host and port.isdigit():
                        return int(port)
        raise SystemExit(f"no port for {marker} in {lines}")

    def service(self, name, iterations, report):
        lake = self.new_lake(f"{name}-lake")
        self.add_user(lake)
        acknowledged = set()
        table, count_sql = {
            "stream": ("raw.crash_events",
                       "SELECT event_id FROM raw.crash_events"),
            "mllp": ("raw.hl7_messages",
                     "SELECT control_id FROM raw.hl7_messages"),
        }[name]
        for i in range(iterations):
            if name == "stream":
                server, lines = self.serve(lake, ["--http-listen", "127.0.0.1:0",
                                                  "--flush-seconds", "0.2"])
                port = self.port_of(lines, "http://")
                sender = self.http_sender
            else:
                server, lines = self.serve(lake, ["--http-listen", "off",
                                                  "--mllp", "127.0.0.1:0"])
                port = self.port_of(lines, "MLLP")
                sender = self.mllp_sender
            acked = set()
            lock = threading.Lock()
            threads = [threading.Thread(target=sender, args=(port, f"i{i}c{c}", acked, lock),
                                        daemon=True) for c in range(3)]
            for t in threads:
                t.start()
            time.sleep(self.rng.uniform(0.3, 2.5))
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            for t in threads:
                t.join()
            acknowledged |= acked
            # Restarted, the server stores what its log has and the lake lacks.
            server, _ = self.serve(lake, ["--http-listen", "127.0.0.1:0", "--flush-seconds",
                                          "0.2"] if name == "stream" else
                                   ["--http-listen", "off", "--mllp", "127.0.0.1:0"])
            deadline = time.monotonic() + 60
            while True:
                p = self.run(lake, ["sql", count_sql, "--format", "csv"], check=False)
                rows = p.stdout.splitlines()[1:] if p.returncode == 0 else []
                stored = set(rows)
                missing = len(acknowledged - stored)
                if not missing or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            os.killpg(server.pid, signal.SIGTERM)
            server.wait()
            twice = len(rows) - len(stored)
            sound, text = self.check(lake)
            ok = missing == 0 and twice == 0 and sound
            report.append((name, ok, "serve"))
            print(f"  {name} #{i + 1}: {len(acked)} acknowledged this round, "
                  f"{len(acknowledged)} in all, {len(rows)} in {table}: "
                  f"{missing} missing, {twice} twice: {'ok' if ok else 'FAILED'}", flush=True)
            if not sound:
                print(f"    check: {text}", flush=True)

    @staticmethod
    def http_sender(port, client, acked, lock):
        auth = "Basic " + base64.b64encode(f"crash:{PASSWORD}".encode()).decode()
        for batch in range(100000):
            ids = [f"{client}-{batch}-{k}" for k in range(20)]
            body = "".join(f'{{"event_id":"{e}","device_id":"MON","value":{batch}}}\n'
                           for e in ids).encode()
            head = (f"POST /api/v1/ingest/crash_events HTTP/1.1\r\nHost: x\r\n"
                    f"Connection: close\r\nAuthorization: {auth}\r\n"
                    f"Content-Type: application/x-ndjson\r\nContent-Length: {len(body)}\r\n\r\n")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                    s.sendall(head.encode() + body)
                    reply = b""
                    while chunk := s.recv(65536):
                        reply += chunk
            except OSError:
                return
            if not reply.startswith(b"HTTP/1.1 202"):
                return
            with lock:
                acked.update(ids)

    @staticmethod
    def mllp_sender(port, client, acked, lock):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            return
        with s:
            for n in range(100000):
                control = f"{client}-{n}"
                msg = (f"MSH|^~\\&|CRASH|HOSP|LAKE|HOSP|20240101120000||ORU^R01^ORU_R01|"
                       f"{control}|P|2.5.1\rPID|1||{n}^^^HOSP^MR||Doe^Jane\r"
                       f"OBR|1|||2345-7^Glucose^LN\rOBX|1|NM|2345-7^Glucose^LN||{90 + n % 50}|"
                       f"mg/dL|70-99|N|||F\r")
                try:
                    s.sendall(b"\x0b" + msg.encode() + b"\x1c\x0d")
                    ack = b""
                    while not ack.endswith(b"\x1c\x0d"):
                        chunk = s.recv(4096)
                        if not chunk:
                            return
                        ack += chunk
                except OSError:
                    return
                if b"MSA|AA|" + control.encode() not in ack:
                    return
                with lock:
                    acked.add(control)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/carelake")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--scenario", default="load,clinical,run,cdc,optimize,stream,mllp",
                    help="comma-separated scenarios")
    ap.add_argument("--patients", type=int, default=300)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    work = args.work or tempfile.mkdtemp(prefix="carelake-crash-")
    os.makedirs(work, exist_ok=True)
    print(f"crash harness: {args.bin}, seed {seed}, work in {work}", flush=True)
    h = Harness(args.bin, work, args.patients, seed)
    h.prepare()
    batch = h.batch_scenarios()
    report = []
    began = time.monotonic()
    for name in args.scenario.split(","):
        if name in batch:
            setup, commands = batch[name]
            h.batch(name, setup, commands, args.iterations, report)
        elif name in ("stream", "mllp"):
            h.service(name, args.iterations, report)
        else:
            raise SystemExit(f"unknown scenario {name}")
    print(f"\n{'scenario':<10} {'kills':>6} {'sound':>6}  killed during")
    for name in dict.fromkeys(r[0] for r in report):
        rows = [r for r in report if r[0] == name]
        during = {}
        for r in rows:
            during[r[2]] = during.get(r[2], 0) + 1
        spread = ", ".join(f"{k} ×{v}" for k, v in sorted(during.items()))
        print(f"{name:<10} {len(rows):>6} {sum(r[1] for r in rows):>6}  {spread}")
    failed = sum(not r[1] for r in report)
    print(f"{len(report)} kills in {time.monotonic() - began:.0f} s: "
          f"{'every one sound' if not failed else f'{failed} FAILED'}")
    if not args.work and not failed:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
