"""A load balancer's https_redirect (issue 6): requests on plain-HTTP
listeners are answered 301 (GET, HEAD) or 308 (other methods) with
Location https://HOST[:PORT]/path?query, PORT being the first https
listener's; ACME http-01 challenges still reach the origin; requests over
TLS and load balancers without the option are proxied; the option needs an
https listener (check and API); an API PATCH of the field takes effect
live. (The port is left out for 443, which no test can listen on: see
tests/unit/test_px_redirect.c.)"""
import subprocess

import pytest

import meridian_test as mt
from obs_helpers import scrape
from test_api import ZONE, Api
from test_health import lab  # noqa: F401  (the fixture)
from test_health import HOST, SrcConn, get, org
from test_tls import TlsConn, certs

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "openssl"], capture_output=True).returncode,
    reason="needs the openssl CLI")

PLAIN = "plain.example.com"  # the same pool, without the option


def redirect_edge(lab, tmp_path, redirect=True):
    o = lab.origin("o1")
    pools = [{"id": "p", "origins": [org(o)]}]
    lbs = [{"name": HOST, "default_pools": ["p"], "https_redirect": redirect},
           {"name": PLAIN, "default_pools": ["p"]}]
    hp = mt.free_port()
    e = lab.edge(pools, lbs, https_port=hp,
                 edge_extra={"tls": certs(tmp_path),
                             "store": str(tmp_path / "store.db")})
    e.https = hp
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    return e, o


def send(edge, method="GET", path="/", host=HOST, body=None, headers=(),
         check_closed=False):
    """One request on a fresh plain connection; (response, closed after:
    waited for up to 2 s when check_closed, else None)."""
    with SrcConn(edge.port) as c:
        c.send(mt.req(method, path, host, headers, body))
        r = c.read_response(method)
        return r, c.wait_closed(timeout=2.0) if check_closed else None


def test_get_301_keeps_path_and_query(lab, tmp_path):
    e, _ = redirect_edge(lab, tmp_path)
    r, closed = send(e, path="/a/b?x=1&y=two", check_closed=True)
    assert r.status == 301, r
    assert r.reason == "Moved Permanently"
    assert r.header("Location") == \
        "https://%s:%d/a/b?x=1&y=two" % (HOST, e.https), r
    assert r.header("X-Origin") is None  # answered by the edge
    assert b"moved to https" in r.body and mt.EDGE_NAME.encode() in r.body
    assert r.header("Content-Length") == str(len(r.body))
    # Keep-alive as any other local answer: the next request on the same
    # connection is answered too.
    assert not closed
    with SrcConn(e.port) as c:
        for path in ("/1", "/2?q"):
            c.send(mt.req("GET", path, HOST + ":" + str(e.port)))
            r = c.read_response()
            assert r.status == 301 and r.header("Location") == \
                "https://%s:%d%s" % (HOST, e.https, path), r
    # Connection: close is honoured.
    r, closed = send(e, headers=[("Connection", "close")], check_closed=True)
    assert r.status == 301 and r.header("Connection") == "close"
    assert closed
    # Counted like the other local responses: 3xx of the load balancer,
    # with no pool or origin (answered by the edge).
    mt.wait_for(lambda: scrape(e).get(
        "meridian_requests_total", lb=HOST, pool="", origin="",
        code="3xx") == 4, what="4 redirects in /metrics")


def test_post_308_and_head(lab, tmp_path):
    e, o = redirect_edge(lab, tmp_path)
    r, _ = send(e, "POST", "/upload?id=7", body=b"x" * 1000)
    assert r.status == 308 and r.reason == "Permanent Redirect", r
    assert r.header("Location") == \
        "https://%s:%d/upload?id=7" % (HOST, e.https)
    for m in ("PUT", "DELETE", "PATCH"):
        r, _ = send(e, m, "/x")
        assert r.status == 308, (m, r)
    # HEAD: 301, the body's length but no body.
    r, _ = send(e, "HEAD", "/h?q=1")
    assert r.status == 301 and r.body == b""
    assert r.header("Location") == "https://%s:%d/h?q=1" % (HOST, e.https)
    assert int(r.header("Content-Length")) > 0
    # Nothing of this reached the origin.
    assert get(e, "/count", host=PLAIN).status == 200


def test_acme_challenge_reaches_the_origin(lab, tmp_path):
    e, _ = redirect_edge(lab, tmp_path)
    r, _ = send(e, path="/.well-known/acme-challenge/tok3n")
    assert r.status == 200 and r.header("X-Origin") == "o1", r
    # Only under the challenge directory.
    r, _ = send(e, path="/.well-known/other")
    assert r.status == 301, r


