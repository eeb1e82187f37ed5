"""HTTP/2 at the edge (issue 6): ALPN h2 on edge.listen.https, each stream
proxied to an HTTP/1.1 origin through the ordinary exchange (routing,
steering, pools), bodies streamed both ways with flow control, trailers,
and the known HTTP/2 attacks answered (rapid reset, CONTINUATION flood,
HPACK bomb, PING/SETTINGS floods, zero-window stall).

curl --http2 drives the normal cases; python3-h2 (Debian) writes raw
frames for the attacks. Every wait has a deadline; every server runs on
127.0.0.1 and is stopped by the fixtures.
"""
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest

import meridian_test as mt
from test_health import lab  # noqa: F401  (the fixture)
from test_health import HOST, FakeOrigin, org
from test_tls import certs, client_ctx

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "openssl"], capture_output=True).returncode,
    reason="needs the openssl CLI")


def h2_edge(lab, tmp_path, workers=1, timeouts=None, limits=None, origins=1):
    os_ = [lab.origin("o%d" % i) for i in range(origins)]
    pools = [{"id": "p", "origins": [org(o) for o in os_]}]
    lbs = [{"name": HOST, "default_pools": ["p"]}]
    extra = {"tls": certs(tmp_path)}
    if timeouts:
        extra["timeouts"] = timeouts
    if limits:
        extra["limits"] = limits
    hp = mt.free_port()
    e = lab.edge(pools, lbs, https_port=hp, workers=workers, edge_extra=extra)
    e.https = hp
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    return e, os_


def curl2(port, path="/", extra=(), data=None, timeout=None):
    """curl --http2 over TLS: (rc, body, status, http_version)."""
    t = timeout or mt.WAIT
    cmd = ["curl", "--http2", "-sk", "-m", str(int(t)), "--resolve",
           "%s:%d:127.0.0.1" % (HOST, port), "-o", "-", "-w",
           "\n%{http_code} %{http_version}"] + list(extra)
    if data is not None:
        cmd += ["--data-binary", "@-"]
    cmd.append("https://%s:%d%s" % (HOST, port, path))
    r = subprocess.run(cmd, input=data, capture_output=True, timeout=t + 5)
    body, _, tail = r.stdout.rpartition(b"\n")
    status, _, ver = tail.decode().partition(" ")
    return r.returncode, body, status, ver


# ------------------------------------------------------------ raw client

class H2Client:
    """A raw HTTP/2 client over TLS (python3-h2), for frame-level tests."""

    def __init__(self, port, settings=None, validate=True):
        ctx = client_ctx()
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection((mt.LOCAL, port), timeout=mt.WAIT)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(raw, server_hostname=HOST)
        assert self.sock.selected_alpn_protocol() == "h2"
        cfg = h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8",
            validate_outbound_headers=validate,
            normalize_outbound_headers=validate,
            validate_inbound_headers=False)
        self.c = h2.connection.H2Connection(config=cfg)
        self.c.initiate_connection()
        if settings:
            self.c.update_settings(settings)
        self.flush()
        self.events = []
        self.closed = False
        self.ack = True  # give the window back as DATA is read

    def flush(self):
        data = self.c.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data):
        self.sock.sendall(data)

    def pump(self, until, what, timeout=None):
        """Read frames until until(self) is true (or the peer closes)."""
        deadline = time.monotonic() + (timeout or mt.WAIT)
        while not until(self):
            if self.closed:
                raise AssertionError("connection closed before " + what)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for " + what)
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError, OSError):
                data = b""
            if not data:
                self.closed = True
                continue
            try:
                evs = self.c.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.closed = True
                continue
            self.events.extend(evs)
            if self.ack:
                for ev in evs:
                    if isinstance(ev, h2.events.DataReceived) and \
                            ev.flow_controlled_length:
                        self.c.acknowledge_received_data(
                            ev.flow_controlled_length, ev.stream_id)
            self.flush()

    def request(self, path="/", method="GET", headers=(), end=True):
        sid = self.c.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "https"),
                (":authority", HOST), (":path", path)] + list(headers)
        self.c.send_headers(sid, hdrs, end_stream=end)
        self.flush()
        return sid

    def of(self, sid, kind):
        return [e for e in self.events
                if isinstance(e, kind) and getattr(e, "stream_id", None) == sid]

    def ended(self, sid):
        return bool(self.of(sid, h2.events.StreamEnded) or
                    self.of(sid, h2.events.StreamReset))

    def response(self, sid, timeout=None):
        """(status, headers dict, body bytes, trailers dict) of sid."""
        self.pump(lambda s: s.ended(sid), "stream %d" % sid, timeout)
        rst = self.of(sid, h2.events.StreamReset)
        if rst:
            return ("reset", rst[0].error_code, b"", {})
        hdrs = dict(self.of(sid, h2.events.ResponseReceived)[0].headers)
        body = b"".join(e.data for e in self.of(sid, h2.events.DataReceived))
        tr = self.of(sid, h2.events.TrailersReceived)
        return (int(hdrs[":status"]), hdrs, body,
                dict(tr[0].headers) if tr else {})

    def goaway(self):
        g = [e for e in self.events
             if isinstance(e, h2.events.ConnectionTerminated)]
        return g[0] if g else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# ---------------------------------------------------------------- tests

