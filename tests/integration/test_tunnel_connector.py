"""The tunnel connector (`meridian tunnel`) against a fake edge.

The fake edge is this test's own TLS server on 127.0.0.1 (a CA and a
certificate for the IP made here with python3-cryptography): it reads the
connector's hello, checks Authorization / Meridian-Tunnel / Upgrade, answers
101 (or 401 for a wrong token) and then drives the connection as the HTTP/2
*client* with python3-h2, opening one stream per request, as the real edge
will (docs/ARCHITECTURE.md "Tunnels"). The services are real `meridian
origin` processes.

Covered: routing by hostname (exact, wildcard), path (prefix by segments,
exact) and the catch-all http_status; bodies of several MiB both ways with
checksums (Content-Length and unknown length), chunked responses, HEAD; 502
for a dead service; a wrong token retried (a second hello); an edge that
drops the connection (re-dialled); two edges with connections_per_edge
connections each; SIGTERM: GOAWAY, the in-flight slow request completes,
exit 0; `meridian tunnel check` with file:line:col errors. Every wait has a
deadline; every process and thread is stopped at teardown.
"""
import datetime
import ipaddress
import os
import select
import signal
import socket
import ssl
import subprocess
import threading
import time
import zlib

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import meridian_test as mt

TOKEN = "t0k3n-0123456789abcdef0123456789abcdef"
TUNNEL = "gke-test"
MIB = 1 << 20
BIG = 3 * MIB if mt.ASAN else 8 * MIB


# ---------------------------------------------------------------- certificates

