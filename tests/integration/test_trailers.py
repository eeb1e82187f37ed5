"""Request trailers over HTTP/1.1: a chunked request's trailer section
reaches the origin without the fields RFC 9110 6.5.1 keeps out of
trailers (framing, routing, authentication, conditionals, the client
address fields the edge writes itself), as over HTTP/2 (test_h2.py)."""
import time

import pytest

import meridian_test as mt
from meridian_test import HttpConn
from test_health import lab  # noqa: F401  (the fixture)
from test_health import HOST, org
from test_h2 import ChunkedRecordingOrigin

BODY = b"5\r\nhello\r\n0\r\n"
TRAILERS = (b"X-Checksum: abc\r\nHost: evil.example\r\n"
            b"X-Forwarded-For: 6.6.6.6\r\nx_forwarded_for: 7.7.7.7\r\n"
            b"Authorization: Bearer x\r\nIf-Match: *\r\n"
            b"Content-Length: 99\r\nProxy-Authorization: y\r\n"
            b"X-Trace: t1\r\n\r\n")
KEPT = b"X-Checksum: abc\r\nX-Trace: t1\r\n\r\n"


def _head(path="/t", extra=b""):
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " +
            HOST.encode() + b"\r\nTransfer-Encoding: chunked\r\n" + extra +
            b"\r\n")


def _edge(lab, **kw):
    ro = lab.fake(ChunkedRecordingOrigin, "rec")
    e = lab.edge([{"id": "p", "origins": [org(ro)]}],
                 [{"name": HOST, "default_pools": ["p"]}], workers=1, **kw)
    return ro, e


def test_filtered_after_the_managed_rules_hold(lab):
    """With waf.managed the body (and its trailers) is held for the
    rules first; forwarded after, the trailers are filtered the same."""
    ro, e = _edge(lab, top={"waf": {"managed": {"enabled": True}}})
    with HttpConn(e.port) as c:
        c.send(_head(extra=b"Content-Type: application/x-www-form-urlencoded"
                           b"\r\n")
               + BODY + TRAILERS)
        r = c.read_response()
        assert r.status == 200, r
    _, trl = _sent_trailers(ro)
    assert trl == KEPT, trl
    e.check_alive()


def _sent_trailers(ro, i=-1):
    raw = ro.requests_raw[i]
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    assert rest.startswith(BODY), rest
    return head, rest[len(BODY):]


@pytest.mark.parametrize("trickle", [False, True])
def test_banned_trailer_fields_are_dropped(lab, trickle):
    """Whole, or byte by byte (the section is held over many reads until
    it is whole, then filtered)."""
    ro, e = _edge(lab)
    with HttpConn(e.port) as c:
        c.send(_head() + BODY + (b"" if trickle else TRAILERS))
        for i in range(len(TRAILERS) if trickle else 0):
            c.send(TRAILERS[i:i + 1])
            if i % 16 == 0:
                time.sleep(0.002)  # separate reads on the edge
        r = c.read_response()
        assert r.status == 200, r
    _, trl = _sent_trailers(ro)
    assert trl == KEPT, trl
    e.check_alive()


def test_pipelined_request_after_filtered_trailers(lab):
    """Cutting fields out moves the next pipelined request down in the
    buffer: it is read whole and answered."""
    ro, e = _edge(lab)
    with HttpConn(e.port) as c:
        c.send(_head("/a") + BODY + TRAILERS + _head("/b") + BODY +
               b"Host: x\r\n\r\n")
        r1 = c.read_response()
        assert r1.status == 200, r1
        # The origin closed after the first answer ("Connection: close"):
        # the edge takes a new connection for the second.
        r2 = c.read_response()
        assert r2.status == 200, r2
    mt.wait_for(lambda: len(ro.requests_raw) == 2, what="two requests")
    heads = sorted(ro.requests_raw, key=lambda raw: raw[:8])
    h1, t1 = heads[0].partition(b"\r\n\r\n")[0], heads[0]
    assert h1.startswith(b"POST /a "), h1
    assert t1.endswith(BODY + KEPT), t1
    h2, t2 = heads[1].partition(b"\r\n\r\n")[0], heads[1]
    assert h2.startswith(b"POST /b "), h2
    assert t2.endswith(BODY + b"\r\n"), t2
    e.check_alive()


def test_no_trailers_pass_unchanged(lab):
    ro, e = _edge(lab)
    with HttpConn(e.port) as c:
        c.send(_head() + b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
    raw = ro.requests_raw[-1]
    assert raw.endswith(b"\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"), raw
    e.check_alive()


def test_trailer_section_over_max_header_bytes_is_431(lab):
    ro, e = _edge(lab, edge_extra={"limits": {"max_header_bytes": 4096}})
    big = b"".join(b"X-Pad-%04d: %s\r\n" % (i, b"v" * 80) for i in range(60))
    with HttpConn(e.port) as c:
        c.send(_head() + BODY + big + b"\r\n")
        r = c.read_response()
        assert r.status == 431, r
        assert b"trailer" in r.body, r
        assert c.wait_closed(), "connection kept after 431"
    # The origin never got the held section (it got the head and body
    # at most, and no end of the message).
    assert not ro.requests_raw, ro.requests_raw
    e.check_alive()