def test_curl_http2_and_http1_side_by_side(lab, tmp_path):
    e, (o,) = h2_edge(lab, tmp_path)
    rc, body, status, ver = curl2(e.https, "/echo")
    assert rc == 0 and status == "200" and ver == "2", (rc, status, ver)
    # The origin got HTTP/1.1 with the h2 request's facts.
    line, hdrs, _, _, _ = mt.parse_echo(body)
    assert line.startswith("GET /echo HTTP/1.1"), line
    assert mt.echo_headers(hdrs, "Host") == ["%s:%d" % (HOST, e.https)]
    assert mt.echo_headers(hdrs, "X-Forwarded-Proto") == ["https"]
    # The same edge still speaks HTTP/1.1 over TLS to those who ask.
    r = subprocess.run(
        ["curl", "--http1.1", "-sk", "-m", "10", "--resolve",
         "%s:%d:127.0.0.1" % (HOST, e.https), "-o", "/dev/null", "-w",
         "%{http_code} %{http_version}", "https://%s:%d/" % (HOST, e.https)],
        capture_output=True, timeout=20)
    assert r.stdout.decode() == "200 1.1", r.stdout
    # Unknown host: the edge's own 404 comes back as an HTTP/2 response.
    rc, body, status, ver = curl2(e.https, "/", extra=["-H", "Host: nope.test"])
    assert ver == "2" and status in ("404", "400"), (status, body)
    e.check_alive()


def test_many_streams_on_one_connection(lab, tmp_path):
    e, _ = h2_edge(lab, tmp_path)
    with H2Client(e.https) as c:
        sids = [c.request("/bytes/%d" % (1000 * (i + 1))) for i in range(40)]
        for i, sid in enumerate(sids):
            st, hdrs, body, _ = c.response(sid)
            assert st == 200, (sid, st)
            assert len(body) == 1000 * (i + 1)
            assert hdrs.get("content-length") == str(1000 * (i + 1))
            assert "connection" not in hdrs and "keep-alive" not in hdrs
    e.check_alive()


def test_chunked_response_and_trailers_cross(lab, tmp_path):
    e, _ = h2_edge(lab, tmp_path)
    with H2Client(e.https) as c:
        sid = c.request("/chunked/300000")
        st, hdrs, body, _ = c.response(sid)
        assert st == 200 and len(body) == 300000
        assert "transfer-encoding" not in hdrs
        # Close-delimited origin body: the stream still ends cleanly.
        sid = c.request("/eof/70000")
        st, hdrs, body, _ = c.response(sid)
        assert st == 200 and len(body) == 70000
        # HEAD: headers only.
        sid = c.request("/bytes/5000", method="HEAD")
        st, hdrs, body, _ = c.response(sid)
        assert st == 200 and body == b"" and hdrs["content-length"] == "5000"
    e.check_alive()


def test_response_trailers_reach_the_h2_client(lab, tmp_path):
    e, _ = h2_edge(lab, tmp_path)
    with H2Client(e.https) as c:
        sid = c.request("/chunked/70000", headers=[("te", "trailers")])
        st, hdrs, body, trailers = c.response(sid)
        assert st == 200 and body == mt.pattern(70000)
        assert trailers.get("x-body-length") == "70000", trailers


