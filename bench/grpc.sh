#!/usr/bin/env bash
# gRPC benchmark: unary echo calls (spec/grpc/echo.proto) from the grpc gem's client against
# Hyperion serving the echo service as a Rack app (spec/fixtures/grpc.ru) and, in the same
# run, the same service on the grpc gem's own server (bench/grpc_gem_server.rb) as the peer.
#
#   hyperion   bundle exec hyperion -e production -t THREADS spec/fixtures/grpc.ru (h2c)
#   grpc-gem   GRPC::RpcServer with a pool of GEM_POOL threads (bench/grpc_gem_server.rb).
#              It answers RESOURCE_EXHAUSTED whenever no pool thread is idle at the moment a
#              call arrives (no queueing), so its pool must exceed the client count: by
#              default twice CLIENTS.
#
# The client (bench/grpc_client.rb) runs CLIENTS threads, each with its own channel, making
# unary calls back to back for DURATION seconds, and reports calls/s, p50 and p99. Server on
# core 0, client on core 1 (`taskset`), RUNS runs round-robin, medians of valid runs. A run
# with any failed call is INVALID and excluded.
#
# Usage: bench/grpc.sh
# Environment: CLIENTS=8 THREADS=5 GEM_POOL=2*CLIENTS DURATION=10 RUNS=3 PORT_BASE=18601
#              STOP_TIMEOUT=10
set -euo pipefail

CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-5}
GEM_POOL=${GEM_POOL:-$((CLIENTS * 2))}
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
PORT_BASE=${PORT_BASE:-18601}
STOP_TIMEOUT=${STOP_TIMEOUT:-10}
SERVER_CPU=0
CLIENT_CPU=1

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_start grpc grpc

bundle exec ruby -e 'require "grpc"' 2>/dev/null || { log "the grpc gem is missing (bin/setup installs ruby-grpc)"; exit 1; }

# Ready means a unary call succeeds, not just an open socket.
grpc_ok() { bundle exec ruby bench/grpc_client.rb "127.0.0.1:$1" 1 0.2 2>/dev/null | grep -q 'failures=0 '; }

# "label|command"; PORT is substituted.
SERVERS=(
  "hyperion|bundle exec hyperion -e production -t $THREADS -p PORT spec/fixtures/grpc.ru"
  "grpc-gem|bundle exec ruby bench/grpc_gem_server.rb PORT $GEM_POOL"
)

{
  echo "# gRPC unary echo: $(date '+%Y-%m-%d %H:%M:%S %Z')"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r)."
  echo "Revision: $(git rev-parse --short HEAD). Server \`taskset -c $SERVER_CPU\`, client"
  echo "\`taskset -c $CLIENT_CPU ruby bench/grpc_client.rb TARGET $CLIENTS $DURATION\` ($CLIENTS threads, one channel"
  echo "each, unary calls back to back for $DURATION s); $RUNS runs round-robin; medians of valid runs."
} >"$REPORT"

declare -A CPS=() P50=() P99=() VALID=()
port=$PORT_BASE
for run in $(seq 1 "$RUNS"); do
  for entry in "${SERVERS[@]}"; do
    IFS='|' read -r label cmd <<<"$entry"
    port=$((port + 1))
    cmd=${cmd//PORT/$port}
    logfile=$TMP/$label-$run.log
    log "run $run: $label"
    # shellcheck disable=SC2086
    (exec setsid taskset -c "$SERVER_CPU" $cmd) >"$logfile" 2>&1 </dev/null &
    SERVER_PID=$!
    wait_for_server "$label" "$port" "$logfile" grpc_ok
    raw=$RAW_DIR/grpc-$STAMP-$label-run$run.txt
    status=0
    taskset -c "$CLIENT_CPU" bundle exec ruby bench/grpc_client.rb "127.0.0.1:$port" "$CLIENTS" "$DURATION" \
      >"$raw" 2>&1 || status=$?
    line=$(grep -m1 '^calls=' "$raw" || true)
    errors=$(sed -n 's/^errors=//p' "$raw")
    field() { sed -n "s/.*\\b$1=\\([0-9.]*\\).*/\\1/p" <<<"$line"; }
    calls=$(field calls); failures=$(field failures)
    if (( status != 0 )) || [[ -z $line || $failures != 0 || $calls == 0 ]]; then
      loud "INVALID: $label run $run (failures: ${failures:-?} ${errors}; raw: ${raw#"$ROOT"/})"
    else
      CPS[$label]+="$(field calls_per_s)"$'\n'
      P50[$label]+="$(field p50_ms)"$'\n'
      P99[$label]+="$(field p99_ms)"$'\n'
      VALID[$label]=$(( ${VALID[$label]:-0} + 1 ))
      log "  $(field calls_per_s) calls/s, p99 $(field p99_ms) ms"
    fi
    stop_server "$label"
  done
done

reference=$(printf '%s' "${CPS[grpc-gem]:-}" | median '%.1f')
{
  echo
  echo "| Server | Command | Median calls/s | vs grpc gem | p50 ms | p99 ms | Valid runs |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for entry in "${SERVERS[@]}"; do
    IFS='|' read -r label cmd <<<"$entry"
    med=$(printf '%s' "${CPS[$label]:-}" | median '%.1f')
    p50=$(printf '%s' "${P50[$label]:-}" | median '%.3f')
    p99=$(printf '%s' "${P99[$label]:-}" | median '%.3f')
    ratio="–"
    [[ -n $med && -n $reference ]] && ratio=$(awk -v a="$med" -v b="$reference" 'BEGIN { printf "%.2fx", a / b }')
    echo "| $label | \`${cmd//PORT/P}\` | ${med:-–} | $ratio | ${p50:-–} | ${p99:-–} | ${VALID[$label]:-0}/$RUNS |"
  done
} >>"$REPORT"
if (( ${#NOTES[@]} )); then { echo; echo "## Notes"; printf -- '- %s\n' "${NOTES[@]}"; } >>"$REPORT"; fi
log "report: $REPORT"
cat "$REPORT"
