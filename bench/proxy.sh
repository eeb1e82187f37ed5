#!/usr/bin/env bash
# HTTP/1.1 proxy benchmark: wrk against the origin directly, Meridian, nginx
# and HAProxy, each proxy with one worker, same origin, keep-alive, 50
# connections; then 10,000 idle keep-alive clients for memory.
# Everything listens on 127.0.0.1; every process is stopped at exit.
# usage: bench/proxy.sh [DURATION_SECONDS]   (default 10; ROUNDS=3 interleaved
# rounds, medians reported, plus each proxy's CPU time per request, which a
# busy machine disturbs less than requests/s)
set -euo pipefail
cd "$(dirname "$0")/.."
# The peers (wrk, nginx, HAProxy, dnsperf, gdnsd, h2load) from Debian;
# idempotent: nothing happens when they are there.
scripts/deps.sh bench
DUR=${1:-10}
ROUNDS=${ROUNDS:-3}
CONNS=50
IDLE=${IDLE:-10000}
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
	for _ in $(seq 1 100); do
		if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "port $1 did not open" >&2
	return 1
}
ulimit -n 65536 2>/dev/null || true

OPORT=$(free_port); MPORT=$(free_port); NPORT=$(free_port); HPORT=$(free_port)

# The origin: Meridian's own demo origin, one thread.
"$BIN" origin --listen 127.0.0.1:"$OPORT" --name o1 --cloud bench --threads 1 >/dev/null &
PIDS+=($!)
wait_port "$OPORT"

cat >"$TMP/meridian.yaml" <<YAML
edge:
  name: bench
  workers: 1
  listen: { http: ["127.0.0.1:$MPORT"] }
  limits: { max_connections: 100000, upstream_idle_per_origin: 256 }
pools:
  - id: p
    origins: [ { name: o1, address: 127.0.0.1, port: $OPORT } ]
load_balancers:
  - name: bench.local
    default_pools: [p]
YAML
"$BIN" edge -c "$TMP/meridian.yaml" --log-level warn &
MPID=$!; PIDS+=($MPID)

cat >"$TMP/nginx.conf" <<NGINX
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 30000; multi_accept on; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx-body;
  proxy_temp_path $TMP/nginx-proxy;
  fastcgi_temp_path $TMP/nginx-fastcgi;
  uwsgi_temp_path $TMP/nginx-uwsgi;
  scgi_temp_path $TMP/nginx-scgi;
  keepalive_requests 1000000;
  upstream o { server 127.0.0.1:$OPORT; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$NPORT;
    location / {
      proxy_pass http://o;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
NGINX
nginx -c "$TMP/nginx.conf" &
NPID=$!; PIDS+=($NPID)

cat >"$TMP/haproxy.cfg" <<HAP
global
  nbthread 1
  # maxconn follows from the fd limit (two fds per proxied connection).
  fd-hard-limit $(ulimit -n)
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option forwardfor
  http-reuse always
frontend f
  bind 127.0.0.1:$HPORT
  default_backend b
backend b
  server o1 127.0.0.1:$OPORT
HAP
haproxy -f "$TMP/haproxy.cfg" -db &
HPID=$!; PIDS+=($HPID)

wait_port "$MPORT"; wait_port "$NPORT"; wait_port "$HPORT"

nginx_worker() { pgrep -P "$NPID" | head -1; }

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

run_wrk() { # name port pid   -> appends "name rps p50 p99 cpu_us_per_req"
	local out t0 t1
	t0=$(cpu_ticks "$3")
	out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -H "Host: bench.local" "http://127.0.0.1:$2/" 2>&1)
	t1=$(cpu_ticks "$3")
	local rps p50 p99 n errs cpu
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	p50=$(awk '$1=="50%" {print $2}' <<<"$out")
	p99=$(awk '$1=="99%" {print $2}' <<<"$out")
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
	cpu=$(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$TICK" 'BEGIN { printf "%.2f", (b-a)/hz*1e6/n }')
	printf '  %-10s %10s req/s   p50 %-9s p99 %-9s cpu %6s us/req %s\n' "$1" "$rps" "$p50" "$p99" "$cpu" "$errs"
	echo "$1 $rps $p50 $p99 $cpu" >>"$TMP/runs"
}

# nginx runs a master and a worker: measure the worker.
NWPID=$(nginx_worker)
OPID=${PIDS[0]}
echo "== throughput: wrk -t1 -c$CONNS -d${DUR}s, keep-alive, GET / (one worker per proxy), $ROUNDS rounds interleaved =="
# Warm-up so every proxy has its upstream connections.
for p in $MPORT $NPORT $HPORT; do wrk -t1 -c"$CONNS" -d1s -H "Host: bench.local" "http://127.0.0.1:$p/" >/dev/null 2>&1; done
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r"
	run_wrk direct "$OPORT" "$OPID"
	run_wrk meridian "$MPORT" "$MPID"
	run_wrk nginx "$NPORT" "$NWPID"
	run_wrk haproxy "$HPORT" "$HPID"
done

to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$1"; }
# Median of column c over the rounds of one target.
median() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$TMP/runs" | while read -r v; do to_ms "$v"; done | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "== medians over $ROUNDS rounds =="
for t in direct meridian nginx haproxy; do
	printf '  %-10s %10.0f req/s   p50 %.3f ms   p99 %.3f ms   cpu %s us/req\n' "$t" \
		"$(awk -v n="$t" '$1==n {print $2}' "$TMP/runs" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" \
		"$(median "$t" 3)" "$(median "$t" 4)" \
		"$(awk -v n="$t" '$1==n {print $5}' "$TMP/runs" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
done
rps() { awk -v n="$1" '$1==n {print $2}' "$TMP/runs" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cpu() { awk -v n="$1" '$1==n {print $5}' "$TMP/runs" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m=$(rps meridian); n=$(rps nginx); h=$(rps haproxy); d=$(rps direct)
echo
echo "== ratios (medians) =="
awk -v m="$m" -v n="$n" -v h="$h" -v d="$d" 'BEGIN {
  printf "meridian/nginx   %.2fx req/s (target >= 1.2)\n", m/n;
  printf "meridian/haproxy %.2fx req/s (target >= 1.3)\n", m/h;
  printf "meridian/direct  %.2f, nginx/direct %.2f, haproxy/direct %.2f\n", m/d, n/d, h/d }'
awk -v m="$(cpu meridian)" -v n="$(cpu nginx)" -v h="$(cpu haproxy)" 'BEGIN {
  printf "proxy CPU per request: nginx/meridian %.2fx, haproxy/meridian %.2fx\n", n/m, h/m }'
mp99=$(median meridian 4); np99=$(median nginx 4)
awk -v a="$mp99" -v b="$np99" 'BEGIN { printf "p99 meridian %.3f ms vs nginx %.3f ms (target: no worse)\n", a, b }'
echo
echo "== memory: $IDLE idle keep-alive client connections =="
printf '%-10s %s\n' proxy "rss_before_kib rss_after_kib kib_per_conn ok"
printf '%-10s %s\n' meridian "$(/usr/bin/python3 bench/idle_conns.py 127.0.0.1 "$MPORT" bench.local "$MPID" "$IDLE")"
printf '%-10s %s\n' nginx "$(/usr/bin/python3 bench/idle_conns.py 127.0.0.1 "$NPORT" bench.local "$(nginx_worker)" "$IDLE")"
printf '%-10s %s\n' haproxy "$(/usr/bin/python3 bench/idle_conns.py 127.0.0.1 "$HPORT" bench.local "$HPID" "$IDLE")"
echo "(target: meridian <= 8 KiB per idle client connection)"
