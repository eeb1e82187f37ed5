"""Origins reached over TLS (issue 6, origin side): an `https://` origin
address or pools[].origin_tls; verification against a configured CA, the
SNI rule (Host override, else a host-name origin name), keep-alive pooling
of TLS connections, session resumption for new ones, 1 MiB bodies both
ways, expired / untrusted certificates giving 502 with the reason logged
and a failing https monitor with a TLS reason in /status, allow_insecure;
https monitors keeping their TLS connection between checks and resuming
the session when the origin closes it.

The origins are small Python `ssl` servers run by the test (they record
the SNI, handshakes and resumptions); certificates are made by the test in
tmp_path (a CA, a leaf for origin.test, an expired leaf, a self-signed
one). Everything is on 127.0.0.1 and every wait has a deadline.
"""
import datetime
import http.server
import os
import socket
import socketserver
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import meridian_test as mt
from test_health import lab  # noqa: F401  (the fixture)
from obs_helpers import scrape
from test_health import HOST, get, log_has, origin_of, status, wait_health

NAME = "origin.test"
MIB = 1 << 20


# ---------------------------------------------------------------- certs

def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write(d, name, cert, key):
    cp, kp = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    with open(cp, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kp, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cp, kp


def _cert(subject_cn, key, issuer_cn, issuer_key, days=(-1, 30), ca=False,
          san=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                     subject_cn)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                    issuer_cn)]))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now + datetime.timedelta(days=days[0]))
         .not_valid_after(now + datetime.timedelta(days=days[1]))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                        critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(n) for n in san]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def certs(tmp_path):
    d = str(tmp_path)
    cak = _key()
    ca = _cert("Test CA", cak, "Test CA", cak, days=(-1, 365), ca=True)
    out = {"ca": _write(d, "ca", ca, cak)[0]}
    k = _key()
    out["good"] = _write(d, "good", _cert(NAME, k, "Test CA", cak,
                                          san=[NAME]), k)
    k = _key()
    out["expired"] = _write(d, "expired", _cert(NAME, k, "Test CA", cak,
                                                days=(-30, -1), san=[NAME]), k)
    k = _key()
    out["self"] = _write(d, "self", _cert(NAME, k, NAME, k, san=[NAME]), k)
    return out


# ---------------------------------------------------------------- origin

class TlsOrigin:
    """An HTTPS/1.1 origin on 127.0.0.1: GET /big sends 1 MiB, POST echoes
    the body, /close answers with Connection: close, anything else "OK".
    Records the SNI names sent, and the connections that served traffic:
    full handshakes and resumed ones, the health checker's (by its
    User-Agent) apart, with its requests."""

    def __init__(self, cert, key):
        self.snis, self.handshakes, self.resumed = [], 0, 0
        self.mon_handshakes, self.mon_resumed, self.mon_requests = 0, 0, 0
        self.lock = threading.Lock()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.sni_callback = self._sni
        origin = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            counted = False

            def count(self):
                ua = self.headers.get("User-Agent", "")
                mon = ua.startswith("Meridian-Health-Check/")
                with origin.lock:
                    if mon:
                        origin.mon_requests += 1
                    if self.counted:
                        return
                    self.counted = True
                    reused = self.connection.session_reused
                    if mon and reused:
                        origin.mon_resumed += 1
                    elif mon:
                        origin.mon_handshakes += 1
                    elif reused:
                        origin.resumed += 1
                    else:
                        origin.handshakes += 1

            def _send(self, body, close=False):
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                if close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self.count()
                if self.path == "/big":
                    self._send(mt.pattern(MIB))
                else:
                    self._send(b"OK", close=self.path == "/close")

            def do_POST(self):
                self.count()
                n = int(self.headers.get("Content-Length", "0"))
                self._send(self.rfile.read(n))

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self):
                s, a = self.socket.accept()
                s.settimeout(mt.WAIT)
                try:
                    return ctx.wrap_socket(s, server_side=True), a
                except (ssl.SSLError, OSError):
                    s.close()
                    raise

            def handle_error(self, request, client_address):
                pass

        self.srv = S((mt.LOCAL, 0), H)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever,
                                       daemon=True)
        self.thread.start()

    def _sni(self, sock, name, ctx):
        with self.lock:
            self.snis.append(name)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.thread.join(timeout=mt.WAIT)


