# Sourced by the benchmarks that pin like ../shared/bench (the upstream nginx and the measured processes on CPU 0,
# wrk on CPU 1): profile.sh, request-cpu.sh, floors.sh. Expects the working directory to be the project root and
# WORK to be set: starts from an empty $WORK, and stops every process listed in PIDS on exit.
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
UPSTREAM=${UPSTREAM:-../shared/bench/upstream}
rm -rf "$WORK" && mkdir -p "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 150); do curl -sf "$@" >/dev/null && return 0; sleep 0.1; done; echo "gave up on $*"; exit 1; }

# start_upstream PORT: the harness's nginx (/1k, /1m) on CPU 0; sets UPSTREAM_WORKER, its one worker's pid.
start_upstream() {
  UPSTREAM_PORT=$1 UPSTREAM_DIR="$(realpath "$WORK")/upstream" taskset -c 0 "$UPSTREAM" >/dev/null 2>&1 &
  local master=$!
  PIDS+=("$master")
  wait_for "http://127.0.0.1:$1/1k"
  UPSTREAM_WORKER=$(pgrep -P "$master" | head -n 1)
}

# cpu_us PID: the user + system CPU the process has used, in microseconds.
CLOCK_TICK_US=$((1000000 / $(getconf CLK_TCK)))
cpu_us() { awk -v tick="$CLOCK_TICK_US" '{ print ($14 + $15) * tick }' "/proc/$1/stat"; }

# p50_us: wrk --latency's median from its output on stdin, in microseconds.
p50_us() { awk '/ 50%/ { v = $2; if (v ~ /ms$/) v = v * 1000; sub(/us$/, "", v); print v + 0 }'; }
