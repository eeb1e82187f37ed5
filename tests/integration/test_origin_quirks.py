"""Origins that misbehave or are merely unusual (RFC 9110/9112), behind one
edge: what the client gets, whether the origin connection is kept, whether
passive health blames the origin, and the log line that says why. The
origin is a scripted raw socket on 127.0.0.1 whose answer is chosen by the
last path segment; every wait has a deadline."""
import re
import shutil
import socket
import struct
import threading

import pytest

import meridian_test as mt
from obs_helpers import scrape
from test_health import lab  # noqa: F401  (the fixture)
from test_health import HOST, FakeOrigin, Lab


def _answer(body, status=b"200 OK", extra=b""):
    return (b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n" % len(body)
            + extra + b"\r\n" + body)


MANY = mt.pattern(200000)

# name -> (bytes the origin sends after reading the request head, then
# "keep" (go on reading requests), "close" or "reset")
SCRIPTS = {
    # Invalid heads.
    "status-99": (b"HTTP/1.1 99 X\r\nContent-Length: 2\r\n\r\nok", "keep"),
    "status-600": (b"HTTP/1.1 600 X\r\nContent-Length: 2\r\n\r\nok", "keep"),
    "http2-status": (b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
                     "keep"),
    "obs-fold": (b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n"
                 b"Content-Length: 2\r\n\r\nok", "keep"),
    "bare-lf": (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", "keep"),
    "cl-te": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
              "keep"),
    "cl-differ": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                  b"Content-Length: 6\r\n\r\nhello!", "keep"),
    "unasked-101": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
                    b"Connection: upgrade\r\n\r\nraw", "keep"),
    "mid-head": (b"HTTP/1.1 200 OK\r\nContent-Len", "close"),
    "only-1xx": (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
                 "close"),
    # Transfer codings the edge cannot pass on.
    "te-gzip": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"
                b"\x1f\x8b\x08\x00coded", "close"),
    "te-gzip-chunked": (b"HTTP/1.1 200 OK\r\n"
                        b"Transfer-Encoding: gzip, chunked\r\n\r\n"
                        b"7\r\n\x1f\x8b\x08\x00abc\r\n0\r\n\r\n", "keep"),
    # Bodies cut short.
    "mid-body": (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf",
                 "close"),
    "mid-chunk": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"10\r\nhalf", "close"),
    "bad-chunk": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"zz\r\nhello\r\n0\r\n\r\n", "keep"),
    "late-bad-chunk": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                       b"\r\n5\r\nhello\r\n", "late"),
    "eof-reset": (b"HTTP/1.0 200 OK\r\n\r\npartial-eof-body", "reset"),
    # Unusual but valid.
    "eof-body": (b"HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nclose-delimited", "close"),
    "cl-same": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                b"Content-Length: 5\r\n\r\nhello", "keep"),
    "dated": (b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
              b"Content-Length: 2\r\n\r\nok", "keep"),
    "cl-list": (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n"
                b"X-A: 1\r\n\r\nhello", "keep"),
    "cl-204": (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n"
               b"X-A: 1\r\n\r\n", "keep"),
    "cl-103": (b"HTTP/1.1 103 Early Hints\r\nContent-Length: 7\r\n"
               b"Link: </a.css>; rel=preload\r\n\r\n" + _answer(b"final"),
               "keep"),
    "no-reason": (b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", "keep"),
    "trailers": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                 b"Trailer: X-T\r\n\r\n5;ext=\"v\"\r\nhello\r\n"
                 b"0\r\nX-T: t\r\n\r\n", "keep"),
    "interim": (b"HTTP/1.1 100 Continue\r\n\r\n"
                b"HTTP/1.1 102 Processing\r\n\r\n"
                b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload"
                b"\r\n\r\n" + _answer(b"final"), "keep"),
    "cookies": (b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
                b"X-!#$%&'*+-.^_`|~: v\r\nContent-Length: 2\r\n\r\nok",
                "keep"),
    "204-body": (b"HTTP/1.1 204 No Content\r\n\r\nstray", "keep"),
    # Chunked whatever the request's version (the demo origin does too).
    "many-chunks": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                    b"\r\n" + b"".join(
                        b"%x;n=%d\r\n" % (len(c), i) + c + b"\r\n"
                        for i, c in enumerate(
                            MANY[j:j + 997]
                            for j in range(0, len(MANY), 997)))
                    + b"0\r\nX-T: t\r\n\r\n", "keep"),
}


