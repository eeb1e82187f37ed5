"""End-to-end session affinity (issue 3, SPEC §4.3): the __cflb cookie,
ip_cookie and header affinity, and what zero_downtime_failover (none,
temporary, sticky) does when the session's origin dies, against the real
binary. Helpers come from test_health.py."""
import re
import signal

import meridian_test as mt
from test_health import lab  # noqa: F401  (the fixture)
from test_health import (HOST, SLACK, all_healthy, get, monitor, org,
                         origins_of, try_get, wait_health)

COOKIE_RE = re.compile(r"__cflb=([0-9a-f]{16}); Path=/; Max-Age=(\d+); "
                       r"HttpOnly; SameSite=Lax$")


def set_cookie(r):
    """The __cflb token a response sets, or None."""
    vals = [v for v in r.header_all("Set-Cookie") if v.startswith("__cflb=")]
    assert len(vals) <= 1, r
    if not vals:
        return None
    m = COOKIE_RE.match(vals[0])
    assert m, "unexpected Set-Cookie %r" % vals[0]
    return m.group(1)


def with_cookie(e, tok, n=1, **kw):
    """n requests carrying the cookie -> [(status, origin, set token)]."""
    out = []
    for _ in range(n):
        r = get(e, headers=[("Cookie", "a=1; __cflb=%s; b=2" % tok)], **kw)
        out.append((r.status, r.header("X-Origin"), set_cookie(r)))
    return out


def start(lab, n=3, zdt=None, affinity="cookie", ttl=None, attrs=None):
    os_ = [lab.origin("o%d" % i, "x") for i in range(1, n + 1)]
    a = dict(attrs or {})
    if zdt:
        a["zero_downtime_failover"] = zdt
    lbd = {"name": HOST, "default_pools": ["p"],
           "session_affinity": affinity}
    if a:
        lbd["session_affinity_attributes"] = a
    if ttl:
        lbd["session_affinity_ttl"] = ttl
    e = lab.edge(monitors=[monitor()],
                 pools=[{"id": "p", "monitor": "m",
                         "origins": [org(o) for o in os_]}],
                 lbs=[lbd])
    all_healthy(e, ["p"])
    return e, {o.name: o for o in os_}


def first_session(e, **kw):
    r = get(e, **kw)
    assert r.status == 200, r
    tok = set_cookie(r)
    assert tok, "no affinity cookie on the first response: %r" % r
    return tok, r.header("X-Origin")


def test_cookie_sticks_and_moves_sticky(lab):
    """cookie + zero_downtime_failover sticky: requests with the cookie stay
    on its origin (no new cookie) while another origin dies; when its own
    origin dies the request is retried elsewhere and the cookie rewritten;
    the new cookie sticks; the old one returns to its origin once healthy."""
    e, os_ = start(lab, zdt="sticky", ttl="1h")
    r = get(e)
    assert COOKIE_RE.match(r.header("Set-Cookie")).group(2) == "3600", r
    spread = origins_of(e, 30)
    assert len(set(spread)) >= 2, spread  # without cookie: random
    tok, home = first_session(e)
    assert with_cookie(e, tok, 30) == [(200, home, None)] * 30

    # Another origin dies: the session does not move.
    other = [n for n in os_ if n != home][0]
    lab.kill(os_[other])
    wait_health(e, {("p", other): "unhealthy"}, timeout=1 + SLACK + mt.WAIT)
    assert with_cookie(e, tok, 20) == [(200, home, None)] * 20

    # Its own origin dies (between checks): retried, cookie rewritten.
    lab.kill(os_[home])
    (st, new, tok2), = with_cookie(e, tok)
    assert st == 200 and new not in (home, other), (st, new)
    assert tok2 and tok2 != tok, tok2
    assert with_cookie(e, tok2, 20) == [(200, new, None)] * 20
    # Once health knows: the old cookie is repicked and rewritten (to
    # the only live origin).
    wait_health(e, {("p", home): "unhealthy"}, timeout=1 + SLACK + mt.WAIT)
    assert with_cookie(e, tok, 5) == [(200, new, tok2)] * 5

    # The home origin returns: the moved session stays moved, the old
    # cookie goes home again.
    lab.restart(os_[home])
    wait_health(e, {("p", home): "healthy"}, timeout=1 + SLACK + mt.WAIT)
    assert with_cookie(e, tok2, 10) == [(200, new, None)] * 10
    assert with_cookie(e, tok, 10) == [(200, home, None)] * 10


