#!/usr/bin/env bash
# Fast-path benchmarks, each case measured side by side with its reference in one run:
#
#   static      Server.handle_static hello (bench/hello_static.ru) vs nginx `return 200`
#   page_cache  a 1 KiB file from --preload-static vs nginx serving the same file
#   sendfile    a 1 MiB file through Rack::Files (to_path -> sendfile) vs nginx (sendfile on)
#   handle      Server.handle block hello (bench/hello_handle_block.ru) vs the generic Rack hello
#   static_uring  the static case with --io-uring on (when the build supports it) vs epoll
#   access_log  the generic Rack hello with access logs on (the default; JSON lines to a file,
#               as when piped) vs --no-log-requests: what one line per response costs
#
# Server on core 0, wrk on core 1 (`taskset`), -t1 -c100, medians of RUNS runs, round-robin
# within each case. Where nginx is the reference (access_log off), Hyperion runs with
# --no-log-requests so that both do the same work; the access_log case measures the log alone.
# Runs with non-2xx responses or socket errors are INVALID and excluded.
#
# Usage: bench/fast_paths.sh [case ...]   (default: all cases)
# Environment: DURATION=10s CONNECTIONS=100 RUNS=3 WARMUP=2s PORT_BASE=18401 STOP_TIMEOUT=10
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-100}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-2s}
PORT_BASE=${PORT_BASE:-18401}
STOP_TIMEOUT=${STOP_TIMEOUT:-10}
SERVER_CPU=0
CLIENT_CPU=1

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_start fast fast-paths

# The files: an index (readiness checks ask for /), 1 KiB and 1 MiB of fixed bytes.
FILES=$TMP/files
mkdir -p "$FILES"
# nginx workers run as an unprivileged user: they must be able to read the files.
chmod 755 "$TMP"
echo ok >"$FILES/index.html"
head -c 1024 /dev/zero | tr '\0' 'a' >"$FILES/1k.txt"
head -c 1048576 /dev/zero | tr '\0' 'b' >"$FILES/1m.txt"

nginx_conf() { # nginx_conf PORT -> path of a config serving `return 200` on / and files under /f/
  local port=$1 dir=$TMP/nginx-$1
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/plain;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path $dir/cb; proxy_temp_path $dir/p; fastcgi_temp_path $dir/f;
  uwsgi_temp_path $dir/u; scgi_temp_path $dir/s;
  types { text/plain txt; text/html html; }
  server {
    listen 127.0.0.1:$port;
    location = / { return 200 "Hello, World!"; }
    location /f/ { alias $FILES/; }
  }
}
CONF
  echo "$dir/nginx.conf"
}

# Case table: "label|command|path". PORT is substituted.
case_servers() {
  case $1 in
    static) echo "hyperion-static|bundle exec hyperion -e production -t 5 -p PORT --no-log-requests bench/hello_static.ru|/"
            echo "nginx-return|nginx -c NGINXCONF|/" ;;
    page_cache) echo "hyperion-page-cache|bundle exec hyperion -e production -t 5 -p PORT --no-log-requests --preload-static $FILES bench/hello.ru|/1k.txt"
                echo "nginx-file|nginx -c NGINXCONF|/f/1k.txt" ;;
    sendfile) echo "hyperion-to_path|env BENCH_FILES=$FILES bundle exec hyperion -e production -t 5 -p PORT --no-log-requests bench/files.ru|/1m.txt"
              echo "nginx-file|nginx -c NGINXCONF|/f/1m.txt" ;;
    handle) echo "hyperion-handle-block|bundle exec hyperion -e production -t 5 -p PORT bench/hello_handle_block.ru|/"
            echo "hyperion-rack|bundle exec hyperion -e production -t 5 -p PORT bench/hello.ru|/" ;;
    static_uring) echo "hyperion-static-io_uring|bundle exec hyperion -e production -t 5 -p PORT --io-uring on bench/hello_static.ru|/"
                  echo "hyperion-static-epoll|bundle exec hyperion -e production -t 5 -p PORT --io-uring off bench/hello_static.ru|/" ;;
    access_log) echo "hyperion-rack-access-log|bundle exec hyperion -e production -t 5 -p PORT bench/hello.ru|/"
                echo "hyperion-rack-no-access-log|bundle exec hyperion -e production -t 5 -p PORT --no-log-requests bench/hello.ru|/" ;;
    *) log "unknown case $1"; exit 1 ;;
  esac
}

