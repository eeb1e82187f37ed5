"""Cluster mode (SPEC §4.9): edges sharing the API's objects and their
health reports through a real etcd (its JSON gateway), started per test on
free loopback ports with its own data directory.

Object changes made on one edge reach the others within a second (the
delay is measured and printed); concurrent writes lose no update; an
object that conflicts with another edge's file leaves that edge's config
as it was; health reports and node liveness follow the lease; an etcd
outage keeps edges serving, refuses writes with 503 and heals; an edge
starts from its local cache while etcd is down; a second edge with a live
node's name is refused."""
import http.client
import json
import os
import shutil
import signal
import threading
import time

import pytest

import meridian_test as mt
from obs_helpers import scrape, start_edge

ACCT = "/client/v4/accounts/default/load_balancers"
ZONE = "/client/v4/zones/example.com/load_balancers"
HOST = "cl.example.com"

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None,
                                reason="needs etcd (scripts/deps.sh test)")


class Etcd:
    """One etcd member on loopback; stop() and start() keep its data."""

    def __init__(self, stack, datadir):
        self.stack = stack
        self.datadir = str(datadir)
        self.port, self.peer = mt.free_port(), mt.free_port()
        self.url = "http://%s:%d" % (mt.LOCAL, self.port)
        self.proc = None
        self.runs = 0
        self.start()

    def start(self):
        peer = "http://%s:%d" % (mt.LOCAL, self.peer)
        self.proc = self.stack.spawn(
            ["etcd", "--name", "t", "--data-dir", self.datadir,
             "--listen-client-urls", self.url,
             "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer,
             "--initial-advertise-peer-urls", peer,
             "--initial-cluster", "t=" + peer],
            "etcd%d" % self.runs)
        self.runs += 1

        def up():
            if not self.proc.alive():
                raise AssertionError("etcd died: " + self.proc.describe())
            try:
                self.post("/v3/kv/range", {"key": "Lw=="})
                return True
            except OSError:
                return False
        mt.wait_for(up, what="etcd to answer on %d" % self.port)

    def stop(self):
        self.proc.expect_exit = True
        self.proc.kill()

    def post(self, path, body):
        c = http.client.HTTPConnection(mt.LOCAL, self.port, timeout=5)
        try:
            c.request("POST", path, body=json.dumps(body).encode(),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return json.loads(r.read())
        finally:
            c.close()


class Api:
    def __init__(self, edge):
        self.port = edge.admin

    def call(self, method, path, body=None):
        c = http.client.HTTPConnection(mt.LOCAL, self.port, timeout=mt.WAIT)
        h = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            env = json.loads(r.read())
        finally:
            c.close()
        assert env["success"] == (200 <= r.status < 300), (r.status, env)
        return r.status, env

    def ok(self, method, path, body=None):
        st, env = self.call(method, path, body)
        assert st == 200, (method, path, st, env)
        return env["result"]


def cluster_edge(stack, etcd, name, pools=(), lbs=(), monitors=(),
                 store=None, ttl="2s", before=(), after=(), region=None):
    """An edge in etcd's cluster with an http and an admin listener."""
    store = store or os.path.join(str(stack.logdir), "store-%s.db" % name)

    def build(port, admin):
        cfg = {"edge": {
            "name": name, "workers": 1, "store": store,
            "listen": {"http": ["%s:%d" % (mt.LOCAL, port)],
                       "admin": "%s:%d" % (mt.LOCAL, admin)},
            "timeouts": {"drain": "2s"},
            "cluster": {"etcd": list(before) + [etcd.url] + list(after),
                        "lease_ttl": ttl}}}
        if region:
            cfg["edge"]["region"] = region
        if monitors:
            cfg["monitors"] = list(monitors)
        cfg["pools"] = list(pools)
        cfg["load_balancers"] = list(lbs)
        return cfg
    e = start_edge(stack, build, tag="edge-%s-%d" % (name, len(stack.edges)))
    e.api = Api(e)
    e.name = name
    e.store = store
    return e


@pytest.fixture
def etcd(stack, tmp_path):
    return Etcd(stack, tmp_path / "etcd")


def org(o, **kw):
    d = {"name": o.name, "address": mt.LOCAL, "port": o.port}
    d.update(kw)
    return d


def who(edge, host=HOST):
    """The origin that answered through edge, or the status."""
    try:
        r = mt.request(edge.port, "GET", "/", host=host, timeout=5)
    except (OSError, mt.Closed):
        return None
    return r.header("X-Origin") if r.status == 200 else r.status


def wait_who(edge, want, what, timeout=mt.WAIT):
    return mt.wait_for(lambda: who(edge) == want, timeout=timeout,
                       interval=0.005, what=what)


def ok_soon(edge, method, path, body=None):
    """A write once the edge takes writes again: an etcd that just came
    back may still fail the first requests (no leader yet), and each
    failure makes the edge connect again."""
    box = {}

    def done():
        st, env = edge.api.call(method, path, body)
        assert st in (200, 503), env
        box["r"] = env["result"]
        return st == 200
    mt.wait_for(done, what="%s %s to be taken" % (method, path))
    return box["r"]


def metric(edge, name, **labels):
    return scrape(edge).get(name, **labels)


def test_change_on_one_edge_reaches_the_others(stack, etcd, capsys):
    o1, o2 = stack.origin("o1"), stack.origin("o2")
    a = cluster_edge(stack, etcd, "pop-a")
    b = cluster_edge(stack, etcd, "pop-b")
    c = cluster_edge(stack, etcd, "pop-c")
    mt.wait_for(lambda: metric(b, "meridian_cluster_connected") == 1,
                what="b connected")
    delays = []
    # Create: a pool and its load balancer on a; b and c serve it.
    pool = a.api.ok("POST", ACCT + "/pools",
                    {"name": "p", "origins": [org(o1)]})
    lb = a.api.ok("POST", ZONE, {"name": HOST,
                                 "default_pools": [pool["id"]]})
    t0 = time.monotonic()
    for e in (b, c):
        wait_who(e, "o1", "%s to serve the new load balancer" % e.name)
    delays.append(time.monotonic() - t0)
    # Update: the pool's origin moves to o2.
    a.api.ok("PATCH", ACCT + "/pools/" + pool["id"],
             {"origins": [org(o2)]})
    t0 = time.monotonic()
    for e in (b, c):
        wait_who(e, "o2", "%s to follow the update" % e.name)
    delays.append(time.monotonic() - t0)
    # A change made on b reaches a the same way.
    b.api.ok("PATCH", ACCT + "/pools/" + pool["id"],
             {"origins": [org(o1)]})
    t0 = time.monotonic()
    wait_who(a, "o1", "a to follow b's update")
    delays.append(time.monotonic() - t0)
    # The same objects everywhere, timestamps included.
    def objs(e):
        return ([(p["id"], p["name"], p["created_on"], p["modified_on"],
                  p["origins"][0]["port"], p["source"])
                 for p in e.api.ok("GET", ACCT + "/pools")],
                [(x["id"], x["name"], x["created_on"])
                 for x in e.api.ok("GET", ZONE)])
    assert objs(a) == objs(b) == objs(c)
    assert objs(a)[0][0][5] == "api"
    # Delete: the load balancer goes everywhere.
    a.api.ok("DELETE", ZONE + "/" + lb["id"])
    t0 = time.monotonic()
    for e in (b, c):
        mt.wait_for(lambda: who(e) not in ("o1", "o2"), interval=0.005,
                    what="%s to drop the load balancer" % e.name)
    delays.append(time.monotonic() - t0)
    b.api.ok("DELETE", ACCT + "/pools/" + pool["id"])
    mt.wait_for(lambda: a.api.ok("GET", ACCT + "/pools") == [],
                what="the pool to go on a")
    with capsys.disabled():
        print("\ncluster propagation delays (s): %s" %
              ", ".join("%.3f" % d for d in delays))
    # Printed, not asserted: tests make no timing assertions (SPEC's
    # "within a second" is a speed figure; session 11 saw 12-30 ms).
    for e in (a, b, c):
        assert metric(e, "meridian_cluster_nodes") == 3
        assert metric(e, "meridian_cluster_connected") == 1
    assert metric(b, "meridian_cluster_changes_applied_total") >= 4
    nodes = a.api.ok("GET", ACCT + "/cluster/nodes")
    assert sorted(n["name"] for n in nodes) == ["pop-a", "pop-b", "pop-c"]
    assert [n["self"] for n in nodes if n["name"] == "pop-a"] == [True]
    assert all(n["version"] and n["started"] for n in nodes)
    import subprocess
    r = subprocess.run([mt.BIN, "ctl", "--server",
                        "http://%s:%d" % (mt.LOCAL, b.admin), "cluster",
                        "nodes"], capture_output=True, text=True,
                       timeout=mt.WAIT)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "REGION"]
    assert len(lines) == 4 and "pop-c" in r.stdout


