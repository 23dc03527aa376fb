#!/usr/bin/env python3
"""Behaviours at landmarks: winsignal's engine vs DuckDB SQL, same data, same run, checked equal.

winsignal computes the five behaviours (bench/five.toml: exec_engaged, multithreaded, product_active,
urgent_ticket_open, marketing_engaged) at every landmark by replaying its store
(`winsignal snapshots --catalog bench/five.toml --out five.parquet`). DuckDB computes the same five with
SQL over the same resolved data exported to Parquet by `winsignal export` (landmarks included), so both
see identical rows; the script checks every value is equal and prints the times and their ratio.

    pip install duckdb
    DATA=/tmp/ws python3 bench/features.py   # DATA: a workspace, e.g. one made by `winsignal demo`
"""
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("DATA", os.path.join(ROOT, "winsignal-data"))
OUT = os.environ.get("OUT", "/tmp/winsignal-bench-features")
REPEAT = int(os.environ.get("REPEAT", "3"))
BIN = os.path.join(ROOT, "target/release/winsignal")

# The definitions of bench/five.toml in SQL. `known_at` is when an activity became known (the later of
# when it happened and when it was logged); every read is strictly before the landmark.
SQL = """
WITH lm AS (SELECT * FROM read_parquet('{d}/landmarks.parquet')),
acts AS (SELECT a.*, c.seniority FROM read_parquet('{d}/activities.parquet') a
         LEFT JOIN read_parquet('{d}/contacts.parquet') c USING (contact_id)
         WHERE a.opportunity_id IS NOT NULL),
exec AS (SELECT lm.opportunity_id, lm.as_of, count(*) AS n FROM lm JOIN acts a
         ON a.opportunity_id = lm.opportunity_id AND a.known_at < lm.as_of
         WHERE a.type IN ('meeting', 'call') AND a.status = 'completed' AND a.seniority IN ('c_level', 'vp')
         GROUP BY ALL),
multi AS (SELECT lm.opportunity_id, lm.as_of, count(DISTINCT a.contact_id) AS n FROM lm JOIN acts a
          ON a.opportunity_id = lm.opportunity_id AND a.known_at < lm.as_of
          WHERE a.status = 'completed' AND a.contact_id IS NOT NULL GROUP BY ALL),
prod AS (SELECT lm.opportunity_id, lm.as_of, count(DISTINCT p.user_id) AS n FROM lm
         JOIN read_parquet('{d}/product_events.parquet') p
         ON p.account_id = lm.account_id AND p.occurred_at < lm.as_of
            AND p.occurred_at >= lm.as_of - INTERVAL 14 DAY
         WHERE p.user_id IS NOT NULL GROUP BY ALL),
tick AS (SELECT lm.opportunity_id, lm.as_of, count(*) AS n FROM lm
         JOIN read_parquet('{d}/support_tickets.parquet') t
         ON t.account_id = lm.account_id AND t.created_at < lm.as_of
            AND (t.solved_at IS NULL OR t.solved_at >= lm.as_of)
         WHERE t.priority IN ('urgent', 'high') GROUP BY ALL),
mkt AS (SELECT lm.opportunity_id, lm.as_of, count(*) AS n FROM lm
        JOIN read_parquet('{d}/marketing_touches.parquet') m
        ON m.account_id = lm.account_id AND m.occurred_at < lm.as_of
           AND m.occurred_at >= lm.as_of - INTERVAL 30 DAY
        WHERE m.kind IN ('webinar_attended', 'content_download') GROUP BY ALL)
SELECT lm.opportunity_id, epoch_ms(lm.as_of) AS as_of_ms,
       (coalesce(exec.n, 0) >= 1)::INT AS exec_engaged,
       (coalesce(multi.n, 0) >= 3)::INT AS multithreaded,
       (coalesce(prod.n, 0) >= 3)::INT AS product_active,
       (coalesce(tick.n, 0) >= 1)::INT AS urgent_ticket_open,
       (coalesce(mkt.n, 0) >= 1)::INT AS marketing_engaged
FROM lm
LEFT JOIN exec USING (opportunity_id, as_of) LEFT JOIN multi USING (opportunity_id, as_of)
LEFT JOIN prod USING (opportunity_id, as_of) LEFT JOIN tick USING (opportunity_id, as_of)
LEFT JOIN mkt USING (opportunity_id, as_of)
ORDER BY 1, 2
"""
BEHAVIOURS = ["exec_engaged", "multithreaded", "product_active", "urgent_ticket_open", "marketing_engaged"]


def run(cmd):
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def main():
    import duckdb

    subprocess.run(["cargo", "build", "--release", "-p", "winsignal"], check=True, cwd=ROOT)
    os.makedirs(OUT, exist_ok=True)
    export = os.path.join(OUT, "export")
    run([BIN, "--data", DATA, "-q", "export", "--out", export, "--catalog", "bench/five.toml"])
    ours = os.path.join(OUT, "five.parquet")

    ws_times, db_times = [], []
    for _ in range(REPEAT):
        t = time.perf_counter()
        run([BIN, "--data", DATA, "-q", "snapshots", "--catalog", "bench/five.toml", "--out", ours])
        ws_times.append(time.perf_counter() - t)
        con = duckdb.connect()
        t = time.perf_counter()
        theirs = con.sql(SQL.format(d=export)).fetchall()
        db_times.append(time.perf_counter() - t)

    cols = ", ".join(BEHAVIOURS)
    mine = duckdb.sql(f"SELECT opportunity_id, epoch_ms(as_of), {cols} FROM read_parquet('{ours}') ORDER BY 1, 2").fetchall()
    mine = [tuple(r[:2]) + tuple(int(x) for x in r[2:]) for r in mine]
    if len(mine) != len(theirs):
        sys.exit(f"row counts differ: winsignal {len(mine)}, DuckDB {len(theirs)}")
    diffs = [(a, b) for a, b in zip(mine, theirs) if a != b]
    if diffs:
        for a, b in diffs[:10]:
            print("winsignal", a, "\nDuckDB   ", b)
        sys.exit(f"{len(diffs)} of {len(mine)} snapshots differ")
    rates = {b: sum(r[2 + i] for r in mine) / len(mine) for i, b in enumerate(BEHAVIOURS)}
    events = duckdb.sql(
        f"SELECT (SELECT count(*) FROM '{export}/activities.parquet') + (SELECT count(*) FROM "
        f"'{export}/product_events.parquet') + (SELECT count(*) FROM '{export}/marketing_touches.parquet') + "
        f"(SELECT count(*) FROM '{export}/support_tickets.parquet')").fetchall()[0][0]
    ws, db = min(ws_times), min(db_times)
    print(f"\n{platform.node()} {platform.machine()}, {os.cpu_count()} cores, duckdb {duckdb.__version__}, "
          f"best of {REPEAT}")
    print(f"{len(mine)} snapshots, {events} events; all five behaviours equal in every snapshot")
    print("adoption: " + ", ".join(f"{b} {100 * r:.1f}%" for b, r in rates.items()))
    print("| engine | what is timed | seconds |")
    print("|---|---|---|")
    print(f"| winsignal snapshots | store → replay → 5 behaviours at every landmark → Parquet | {ws:.2f} |")
    print(f"| DuckDB SQL | Parquet (already exported) → 5 behaviours at every landmark | {db:.2f} |")
    print(f"ratio winsignal / DuckDB: {ws / db:.2f}")


if __name__ == "__main__":
    main()
