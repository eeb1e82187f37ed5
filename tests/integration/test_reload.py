"""Live config changes through SIGHUP (issue 5): a good file is swapped in
without a restart, a bad one is refused with the running config kept,
changes that need a restart are refused by name, health verdicts of
unchanged origins survive the swap, and no request fails while the config
changes under a bounded load."""
import errno
import os
import re
import signal
import threading
import time

import meridian_test as mt
from test_health import HOST, get, lab, log_has, monitor, org, origin_of  # noqa: F401
from test_health import status, try_get, wait_health


def rewrite(edge, mutate):
    """Apply mutate(cfg dict) to the edge's config and write it back."""
    cfg = edge.cfg
    mutate(cfg)
    with open(edge.config_path, "w") as f:
        f.write(mt.to_yaml(cfg) + "\n")


def hup_and_wait(edge, pattern, count_before):
    """SIGHUP the edge and wait for the count_before+1'th log line matching
    pattern (reload lines are cumulative in the log)."""
    os.kill(edge.pid, signal.SIGHUP)

    def seen():
        edge.check_alive()
        n = len(re.findall(pattern, edge.stderr_tail(1 << 22)))
        return n > count_before
    mt.wait_for(seen, what="log line %r" % pattern)


def count(edge, pattern):
    return len(re.findall(pattern, edge.stderr_tail(1 << 22)))


def edge_with_cfg(lab, pools, lbs, monitors=(), notifications=None):
    ed = lab.edge(pools, lbs, monitors=monitors, notifications=notifications)
    e = {"name": mt.EDGE_NAME, "workers": 2,
         "listen": {"http": ["%s:%d" % (mt.LOCAL, ed.port)],
                    "admin": "%s:%d" % (mt.LOCAL, ed.admin)},
         "timeouts": {"drain": "5s"},
         # The store lab.edge gave it (a reload may not move it).
         "store": os.path.join(str(lab.stack.logdir),
                               "store-%d.db" % (len(lab.stack.edges) - 1))}
    ed.cfg = {"edge": e}
    if monitors:
        ed.cfg["monitors"] = list(monitors)
    ed.cfg["pools"] = list(pools)
    ed.cfg["load_balancers"] = list(lbs)
    if notifications:
        ed.cfg["notifications"] = notifications
    # Same text as lab.edge wrote: the first reload changes only what the
    # test changes.
    with open(ed.config_path, "w") as f:
        f.write(mt.to_yaml(ed.cfg) + "\n")
    return ed


def reloads(edge):
    """(ok, failed, last successful) from /metrics."""
    from obs_helpers import Metrics
    m = Metrics(mt.request(edge.admin, "GET", "/metrics",
                           host="admin").text)
    return (int(m.get("meridian_config_reloads_total", result="ok")),
            int(m.get("meridian_config_reloads_total", result="failed")),
            int(m.get("meridian_config_last_reload_successful")))


def wait_reloads(edge, want):
    mt.wait_for(lambda: reloads(edge) == want,
                what="reload metrics %r (now %r)" % (want, reloads(edge)))


RELOADED = r"SIGHUP: reloaded"
KEPT = r"the running config stays"


def test_sighup_adds_a_pool_and_a_load_balancer(lab):
    a, b = lab.origin("a1"), lab.origin("b1")
    ed = edge_with_cfg(lab, [{"id": "pa", "origins": [org(a)]}],
                       [{"name": HOST, "default_pools": ["pa"]}])
    assert get(ed).header("X-Origin") == "a1"
    assert get(ed, host="b.example.com").status == 404

    def add(cfg):
        cfg["pools"].append({"id": "pb", "origins": [org(b)]})
        cfg["load_balancers"].append({"name": "b.example.com",
                                      "default_pools": ["pb"]})
    rewrite(ed, add)
    hup_and_wait(ed, RELOADED, count(ed, RELOADED))
    assert log_has(ed, r"SIGHUP: reloaded .*2 pools.*generation 2")
    r = get(ed, host="b.example.com")
    assert r.status == 200 and r.header("X-Origin") == "b1", r
    assert get(ed).header("X-Origin") == "a1"
    # /status shows the new pool.
    assert [p["id"] for p in status(ed)["pools"]] == ["pa", "pb"]


def test_sighup_bad_file_keeps_the_running_config(lab):
    a = lab.origin("a1")
    ed = edge_with_cfg(lab, [{"id": "pa", "origins": [org(a)]}],
                       [{"name": HOST, "default_pools": ["pa"]}])
    good = open(ed.config_path).read()
    assert reloads(ed) == (0, 0, 1)
    with open(ed.config_path, "w") as f:
        f.write(good.replace("default_pools:", "default_pool:"))
    hup_and_wait(ed, KEPT, count(ed, KEPT))
    wait_reloads(ed, (0, 1, 0))
    # The error names the file, line and column, and the running config
    # still routes.
    assert log_has(ed, re.escape(ed.config_path)
                   + r":\d+:\d+: unknown key 'default_pool'")
    assert get(ed).header("X-Origin") == "a1"
    # A broken YAML document too.
    with open(ed.config_path, "w") as f:
        f.write("pools: [\n")
    hup_and_wait(ed, KEPT, count(ed, KEPT))
    assert get(ed).header("X-Origin") == "a1"
    # Fixed again: it applies.
    with open(ed.config_path, "w") as f:
        f.write(good.replace("lb.example.com", "lb2.example.com"))
    hup_and_wait(ed, RELOADED, count(ed, RELOADED))
    assert get(ed, host="lb2.example.com").header("X-Origin") == "a1"
    assert get(ed).status == 404
    wait_reloads(ed, (1, 2, 1))


