"""A fake tunnel connector for the edge's tests: it dials the edge's tunnel
listener over TLS, sends the hello of docs/ARCHITECTURE.md "Tunnels", and on
101 serves HTTP/2 as the server (python3-h2), answering every stream itself:

    200, body = JSON {connector, method, path, authority, scheme, headers,
                      body_len, body_sha256}

or, for a path starting /big/N, N bytes of a known pattern (flow control
honoured), or for /slow/MS after MS milliseconds. Everything runs in one
thread with deadlines; stop() closes the connection and joins."""
import hashlib
import json
import socket
import ssl
import threading
import time

import h2.config
import h2.connection
import h2.events
import hyperframe.frame

import meridian_test as mt


def hello_bytes(tunnel, token, name="fake", path="/.meridian/tunnel/v1",
                upgrade="meridian-tunnel/1"):
    h = ["GET %s HTTP/1.1" % path, "Host: edge"]
    if token is not None:
        h.append("Authorization: Bearer %s" % token)
    if tunnel is not None:
        h.append("Meridian-Tunnel: %s" % tunnel)
    h.append("Meridian-Connector: %s" % name)
    if upgrade:
        h += ["Connection: Upgrade", "Upgrade: %s" % upgrade]
    return ("\r\n".join(h) + "\r\n\r\n").encode()


def tls_connect(port, timeout=mt.WAIT):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection((mt.LOCAL, port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="edge.example.com")


def read_head(s, deadline):
    buf = b""
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline:
            raise AssertionError("no answer to the hello")
        d = s.recv(4096)
        if not d:
            break
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode(errors="replace"), rest


def hello(port, tunnel, token, **kw):
    """Send a hello; return (status, head text, socket, bytes after)."""
    s = tls_connect(port)
    s.sendall(hello_bytes(tunnel, token, **kw))
    head, rest = read_head(s, time.monotonic() + mt.WAIT)
    status = int(head.split(" ", 2)[1]) if head.startswith("HTTP/1.1 ") \
        else 0
    return status, head, s, rest


def pattern_bytes(n):
    unit = bytes(range(256))
    return (unit * (n // 256 + 1))[:n]


class FakeConnector:
    def __init__(self, port, tunnel, token, name="fake", refuse=False,
                 settings=None):
        self.name = name
        self.refuse = refuse     # reset every stream with REFUSED_STREAM
        self.refused = 0
        self.status, self.head, self.sock, rest = hello(port, tunnel, token,
                                                        name=name)
        self.requests = []       # (headers dict, body bytes) per stream
        self.goaway_seen = False
        self.closed = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._send_goaway = False
        if self.status != 101:
            self.sock.close()
            self.closed.set()
            return
        cfg = h2.config.H2Configuration(client_side=False,
                                        header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        if settings:             # {h2.settings.SettingCodes.X: value}
            self.conn.update_settings(settings)
        self.streams = {}        # sid -> {"headers", "body", "pending"}
        self._rest = rest
        self.sock.settimeout(0.05)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    # --- control from the test
    def goaway(self):
        with self._lock:
            self._send_goaway = True

    def stop(self):
        self._stop.set()
        if self.status == 101:
            self.t.join(timeout=mt.WAIT)
        try:
            self.sock.close()
        except OSError:
            pass

    # --- the loop
    def _answer(self, sid, st):
        hdrs = st["headers"]
        path = hdrs.get(":path", "")
        if path.startswith("/big/"):
            body = pattern_bytes(int(path.split("/")[2]))
            ctype = "application/octet-stream"
        else:
            if path.startswith("/slow/"):
                st["due"] = time.monotonic() + int(path.split("/")[2]) / 1e3
            body = json.dumps({
                "connector": self.name,
                "method": hdrs.get(":method"),
                "path": path,
                "authority": hdrs.get(":authority"),
                "scheme": hdrs.get(":scheme"),
                "headers": {k: v for k, v in hdrs.items()
                            if not k.startswith(":")},
                "body_len": len(st["body"]),
                "body_sha256": hashlib.sha256(st["body"]).hexdigest(),
            }).encode()
            ctype = "application/json"
        st["resp"] = body
        st["ctype"] = ctype
        st["sent_head"] = False

    def _pump(self):
        """Send what flow control allows of every answer due."""
        now = time.monotonic()
        for sid, st in list(self.streams.items()):
            if "resp" not in st or st.get("due", 0) > now:
                continue
            if not st["sent_head"]:
                self.conn.send_headers(sid, [
                    (":status", "200"), ("content-type", st["ctype"]),
                    ("content-length", str(len(st["resp"])))])
                st["sent_head"] = True
            body = st["resp"]
            while body:
                win = min(self.conn.local_flow_control_window(sid),
                          self.conn.max_outbound_frame_size)
                if win <= 0:
                    break
                self.conn.send_data(sid, body[:win])
                body = body[win:]
            st["resp"] = body
            if not body:
                self.conn.end_stream(sid)
                del self.streams[sid]

    def _events(self, events):
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived) and self.refuse:
                self.conn.reset_stream(ev.stream_id, error_code=7)
                self.refused += 1
            elif isinstance(ev, h2.events.RequestReceived):
                self.streams[ev.stream_id] = {
                    "headers": dict(ev.headers), "body": b""}
                if ev.stream_ended:
                    self._finish(ev.stream_id)
            elif isinstance(ev, h2.events.DataReceived):
                if self.refuse:
                    self.conn.acknowledge_received_data(
                        ev.flow_controlled_length, ev.stream_id)
                    continue
                st = self.streams.get(ev.stream_id)
                if st is not None:
                    st["body"] += ev.data
                self.conn.acknowledge_received_data(
                    ev.flow_controlled_length, ev.stream_id)
                if ev.stream_ended:
                    self._finish(ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                pass
            elif isinstance(ev, h2.events.StreamReset):
                self.streams.pop(ev.stream_id, None)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway_seen = True

    def _finish(self, sid):
        st = self.streams[sid]
        if "resp" in st:
            return
        with self._lock:
            self.requests.append((st["headers"], st["body"]))
        self._answer(sid, st)

    def _run(self):
        try:
            if self._rest:
                self._events(self.conn.receive_data(self._rest))
            deadline = time.monotonic() + 600
            while not self._stop.is_set() and time.monotonic() < deadline:
                with self._lock:
                    if self._send_goaway:
                        # Raw, so this side's h2 state goes on serving
                        # the streams already open (a graceful drain).
                        self._send_goaway = False
                        f = hyperframe.frame.GoAwayFrame(0)
                        f.last_stream_id = self.conn.highest_inbound_stream_id
                        f.error_code = 0
                        self.sock.sendall(self.conn.data_to_send() +
                                          f.serialize())
                self._pump()
                out = self.conn.data_to_send()
                if out:
                    self.sock.sendall(out)
                try:
                    data = self.sock.recv(65536)
                except (socket.timeout, ssl.SSLWantReadError):
                    continue
                if not data:
                    break
                self._events(self.conn.receive_data(data))
        except (OSError, ssl.SSLError):
            pass
        finally:
            self.closed.set()
