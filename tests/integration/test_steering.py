"""End-to-end steering (issue 3, SPEC §4.3) and geo: clients located by
their source address (127.x.y.z, mapped by geo.networks; Linux routes all of
127/8 to lo), pool steering policies and origin steering, against the real
binary. Distribution checks use bounds of about five standard deviations.
Helpers come from test_health.py."""
import math
import threading
import time

import meridian_test as mt
from test_health import lab  # noqa: F401  (the fixture)
from test_health import (HOST, SLACK, all_healthy, get, monitor, org,
                         origin_of, origins_of, wait_health)


def counts(names):
    out = {}
    for n in names:
        out[n] = out.get(n, 0) + 1
    return out


def within(k, n, p, sigmas=5.0):
    """k successes in n trials is within `sigmas` standard deviations of
    the expected n*p."""
    sd = math.sqrt(n * p * (1 - p))
    return abs(k - n * p) <= sigmas * sd


# ================================================================ geo

GEO = {"networks": {
    "127.1.0.0/16": {"region": "ENAM"},
    "127.2.0.0/16": {"country": "JP"},     # region NEAS from the table
    "127.3.0.0/16": {"country": "DE"},     # region WEU from the table
    "127.4.0.0/16": {"region": "SAS"},     # a region without a mapping
    "127.5.0.0/16": {"region": "ENAM"},
    "127.5.7.0/24": {"region": "WEU"},     # longest prefix wins
}}


def test_geo_steering(lab):
    """steering_policy geo: pop_pools beat country_pools beat region_pools
    beat default_pools; unmapped clients (and mapped ones without an entry)
    get default_pools."""
    names = ["enam", "jp", "weu", "dflt", "pop", "neas"]
    o = {n: lab.origin(n + "-1", n) for n in names}
    pools = [{"id": n, "origins": [org(o[n])]} for n in names]
    e = lab.edge(
        geo=GEO, pools=pools,
        lbs=[{"name": HOST, "steering_policy": "geo",
              "default_pools": ["dflt"],
              "region_pools": {"ENAM": ["enam"], "WEU": ["weu"],
                               "NEAS": ["neas"]},
              "country_pools": {"JP": ["jp"]}},
             # "" (the default) is geo when a map is set; pop_pools win.
             {"name": "pop.example.com", "default_pools": ["dflt"],
              "pop_pools": {mt.EDGE_NAME: ["pop"]},
              "country_pools": {"JP": ["jp"]},
              "region_pools": {"ENAM": ["enam"]}},
             {"name": "other-pop.example.com", "default_pools": ["dflt"],
              "pop_pools": {"elsewhere": ["pop"]},
              "country_pools": {"JP": ["jp"]}}])
    cases = {
        "127.1.0.5": "enam-1",     # region ENAM
        "127.1.200.9": "enam-1",
        "127.2.0.5": "jp-1",       # country JP beats its region NEAS
        "127.3.0.5": "weu-1",      # country DE -> region WEU
        "127.4.0.5": "dflt-1",     # region SAS: no entry -> default
        "127.5.0.5": "enam-1",
        "127.5.7.5": "weu-1",      # the /24 inside the /16
        "127.0.0.1": "dflt-1",     # unmapped
        "127.9.0.5": "dflt-1",
    }
    for src, want in cases.items():
        got = origins_of(e, 5, src=src)
        assert got == [want] * 5, (src, want, got)
    for src in ("127.1.0.5", "127.2.0.5", "127.0.0.1"):
        got = origins_of(e, 3, src=src, host="pop.example.com")
        assert got == ["pop-1"] * 3, (src, got)
    assert origins_of(e, 3, src="127.2.0.5",
                      host="other-pop.example.com") == ["jp-1"] * 3
    assert origins_of(e, 3, src="127.1.0.5",
                      host="other-pop.example.com") == ["dflt-1"] * 3