def _upload_stream(c, n, content_length, trailers=None, part=16384):
    """POST /upload on a raw client, DATA sent as the windows allow."""
    hdrs = [("content-length", str(n))] if content_length else []
    sid = c.request("/upload", method="POST", headers=hdrs, end=False)
    deadline = time.monotonic() + mt.WAIT * 4
    for chunk in mt.pattern_chunks(n, part):
        data = bytes(chunk)
        while data:
            w = min(c.c.local_flow_control_window(sid),
                    c.c.max_outbound_frame_size, len(data))
            if w <= 0:
                c.pump(lambda s: s.c.local_flow_control_window(sid) > 0 or
                       s.ended(sid), "window for stream %d" % sid)
                assert not c.ended(sid), c.response(sid)
                continue
            c.c.send_data(sid, data[:w])
            c.flush()
            data = data[w:]
            assert time.monotonic() < deadline, "upload too slow"
    if trailers:
        c.c.send_headers(sid, trailers, end_stream=True)
    else:
        c.c.end_stream(sid)
    c.flush()
    return c.response(sid, timeout=mt.WAIT * 2)


@pytest.mark.parametrize("content_length", [True, False])
def test_upload_streams_with_flow_control(lab, tmp_path, content_length):
    """Several windows' worth of request body: the edge reopens the
    windows as the origin takes the bytes; without a content-length the
    origin gets it chunked (request trailers included)."""
    e, _ = h2_edge(lab, tmp_path)
    n = 3 * 1024 * 1024 + 17
    with H2Client(e.https) as c:
        st, _, body, _ = _upload_stream(
            c, n, content_length,
            trailers=None if content_length else [("x-sum", "1")])
        assert st == 200, (st, body)
        assert body.decode() == "length %d\nadler32 %08x\n" % (
            n, mt.pattern_adler(n))
        # the connection goes on
        sid = c.request("/bytes/10")
        assert c.response(sid)[0] == 200
    e.check_alive()


def test_slow_reader_holds_the_origin_back(lab, tmp_path):
    """A client that stops giving window back gets no more than its
    window; the rest waits (bounded) and flows once it reads again."""
    e, _ = h2_edge(lab, tmp_path)
    n = 8 * 1024 * 1024
    with H2Client(e.https) as c:
        c.ack = False
        sid = c.request("/bytes/%d" % n)

        def got(s):
            return sum(len(ev.data) for ev in s.of(sid, h2.events.DataReceived))
        c.pump(lambda s: got(s) >= 65535, "the first window of data")
        # The stream window is 65535 (python-h2's default) and nothing
        # was given back: no more than that can have come.
        assert got(c) == 65535
        base = e.status()["VmRSS"]
        c.ack = True
        total = got(c)
        c.c.acknowledge_received_data(total, sid)
        c.flush()
        st, _, body, _ = c.response(sid, timeout=mt.WAIT * 2)
        assert st == 200 and len(body) == n and body == mt.pattern(n)
        grew = e.status()["VmRSS"] - base
        assert grew < 16 * 1024, "edge RSS grew %d KiB" % grew
    e.check_alive()


