"""Tunnels end to end: real edges (`meridian edge` with a tunnel listener),
real connectors (`meridian tunnel`) and real origins (`meridian origin`),
all on 127.0.0.1. A connector keeps connections to two edges and serves
through the other when one goes; connectors restart one at a time under
load without a failed request (a stream refused by a draining connector
goes again on another); bodies stream both ways; an edge restarted is
rejoined. Every wait has a deadline; every load loop is bounded."""
import hashlib
import os
import signal
import socket
import subprocess
import threading

import pytest

import meridian_test as mt
from test_tunnel_edge import HOST, TOKEN, config, make_cert

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "openssl"], capture_output=True).returncode,
    reason="needs the openssl CLI")


class E2E:
    def __init__(self, stack, tmp):
        self.stack = stack
        self.tmp = tmp
        self.edges = []
        self.origin = stack.origin("pod-1", cloud="onprem")

    def edge(self, http=None, tun=None):
        http = http or mt.free_port()
        tun = tun or mt.free_port()
        e = mt.Edge(self.stack.logdir, config(self.tmp, http, tun), http,
                    "edge%d" % len(self.stack.edges))
        e.tun = tun
        self.stack.procs.append(e)
        self.stack.edges.append(e)
        mt.wait_for(lambda: mt.port_accepts(tun), what="tunnel listener")
        return e

    def connector(self, edges, name, per_edge=1, drain="10s", ingress=()):
        cert, _ = make_cert(str(self.tmp))
        path = os.path.join(str(self.tmp), name + ".yaml")
        with open(path, "w") as f:
            f.write(mt.to_yaml({
                "tunnel": "gke", "token": TOKEN, "name": name,
                "edges": ["%s:%d" % (mt.LOCAL, e.tun) for e in edges],
                "connections_per_edge": per_edge,
                "server_name": "edge.example.com", "ca": cert,
                "drain_timeout": drain,
                "ingress": list(ingress) + [
                    {"hostname": HOST, "service": "http://%s:%d" %
                     (mt.LOCAL, self.origin.port)},
                    {"service": "http_status:404"}]}) + "\n")
        return self.stack.spawn([mt.BIN, "tunnel", "-c", path],
                                "tunnel-" + name)


def joined(e, name, n=1):
    """Edge e logged n connections of connector `name`."""
    needle = "connector %s (127.0.0.1) connected" % name
    return lambda: e.stderr_tail(1 << 20).count(needle) >= n


def served(e):
    r = mt.request(e.port, "GET", "/", host=HOST)
    return r.status == 200 and r.body.startswith(b"onprem pod-1")


def test_one_connector_two_edges(stack, tmp_path):
    lab = E2E(stack, tmp_path)
    a, b = lab.edge(), lab.edge()
    c = lab.connector([a, b], "conn-1")
    mt.wait_for(joined(a, "conn-1"), what="conn-1 on edge a")
    mt.wait_for(joined(b, "conn-1"), what="conn-1 on edge b")
    mt.wait_for(lambda: served(a) and served(b), what="both edges served")
    # Edge a stops (SIGTERM: GOAWAY to the connector); b goes on.
    a.expect_exit = True
    assert a.terminate(timeout=mt.WAIT) == 0
    for _ in range(20):
        assert served(b)
    # a comes back on the same ports: the connector dials it again.
    a2 = lab.edge(http=a.port, tun=a.tun)
    mt.wait_for(joined(a2, "conn-1"), timeout=40,
                what="the connector back on the restarted edge")
    mt.wait_for(lambda: served(a2), what="the restarted edge served")
    assert c.alive(), c.describe()


def test_rolling_connector_restart_without_errors(stack, tmp_path):
    lab = E2E(stack, tmp_path)
    e = lab.edge()
    c1 = lab.connector([e], "conn-1", per_edge=2)
    c2 = lab.connector([e], "conn-2", per_edge=2)
    mt.wait_for(joined(e, "conn-1", 2), what="conn-1 joined")
    mt.wait_for(joined(e, "conn-2", 2), what="conn-2 joined")
    mt.wait_for(lambda: served(e), what="served")
    statuses = []
    stop = threading.Event()

    def load():
        # Bounded: at most 3,000 requests, and stops when told.
        with mt.HttpConn(e.port) as conn:
            for i in range(3000):
                if stop.is_set():
                    break
                conn.send(mt.req("GET", "/r/%d" % i, host=HOST))
                statuses.append(conn.read_response().status)
    th = threading.Thread(target=load)
    th.start()
    try:
        mt.wait_for(lambda: len(statuses) >= 100, what="load running")
        # conn-1 drains (GOAWAY); then a new conn-1 starts, then conn-2
        # drains: at every moment one connector serves.
        c1.expect_exit = True
        assert c1.terminate(timeout=mt.WAIT) == 0
        c3 = lab.connector([e], "conn-3", per_edge=2)
        mt.wait_for(joined(e, "conn-3", 2), what="conn-3 joined")
        n = len(statuses)
        mt.wait_for(lambda: len(statuses) >= n + 100,
                    what="load through conn-2 and conn-3")
        c2.expect_exit = True
        assert c2.terminate(timeout=mt.WAIT) == 0
        n = len(statuses)
        mt.wait_for(lambda: len(statuses) >= n + 100,
                    what="load through conn-3 alone")
    finally:
        stop.set()
        th.join(timeout=mt.WAIT)
    assert statuses and set(statuses) == {200}, \
        {s: statuses.count(s) for s in set(statuses)}
    assert c3.alive()


