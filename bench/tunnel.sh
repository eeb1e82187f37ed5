#!/usr/bin/env bash
# Tunnel benchmark: what reaching an origin through a tunnel costs, against
# reaching the same origin directly, both through one Meridian edge (one
# worker) in one run:
#   - "direct": the edge proxies to the origin's address;
#   - "tunnel": the edge proxies to `tunnel:bench`, whose connector
#     (`meridian tunnel`, connections_per_edge as CONNS_PER_EDGE, default 2)
#     dialled the edge's tunnel listener and forwards to the origin.
# No tunnel peer is packaged in Debian (cloudflared, frp and the like are
# not), so nginx (one worker, upstream keep-alive) proxying to the origin
# directly is printed as the reference for a plain proxy hop.
# wrk: 50 keep-alive connections, GET / (small answers) and GET /bytes/1MiB
# (throughput). CPU per request counts the edge and, for "tunnel", the
# connector too. Everything listens on 127.0.0.1; everything is stopped at
# exit.
# usage: bench/tunnel.sh [DURATION_SECONDS]   (default 5; ROUNDS=3
# interleaved rounds, medians)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh bench
DUR=${1:-5}
ROUNDS=${ROUNDS:-3}
CONNS=50
CONNS_PER_EDGE=${CONNS_PER_EDGE:-2}
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
PIDS+=($!)
wait_port "$OPORT"

openssl req -x509 -nodes -days 2 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	-keyout "$TMP/edge.key" -out "$TMP/edge.pem" -subj /CN=edge.bench \
	-addext subjectAltName=DNS:edge.bench >/dev/null 2>&1
TOKEN=$(openssl rand -hex 24)
EPORT=$(free_port)
TPORT=$(free_port)
cat >"$TMP/edge.yaml" <<YAML
edge:
  name: bench
  workers: 1
  store: $TMP/edge.db
  listen: { http: ["127.0.0.1:$EPORT"], tunnel: ["127.0.0.1:$TPORT"] }
  tls: { certificates: [ { cert: "$TMP/edge.pem", key: "$TMP/edge.key" } ] }
  limits: { max_connections: 100000, upstream_idle_per_origin: 256 }
tunnels:
  - { id: bench, token: "$TOKEN" }
pools:
  - id: direct
    origins: [ { name: o1, address: 127.0.0.1, port: $OPORT } ]
  - id: tunnel
    origins: [ { name: t1, address: "tunnel:bench" } ]
load_balancers:
  - { name: direct.local, default_pools: [direct] }
  - { name: tunnel.local, default_pools: [tunnel] }
YAML
"$BIN" edge -c "$TMP/edge.yaml" --log-level warn &
EPID=$!; PIDS+=($EPID)
wait_port "$EPORT"
cat >"$TMP/conn.yaml" <<YAML
tunnel: bench
token: "$TOKEN"
edges: ["127.0.0.1:$TPORT"]
connections_per_edge: $CONNS_PER_EDGE
server_name: edge.bench
ca: "$TMP/edge.pem"
ingress:
  - { hostname: tunnel.local, service: "http://127.0.0.1:$OPORT" }
  - { service: "http_status:404" }
YAML
"$BIN" tunnel -c "$TMP/conn.yaml" --log-level warn &
CPID=$!; PIDS+=($CPID)
for _ in $(seq 1 100); do
	code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: tunnel.local' "http://127.0.0.1:$EPORT/" || true)
	[ "$code" = 200 ] && break
	sleep 0.1
done
[ "$code" = 200 ] || { echo "the tunnel did not come up" >&2; exit 1; }

NPORT=$(free_port)
cat >"$TMP/nginx.conf" <<NGINX
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log error;
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
      proxy_buffering off;
      proxy_set_header Connection "";
    }
  }
}
NGINX
nginx -c "$TMP/nginx.conf" &
NMASTER=$!; PIDS+=($NMASTER)
wait_port "$NPORT"
NPID=$(pgrep -P "$NMASTER" | head -1)

cpu_ticks() { local s=0 p; for p in "$@"; do s=$((s + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$s"; }
TICK=$(getconf CLK_TCK)

# target -> "host port pids"
declare -A HOSTOF PORTOF PIDSOF
HOSTOF[direct]=direct.local; PORTOF[direct]=$EPORT; PIDSOF[direct]="$EPID"
HOSTOF[tunnel]=tunnel.local; PORTOF[tunnel]=$EPORT; PIDSOF[tunnel]="$EPID $CPID"
HOSTOF[nginx]=direct.local; PORTOF[nginx]=$NPORT; PIDSOF[nginx]="$NPID"

run_wrk() { # target path label
	local out t0 t1 rps p99 n cpu tr
	# shellcheck disable=SC2086
	t0=$(cpu_ticks ${PIDSOF[$1]})
	out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -H "Host: ${HOSTOF[$1]}" "http://127.0.0.1:${PORTOF[$1]}$2" 2>&1)
	# shellcheck disable=SC2086
	t1=$(cpu_ticks ${PIDSOF[$1]})
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	p99=$(awk '$1=="99%" {print $2}' <<<"$out")
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	tr=$(awk '/Transfer\/sec/ {print $2}' <<<"$out")
	cpu=$(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$TICK" 'BEGIN { printf "%.2f", (b-a)/hz*1e6/n }')
	printf '  %-7s %-6s %10s req/s  %9s/s  p99 %-9s cpu %7s us/req\n' "$1" "$3" "$rps" "$tr" "$p99" "$cpu"
	echo "$1-$3 $rps $p99 $cpu" >>"$TMP/runs"
}

echo "== wrk -t1 -c$CONNS -d${DUR}s, keep-alive, one edge worker, tunnel with $CONNS_PER_EDGE connections, $ROUNDS rounds interleaved =="
for t in direct tunnel nginx; do wrk -t1 -c"$CONNS" -d1s -H "Host: ${HOSTOF[$t]}" "http://127.0.0.1:${PORTOF[$t]}/" >/dev/null 2>&1; done
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r"
	for t in direct tunnel nginx; do run_wrk "$t" / small; done
	for t in direct tunnel nginx; do run_wrk "$t" /bytes/1048576 1MiB; done
done

med() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$TMP/runs" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "== medians over $ROUNDS rounds =="
for k in small 1MiB; do
	for t in direct tunnel nginx; do
		printf '  %-7s %-6s %10.0f req/s   cpu %s us/req\n' "$t" "$k" "$(med "$t-$k" 2)" "$(med "$t-$k" 4)"
	done
done
echo
echo "== the tunnel against direct (medians) =="
for k in small 1MiB; do
	awk -v k="$k" -v d="$(med direct-$k 2)" -v t="$(med tunnel-$k 2)" -v dc="$(med direct-$k 4)" -v tc="$(med tunnel-$k 4)" 'BEGIN {
		printf "  %-6s req/s tunnel/direct %.2fx   cpu per request (edge + connector) tunnel/direct %.2fx\n", k, t/d, tc/dc }'
done
