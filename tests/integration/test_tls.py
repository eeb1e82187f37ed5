"""TLS termination for HTTP/1.1 on edge.listen.https (issue 6, client side):
certificates chosen by SNI (exact, wildcard, default, RSA and ECDSA side by
side), sni_required, keep-alive and big bodies through TLS, X-Forwarded-Proto,
TLS 1.1 refused, session resumption, certificate reload on SIGHUP while an
old connection goes on, and plain HTTP next to it.

Certificates are made by the test with the openssl CLI in tmp_path; every
server and client runs on 127.0.0.1; every wait has a deadline.
"""
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import meridian_test as mt
from test_health import lab  # noqa: F401  (the fixture)
from test_health import HOST, get, org

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "openssl"], capture_output=True).returncode,
    reason="needs the openssl CLI")


# ---------------------------------------------------------------- certs

def make_cert(d, name, cn, sans, kind="rsa"):
    """A self-signed certificate and key in d: (cert path, key path)."""
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    if kind == "rsa":
        newkey = ["-newkey", "rsa:2048"]
    else:
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    san = ",".join("DNS:" + s for s in sans)
    subprocess.run(
        ["openssl", "req", "-x509", "-nodes", "-days", "30"] + newkey +
        ["-keyout", key, "-out", cert, "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=" + san],
        check=True, capture_output=True, timeout=60)
    return cert, key


def certs(d, sni_required=False):
    """The default (first), lb RSA, lb ECDSA and wildcard certificates."""
    d = str(d)
    c = [make_cert(d, "default", "default.example.net",
                   ["default.example.net"]),
         make_cert(d, "lb-rsa", "lb.example.com", ["lb.example.com"]),
         make_cert(d, "lb-ec", "lb.example.com", ["lb.example.com"], "ec"),
         make_cert(d, "wild", "*.example.com", ["*.example.com"])]
    tls = {"certificates": [{"cert": a, "key": b} for a, b in c],
           "session_tickets": True}
    if sni_required:
        tls["sni_required"] = True
    return tls


def tls_edge(lab, tmp_path, sni_required=False, workers=2):
    o = lab.origin("o1")
    pools = [{"id": "p", "origins": [org(o)]}]
    lbs = [{"name": HOST, "default_pools": ["p"]},
           {"name": "*.example.com", "default_pools": ["p"]}]
    hp = mt.free_port()
    e = lab.edge(pools, lbs, https_port=hp, workers=workers,
                 edge_extra={"tls": certs(tmp_path, sni_required)})
    e.https = hp
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    return e, o


