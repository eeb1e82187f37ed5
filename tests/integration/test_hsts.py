"""load_balancers[].hsts: Strict-Transport-Security (RFC 6797) on
responses over TLS, HTTP/1.1 and HTTP/2, with the edge's value replacing
the origin's; nothing added over plain HTTP (the origin's passes as it
is); load balancers without the option pass the origin's field; check
refuses preload without includeSubDomains and a year, and hsts without an
https listener."""
import subprocess

import pytest

import meridian_test as mt
from test_health import lab  # noqa: F401  (the fixture)
from test_health import HOST, FakeOrigin, SrcConn, org
from test_tls import TlsConn, certs

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "openssl"], capture_output=True).returncode,
    reason="needs the openssl CLI")

OTHER = "other.example.com"  # the same pool, without the option
ORIGIN_STS = "max-age=1"


class StsOrigin(FakeOrigin):
    """Keep-alive answers that carry the origin's own (weak) policy."""

    def handle(self, s):
        for _ in self._heads(s):
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                      b"Strict-Transport-Security: " + ORIGIN_STS.encode() +
                      b"\r\nX-Origin: sts\r\n\r\nok\n")


def hsts_edge(lab, tmp_path, hsts):
    o = lab.fake(StsOrigin, "sts")
    pools = [{"id": "p", "origins": [org(o)]}]
    lbs = [{"name": HOST, "default_pools": ["p"], "hsts": hsts},
           {"name": OTHER, "default_pools": ["p"]}]
    hp = mt.free_port()
    e = lab.edge(pools, lbs, https_port=hp,
                 edge_extra={"tls": certs(tmp_path)})
    e.https = hp
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    return e


def tls_get(e, host):
    with TlsConn(e.https) as c:
        c.send(mt.req("GET", "/", host))
        return c.read_response()


def plain_get(e, host):
    with SrcConn(e.port) as c:
        c.send(mt.req("GET", "/", host))
        return c.read_response()


def test_tls_responses_carry_the_edge_policy(lab, tmp_path):
    e = hsts_edge(lab, tmp_path, {"enabled": True, "max_age": 31536000,
                                  "include_subdomains": True})
    want = "max-age=31536000; includeSubDomains"
    r = tls_get(e, HOST)
    assert r.status == 200 and r.header("X-Origin") == "sts", r
    assert r.header_all("Strict-Transport-Security") == [want], r
    # Without the option the origin's own field passes unchanged.
    r = tls_get(e, OTHER)
    assert r.header_all("Strict-Transport-Security") == [ORIGIN_STS], r
    # Plain HTTP: the edge adds nothing (browsers ignore it there).
    r = plain_get(e, HOST)
    assert r.status == 200
    assert r.header_all("Strict-Transport-Security") == [ORIGIN_STS], r
    # HTTP/2: one field, the edge's.
    cmd = ["curl", "--http2", "-sk", "-D", "-", "-o", "/dev/null",
           "--resolve", "%s:%d:127.0.0.1" % (HOST, e.https),
           "https://%s:%d/" % (HOST, e.https)]
    out = subprocess.run(cmd, capture_output=True, timeout=mt.WAIT + 5,
                         text=True).stdout.lower()
    assert out.startswith("http/2 200"), out
    got = [ln.split(":", 1)[1].strip() for ln in out.splitlines()
           if ln.startswith("strict-transport-security:")]
    assert got == [want.lower()], out
    e.check_alive()


def test_edge_answers_over_tls_carry_it(lab, tmp_path):
    """The edge's own answers for the load balancer (here a 502: its
    only origin refuses connections) carry the policy too, h1 and h2."""
    dead = mt.free_port()
    hp = mt.free_port()
    e = lab.edge([{"id": "p", "origins": [
                      {"name": "dead", "address": mt.LOCAL, "port": dead}]}],
                 [{"name": HOST, "default_pools": ["p"],
                   "hsts": {"enabled": True}}],
                 https_port=hp, edge_extra={"tls": certs(tmp_path)})
    e.https = hp
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    r = tls_get(e, HOST)
    assert r.status == 502, r
    assert r.header_all("Strict-Transport-Security") == [
        "max-age=15552000"], r
    cmd = ["curl", "--http2", "-sk", "-D", "-", "-o", "/dev/null",
           "--resolve", "%s:%d:127.0.0.1" % (HOST, hp),
           "https://%s:%d/" % (HOST, hp)]
    out = subprocess.run(cmd, capture_output=True, timeout=mt.WAIT + 5,
                         text=True).stdout.lower()
    assert out.startswith("http/2 502"), out
    assert "strict-transport-security: max-age=15552000" in out, out
    # Over plain HTTP the edge's answer has none.
    r = plain_get(e, HOST)
    assert r.status == 502 and r.header("Strict-Transport-Security") is None
    e.check_alive()


def test_defaults_and_preload(lab, tmp_path):
    e = hsts_edge(lab, tmp_path, {"enabled": True, "max_age": 63072000,
                                  "include_subdomains": True,
                                  "preload": True})
    r = tls_get(e, HOST)
    assert r.header_all("Strict-Transport-Security") == [
        "max-age=63072000; includeSubDomains; preload"], r
    (tmp_path / "b").mkdir()
    e2 = hsts_edge(lab, tmp_path / "b", {"enabled": True})
    r = tls_get(e2, HOST)
    assert r.header_all("Strict-Transport-Security") == [
        "max-age=15552000"], r  # 180 days


CHECK_BASE = """\
edge:
  name: t
  listen:
    http: ["127.0.0.1:8080"]
%s
pools:
  - id: p
    origins: [ { name: o, address: 127.0.0.1, port: 9 } ]
load_balancers:
  - name: lb.example.com
    default_pools: [p]
    hsts: %s
"""


def check(tmp_path, https, hsts):
    tls = ""
    if https:
        certs_ = certs(tmp_path)
        tls = ('    https: ["127.0.0.1:8443"]\n  tls: { certificates: [ '
               '{ cert: %s, key: %s } ] }' % (
                   certs_["certificates"][0]["cert"],
                   certs_["certificates"][0]["key"]))
    return mt.check_config(tmp_path / "c.yaml", CHECK_BASE % (tls, hsts))


def test_check_refuses_bad_policies(tmp_path):
    r = check(tmp_path, True, "{ enabled: true, max_age: 31536000 }")
    assert r.returncode == 0, r.stderr
    r = check(tmp_path, True,
              "{ enabled: true, max_age: 31536000, preload: true }")
    assert r.returncode == 1
    assert "hsts.preload: needs include_subdomains" in r.stderr, r.stderr
    assert "c.yaml:" in r.stderr
    r = check(tmp_path, True, "{ enabled: true, include_subdomains: true, "
              "preload: true }")  # 180 days: too short to preload
    assert r.returncode == 1 and "31536000" in r.stderr, r.stderr
    r = check(tmp_path, True, "{ enabled: true, max_age: 63072001 }")
    assert r.returncode == 1 and "max_age" in r.stderr, r.stderr
    r = check(tmp_path, False, "{ enabled: true }")
    assert r.returncode == 1
    assert "hsts: needs an https listener" in r.stderr, r.stderr
