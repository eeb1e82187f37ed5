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


def _hint(i):
    return (b"HTTP/1.1 103 Early Hints\r\nLink: </%d/%s>\r\n\r\n"
            % (i, b"x" * 3000))


def test_1xx_flood_to_an_http1_client_that_does_not_read(lab):
    """The same flood to an HTTP/1.1 client: the edge's head buffer fills
    while part of a 103 is out. What the client reads must still be whole
    heads, in order, then a whole final answer or a cut: never another
    head spliced into the 103 it had begun to read."""
    done, stop = threading.Event(), threading.Event()
    try:
        port = flooding_origin(done, stop)
        pools = [{"id": "p", "origins": [
            {"name": "flood", "address": mt.LOCAL, "port": port}]}]
        e = lab.edge(pools, [{"name": HOST, "default_pools": ["p"]}],
                     workers=1)
        with mt.HttpConn(e.port, timeout=4 * mt.WAIT) as c:
            c.send(mt.req("GET", "/", HOST))
            # Not reading until the origin is through (or cut off).
            assert done.wait(4 * mt.WAIT), "the origin never finished"
            out = c.read_to_eof(time.monotonic() + 4 * mt.WAIT)
        i = pos = 0
        for _ in range(N_HINTS):
            h = _hint(i)
            if out[pos:pos + len(h)] != h:
                break
            pos += len(h)
            i += 1
        rest = out[pos:]
        # Not all of them were held for the client.
        assert i < N_HINTS, len(out)
        if rest.startswith(b"HTTP/1.1 502 "):
            head, _, body = rest.partition(b"\r\n\r\n")
            assert b"\r\nConnection: close\r\n" in head + b"\r\n", head
            assert body.startswith(b"502 Bad Gateway: "), rest[:300]
            assert body.endswith(b")\n") and b"HTTP/" not in body, rest
        else:
            # Cut: what came of the next 103 is a piece of it.
            assert _hint(i).startswith(rest), (i, rest[:300])
        e.check_alive()
    finally:
        stop.set()