def test_concurrent_writes_lose_no_update(stack, etcd):
    o1, o2 = stack.origin("o1"), stack.origin("o2")
    a = cluster_edge(stack, etcd, "pop-a")
    b = cluster_edge(stack, etcd, "pop-b")
    pool = a.api.ok("POST", ACCT + "/pools",
                    {"name": "p", "origins": [org(o1), org(o2)]})
    path = ACCT + "/pools/" + pool["id"]
    mt.wait_for(lambda: b.api.call("GET", path)[0] == 200,
                what="the pool on b")
    # a writes the description, b minimum_origins, at the same time:
    # each side's last acknowledged value must be in the end state.
    last = {}
    statuses = {"a": [], "b": []}

    def run(edge, key, field, values):
        for v in values:
            st, env = edge.api.call("PATCH", path, {field: v})
            statuses[key].append(st)
            assert st in (200, 409), env
            if st == 409:
                assert "concurrently" in env["errors"][0]["message"]
            else:
                last[key] = v
    ta = threading.Thread(target=run, args=(
        a, "a", "description", ["d%d" % i for i in range(15)]))
    tb = threading.Thread(target=run, args=(
        b, "b", "minimum_origins", [1 + i % 2 for i in range(15)]))
    ta.start()
    tb.start()
    ta.join(timeout=4 * mt.WAIT)
    tb.join(timeout=4 * mt.WAIT)
    assert not ta.is_alive() and not tb.is_alive()
    assert "a" in last and "b" in last, statuses

    def settled(e):
        p = e.api.ok("GET", path)
        return (p["description"] == last["a"] and
                p["minimum_origins"] == last["b"])
    for e in (a, b):
        mt.wait_for(lambda: settled(e), what="both updates on %s" % e.name)


