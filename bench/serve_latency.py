#!/usr/bin/env python3
"""`winsignal serve` under a steady load of events: how long from sending an event to receiving the
score change it causes on the Server-Sent Events stream, at 1k, 10k and 20k events/s, everything on
this machine (the load generator shares its cores with the server).

    DATA=/tmp/ws python3 bench/serve_latency.py      # DATA: a workspace made by `winsignal demo`
    RATES=1000,10000 SECONDS=60 SENDERS=4 python3 bench/serve_latency.py

The load: SENDERS connections, each sending a batch of events every TICK_MS milliseconds, or as soon as
its last one is answered if that took longer, with every event due since its last batch (open loop:
`POST /v1/events`, as a Segment destination or a CRM outbound queue sends them), together RATE events/s:
completed activities on open deals, round robin, each happening when it is sent on the data's clock
(the end of the data plus the time since the load began), as a live feed's events do. About PROBES
times a second a batch also carries a probe: a new opportunity, which is scored at once, so its score
change is certain to be streamed. The
latency is the time from the start of sending the probe's batch to the arrival of the probe's
`score_change` event on a stream opened before the load. Every event sent must be answered (accepted or
quarantined) and every probe's change must arrive: the script fails otherwise. The last column is the
server's CPU time (all its threads, from /proc) per 1,000 events sent at that rate.

The workspace is copied first and the copy changed, never DATA.
"""
import datetime
import http.client
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("DATA", os.path.join(ROOT, "winsignal-data"))
WORK = os.environ.get("WORK", "/tmp/winsignal-bench-latency")
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/winsignal"))
RATES = [int(r) for r in os.environ.get("RATES", "1000,10000,20000").split(",")]
SECONDS = float(os.environ.get("SECONDS", "60"))
SENDERS = int(os.environ.get("SENDERS", "4"))
TICK_MS = float(os.environ.get("TICK_MS", "20"))
PROBES = float(os.environ.get("PROBES", "20"))
# LOG: a file for the server's log (with WINSIGNAL_LOG=debug it times each commit's phases).
LOG = os.environ.get("LOG")


