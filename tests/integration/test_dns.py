"""Authoritative DNS on the edge (issue 4): edge.listen.dns over UDP and
TCP against the real binary, with dnspython and dig. A DNS-only edge (no
listen.http) serves one zone with static records, a DNS-only load balancer
steered by geo (the client located by EDNS Client Subnet), a proxied one
(answered with public_addresses) and one whose origin is a hostname (a
CNAME). Everything on 127.0.0.0/8; every wait has a deadline."""
import random
import shutil
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
from meridian_test import LOCAL, WAIT

ZONE = "example.com"
LB = "dns.example.com"
PX = "px.example.com"
CN = "cname.example.com"
PUBLIC = "203.0.113.10"
# Big enough for TC over UDP (even at the EDNS size of 1232) and well
# under 64 KiB for TCP.
BIG = ["%s%04d" % (c * 900, i) for i, c in enumerate("abcd")]
T = 5.0  # per query


def _config(port, o1, o2):
    cfg = {
        "edge": {
            "name": mt.EDGE_NAME, "workers": 2,
            "public_addresses": [PUBLIC],
            "listen": {"dns": ["%s:%d" % (LOCAL, port)]},
            "timeouts": {"drain": "5s", "client_idle": "1s"},
        },
        "zones": [{"name": ZONE, "records": [
            {"name": "www." + ZONE, "type": "A", "content": "203.0.113.20",
             "ttl": 300},
            {"name": "txt." + ZONE, "type": "TXT", "content": "hello dns"},
            {"name": ZONE, "type": "MX", "content": "mail." + ZONE,
             "priority": 10},
        ] + [{"name": "big." + ZONE, "type": "TXT", "content": b}
             for b in BIG]}],
        "geo": {"networks": {"127.1.0.0/16": {"region": "ENAM"}}},
        "pools": [
            {"id": "main", "origins": [
                {"name": "o1", "address": LOCAL, "port": o1.port},
                {"name": "o2", "address": LOCAL, "port": o2.port}]},
            {"id": "enam", "origins": [
                {"name": "e1", "address": "127.0.0.2", "port": o1.port}]},
            {"id": "named", "origins": [
                {"name": "n1", "address": "localhost", "port": o1.port}]},
        ],
        "load_balancers": [
            {"name": LB, "proxied": False, "default_pools": ["main"],
             "region_pools": {"ENAM": ["enam"]}},
            {"name": PX, "default_pools": ["main"]},
            {"name": CN, "proxied": False, "default_pools": ["named"]},
        ],
    }
    return mt.to_yaml(cfg) + "\n"


def _build(s):
    o1 = s.origin("dns-o1")
    o2 = s.origin("dns-o2")
    e = None
    for attempt in range(3):  # the free port may be taken meanwhile
        port = mt.free_port()
        try:
            # Edge waits until the port accepts: the DNS TCP listener.
            e = mt.Edge(s.logdir, _config(port, o1, o2), port,
                        "edge%d" % len(s.edges))
            break
        except AssertionError:
            if attempt == 2:
                raise
    s.procs.append(e)
    s.edges.append(e)
    return mt.Env(edge=e)


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


# ---------------------------------------------------------------- load balancers

def test_lb_dns_only(env):
    for proto, r in both(env, query(LB)):
        assert r.rcode() == dns.rcode.NOERROR, (proto, r)
        assert r.flags & dns.flags.AA
        # Both origins of the pool are 127.0.0.1 (merged or not).
        assert set(answers(r, "A")) == {"127.0.0.1"}, (proto, r)
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