class Scripted(FakeOrigin):
    """Answers /.../NAME with SCRIPTS[NAME], anything else "ok:PATH".
    Records (connection number, path) for every request."""

    def __init__(self, name):
        super().__init__(name)
        self.seen = []
        # "late": what follows is sent once the test sets this.
        self.go = threading.Event()

    def handle(self, s):
        with self.lock:
            cid = self.connections
        for head in self._heads(s):
            path = head.split(b" ", 2)[1].decode()
            with self.lock:
                self.seen.append((cid, path))
            script = SCRIPTS.get(path.rsplit("/", 1)[-1])
            if script is None:
                s.sendall(_answer(b"ok:" + path.encode()))
                continue
            data, then = script
            s.sendall(data)
            if then == "close":
                return
            if then == "late":
                # An invalid chunk size, once the client has the rest.
                if self.go.wait(mt.WAIT):
                    s.sendall(b"zz\r\n")
                return
            if then == "reset":
                # Wait until the edge has the bytes, so the reset cannot
                # overtake them, then reset.
                s.settimeout(0.3)
                try:
                    s.recv(1)
                except OSError:
                    pass
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
                return


def _build(stack):
    fakes = Lab(stack)
    o = fakes.fake(Scripted, "o1")
    e = fakes.edge([{"id": "p", "origins": [{"name": "o1",
                                              "address": mt.LOCAL,
                                              "port": o.port}]}],
                   [{"name": HOST, "default_pools": ["p"]}], workers=1,
                   passive={"failures": 1000, "ejection": "1s"})
    return mt.Env(edge=e, origin=o, port=e.port, lab=fakes)


@pytest.fixture(scope="module")
def oq_module(tmp_path_factory):
    env = None
    try:
        for env in mt.module_stack(tmp_path_factory, "quirks", _build):
            yield env
    finally:
        if env is not None:
            env.lab.close()


@pytest.fixture
def oq(oq_module):
    yield from mt.per_test(oq_module)


