"""An origin (or a tunnel connector, which the edge treats as one) that
sends informational (1xx) responses without end to an HTTP/2 client that
does not read: 1xx HEADERS are not flow-controlled, so the edge must stop
queueing them for that client (the HTTP/1.1 side's head buffer does the
same) rather than hold all of them. Everything on 127.0.0.1; every wait
has a deadline."""
import socket
import threading
import time

import h2.events

import meridian_test as mt
from test_h2 import H2Client
from test_health import HOST, lab  # noqa: F401  (the fixture)
from test_tls import certs

N_HINTS = 10000  # 103s of 3 KiB each, all different: 30 MiB on the wire


def flooding_origin(done, stop):
    """A raw origin: to any request, N_HINTS distinct 103 heads, then a
    200. Sets `done` once it has sent them or the edge closed."""
    ls = socket.socket()
    ls.bind((mt.LOCAL, 0))
    ls.listen(16)
    ls.settimeout(0.2)

    def serve(c):
        c.settimeout(2 * mt.WAIT)
        try:
            c.recv(65536)
            for i in range(N_HINTS):
                if stop.is_set():
                    break
                c.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </%d/%s>\r\n"
                          b"\r\n" % (i, b"x" * 3000))
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            pass
        finally:
            done.set()
            c.close()

    def run():
        deadline = time.monotonic() + 300
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                c, _ = ls.accept()
            except socket.timeout:
                continue
            threading.Thread(target=serve, args=(c,), daemon=True).start()
        ls.close()
    threading.Thread(target=run, daemon=True).start()
    return ls.getsockname()[1]


def test_1xx_flood_to_an_h2_client_that_does_not_read(lab, tmp_path):
    done, stop = threading.Event(), threading.Event()
    try:
        port = flooding_origin(done, stop)
        hp = mt.free_port()
        pools = [{"id": "p", "origins": [
            {"name": "flood", "address": mt.LOCAL, "port": port}]}]
        e = lab.edge(pools, [{"name": HOST, "default_pools": ["p"]}],
                     https_port=hp, workers=1,
                     edge_extra={"tls": certs(tmp_path)})
        mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
        c = H2Client(hp)
        sid = c.request("/")
        # Not reading until the origin is through (or cut off).
        assert done.wait(4 * mt.WAIT), "the origin never finished"

        def over(cl):
            return any(isinstance(ev, (h2.events.StreamEnded,
                                       h2.events.StreamReset)) and
                       ev.stream_id == sid for ev in cl.events)
        c.pump(over, "the end of the stream", timeout=4 * mt.WAIT)
        hints = [ev for ev in c.events
                 if isinstance(ev, h2.events.InformationalResponseReceived)]
        finals = [dict(ev.headers)[":status"] for ev in c.events
                  if isinstance(ev, h2.events.ResponseReceived)]
        # Not all of them were held for the client: it got some, then
        # the edge gave up on the origin's answer.
        assert len(hints) < N_HINTS, (len(hints), finals)
        assert finals in (["502"], []), finals
        c.sock.close()
        e.check_alive()
    finally:
        stop.set()