def test_lb_without_the_option_and_tls_are_proxied(lab, tmp_path):
    e, _ = redirect_edge(lab, tmp_path)
    r = get(e, "/x?y=1", host=PLAIN)
    assert r.status == 200 and r.header("X-Origin") == "o1", r
    # Over TLS the same load balancer is proxied, not redirected.
    with TlsConn(e.https) as c:
        c.send(mt.req("GET", "/x?y=2", HOST))
        r = c.read_response()
        assert r.status == 200 and r.header("X-Origin") == "o1", r
        c.send(mt.req("GET", "/echo?z=3", HOST))
        r = c.read_response()
        assert r.status == 200, r
        line, hdrs, _, _, _ = mt.parse_echo(r.body)
        assert line == "GET /echo?z=3 HTTP/1.1"
        assert mt.echo_headers(hdrs, "X-Forwarded-Proto") == ["https"]
    e.check_alive()


CHECK_BASE = """\
edge:
  listen:
    http: ["127.0.0.1:8080"]
pools:
  - id: p
    origins: [ { name: o, address: 127.0.0.1, port: 9001 } ]
load_balancers:
  - name: lb.example.com
    default_pools: [p]
    https_redirect: true
"""


def test_check_rejects_the_option_without_an_https_listener(tmp_path):
    path = tmp_path / "meridian.yaml"
    path.write_text(CHECK_BASE)
    p = subprocess.run([mt.BIN, "check", "-c", str(path)],
                       capture_output=True, text=True, timeout=mt.WAIT)
    assert p.returncode == 1, p
    assert p.stderr == "%s:10:21: https_redirect: needs an https listener " \
        "(edge.listen.https)\n" % path, p.stderr
    # The edge refuses to start with it too.
    p = subprocess.run([mt.BIN, "edge", "-c", str(path)],
                       capture_output=True, text=True, timeout=mt.WAIT)
    assert p.returncode != 0
    assert "https_redirect: needs an https listener" in p.stderr, p.stderr


def test_api_patch_takes_effect_live(lab, tmp_path):
    e, _ = redirect_edge(lab, tmp_path, redirect=False)
    api = Api(e.admin)
    lb = api.ok("POST", ZONE, {"name": "api.example.com",
                               "default_pools": ["p"]})
    assert lb["https_redirect"] is False
    assert get(e, host="api.example.com").status == 200
    lb = api.ok("PATCH", ZONE + "/" + lb["id"], {"https_redirect": True})
    assert lb["https_redirect"] is True
    assert api.ok("GET", ZONE + "/" + lb["id"])["https_redirect"] is True
    r = get(e, "/now?live=1", host="api.example.com")
    assert r.status == 301 and r.header("Location") == \
        "https://api.example.com:%d/now?live=1" % e.https, r
    # The file's load balancers are unaffected.
    assert get(e, host=HOST).status == 200
    api.ok("PATCH", ZONE + "/" + lb["id"], {"https_redirect": False})
    assert get(e, host="api.example.com").status == 200
    api.ok("DELETE", ZONE + "/" + lb["id"])


def test_api_refuses_the_option_without_an_https_listener(lab, tmp_path):
    o = lab.origin("o1")
    e = lab.edge([{"id": "p", "origins": [org(o)]}],
                 [{"name": HOST, "default_pools": ["p"]}],
                 edge_extra={"store": str(tmp_path / "store.db")})
    api = Api(e.admin)
    st, env = api.call("POST", ZONE, {"name": "api.example.com",
                                      "default_pools": ["p"],
                                      "https_redirect": True})
    assert st == 400, env
    msgs = [x["message"] for x in env["errors"]]
    assert any("https_redirect" in m and "edge.listen.https" in m
               for m in msgs), msgs
    assert [x["name"] for x in api.ok("GET", ZONE)] == [HOST]
    assert get(e, host="api.example.com").status == 404
    # A PATCH too: the error names the field; nothing changes.
    lb = api.ok("POST", ZONE, {"name": "api.example.com",
                               "default_pools": ["p"]})
    st, env = api.call("PATCH", ZONE + "/" + lb["id"],
                       {"https_redirect": True})
    assert st == 400, env
    assert [x.get("field") for x in env["errors"]] == \
        ["load_balancers[%s].https_redirect" % lb["id"]], env
    assert api.ok("GET", ZONE + "/" + lb["id"])["https_redirect"] is False
    assert get(e, host="api.example.com").status == 200
    assert get(e).status == 200