def client_ctx(version=None, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def tls_sock(port, sni=HOST, ctx=None, session=None):
    raw = socket.create_connection((mt.LOCAL, port), timeout=mt.WAIT)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        return (ctx or client_ctx()).wrap_socket(
            raw, server_hostname=sni, session=session)
    except BaseException:
        raw.close()
        raise


class TlsConn(mt.HttpConn):
    """mt.HttpConn over TLS."""

    def __init__(self, port, sni=HOST, ctx=None, session=None):
        self.sock = tls_sock(port, sni, ctx, session)
        self.buf = bytearray()
        self.timeout = mt.WAIT
        self.rbuf = bytearray(1 << 16)


def served(s):
    """(subject CN, key type) of the certificate the edge served."""
    c = x509.load_der_x509_certificate(s.getpeercert(binary_form=True))
    cn = c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    k = c.public_key()
    kind = "rsa" if isinstance(k, rsa.RSAPublicKey) else (
        "ec" if isinstance(k, ec.EllipticCurvePublicKey) else "?")
    return cn, kind


def cert_of(port, sni, **kw):
    with tls_sock(port, sni, **kw) as s:
        return served(s)


def curl(port, path="/", host=HOST, extra=()):
    r = subprocess.run(
        ["curl", "--http1.1", "-sk", "-m", str(int(mt.WAIT)), "--resolve",
         "%s:%d:127.0.0.1" % (host, port), "-o", "-", "-w",
         "\n%{http_code} %{scheme}"] + list(extra) +
        ["https://%s:%d%s" % (host, port, path)],
        capture_output=True, timeout=mt.WAIT + 5)
    body, _, tail = r.stdout.rpartition(b"\n")
    return r.returncode, body, tail.decode()


# ---------------------------------------------------------------- tests

def test_curl_over_tls_and_plain_http_still_works(lab, tmp_path):
    e, o = tls_edge(lab, tmp_path)
    rc, body, tail = curl(e.https)
    assert rc == 0 and tail == "200 HTTPS", (rc, tail, body[:200])
    # The origin sees X-Forwarded-Proto: https (and http on plain).
    rc, body, tail = curl(e.https, "/echo")
    assert rc == 0 and tail.startswith("200")
    _, hdrs, _, _, _ = mt.parse_echo(body)
    assert mt.echo_headers(hdrs, "X-Forwarded-Proto") == ["https"]
    r = get(e, "/echo")
    assert r.status == 200
    _, hdrs, _, _, _ = mt.parse_echo(r.body)
    assert mt.echo_headers(hdrs, "X-Forwarded-Proto") == ["http"]
    e.check_alive()


def test_sni_selects_certificate(lab, tmp_path):
    e, _ = tls_edge(lab, tmp_path)
    assert cert_of(e.https, HOST)[0] == "lb.example.com"
    assert cert_of(e.https, "www.example.com")[0] == "*.example.com"
    # No match, or no SNI at all: the default (first) certificate.
    assert cert_of(e.https, "other.test")[0] == "default.example.net"
    assert cert_of(e.https, None)[0] == "default.example.net"
    # RSA and ECDSA for the same name: chosen by what the client offers.
    v12 = ssl.TLSVersion.TLSv1_2
    assert cert_of(e.https, HOST, ctx=client_ctx(
        v12, "ECDHE-ECDSA-AES128-GCM-SHA256")) == ("lb.example.com", "ec")
    assert cert_of(e.https, HOST, ctx=client_ctx(
        v12, "ECDHE-RSA-AES128-GCM-SHA256")) == ("lb.example.com", "rsa")
    # A request through the wildcard certificate reaches the origin.
    with TlsConn(e.https, "www.example.com") as c:
        c.send(mt.req("GET", "/", "www.example.com"))
        assert c.read_response().status == 200


def test_sni_required_fails_handshake(lab, tmp_path):
    e, _ = tls_edge(lab, tmp_path, sni_required=True)
    assert cert_of(e.https, HOST)[0] == "lb.example.com"
    for sni in ("other.test", None):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            cert_of(e.https, sni)
    e.check_alive()


def test_alpn_without_a_protocol_in_common_refused(lab, tmp_path):
    """RFC 7301 §3.2: a client offering only protocols the edge does not
    speak gets the no_application_protocol alert (nginx does the same),
    not an HTTP/1.1 answer to, say, an h3 or another service's client.
    http/1.0 (curl --http1.0) and no ALPN at all still work."""
    e, _ = tls_edge(lab, tmp_path)
    ctx = client_ctx()
    ctx.set_alpn_protocols(["h3", "imap"])
    with pytest.raises(ssl.SSLError) as exc:
        tls_sock(e.https, ctx=ctx)
    assert "no application protocol" in str(exc.value), exc.value
    ctx = client_ctx()
    ctx.set_alpn_protocols(["http/1.0"])
    with tls_sock(e.https, ctx=ctx) as s:
        assert s.selected_alpn_protocol() == "http/1.0"
    rc, _, tail = curl(e.https, extra=["--http1.0"])
    assert rc == 0 and tail == "200 HTTPS", (rc, tail)
    with tls_sock(e.https) as s:  # no ALPN
        assert s.selected_alpn_protocol() is None
    e.check_alive()


def test_tls11_refused(lab, tmp_path):
    e, _ = tls_edge(lab, tmp_path)
    ctx = client_ctx(ssl.TLSVersion.TLSv1_1)
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, ConnectionError)):
        cert_of(e.https, HOST, ctx=ctx)
    with tls_sock(e.https) as s:
        assert s.version() in ("TLSv1.2", "TLSv1.3")


