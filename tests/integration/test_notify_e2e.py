"""End-to-end notifications (issue 3, SPEC §4.5): the real edge, real
health checks (interval 1 s) and real receivers: an SMTP server (Debian's
python3-aiosmtpd, in-process) and an HTTP webhook receiver, both on
127.0.0.1. Killing an origin gives exactly one email and one webhook per
health change (the origin's, and its pool's when the pool's health changes
with it); the recovery the same; a flap shorter than notifications.debounce
gives nothing. Helpers come from test_health.py."""
import email
import email.policy
import http.server
import json
import threading
import time

import pytest

import meridian_test as mt
from test_health import lab  # noqa: F401  (the fixture)
from test_health import (HOST, SLACK, all_healthy, monitor, org, origin_of,
                         status, wait_health)
from test_reload import RELOADED, count, edge_with_cfg, hup_and_wait, rewrite

try:
    from aiosmtpd.controller import Controller
except ImportError:  # scripts/deps.sh test installs python3-aiosmtpd
    Controller = None

SLOW_FACTOR = 2.0 if mt.ASAN else 1.0
DEBOUNCE = 3.0  # > one check interval with room: a one-check flap is < it


class SmtpSink:
    def __init__(self):
        self.lock = threading.Lock()
        self.messages = []  # (mail_from, [rcpt], message)

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content,
                                       policy=email.policy.default)
        with self.lock:
            self.messages.append((envelope.mail_from,
                                  list(envelope.rcpt_tos), msg))
        return "250 2.0.0 OK"

    def snapshot(self):
        with self.lock:
            return list(self.messages)