def test_big_transfers_in_bounded_memory(lab, tmp_path, monkeypatch):
    """curl --http2 moves a big body each way; the edge's RSS stays flat
    (every body is much bigger than the limit)."""
    if mt.ASAN:
        # nghttp2 allocates and frees a frame item per WINDOW_UPDATE and
        # DATA frame; ASan's quarantine (256 MiB by default) would hold
        # them all and look like growth. A small quarantine keeps the
        # measurement about what the edge keeps.
        monkeypatch.setenv("ASAN_OPTIONS", os.environ.get(
            "ASAN_OPTIONS", "") + ":quarantine_size_mb=4")
    e, _ = h2_edge(lab, tmp_path)
    mib = 1 << 20
    n = (48 if mt.ASAN else 192) * mib
    limit_kib = (24 if mt.ASAN else 16) * 1024
    assert curl2(e.https, "/bytes/100000")[2] == "200"  # pools warm
    base = e.status()
    r = subprocess.run(
        ["curl", "--http2", "-sk", "-m", "120", "--resolve",
         "%s:%d:127.0.0.1" % (HOST, e.https), "-o", "/dev/null", "-w",
         "%{http_code} %{size_download} %{http_version}",
         "https://%s:%d/bytes/%d" % (HOST, e.https, n)],
        capture_output=True, timeout=180)
    assert r.stdout.decode() == "200 %d 2" % n, r
    src = tmp_path / "up.bin"
    with open(src, "wb") as f:
        for ch in mt.pattern_chunks(n):
            f.write(ch)
    r = subprocess.run(
        ["curl", "--http2", "-sk", "-m", "120", "--resolve",
         "%s:%d:127.0.0.1" % (HOST, e.https), "-T", str(src),
         "https://%s:%d/upload" % (HOST, e.https)],
        capture_output=True, timeout=180)
    assert r.stdout.decode() == "length %d\nadler32 %08x\n" % (
        n, mt.pattern_adler(n)), r
    after = e.status()
    peak = max(after["VmHWM"], after["VmRSS"])
    grew = peak - max(base["VmRSS"], 0)
    if after["VmHWM"] <= base["VmHWM"]:
        grew = after["VmRSS"] - base["VmRSS"]
    assert grew < limit_kib, "edge RSS grew by %d KiB" % grew
    e.check_alive()


class CutOrigin(FakeOrigin):
    """Answers with Content-Length 100000, sends 1000 bytes, closes."""

    def handle(self, s):
        for _ in self._heads(s):
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n"
                      b"\r\n" + b"x" * 1000)
            return


def test_origin_cut_mid_body_resets_the_stream(lab, tmp_path):
    """A truncated origin body must not look whole: the stream is reset,
    and the connection's other streams go on."""
    co = lab.fake(CutOrigin, "cut")
    o = lab.origin("ok")
    pools = [{"id": "cut", "origins": [org(co)]},
             {"id": "p", "origins": [org(o)]}]
    lbs = [{"name": HOST, "default_pools": ["p"]},
           {"name": "cut.example.com", "default_pools": ["cut"]}]
    hp = mt.free_port()
    e = lab.edge(pools, lbs, https_port=hp, workers=1,
                 edge_extra={"tls": certs(tmp_path)})
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    with H2Client(hp) as c:
        sid = c.c.get_next_available_stream_id()
        c.c.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                               (":authority", "cut.example.com"),
                               (":path", "/")], end_stream=True)
        c.flush()
        c.pump(lambda s: s.ended(sid), "the cut stream")
        assert c.of(sid, h2.events.StreamReset), c.events
        assert not c.of(sid, h2.events.StreamEnded)
        got = sum(len(ev.data) for ev in c.of(sid, h2.events.DataReceived))
        assert got <= 1000
        sid2 = c.request("/bytes/100")
        assert c.response(sid2)[0] == 200
    # HTTP/1.1 gets the same cut: the connection closes (no timeout).
    with socket.create_connection((mt.LOCAL, e.port),
                                  timeout=mt.WAIT) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: cut.example.com\r\n\r\n")
        got = b""
        t0 = time.monotonic()
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
        assert time.monotonic() - t0 < mt.WAIT
        assert got.startswith(b"HTTP/1.1 200")
        assert len(got.partition(b"\r\n\r\n")[2]) == 1000
    e.check_alive()


def test_h2_requests_are_counted_in_metrics(lab, tmp_path):
    e, _ = h2_edge(lab, tmp_path)
    with H2Client(e.https) as c:
        for sid in [c.request("/bytes/10") for _ in range(5)]:
            assert c.response(sid)[0] == 200
    r = mt.request(e.admin, "GET", "/metrics", host="admin")
    text = r.body.decode()
    tot = 0
    for line in text.splitlines():
        if line.startswith("meridian_requests_total{") and \
                'code="2xx"' in line and 'lb="%s"' % HOST in line:
            tot += float(line.rsplit(" ", 1)[1])
    assert tot >= 5, text[:2000]


def test_http2_can_be_turned_off(lab, tmp_path):
    o = lab.origin("o1")
    hp = mt.free_port()
    tls = certs(tmp_path)
    tls["http2"] = False
    e = lab.edge([{"id": "p", "origins": [org(o)]}],
                 [{"name": HOST, "default_pools": ["p"]}], https_port=hp,
                 workers=1, edge_extra={"tls": tls})
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    rc, body, status, ver = curl2(hp, "/bytes/10")
    assert rc == 0 and status == "200" and ver == "1.1", (rc, status, ver)
    e.check_alive()


