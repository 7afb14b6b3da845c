#!/usr/bin/env bash
# CPU profile of `pico server` and `pico agent` under the 1 KiB load (bench/README.md, "Where the time goes").
# The same pinning as ../shared/bench (upstream nginx, server and agent on CPU 0, wrk on CPU 1); each Pico
# process runs under `node --cpu-prof`, and bench/top-frames.mjs prints the functions that took the most time.
#   bash bench/profile.sh                    # 10 s of wrk -t2 -c50 on /1k
#   DURATION=5 PATH_SUFFIX=/1m bash bench/profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
PATH_SUFFIX=${PATH_SUFFIX:-/1k}
OUT=${OUT:-bench/.work/profile}
UPSTREAM=${UPSTREAM:-../shared/bench/upstream}
[ -f dist/bin/pico.js ] || npm run build >/dev/null
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 150); do curl -sf "$@" >/dev/null && return 0; sleep 0.1; done; echo "gave up on $*"; exit 1; }

B=$((21000 + (RANDOM % 200) * 10))
UPSTREAM_PORT=$B UPSTREAM_DIR="$(realpath "$OUT")/upstream" taskset -c 0 "$UPSTREAM" >/dev/null 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$B/1k"
taskset -c 0 node --cpu-prof --cpu-prof-dir="$OUT/server" dist/bin/pico.js server \
  --proxy.bind-addr 127.0.0.1:$((B + 1)) --upstream.bind-addr 127.0.0.1:$((B + 2)) \
  --admin.bind-addr 127.0.0.1:$((B + 3)) --gossip.bind-addr 127.0.0.1:$((B + 4)) --log.level warn &
SERVER=$!
PIDS+=($SERVER)
wait_for "http://127.0.0.1:$((B + 3))/health"
taskset -c 0 node --cpu-prof --cpu-prof-dir="$OUT/agent" dist/bin/pico.js agent \
  --server.url "http://127.0.0.1:$((B + 2))" --endpoints "bench/127.0.0.1:$B" --log.level warn &
AGENT=$!
PIDS+=($AGENT)
wait_for -H "x-pico-endpoint: bench" "http://127.0.0.1:$((B + 1))/1k"
taskset -c 1 wrk -t2 -c50 -d2s -H "x-pico-endpoint: bench" "http://127.0.0.1:$((B + 1))$PATH_SUFFIX" >/dev/null
taskset -c 1 wrk -t2 -c50 -d"${DURATION}s" --latency -H "x-pico-endpoint: bench" \
  "http://127.0.0.1:$((B + 1))$PATH_SUFFIX" | grep -E "Requests/sec|99%|50%"
# SIGINT: both shut down cleanly, which is when node writes the profile.
kill -INT "$AGENT" "$SERVER"
wait "$AGENT" "$SERVER" 2>/dev/null || true
for side in server agent; do
  echo "== pico $side: functions by self time"
  node bench/top-frames.mjs "$OUT/$side"/*.cpuprofile
done