def test_cookie_temporary_keeps_cookie(lab):
    """zero_downtime_failover temporary: while the session's origin is dead
    requests go elsewhere and the cookie is kept (no Set-Cookie); the
    session returns to its origin when it is healthy again."""
    e, os_ = start(lab, n=2, zdt="temporary")
    tok, home = first_session(e)
    other = [n for n in os_ if n != home][0]
    assert with_cookie(e, tok, 10) == [(200, home, None)] * 10
    lab.kill(os_[home])
    # Before health notices: the failed attempt is retried, cookie kept.
    assert with_cookie(e, tok, 3) == [(200, other, None)] * 3
    wait_health(e, {("p", home): "unhealthy"}, timeout=1 + SLACK + mt.WAIT)
    assert with_cookie(e, tok, 10) == [(200, other, None)] * 10
    lab.restart(os_[home])
    wait_health(e, {("p", home): "healthy"}, timeout=1 + SLACK + mt.WAIT)
    assert with_cookie(e, tok, 10) == [(200, home, None)] * 10


def test_cookie_none_fails_then_moves(lab):
    """zero_downtime_failover none: a failed attempt on the session's
    origin is not retried elsewhere (502); once the origin is unhealthy the
    session moves and the cookie is rewritten."""
    e, os_ = start(lab, n=2, zdt="none")
    tok, home = first_session(e)
    other = [n for n in os_ if n != home][0]
    lab.kill(os_[home])
    st, o, t = with_cookie(e, tok)[0]
    assert st == 502, (st, o)
    wait_health(e, {("p", home): "unhealthy"}, timeout=1 + SLACK + mt.WAIT)
    (st, o, tok2), = with_cookie(e, tok)
    assert (st, o) == (200, other) and tok2 and tok2 != tok
    assert with_cookie(e, tok2, 10) == [(200, other, None)] * 10


def test_cookie_unknown_or_forged(lab):
    """A forged or malformed __cflb is ignored: normal steering and a fresh
    cookie."""
    e, os_ = start(lab, n=2)
    for bad in ("0123456789abcdef", "zz", ""):
        (st, o, t), = with_cookie(e, bad)
        assert st == 200 and o in os_ and t and t != bad, (bad, st, o, t)


def test_ip_cookie(lab):
    """ip_cookie: without a cookie the origin follows the client address
    (same address, same origin, cookie set each time); addresses spread;
    a cookie wins over the address."""
    e, os_ = start(lab, affinity="ip_cookie")
    owner = {}
    toks = {}
    for i in range(16):
        src = "127.0.%d.%d" % (20 + i, 7 + i)
        got = []
        for _ in range(4):
            r = get(e, src=src)
            assert r.status == 200
            tok = set_cookie(r)
            assert tok, r
            got.append((r.header("X-Origin"), tok))
        assert len(set(got)) == 1, (src, got)
        owner[src], toks[src] = got[0]
    assert len(set(owner.values())) >= 2, owner
    # A's cookie, sent from an address owned by another origin.
    srcs = sorted(owner)
    a = srcs[0]
    b = [s for s in srcs if owner[s] != owner[a]][0]
    assert with_cookie(e, toks[a], 5, src=b) == [(200, owner[a], None)] * 5


