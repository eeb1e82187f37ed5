#!/usr/bin/env bash
# Authoritative DNS benchmark: dnsperf against Meridian and gdnsd in one
# run, one UDP thread each (Meridian edge.workers: 1, gdnsd udp_threads: 1),
# the same static zone, both on 127.0.0.1 free ports. Targets, interleaved
# over ROUNDS rounds (medians reported):
#   static     www.example.com A on gdnsd and on Meridian (plain queries)
#   static-ecs the same name on Meridian with an EDNS Client Subnet option
#              (what the load balancer queries carry; for reference)
#   lb         a DNS-only load balancer on Meridian (geo steering, located by
#              the Client Subnet: prefer_ecs geo) with ECS in every query
# Each reports queries/s, dnsperf's average latency (and its spread), lost
# queries, and the server's CPU time per query (from /proc, which a busy
# machine disturbs less than queries/s).
# Nothing leaves 127.0.0.0/8: both servers listen on 127.0.0.1, dnsperf
# sends there, no health check runs (pools without monitors), and gdnsd
# has a static zone only. The subnet in the ECS option is data, not a
# destination.
# usage: bench/dns.sh [SECONDS]   (default 10; ROUNDS=3, CLIENTS=4,
#                                  OUTSTANDING=200)
# On a shared machine prefer more, shorter rounds (ROUNDS=7 bench/dns.sh 5):
# the per-round ratios at the end compare runs made seconds apart.
set -euo pipefail
cd "$(dirname "$0")/.."
# The peers (wrk, nginx, HAProxy, dnsperf, gdnsd, h2load) from Debian;
# idempotent: nothing happens when they are there.
scripts/deps.sh bench
DUR=${1:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-200}
BIN=${MERIDIAN_BIN:-$PWD/build/meridian}
# A subnet for the ECS option: 1.0.16.0/24 (APNIC, Japan). The LB's geo
# maps send JP to its own pool.
ECS_NET=1.0.16.0
ECS_OPT=8:00011800010010 # family 1, source /24, scope 0, address 1.0.16 (3 bytes)
for t in dnsperf gdnsd; do
	command -v "$t" >/dev/null || { echo "$t missing: scripts/deps.sh bench installs it" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "no meridian binary at $BIN (make build, or set MERIDIAN_BIN)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/meridian-dnsbench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

# Free UDP+TCP ports on 127.0.0.1 from the kernel.
free_port() { /usr/bin/python3 -c '
import socket
for _ in range(100):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        u.close(); t.close()'; }
# Waits until the server answers a query over UDP.
wait_dns() {
	for _ in $(seq 1 100); do
		if dig @127.0.0.1 -p "$1" www.example.com A +short +time=1 +tries=1 2>/dev/null | grep -q 203.0.113.20; then return 0; fi
		sleep 0.1
	done
	echo "no DNS answer on port $1" >&2
	return 1
}

MPORT=$(free_port); GPORT=$(free_port)

GEO_DB=$(scripts/geo-data.sh 2>/dev/null || true)
if [ -n "$GEO_DB" ] && [ -f "$GEO_DB" ]; then
	GEO_YAML="  database: \"$GEO_DB\""
	GEO_NOTE="the country database ($GEO_DB)"
else
	GEO_YAML="  networks: { \"$ECS_NET/24\": { country: JP } }"
	GEO_NOTE="a geo.networks entry (no country database installed)"
fi

cat >"$TMP/meridian.yaml" <<YAML
edge:
  name: bench
  region: WEU
  workers: 1
  listen: { dns: ["127.0.0.1:$MPORT"] }
geo:
$GEO_YAML
pools:
  - { id: weu, origins: [ { name: w1, address: 127.0.0.11 }, { name: w2, address: 127.0.0.12 } ] }
  - { id: jp, origins: [ { name: j1, address: 127.0.0.21 }, { name: j2, address: 127.0.0.22 } ] }
  - { id: enam, origins: [ { name: e1, address: 127.0.0.31 } ] }
load_balancers:
  - name: lb.example.com
    proxied: false
    steering_policy: geo
    default_pools: [weu, enam]
    fallback_pool: weu
    region_pools: { WEU: [weu], ENAM: [enam], NEAS: [jp] }
    country_pools: { JP: [jp] }
    location_strategy: { prefer_ecs: geo }
zones:
  - name: example.com
    records:
      - { name: www.example.com, type: A, content: 203.0.113.20, ttl: 300 }
      - { name: ns1.example.com, type: A, content: 127.0.0.1 }
YAML
"$BIN" edge -c "$TMP/meridian.yaml" --log-level warn &
MPID=$!; PIDS+=($MPID)

# gdnsd: its own config dir, run and state dirs; the same zone (SOA and NS
# as Meridian generates them). The same UDP receive buffer as Meridian's
# default (edge.limits.dns_receive_buffer, 1 MiB; gdnsd leaves the
# system's ~200 KiB unless told), so neither drops a burst the other holds.
mkdir -p "$TMP/gdnsd/zones" "$TMP/gdnsd-run" "$TMP/gdnsd-state"
cat >"$TMP/gdnsd/config" <<GDNSD
options => {
  listen => [ 127.0.0.1:$GPORT ]
  udp_threads => 1
  udp_rcvbuf => 1048576
  tcp_threads => 1
  run_dir => $TMP/gdnsd-run
  state_dir => $TMP/gdnsd-state
}
GDNSD
cat >"$TMP/gdnsd/zones/example.com" <<'ZONE'
$TTL 3600
@    SOA ns1 hostmaster 1 3600 600 604800 60
@    NS  ns1
ns1  A   127.0.0.1
www  300 A 203.0.113.20
ZONE
gdnsd -c "$TMP/gdnsd" start >"$TMP/gdnsd.log" 2>&1 &
GPID=$!; PIDS+=($GPID)

wait_dns "$MPORT"; wait_dns "$GPORT"

echo "== check =="
echo "  meridian: dig lb.example.com +subnet=$ECS_NET/24 -> $(dig @127.0.0.1 -p "$MPORT" lb.example.com A +subnet=$ECS_NET/24 +short +time=2 +tries=1 | tr '\n' ' ')(located by $GEO_NOTE)"
echo "  meridian: dig lb.example.com (no subnet) -> $(dig @127.0.0.1 -p "$MPORT" lb.example.com A +short +time=2 +tries=1 | tr '\n' ' ')"
echo "  gdnsd:    dig www.example.com -> $(dig @127.0.0.1 -p "$GPORT" www.example.com A +short +time=2 +tries=1)"

echo "www.example.com A" >"$TMP/static.txt"
echo "lb.example.com A" >"$TMP/lb.txt"

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

run() { # name port pid datafile [dnsperf options] -> appends "name qps avg_ms lost cpu_us sd_ms"
	local name=$1 port=$2 pid=$3 data=$4
	shift 4
	local out t0 t1
	t0=$(cpu_ticks "$pid")
	out=$({
		TIMEFORMAT='%U %S'
		time dnsperf -s 127.0.0.1 -p "$port" -d "$data" -l "$DUR" -c "$CLIENTS" -q "$OUTSTANDING" -T 1 "$@" 2>&1
	} 2>"$TMP/time")
	t1=$(cpu_ticks "$pid")
	local qps avg lost sent sd min max cpu ccpu
	qps=$(awk '/Queries per second/ {print $4}' <<<"$out")
	sent=$(awk '/Queries sent:/ {print $3}' <<<"$out")
	lost=$(awk '/Queries lost:/ {print $3}' <<<"$out")
	avg=$(awk '/Average Latency/ {print $4*1000}' <<<"$out")
	min=$(awk '/Average Latency/ {gsub(/[(,]/,""); print $6*1000}' <<<"$out")
	max=$(awk '/Average Latency/ {gsub(/[),]/,""); print $8*1000}' <<<"$out")
	sd=$(awk '/Latency StdDev/ {print $4*1000}' <<<"$out")
	cpu=$(awk -v a="$t0" -v b="$t1" -v n="$sent" -v hz="$TICK" 'BEGIN { printf "%.2f", (b-a)/hz*1e6/n }')
	# dnsperf's own CPU per query: the client costs more than the server.
	ccpu=$(awk -v n="$sent" '{ printf "%.2f", ($1+$2)*1e6/n }' "$TMP/time")
	local codes
	codes=$(awk '/Response codes:/ {$1=$2=""; print}' <<<"$out")
	printf '  %-19s %7.0f q/s  avg %.3f ms (sd %.3f, min %.3f, max %.3f)  lost %s  server %s us/q  dnsperf %s us/q [%s]\n' \
		"$name" "$qps" "$avg" "$sd" "$min" "$max" "$lost" "$cpu" "$ccpu" "$codes"
	echo "$name $qps $avg $lost $cpu $sd $ROUND $ccpu" >>"$TMP/runs"
}

echo
echo "== dnsperf -c$CLIENTS -q$OUTSTANDING -T1 -l$DUR over UDP, one server thread each, $ROUNDS rounds interleaved =="
# Warm-up.
for p in "$MPORT" "$GPORT"; do dnsperf -s 127.0.0.1 -p "$p" -d "$TMP/static.txt" -l 1 -c "$CLIENTS" >/dev/null 2>&1 || true; done
for r in $(seq 1 "$ROUNDS"); do
	ROUND=$r
	echo "round $r"
	# Pairs side by side, in alternating order (a drifting load favours
	# neither).
	if [ $((r % 2)) = 1 ]; then
		run gdnsd-static "$GPORT" "$GPID" "$TMP/static.txt"
		run meridian-static "$MPORT" "$MPID" "$TMP/static.txt"
		run meridian-lb-ecs "$MPORT" "$MPID" "$TMP/lb.txt" -E "$ECS_OPT"
		run meridian-static-ecs "$MPORT" "$MPID" "$TMP/static.txt" -E "$ECS_OPT"
	else
		run meridian-static-ecs "$MPORT" "$MPID" "$TMP/static.txt" -E "$ECS_OPT"
		run meridian-lb-ecs "$MPORT" "$MPID" "$TMP/lb.txt" -E "$ECS_OPT"
		run meridian-static "$MPORT" "$MPID" "$TMP/static.txt"
		run gdnsd-static "$GPORT" "$GPID" "$TMP/static.txt"
	fi
done

med() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$TMP/runs" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
spread() { awk -v n="$1" '$1==n {print $2}' "$TMP/runs" | sort -g | awk '{a[NR]=$1} END {printf "%.0f..%.0f", a[1], a[NR]}'; }
sum() { awk -v n="$1" -v c="$2" '$1==n {s+=$c} END {print s+0}' "$TMP/runs"; }
echo
echo "== medians over $ROUNDS rounds =="
for t in gdnsd-static meridian-static meridian-static-ecs meridian-lb-ecs; do
	printf '  %-20s %7.0f q/s (range %s)  avg %.3f ms  server %s us/q  dnsperf %s us/q  lost %s (all rounds)\n' "$t" \
		"$(med "$t" 2)" "$(spread "$t")" "$(med "$t" 3)" "$(med "$t" 5)" "$(med "$t" 8)" "$(sum "$t" 4)"
done
g=$(med gdnsd-static 2); m=$(med meridian-static 2); me=$(med meridian-static-ecs 2); l=$(med meridian-lb-ecs 2)
lost=$(awk '{s+=$4} END {print s+0}' "$TMP/runs")
# The same ratios round by round (the two runs of a pair are a few seconds
# apart, so they share the machine's mood), then their median.
pair() { awk -v a="$1" -v b="$2" '$1==a {x[$7]=$2} $1==b {y[$7]=$2} END {for (r in x) if (r in y && y[r] > 0) print x[r]/y[r]}' "$TMP/runs" | sort -g | awk '{v[NR]=$1} END {printf "%.2fx (rounds %.2f..%.2f)", v[int((NR+1)/2)], v[1], v[NR]}'; }
echo
echo "== ratios (medians) =="
awk -v g="$g" -v m="$m" -v me="$me" -v l="$l" -v lost="$lost" \
	-v gc="$(med gdnsd-static 5)" -v mc="$(med meridian-static 5)" -v lc="$(med meridian-lb-ecs 5)" 'BEGIN {
  printf "meridian/gdnsd static   %.2fx q/s (target >= 1.2)   CPU per query gdnsd/meridian %.2fx\n", m/g, gc/mc;
  printf "lb+ecs/static           %.2fx q/s (target >= 0.9)   (lb+ecs/static+ecs %.2fx)\n", l/m, l/me;
  printf "lost queries            %d (target 0)\n", lost }'
echo "per-round ratios, median: meridian/gdnsd static $(pair meridian-static gdnsd-static), lb+ecs/static $(pair meridian-lb-ecs meridian-static)"
