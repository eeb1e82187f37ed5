"""The PROXY protocol on https listeners: the v1 or v2 header comes in clear
before the TLS ClientHello (as HAProxy and cloud load balancers send it);
the edge takes exactly the header and then does the handshake. The client it
names is the one steered by geo and appended to X-Forwarded-For, as on plain
listeners (test_client_ip.py); a missing or bad header closes the
connection, and so does any connection from a peer outside
geo.trusted_proxies. Every client and server is on 127.0.0.0/8."""
import socket
import ssl
import subprocess
import time

import pytest

import meridian_test as mt
from test_client_ip import _exchange, _v2
from test_tls import certs, client_ctx

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "openssl"], capture_output=True).returncode,
    reason="needs the openssl CLI")

HOST = "lb.example.com"
V1 = b"PROXY TCP4 127.1.0.9 127.0.0.1 5555 443\r\n"


def _edge(stack, tmp_path, trusted, header_timeout="10s"):
    """An edge with proxy_protocol on an http and an https listener;
    geo.networks puts 127.1.0.0/16 in ENAM, whose pools prefer aws."""
    gcp = stack.origin("g1", "gcp")
    aws = stack.origin("a1", "aws")
    port, hp = mt.free_port(), mt.free_port()
    cfg = {
        "edge": {"name": mt.EDGE_NAME, "workers": 1,
                 "store": str(tmp_path / "store.db"),
                 "listen": {"http": ["%s:%d" % (mt.LOCAL, port)],
                            "https": ["%s:%d" % (mt.LOCAL, hp)],
                            "proxy_protocol": True},
                 "timeouts": {"drain": "5s", "client_header": header_timeout},
                 "tls": certs(tmp_path)},
        "geo": {"networks": {"127.1.0.0/16": {"region": "ENAM"}},
                "trusted_proxies": trusted},
        "pools": [
            {"id": "gcp", "origins": [{"name": "g1", "address": mt.LOCAL,
                                       "port": gcp.port}]},
            {"id": "aws", "origins": [{"name": "a1", "address": mt.LOCAL,
                                       "port": aws.port}]},
        ],
        "load_balancers": [{"name": HOST, "default_pools": ["gcp", "aws"],
                            "region_pools": {"ENAM": ["aws", "gcp"]}}],
    }
    e = mt.Edge(stack.logdir, mt.to_yaml(cfg) + "\n", port)
    stack.procs.append(e)
    stack.edges.append(e)
    e.https = hp
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    return e


class BioSock:
    """A TLS client over a raw socket through memory BIOs, so that bytes of
    our own (the PROXY header) go out in the same write as the ClientHello.
    Has what mt.HttpConn uses of a socket."""

    def __init__(self, port, prefix, source=None, split=None):
        self.raw = socket.socket()
        self.raw.settimeout(mt.WAIT)
        if source:
            self.raw.bind((source, 0))
        self.raw.connect((mt.LOCAL, port))
        self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = client_ctx().wrap_bio(self.inc, self.out,
                                         server_hostname=HOST)
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        data = prefix + self.out.read()
        if split:  # the first `split` bytes, a pause, then the rest
            self.raw.sendall(data[:split])
            time.sleep(0.3)
            data = data[split:]
        self.raw.sendall(data)
        for _ in range(1000):
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._pull()
        self._flush()

    def _flush(self):
        d = self.out.read()
        if d:
            self.raw.sendall(d)

    def _pull(self):
        try:
            d = self.raw.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            raise mt.Closed("closed by the edge")
        self.inc.write(d)

    def settimeout(self, t):
        self.raw.settimeout(t)

    def sendall(self, data):
        self.tls.write(data)
        self._flush()

    def recv_into(self, buf):
        for _ in range(1000):
            try:
                d = self.tls.read(len(buf))
                buf[:len(d)] = d
                return len(d)
            except ssl.SSLWantReadError:
                try:
                    self._pull()
                except mt.Closed:
                    return 0
            except ssl.SSLZeroReturnError:
                return 0
        raise AssertionError("no TLS progress")

    def close(self):
        self.raw.close()


class ProxiedTls(mt.HttpConn):
    def __init__(self, port, prefix, source=None, split=None):
        self.sock = BioSock(port, prefix, source, split)
        self.buf = bytearray()
        self.timeout = mt.WAIT
        self.rbuf = bytearray(1 << 16)


def echo_xff(e, prefix, **kw):
    """X-Forwarded-For as the origin saw it, and who answered "/"."""
    with ProxiedTls(e.https, prefix, **kw) as c:
        c.send(mt.req("GET", "/echo", HOST))
        r = c.read_response()
        assert r.status == 200, r
        _, hdrs, _, _, _ = mt.parse_echo(r.body)
        assert mt.echo_headers(hdrs, "X-Forwarded-Proto") == ["https"]
        c.send(mt.req("GET", "/", HOST))
        r2 = c.read_response()
        assert r2.status == 200, r2
        return mt.echo_headers(hdrs, "X-Forwarded-For"), r2.header("X-Origin")


