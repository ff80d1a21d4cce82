#!/usr/bin/env bash
# Memory cost of idle keep-alive connections: RSS of a server at boot and while it holds
# COUNT (10,000) idle keep-alive connections, each of which has had one full response.
# Hyperion parks idle connections in its native event loop (no thread each), so the cost per
# connection should be small; puma is measured the same way for comparison.
#
# Usage: bench/idle_rss.sh
# Environment: COUNT=10000  HOLD=10 (seconds)  SERVERS="hyperion puma"  PORT_BASE=18401
#              OPEN_TIMEOUT=120 (seconds allowed to open all connections)  STOP_TIMEOUT=10
set -euo pipefail

COUNT=${COUNT:-10000}
HOLD=${HOLD:-10}
SERVERS=${SERVERS:-hyperion puma}
PORT_BASE=${PORT_BASE:-18401}
OPEN_TIMEOUT=${OPEN_TIMEOUT:-120}
STOP_TIMEOUT=${STOP_TIMEOUT:-10}

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_start idle idle-rss
STARTED=$(date '+%Y-%m-%d %H:%M:%S %Z')
REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$( [[ -n $(git status --porcelain 2>/dev/null) ]] && echo ' (working tree has uncommitted changes)' || true)"

# The client needs one fd per connection plus a few. The servers inherit this limit too:
# Hyperion raises its soft limit to the hard limit by itself, puma does not, so raising it
# here keeps puma from failing on a limit Hyperion would not hit.
NEEDED_FDS=$((COUNT + 100))
if (( $(ulimit -Hn) < NEEDED_FDS )); then
  log "hard fd limit $(ulimit -Hn) < $NEEDED_FDS; run with a higher hard limit (e.g. as root: ulimit -Hn 65536)"; exit 1
fi
ulimit -n "$(ulimit -Hn)"

port_of() {
  case $1 in
    hyperion) echo $((PORT_BASE)) ;;
    puma) echo $((PORT_BASE + 1)) ;;
    *) log "unknown server: $1 (known: hyperion puma)"; exit 1 ;;
  esac
}

server_cmd() {
  local port
  port=$(port_of "$1")
  case $1 in
    # idle_keepalive 120 s: the connections must outlive the hold; the default is 5 s.
    hyperion) echo "bundle exec hyperion -e production -p $port --idle-keepalive 120 bench/hello.ru" ;;
    # puma's keep-alive timeout is fixed at 20 s in 5.6 (persistent_timeout); it is not changed.
    puma) echo "puma -t 5:5 -e production -b tcp://127.0.0.1:$port bench/hello.ru" ;;
  esac
}

start_server() {
  local name=$1 logfile=$2 port cmd
  port=$(port_of "$name")
  if ss -Hltn "sport = :$port" | grep -q .; then
    log "port $port is already in use; set PORT_BASE to a free range"; exit 1
  fi
  cmd=$(server_cmd "$name")
  # shellcheck disable=SC2086 # the command line is word-split on purpose
  (exec setsid $cmd) >"$logfile" 2>&1 </dev/null &
  SERVER_PID=$!
  wait_until_ready "$name" "$port" "$logfile"
}


mib() { if [[ -n $1 ]]; then awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; else printf '–'; fi; }

# value KEY FILE: the value of a key=value line written by idle_clients.rb.
value() { awk -F= -v k="$1" '$1 == k { sub(/^[^=]*=/, ""); print; exit }' "$2"; }

ROWS=()
DETAILS=()
read -r -a SERVER_LIST <<<"$SERVERS"
for name in "${SERVER_LIST[@]}"; do
  port=$(port_of "$name")
  out=$RAW_DIR/idle-rss-$STAMP-$name.txt
  log "$name: starting"
  start_server "$name" "$TMP/$name.log"
  log "$name: pid $SERVER_PID; opening $COUNT connections"
  client_status=0
  ruby bench/idle_clients.rb --pid "$SERVER_PID" --port "$port" --count "$COUNT" --hold "$HOLD" \
    --open-timeout "$OPEN_TIMEOUT" >"$out" || client_status=$?
  stop_server "$name"
  cp "$TMP/$name.log" "$RAW_DIR/idle-rss-$STAMP-$name.server.log"
  (( client_status == 0 )) || loud "$name: idle_clients.rb exited with status $client_status (see ${out#"$ROOT"/})"

  boot=$(value boot_rss_kib "$out")
  held=$(value held_rss_kib "$out")
  responses=$(value responses "$out")
  per_conn="–"
  if [[ -n $boot && -n $held && ${responses:-0} -gt 0 ]]; then
    per_conn=$(awk -v b="$boot" -v h="$held" -v n="$responses" 'BEGIN { printf "%.2f", (h - b) / n }')
  fi
  [[ ${responses:-0} == "$COUNT" ]] || loud "$name: only ${responses:-0} of $COUNT connections got their response"
  still_open=$(value still_open_after_hold "$out")
  [[ ${still_open:-0} == "${responses:-0}" ]] || loud "$name: ${still_open:-0} of ${responses:-0} connections were still open at the end of the hold (the server closed the rest)"
  after=$(value after_close_request "$out")
  [[ $after == "HTTP 200" ]] || loud "$name: request after closing the connections: ${after:-no result}"

  ROWS+=("| $name | $(mib "$boot") | $(mib "$held") | $per_conn | ${responses:-0}/$COUNT | ${still_open:-–} | ${after:-–} |")
  errors=$(grep '^error=' "$out" | sed 's/^error=//' | paste -sd ';' - || true)
  DETAILS+=("- $name: opened in $(value open_seconds "$out") s; $(value responses_connection_close "$out") responses said Connection: close; server threads at boot $(value boot_threads "$out"), while held $(value held_threads "$out"); open fds at boot $(value boot_fds "$out"), while held $(value held_fds "$out"); peak RSS during hold $(mib "$(value held_rss_max_kib "$out")"); RSS 1 s after closing $(mib "$(value after_close_rss_kib "$out")")${errors:+; errors: $errors}.")
done

{
  echo "# Idle keep-alive connections: $STARTED"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r), $(ruby -v | cut -d' ' -f1-2)."
  echo "Revision: $REVISION."
  echo
  echo "$COUNT connections, each sends one \`GET / HTTP/1.1\` (keep-alive) and reads the full response, then"
  echo "all are held idle for ${HOLD} s. RSS is VmRSS from /proc/PID/status: at boot (after one request) and at the"
  echo "end of the hold. Per-connection cost = (held - boot) / connections that got a response."
  echo
  echo "| Server | RSS at boot | RSS with idle connections | KiB per connection | Got response | Still open after hold | Request after close |"
  echo "|---|---:|---:|---:|---:|---:|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  printf '%s\n' "${DETAILS[@]}"
  echo
  echo "## Commands"
  echo
  for name in "${SERVER_LIST[@]}"; do echo "- $name: \`$(server_cmd "$name")\`"; done
  echo "- client: \`ruby bench/idle_clients.rb --pid PID --port PORT --count $COUNT --hold $HOLD --open-timeout $OPEN_TIMEOUT\` (ulimit -n $(ulimit -n))"
  echo
  echo "Raw client output and server logs: \`bench/results/raw/idle-rss-$STAMP-*\`."
  if (( ${#NOTES[@]} > 0 )); then
    echo
    echo "## Problems during this run"
    echo
    printf -- '- %s\n' "${NOTES[@]}"
  fi
} | tee "$REPORT"
