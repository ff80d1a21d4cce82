#!/usr/bin/env bash
# HTTP/2 benchmark: h2load against Hyperion and, in the same run, Debian's nghttpd serving a
# small file as the reference.
#
#   hyperion-static  Server.handle_static hello (bench/hello_static.ru): answered on the
#                    connection task, never entering Ruby
#   hyperion-rack    the generic Rack hello (bench/hello.ru) through the application threads
#   nghttpd          nghttpd -n 1 serving a 13-byte file
#
# Two load shapes: `h2load -c 1 -m 100 -n REQUESTS` (one connection, 100 concurrent streams)
# and `h2load -c 10 -m 10 -n REQUESTS_C10`. The second runs ten times longer by default: at
# 300,000-450,000 req/s, 20,000 requests last about 50 ms, mostly connection setup, and
# nghttpd's steady rate only shows in a longer run. Before the measured runs, each server
# answers WARMUP_REQUESTS requests (`-c 10 -m 10`), not measured, as the other scripts warm
# up with a short wrk run: a Ruby server's first requests are slower than its steady state. Server on core 0, h2load on core 1 (`taskset`), medians of RUNS
# runs, round-robin. Runs where any request failed are INVALID and excluded. nghttpd logs
# nothing per request, so Hyperion runs with --no-log-requests: both do the same work.
# Each run also records the server's CPU time per request (`group_cpu_ns` in lib.sh): at
# several hundred thousand requests/s h2load's one core can be the bottleneck, and this VM's
# speed drifts between runs, so the CPU ratio is the steadier comparison of the two.
#
# Over h2c (prior knowledge) by default. With TLS_CERT and TLS_KEY set (PEM files), every
# server listens with TLS instead and h2load negotiates h2 by ALPN (Hyperion takes
# --tls-cert/--tls-key; needs a build with TLS).
#
# Usage: bench/h2.sh
# Environment: REQUESTS=20000 REQUESTS_C10=200000 WARMUP_REQUESTS=20000 RUNS=3 PORT_BASE=18501 STOP_TIMEOUT=10 TLS_CERT= TLS_KEY=
set -euo pipefail

REQUESTS=${REQUESTS:-20000}
REQUESTS_C10=${REQUESTS_C10:-200000}
WARMUP_REQUESTS=${WARMUP_REQUESTS:-20000}
RUNS=${RUNS:-3}
PORT_BASE=${PORT_BASE:-18501}
STOP_TIMEOUT=${STOP_TIMEOUT:-10}
TLS_CERT=${TLS_CERT:-}
TLS_KEY=${TLS_KEY:-}
SERVER_CPU=0
CLIENT_CPU=1

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_start h2 h2

for tool in h2load nghttpd curl; do
  command -v "$tool" >/dev/null || { log "$tool is missing (bin/setup installs nghttp2-client and nghttp2-server)"; exit 1; }
done

if [[ -n $TLS_CERT || -n $TLS_KEY ]]; then
  [[ -r $TLS_CERT && -r $TLS_KEY ]] || { log "TLS_CERT and TLS_KEY must both name readable PEM files"; exit 1; }
  SCHEME=https
  HYPERION_TLS="--tls-cert $TLS_CERT --tls-key $TLS_KEY"
  NGHTTPD_ARGS="PORT $TLS_KEY $TLS_CERT"
  CURL_PROTO=(--http2 -k)
else
  SCHEME=http
  HYPERION_TLS=""
  NGHTTPD_ARGS="--no-tls PORT"
  CURL_PROTO=(--http2-prior-knowledge)
fi

DOCROOT=$TMP/htdocs
mkdir -p "$DOCROOT"
printf 'Hello, World!' >"$DOCROOT/index.html"

# Ready means an HTTP/2 200 on the port, not just an open socket.
h2_ok() { [[ $(curl -s "${CURL_PROTO[@]}" -o /dev/null -m 1 -w '%{http_code}' "$SCHEME://127.0.0.1:$1/" || true) == 200 ]]; }

# "label|command|path"; PORT is substituted.
SERVERS=(
  "hyperion-static|bundle exec hyperion -e production -t 5 -p PORT --no-log-requests $HYPERION_TLS bench/hello_static.ru|/"
  "hyperion-rack|bundle exec hyperion -e production -t 5 -p PORT --no-log-requests $HYPERION_TLS bench/hello.ru|/"
  "nghttpd|nghttpd -n 1 -d $DOCROOT $NGHTTPD_ARGS|/"
)
# "name|h2load arguments|requests"
SHAPES=("c1m100|-c 1 -m 100|$REQUESTS" "c10m10|-c 10 -m 10|$REQUESTS_C10")

