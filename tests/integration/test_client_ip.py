"""Who the client is, behind a load balancer in front of the edge: the
PROXY protocol (v1 and v2) on listeners and X-Forwarded-For, both honoured
only from geo.trusted_proxies. The client found steers by geo (geo.networks
places 127.1.0.0/16 in ENAM, whose region_pools send to the aws pool) and
is what the edge appends to X-Forwarded-For."""
import socket
import struct

import pytest

import meridian_test as mt
from meridian_test import WAIT


def _config(port, gcp, aws, trusted, proxy_protocol):
    return mt.to_yaml({
        "edge": {"name": mt.EDGE_NAME, "workers": 1,
                 "listen": {"http": ["%s:%d" % (mt.LOCAL, port)],
                            "proxy_protocol": proxy_protocol},
                 "timeouts": {"drain": "5s"}},
        "geo": {"networks": {"127.1.0.0/16": {"region": "ENAM"}},
                "trusted_proxies": trusted},
        "pools": [
            {"id": "gcp", "origins": [{"name": "g1", "address": mt.LOCAL,
                                       "port": gcp.port}]},
            {"id": "aws", "origins": [{"name": "a1", "address": mt.LOCAL,
                                       "port": aws.port}]},
        ],
        "load_balancers": [{"name": "lb.example.com",
                            "default_pools": ["gcp", "aws"],
                            "region_pools": {"ENAM": ["aws", "gcp"]}}],
    }) + "\n"


def _edge(stack, trusted, proxy_protocol):
    gcp = stack.origin("g1", "gcp")
    aws = stack.origin("a1", "aws")
    port = mt.free_port()
    e = mt.Edge(stack.logdir, _config(port, gcp, aws, trusted,
                                      proxy_protocol), port)
    stack.procs.append(e)
    stack.edges.append(e)
    return e


def _exchange(port, data, source=None):
    """Send raw bytes, return everything until the edge closes."""
    s = socket.socket()
    s.settimeout(WAIT)
    if source:
        s.bind((source, 0))
    s.connect((mt.LOCAL, port))
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
    finally:
        s.close()
    return out.decode(errors="replace")


def _get(path="/", headers=()):
    return mt.req(path=path, headers=[("Connection", "close")] + list(headers))


def _v2(src, dst, sport, dport):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addrs = socket.inet_aton(src) + socket.inet_aton(dst) + \
        struct.pack("!HH", sport, dport)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(addrs)) + addrs


def test_proxy_v1_names_the_client(stack):
    e = _edge(stack, ["127.0.0.0/8"], True)
    out = _exchange(e.port, b"PROXY TCP4 127.1.0.9 127.0.0.1 5555 80\r\n"
                    + _get("/echo"))
    assert " 200 " in out.split("\r\n")[0], out
    assert "X-Forwarded-For: 127.1.0.9\r\n" in out, out
    out = _exchange(e.port, b"PROXY TCP4 127.1.0.9 127.0.0.1 5555 80\r\n"
                    + _get())
    assert out.endswith("aws a1\n"), out  # ENAM -> aws
    out = _exchange(e.port, b"PROXY TCP4 127.3.0.9 127.0.0.1 5555 80\r\n"
                    + _get())
    assert out.endswith("gcp g1\n"), out  # unmapped -> default_pools


def test_proxy_v2_names_the_client(stack):
    e = _edge(stack, ["127.0.0.0/8"], True)
    out = _exchange(e.port, _v2("127.1.2.3", "127.0.0.1", 4000, 80)
                    + _get("/echo"))
    assert "X-Forwarded-For: 127.1.2.3\r\n" in out, out
    out = _exchange(e.port, _v2("127.1.2.3", "127.0.0.1", 4000, 80) + _get())
    assert out.endswith("aws a1\n"), out


def test_proxy_header_from_untrusted_peer_is_refused(stack):
    e = _edge(stack, ["127.0.0.2/32"], True)
    out = _exchange(e.port, b"PROXY TCP4 127.1.0.9 127.0.0.1 5555 80\r\n"
                    + _get(), source="127.0.0.1")
    assert out == "", out
    # The trusted one is served.
    out = _exchange(e.port, b"PROXY TCP4 127.1.0.9 127.0.0.1 5555 80\r\n"
                    + _get(), source="127.0.0.2")
    assert out.endswith("aws a1\n"), out


@pytest.mark.parametrize("header", [
    b"PROXY TCP4 127.1.0.9 127.0.0.1 5555\r\n",         # missing a port
    b"PROXY TCP9 127.1.0.9 127.0.0.1 5555 80\r\n",      # bad family
    b"GET / HTTP/1.1\r\n",                              # no header at all
    b"PROXY TCP4 999.1.0.9 127.0.0.1 5555 80\r\n",      # bad address
])
def test_bad_proxy_header_closes(stack, header):
    e = _edge(stack, ["127.0.0.0/8"], True)
    out = _exchange(e.port, header + _get())
    assert out == "", out
    e.check_alive()


def test_xff_from_trusted_proxy_steers(stack):
    e = _edge(stack, ["127.0.0.1/32"], False)
    # Trusted peer: the rightmost untrusted XFF address is the client.
    out = _exchange(e.port, _get(headers=[("X-Forwarded-For",
                                           "10.9.9.9, 127.1.0.7")]),
                    source="127.0.0.1")
    assert out.endswith("aws a1\n"), out
    # A trusted proxy in the chain is skipped.
    out = _exchange(e.port, _get(headers=[("X-Forwarded-For",
                                           "127.1.0.7, 127.0.0.1")]),
                    source="127.0.0.1")
    assert out.endswith("aws a1\n"), out
    # Untrusted peer: its XFF is ignored for steering.
    out = _exchange(e.port, _get(headers=[("X-Forwarded-For", "127.1.0.7")]),
                    source="127.0.0.3")
    assert out.endswith("gcp g1\n"), out
    # Garbage in XFF: the peer itself counts.
    out = _exchange(e.port, _get(headers=[("X-Forwarded-For", "nonsense")]),
                    source="127.0.0.1")
    assert out.endswith("gcp g1\n"), out


def test_x_real_ip_is_the_client_found(stack):
    """X-Real-IP is the client after trusted X-Forwarded-For (or the
    peer); a client's own X-Real-IP, or X_Real_IP, is dropped."""
    e = _edge(stack, ["127.0.0.1/32"], False)
    spoof = [("X-Real-IP", "6.6.6.6"), ("X_Real_IP", "6.6.6.7")]
    out = _exchange(e.port, _get("/echo", headers=[
        ("X-Forwarded-For", "10.9.9.9, 127.1.0.7")] + spoof),
        source="127.0.0.1")
    assert " 200 " in out.split("\r\n")[0], out
    assert "X-Real-IP: 127.1.0.7\r\n" in out, out
    assert "6.6.6" not in out, out
    # From an untrusted peer its X-Forwarded-For is not believed.
    out = _exchange(e.port, _get("/echo", headers=[
        ("X-Forwarded-For", "127.1.0.7")] + spoof), source="127.0.0.3")
    assert "X-Real-IP: 127.0.0.3\r\n" in out, out
    assert "6.6.6" not in out, out
    assert out.count("X-Real-IP") == 1, out
