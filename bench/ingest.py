#!/usr/bin/env python3
"""End-to-end ingest throughput: the demo's activities and product events as canonical CSV, loaded by
`winsignal ingest` into a fresh workspace, and the same CSV loaded by DuckDB (`read_csv` into a table in a
database file), on the same machine in the same run. Prints a Markdown table for BENCHMARKS.md.

    pip install duckdb
    python3 bench/ingest.py            # builds release binaries, generates the demo at scale 1 (canonical)
    SCALE=0.25 python3 bench/ingest.py # smaller
"""
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.environ.get("OUT", "/tmp/winsignal-bench")
SCALE = os.environ.get("SCALE", "1.0")
REPEAT = int(os.environ.get("REPEAT", "3"))


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, cwd=ROOT, **kw)


def main():
    import duckdb

    run(["cargo", "build", "--release", "-p", "winsignal", "-p", "winsignal-demo", "--example", "demo_timing"])
    inp = os.path.join(OUT, "input")
    shutil.rmtree(inp, ignore_errors=True)
    run([os.path.join(ROOT, "target/release/examples/demo_timing"), SCALE, inp, "canonical"], stdout=subprocess.DEVNULL)
    binary = os.path.join(ROOT, "target/release/winsignal")
    rows_out = []
    for kind in ["activities", "product_events"]:
        csv = os.path.join(inp, "canonical", f"{kind}.csv")
        size_mb = os.path.getsize(csv) / 1e6
        ws_times, db_times = [], []
        rows = db_rows = 0
        for _ in range(REPEAT):
            ws = os.path.join(OUT, "ws")
            shutil.rmtree(ws, ignore_errors=True)
            t = time.perf_counter()
            out = run([binary, "--data", ws, "--quiet", "ingest", csv, "--json"], stdout=subprocess.PIPE).stdout
            ws_times.append(time.perf_counter() - t)
            rows = json.loads(out)["loads"][0]["stats"]["rows_read"]
            db = os.path.join(OUT, "duck.db")
            for p in [db, db + ".wal"]:
                if os.path.exists(p):
                    os.remove(p)
            t = time.perf_counter()
            con = duckdb.connect(db)
            con.execute("CREATE TABLE t AS SELECT * FROM read_csv(?, ignore_errors = true)", [csv])
            db_rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
            con.close()
            db_times.append(time.perf_counter() - t)
        ws_t, db_t = min(ws_times), min(db_times)
        ws_med = statistics.median(ws_times)
        rows_out.append((kind, rows, size_mb, ws_t, rows / ws_t, rows / ws_med, db_rows, db_t, db_rows / db_t, ws_t / db_t))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}, "
          f"duckdb {duckdb.__version__}; scale {SCALE}; best of {REPEAT}")
    print("| file | rows | MB | winsignal s (best) | winsignal rows/s (best) | winsignal rows/s (median) | DuckDB rows | DuckDB s (best) | DuckDB rows/s | time ratio (winsignal / DuckDB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, r, mb, wt, wr, wmed, dr, dt, drs, ratio in rows_out:
        print(f"| {k}.csv | {r:,} | {mb:.0f} | {wt:.2f} | {wr:,.0f} | {wmed:,.0f} | {dr:,} | {dt:.2f} | {drs:,.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