def test_header_affinity(lab):
    """session_affinity header: the same header value always reaches the
    same origin (no cookie); values spread over origins; without the header
    requests are steered normally; when the session's origin dies only its
    sessions move."""
    e, os_ = start(lab, affinity="header",
                   attrs={"headers": ["X-Session", "X-Tenant"]})
    owner = {}
    for i in range(16):
        v = "session-%d" % i
        got = set()
        for _ in range(4):
            r = get(e, headers=[("X-Session", v)])
            assert r.status == 200 and set_cookie(r) is None, r
            got.add(r.header("X-Origin"))
        assert len(got) == 1, (v, got)
        owner[v] = got.pop()
    assert len(set(owner.values())) >= 2, owner
    # Either header makes a key; with both, another key.
    r1 = [get(e, headers=[("X-Tenant", "t1")]).header("X-Origin")
          for _ in range(5)]
    assert len(set(r1)) == 1, r1
    spread = origins_of(e, 40)
    assert len(set(spread)) >= 2, spread
    # The busiest owner dies: only its sessions move.
    c = {}
    for o in owner.values():
        c[o] = c.get(o, 0) + 1
    gone = max(c, key=c.get)
    lab.kill(os_[gone])
    wait_health(e, {("p", gone): "unhealthy"}, timeout=1 + SLACK + mt.WAIT)
    for v, o in owner.items():
        got = {get(e, headers=[("X-Session", v)]).header("X-Origin")
               for _ in range(3)}
        assert len(got) == 1 and None not in got and gone not in got, \
            (v, got)
        if o != gone:
            assert got == {o}, (v, o, got)


def test_header_affinity_require_all(lab):
    """require_all_headers: a session needs every configured header; with
    one missing the request is steered normally."""
    e, os_ = start(lab, affinity="header",
                   attrs={"headers": ["X-A", "X-B"],
                          "require_all_headers": True})
    both = {get(e, headers=[("X-A", "1"), ("X-B", "2")]).header("X-Origin")
            for _ in range(10)}
    assert len(both) == 1, both
    half = [get(e, headers=[("X-A", "1")]).header("X-Origin")
            for _ in range(40)]
    assert len(set(half)) >= 2, half


def test_header_affinity_by_named_cookies(lab):
    """Cloudflare's "cookie:NAME,..." item: the session is the named
    cookie's value, whatever other cookies come and go."""
    e, os_ = start(lab, affinity="header",
                   attrs={"headers": ["cookie:sid"]})
    owner = {}
    for i in range(12):
        got = {get(e, headers=[("Cookie", "ga=%d; sid=s%d; t=%d" % (
            k, i, k))]).header("X-Origin") for k in range(4)}
        assert len(got) == 1, (i, got)
        owner[i] = got.pop()
    assert len(set(owner.values())) >= 2, owner
    # Without the named cookie (other cookies only): steered normally.
    spread = {get(e, headers=[("Cookie", "ga=1; sidx=s0")]).header(
        "X-Origin") for _ in range(40)}
    assert len(spread) >= 2, spread


def test_affinity_secret_keys_the_cookie(lab):
    """edge.affinity_secret keys the cookie: edges sharing the secret
    honour each other's cookies; an edge with the same name and another
    secret, or none, takes them for forged (normal steering, a fresh
    cookie), so a cookie cannot be derived from the edge's visible name.
    The same origin gets a different token under each key."""
    os_ = [lab.origin("o%d" % i, "x") for i in range(1, 4)]
    pools = [{"id": "p", "monitor": "m", "origins": [org(o) for o in os_]}]
    lbs = [{"name": HOST, "default_pools": ["p"],
            "session_affinity": "cookie"}]
    s1, s2 = "first-secret-0123456789", "other-secret-0123456789"

    def edge(secret):
        extra = {"affinity_secret": secret} if secret else {}
        e = lab.edge(monitors=[monitor()], pools=pools, lbs=lbs,
                     edge_extra=extra)
        all_healthy(e, ["p"])
        return e

    a, b, c, d = edge(s1), edge(s1), edge(s2), edge(None)

    def tokens(e):
        """origin -> token, from fresh sessions (bounded)."""
        out = {}
        for _ in range(60):
            tok, home = first_session(e)
            out[home] = tok
            if len(out) == len(os_):
                break
        assert len(out) >= 2, out
        return out

    ta, td = tokens(a), tokens(d)
    for home, tok in ta.items():
        assert with_cookie(b, tok, 3) == [(200, home, None)] * 3, home
        for other in (c, d):
            (st, o, t), = with_cookie(other, tok)
            assert st == 200 and t and t != tok, (home, st, o, t)
        if home in td:
            assert td[home] != tok, home
    # And the name-derived cookies are worthless where a secret is set.
    for home, tok in td.items():
        (st, o, t), = with_cookie(a, tok)
        assert st == 200 and t and t != tok, (home, st, o, t)


