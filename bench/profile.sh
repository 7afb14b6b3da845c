#!/usr/bin/env bash
# CPU profile of `pico server` and `pico agent` under the 1 KiB load (bench/README.md, "Where the time goes").
# The same pinning as ../shared/bench (upstream nginx, server and agent on CPU 0, wrk on CPU 1); each Pico
# process runs under `node --cpu-prof`, and bench/top-frames.mjs prints the functions that took the most time.
#   bash bench/profile.sh                    # 10 s of wrk -t2 -c50 on /1k
#   DURATION=5 PATH_SUFFIX=/1m bash bench/profile.sh
#   CONNECTIONS=1 bash bench/profile.sh      # one connection, sequential requests (the harness's seq case)
#   PROF_FLAGS="--cpu-prof-interval 100" CONNECTIONS=1 bash bench/profile.sh   # sample every 100 µs, not 1 ms
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
PATH_SUFFIX=${PATH_SUFFIX:-/1k}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=$((CONNECTIONS < 2 ? 1 : 2))
WORK=${OUT:-bench/.work/profile}
OUT=$WORK
[ -f dist/bin/pico.js ] || npm run build >/dev/null
. bench/pinned.sh

B=$((21000 + (RANDOM % 200) * 10))
start_upstream $B
taskset -c 0 node --cpu-prof ${PROF_FLAGS:-} --cpu-prof-dir="$OUT/server" dist/bin/pico.js server \
  --proxy.bind-addr 127.0.0.1:$((B + 1)) --upstream.bind-addr 127.0.0.1:$((B + 2)) \
  --admin.bind-addr 127.0.0.1:$((B + 3)) --gossip.bind-addr 127.0.0.1:$((B + 4)) --log.level warn &
SERVER=$!
PIDS+=($SERVER)
wait_for "http://127.0.0.1:$((B + 3))/health"
taskset -c 0 node --cpu-prof ${PROF_FLAGS:-} --cpu-prof-dir="$OUT/agent" dist/bin/pico.js agent \
  --server.url "http://127.0.0.1:$((B + 2))" --endpoints "bench/127.0.0.1:$B" --log.level warn &
AGENT=$!
PIDS+=($AGENT)
wait_for -H "x-pico-endpoint: bench" "http://127.0.0.1:$((B + 1))/1k"
taskset -c 1 wrk -t$THREADS -c$CONNECTIONS -d2s -H "x-pico-endpoint: bench" "http://127.0.0.1:$((B + 1))$PATH_SUFFIX" >/dev/null
taskset -c 1 wrk -t$THREADS -c$CONNECTIONS -d"${DURATION}s" --latency -H "x-pico-endpoint: bench" \
  "http://127.0.0.1:$((B + 1))$PATH_SUFFIX" | grep -E "Requests/sec|99%|50%"
# SIGINT: both shut down cleanly, which is when node writes the profile.
kill -INT "$AGENT" "$SERVER"
wait "$AGENT" "$SERVER" 2>/dev/null || true
for side in server agent; do
  echo "== pico $side: functions by self time"
  node bench/top-frames.mjs "$OUT/$side"/*.cpuprofile
done