CASES=("$@")
(( ${#CASES[@]} )) || CASES=(static page_cache sendfile handle static_uring access_log)
{
  echo "# Fast paths: $(date '+%Y-%m-%d %H:%M:%S %Z')"
  echo
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r)."
  echo "Revision: $(git rev-parse --short HEAD). Server \`taskset -c $SERVER_CPU\`, \`taskset -c $CLIENT_CPU wrk -t1 -c$CONNECTIONS -d$DURATION --latency URL\`"
  echo "after a $WARMUP warm-up; $RUNS runs round-robin per case; medians of valid runs."
} >"$REPORT"

port=$PORT_BASE
for case_name in "${CASES[@]}"; do
  mapfile -t entries < <(case_servers "$case_name")
  declare -A RPS=() P99=() VALID=()
  for run in $(seq 1 "$RUNS"); do
    for entry in "${entries[@]}"; do
      IFS='|' read -r label cmd path <<<"$entry"
      port=$((port + 1))
      conf=$(nginx_conf "$port")
      cmd=${cmd//PORT/$port}; cmd=${cmd//NGINXCONF/$conf}
      logfile=$TMP/$label-$run.log
      raw=$RAW_DIR/fast-$STAMP-$case_name-$label-run$run.txt
      log "$case_name run $run: $label"
      # shellcheck disable=SC2086
      (exec setsid taskset -c "$SERVER_CPU" $cmd) >"$logfile" 2>&1 </dev/null &
      SERVER_PID=$!
      wait_until_ready "$label" "$port" "$logfile"
      url="http://127.0.0.1:$port$path"
      taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "$url" >/dev/null 2>&1 || true
      status=0
      taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$url" >"$raw" 2>&1 || status=$?
      stop_server "$label"
      rps=$(awk '/^Requests\/sec:/ { print $2 }' "$raw")
      p99=$(awk '$1 == "99%" { print $2 }' "$raw"); [[ -n $p99 ]] && p99=$(to_ms "$p99" || true)
      if grep -qE 'Non-2xx|Socket errors' "$raw" || (( status != 0 )) || [[ -z $rps ]]; then
        loud "INVALID: $case_name $label run $run (raw: ${raw#"$ROOT"/})"
        continue
      fi
      RPS[$label]+="$rps"$'\n'; P99[$label]+="$p99"$'\n'; VALID[$label]=$(( ${VALID[$label]:-0} + 1 ))
      log "  $rps req/s, p99 $p99 ms"
    done
  done
  {
    echo
    echo "## $case_name"
    echo
    echo "| Server | Command | Median req/s | Median p99 (ms) | Valid runs |"
    echo "|---|---|---:|---:|---:|"
    first=""
    for entry in "${entries[@]}"; do
      IFS='|' read -r label cmd path <<<"$entry"
      med=$(printf '%s' "${RPS[$label]:-}" | median '%.2f'); p=$(printf '%s' "${P99[$label]:-}" | median '%.3f')
      echo "| $label | \`${cmd//PORT/P}\` $path | ${med:-–} | ${p:-–} | ${VALID[$label]:-0}/$RUNS |"
      if [[ -z $first ]]; then first=$med; else
        [[ -n $first && -n $med ]] && echo && echo "Ratio first/second: $(awk -v a="$first" -v b="$med" 'BEGIN { printf "%.2fx", a / b }')"
      fi
    done
  } >>"$REPORT"
done
if (( ${#NOTES[@]} )); then { echo; echo "## Notes"; printf -- '- %s\n' "${NOTES[@]}"; } >>"$REPORT"; fi
log "report: $REPORT"
cat "$REPORT"
