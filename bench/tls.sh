#!/usr/bin/env bash
# TLS benchmark (issue 6): Meridian, nginx and HAProxy terminating TLS with
# the same ECDSA P-256 certificate, one worker each, in front of the same
# plain origin, all on 127.0.0.1, in ONE run with interleaved rounds:
#   - HTTP/1.1 over TLS: wrk -t1 -c50, keep-alive (req/s, proxy CPU/req)
#   - HTTP/2: h2load -c4 -m32 (many streams on few connections): req/s and
#     proxy CPU/req (0 req/s for a proxy that does not negotiate h2)
#   - new TLS handshakes/s, full and resumed, TLS 1.3 and TLS 1.2: hsload
#     (below, compiled here), HS_PROCS=2 client processes, each connecting,
#     handshaking (SNI, no verification), sending close_notify and reading
#     to the server's close; the proxy's CPU per handshake is counted too
# All three servers offer TLS 1.2 and 1.3 and the groups X25519, P-256,
# P-384; each keeps its own cipher order (printed at the start: what each
# negotiates with an OpenSSL client). Not openssl s_time: its -reuse never
# reads the TLS 1.3 tickets (they come after the handshake), so against a
# TLS 1.3 server every "resumed" handshake was a full one, while nginx 1.22
# (TLS 1.2 by default) resumed; and one s_time process spends more CPU per
# handshake than the server, so it measured itself.
# HS_CALLGRIND=1 adds, after the rounds, each proxy's instructions per
# handshake under valgrind --tool=callgrind (one proxy at a time, one client
# process): a count that other programs' load on the machine leaves alone,
# where handshakes/s and CPU time move by 20 % between rounds on a busy box.
# usage: bench/tls.sh [DURATION_SECONDS]   (default 8; ROUNDS=3, HS_PROCS=2,
#        PARTS="h1 h2 hs")
set -euo pipefail
cd "$(dirname "$0")/.."
# The peers (wrk, nginx, HAProxy, dnsperf, gdnsd, h2load) from Debian;
# idempotent: nothing happens when they are there.
scripts/deps.sh bench
DUR=${1:-8}
ROUNDS=${ROUNDS:-3}
PARTS=${PARTS:-"h1 h2 hs"} # which measurements: h1 (wrk), h2 (h2load), hs (handshakes)
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
HS_PROCS=${HS_PROCS:-2}
for t in wrk h2load openssl nginx haproxy cc; do
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

