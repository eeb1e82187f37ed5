"""Authoritative DNS on the edge (issue 4): edge.listen.dns over UDP and
TCP against the real binary, with dnspython and dig. A DNS-only edge (no
listen.http) serves one zone with static records, a DNS-only load balancer
steered by geo (the client located by EDNS Client Subnet), a proxied one
(answered with public_addresses), one whose origin is a hostname (a
CNAME), and load balancers for each location_strategy (the edge, the
resolver's address or the Client Subnet; geo and proximity, the latter
with a small City-style MaxMind DB written by the test). The counters
are read from the admin listener's /status. Everything on 127.0.0.0/8
(the public addresses below only travel inside ECS options and the test
database); every wait has a deadline."""
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import time

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

import meridian_test as mt
from test_health import lab  # noqa: F401  (fixture)
import mmdb_writer
from meridian_test import LOCAL, WAIT

ZONE = "example.com"
LB = "dns.example.com"
PX = "px.example.com"
CN = "cname.example.com"
# location_strategy load balancers (see _config)
GEO_DEF = "geo-default.example.com"
GEO_RES = "geo-resolver.example.com"
GEO_ECS = "geo-ecs.example.com"
PROX = "prox.example.com"
PROX_NEVER = "prox-never.example.com"
PROX_GEO = "prox-geo.example.com"
# geo steering whose ENAM pool is disabled (no fallback_pool): NODATA there
GEO_DOWN = "geo-down.example.com"
PUBLIC = "203.0.113.10"
# Pool answers: main (o1, o2), enam, weu, jp.
MAIN, ENAM, WEU, JP = "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"
# Resolvers and subnets: geo.networks places 127.1/16 in ENAM and 127.3/16
# in Japan (no coordinates); the test database places 1.2.3.0/24 in Tokyo
# and 5.6.7.0/24 in New York (country and coordinates).
RES_ENAM = "127.1.0.5"
TOKYO_NET, NY_NET = "1.2.3.0", "5.6.7.0"
# Big enough for TC over UDP (even at the EDNS size of 1232) and well
# under 64 KiB for TCP.
BIG = ["%s%04d" % (c * 900, i) for i, c in enumerate("abcd")]
T = 5.0  # per query


def _config(port, admin, geodb, o1, o2):
    geo_maps = {"region_pools": {"ENAM": ["enam"], "WEU": ["weu"]},
                "country_pools": {"JP": ["jp"]},
                "default_pools": ["main"], "proxied": False,
                "steering_policy": "geo"}
    prox = {"default_pools": ["enam", "weu", "jp"], "proxied": False,
            "steering_policy": "proximity"}
    cfg = {
        "edge": {
            "name": mt.EDGE_NAME, "workers": 2,
            # The PoP: Amsterdam, WEU.
            "region": "WEU", "latitude": 52.37, "longitude": 4.90,
            "public_addresses": [PUBLIC],
            "listen": {"dns": ["%s:%d" % (LOCAL, port)],
                       "admin": "%s:%d" % (LOCAL, admin)},
            "timeouts": {"drain": "5s", "client_idle": "1s"},
        },
        "zones": [{"name": ZONE, "records": [
            {"name": "www." + ZONE, "type": "A", "content": "203.0.113.20",
             "ttl": 300},
            {"name": "txt." + ZONE, "type": "TXT", "content": "hello dns"},
            {"name": ZONE, "type": "MX", "content": "mail." + ZONE,
             "priority": 10},
        ] + [{"name": "big." + ZONE, "type": "TXT", "content": b}
             for b in BIG] + [
            # ch1 -> ch2 -> ... -> ch9 (8 links), lp1 <-> lp2 (a loop)
            {"name": "ch%d.%s" % (i, ZONE), "type": "CNAME",
             "content": "ch%d.%s" % (i + 1, ZONE)} for i in range(1, 9)] + [
            {"name": "ch9." + ZONE, "type": "A", "content": "192.0.2.9"},
            {"name": "lp1." + ZONE, "type": "CNAME", "content": "lp2." + ZONE},
            {"name": "lp2." + ZONE, "type": "CNAME", "content": "lp1." + ZONE},
        ]}],
        "geo": {"database": geodb,
                "networks": {"127.1.0.0/16": {"region": "ENAM"},
                             "127.3.0.0/16": {"country": "JP"}}},
        "pools": [
            {"id": "main", "origins": [
                {"name": "o1", "address": LOCAL, "port": o1.port},
                {"name": "o2", "address": LOCAL, "port": o2.port}]},
            {"id": "enam", "latitude": 39.04, "longitude": -77.49,
             "origins": [{"name": "e1", "address": ENAM, "port": o1.port}]},
            {"id": "weu", "latitude": 52.37, "longitude": 4.90,
             "origins": [{"name": "w1", "address": WEU, "port": o1.port}]},
            {"id": "jp", "latitude": 35.68, "longitude": 139.69,
             "origins": [{"name": "j1", "address": JP, "port": o1.port}]},
            {"id": "named", "origins": [
                {"name": "n1", "address": "localhost", "port": o1.port}]},
            {"id": "down", "enabled": False, "origins": [
                {"name": "d1", "address": "127.0.0.6", "port": o1.port}]},
        ],
        "load_balancers": [
            # prefer_ecs always: geo steering by the subnet.
            {"name": LB, "proxied": False, "default_pools": ["main"],
             "region_pools": {"ENAM": ["enam"]},
             "location_strategy": {"prefer_ecs": "always"}},
            {"name": PX, "default_pools": ["main"]},
            {"name": CN, "proxied": False, "default_pools": ["named"]},
            # Cloudflare's defaults (mode pop, prefer_ecs proximity): geo
            # steering locates by the PoP, whatever the query says.
            dict(geo_maps, name=GEO_DEF),
            dict(geo_maps, name=GEO_RES, location_strategy={
                "mode": "resolver_ip", "prefer_ecs": "never"}),
            dict(geo_maps, name=GEO_ECS, location_strategy={
                "mode": "resolver_ip", "prefer_ecs": "geo"}),
            dict(prox, name=PROX),
            dict(prox, name=PROX_NEVER,
                 location_strategy={"prefer_ecs": "never"}),
            dict(prox, name=PROX_GEO,
                 location_strategy={"prefer_ecs": "geo"}),
            {"name": GEO_DOWN, "proxied": False, "steering_policy": "geo",
             "default_pools": ["main"], "region_pools": {"ENAM": ["down"]},
             "location_strategy": {"prefer_ecs": "always"}},
        ],
    }
    return mt.to_yaml(cfg) + "\n"


