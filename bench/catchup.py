#!/usr/bin/env python3
"""Catch-up: after one more file of 1,000 events lands in a workspace, how long `winsignal score` takes.

The engine checkpoint is keyed by the store's log position; a command that finds a checkpoint from an
earlier position restores it and applies only what was committed since (`events_since`), instead of
replaying every event. This script measures, in the same run:

  1. `score` on a fresh checkpoint (nothing new),
  2. `score` right after ingesting 1,000 new activities on open deals (catch-up),
  3. `score` after the same ingest with the checkpoint removed (the full replay every ingest forced
     before).

    DATA=/tmp/ws python3 bench/catchup.py    # DATA: a workspace made by `winsignal demo` (scale 1)

Each ingest uses new activity ids, so every round adds 1,000 events. The workspace is copied first and
the copy changed, never DATA itself.
"""
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("DATA", os.path.join(ROOT, "winsignal-data"))
WORK = os.environ.get("WORK", "/tmp/winsignal-bench-catchup")
REPEAT = int(os.environ.get("REPEAT", "3"))
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/winsignal"))


def run(ws, *args):
    started = time.perf_counter()
    out = subprocess.run([BIN, "--data", ws, "-q", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"winsignal {' '.join(args)} failed:\n{out.stderr}")
    return seconds, out.stdout


def open_deals(ws):
    _, text = run(ws, "score", "--json")
    return [d["opportunity_id"] for d in json.loads(text)["deals"]], json.loads(text)["as_of"]


def write_events(path, deals, as_of, round_no, n=1000):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["activity_id", "type", "direction", "status", "opportunity_id", "occurred_at"])
        for i in range(n):
            w.writerow([f"bench-catchup-{round_no}-{i}", "email", "outbound", "completed",
                        deals[i % len(deals)], as_of[:10] + "T00:00:00Z"])


def main():
    if os.path.exists(WORK):
        shutil.rmtree(WORK)
    ws = os.path.join(WORK, "ws")
    shutil.copytree(DATA, ws)
    os.sync()  # the copy on disk now, not written back by the kernel during the measurement
    deals, as_of = open_deals(ws)
    run(ws, "score")  # a checkpoint at the current position
    rows = {"nothing new": [], "catch-up after 1,000 events": [], "full replay after 1,000 events": []}
    for r in range(REPEAT):
        rows["nothing new"].append(run(ws, "score")[0])
        path = os.path.join(WORK, f"events-{r}a.csv")
        write_events(path, deals, as_of, f"{r}a")
        run(ws, "ingest", "--kind", "activities", path)
        rows["catch-up after 1,000 events"].append(run(ws, "score")[0])
        path = os.path.join(WORK, f"events-{r}b.csv")
        write_events(path, deals, as_of, f"{r}b")
        run(ws, "ingest", "--kind", "activities", path)
        try:
            os.remove(os.path.join(ws, "state", "engine-state.state"))
        except FileNotFoundError:
            pass
        rows["full replay after 1,000 events"].append(run(ws, "score")[0])
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; "
          f"{time.strftime('%Y-%m-%d')}; workspace {DATA}")
    print(f"{'winsignal score':<34} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, times in rows.items():
        times = sorted(times)
        print(f"{name:<34} {times[len(times) // 2]:>9.2f} {times[0]:>7.2f} {times[-1]:>7.2f}")


if __name__ == "__main__":
    main()
