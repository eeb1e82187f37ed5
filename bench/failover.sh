#!/usr/bin/env bash
# Failover benchmark: steady wrk load through Meridian while origins die.
#
# Two pools of two demo origins each (default_pools [p1, p2], steering off,
# so all traffic is on p1), an http monitor every INTERVAL seconds,
# zero-downtime failover on (edge.retries defaults, failover_across_pools).
# Under wrk load (keep-alive, CONNS connections) the script SIGKILLs one
# origin of p1 (a1), then, KILL_GAP seconds later, the other (a2): the whole
# pool; traffic must end up on p2. It runs twice: with active health only
# (edge.passive_health.failures 0) and with passive health (the default, 3
# failures).
#
# Reported per run and kill:
#   failed      requests that got no 2xx answer (wrk socket errors plus
#               non-2xx answers); target 0 with zero-downtime failover
#   last try    seconds from the kill to the edge's last attempt on the dead
#               origin (its "connect failed" / "before any response" log
#               lines, which the edge writes at info level for every failed
#               attempt): after that all traffic is on healthy origins.
#               Target <= INTERVAL + 1 s with active health only, <= 1 s
#               with passive health
#   verdict     seconds from the kill to the monitor's "unhealthy"
# and a per-second table of which origin answered (X-Origin, counted by a
# small wrk Lua script) and how many requests failed.
#
# Exit status 1 when a request failed or a target was missed.
# Everything listens on 127.0.0.1; every process started here is stopped at
# exit (by pid); the whole run is bounded in time.
# usage: bench/failover.sh [RUN_SECONDS]   (default 10: kills at 2.5 s and
#        2.5 + KILL_GAP s)
#   env: MERIDIAN_BIN (default build/meridian), CONNS (default 32),
#        INTERVAL (monitor interval seconds, default 1), KILL_GAP (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONNS=${CONNS:-32}
INTERVAL=${INTERVAL:-1}
KILL_GAP=${KILL_GAP:-3}
FIRST_KILL=2.5
BIN=${MERIDIAN_BIN:-$PWD/build/meridian}
PY=/usr/bin/python3
[ -x "$BIN" ] || { echo "failover: $BIN is not built (make build)" >&2; exit 2; }
command -v wrk >/dev/null || scripts/deps.sh bench
TMP=$(mktemp -d /tmp/meridian-failover.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		# bounded: SIGKILL what has not gone after ~5 s
		for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 1 100); do
		if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "port $1 did not open" >&2
	return 1
}
now() { date +%s.%N; }

# The wrk script: per wall-clock second, who answered (X-Origin) and how
# many answers were not 200; merged over threads in done().
cat >"$TMP/count.lua" <<'LUA'
-- flat string keys "SECOND ORIGIN": wrk's thread:get() copies those
-- (nested tables crash wrk 4.1)
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body)
	local k = headers["X-Origin"]
	if status ~= 200 or not k then k = "status" .. status end
	k = os.time() .. " " .. k
	counts[k] = (counts[k] or 0) + 1
end
function done(summary, latency, requests)
	for _, t in ipairs(threads) do
		for k, n in pairs(t:get("counts")) do
			io.write(string.format("BUCKET %s %d\n", k, n))
		end
	end
	local e = summary.errors
	io.write(string.format("SUMMARY %d %d %d %d %d %d\n", summary.requests,
		e.connect, e.read, e.write, e.status, e.timeout))
end
LUA

