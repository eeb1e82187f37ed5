"""End-to-end health (issue 3, SPEC §4.2): active monitors and failover
between origins and pools, passive health, zero-downtime failover, against
the real binary and real origins on 127.0.0.0/8.

This module also holds the end-to-end helpers that test_steering.py,
test_affinity.py and test_notify_e2e.py import (an origin that can be killed
and restarted on its port, full edge configs with an admin listener, /status
readers, source-bound requests, fake origins that answer 500 or reset).

Timing: monitors run every 1 s; a bound is interval x consecutive_down (or
_up) plus SLACK, generous for a busy 2-core machine and doubled under ASan.
Every wait polls with a deadline; every loop is bounded in count and time.
"""
import json
import os
import re
import signal
import socket
import struct
import threading
import time

import pytest

import meridian_test as mt

SLOW = 2.0 if mt.ASAN else 1.0
SLACK = 2.0 * SLOW          # on top of interval x consecutive_* bounds
HOST = "lb.example.com"


# ================================================================ helpers

class E2EOrigin(mt.Origin):
    """A demo origin on a chosen port (0: ephemeral), so that it can be
    SIGKILLed and started again on the same port."""

    def __init__(self, logdir, name, cloud="test", port=0, tag=None):
        mt.Proc.__init__(self, [mt.BIN, "origin", "--listen",
                                "%s:%d" % (mt.LOCAL, port), "--name", name,
                                "--cloud", cloud],
                         logdir, tag or "origin-" + name)
        self.name = name
        self.cloud = cloud

        def listening():
            if not self.alive():
                return "dead"
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)\n",
                          self.stdout_text())
            return int(m.group(1)) if m else None

        try:
            v = mt.wait_for(listening, what="origin %s to listen" % name)
        except BaseException:
            self.kill()
            raise
        if v == "dead":
            self.expect_exit = True
            self.kill()
            raise OSError("origin %s did not start: %s" % (name,
                                                          self.describe()))
        self.port = v