def test_affinity_cookie_over_h2(lab, tmp_path):
    """The session affinity Set-Cookie reaches an h2 client as a field,
    and the cookie it sends back keeps it on the same origin."""
    os_ = [lab.origin("o%d" % i) for i in range(2)]
    hp = mt.free_port()
    e = lab.edge([{"id": "p", "origins": [org(o) for o in os_]}],
                 [{"name": HOST, "default_pools": ["p"],
                   "session_affinity": "cookie"}], https_port=hp,
                 workers=1, edge_extra={"tls": certs(tmp_path)})
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    with H2Client(hp) as c:
        st, hdrs, body, _ = c.response(c.request("/"))
        assert st == 200 and hdrs["set-cookie"].startswith("__cflb="), hdrs
        cookie = hdrs["set-cookie"].split(";", 1)[0]
        first = body
        for _ in range(5):
            st, hdrs, body, _ = c.response(
                c.request("/", headers=[("cookie", cookie)]))
            assert st == 200 and body == first
            assert "set-cookie" not in hdrs
    e.check_alive()


class BigHeadOrigin(FakeOrigin):
    """/big: a response head of about 80 KB (200 fields); else 200 "ok"."""

    BIG = b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 400) for i in range(200))

    def handle(self, s):
        for head in self._heads(s):
            extra = self.BIG if head.startswith(b"GET /big ") else b""
            s.sendall(b"HTTP/1.1 200 OK\r\n" + extra +
                      b"Content-Length: 2\r\n\r\nok")


def test_response_head_too_big_for_h2_resets_the_stream(lab, tmp_path):
    """An origin head over nghttp2's 64 KiB header block bound (allowed
    through by a large edge.limits.max_header_bytes) cannot go out as
    HTTP/2 HEADERS: the stream is reset, not left waiting for ever, and
    the connection goes on. HTTP/1.1 gets the head as it is."""
    bo = lab.fake(BigHeadOrigin, "big")
    hp = mt.free_port()
    e = lab.edge([{"id": "p", "origins": [org(bo)]}],
                 [{"name": HOST, "default_pools": ["p"]}], https_port=hp,
                 workers=1, edge_extra={
                     "tls": certs(tmp_path),
                     "limits": {"max_header_bytes": "256k",
                                "max_headers": 256}})
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    with H2Client(hp) as c:
        sid = c.request("/big")
        c.pump(lambda s: s.ended(sid), "the /big stream")
        rst = c.of(sid, h2.events.StreamReset)
        assert rst and rst[0].error_code == 0x2, c.events
        assert not c.of(sid, h2.events.ResponseReceived)
        st, _, body, _ = c.response(c.request("/small"))
        assert (st, body) == (200, b"ok")
    r = subprocess.run(
        ["curl", "--http1.1", "-sk", "-m", str(int(mt.WAIT)), "-o",
         "/dev/null", "-w", "%{http_code} %{size_header}", "--resolve",
         "%s:%d:127.0.0.1" % (HOST, hp), "https://%s:%d/big" % (HOST, hp)],
        capture_output=True, timeout=mt.WAIT + 5)
    code, size = r.stdout.decode().split()
    assert code == "200" and int(size) > 64 * 1024, r
    e.check_alive()