def test_geo_pool_down_goes_to_fallback(lab):
    """A client's region pools all down: the fallback_pool (not a cascade
    into default_pools); other regions are unaffected."""
    enam, dflt, fb = (lab.origin("enam-1", "aws"), lab.origin("dflt-1", "gcp"),
                      lab.origin("fb-1", "azure"))
    e = lab.edge(
        geo=GEO, monitors=[monitor()],
        pools=[{"id": "enam", "monitor": "m", "origins": [org(enam)]},
               {"id": "dflt", "monitor": "m", "origins": [org(dflt)]},
               {"id": "fb", "monitor": "m", "origins": [org(fb)]}],
        lbs=[{"name": HOST, "steering_policy": "geo",
              "default_pools": ["dflt"], "fallback_pool": "fb",
              "region_pools": {"ENAM": ["enam"]}}])
    all_healthy(e, ["enam", "dflt", "fb"])
    assert origins_of(e, 5, src="127.1.0.5") == ["enam-1"] * 5
    lab.kill(enam)
    wait_health(e, {("enam", None): "critical"}, timeout=1 + SLACK + mt.WAIT)
    assert origins_of(e, 5, src="127.1.0.5") == ["fb-1"] * 5
    assert origins_of(e, 5, src="127.0.0.1") == ["dflt-1"] * 5


# ================================================================ pools

def test_steering_off_is_failover_order(lab):
    a, b, c = (lab.origin("a-1", "x"), lab.origin("b-1", "y"),
               lab.origin("c-1", "z"))
    e = lab.edge(
        pools=[{"id": "a", "origins": [org(a)]},
               {"id": "b", "origins": [org(b)]},
               {"id": "c", "origins": [org(c)]}],
        lbs=[{"name": HOST, "steering_policy": "off",
              "default_pools": ["b", "a", "c"]},
             {"name": "dflt.example.com", "default_pools": ["c", "b"]}])
    assert origins_of(e, 30) == ["b-1"] * 30
    assert origins_of(e, 10, host="dflt.example.com") == ["c-1"] * 10


def test_load_shedding(lab):
    """Regression (r6_load_shedding): pools[].load_shedding was accepted
    but never applied. default_percent 100 on the first pool sends all new
    traffic to the next one; default_policy hash sheds by client IP, so
    each client stays on one pool, and about half of the clients are shed
    at 50%."""
    a1, b1 = lab.origin("a1"), lab.origin("b1")
    c1, d1 = lab.origin("c1"), lab.origin("d1")
    e = lab.edge(
        pools=[{"id": "p1", "load_shedding": {"default_percent": 100},
                "origins": [org(a1)]},
               {"id": "p2", "origins": [org(b1)]},
               {"id": "p3", "load_shedding": {"default_percent": 50,
                                              "default_policy": "hash"},
                "origins": [org(c1)]},
               {"id": "p4", "origins": [org(d1)]}],
        lbs=[{"name": HOST, "default_pools": ["p1", "p2"]},
             {"name": "hash.example.com", "default_pools": ["p3", "p4"]}])
    got = origins_of(e, 20)
    assert got == ["b1"] * 20, got
    seen = {}
    for i in range(1, 41):
        src = "127.0.9.%d" % i
        got = origins_of(e, 3, src=src, host="hash.example.com")
        assert len(set(got)) == 1 and got[0] in ("c1", "d1"), (src, got)
        seen[got[0]] = seen.get(got[0], 0) + 1
    # 40 clients at 50%: both pools get some (each side has p = 2^-40 of
    # being empty by chance).
    assert seen.get("c1", 0) > 0 and seen.get("d1", 0) > 0, seen


def test_random_steering_weights(lab):
    """random_steering: pool_weights 0.2 / 0.8 and default_weight 0 for the
    unnamed third pool; 600 requests."""
    a, b, c = (lab.origin("a-1", "x"), lab.origin("b-1", "y"),
               lab.origin("c-1", "z"))
    e = lab.edge(
        pools=[{"id": "a", "origins": [org(a)]},
               {"id": "b", "origins": [org(b)]},
               {"id": "c", "origins": [org(c)]}],
        lbs=[{"name": HOST, "steering_policy": "random",
              "default_pools": ["a", "b", "c"],
              "random_steering": {"default_weight": 0,
                                  "pool_weights": {"a": 0.2, "b": 0.8}}}])
    n = 600
    got = counts(origins_of(e, n))
    assert set(got) <= {"a-1", "b-1"}, got
    assert got.get("a-1", 0) + got.get("b-1", 0) == n, got
    assert within(got.get("a-1", 0), n, 0.2), got
    assert c.counters()[0] == 0


