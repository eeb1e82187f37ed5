"""Certificates of edge.listen.https on the admin API and /metrics, and
their reload without dropping connections (issue 6):

GET /client/v4/edge/certificates lists what is served (file, key type,
subject CN, SANs, validity, SHA-256 fingerprint, default); POST
/client/v4/edge/certificates/reload reads the certificate and key files
again and swaps them in (SIGHUP does the same with the whole file); a bad
file is named in the error and changes nothing; `meridian ctl certs
[reload]`; meridian_tls_handshakes_total,
meridian_tls_handshake_failures_total{reason} and
meridian_tls_certificate_not_after_seconds{cert}.

Certificates are made with the openssl CLI in tmp_path (test_tls.py's
helpers); the load is bounded in requests and time; every wait has a
deadline.
"""
import datetime
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import meridian_test as mt
from obs_helpers import scrape
from test_api import Api
from test_health import lab  # noqa: F401  (the fixture)
from test_health import HOST, get, org
from test_tls import (TlsConn, cert_of, certs, client_ctx, make_cert, served,
                      tls_edge, tls_sock)

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "openssl"], capture_output=True).returncode,
    reason="needs the openssl CLI")

CERTS = "/client/v4/edge/certificates"
RELOAD = CERTS + "/reload"
HS = "meridian_tls_handshakes_total"
FAIL = "meridian_tls_handshake_failures_total"
NOT_AFTER = "meridian_tls_certificate_not_after_seconds"


def load_pem(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def fingerprint(path):
    der = load_pem(path).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def rfc3339(dt):
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def not_after(path):
    c = load_pem(path)
    return getattr(c, "not_valid_after_utc", None) or c.not_valid_after


def by_file(certs_json):
    return {os.path.basename(c["file"]): c for c in certs_json}


def replace_lb_certs(tmp_path, cn):
    """New lb.example.com certificates (RSA and ECDSA, subject cn, new
    keys and serials) written beside, then renamed over the configured
    files (each rename atomic)."""
    new = tmp_path / ("new-" + cn)
    new.mkdir()
    for name, kind in (("lb-rsa", "rsa"), ("lb-ec", "ec")):
        c, k = make_cert(str(new), name, cn, ["lb.example.com"], kind)
        os.replace(k, str(tmp_path / (name + ".key")))
        os.replace(c, str(tmp_path / (name + ".pem")))


def mismatch_key(tmp_path):
    """Put another key in place of lb-rsa.key (the good one kept as
    lb-rsa.key.good); returns the key file's path."""
    key = str(tmp_path / "lb-rsa.key")
    os.rename(key, key + ".good")
    other = tmp_path / "other"
    other.mkdir()
    _, k = make_cert(str(other), "x", "x.example.com", ["x.example.com"])
    os.replace(k, key)
    return key


def ctl(*args):
    return subprocess.run([mt.BIN, "ctl"] + list(args), capture_output=True,
                          text=True, timeout=30)


def wait_metric(e, cond, what):
    box = {}

    def ok():
        box["m"] = scrape(e)
        return cond(box["m"])

    mt.wait_for(ok, what=what)
    return box["m"]


class Load:
    """Bounded TLS load on one edge: one keep-alive connection opened now
    (before any reload) and `fresh` threads that each open a new TLS
    connection per request, noting the certificate served. Every request
    must answer 200. Stops at stop(), or after max_requests per thread or
    max_seconds."""

    def __init__(self, port, fresh=2, max_requests=5000, max_seconds=60):
        self.port = port
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.bad = []
        self.handshakes = []  # (monotonic start, CN served), in order
        self.kept = []  # monotonic end of each keep-alive request
        self.keep = TlsConn(port)
        self.keep_cn = served(self.keep.sock)[0]
        self.threads = [threading.Thread(target=self._keepalive)] + [
            threading.Thread(target=self._fresh) for _ in range(fresh)]
        for t in self.threads:
            t.start()

    def _running(self, i):
        return (i < self.max_requests and not self.stop_ev.is_set() and
                time.monotonic() < self.deadline)

    def _note(self, good, what):
        with self.lock:
            if good:
                self.ok += 1
            else:
                self.bad.append(what)

    def _keepalive(self):
        i = 0
        try:
            while self._running(i):
                i += 1
                self.keep.send(mt.req("GET", "/bytes/3000", HOST))
                r = self.keep.read_response()
                good = r.status == 200 and r.body == mt.pattern(3000)
                self._note(good, "keep-alive: %r" % (r,))
                if good:
                    with self.lock:
                        self.kept.append(time.monotonic())
                else:
                    return
        except (OSError, mt.Closed, AssertionError) as ex:
            self._note(False, "keep-alive: %r" % (ex,))

    def _fresh(self):
        i = 0
        while self._running(i):
            i += 1
            t0 = time.monotonic()
            try:
                with TlsConn(self.port) as c:
                    cn = served(c.sock)[0]
                    c.send(mt.req("GET", "/", HOST))
                    r = c.read_response()
                good = r.status == 200
                self._note(good, "new connection: %r" % (r,))
                if good:
                    with self.lock:
                        self.handshakes.append((t0, cn))
            except (OSError, mt.Closed, AssertionError) as ex:
                self._note(False, "new connection: %r" % (ex,))

    def count(self):
        with self.lock:
            return self.ok

    def cns_since(self, t):
        with self.lock:
            return [cn for t0, cn in self.handshakes if t0 > t]

    def kept_since(self, t):
        with self.lock:
            return sum(1 for x in self.kept if x > t)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=mt.WAIT)
        self.keep.close()
        assert not any(t.is_alive() for t in self.threads)