class LengthOn204Origin(FakeOrigin):
    """/204: 204 with "Content-Length: 5"; /103: a 103 with a
    Content-Length before 200 "ok" (both as some origins send them)."""

    def handle(self, s):
        for head in self._heads(s):
            if head.startswith(b"GET /204 "):
                s.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 5"
                          b"\r\nX-A: 1\r\n\r\n")
            else:
                s.sendall(b"HTTP/1.1 103 Early Hints\r\nContent-Length: 7"
                          b"\r\nLink: </a.css>; rel=preload\r\n\r\n"
                          b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_no_content_length_on_204_and_1xx_over_h2(lab, tmp_path):
    """RFC 9110 8.6: no Content-Length in a 1xx or 204. An origin's is not
    passed on to HTTP/2 clients, which reset the stream over it (curl:
    exit 92)."""
    lo = lab.fake(LengthOn204Origin, "len")
    hp = mt.free_port()
    e = lab.edge([{"id": "p", "origins": [org(lo)]}],
                 [{"name": HOST, "default_pools": ["p"]}], https_port=hp,
                 workers=1, edge_extra={"tls": certs(tmp_path)})
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    rc, body, status, ver = curl2(hp, "/204")
    assert (rc, body, status, ver) == (0, b"", "204", "2"), (rc, status)
    rc, body, status, ver = curl2(hp, "/103")
    assert (rc, body, status, ver) == (0, b"ok", "200", "2"), (rc, status)
    with H2Client(hp) as c:
        st, hdrs, body, _ = c.response(c.request("/204"))
        assert st == 204 and "content-length" not in hdrs, hdrs
        assert hdrs["x-a"] == "1"
        sid = c.request("/103")
        st, hdrs, body, _ = c.response(sid)
        assert (st, body) == (200, b"ok")
        hints = c.of(sid, h2.events.InformationalResponseReceived)
        assert hints, c.events
        hh = dict(hints[0].headers)
        assert hh[":status"] == "103" and "content-length" not in hh, hh
        assert hh["link"] == "</a.css>; rel=preload"
    e.check_alive()


class ResetMidBodyOrigin(FakeOrigin):
    """A close-delimited body ("hello"), then a TCP reset (SO_LINGER 0)
    once the test sets .go: the body is cut, not ended by an EOF."""

    def __init__(self, name):
        super().__init__(name)
        self.go = threading.Event()

    def handle(self, s):
        for _ in self._heads(s):
            s.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello")
            self.go.wait(mt.WAIT)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            return  # _serve closes: RST


def _tls_edge(lab, tmp_path, origin):
    """One worker, HTTP/2 over TLS in front of the fake origin; (edge,
    its https port) once the listener accepts."""
    hp = mt.free_port()
    e = lab.edge([{"id": "p", "origins": [org(origin)]}],
                 [{"name": HOST, "default_pools": ["p"]}], https_port=hp,
                 workers=1, edge_extra={"tls": certs(tmp_path)})
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    return e, hp


def test_close_delimited_body_cut_by_reset_resets_the_stream(lab, tmp_path):
    """Only an EOF ends a close-delimited body: when the origin resets the
    connection instead, the h2 stream is reset (INTERNAL_ERROR), not ended
    with END_STREAM as if the body were whole."""
    ro = lab.fake(ResetMidBodyOrigin, "rst")
    e, hp = _tls_edge(lab, tmp_path, ro)
    with H2Client(hp) as c:
        sid = c.request("/")
        c.pump(lambda s: sum(len(ev.data) for ev in
                             s.of(sid, h2.events.DataReceived)) >= 5,
               "the first body bytes")
        ro.go.set()
        c.pump(lambda s: s.ended(sid), "the cut stream")
        rst = c.of(sid, h2.events.StreamReset)
        assert rst and rst[0].error_code == 0x2, c.events
        assert not c.of(sid, h2.events.StreamEnded)
    mt.wait_for(lambda: b"origin rst: response body cut by " in open(
        e.err_path, "rb").read(), what="the cut logged")
    e.check_alive()


class RecordingOrigin(FakeOrigin):
    """Answers 200 "ok" to every request and keeps each request head."""

    def __init__(self, name):
        super().__init__(name)
        self.heads = []

    def handle(self, s):
        for head in self._heads(s):
            with self.lock:
                self.heads.append(head)
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def test_request_translation_reaches_the_origin(lab, tmp_path):
    """h2 -> HTTP/1.1 as the origin sees it: cookie crumbs joined with
    "; " (RFC 9113 8.2.3), Host from a host field when :authority is
    absent, OPTIONS with :path "*"; a host field that disagrees with
    :authority is a malformed request (reset, never forwarded)."""
    ro = lab.fake(RecordingOrigin, "rec")
    e, hp = _tls_edge(lab, tmp_path, ro)
    base = [(":method", "GET"), (":scheme", "https")]
    with H2Client(hp, validate=False) as c:
        def send(hdrs):
            sid = c.c.get_next_available_stream_id()
            c.c.send_headers(sid, hdrs, end_stream=True)
            c.flush()
            return c.response(sid)

        st = send(base + [(":authority", HOST), (":path", "/c"),
                          ("cookie", "a=1"), ("x-y", "z"),
                          ("cookie", "b=2")])
        assert st[0] == 200
        assert b"\r\ncookie: a=1; b=2\r\n" in ro.heads[-1], ro.heads[-1]
        st = send(base + [(":path", "/h"), ("host", HOST)])
        assert st[0] == 200
        assert ro.heads[-1].startswith(b"GET /h HTTP/1.1\r\nHost: %s\r\n"
                                       % HOST.encode()), ro.heads[-1]
        st = send([(":method", "OPTIONS"), (":scheme", "https"),
                   (":authority", HOST), (":path", "*")])
        assert st[0] == 200
        assert ro.heads[-1].startswith(b"OPTIONS * HTTP/1.1\r\n")
        st = send(base + [(":authority", HOST), (":path", "/x"),
                          ("host", "other.example.net")])
        assert st[:2] == ("reset", 0x1), st
        assert len(ro.heads) == 3
    e.check_alive()


class ChunkedRecordingOrigin(FakeOrigin):
    """Keeps each chunked request whole (head, chunks, trailer section),
    then answers 200 "ok"."""

    def __init__(self, name):
        super().__init__(name)
        self.requests_raw = []

    def handle(self, s):
        s.settimeout(mt.WAIT)
        buf = b""
        for _ in range(10000):
            end = buf.find(b"\r\n\r\n")
            # the head, then the last chunk's trailer section ends it
            if end >= 0 and buf.find(b"\r\n0\r\n", end) >= 0 and \
                    buf.endswith(b"\r\n\r\n") and buf.count(b"\r\n\r\n") >= 2:
                with self.lock:
                    self.requests_raw.append(buf)
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                          b"Connection: close\r\n\r\nok")
                return
            d = s.recv(65536)
            if not d:
                return
            buf += d


