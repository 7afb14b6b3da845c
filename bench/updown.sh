#!/usr/bin/env bash
# Uploads against downloads through one Pico node (issue 12: "uploads as fast as downloads"). A 200 MiB body goes
# up (curl POST to the service, which counts it) and comes down (GET), RUNS times each, in turn; the server and the
# agent share CPU 0, curl runs on CPU 1. Reports each direction's median time and the CPU the server and the
# agent spent per transfer (from /proc). Another build: PICO_JS=path/to/bin/pico.js (inside this checkout, so
# that it finds its node_modules).
#   bash bench/updown.sh                 # 5 of each, after three of each to warm up
#   RUNS=9 MIB=400 bash bench/updown.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
MIB=${MIB:-200}
PICO_JS=${PICO_JS:-dist/bin/pico.js}
WORK=bench/.work/updown
[ -f dist/bin/pico.js ] || npm run build >/dev/null
mkdir -p "$WORK"
BODY="$WORK/body-$MIB.bin"
[ -f "$BODY" ] || head -c "$((MIB * 1024 * 1024))" /dev/zero >"$BODY"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 150); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$@")" = 200 ] && return 0; sleep 0.1; done; echo "gave up on $*"; exit 1; }

B=$((22000 + (RANDOM % 200) * 10))
node bench/transfer-service.mjs "$B" "$((MIB * 1024 * 1024))" &
PIDS+=($!)
taskset -c 0 node "$PICO_JS" server --proxy.bind-addr "127.0.0.1:$((B + 1))" --upstream.bind-addr "127.0.0.1:$((B + 2))" \
  --admin.bind-addr "127.0.0.1:$((B + 3))" --gossip.bind-addr "127.0.0.1:$((B + 4))" --log.level warn \
  --access-log.enabled false 2>/dev/null &
SERVER=$!
PIDS+=($SERVER)
wait_for "http://127.0.0.1:$((B + 3))/health"
taskset -c 0 node "$PICO_JS" agent --server.url "http://127.0.0.1:$((B + 2))" --endpoints "bench/127.0.0.1:$B" \
  --log.level warn 2>/dev/null &
AGENT=$!
PIDS+=($AGENT)
wait_for -H "x-pico-endpoint: bench" "http://127.0.0.1:$((B + 1))/"

cpu_ms() { awk '{ print ($14 + $15) * 10 }' "/proc/$1/stat"; }
transfer() {
  if [ "$1" = up ]; then
    taskset -c 1 curl -sf -o /dev/null -w '%{time_total}' -H "x-pico-endpoint: bench" \
      -H "content-type: application/octet-stream" --data-binary "@$BODY" "http://127.0.0.1:$((B + 1))/sink"
  else
    taskset -c 1 curl -sf -o /dev/null -w '%{time_total}' -H "x-pico-endpoint: bench" "http://127.0.0.1:$((B + 1))/src"
  fi
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Warm-up: V8 is still optimising the data path during the first transfers.
for _ in 1 2 3; do transfer up >/dev/null && transfer down >/dev/null; done
declare -A times server agent
for direction in up down; do times[$direction]="" server[$direction]=0 agent[$direction]=0; done
for direction in up down; do
  for _ in $(seq 1 "$RUNS"); do
    s0=$(cpu_ms $SERVER) a0=$(cpu_ms $AGENT)
    times[$direction]+="$(transfer $direction) "
    server[$direction]=$((server[$direction] + $(cpu_ms $SERVER) - s0))
    agent[$direction]=$((agent[$direction] + $(cpu_ms $AGENT) - a0))
  done
done
for direction in up down; do
  printf '%-4s %d MiB: median %s s over %d runs; CPU per transfer: server %d ms, agent %d ms\n' "$direction" "$MIB" \
    "$(echo "${times[$direction]}" | tr ' ' '\n' | grep . | median)" "$RUNS" \
    $((server[$direction] / RUNS)) $((agent[$direction] / RUNS))
done