DATE = re.compile(rb"\r\nDate: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                  rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                  rb"\d{4} \d\d:\d\d:\d\d GMT(?=\r\n)")


def _exchange(port, data):
    """Send data on a fresh connection; read until the edge closes or
    resets, or goes quiet for a second with a whole answer (keep-alive).
    Returns (bytes, "eof" | "reset" | "open"), without the Date field the
    edge adds to answers that have none (test_date_added_when_missing)."""
    out, end = _exchange_raw(port, data)
    return DATE.sub(b"", out), end


def _exchange_raw(port, data):
    s = socket.create_connection((mt.LOCAL, port), timeout=mt.WAIT)
    try:
        s.sendall(data)
        out = b""
        for _ in range(10000):
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                return out, "reset"
            except socket.timeout:
                return out, "open"
            if not d:
                return out, "eof"
            out += d
            if _complete(out):
                s.settimeout(1.0)
        return out, "open"
    finally:
        s.close()


def _complete(out):
    """A whole answer (after any 1xx) is in out: enough for the answers
    of SCRIPTS."""
    for _ in range(10):
        i = out.find(b"\r\n\r\n")
        if i < 0:
            return False
        head, rest = out[:i], out[i + 4:]
        if re.match(rb"HTTP/1\.1 1\d\d ", head):
            out = rest
            continue
        if re.match(rb"HTTP/1\.1 (204|304) ", head):
            return True
        if re.search(rb"\r\nTransfer-Encoding: chunked", head, re.I):
            return rest.endswith(b"\r\n\r\n") and b"0\r\n" in rest
        m = re.search(rb"\r\nContent-Length: (\d+)", head, re.I)
        return bool(m) and len(rest) >= int(m.group(1))
    return False


def _failures(e):
    v = scrape(e).get("meridian_origin_failures_total", pool="p",
                      origin="o1")
    assert v is not None, "no meridian_origin_failures_total for o1"
    return int(v)


def _get(oq, name, method="GET"):
    return _exchange(oq.port, mt.req(method, "/q/" + name, HOST))


def _after(oq, name):
    """The next request gets its own answer on a connection of its own
    (the one that misbehaved is never pooled)."""
    r = mt.request(oq.port, path="/next")
    assert r.status == 200 and r.body == b"ok:/next", (name, r)
    with oq.origin.lock:
        seen = list(oq.origin.seen)
    conn = [c for c, p in seen if p == "/q/" + name][-1]
    nxt = [c for c, p in seen if p == "/next"][-1]
    assert nxt != conn, (name, seen[-4:])


@pytest.mark.parametrize("name, reason", [
    ("status-99", "invalid status line"),
    ("status-600", "invalid status line"),
    ("http2-status", "HTTP version not supported"),
    ("obs-fold", "obsolete line folding"),
    ("bare-lf", "bare LF"),
    ("cl-te", "both Content-Length and Transfer-Encoding"),
    ("cl-differ", "invalid Content-Length"),
    ("unasked-101", "101 to a request that asked for no upgrade"),
    ("te-gzip", "unsupported transfer coding"),
    ("te-gzip-chunked", "unsupported transfer coding"),
])
def test_an_invalid_answer_is_a_502_and_an_origin_failure(oq, name, reason):
    """nginx counts an invalid header as a failed attempt (max_fails), as
    HAProxy's observe layer7 does: so does the edge, as for a 5xx. A
    transfer coding other than chunked cannot be passed on: dropping the
    field would hand the coded bytes on as the content (HTTP/1.0 and
    HTTP/2 clients cannot be told of it); nginx refuses it too."""
    before = _failures(oq.edge)
    data, end = _get(oq, name)
    assert data.startswith(b"HTTP/1.1 502 "), (name, data[:300])
    assert end == "eof" and b"\r\nConnection: close\r\n" in data, data
    mt.wait_for(lambda: "origin o1: invalid response: " + reason
                in oq.edge.stderr_tail(1 << 16), what="the log line")
    mt.wait_for(lambda: _failures(oq.edge) == before + 1,
                what="the origin failure counted")
    _after(oq, name)


@pytest.mark.parametrize("name, prefix, log", [
    ("mid-head", b"", "incomplete response head"),
    ("only-1xx", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
     "closed after 1xx, with no final answer"),
])
def test_an_answer_cut_in_its_head_is_a_502_and_an_origin_failure(
        oq, name, prefix, log):
    before = _failures(oq.edge)
    data, end = _get(oq, name)
    assert data.startswith(prefix + b"HTTP/1.1 502 "), data[:300]
    assert b"incomplete response from origin" in data, data
    mt.wait_for(lambda: "origin o1: " + log
                in oq.edge.stderr_tail(1 << 16), what="the log line")
    mt.wait_for(lambda: _failures(oq.edge) == before + 1,
                what="the origin failure counted")


def test_a_bad_chunk_with_the_head_is_a_502_and_an_origin_failure(oq):
    """The head and an invalid chunk size arrive in one read: nothing went
    to the client yet, so it gets a 502 rather than a bare close."""
    before = _failures(oq.edge)
    data, end = _get(oq, "bad-chunk")
    assert data.startswith(b"HTTP/1.1 502 "), data[:300]
    assert end == "eof" and b"\r\nConnection: close\r\n" in data, data
    assert b"hello" not in data, data
    mt.wait_for(lambda: "origin o1: bad response body: "
                in oq.edge.stderr_tail(1 << 16), what="the log line")
    mt.wait_for(lambda: _failures(oq.edge) == before + 1,
                what="the origin failure counted")
    _after(oq, "bad-chunk")


def test_a_bad_chunk_after_the_head_went_out_cuts_the_answer(oq):
    """The head and a first chunk reached the client; then an invalid
    chunk size: the answer is cut where it is, never followed by a 502
    on the same connection."""
    oq.origin.go.clear()
    want = (b"HTTP/1.1 200 OK\r\n", b"\r\n\r\n5\r\nhello\r\n")
    s = socket.create_connection((mt.LOCAL, oq.port), timeout=mt.WAIT)
    try:
        s.sendall(mt.req("GET", "/q/late-bad-chunk", HOST))
        out = b""
        for _ in range(1000):
            if out.startswith(want[0]) and out.endswith(want[1]):
                break
            d = s.recv(65536)
            assert d, out
            out += d
        assert out.startswith(want[0]) and out.endswith(want[1]), out
        oq.origin.go.set()
        end = "open"
        for _ in range(1000):
            try:
                d = s.recv(65536)
            except (ConnectionResetError, socket.timeout) as e:
                end = type(e).__name__
                break
            if not d:
                end = "eof"
                break
            out += d
    finally:
        oq.origin.go.clear()
        s.close()
    assert end in ("eof", "ConnectionResetError"), (end, out)
    assert out.count(b"HTTP/1.1 ") == 1, out
    mt.wait_for(lambda: "origin o1: bad response body: "
                in oq.edge.stderr_tail(1 << 16), what="the log line")


@pytest.mark.parametrize("name, head", [
    ("mid-body", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf"),
    ("mid-chunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"10\r\nhalf"),
])
def test_a_body_cut_short_stays_short_and_is_an_origin_failure(oq, name,
                                                                head):
    """The framing tells the client the body is short; the edge closes."""
    before = _failures(oq.edge)
    data, end = _get(oq, name)
    assert data == head, data
    assert end in ("eof", "reset"), end
    mt.wait_for(lambda: "origin o1: response body truncated"
                in oq.edge.stderr_tail(1 << 16), what="the log line")
    mt.wait_for(lambda: _failures(oq.edge) == before + 1,
                what="the origin failure counted")


def test_a_reset_in_a_close_delimited_body_resets_the_client(oq):
    """Only the close ends such a body: after a reset from the origin a
    clean close would tell the client it has all of it. RFC 9112 §6.3:
    an incomplete message must not look complete; the edge resets."""
    before = _failures(oq.edge)
    data, end = _get(oq, "eof-reset")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert data.endswith(b"\r\n\r\npartial-eof-body"), data
    assert end == "reset", (end, data)
    mt.wait_for(lambda: "origin o1: response body cut by Connection reset"
                in oq.edge.stderr_tail(1 << 16), what="the log line")
    mt.wait_for(lambda: _failures(oq.edge) == before + 1,
                what="the origin failure counted")


def test_a_close_delimited_body_ends_with_a_clean_close(oq):
    data, end = _get(oq, "eof-body")
    assert data == (b"HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close\r\n\r\n"
                    b"close-delimited"), data
    assert end == "eof", end


@pytest.mark.parametrize("name, want", [
    # One value of a list (RFC 9110 8.6), as strict clients want it.
    ("cl-same", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
    ("cl-list", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n"
                b"\r\nhello"),
    # None in a 1xx or a 204.
    ("cl-204", b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"),
    ("cl-103", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload"
               b"\r\n\r\n" + _answer(b"final")),
    ("no-reason", b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok"),
    ("trailers", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5;ext=\"v\"\r\nhello\r\n0\r\nX-T: t\r\n\r\n"),
    ("interim", b"HTTP/1.1 100 Continue\r\n\r\n"
                b"HTTP/1.1 102 Processing\r\n\r\n"
                b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload"
                b"\r\n\r\n" + _answer(b"final")),
    ("cookies", b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
                b"X-!#$%&'*+-.^_`|~: v\r\nContent-Length: 2\r\n\r\nok"),
])
def test_unusual_valid_answers_pass(oq, name, want):
    """As the origin sent them, but for framing fields put right (RFC 9110
    8.6: one Content-Length value, none in a 1xx or 204)."""
    before = _failures(oq.edge)
    data, end = _get(oq, name)
    assert data == want, data
    assert end == "open", end
    assert _failures(oq.edge) == before


def test_a_body_after_204_is_not_passed_on_nor_left_for_the_next(oq):
    data, end = _get(oq, "204-body")
    assert data == b"HTTP/1.1 204 No Content\r\n\r\n", data
    _after(oq, "204-body")


# ------------------------------------------------------------ clients

@pytest.mark.parametrize("line, want", [
    ("GET http://%s/abs?x=1 HTTP/1.1" % HOST, b"ok:/abs?x=1"),
    ("GET HTTPS://%s:443/abs HTTP/1.1" % HOST, b"ok:/abs"),
    ("GET http://%s HTTP/1.1" % HOST, b"ok:/"),
    ("GET http://%s?q HTTP/1.1" % HOST, b"ok:/?q"),
    ("OPTIONS http://%s HTTP/1.1" % HOST, b"ok:*"),
])
def test_an_absolute_form_target_reaches_the_origin_in_origin_form(
        oq, line, want):
    """RFC 9112 §3.2.1: a client (the edge, towards an origin) sends only
    the path and query; §3.2.4: OPTIONS of an empty path is "*"."""
    data, end = _exchange(oq.port, (line + "\r\nHost: %s\r\n\r\n" % HOST)
                          .encode())
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert data.endswith(b"\r\n\r\n" + want), data


def _get10(oq, name):
    return _exchange(oq.port, mt.req("GET", "/q/" + name, HOST,
                                     version="HTTP/1.0"))


def test_date_added_when_missing(oq):
    """RFC 9110 6.6.1: an answer forwarded without Date gets one (a proxy
    with a clock adds it); one that has it keeps the origin's, alone; 1xx
    get none; the edge's own answers have one."""
    data, _ = _exchange_raw(oq.port, mt.req("GET", "/q/cl-list", HOST))
    assert len(DATE.findall(data)) == 1, data
    data, _ = _exchange_raw(oq.port, mt.req("GET", "/q/dated", HOST))
    assert data.count(b"\r\nDate:") == 1, data
    assert b"\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n" in data, data
    data, _ = _exchange_raw(oq.port, mt.req("GET", "/q/interim", HOST))
    heads = data.split(b"\r\n\r\n")
    assert [len(DATE.findall(h + b"\r\n")) for h in heads[:4]] == \
        [0, 0, 0, 1], data
    data, _ = _exchange_raw(oq.port, mt.req("GET", "/", "nope.example"))
    assert data.startswith(b"HTTP/1.1 404 "), data
    assert len(DATE.findall(data)) == 1, data


def test_a_connection_told_close_is_not_used_again(oq):
    """An HTTP/1.0 request goes to the origin with "Connection: close";
    RFC 9112 §9.6: the edge sends nothing more on that connection, even
    when the answer does not say close (it SHOULD; the origin here keeps
    the connection open, so a reuse would be seen)."""
    data, end = _get10(oq, "http10-close")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert data.endswith(b"ok:/q/http10-close"), data
    _after(oq, "http10-close")


@pytest.mark.parametrize("name, body", [
    ("trailers", b"hello"),
    ("many-chunks", MANY),
])
def test_an_http10_client_gets_a_chunked_answer_decoded(oq, name, body):
    """RFC 9112 §6.1: no Transfer-Encoding to an HTTP/1.0 request. The
    edge asked the origin in HTTP/1.0, but an origin that chunks anyway
    has its body decoded for the client, which the close ends."""
    data, end = _get10(oq, name)
    head, _, got = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
    assert b"transfer-encoding" not in head.lower(), head
    assert b"\r\nConnection: close" in head, head
    assert got == body, (len(got), got[:100])
    assert end == "eof", end


def test_an_http10_client_is_reset_when_a_chunked_answer_is_cut(oq):
    """Decoded, the body has no framing left to show the cut."""
    before = _failures(oq.edge)
    data, end = _get10(oq, "mid-chunk")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert data.endswith(b"\r\n\r\nhalf"), data
    assert end == "reset", (end, data)
    mt.wait_for(lambda: _failures(oq.edge) == before + 1,
                what="the origin failure counted")


@pytest.mark.skipif(shutil.which("openssl") is None,
                    reason="needs the openssl CLI")
def test_over_http2_a_cut_close_delimited_body_resets_the_stream(lab,
                                                                  tmp_path):
    """The same answers to an HTTP/2 client: a close-delimited body ends
    its stream when the origin closes, is reset when the origin resets;
    a coding besides chunked is a 502 (the field cannot be sent)."""
    from test_h2 import H2Client
    from test_tls import certs
    o = lab.fake(Scripted, "o1")
    hp = mt.free_port()
    lab.edge([{"id": "p", "origins": [{"name": "o1", "address": mt.LOCAL,
                                        "port": o.port}]}],
             [{"name": HOST, "default_pools": ["p"]}], workers=1,
             https_port=hp, edge_extra={"tls": certs(tmp_path)})
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    with H2Client(hp) as c:
        st, hdrs, body, _ = c.response(c.request("/q/eof-body"))
        assert (st, body) == (200, b"close-delimited"), (st, body)
        st, hdrs, body, _ = c.response(c.request("/q/te-gzip-chunked"))
        assert st == 502 and b"unsupported transfer coding" in body, body
        st, code, _, _ = c.response(c.request("/q/eof-reset"))
        assert st == "reset", (st, code)
        # A Content-Length list goes on as one value: h2 clients reset
        # a stream whose content-length is not a number.
        st, hdrs, body, _ = c.response(c.request("/q/cl-list"))
        assert (st, body) == (200, b"hello"), (st, hdrs, body)
        assert hdrs.get("content-length") == "5", hdrs