# ---------------------------------------------------------------- tests

def test_list_shows_what_is_served(lab, tmp_path):
    e, _ = tls_edge(lab, tmp_path)
    api = Api(e.admin)
    st, env = api.call("GET", CERTS)
    assert st == 200, env
    got = by_file(env["result"])
    assert set(got) == {"default.pem", "lb-rsa.pem", "lb-ec.pem", "wild.pem"}
    assert env["result_info"]["count"] == 4
    # Config order, each with its files.
    assert [c["index"] for c in env["result"]] == [0, 1, 2, 3]
    for name, c in got.items():
        path = str(tmp_path / name)
        assert c["file"] == path
        assert c["key_file"] == path[:-4] + ".key"
        assert c["fingerprint_sha256"] == fingerprint(path), name
        assert c["not_after"] == rfc3339(not_after(path)), name
        assert int(c["serial"], 16) == load_pem(path).serial_number
    rsa, ec = got["lb-rsa.pem"], got["lb-ec.pem"]
    assert rsa["subject_cn"] == "lb.example.com"
    assert rsa["san"] == ["lb.example.com"]
    assert (rsa["key_type"], rsa["key_bits"], rsa["curve"]) == \
        ("RSA", 2048, None)
    assert (ec["key_type"], ec["key_bits"], ec["curve"]) == \
        ("ECDSA", 256, "P-256")
    assert got["wild.pem"]["san"] == ["*.example.com"]
    # The first certificate is the default (no SNI, no match).
    assert [n for n, c in got.items() if c["default"]] == ["default.pem"]
    assert cert_of(e.https, None)[0] == "default.example.net"
    # not_before <= now < not_after, in RFC 3339.
    now = rfc3339(datetime.datetime.now(datetime.timezone.utc))
    assert rsa["not_before"] <= now < rsa["not_after"]

    # The gauge: the same not_after, per file, as Unix time.
    m = scrape(e)
    for name in got:
        path = str(tmp_path / name)
        assert m.get(NOT_AFTER, cert=path) == \
            not_after(path).replace(
                tzinfo=datetime.timezone.utc).timestamp(), name

    # meridian ctl certs: a table, --json the list.
    server = "http://%s:%d" % (mt.LOCAL, e.admin)
    r = ctl("--server", server, "certs")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["FILE", "KEY", "SUBJECT", "NAMES",
                                "NOT_AFTER", "DEFAULT", "SHA256"], r.stdout
    row = [l for l in lines if l.startswith(str(tmp_path / "lb-ec.pem"))][0]
    assert "ECDSA P-256" in row and "lb.example.com" in row, row
    r = ctl("--server", server, "certs", "list", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == env["result"]
    # Reload through ctl: the same files, a new generation.
    r = ctl("--server", server, "certs", "reload")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("reloaded 4 certificates (config generation "
                               "2)"), r.stdout
    r = ctl("--server", server, "certs", "frobnicate")
    assert r.returncode == 2 and "reload" in r.stderr
    st, env = api.call("DELETE", CERTS)
    assert st == 405 and env["errors"][0]["code"] == 7001
    st, env = api.call("GET", RELOAD)
    assert st == 405
    e.check_alive()


@pytest.mark.parametrize("how", ["api", "sighup"])
def test_reload_under_load_fails_no_request(lab, tmp_path, how):
    e, _ = tls_edge(lab, tmp_path)
    api = Api(e.admin)
    old_fp = fingerprint(str(tmp_path / "lb-rsa.pem"))
    old_serial = by_file(api.ok("GET", CERTS))["lb-rsa.pem"]["serial"]
    gen = scrape(e).get("meridian_config_generation")
    # A TLS 1.2 session ticket from before the reload.
    sess_ctx = client_ctx(ssl.TLSVersion.TLSv1_2)
    with TlsConn(e.https, ctx=sess_ctx) as c:
        sess = c.sock.session
    assert sess is not None and sess.has_ticket

    load = Load(e.https, fresh=2)
    try:
        assert load.keep_cn == "lb.example.com"
        mt.wait_for(lambda: load.count() >= 50 or load.bad,
                    what="load before the reload")
        assert not load.bad, load.bad[:3]
        replace_lb_certs(tmp_path, "lb2.example.com")
        new_fp = fingerprint(str(tmp_path / "lb-rsa.pem"))
        assert new_fp != old_fp
        if how == "api":
            st, env = api.call("POST", RELOAD)
            assert st == 200, env
            assert env["result"]["generation"] == gen + 1
            rsa = by_file(env["result"]["certificates"])["lb-rsa.pem"]
            assert rsa["subject_cn"] == "lb2.example.com"
            assert rsa["fingerprint_sha256"] == new_fp
            assert rsa["serial"] != old_serial
        else:
            os.kill(e.pid, signal.SIGHUP)
        t_reload = time.monotonic()
        # New handshakes get the new certificate: at once for the API
        # (the answer comes after the swap) once every worker has woken.

        def switched():
            cns = load.cns_since(t_reload)
            return len(cns) >= 20 and \
                all(cn == "lb2.example.com" for cn in cns[-20:])

        mt.wait_for(lambda: switched() or load.bad,
                    what="new handshakes on the new certificate")
        # The connection opened before the reload goes on (on its old
        # certificate) after it.
        t_new = time.monotonic()
        mt.wait_for(lambda: load.kept_since(t_new) >= 10 or load.bad,
                    what="the old keep-alive connection after the reload")
        base = load.count()
        mt.wait_for(lambda: load.count() >= base + 40 or load.bad,
                    what="load after the reload")
    finally:
        load.stop()
    assert not load.bad, load.bad[:5]
    assert load.ok >= 100
    # Once switched, no handshake went back to the old certificate.
    cns = load.cns_since(t_reload)
    first = next(i for i in range(len(cns))
                 if all(cn == "lb2.example.com" for cn in cns[i:i + 20]))
    assert all(cn == "lb2.example.com" for cn in cns[first:]), cns
    # Listed, measured and served: the new certificate.
    st, env = api.call("GET", CERTS)
    rsa = by_file(env["result"])["lb-rsa.pem"]
    assert (rsa["subject_cn"], rsa["fingerprint_sha256"]) == \
        ("lb2.example.com", new_fp)
    assert scrape(e).get("meridian_config_generation") == gen + 1
    assert cert_of(e.https, HOST)[0] == "lb2.example.com"
    # Ticket keys carried over: the old ticket resumes.
    with TlsConn(e.https, ctx=sess_ctx, session=sess) as c:
        assert c.sock.session_reused
        c.send(mt.req("GET", "/", HOST))
        assert c.read_response().status == 200
    e.check_alive()


def test_bad_reload_names_the_file_and_changes_nothing(lab, tmp_path):
    e, _ = tls_edge(lab, tmp_path)
    api = Api(e.admin)
    server = "http://%s:%d" % (mt.LOCAL, e.admin)
    st, env = api.call("GET", CERTS)
    before = env["result"]
    gen = scrape(e).get("meridian_config_generation")
    old = TlsConn(e.https)
    try:
        old.send(mt.req("GET", "/", HOST))
        assert old.read_response().status == 200

        def still_served():
            assert api.call("GET", CERTS)[1]["result"] == before
            assert scrape(e).get("meridian_config_generation") == gen
            with tls_sock(e.https, HOST) as s:
                assert served(s)[0] == "lb.example.com"
                der = s.getpeercert(binary_form=True)
            assert hashlib.sha256(der).hexdigest() in \
                [c["fingerprint_sha256"] for c in before]
            assert cert_of(e.https, None)[0] == "default.example.net"
            old.send(mt.req("GET", "/", HOST))
            assert old.read_response().status == 200

        def refused(what, *words):
            st, env = api.call("POST", RELOAD)
            assert st == 400, (what, env)
            err = env["errors"][0]
            assert err["code"] == 1012, env
            for w in words:
                assert w in err["message"], (what, err)
            still_served()
            return err["message"]

        # A key that does not match its certificate.
        key = mismatch_key(tmp_path)
        refused("mismatch", "edge.tls.certificates[1].key", key,
                "does not match")
        # ctl says the same, exit status 1.
        r = ctl("--server", server, "certs", "reload")
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert key in r.stderr and "does not match" in r.stderr, r.stderr
        os.replace(key + ".good", key)
        # A missing certificate file.
        cert = str(tmp_path / "default.pem")
        os.rename(cert, cert + ".away")
        refused("missing", "edge.tls.certificates[0].cert", cert,
                "No such file")
        os.rename(cert + ".away", cert)
        # A file that is not PEM.
        wild = str(tmp_path / "wild.pem")
        with open(wild, "rb") as f:
            good = f.read()
        with open(wild + ".tmp", "wb") as f:
            f.write(b"-----BEGIN CERTIFICATE-----\nnot base64\n")
        os.replace(wild + ".tmp", wild)
        refused("garbage", "edge.tls.certificates[3].cert", wild,
                "not a PEM certificate")
        with open(wild + ".tmp", "wb") as f:
            f.write(good)
        os.replace(wild + ".tmp", wild)
        # Files whole again: the reload goes through.
        st, env = api.call("POST", RELOAD)
        assert st == 200, env
        assert env["result"]["certificates"] == before
        assert env["result"]["generation"] == gen + 1
    finally:
        old.close()
    e.check_alive()


def test_scopes(lab, tmp_path):
    o = lab.origin("o1")
    hp = mt.free_port()
    e = lab.edge([{"id": "p", "origins": [org(o)]}],
                 [{"name": HOST, "default_pools": ["p"]}], https_port=hp,
                 edge_extra={"tls": certs(tmp_path)},
                 api={"tokens": [{"token": "r" * 40, "scope": "read"},
                                 {"token": "w" * 40, "scope": "edit"}]})
    api = Api(e.admin)
    assert api.call("GET", CERTS)[0] == 401
    st, env = api.call("GET", CERTS, token="r" * 40)
    assert st == 200 and len(env["result"]) == 4
    st, env = api.call("POST", RELOAD, token="r" * 40)
    assert st == 403 and env["errors"][0]["code"] == 10001
    st, env = api.call("POST", RELOAD, token="w" * 40)
    assert st == 200, env


def test_no_https_listener(lab, tmp_path):
    o = lab.origin("o1")
    e = lab.edge([{"id": "p", "origins": [org(o)]}],
                 [{"name": HOST, "default_pools": ["p"]}])
    api = Api(e.admin)
    st, env = api.call("GET", CERTS)
    assert st == 200 and env["result"] == []
    st, env = api.call("POST", RELOAD)
    assert st == 409 and env["errors"][0]["code"] == 1013
    m = scrape(e)
    assert m.get(HS) is None and m.family(NOT_AFTER) is None
    assert get(e, "/").status == 200


def test_handshake_metrics(lab, tmp_path):
    e, _ = tls_edge(lab, tmp_path)
    m0 = scrape(e)
    # The parser names counter families without _total.
    f = m0.family(FAIL[:-len("_total")])
    assert f is not None and f.type == "counter"
    assert {s.labels["reason"] for s in f.samples} == {
        "protocol_version", "no_shared_cipher", "unknown_sni",
        "certificate_rejected", "closed", "other"}
    assert m0.family(HS[:-len("_total")]).type == "counter"

    def fails(m, reason):
        return m.get(FAIL, reason=reason)

    def hs(m):
        return m.get(HS)

    base = scrape(e)
    with TlsConn(e.https) as c:
        c.send(mt.req("GET", "/", HOST))
        assert c.read_response().status == 200
    wait_metric(e, lambda m: hs(m) >= hs(base) + 1, "handshakes_total + 1")

    def expect(reason, attempt):
        b = scrape(e)
        attempt()
        m = wait_metric(e, lambda m: fails(m, reason) >= fails(b, reason) + 1,
                        "a %s failure" % reason)
        return m

    def tls11():
        ctx = client_ctx(ssl.TLSVersion.TLSv1_1)
        try:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        with pytest.raises((ssl.SSLError, ConnectionError)):
            cert_of(e.https, HOST, ctx=ctx)

    def no_cipher():
        ctx = client_ctx(ssl.TLSVersion.TLSv1_2, "AES128-SHA")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            cert_of(e.https, HOST, ctx=ctx)

    def rejected():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies: unknown CA
        with pytest.raises((ssl.SSLError, ConnectionError)):
            cert_of(e.https, HOST, ctx=ctx)

    def closed():
        # The start of a ClientHello record, then the close.
        with socket.create_connection((mt.LOCAL, e.https),
                                      timeout=mt.WAIT) as s:
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")

    def plain_http():
        with socket.create_connection((mt.LOCAL, e.https),
                                      timeout=mt.WAIT) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: lb.example.com\r\n\r\n")
            s.settimeout(mt.WAIT)
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass

    expect("protocol_version", tls11)
    expect("no_shared_cipher", no_cipher)
    expect("certificate_rejected", rejected)
    expect("closed", closed)
    m = expect("other", plain_http)
    # None of these completed a handshake.
    assert fails(m, "unknown_sni") == fails(base, "unknown_sni") == 0

    # A TCP probe (connect, close, not a byte) is not a handshake: it is
    # counted apart, in no failure reason.
    EMPTY = "meridian_tls_empty_connections_total"
    b = scrape(e)
    for _ in range(3):
        socket.create_connection((mt.LOCAL, e.https), timeout=mt.WAIT).close()
    m = wait_metric(e, lambda m: m.get(EMPTY) >= b.get(EMPTY) + 3,
                    "three empty connections")
    assert m.family(EMPTY[:-len("_total")]).type == "counter"
    for r in ("closed", "other", "protocol_version"):
        assert fails(m, r) == fails(b, r), r

    # sni_required: an unknown name (and none at all) fails as unknown_sni.
    (tmp_path / "e2").mkdir()
    e2, _ = tls_edge(lab, tmp_path / "e2", sni_required=True)
    b = scrape(e2)
    for sni in ("other.test", None):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            cert_of(e2.https, sni)
    wait_metric(e2, lambda m: fails(m, "unknown_sni") >=
                fails(b, "unknown_sni") + 2, "two unknown_sni failures")
    # No certificate is the default under sni_required.
    st, env = Api(e2.admin).call("GET", CERTS)
    assert st == 200 and not any(c["default"] for c in env["result"])
    e.check_alive()
    e2.check_alive()


def test_api_writes_keep_the_served_certificates(lab, tmp_path):
    """An API object write does not read the certificate files again:
    only SIGHUP and POST .../certificates/reload do. So a renewal caught
    half-written on disk (a new key beside the old certificate) cannot
    fail the write, and a finished renewal is served once it is reloaded,
    not as a side effect of some pool change."""
    from test_api import ACCT
    e, _ = tls_edge(lab, tmp_path)
    api = Api(e.admin)

    def fp():
        with tls_sock(e.https, HOST) as s:
            return hashlib.sha256(
                s.getpeercert(binary_form=True)).hexdigest()
    before = fp()
    gen = scrape(e).get("meridian_config_generation")

    # Half-written: a key that does not match its certificate.
    key = mismatch_key(tmp_path)
    m = api.ok("POST", ACCT + "/monitors", {"type": "http", "path": "/"})
    assert scrape(e).get("meridian_config_generation") == gen + 1
    assert fp() == before
    # The certificate reload still reads the files, and refuses them.
    st, env = api.call("POST", RELOAD)
    assert st == 400 and "does not match" in env["errors"][0]["message"], \
        env
    os.replace(key + ".good", key)

    # A whole renewal: served after the reload, not after a write.
    replace_lb_certs(tmp_path, "renewed.example.com")
    api.ok("DELETE", ACCT + "/monitors/" + m["id"])
    assert fp() == before
    st, env = api.call("POST", RELOAD)
    assert st == 200, env
    assert fp() != before
    with tls_sock(e.https, HOST) as s:
        assert served(s)[0] == "renewed.example.com"
    e.check_alive()