def test_keepalive_and_big_bodies(lab, tmp_path):
    e, o = tls_edge(lab, tmp_path)
    n = 10 << 20
    with TlsConn(e.https) as c:
        for i in range(20):  # keep-alive: one TLS connection
            c.send(mt.req("GET", "/bytes/%d" % (1000 + i), HOST))
            r = c.read_response()
            assert r.status == 200 and r.body == mt.pattern(1000 + i)
        # 10 MiB down, streamed through TLS
        c.send(mt.req("GET", "/bytes/%d" % n, HOST))
        r = c.read_response()
        assert r.status == 200 and len(r.body) == n
        assert r.body == mt.pattern(n)
        # 10 MiB up, sent in parts
        c.send(b"POST /upload HTTP/1.1\r\nHost: %s\r\n"
               b"Content-Length: %d\r\n\r\n" % (HOST.encode(), n))
        for part in mt.pattern_chunks(n, 256 << 10):
            c.send(part)
        r = c.read_response()
        assert r.status == 200
        assert r.text == "length %d\nadler32 %08x\n" % (n, mt.pattern_adler(n))
        c.send(mt.req("GET", "/", HOST))
        assert c.read_response().status == 200
    e.check_alive()


def test_websocket_tunnel_over_tls(lab, tmp_path):
    e, _ = tls_edge(lab, tmp_path)
    with TlsConn(e.https) as c:
        c.send(mt.req("GET", "/ws", HOST, headers=[
            ("Connection", "Upgrade"), ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]))
        r = c.read_response()
        assert r.status == 101, r
        chk = mt.BodyCheck()
        for part in mt.pattern_chunks(1 << 20, 64 << 10):
            c.send(part)
            c.read_exact(len(part), time.monotonic() + mt.WAIT, chk)
        assert chk.n == 1 << 20 and chk.first_bad is None


def test_close_notify_after_connection_close(lab, tmp_path):
    e, _ = tls_edge(lab, tmp_path)
    with TlsConn(e.https) as c:
        c.send(mt.req("GET", "/", HOST, headers=[("Connection", "close")]))
        r = c.read_response()
        assert r.status == 200
        # The edge ends the TLS session cleanly: close_notify, then EOF.
        c.sock.settimeout(mt.WAIT)
        assert c.sock.recv(100) == b""


def test_session_resumption(lab, tmp_path):
    # One worker: tickets work across workers too (one key set), but the
    # test should not depend on which worker accepts.
    e, _ = tls_edge(lab, tmp_path, workers=2)
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_ctx(version)
        with TlsConn(e.https, ctx=ctx) as c:
            # TLS 1.3 tickets come after the handshake: one exchange first.
            c.send(mt.req("GET", "/", HOST))
            assert c.read_response().status == 200
            sess = c.sock.session
            assert not c.sock.session_reused
        assert sess is not None and sess.has_ticket, version
        with TlsConn(e.https, ctx=ctx, session=sess) as c:
            assert c.sock.session_reused, version
            c.send(mt.req("GET", "/", HOST))
            assert c.read_response().status == 200


def test_session_not_resumed_under_another_certificate(lab, tmp_path):
    """RFC 6066 §3: a session made for one name is not resumed for a
    name of another certificate; the client gets a full handshake and
    that name's certificate. The same name (any case) still resumes."""
    e, _ = tls_edge(lab, tmp_path)
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_ctx(version)
        with TlsConn(e.https, sni=HOST, ctx=ctx) as c:
            c.send(mt.req("GET", "/", HOST))
            assert c.read_response().status == 200
            sess = c.sock.session
        assert sess is not None and sess.has_ticket, version
        for sni, cn in (("www.example.com", "*.example.com"),
                        ("other.test", "default.example.net"),
                        (None, "default.example.net")):
            with TlsConn(e.https, sni=sni, ctx=ctx, session=sess) as c:
                assert not c.sock.session_reused, (version, sni)
                assert served(c.sock)[0] == cn, (version, sni)
        with TlsConn(e.https, sni=HOST.upper(), ctx=ctx,
                     session=sess) as c:
            assert c.sock.session_reused, version
            c.send(mt.req("GET", "/", HOST))
            assert c.read_response().status == 200
    e.check_alive()