def run(ws, *args):
    out = subprocess.run([BIN, "--data", ws, "-q", *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"winsignal {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def cpu_seconds(pid):
    """The CPU time (user and system) process `pid` used so far, its ended threads included (Linux:
    /proc/<pid>/stat); None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000


class Stream(threading.Thread):
    """Reads `GET /v1/stream` and notes when each opportunity's first change arrives."""

    def __init__(self, port, token):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(f"GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
                          .encode())
        self.arrived = {}
        self.lock = threading.Lock()

    def run(self):
        buf = b""
        while True:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return
            now = time.perf_counter()
            buf += chunk
            # Chunked framing and SSE lines: a `data:` line holds the JSON of one change.
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.startswith(b"data:"):
                    try:
                        change = json.loads(line[5:])
                    except ValueError:
                        continue
                    with self.lock:
                        self.arrived.setdefault(change["opportunity_id"], now)


def load(port, token, deals, data_now, rate, stream, tag):
    """Sends `rate` events/s for SECONDS; returns (probe latencies, events sent, answered, elapsed)."""
    per_tick = rate * TICK_MS / 1000 / SENDERS
    probe_every = max(1, int(round(1000 / TICK_MS * SENDERS / PROBES)))
    sent_probes = {}
    counts = {"sent": 0, "answered": 0, "requests": 0}
    lock = threading.Lock()
    stop_at = time.perf_counter() + SECONDS

    def sender(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        carry, tick, i = 0.0, 0, 0
        next_at = time.perf_counter() + k * TICK_MS / 1000 / SENDERS
        last = time.perf_counter()
        while time.perf_counter() < stop_at:
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            # Open loop: the events due since the last send, however long the server took (a slow
            # server gets bigger batches, as a queueing integration would send).
            now = time.perf_counter()
            carry += per_tick * (now - last) / (TICK_MS / 1000)
            last = now
            n = int(carry)
            carry -= n
            items = []
            for _ in range(n):
                d = deals[i % len(deals)]
                items.append({"kind": "activities", "record": {
                    "activity_id": f"lat-{tag}-{k}-{i}", "type": "email", "status": "completed",
                    "opportunity_id": d["opportunity_id"], "account_id": d["account_id"],
                    "occurred_at": data_now()}})
                i += 1
            probe = None
            if tick % probe_every == 0:
                d = deals[tick % len(deals)]
                probe = f"PROBE-{tag}-{k}-{tick}"
                items.append({"kind": "opportunities", "record": {
                    "opportunity_id": probe, "account_id": d["account_id"], "rep_id": d["rep_id"],
                    "amount": 10000, "outcome": "open", "stage": d["stage"] or "Prospecting",
                    "created_at": data_now()}})
            tick += 1
            next_at = max(next_at + TICK_MS / 1000, time.perf_counter())
            if not items:
                continue
            body = json.dumps({"items": items})
            started = time.perf_counter()
            conn.request("POST", "/v1/events", body=body, headers=headers)
            response = conn.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                sys.exit(f"POST /v1/events: {response.status} {answer}")
            with lock:
                if probe:
                    sent_probes[probe] = started
                counts["sent"] += len(items)
                counts["answered"] += answer["accepted"] + answer["quarantined"]
                counts["requests"] += 1
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=sender, args=(k,)) for k in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    deadline = time.perf_counter() + 30
    while True:
        with stream.lock:
            missing = [p for p in sent_probes if p not in stream.arrived]
        if not missing or time.perf_counter() > deadline:
            break
        time.sleep(0.05)
    if missing:
        sys.exit(f"{len(missing)} probes' score changes never arrived on the stream, e.g. {missing[:3]}")
    with stream.lock:
        latencies = [stream.arrived[p] - t0 for p, t0 in sent_probes.items()]
    return latencies, counts, elapsed


def main():
    if os.path.exists(WORK):
        shutil.rmtree(WORK)
    ws = os.path.join(WORK, "ws")
    shutil.copytree(DATA, ws)
    # The copy's pages on disk now, not written back by the kernel half a minute into the load, where
    # they would hold up the server's syncs for hundreds of milliseconds.
    os.sync()
    token = run(ws, "users", "add", "bench", "--role", "revops").strip()
    log = open(LOG, "w") if LOG else subprocess.DEVNULL
    server = subprocess.Popen([BIN, "--data", ws, "serve", "--listen", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=log, text=True)
    rows = []
    try:
        port = int(server.stdout.readline().strip().rsplit(":", 1)[1])
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/readyz")
            r = conn.getresponse()
            r.read()
            if r.status == 200:
                break
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/v1/deals", headers={"Authorization": f"Bearer {token}"})
        deals = json.loads(conn.getresponse().read())["deals"]
        # Events happen as they are sent, on the data's clock: the end of the data plus the time since
        # the load began (a live feed's events are later than everything stored, a millisecond apart).
        origin = datetime.datetime.fromisoformat(deals[0]["as_of"].replace("Z", "+00:00"))
        began = time.time()

        def data_now():
            t = origin + datetime.timedelta(seconds=time.time() - began)
            return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")

        stream = Stream(port, token)
        stream.start()
        for rate in RATES:
            cpu_before = cpu_seconds(server.pid)
            latencies, counts, elapsed = load(port, token, deals, data_now, rate, stream, str(rate))
            cpu_after = cpu_seconds(server.pid)
            # The server's CPU time per 1,000 events: steadier from run to run than the latencies,
            # which swing with how the commits happen to fall.
            cpu = (None if cpu_before is None or cpu_after is None
                   else (cpu_after - cpu_before) * 1000 / counts["sent"] * 1000)
            if counts["answered"] != counts["sent"]:
                sys.exit(f"at {rate}/s: {counts['sent']} events sent, {counts['answered']} answered")
            rows.append((rate, counts["sent"] / elapsed, counts["requests"] / elapsed,
                         len(latencies), pct(latencies, 50), pct(latencies, 99),
                         max(latencies) * 1000, counts["sent"], cpu))
    finally:
        server.terminate()
        server.wait()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; "
          f"{time.strftime('%Y-%m-%d')}; workspace {DATA}; {SECONDS:.0f} s per rate, {SENDERS} "
          f"connections, a batch every {TICK_MS:.0f} ms each")
    print(f"{'target/s':>9} {'events/s':>9} {'batches/s':>10} {'probes':>7} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'max ms':>8} {'events (all answered)':>22} {'server CPU ms/1k events':>24}")
    for rate, achieved, batches, n, p50, p99, worst, sent, cpu in rows:
        cpu = "n/a" if cpu is None else f"{cpu:.0f}"
        print(f"{rate:>9} {achieved:>9.0f} {batches:>10.0f} {n:>7} {p50:>8.1f} {p99:>8.1f} "
              f"{worst:>8.1f} {sent:>22} {cpu:>24}")


if __name__ == "__main__":
    main()