def test_streaming_both_ways(stack, tmp_path):
    lab = E2E(stack, tmp_path)
    e = lab.edge()
    lab.connector([e], "conn-1")
    mt.wait_for(lambda: served(e), what="served")
    size = (4 << 20) if mt.ASAN else (32 << 20)
    # Download, fixed length and chunked.
    for path in ("/bytes/%d" % size, "/chunked/%d" % size):
        check = mt.BodyCheck()
        with mt.HttpConn(e.port) as conn:
            conn.send(mt.req("GET", path, host=HOST))
            r = conn.read_response(sink=check)
        assert r.status == 200, r
        assert check.n == size and check.first_bad is None
    # Upload: the origin says what it received.
    body = os.urandom(size)
    r = mt.request(e.port, "POST", "/upload", host=HOST, body=body)
    assert r.status == 200, r
    assert ("length %d" % size).encode() in r.body
    import zlib
    assert ("adler32 %08x" % zlib.adler32(body)).encode() in r.body
    # Several at once through one connection to the edge each.
    results = []

    def one(i):
        r = mt.request(e.port, "GET", "/bytes/%d" % (1 << 20), host=HOST)
        results.append(hashlib.sha256(r.body).hexdigest()
                       if r.status == 200 else r.status)
    ths = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(timeout=mt.WAIT)
    assert len(results) == 8 and len(set(results)) == 1, results


def test_service_connections_are_kept_alive(stack, tmp_path):
    """The connector keeps its connections to a service between requests:
    50 requests in a row reach the origin on one connection or two, not
    50."""
    lab = E2E(stack, tmp_path)
    e = lab.edge()
    lab.connector([e], "conn-1")
    mt.wait_for(lambda: served(e), what="served")
    before = lab.origin.counters()
    with mt.HttpConn(e.port) as conn:
        for i in range(50):
            conn.send(mt.req("GET", "/k/%d" % i, host=HOST))
            assert conn.read_response().status == 200
    after = lab.origin.counters()
    assert after[0] - before[0] == 50, (before, after)
    assert after[2] - before[2] <= 2, (before, after)


def test_service_closing_a_kept_connection(stack, tmp_path):
    """A service that closes a kept-alive connection as the next request
    arrives (the keep-alive race) costs nothing: the connector sends the
    request again on a new connection."""
    import socket
    lab = E2E(stack, tmp_path)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((mt.LOCAL, 0))
    srv.listen(64)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    stop = threading.Event()
    conns = []

    def serve():
        # Answers the first request of each connection (keep-alive, a
        # length), then closes the connection when the second arrives.
        while not stop.is_set():
            try:
                s, _ = srv.accept()
            except OSError:
                continue
            conns.append(s)
            s.settimeout(1)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    d = s.recv(4096)
                    if not d:
                        break
                    data += d
                if data:
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                              b"racy\n")
                    s.recv(4096)  # the next request: close unanswered
            except OSError:
                pass
            s.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    try:
        lab.origin.port = port  # the connector's service
        e = lab.edge()
        lab.connector([e], "conn-1")

        def ok():
            r = mt.request(e.port, "GET", "/", host=HOST)
            return r.status == 200 and r.body == b"racy\n"
        mt.wait_for(ok, what="served")
        for i in range(10):
            r = mt.request(e.port, "GET", "/r/%d" % i, host=HOST)
            assert r.status == 200 and r.body == b"racy\n", (i, r)
        assert len(conns) >= 11
    finally:
        stop.set()
        th.join(timeout=mt.WAIT)
        srv.close()


