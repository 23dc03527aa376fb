#!/usr/bin/env bash
# `GET /v1/deals/{id}` under load: wrk (Debian package `wrk`) against `winsignal serve` on loopback, 4 and
# 16 connections for 10 s each, on the same machine as the server (so the two share its cores).
#
#   DATA=/tmp/ws bash bench/serve_get.sh     # DATA: a workspace made by `winsignal demo` (copied first)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/winsignal}
DATA=${DATA:?a workspace made by winsignal demo}
WORK=${WORK:-/tmp/winsignal-bench-serve-get}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
rm -rf "$WORK"; mkdir -p "$WORK"; cp -r "$DATA" "$WORK/ws"
sync  # the copy on disk now, not written back by the kernel during the measurement
TOKEN=$("$BIN" --data "$WORK/ws" -q users add bench --role revops)
"$BIN" --data "$WORK/ws" serve --listen 127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
until grep -q listening "$WORK/serve.out"; do sleep 0.05; done
ADDR=$(sed -n 's/^listening on //p' "$WORK/serve.out")
until curl -sf "$ADDR/readyz" >/dev/null; do sleep 0.1; done
DEAL=$(curl -s -H "Authorization: Bearer $TOKEN" "$ADDR/v1/deals?limit=1" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["deals"][0]["opportunity_id"])')
echo "machine: $(uname -n) $(uname -m), $(nproc) cores; $(date +%F); workspace $DATA"
for c in 4 16; do
  echo "== $c connections, 10 s"
  wrk -t2 -c"$c" -d10s --latency -H "Authorization: Bearer $TOKEN" "$ADDR/v1/deals/$DEAL" |
    grep -E "Requests/sec|50%|90%|99%|Non-2xx"
done
