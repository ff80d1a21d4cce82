#!/usr/bin/env bash
# Generic Rack hello benchmark: Hyperion vs Debian's puma vs nginx, measured in one run.
#
# Each server is pinned to core 0 and wrk to core 1, so the server gets exactly one core
# and the load generator never competes with it. Servers are measured round-robin (run 1 of
# every server, then run 2 of every server, ...) so slow drift of the machine (thermal,
# other tenants) spreads over all servers instead of penalising whichever went last.
#
# Usage: bench/run.sh        (from anywhere; ~2 minutes with the defaults)
#        SERVERS="static-epoll static-io_uring" bench/run.sh
#        (the engine alone answering a static route, crates/hyperion-engine/examples/static_hello.rs,
#        on each connection loop: the loops compared without Ruby)
# Environment:
#   DURATION=10s  CONNECTIONS=100  RUNS=3  SERVERS="hyperion puma nginx"
#   WARMUP=2s     PORT_BASE=18301  STOP_TIMEOUT=10 (seconds to wait after SIGTERM)
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-100}
RUNS=${RUNS:-3}
SERVERS=${SERVERS:-hyperion puma nginx}
WARMUP=${WARMUP:-2s}
PORT_BASE=${PORT_BASE:-18301}
STOP_TIMEOUT=${STOP_TIMEOUT:-10}
SERVER_CPU=0
CLIENT_CPU=1
NGINX_KEEPALIVE_REQUESTS=100000

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_start bench hello
STARTED=$(date '+%Y-%m-%d %H:%M:%S %Z')

for tool in wrk taskset curl ss awk; do
  command -v "$tool" >/dev/null || { log "missing tool: $tool"; exit 1; }
done
if (( $(nproc) < 2 )); then
  log "need at least 2 cores (server on core $SERVER_CPU, wrk on core $CLIENT_CPU)"; exit 1
fi

port_of() {
  case $1 in
    hyperion) echo $((PORT_BASE)) ;;
    puma) echo $((PORT_BASE + 1)) ;;
    nginx) echo $((PORT_BASE + 2)) ;;
    static-epoll) echo $((PORT_BASE + 3)) ;;
    static-io_uring) echo $((PORT_BASE + 4)) ;;
    *) log "unknown server: $1 (known: hyperion puma nginx static-epoll static-io_uring)"; exit 1 ;;
  esac
}

# The exact command line for each server; also printed in the report.
server_cmd() {
  local name=$1 port
  port=$(port_of "$name")
  case $name in
    hyperion) echo "bundle exec hyperion -e production -t 5 -p $port bench/hello.ru" ;;
    puma) echo "puma -t 5:5 -e production -b tcp://127.0.0.1:$port bench/hello.ru" ;;
    nginx) echo "nginx -p $TMP/nginx -c $TMP/nginx/nginx.conf -e $TMP/nginx/error.log" ;;
    static-epoll) echo "target/release/examples/static_hello epoll $port" ;;
    static-io_uring) echo "target/release/examples/static_hello io_uring $port" ;;
  esac
}

write_nginx_conf() {
  local port=$1 dir=$TMP/nginx
  mkdir -p "$dir"
  # keepalive_requests: nginx's default (1000) would close each wrk connection every 1000
  # requests; Hyperion and puma do not, so the comparison would include reconnects.
  # Temp paths point into the prefix so nothing outside the temp dir is touched.
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/plain;
  keepalive_requests $NGINX_KEEPALIVE_REQUESTS;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$port;
    location / { return 200 "Hello, World!"; }
  }
}
EOF
}

port_in_use() { ss -Hltn "sport = :$1" | grep -q .; }

# Starts a server pinned to the server core, in its own session so that stopping it also
# reaches its children (nginx's worker). Sets SERVER_PID.
start_server() {
  local name=$1 logfile=$2 port cmd
  port=$(port_of "$name")
  if port_in_use "$port"; then
    # Measuring whatever else owns the port would silently produce wrong numbers.
    log "port $port is already in use; set PORT_BASE to a free range"; exit 1
  fi
  if [[ $name == nginx ]]; then write_nginx_conf "$port"; fi
  cmd=$(server_cmd "$name")
  # shellcheck disable=SC2086 # the command line is word-split on purpose
  (exec setsid taskset -c "$SERVER_CPU" $cmd) >"$logfile" 2>&1 </dev/null &
  SERVER_PID=$!
  wait_until_ready "$name" "$port" "$logfile"
  if [[ $name == hyperion ]]; then record_native_ext; fi
  if [[ $(ps -o pgid= -p "$SERVER_PID" | tr -d ' ') != "$SERVER_PID" ]]; then
    log "warning: $name pid $SERVER_PID is not its own process group; only the pid will be signalled"
  fi
}