def _reload(e, text, n):
    """Write text plus a load balancer probe<n>.example.com and SIGHUP;
    return once the (single) worker routes with it: the probe host then
    answers 200 instead of 404."""
    probe = "probe%d.example.com" % n
    with open(e.config_path, "w") as f:
        f.write(text + "  - name: %s\n    default_pools:\n      - p\n"
                % probe)
    e.p.send_signal(signal.SIGHUP)
    mt.wait_for(lambda: try_get(e, host=probe)[0] == 200,
                what="the worker on the reloaded config (%s)" % probe)


def test_drain_duration_keeps_sessions_of_a_disabled_origin(lab):
    """Regression (r2_drain): drain_duration was never applied, the proxy
    passed no disable time, so a session on an origin disabled by a reload
    moved at once. With drain_duration 10m the session stays on a1 (no new
    cookie) while new sessions avoid it, and still after a further reload
    (the disable time is carried, not restamped); a load balancer on the
    same pool without drain_duration moves the same cookie at once."""
    a1, a2 = lab.origin("a1", "x"), lab.origin("a2", "x")
    e = lab.edge(
        workers=1,
        pools=[{"id": "p", "origins": [org(a1, enabled=True), org(a2)]}],
        lbs=[{"name": HOST, "default_pools": ["p"],
              "session_affinity": "cookie",
              "session_affinity_attributes": {"drain_duration": "10m"}},
             {"name": "nodrain.example.com", "default_pools": ["p"],
              "session_affinity": "cookie"}])
    tok = None
    for _ in range(100):  # random steering: a1 half of the time
        tok, home = first_session(e)
        if home == "a1":
            break
    assert home == "a1", "no session on a1 in 100 tries"
    assert with_cookie(e, tok, 3) == [(200, "a1", None)] * 3
    with open(e.config_path) as f:
        text = f.read()
    assert text.count("enabled: true") == 1, text
    text = text.replace("enabled: true", "enabled: false")

    _reload(e, text, 1)
    assert with_cookie(e, tok, 10) == [(200, "a1", None)] * 10
    assert origins_of(e, 20) == ["a2"] * 20  # no new sessions on a1
    nd = with_cookie(e, tok, 3, host="nodrain.example.com")
    assert [(st, o) for st, o, _ in nd] == [(200, "a2")] * 3, nd
    assert all(t and t != tok for _, _, t in nd), nd

    _reload(e, text, 2)  # a1 stays disabled: still draining
    assert with_cookie(e, tok, 10) == [(200, "a1", None)] * 10



def test_drain_skips_a_disabled_origin_known_unhealthy(lab):
    """Regression (r13_drain_dead): disabling an origin reset its health
    verdict to unknown (routable) and nothing checks a disabled origin,
    so during drain_duration its sessions went back to an origin the
    monitor had already found dead: with zero_downtime_failover none the
    client got the error. The last verdict now stays with the disabled
    origin, so its sessions move as they did before the reload."""
    a1, a2 = lab.origin("a1", "x"), lab.origin("a2", "x")
    e = lab.edge(
        workers=1, monitors=[monitor()],
        pools=[{"id": "p", "monitor": "m",
                "origins": [org(a1, enabled=True), org(a2)]}],
        lbs=[{"name": HOST, "default_pools": ["p"],
              "session_affinity": "cookie",
              "session_affinity_attributes": {"drain_duration": "10m"}}])
    all_healthy(e, ["p"])
    tok = None
    for _ in range(100):  # random steering: a1 half of the time
        tok, home = first_session(e)
        if home == "a1":
            break
    assert home == "a1", "no session on a1 in 100 tries"
    lab.kill(a1)
    wait_health(e, {("p", "a1"): "unhealthy"})
    st, o, t = with_cookie(e, tok)[0]
    assert (st, o) == (200, "a2") and t and t != tok
    with open(e.config_path) as f:
        text = f.read()
    assert text.count("enabled: true") == 1, text
    _reload(e, text.replace("enabled: true", "enabled: false"), 1)
    got = with_cookie(e, tok, 3)
    assert [(st, o) for st, o, _ in got] == [(200, "a2")] * 3, got
