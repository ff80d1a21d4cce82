#!/usr/bin/env bash
# Deploys under load: wrk runs against a `-w 2` cluster while the cluster is restarted, and its
# report (requests, socket errors, non-2xx) shows whether any request was lost.
#
#   usr1   a rolling restart of every worker (USR1 to the master)
#   term   TERM to one worker, which the master replaces
#
# For each connection loop (epoll, and io_uring where the kernel allows it). Not pinned: this
# counts lost requests, not speed.
#
# Usage: bench/deploy.sh
# Environment: DURATION=8 CONNECTIONS=16 PORT=18601
set -euo pipefail

DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-16}
PORT=${PORT:-18601}

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_start deploy
STOP_TIMEOUT=20

workers() { pgrep -P "$SERVER_PID" || true; }

one_case() { # one_case LOOP SIGNAL
  local loop=$1 signal=$2 logfile=$TMP/server-$1-$2.log
  setsid bundle exec hyperion -e production -w 2 -t 5 --io-uring "$loop" --no-log-requests \
    -p "$PORT" bench/hello.ru >"$logfile" 2>&1 &
  SERVER_PID=$!
  wait_until_ready "hyperion ($loop)" "$PORT" "$logfile"
  until [[ $(workers | wc -l) -ge 2 ]]; do sleep 0.2; done
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$PORT/" >"$TMP/wrk.txt" 2>&1 &
  local wrk_pid=$!
  local before
  before=$(workers | sort)
  sleep 2
  case $signal in
    usr1) kill -USR1 "$SERVER_PID" ;;
    term) kill -TERM "$(workers | head -n 1)" ;;
  esac
  wait "$wrk_pid"
  local replaced requests errors non2xx
  replaced=$(comm -23 <(echo "$before") <(workers | sort) | wc -l)
  requests=$(awk '/requests in/ { print $1 }' "$TMP/wrk.txt")
  errors=$(grep -o 'Socket errors:.*' "$TMP/wrk.txt" || echo 'Socket errors: none')
  non2xx=$(grep -o 'Non-2xx or 3xx responses: [0-9]*' "$TMP/wrk.txt" || echo 'Non-2xx or 3xx responses: 0')
  printf '| %s | %s | %s | %s | %s | %s |\n' "$loop" "$signal" "$replaced" "$requests" "$errors" "$non2xx"
  stop_server "hyperion ($loop)"
}

loops=(off)
if bundle exec ruby -Ilib -e 'require_relative "spec/support/io_uring_probe"; exit(IoUringProbe.available? ? 0 : 1)'; then
  loops+=(on)
fi
echo "wrk -t2 -c$CONNECTIONS -d${DURATION}s through each deploy, against hyperion -w 2 (bench/hello.ru)"
echo
echo '| io_uring | Deploy | Workers replaced | Requests | Socket errors | Non-2xx |'
echo '|---|---|---:|---:|---|---|'
for loop in "${loops[@]}"; do
  for signal in usr1 term; do
    one_case "$loop" "$signal"
  done
done
