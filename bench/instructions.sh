#!/usr/bin/env bash
# Instructions per request, counted by callgrind: user-space instructions of every thread of
# the server (the kernel's share is not counted) divided by the requests answered. Unlike
# requests/s or CPU time, which drift by 30% on a shared VM, the count repeats within about
# 1%, so a change of a few percent shows. Each case: the server under
# `valgrind --tool=callgrind` on core 0, a warm-up that is not counted, the counters zeroed,
# the measured load from core 1, the counters dumped.
#
#   rack_h1     bench/hello.ru over HTTP/1.1 (wrk -t1 -c20 for DURATION)
#   handle_h1   bench/hello_handle_block.ru over HTTP/1.1
#   static_h1   bench/hello_static.ru over HTTP/1.1
#   rack_h2     bench/hello.ru over h2c (h2load -c 10 -m 10 -n REQUESTS_H2_RACK)
#   static_h2   bench/hello_static.ru over h2c (h2load -c 10 -m 10 -n REQUESTS)
#   nghttpd_h2  nghttpd serving the same 13 bytes, for comparison with static_h2
#
# Hyperion runs `-e production -t 5 --no-log-requests`.
# Usage: bench/instructions.sh [case ...]   (default: all cases)
# Environment: DURATION=8s REQUESTS=20000 REQUESTS_H2_RACK=10000 PORT=18491 STOP_TIMEOUT=10
set -euo pipefail

DURATION=${DURATION:-8s}
REQUESTS=${REQUESTS:-20000}
REQUESTS_H2_RACK=${REQUESTS_H2_RACK:-10000}
PORT=${PORT:-18491}
STOP_TIMEOUT=${STOP_TIMEOUT:-10}

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_start instructions instructions

command -v valgrind >/dev/null || { log "valgrind is needed (apt-get install valgrind)"; exit 1; }

DOCS=$TMP/docs
mkdir -p "$DOCS"
printf 'Hello, World!' >"$DOCS/index.html"

# case_setup NAME -> "rackup|protocol" ("nghttpd" as the rackup for nghttpd)
case_setup() {
  case $1 in
    rack_h1) echo "bench/hello.ru|h1" ;;
    handle_h1) echo "bench/hello_handle_block.ru|h1" ;;
    static_h1) echo "bench/hello_static.ru|h1" ;;
    rack_h2) echo "bench/hello.ru|h2" ;;
    static_h2) echo "bench/hello_static.ru|h2" ;;
    nghttpd_h2) echo "nghttpd|h2" ;;
    *) log "unknown case: $1"; exit 2 ;;
  esac
}

probe() { # probe PROTOCOL: one request answered?
  if [[ $1 == h2 ]]; then
    curl -s -o /dev/null --max-time 2 --http2-prior-knowledge "http://127.0.0.1:$PORT/"
  else
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/"
  fi
}

# load PROTOCOL REQUESTS SECONDS -> prints the number of requests answered (h2: REQUESTS, if
# all succeeded; h1: what wrk completed in SECONDS)
load() {
  local out
  # (Called in a command substitution: an anomaly is printed, and the caller gets 0.)
  if [[ $1 == h2 ]]; then
    out=$(taskset -c 1 h2load -c 10 -m 10 -n "$2" "http://127.0.0.1:$PORT/")
    if ! grep -q "$2 succeeded" <<<"$out"; then
      loud "h2load: not every request succeeded"
      echo 0
      return
    fi
    echo "$2"
  else
    out=$(taskset -c 1 wrk -t1 -c20 -d"$3" "http://127.0.0.1:$PORT/")
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
      loud "wrk: errors or non-2xx responses"
      echo 0
      return
    fi
    awk '/requests in/ {print $1}' <<<"$out"
  fi
}

measure() { # measure CASE: sets TOTAL (instructions) and ANSWERED (requests)
  local setup rackup protocol out cmd requests=$REQUESTS
  setup=$(case_setup "$1")
  rackup=${setup%%|*}
  protocol=${setup##*|}
  [[ $1 == rack_h2 ]] && requests=$REQUESTS_H2_RACK
  out=$TMP/callgrind.$1
  if [[ $rackup == nghttpd ]]; then
    cmd=(nghttpd -n 1 -d "$DOCS" --no-tls "$PORT")
  else
    cmd=(ruby -rbundler/setup bin/hyperion -e production -t 5 -p "$PORT" --no-log-requests "$rackup")
  fi
  setsid taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no \
    "${cmd[@]}" >"$TMP/server.$1.log" 2>&1 </dev/null &
  SERVER_PID=$!
  for _ in $(seq 1 300); do probe "$protocol" && break; sleep 0.5; done
  load "$protocol" 3000 3s >/dev/null
  callgrind_control -z "$SERVER_PID" >/dev/null 2>&1
  ANSWERED=$(load "$protocol" "$requests" "$DURATION")
  callgrind_control -d "$SERVER_PID" >/dev/null 2>&1
  TOTAL=0
  local file
  for file in "$out".*; do
    TOTAL=$((TOTAL + $(awk '/^(summary|totals):/ {print $2; exit}' "$file")))
  done
  kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 $((STOP_TIMEOUT * 10))); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

cases=("$@")
[[ ${#cases[@]} -gt 0 ]] || cases=(rack_h1 handle_h1 static_h1 rack_h2 static_h2 nghttpd_h2)

{
  echo "# Instructions per request ($STAMP)"
  echo
  echo "Revision $(git rev-parse --short HEAD). Command: \`bench/instructions.sh${*:+ $*}\`"
  echo
  echo "| Case | Requests | Instructions | Instructions/request |"
  echo "|---|---:|---:|---:|"
} >"$REPORT"
for c in "${cases[@]}"; do
  log "measuring $c"
  measure "$c"
  if [[ $ANSWERED -gt 0 ]]; then
    per=$((TOTAL / ANSWERED))
  else
    per="invalid"
  fi
  echo "| $c | $ANSWERED | $TOTAL | $per |" >>"$REPORT"
done
for note in "${NOTES[@]}"; do echo "- $note" >>"$REPORT"; done
cat "$REPORT"