# The native extension can be rebuilt while the benchmark runs; each Hyperion run records
# which build it loaded so mixed builds are visible in the report instead of averaged.
NATIVE_BUILDS=()
record_native_ext() {
  local so sum
  so=$(grep -m1 -o '/[^ ]*hyperion_native[^ ]*\.so' "/proc/$SERVER_PID/maps" || true)
  if [[ -z $so ]]; then sum="(not found in /proc/$SERVER_PID/maps)"
  else sum="$(sha256sum "$so" | cut -c1-16) ${so#"$ROOT"/} ($(date -r "$so" '+%Y-%m-%d %H:%M:%S'))"; fi
  if [[ ! " ${NATIVE_BUILDS[*]} " == *" ${sum%% *} "* ]]; then NATIVE_BUILDS+=("$sum"); fi
}




declare -A RPS P99 CPU VALID
read -r -a SERVER_LIST <<<"$SERVERS"
for name in "${SERVER_LIST[@]}"; do port_of "$name" >/dev/null; RPS[$name]=""; P99[$name]=""; CPU[$name]=""; VALID[$name]=0; done

if [[ " ${SERVER_LIST[*]} " == *" static-"* ]]; then
  log "building the static_hello example"
  cargo build --release --locked -q -p hyperion-engine --example static_hello
fi

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$( [[ -n $(git status --porcelain 2>/dev/null) ]] && echo ' (working tree has uncommitted changes)' || true)"
RUN_ROWS=()
log "servers: ${SERVER_LIST[*]}; $RUNS runs of $DURATION at $CONNECTIONS connections; results in $REPORT"

