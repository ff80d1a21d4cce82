# Shared by bench/run.sh and bench/idle_rss.sh: starting and stopping the servers under test.
# Expects SERVER_PID, STOP_TIMEOUT and the functions log and loud from the caller.

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