# The handshake client. Reuse: a TLS 1.3 ticket is used once (as browsers
# do): the next connection offers a ticket the previous one received, else
# none (a full handshake); a TLS 1.2 session is offered again.
# hsload PORT new|reuse 1.2|1.3 SECONDS PROCS
#   -> handshakes resumed failures tickets-received seconds client-cpu-s
cat >"$TMP/hsload.c" <<'HSLOAD'
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static SSL_SESSION *fresh;
static long tickets;
static int new_sess(SSL *ssl, SSL_SESSION *s)
{
	SSL_SESSION_free(fresh);
	fresh = s;
	tickets++;
	return 1;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 6)
		return 2;
	int port = atoi(argv[1]), reuse = !strcmp(argv[2], "reuse");
	int v = !strcmp(argv[3], "1.3") ? TLS1_3_VERSION : TLS1_2_VERSION;
	double dur = atof(argv[4]), t0 = now();
	int procs = atoi(argv[5]), fds[2];
	if (pipe(fds))
		return 1;
	for (int p = 0; p < procs; p++) {
		if (fork())
			continue;
		SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
		SSL_CTX_set_min_proto_version(ctx, v);
		SSL_CTX_set_max_proto_version(ctx, v);
		SSL_CTX_set_session_cache_mode(
		    ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, new_sess);
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_port = htons(port),
					.sin_addr.s_addr = htonl(0x7f000001)};
		SSL_SESSION *sess = NULL;
		long n = 0, hit = 0, bad = 0;
		char buf[4096];
		while (now() - t0 < dur) {
			int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
				close(fd);
				bad++;
				usleep(1000);
				continue;
			}
			SSL *ssl = SSL_new(ctx);
			SSL_set_fd(ssl, fd);
			SSL_set_tlsext_host_name(ssl, "bench.local");
			if (reuse && sess)
				SSL_set_session(ssl, sess);
			if (SSL_connect(ssl) == 1) {
				n++;
				hit += SSL_session_reused(ssl);
				SSL_shutdown(ssl);
				while (SSL_read(ssl, buf, sizeof(buf)) > 0)
					;
				if (fresh) {
					SSL_SESSION_free(sess);
					sess = fresh;
					fresh = NULL;
				} else if (v == TLS1_3_VERSION ||
					   !SSL_session_reused(ssl)) {
					SSL_SESSION_free(sess);
					sess = NULL;
				}
			} else {
				bad++;
			}
			SSL_free(ssl);
			close(fd);
		}
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		snprintf(buf, sizeof(buf), "%ld %ld %ld %ld %f\n", n, hit, bad,
			 tickets,
			 ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
			     ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
		if (write(fds[1], buf, strlen(buf)) < 0)
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	while (wait(NULL) > 0)
		;
	long n = 0, hit = 0, bad = 0, tk = 0, a, b, c, d;
	double cpu = 0, e;
	FILE *f = fdopen(fds[0], "r");
	while (fscanf(f, "%ld %ld %ld %ld %lf", &a, &b, &c, &d, &e) == 5)
		n += a, hit += b, bad += c, tk += d, cpu += e;
	printf("%ld %ld %ld %ld %.3f %.3f\n", n, hit, bad, tk, now() - t0,
	       cpu);
	return 0;
}
HSLOAD
cc -O2 -o "$TMP/hsload" "$TMP/hsload.c" -lssl -lcrypto

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
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
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
  bind 127.0.0.1:$HPORT ssl crt $TMP/haproxy.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3 curves X25519:P-256:P-384
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

h2() { # name port pid
	local t0 t1 out rps n cpu
	t0=$(cpu_ticks "$3")
	out=$(timeout $((DUR + 20)) h2load -c4 -m32 -D "$DUR" -H ":authority: bench.local" "https://127.0.0.1:$2/" 2>&1 || true)
	t1=$(cpu_ticks "$3")
	if grep -q "Application protocol: h2" <<<"$out"; then
		rps=$(awk '/finished in/ {for (i=1;i<=NF;i++) if ($i ~ /req\/s/) {print $(i-1); exit}}' <<<"$out")
		n=$(awk '/^requests:/ {for (i=1;i<=NF;i++) if ($i == "succeeded,") {print $(i-1); exit}}' <<<"$out")
	else
		rps=0 n=0 # h2 not negotiated
	fi
	cpu=$(awk -v a="$t0" -v b="$t1" -v n="${n:-0}" -v hz="$TICK" 'BEGIN { if (n>0) printf "%.2f", (b-a)/hz*1e6/n; else print "n/a" }')
	printf '  %-9s h2     %10s req/s  cpu %6s us/req\n' "$1" "${rps:-0}" "$cpu"
	echo "$1 h2 ${rps:-0} $cpu" >>"$TMP/runs"
}

hs() { # name port pid new|reuse 1.2|1.3
	local t0 t1 out n res bad tk sec ccpu line
	t0=$(cpu_ticks "$3")
	out=$("$TMP/hsload" "$2" "$4" "$5" "$DUR" "$HS_PROCS")
	t1=$(cpu_ticks "$3")
	read -r n res bad tk sec ccpu <<<"$out" # see hsload.c
	line=$(awk -v n="${n:-0}" -v res="$res" -v tk="$tk" -v sec="$sec" -v ccpu="$ccpu" \
		-v a="$t0" -v b="$t1" -v hz="$TICK" 'BEGIN {
		printf "%.1f %.1f %.0f %.1f %.0f", (sec > 0 ? n / sec : 0),
			(n > 0 ? (b - a) / hz * 1e6 / n : 0), (n ? 100 * res / n : 0),
			(n ? tk / n : 0), (n ? ccpu * 1e6 / n : 0) }')
	read -r rate cpu rpct tph cc <<<"$line"
	printf '  %-9s %-8s %7.0f handshakes/s  proxy cpu %5.0f us/hs  resumed %3s%%  tickets/hs %s  client cpu %4s us/hs%s\n' \
		"$1" "$4$5" "$rate" "$cpu" "$rpct" "$tph" "$cc" "$([ "${bad:-1}" = 0 ] || echo "  FAILURES ${bad:-?}")"
	echo "$1 $4$5 $rate $cpu" >>"$TMP/runs"
}

