"""The authoritative DNS as a real resolver uses it: Debian's unbound
(scripts/deps.sh test installs it; skipped without it) runs with its own
config file as a plain iterator (no DNSSEC validation), QNAME
minimisation strict, 0x20 (use-caps-for-id) and harden-below-nxdomain,
with a stub zone pointing at the edge. Nothing leaves 127.0.0.0/8: the
root is a stub at the edge too (which refuses it) and every address
outside 127.0.0.0/8 is in do-not-query-address. Clients ask unbound with
RD; what they get shows how unbound understood the edge's answers."""
import json
import os
import shutil

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

import meridian_test as mt
from meridian_test import LOCAL

UNBOUND = shutil.which("unbound") or (
    "/usr/sbin/unbound" if os.access("/usr/sbin/unbound", os.X_OK) else None)
pytestmark = pytest.mark.skipif(UNBOUND is None,
                                reason="unbound not installed")

ZONE = "example.com"
# Over 1232 bytes (unbound's EDNS size): TC over UDP, then TCP.
BIG = ["%s%03d" % (c * 250, i) for i, c in enumerate("abcdefg")]
T = 5.0
# Every IPv4 network but 127.0.0.0/8.
NOT_LOOPBACK = ["0.0.0.0/2", "64.0.0.0/3", "96.0.0.0/4", "112.0.0.0/5",
                "120.0.0.0/6", "124.0.0.0/7", "126.0.0.0/8", "128.0.0.0/1"]


def _edge_config(port, admin):
    return mt.to_yaml({
        "edge": {"name": mt.EDGE_NAME, "workers": 1,
                 "listen": {"dns": ["%s:%d" % (LOCAL, port)],
                            "admin": "%s:%d" % (LOCAL, admin)}},
        "zones": [{"name": ZONE, "records": [
            {"name": "www." + ZONE, "type": "A", "content": "192.0.2.1"},
            # b.c.example.com and c.example.com: empty non-terminals
            {"name": "a.b.c." + ZONE, "type": "A", "content": "192.0.2.30"},
            {"name": "*.wild." + ZONE, "type": "A", "content": "192.0.2.40"},
            {"name": "alias." + ZONE, "type": "CNAME",
             "content": "www." + ZONE},
        ] + [{"name": "big." + ZONE, "type": "TXT", "content": b}
             for b in BIG]}],
        "pools": [
            {"id": "ips", "origins": [
                {"name": "o1", "address": "127.0.0.1", "port": 1},
                {"name": "o2", "address": "127.0.0.2", "port": 1}]},
            {"id": "named", "origins": [
                {"name": "n1", "address": "localhost", "port": 1}]}],
        "load_balancers": [
            {"name": "lb." + ZONE, "proxied": False,
             "default_pools": ["ips"]},
            {"name": "cn." + ZONE, "proxied": False,
             "default_pools": ["named"]}],
    }) + "\n"


def _unbound_config(d, port, edge_port):
    lines = [
        "server:",
        "  interface: %s" % LOCAL,
        "  port: %d" % port,
        "  do-daemonize: no",
        '  username: ""',
        '  chroot: ""',
        '  directory: "%s"' % d,
        '  pidfile: "%s/unbound.pid"' % d,
        "  use-syslog: no",
        '  logfile: "%s/unbound.log"' % d,
        "  verbosity: 1",
        "  num-threads: 1",
        "  so-reuseport: no",
        "  outgoing-range: 64",
        "  do-ip6: no",
        "  do-not-query-localhost: no",
        '  module-config: "iterator"',
        "  access-control: 127.0.0.0/8 allow",
        "  qname-minimisation: yes",
        "  qname-minimisation-strict: yes",
        "  use-caps-for-id: yes",
        "  harden-below-nxdomain: yes",
    ] + ["  do-not-query-address: %s" % n for n in NOT_LOOPBACK] + [
        "remote-control:",
        "  control-enable: no",
        # The root at the edge (REFUSED): priming never leaves loopback.
        "stub-zone:",
        '  name: "."',
        "  stub-addr: %s@%d" % (LOCAL, edge_port),
        "stub-zone:",
        '  name: "%s"' % ZONE,
        "  stub-addr: %s@%d" % (LOCAL, edge_port),
    ]
    return "\n".join(lines) + "\n"