def test_object_conflicting_with_a_file_is_skipped_there(stack, etcd):
    o1, o2 = stack.origin("o1"), stack.origin("o2")
    a = cluster_edge(stack, etcd, "pop-a")
    # b's file has HOST on its own pool: the cluster may not take it over.
    b = cluster_edge(stack, etcd, "pop-b",
                     pools=[{"id": "filepool", "origins": [org(o2)]}],
                     lbs=[{"name": HOST, "default_pools": ["filepool"]}])
    assert who(b) == "o2"
    pool = a.api.ok("POST", ACCT + "/pools",
                    {"name": "p", "origins": [org(o1)]})
    lb = a.api.ok("POST", ZONE, {"name": HOST,
                                 "default_pools": [pool["id"]]})
    wait_who(a, "o1", "a to serve its load balancer")
    mt.wait_for(lambda: "not applied on this edge" in b.stderr_tail(20000),
                what="b to log the conflict")
    assert HOST in b.stderr_tail(20000)
    assert who(b) == "o2"
    # Later changes that do not conflict still reach b.
    p2 = a.api.ok("POST", ACCT + "/pools",
                  {"name": "p2", "origins": [org(o2)]})
    mt.wait_for(lambda: b.api.call("GET", ACCT + "/pools/" + p2["id"])[0]
                == 200, what="a later pool on b")
    assert who(b) == "o2"
    # Once the conflicting object goes, nothing is left of it on b.
    a.api.ok("DELETE", ZONE + "/" + lb["id"])
    a.api.ok("DELETE", ACCT + "/pools/" + pool["id"])
    mt.wait_for(lambda: b.api.call("GET", ACCT + "/pools/" + pool["id"])[0]
                == 404, what="the pool to go on b")
    assert who(b) == "o2"


def test_health_reports_and_liveness(stack, etcd):
    o1 = stack.origin("o1")
    mon = {"id": "m", "type": "http", "path": "/healthz", "interval": "1s",
           "timeout": "1s", "retries": 0}
    a = cluster_edge(stack, etcd, "pop-a", monitors=[mon],
                     pools=[{"id": "fp", "monitor": "m",
                             "origins": [org(o1)]}])
    b = cluster_edge(stack, etcd, "pop-b", monitors=[mon],
                     pools=[{"id": "fp", "monitor": "m",
                             "origins": [org(o1)]}])
    path = ACCT + "/pools/fp/health"

    def b_seen_from_a():
        pops = a.api.ok("GET", path)["pop_health"]
        v = pops.get("pop-b")
        return v if v and v["origins"][0]["healthy"] is True else None
    v = mt.wait_for(b_seen_from_a, what="b's report in a's pool health")
    assert v["origins"][0]["name"] == "o1"
    assert v["origins"][0]["state"] == "healthy"
    assert v["healthy"] is True
    mt.wait_for(lambda: a.api.ok("GET", path)["pop_health"]["pop-a"]
                ["healthy"] is True, what="a's own verdict")
    mt.wait_for(lambda: metric(a, "meridian_cluster_nodes") == 2,
                what="two nodes")
    # b dies without a word: its node and reports go with its lease (2 s).
    # (Waited for, not timed: tests make no timing assertions.)
    b.expect_exit = True
    os.kill(b.pid, signal.SIGKILL)
    mt.wait_for(lambda: "pop-b" not in
                a.api.ok("GET", path)["pop_health"],
                timeout=mt.WAIT, what="b's reports to go")
    mt.wait_for(lambda: [n["name"] for n in
                         a.api.ok("GET", ACCT + "/cluster/nodes")]
                == ["pop-a"], what="b's node to go")
    assert metric(a, "meridian_cluster_nodes") == 1


