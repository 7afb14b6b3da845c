#!/usr/bin/env bash
# A baseline under Pico's HTTP figures: the pinned harness (../shared/bench/anchors.sh) run through a chain of plain
# Node byte pipes (bench/tcp-peer.mjs relay) in place of Pico: as many Node processes as Pico's server and agent,
# with no HTTP parsing, framing or flow control, pinned to CPU 0 like them. bench/README.md has the figures.
#   bash bench/pipes.sh            # two pipes (Pico's process count), PATHS="direct nginx pico"
#   PIPES=1 DURATION=5 bash bench/pipes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PIPES=${PIPES:-2}
PIDS=()
OUT=$(mktemp -d)
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$OUT"
}
trap cleanup EXIT
port=4000 # the harness's upstream
for i in $(seq 1 "$PIPES"); do
  taskset -c 0 node bench/tcp-peer.mjs relay "$port" >"$OUT/$i" &
  PIDS+=($!)
  for _ in $(seq 1 200); do [ -s "$OUT/$i" ] || ! kill -0 "${PIDS[-1]}" 2>/dev/null && break; sleep 0.05; done
  [ -s "$OUT/$i" ] || { echo "relay $i did not start"; exit 1; }
  port=$(node -e 'console.log(JSON.parse(process.argv[1]).port)' "$(cat "$OUT/$i")")
done
# The harness reports the chain as its "pico" path; the endpoint header goes to the upstream, which ignores it.
PATHS=${PATHS:-direct nginx pico} DURATION=${DURATION:-8} PICO_PROXY_URL="http://127.0.0.1:$port" \
  PICO_ENDPOINT=pipes PICO_PIDS="${PIDS[*]}" ../shared/bench/anchors.sh
