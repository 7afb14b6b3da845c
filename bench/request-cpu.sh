#!/usr/bin/env bash
# CPU each Pico process spends per proxied request, 1 KiB unless REQUEST_PATH says (bench/README.md, "Where a sequential
# request's time goes").
# The pinning of ../shared/bench: the upstream nginx, the server and the agent on CPU 0, wrk on CPU 1. On that one
# CPU a sequential request's latency is about the sum of the CPU every process spends on it, so CPU per request (from
# /proc, user + system) is the figure to cut, and it is steadier than latency on a shared machine.
# With PICO_JS_B (another build) or SERVER_ARGS_B (other server settings), a second server and agent run beside the
# first and wrk alternates between them round by round, so both see the same machine: differences of a few
# microseconds need that (and 10+ rounds, and a run each way round: see below). SERVER_ARGS gives the first server
# settings of its own.
#   bash bench/request-cpu.sh                                     # 8 rounds of 3 s, one connection
#   CONNECTIONS=50 bash bench/request-cpu.sh                      # the 1 KiB c50 case instead
#   PICO_JS_B=bench/.work/other/dist/bin/pico.js ROUNDS=12 bash bench/request-cpu.sh
#   SERVER_ARGS_B="--access-log.enabled false" CONNECTIONS=50 bash bench/request-cpu.sh   # one build, two settings
#   REQUEST_PATH=/1m CONNECTIONS=50 bash bench/request-cpu.sh     # the 1 MiB case: CPU per MiB moved
#   PIPES_B=1 REQUEST_PATH=/1m CONNECTIONS=50 bash bench/request-cpu.sh   # B: two plain Node pipes (bench/pipes.sh)
# With PIPES_B, pair B is two chained `tcp-peer.mjs relay` processes in place of a server and an agent: "server" is
# the one wrk connects to, "agent" the one next to the upstream.
# A build elsewhere must sit two levels below a package.json, beside a node_modules (see bench/updown.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-8}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-3}
CONNECTIONS=${CONNECTIONS:-1}
REQUEST_PATH=${REQUEST_PATH:-/1k}
THREADS=$((CONNECTIONS < 2 ? 1 : 2))
PICO_JS=${PICO_JS:-dist/bin/pico.js}
WORK=bench/.work/request-cpu
[ -f dist/bin/pico.js ] || npm run build >/dev/null
. bench/pinned.sh

BASE=$((23000 + (RANDOM % 100) * 10))
start_upstream $BASE

declare -A SERVER AGENT PORT
start_pair() { # start_pair NAME JS OFFSET [SERVER ARGS...]
  local name=$1 js=$2 at=$((BASE + $3))
  shift 3
  taskset -c 0 node "$js" server --proxy.bind-addr "127.0.0.1:$((at + 1))" --upstream.bind-addr "127.0.0.1:$((at + 2))" \
    --admin.bind-addr "127.0.0.1:$((at + 3))" --gossip.bind-addr "127.0.0.1:$((at + 4))" --log.level warn "$@" \
    >"$WORK/$name-server.log" 2>&1 &
  SERVER[$name]=$!
  PIDS+=($!)
  wait_for "http://127.0.0.1:$((at + 3))/health"
  taskset -c 0 node "$js" agent --server.url "http://127.0.0.1:$((at + 2))" --endpoints "bench/127.0.0.1:$BASE" \
    --log.level warn >"$WORK/$name-agent.log" 2>&1 &
  AGENT[$name]=$!
  PIDS+=($!)
  PORT[$name]=$((at + 1))
  wait_for -H "x-pico-endpoint: bench" "http://127.0.0.1:$((at + 1))/1k"
}
start_relay() { # start_relay TARGET_PORT: a plain Node pipe to it on CPU 0; sets RELAY_PID and RELAY_PORT
  taskset -c 0 node bench/tcp-peer.mjs relay "$1" >"$WORK/relay-$1" &
  RELAY_PID=$!
  PIDS+=($!)
  for _ in $(seq 1 100); do [ -s "$WORK/relay-$1" ] && break; sleep 0.05; done
  [ -s "$WORK/relay-$1" ] || { echo "the relay to port $1 did not start"; exit 1; }
  RELAY_PORT=$(node -e 'console.log(JSON.parse(process.argv[1]).port)' "$(cat "$WORK/relay-$1")")
}
start_pipes() { # start_pipes NAME: the two-pipe chain
  start_relay "$BASE"
  AGENT[$1]=$RELAY_PID
  start_relay "$RELAY_PORT"
  SERVER[$1]=$RELAY_PID
  PORT[$1]=$RELAY_PORT
  wait_for "http://127.0.0.1:$RELAY_PORT/1k"
}
# shellcheck disable=SC2086 # the settings are words
start_pair A "$PICO_JS" 10 ${SERVER_ARGS:-}
NAMES=(A)
if [ "${PIPES_B:-}" = 1 ]; then
  [ -z "${PICO_JS_B:-}${SERVER_ARGS_B:-}" ] || { echo "PIPES_B=1 runs the pipes as pair B: drop PICO_JS_B and SERVER_ARGS_B"; exit 1; }
  start_pipes B
  NAMES+=(B)