{
  echo "# HTTP/2: $(date '+%Y-%m-%d %H:%M:%S %Z')"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r)."
  echo "Revision: $(git rev-parse --short HEAD). Scheme: $SCHEME. Server \`taskset -c $SERVER_CPU\`,"
  echo "\`taskset -c $CLIENT_CPU h2load SHAPE URL\` (SHAPE below) after $WARMUP_REQUESTS requests of warm-up; $RUNS runs round-robin; medians of valid runs."
} >"$REPORT"

declare -A RPS=() CPU=() VALID=()
port=$PORT_BASE
for run in $(seq 1 "$RUNS"); do
  for entry in "${SERVERS[@]}"; do
    IFS='|' read -r label cmd path <<<"$entry"
    port=$((port + 1))
    cmd=${cmd//PORT/$port}
    logfile=$TMP/$label-$run.log
    log "run $run: $label"
    # shellcheck disable=SC2086
    (exec setsid taskset -c "$SERVER_CPU" $cmd) >"$logfile" 2>&1 </dev/null &
    SERVER_PID=$!
    wait_for_server "$label" "$port" "$logfile" h2_ok
    url="$SCHEME://127.0.0.1:$port$path"
    taskset -c "$CLIENT_CPU" h2load -c 10 -m 10 -n "$WARMUP_REQUESTS" "$url" >/dev/null 2>&1 || true
    for shape in "${SHAPES[@]}"; do
      IFS='|' read -r shape_name shape_args shape_n <<<"$shape"
      raw=$RAW_DIR/h2-$STAMP-$label-$shape_name-run$run.txt
      status=0
      # shellcheck disable=SC2086
      cpu_before=$(group_cpu_ns "$SERVER_PID")
      taskset -c "$CLIENT_CPU" h2load $shape_args -n "$shape_n" "$url" >"$raw" 2>&1 || status=$?
      cpu_us=$(cpu_us_per_request "$(( $(group_cpu_ns "$SERVER_PID") - cpu_before ))" "$shape_n")
      rps=$(awk '/^finished in/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "req/s,") { print $i; exit } }' "$raw")
      if ! grep -qE "^requests: .* $shape_n succeeded, 0 failed, 0 errored" "$raw" || (( status != 0 )) || [[ -z $rps ]]; then
        loud "INVALID: $label $shape_name run $run (raw: ${raw#"$ROOT"/})"
        continue
      fi
      key="$label|$shape_name"
      RPS[$key]+="$rps"$'\n'; CPU[$key]+="$cpu_us"$'\n'; VALID[$key]=$(( ${VALID[$key]:-0} + 1 ))
      log "  $shape_name: $rps req/s, $cpu_us us of server CPU per request"
    done
    stop_server "$label"
  done
done

for shape in "${SHAPES[@]}"; do
  IFS='|' read -r shape_name shape_args shape_n <<<"$shape"
  reference=$(printf '%s' "${RPS[nghttpd|$shape_name]:-}" | median '%.2f')
  reference_cpu=$(printf '%s' "${CPU[nghttpd|$shape_name]:-}" | median '%.2f')
  {
    echo
    echo "## h2load $shape_args -n $shape_n"
    echo
    echo "| Server | Command | Median req/s | vs nghttpd | Server CPU us/request | nghttpd's CPU / this | Valid runs |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    for entry in "${SERVERS[@]}"; do
      IFS='|' read -r label cmd path <<<"$entry"
      key="$label|$shape_name"
      med=$(printf '%s' "${RPS[$key]:-}" | median '%.2f')
      ratio="–"
      [[ -n $med && -n $reference ]] && ratio=$(awk -v a="$med" -v b="$reference" 'BEGIN { printf "%.2fx", a / b }')
      cpu=$(printf '%s' "${CPU[$key]:-}" | median '%.2f')
      cpu_ratio="–"
      [[ -n $cpu && -n $reference_cpu ]] && cpu_ratio=$(awk -v a="$reference_cpu" -v b="$cpu" 'BEGIN { if (b > 0) printf "%.2fx", a / b }')
      echo "| $label | \`${cmd//PORT/P}\` $path | ${med:-–} | $ratio | ${cpu:-–} | $cpu_ratio | ${VALID[$key]:-0}/$RUNS |"
    done
  } >>"$REPORT"
done
if (( ${#NOTES[@]} )); then { echo; echo "## Notes"; printf -- '- %s\n' "${NOTES[@]}"; } >>"$REPORT"; fi
log "report: $REPORT"
cat "$REPORT"