def _build(s):
    e = None
    for attempt in range(3):  # the free ports may be taken meanwhile
        port, admin = mt.free_port(), mt.free_port()
        try:
            e = mt.Edge(s.logdir, _edge_config(port, admin), port, "edge")
            break
        except AssertionError:
            if attempt == 2:
                raise
    s.procs.append(e)
    s.edges.append(e)
    uport = mt.free_port()
    conf = os.path.join(str(s.logdir), "unbound.conf")
    with open(conf, "w") as f:
        f.write(_unbound_config(str(s.logdir), uport, port))
    ub = s.spawn([UNBOUND, "-d", "-c", conf], "unbound")

    def up():
        if not ub.alive():
            raise AssertionError("unbound died: " + ub.describe())
        try:
            r = dns.query.udp(dns.message.make_query("www." + ZONE, "A"),
                              LOCAL, port=uport, timeout=1.0)
        except (dns.exception.Timeout, OSError):
            return False
        return r.rcode() == dns.rcode.NOERROR and bool(r.answer)
    mt.wait_for(up, what="unbound to answer through the edge")
    return mt.Env(edge=e, admin=admin, uport=uport)


@pytest.fixture(scope="module")
def resolver_module(tmp_path_factory):
    yield from mt.module_stack(tmp_path_factory, "dnsres", _build)


@pytest.fixture
def env(resolver_module):
    yield from mt.per_test(resolver_module)


def resolve(env, name, rdtype="A", tcp=False):
    q = dns.message.make_query(name, rdtype)  # RD set
    if tcp:
        return dns.query.tcp(q, LOCAL, port=env.uport, timeout=T)
    return dns.query.udp(q, LOCAL, port=env.uport, timeout=T)


def answers(r, rdtype):
    t = dns.rdatatype.from_text(rdtype)
    return sorted(rd.to_text() for rs in r.answer if rs.rdtype == t
                  for rd in rs)


def dns_stats(env):
    r = mt.request(env.admin, "GET", "/status?format=json", host="admin")
    assert r.status == 200, r
    return json.loads(r.body)["dns"]


def test_static_answer_and_0x20(env):
    r = resolve(env, "wWw.ExAmPlE.cOm")
    assert r.rcode() == dns.rcode.NOERROR, r
    assert answers(r, "A") == ["192.0.2.1"], r


def test_empty_non_terminals_with_qname_minimisation(env):
    """Strict QNAME minimisation walks c.example.com and b.c.example.com
    (empty non-terminals): NODATA there, never NXDOMAIN, or the name below
    would be unreachable (harden-below-nxdomain)."""
    r = resolve(env, "a.b.c." + ZONE)
    assert r.rcode() == dns.rcode.NOERROR, r
    assert answers(r, "A") == ["192.0.2.30"], r
    for name in ("c." + ZONE, "b.c." + ZONE):
        r = resolve(env, name, "TXT")
        assert r.rcode() == dns.rcode.NOERROR, r
        assert not r.answer, r
    r = resolve(env, "x.b.c." + ZONE)
    assert r.rcode() == dns.rcode.NXDOMAIN, r
    # the negative TTL: min(SOA minimum, SOA TTL) = 60
    assert r.authority and r.authority[0].rdtype == dns.rdatatype.SOA, r
    assert 0 < r.authority[0].ttl <= 60, r


def test_wildcard(env):
    r = resolve(env, "a.b.wild." + ZONE)
    assert answers(r, "A") == ["192.0.2.40"], r
    r = resolve(env, "wild." + ZONE)  # the wildcard's parent: NODATA
    assert r.rcode() == dns.rcode.NOERROR and not r.answer, r


def test_truncation_and_tcp_fallback(env):
    before = dns_stats(env)["queries"]["tcp"]
    r = resolve(env, "big." + ZONE, "TXT", tcp=True)
    assert r.rcode() == dns.rcode.NOERROR, r
    got = sorted(rd.to_text().strip('"').replace('" "', "")
                 for rd in r.answer[0])
    assert got == sorted(BIG), r
    # unbound got TC over UDP and asked again over TCP
    assert dns_stats(env)["queries"]["tcp"] > before


def test_load_balancer_answers(env):
    r = resolve(env, "lb." + ZONE)
    assert answers(r, "A") == ["127.0.0.1", "127.0.0.2"], r
    r = resolve(env, "lb." + ZONE, "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer, r
    # A host name origin: a CNAME at the load balancer's name.
    r = resolve(env, "cn." + ZONE, "CNAME")
    assert answers(r, "CNAME") == ["localhost."], r


def test_any_at_a_cname(env):
    """RFC 8482 4.2: no synthesized HINFO beside a CNAME (unbound may add
    what it holds for the target: only the alias is checked)."""
    r = resolve(env, "alias." + ZONE, "ANY")
    assert r.rcode() == dns.rcode.NOERROR, r
    at_alias = [rs for rs in r.answer
                if rs.name == dns.name.from_text("alias." + ZONE)]
    assert [rs.rdtype for rs in at_alias] == [dns.rdatatype.CNAME], r
    assert answers(r, "CNAME") == ["www.example.com."], r