def test_sighup_refuses_what_needs_a_restart(lab):
    a = lab.origin("a1")
    ed = edge_with_cfg(lab, [{"id": "pa", "origins": [org(a)]}],
                       [{"name": HOST, "default_pools": ["pa"]}])
    other = mt.free_port()

    def move(cfg):
        cfg["edge"]["listen"]["http"] = ["%s:%d" % (mt.LOCAL, other)]
        cfg["load_balancers"][0]["name"] = "lb2.example.com"
    rewrite(ed, move)
    hup_and_wait(ed, KEPT, count(ed, KEPT))
    assert log_has(ed, r"edge.listen.http changed: restart meridian")
    wait_reloads(ed, (0, 1, 0))
    # Nothing of the file applied: same listener, same routes.
    assert get(ed).header("X-Origin") == "a1"
    assert get(ed, host="lb2.example.com").status == 404


def test_health_of_unchanged_origins_survives_a_reload(lab):
    up = lab.origin("up")
    down = lab.origin("down")
    lab.kill(down)  # its port now refuses connections
    ed = edge_with_cfg(
        lab, [{"id": "p", "monitor": "m",
               "origins": [org(up), org(down)]}],
        [{"name": HOST, "default_pools": ["p"]}],
        monitors=[monitor(interval="60s")])
    # 60 s interval: after the first verdicts no check runs during the
    # test, so what /status shows after the reload was carried over.
    wait_health(ed, {("p", "up"): "healthy", ("p", "down"): "unhealthy"})
    before = origin_of(status(ed), "p", "up")

    def add(cfg):
        cfg["load_balancers"].append({"name": "other.example.com",
                                      "default_pools": ["p"]})
    rewrite(ed, add)
    hup_and_wait(ed, RELOADED, count(ed, RELOADED))
    st = status(ed)
    assert origin_of(st, "p", "up")["health"] == "healthy"
    assert origin_of(st, "p", "down")["health"] == "unhealthy"
    assert origin_of(st, "p", "down")["reason"], st
    assert origin_of(st, "p", "up")["since"] == before["since"]
    # And traffic still avoids the dead origin on the first requests.
    for _ in range(10):
        assert get(ed, host="other.example.com").header("X-Origin") == "up"
    # No health change was reported by the swap itself.
    assert not log_has(ed, r"origin up of pool p: healthy -> unknown")


def test_no_failed_request_while_pools_change_under_load(lab):
    o = [lab.origin("o%d" % i) for i in range(3)]
    pools = [{"id": "p0", "origins": [org(o[0]), org(o[1])]}]
    ed = edge_with_cfg(lab, pools,
                       [{"name": HOST, "default_pools": ["p0"]}])
    stop = threading.Event()
    results = {"ok": 0, "bad": []}
    lock = threading.Lock()

    def load(keepalive):
        deadline = time.monotonic() + 60
        conn = None
        for _ in range(20000):  # bounded in count and in time
            if stop.is_set() or time.monotonic() > deadline:
                break
            try:
                if conn is None or not keepalive:
                    if conn:
                        conn.close()
                    conn = mt.HttpConn(ed.port)
                conn.send(mt.req("GET", "/", HOST))
                r = conn.read_response("GET")
                ok = r.status == 200
            except (OSError, mt.Closed, AssertionError) as ex:
                r, ok = ex, False
                conn = None
            with lock:
                if ok:
                    results["ok"] += 1
                else:
                    results["bad"].append(repr(r)[:200])
        if conn:
            conn.close()

    threads = [threading.Thread(target=load, args=(k,))
               for k in (True, True, False)]
    for t in threads:
        t.start()
    try:
        # Change the pools under the load: add one, move the LB to it,
        # change origins, remove the old one. Every step keeps a live
        # origin behind the load balancer.
        steps = [
            lambda c: c["pools"].append(
                {"id": "p1", "origins": [org(o[2])]}),
            lambda c: c["load_balancers"][0].update(
                default_pools=["p1", "p0"]),
            lambda c: c["pools"][0].update(origins=[org(o[1])]),
            lambda c: c["load_balancers"][0].update(default_pools=["p1"]),
            lambda c: c["pools"].pop(0),
            lambda c: c["pools"].append(
                {"id": "p0", "origins": [org(o[0]), org(o[1])]}),
            lambda c: c["load_balancers"][0].update(
                default_pools=["p0", "p1"]),
        ]
        for step in steps:
            base = results["ok"]
            rewrite(ed, step)
            hup_and_wait(ed, RELOADED, count(ed, RELOADED))
            # Let some requests run on each generation.
            mt.wait_for(lambda: results["ok"] >= base + 50,
                        what="requests after a reload")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=mt.WAIT)
    assert not results["bad"], results["bad"][:5]
    assert results["ok"] >= 350
    assert log_has(ed, r"generation 8")


