"""The JSON access log (edge.access_log): one valid JSON object a line with
the documented fields, written by a thread off the request path; reopened
on SIGUSR1 after logrotate renamed the file; to standard output with `-`;
lines dropped and counted, never waited for, when the writer is stuck."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import meridian_test as mt
from meridian_test import HttpConn, req, request, LOCAL, WAIT
from obs_helpers import edge_section, scrape, start_edge

HOST = "lb.example.com"
FIELDS = {"time", "edge", "client", "host", "method", "path", "status",
          "bytes", "duration", "upstream_time", "lb", "pool", "origin",
          "retries"}
TIME_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _config(port, admin, live, dead, path, **log):
    log = dict(log)
    if path is not None:
        log["path"] = path
    return {
        "edge": edge_section(port, admin, access_log=log),
        "pools": [
            {"id": "a", "origins": [{"name": "dead", "address": LOCAL,
                                     "port": dead}]},
            {"id": "b", "origins": [{"name": "live", "address": LOCAL,
                                     "port": live.port}]},
        ],
        "load_balancers": [
            {"name": HOST, "default_pools": ["a", "b"],
             "adaptive_routing": {"failover_across_pools": True}},
            {"name": "b.example.com", "default_pools": ["b"]},
        ],
    }


def read_lines(path, n, what="access log lines"):
    """Wait until path holds at least n lines; returns them parsed."""
    def ready():
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        if data.count(b"\n") < n:
            return None
        assert data.endswith(b"\n"), data[-200:]
        return [json.loads(line) for line in data.splitlines()]
    return mt.wait_for(ready, what="%d %s in %s" % (n, what, path))


def raw_exchange(port, data):
    """Send data on a fresh connection, read to EOF: every byte the edge
    sent (the log's "bytes")."""
    with socket.create_connection((LOCAL, port), timeout=WAIT) as s:
        s.sendall(data)
        out = bytearray()
        while True:
            b = s.recv(65536)
            if not b:
                return bytes(out)
            out += b


def test_lines_are_json_with_the_fields(stack, tmp_path):
    live = stack.origin("live")
    dead = mt.free_port()
    path = str(tmp_path / "access.log")
    e = start_edge(stack, lambda p, a: _config(p, a, live, dead, path))
    t0 = time.time()
    # 1: fails over from pool a (dead) to pool b: one retry.
    weird = '/q?x="y"&z=\\w%00'
    a = raw_exchange(e.port, req(host=HOST, path=weird,
                                 headers=[("Connection", "close")]))
    assert a.startswith(b"HTTP/1.1 200 ")
    # 2: a body both ways, on a load balancer with one pool.
    b = raw_exchange(e.port, req("POST", "/echo", host="b.example.com",
                                 headers=[("Connection", "close")],
                                 body=b"x" * 1000))
    assert b.startswith(b"HTTP/1.1 200 ")
    # 3: unknown host: 404 from the edge.
    c = raw_exchange(e.port, b"GET /nope HTTP/1.1\r\nHost: Unknown.Example"
                     b"\r\nConnection: close\r\n\r\n")
    assert c.startswith(b"HTTP/1.1 404 ")
    # 4: not HTTP at all: 400 before any request line parsed.
    d = raw_exchange(e.port, b"GARBAGE\x01\r\n\r\n")
    assert d.startswith(b"HTTP/1.1 400 ")

    lines = read_lines(path, 4)
    assert len(lines) == 4, lines
    for ln in lines:
        assert set(ln) == FIELDS, ln
        assert re.fullmatch(TIME_RE, ln["time"]), ln
        ts = time.mktime(time.strptime(ln["time"][:19], "%Y-%m-%dT%H:%M:%S"))
        ts -= time.timezone  # the log is in UTC
        assert t0 - 5 <= ts <= time.time() + 5, ln
        assert ln["edge"] == mt.EDGE_NAME and ln["client"] == LOCAL, ln
        assert isinstance(ln["duration"], float) and ln["duration"] >= 0
    # Each worker has its own ring: lines of different connections may
    # come in any order.
    by_path = {ln["path"]: ln for ln in lines}
    one, two, three, four = (by_path[weird], by_path["/echo"],
                             by_path["/nope"], by_path[None])
    assert one["method"] == "GET" and one["path"] == weird, one
    assert one["host"] == HOST and one["status"] == 200, one
    assert one["bytes"] == len(a), (one, len(a))
    assert (one["lb"], one["pool"], one["origin"]) == (HOST, "b", "live")
    assert one["retries"] == 1, one
    assert 0 <= one["upstream_time"] <= one["duration"], one
    assert two["method"] == "POST" and two["path"] == "/echo", two
    assert two["bytes"] == len(b) and two["retries"] == 0, two
    assert (two["lb"], two["pool"], two["origin"]) == (
        "b.example.com", "b", "live")
    assert three["host"] == "Unknown.Example", three
    assert three["status"] == 404 and three["bytes"] == len(c), three
    assert three["upstream_time"] is None, three
    assert three["lb"] is None and three["pool"] is None, three
    assert three["origin"] is None and three["retries"] == 0, three
    assert four["status"] == 400 and four["method"] is None, four
    assert four["path"] is None and four["bytes"] == len(d), four
    mx = scrape(e)
    assert mx.get("meridian_access_log_lines_total") == 4
    assert mx.get("meridian_access_log_dropped_total") == 0


def test_sigusr1_reopens_after_rename(stack, tmp_path):
    live = stack.origin("live")
    path = str(tmp_path / "access.log")
    e = start_edge(stack,
                   lambda p, a: _config(p, a, live, mt.free_port(), path))
    for i in range(3):
        assert request(e.port, host="b.example.com",
                       path="/before/%d" % i).status == 200
    read_lines(path, 3)
    # logrotate: rename, then signal.
    os.rename(path, path + ".1")
    e.p.send_signal(signal.SIGUSR1)
    mt.wait_for(lambda: os.path.exists(path), what="a new access log")
    for i in range(2):
        assert request(e.port, host="b.example.com",
                       path="/after/%d" % i).status == 200
    new = read_lines(path, 2)
    assert sorted(ln["path"] for ln in new) == ["/after/0", "/after/1"]
    old = read_lines(path + ".1", 3)
    assert sorted(ln["path"] for ln in old) == [
        "/before/%d" % i for i in range(3)]
    assert scrape(e).get("meridian_access_log_reopens_total") == 1
    e.check_alive()


def test_stdout_and_escaping(stack):
    """`-` writes to standard output. The edge name carries a quote, a
    backslash and UTF-8: the line is still JSON (control characters, which
    an edge name may not hold, and bytes that are not UTF-8:
    tests/unit/test_edge_alog.c)."""
    live = stack.origin("live")
    name = 'pop "\u00e9" \\ x'

    def build(p, a):
        cfg = _config(p, a, live, mt.free_port(), "-")
        cfg["edge"]["name"] = name
        return cfg
    e = start_edge(stack, build)
    assert request(e.port, host="b.example.com", path="/out").status == 200

    def line():
        for ln in e.stdout_text().splitlines():
            if ln.startswith("{"):
                return json.loads(ln)
        return None
    ln = mt.wait_for(line, what="a line on standard output")
    assert ln["path"] == "/out" and ln["status"] == 200, ln
    assert ln["edge"] == name, ln
    # SIGUSR1 with standard output: nothing to reopen, nothing breaks.
    e.p.send_signal(signal.SIGUSR1)
    assert request(e.port, host="b.example.com").status == 200
    e.check_alive()


def test_stuck_writer_drops_never_blocks(stack, tmp_path):
    """The log is a FIFO nobody reads: the writer blocks on it, the
    rings fill, lines are dropped and counted, and requests go on at full
    speed. Once the FIFO is read again, the edge stops cleanly."""
    live = stack.origin("live")
    fifo = str(tmp_path / "access.fifo")
    os.mkfifo(fifo)
    # A reader that does not read yet (so the edge's open does not wait).
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        e = start_edge(stack, lambda p, a: _config(
            p, a, live, mt.free_port(), fifo, buffer="64k"))
        n = 3000  # ~600 KB of lines: far beyond pipe + ring
        t = time.monotonic()
        with HttpConn(e.port) as c:
            for start in range(0, n, 500):
                c.send(b"".join(req(host="b.example.com", path="/%d" % i)
                                for i in range(start, start + 500)))
                for _ in range(500):
                    assert c.read_response().status == 200
        took = time.monotonic() - t
        assert took < WAIT, took
        mx = scrape(e)
        lines = mx.get("meridian_access_log_lines_total")
        dropped = mx.get("meridian_access_log_dropped_total")
        assert dropped > 0, mx.text
        assert lines + dropped == n, (lines, dropped)

        # Read everything now; what was queued arrives whole.
        got = bytearray()
        stop = threading.Event()

        def drain():
            while not stop.is_set():
                try:
                    b = os.read(rfd, 65536)
                    if b:
                        got.extend(b)
                        continue
                except BlockingIOError:
                    pass
                time.sleep(0.01)
        th = threading.Thread(target=drain, daemon=True)
        th.start()
        try:
            mt.wait_for(lambda: got.count(b"\n") >= lines,
                        what="the queued lines through the FIFO")
            for ln in bytes(got).splitlines():
                assert json.loads(ln)["status"] == 200
            rc = e.terminate(timeout=WAIT)
            assert rc == 0, e.describe()
            e.expect_exit = True
        finally:
            stop.set()
            th.join(timeout=5)
    finally:
        os.close(rfd)


def test_bad_path_stops_startup(tmp_path):
    cfg = mt.to_yaml({
        "edge": {"name": mt.EDGE_NAME, "workers": 1,
                 "listen": {"http": ["%s:%d" % (LOCAL, mt.free_port())]},
                 "access_log": {"path": str(tmp_path / "no" / "such.log")}},
        "pools": [{"id": "p", "origins": [{"name": "o", "address": LOCAL,
                                           "port": 1}]}],
        "load_balancers": [{"name": HOST, "default_pools": ["p"]}],
    }) + "\n"
    p = tmp_path / "edge.yaml"
    p.write_text(cfg)
    r = subprocess.run([mt.BIN, "edge", "-c", str(p)], capture_output=True,
                       text=True, timeout=WAIT)
    assert r.returncode != 0
    assert "access log: cannot open" in r.stderr, r.stderr
    assert "No such file or directory" in r.stderr, r.stderr
