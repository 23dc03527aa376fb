#!/usr/bin/env python3
"""`winsignal serve` on one machine: how long an event takes to be committed and rescore its deal, and
how long reading a deal's score takes, measured as a client sees it (HTTP/1.1 over loopback, one
connection per request, sequential: latency, not throughput).

    DATA=/tmp/ws python3 bench/serve.py    # DATA: a workspace made by `winsignal demo`

In the same run, the two ways a user gets a score after new activity without the server, as side-by-side
reference: `winsignal ingest` of a one-event file then `winsignal score` (the batch path), and the
same with the engine checkpoint current. The workspace is copied first and the copy changed, never DATA.
"""
import http.client
import json
import os
import platform
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("DATA", os.path.join(ROOT, "winsignal-data"))
WORK = os.environ.get("WORK", "/tmp/winsignal-bench-serve")
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/winsignal"))
N = int(os.environ.get("N", "200"))


def run(ws, *args):
    started = time.perf_counter()
    out = subprocess.run([BIN, "--data", ws, "-q", *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"winsignal {' '.join(args)} failed:\n{out.stderr}")
    return time.perf_counter() - started, out.stdout


def request(port, method, path, token, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    started = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    seconds = time.perf_counter() - started
    conn.close()
    if response.status != 200:
        sys.exit(f"{method} {path}: {response.status} {data[:500]!r}")
    return seconds, json.loads(data)


def pct(times, p):
    times = sorted(times)
    return times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))] * 1000


def main():
    if os.path.exists(WORK):
        shutil.rmtree(WORK)
    ws = os.path.join(WORK, "ws")
    shutil.copytree(DATA, ws)
    os.sync()  # the copy on disk now, not written back by the kernel during the measurement
    _, token = run(ws, "users", "add", "bench", "--role", "revops")
    token = token.strip()
    server = subprocess.Popen([BIN, "--data", ws, "serve", "--listen", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline().strip()
        port = int(line.rsplit(":", 1)[1])
        started = time.perf_counter()
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/readyz")
            r = conn.getresponse()
            r.read()
            if r.status == 200:
                break
            time.sleep(0.05)
        ready = time.perf_counter() - started
        _, listed = request(port, "GET", "/v1/deals", token)
        deals = listed["deals"]
        end = deals[0]["as_of"][:10]
        post, changed = [], 0
        for i in range(N + 1):
            d = deals[i % len(deals)]
            item = {"kind": "activities", "record": {
                "activity_id": f"bench-serve-{i}", "type": "call", "status": "completed",
                "direction": "outbound", "opportunity_id": d["opportunity_id"],
                "account_id": d["account_id"], "occurred_at": f"{end}T00:00:00Z"}}
            seconds, answer = request(port, "POST", "/v1/events", token, {"items": [item]})
            if i > 0:  # the first reads the store's event index
                post.append(seconds)
                changed += len(answer["score_changes"])
        get = [request(port, "GET", f"/v1/deals/{deals[i % len(deals)]['opportunity_id']}", token)[0]
               for i in range(N)]
        # Batches: throughput when a client sends many items per request (each batch new events on
        # open deals, round robin).
        batches = []
        for size in (10, 100, 1000, 5000):
            times, changes = [], 0
            for r in range(3):
                items = [{"kind": "activities", "record": {
                    "activity_id": f"bench-batch-{size}-{r}-{i}", "type": "email",
                    "status": "completed", "opportunity_id": deals[i % len(deals)]["opportunity_id"],
                    "account_id": deals[i % len(deals)]["account_id"],
                    "occurred_at": f"{end}T00:00:00Z"}} for i in range(size)]
                seconds, answer = request(port, "POST", "/v1/events", token, {"items": items})
                times.append(seconds)
                changes = len(answer["score_changes"])
            batches.append((size, sorted(times)[1], changes))
    finally:
        server.terminate()
        server.wait()
    # The batch path for the same: one more event in a file, then `score`.
    path = os.path.join(WORK, "one.csv")
    with open(path, "w") as f:
        f.write("activity_id,type,status,opportunity_id,occurred_at\n")
        f.write(f"bench-batch-1,call,completed,{deals[0]['opportunity_id']},{end}T00:00:00Z\n")
    ingest, _ = run(ws, "ingest", "--kind", "activities", path)
    score, _ = run(ws, "score", "--json")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; "
          f"{time.strftime('%Y-%m-%d')}; workspace {DATA}; N = {N}")
    print(f"server ready after {ready:.2f} s")
    print(f"{'':<52} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(f"{'POST /v1/events, one activity (commit + rescore)':<52} "
          f"{pct(post, 50):>8.1f} {pct(post, 99):>8.1f} {max(post) * 1000:>8.1f}")
    print(f"{'GET /v1/deals/{id}':<52} {pct(get, 50):>8.2f} {pct(get, 99):>8.2f} "
          f"{max(get) * 1000:>8.2f}")
    print(f"score changes reported: {changed} of {N} events")
    print(f"{'POST /v1/events, batch of':<28} {'median ms':>10} {'events/s':>9} {'score changes':>14}")
    for size, seconds, changes in batches:
        print(f"{size:<28} {seconds * 1000:>10.1f} {size / seconds:>9.0f} {changes:>14}")
    print(f"batch path: `ingest` of one event {ingest:.2f} s, then `score` {score:.2f} s")


if __name__ == "__main__":
    main()
