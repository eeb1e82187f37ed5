#!/usr/bin/env bash
# TLS benchmark (issue 6): Meridian, nginx and HAProxy terminating TLS with
# the same ECDSA P-256 certificate, one worker each, in front of the same
# plain origin, all on 127.0.0.1, in ONE run with interleaved rounds:
#   - HTTP/1.1 over TLS: wrk -t1 -c50, keep-alive (req/s, proxy CPU/req)
#   - HTTP/2: h2load -c4 -m32 (many streams on few connections), for the
#     proxies that negotiate h2 (Meridian reports n/a until it does)
#   - new TLS handshakes/s: openssl s_time -new (full) and -reuse (resumed)
# usage: bench/tls.sh [DURATION_SECONDS]   (default 8; ROUNDS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-8}
ROUNDS=${ROUNDS:-3}
CONNS=50
BIN=${MERIDIAN_BIN:-$PWD/build/meridian}
TMP=$(mktemp -d /tmp/meridian-tlsbench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
for t in wrk h2load openssl nginx haproxy; do
	command -v "$t" >/dev/null || { echo "tls.sh: $t missing (scripts/deps.sh bench)" >&2; exit 2; }
done

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

# One certificate for all three.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 2 \
	-subj "/CN=bench.local" -addext "subjectAltName=DNS:bench.local" 2>/dev/null
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/haproxy.pem"

OPORT=$(free_port); MPORT=$(free_port); NPORT=$(free_port); HPORT=$(free_port)
"$BIN" origin --listen 127.0.0.1:"$OPORT" --name o1 --cloud bench --threads 1 >/dev/null &
PIDS+=($!)
wait_port "$OPORT"

cat >"$TMP/meridian.yaml" <<YAML
edge:
  name: bench
  workers: 1
  store: $TMP/store.db
  listen: { https: ["127.0.0.1:$MPORT"] }
  limits: { max_connections: 100000, upstream_idle_per_origin: 256 }
  tls: { certificates: [ { cert: $TMP/cert.pem, key: $TMP/key.pem } ] }
pools: [ { id: p, origins: [ { name: o1, address: 127.0.0.1, port: $OPORT } ] } ]
load_balancers: [ { name: bench.local, default_pools: [p] } ]
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
    listen 127.0.0.1:$NPORT ssl http2;
    ssl_certificate $TMP/cert.pem;
    ssl_certificate_key $TMP/key.pem;
    ssl_session_tickets on;
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
  fd-hard-limit $(ulimit -n)
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option forwardfor
  http-reuse always
frontend f
  bind 127.0.0.1:$HPORT ssl crt $TMP/haproxy.pem alpn h2,http/1.1
  default_backend b
backend b
  server o1 127.0.0.1:$OPORT
HAP
haproxy -f "$TMP/haproxy.cfg" -db &
HPID=$!; PIDS+=($HPID)

wait_port "$MPORT"; wait_port "$NPORT"; wait_port "$HPORT"
NWPID=$(pgrep -P "$NPID" | head -1)

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

h1() { # name port pid
	local t0 t1 out rps n cpu
	t0=$(cpu_ticks "$3")
	out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" -H "Host: bench.local" "https://127.0.0.1:$2/" 2>&1)
	t1=$(cpu_ticks "$3")
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	cpu=$(awk -v a="$t0" -v b="$t1" -v n="${n:-0}" -v hz="$TICK" 'BEGIN { if (n>0) printf "%.2f", (b-a)/hz*1e6/n; else print "n/a" }')
	printf '  %-9s h1/TLS %10s req/s  cpu %6s us/req\n' "$1" "${rps:-0}" "$cpu"
	echo "$1 h1 ${rps:-0} $cpu" >>"$TMP/runs"
}

h2() { # name port
	local out rps
	out=$(timeout $((DUR + 20)) h2load -c4 -m32 -D "$DUR" -H ":authority: bench.local" "https://127.0.0.1:$2/" 2>&1 || true)
	if grep -q "Application protocol: h2" <<<"$out"; then
		rps=$(awk '/finished in/ {for (i=1;i<=NF;i++) if ($i ~ /req\/s/) {print $(i-1); exit}}' <<<"$out")
	else
		rps=0 # h2 not negotiated
	fi
	printf '  %-9s h2     %10s req/s\n' "$1" "${rps:-0}"
	echo "$1 h2 ${rps:-0} -" >>"$TMP/runs"
}

hs() { # name port new|reuse
	local out n
	out=$(openssl s_time -connect "127.0.0.1:$2" -"$3" -time "$DUR" 2>&1 || true)
	n=$(awk '/connections in [0-9.]+s;/ {for (i=1;i<=NF;i++) if ($i ~ /connections\/user/) {print $(i-1); exit}}' <<<"$out" | tail -1)
	[ -n "$n" ] || n=$(awk '/connections in/ {print $1; exit}' <<<"$out")
	local real
	real=$(awk '/connections in [0-9.]+ real seconds/ {print $1/$4; exit}' <<<"$out")
	printf '  %-9s %-6s %10s handshakes/s (wall)\n' "$1" "$3" "${real:-0}"
	echo "$1 $3 ${real:-0} -" >>"$TMP/runs"
}

echo "== TLS: one worker per proxy, ECDSA P-256, $ROUNDS rounds interleaved, ${DUR}s each =="
for t in meridian:$MPORT:$MPID nginx:$NPORT:$NWPID haproxy:$HPORT:$HPID; do
	IFS=: read -r name port pid <<<"$t"
	wrk -t1 -c"$CONNS" -d2s -H "Host: bench.local" "https://127.0.0.1:$port/" >/dev/null 2>&1 || true
done
for r in $(seq 1 "$ROUNDS"); do
	echo "-- round $r"
	for t in meridian:$MPORT:$MPID nginx:$NPORT:$NWPID haproxy:$HPORT:$HPID; do
		IFS=: read -r name port pid <<<"$t"
		h1 "$name" "$port" "$pid"
		h2 "$name" "$port"
		hs "$name" "$port" new
		hs "$name" "$port" reuse
	done
done

median() { awk -v n="$1" -v k="$2" '$1==n && $2==k {print $3}' "$TMP/runs" | sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }
echo
echo "== medians =="
printf '  %-9s %12s %12s %12s %12s\n' target "h1/TLS req/s" "h2 req/s" "full hs/s" "resumed hs/s"
for t in meridian nginx haproxy; do
	printf '  %-9s %12.0f %12.0f %12.0f %12.0f\n' "$t" "$(median $t h1)" "$(median $t h2)" "$(median $t new)" "$(median $t reuse)"
done
echo
echo "== ratios (targets: >= 1.1x nginx and >= 1.2x HAProxy on each) =="
for k in h1 h2 new reuse; do
	m=$(median meridian $k); n=$(median nginx $k); h=$(median haproxy $k)
	awk -v k="$k" -v m="$m" -v n="$n" -v h="$h" 'BEGIN {
		printf "  %-6s meridian/nginx %s   meridian/haproxy %s\n", k,
			(n > 0 ? sprintf("%.2fx", m/n) : "n/a"), (h > 0 ? sprintf("%.2fx", m/h) : "n/a") }'
done
