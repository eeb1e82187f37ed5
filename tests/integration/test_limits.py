"""Timeouts and limits: each answered with the right status, a short
text/plain body naming the edge, and a close where RFC 9112 says so."""
import select
import socket
import time

import pytest

import meridian_test as mt
from meridian_test import HttpConn, req, request, WAIT

HOST = "lb.example.com"


def one_origin_edge(stack, **kw):
    o = stack.origin("gke-1", "gcp")
    e = stack.edge({"gcp": [("gke-1", o.port)]}, {HOST: ["gcp"]}, **kw)
    return o, e


def assert_error(r, status):
    assert r.status == status, r
    assert r.header("Content-Type", "").startswith("text/plain"), r
    assert mt.EDGE_NAME in r.text, r


# ------------------------------------------------------------ timeouts

def test_client_header_timeout_408(stack):
    o, e = one_origin_edge(stack, timeouts={"client_header": "500ms"})
    with HttpConn(e.port) as c:
        t0 = time.monotonic()
        c.send(b"GET / HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n")
        r = c.read_response()
        assert time.monotonic() - t0 >= 0.45
        assert_error(r, 408)
        assert c.wait_closed()
    assert o.counters()[0] == 0


def test_client_header_timeout_is_total_not_per_read(stack):
    """A slowloris client trickling a byte every 100 ms still gets 408 once
    the whole head has taken longer than client_header."""
    o, e = one_origin_edge(stack, timeouts={"client_header": "500ms"})
    head = b"GET / HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nX-Slow: " + \
        b"a" * 200
    with HttpConn(e.port) as c:
        t0 = time.monotonic()
        got = None
        for i in range(len(head)):
            if time.monotonic() - t0 > WAIT:
                break
            try:
                c.send(head[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([c.sock], [], [], 0.1)[0]:
                break
        got = c.read_response()
        assert_error(got, 408)
        assert time.monotonic() - t0 < WAIT
        assert c.wait_closed()


def test_client_idle_keepalive_closed(stack):
    o, e = one_origin_edge(stack, timeouts={"client_idle": "500ms"})
    with HttpConn(e.port) as c:
        c.send(req())
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.wait_closed(), "idle keep-alive connection not closed"
        assert time.monotonic() - t0 >= 0.45


def test_client_body_timeout_408(stack):
    o, e = one_origin_edge(stack, timeouts={"client_body": "500ms"})
    with HttpConn(e.port) as c:
        c.send(req("POST", "/upload", headers=[("Content-Length", "100")]) +
               b"x" * 10)  # then nothing: the body stalls
        t0 = time.monotonic()
        r = c.read_response()
        assert time.monotonic() - t0 >= 0.45
        assert_error(r, 408)
        assert c.wait_closed()


def test_upstream_idle_timeout_closes_pooled_connections(stack):
    o, e = one_origin_edge(stack, workers=1,
                           timeouts={"upstream_idle": "500ms"})
    assert request(e.port).status == 200
    t0 = time.monotonic()
    mt.wait_for(lambda: o.counters()[3] == 0,
                what="the pooled upstream connection to be closed")
    assert time.monotonic() - t0 >= 0.3, "closed long before upstream_idle"


def test_upstream_connections_pooled(stack):
    o, e = one_origin_edge(stack, workers=1)
    for _ in range(5):  # sequential requests on fresh client connections
        assert request(e.port).status == 200
    req_n, _, conns, open_n = o.counters()
    assert req_n == 5 and conns == 1 and open_n == 1, o.counters()


def test_upstream_idle_per_origin_limit(stack):
    o, e = one_origin_edge(stack, workers=1,
                           limits={"upstream_idle_per_origin": 1})
    clients = [HttpConn(e.port) for _ in range(4)]
    try:
        for c in clients:  # four at once: four upstream connections
            c.send(req(path="/sleep/300"))
        for c in clients:
            assert c.read_response().status == 200
    finally:
        for c in clients:
            c.close()
    assert o.counters()[2] == 4
    mt.wait_for(lambda: o.counters()[3] <= 1,
                what="idle upstream connections beyond the limit to close")


def _blackhole():
    """A loopback listener whose accept queue is full: new SYNs are dropped,
    so connecting to it hangs (no non-127 address needed)."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind((mt.LOCAL, 0))
    ls.listen(0)
    addr = ls.getsockname()
    socks = [ls]
    for _ in range(4):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(addr)
        socks.append(s)
    # make sure: a fresh connect does not complete
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setblocking(False)
    probe.connect_ex(addr)
    socks.append(probe)
    _, w, _ = select.select([], [probe], [], 0.5)
    if w and probe.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
        for s in socks:
            s.close()
        raise AssertionError("test set-up: could not fill the accept queue")
    return addr[1], socks


def test_upstream_connect_timeout_504(stack):
    port, socks = _blackhole()
    try:
        e = stack.edge({"gcp": [("gke-1", port)]}, {HOST: ["gcp"]},
                       timeouts={"upstream_connect": "500ms"})
        t0 = time.monotonic()
        r = request(e.port)
        assert time.monotonic() - t0 >= 0.45
        assert_error(r, 504)
    finally:
        for s in socks:
            s.close()


def test_upstream_response_timeout_504(stack):
    o, e = one_origin_edge(stack, timeouts={"upstream_response": "500ms"})
    with HttpConn(e.port) as c:
        t0 = time.monotonic()
        c.send(req(path="/sleep/5000"))
        r = c.read_response()
        assert time.monotonic() - t0 >= 0.45
        assert_error(r, 504)
    # the edge did not reuse the timed-out upstream connection
    for _ in range(5):
        r = request(e.port)
        assert r.status == 200 and r.body == b"gcp gke-1\n", r


# ------------------------------------------------------------ limits

def _assert_rejected_and_closed(port, data, status):
    with HttpConn(port) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the edge may answer and close before we finish sending
        r = c.read_response()
        assert_error(r, status)
        assert c.wait_closed(), "connection not closed after %d" % status


def test_header_bytes_over_limit_431(stack):
    o, e = one_origin_edge(stack, limits={"max_header_bytes": 4096})
    _assert_rejected_and_closed(
        e.port, req(headers=[("X-Big", "a" * 5000)]), 431)
    r = request(e.port, path="/echo", headers=[("X-Big", "a" * 3000)])
    assert r.status == 200
    assert o.counters()[0] == 1


def test_too_many_headers_431(stack):
    o, e = one_origin_edge(stack, limits={"max_headers": 20})
    many = [("X-H%d" % i, "v") for i in range(30)]
    _assert_rejected_and_closed(e.port, req(headers=many), 431)
    r = request(e.port, headers=many[:10])
    assert r.status == 200
    assert o.counters()[0] == 1


def test_request_target_too_long_414(stack):
    o, e = one_origin_edge(stack)
    _assert_rejected_and_closed(e.port, req(path="/" + "a" * 12000), 414)
    assert request(e.port, path="/" + "a" * 2000).status == 200


def test_body_over_limit_413_content_length(stack):
    o, e = one_origin_edge(stack, limits={"max_body_bytes": 1000})
    _assert_rejected_and_closed(
        e.port, req("POST", "/upload", body=b"x" * 2000), 413)
    assert o.counters()[0] == 0, "a body over the limit reached the origin"
    r = request(e.port, "POST", "/upload", body=b"x" * 1000)
    assert r.status == 200 and r.text.startswith("length 1000\n")


def test_body_over_limit_413_chunked(stack):
    o, e = one_origin_edge(stack, limits={"max_body_bytes": 1000})
    body = mt.chunked(b"y" * 3000, 500)
    _assert_rejected_and_closed(
        e.port, req("POST", "/upload", body=body,
                    headers=[("Transfer-Encoding", "chunked")]), 413)
    r = request(e.port, "POST", "/upload", body=mt.chunked(b"y" * 900, 100),
                headers=[("Transfer-Encoding", "chunked")])
    assert r.status == 200 and r.text.startswith("length 900\n")


def test_max_connections(stack):
    o, e = one_origin_edge(stack, limits={"max_connections": 4})
    held = []
    try:
        for _ in range(4):
            c = HttpConn(e.port)
            held.append(c)
            c.send(req())
            assert c.read_response().status == 200
        # one more: a client sees 503 or a refused / closed connection,
        # never a normal answer
        try:
            with HttpConn(e.port) as c:
                c.send(req())
                r = c.read_response()
                assert_error(r, 503)
        except (mt.Closed, ConnectionRefusedError, BrokenPipeError,
                ConnectionResetError):
            pass
        except TimeoutError:
            raise AssertionError("connection over the limit left hanging")
        # the held connections still work
        for c in held:
            c.send(req())
            assert c.read_response().status == 200
    finally:
        for c in held:
            c.close()

    # once they are gone, new connections are served again
    def served():
        try:
            return request(e.port, timeout=5).status == 200
        except (OSError, mt.Closed):
            return False

    mt.wait_for(served, what="a connection to be served after others closed")


def test_error_status_does_not_leak_across_keepalive(stack):
    """A 404 (not a parse error) keeps the connection usable."""
    o, e = one_origin_edge(stack)
    with HttpConn(e.port) as c:
        c.send(req(host="nope.example.org"))
        assert_error(c.read_response(), 404)
        try:
            c.send(req())
            r = c.read_response()
        except (mt.Closed, BrokenPipeError, ConnectionResetError):
            pytest.fail("edge closed the connection after a 404")
        assert r.status == 200


# ------------------------------------------------------ descriptors

def _nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no open-file limit in /proc/%d/limits" % pid)


def test_edge_raises_its_open_file_limit(stack):
    """Started with a soft RLIMIT_NOFILE of 256 (systemd's default is
    1,024), the edge raises it to the hard limit and says so, so that
    max_connections and kept health connections are not capped by it."""
    import resource
    import shutil
    if not shutil.which("prlimit"):
        pytest.skip("prlimit (util-linux) is not installed")
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] <= 256:
        pytest.skip("the hard open-file limit is 256 or less")
    o = stack.origin("gke-1", "gcp")
    port = mt.free_port()
    cfg = mt.edge_config({"gcp": [("gke-1", o.port)]}, {HOST: ["gcp"]},
                         port)
    e = mt.Edge(stack.logdir, cfg, port, tag="edge-nofile",
                wrap=["prlimit", "--nofile=256:", "--"])
    stack.edges.append(e)
    soft, hard = _nofile(e.pid)
    assert soft == hard and hard > 256, (soft, hard)
    assert "open-file limit raised from 256 to %d" % hard in \
        e.stderr_tail(1 << 16), e.stderr_tail()
    r = request(e.port, "GET", "/", host=HOST)
    assert r.status == 200, r


def _nfd(pid):
    import os
    return len(os.listdir("/proc/%d/fd" % pid))


def test_out_of_descriptors_blames_no_origin(stack):
    """With its descriptors used up by clients, the edge cannot open a
    connection to the origin: it answers 503 and blames nobody. (It used
    to count each one as a failure of the origin, so a local shortage
    ejected every healthy origin.)"""
    import shutil
    if not shutil.which("prlimit"):
        pytest.skip("prlimit (util-linux) is not installed")
    o = stack.origin("gke-1", "gcp")
    port, admin = mt.free_port(), mt.free_port()
    cfg = {"edge": {"name": mt.EDGE_NAME, "workers": 1,
                    "store": str(stack.logdir / "nofd.db"),
                    "listen": {"http": ["%s:%d" % (mt.LOCAL, port)],
                               "admin": "%s:%d" % (mt.LOCAL, admin)},
                    "passive_health": {"failures": 1, "ejection": "1m"},
                    "timeouts": {"drain": "1s"}},
           "pools": [{"id": "p", "origins": [
               {"name": "o1", "address": mt.LOCAL, "port": o.port}]}],
           "load_balancers": [{"name": HOST, "default_pools": ["p"]}]}
    e = mt.Edge(stack.logdir, mt.to_yaml(cfg) + "\n", port, tag="edge-nofd",
                wrap=["prlimit", "--nofile=64:64", "--"])
    stack.edges.append(e)
    held = []  # (no request before: a pooled origin connection would serve)
    try:
        # Clients until the edge has no descriptor left (the rest wait
        # in the listen queue).
        for _ in range(80):
            held.append(socket.create_connection((mt.LOCAL, port),
                                                 timeout=WAIT))
        mt.wait_for(lambda: _nfd(e.pid) >= 64,
                    what="the edge's descriptors to run out")
        held[0].sendall(req())
        held[0].settimeout(WAIT)
        head = held[0].recv(4096)
        assert head.startswith(b"HTTP/1.1 503 "), head[:200]
        assert b"out of resources" in head, head
    finally:
        for s in held:
            s.close()
    mt.wait_for(lambda: _nfd(e.pid) < 40, what="the descriptors back")
    # The origin was not ejected: it still answers.
    r = request(port, "GET", "/", host=HOST)
    assert r.status == 200, r
    m = request(admin, "GET", "/metrics", host="admin").body.decode()
    assert 'meridian_passive_ejections_total{pool="p",origin="o1"} 0' in m, \
        [x for x in m.splitlines() if "ejections" in x]


def test_a_stalled_stderr_reader_blocks_no_worker(stack, tmp_path):
    """stderr is a pipe nobody reads: once it is full, log lines are
    dropped (and counted), but the workers go on answering. (A worker
    used to block in write(2) on the full pipe.)"""
    import subprocess
    o = stack.origin("gke-1", "gcp")
    dead = mt.free_port()  # nobody listens: every request logs
    port = mt.free_port()
    cfg = mt.edge_config({"gcp": [("gke-1", o.port)],
                          "dead": [("d1", dead)]},
                         {HOST: ["gcp"], "dead.example.com": ["dead"]},
                         port, workers=1,
                         store=str(tmp_path / "s.db"))
    path = tmp_path / "e.yaml"
    path.write_text(cfg)
    p = subprocess.Popen([mt.BIN, "edge", "-c", str(path)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        mt.wait_for(lambda: mt.port_accepts(port), what="the edge")
        with HttpConn(port) as c:
            for _ in range(1500):  # some 150 KB of log lines
                c.send(req(host="dead.example.com"))
                r = c.read_response()
                assert r.status in (502, 503), r
        r = request(port, "GET", "/", host=HOST)
        assert r.status == 200, r
    finally:
        p.kill()
        p.wait(timeout=WAIT)
        p.stderr.close()
