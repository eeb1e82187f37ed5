"""The admin listener under slow or many clients: a client that stalls
(sends half a request, or never reads) holds only its own connection, so
/healthz, /status, /metrics and the API keep answering at once; past 32
open connections the next one gets 503 with Retry-After, and the listener
recovers as soon as the slow ones go."""
import time

import pytest

import meridian_test as mt
from meridian_test import LOCAL
from obs_helpers import edge_section, scrape, start_edge

HOST = "lb.example.com"
# The edge's own bounds (src/edge/edge_admin.c): a whole request within
# 5 s of the accept; at most 32 connections at once.
READ_BOUND_S = 5.0
MAX_CONNS = 32


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    def build(s):
        o = s.origin("o1", "gcp")
        e = start_edge(s, lambda p, a: {
            "edge": edge_section(p, a, workers=1),
            "pools": [{"id": "p", "origins": [
                {"name": "o1", "address": LOCAL, "port": o.port}]}],
            "load_balancers": [{"name": HOST, "default_pools": ["p"]}],
        })
        return mt.Env(edge=e, origin=o)

    yield from mt.module_stack(tmp_path_factory, "admin", build)


@pytest.fixture
def a(env):
    yield from mt.per_test(env)


def stall(port, data=b"GET /status HTTP/1.1\r\nHost: admin\r\n"):
    """A connection that sent `data` (an unfinished head) and waits."""
    c = mt.HttpConn(port)
    c.send(data)
    return c


def timed_get(port, path):
    t0 = time.monotonic()
    r = mt.request(port, "GET", path, host="admin")
    return r, time.monotonic() - t0


def test_stalled_clients_do_not_block_others(a):
    port = a.edge.admin
    slow = [stall(port) for _ in range(4)]
    # A client that never reads its (large) answer, too.
    noread = stall(port, b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n")
    try:
        # Every slow connection is accepted and waiting inside its 5 s
        # bound; each request below is served meanwhile, well before the
        # first of those bounds could have released anything.
        t_start = time.monotonic()
        for path in ("/healthz", "/status", "/metrics",
                     "/client/v4/accounts/default/load_balancers/pools"):
            r, took = timed_get(port, path)
            assert r.status == 200, (path, r.status, r.text[:200])
            assert took < READ_BOUND_S / 2, (path, took)
        assert time.monotonic() - t_start < READ_BOUND_S
        # The stalled heads still get their answer once they finish.
        slow[0].send(b"\r\n")
        r = slow[0].read_response()
        assert r.status == 200 and "p" in r.text
    finally:
        for s in slow + [noread]:
            s.close()


def test_too_many_connections_get_503_then_recover(a):
    port = a.edge.admin
    slow = []
    try:
        for _ in range(MAX_CONNS):
            slow.append(stall(port))
        # The admin thread takes them in order; wait until the next one is
        # refused (the 32 are all being served, none has timed out yet).
        def refused():
            r = mt.request(port, "GET", "/healthz", host="admin")
            return r.status == 503

        mt.wait_for(refused, timeout=READ_BOUND_S - 1,
                    what="a connection past the limit refused")
        r = mt.request(port, "GET", "/healthz", host="admin")
        assert r.status == 503
        assert r.header("Retry-After") == "1"
        assert "too many connections" in r.text
    finally:
        for s in slow:
            s.close()
    # The slow peers are gone: their threads see the close and end.
    mt.wait_for(lambda: mt.request(port, "GET", "/healthz",
                                   host="admin").status == 200,
                what="the admin listener answering again")
    a.edge.check_alive()
    # Log lines are written by the edge's log thread: wait for it.
    mt.wait_for(lambda: "refusing more" in a.edge.stderr_tail(),
                what="the refusal in the log")
    m = scrape(a.edge)
    assert m.get("meridian_admin_connections_refused_total") >= 2


def test_paths_outside_the_api_as_docs_api_says(a):
    """docs/API.md: outside /client/v4/ only GET and HEAD (else 405),
    unknown paths 404. The 404 pointed at /status and /healthz only, not
    at /metrics or the API, which the listener serves too."""
    r = mt.request(a.edge.admin, "GET", "/nope", host="admin")
    assert r.status == 404, r
    assert r.text == ("not found: try /dashboard/, /status, "
                      "/status?format=json, /healthz, /metrics, "
                      "/client/v4/\n"), r.text
    for path in ("/status", "/healthz", "/metrics"):
        assert mt.request(a.edge.admin, "GET", path,
                          host="admin").status == 200, path
        assert mt.request(a.edge.admin, "POST", path, host="admin",
                          body=b"").status == 405, path
    r = mt.request(a.edge.admin, "HEAD", "/healthz", host="admin")
    assert r.status == 200 and r.body == b"", r