def test_etcd_outage(stack, etcd):
    o1, o2 = stack.origin("o1"), stack.origin("o2")
    a = cluster_edge(stack, etcd, "pop-a")
    b = cluster_edge(stack, etcd, "pop-b")
    pool = a.api.ok("POST", ACCT + "/pools",
                    {"name": "p", "origins": [org(o1)]})
    a.api.ok("POST", ZONE, {"name": HOST, "default_pools": [pool["id"]]})
    wait_who(b, "o1", "b to serve")
    etcd.stop()
    for e in (a, b):
        mt.wait_for(lambda: metric(e, "meridian_cluster_connected") == 0,
                    what="%s to see etcd gone" % e.name)
        assert who(e) == "o1"  # still serving
    st, env = a.api.call("PATCH", ACCT + "/pools/" + pool["id"],
                         {"origins": [org(o2)]})
    assert st == 503, env
    assert env["errors"][0]["code"] == 1016
    assert "etcd" in env["errors"][0]["message"]
    assert "unreachable" in env["errors"][0]["message"]
    # Which of the watch, the lease keepalive or the report publisher
    # noticed the outage first is a race; one of them did and counted it.
    assert sum(metric(a, "meridian_cluster_errors_total", op=op)
               for op in ("watch", "lease", "publish")) >= 1
    assert who(a) == "o1"
    etcd.start()
    for e in (a, b):
        mt.wait_for(lambda: metric(e, "meridian_cluster_connected") == 1,
                    what="%s to reconnect" % e.name)
    # Writes work again, and b's change reaches a.
    ok_soon(b, "PATCH", ACCT + "/pools/" + pool["id"], {"origins": [org(o2)]})
    wait_who(a, "o2", "a to get b's change after the outage")
    # a frozen past its lease (its node and reports go; b changes the pool
    # meanwhile): thawed, it joins again and catches up.
    os.kill(a.pid, signal.SIGSTOP)
    try:
        mt.wait_for(lambda: metric(b, "meridian_cluster_nodes") == 1,
                    what="a's lease to end")
        ok_soon(b, "PATCH", ACCT + "/pools/" + pool["id"],
                {"origins": [org(o1)]})
    finally:
        os.kill(a.pid, signal.SIGCONT)
    wait_who(a, "o1", "a to catch up after its lease ended")
    mt.wait_for(lambda: metric(b, "meridian_cluster_nodes") == 2,
                what="a back in the cluster")


def test_change_made_while_an_edge_is_down_arrives(stack, etcd):
    """An edge that was stopped while another changed the objects starts
    with the change (its cache is stale; etcd's range wins)."""
    o1, o2 = stack.origin("o1"), stack.origin("o2")
    a = cluster_edge(stack, etcd, "pop-a")
    pool = a.api.ok("POST", ACCT + "/pools",
                    {"name": "p", "origins": [org(o1)]})
    a.api.ok("POST", ZONE, {"name": HOST, "default_pools": [pool["id"]]})
    wait_who(a, "o1", "a to serve")
    # b is down; the change is made meanwhile; b starts and has it.
    b_store = os.path.join(str(stack.logdir), "store-pop-b.db")
    b = cluster_edge(stack, etcd, "pop-b", store=b_store)
    wait_who(b, "o1", "b to serve")
    b.expect_exit = True
    assert b.terminate(timeout=mt.WAIT) == 0
    a.api.ok("PATCH", ACCT + "/pools/" + pool["id"], {"origins": [org(o2)]})
    b2 = cluster_edge(stack, etcd, "pop-b", store=b_store)
    assert who(b2) == "o2"


def test_edge_starts_from_its_cache_while_etcd_is_down(stack, etcd):
    o1 = stack.origin("o1")
    store = os.path.join(str(stack.logdir), "store-cache.db")
    a = cluster_edge(stack, etcd, "pop-a", store=store)
    pool = a.api.ok("POST", ACCT + "/pools",
                    {"name": "p", "origins": [org(o1)]})
    a.api.ok("POST", ZONE, {"name": HOST, "default_pools": [pool["id"]]})
    wait_who(a, "o1", "a to serve")
    a.expect_exit = True
    assert a.terminate(timeout=mt.WAIT) == 0
    etcd.stop()
    a2 = cluster_edge(stack, etcd, "pop-a", store=store)
    assert who(a2) == "o1"
    assert "starting from the objects last known" in a2.stderr_tail(20000)
    assert metric(a2, "meridian_cluster_connected") == 0
    st, env = a2.api.call("DELETE", ZONE + "/x")
    assert st in (404, 503)
    st, env = a2.api.call("POST", ACCT + "/pools",
                          {"name": "q", "origins": [org(o1)]})
    assert st == 503 and env["errors"][0]["code"] == 1016, env
    etcd.start()
    mt.wait_for(lambda: metric(a2, "meridian_cluster_connected") == 1,
                what="a2 to connect")
    ok_soon(a2, "POST", ACCT + "/pools", {"name": "q", "origins": [org(o1)]})
    assert who(a2) == "o1"