@pytest.fixture
def origins():
    made = []

    def make(cert, key):
        o = TlsOrigin(cert, key)
        made.append(o)
        return o
    yield make
    for o in made:
        o.close()


def not_after(pem_path):
    """The certificate's notAfter as a Unix time."""
    with open(pem_path, "rb") as f:
        c = x509.load_pem_x509_certificate(f.read())
    return int(c.not_valid_after.replace(
        tzinfo=datetime.timezone.utc).timestamp())


def iso_time(text):
    """/status's "2026-12-26T10:00:00.000Z" as a Unix time."""
    return int(datetime.datetime.strptime(
        text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp())


def https_monitor(path="/healthz", timeout="1s"):
    return {"id": "m", "type": "https", "path": path,
            "interval": "1s", "timeout": timeout, "retries": 0}


def tls_edge(lab, origin, tls=None, name="o1", headers=None, monitor=True,
             workers=2, monitor_path="/healthz", monitor_timeout="1s"):
    o = {"name": name, "address": "https://%s:%d" % (mt.LOCAL, origin.port)}
    if headers:
        o["header"] = headers
    pool = {"id": "p", "origins": [o]}
    if tls:
        pool["origin_tls"] = tls
    if monitor:
        pool["monitor"] = "m"
    return lab.edge([pool], [{"name": HOST, "default_pools": ["p"]}],
                    monitors=[https_monitor(monitor_path, monitor_timeout)]
                    if monitor else (),
                    workers=workers)


# ---------------------------------------------------------------- tests

def test_valid_cert_streams_pools_and_resumes(lab, certs, origins):
    """A CA-verified origin with a Host override: 200, SNI = the override,
    1 MiB both ways, keep-alive reuse (few handshakes for many requests),
    resumed sessions for new connections, a healthy https monitor."""
    o = origins(*certs["good"])
    e = tls_edge(lab, o, tls={"ca": certs["ca"]},
                 headers={"Host": [NAME]})
    wait_health(e, {("p", "o1"): "healthy"}, what="https monitor passes")
    r = get(e)
    assert r.status == 200 and r.body == b"OK", r
    assert o.snis and set(o.snis) == {NAME}, o.snis

    big = mt.pattern(MIB)
    with mt.HttpConn(e.port) as c:
        c.send(mt.req("POST", "/echo", HOST, body=big))
        r = c.read_response("POST")
        assert r.status == 200 and r.body == big
        c.send(mt.req("GET", "/big", HOST))
        r = c.read_response("GET")
        assert r.status == 200 and r.body == big

    before = o.handshakes + o.resumed
    with mt.HttpConn(e.port) as c:
        for _ in range(60):
            c.send(mt.req("GET", "/", HOST))
            assert c.read_response("GET").status == 200
    new = o.handshakes + o.resumed - before
    assert new <= 2, "%d new TLS connections for 60 requests" % new

    # New connections (the origin closes each) resume the last session.
    for _ in range(6):
        r = get(e, path="/close")
        assert r.status == 200, r
    assert o.resumed >= 3, (o.handshakes, o.resumed)
    assert not log_has(e, r"ERROR|AddressSanitizer|runtime error")


def test_https_monitor_keeps_connection_and_resumes(lab, certs, origins):
    """https checks reuse one kept TLS connection (no handshake per
    check); against an origin that closes after every answer each check
    resumes the previous session instead of a full handshake with
    certificate verification. The origin and /metrics agree. (A slow
    check on a busy machine must not time out and drop the connection:
    the monitor waits up to 5 s.)"""
    o = origins(*certs["good"])
    e = tls_edge(lab, o, tls={"ca": certs["ca"]}, headers={"Host": [NAME]},
                 monitor_timeout="5s")
    mt.wait_for(lambda: o.mon_requests >= 4, what="four https checks")
    with o.lock:
        assert (o.mon_handshakes, o.mon_resumed) == (1, 0), \
            (o.mon_handshakes, o.mon_resumed, o.mon_requests)
    m = scrape(e)
    assert m.get("meridian_health_tls_handshakes_total") == 1, m.text
    assert m.get("meridian_health_tls_handshakes_resumed_total") == 0
    assert m.get("meridian_health_kept_connections") == 1
    st = origin_of(status(e), "p", "o1")
    assert st["health"] == "healthy"
    # The leaf expires in 30 days, its CA in a year: the leaf's date.
    leaf = not_after(certs["good"][0])
    assert leaf < not_after(certs["ca"])
    assert m.get("meridian_origin_tls_not_after_seconds", pool="p",
                 origin="o1") == leaf, m.text
    assert iso_time(st["tls_not_after"]) == leaf, st

    c = origins(*certs["good"])
    e2 = tls_edge(lab, c, tls={"ca": certs["ca"]}, headers={"Host": [NAME]},
                  monitor_path="/close", monitor_timeout="5s")
    mt.wait_for(lambda: c.mon_requests >= 4, what="four https checks")
    with c.lock:
        full, resumed = c.mon_handshakes, c.mon_resumed
    assert full == 1 and resumed >= 3, (full, resumed)
    m = scrape(e2)
    assert m.get("meridian_health_tls_handshakes_total") >= 4
    assert m.get("meridian_health_tls_handshakes_resumed_total") >= 3
    assert m.get("meridian_health_kept_connections") == 0
    assert origin_of(status(e2), "p", "o1")["health"] == "healthy"
    assert not log_has(e2, r"ERROR|AddressSanitizer|runtime error")


def test_http_monitor_on_tls_origin_is_warned_at_start(lab, certs, origins):
    """An http monitor on an https:// origin: the edge starts, its log
    warns at the origin's position, and (as warned) the checks fail."""
    o = origins(*certs["good"])
    e = lab.edge([{"id": "p", "monitor": "m", "origins": [
        {"name": "o1", "address": "https://%s:%d" % (mt.LOCAL, o.port)}]}],
        [{"name": HOST, "default_pools": ["p"]}],
        monitors=[{"id": "m", "type": "http", "path": "/healthz",
                   "interval": "1s", "timeout": "1s", "retries": 0}])
    assert log_has(e, r"warning: origin 'o1' is reached over TLS but its "
                   r"pool's monitor 'm' is type http"), e.stderr_tail()
    wait_health(e, {("p", "o1"): "unhealthy"}, what="the plain check fails")


def test_sni_from_origin_name(lab, certs, origins):
    """No Host override: the origin's name, a host name, is the SNI."""
    o = origins(*certs["good"])
    e = tls_edge(lab, o, tls={"ca": certs["ca"]}, name=NAME, monitor=False)
    r = get(e)
    assert r.status == 200, r
    assert set(o.snis) == {NAME}, o.snis


def test_sni_from_fully_qualified_host_override(lab, certs, origins):
    """A Host override written fully qualified ("origin.test.") names the
    same host: the SNI goes without the trailing dot (RFC 6066 3) and the
    certificate for origin.test verifies."""
    o = origins(*certs["good"])
    e = tls_edge(lab, o, tls={"ca": certs["ca"]},
                 headers={"Host": [NAME + ".:%d" % o.port]}, monitor=False)
    r = get(e)
    assert r.status == 200, r
    assert set(o.snis) == {NAME}, o.snis


@pytest.mark.parametrize("which,reason", [
    ("expired", "certificate has expired"),
    ("self", "self-signed certificate"),
])
def test_bad_cert_is_502_and_failing_monitor(lab, certs, origins, which,
                                             reason):
    o = origins(*certs[which])
    # No monitor here: a failed first check (at a random point of the
    # first second) would make the request a 503 before it reached the
    # origin.
    e = tls_edge(lab, o, tls={"ca": certs["ca"]},
                 headers={"Host": [NAME]}, monitor=False)
    r = get(e)
    assert r.status == 502, r
    assert reason in r.text, r.text
    # ... but not the origin's name and internal address: those are in
    # the log only.
    assert "o1" not in r.text and "127.0.0.1" not in r.text, r.text
    mt.wait_for(lambda: log_has(
        e, r"origin o1 \(127\.0\.0\.1:%d\): certificate verify failed: %s"
        % (o.port, reason)), what="the reason in the log")
    e = tls_edge(lab, o, tls={"ca": certs["ca"]},
                 headers={"Host": [NAME]})
    st = wait_health(e, {("p", "o1"): "unhealthy"},
                     what="https monitor fails")
    why = origin_of(st, "p", "o1")["reason"]
    assert "TLS" in why or "certificate" in why, why
    assert reason in why, why
    # The failed handshake still says when the chain it saw expires (for
    # the expired leaf: yesterday).
    seen = origin_of(st, "p", "o1")["tls_not_after"]
    assert seen and iso_time(seen) == not_after(certs[which][0]), seen


def test_hostname_mismatch_names_both_sides_in_the_log(lab, certs, origins):
    """A certificate for another name: the log and the monitor's reason
    say which names it has and which one was checked; the client's 502
    says only "hostname mismatch" (the names are the origin's)."""
    o = origins(*certs["good"])
    e = tls_edge(lab, o, tls={"ca": certs["ca"]},
                 headers={"Host": ["wrong.test"]}, monitor=False)
    r = get(e)
    assert r.status == 502, r
    assert "hostname mismatch" in r.text, r.text
    assert NAME not in r.text, r.text
    mt.wait_for(lambda: log_has(
        e, r"origin o1 \(127\.0\.0\.1:%d\): certificate verify failed: "
        r"hostname mismatch \(for origin\.test, not wrong\.test\)"
        % o.port), what="both names in the log")
    e = tls_edge(lab, o, tls={"ca": certs["ca"]},
                 headers={"Host": ["wrong.test"]})
    st = wait_health(e, {("p", "o1"): "unhealthy"},
                     what="https monitor fails")
    why = origin_of(st, "p", "o1")["reason"]
    assert "hostname mismatch (for origin.test, not wrong.test)" in why, why


def test_allow_insecure(lab, certs, origins):
    """allow_insecure: a self-signed origin serves, and its monitor passes."""
    o = origins(*certs["self"])
    e = tls_edge(lab, o, tls={"allow_insecure": True},
                 headers={"Host": [NAME]})
    wait_health(e, {("p", "o1"): "healthy"}, what="monitor passes")
    r = get(e)
    assert r.status == 200 and r.body == b"OK", r


def test_retry_on_next_origin_after_tls_failure(lab, certs, origins):
    """A handshake failure is a connection failure: the next origin is
    tried and the client gets its answer."""
    bad = origins(*certs["expired"])
    good = origins(*certs["good"])
    pool = {"id": "p", "origin_steering": {"policy": "random"},
            "origin_tls": {"enabled": True, "ca": certs["ca"],
                           "sni": NAME},
            "origins": [{"name": "bad", "address": mt.LOCAL,
                         "port": bad.port},
                        {"name": "good", "address": mt.LOCAL,
                         "port": good.port}]}
    e = lab.edge([pool], [{"name": HOST, "default_pools": ["p"]}])
    for _ in range(10):
        r = get(e)
        assert r.status == 200 and r.body == b"OK", r
    assert set(good.snis) == {NAME}


def test_check_rejects_bad_https_address(tmp_path):
    """`meridian check`: a path in an https:// address is refused."""
    cfg = tmp_path / "m.yaml"
    cfg.write_text(mt.to_yaml({
        "edge": {"name": "x", "listen": {"http": ["127.0.0.1:1"]}},
        "pools": [{"id": "p", "origins": [
            {"name": "o", "address": "https://127.0.0.1:8443/x"}]}],
        "load_balancers": [{"name": HOST, "default_pools": ["p"]}]}) + "\n")
    import subprocess
    r = subprocess.run([mt.BIN, "check", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert "has a path" in r.stdout + r.stderr, r