def _build(s):
    o1 = s.origin("dns-o1")
    o2 = s.origin("dns-o2")
    geodb = str(s.logdir / "city.mmdb")
    mmdb_writer.write(geodb, [
        (TOKYO_NET + "/24", {"country": {"iso_code": "JP"}, "location": {
            "latitude": 35.68, "longitude": 139.69}}),
        (NY_NET + "/24", {"country": {"iso_code": "US"}, "location": {
            "latitude": 40.71, "longitude": -74.01}}),
    ])
    e = None
    for attempt in range(3):  # the free ports may be taken meanwhile
        port, admin = mt.free_port(), mt.free_port()
        try:
            # Edge waits until the port accepts: the DNS TCP listener.
            e = mt.Edge(s.logdir, _config(port, admin, geodb, o1, o2), port,
                        "edge%d" % len(s.edges))
            break
        except AssertionError:
            if attempt == 2:
                raise
    s.procs.append(e)
    s.edges.append(e)
    return mt.Env(edge=e, admin=admin)


@pytest.fixture(scope="module")
def dns_module(tmp_path_factory):
    yield from mt.module_stack(tmp_path_factory, "dns", _build)


@pytest.fixture
def env(dns_module):
    yield from mt.per_test(dns_module)


def query(name, rdtype="A", **kw):
    return dns.message.make_query(name, rdtype, **kw)


def udp(env, q):
    return dns.query.udp(q, LOCAL, port=env.edge.port, timeout=T)


def tcp(env, q):
    return dns.query.tcp(q, LOCAL, port=env.edge.port, timeout=T)


def both(env, q):
    return [("udp", udp(env, q)), ("tcp", tcp(env, q))]


def answers(r, rdtype):
    out = []
    for rrset in r.answer:
        if rrset.rdtype == dns.rdatatype.from_text(rdtype):
            out += [rd.to_text() for rd in rrset]
    return sorted(out)


def ecs_of(r):
    for o in r.options:
        if isinstance(o, dns.edns.ECSOption):
            return o
    return None


# ---------------------------------------------------------------- zone data

def test_static_a_authoritative(env):
    for proto, r in both(env, query("www." + ZONE)):
        assert r.rcode() == dns.rcode.NOERROR, proto
        assert r.flags & dns.flags.AA, proto
        assert answers(r, "A") == ["203.0.113.20"], (proto, r)
        assert r.answer[0].ttl == 300


def test_txt_and_mx(env):
    for proto, r in both(env, query("txt." + ZONE, "TXT")):
        assert answers(r, "TXT") == ['"hello dns"'], (proto, r)
    for proto, r in both(env, query(ZONE, "MX")):
        assert answers(r, "MX") == ["10 mail.example.com."], (proto, r)


def test_nxdomain_with_soa(env):
    for proto, r in both(env, query("nope." + ZONE)):
        assert r.rcode() == dns.rcode.NXDOMAIN, (proto, r)
        assert r.flags & dns.flags.AA
        assert not r.answer
        assert [rr.rdtype for rr in r.authority] == [dns.rdatatype.SOA]
        assert r.authority[0].name.to_text() == ZONE + "."


def test_nodata(env):
    for proto, r in both(env, query("www." + ZONE, "AAAA")):
        assert r.rcode() == dns.rcode.NOERROR, (proto, r)
        assert r.flags & dns.flags.AA
        assert not r.answer
        assert [rr.rdtype for rr in r.authority] == [dns.rdatatype.SOA]


def test_refused_outside_zones(env):
    for proto, r in both(env, query("other.org")):
        assert r.rcode() == dns.rcode.REFUSED, (proto, r)
        assert not r.flags & dns.flags.AA


def test_truncation_then_tcp(env):
    q = query("big." + ZONE, "TXT")  # no EDNS: 512 bytes
    r = udp(env, q)
    assert r.flags & dns.flags.TC, r
    assert not r.answer
    q = query("big." + ZONE, "TXT", use_edns=0, payload=1232)
    r = udp(env, q)
    assert r.flags & dns.flags.TC, r
    r = tcp(env, q)
    assert not r.flags & dns.flags.TC
    got = sorted(rd.to_text().strip('"').replace('" "', "")
                 for rd in r.answer[0])
    assert got == sorted(BIG)


def test_cname_chain_of_8_links_and_loops(env):
    """Regression: a chain of 8 CNAME links (the documented limit) ended
    with the 8th CNAME and no A; a loop repeated its two CNAMEs up to 8
    records."""
    for proto, r in both(env, query("ch1." + ZONE)):
        assert r.rcode() == dns.rcode.NOERROR, (proto, r)
        assert len(answers(r, "CNAME")) == 8, (proto, r)
        assert answers(r, "A") == ["192.0.2.9"], (proto, r)
    # dnspython merges repeated records: count them in the header.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(T)
        s.sendto(query("lp1." + ZONE).to_wire(), (LOCAL, env.edge.port))
        wire = s.recv(65535)
    r = dns.message.from_wire(wire)
    assert r.rcode() == dns.rcode.NOERROR, r
    assert struct.unpack("!H", wire[6:8])[0] == 2, r
    owners = [(rr.name.to_text(), rr.rdtype) for rr in r.answer]
    assert sorted(owners) == [("lp1." + ZONE + ".", dns.rdatatype.CNAME),
                              ("lp2." + ZONE + ".", dns.rdatatype.CNAME)], r


