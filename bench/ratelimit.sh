#!/usr/bin/env bash
# Rate limiting benchmark: what counting requests per client costs, and how
# fast refused requests are answered, in Meridian (rate_limits[]), nginx
# (limit_req) and HAProxy (a stick table with http_req_rate), one worker
# each, same origin, wrk with 50 keep-alive connections from 127.0.0.1 (so
# one key, the worst case for a shared bucket).
#   - "none":  Meridian without a rate limit (the baseline of its cost);
#   - "under": a per-client limit far above the load (every request counted,
#     none refused);
#   - "over":  a per-client limit of 100/s (nearly every request refused
#     with 429).
# Everything listens on 127.0.0.1; every process is stopped at exit.
# usage: bench/ratelimit.sh [DURATION_SECONDS]   (default 5; ROUNDS=3
# interleaved rounds, medians; CG=1 adds instructions per request under
# valgrind --tool=callgrind for Meridian none/under/over)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh bench
DUR=${1:-5}
ROUNDS=${ROUNDS:-3}
CONNS=50
BIN=${MERIDIAN_BIN:-$PWD/build/meridian}
TMP=$(mktemp -d /tmp/meridian-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 1 300); do
		if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "port $1 did not open" >&2
	return 1
}
ulimit -n 65536 2>/dev/null || true

OPORT=$(free_port)
"$BIN" origin --listen 127.0.0.1:"$OPORT" --name o1 --cloud bench --threads 1 >/dev/null &
OPID=$!; PIDS+=($OPID)
wait_port "$OPORT"

UNDER=10000000 # per second: never reached
OVER=100

meridian_conf() { # port limit(0: none) store
	cat <<YAML
edge:
  name: bench
  workers: 1
  store: $3
  listen: { http: ["127.0.0.1:$1"] }
  limits: { max_connections: 100000, upstream_idle_per_origin: 256 }
pools:
  - id: p
    origins: [ { name: o1, address: 127.0.0.1, port: $OPORT } ]
load_balancers:
  - name: bench.local
    default_pools: [p]
YAML
	if [ "$2" != 0 ]; then
		cat <<YAML
rate_limits:
  - { name: per-ip, requests_per_period: $2, period: 1s }
YAML
	fi
}