# What each server negotiates with an OpenSSL client, per version.
negotiated() { # name port
	local v out
	for v in 1_3 1_2; do
		out=$(openssl s_client -connect "127.0.0.1:$2" -servername bench.local \
			-tls$v -brief </dev/null 2>&1 |
			awk -F': ' '/Protocol version|Ciphersuite|Server Temp Key/ {printf "%s%s", sep, $2; sep=", "}')
		printf '  %-9s %s\n' "$1" "${out:-handshake failed}"
	done
}

echo "== TLS: one worker per proxy, ECDSA P-256, $ROUNDS rounds interleaved, ${DUR}s each, $HS_PROCS handshake clients, $(nproc) CPUs =="
echo "-- negotiated (openssl s_client -tls1_3 / -tls1_2)"
negotiated meridian "$MPORT"; negotiated nginx "$NPORT"; negotiated haproxy "$HPORT"
for t in meridian:$MPORT:$MPID nginx:$NPORT:$NWPID haproxy:$HPORT:$HPID; do
	IFS=: read -r name port pid <<<"$t"
	wrk -t1 -c"$CONNS" -d2s -H "Host: bench.local" "https://127.0.0.1:$port/" >/dev/null 2>&1 || true
done
for r in $(seq 1 "$ROUNDS"); do
	echo "-- round $r"
	for t in meridian:$MPORT:$MPID nginx:$NPORT:$NWPID haproxy:$HPORT:$HPID; do
		IFS=: read -r name port pid <<<"$t"
		case " $PARTS " in *" h1 "*) h1 "$name" "$port" "$pid" ;; esac
		case " $PARTS " in *" h2 "*) h2 "$name" "$port" "$pid" ;; esac
		case " $PARTS " in *" hs "*)
			for v in 1.3 1.2; do
				hs "$name" "$port" "$pid" new "$v"
				hs "$name" "$port" "$pid" reuse "$v"
			done ;;
		esac
	done
done

median() { # name key [field]
	awk -v n="$1" -v k="$2" -v f="${3:-3}" '$1==n && $2==k {print $f}' "$TMP/runs" | sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'
}
HSK="new1.3 reuse1.3 new1.2 reuse1.2"
echo
echo "== medians (hs/s: handshakes per second; new: full, reuse: resumed) =="
printf '  %-9s %12s %10s' target "h1/TLS req/s" "h2 req/s"
for k in $HSK; do printf ' %10s' "$k"; done
echo
for t in meridian nginx haproxy; do
	printf '  %-9s %12.0f %10.0f' "$t" "$(median $t h1)" "$(median $t h2)"
	for k in $HSK; do printf ' %10.0f' "$(median $t $k)"; done
	echo
done
echo "== proxy CPU per request / handshake, us (median) =="
for t in meridian nginx haproxy; do
	printf '  %-9s %12s %10s' "$t" "$(median $t h1 4)" "$(median $t h2 4)"
	for k in $HSK; do printf ' %10.0f' "$(median $t $k 4)"; done
	echo
