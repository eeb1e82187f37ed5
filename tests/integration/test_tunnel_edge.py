"""The edge's tunnel endpoint (SPEC 4.7, docs/ARCHITECTURE.md "Tunnels"):
connectors dial edge.listen.tunnel over TLS, say hello with a bearer token,
and then serve the edge's requests over HTTP/2 with the roles reversed. A
pool origin `address: tunnel:ID` is reached through them.

The connector here is a fake one (tunnel_fake.py, python3-h2) so that each
protocol step can be checked on its own; test_tunnel_connector.py runs the
real `meridian tunnel`. Everything is on 127.0.0.1; every wait has a
deadline."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

import meridian_test as mt
from tunnel_fake import FakeConnector, hello, pattern_bytes

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "openssl"], capture_output=True).returncode,
    reason="needs the openssl CLI")

TOKEN = "t0k3n-for-the-tests-0123456789abcdef"
HOST = "app.example.com"


def make_cert(d):
    cert, key = os.path.join(d, "edge.pem"), os.path.join(d, "edge.key")
    if not os.path.exists(cert):
        subprocess.run(
            ["openssl", "req", "-x509", "-nodes", "-days", "30", "-newkey",
             "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", key,
             "-out", cert, "-subj", "/CN=edge.example.com",
             "-addext", "subjectAltName=DNS:edge.example.com"],
            check=True, capture_output=True, timeout=60)
    return cert, key


def config(tmp, http, tun, backup_port=None, token=TOKEN, tunnels=None,
           monitor=False, admin=None):
    cert, key = make_cert(str(tmp))
    origins = [{"name": "through-tunnel", "address": "tunnel:gke"}]
    pools = [{"id": "gke", "origins": origins}]
    lb_pools = ["gke"]
    if backup_port:
        pools.append({"id": "backup", "origins": [
            {"name": "backup", "address": mt.LOCAL, "port": backup_port}]})
        lb_pools.append("backup")
    cfg = {
        "edge": {"name": "pop-test", "workers": 2,
                 "listen": {"http": ["%s:%d" % (mt.LOCAL, http)],
                            "tunnel": ["%s:%d" % (mt.LOCAL, tun)]},
                 "tls": {"certificates": [{"cert": cert, "key": key}]},
                 "timeouts": {"drain": "5s"}},
        "tunnels": tunnels if tunnels is not None else
        [{"id": "gke", "token": token}],
        "pools": pools,
        "load_balancers": [{"name": HOST, "default_pools": lb_pools}],
    }
    if backup_port:
        # A request the tunnel cannot take goes to the next pool.
        cfg["load_balancers"][0]["adaptive_routing"] = {
            "failover_across_pools": True}
    if admin:
        cfg["edge"]["listen"]["admin"] = "%s:%d" % (mt.LOCAL, admin)
    if monitor:
        cfg["monitors"] = [{"id": "m", "type": "http", "path": "/healthz",
                            "interval": "1s", "timeout": "1s", "retries": 0,
                            "header": {"Host": [HOST]}}]
        pools[0]["monitor"] = "m"
    return mt.to_yaml(cfg) + "\n"


class TunEdge:
    def __init__(self, stack, tmp, **kw):
        self.http = mt.free_port()
        self.tun = mt.free_port()
        self.tmp = tmp
        self.kw = kw
        self.e = mt.Edge(stack.logdir, config(tmp, self.http, self.tun,
                                              **kw),
                         self.http, "edge%d" % len(stack.edges))
        stack.procs.append(self.e)
        stack.edges.append(self.e)
        mt.wait_for(lambda: mt.port_accepts(self.tun), what="tunnel listener")

    def get(self, path="/", **kw):
        return mt.request(self.http, "GET", path, host=HOST, **kw)

    def log(self):
        return self.e.stderr_tail(1 << 20)


def connected(fc):
    assert fc.status == 101, fc.head
    return fc


def wait_routed(te, name, what):
    """The edge sends requests to connector `name` (its bridge is up)."""
    def ok():
        r = te.get("/probe")
        if r.status != 200:
            return None
        try:
            return json.loads(r.body)["connector"] == name and r
        except ValueError:
            return None
    return mt.wait_for(ok, what=what)


# ---------------------------------------------------------------- hello

def test_hello_refusals(stack, tmp_path):
    te = TunEdge(stack, tmp_path)
    cases = [
        (dict(tunnel="gke", token="wrong-token-" + "x" * 30), 401),
        (dict(tunnel="nope", token=TOKEN), 401),
        (dict(tunnel="gke", token=None), 401),
        (dict(tunnel="gke", token=TOKEN, path="/other"), 404),
        (dict(tunnel="gke", token=TOKEN, upgrade=None), 426),
        (dict(tunnel="gke", token=TOKEN, upgrade="websocket"), 426),
    ]
    for kw, want in cases:
        st, head, s, _ = hello(te.tun, **kw)
        s.close()
        assert st == want, (kw, head)
    # The same answer for an unknown tunnel and a wrong token.
    _, h1, s1, _ = hello(te.tun, "gke", "x" * 40)
    _, h2, s2, _ = hello(te.tun, "nope", TOKEN)
    s1.close()
    s2.close()
    assert h1 == h2
    # Nothing joined: the tunnel origin refuses, the LB has no other pool.
    assert te.get().status in (502, 503)
    assert TOKEN not in te.log()


def test_hello_garbage_and_plain_tcp(stack, tmp_path):
    te = TunEdge(stack, tmp_path)
    import socket
    s = socket.create_connection((mt.LOCAL, te.tun), timeout=mt.WAIT)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not TLS
    s.settimeout(mt.WAIT)
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()
    st, head, s, _ = hello(te.tun, "gke", TOKEN, path="/.meridian/tunnel/v1 x")
    s.close()
    assert st == 400, head
    te.e.check_alive()


# ------------------------------------------------------------ requests

def test_requests_through_a_connector(stack, tmp_path):
    te = TunEdge(stack, tmp_path)
    fc = connected(FakeConnector(te.tun, "gke", TOKEN, name="conn-a"))
    try:
        r = wait_routed(te, "conn-a", "requests to reach the connector")
        j = json.loads(r.body)
        assert j["authority"] == HOST
        assert j["scheme"] == "http"
        assert j["path"] == "/probe"
        assert j["headers"]["x-forwarded-for"] == "127.0.0.1"
        assert "connection" not in j["headers"]
        # An upload (chunked towards the bridge) and a download, each
        # larger than a stream window.
        body = pattern_bytes(3 << 20)
        r = mt.request(te.http, "POST", "/up", host=HOST, body=body)
        assert r.status == 200, r
        j = json.loads(r.body)
        import hashlib
        assert j["body_len"] == len(body)
        assert j["body_sha256"] == hashlib.sha256(body).hexdigest()
        r = te.get("/big/%d" % (5 << 20))
        assert r.status == 200
        assert r.body == pattern_bytes(5 << 20)
        # Keep-alive on the client side, several requests in a row.
        with mt.HttpConn(te.http) as c:
            for i in range(20):
                c.send(mt.req("GET", "/n/%d" % i, host=HOST))
                rr = c.read_response()
                assert rr.status == 200
                assert json.loads(rr.body)["path"] == "/n/%d" % i
        mt.wait_for(lambda: "tunnel gke: connector conn-a (127.0.0.1) "
                    "connected" in te.log(), what="the connect logged")
        m = mt.request(te.http, "GET", "/", host=HOST)
        assert m.status == 200
    finally:
        fc.stop()


def test_failover_when_the_connector_goes(stack, tmp_path):
    backup = stack.origin("backup")
    te = TunEdge(stack, tmp_path, backup_port=backup.port)
    # No connector yet: the tunnel pool's origin refuses, the backup
    # answers.
    r = te.get("/x")
    assert r.status == 200 and b"backup" in r.body, r
    fc = connected(FakeConnector(te.tun, "gke", TOKEN, name="conn-a"))
    wait_routed(te, "conn-a", "the tunnel to take the traffic")
    fc.stop()
    mt.wait_for(lambda: te.get("/x").body.find(b"backup") >= 0,
                what="traffic back on the backup")
    mt.wait_for(lambda: "connector conn-a (127.0.0.1) disconnected" in
                te.log(), what="the disconnect logged")
    # Every request on the way answered (no 502 once the link is gone).
    for _ in range(10):
        assert te.get("/x").status == 200


def test_streams_spread_and_goaway(stack, tmp_path):
    te = TunEdge(stack, tmp_path)
    a = connected(FakeConnector(te.tun, "gke", TOKEN, name="conn-a"))
    b = connected(FakeConnector(te.tun, "gke", TOKEN, name="conn-b"))
    try:
        wait_routed(te, "conn-a", "conn-a to serve")
        wait_routed(te, "conn-b", "conn-b to serve")
        # A slow request on a, then GOAWAY from a: it still completes,
        # and new requests go to b only.
        import threading
        slow = {}

        def run():
            slow["r"] = te.get("/slow/1500")
        th = threading.Thread(target=run)
        th.start()
        mt.wait_for(lambda: any(h.get(":path") == "/slow/1500"
                                for h, _ in a.requests + b.requests),
                    what="the slow request to arrive")
        on_a = any(h.get(":path") == "/slow/1500" for h, _ in a.requests)
        goer = a if on_a else b
        stayer = b if on_a else a
        goer.goaway()
        mt.wait_for(lambda: "%s (127.0.0.1) is going away" % goer.name in
                    te.log(), what="GOAWAY seen by the edge")
        for _ in range(10):
            r = te.get("/after")
            assert r.status == 200
            assert json.loads(r.body)["connector"] == stayer.name
        th.join(timeout=mt.WAIT)
        assert slow["r"].status == 200, slow["r"]
        assert json.loads(slow["r"].body)["connector"] == goer.name
    finally:
        a.stop()
        b.stop()


def test_token_change_on_reload_closes_the_connector(stack, tmp_path):
    te = TunEdge(stack, tmp_path)
    fc = connected(FakeConnector(te.tun, "gke", TOKEN, name="conn-a"))
    try:
        wait_routed(te, "conn-a", "conn-a to serve")
        new = "another-token-0123456789-abcdefghij"
        te.e.rewrite(config(tmp_path, te.http, te.tun, token=new))
        te.e.p.send_signal(signal.SIGHUP)
        mt.wait_for(fc.closed.is_set, what="the old connection closed")
        # Log lines are written by a log thread: waited for.
        mt.wait_for(lambda: "the tunnel's token changed" in te.log(),
                    what="the reason logged")
        st, _, s, _ = hello(te.tun, "gke", TOKEN)
        s.close()
        assert st == 401
        fc2 = connected(FakeConnector(te.tun, "gke", new, name="conn-b"))
        try:
            wait_routed(te, "conn-b", "the new token to work")
        finally:
            fc2.stop()
    finally:
        fc.stop()


def test_monitor_through_the_tunnel(stack, tmp_path):
    te = TunEdge(stack, tmp_path, monitor=True)
    fc = connected(FakeConnector(te.tun, "gke", TOKEN, name="conn-a"))
    try:
        mt.wait_for(lambda: any(h.get(":path") == "/healthz" and
                                h.get(":authority") == HOST
                                for h, _ in list(fc.requests)),
                    what="a health check through the tunnel")
        # A check may run before the connector joined (the origin then
        # goes unknown -> unhealthy first); what matters is that checks
        # through the tunnel make it healthy.
        mt.wait_for(lambda: re.search(r"origin through-tunnel of pool gke: "
                                      r"(unknown|unhealthy) -> healthy",
                                      te.log()), what="the origin healthy")
    finally:
        fc.stop()
    mt.wait_for(lambda: "origin through-tunnel of pool gke: healthy -> "
                "unhealthy" in te.log(), what="the origin unhealthy")


def test_metrics(stack, tmp_path):
    admin = mt.free_port()
    te = TunEdge(stack, tmp_path, admin=admin,
                 tunnels=[{"id": "gke", "token": TOKEN},
                          {"id": "idle", "token": TOKEN + "-idle"}])
    mt.wait_for(lambda: mt.port_accepts(admin), what="admin listener")

    def metrics():
        r = mt.request(admin, "GET", "/metrics", host="admin")
        assert r.status == 200
        return r.text
    fc = connected(FakeConnector(te.tun, "gke", TOKEN, name="conn-a"))
    try:
        wait_routed(te, "conn-a", "conn-a to serve")
        for _ in range(5):
            assert te.get("/m").status == 200
        st, _, s, _ = hello(te.tun, "gke", "bad" * 12)
        s.close()
        assert st == 401
        m = metrics()
        assert 'meridian_tunnel_connectors{tunnel="gke"} 1' in m
        assert 'meridian_tunnel_connectors{tunnel="idle"} 0' in m
        assert 'meridian_tunnel_hellos_total{result="accepted"} 1' in m
        assert 'meridian_tunnel_hellos_total{result="unauthorized"} 1' in m
        n = int(m.split('meridian_tunnel_requests_total{tunnel="gke"} ')[1]
                .split()[0])
        assert n >= 6
    finally:
        fc.stop()
    mt.wait_for(lambda: 'meridian_tunnel_connectors{tunnel="gke"} 0' in
                metrics(), what="the gauge back to 0")


def test_api_pool_with_a_tunnel_origin(stack, tmp_path):
    """A pool created through the API can name a tunnel of the file; an
    unknown tunnel is refused naming the field, and nothing changes."""
    from test_api import ACCT, Api
    admin = mt.free_port()
    te = TunEdge(stack, tmp_path, admin=admin,
                 tunnels=[{"id": "gke", "token": TOKEN},
                          {"id": "eks", "token": TOKEN + "-eks"}])
    mt.wait_for(lambda: mt.port_accepts(admin), what="admin listener")
    api = Api(admin)
    st, env = api.call("POST", ACCT + "/pools", {
        "name": "via-eks", "origins": [
            {"name": "eks-1", "address": "tunnel:ekz"}]})
    assert st == 400, env
    assert "unknown tunnel 'ekz'; did you mean 'tunnel:eks'?" in \
        json.dumps(env["errors"]), env
    pool = api.ok("POST", ACCT + "/pools", {
        "name": "via-eks", "origins": [
            {"name": "eks-1", "address": "tunnel:eks"}]})
    assert pool["origins"][0]["address"] == "tunnel:eks"
    api.ok("POST", "/client/v4/zones/example.com/load_balancers", {
        "name": "eks.example.com", "default_pools": [pool["id"]],
        "fallback_pool": pool["id"]})
    fc = connected(FakeConnector(te.tun, "eks", TOKEN + "-eks",
                                 name="eks-conn"))
    try:
        def routed():
            r = mt.request(te.http, "GET", "/e", host="eks.example.com")
            return r.status == 200 and \
                json.loads(r.body)["connector"] == "eks-conn"
        mt.wait_for(routed, what="the API's load balancer through eks")
    finally:
        fc.stop()


def test_refused_stream_goes_to_another_connector(stack, tmp_path):
    """A connector that refuses a stream unprocessed (REFUSED_STREAM, as a
    draining one does) gets a request without a body sent again on another
    connector; a request with a body is not sent twice (502)."""
    te = TunEdge(stack, tmp_path)
    bad = connected(FakeConnector(te.tun, "gke", TOKEN, name="bad",
                                  refuse=True))
    good = connected(FakeConnector(te.tun, "gke", TOKEN, name="good"))
    try:
        for i in range(10):
            r = te.get("/g/%d" % i)
            assert r.status == 200, r
            assert json.loads(r.body)["connector"] == "good"
        assert bad.refused >= 3  # ties take turns: bad was picked too
        statuses = set()
        for i in range(6):
            r = mt.request(te.http, "POST", "/p", host=HOST, body=b"x" * 10)
            statuses.add(r.status)
        assert statuses == {200, 502}, statuses
    finally:
        bad.stop()
        good.stop()


def test_cfd_tunnel_api(stack, tmp_path):
    """GET /accounts/{a}/cfd_tunnel[/{id}[/connections]] in Cloudflare's
    shape: status inactive -> degraded (one connection) -> healthy (two)
    -> degraded (one draining) -> down; read-only."""
    from test_api import Api
    admin = mt.free_port()
    te = TunEdge(stack, tmp_path, admin=admin,
                 tunnels=[{"id": "gke", "token": TOKEN,
                           "description": "GKE prod"}])
    mt.wait_for(lambda: mt.port_accepts(admin), what="admin listener")
    api = Api(admin)
    base = "/client/v4/accounts/default/cfd_tunnel"

    def status():
        return api.ok("GET", base + "/gke")["status"]
    t = api.ok("GET", base)
    assert [x["id"] for x in t] == ["gke"]
    assert t[0]["status"] == "inactive" and t[0]["connections"] == []
    assert t[0]["metadata"] == {"description": "GKE prod"}
    a = connected(FakeConnector(te.tun, "gke", TOKEN, name="conn-a"))
    b = None
    try:
        mt.wait_for(lambda: status() == "degraded", what="degraded")
        b = connected(FakeConnector(te.tun, "gke", TOKEN, name="conn-b"))
        mt.wait_for(lambda: status() == "healthy", what="healthy")
        conns = api.ok("GET", base + "/gke/connections")
        assert sorted(c["client_id"] for c in conns) == ["conn-a", "conn-b"]
        for c in conns:
            assert c["colo_name"] == "pop-test"
            assert c["origin_ip"] == "127.0.0.1"
            assert c["opened_at"] and not c["is_pending_reconnect"]
        # A connector going away with a request in flight: its
        # connection is pending until the request is done.
        import threading
        slow = {}
        th = threading.Thread(
            target=lambda: slow.setdefault("r", te.get("/slow/2000")))
        th.start()
        mt.wait_for(lambda: any(h.get(":path") == "/slow/2000"
                                for h, _ in a.requests + b.requests),
                    what="the slow request to arrive")
        goer = a if any(h.get(":path") == "/slow/2000"
                        for h, _ in a.requests) else b
        goer.goaway()
        mt.wait_for(lambda: status() == "degraded", what="one draining")
        conns = api.ok("GET", base + "/gke/connections")
        assert [c["client_id"] for c in conns
                if c["is_pending_reconnect"]] == [goer.name], conns
        th.join(timeout=mt.WAIT)
        assert slow["r"].status == 200
    finally:
        a.stop()
        if b:
            b.stop()
    mt.wait_for(lambda: status() == "down", what="down")
    assert api.ok("GET", base + "/gke")["conns_inactive_at"]
    st, env = api.call("GET", base + "/nope")
    assert st == 404, env
    st, env = api.call("DELETE", base + "/gke")
    assert st == 405, env


def test_many_reconnects_are_not_a_full_tunnel(stack, tmp_path):
    """Connections that come and go free their place: the 70th connector
    connection of a tunnel (64 at most at once) is let in."""
    te = TunEdge(stack, tmp_path)
    for i in range(70):
        st, head, s, _ = hello(te.tun, "gke", TOKEN, name="c%d" % i)
        s.close()
        assert st == 101, (i, head)
        mt.wait_for(lambda: te.log().count("disconnected") >= i + 1,
                    what="connection %d closed" % i)


def test_ctl_tunnels(stack, tmp_path):
    admin = mt.free_port()
    te = TunEdge(stack, tmp_path, admin=admin)
    mt.wait_for(lambda: mt.port_accepts(admin), what="admin listener")
    env = dict(os.environ, MERIDIAN_SERVER="http://%s:%d" % (mt.LOCAL, admin))

    def ctl(*args):
        return subprocess.run([mt.BIN, "ctl"] + list(args), env=env,
                              capture_output=True, text=True,
                              timeout=mt.WAIT)
    fc = connected(FakeConnector(te.tun, "gke", TOKEN, name="conn-a"))
    try:
        mt.wait_for(lambda: "degraded" in ctl("tunnels").stdout,
                    what="the tunnel listed")
        out = ctl("tunnels").stdout.splitlines()
        assert out[0].split() == ["TUNNEL", "STATUS", "CONNECTIONS",
                                  "CONNECTORS"]
        assert out[1].split() == ["gke", "degraded", "1", "conn-a"]
        r = ctl("tunnels", "get", "gke")
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("tunnel gke: degraded\n")
        assert "conn-a" in r.stdout and "127.0.0.1" in r.stdout
        r = ctl("--json", "tunnels", "get", "gke")
        assert json.loads(r.stdout)["connections"][0]["client_id"] == \
            "conn-a"
        r = ctl("tunnels", "get", "nope")
        assert r.returncode == 4, (r.returncode, r.stderr)
        assert ctl("tunnels", "frobnicate").returncode == 2
    finally:
        fc.stop()


def test_dashboard_shows_tunnels(stack, tmp_path):
    """The dashboard's script, run under node against this edge, shows the
    tunnel with its connectors (test_dashboard.py runs the rest)."""
    import shutil
    from test_dashboard import render
    assert shutil.which("node") or shutil.which("nodejs")
    admin = mt.free_port()
    te = TunEdge(stack, tmp_path, admin=admin,
                 tunnels=[{"id": "gke", "token": TOKEN},
                          {"id": "idle", "token": TOKEN + "-idle"}])
    te.e.admin = admin
    mt.wait_for(lambda: mt.port_accepts(admin), what="admin listener")
    fc = connected(FakeConnector(te.tun, "gke", TOKEN, name="conn-a"))
    try:
        wait_routed(te, "conn-a", "conn-a to serve")
        out = render(te.e, "")
        assert out["error"] is None, out
        assert not out["tunHidden"], out
        rows = {r[0]: r for r in out["tunnels"]}
        assert rows["gke"][1] == "1" and rows["idle"][1] == "0", rows
        assert int(rows["gke"][4]) >= 1, rows
    finally:
        fc.stop()


def test_bridge_refuses_other_processes(stack, tmp_path):
    """The bridge socket of a tunnel (abstract AF_UNIX) takes connections
    from the edge's own process only: another local process cannot send
    requests into the tunnel around the edge's routing and policies."""
    import socket
    te = TunEdge(stack, tmp_path)
    fc = connected(FakeConnector(te.tun, "gke", TOKEN, name="conn-a"))
    try:
        wait_routed(te, "conn-a", "the bridge up")
        n = len(fc.requests)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(mt.WAIT)
        s.connect("\0meridian/%d/tunnel/gke" % te.e.pid)
        try:
            s.sendall(b"GET /sneak HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError:
            pass
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        s.close()
        assert data == b"", data
        mt.wait_for(lambda: "refused a connection from another process"
                    in te.log(), what="the refusal logged")
        assert not any(h.get(":path") == "/sneak" for h, _ in
                       fc.requests[n:])
        assert te.get("/after").status == 200  # the edge's own still work
    finally:
        fc.stop()
