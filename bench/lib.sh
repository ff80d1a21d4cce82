# Shared by the scripts in bench/: their common start, logging, cleanup, starting and stopping
# the servers under test, and the arithmetic on wrk's output. Expects STOP_TIMEOUT from the
# caller; `bench_start` sets the rest.

TMP=""
SERVER_PID=""  # the server currently running (also its process group id)
NOTES=()       # anomalies worth printing in the report (forced kills, invalid runs)

# bench_start TAG [REPORT_NAME]: works from the repository root (ROOT) with a fresh temporary
# directory (TMP); with REPORT_NAME, also RESULTS_DIR, RAW_DIR (created), STAMP and
# REPORT=bench/results/REPORT_NAME-STAMP.md.
bench_start() {
  ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  cd "$ROOT"
  TMP=$(mktemp -d -t "hyperion-$1.XXXXXX")
  if [[ -n ${2:-} ]]; then
    RESULTS_DIR=$ROOT/bench/results
    RAW_DIR=$RESULTS_DIR/raw
    STAMP=$(date +%Y-%m-%d-%H%M%S)
    REPORT=$RESULTS_DIR/$2-$STAMP.md
    mkdir -p "$RAW_DIR"
  fi
}

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
# Anomalies worth printing in the report (forced kills, invalid runs).
loud() { printf '\n!!!!!!!! %s\n\n' "$*" >&2; NOTES+=("$*"); }

# Whatever happens (error, Ctrl-C), never leave a server running: it would hold its port and
# steal the server core from the next benchmark. Only the process group we started is killed.
cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL -- "-$SERVER_PID" 2>/dev/null || kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wrk prints latencies as 850.00us / 3.21ms / 1.02s / 1.50m; normalise to ms.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : (u == "h") ? 3600000 : -1
    if (f < 0) exit 1
    printf "%.3f", n * f
  }'
}

# Reads numbers (one per line); prints the median with printf format $1, or nothing for no input.
median() {
  sort -g | awk -v fmt="$1" '{ a[NR] = $1 } END { if (NR == 0) exit; m = int((NR + 1) / 2); printf fmt, (NR % 2) ? a[m] : (a[m] + a[m + 1]) / 2 }'
}

# wait_for_server NAME PORT LOGFILE PROBE: waits until `PROBE PORT` succeeds (ready means an
# answer, not just an open socket: a server can bind before its app is loaded); exits with the
# server's output when it dies or 60 s pass.
wait_for_server() {
  local name=$1 port=$2 logfile=$3 probe=$4 deadline=$((SECONDS + 60))
  until "$probe" "$port"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "$name exited during boot; its output:"; cat "$logfile" >&2; SERVER_PID=""; exit 1
    fi
    if (( SECONDS >= deadline )); then
      log "$name did not answer on port $port within 60 s ($probe); its output:"; cat "$logfile" >&2; exit 1
    fi
    sleep 0.2
  done
}

http_ok() { [[ $(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$1/" || true) == 200 ]]; }

wait_until_ready() { wait_for_server "$1" "$2" "$3" http_ok; }

# CPU time (nanoseconds, from each thread's /proc schedstat) of every process in the server's
# process group: what the server spent, wherever it ran (nginx's worker included). Divided by
# the requests the client completed it gives the server's cost per request, which still
# compares servers when the client (one thread on one core) is the bottleneck, or when the
# machine's speed drifts between runs, and req/s cannot. Threads that end during a run are
# not counted; the servers measured keep theirs.
group_cpu_ns() {
  local pgid=$1 pid total=0 task
  for pid in $(for f in /proc/[0-9]*/stat; do cat "$f" 2>/dev/null; echo; done |
      awk -v g="$pgid" '{ pid = $1; sub(/^.*\) /, ""); if ($3 == g) print pid }'); do
    for task in /proc/"$pid"/task/*/schedstat; do
      read -r ns _ <"$task" 2>/dev/null && total=$((total + ns))
    done
  done
  echo "$total"
}

# Microseconds of server CPU per request: cpu_us_per_request NANOSECONDS REQUESTS.
cpu_us_per_request() {
  awk -v t="$1" -v r="$2" 'BEGIN { if (r > 0) printf "%.2f", t / 1000 / r }'
}

# SIGTERM first (a graceful stop is part of normal server behaviour); a server that ignores
# it is killed, and that is reported rather than hidden.
stop_server() {
  local name=$1 deadline=$((SECONDS + STOP_TIMEOUT))
  [[ -n $SERVER_PID ]] || return 0
  kill -TERM -- "-$SERVER_PID" 2>/dev/null || kill -TERM "$SERVER_PID" 2>/dev/null || true
  while kill -0 "$SERVER_PID" 2>/dev/null && [[ $(ps -o stat= -p "$SERVER_PID") != Z* ]]; do
    if (( SECONDS >= deadline )); then
      loud "$name (pid $SERVER_PID) still running ${STOP_TIMEOUT}s after SIGTERM: sent SIGKILL"
      kill -KILL -- "-$SERVER_PID" 2>/dev/null || kill -KILL "$SERVER_PID" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
