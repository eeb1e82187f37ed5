#!/usr/bin/env bash
# Cluster propagation benchmark (SPEC 4.9: "a change made on any edge
# reaches every edge within a second"): one etcd and three edges on
# loopback (edge.cluster), two origins. Through the API of one edge (each
# in turn) a pool's origin is switched between o1 and o2; the time from
# the API's answer to the moment both other edges serve the new origin is
# measured, CHANGES times (default 30). Prints the median, p90 and max, in
# ms. No peer: nginx, HAProxy and gdnsd have no shared-config cluster
# mode to compare with. Everything listens on 127.0.0.1; every process is
# stopped at exit. (This was an assertion in tests/integration/
# test_cluster.py; speed belongs here.)
# usage: bench/cluster.sh [CHANGES]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh bench
CHANGES=${1:-30}
BIN=${MERIDIAN_BIN:-$PWD/build/meridian}
TMP=$(mktemp -d /tmp/meridian-bench.XXXXXX)
PIDS=()
cleanup() {
	# Edges before etcd (started last, stopped first): no "lost etcd".
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill "${PIDS[$i]}" 2>/dev/null || true
		wait "${PIDS[$i]}" 2>/dev/null || true
	done
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

EC=$(free_port)
EP=$(free_port)
etcd --name b --data-dir "$TMP/etcd" \
	--listen-client-urls "http://127.0.0.1:$EC" \
	--advertise-client-urls "http://127.0.0.1:$EC" \
	--listen-peer-urls "http://127.0.0.1:$EP" \
	--initial-advertise-peer-urls "http://127.0.0.1:$EP" \
	--initial-cluster "b=http://127.0.0.1:$EP" >"$TMP/etcd.log" 2>&1 &
PIDS+=($!)
wait_port "$EC"

O1=$(free_port)
O2=$(free_port)
"$BIN" origin --listen 127.0.0.1:"$O1" --name o1 --cloud bench >/dev/null &
PIDS+=($!)
"$BIN" origin --listen 127.0.0.1:"$O2" --name o2 --cloud bench >/dev/null &
PIDS+=($!)
wait_port "$O1"
wait_port "$O2"

HTTP=()
ADMIN=()
for name in a b c; do
	hp=$(free_port)
	ap=$(free_port)
	cat >"$TMP/$name.yaml" <<YAML
edge:
  name: $name
  workers: 1
  store: $TMP/$name.db
  listen: { http: ["127.0.0.1:$hp"], admin: "127.0.0.1:$ap" }
  cluster: { etcd: ["http://127.0.0.1:$EC"], lease_ttl: 5s }
pools: []
load_balancers: []
YAML
	"$BIN" edge -c "$TMP/$name.yaml" --log-level warn &
	PIDS+=($!)
	wait_port "$hp"
	wait_port "$ap"
	HTTP+=("$hp")
	ADMIN+=("$ap")
done

/usr/bin/python3 - "$CHANGES" "$O1" "$O2" "${HTTP[@]}" "${ADMIN[@]}" <<'PY'
import http.client, json, statistics, sys, time
changes, o1, o2 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
http_ports, admin_ports = [int(x) for x in sys.argv[4:7]], [int(x) for x in sys.argv[7:10]]
ACCT = "/client/v4/accounts/default/load_balancers"
ZONE = "/client/v4/zones/example.com/load_balancers"
HOST = "bench.example.com"

def api(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=json.dumps(body).encode() if body else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    env = json.loads(r.read())
    c.close()
    if r.status != 200:
        sys.exit("API %s %s: %d %s" % (method, path, r.status, env))
    return env["result"]

def serves(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/", headers={"Host": HOST})
        r = c.getresponse()
        r.read()
        c.close()
        return r.getheader("X-Origin") if r.status == 200 else None
    except OSError:
        return None

def wait_all(ports, want, limit=30.0):
    """Seconds until every port serves want (bounded in time and count)."""
    t0 = time.monotonic()
    pending = set(ports)
    for _ in range(1000000):
        pending = {p for p in pending if serves(p) != want}
        if not pending:
            return time.monotonic() - t0
        if time.monotonic() - t0 > limit:
            sys.exit("edges %s did not serve %s within %.0f s" % (sorted(pending), want, limit))
        time.sleep(0.001)
    sys.exit("poll bound reached")

org = lambda name, port: {"name": name, "address": "127.0.0.1", "port": port}
pool = api(admin_ports[0], "POST", ACCT + "/pools", {"name": "p", "origins": [org("o1", o1)]})
api(admin_ports[0], "POST", ZONE, {"name": HOST, "default_pools": [pool["id"]]})
wait_all(http_ports, "o1")
delays = []
for i in range(changes):
    src = i % 3
    name, port = ("o2", o2) if i % 2 == 0 else ("o1", o1)
    api(admin_ports[src], "PATCH", ACCT + "/pools/" + pool["id"], {"origins": [org(name, port)]})
    others = [p for k, p in enumerate(http_ports) if k != src]
    delays.append(wait_all(others, name) * 1000)
delays.sort()
p90 = delays[min(len(delays) - 1, int(len(delays) * 0.9))]
print("cluster propagation over %d changes (API answer on one edge -> both others serving it):" % changes)
print("  median %.1f ms   p90 %.1f ms   max %.1f ms   min %.1f ms" % (
    statistics.median(delays), p90, delays[-1], delays[0]))
print("  target (SPEC 4.9): within 1000 ms -> %s" % ("met" if delays[-1] < 1000 else "NOT met"))
PY