for run in $(seq 1 "$RUNS"); do
  for name in "${SERVER_LIST[@]}"; do
    port=$(port_of "$name")
    url="http://127.0.0.1:$port/"
    raw=$RAW_DIR/hello-$STAMP-$name-run$run.txt
    load1=$(cut -d' ' -f1 /proc/loadavg)
    log "run $run/$RUNS: $name (load average $load1)"
    start_server "$name" "$TMP/$name-run$run.log"

    # Warm-up: first requests pay for lazy loading, allocation and caches in every server.
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "$url" >/dev/null 2>&1 || true

    wrk_status=0
    cpu_before=$(group_cpu_ns "$SERVER_PID")
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$url" >"$raw" 2>&1 || wrk_status=$?
    cpu_ns=$(( $(group_cpu_ns "$SERVER_PID") - cpu_before ))
    stop_server "$name"
    # Everything but the access lines (one per request: hundreds of MB per run).
    grep -v -e '"message":"request"' -e ' \[hyperion\] request ' "$TMP/$name-run$run.log" \
      >"$RAW_DIR/hello-$STAMP-$name-run$run.server.log" || true

    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$raw")
    requests=$(awk '/requests in/ { print $1 }' "$raw")
    cpu_us=""
    [[ -n $requests ]] && cpu_us=$(cpu_us_per_request "$cpu_ns" "$requests")
    p99_raw=$(awk '$1 == "99%" { print $2 }' "$raw")
    p99=""
    [[ -n $p99_raw ]] && p99=$(to_ms "$p99_raw" || true)
    reason=""
    # A server that answers errors or drops connections can be fast at it; such runs are not
    # comparable, so they are excluded instead of averaged in.
    if grep -q 'Non-2xx or 3xx responses' "$raw"; then reason="Non-2xx or 3xx responses"; fi
    if grep -q 'Socket errors' "$raw"; then reason="${reason:+$reason; }$(grep 'Socket errors' "$raw" | sed 's/^ *//')"; fi
    if (( wrk_status != 0 )) || [[ -z $rps || -z $p99 ]]; then reason="${reason:+$reason; }wrk failed (exit $wrk_status) or printed no result"; fi

    if [[ -n $reason ]]; then
      loud "INVALID: $name run $run excluded: $reason (raw: ${raw#"$ROOT"/})"
      RUN_ROWS+=("| $run | $name | ${rps:-–} | ${p99:-–} | ${cpu_us:-–} | $load1 | INVALID: $reason |")
    else
      RPS[$name]+="$rps"$'\n'
      P99[$name]+="$p99"$'\n'
      CPU[$name]+="$cpu_us"$'\n'
      VALID[$name]=$((VALID[$name] + 1))
      RUN_ROWS+=("| $run | $name | $rps | $p99 | ${cpu_us:-–} | $load1 | valid |")
    fi
    log "  $name run $run: ${rps:-?} req/s, p99 ${p99:-?} ms${reason:+ (INVALID)}"
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
if (( ${#NATIVE_BUILDS[@]} > 1 )); then
  loud "Hyperion runs loaded ${#NATIVE_BUILDS[@]} different native extension builds: the extension was rebuilt during the benchmark"
fi

declare -A MED_RPS MED_P99 MED_CPU
for name in "${SERVER_LIST[@]}"; do
  MED_RPS[$name]=$(printf '%s' "${RPS[$name]}" | median '%.2f')
  MED_P99[$name]=$(printf '%s' "${P99[$name]}" | median '%.3f')
  MED_CPU[$name]=$(printf '%s' "${CPU[$name]}" | median '%.2f')
  if (( VALID[$name] == 0 )); then loud "$name has NO valid run: no result for it"; fi
done

ratio() { # ratio A B, or n/a when either side is missing
  if [[ -n $1 && -n $2 ]]; then awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0) ? "%.2fx" : "n/a", a / (b > 0 ? b : 1) }'; else printf 'n/a'; fi
}

{
  echo "# Generic Rack hello: $STARTED"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r), $(ruby -v | cut -d' ' -f1-2)."
  echo "Load average before: $LOAD_BEFORE; after: $LOAD_AFTER. Revision: $REVISION."
  if (( ${#NATIVE_BUILDS[@]} > 0 )); then
    echo "Hyperion native extension loaded (sha256 prefix, path, mtime): $(IFS=';'; echo "${NATIVE_BUILDS[*]}")."
  fi
  echo
  echo "Each server on core $SERVER_CPU (\`taskset -c $SERVER_CPU\`), wrk on core $CLIENT_CPU:"
  echo "\`taskset -c $CLIENT_CPU wrk -t1 -c$CONNECTIONS -d$DURATION --latency URL\` after a $WARMUP warm-up;"
  echo "$RUNS runs per server, round-robin; medians over valid runs. A run whose wrk output contains"
  echo "\`Non-2xx or 3xx responses\` or \`Socket errors\` is INVALID and excluded."
  echo "nginx: 1 worker, \`keepalive_requests $NGINX_KEEPALIVE_REQUESTS\` so wrk's connections are not recycled"
  echo "(nginx's default of 1000 would close each connection every 1000 requests)."
  echo
  echo "| Server | Median req/s | Median p99 (ms) | Median server CPU (us/request) | req/s vs puma | p99 vs puma | Valid runs |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for name in "${SERVER_LIST[@]}"; do
    echo "| $name | ${MED_RPS[$name]:-–} | ${MED_P99[$name]:-–} | ${MED_CPU[$name]:-–} | $(ratio "${MED_RPS[$name]}" "${MED_RPS[puma]:-}") | $(ratio "${MED_P99[$name]}" "${MED_P99[puma]:-}") | ${VALID[$name]}/$RUNS |"
  done
  echo
  echo "p99 vs puma below 1.00x means a lower (better) p99 than puma. Server CPU is the user + system"
  echo "time of the server's processes during the measured run divided by the requests completed"
  echo "(the server's cost per request; it still compares servers when wrk is the bottleneck)."
  if [[ -n ${MED_RPS[hyperion]:-} && -n ${MED_RPS[nginx]:-} ]]; then
    echo "Hyperion vs nginx: req/s $(ratio "${MED_RPS[hyperion]}" "${MED_RPS[nginx]}"), p99 $(ratio "${MED_P99[hyperion]}" "${MED_P99[nginx]}")."
  fi
  if [[ -n ${MED_RPS[static-io_uring]:-} && -n ${MED_RPS[static-epoll]:-} ]]; then
    echo "Static route, io_uring vs epoll loop: req/s $(ratio "${MED_RPS[static-io_uring]}" "${MED_RPS[static-epoll]}"), p99 $(ratio "${MED_P99[static-io_uring]}" "${MED_P99[static-epoll]}"), requests per CPU second $(ratio "${MED_CPU[static-epoll]}" "${MED_CPU[static-io_uring]}")."
  fi
  echo
  echo "## Every run"
  echo
  echo "Load = 1-minute load average when the run started (2 cores; the benchmark itself adds up to 2)."
  echo
  echo "| Run | Server | req/s | p99 (ms) | Server CPU (us/request) | Load | Status |"
  echo "|---:|---|---:|---:|---:|---:|---|"
  printf '%s\n' "${RUN_ROWS[@]}"
  echo
  echo "## Commands"
  echo
  for name in "${SERVER_LIST[@]}"; do echo "- $name: \`taskset -c $SERVER_CPU $(server_cmd "$name" | sed "s#$TMP#\$TMP#g")\`"; done
  echo
  echo "Raw wrk output and server logs: \`bench/results/raw/hello-$STAMP-*\`."
  if (( ${#NOTES[@]} > 0 )); then
    echo
    echo "## Problems during this run"
    echo
    printf -- '- %s\n' "${NOTES[@]}"
  fi
} | tee "$REPORT"