def test_certificate_reload_on_sighup(lab, tmp_path):
    e, _ = tls_edge(lab, tmp_path)
    old = TlsConn(e.https)
    try:
        old.send(mt.req("GET", "/", HOST))
        assert old.read_response().status == 200
        assert served(old.sock)[0] == "lb.example.com"
        sess_ctx = client_ctx(ssl.TLSVersion.TLSv1_2)
        with TlsConn(e.https, ctx=sess_ctx) as c:
            sess = c.sock.session
        # Replace the lb RSA and ECDSA certificates on disk, then SIGHUP.
        d = str(tmp_path)
        make_cert(d, "lb-rsa", "lb2.example.com", ["lb.example.com"])
        make_cert(d, "lb-ec", "lb2.example.com", ["lb.example.com"], "ec")
        os.kill(e.pid, signal.SIGHUP)
        mt.wait_for(lambda: cert_of(e.https, HOST)[0] == "lb2.example.com",
                    what="the new certificate to be served")
        # The old connection goes on, on its old TLS session.
        for _ in range(3):
            old.send(mt.req("GET", "/bytes/5000", HOST))
            r = old.read_response()
            assert r.status == 200 and r.body == mt.pattern(5000)
        # A ticket issued before the reload still resumes.
        with TlsConn(e.https, ctx=sess_ctx, session=sess) as c:
            assert c.sock.session_reused
    finally:
        old.close()
    # Plain HTTP is unaffected by all this.
    assert get(e, "/").status == 200
    e.check_alive()


def test_ticket_rotation_change_applies_on_reload(lab, tmp_path):
    """A reload that shortens edge.tls.ticket_rotation rotates on the new
    period, not after the old one runs out: a ticket made before the
    reload stops resuming two short periods later (not an hour later)."""
    o = lab.origin("o1")
    hp = mt.free_port()
    tls = certs(tmp_path)
    tls["ticket_rotation"] = "1h"
    e = lab.edge([{"id": "p", "origins": [org(o)]}],
                 [{"name": HOST, "default_pools": ["p"]}], https_port=hp,
                 workers=2, edge_extra={"tls": tls})
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    ctx = client_ctx(ssl.TLSVersion.TLSv1_3)
    with TlsConn(hp, ctx=ctx) as c:
        c.send(mt.req("GET", "/", HOST))
        assert c.read_response().status == 200
        sess = c.sock.session
    with TlsConn(hp, ctx=ctx, session=sess) as c:
        assert c.sock.session_reused

    e.cfg["edge"]["tls"]["ticket_rotation"] = "1s"
    e.rewrite(mt.to_yaml(e.cfg) + "\n")
    os.kill(e.pid, signal.SIGHUP)

    def expired():
        with TlsConn(hp, ctx=ctx, session=sess) as c:
            return not c.sock.session_reused
    mt.wait_for(expired, interval=0.2,
                what="the old ticket to stop resuming on the new period")
    e.check_alive()


def test_handshake_garbage_and_timeout(lab, tmp_path):
    e, _ = tls_edge(lab, tmp_path)
    # Plain HTTP on the TLS port: the handshake fails, quietly closed.
    with socket.create_connection((mt.LOCAL, e.https), timeout=mt.WAIT) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: lb.example.com\r\n\r\n")
        s.settimeout(mt.WAIT)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        assert b"HTTP/1.1" not in data
    # Half a ClientHello and nothing more still ends, and the edge serves.
    with socket.create_connection((mt.LOCAL, e.https), timeout=mt.WAIT) as s:
        s.sendall(b"\x16\x03\x01\x02\x00\x01")
        assert curl(e.https)[2].startswith("200")
    e.check_alive()


def test_https_without_certificates_refused(stack, tmp_path):
    port, hp = mt.free_port(), mt.free_port()
    cfg = {"edge": {"name": mt.EDGE_NAME, "workers": 1,
                    "store": str(tmp_path / "s.db"),
                    "listen": {"http": ["%s:%d" % (mt.LOCAL, port)],
                               "https": ["%s:%d" % (mt.LOCAL, hp)]}},
           "pools": [], "load_balancers": []}
    path = tmp_path / "e.yaml"
    path.write_text(mt.to_yaml(cfg) + "\n")
    r = subprocess.run([mt.BIN, "edge", "-c", str(path)], capture_output=True,
                       timeout=mt.WAIT)
    assert r.returncode != 0
    assert b"edge.tls.certificates" in r.stderr + r.stdout, r.stderr
