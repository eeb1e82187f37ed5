"""An origin that answers before reading the whole request body (a 413 to
a big upload) and stops reading: the client still gets that answer, and the
edge closes the connection after it (where the body ends is unknown)."""
import socket
import threading

import meridian_test as mt
from meridian_test import WAIT


class EarlyOrigin:
    """Reads a request head, answers 413 at once, then stops reading (and
    closes after a while, discarding nothing: the kernel resets)."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind((mt.LOCAL, 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.lsock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            c.settimeout(WAIT)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    d = c.recv(4096)
                    if not d:
                        break
                    data += d
                body = b"too big\n"
                c.sendall(b"HTTP/1.1 413 Content Too Large\r\n"
                          b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                          % len(body) + body)
                self.stop.wait(0.5)
            except OSError:
                pass
            finally:
                c.close()  # unread body bytes: the kernel sends RST

    def close(self):
        self.stop.set()
        self.t.join(WAIT)
        self.lsock.close()


def test_early_413_reaches_the_client(stack):
    o = EarlyOrigin()
    try:
        e = stack.edge({"p": [("early", o.port)]}, {"lb.example.com": ["p"]})
        n = 64 << 20
        s = socket.create_connection((mt.LOCAL, e.port), timeout=WAIT)
        s.sendall(mt.req("POST", "/upload",
                         headers=[("Content-Length", str(n))]))
        # Send part of the body: the origin answers without reading it.
        s.sendall(b"x" * (256 << 10))
        data = b""
        while b"too big\n" not in data:
            d = s.recv(65536)
            if not d:
                break
            data += d
        assert data.startswith(b"HTTP/1.1 413 "), data[:200]
        assert b"\r\nConnection: close\r\n" in data, data[:300]
        assert data.endswith(b"too big\n"), data[-100:]
        # Then the edge closes (after discarding what we still send).
        s.settimeout(WAIT)
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
        s.close()
        e.check_alive()
        # And it still serves.
        r = mt.request(e.port, "GET", "/x")
        assert r.status == 413, r
    finally:
        o.close()