class SlowService:
    """An HTTP/1.1 service for the flow-control tests. /stuck: the head is
    read, the body never (the connector's writes to it block). /big: a
    200 MB body, sent as far as the peer takes it (`sent` counts it).
    Anything else: the body is read whole and its length answered."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((mt.LOCAL, 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.conns = []
        self.sent = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        for _ in range(10000):
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def serve(self, c):
        try:
            f = c.makefile("rb")
            for _ in range(1000):  # requests on this connection
                line = f.readline(65536)
                if not line:
                    return
                n = 0
                for _ in range(100):
                    h = f.readline(65536)
                    if h in (b"\r\n", b""):
                        break
                    k, _, v = h.partition(b":")
                    if k.strip().lower() == b"content-length":
                        n = int(v)
                path = line.split()[1]
                if path.startswith(b"/stuck"):
                    self.stop.wait(mt.WAIT * 4)
                    return
                if path.startswith(b"/big"):
                    total = 200 << 20
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                              b"\r\n" % total)
                    chunk = b"x" * 65536
                    for _ in range(total // len(chunk)):
                        if self.stop.is_set():
                            return
                        c.sendall(chunk)
                        with self.lock:
                            self.sent += len(chunk)
                    continue
                left = n
                for _ in range(1 << 20):
                    if left <= 0:
                        break
                    d = f.read(min(left, 65536))
                    if not d:
                        return
                    left -= len(d)
                body = b"got %d\n" % n
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                          % len(body) + body)
        except OSError:
            return

    def close(self):
        self.stop.set()
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()


def settled(counter):
    """A condition: counter() did not move since the last poll."""
    last = [None]

    def ok():
        v = counter()
        same = v == last[0]
        last[0] = v
        return same
    return ok


def test_stuck_uploads_do_not_stall_the_other_streams(stack, tmp_path):
    """Uploads to a service that reads none of them hold their streams'
    windows, never the whole connection's: another upload on the same
    tunnel connection goes through (before, four stuck streams of 256 KiB
    closed the connector's 1 MiB connection window for every stream)."""
    svc = SlowService()
    try:
        lab = E2E(stack, tmp_path)
        e = lab.edge()
        lab.connector([e], "conn-1", ingress=[
            {"hostname": HOST, "path": "/stuck",
             "service": "http://%s:%d" % (mt.LOCAL, svc.port)},
            {"hostname": HOST, "path": "/up",
             "service": "http://%s:%d" % (mt.LOCAL, svc.port)}])
        mt.wait_for(joined(e, "conn-1"), what="conn-1 joined")
        mt.wait_for(lambda: served(e), what="served")
        sent = [0] * 8
        socks = []

        def upload(i, s):
            head = mt.req("POST", "/stuck/%d" % i, host=HOST,
                          headers=[("Content-Length", str(64 << 20))])
            chunk = b"u" * 65536
            try:
                s.sendall(head)
                for _ in range(1024):
                    s.sendall(chunk)
                    sent[i] += len(chunk)
            except OSError:
                return
        for i in range(len(sent)):
            s = socket.create_connection((mt.LOCAL, e.port))
            socks.append(s)
            threading.Thread(target=upload, args=(i, s), daemon=True).start()
        try:
            mt.wait_for(lambda: len(svc.conns) >= len(sent),
                        what="the stuck uploads at the service")
            mt.wait_for(settled(lambda: sum(sent)), interval=0.5,
                        what="the stuck uploads stalled")
            body = b"p" * (512 << 10)
            r = mt.request(e.port, "POST", "/up", host=HOST, body=body)
            assert r.status == 200, r
            assert r.body == b"got %d\n" % len(body)
        finally:
            for s in socks:
                s.close()
    finally:
        svc.close()


def test_slow_readers_do_not_stall_the_other_streams(stack, tmp_path):
    """Clients that stop reading hold their streams' windows on the link,
    never the whole link's: with more of them than the link's connection
    window holds (16 MiB / 256 KiB: 64), other answers still flow (before,
    the edge gave the connection window back only as the clients read)."""
    svc = SlowService()
    try:
        lab = E2E(stack, tmp_path)
        e = lab.edge()
        lab.connector([e], "conn-1", ingress=[
            {"hostname": HOST, "path": "/big",
             "service": "http://%s:%d" % (mt.LOCAL, svc.port)}])
        mt.wait_for(joined(e, "conn-1"), what="conn-1 joined")
        mt.wait_for(lambda: served(e), what="served")
        socks = []
        try:
            for i in range(90):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.connect((mt.LOCAL, e.port))
                s.sendall(mt.req("GET", "/big/%d" % i, host=HOST))
                socks.append(s)
            mt.wait_for(lambda: len(svc.conns) >= len(socks),
                        what="the downloads at the service")
            mt.wait_for(settled(lambda: svc.sent), interval=0.5,
                        what="the downloads stalled")
            for _ in range(3):
                r = mt.request(e.port, "GET", "/bytes/300000", host=HOST)
                assert r.status == 200, r
                assert len(r.body) == 300000
        finally:
            for s in socks:
                s.close()
    finally:
        svc.close()


def test_upgrade_requests_do_not_eject_the_tunnel(stack, tmp_path):
    """A WebSocket request to a tunnel origin is answered 501 (tunnels do
    not carry upgrades yet); that answer says nothing of the tunnel's
    health. Before, passive health counted it as a 5xx of the origin:
    three of them, from any client, took the tunnel out of rotation."""
    lab = E2E(stack, tmp_path)
    e = lab.edge()
    lab.connector([e], "conn-1")
    mt.wait_for(joined(e, "conn-1"), what="conn-1 joined")
    mt.wait_for(lambda: served(e), what="served")
    for i in range(6):
        r = mt.request(e.port, "GET", "/ws/%d" % i, host=HOST, headers=[
            ("Connection", "Upgrade"), ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13")])
        assert r.status == 501, r
    for _ in range(5):
        assert served(e)
    assert "ejected" not in e.stderr_tail(1 << 20)