def test_x_real_ip_is_the_edges(lab, tmp_path):
    """X-Real-IP reaches the origin as the client the edge saw; the
    client's own (and its '_' spelling) never does."""
    ro = lab.fake(ChunkedRecordingOrigin, "rec")
    e, hp = _tls_edge(lab, tmp_path, ro)
    with H2Client(hp) as c:
        sid = c.request("/t", method="POST", end=False, headers=[
            ("x-real-ip", "6.6.6.6"), ("x_real_ip", "6.6.6.7")])
        c.c.send_data(sid, b"hello", end_stream=True)
        c.flush()
        st = c.response(sid)
        assert st[0] == 200, st
    head = ro.requests_raw[-1].partition(b"\r\n\r\n")[0]
    assert b"\r\nX-Real-IP: 127.0.0.1\r\n" in head + b"\r\n", head
    assert b"6.6.6" not in head, head
    e.check_alive()


def test_request_trailers_are_filtered(lab, tmp_path):
    """HTTP/2 request trailers reach the origin in the chunked trailer
    section, except the fields RFC 9110 6.5.1 keeps out of trailers and
    the client address fields the edge writes itself."""
    ro = lab.fake(ChunkedRecordingOrigin, "rec")
    e, hp = _tls_edge(lab, tmp_path, ro)
    with H2Client(hp) as c:
        sid = c.request("/t", method="POST", end=False)
        c.c.send_data(sid, b"hello")
        c.c.send_headers(sid, [
            # (content-length nghttp2 refuses in trailers: a reset)
            ("x-checksum", "abc"), ("host", "evil.example"), ("x-forwarded-for", "6.6.6.6"),
            ("authorization", "Bearer x"), ("if-match", "*"),
            ("proxy-authorization", "y"), ("x-trace", "t1")],
            end_stream=True)
        c.flush()
        st = c.response(sid)
        assert st[0] == 200, st
    raw = ro.requests_raw[-1]
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    assert rest.startswith(b"5\r\nhello\r\n0\r\n"), rest
    trailers = rest[len(b"5\r\nhello\r\n0\r\n"):]
    assert trailers == b"x-checksum: abc\r\nx-trace: t1\r\n\r\n", trailers
    e.check_alive()