def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(d):
    """A CA and a certificate for 127.0.0.1 (IP SAN) signed by it:
    (ca.pem, cert.pem, key.pem) paths in d."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder()
          .subject_name(_name("tunnel test CA"))
          .issuer_name(_name("tunnel test CA"))
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(_name("edge.example.com"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("edge.example.com"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(str(d), n) for n in ("ca.pem", "cert.pem",
                                                "key.pem")]
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


# ---------------------------------------------------------------- fake edge

class Stream:
    def __init__(self, body, sink):
        self.out = memoryview(body) if body is not None else None
        self.out_off = 0
        self.status = None
        self.headers = {}
        self.body = bytearray()
        self.sink = sink
        self.nbody = 0
        self.adler = 1
        self.reset = None
        self.done = threading.Event()


class EdgeConn:
    """One accepted tunnel connection after the 101: the HTTP/2 client
    side, driven by its own thread; requests may come from any thread."""

    def __init__(self, edge, sock, hello):
        self.edge = edge
        self.sock = sock
        self.hello = hello
        self.lock = threading.Lock()
        self.h2 = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True,
                                             header_encoding="utf-8"))
        self.h2.initiate_connection()
        self.h2.update_settings(
            {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        self.h2.increment_flow_control_window(8 << 20)
        self.streams = {}
        self.goaway = None      # error code of a GOAWAY received
        self.pings = 0          # PINGs received from the connector
        self.closed = threading.Event()
        self.out = b""
        self.rx = b""
        self.stop = False
        self.frozen = False  # stop reading, writing and answering PINGs
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def request(self, method="GET", authority="app.example.com", path="/",
                headers=(), body=None, length=True, sink=False):
        """Open a stream; returns the Stream (wait on .done). body: bytes
        (sent with content-length when length is true, else without:
        unknown length)."""
        hdrs = [(":method", method), (":scheme", "https"),
                (":authority", authority), (":path", path)]
        hdrs += list(headers)
        if body is not None and length:
            hdrs.append(("content-length", str(len(body))))
        with self.lock:
            sid = self.h2.get_next_available_stream_id()
            st = Stream(body, sink)
            self.streams[sid] = st
            self.h2.send_headers(sid, hdrs, end_stream=body is None)
            st.sid = sid
        return st

    def fetch(self, *a, timeout=None, **kw):
        st = self.request(*a, **kw)
        assert st.done.wait(timeout or mt.WAIT), "no response in time"
        return st

    def close(self):
        self.stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.t.join(mt.WAIT)
        try:
            self.sock.close()
        except OSError:
            pass

    def _push_bodies(self):
        for sid, st in list(self.streams.items()):
            if st.out is None or st.out_off > len(st.out):
                continue
            while True:
                try:
                    win = self.h2.local_flow_control_window(sid)
                except (h2.exceptions.StreamClosedError, KeyError):
                    st.out_off = len(st.out) + 1
                    break
                left = len(st.out) - st.out_off
                k = min(win, left, self.h2.max_outbound_frame_size)
                if left == 0:
                    self.h2.end_stream(sid)
                    st.out_off += 1
                    break
                if k <= 0:
                    break
                self.h2.send_data(sid,
                                  st.out[st.out_off:st.out_off + k].tobytes())
                st.out_off += k

    def _event(self, ev):
        st = self.streams.get(getattr(ev, "stream_id", 0))
        if isinstance(ev, h2.events.ResponseReceived):
            st.headers = dict(ev.headers)
            st.status = int(st.headers[":status"])
        elif isinstance(ev, h2.events.DataReceived):
            if st is not None:
                data = ev.data
                if st.sink:
                    st.nbody += len(data)
                    st.adler = zlib.adler32(data, st.adler)
                else:
                    st.body += data
            self.h2.acknowledge_received_data(ev.flow_controlled_length,
                                              ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            st.done.set()
        elif isinstance(ev, h2.events.StreamReset):
            if st is not None:
                st.reset = ev.error_code
                st.done.set()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev.error_code
        elif isinstance(ev, h2.events.PingReceived):
            self.pings += 1

    def _strip_goaway(self, data):
        """GOAWAY frames are recorded here and not given to python-h2,
        which treats the connection as closed after one and fails on the
        frames of the streams still finishing (nghttp2, the real edge's
        HTTP/2 library, goes on)."""
        self.rx += data
        out = bytearray()
        while len(self.rx) >= 9:
            n = int.from_bytes(self.rx[0:3], "big")
            if len(self.rx) < 9 + n:
                break
            frame, self.rx = self.rx[:9 + n], self.rx[9 + n:]
            if frame[3] == 0x7:  # GOAWAY
                self.goaway = int.from_bytes(frame[13:17], "big")
            else:
                out += frame
        return bytes(out)

    def _run(self):
        sock = self.sock
        sock.setblocking(False)
        try:
            while not self.stop:
                if self.frozen:
                    time.sleep(0.05)
                    continue
                with self.lock:
                    self._push_bodies()
                    self.out += self.h2.data_to_send()
                want_w = [sock] if self.out else []
                if not sock.pending():
                    select.select([sock], want_w, [], 0.05)
                while self.out:
                    try:
                        n = sock.send(self.out[:65536])
                    except (ssl.SSLWantWriteError, ssl.SSLWantReadError,
                            BlockingIOError):
                        break
                    self.out = self.out[n:]
                while True:
                    try:
                        data = sock.recv(65536)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError,
                            BlockingIOError):
                        break
                    if not data:
                        raise EOFError
                    data = self._strip_goaway(data)
                    with self.lock:
                        for ev in self.h2.receive_data(data):
                            self._event(ev)
        except (EOFError, OSError, ssl.SSLError,
                h2.exceptions.ProtocolError):
            pass
        finally:
            self.closed.set()
            for st in self.streams.values():
                st.done.set()


class FakeEdge:
    """A TLS listener taking tunnel hellos. mode: "ok" (101 for the right
    token) or a status to refuse every hello with."""

    def __init__(self, pki, token=TOKEN, port=None):
        self.token = token
        self.refuse = None
        self.port = port or mt.free_port()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki[1], pki[2])
        ctx.set_alpn_protocols(["http/1.1"])
        self.ctx = ctx
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((mt.LOCAL, self.port))
        self.ls.listen(64)
        self.ls.settimeout(0.1)
        self.hellos = []     # every hello's (request line, headers dict)
        self.conns = []      # EdgeConn after 101
        self.alpn = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.stop = False
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        while not self.stop:
            try:
                s, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._hello, args=(s,),
                             daemon=True).start()

    def _hello(self, raw):
        try:
            raw.settimeout(mt.WAIT)
            s = self.ctx.wrap_socket(raw, server_side=True)
            buf = b""
            while b"\r\n\r\n" not in buf and len(buf) < 8192:
                d = s.recv(4096)
                if not d:
                    raise EOFError
                buf += d
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            hdrs = {}
            for ln in lines[1:]:
                k, _, v = ln.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            with self.cond:
                self.hellos.append((lines[0], hdrs))
                self.alpn.append(s.selected_alpn_protocol())
                self.cond.notify_all()
            ok = (lines[0] == "GET /.meridian/tunnel/v1 HTTP/1.1" and
                  hdrs.get("authorization") == "Bearer " + self.token and
                  hdrs.get("meridian-tunnel") == TUNNEL and
                  hdrs.get("upgrade") == "meridian-tunnel/1" and
                  "upgrade" in hdrs.get("connection", "").lower())
            if self.refuse or not ok:
                status = self.refuse or 401
                body = b"unknown tunnel or wrong token\n"
                s.sendall(b"HTTP/1.1 %d Refused\r\nContent-Type: text/plain"
                          b"\r\nContent-Length: %d\r\nConnection: close"
                          b"\r\n\r\n%s" % (status, len(body), body))
                s.close()
                return
            assert not rest, "h2 bytes before our 101"
            s.sendall(b"HTTP/1.1 101 Switching Protocols\r\n"
                      b"Connection: Upgrade\r\n"
                      b"Upgrade: meridian-tunnel/1\r\n\r\n")
            c = EdgeConn(self, s, hdrs)
            with self.cond:
                self.conns.append(c)
                self.cond.notify_all()
        except (OSError, EOFError, ssl.SSLError):
            try:
                raw.close()
            except OSError:
                pass

    def live(self):
        with self.lock:
            return [c for c in self.conns if not c.closed.is_set()]

    def wait_live(self, n, timeout=None):
        return mt.wait_for(lambda: len(self.live()) >= n and self.live(),
                           timeout=timeout or mt.WAIT,
                           what="%d live tunnel connections" % n)

    def wait_hellos(self, n, timeout=None):
        mt.wait_for(lambda: len(self.hellos) >= n, timeout=timeout or mt.WAIT,
                    what="%d hellos" % n)

    def close(self):
        self.stop = True
        try:
            self.ls.close()
        except OSError:
            pass
        self.t.join(mt.WAIT)
        for c in list(self.conns):
            c.close()


# ---------------------------------------------------------------- fixtures

class Connector(mt.Proc):
    """`meridian tunnel`, with the token in its environment."""

    def __init__(self, args, logdir, tag, env):
        self.args = args
        self.tag = tag
        self.out_path = os.path.join(str(logdir), tag + ".out")
        self.err_path = os.path.join(str(logdir), tag + ".err")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                  stdout=self.out, stderr=self.err, env=env)
        self.pid = self.p.pid
        self.expect_exit = False


class Lab:
    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.stack = mt.Stack(tmp_path)
        self.pki = make_pki(tmp_path)
        self.edges = []
        self.tunnels = []

    def edge(self, **kw):
        e = FakeEdge(self.pki, **kw)
        self.edges.append(e)
        return e

    def origin(self, name):
        return self.stack.origin(name)

    def config(self, edges, ingress, extra=None, tag="tunnel"):
        cfg = {"tunnel": TUNNEL, "token": "${TUN_TEST_TOKEN}",
               "name": "conn-a",
               "edges": ["127.0.0.1:%d" % e.port for e in edges],
               "connections_per_edge": 1, "ca": self.pki[0],
               "ingress": ingress}
        cfg.update(extra or {})
        path = os.path.join(str(self.dir), tag + ".yaml")
        with open(path, "w") as f:
            f.write(mt.to_yaml(cfg))
        return path

    def tunnel(self, path, token=TOKEN, tag="tunnel", timers=None):
        env = dict(os.environ, TUN_TEST_TOKEN=token)
        if timers:  # "ping,dead,connect,head" in ms (a test hook)
            env["MERIDIAN_TUNNEL_TEST_TIMERS"] = timers
        p = Connector([mt.BIN, "tunnel", "--log-level", "debug", "-c", path],
                      self.dir, tag + str(len(self.tunnels)), env)
        self.stack.procs.append(p)
        self.tunnels.append(p)
        return p

    def close(self):
        problems = []
        for t in self.tunnels:
            err = t.stderr_tail(1 << 20)
            for bad in ("runtime error", "AddressSanitizer",
                        "LeakSanitizer"):
                if bad in err:
                    problems.append("connector: %s: %s" % (bad,
                                                           t.describe()))
            if t.expect_exit or not t.alive():
                if not t.expect_exit:
                    problems.append("connector died: " + t.describe())
                continue
            rc = t.terminate(timeout=mt.WAIT)
            if rc != 0:
                problems.append("connector did not exit 0 on SIGTERM "
                                "(rc=%r): %s" % (rc, t.describe()))
        for e in self.edges:
            e.close()
        problems += self.stack.close()
        return problems


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        problems = lab.close()
    assert not problems, "\n".join(problems)


def svc(o):
    return "http://127.0.0.1:%d" % o.port


def simple(lab, edges=None, ingress=None, extra=None, timers=None):
    """One fake edge, one connector routing everything to one origin."""
    edges = edges or [lab.edge()]
    if ingress is None:
        o = lab.origin("a")
        ingress = [{"service": svc(o)}]
    t = lab.tunnel(lab.config(edges, ingress, extra), timers=timers)
    c = edges[0].wait_live(1)[0]
    return edges[0], t, c


# ---------------------------------------------------------------- tests

def test_hello_and_routing(lab):
    a, b, c_ = lab.origin("a"), lab.origin("b"), lab.origin("c")
    ingress = [
        {"hostname": "app.example.com", "path": "/api", "service": svc(a)},
        {"hostname": "app.example.com", "service": svc(b)},
        {"hostname": "*.wild.example", "service": svc(c_)},
        {"path": "/exact", "path_type": "exact", "service": svc(a)},
        {"path": "/teapot", "service": "http_status:418"},
        {"service": "http_status:404"},
    ]
    edge, t, conn = simple(lab, ingress=ingress)
    line, h = edge.hellos[0]
    assert line == "GET /.meridian/tunnel/v1 HTTP/1.1"
    assert h["authorization"] == "Bearer " + TOKEN
    assert h["meridian-tunnel"] == TUNNEL
    assert h["meridian-connector"] == "conn-a"
    assert h["upgrade"] == "meridian-tunnel/1"
    assert h["host"] == "127.0.0.1:%d" % edge.port
    assert edge.alpn[0] == "http/1.1"

    cases = [
        ("app.example.com", "/api", "a"),
        ("app.example.com", "/api/", "a"),
        ("APP.example.com:443", "/api/v1/x?q=1", "a"),
        ("app.example.com", "/apix", "b"),
        ("app.example.com", "/", "b"),
        ("x.wild.example", "/api", "c"),
        ("a.b.wild.example:8443", "/", "c"),
        ("wild.example", "/", 404),
        ("other.org", "/exact", "a"),
        ("other.org", "/exact?x=1", "a"),
        ("other.org", "/exact/", 404),
        ("other.org", "/teapot/pot", 418),
        ("other.org", "/", 404),
    ]
    streams = [(conn.request(authority=au, path=p), want)
               for au, p, want in cases]
    for (st, want), case in zip(streams, cases):
        assert st.done.wait(mt.WAIT), case
        assert st.reset is None, case
        if isinstance(want, int):
            assert st.status == want, (case, st.status, st.headers)
            assert st.body == b"", case
        else:
            assert st.status == 200, (case, st.status)
            assert st.headers.get("x-origin") == want, (case, st.headers)
    # the service saw the request as the edge sent it, Host from
    # :authority, and nothing added
    st = conn.fetch(authority="app.example.com", path="/api/../echo",
                    headers=[("x-forwarded-for", "192.0.2.1")])
    assert st.status == 200
    st = conn.fetch(authority="z.wild.example", path="/echo",
                    headers=[("x-forwarded-for", "192.0.2.1")])
    assert st.status == 200, st.headers
    text = bytes(st.body).decode()
    assert text.startswith("GET /echo HTTP/1.1\r\n"), text
    assert "\r\nhost: z.wild.example\r\n" in text.lower(), text
    assert "x-forwarded-for: 192.0.2.1" in text.lower(), text
    assert "body-length: 0" in text
    # HEAD: the head only
    st = conn.fetch(method="HEAD", authority="app.example.com",
                    path="/bytes/1000")
    assert st.status == 200 and st.body == b""
    assert st.headers.get("content-length") == "1000"


def test_big_bodies_both_ways(lab):
    edge, t, conn = simple(lab)
    # download: Content-Length, chunked, until-EOF
    for path in ("/bytes/%d" % BIG, "/chunked/%d" % BIG, "/eof/%d" % MIB):
        n = int(path.rsplit("/", 1)[1])
        st = conn.fetch(path=path, sink=True, timeout=mt.WAIT * 4)
        assert st.reset is None and st.status == 200, (path, st.status)
        assert st.nbody == n, (path, st.nbody)
        assert st.adler == mt.pattern_adler(n), path
    # upload: with content-length, then of unknown length (chunked to the
    # service)
    body = mt.pattern(BIG)
    for length in (True, False):
        st = conn.fetch(method="POST", path="/upload", body=body,
                        length=length, timeout=mt.WAIT * 4)
        assert st.status == 200, (length, st.status, st.body[:200])
        assert bytes(st.body).decode() == "length %d\nadler32 %08x\n" % (
            BIG, mt.pattern_adler(BIG)), (length, st.body)
    # both ways at once, several streams in parallel
    streams = [conn.request(method="PUT", path="/upload", body=body[:MIB * 2],
                            length=i % 2 == 0) for i in range(3)]
    streams += [conn.request(path="/chunked/%d" % (2 * MIB), sink=True)
                for _ in range(3)]
    for st in streams:
        assert st.done.wait(mt.WAIT * 4)
        assert st.status == 200 and st.reset is None
    for st in streams[:3]:
        assert bytes(st.body).decode() == "length %d\nadler32 %08x\n" % (
            2 * MIB, mt.pattern_adler(2 * MIB))
    for st in streams[3:]:
        assert st.nbody == 2 * MIB
        assert st.adler == mt.pattern_adler(2 * MIB)


def test_dead_service_502(lab):
    dead = mt.free_port()
    o = lab.origin("a")
    edge, t, conn = simple(lab, ingress=[
        {"path": "/dead", "service": "http://127.0.0.1:%d" % dead},
        {"service": svc(o)}])
    st = conn.fetch(path="/dead/x")
    assert st.status == 502
    text = bytes(st.body).decode()
    assert "conn-a" in text and "refused" in text, text
    assert text.count("\n") == 1
    # a service that closes without answering
    st = conn.fetch(path="/reset")
    assert st.status == 502 or st.reset is not None
    # and the tunnel still works
    st = conn.fetch(path="/")
    assert st.status == 200 and st.headers.get("x-origin") == "a"


def test_wrong_token_retried(lab):
    edge = lab.edge(token="another-token-0123456789abcdef0123456789")
    o = lab.origin("a")
    t = lab.tunnel(lab.config([edge], [{"service": svc(o)}]))
    # the first hello is refused with 401; the connector tries again
    # within its backoff (at most 1 s, then 2 s)
    edge.wait_hellos(2, timeout=mt.WAIT)
    assert not edge.live()
    mt.wait_for(lambda: "401" in t.stderr_tail(20000) and
                "refused the tunnel" in t.stderr_tail(20000),
                what="the refusal in the log")
    assert TOKEN not in t.stderr_tail(100000)
    # the token is rotated on the edge: the next attempt gets in
    edge.token = TOKEN
    edge.wait_live(1, timeout=mt.WAIT + 8)


def test_edge_drop_reconnects(lab):
    edge, t, conn = simple(lab)
    st = conn.fetch(path="/")
    assert st.status == 200
    conn.close()
    c2 = mt.wait_for(lambda: [c for c in edge.live() if c is not conn],
                     what="a new connection")[0]
    st = c2.fetch(path="/")
    assert st.status == 200
    assert len(edge.hellos) == 2
    mt.wait_for(lambda: "disconnected" in t.stderr_tail(20000),
                what="the disconnect in the log")


def test_two_edges_connections_per_edge(lab):
    e1, e2 = lab.edge(), lab.edge()
    o = lab.origin("a")
    t = lab.tunnel(lab.config([e1, e2], [{"service": svc(o)}],
                              {"connections_per_edge": 3}))
    for e in (e1, e2):
        live = e.wait_live(3)
        assert len(live) == 3
        for c in live:
            assert c.fetch(path="/").status == 200
    time.sleep(0.3)
    assert len(e1.live()) == 3 and len(e2.live()) == 3


def test_sigterm_drains(lab):
    edge, t, conn = simple(lab, extra={"drain_timeout": "20s"})
    slow = conn.request(path="/sleep/1500")
    time.sleep(0.3)  # the request is at the service
    t.p.send_signal(signal.SIGTERM)
    mt.wait_for(lambda: conn.goaway is not None, what="GOAWAY")
    assert conn.goaway == 0  # NO_ERROR
    assert slow.done.wait(mt.WAIT)
    assert slow.status == 200 and slow.reset is None
    t.expect_exit = True
    assert t.p.wait(mt.WAIT) == 0
    assert "drained" in t.stderr_tail()


def test_sigterm_cuts_at_drain_timeout(lab):
    edge, t, conn = simple(lab, extra={"drain_timeout": "500ms"})
    slow = conn.request(path="/sleep/20000")
    time.sleep(0.3)
    start = time.monotonic()
    t.p.send_signal(signal.SIGTERM)
    t.expect_exit = True
    assert t.p.wait(mt.WAIT) == 0
    assert time.monotonic() - start < 10
    assert slow.done.wait(mt.WAIT)
    assert slow.status is None


def test_check(lab, tmp_path):
    good = lab.config([lab.edge()], [{"path": "/a", "service":
                                      "http://127.0.0.1:9"},
                                     {"service": "http_status:404"}])
    env = dict(os.environ, TUN_TEST_TOKEN=TOKEN)
    r = subprocess.run([mt.BIN, "tunnel", "check", "-c", good],
                       capture_output=True, text=True, timeout=mt.WAIT,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("ok: tunnel gke-test, 1 edge x 1 "
                                "connection, 2 ingress rules (1 service)")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tunnel: gke-test\n"
                   "token: ${TUN_TEST_TOKEN}\n"
                   "edges: [\"127.0.0.1\"]\n"
                   "colour: blue\n"
                   "ingress:\n"
                   "  - hostname: app.example.com\n"
                   "    service: http://127.0.0.1:8001\n")
    r = subprocess.run([mt.BIN, "tunnel", "check", "-c", str(bad)],
                       capture_output=True, text=True, timeout=mt.WAIT,
                       env=env)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        "%s:3:9: edges[0]: expected IP:port (IPv6 as [::1]:7844), got "
        "'127.0.0.1'" % bad,
        "%s:4:1: unknown key 'colour' in the tunnel configuration" % bad,
        "%s:6:5: ingress[0]: the last rule must match every request (no "
        "hostname, no path); add a catch-all such as '- service: "
        "http_status:404'" % bad,
        "meridian tunnel check: 3 errors in %s" % bad,
    ]
    # an unset variable names it; the connector itself refuses to start
    env.pop("TUN_TEST_TOKEN")
    r = subprocess.run([mt.BIN, "tunnel", "-c", good], capture_output=True,
                       text=True, timeout=mt.WAIT, env=env)
    assert r.returncode == 1
    assert "environment variable 'TUN_TEST_TOKEN' is not set" in r.stderr


def test_liveness_ping_and_dead_edge(lab):
    """PING when quiet; an edge that brings nothing (no frame, no PING
    ACK) for the liveness timeout is closed and re-dialled. Timers
    shortened by the test hook: PING after 300 ms, dead after 1.5 s."""
    edge, t, conn = simple(lab, timers="300,1500,5000,60000")
    mt.wait_for(lambda: conn.pings >= 2, what="PINGs from the connector")
    assert conn.fetch(path="/").status == 200
    conn.frozen = True
    c2 = mt.wait_for(lambda: [c for c in edge.live() if c is not conn],
                     what="a new connection after the dead one")[0]
    assert c2.fetch(path="/").status == 200
    assert "liveness" in t.stderr_tail(20000)


def test_service_head_timeout_504(lab):
    edge, t, conn = simple(lab, timers="15000,45000,5000,700")
    st = conn.fetch(path="/sleep/5000")
    assert st.status == 504
    text = bytes(st.body).decode()
    assert "conn-a" in text and "did not answer within 0.7 s" in text, text
    assert conn.fetch(path="/sleep/10").status == 200


def test_upgrade_not_carried(lab):
    """HTTP/2 has no Upgrade: a stream carrying one is malformed and
    reset; the tunnel goes on."""
    edge, t, conn = simple(lab)
    conn.h2.config.validate_outbound_headers = False
    conn.h2.config.normalize_outbound_headers = False
    st = conn.fetch(path="/ws", headers=[("upgrade", "websocket")])
    assert st.reset is not None or st.status in (400, 501), st.status
    conn.h2.config.validate_outbound_headers = True
    conn.h2.config.normalize_outbound_headers = True
    assert conn.fetch(path="/").status == 200