class Hooks:
    def __init__(self):
        self.lock = threading.Lock()
        self.posts = []  # (path, headers, json body)
        hooks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with hooks.lock:
                    hooks.posts.append(
                        (self.path,
                         {k.lower(): v for k, v in self.headers.items()},
                         body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, fmt, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((mt.LOCAL, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return list(self.posts)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=mt.WAIT)


@pytest.fixture
def smtp():
    if Controller is None:
        pytest.fail("aiosmtpd missing: scripts/deps.sh test", pytrace=False)
    sink = SmtpSink()
    ctl = None
    for attempt in range(5):  # the free port may be taken meanwhile
        port = mt.free_port()
        ctl = Controller(sink, hostname=mt.LOCAL, port=port,
                         ready_timeout=mt.WAIT)
        try:
            ctl.start()
            break
        except OSError:
            ctl = None
            if attempt == 4:
                raise
    sink.port = port
    try:
        yield sink
    finally:
        ctl.stop()


@pytest.fixture
def hooks():
    h = Hooks()
    try:
        yield h
    finally:
        h.close()


def events(smtp, hooks):
    """What arrived so far: ([(subject, body)], [json])."""
    mails = [(m["Subject"], m.get_content()) for _, _, m in smtp.snapshot()]
    posts = [json.loads(b) for _, _, b in hooks.snapshot()]
    return mails, posts


def wait_count(smtp, hooks, n, timeout, what):
    return mt.wait_for(
        lambda: (len(smtp.snapshot()) >= n and len(hooks.snapshot()) >= n
                 and events(smtp, hooks)),
        timeout=timeout, interval=0.05, what=what)


def key_of_post(p):
    d = p["data"]
    return (d["event_source"], d["pool_id"], d["origin_name"],
            d["old_health"], d["new_health"])


def alert_of(posts, source):
    """(healthy, alert_event) of the one post from source."""
    ps = [p for p in posts if p["data"]["event_source"] == source]
    assert len(ps) == 1, posts
    return ps[0]["data"]["healthy"], ps[0]["alert_event"]


def test_notifications_on_real_health_changes(lab, smtp, hooks):
    a1, a2 = lab.origin("a1", "gcp"), lab.origin("a2", "gcp")
    e = lab.edge(
        monitors=[monitor(interval="1s")],
        pools=[{"id": "p1", "monitor": "m", "origins": [org(a1), org(a2)]}],
        lbs=[{"name": HOST, "default_pools": ["p1"]}],
        notifications={
            "email": {"smtp_url": "smtp://%s:%d" % (mt.LOCAL, smtp.port),
                      "from": "meridian@example.com",
                      "to": ["ops@example.com", "oncall@example.com"]},
            "webhooks": [{"url": "http://%s:%d/hook" % (mt.LOCAL,
                                                      hooks.port)}],
            "debounce": "%gs" % DEBOUNCE})
    all_healthy(e, ["p1"])
    # The first verdicts (unknown -> healthy) are not news.
    assert events(smtp, hooks) == ([], [])

    # ---- a real failure: the origin and its pool (healthy -> degraded)
    t0 = time.monotonic()
    lab.kill(a1)
    wait_health(e, {("p1", "a1"): "unhealthy", ("p1", None): "degraded"},
                timeout=1 + SLACK + mt.WAIT)
    mails, posts = wait_count(smtp, hooks, 2,
                              1 + DEBOUNCE + SLACK + mt.WAIT,
                              "2 emails and 2 webhooks for the failure")
    # Not before the debounce has passed.
    assert time.monotonic() - t0 >= DEBOUNCE * 0.9
    subjects = sorted(s for s, _ in mails)
    assert subjects == ["[Meridian] origin a1 in pool p1 is unhealthy",
                        "[Meridian] pool p1 is degraded"], subjects
    body = [b for s, b in mails if s.startswith("[Meridian] origin")][0]
    assert "healthy -> unhealthy" in body, body
    assert "TCP connection failed" in body, body
    assert "Edge:    %s" % mt.EDGE_NAME in body, body
    pbody = [b for s, b in mails if s.startswith("[Meridian] pool")][0]
    assert "healthy -> degraded" in pbody, pbody
    assert sorted(map(key_of_post, posts)) == sorted([
        ("origin", "p1", "a1", "healthy", "unhealthy"),
        ("pool", "p1", None, "healthy", "degraded"),
    ]), posts
    assert alert_of(posts, "origin") == (False, "ALERT_STATE_EVENT_START")
    o_post = [p for p in posts if p["data"]["event_source"] == "origin"][0]
    assert o_post["data"]["reason"].startswith("TCP connection failed")
    assert o_post["data"]["edge"] == mt.EDGE_NAME
    for _, rcpts, _ in smtp.snapshot():
        assert sorted(rcpts) == ["oncall@example.com", "ops@example.com"]

    # ---- the recovery: one more of each, for the origin and the pool
    lab.restart(a1)
    wait_health(e, {("p1", "a1"): "healthy", ("p1", None): "healthy"},
                timeout=1 + SLACK + mt.WAIT)
    mails, posts = wait_count(smtp, hooks, 4,
                              1 + DEBOUNCE + SLACK + mt.WAIT,
                              "2 more emails and webhooks for the recovery")
    subjects = sorted(s for s, _ in mails[2:])
    assert subjects == ["[Meridian] origin a1 in pool p1 is healthy",
                        "[Meridian] pool p1 is healthy"], subjects
    assert sorted(map(key_of_post, posts[2:])) == sorted([
        ("origin", "p1", "a1", "unhealthy", "healthy"),
        ("pool", "p1", None, "degraded", "healthy"),
    ]), posts[2:]
    assert alert_of(posts[2:], "origin") == (True, "ALERT_STATE_EVENT_END")
    assert alert_of(posts[2:], "pool") == (True, "ALERT_STATE_EVENT_END")

    # ---- a flap shorter than the debounce: seen by health, not notified
    since = origin_of(status(e), "p1", "a2")["since"]
    lab.kill(a2)
    wait_health(e, {("p1", "a2"): "unhealthy"}, timeout=1 + SLACK + mt.WAIT)
    t_flap = time.monotonic()
    lab.restart(a2)
    st = wait_health(e, {("p1", "a2"): "healthy", ("p1", None): "healthy"},
                     timeout=1 + SLACK + mt.WAIT)
    flap = time.monotonic() - t_flap
    assert origin_of(st, "p1", "a2")["since"] > since  # it did flap
    assert flap < DEBOUNCE, "the flap lasted %.1fs" % flap
    # Quiet for the debounce and some: nothing more arrives.
    quiet_until = t_flap + DEBOUNCE + 1.5 * SLOW_FACTOR
    for _ in range(1000):
        if time.monotonic() > quiet_until:
            break
        assert len(smtp.snapshot()) == 4 and len(hooks.snapshot()) == 4, \
            events(smtp, hooks)
        time.sleep(0.05)
    assert len(smtp.snapshot()) == 4 and len(hooks.snapshot()) == 4, \
        events(smtp, hooks)


# ---------------------------------------------------------- config changes

SHORT_DEBOUNCE = 1.0


def hook_posts(hooks):
    return [json.loads(b) for _, _, b in hooks.snapshot()]


def posts_after(hooks, n, more, what):
    """The posts after the first n, once there are at least `more`."""
    return mt.wait_for(
        lambda: len(hooks.snapshot()) >= n + more and hook_posts(hooks)[n:],
        timeout=1 + SHORT_DEBOUNCE + SLACK + mt.WAIT, interval=0.05,
        what=what)


def hook_edge(lab, hooks, pools, **kw):
    return edge_with_cfg(
        lab, pools, [{"name": HOST, "default_pools": [pools[0]["id"]]}],
        monitors=[monitor(interval="1s")],
        notifications={
            "webhooks": [{"url": "http://%s:%d/hook" % (mt.LOCAL,
                                                      hooks.port)}],
            "debounce": "%gs" % SHORT_DEBOUNCE}, **kw)


def test_origin_fixed_by_a_config_change_is_notified_as_recovered(lab,
                                                                   hooks):
    """Regression (r4_fix_port_notify): an origin on a dead port, fixed by
    a config change, starts unknown again. Every "unknown -> healthy" was
    dropped before the notifier, not only at start-up: the recovery was
    never sent, and the pool's passing "critical -> unknown" went out as
    an alert. The notifier's debounce knows the last notified state, so
    the recovery reads unhealthy -> healthy; pools going unknown are not
    notified."""
    a1 = lab.origin("a1")
    dead = mt.free_port()
    ed = hook_edge(lab, hooks, [{
        "id": "p1", "monitor": "m",
        "origins": [{"name": "a1", "address": mt.LOCAL, "port": dead}]}])
    posts = posts_after(hooks, 0, 2, "the alerts of the dead origin")
    assert sorted(map(key_of_post, posts)) == [
        ("origin", "p1", "a1", "unknown", "unhealthy"),
        ("pool", "p1", None, "unknown", "critical"),
    ], posts
    n = len(hooks.snapshot())

    def fix(cfg):
        cfg["pools"][0]["origins"][0]["port"] = a1.port
    rewrite(ed, fix)
    hup_and_wait(ed, RELOADED, count(ed, RELOADED))
    wait_health(ed, {("p1", "a1"): "healthy", ("p1", None): "healthy"},
                timeout=1 + SLACK + mt.WAIT)
    posts = posts_after(hooks, n, 2, "the recovery of origin and pool")
    assert sorted(map(key_of_post, posts)) == [
        ("origin", "p1", "a1", "unhealthy", "healthy"),
        ("pool", "p1", None, "critical", "healthy"),
    ], posts
    assert all(p["alert_event"] == "ALERT_STATE_EVENT_END" for p in posts)


def test_enabling_and_disabling_is_notified(lab, hooks):
    """SPEC 4.5 (r7_enable_disable_notify): a config change that disables
    or enables an origin or a pool is notified (Cloudflare's pool
    enablement alert), through the same debounce and pool filter."""
    a1, a2 = lab.origin("a1"), lab.origin("a2")
    ed = hook_edge(lab, hooks, [{"id": "p1", "monitor": "m",
                                 "origins": [org(a1), org(a2)]}])
    all_healthy(ed, ["p1"])

    def change(what, pool_on, a2_on, want):
        n = len(hooks.snapshot())

        def edit(cfg):
            cfg["pools"][0]["enabled"] = pool_on
            cfg["pools"][0]["origins"][1]["enabled"] = a2_on
        rewrite(ed, edit)
        hup_and_wait(ed, RELOADED, count(ed, RELOADED))
        posts = posts_after(hooks, n, len(want), what)
        assert sorted(p["text"] for p in posts) == sorted(want), posts
        for p in posts:
            assert p["alert_type"] == "load_balancing_pool_enablement_alert"
            assert p["data"]["enabled"] == ("(was disabled)" in p["text"])
        return posts

    posts = change("a2 disabled", True, False,
                   ["Origin a2 in pool p1 is disabled (was enabled)"])
    assert posts[0]["alert_event"] == "ALERT_STATE_EVENT_START"
    assert posts[0]["data"]["origin_name"] == "a2"
    change("p1 disabled", False, False,
           ["Pool p1 is disabled (was enabled)"])
    posts = change("both enabled", True, True,
                   ["Pool p1 is enabled (was disabled)",
                    "Origin a2 in pool p1 is enabled (was disabled)"])
    assert {p["alert_event"] for p in posts} == {"ALERT_STATE_EVENT_END"}


def test_notification_counters_on_metrics(lab, hooks):
    """Deliveries and events are on /metrics, and stay counted when a
    config change replaces the notifier (new targets): counters only grow.
    A target that refuses is counted as failed once its retries are spent
    (1+2+4+8 s)."""
    from obs_helpers import scrape
    a1, a2 = lab.origin("a1"), lab.origin("a2")
    ed = hook_edge(lab, hooks, [{"id": "p1", "monitor": "m",
                                 "origins": [org(a1), org(a2)]}])
    all_healthy(ed, ["p1"])

    def sent():
        m = scrape(ed)
        return (m.get("meridian_notification_deliveries_total",
                      result="sent"),
                m.get("meridian_notification_deliveries_total",
                      result="failed"),
                m.get("meridian_notification_events_total",
                      outcome="submitted"))

    def disable_a2(off):
        def edit(cfg):
            cfg["pools"][0]["origins"][1]["enabled"] = not off
        rewrite(ed, edit)
        hup_and_wait(ed, RELOADED, count(ed, RELOADED))

    disable_a2(True)
    posts_after(hooks, 0, 1, "the disable notice")
    mt.wait_for(lambda: sent()[0] == len(hooks.snapshot()),
                what="the delivery counted")
    s0, f0, sub0 = sent()
    assert s0 >= 1 and f0 == 0 and sub0 >= 1, (s0, f0, sub0)

    # New targets (a second webhook on a dead port): the notifier is
    # replaced; what the first one counted stays.
    dead = mt.free_port()

    def add_dead(cfg):
        cfg["notifications"]["webhooks"].append(
            {"url": "http://%s:%d/dead" % (mt.LOCAL, dead)})
        cfg["pools"][0]["origins"][1]["enabled"] = True
    rewrite(ed, add_dead)
    hup_and_wait(ed, RELOADED, count(ed, RELOADED))
    s1, f1, sub1 = sent()
    assert s1 >= s0 and sub1 >= sub0, ((s0, sub0), (s1, sub1))
    # The enable notice: sent to the live hook, failed at the dead one.
    posts_after(hooks, 1, 1, "the enable notice")
    mt.wait_for(lambda: sent()[0] >= s0 + 1, what="the second delivery")
    mt.wait_for(lambda: sent()[1] >= 1, timeout=15 + 2 * mt.WAIT,
                what="the dead target's delivery counted as failed")
    m = scrape(ed)
    assert m.get("meridian_notification_retries_total") >= 4
    assert m.get("meridian_notifications_pending") is not None


def test_change_pending_at_a_notifier_change_is_still_notified(lab, hooks):
    """An origin fails; before its debounce window ends, a config change
    gives the notifier new targets (here a second webhook), which replaces
    the notifier. The failure was dropped with the old notifier, and since
    the origin stays down no later event brought it back: the outage was
    never notified. The new notifier takes over what the debounce knows,
    so the failure reaches both webhooks once its window has passed."""
    a1, a2 = lab.origin("a1"), lab.origin("a2")
    window = 6.0 * SLOW_FACTOR  # the reload has to fit inside it
    ed = edge_with_cfg(
        lab, [{"id": "p1", "monitor": "m", "origins": [org(a1), org(a2)],
               "notification_filter": {"pool": {"disable": True}}}],
        [{"name": HOST, "default_pools": ["p1"]}],
        monitors=[monitor(interval="1s")],
        notifications={
            "webhooks": [{"url": "http://%s:%d/one" % (mt.LOCAL,
                                                     hooks.port)}],
            "debounce": "%gs" % window})
    all_healthy(ed, ["p1"])
    lab.kill(a1)
    wait_health(ed, {("p1", "a1"): "unhealthy"}, timeout=1 + SLACK + mt.WAIT)

    def add_hook(cfg):
        cfg["notifications"]["webhooks"].append(
            {"url": "http://%s:%d/two" % (mt.LOCAL, hooks.port)})
    rewrite(ed, add_hook)
    hup_and_wait(ed, RELOADED, count(ed, RELOADED))
    posts = mt.wait_for(
        lambda: len(hooks.snapshot()) >= 1 and hooks.snapshot(),
        timeout=window + SLACK + mt.WAIT, interval=0.05,
        what="the failure notified after the notifier changed")
    # Both targets of the new config, once each.
    mt.wait_for(lambda: len(hooks.snapshot()) >= 2, what="both webhooks")
    posts = hooks.snapshot()
    assert sorted(p for p, _, _ in posts) == ["/one", "/two"], posts
    for _, _, b in posts:
        assert key_of_post(json.loads(b)) == \
            ("origin", "p1", "a1", "healthy", "unhealthy"), b
