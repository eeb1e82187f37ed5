"""Request smuggling: every request of tests/corpus/http1 sent raw, on a fresh
connection, through the edge. bad/ must get the error status its case names
(README.md table; one of 400, 414, 431, 501, 505), a close, and must not get
anything to the origin that the case's stage does not allow; good/ must be
answered, one response per message, without a parse error."""
import os
import re

import pytest

import meridian_test as mt
from meridian_test import HttpConn

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                      "corpus", "http1")
ERROR_STATUSES = {400, 414, 431, 501, 505}


def decode(data):
    """The corpus file format (README.md): real CR/LF dropped; escapes
    \\r \\n \\t \\\\ \\xHH."""
    data = data.replace(b"\r", b"").replace(b"\n", b"")
    out, i = bytearray(), 0
    simple = {ord("r"): 13, ord("n"): 10, ord("t"): 9, ord("\\"): 92}
    while i < len(data):
        c = data[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(data):
            raise ValueError("truncated escape")
        e = data[i + 1]
        if e in simple:
            out.append(simple[e])
            i += 2
        elif e == ord("x"):
            h = data[i + 2:i + 4]
            if len(h) != 2 or not re.fullmatch(rb"[0-9a-fA-F]{2}", h):
                raise ValueError("bad \\x escape")
            out.append(int(h, 16))
            i += 4
        else:
            raise ValueError("unknown escape")
    return bytes(out)


def _files(kind):
    d = os.path.join(CORPUS, kind)
    if not os.path.isdir(d):
        return []
    return sorted(f for f in os.listdir(d) if f.endswith(".http"))


def _read(kind, name):
    with open(os.path.join(CORPUS, kind, name), "rb") as f:
        return decode(f.read())


def _bad_table():
    """bad file -> (status, stage) from the README's case table."""
    out = {}
    try:
        with open(os.path.join(CORPUS, "README.md")) as f:
            text = f.read()
    except OSError:
        return out
    for m in re.finditer(r"^\| `([^`]+\.http)` \| [A-Z_0-9]+ \((\d{3})\) \| "
                         r"([^|]+?) \|", text, re.M):
        out[m.group(1)] = (int(m.group(2)), m.group(3).strip())
    return out


def _good_counts():
    """good file -> number of messages in it (expect.txt)."""
    out = {}
    try:
        with open(os.path.join(CORPUS, "expect.txt")) as f:
            for line in f:
                parts = line.split()
                if parts and parts[0].startswith("good/"):
                    out[parts[0][5:]] = len(parts) - 1
    except OSError:
        pass
    return out


BAD = _bad_table()
GOOD_COUNTS = _good_counts()
# Good requests the edge cannot route to an origin: valid syntax, so no
# parse error, but an answer from the edge itself is right.
UNROUTABLE = {
    "002-http10-no-host.http": {404},   # no Host to route on
    "018-ipv6-host.http": {404},        # no load balancer for an IP literal
    "017-connect-authority.http": {404, 405, 501},  # CONNECT: no tunnelling
}


def _build(s):
    o = s.origin("gke-1", "gcp")
    e = s.edge({"gcp": [("gke-1", o.port)]},
               {"a.example": ["gcp"], "b.example": ["gcp"]})
    return mt.Env(edge=e, origin=o, port=e.port)


@pytest.fixture(scope="module")
def sm_module(tmp_path_factory):
    yield from mt.module_stack(tmp_path_factory, "smuggling", _build)


@pytest.fixture
def sm(sm_module):
    yield from mt.per_test(sm_module)
    # and it still serves a plain request
    r = mt.request(sm_module.port, host="a.example")
    assert r.status == 200, r


def test_corpus_present():
    assert len(_files("bad")) >= 40 and len(_files("good")) >= 10, CORPUS
    assert set(_files("bad")) <= set(BAD), \
        "bad files missing from the README table: %s" % sorted(
            set(_files("bad")) - set(BAD))


@pytest.mark.parametrize("name", _files("bad"))
def test_bad_request_rejected(sm, name):
    data = _read("bad", name)
    status, stage = BAD.get(name, (None, "head"))
    before = sm.origin.counters()[0]
    served = []
    final = None
    with HttpConn(sm.port) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the edge may reject before we are done sending
        for _ in range(4):
            try:
                r = c.read_response()
            except mt.Closed as ex:
                pytest.fail("connection closed without an error response "
                            "(%s) after %r" % (ex, served))
            if r.status >= 400:
                final = r
                break
            served.append(r)
        assert final is not None, "no error response, got %r" % served
        assert final.status in ERROR_STATUSES, final
        if status is not None:
            assert final.status == status, final
        assert mt.EDGE_NAME in final.text, final
        assert final.header("Connection", "").lower() == "close", final
        assert c.wait_closed(), "connection left open after %d" % final.status
    forwarded = sm.origin.counters()[0] - before
    if stage == "head":
        # rejected in the head: nothing may reach the origin
        assert forwarded == 0 and not served, (forwarded, served)
    elif stage == "2nd head":
        # the first request is served, the second never forwarded
        assert forwarded == 1 and len(served) == 1, (forwarded, served)
        assert 200 <= served[0].status < 300
    else:
        # rejected in the body: at most the head went out, nothing more
        assert forwarded <= 1 and not served, (forwarded, served)


@pytest.mark.parametrize("name", _files("good"))
def test_good_request_served(sm, name):
    data = _read("good", name)
    n = GOOD_COUNTS.get(name, 1)
    allowed = UNROUTABLE.get(name, set())
    with HttpConn(sm.port) as c:
        c.send(data)
        for i in range(n):
            method = data.split(b" ", 1)[0].decode()
            r = c.read_response("HEAD" if method == "HEAD" else "GET")
            if r.status == 101:  # upgrade: the stream is no longer HTTP
                assert b"Upgrade: websocket" in data
                return
            assert 200 <= r.status < 300 or r.status in allowed, \
                "message %d: %r" % (i + 1, r)
            if r.status in allowed:
                assert mt.EDGE_NAME in r.text, r
                return
        if re.search(rb"(?i)\r\nConnection: close\r\n", data):
            assert c.wait_closed()