class Lab:
    """Origins, fake origins and edges of one test, on top of a mt.Stack
    (which kills and reaps every process at teardown)."""

    def __init__(self, stack):
        self.stack = stack
        self.fakes = []
        self.ntag = 0

    # ---------------------------------------------------------- origins
    def origin(self, name, cloud="test", port=0):
        self.ntag += 1
        o = E2EOrigin(self.stack.logdir, name, cloud, port,
                      tag="origin-%s-%d" % (name, self.ntag))
        self.stack.procs.append(o)
        return o

    def kill(self, o):
        """SIGKILL an origin and reap it (no goodbye to anyone)."""
        o.expect_exit = True
        o.kill()

    def restart(self, o):
        """A new origin process on the port of o (dead by now). The port
        may briefly be held (e.g. by an outgoing connection that happened
        to get it): retry until the deadline."""
        deadline = time.monotonic() + mt.WAIT
        for _ in range(200):
            try:
                return self.origin(o.name, o.cloud, o.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        raise AssertionError("could not restart origin %s" % o.name)

    def fake(self, cls, *a):
        f = cls(*a)
        self.fakes.append(f)
        return f

    # ---------------------------------------------------------- edges
    def edge(self, pools, lbs, monitors=(), geo=None, notifications=None,
             passive=None, retries=None, edge_extra=None, workers=2,
             api=None, dns_port=None, zones=None, https_port=None,
             wrap=(), top=None):
        """Start an edge with an http and an admin listener. pools and lbs
        are lists of dicts in the config's shape."""
        # Ports the caller chose (https, dns) must not come back for the
        # http or admin listener: the kernel may hand one out again.
        taken = {p for p in (https_port, dns_port) if p}
        for attempt in range(3):  # a free port may be taken meanwhile
            for _ in range(100):
                port, admin = mt.free_port(), mt.free_port()
                if port != admin and not {port, admin} & taken:
                    break
            e = {"name": mt.EDGE_NAME, "workers": workers,
                 "listen": {"http": ["%s:%d" % (mt.LOCAL, port)],
                            "admin": "%s:%d" % (mt.LOCAL, admin)},
                 "timeouts": {"drain": "5s"}}
            if dns_port:
                e["listen"]["dns"] = ["%s:%d" % (mt.LOCAL, dns_port)]
            if https_port:  # test_tls.py: certificates in edge_extra
                e["listen"]["https"] = ["%s:%d" % (mt.LOCAL, https_port)]
            if passive is not None:
                e["passive_health"] = passive
            if retries is not None:
                e["retries"] = retries
            # Each edge its own store (never the system default).
            e["store"] = os.path.join(
                str(self.stack.logdir),
                "store-%d.db" % len(self.stack.edges))
            extra = dict(edge_extra or {})
            e["listen"].update(extra.pop("listen", {}))  # merged, not replaced
            e.update(extra)
            cfg = {"edge": e}
            if api:
                cfg["api"] = api
            if zones:
                cfg["zones"] = zones
            if geo:
                cfg["geo"] = geo
            if monitors:
                cfg["monitors"] = list(monitors)
            cfg["pools"] = list(pools)
            cfg["load_balancers"] = list(lbs)
            if notifications:
                cfg["notifications"] = notifications
            cfg.update(top or {})  # other top-level sections
            text = mt.to_yaml(cfg) + "\n"
            tag = "edge%d" % len(self.stack.edges)
            try:
                ed = mt.Edge(self.stack.logdir, text, port, tag, wrap=wrap)
            except AssertionError:
                if attempt == 2:
                    raise
                continue
            self.stack.procs.append(ed)
            self.stack.edges.append(ed)
            ed.admin = admin
            ed.cfg = cfg  # for tests that rewrite it and SIGHUP
            try:
                mt.wait_for(lambda: mt.port_accepts(admin),
                            what="admin listener %d" % admin)
            except AssertionError:
                ed.check_alive()
                raise
            return ed
        raise AssertionError("could not start an edge")

    def close(self):
        for f in self.fakes:
            f.close()


@pytest.fixture
def lab(stack):
    lb = Lab(stack)
    try:
        yield lb
    finally:
        lb.close()


def org(o, **kw):
    """An origin entry of a pool for origin (or fake origin) o."""
    d = {"name": o.name, "address": mt.LOCAL, "port": o.port}
    d.update(kw)
    return d


def monitor(mid="m", interval="1s", **kw):
    d = {"id": mid, "type": "http", "path": "/healthz", "interval": interval,
         "timeout": "1s", "retries": 0}
    d.update(kw)
    return d


# ---------------------------------------------------------- requests

class SrcConn(mt.HttpConn):
    """mt.HttpConn from a chosen source address (geo, hash, ip_cookie)."""

    def __init__(self, port, src=None, timeout=mt.WAIT):
        self.sock = socket.create_connection(
            (mt.LOCAL, port), timeout=timeout,
            source_address=(src, 0) if src else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.timeout = timeout
        self.rbuf = bytearray(1 << 16)


def get(edge, path="/", host=HOST, src=None, headers=(), timeout=None):
    """One GET through the edge on a fresh connection."""
    with SrcConn(edge.port, src) as c:
        c.send(mt.req("GET", path, host, headers))
        return c.read_response("GET", timeout=timeout)


def who(r):
    """The origin that answered (X-Origin), or None for an edge error."""
    return r.header("X-Origin") if r.status == 200 else None


def try_get(edge, **kw):
    """(status, origin): like get, but a connection problem is status 0."""
    try:
        r = get(edge, **kw)
    except (OSError, mt.Closed, TimeoutError, AssertionError):
        return 0, None
    return r.status, who(r)


def origins_of(edge, n, **kw):
    """n sequential requests -> [origin or None]."""
    out = []
    for _ in range(n):
        st, o = try_get(edge, **kw)
        out.append(o if st == 200 else None)
    return out


# ---------------------------------------------------------- /status

def status(edge):
    r = mt.request(edge.admin, "GET", "/status?format=json", host="admin")
    assert r.status == 200, r
    return json.loads(r.body)


def status_text(edge):
    r = mt.request(edge.admin, "GET", "/status", host="admin")
    assert r.status == 200, r
    return r.text


def pool_of(st, pid):
    for p in st["pools"]:
        if p["id"] == pid:
            return p
    raise AssertionError("pool %s not in /status: %r" % (pid, st))


def origin_of(st, pid, name):
    for o in pool_of(st, pid)["origins"]:
        if o["name"] == name:
            return o
    raise AssertionError("origin %s/%s not in /status" % (pid, name))


def wait_health(edge, want, timeout=None, what=None):
    """Poll /status until every (pool, origin) -> health in want holds
    (origin None: the pool's own health). Returns the status seen."""
    def ok():
        edge.check_alive()
        st = status(edge)
        for (pid, name), h in want.items():
            got = (pool_of(st, pid)["health"] if name is None
                   else origin_of(st, pid, name)["health"])
            if got != h:
                return None
        return st
    return mt.wait_for(ok, timeout=timeout or mt.WAIT, interval=0.05,
                       what=what or "health %r" % (want,))


def all_healthy(edge, pools):
    """Wait for the first verdicts: every origin of pools healthy."""
    st = status(edge)
    want = {}
    for p in st["pools"]:
        if p["id"] in pools:
            want[(p["id"], None)] = "healthy"
            for o in p["origins"]:
                want[(p["id"], o["name"])] = "healthy"
    return wait_health(edge, want, what="every origin healthy")


def log_has(proc, pattern):
    return re.search(pattern, proc.stderr_tail(1 << 20))


# ---------------------------------------------------------- fake origins

class FakeOrigin:
    """A threaded TCP server on 127.0.0.1 (ephemeral port) whose handler
    decides what each connection gets; counts connections and requests."""

    name = "fake"

    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = 0
        self.stopping = False
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((mt.LOCAL, 0))
        self.ls.listen(128)
        self.ls.settimeout(0.1)
        self.port = self.ls.getsockname()[1]
        self.threads = []
        self.socks = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        for _ in range(10 ** 9):
            if self.stopping:
                return
            try:
                s, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.socks.append(s)
            t = threading.Thread(target=self._serve, args=(s,), daemon=True)
            t.start()
            self.threads = [x for x in self.threads if x.is_alive()] + [t]

    def _heads(self, s):
        """Yield request heads read from s (bounded, with a deadline)."""
        s.settimeout(mt.WAIT)
        buf = b""
        for _ in range(10000):
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                head, buf = buf[:i + 4], buf[i + 4:]
                with self.lock:
                    self.requests += 1
                yield head
                continue
            try:
                d = s.recv(65536)
            except OSError:
                return
            if not d or self.stopping:
                return
            buf += d

    def _serve(self, s):
        try:
            self.handle(s)
        except OSError:
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    def count(self):
        with self.lock:
            return self.requests

    def close(self):
        self.stopping = True
        try:
            self.ls.close()
        except OSError:
            pass
        self.thread.join(timeout=mt.WAIT)
        with self.lock:
            socks = list(self.socks)
        for s in socks:  # wake handlers blocked in recv
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(timeout=mt.WAIT)


class Answer500(FakeOrigin):
    """Answers every request 500 (keep-alive)."""

    def handle(self, s):
        for _ in self._heads(s):
            body = b"fake failure\n"
            s.sendall(b"HTTP/1.1 500 Internal Server Error\r\n"
                      b"X-Origin: " + self.name.encode() + b"\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)


class FailButHealthz(FakeOrigin):
    """/healthz answers 200 (checks pass); everything else 500. Counts the
    requests other than /healthz in .live."""

    live = 0

    def handle(self, s):
        for head in self._heads(s):
            if head.startswith(b"GET /healthz "):
                status, body = b"200 OK", b"ok\n"
            else:
                with self.lock:
                    self.live += 1
                status, body = b"500 Internal Server Error", b"no\n"
            s.sendall(b"HTTP/1.1 " + status + b"\r\n"
                      b"X-Origin: " + self.name.encode() + b"\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def live_count(self):
        with self.lock:
            return self.live


class Resetter(FakeOrigin):
    """Reads a request head, then resets the connection (RST, no byte)."""

    def handle(self, s):
        for _ in self._heads(s):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            return


# ================================================================ tests

def _traffic_until(edge, done, deadline, after=30, **kw):
    """Requests until done() has held for `after` more requests (checked
    every 100 ms), or the deadline. Returns [(t, status, origin)]."""
    seen = []
    t_check = 0.0
    done_at = None
    for _ in range(100000):
        now = time.monotonic()
        if now > deadline:
            break
        st, o = try_get(edge, **kw)
        seen.append((time.monotonic(), st, o))
        if done_at is None and time.monotonic() - t_check > 0.1:
            t_check = time.monotonic()
            if done():
                done_at = len(seen)
        if done_at is not None and len(seen) - done_at >= after:
            break
    return seen, done_at


def test_kill_origin_traffic_leaves_and_returns(lab):
    """Active health only (no passive health, no retries): after SIGKILL
    the origin's requests fail until consecutive_down checks have failed,
    then none go there; /status says why; restarted on its port it gets
    traffic again after consecutive_up checks."""
    a1, a2 = lab.origin("a1", "gcp"), lab.origin("a2", "gcp")
    interval, down, up = 1.0, 2, 2
    e = lab.edge(
        monitors=[monitor(consecutive_down=down, consecutive_up=up)],
        pools=[{"id": "p1", "monitor": "m", "origins": [org(a1), org(a2)]}],
        lbs=[{"name": HOST, "default_pools": ["p1"]}],
        passive={"failures": 0}, retries={"attempts": 0})
    all_healthy(e, ["p1"])
    before = origins_of(e, 40)
    assert set(before) == {"a1", "a2"}, before

    t_kill = time.monotonic()
    lab.kill(a1)
    bound = interval * down + SLACK

    def a1_down():
        return origin_of(status(e), "p1", "a1")["health"] == "unhealthy"

    seen, done_at = _traffic_until(e, a1_down, t_kill + bound + mt.WAIT)
    assert done_at is not None, "a1 never became unhealthy in /status"
    t_down = seen[done_at - 1][0]
    assert t_down - t_kill <= bound, \
        "unhealthy after %.2fs > %.2fs" % (t_down - t_kill, bound)
    fails = [(t - t_kill, st) for t, st, o in seen if o is None]
    assert all(o == "a2" or o is None for _, _, o in seen), seen
    assert all(t <= bound for t, _ in fails), \
        "requests still failing %.2fs after the kill: %r" % (fails[-1][0],
                                                             fails[-5:])
    # After the verdict: only a2, never an error.
    tail = seen[done_at:]
    assert len(tail) >= 30 and all(o == "a2" for _, _, o in tail), tail

    st = status(e)
    o1 = origin_of(st, "p1", "a1")
    assert o1["reason"].startswith("TCP connection failed"), o1
    assert origin_of(st, "p1", "a2")["health"] == "healthy"
    assert pool_of(st, "p1")["health"] == "degraded", pool_of(st, "p1")
    line = [ln for ln in status_text(e).splitlines()
            if ln.strip().startswith("a1 ")]
    assert line and "unhealthy" in line[0] and \
        "TCP connection failed" in line[0], line
    since_down = o1["since"]

    # Back on the same port: traffic returns after consecutive_up checks.
    t_up = time.monotonic()
    a1b = lab.restart(a1)
    assert a1b.port == a1.port
    back = interval * up + SLACK
    seen = []
    first_a1 = None
    deadline = t_up + back + mt.WAIT
    for _ in range(100000):
        if time.monotonic() > deadline:
            break
        st_, o = try_get(e)
        seen.append((time.monotonic(), st_, o))
        if o == "a1":
            first_a1 = seen[-1][0]
            break
    assert first_a1 is not None, "a1 got no traffic after its restart"
    assert first_a1 - t_up <= back, \
        "a1 back after %.2fs > %.2fs" % (first_a1 - t_up, back)
    assert all(st_ == 200 for _, st_, _ in seen), \
        [x for x in seen if x[1] != 200][:5]
    st = wait_health(e, {("p1", "a1"): "healthy", ("p1", None): "healthy"})
    o1 = origin_of(st, "p1", "a1")
    assert o1["reason"] == "" and o1["since"] > since_down, o1
    assert o1["rtt_ms"] is not None and o1["rtt_ms"] > 0, o1
    mix = origins_of(e, 40)
    assert set(mix) == {"a1", "a2"}, mix


def test_hung_origin_times_out(lab):
    """A hung origin (SIGSTOP: the kernel still accepts connections, nobody
    answers): checks time out, /status says "timeout", traffic leaves it
    within interval + timeout (+ slack); requests caught on it get 504
    after upstream_response; SIGCONT brings it back."""
    a1, a2 = lab.origin("a1", "gcp"), lab.origin("a2", "gcp")
    interval, timeout = 1.0, 0.5
    e = lab.edge(
        monitors=[monitor(timeout="500ms")],
        pools=[{"id": "p1", "monitor": "m", "origins": [org(a1), org(a2)]}],
        lbs=[{"name": HOST, "default_pools": ["p1"]}],
        passive={"failures": 0}, retries={"attempts": 0},
        edge_extra={"timeouts": {"drain": "5s", "upstream_response": "1s"}})
    all_healthy(e, ["p1"])
    t0 = time.monotonic()
    a1.p.send_signal(signal.SIGSTOP)
    try:
        bound = interval + timeout + SLACK

        def a1_down():
            return origin_of(status(e), "p1", "a1")["health"] == "unhealthy"

        seen, done_at = _traffic_until(e, a1_down, t0 + bound + mt.WAIT,
                                       after=20)
        assert done_at is not None, "a1 never became unhealthy"
        assert seen[done_at - 1][0] - t0 <= bound + 1.0, \
            seen[done_at - 1][0] - t0  # + one request caught on a1
        assert {st for _, st, _ in seen} <= {200, 504}, seen
        assert all(o == "a2" for _, _, o in seen[done_at:]), seen[done_at:]
        o1 = origin_of(status(e), "p1", "a1")
        assert o1["reason"].startswith("timeout"), o1
    finally:
        a1.p.send_signal(signal.SIGCONT)
    wait_health(e, {("p1", "a1"): "healthy"}, timeout=interval + SLACK +
                mt.WAIT)
    assert set(origins_of(e, 40)) == {"a1", "a2"}


def test_monitor_verdicts_and_reasons(lab):
    """Monitor fields end to end: expected_codes (a 503 fails "200", a 204
    passes "2xx"), expected_body (case-insensitive), tcp checks; /status
    gives each failure's reason and a pool with no monitor counts healthy."""
    o = {n: lab.origin(n, "x") for n in ("code", "ok2xx", "body", "bodyok",
                                          "tcp", "nomon")}
    e = lab.edge(
        monitors=[monitor("m-503", path="/status/503"),
                  monitor("m-2xx", path="/status/204", expected_codes="2xx"),
                  monitor("m-body", expected_body="NOT-THERE"),
                  monitor("m-bodyok", expected_body="OK"),
                  {"id": "m-tcp", "type": "tcp", "interval": "1s",
                   "timeout": "1s", "retries": 0}],
        pools=[{"id": "pcode", "monitor": "m-503", "origins": [org(o["code"])]},
               {"id": "p2xx", "monitor": "m-2xx", "origins": [org(o["ok2xx"])]},
               {"id": "pbody", "monitor": "m-body", "origins": [org(o["body"])]},
               {"id": "pbodyok", "monitor": "m-bodyok",
                "origins": [org(o["bodyok"])]},
               {"id": "ptcp", "monitor": "m-tcp", "origins": [org(o["tcp"])]},
               {"id": "pnomon", "origins": [org(o["nomon"])]}],
        lbs=[{"name": HOST, "default_pools": ["pcode", "pbody", "p2xx"]}])
    st = wait_health(e, {("pcode", "code"): "unhealthy",
                         ("pbody", "body"): "unhealthy",
                         ("p2xx", "ok2xx"): "healthy",
                         ("pbodyok", "bodyok"): "healthy",
                         ("ptcp", "tcp"): "healthy"})
    assert origin_of(st, "pcode", "code")["reason"].startswith(
        "response code mismatch"), origin_of(st, "pcode", "code")
    assert origin_of(st, "pbody", "body")["reason"].startswith(
        "body mismatch"), origin_of(st, "pbody", "body")
    assert pool_of(st, "pcode")["health"] == "critical"
    assert pool_of(st, "pnomon")["health"] == "healthy", pool_of(st, "pnomon")
    # Failover order skips the two critical pools.
    assert origins_of(e, 10) == ["ok2xx"] * 10


def _until_all_from(edge, names, deadline, run=10):
    """Requests until `run` in a row come from origins in names. Returns
    the time the run started, or None at the deadline."""
    start = None
    streak = 0
    for _ in range(100000):
        if time.monotonic() > deadline:
            return None
        st, o = try_get(edge)
        if o in names:
            if streak == 0:
                start = time.monotonic()
            streak += 1
            if streak >= run:
                return start
        else:
            streak = 0
    return None


def test_kill_pool_moves_to_next_pool_then_fallback(lab):
    """default_pools [p1, p2], fallback_pool p3, steering off: killing all
    of p1 moves traffic to p2, killing p2 too moves it to the fallback;
    /status shows the dead pools critical; p2 back takes traffic back."""
    a1, a2 = lab.origin("a1", "gcp"), lab.origin("a2", "gcp")
    b1, c1 = lab.origin("b1", "aws"), lab.origin("c1", "azure")
    interval = 1.0
    e = lab.edge(
        monitors=[monitor()],
        pools=[{"id": "p1", "monitor": "m", "origins": [org(a1), org(a2)]},
               {"id": "p2", "monitor": "m", "origins": [org(b1)]},
               {"id": "p3", "monitor": "m", "origins": [org(c1)]}],
        lbs=[{"name": HOST, "default_pools": ["p1", "p2"],
              "fallback_pool": "p3", "steering_policy": "off"}])
    all_healthy(e, ["p1", "p2", "p3"])
    first = origins_of(e, 30)
    assert set(first) <= {"a1", "a2"} and None not in first, first
    bound = interval + SLACK

    t0 = time.monotonic()
    lab.kill(a1)
    lab.kill(a2)
    t = _until_all_from(e, {"b1"}, t0 + bound + mt.WAIT)
    assert t is not None, "traffic never moved to p2"
    assert t - t0 <= bound, "p2 took over after %.2fs" % (t - t0)
    st = wait_health(e, {("p1", None): "critical"})
    assert pool_of(st, "p1")["healthy_origins"] == 0
    assert pool_of(st, "p2")["health"] == "healthy"
    for n in ("a1", "a2"):
        assert origin_of(st, "p1", n)["reason"].startswith(
            "TCP connection failed"), origin_of(st, "p1", n)
    assert set(origins_of(e, 20)) == {"b1"}

    t0 = time.monotonic()
    lab.kill(b1)
    t = _until_all_from(e, {"c1"}, t0 + bound + mt.WAIT)
    assert t is not None, "traffic never moved to the fallback pool"
    assert t - t0 <= bound, "fallback took over after %.2fs" % (t - t0)
    st = wait_health(e, {("p2", None): "critical", ("p1", None): "critical"})
    assert pool_of(st, "p3")["health"] == "healthy"
    assert "critical" in [ln for ln in status_text(e).splitlines()
                          if ln.startswith("p2 ")][0]
    assert set(origins_of(e, 20)) == {"c1"}

    # p2 comes back: failover order puts traffic on it again.
    t0 = time.monotonic()
    lab.restart(b1)
    t = _until_all_from(e, {"b1"}, t0 + bound + mt.WAIT)
    assert t is not None and t - t0 <= bound, \
        "p2 did not take traffic back within %.2fs" % bound


def test_fallback_pool_answers_whatever_its_health(lab):
    """Regression (r5_fallback_health): every default pool down and the
    fallback's only origin up but failing its monitor. The fallback is
    chosen whatever its health, and so are its origins: the request
    reaches fb1 (it used to be "503 no origin available"). An origin
    disabled in the fallback still gets nothing."""
    fb1, fb2 = lab.origin("fb1", "aws"), lab.origin("fb2", "aws")
    dead = mt.free_port()  # nothing listens there
    e = lab.edge(
        monitors=[monitor(),
                  monitor("bad", path="/status/503")],
        pools=[{"id": "p1", "monitor": "m",
                "origins": [{"name": "a1", "address": mt.LOCAL,
                             "port": dead}]},
               {"id": "fb", "monitor": "bad",
                "origins": [org(fb1), org(fb2, enabled=False)]}],
        lbs=[{"name": HOST, "default_pools": ["p1"],
              "fallback_pool": "fb"}])
    wait_health(e, {("p1", "a1"): "unhealthy", ("fb", "fb1"): "unhealthy"})
    got = origins_of(e, 10)
    assert got == ["fb1"] * 10, got


def test_passive_health_ejects_5xx_origin(lab):
    """No monitor: an origin answering 500 is ejected after
    passive_health.failures consecutive 5xx and then gets nothing."""
    good = lab.origin("good", "gcp")
    bad = lab.fake(Answer500, "bad")
    e = lab.edge(
        pools=[{"id": "p1", "origins": [org(good), org(bad)]}],
        lbs=[{"name": HOST, "default_pools": ["p1"]}],
        passive={"failures": 3, "ejection": "30s"})
    statuses = []
    deadline = time.monotonic() + mt.WAIT
    for _ in range(300):
        if bad.count() >= 3 or time.monotonic() > deadline:
            break
        r = get(e)
        statuses.append(r.status)
    assert bad.count() == 3, (bad.count(), statuses)
    assert statuses.count(500) == 3, statuses
    assert set(statuses) <= {200, 500}, statuses
    mt.wait_for(lambda: log_has(e, r"origin bad \(127\.0\.0\.1\): ejected "
                                   r"for 30000 ms after 3 failures"),
                what="the ejection in the edge's log")
    later = origins_of(e, 100)
    assert later == ["good"] * 100, later
    assert bad.count() == 3


def test_passive_ejection_ends_when_a_check_passes(lab):
    """An origin whose checks pass but whose live answers are 500 is
    ejected after 3 of them (ejection 30 s), and the next passing check
    (interval 1 s) ends the ejection: it gets live traffic again long
    before 30 s."""
    good = lab.origin("good", "gcp")
    bad = lab.fake(FailButHealthz, "bad")
    interval = 1.0
    e = lab.edge(
        monitors=[monitor()],
        pools=[{"id": "p1", "monitor": "m", "origins": [org(good), org(bad)]}],
        lbs=[{"name": HOST, "default_pools": ["p1"]}],
        passive={"failures": 3, "ejection": "30s"})
    all_healthy(e, ["p1"])
    pat = r"origin bad \(127\.0\.0\.1\): ejected for 30000 ms"
    deadline = time.monotonic() + mt.WAIT
    for _ in range(2000):
        if log_has(e, pat) or time.monotonic() > deadline:
            break
        try_get(e)
    t_ej = time.monotonic()
    mt.wait_for(lambda: log_has(e, pat), what="bad to be ejected (log)")
    n = bad.live_count()
    assert n >= 3, n
    back = None
    for _ in range(100000):
        if time.monotonic() > t_ej + interval + SLACK + mt.WAIT:
            break
        try_get(e)
        if bad.live_count() > n:
            back = time.monotonic()
            break
    assert back is not None, "the ejection did not end"
    assert back - t_ej <= interval + SLACK, back - t_ej


def test_passive_health_ejects_refusing_origin(lab):
    """A long monitor interval: an origin killed between checks is ejected
    by passive health after 3 refused connections (requests never fail:
    they are retried), gets no traffic while ejected even once it listens
    again, and gets traffic back when the ejection ends."""
    a1, a2 = lab.origin("a1", "gcp"), lab.origin("a2", "gcp")
    ejection = 4.0
    e = lab.edge(
        monitors=[monitor(interval="60s")],
        pools=[{"id": "p1", "monitor": "m", "origins": [org(a1), org(a2)]}],
        lbs=[{"name": HOST, "default_pools": ["p1"]}],
        passive={"failures": 3, "ejection": "%gs" % ejection},
        retries={"attempts": 2, "budget_percent": 100})
    all_healthy(e, ["p1"])
    assert set(origins_of(e, 30)) == {"a1", "a2"}
    lab.kill(a2)
    pat = r"origin a2 \(127\.0\.0\.1\): ejected for 4000 ms after 3 failures"
    res = []
    deadline = time.monotonic() + mt.WAIT
    for _ in range(500):
        if log_has(e, pat) or time.monotonic() > deadline:
            break
        res.append(try_get(e))
    t_seen = time.monotonic()
    mt.wait_for(lambda: log_has(e, pat),
                what="the ejection after %d requests (log)" % len(res))
    assert all(r == (200, "a1") for r in res), res
    # Listening again while ejected: still no traffic (the monitor is 60s
    # away, so only the ejection timer can end it).
    a2b = lab.restart(a2)
    quiet = []
    for _ in range(2000):
        if time.monotonic() > t_seen + 0.5 * ejection:
            break
        quiet.append(try_get(e))
    assert quiet and all(r == (200, "a1") for r in quiet), quiet
    assert a2b.counters()[0] == 0
    # The ejection ends: a2 takes traffic again.
    got = None
    deadline = t_seen + ejection + SLACK + mt.WAIT
    for _ in range(100000):
        if time.monotonic() > deadline:
            break
        st, o = try_get(e)
        assert st == 200
        if o == "a2":
            got = time.monotonic()
            break
    assert got is not None, "a2 got no traffic after its ejection"
    assert got - t_seen <= ejection + SLACK, got - t_seen


def test_zero_downtime_failover_resets(lab):
    """An origin that resets every connection before answering stays in
    rotation (no monitor, no passive health): every request that lands on
    it is retried on another origin; no request fails."""
    a1, a2 = lab.origin("a1", "gcp"), lab.origin("a2", "gcp")
    rst = lab.fake(Resetter, "rst")
    e = lab.edge(
        pools=[{"id": "p1", "origins": [org(a1), org(a2), org(rst)]}],
        lbs=[{"name": HOST, "default_pools": ["p1"]}],
        passive={"failures": 0},
        retries={"attempts": 2, "budget_percent": 100})
    res = [try_get(e) for _ in range(300)]
    bad = [r for r in res if r[0] != 200]
    assert not bad, "%d of 300 failed: %r" % (len(bad), bad[:5])
    assert {o for _, o in res} == {"a1", "a2"}
    assert rst.count() >= 20, rst.count()  # about a third were retried


def test_zero_downtime_failover_never_sends_a_post_twice(lab):
    """RFC 9112 9.3.1.1: a proxy must not retry a non-idempotent request
    automatically. A POST (even without a body) that reached an origin
    which then reset the connection is answered 502, not sent to another
    origin; GETs meeting the same origin are retried and all succeed."""
    a1 = lab.origin("a1", "gcp")
    rst = lab.fake(Resetter, "rst")
    e = lab.edge(
        pools=[{"id": "p1", "origins": [org(a1), org(rst)]}],
        lbs=[{"name": HOST, "default_pools": ["p1"]}],
        passive={"failures": 0},
        retries={"attempts": 2, "budget_percent": 100})
    statuses = []
    for _ in range(60):
        with SrcConn(e.port, None) as c:
            c.send(mt.req("POST", "/", HOST,
                          [("Content-Length", "0")]))
            statuses.append(c.read_response("POST").status)
    n200, n502 = statuses.count(200), statuses.count(502)
    assert n200 + n502 == 60, statuses
    assert n502 >= 5, statuses  # about half land on rst
    # Each POST reached exactly one origin.
    mt.wait_for(lambda: rst.count() == n502,
                what="one head at rst per 502 (got %d, 502s %d)" %
                (rst.count(), n502))
    assert a1.counters()[0] == n200, (a1.counters(), n200)
    before = rst.count()
    res = [try_get(e) for _ in range(60)]
    assert res == [(200, "a1")] * 60, res
    assert rst.count() > before  # GETs met it, and went again
    e.check_alive()


def test_zero_downtime_failover_default_retries(lab):
    """With the default edge.retries (attempts 2, budget_percent 20), the
    first requests of a fresh edge that meet a resetting origin are retried
    too (on the next pool, failover_across_pools): a budget caps the share
    of retries, it must not refuse the first ones."""
    good = lab.origin("good", "aws")
    rst = lab.fake(Resetter, "rst")
    e = lab.edge(
        pools=[{"id": "p1", "origins": [org(rst)]},
               {"id": "p2", "origins": [org(good)]}],
        lbs=[{"name": HOST, "steering_policy": "off",
              "default_pools": ["p1", "p2"],
              "adaptive_routing": {"failover_across_pools": True}}])
    res = [try_get(e) for _ in range(10)]
    assert rst.count() >= 1
    assert res == [(200, "good")] * 10, res


def test_zero_downtime_failover_killed_between_checks(lab):
    """An origin SIGKILLed between two checks (interval 60 s, passive
    health off): its pooled keep-alive connections die and new ones are
    refused; every request is retried on a live origin; none fails."""
    a1, a2, a3 = (lab.origin("a1", "gcp"), lab.origin("a2", "gcp"),
                  lab.origin("a3", "gcp"))
    e = lab.edge(
        monitors=[monitor(interval="60s")],
        pools=[{"id": "p1", "monitor": "m",
                "origins": [org(a1), org(a2), org(a3)]}],
        lbs=[{"name": HOST, "default_pools": ["p1"]}],
        passive={"failures": 0},
        retries={"attempts": 2, "budget_percent": 100})
    all_healthy(e, ["p1"])
    warm = origins_of(e, 60)  # pooled upstream connections to all three
    assert set(warm) == {"a1", "a2", "a3"}, warm
    lab.kill(a3)
    res = [try_get(e) for _ in range(300)]
    bad = [r for r in res if r[0] != 200]
    assert not bad, "%d of 300 failed: %r" % (len(bad), bad[:5])
    assert {o for _, o in res} == {"a1", "a2"}
    assert origin_of(status(e), "p1", "a3")["health"] == "healthy"


def test_failover_across_pools(lab):
    """adaptive_routing.failover_across_pools: the only origin of the first
    pool dies between checks; its requests are retried on the next pool
    and none fails. Without it they fail (502) until health notices."""
    a1, b1 = lab.origin("a1", "gcp"), lab.origin("b1", "aws")
    pools = [{"id": "p1", "monitor": "m", "origins": [org(a1)]},
             {"id": "p2", "monitor": "m", "origins": [org(b1)]}]
    e = lab.edge(
        monitors=[monitor(interval="60s")], pools=pools,
        lbs=[{"name": HOST, "default_pools": ["p1", "p2"],
              "adaptive_routing": {"failover_across_pools": True}},
             {"name": "plain.example.com", "default_pools": ["p1", "p2"]}],
        passive={"failures": 0},
        retries={"attempts": 2, "budget_percent": 100})
    all_healthy(e, ["p1", "p2"])
    assert origins_of(e, 10) == ["a1"] * 10
    lab.kill(a1)
    res = [try_get(e) for _ in range(100)]
    assert res == [(200, "b1")] * 100, [r for r in res if r != (200, "b1")]
    plain = [try_get(e, host="plain.example.com") for _ in range(5)]
    assert [s for s, _ in plain] == [502] * 5, plain


# ------------------------------------------- kept connections, io_uring

class KeepOK(FakeOrigin):
    """Answers every request 200 with keep-alive; with close_after, closes
    a connection after that many answers (while the checker has it
    parked)."""

    close_after = 0

    def handle(self, s):
        n = 0
        for _ in self._heads(s):
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            n += 1
            if self.close_after and n >= self.close_after:
                return


def metric_value(edge, name):
    from obs_helpers import scrape
    v = scrape(edge).get(name)
    assert v is not None, "%s not in /metrics" % name
    return int(v)


@pytest.mark.parametrize("io_uring", [True, False], ids=["io_uring", "epoll"])
def test_checks_keep_their_connections(lab, io_uring):
    """http checks keep one connection per origin between checks, served
    through io_uring by default and through epoll alone with
    edge.io_uring: false; the log and /metrics say which. An origin that
    closes its kept connection gets a fresh one at the next check with no
    failed verdict; a killed origin is still seen as down, and back."""
    steady = lab.fake(KeepOK, "steady")
    closer = lab.fake(KeepOK, "closer")
    closer.close_after = 2
    e = lab.edge(
        monitors=[monitor(interval="1s", consecutive_down=1)],
        pools=[{"id": "p1", "monitor": "m",
                "origins": [org(steady), org(closer)]}],
        lbs=[{"name": HOST, "default_pools": ["p1"]}],
        edge_extra={"io_uring": io_uring})
    all_healthy(e, ["p1"])
    want = "kept-alive checks use io_uring" if io_uring else None
    if want:
        assert mt.wait_for(lambda: log_has(e, want), what="log: " + want)
    else:
        assert not log_has(e, "use io_uring")
    assert metric_value(e, "meridian_health_io_uring") == int(io_uring)

    # Three more checks of each origin: "steady" on its one connection,
    # "closer" on a new connection every two checks, never a failure.
    base = steady.count()
    mt.wait_for(lambda: steady.count() >= base + 3, timeout=3 * 1.0 + SLACK,
                what="three more checks of steady")
    assert steady.connections == 1, steady.connections
    assert closer.connections >= 2, closer.connections
    assert closer.count() <= 2 * closer.connections, \
        (closer.count(), closer.connections)
    st = status(e)
    assert origin_of(st, "p1", "closer")["health"] == "healthy", st
    assert origin_of(st, "p1", "steady")["health"] == "healthy", st
    assert metric_value(e, "meridian_health_kept_connections") >= 1

    # Stopping "steady" closes its kept connection and refuses new ones:
    # unhealthy after one failed check, with the connect failure as the
    # reason.
    steady.close()
    st = wait_health(e, {("p1", "steady"): "unhealthy"},
                     timeout=1.0 * 1 + SLACK)
    assert origin_of(st, "p1", "steady")["reason"].startswith(
        "TCP connection failed"), origin_of(st, "p1", "steady")
    assert origin_of(st, "p1", "closer")["health"] == "healthy", st


def test_io_uring_refused_by_seccomp_falls_back_to_epoll(lab):
    """Where a seccomp filter refuses io_uring (Docker's default profile
    does), the edge starts anyway: the log says checks use epoll alone and
    why, /metrics says 0, and kept-alive checks and traffic work."""
    a1 = lab.fake(KeepOK, "a1")
    wrapper = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "no_io_uring.py")
    e = lab.edge(
        monitors=[monitor(interval="1s")],
        pools=[{"id": "p1", "monitor": "m", "origins": [org(a1)]}],
        lbs=[{"name": HOST, "default_pools": ["p1"]}],
        wrap=["/usr/bin/python3", wrapper])
    all_healthy(e, ["p1"])
    want = "io_uring unavailable (Operation not permitted): checks use " \
        "epoll alone"
    assert mt.wait_for(lambda: log_has(e, re.escape(want)),
                       what="log: " + want)
    assert not log_has(e, "use io_uring")
    assert metric_value(e, "meridian_health_io_uring") == 0
    base = a1.count()
    mt.wait_for(lambda: a1.count() >= base + 2, timeout=2 * 1.0 + SLACK,
                what="two more checks")
    assert a1.connections == 1, a1.connections
    assert metric_value(e, "meridian_health_kept_connections") == 1
    r = get(e)
    assert r.status == 200, r


def test_health_restarts_after_a_failed_swap(lab):
    """When a config change cannot start the new health checker (here a
    test failpoint: the second and third starts fail), the verdicts are
    frozen and meridian_health_checker_up is 0, until the edge's own retry
    (every 2 s) starts it: then checks run again, on the new config."""
    a1, a2 = lab.origin("a1", "gcp"), lab.origin("a2", "gcp")
    e = lab.edge(
        monitors=[monitor(consecutive_down=1)],
        pools=[{"id": "p1", "monitor": "m", "origins": [org(a1), org(a2)]}],
        lbs=[{"name": HOST, "default_pools": ["p1"]}],
        wrap=["env", "MERIDIAN_FAILPOINTS=health_start=1:2"])
    all_healthy(e, ["p1"])
    assert metric_value(e, "meridian_health_checker_up") == 1
    # A change: the monitor's path. The new checker fails to start.
    with open(e.config_path) as f:
        text = f.read()
    assert "/healthz" in text
    with open(e.config_path, "w") as f:
        f.write(text.replace("/healthz", "/"))
    e.p.send_signal(signal.SIGHUP)
    mt.wait_for(lambda: log_has(e, "health checks could not restart"),
                what="the failed restart in the log")
    assert metric_value(e, "meridian_health_checker_up") == 0
    # The retries: one more failure, then a checker (within 2 x 2 s).
    mt.wait_for(lambda: metric_value(e, "meridian_health_checker_up") == 1,
                timeout=2 * 2.0 + SLACK + mt.WAIT,
                what="the health checker to restart")
    mt.wait_for(lambda: log_has(e, "health checks restarted"),
                what="the restart in the log")
    # It checks again, with the new monitor: a killed origin goes down,
    # the other comes up. (The monitor changed, so no verdict was carried
    # over: both started unknown, each until its first check.)
    lab.kill(a1)
    wait_health(e, {("p1", "a1"): "unhealthy", ("p1", "a2"): "healthy"},
                timeout=1.0 + SLACK)
