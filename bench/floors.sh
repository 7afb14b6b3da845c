#!/usr/bin/env bash
# The floors under a Pico server's CPU per sequential 1 KiB request (bench/README.md, "Where a sequential request's
# time goes"): bench/node-floors.cjs's four servers, pinned like bench/request-cpu.sh (upstream nginx and server on
# CPU 0, wrk on CPU 1), each measured the same way, round by round in turn.
#   bash bench/floors.sh              # 6 rounds of 3 s
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-6}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-3}
WORK=bench/.work/floors
. bench/pinned.sh

BASE=$((24000 + (RANDOM % 100) * 10))
start_upstream $BASE

MODES=(http-answer raw-answer http-hop raw-hop)
declare -A PID PORT
at=$((BASE + 1))
for mode in "${MODES[@]}"; do
  taskset -c 0 node bench/node-floors.cjs "$mode" "$at" "$BASE" &
  PID[$mode]=$!
  PIDS+=($!)
  PORT[$mode]=$at
  wait_for "http://127.0.0.1:$at/1k"
  at=$((at + 1))
done
PID[nginx]=$UPSTREAM_WORKER
PORT[nginx]=$BASE
MODES+=(nginx)

load() { taskset -c 1 wrk -t1 -c1 -d"$2s" --latency "http://127.0.0.1:${PORT[$1]}/1k"; }
round() { # round MODE: the process's CPU per request (for the hops, not the upstream's), and the p50
  local mode=$1 c0 out requests
  c0=$(cpu_us "${PID[$mode]}")
  out=$(load "$mode" "$SECONDS_PER_ROUND")
  requests=$(echo "$out" | awk '/requests in/ { print $1 }')
  printf '%s p50_us %s cpu_us %d\n' "$mode" "$(echo "$out" | p50_us)" $((($(cpu_us "${PID[$mode]}") - c0) / requests))
}

for mode in "${MODES[@]}"; do load "$mode" 2 >/dev/null; done
for _ in $(seq 1 "$ROUNDS"); do for mode in "${MODES[@]}"; do round "$mode"; done; done >"$WORK/rounds.txt"
echo "means over $ROUNDS rounds of ${SECONDS_PER_ROUND} s, one connection; CPU per request of that process alone:"
awk '{ p[$1] += $3; c[$1] += $5; n[$1]++ } END { for (k in n) printf "%-12s p50 %4.0f us, CPU %5.1f us\n", k, p[k] / n[k], c[k] / n[k] }' \
  "$WORK/rounds.txt" | sort