SLEEP_MS = 2500 * (2 if mt.ASAN else 1)
NO_IDLE = {"limits": {"upstream_idle_per_origin": 0}}


def _hold(edge, origin, n, host=HOST, headers=()):
    """n concurrent /sleep requests left in flight (threads) until origin
    holds them all (with no idle upstream connections kept, the origin's
    open connections are the requests in flight). Returns (threads,
    results list)."""
    mt.wait_for(lambda: origin.counters()[3] == 0,
                what="no connection open to %s" % origin.name)
    results = []
    lock = threading.Lock()

    def one():
        try:
            r = get(edge, path="/sleep/%d" % SLEEP_MS, host=host,
                    headers=headers, timeout=mt.WAIT + SLEEP_MS / 1000.0)
            res = (r.status, r.header("X-Origin"))
        except Exception as ex:  # noqa: BLE001 - reported by the test
            res = (0, repr(ex))
        with lock:
            results.append(res)

    ts = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in ts:
        t.start()
    try:
        mt.wait_for(lambda: origin.counters()[3] >= n,
                    what="%d requests held at %s" % (n, origin.name))
    except BaseException:
        _join(ts)
        raise
    return ts, results


def _join(ts):
    for t in ts:
        t.join(timeout=mt.WAIT + SLEEP_MS / 1000.0)


def test_least_outstanding_requests_prefers_idle_pool(lab):
    """least_outstanding_requests: with 8 slow requests in flight on pool
    a (sent through another hostname served by a alone), new requests go
    mostly to the idle pool b (weight 1/(1+8) against 1)."""
    a, b = lab.origin("a-1", "x"), lab.origin("b-1", "y")
    e = lab.edge(
        pools=[{"id": "a", "origins": [org(a)]},
               {"id": "b", "origins": [org(b)]}],
        lbs=[{"name": HOST, "steering_policy": "least_outstanding_requests",
              "default_pools": ["a", "b"]},
             {"name": "hold.example.com", "default_pools": ["a"]}],
        edge_extra=NO_IDLE)
    n = 200
    even = counts(origins_of(e, n))
    assert within(even.get("a-1", 0), n, 0.5), even  # idle: even split
    ts, res = _hold(e, a, 8, host="hold.example.com")
    try:
        t0 = time.monotonic()
        busy = counts(origins_of(e, n))
        assert time.monotonic() - t0 < SLEEP_MS / 1000.0 - 0.5, \
            "held requests ended before the sample did"
        assert within(busy.get("a-1", 0), n, 1 / 10.0), busy
        assert busy.get("b-1", 0) > 0.75 * n, busy
    finally:
        _join(ts)
    assert [st for st, _ in res] == [200] * 8, res


def test_dynamic_latency_prefers_fast_pool(lab):
    """dynamic_latency: the pool whose monitor RTT is lower gets the
    traffic, though it is second in default_pools (RTTs from checks of
    /sleep/150 and /healthz)."""
    slow, fast = lab.origin("slow-1", "x"), lab.origin("fast-1", "y")
    e = lab.edge(
        monitors=[monitor("m-slow", path="/sleep/150"), monitor("m-fast")],
        pools=[{"id": "slow", "monitor": "m-slow", "origins": [org(slow)]},
               {"id": "fast", "monitor": "m-fast", "origins": [org(fast)]}],
        lbs=[{"name": HOST, "steering_policy": "dynamic_latency",
              "default_pools": ["slow", "fast"]}])
    st = all_healthy(e, ["slow", "fast"])
    rs = origin_of(st, "slow", "slow-1")["rtt_ms"]
    rf = origin_of(st, "fast", "fast-1")["rtt_ms"]
    assert rs is not None and rf is not None and rs > 100 > rf, (rs, rf)
    assert origins_of(e, 30) == ["fast-1"] * 30


