"""The origin side of an exchange when timing goes wrong: bytes an origin
sends after its answer never reach another request, a client that is slow
to send its body is the client's fault (408, not an origin failure), and
an origin that stalls inside its response head still gets the client a
504. Origins are scripted raw sockets on 127.0.0.1; every wait has a
deadline."""
import socket
import threading

import h2.events
import h2.settings

import meridian_test as mt
from test_health import lab  # noqa: F401  (the fixture)
from test_health import HOST, FakeOrigin
from test_h2 import H2Client, pytestmark  # noqa: F401
from test_tls import certs


def answer(body, status=b"200 OK"):
    return (b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n"
            % len(body) + body)


def path_of(head):
    return head.split(b" ", 2)[1]


# The edge's buffer with the default max_header_bytes (16k + 4k, rounded
# up to a power of two): an HTTP/2 stream holds one of these of response
# body, the exchange another.
EDGE_BUF = 32768
FIRST = b"f" * (EDGE_BUF + EDGE_BUF // 2)


class TrailingBytes(FakeOrigin):
    """/first is answered (FIRST), then, when the test says so, the same
    connection gets a second, unasked-for answer ("POISON"); every other
    path is answered "good"."""

    def __init__(self, name):
        super().__init__(name)
        self.go = threading.Event()
        self.sent = threading.Event()

    def handle(self, s):
        for head in self._heads(s):
            if path_of(head) == b"/first":
                s.sendall(answer(FIRST))
                if self.go.wait(mt.WAIT):
                    s.sendall(answer(b"POISON"))
                self.sent.set()
            else:
                s.sendall(answer(b"good"))


def test_bytes_after_an_answer_never_answer_the_next_request(lab, tmp_path):
    """The answer is framed but cannot be written yet (the HTTP/2 client
    gave no window: the stream's buffer is full and the exchange holds the
    rest), and meanwhile the origin sends more: that edge event is spent
    while nobody reads the origin, so the connection must not go back to
    the pool, or the next request would get the stray bytes."""
    o = lab.fake(TrailingBytes, "t1")
    hp = mt.free_port()
    e = lab.edge([{"id": "p", "origins": [{"name": "t1", "address": mt.LOCAL,
                                            "port": o.port}]}],
                 [{"name": HOST, "default_pools": ["p"]}], workers=1,
                 https_port=hp, edge_extra={"tls": certs(tmp_path)})
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    settings = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}
    with H2Client(hp, settings=settings) as c:
        sid = c.request("/first")
        c.pump(lambda s: s.of(sid, h2.events.ResponseReceived),
               "the response head")
        o.go.set()
        assert o.sent.wait(mt.WAIT)
        # A PING answered after the stray bytes were in the edge's socket:
        # the worker has been through the epoll batch that reported them.
        c.c.ping(b"12345678")
        c.flush()
        c.pump(lambda s: any(isinstance(ev, h2.events.PingAckReceived)
                             for ev in s.events), "the PING ack")
        # Now let the answer through.
        c.c.update_settings(
            {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535})
        c.flush()
        c.pump(lambda s: s.of(sid, h2.events.StreamEnded), "the answer")
        body = b"".join(ev.data for ev in c.of(sid, h2.events.DataReceived))
        assert body == FIRST
    # The next request, on the same worker, gets its own answer.
    for i in range(3):
        r = mt.request(e.port, path="/next%d" % i)
        assert r.status == 200 and r.body == b"good", (r.status, r.body)
    # The connection with the stray bytes was closed, not reused.
    assert o.connections == 2, o.connections


class StallsAfter(FakeOrigin):
    """Reads a request head, sends `prefix` (nothing, part of a head, a
    100 Continue), then neither answers nor closes until stopped."""

    prefix = b""

    def handle(self, s):
        for head in self._heads(s):
            if self.prefix:
                s.sendall(self.prefix)
            for _ in range(int(mt.WAIT * 10)):
                if self.stopping:
                    return
                try:
                    s.settimeout(0.1)
                    if not s.recv(4096):
                        return
                except socket.timeout:
                    continue
                except OSError:
                    return