def test_second_edge_with_a_live_name_is_refused(stack, etcd, tmp_path):
    a = cluster_edge(stack, etcd, "pop-a")
    port, admin = mt.free_port(), mt.free_port()
    cfg = {"edge": {"name": "pop-a", "workers": 1,
                    "store": str(tmp_path / "other.db"),
                    "listen": {"http": ["%s:%d" % (mt.LOCAL, port)],
                               "admin": "%s:%d" % (mt.LOCAL, admin)},
                    "cluster": {"etcd": [etcd.url], "lease_ttl": "2s"}}}
    path = tmp_path / "dup.yaml"
    path.write_text(mt.to_yaml(cfg) + "\n")
    import subprocess
    r = subprocess.run([mt.BIN, "edge", "-c", str(path)],
                       capture_output=True, text=True, timeout=mt.WAIT)
    assert r.returncode != 0
    assert "edge.name pop-a is in use by a live node" in r.stderr, r.stderr
    assert not mt.port_accepts(port)
    # The first one is untouched; once it stops (lease revoked), the name
    # is free at once.
    assert metric(a, "meridian_cluster_nodes") == 1
    # A reload cannot change edge.cluster: a restart can.
    with open(a.config_path) as f:
        text = f.read()
    assert "lease_ttl: 2s" in text
    a.rewrite(text.replace("lease_ttl: 2s", "lease_ttl: 3s"))
    os.kill(a.pid, signal.SIGHUP)
    mt.wait_for(lambda: "edge.cluster changed: restart" in
                a.stderr_tail(20000), what="the reload refused")
    a.expect_exit = True
    assert a.terminate(timeout=mt.WAIT) == 0
    p = subprocess.Popen([mt.BIN, "edge", "-c", str(path)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        mt.wait_for(lambda: mt.port_accepts(port), what="the name taken over")
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=mt.WAIT)


def test_unreachable_endpoint_is_skipped(stack, etcd):
    """edge.cluster.etcd lists endpoints tried in turn: a dead first one
    costs a refused connection, not the cluster."""
    o1 = stack.origin("o1")
    dead = "http://%s:%d" % (mt.LOCAL, mt.free_port())
    a = cluster_edge(stack, etcd, "pop-a", before=[dead])
    b = cluster_edge(stack, etcd, "pop-b", before=[dead])
    for e in (a, b):
        mt.wait_for(lambda: metric(e, "meridian_cluster_connected") == 1,
                    what="%s connected" % e.name)
    pool = a.api.ok("POST", ACCT + "/pools",
                    {"name": "p", "origins": [org(o1)]})
    # b learns of a's pool through its watch (not at once: a load
    # balancer naming it is refused until then)
    mt.wait_for(lambda: b.api.call("GET", ACCT + "/pools/" + pool["id"])[0]
                == 200, what="b to see a's pool")
    b.api.ok("POST", ZONE, {"name": HOST, "default_pools": [pool["id"]]})
    wait_who(a, "o1", "a to serve b's load balancer")


class EtcdProxy:
    """A TCP proxy in front of etcd that the test can make misbehave:
    hold the watch stream's bytes (an edge that lags behind the others),
    or pass one object transaction to etcd and drop its answer (a commit
    whose outcome the edge cannot see)."""

    OBJ_MARK = None  # base64 of "<prefix>/objects/", set per instance

    def __init__(self, etcd, prefix="/meridian"):
        import base64
        import socket
        self.etcd = etcd
        self.mark = base64.b64encode((prefix + "/objects/").encode())[:24]
        self.port = mt.free_port()
        self.url = "http://%s:%d" % (mt.LOCAL, self.port)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((mt.LOCAL, self.port))
        self.lsock.listen(64)
        self.lock = threading.Lock()
        self.hold = False
        self.held = []  # (client socket, bytes) while hold
        self.drop_obj_txn = 0  # object txns whose answer is dropped
        self.dropped = 0
        self.closed = False
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection((mt.LOCAL, self.etcd.port),
                                             timeout=5)
            except OSError:
                c.close()
                continue
            u.settimeout(None)
            with self.lock:
                self.socks += [c, u]
            st = {"watch": False, "drop": False}
            threading.Thread(target=self._up, args=(c, u, st),
                             daemon=True).start()
            threading.Thread(target=self._down, args=(c, u, st),
                             daemon=True).start()

    def _up(self, c, u, st):
        while True:
            try:
                d = c.recv(65536)
            except OSError:
                d = b""
            if not d:
                break
            if d.startswith(b"POST /v3/watch"):
                st["watch"] = True
            with self.lock:
                if (b"/v3/kv/txn" in d and self.mark in d and
                        self.drop_obj_txn > 0):
                    self.drop_obj_txn -= 1
                    st["drop"] = True
            try:
                u.sendall(d)
            except OSError:
                break
        self._close(c, u)

    def _down(self, c, u, st):
        while True:
            try:
                d = u.recv(65536)
            except OSError:
                d = b""
            if not d:
                break
            if st["drop"]:
                with self.lock:
                    self.dropped += 1
                break  # etcd did it; the edge never hears
            with self.lock:
                if st["watch"] and self.hold:
                    self.held.append((c, d))
                    continue
            try:
                c.sendall(d)
            except OSError:
                break
        self._close(c, u)

    @staticmethod
    def _close(c, u):
        import socket
        for s in (c, u):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def release(self):
        with self.lock:
            self.hold = False
            held, self.held = self.held, []
        for c, d in held:
            try:
                c.sendall(d)
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.lsock.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass


@pytest.fixture
def proxy(etcd):
    p = EtcdProxy(etcd)
    yield p
    p.close()


def proxied_edge(stack, etcd, proxy, name, **kw):
    """An edge that reaches etcd only through proxy."""
    e = cluster_edge(stack, EtcdUrl(proxy.url), name, **kw)
    return e


class EtcdUrl:
    def __init__(self, url):
        self.url = url


def etcd_objects(etcd):
    """{key: value JSON} of every object in etcd."""
    import base64
    r = etcd.post("/v3/kv/range", {
        "key": base64.b64encode(b"/meridian/objects/").decode(),
        "range_end": base64.b64encode(b"/meridian/objects0").decode()})
    return {base64.b64decode(kv["key"]).decode():
            json.loads(base64.b64decode(kv["value"]))
            for kv in r.get("kvs", [])}


def test_lagging_edge_cannot_commit_a_reference_to_a_deleted_pool(
        stack, etcd, proxy):
    """b has not yet seen a's delete of a pool when it creates a load
    balancer that uses it: the two transactions touch different keys, but
    b's validation read a pool that is gone, so b's commit must fail and
    validate again (404 for the pool), not leave a load balancer in etcd
    that no edge can serve."""
    o1 = stack.origin("o1")
    a = cluster_edge(stack, etcd, "pop-a")
    b = proxied_edge(stack, etcd, proxy, "pop-b")
    mt.wait_for(lambda: metric(b, "meridian_cluster_connected") == 1,
                what="b connected")
    pool = a.api.ok("POST", ACCT + "/pools",
                    {"name": "p", "origins": [org(o1)]})
    mt.wait_for(lambda: b.api.call("GET", ACCT + "/pools/" +
                                   pool["id"])[0] == 200,
                what="the pool on b")
    proxy.hold = True
    a.api.ok("DELETE", ACCT + "/pools/" + pool["id"])
    st, env = b.api.call("POST", ZONE, {"name": HOST,
                                        "default_pools": [pool["id"]]})
    proxy.release()
    assert st == 400, env
    assert pool["id"] in env["errors"][0]["message"], env
    assert not any("/load_balancers/" in k for k in etcd_objects(etcd))
    mt.wait_for(lambda: b.api.call("GET", ACCT + "/pools/" +
                                   pool["id"])[0] == 404,
                what="the pool to go on b")


def test_commit_whose_answer_is_lost_is_not_reported_failed(
        stack, etcd, proxy):
    """etcd commits a change but its answer never reaches the edge (the
    connection drops after the request went through): the edge must not
    tell the client the change was not made. It reads the keys back and,
    finding its own values, answers 200."""
    o1 = stack.origin("o1")
    a = proxied_edge(stack, etcd, proxy, "pop-a")
    with proxy.lock:
        proxy.drop_obj_txn = 1
    st, env = a.api.call("POST", ACCT + "/pools",
                         {"name": "p", "origins": [org(o1)]})
    assert proxy.dropped == 1
    in_etcd = [v for k, v in etcd_objects(etcd).items()
               if "/pools/" in k]
    assert len(in_etcd) == 1  # etcd has it
    assert st == 200, env
    assert env["result"]["id"] in [k.rsplit("/", 1)[1]
                                   for k in etcd_objects(etcd)]
    assert a.api.ok("GET", ACCT + "/pools/" + env["result"]["id"])
    assert len(a.api.ok("GET", ACCT + "/pools")) == 1
    # curl sends a request again once on a fresh connection when a kept
    # one drops before any answer; drop that answer too: the edge sees
    # only a failed request.
    with proxy.lock:
        proxy.drop_obj_txn = 2
    path = ACCT + "/pools/" + env["result"]["id"]
    st, env = a.api.call("PATCH", path, {"description": "two"})
    assert proxy.dropped == 3
    assert [v["body"]["description"] for k, v in
            etcd_objects(etcd).items() if "/pools/" in k] == ["two"]
    assert st == 200, env
    assert env["result"]["description"] == "two"
    mt.wait_for(lambda: "answer was lost" in a.stderr_tail(20000),
                what="the log line")


def test_blackholed_etcd(stack, etcd):
    """etcd stops answering (its process frozen: connections open, no
    answer) and so do the other endpoints listed: a write ends with a
    clear 503 after a request's timeout (2 s, not 2 s per endpoint), the
    edge keeps serving, and SIGTERM ends it without waiting out the
    requests in flight."""
    import socket
    o1, o2 = stack.origin("o1"), stack.origin("o2")
    holes = []
    for _ in range(6):  # endpoints that take connections, never answer
        s = socket.socket()
        s.bind((mt.LOCAL, 0))
        s.listen(64)
        holes.append(s)
    a = cluster_edge(stack, etcd, "pop-a", after=[
        "http://%s:%d" % s.getsockname() for s in holes])
    pool = a.api.ok("POST", ACCT + "/pools",
                    {"name": "p", "origins": [org(o1)]})
    a.api.ok("POST", ZONE, {"name": HOST, "default_pools": [pool["id"]]})
    wait_who(a, "o1", "a to serve")
    os.kill(etcd.proc.pid, signal.SIGSTOP)
    try:
        # Without a bound per write, 7 endpoints of 2 s each, twice:
        # longer than the client waits (mt.WAIT).
        st, env = a.api.call("PATCH", ACCT + "/pools/" + pool["id"],
                             {"origins": [org(o2)]})
        assert st == 503, env
        msg = env["errors"][0]["message"]
        assert "may or may not have been committed" in msg, msg
        assert "timed out" in msg, msg
        assert who(a) == "o1"
        mt.wait_for(lambda: metric(a, "meridian_cluster_connected") == 0,
                    what="a to see etcd gone")
        # The cluster thread is in its requests (2 s per endpoint): the
        # stop ends them.
        a.expect_exit = True
        assert a.terminate(timeout=mt.WAIT) == 0
    finally:
        os.kill(etcd.proc.pid, signal.SIGCONT)
        for s in holes:
            s.close()


def b64(s):
    import base64
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def test_garbage_lease_loss_and_compaction(stack, etcd):
    """Values that are not ours and keys of unknown kinds under the prefix
    are skipped with a log line; a lease revoked behind the edge's back
    comes back with the node key and the reports; a compacted history
    does not lose a change."""
    o1, o2 = stack.origin("o1"), stack.origin("o2")
    mon = {"id": "m", "type": "http", "path": "/healthz", "interval": "1s",
           "timeout": "1s", "retries": 0}
    a = cluster_edge(stack, etcd, "pop-a", monitors=[mon],
                     pools=[{"id": "fp", "monitor": "m",
                             "origins": [org(o1)]}])
    b = cluster_edge(stack, etcd, "pop-b", monitors=[mon],
                     pools=[{"id": "fp", "monitor": "m",
                             "origins": [org(o1)]}])
    junk = {"/meridian/objects/pools/0123456789abcdef0123456789abcdef":
            "not json", "/meridian/objects/widgets/x": "{}",
            "/meridian/objects/pools/bad%2Fid": "{}",
            "/meridian/objects/load_balancers/ffffffffffffffffffffffffffffffff":
            json.dumps({"zone": None, "created_on": "x", "modified_on": "y",
                        "body": {"name": 5}}),
            "/meridian/nodes/ghost": "\xff\xfe",
            "/meridian/health/ghost/p/o": "[]",
            "/meridian/whatever": "x"}
    for k, v in junk.items():
        etcd.post("/v3/kv/put", {"key": b64(k), "value": b64(v)})
    pool = a.api.ok("POST", ACCT + "/pools",
                    {"name": "p", "origins": [org(o1)]})
    a.api.ok("POST", ZONE, {"name": HOST, "default_pools": [pool["id"]]})
    wait_who(b, "o1", "b to serve despite the junk")
    mt.wait_for(lambda: "not a Meridian object value" in
                b.stderr_tail(50000), what="b to log the junk")
    for e in (a, b):
        e.check_alive()
    # Nodes: the ghost is not listed (not JSON); both edges are.
    names = sorted(n["name"] for n in a.api.ok("GET", ACCT +
                                                "/cluster/nodes"))
    assert names == ["pop-a", "pop-b"], names
    # a's lease revoked: its node and reports go, then come back.
    path = ACCT + "/pools/fp/health"
    mt.wait_for(lambda: "pop-a" in b.api.ok("GET", path)["pop_health"],
                what="a's report on b")
    r = etcd.post("/v3/kv/range", {"key": b64("/meridian/nodes/pop-a")})
    lease = r["kvs"][0]["lease"]
    etcd.post("/v3/lease/revoke", {"ID": lease})

    def new_lease():
        r = etcd.post("/v3/kv/range",
                      {"key": b64("/meridian/nodes/pop-a")})
        return r.get("kvs") and r["kvs"][0]["lease"] != lease
    mt.wait_for(new_lease, what="a's node back with a new lease")

    def reports_back():
        r = etcd.post("/v3/kv/range", {
            "key": b64("/meridian/health/pop-a/"),
            "range_end": b64("/meridian/health/pop-a0")})
        return r.get("kvs") and all(kv["lease"] != lease
                                    for kv in r["kvs"])
    mt.wait_for(reports_back, what="a's reports back with the new lease")
    mt.wait_for(lambda: sorted(n["name"] for n in b.api.ok(
        "GET", ACCT + "/cluster/nodes")) == ["pop-a", "pop-b"],
        what="a's node back")
    mt.wait_for(lambda: "pop-a" in b.api.ok("GET", path)["pop_health"],
                what="a's report back on b")
    # Compaction: every revision so far; changes go on reaching b.
    rev = int(etcd.post("/v3/kv/range", {"key": b64("/")})["header"]
              ["revision"])
    etcd.post("/v3/kv/compaction", {"revision": rev, "physical": True})
    ok_soon(a, "PATCH", ACCT + "/pools/" + pool["id"],
            {"origins": [org(o2)]})
    wait_who(b, "o2", "b to follow after the compaction")
    for e in (a, b):
        e.check_alive()


def test_reconnects_do_not_leak(stack, etcd):
    """etcd stopped and started again several times: the edge's threads
    and descriptors stay as they were after the first reconnect, and
    every edge's objects end equal to etcd's."""
    o1 = stack.origin("o1")
    a = cluster_edge(stack, etcd, "pop-a")
    b = cluster_edge(stack, etcd, "pop-b")
    pool = a.api.ok("POST", ACCT + "/pools",
                    {"name": "p", "origins": [org(o1)]})

    def res(e):
        fds = len(os.listdir("/proc/%d/fd" % e.pid))
        thr = len(os.listdir("/proc/%d/task" % e.pid))
        with open("/proc/%d/status" % e.pid) as f:
            rss = [int(l.split()[1]) for l in f if l.startswith("VmRSS")][0]
        return fds, thr, rss
    seen = []
    for i in range(6):
        etcd.stop()
        for e in (a, b):
            mt.wait_for(lambda: metric(e, "meridian_cluster_connected")
                        == 0, what="%s to see etcd gone" % e.name)
        etcd.start()
        for e in (a, b):
            mt.wait_for(lambda: metric(e, "meridian_cluster_connected")
                        == 1, what="%s to reconnect" % e.name)
        ok_soon(a if i % 2 else b, "PATCH", ACCT + "/pools/" + pool["id"],
                {"description": "d%d" % i})
        seen.append((res(a), res(b)))
    print(seen)
    # The admin thread gives each connection (these scrapes) a thread and
    # a descriptor for a moment, and the watch's connection comes and
    # goes, so a sample may read one more or one fewer of each: the end
    # within the first loops' highest, give or take one descriptor (a
    # leak per reconnect would be 4 more after the four later loops).
    # (The lowest of the first loops was the bound once; a sample taken
    # while a transient thread was gone made it one too low.)
    for k, e in enumerate((a, b)):
        fds = max(x[k][0] for x in seen[:2]) + 1
        thr = max(x[k][1] for x in seen[:2])
        mt.wait_for(lambda: res(e)[0] <= fds and res(e)[1] <= thr,
                    what="%s's descriptors and threads as before (%s)"
                    % (e.name, seen))
    for e in (a, b):
        mt.wait_for(lambda: e.api.ok("GET", ACCT + "/pools/" + pool["id"])
                    ["description"] == "d5", what="the last change")


def test_check_regions_majority_decides(stack, etcd):
    """SPEC 4.2: an origin is healthy when a majority of its pool's check
    regions say so. Edge a (WEU) reaches the origin; b (ENAM) and c (EEU)
    are given an address where nothing listens, so they see it down.
    With a and b, one region each way: no majority, each edge goes by its
    own checks. With c too, two regions of three say unhealthy: a follows
    them to the fallback pool though its own checks pass. When c goes,
    a goes back."""
    live, backup = stack.origin("live"), stack.origin("backup")
    dead = mt.free_port()  # nothing listens there
    mon = {"id": "m", "type": "http", "path": "/healthz", "interval": "1s",
           "timeout": "1s", "retries": 0}

    def pools(port):
        return [{"id": "p", "monitor": "m",
                 "check_regions": ["WEU", "ENAM", "EEU"],
                 "origins": [{"name": "live", "address": mt.LOCAL,
                              "port": port}]},
                {"id": "fb", "origins": [org(backup)]}]
    lbs = [{"name": HOST, "default_pools": ["p"], "fallback_pool": "fb"}]

    def edge(name, port, region):
        return cluster_edge(stack, etcd, name, pools=pools(port), lbs=lbs,
                            monitors=[mon], region=region)

    def cluster_health(e):
        r = mt.request(e.admin, "GET", "/status?format=json", host="admin")
        o = json.loads(r.body)["pools"][0]["origins"][0]
        return o["health"], o["cluster_health"]
    a = edge("a", live.port, "WEU")
    b = edge("b", dead, "ENAM")
    mt.wait_for(lambda: cluster_health(b)[0] == "unhealthy",
                what="b's own checks to fail")
    mt.wait_for(lambda: cluster_health(a)[0] == "healthy",
                what="a's own checks to pass")
    wait_who(a, "live", "a to serve from its healthy origin")
    # One region each way (once b's report reached a): no majority.
    mt.wait_for(lambda: cluster_health(a) == ("healthy", None),
                what="a tie of the check regions on a")
    mt.wait_for(lambda: cluster_health(b) == ("unhealthy", None),
                what="the same tie on b")
    assert who(a) == "live"
    c = edge("c", dead, "EEU")
    mt.wait_for(lambda: cluster_health(a) == ("healthy", "unhealthy"),
                what="the check regions' majority on a")
    wait_who(a, "backup", "a to follow the majority to the fallback pool")

    def pool_health():
        r = mt.request(a.admin, "GET", "/status?format=json", host="admin")
        return json.loads(r.body)["pools"][0]["health"]
    # Pool health follows (the health thread counts it again).
    mt.wait_for(lambda: pool_health() == "critical", what="p critical on a")
    mt.wait_for(lambda: "the check regions say unhealthy" in
                a.stderr_tail(1 << 20), what="the change logged")
    # c's lease ends with it: no majority again, a's own checks decide.
    c.expect_exit = True
    assert c.terminate(timeout=mt.WAIT) == 0
    mt.wait_for(lambda: cluster_health(a) == ("healthy", None),
                what="no majority once c is gone")
    wait_who(a, "live", "a back on its origin")
