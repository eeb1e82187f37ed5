"""HTTP/2 request flow control across the streams of one client
connection: uploads whose origin does not read hold their own stream
windows, not the connection's, so the other uploads go on."""
import socket
import time

import meridian_test as mt
from test_health import lab  # noqa: F401  (the fixture)
from test_health import HOST, FakeOrigin, org
from test_h2 import H2Client, pytestmark  # noqa: F401
from test_tls import certs


class StallUploadOrigin(FakeOrigin):
    """POST /stall: reads the head, then never reads the body (a small
    receive buffer, so the kernel holds little of it). Anything else:
    reads the body by its Content-Length, answers 200 with its size."""

    def __init__(self, name):
        super().__init__(name)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.stalled = 0

    def handle(self, s):
        s.settimeout(mt.WAIT * 4)
        buf = b""
        for _ in range(10000):
            if b"\r\n\r\n" in buf:
                break
            d = s.recv(4096)
            if not d:
                return
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        with self.lock:
            self.requests += 1
        if head.startswith(b"POST /stall"):
            with self.lock:
                self.stalled += 1
            for _ in range(10 ** 6):  # until the test ends
                if self.stopping:
                    return
                time.sleep(0.05)
            return
        n = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        got = len(rest)
        for _ in range(10 ** 6):
            if got >= n:
                break
            d = s.recv(65536)
            if not d:
                return
            got += len(d)
        body = b"%d" % got
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
                  % len(body) + body)


def swin(c, sid):
    """The stream's own send window (python-h2's local_flow_control_window
    is the smaller of it and the connection's)."""
    return c.c._get_stream_by_id(sid).outbound_flow_control_window


def poll(c, t):
    """Take what the edge sends within t seconds (WINDOW_UPDATEs)."""
    c.sock.settimeout(t)
    try:
        data = c.sock.recv(65536)
    except (socket.timeout, TimeoutError):
        return
    assert data, "the edge closed the connection"
    c.events.extend(c.c.receive_data(data))
    c.flush()


def fill(c, sids):
    """Send DATA on sids as long as any window lets us, until nothing more
    can be sent and no WINDOW_UPDATE comes for three polls in a row (the
    edge holds what it can). Returns the connection window left."""
    chunk = b"x" * 16384
    deadline = time.monotonic() + mt.WAIT * 2
    quiet = 0
    for _ in range(100000):
        assert time.monotonic() < deadline, "the uploads did not settle"
        conn, sent = c.c.outbound_flow_control_window, False
        for sid in sids:
            k = min(swin(c, sid), conn, len(chunk))
            if k > 0:
                c.c.send_data(sid, chunk[:k])
                conn -= k
                sent = True
        c.flush()
        if sent:
            quiet = 0
            continue
        before = (c.c.outbound_flow_control_window,
                  [swin(c, s) for s in sids])
        poll(c, 0.3)
        if before == (c.c.outbound_flow_control_window,
                      [swin(c, s) for s in sids]):
            quiet += 1
            if quiet >= 3:
                break
        else:
            quiet = 0
    return c.c.outbound_flow_control_window


def test_stalled_uploads_do_not_stall_the_connection(lab, tmp_path):
    """Eight uploads to an origin that does not read held the client's
    whole connection window (1 MiB; each stream's is 256 KiB): a ninth
    upload on the same connection never got a byte through."""
    o = lab.fake(StallUploadOrigin, "stall")
    hp = mt.free_port()
    e = lab.edge([{"id": "p", "origins": [org(o)]}],
                 [{"name": HOST, "default_pools": ["p"]}], https_port=hp,
                 edge_extra={"tls": certs(tmp_path),
                             "timeouts": {"upstream_response": "60s"}})
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    with H2Client(hp) as c:
        stall = [c.request("/stall", method="POST", end=False,
                           headers=[("content-length", "100000000")])
                 for _ in range(8)]
        mt.wait_for(lambda: o.stalled == len(stall),
                    what="the stalled uploads at the origin")
        left = fill(c, stall)
        sid = c.request("/ok", method="POST", end=False,
                        headers=[("content-length", "1000")])
        c.pump(lambda s: s.c.outbound_flow_control_window >= 1000,
               "connection window for a new upload (%d left after the "
               "stalled ones; their stream windows: %s)"
               % (left, [swin(c, s) for s in stall]))
        c.c.send_data(sid, b"y" * 1000, end_stream=True)
        c.flush()
        st, _, body, _ = c.response(sid)
        assert st == 200 and body == b"1000", (st, body)
    e.check_alive()