run() { # name passive_failures
	local name=$1 passive=$2 dir="$TMP/$1"
	mkdir -p "$dir"
	local ports=() opids=() n
	for n in a1 a2 b1 b2; do
		local p; p=$(free_port)
		"$BIN" origin --listen 127.0.0.1:"$p" --name "$n" --cloud bench --threads 1 \
			>"$dir/$n.out" 2>&1 &
		opids+=($!); PIDS+=($!)
		ports+=("$p")
	done
	for p in "${ports[@]}"; do wait_port "$p" || return 1; done
	local mport admin
	mport=$(free_port); admin=$(free_port)
	cat >"$dir/edge.yaml" <<YAML
edge:
  name: bench
  workers: 2
  listen: { http: ["127.0.0.1:$mport"], admin: "127.0.0.1:$admin" }
  limits: { max_connections: 100000 }
  passive_health: { failures: $passive }
monitors:
  - { id: m, type: http, path: /healthz, interval: ${INTERVAL}s, timeout: 1s, retries: 0 }
pools:
  - id: p1
    monitor: m
    origins:
      - { name: a1, address: 127.0.0.1, port: ${ports[0]} }
      - { name: a2, address: 127.0.0.1, port: ${ports[1]} }
  - id: p2
    monitor: m
    origins:
      - { name: b1, address: 127.0.0.1, port: ${ports[2]} }
      - { name: b2, address: 127.0.0.1, port: ${ports[3]} }
load_balancers:
  - name: bench.local
    default_pools: [p1, p2]
    steering_policy: "off"
    adaptive_routing: { failover_across_pools: true }
YAML
	"$BIN" edge -c "$dir/edge.yaml" --log-level info 2>"$dir/edge.err" >/dev/null &
	local epid=$!; PIDS+=($epid)
	wait_port "$mport" || return 1; wait_port "$admin" || return 1
	# First verdicts: every origin healthy (bounded).
	local ok=
	for _ in $(seq 1 100); do
		if [ "$($PY -c 'import json,sys,urllib.request
s=json.load(urllib.request.urlopen("http://127.0.0.1:'"$admin"'/status?format=json",timeout=2))
print(all(o["health"]=="healthy" for p in s["pools"] for o in p["origins"]))' 2>/dev/null)" = True ]; then
			ok=1; break
		fi
		sleep 0.1
	done
	[ -n "$ok" ] || { echo "$name: origins never all healthy" >&2; cat "$dir/edge.err" >&2; return 1; }
	# warm-up: upstream keep-alive connections exist, as in steady state
	wrk -t1 -c"$CONNS" -d1s -H "Host: bench.local" "http://127.0.0.1:$mport/" >/dev/null 2>&1

	local t0 t1 t2
	t0=$(now)
	timeout $((DUR + 15)) wrk -t2 -c"$CONNS" -d"${DUR}s" -s "$TMP/count.lua" \
		-H "Host: bench.local" "http://127.0.0.1:$mport/" >"$dir/wrk.out" 2>&1 &
	local wpid=$!; PIDS+=($wpid)
	sleep "$FIRST_KILL"
	t1=$(now); kill -9 "${opids[0]}"   # a1: one origin of p1
	{ wait "${opids[0]}"; } 2>/dev/null || true
	sleep "$KILL_GAP"
	t2=$(now); kill -9 "${opids[1]}"   # a2: p1 is gone
	{ wait "${opids[1]}"; } 2>/dev/null || true
	wait "$wpid" || true
	kill "$epid" 2>/dev/null || true
	for _ in $(seq 1 100); do kill -0 "$epid" 2>/dev/null || break; sleep 0.1; done

	$PY - "$name" "$dir" "$t0" "$t1" "$t2" "$INTERVAL" "$passive" <<'PY'
import calendar, re, sys, time
name, d, t0, t1, t2, interval, passive = sys.argv[1:]
t0, t1, t2, interval = float(t0), float(t1), float(t2), float(interval)
wrk = open(d + "/wrk.out").read()
buckets, summ = {}, None
for ln in wrk.splitlines():
    p = ln.split()
    if p[:1] == ["BUCKET"]:
        b = buckets.setdefault(int(p[1]), {})
        b[p[2]] = b.get(p[2], 0) + int(p[3])
    elif p[:1] == ["SUMMARY"]:
        summ = list(map(int, p[1:]))
if summ is None:
    print("%s: wrk gave no summary:\n%s" % (name, wrk)); sys.exit(1)
req, econn, eread, ewrite, estatus, etime = summ
failed = econn + eread + ewrite + estatus + etime

def ts(s):  # "2026-11-26T02:24:07.784Z" -> epoch seconds
    base, ms = s.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(ms) / 1000.0

tries, verdict = {}, {}
for ln in open(d + "/edge.err", errors="replace"):
    m = re.match(r"(\S+) \w+ \[[^]]*\] (.*)", ln)
    if not m:
        continue
    t, msg = ts(m.group(1)), m.group(2)
    m2 = re.match(r"origin (\w+)(?: \([^)]*\))?: (connect failed|.*before any response|ejected)", msg)
    if m2:
        tries[m2.group(1)] = max(tries.get(m2.group(1), 0), t)
    m3 = re.match(r"health: origin (\w+) of pool \w+: \w+ -> unhealthy", msg)
    if m3 and m3.group(1) not in verdict:
        verdict[m3.group(1)] = t

label = "active health only" if passive == "0" else "passive health (failures %s)" % passive
m = re.search(r"requests in ([\d.]+)s", wrk)
print("== %s: %d requests in %s s, %d failed (connect %d, read %d, write %d, "
      "non-2xx %d, timeout %d)" % (label, req, m.group(1) if m else "?",
                                   failed, econn, eread, ewrite, estatus, etime))
target = 1.0 if passive != "0" else interval + 1.0
for who, tk, what in (("a1", t1, "kill a1 (one origin)"), ("a2", t2, "kill a2 (pool p1)")):
    last = tries.get(who)
    lt = max(0.0, last - tk) if last and last >= tk - 0.01 else 0.0
    v = verdict.get(who)
    vs = "%.2f s" % (v - tk) if v else "-"
    print("  %-22s last try on it after %.2f s (target <= %.1f s: %s); monitor verdict after %s"
          % (what, lt, target, "ok" if lt <= target else "MISSED", vs))
print("  per second (from the start of the load): who answered, failures")
names = sorted({k for b in buckets.values() for k in b})
print("    %4s  %s" % ("s", "  ".join("%8s" % n for n in names)))
for s in sorted(buckets):
    rel = s - int(t0)
    mark = ""
    if int(t1) == s: mark += "  <- kill a1"
    if int(t2) == s: mark += "  <- kill a2 (pool p1 down)"
    print("    %4d  %s%s" % (rel, "  ".join("%8d" % buckets[s].get(n, 0) for n in names), mark))
l1 = max(0.0, tries.get("a1", t1) - t1)
l2 = max(0.0, tries.get("a2", t2) - t2)
print("RESULT %s failed=%d a1_last_try=%.2f a2_last_try=%.2f" % (name, failed, l1, l2))
sys.exit(0 if failed == 0 and l1 <= target and l2 <= target else 1)
PY
	local rc=$?
	for p in "${opids[@]}" "$epid"; do kill "$p" 2>/dev/null || true; done
	return $rc
}

echo "Failover under load: wrk -t2 -c$CONNS, ${DUR}s, monitor interval ${INTERVAL}s;"
echo "SIGKILL a1 at ${FIRST_KILL}s, a2 (the rest of pool p1) ${KILL_GAP}s later; p2 takes over."
echo
status=0
run active 0 || status=1
echo
run passive 3 || status=1
exit $status