def _stalling_edge(lab, prefix, timeouts):
    o = lab.fake(StallsAfter, "s1")
    o.prefix = prefix
    return o, lab.edge(
        [{"id": "p", "origins": [{"name": "s1", "address": mt.LOCAL,
                                  "port": o.port}]}],
        [{"name": HOST, "default_pools": ["p"]}], workers=1,
        passive={"failures": 1, "ejection": "1m"},
        edge_extra={"timeouts": timeouts})


def _read_all(s):
    data = b""
    s.settimeout(mt.WAIT)
    for _ in range(1000):
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        data += d
    return data


def test_a_slow_request_body_is_the_clients_fault(lab):
    """upstream_response (1 s) passes while the client pauses in its body:
    the origin is not waited on then, so the edge answers 408 at
    client_body (3 s), and the origin is not blamed (a failure would eject
    it: passive_health.failures is 1)."""
    o, e = _stalling_edge(lab, b"", {"upstream_response": "1s",
                                     "client_body": "3s"})
    s = socket.create_connection((mt.LOCAL, e.port), timeout=mt.WAIT)
    s.sendall(mt.req("POST", "/up", headers=[("Content-Length", "100")])
              + b"x" * 10)
    data = _read_all(s)
    s.close()
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    m = mt.request(e.admin, "GET", "/metrics", host="admin").body.decode()
    assert ('meridian_origin_failures_total{pool="p",origin="s1"} 0'
            in m), [x for x in m.splitlines() if "failures_total" in x]


def test_timeout_inside_a_response_head_is_a_504(lab):
    for prefix in (b"HTTP/1.1 200 OK\r\nX-A: b\r\n",
                   b"HTTP/1.1 100 Continue\r\n\r\n"):
        o, e = _stalling_edge(lab, prefix, {"upstream_response": "1s"})
        s = socket.create_connection((mt.LOCAL, e.port), timeout=mt.WAIT)
        s.sendall(mt.req("POST", "/x", headers=[("Content-Length", "2"),
                                                ("Expect", "100-continue")])
                  + b"ok")
        data = _read_all(s)
        s.close()
        if prefix.startswith(b"HTTP/1.1 100"):
            assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), data
            data = data[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        assert data.startswith(b"HTTP/1.1 504 "), (prefix, data[:300])
        assert b"did not answer in time" in data, data


class Holds(FakeOrigin):
    """Takes a request and never answers; notes when the edge closes the
    connection it came on."""

    def __init__(self, name):
        super().__init__(name)
        self.got = threading.Event()
        self.dropped = threading.Event()

    def handle(self, s):
        for _ in self._heads(s):
            self.got.set()
            s.settimeout(None)
            try:
                while s.recv(4096):  # until the edge closes (or teardown)
                    pass
            except OSError:
                pass
            self.dropped.set()
            return


def test_a_client_reset_while_waiting_ends_the_exchange(lab):
    """Regression: a client that reset its connection (RST) while its
    request waited for the origin's answer was noticed only when the
    answer came (or upstream_response ran out, 60 s by default): the
    origin connection, its outstanding count and the client's slot stayed
    taken meanwhile, and a SIGTERM drain waited for it. The reset now ends
    the exchange at once: the origin connection is closed and the request
    counts as 499."""
    import struct

    from obs_helpers import scrape
    o = lab.fake(Holds, "holds")
    e = lab.edge([{"id": "p", "origins": [
        {"name": o.name, "address": mt.LOCAL, "port": o.port}]}],
        [{"name": HOST, "default_pools": ["p"]}],
        edge_extra={"timeouts": {"drain": "5s",
                                 "upstream_response": "600s"}})
    c = mt.HttpConn(e.port)
    c.send(mt.req(path="/held"))
    assert o.got.wait(mt.WAIT), "the origin never got the request"
    mt.wait_for(lambda: scrape(e).total(
        "meridian_origin_outstanding_requests") == 1,
        what="the request to be outstanding")
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      struct.pack("ii", 1, 0))
    c.close()  # RST
    assert o.dropped.wait(mt.WAIT), \
        "the edge kept the origin connection of a reset client"

    def settled():
        m = scrape(e)
        return (m.get("meridian_client_connections") == 0 and
                m.total("meridian_origin_outstanding_requests") == 0 and
                m.get("meridian_requests_total", lb=HOST, pool="p",
                      origin=o.name, code="4xx") == 1)
    mt.wait_for(settled, what="the exchange to end as a 499")