nginx_conf() { # port limit tag
	cat <<NGINX
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid $TMP/nginx-$3.pid;
error_log $TMP/nginx-$3-error.log error;
events { worker_connections 30000; multi_accept on; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx-body;
  proxy_temp_path $TMP/nginx-proxy;
  fastcgi_temp_path $TMP/nginx-fastcgi;
  uwsgi_temp_path $TMP/nginx-uwsgi;
  scgi_temp_path $TMP/nginx-scgi;
  keepalive_requests 1000000;
  limit_req_zone \$binary_remote_addr zone=perip:10m rate=$2r/s;
  limit_req_status 429;
  limit_req_log_level info;
  upstream o { server 127.0.0.1:$OPORT; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$1;
    location / {
      limit_req zone=perip burst=$2 nodelay;
      proxy_pass http://o;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
NGINX
}

haproxy_conf() { # port limit
	cat <<HAP
global
  nbthread 1
  fd-hard-limit $(ulimit -n)
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option forwardfor
  http-reuse always
frontend f
  bind 127.0.0.1:$1
  stick-table type ip size 100k expire 10s store http_req_rate(1s)
  http-request track-sc0 src
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt $2 }
  default_backend b
backend b
  server o1 127.0.0.1:$OPORT
HAP
}

# name -> port, pid (of the process that serves: nginx's worker)
declare -A PORT PID
start_meridian() { # name limit
	local p; p=$(free_port)
	meridian_conf "$p" "$2" "$TMP/$1.db" >"$TMP/$1.yaml"
	"$BIN" edge -c "$TMP/$1.yaml" --log-level warn &
	PID[$1]=$!; PIDS+=($!); PORT[$1]=$p
}
start_nginx() { # name limit
	local p; p=$(free_port)
	nginx_conf "$p" "$2" "$1" >"$TMP/$1.conf"
	nginx -c "$TMP/$1.conf" &
	local m=$!; PIDS+=($m); PORT[$1]=$p
	wait_port "$p"
	PID[$1]=$(pgrep -P "$m" | head -1)
}
start_haproxy() { # name limit
	local p; p=$(free_port)
	haproxy_conf "$p" "$2" >"$TMP/$1.cfg"
	haproxy -f "$TMP/$1.cfg" -db &
	PID[$1]=$!; PIDS+=($!); PORT[$1]=$p
}

start_meridian m-none 0
start_meridian m-under "$UNDER"
start_meridian m-over "$OVER"
start_nginx n-under "$UNDER"
start_nginx n-over "$OVER"
start_haproxy h-under "$UNDER"
start_haproxy h-over "$OVER"
TARGETS="m-none m-under n-under h-under m-over n-over h-over"
for t in $TARGETS; do wait_port "${PORT[$t]}"; done

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

run_wrk() { # name -> "name rps p99 cpu_us_per_req non2xx"
	local out t0 t1 rps p99 n non cpu
	t0=$(cpu_ticks "${PID[$1]}")
	out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -H "Host: bench.local" "http://127.0.0.1:${PORT[$1]}/" 2>&1)
	t1=$(cpu_ticks "${PID[$1]}")
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	p99=$(awk '$1=="99%" {print $2}' <<<"$out")
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	non=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
	cpu=$(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$TICK" 'BEGIN { printf "%.2f", (b-a)/hz*1e6/n }')
	printf '  %-8s %10s req/s   p99 %-9s cpu %6s us/req   non-2xx %s of %s\n' "$1" "$rps" "$p99" "$cpu" "${non:-0}" "$n"
	echo "$1 $rps $p99 $cpu" >>"$TMP/runs"
}

echo "== wrk -t1 -c$CONNS -d${DUR}s, keep-alive, GET /, one worker each, $ROUNDS rounds interleaved =="
echo "   under: $UNDER/s per client (nothing refused); over: $OVER/s per client (429s)"
for t in $TARGETS; do wrk -t1 -c"$CONNS" -d1s -H "Host: bench.local" "http://127.0.0.1:${PORT[$t]}/" >/dev/null 2>&1; done
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r"
	for t in $TARGETS; do run_wrk "$t"; done
done

med() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$TMP/runs" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "== medians over $ROUNDS rounds =="
for t in $TARGETS; do
	printf '  %-8s %10.0f req/s   cpu %s us/req\n' "$t" "$(med "$t" 2)" "$(med "$t" 4)"
done
echo
echo "== ratios (medians) =="
for k in under over; do
	awk -v k="$k" -v m="$(med m-$k 2)" -v n="$(med n-$k 2)" -v h="$(med h-$k 2)" \
		-v mc="$(med m-$k 4)" -v nc="$(med n-$k 4)" -v hc="$(med h-$k 4)" 'BEGIN {
		printf "  %-6s req/s meridian/nginx %.2fx  meridian/haproxy %.2fx   cpu per request nginx/meridian %.2fx  haproxy/meridian %.2fx\n",
			k, m/n, m/h, nc/mc, hc/mc }'
done
awk -v a="$(med m-none 4)" -v b="$(med m-under 4)" 'BEGIN {
	printf "  meridian cpu per request with a rate limit counting every request: %+.2f us (%.2f -> %.2f)\n", b-a, a, b }'

[ "${CG:-0}" = 1 ] || exit 0
command -v valgrind >/dev/null || { echo "ratelimit.sh: valgrind missing" >&2; exit 2; }
echo
echo "== instructions per request (callgrind, wrk -t1 -c1 -d${CG_DUR:-3}s against a worker under valgrind) =="
for l in none under over; do
	case $l in none) lim=0 ;; under) lim=$UNDER ;; over) lim=$OVER ;; esac
	p=$(free_port)
	meridian_conf "$p" "$lim" "$TMP/cg-$l.db" >"$TMP/cg-$l.yaml"
	# valgrind serialises threads and does not release its lock inside a
	# waiting io_uring_enter: io_uring is refused, as in a seccomp'd
	# container, so the edge runs on epoll alone.
	/usr/bin/python3 tests/integration/no_io_uring.py "$(command -v valgrind)" \
		--tool=callgrind --callgrind-out-file="$TMP/cg-$l.out" \
		"$BIN" edge -c "$TMP/cg-$l.yaml" --log-level warn >"$TMP/cg-$l.log" 2>&1 &
	vp=$!; PIDS+=($vp)
	wait_port "$p"
	wrk -t1 -c1 -d1s -H "Host: bench.local" "http://127.0.0.1:$p/" >/dev/null 2>&1
	callgrind_control -z "$vp" >/dev/null 2>&1
	out=$(wrk -t1 -c1 -d"${CG_DUR:-3}s" -H "Host: bench.local" "http://127.0.0.1:$p/" 2>&1)
	callgrind_control -d "$vp" >/dev/null 2>&1
	sleep 0.5
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	f=$(ls -t "$TMP/cg-$l.out".* | head -1)
	ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
	awk -v l="$l" -v ir="${ir:-0}" -v n="$n" 'BEGIN { printf "  %-6s %8.0f instructions per request (%d requests)\n", l, ir / n, n }'
	kill "$vp" 2>/dev/null || true
	wait "$vp" 2>/dev/null || true
done