def test_proximity_nearest_pool(lab):
    """proximity: the pool nearest to the edge's coordinates (Amsterdam:
    Frankfurt beats Virginia), whatever the default_pools order."""
    us, eu = lab.origin("us-1", "aws"), lab.origin("eu-1", "gcp")
    e = lab.edge(
        edge_extra={"latitude": 52.37, "longitude": 4.90},
        pools=[{"id": "us", "latitude": 38.9, "longitude": -77.0,
                "origins": [org(us)]},
               {"id": "eu", "latitude": 50.1, "longitude": 8.7,
                "origins": [org(eu)]}],
        lbs=[{"name": HOST, "steering_policy": "proximity",
              "default_pools": ["us", "eu"]}])
    assert origins_of(e, 20) == ["eu-1"] * 20


# ================================================================ origins

def test_origin_weight_zero_gets_nothing(lab):
    a, z, h = (lab.origin("a", "x"), lab.origin("zero", "x"),
               lab.origin("half", "x"))
    e = lab.edge(
        pools=[{"id": "p", "origins": [org(a), org(z, weight=0),
                                       org(h, weight=0.25)]}],
        lbs=[{"name": HOST, "default_pools": ["p"]}])
    n = 500
    got = counts(origins_of(e, n))
    assert "zero" not in got and sum(got.values()) == n, got
    assert within(got.get("half", 0), n, 0.2), got
    assert z.counters()[0] == 0


def test_origin_hash_steering(lab):
    """origin_steering hash: one client address always reaches the same
    origin; addresses spread; when one origin dies only its clients move
    (consistent hashing)."""
    os_ = [lab.origin("h%d" % i, "x") for i in range(3)]
    e = lab.edge(
        monitors=[monitor()],
        pools=[{"id": "p", "monitor": "m",
                "origin_steering": {"policy": "hash"},
                "origins": [org(o) for o in os_]}],
        lbs=[{"name": HOST, "default_pools": ["p"]}])
    all_healthy(e, ["p"])
    srcs = ["127.0.%d.%d" % (10 + i, 3 + i) for i in range(24)]
    owner = {}
    for s in srcs:
        got = origins_of(e, 4, src=s)
        assert len(set(got)) == 1 and got[0], (s, got)
        owner[s] = got[0]
    assert len(set(owner.values())) >= 2, owner
    # The owner with the most clients leaves.
    c = counts(owner.values())
    gone = max(c, key=c.get)
    lab.kill([o for o in os_ if o.name == gone][0])
    wait_health(e, {("p", gone): "unhealthy"}, timeout=1 + SLACK + mt.WAIT)
    for s in srcs:
        got = origins_of(e, 3, src=s)
        assert len(set(got)) == 1 and got[0] and got[0] != gone, (s, got)
        if owner[s] != gone:
            assert got[0] == owner[s], (s, owner[s], got)


def test_origin_least_outstanding(lab):
    """origin_steering least_outstanding_requests: with requests held on
    one origin (routed there by header affinity, which hashes the header),
    requests without the header go mostly to the idle origin."""
    a, b = lab.origin("a", "x"), lab.origin("b", "x")
    e = lab.edge(
        pools=[{"id": "p",
                "origin_steering": {"policy": "least_outstanding_requests"},
                "origins": [org(a), org(b)]}],
        lbs=[{"name": HOST, "default_pools": ["p"],
              "session_affinity": "header",
              "session_affinity_attributes": {"headers": ["X-Session"]}}],
        edge_extra=NO_IDLE)
    key = None
    for i in range(64):  # a session value that lands on a
        r = get(e, headers=[("X-Session", "s%d" % i)])
        if r.header("X-Origin") == "a":
            key = "s%d" % i
            break
    assert key, "no session value maps to a"
    n = 200
    ts, held = _hold(e, a, 8, headers=[("X-Session", key)])
    try:
        t0 = time.monotonic()
        busy = counts(origins_of(e, n))
        assert time.monotonic() - t0 < SLEEP_MS / 1000.0 - 0.5, \
            "held requests ended before the sample did"
        assert within(busy.get("a", 0), n, 1 / 10.0), busy
    finally:
        _join(ts)
    assert [st for st, _ in held] == [200] * 8, held