done
echo
echo "== ratios (targets: >= 1.1x nginx and >= 1.2x HAProxy on each) =="
echo "   (cpu: requests or handshakes per CPU second of the proxy)"
for k in h1 h2 $HSK; do
	m=$(median meridian $k); n=$(median nginx $k); h=$(median haproxy $k)
	mc=$(median meridian $k 4); nc=$(median nginx $k 4); hc=$(median haproxy $k 4)
	awk -v k="$k" -v m="$m" -v n="$n" -v h="$h" -v mc="$mc" -v nc="$nc" -v hc="$hc" '
	function r(a, b) { return b > 0 && a > 0 ? sprintf("%.2fx", a / b) : "n/a" }
	BEGIN {
		printf "  %-9s meridian/nginx %6s   meridian/haproxy %6s", k, r(m, n), r(m, h)
		if (nc + 0 > 0)
			printf "   cpu: /nginx %6s   /haproxy %6s", r(nc, mc), r(hc, mc)
		printf "\n" }'
done

[ "${HS_CALLGRIND:-0}" = 1 ] || exit 0
for t in valgrind callgrind_control; do
	command -v "$t" >/dev/null || { echo "tls.sh: $t missing" >&2; exit 2; }
done
cg_run() { # name port command...: instructions per handshake
	local name=$1 port=$2 vp w ir out f i
	shift 2
	valgrind --tool=callgrind --callgrind-out-file="$TMP/cg-$name.out" "$@" \
		>"$TMP/cg-$name.log" 2>&1 &
	vp=$!; PIDS+=($vp)
	for i in $(seq 1 300); do
		(exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
		sleep 0.1
	done
	printf '  %-9s' "$name"
	for w in new1.3 reuse1.3 new1.2 reuse1.2; do
		"$TMP/hsload" "$port" "${w%1.?}" "${w: -3}" 1 1 >/dev/null
		sleep 0.2
		callgrind_control -z "$vp" >/dev/null 2>&1
		out=$("$TMP/hsload" "$port" "${w%1.?}" "${w: -3}" "${CG_DUR:-8}" 1)
		callgrind_control -d "$vp" >/dev/null 2>&1
		sleep 0.5
		f=$(ls -t "$TMP/cg-$name.out".* | head -1)
		ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
		ir=$(awk -v ir="${ir:-0}" -v n="${out%% *}" \
			'BEGIN { printf "%.4f", (n > 0 ? ir / n / 1e6 : 0) }')
		printf ' %10.3f' "$ir"
		echo "$name cg$w $ir -" >>"$TMP/runs"
	done
	echo
	kill "$vp" 2>/dev/null || true
	wait "$vp" 2>/dev/null || true
}
CM=$(free_port); CN=$(free_port); CH=$(free_port)
sed "s/127.0.0.1:$MPORT/127.0.0.1:$CM/; s#store: .*#store: $TMP/cg-store.db#" \
	"$TMP/meridian.yaml" >"$TMP/cg-meridian.yaml"
sed "s/127.0.0.1:$NPORT /127.0.0.1:$CN /; s#^pid .*#pid $TMP/cg-nginx.pid;#" \
	"$TMP/nginx.conf" >"$TMP/cg-nginx.conf"
sed "s/127.0.0.1:$HPORT /127.0.0.1:$CH /" "$TMP/haproxy.cfg" >"$TMP/cg-haproxy.cfg"
echo
echo "== instructions per handshake, millions (callgrind, ${CG_DUR:-8}s per kind, 1 client) =="
printf '  %-9s' target; for k in $HSK; do printf ' %10s' "$k"; done; echo
cg_run meridian "$CM" "$BIN" edge -c "$TMP/cg-meridian.yaml" --log-level warn
cg_run nginx "$CN" nginx -c "$TMP/cg-nginx.conf" -g "master_process off;"
cg_run haproxy "$CH" haproxy -f "$TMP/cg-haproxy.cfg" -db
echo "== ratios of instructions per handshake (nginx/meridian, haproxy/meridian) =="
for k in $HSK; do
	m=$(median meridian cg$k); n=$(median nginx cg$k); h=$(median haproxy cg$k)
	awk -v k="$k" -v m="$m" -v n="$n" -v h="$h" 'BEGIN {
		printf "  %-9s nginx/meridian %s   haproxy/meridian %s\n", k,
			(m > 0 ? sprintf("%.2fx", n / m) : "n/a"), (m > 0 ? sprintf("%.2fx", h / m) : "n/a") }'
done