def test_any_at_a_cname_is_the_cname(env):
    """RFC 8482 4.2: the synthesized HINFO only where no CNAME is; ANY
    matches the CNAME, which is not followed. Regression: ANY at a CNAME
    (static or a load balancer's hostname origin) got a HINFO, data
    beside a CNAME in a resolver's cache."""
    for name, target in (("ch1." + ZONE, "ch2." + ZONE + "."),
                         (CN, "localhost.")):
        for proto, r in both(env, query(name, "ANY")):
            assert r.rcode() == dns.rcode.NOERROR, (proto, r)
            assert r.flags & dns.flags.AA, (proto, r)
            assert [(rr.name.to_text(), rr.rdtype) for rr in r.answer] == \
                [(name + ".", dns.rdatatype.CNAME)], (proto, r)
            assert answers(r, "CNAME") == [target], (proto, r)
    r = udp(env, query("www." + ZONE, "ANY"))
    assert answers(r, "HINFO") == ['"RFC8482" ""'], r


# ---------------------------------------------------------------- load balancers

LB_NAMES = """\
edge:
  public_addresses: ["203.0.113.10"]
  listen: {dns: ["127.0.0.1:5353"]}
zones:
  - name: example.com
    records:
      - {name: lb.example.com, type: CNAME, content: www.example.com}
      - {name: www.example.com, type: A, content: 192.0.2.1}
      - {name: sub.example.com, type: NS, content: ns.other.net}
pools:
  - id: main
    origins: [{name: o1, address: 127.0.0.1, port: 1}]
load_balancers:
  - {name: %s, proxied: %s, default_pools: [main]}
"""


def _check(tmp_path, text):
    path = tmp_path / "lbnames.yaml"
    path.write_text(text)
    p = subprocess.run([mt.BIN, "check", "-c", str(path)],
                       capture_output=True, text=True, timeout=WAIT)
    return str(path), p.returncode, p.stderr


def test_check_lb_name_with_cname_or_below_a_cut(tmp_path):
    """Regression: a load balancer sharing its name with a static CNAME
    (A from the load balancer, the CNAME for other types: RFC 1034
    §3.6.2), or a DNS-only one at or below a delegation (never
    answered), passed `meridian check`."""
    path, rc, err = _check(tmp_path, LB_NAMES % ("lb.example.com", "true"))
    assert rc == 1, err
    assert "%s:14:5: load balancer 'lb.example.com': zone 'example.com' " \
        "has a CNAME record at this name" % path in err, err
    for name in ("sub.example.com", "x.sub.example.com"):
        path, rc, err = _check(tmp_path, LB_NAMES % (name, "false"))
        assert rc == 1, err
        assert ("%s:14:5: load balancer '%s' is DNS-only (proxied: false) "
                "but lies at or below 'sub.example.com'" % (path, name)) \
            in err, err
    # Proxied below the cut: HTTP only, the delegation answers DNS.
    path, rc, err = _check(tmp_path, LB_NAMES % ("x.sub.example.com",
                                                 "true"))
    assert rc == 0, err


def test_lb_dns_only(env):
    for proto, r in both(env, query(LB)):
        assert r.rcode() == dns.rcode.NOERROR, (proto, r)
        assert r.flags & dns.flags.AA
        # Both origins of the pool are 127.0.0.1: one record (an RRset
        # has no duplicates).
        assert answers(r, "A") == ["127.0.0.1"], (proto, r)
        assert r.answer[0].ttl == 30
    # No IPv6 origin: NODATA.
    r = udp(env, query(LB, "AAAA"))
    assert r.rcode() == dns.rcode.NOERROR and not r.answer, r
    assert [rr.rdtype for rr in r.authority] == [dns.rdatatype.SOA]


def test_lb_proxied_public_addresses(env):
    for proto, r in both(env, query(PX)):
        assert answers(r, "A") == [PUBLIC], (proto, r)
        assert r.answer[0].ttl == 30


def test_lb_hostname_origin_cname(env):
    r = udp(env, query(CN))
    assert r.rcode() == dns.rcode.NOERROR, r
    assert answers(r, "CNAME") == ["localhost."], r


def test_ecs_geo_steering(env):
    # 127.1.0.0/24 is in the ENAM network: the enam pool (127.0.0.2).
    opt = dns.edns.ECSOption("127.1.0.0", 24)
    for proto, r in both(env, query(LB, use_edns=0, options=[opt])):
        assert answers(r, "A") == ["127.0.0.2"], (proto, r)
        e = ecs_of(r)
        assert e is not None, (proto, r)
        assert (e.address, e.srclen, e.scopelen) == ("127.1.0.0", 24, 24)
    # Unmapped subnet: the default pool; geo steering still used the
    # subnet, so the scope is the source prefix.
    opt = dns.edns.ECSOption("127.9.0.0", 24)
    r = udp(env, query(LB, use_edns=0, options=[opt]))
    assert set(answers(r, "A")) == {"127.0.0.1"}, r
    # Static data: scope 0.
    r = udp(env, query("www." + ZONE, use_edns=0, options=[opt]))
    e = ecs_of(r)
    assert e is not None and e.scopelen == 0, r