elif [ -n "${PICO_JS_B:-}${SERVER_ARGS_B:-}" ]; then
  # shellcheck disable=SC2086
  start_pair B "${PICO_JS_B:-$PICO_JS}" 20 ${SERVER_ARGS_B:-}
  NAMES+=(B)
fi

load() { # load NAME SECONDS: wrk's output
  taskset -c 1 wrk -t$THREADS -c"$CONNECTIONS" -d"$2s" --latency -H "x-pico-endpoint: bench" \
    "http://127.0.0.1:${PORT[$1]}$REQUEST_PATH"
}
round() { # round NAME: one line of figures
  local name=$1 s0 a0 u0 out requests
  s0=$(cpu_us "${SERVER[$name]}") a0=$(cpu_us "${AGENT[$name]}") u0=$(cpu_us "$UPSTREAM_WORKER")
  out=$(load "$name" "$SECONDS_PER_ROUND")
  requests=$(echo "$out" | awk '/requests in/ { print $1 }')
  printf '%s p50_us %s server_us %d agent_us %d upstream_us %d req_s %d\n' "$name" "$(echo "$out" | p50_us)" \
    $((($(cpu_us "${SERVER[$name]}") - s0) / requests)) $((($(cpu_us "${AGENT[$name]}") - a0) / requests)) \
    $((($(cpu_us "$UPSTREAM_WORKER") - u0) / requests)) $((requests / SECONDS_PER_ROUND))
}

# Warm-up: V8 optimises the request path during the first seconds.
for name in "${NAMES[@]}"; do load "$name" 3 >/dev/null; done
# The order alternates from round to round. That does not make the two pairs equal: with one build in both, pair B
# came out 2-5 µs ahead at 50 connections (2026-11-30: 39.3 against 37.4, then 47.0 against 41.5 alternating), so
# compare two builds both ways round (swap PICO_JS and PICO_JS_B) and take the mean of the two differences.
for r in $(seq 1 "$ROUNDS"); do
  if ((r % 2 == 1)); then order=("${NAMES[@]}"); else mapfile -t order < <(printf '%s\n' "${NAMES[@]}" | tac); fi
  for name in "${order[@]}"; do round "$name"; done
done | tee "$WORK/rounds.txt"
echo "means over $ROUNDS rounds of ${SECONDS_PER_ROUND} s, $CONNECTIONS connection(s), CPU per request in microseconds:"
awk '{ p[$1] += $3; s[$1] += $5; a[$1] += $7; u[$1] += $9; r[$1] += $11; n[$1]++ }
  END { for (k in n) printf "%s p50 %.0f us, server %.1f us, agent %.1f us, upstream nginx %.1f us, %d req/s\n",
    k, p[k] / n[k], s[k] / n[k], a[k] / n[k], u[k] / n[k], r[k] / n[k] }' \
  "$WORK/rounds.txt" | sort