def refused(port, prefix, source=None):
    """True when the edge closes the connection instead of a handshake."""
    try:
        with ProxiedTls(port, prefix, source) as c:
            c.send(mt.req("GET", "/", HOST))
            c.read_response()
    except (mt.Closed, ssl.SSLError, ConnectionError):
        return True
    return False


def test_v1_before_tls_names_the_client(stack, tmp_path):
    e = _edge(stack, tmp_path, ["127.0.0.0/8"])
    assert echo_xff(e, V1) == (["127.1.0.9"], "a1")  # ENAM -> aws
    # A client outside geo.networks goes to the default pools.
    v1 = b"PROXY TCP4 127.3.0.9 127.0.0.1 5555 443\r\n"
    assert echo_xff(e, v1) == (["127.3.0.9"], "g1")
    # IPv6, and UNKNOWN (the connection's own address).
    v1 = b"PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\n"
    assert echo_xff(e, v1)[0] == ["2001:db8::7"]
    assert echo_xff(e, b"PROXY UNKNOWN\r\n")[0] == ["127.0.0.1"]
    e.check_alive()


def test_v2_before_tls_names_the_client(stack, tmp_path):
    e = _edge(stack, tmp_path, ["127.0.0.0/8"])
    assert echo_xff(e, _v2("127.1.2.3", "127.0.0.1", 4000, 443)) == \
        (["127.1.2.3"], "a1")
    # With a TLV (skipped) after the addresses.
    v2 = bytearray(_v2("127.1.2.4", "127.0.0.1", 4000, 443))
    tlv = b"\x04\x00\x03abc"  # PP2_TYPE_NOOP
    v2[14:16] = (int.from_bytes(v2[14:16], "big") + len(tlv)).to_bytes(
        2, "big")
    assert echo_xff(e, bytes(v2) + tlv)[0] == ["127.1.2.4"]
    e.check_alive()


def test_header_in_pieces(stack, tmp_path):
    """The header (and the ClientHello) trickle in: the edge waits for all
    of it before the handshake."""
    e = _edge(stack, tmp_path, ["127.0.0.0/8"])
    assert echo_xff(e, V1, split=10)[0] == ["127.1.0.9"]
    assert echo_xff(e, V1, split=len(V1))[0] == ["127.1.0.9"]
    v2 = _v2("127.1.2.3", "127.0.0.1", 4000, 443)
    assert echo_xff(e, v2, split=7)[0] == ["127.1.2.3"]
    assert echo_xff(e, v2, split=17)[0] == ["127.1.2.3"]
    e.check_alive()


@pytest.mark.parametrize("prefix", [
    b"",                                             # no header at all
    b"PROXY TCP4 127.1.0.9 127.0.0.1 5555\r\n",       # missing a port
    b"PROXY TCP9 127.1.0.9 127.0.0.1 5555 443\r\n",   # bad family
    b"GET / HTTP/1.1\r\n",                           # garbage
    b"\r\n\r\n\x00\r\nQUIT\n\x99\x11\x00\x0c",       # v2, bad version
])
def test_missing_or_bad_header_closes(stack, tmp_path, prefix):
    e = _edge(stack, tmp_path, ["127.0.0.0/8"])
    assert refused(e.https, prefix)
    # The edge goes on serving.
    assert echo_xff(e, V1)[0] == ["127.1.0.9"]
    e.check_alive()


def test_unfinished_header_times_out(stack, tmp_path):
    e = _edge(stack, tmp_path, ["127.0.0.0/8"], header_timeout="1s")
    for part in (b"", V1[:12]):
        with socket.create_connection((mt.LOCAL, e.https),
                                      timeout=mt.WAIT) as s:
            s.sendall(part)
            t0 = time.monotonic()
            s.settimeout(mt.WAIT)
            try:
                assert s.recv(1) == b""
            except ConnectionResetError:
                pass
            assert time.monotonic() - t0 < mt.WAIT - 1
    e.check_alive()


def test_untrusted_peer_is_refused_as_on_plain_listeners(stack, tmp_path):
    e = _edge(stack, tmp_path, ["127.0.0.2/32"])
    # Plain listener: closed without an answer ...
    assert _exchange(e.port, V1 + mt.req(headers=[("Connection", "close")]),
                     source="127.0.0.1") == ""
    # ... and the same on the https listener, header or not.
    assert refused(e.https, V1, source="127.0.0.1")
    assert refused(e.https, b"", source="127.0.0.1")
    # The trusted proxy is served on both.
    out = _exchange(e.port, V1 + mt.req(headers=[("Connection", "close")]),
                    source="127.0.0.2")
    assert out.endswith("aws a1\n"), out
    assert echo_xff(e, V1, source="127.0.0.2") == (["127.1.0.9"], "a1")
    e.check_alive()
