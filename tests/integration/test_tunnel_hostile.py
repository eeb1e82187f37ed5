"""The edge's tunnel endpoint under load and against hostile peers: more
connections at once than one accept batch, unauthenticated peers holding
connections, a connector that misbehaves. Fake connectors (tunnel_fake.py);
everything on 127.0.0.1, every wait with a deadline."""
import json
import os
import resource
import signal
import socket
import ssl
import time

import meridian_test as mt
from test_tunnel_edge import HOST, TOKEN, TunEdge, connected, wait_routed
from tunnel_fake import FakeConnector


def stopped(edge):
    """SIGSTOP the edge until the with-block ends (then SIGCONT)."""
    class Ctx:
        def __enter__(self):
            os.kill(edge.pid, signal.SIGSTOP)

        def __exit__(self, *a):
            os.kill(edge.pid, signal.SIGCONT)
    return Ctx()


def tls_handshake(raw, deadline):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw.settimeout(max(0.1, deadline - time.monotonic()))
    s = ctx.wrap_socket(raw, server_hostname="edge.example.com")
    return s


def test_more_connectors_at_once_than_one_accept_batch(stack, tmp_path):
    """Connections that queued up while the tunnel thread was busy are all
    taken, not only the first 64 (the listener is edge-triggered)."""
    te = TunEdge(stack, tmp_path)
    n = 150
    socks = []
    try:
        with stopped(te.e):
            for _ in range(n):
                socks.append(socket.create_connection((mt.LOCAL, te.tun),
                                                      timeout=mt.WAIT))
        deadline = time.monotonic() + 2 * mt.WAIT
        for i, raw in enumerate(socks):
            try:
                socks[i] = tls_handshake(raw, deadline)
            except (OSError, ssl.SSLError) as e:
                raise AssertionError("connection %d of %d not served: %r"
                                     % (i, n, e))
    finally:
        for s in socks:
            s.close()
    te.e.check_alive()


def test_more_worker_connections_at_once_than_one_accept_batch(stack,
                                                               tmp_path):
    """Many requests queued at once while the edge was stopped (its
    workers then open many bridge connections together, more than one
    accept batch of old) are all answered through the tunnel. (The bridge
    takes connections from the edge's own process only, so the requests
    go through the edge's HTTP listener.)"""
    te = TunEdge(stack, tmp_path)
    fc = connected(FakeConnector(te.tun, "gke", TOKEN, name="conn-a"))
    socks = []
    try:
        wait_routed(te, "conn-a", "the bridge to be up")
        n = 150
        with stopped(te.e):
            for i in range(n):
                s = socket.create_connection((mt.LOCAL, te.http),
                                             timeout=mt.WAIT)
                s.sendall(b"GET /b/%d HTTP/1.1\r\nHost: %s\r\n"
                          b"Connection: close\r\n\r\n" % (i, HOST.encode()))
                socks.append(s)
        deadline = time.monotonic() + 2 * mt.WAIT
        for i, s in enumerate(socks):
            buf = b""
            while time.monotonic() < deadline:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    d = s.recv(65536)
                except socket.timeout:
                    break
                if not d:
                    break
                buf += d
            assert buf.startswith(b"HTTP/1.1 200"), (i, buf[:200])
            assert b'"/b/%d"' % i in buf
    finally:
        for s in socks:
            s.close()
        fc.stop()


def test_unauthenticated_connections_cannot_take_the_descriptors(stack,
                                                                 tmp_path):
    """Peers that open connections to the tunnel listener and never say
    hello (no TLS even) cannot take the edge's descriptors: past 256 of
    them the oldest is closed, so clients are still served and a real
    connector still joins."""
    from test_tunnel_edge import config
    import select
    backup = stack.origin("backup")
    http, tun = mt.free_port(), mt.free_port()
    e = mt.Edge(stack.logdir, config(tmp_path, http, tun,
                                     backup_port=backup.port),
                http, "edge-nofile",
                wrap=("prlimit", "--nofile=600:600", "--"))
    stack.procs.append(e)
    stack.edges.append(e)
    mt.wait_for(lambda: mt.port_accepts(tun), what="tunnel listener")
    n = 700
    socks = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection((mt.LOCAL, tun),
                                                  timeout=mt.WAIT))

        def cut():
            p = select.poll()
            for s in socks:
                p.register(s, select.POLLIN)
            return len(p.poll(0)) >= n - 256 or None
        mt.wait_for(cut, what="the oldest idle connections to be closed")
        r = mt.request(http, "GET", "/", host=HOST)
        assert r.status == 200, r
        fc = FakeConnector(tun, "gke", TOKEN, name="real")
        try:
            assert fc.status == 101, fc.head
        finally:
            fc.stop()
        # Lines are written in order: once the connector's is out, any
        # accept failure of the flood before it is too.
        mt.wait_for(lambda: "connector real (127.0.0.1) connected"
                    in e.stderr_tail(1 << 20), what="the join logged")
        log = e.stderr_tail(1 << 20)
        assert "Too many open files" not in log
        assert "connections without a hello; closing the oldest" in log
    finally:
        for s in socks:
            s.close()
    e.check_alive()


def test_request_queued_behind_a_goaway_goes_elsewhere(stack, tmp_path):
    """A request the edge has accepted but not yet sent on a connection
    (the connector allows one stream at a time, one is busy) when that
    connector sends GOAWAY is sent on another connector, not left
    waiting."""
    import threading
    import h2.settings
    admin = mt.free_port()
    te = TunEdge(stack, tmp_path, admin=admin)
    mt.wait_for(lambda: mt.port_accepts(admin), what="admin listener")

    def requests_total():
        m = mt.request(admin, "GET", "/metrics", host="admin").text
        return int(m.split('meridian_tunnel_requests_total{tunnel="gke"} ')
                   [1].split()[0])
    a = connected(FakeConnector(
        te.tun, "gke", TOKEN, name="conn-a",
        settings={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1}))
    b = None
    res = {}

    def get(key, path):
        try:
            res[key] = te.get(path)
        except Exception as e:  # noqa: BLE001 (reported below)
            res[key] = e
    ts = []
    try:
        wait_routed(te, "conn-a", "conn-a to serve")
        n0 = requests_total()
        ts.append(threading.Thread(target=get, args=("slow", "/slow/3000")))
        ts[-1].start()
        mt.wait_for(lambda: requests_total() >= n0 + 1 and
                    any(h.get(":path") == "/slow/3000"
                        for h in [st["headers"]
                                  for st in list(a.streams.values())]),
                    what="the slow request at conn-a")
        ts.append(threading.Thread(target=get, args=("queued", "/queued")))
        ts[-1].start()
        # In the edge (counted) but not at conn-a: its one stream is busy.
        mt.wait_for(lambda: requests_total() >= n0 + 2,
                    what="the second request in the edge")
        b = connected(FakeConnector(te.tun, "gke", TOKEN, name="conn-b"))
        mt.wait_for(lambda: "connector conn-b (127.0.0.1) connected" in
                    te.log(), what="conn-b joined")
        a.goaway()
        for t in ts:
            t.join(timeout=2 * mt.WAIT)
        r = res.get("queued")
        assert isinstance(r, mt.Response) and r.status == 200, r
        assert json.loads(r.body)["connector"] == "conn-b"
        r = res.get("slow")
        assert isinstance(r, mt.Response) and r.status == 200, r
    finally:
        a.stop()
        if b:
            b.stop()
