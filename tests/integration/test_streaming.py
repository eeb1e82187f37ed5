"""Streaming bodies in bounded memory: big uploads and downloads (Content-
Length, chunked, close-delimited) pass through the edge intact while its RSS
stays flat, and a client that stops reading does not make the edge buffer."""
import time

import pytest

import meridian_test as mt
from meridian_test import HttpConn, req, WAIT, BIG

HOST = "lb.example.com"
MIB = 1 << 20
# RSS growth allowed while a body moves (ASan's shadow memory and quarantine
# get some more room). Every body below is bigger than the limit, so an edge
# that buffers a whole body fails.
RSS_LIMIT_KIB = (24 if mt.ASAN else 16) * 1024
MEDIUM = (64 if mt.ASAN else 256) * MIB
# Time allowed for one BIG transfer (loopback, 2 cores, Python client).
BIG_WAIT = max(WAIT, 120.0)


def _build(s):
    o = s.origin("gke-1", "gcp")
    e = s.edge({"gcp": [("gke-1", o.port)]}, {HOST: ["gcp"]}, workers=1)
    return mt.Env(edge=e, origin=o, port=e.port)


@pytest.fixture(scope="module")
def st_module(tmp_path_factory):
    yield from mt.module_stack(tmp_path_factory, "streaming", _build)


@pytest.fixture
def st(st_module):
    yield from mt.per_test(st_module)


class RssWatch:
    """Track the edge's resident memory during a transfer: baseline before,
    samples while bytes move, and the kernel's high-water mark after."""

    def __init__(self, edge):
        self.edge = edge
        s = edge.status()
        self.base = s["VmRSS"]
        self.hwm0 = s["VmHWM"]
        self.peak = self.base
        self.next_at = 0
        self.moved = 0

    def tick(self, n):
        self.moved += n
        if self.moved >= self.next_at:
            self.next_at = self.moved + 32 * MIB
            self.peak = max(self.peak, self.edge.status()["VmRSS"])

    def growth_kib(self):
        s = self.edge.status()
        peak = max(self.peak, s["VmRSS"])
        if s["VmHWM"] > self.hwm0:  # a new high-water mark: it is the peak
            peak = max(peak, s["VmHWM"])
        return peak - self.base


def _warm(st):
    # one small exchange first, so buffers and pools exist before baseline
    r = mt.request(st.port, path="/bytes/100000")
    assert r.status == 200


def _download(st, path, n, timeout=BIG_WAIT):
    _warm(st)
    w = RssWatch(st.edge)
    chk = mt.BodyCheck()

    def sink(mv):
        chk(mv)
        w.tick(len(mv))

    with HttpConn(st.port) as c:
        c.send(req(path=path))
        try:
            r = c.read_response(sink=sink, timeout=timeout)
        except TimeoutError:
            raise AssertionError("response not complete after %.0fs (%d of "
                                 "%d body bytes)" % (timeout, chk.n, n))
        assert r.status == 200, r
        framed = r.header("Content-Length") is not None or \
            r.header("Transfer-Encoding") is not None
        if framed and r.header("Connection", "").lower() != "close":
            c.send(req(path="/healthz"))  # still in sync after the body
            assert c.read_response().body == b"ok\n"
    assert chk.n == n, "got %d of %d bytes" % (chk.n, n)
    assert chk.first_bad is None, "body differs at byte %d" % chk.first_bad
    assert chk.adler == mt.pattern_adler(n)
    g = w.growth_kib()
    assert g < RSS_LIMIT_KIB, "edge RSS grew by %d KiB for %d bytes" % (g, n)


def _upload(st, n, chunk=None):
    _warm(st)
    w = RssWatch(st.edge)
    with HttpConn(st.port) as c:
        hdrs = [("Transfer-Encoding", "chunked")] if chunk else \
            [("Content-Length", str(n))]
        c.send(req("POST", "/upload", headers=hdrs))
        deadline = time.monotonic() + BIG_WAIT
        for part in mt.pattern_chunks(n, chunk or MIB):
            if chunk:
                c.send(b"%x\r\n" % len(part))
                c.send(part)
                c.send(b"\r\n")
            else:
                c.send(part)
            w.tick(len(part))
            assert time.monotonic() < deadline, "upload too slow"
        if chunk:
            c.send(b"0\r\n\r\n")
        r = c.read_response(timeout=BIG_WAIT)
    assert r.status == 200, r
    assert r.text == "length %d\nadler32 %08x\n" % (n, mt.pattern_adler(n))
    g = w.growth_kib()
    assert g < RSS_LIMIT_KIB, "edge RSS grew by %d KiB for %d bytes" % (g, n)


def test_big_download_content_length(st):
    _download(st, "/bytes/%d" % BIG, BIG)


def test_big_upload_content_length(st):
    _upload(st, BIG)


def test_download_chunked(st):
    _download(st, "/chunked/%d" % MEDIUM, MEDIUM)


def test_upload_chunked(st):
    _upload(st, MEDIUM, chunk=64 * 1024 + 7)


def test_download_close_delimited(st):
    """No Content-Length, no chunked: the origin closes to end the body, and
    the edge must end it for the client too (close or chunked)."""
    n = 32 * MIB
    _download(st, "/eof/%d" % n, n, timeout=WAIT)


def test_small_chunks_both_ways(st):
    body = mt.pattern(100000)
    r = mt.request(st.port, "POST", "/upload", body=mt.chunked(body, 1),
                   headers=[("Transfer-Encoding", "chunked")])
    assert r.text == "length 100000\nadler32 %08x\n" % mt.pattern_adler(100000)
    r = mt.request(st.port, path="/chunked/100000")
    assert r.body == body


def test_stalled_reader_does_not_make_edge_buffer(st):
    """A client that stops reading a big download: the edge must stop
    reading from the origin instead of buffering the body."""
    _warm(st)
    n = MEDIUM
    w = RssWatch(st.edge)
    with HttpConn(st.port) as c:
        c.send(req(path="/bytes/%d" % n))
        chk = mt.BodyCheck()
        head = c.read_head(time.monotonic() + WAIT)
        assert head.status == 200
        c.read_exact(MIB, time.monotonic() + WAIT, chk)
        # Stop reading. An edge that buffers would swallow the rest of the
        # body from the loopback origin within a second or two; watch RSS.
        t_end = time.monotonic() + 2.0
        for _ in range(100):
            if time.monotonic() >= t_end:
                break
            w.tick(32 * MIB)
            time.sleep(0.05)
        g = w.growth_kib()
        assert g < RSS_LIMIT_KIB, "edge buffered %d KiB for a stalled " \
            "client" % g
        c.read_exact(n - MIB, time.monotonic() + BIG_WAIT, chk)
    assert chk.first_bad is None and chk.n == n