def test_requests_in_flight_across_reloads_are_all_counted(lab):
    """Requests that started on a config generation and end after the
    swap count once each in meridian_requests_total: the replaced
    snapshot's late counts are carried into the current one when its last
    request ends (before, every swap lost the requests in flight)."""
    from obs_helpers import scrape
    o = lab.origin("o0")
    pools = [{"id": "p0", "origins": [org(o)]}]
    ed = edge_with_cfg(lab, pools, [{"name": HOST, "default_pools": ["p0"]}])
    NTHREADS, PER_THREAD = 6, 8
    results = {"ok": 0, "bad": []}
    lock = threading.Lock()
    in_flight = threading.Semaphore(0)

    def load():
        with mt.HttpConn(ed.port) as c:
            for _ in range(PER_THREAD):  # bounded; each request 250 ms
                try:
                    c.send(mt.req("GET", "/sleep/250", HOST))
                    in_flight.release()
                    r = c.read_response("GET")
                    ok = r.status == 200
                except (OSError, mt.Closed, AssertionError) as ex:
                    r, ok = ex, False
                with lock:
                    if ok:
                        results["ok"] += 1
                    else:
                        results["bad"].append(repr(r)[:200])
                if not ok:
                    return

    def served(m):
        return sum(s.value for f in m.families if f.name ==
                   "meridian_requests" for s in f.samples
                   if s.labels.get("lb") == HOST)

    threads = [threading.Thread(target=load) for _ in range(NTHREADS)]
    for t in threads:
        t.start()
    try:
        # Reload while requests are in flight (each 250 ms): a new pool
        # each time, so every reload is a real swap to a new generation.
        for i in range(4):
            for _ in range(NTHREADS):  # every thread has one in flight
                assert in_flight.acquire(timeout=mt.WAIT)
            rewrite(ed, lambda c, i=i: c["pools"].append(
                {"id": "x%d" % i, "origins": [org(o)]}))
            hup_and_wait(ed, RELOADED, count(ed, RELOADED))
    finally:
        for t in threads:
            t.join(timeout=mt.WAIT)
    assert not results["bad"], results["bad"][:5]
    assert results["ok"] == NTHREADS * PER_THREAD
    assert log_has(ed, r"generation 5")
    # Each request is counted when it ends (microseconds after its answer).
    box = {}

    def all_counted():
        box["n"] = served(scrape(ed))
        return box["n"] >= results["ok"]
    mt.wait_for(all_counted, what="every request counted")
    assert box["n"] == results["ok"]


def test_sighup_while_the_edge_starts_is_a_reload(stack, tmp_path):
    """Regression: the signals were blocked only once edge_run began, so
    a SIGHUP that came while the edge read its config and opened its
    store (a reload right after a start) killed it. The config here is a
    FIFO, so the test knows the edge is reading it: the SIGHUP then stays
    pending and becomes a reload (which reads the FIFO once more) as soon
    as the edge runs."""
    o = stack.origin("o1")
    port = mt.free_port()
    cfg = mt.edge_config({"p": [("o1", o.port)]}, {HOST: ["p"]}, port,
                         store=str(tmp_path / "store.db"))
    fifo = str(tmp_path / "edge.yaml")
    os.mkfifo(fifo)
    e = stack.spawn([mt.BIN, "edge", "-c", fifo], "edge")

    def blocked_on_fifo():
        assert e.alive(), e.describe()
        with open("/proc/%d/wchan" % e.pid) as f:
            return f.read() == "wait_for_partner"

    def feed():
        def opened():  # never blocks: no reader yet is ENXIO
            assert e.alive(), e.describe()
            try:
                return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as x:
                if x.errno == errno.ENXIO:
                    return None
                raise
        fd = mt.wait_for(opened, what="the edge to read its config")
        try:
            os.set_blocking(fd, True)
            data = cfg.encode()  # well under the pipe's buffer
            for _ in range(100):
                if not data:
                    break
                data = data[os.write(fd, data):]
        except BrokenPipeError:
            raise AssertionError("the edge died reading its config: " +
                                 e.describe())
        finally:
            os.close(fd)

    mt.wait_for(blocked_on_fifo, what="the edge to open its config")
    e.p.send_signal(signal.SIGHUP)
    feed()
    mt.wait_for(lambda: log_has(e, r"listening on http://\S*:%d" % port) or
                not e.alive(), what="the edge to start")
    assert e.alive(), e.describe()
    mt.wait_for(blocked_on_fifo, what="the reload to open the config")
    feed()
    mt.wait_for(lambda: log_has(e, r"SIGHUP: reloaded"),
                what="the reload")
    r = mt.request(port)
    assert r.status == 200, r
    e.expect_exit = True
    assert e.terminate(mt.WAIT) == 0, e.describe()
