# Shared by the scripts in bench/: logging, cleanup, starting and stopping the servers under
# test, and the arithmetic on wrk's output. Expects TMP, SERVER_PID, NOTES and STOP_TIMEOUT
# from the caller.

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

# Ready means an HTTP 200 on the port, not just an open socket: a server can bind before its
# app is loaded.
wait_until_ready() {
  local name=$1 port=$2 logfile=$3 deadline=$((SECONDS + 60))
  until [[ $(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$port/" || true) == 200 ]]; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "$name exited during boot; its output:"; cat "$logfile" >&2; SERVER_PID=""; exit 1
    fi
    if (( SECONDS >= deadline )); then
      log "$name did not answer 200 on port $port within 60 s; its output:"; cat "$logfile" >&2; exit 1
    fi
    sleep 0.2
  done
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
