#!/usr/bin/env bash
# Managed WAF benchmark: Meridian's waf.managed (ModSecurity v3 + OWASP CRS)
# against nginx with the ModSecurity-nginx module, one worker each, the same
# origin, the SAME ModSecurity preamble and the same CRS rules (Debian's
# modsecurity-crs), wrk with 50 keep-alive connections.
#   - get:    a clean GET with a query string (200)
#   - post:   a clean ~200-byte application/x-www-form-urlencoded POST (200)
#   - attack: GET /?id=1' OR '1'='1 (url-encoded), which both must refuse (403)
# and, for reference, both proxies with the WAF off on "get", so the WAF's
# cost is visible. Each request is checked once with curl before timing
# (clean -> 200, attack -> 403 with the WAF, 200 without); a mismatch stops
# the run. Resident memory of each proxy is printed after start and after
# the load (the CRS is big).
# Everything listens on 127.0.0.1; every process is stopped at exit.
# usage: bench/waf.sh [DURATION_SECONDS]   (default 5; ROUNDS=3 interleaved
# rounds, medians; PARANOIA=1..4 and THRESHOLD set the CRS paranoia level
# and inbound anomaly threshold of both)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh bench
DUR=${1:-5}
ROUNDS=${ROUNDS:-3}
CONNS=50
PARANOIA=${PARANOIA:-1}
THRESHOLD=${THRESHOLD:-5}
BODY_LIMIT=16384
CRS=/usr/share/modsecurity-crs
BIN=${MERIDIAN_BIN:-$PWD/build/meridian}
TMP=$(mktemp -d /tmp/meridian-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
die() {
	echo "waf.sh: $*" >&2
	exit 1
}

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
[ -d "$CRS/rules" ] || die "no CRS rules in $CRS/rules"
MODSEC_SO=/usr/lib/nginx/modules/ngx_http_modsecurity_module.so
[ -f "$MODSEC_SO" ] || die "no $MODSEC_SO (libnginx-mod-http-modsecurity)"

OPORT=$(free_port)
"$BIN" origin --listen 127.0.0.1:"$OPORT" --name o1 --cloud bench --threads 1 >/dev/null &
OPID=$!; PIDS+=("$OPID")
wait_port "$OPORT"

# The requests. The clean ones must score 0 in the CRS at paranoia 1.
GET_PATH='/search?q=blue+shoes&page=2&sort=price&lang=en'
POST_PATH='/contact'
POST_BODY='name=Jane+Doe&email=jane.doe%40example.com&subject=Delivery+question&message=Hello%2C+could+you+tell+me+when+the+parcel+will+arrive%3F+Many+thanks+for+your+help.&newsletter=yes&lang=en-GB&ref=home'
ATTACK_PATH='/?id=1%27%20OR%20%271%27%3D%271'
cat >"$TMP/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "$POST_BODY"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA

# What Meridian writes before including the CRS (waf_setup_text() in
# src/waf/waf_rules.c, from the keys of waf.managed); nginx gets the same
# text, then the same files in the same (name) order.
cat >"$TMP/modsec.conf" <<MODSEC
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit $BODY_LIMIT
SecRequestBodyNoFilesLimit $BODY_LIMIT
SecRequestBodyLimitAction ProcessPartial
SecResponseBodyAccess Off
SecAuditEngine Off
SecDefaultAction "phase:1,log,auditlog,pass"
SecDefaultAction "phase:2,log,auditlog,pass"
SecCollectionTimeout 600
SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=$PARANOIA"
SecAction "id:900110,phase:1,nolog,pass,t:none,setvar:tx.inbound_anomaly_score_threshold=$THRESHOLD,setvar:tx.outbound_anomaly_score_threshold=4"
SecAction "id:900990,phase:1,nolog,pass,t:none,setvar:tx.crs_setup_version=334"
Include $CRS/rules/*.conf
MODSEC

meridian_conf() { # port waf(0|1) store
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
	if [ "$2" = 1 ]; then
		cat <<YAML
waf:
  managed:
    enabled: true
    mode: block
    paranoia_level: $PARANOIA
    anomaly_threshold: $THRESHOLD
    crs: $CRS
    body_limit: $BODY_LIMIT
YAML
	fi
}

nginx_conf() { # port waf(0|1) tag
	[ "$2" = 1 ] && echo "load_module $MODSEC_SO;"
	cat <<NGINX
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid $TMP/nginx-$3.pid;
error_log $TMP/nginx-$3-error.log warn;
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
    listen 127.0.0.1:$1;
NGINX
	[ "$2" = 1 ] && printf '    modsecurity on;\n    modsecurity_rules_file %s;\n' "$TMP/modsec.conf"
	cat <<NGINX
    location / {
      proxy_pass http://o;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
NGINX
}

# name -> port, pid (of the process that serves: nginx's worker)
declare -A PORT PID RSS0
start_meridian() { # name waf
	local p; p=$(free_port)
	meridian_conf "$p" "$2" "$TMP/$1.db" >"$TMP/$1.yaml"
	"$BIN" check -c "$TMP/$1.yaml" >"$TMP/$1.check" 2>&1 ||
		{ cat "$TMP/$1.check" >&2; die "meridian does not accept $1's config (waf.managed)"; }
	"$BIN" edge -c "$TMP/$1.yaml" --log-level warn 2>"$TMP/$1.log" &
	PID[$1]=$!; PIDS+=($!); PORT[$1]=$p
}
start_nginx() { # name waf
	local p; p=$(free_port)
	nginx_conf "$p" "$2" "$1" >"$TMP/$1.conf"
	nginx -c "$TMP/$1.conf" 2>"$TMP/$1.log" &
	local m=$!; PIDS+=("$m"); PORT[$1]=$p
	wait_port "$p" || { cat "$TMP/$1.log" "$TMP/nginx-$1-error.log" >&2 2>/dev/null; die "nginx $1 did not start"; }
	local w=
	for _ in $(seq 1 100); do
		w=$(pgrep -P "$m" | head -1) && [ -n "$w" ] && break
		sleep 0.1
	done
	[ -n "$w" ] || die "nginx $1: no worker"
	PID[$1]=$w
}

# The CRS takes a moment to load: start everything, then wait.
ALL="m-waf n-waf m-off n-off"
RUNS="m-waf:get n-waf:get m-waf:post n-waf:post m-waf:attack n-waf:attack m-off:get n-off:get"
# NGINX_ONLY=1: the nginx half alone (no ratios), e.g. with a build that has
# no managed WAF.
if [ "${NGINX_ONLY:-0}" = 1 ]; then
	ALL="n-waf n-off"
	RUNS="n-waf:get n-waf:post n-waf:attack n-off:get"
else
	start_meridian m-waf 1
	start_meridian m-off 0
fi
start_nginx n-waf 1
start_nginx n-off 0
for t in $ALL; do
	wait_port "${PORT[$t]}" || { cat "$TMP/$t.log" >&2; die "$t did not start"; }
done

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
for t in $ALL; do RSS0[$t]=$(rss_kib "${PID[$t]}"); done

# One curl per request and proxy before timing: a proxy that does not block
# the attack, or blocks a clean request, stops the run.
status() { # name get|post|attack
	local u="http://127.0.0.1:${PORT[$1]}"
	case $2 in
	get) curl -s -o /dev/null -w '%{http_code}' -H 'Host: bench.local' "$u$GET_PATH" ;;
	post) curl -s -o /dev/null -w '%{http_code}' -H 'Host: bench.local' \
		-H 'Content-Type: application/x-www-form-urlencoded' --data-raw "$POST_BODY" "$u$POST_PATH" ;;
	attack) curl -s -o /dev/null -w '%{http_code}' -H 'Host: bench.local' "$u$ATTACK_PATH" ;;
	esac
}
echo "== checks (curl, one request each) =="
bad=0
for t in $ALL; do
	for k in get post attack; do
		want=200
		[ "$k" = attack ] && [ "${t#*-}" = waf ] && want=403
		got=$(status "$t" "$k" || true)
		printf '  %-6s %-7s %s (want %s)\n' "$t" "$k" "$got" "$want"
		[ "$got" = "$want" ] || bad=1
	done
done
[ "$bad" = 0 ] || die "a proxy answered a check wrongly (above): a WAF that does not block the attack or blocks a clean request"
echo "  (post body: ${#POST_BODY} bytes)"

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

wrk_case() { # name case duration -> wrk's output
	local u="http://127.0.0.1:${PORT[$1]}" s=()
	case $2 in
	get) u+=$GET_PATH ;;
	post) u+=$POST_PATH; s=(-s "$TMP/post.lua") ;;
	attack) u+=$ATTACK_PATH ;;
	esac
	wrk -t1 -c"$CONNS" -d"$3" --latency "${s[@]}" -H "Host: bench.local" "$u" 2>&1
}

WRONG=0
run_wrk() { # name case -> "name-case rps p50 p99 cpu_us_per_req"
	local out t0 t1 rps p50 p99 n non cpu
	t0=$(cpu_ticks "${PID[$1]}")
	out=$(wrk_case "$1" "$2" "${DUR}s")
	t1=$(cpu_ticks "${PID[$1]}")
	rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
	p50=$(awk '$1=="50%" {print $2}' <<<"$out")
	p99=$(awk '$1=="99%" {print $2}' <<<"$out")
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	non=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
	non=${non:-0}
	cpu=$(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$TICK" 'BEGIN { printf "%.2f", (b-a)/hz*1e6/n }')
	local note=
	# Every attack must be refused, no clean request may be.
	if [ "$2" = attack ]; then
		[ "$non" = "$n" ] || { note="  <- only $non of $n refused"; WRONG=1; }
	else
		[ "$non" = 0 ] || { note="  <- $non of $n not 2xx"; WRONG=1; }
	fi
	printf '  %-6s %-6s %10s req/s   p50 %-9s p99 %-9s cpu %7s us/req   non-2xx %s of %s%s\n' \
		"$1" "$2" "$rps" "$p50" "$p99" "$cpu" "$non" "$n" "$note"
	echo "$1-$2 $rps $p50 $p99 $cpu" >>"$TMP/runs"
}

echo
echo "== wrk -t1 -c$CONNS -d${DUR}s, keep-alive, one worker each, CRS paranoia $PARANOIA, threshold $THRESHOLD, $ROUNDS rounds interleaved =="
# Warm-up: upstream connections, and the first pass over the rules.
for r in $RUNS; do wrk_case "${r%%:*}" "${r#*:}" 1s >/dev/null; done
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r"
	for x in $RUNS; do run_wrk "${x%%:*}" "${x#*:}"; done
done

to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$1"; }
med() { # key column (latencies converted to ms)
	awk -v n="$1" -v c="$2" '$1==n {print $c}' "$TMP/runs" | while read -r v; do
		if [ "$2" = 3 ] || [ "$2" = 4 ]; then to_ms "$v"; else echo "$v"; fi
	done | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
echo
echo "== medians over $ROUNDS rounds =="
for x in $RUNS; do
	k="${x%%:*}-${x#*:}"
	printf '  %-13s %10.0f req/s   p50 %7.3f ms   p99 %7.3f ms   cpu %7s us/req\n' \
		"$k" "$(med "$k" 2)" "$(med "$k" 3)" "$(med "$k" 4)" "$(med "$k" 5)"
done

if [ "${NGINX_ONLY:-0}" != 1 ]; then
echo
echo "== ratios meridian/nginx (medians; req/s: higher is better for meridian, latency and cpu: lower) =="
for c in waf-get waf-post waf-attack off-get; do
	m="m-$c"; n="n-$c"
	awk -v c="$c" -v mr="$(med "$m" 2)" -v nr="$(med "$n" 2)" -v m50="$(med "$m" 3)" -v n50="$(med "$n" 3)" \
		-v m99="$(med "$m" 4)" -v n99="$(med "$n" 4)" -v mc="$(med "$m" 5)" -v nc="$(med "$n" 5)" 'BEGIN {
		printf "  %-11s req/s %.2fx   p50 %.2fx   p99 %.2fx   cpu/req %.2fx\n", c, mr/nr, m50/n50, m99/n99, mc/nc }'
done
echo
echo "== what the WAF costs a clean GET (waf on vs off, medians) =="
for p in m n; do
	awk -v p="$([ $p = m ] && echo meridian || echo nginx)" -v on="$(med $p-waf-get 2)" -v off="$(med $p-off-get 2)" \
		-v con="$(med $p-waf-get 5)" -v coff="$(med $p-off-get 5)" 'BEGIN {
		printf "  %-8s %.1f%% of the req/s without it; cpu %+.0f us/req (%.2f -> %.2f)\n", p, 100*on/off, con-coff, coff, con }'
done

fi
echo
echo "== resident memory (KiB; nginx: its worker) =="
printf '  %-6s %12s %12s\n' proxy after-start after-load
for t in $ALL; do
	printf '  %-6s %12s %12s\n' "$t" "${RSS0[$t]}" "$(rss_kib "${PID[$t]}")"
done
# nginx parses the rules in its master, which the worker shares pages with.
printf '  (nginx n-waf master, not counted above: %s KiB)\n' "$(rss_kib "$(ps -o ppid= -p "${PID[n-waf]}" | tr -d ' ')")"
[ "${NGINX_ONLY:-0}" = 1 ] ||
	awk -v m="$(rss_kib "${PID[m-waf]}")" -v n="$(rss_kib "${PID[n-waf]}")" -v mo="$(rss_kib "${PID[m-off]}")" -v no="$(rss_kib "${PID[n-off]}")" 'BEGIN {
	printf "  with the WAF: meridian/nginx %.2fx; the CRS adds %d KiB to meridian, %d KiB to nginx\n", m/n, m-mo, n-no }'

for t in $ALL; do kill -0 "${PID[$t]}" 2>/dev/null || die "$t died during the run"; done
[ "$WRONG" = 0 ] || die "some timed runs got wrong statuses (marked above)"