def test_ecs_scope_of_an_answer_without_a_pool(env):
    """Regression: when the subnet's location led to no pool (its geo
    list all down, no fallback_pool) the NODATA went out with scope 0, so
    a resolver cached it for every client (RFC 7871 §7.2.1)."""
    opt = dns.edns.ECSOption("127.1.0.0", 24)  # ENAM: the disabled pool
    for proto, r in both(env, query(GEO_DOWN, use_edns=0, options=[opt])):
        assert r.rcode() == dns.rcode.NOERROR, (proto, r)
        assert answers(r, "A") == [], (proto, r)
        assert [x.rdtype for x in r.authority] == [dns.rdatatype.SOA], r
        e = ecs_of(r)
        assert e is not None and (e.srclen, e.scopelen) == (24, 24), \
            (proto, r)
    # Elsewhere the default pool answers, for that subnet too.
    opt = dns.edns.ECSOption("127.9.0.0", 24)
    r = udp(env, query(GEO_DOWN, use_edns=0, options=[opt]))
    assert answers(r, "A") == [MAIN], r
    assert ecs_of(r).scopelen == 24, r


def test_dig_subnet(env):
    assert shutil.which("dig"), "dig missing: scripts/deps.sh installs " \
        "bind9-dnsutils"
    out = subprocess.run(
        ["dig", "@" + LOCAL, "-p", str(env.edge.port), LB, "A", "+norec",
         "+subnet=127.1.0.0/24", "+time=3", "+tries=1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=WAIT,
        check=False).stdout.decode(errors="replace")
    assert "status: NOERROR" in out, out
    assert "CLIENT-SUBNET: 127.1.0.0/24/24" in out, out
    lines = [ln.split() for ln in out.splitlines()
             if ln.startswith(LB + ".")]
    assert lines and all(ln[-2:] == ["A", "127.0.0.2"] for ln in lines), out
    assert all(ln[1] == "30" for ln in lines), out


# ---------------------------------------------------------------- location_strategy

def ask(env, name, ecs=None, source=LOCAL):
    """The A answers for name asked from `source` (a loopback resolver
    address), with an ECS option (address, source prefix) when given,
    and the ECS scope returned (None without ECS)."""
    kw = {}
    if ecs:
        kw = {"use_edns": 0, "options": [dns.edns.ECSOption(*ecs)]}
    r = dns.query.udp(query(name, **kw), LOCAL, port=env.edge.port,
                      timeout=T, source=source)
    assert r.rcode() == dns.rcode.NOERROR, r
    e = ecs_of(r)
    if ecs:
        assert e is not None and e.srclen == ecs[1], r
    return answers(r, "A"), e.scopelen if e else None


def test_location_default_is_the_pop_for_geo(env):
    # mode pop, prefer_ecs proximity (Cloudflare's defaults) with geo
    # steering: neither the subnet nor the resolver counts; the edge is in
    # WEU.
    assert ask(env, GEO_DEF) == ([WEU], None)
    assert ask(env, GEO_DEF, source=RES_ENAM) == ([WEU], None)
    assert ask(env, GEO_DEF, ecs=("127.3.0.0", 24)) == ([WEU], 0)
    assert ask(env, GEO_DEF, ecs=(TOKYO_NET, 24)) == ([WEU], 0)


def test_location_resolver_ip_never_ecs(env):
    # mode resolver_ip, prefer_ecs never: the resolver's location.
    assert ask(env, GEO_RES, source=RES_ENAM) == ([ENAM], None)
    assert ask(env, GEO_RES, ecs=("127.3.0.0", 24),
               source=RES_ENAM) == ([ENAM], 0)
    # A resolver geo cannot place: the PoP.
    assert ask(env, GEO_RES) == ([WEU], None)


def test_location_prefer_ecs_geo(env):
    # The subnet first: geo.networks (127.3/16 is Japan) or the database.
    assert ask(env, GEO_ECS, ecs=("127.3.0.0", 24),
               source=RES_ENAM) == ([JP], 24)
    assert ask(env, GEO_ECS, ecs=(TOKYO_NET, 24)) == ([JP], 24)
    # The United States are in ENAM.
    assert ask(env, GEO_ECS, ecs=(NY_NET, 24)) == ([ENAM], 24)
    # A subnet geo cannot place: the resolver (mode resolver_ip), then
    # the PoP; the answer still depended on the subnet (scope).
    assert ask(env, GEO_ECS, ecs=("127.9.0.0", 24),
               source=RES_ENAM) == ([ENAM], 24)
    assert ask(env, GEO_ECS, ecs=("127.9.0.0", 24)) == ([WEU], 24)
    # No subnet, or a source prefix of 0: the resolver.
    assert ask(env, GEO_ECS, source=RES_ENAM) == ([ENAM], None)
    assert ask(env, GEO_ECS, ecs=("0.0.0.0", 0),
               source=RES_ENAM) == ([ENAM], 0)


def test_ecs_scope_follows_finer_geo_data(env):
    """Regression: the scope was always the query's source prefix, so an
    answer for a /15 that holds a differently placed /16 was cached for
    the whole /15 (RFC 7871 §7.2.1 wants the longer scope)."""
    # 127.0.0.0/15 holds the ENAM override 127.1.0.0/16; its address
    # 127.0.0.0 is not in it: the default pool, for 127.0.0.0/16 only.
    assert ask(env, LB, ecs=("127.0.0.0", 15)) == ([MAIN], 16)
    out = subprocess.run(
        ["dig", "@" + LOCAL, "-p", str(env.edge.port), LB, "A", "+norec",
         "+subnet=127.0.0.0/15", "+time=3", "+tries=1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=WAIT,
        check=False).stdout.decode(errors="replace")
    assert "CLIENT-SUBNET: 127.0.0.0/15/16" in out, out
    # 127.0.0.0/8 holds two /16 overrides.
    assert ask(env, GEO_ECS, ecs=("127.0.0.0", 8),
               source=RES_ENAM)[1] == 16
    # The database's record network (MMDB netmask): 1.2.0.0/16 holds the
    # Tokyo /24, 1.2.0.0 itself is in an empty block no wider than /23.
    got, scope = ask(env, GEO_ECS, ecs=("1.2.0.0", 16))
    assert got == [WEU] and 16 < scope <= 23, (got, scope)
    assert ask(env, PROX, ecs=("1.2.0.0", 16))[1] == scope
    # Nothing finer: the source prefix.
    assert ask(env, GEO_ECS, ecs=(TOKYO_NET, 24)) == ([JP], 24)
    assert ask(env, LB, ecs=("127.1.0.0", 24)) == ([ENAM], 24)


def test_location_proximity(env):
    # prefer_ecs proximity (the default) with proximity steering: the
    # nearest pool to the subnet's coordinates (the test database).
    assert ask(env, PROX, ecs=(TOKYO_NET, 24)) == ([JP], 24)
    assert ask(env, PROX, ecs=(NY_NET, 24)) == ([ENAM], 24)
    # No subnet, or one without coordinates (geo.networks), and mode pop:
    # the nearest to the edge (Amsterdam).
    assert ask(env, PROX) == ([WEU], None)
    assert ask(env, PROX, source=RES_ENAM) == ([WEU], None)
    assert ask(env, PROX, ecs=("127.3.0.0", 24)) == ([WEU], 24)
    # prefer_ecs never, or geo (another policy): the subnet is ignored.
    for name in (PROX_NEVER, PROX_GEO):
        assert ask(env, name, ecs=(TOKYO_NET, 24)) == ([WEU], 0), name


# ---------------------------------------------------------------- counters

def dns_stats(env):
    r = mt.request(env.admin, "GET", "/status?format=json", host="admin")
    assert r.status == 200, r
    return json.loads(r.body)["dns"]


def _delta(a, b):
    """b - a, for the nested counter objects."""
    if isinstance(a, dict):
        return {k: _delta(a[k], b[k]) for k in a}
    return b - a


def test_counters(env):
    before = dns_stats(env)
    assert set(before["queries"]) == {"udp", "tcp"}
    assert {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",
            "REFUSED", "BADVERS", "other"} == set(before["responses"])
    udp(env, query("www." + ZONE))  # NOERROR
    tcp(env, query("nope." + ZONE))  # NXDOMAIN over TCP
    udp(env, query("other.org"))  # REFUSED
    ecs = dns.edns.ECSOption("127.1.0.0", 24)
    r = udp(env, query(LB, use_edns=0, options=[ecs]))  # lb, ECS, scoped
    assert answers(r, "A") == [ENAM], r
    r = udp(env, query("big." + ZONE, "TXT"))  # TC
    assert r.flags & dns.flags.TC
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(T)
        w = bytearray(query("www." + ZONE).to_wire())
        w[4:6] = b"\x00\x00"  # QDCOUNT 0: FORMERR
        s.sendto(bytes(w), (LOCAL, env.edge.port))
        resp = s.recv(4096)
        assert resp[:2] == w[:2] and resp[3] & 0xF == dns.rcode.FORMERR
        s.sendto(b"\x00", (LOCAL, env.edge.port))  # dropped: no answer
    want = {"queries": {"udp": 6, "tcp": 1},
            "responses": {"NOERROR": 3, "FORMERR": 1, "SERVFAIL": 0,
                          "NXDOMAIN": 1, "NOTIMP": 0, "REFUSED": 1,
                          "BADVERS": 0, "other": 0},
            "ecs": 1, "ecs_scoped": 1, "truncated": 1, "dropped": 1,
            "lb": 1, "send_errors": 0,
            "rate_limited": {"dropped": 0, "truncated": 0}}
    # The dropped datagram has no answer to wait for: poll the counters.
    mt.wait_for(lambda: _delta(before, dns_stats(env))["dropped"] >= 1,
                what="the dropped query to be counted")
    got = _delta(before, dns_stats(env))
    tcp_counts = got.pop("tcp")
    assert got == want, got
    assert tcp_counts["accepted"] == 1, tcp_counts
    # The text page has them too.
    r = mt.request(env.admin, "GET", "/status", host="admin")
    text = r.body.decode()
    assert "\nDNS\n" in text, text
    line = [ln for ln in text.splitlines() if ln.strip().startswith(
        "queries")][0].split()
    assert line[1] == "udp" and \
        int(line[2]) >= before["queries"]["udp"] + 6, line
    # And /metrics, ECS use included (issue 4 names it), the same values.
    from obs_helpers import Metrics
    now = dns_stats(env)
    m = Metrics(mt.request(env.admin, "GET", "/metrics",
                           host="admin").text)
    for fam, key in (("meridian_dns_ecs_queries_total", "ecs"),
                     ("meridian_dns_ecs_scoped_answers_total", "ecs_scoped"),
                     ("meridian_dns_send_errors_total", "send_errors"),
                     ("meridian_dns_truncated_total", "truncated"),
                     ("meridian_dns_lb_answers_total", "lb")):
        assert m.get(fam) == now[key], (fam, m.get(fam), now[key])
    assert m.get("meridian_dns_ecs_queries_total") >= 1


# ---------------------------------------------------------------- TCP

def _recv_exact(s, n, deadline):
    buf = b""
    for _ in range(100000):
        if len(buf) >= n:
            return buf
        s.settimeout(max(0.01, deadline - time.monotonic()))
        k = s.recv(n - len(buf))
        if not k:
            raise EOFError("closed after %d of %d bytes" % (len(buf), n))
        buf += k
    raise AssertionError("unreachable")


def _closed(s, timeout):
    """True when the peer closes (FIN or RST) before the deadline."""
    deadline = time.monotonic() + timeout
    for _ in range(1000):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        s.settimeout(left)
        try:
            if not s.recv(4096):
                return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
    return False


def test_tcp_several_queries_per_connection(env):
    names = ["www." + ZONE, "nope." + ZONE, LB, "other.org"]
    msgs = [query(n) for n in names]
    data = b"".join(struct.pack("!H", len(w)) + w
                    for w in (m.to_wire() for m in msgs))
    with socket.create_connection((LOCAL, env.edge.port), timeout=T) as s:
        s.sendall(data[:7])  # framing split across segments
        time.sleep(0.05)
        s.sendall(data[7:])
        deadline = time.monotonic() + WAIT
        rcodes = []
        for m in msgs:
            n = struct.unpack("!H", _recv_exact(s, 2, deadline))[0]
            r = dns.message.from_wire(_recv_exact(s, n, deadline))
            assert r.id == m.id
            rcodes.append(r.rcode())
        assert rcodes == [dns.rcode.NOERROR, dns.rcode.NXDOMAIN,
                          dns.rcode.NOERROR, dns.rcode.REFUSED]
        # Idle timeout (client_idle 1s): the edge closes the connection.
        assert _closed(s, 1 + WAIT)


def test_tcp_bad_framing_closes(env):
    with socket.create_connection((LOCAL, env.edge.port), timeout=T) as s:
        s.sendall(b"\x00\x00")  # a zero-length message
        assert _closed(s, WAIT)
    with socket.create_connection((LOCAL, env.edge.port), timeout=T) as s:
        s.sendall(b"\x00\x05hello")  # shorter than a header: dropped
        assert _closed(s, WAIT)
    r = tcp(env, query("www." + ZONE))
    assert answers(r, "A") == ["203.0.113.20"]


def test_tcp_trickled_bytes_do_not_hold_a_connection(env):
    """A message still partial does not extend client_idle (1 s here): a
    client sending one byte every 0.2 s of a 100-byte query is closed
    anyway, long before its message could be whole (RFC 7766 §6.2.3)."""
    with socket.create_connection((LOCAL, env.edge.port), timeout=T) as s:
        s.sendall(b"\x00\x64\x12")
        closed = False
        for _ in range(99):  # about 20 s of trickle, more than WAIT
            time.sleep(0.2)
            try:
                s.sendall(b"\x00")
            except OSError:
                closed = True
                break
            if _closed(s, 0.01):
                closed = True
                break
        assert closed


def test_tcp_full_table_evicts_the_least_recently_active(stack):
    """256 connections per worker holding partial queries do not lock a
    new client out: the least recently active one is closed for it."""
    port, admin = mt.free_port(), mt.free_port()
    cfg = {"edge": {"name": mt.EDGE_NAME, "workers": 1,
                    "listen": {"dns": ["%s:%d" % (LOCAL, port)],
                               "admin": "%s:%d" % (LOCAL, admin)},
                    "timeouts": {"drain": "2s", "client_idle": "60s"},
                    "store": str(stack.logdir / "evict.db")},
           "zones": [{"name": ZONE, "records": [
               {"name": "www." + ZONE, "type": "A",
                "content": "203.0.113.20"}]}]}
    e = mt.Edge(stack.logdir, mt.to_yaml(cfg) + "\n", port, "evict")
    stack.procs.append(e)
    stack.edges.append(e)
    mt.wait_for(lambda: mt.port_accepts(admin), what="admin")
    env = mt.Env(edge=e, admin=admin)
    socks = []
    # The start-up probe connected too; when the edge counts it is not
    # known, hence ">=" below. More than the table holds: the oldest are
    # evicted while the rest come in.
    base = dns_stats(env)["tcp"]["accepted"]
    try:
        for i in range(260):
            c = socket.create_connection((LOCAL, port), timeout=T)
            c.sendall(b"\x00\x40\x12")  # a partial 64-byte query
            socks.append(c)
        mt.wait_for(lambda: dns_stats(env)["tcp"]["accepted"] >= base + 260,
                    what="260 connections")
        r = dns.query.tcp(query("www." + ZONE), LOCAL, port=port, timeout=T)
        assert answers(r, "A") == ["203.0.113.20"]
        assert dns_stats(env)["tcp"]["evicted"] >= 1
        assert _closed(socks[0], WAIT)  # the oldest made room
        m = mt.request(admin, "GET", "/metrics", host="admin").body.decode()
        ev = [ln for ln in m.splitlines() if ln.startswith(
            'meridian_dns_tcp_connections_total{event="evicted"} ')]
        assert ev and int(ev[0].split()[-1]) >= 1, ev
    finally:
        for c in socks:
            c.close()


# ---------------------------------------------------------------- robustness

def test_malformed_packets(env):
    rnd = random.Random(4)
    good = query("www." + ZONE).to_wire()
    bad = [b"", b"\x00", good[:5], good[:12], good[:-3], good + b"junk",
           b"\xff" * 12, b"\x12\x34\x81\x00" + good[4:],  # QR set
           b"\x00" * 5000]  # over our UDP buffer
    # A question whose name is a compression loop.
    bad.append(good[:12] + b"\xc0\x0c\x00\x01\x00\x01")
    for _ in range(300):
        bad.append(bytes(rnd.getrandbits(8)
                         for _ in range(rnd.randint(0, 600))))
    for _ in range(300):  # valid header, mangled rest
        w = bytearray(good)
        for _ in range(rnd.randint(1, 6)):
            w[rnd.randrange(2, len(w))] = rnd.getrandbits(8)
        bad.append(bytes(w))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for b in bad:
            s.sendto(b, (LOCAL, env.edge.port))
    # TCP: random bytes on several connections.
    for i in range(10):
        with socket.create_connection((LOCAL, env.edge.port),
                                      timeout=T) as s:
            try:
                s.sendall(bytes(rnd.getrandbits(8) for _ in range(300)))
            except OSError:
                pass
    env.edge.check_alive()
    r = tcp(env, query("www." + ZONE))
    assert answers(r, "A") == ["203.0.113.20"]
    # UDP may lose a datagram right after a flood (a full socket buffer
    # is not a crash): a few tries.
    for attempt in range(5):
        try:
            r = dns.query.udp(query("www." + ZONE), LOCAL,
                              port=env.edge.port, timeout=2)
            break
        except dns.exception.Timeout:
            if attempt == 4:
                raise
    assert answers(r, "A") == ["203.0.113.20"]


def _raw_udp(env, wire):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(T)
        s.sendto(wire, (LOCAL, env.edge.port))
        return dns.message.from_wire(s.recv(65535))


def test_error_responses_keep_the_opt(env):
    """Regression: NOTIMP and QDCOUNT != 1 FORMERR answered EDNS queries
    without an OPT (RFC 6891 §7), and an OPT in the answer section was
    ignored instead of being a FORMERR (§6.1.1)."""
    out = subprocess.run(
        ["dig", "@" + LOCAL, "-p", str(env.edge.port), "+opcode=status",
         "www." + ZONE, "+time=3", "+tries=1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=WAIT,
        check=False).stdout.decode(errors="replace")
    assert "status: NOTIMP" in out, out
    assert "OPT PSEUDOSECTION" in out, out
    assert "EDNS query returned status" not in out, out
    good = query("www." + ZONE, use_edns=0, payload=1232).to_wire()
    head, opt = good[:-11], good[-11:]
    # QDCOUNT 2: the question again, as a pointer to the first one.
    two = (head[:4] + b"\x00\x02" + head[6:] +
           b"\xc0\x0c\x00\x1c\x00\x01" + opt)
    r = _raw_udp(env, two)
    assert r.rcode() == dns.rcode.FORMERR, r
    assert r.edns == 0 and not r.question, r
    # An OPT in the answer section (and one in additional).
    ans = head[:6] + b"\x00\x01" + head[8:] + opt + opt
    r = _raw_udp(env, ans)
    assert r.rcode() == dns.rcode.FORMERR, r
    assert r.edns == 0, r
    assert [q.name.to_text() for q in r.question] == ["www." + ZONE + "."]
    assert not r.answer
    env.edge.check_alive()


def test_answers_follow_health_down_and_back(lab):
    """A DNS-only load balancer answers only healthy origins: an origin
    that dies leaves the answers within a health interval and comes back
    when it recovers; with the whole pool down the fallback pool answers."""
    from test_health import monitor, org
    a1 = lab.origin("a1")
    b1 = lab.origin("b1")
    dport = mt.free_port()
    ed = lab.edge(
        [{"id": "pa", "monitor": "m", "origins": [org(a1)]},
         {"id": "pb", "monitor": "m",
          "origins": [dict(org(b1), address="127.0.0.2")]}],
        [{"name": "dyn.example.com", "proxied": False, "ttl": 5,
          "default_pools": ["pa"], "fallback_pool": "pb"}],
        monitors=[monitor(interval="1s")], dns_port=dport,
        zones=[{"name": "example.com"}])
    ed.check_alive()

    def addrs():
        q = dns.message.make_query("dyn.example.com", "A")
        try:
            r = dns.query.udp(q, LOCAL, port=dport, timeout=2)
        except (dns.exception.Timeout, OSError):
            return None
        return sorted(rr.address for rrset in r.answer for rr in rrset
                      if rrset.rdtype == dns.rdatatype.A)

    mt.wait_for(lambda: addrs() == ["127.0.0.1"], what="a1 answered")
    lab.kill(a1)
    mt.wait_for(lambda: addrs() == ["127.0.0.2"],
                what="fallback pool answered once a1 is down")
    lab.restart(a1)
    mt.wait_for(lambda: addrs() == ["127.0.0.1"],
                what="a1 answered again after it recovered")


# --------------------------------------------------- response rate limiting

def _small_edge(stack, tag, extra, wrap=()):
    """A one-worker DNS-only edge serving www.example.com; extra: more
    keys of its edge section."""
    for attempt in range(3):  # the free ports may be taken meanwhile
        port, admin = mt.free_port(), mt.free_port()
        cfg = {"edge": dict({
            "name": mt.EDGE_NAME, "workers": 1,
            "listen": {"dns": ["%s:%d" % (LOCAL, port)],
                       "admin": "%s:%d" % (LOCAL, admin)},
            "timeouts": {"drain": "5s"}}, **extra),
            "zones": [{"name": ZONE, "records": [
                {"name": "www." + ZONE, "type": "A",
                 "content": "203.0.113.20"}]}]}
        try:
            e = mt.Edge(stack.logdir, mt.to_yaml(cfg) + "\n", port,
                        "%s%d" % (tag, attempt), wrap=wrap)
            stack.edges.append(e)
            return e, admin
        except AssertionError:
            if attempt == 2:
                raise


def _rrl_edge(stack, rps, slip):
    return _small_edge(stack, "edge-rrl", {"dns_rate_limit": {
        "responses_per_second": rps, "slip": slip, "ipv4_prefix_length": 32,
        "exempt_networks": ["127.0.0.3/32", "2001:db8::/32"]}})


def _rrl_counts(admin):
    from obs_helpers import Metrics
    r = mt.request(admin, "GET", "/metrics", host="admin")
    m = Metrics(r.text)
    return (int(m.get("meridian_dns_queries_total", transport="udp")),
            int(m.get("meridian_dns_rate_limited_total", action="dropped")),
            int(m.get("meridian_dns_rate_limited_total", action="truncated")))


def _udp_burst(port, admin, n, source=LOCAL):
    """n identical queries back to back from one socket. Waits until the
    edge has counted them all, then reads every reply it sent (all but
    the dropped ones): (answered, truncated, dropped)."""
    q0, d0, t0 = _rrl_counts(admin)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    try:
        for i in range(n):
            q = query("www." + ZONE)
            q.id = i
            s.sendto(q.to_wire(), (LOCAL, port))
        counts = mt.wait_for(
            lambda: (lambda c: c if c[0] >= q0 + n else None)(
                _rrl_counts(admin)),
            what="the edge to count the burst")
        dropped, slipped = counts[1] - d0, counts[2] - t0
        answered = truncated = 0
        s.settimeout(T)
        for _ in range(n - dropped):
            data, _ = s.recvfrom(4096)
            r = dns.message.from_wire(data)
            if r.flags & dns.flags.TC:
                assert not r.answer, r
                assert r.question[0].name.to_text() == "www.%s." % ZONE
                truncated += 1
            else:
                assert answers(r, "A") == ["203.0.113.20"], r
                answered += 1
        assert truncated == slipped, (truncated, slipped)
        return answered, truncated, dropped
    finally:
        s.close()


def test_rate_limit_udp_answers(stack):
    """edge.dns_rate_limit: of a burst of 30 identical UDP queries from one
    client, at most responses_per_second a second are answered; of the rest
    every slip-th comes back truncated (TC, the question, no records: a
    real resolver retries over TCP) and the others are dropped. TCP is never
    limited, another client has its own budget, /metrics counts both."""
    e, admin = _rrl_edge(stack, rps=5, slip=2)
    t0 = time.monotonic()
    answered, truncated, dropped = _udp_burst(e.port, admin, 30)
    # The one-second windows the burst can have met: those it lasted,
    # the one it started in, and one for a worker whose cached clock
    # lags (a loaded machine stretches the burst itself).
    windows = int(time.monotonic() - t0) + 3
    assert answered + truncated + dropped == 30
    # Up to 5 answers in each window, every 2nd of the rest TC (each
    # window rounds its cadence on its own).
    assert 5 <= answered <= 5 * windows, (answered, truncated, dropped)
    over = 30 - answered
    assert abs(truncated - over / 2) <= windows, \
        (answered, truncated, dropped, windows)
    # TCP from the same address: every query answered.
    for _ in range(10):
        r = dns.query.tcp(query("www." + ZONE), LOCAL, port=e.port,
                          timeout=T)
        assert answers(r, "A") == ["203.0.113.20"] and \
            not r.flags & dns.flags.TC, r
    # Another address (prefix /32 here): its own budget.
    assert _udp_burst(e.port, admin, 5, source="127.0.0.2") == (5, 0, 0)
    # An exempt network: never limited.
    assert _udp_burst(e.port, admin, 30, source="127.0.0.3") == (30, 0, 0)
    # The log names the limited network, once (not a line per answer).
    lines = [ln for ln in e.stderr_tail(1 << 20).splitlines()
             if "rate limiting answers to" in ln]
    assert len(lines) == 1 and "127.0.0.1/32 (over 5 a second)" in lines[0], \
        lines


# ------------------------------------------------------ UDP receive buffer

def _rcvbuf(port):
    """The kernel's receive buffer size (rb) of the UDP socket on port."""
    out = subprocess.run(["ss", "-uamnH", "sport = :%d" % port],
                         capture_output=True, text=True, check=True).stdout
    sizes = [int(t[len("rb"):]) for t in
             out.replace("(", ",").replace(")", ",").split(",")
             if t.startswith("rb")]
    assert len(sizes) == 1, out
    return sizes[0]


def _udp_counts(admin):
    from obs_helpers import Metrics
    m = Metrics(mt.request(admin, "GET", "/metrics", host="admin").text)
    return (int(m.get("meridian_dns_queries_total", transport="udp")),
            int(m.get("meridian_dns_udp_receive_dropped_total")))


def test_receive_buffer_and_kernel_drops(stack):
    """edge.limits.dns_receive_buffer sets the UDP socket's SO_RCVBUF (the
    kernel shows twice the size); queries the kernel drops while the
    buffer is full are counted: with the edge stopped, a burst far larger
    than a 16 KiB buffer is either read afterwards or dropped, and the
    two counters account for every datagram sent (loopback loses none
    elsewhere)."""
    e, admin = _small_edge(stack, "edge-rcvbuf",
                         {"limits": {"dns_receive_buffer": "16K"}})
    assert _rcvbuf(e.port) == 2 * 16384
    q0, d0 = _udp_counts(admin)
    n = 400
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    wire = query("www." + ZONE).to_wire()
    os.kill(e.pid, signal.SIGSTOP)
    try:
        for _ in range(n):
            s.sendto(wire, (LOCAL, e.port))
    finally:
        os.kill(e.pid, signal.SIGCONT)
        s.close()
    got = mt.wait_for(
        lambda: (lambda c: c if c[0] + c[1] >= q0 + d0 + n else None)(
            _udp_counts(admin)),
        what="every datagram read or counted as dropped")
    read, dropped = got[0] - q0, got[1] - d0
    assert read + dropped == n, (read, dropped)
    assert dropped > 0 and read > 0, (read, dropped)
    # The default is 1 MiB.
    e2, _ = _small_edge(stack, "edge-rcvdef", {})
    assert _rcvbuf(e2.port) == 2 * 1048576


def test_receive_buffer_capped_without_cap_net_admin(stack):
    """Without CAP_NET_ADMIN the buffer stops at net.core.rmem_max: the
    edge still serves, and says once what it got."""
    wrap = ["setpriv", "--inh-caps=-net_admin",
            "--bounding-set=-net_admin", "--"]
    e, _ = _small_edge(stack, "edge-rcvcap",
                       {"limits": {"dns_receive_buffer": "256M"}}, wrap=wrap)
    with open("/proc/sys/net/core/rmem_max") as f:
        rmem_max = int(f.read())
    assert _rcvbuf(e.port) == 2 * rmem_max
    mt.wait_for(lambda: "net.core.rmem_max caps it" in
                e.stderr_tail(1 << 16), what="the capped-buffer warning")
    r = dns.query.udp(query("www." + ZONE), LOCAL, port=e.port, timeout=T)
    assert answers(r, "A") == ["203.0.113.20"], r
    lines = [ln for ln in e.stderr_tail(1 << 20).splitlines()
             if "rmem_max caps it" in ln]
    assert len(lines) == 1, lines
