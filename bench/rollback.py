#!/usr/bin/env python3
"""Switching the served win model under load: how long after `POST /v1/models/rollback` (and after an
activation by the command line, in another process) the scores a client reads come from the other model,
and whether any request failed meanwhile.

    DATA=/tmp/ws python3 bench/rollback.py    # DATA: a workspace made by `winsignal demo`

The workspace is copied first and the copy changed, never DATA. In the copy a second model is trained
(seed 1, as `alice`), approved (as `bob`) and activated; then `winsignal serve` starts, READERS threads
read one deal's score (`GET /v1/deals/{id}`, one connection per request) as fast as they can, and every
ROUNDS seconds the model is switched: by the API's rollback, then by `winsignal models activate` (the
server follows the registry, checked four times a second), alternately. For each switch: the time from
sending the request (or from the command's return: the command itself first runs the gate over the
whole workspace, timed separately) to the first read that shows the other model, and the largest read
latency around it. Every read's status is counted: the target is no failed request.
"""
import http.client
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("DATA", os.path.join(ROOT, "winsignal-data"))
WORK = os.environ.get("WORK", "/tmp/winsignal-bench-rollback")
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/winsignal"))
READERS = int(os.environ.get("READERS", "4"))
SWITCHES = int(os.environ.get("SWITCHES", "10"))
ROUNDS = float(os.environ.get("ROUNDS", "2"))


def run(ws, user, *args):
    env = dict(os.environ, USER=user)
    out = subprocess.run([BIN, "--data", ws, "-q", *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"winsignal {' '.join(args)} failed:\n{out.stderr}")
    return out.stdout


def request(port, method, path, token, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def main():
    if os.path.exists(WORK):
        shutil.rmtree(WORK)
    shutil.copytree(DATA, WORK)
    os.sync()  # the copy on disk now, not written back by the kernel during the measurement
    first = json.loads(run(WORK, "alice", "models", "list", "--json"))["active"]
    second = json.loads(run(WORK, "alice", "train", "--seed", "1", "--json"))["model_id"]
    run(WORK, "bob", "models", "approve", second, "--reason", "bench")
    gate = json.loads(run(WORK, "bob", "models", "gate", second, "--json"))
    override = [] if gate["passed"] else ["--override", "bench"]
    run(WORK, "bob", "models", "activate", second, "--reason", "bench", *override)
    token = run(WORK, "bob", "users", "add", "bench", "--role", "admin").strip()
    deals = json.loads(run(WORK, "bob", "score", "--json"))["deals"]
    deal = deals[0]["opportunity_id"]
    server = subprocess.Popen([BIN, "--data", WORK, "serve", "--listen", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(server.stdout.readline().strip().rsplit(":", 1)[1])
    while True:
        try:
            if request(port, "GET", "/readyz", token)[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.05)

    reads = []  # (sent, answered, status, model_id)
    lock = threading.Lock()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            sent = time.perf_counter()
            try:
                status, body = request(port, "GET", f"/v1/deals/{deal}", token)
                model = json.loads(body).get("model_id") if status == 200 else None
            except OSError as e:
                status, model = f"error {e}", None
            with lock:
                reads.append((sent, time.perf_counter(), status, model))

    threads = [threading.Thread(target=reader) for _ in range(READERS)]
    for t in threads:
        t.start()
    time.sleep(ROUNDS)
    switches = []
    serving = second
    for i in range(SWITCHES):
        target = first if serving == second else second
        started = time.perf_counter()
        if i % 2 == 0:
            how = "API rollback"
            status, body = request(port, "POST", "/v1/models/rollback", token, {"reason": f"bench {i}"})
            if status != 200:
                sys.exit(f"rollback: {status} {body[:300]!r}")
        else:
            how = "CLI activate"
            # The command runs the gate first (both models over the whole workspace): the switch is
            # timed from the command's return, when the transition is recorded, to the first read
            # showing it (the server checks the registry every 250 ms).
            run(WORK, "bob", "models", "activate", target, "--reason", f"bench {i}", *override)
            command = time.perf_counter() - started
            started = time.perf_counter()
        # Wait for a read sent after the switch began that shows the target.
        while True:
            with lock:
                seen = [r for r in reads if r[0] >= started and r[3] == target]
            if seen:
                break
            if time.perf_counter() - started > 30:
                sys.exit(f"switch {i} ({how}) not seen in 30 s")
            time.sleep(0.005)
        switched = min(r[1] for r in seen) - started
        with lock:
            around = [r[1] - r[0] for r in reads if started - 0.5 <= r[0] <= started + switched + 0.5]
        switches.append((how, switched, max(around) if around else float("nan"),
                         command if how == "CLI activate" else None))
        serving = target
        time.sleep(ROUNDS)
    stop.set()
    for t in threads:
        t.join()
    server.terminate()
    server.wait()

    failed = [r for r in reads if r[2] != 200]
    print(f"machine: {platform.node()} · {os.cpu_count()} cores · {time.strftime('%Y-%m-%d')}")
    print(f"workspace: {DATA}; {len(deals)} open deals rescored at each switch; {READERS} readers")
    print(f"reads: {len(reads)}, failed: {len(failed)}")
    print(f"{'switch':<14} {'seen after (ms)':>16} {'slowest read around it (ms)':>28} {'command (s)':>12}")
    for how, switched, slowest, command in switches:
        took = f"{command:.1f}" if command is not None else ""
        print(f"{how:<14} {switched * 1000:>16.0f} {slowest * 1000:>28.0f} {took:>12}")
    for how in ("API rollback", "CLI activate"):
        times = sorted(s[1] for s in switches if s[0] == how)
        if times:
            print(f"{how}: median {times[len(times) // 2] * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms")
    if failed:
        sys.exit(f"{len(failed)} reads failed, e.g. {failed[0]}")


if __name__ == "__main__":
    main()
