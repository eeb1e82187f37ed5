"""Rate limits (top-level rate_limits[]) against the real binary: per
client, per header value and shared buckets, the edge's 429 with
Retry-After or the rule's own response, log-only rules named in the access
log, the mitigation time, HTTP/2, clients behind a trusted proxy, counts
kept across a reload that keeps the rule and reset by one that changes
its rate, and the metrics; and the per-client connection limit."""
import json
import re
import time
import urllib.request

import pytest

import meridian_test as mt
from test_h2 import curl2
from test_health import HOST, SrcConn, get, lab, org, who  # noqa: F401
from test_reload import count, hup_and_wait
from test_tls import certs

RELOADED = r"SIGHUP: reloaded"

API = {"name": "api", "requests_per_period": 3, "period": "60s",
       "expression": 'starts_with(http.request.uri.path, "/api/")'}


def start(lab, tmp_path, rate_limits, tls=False, geo=None):
    web = lab.origin("web")
    extra = {"access_log": {"path": str(tmp_path / "access.log")}}
    hp = None
    if tls:
        hp = mt.free_port()
        extra["tls"] = certs(tmp_path)
    e = lab.edge([{"id": "web", "origins": [org(web)]}],
                 [{"name": HOST, "default_pools": ["web"]}],
                 edge_extra=extra, https_port=hp, geo=geo,
                 top={"rate_limits": rate_limits})
    e.alog = tmp_path / "access.log"
    if tls:
        e.https = hp
        mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    return e


def metrics(e):
    with urllib.request.urlopen("http://%s:%d/metrics" % (mt.LOCAL, e.admin),
                                timeout=mt.WAIT) as r:
        return r.read().decode()


def metric(e, name, rule):
    m = re.search(r'^%s\{rule="%s"\} (\d+)$' % (name, re.escape(rule)),
                  metrics(e), re.M)
    return int(m.group(1)) if m else None


def log_lines(e, n):
    """The access log's lines once there are n (the writer is a thread)."""
    def ready():
        if not e.alog.exists():
            return None
        lines = e.alog.read_text().splitlines()
        return lines if len(lines) >= n else None
    return [json.loads(x) for x in mt.wait_for(ready, what="%d log lines"
                                                % n)]


def statuses(e, n, path="/api/x", src=None, headers=()):
    return [get(e, path, src=src, headers=headers).status for _ in range(n)]


def test_per_client_block(lab, tmp_path):
    e = start(lab, tmp_path, [API])
    assert statuses(e, 3, src="127.0.0.2") == [200, 200, 200]
    r = get(e, "/api/x", src="127.0.0.2")
    assert r.status == 429, r
    # 3 per 60 s: the next token in at most 20 s.
    assert 1 <= int(r.header("Retry-After")) <= 20, r.headers
    assert b"rate limit exceeded" in r.body and mt.EDGE_NAME.encode() in \
        r.body, r.body
    # Another client has its own bucket; other paths are not counted.
    assert statuses(e, 3, src="127.0.0.3") == [200, 200, 200]
    assert who(get(e, "/other", src="127.0.0.2")) == "web"
    # A refused request keeps its keep-alive connection.
    with SrcConn(e.port, "127.0.0.2") as c:
        c.send(mt.req("GET", "/api/y", HOST))
        assert c.read_response().status == 429
        c.send(mt.req("GET", "/static", HOST))
        assert who(c.read_response()) == "web"
    # One with an unread body is answered and closed.
    with SrcConn(e.port, "127.0.0.2") as c:
        c.send(mt.req("POST", "/api/z", HOST, body=b"x" * 100000))
        r = c.read_response()
        assert r.status == 429 and r.header("Connection") == "close", r
    assert metric(e, "meridian_rate_limit_exceeded_total", "api") == 3
    assert metric(e, "meridian_rate_limit_keys", "api") == 2
    assert metric(e, "meridian_rate_limit_evictions_total", "api") == 0
    lines = log_lines(e, 11)
    refused = [x for x in lines if x["status"] == 429]
    assert len(refused) == 3 and all(x["rate_limit"] == "api" and
                                     x["origin"] is None for x in refused)
    assert all("rate_limit" not in x for x in lines if x["status"] == 200)


def test_header_key_log_and_shared(lab, tmp_path):
    e = start(lab, tmp_path, [
        {"name": "per-key", "requests_per_period": 2,
         "characteristics": ['http.request.headers["X-Api-Key"]'],
         "expression": 'http.request.uri.path eq "/k"'},
        {"name": "watch", "requests_per_period": 1, "action": "log",
         "expression": 'http.request.uri.path eq "/w"'},
        {"name": "all", "requests_per_period": 4, "characteristics": [],
         "expression": 'http.request.uri.path eq "/g"'}])
    k1, k2 = [("x-api-key", "k1")], [("X-API-KEY", "k2")]
    # The key, not the client, is counted: two addresses share k1.
    assert get(e, "/k", src="127.0.0.2", headers=k1).status == 200
    assert get(e, "/k", src="127.0.0.3", headers=k1).status == 200
    assert get(e, "/k", src="127.0.0.4", headers=k1).status == 429
    assert get(e, "/k", src="127.0.0.2", headers=k2).status == 200
    # log: nothing refused, the requests over the rate named.
    assert statuses(e, 3, "/w") == [200, 200, 200]
    # []: one bucket for every client.
    got = [get(e, "/g", src="127.0.0.%d" % (2 + i)).status for i in range(5)]
    assert got == [200, 200, 200, 200, 429], got
    assert metric(e, "meridian_rate_limit_exceeded_total", "watch") == 2
    assert metric(e, "meridian_rate_limit_exceeded_total", "per-key") == 1
    assert metric(e, "meridian_rate_limit_exceeded_total", "all") == 1
    w = [x for x in log_lines(e, 12) if x["path"] == "/w"]
    # (Lines of the two workers may come out of order.)
    assert sorted(str(x.get("rate_limit")) for x in w) == \
        ["None", "watch", "watch"], w
    assert all(x["status"] == 200 and x["origin"] == "web" for x in w)


def test_response_and_mitigation(lab, tmp_path):
    e = start(lab, tmp_path, [
        {"name": "strict", "requests_per_period": 1, "period": "1s",
         "mitigation_timeout": "60s",
         "response": {"status_code": 503, "content": "slow down",
                      "content_type": "text/plain; charset=utf-8"}}])
    assert get(e, "/").status == 200
    r = get(e, "/")
    t0 = time.monotonic()
    assert r.status == 503 and r.body == b"slow down", r
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    assert 59 <= int(r.header("Retry-After")) <= 60, r.headers
    # Without the mitigation time a token would be back after 1 s; with
    # it, the client stays refused.
    mt.wait_for(lambda: time.monotonic() - t0 > 1.5, what="1.5 s")
    r = get(e, "/")
    assert r.status == 503 and int(r.header("Retry-After")) <= 59, r.headers
    # HEAD: the same answer without its body.
    with SrcConn(e.port) as c:
        c.send(mt.req("HEAD", "/", HOST))
        r = c.read_response("HEAD")
        assert r.status == 503 and r.body == b"", r
        assert r.header("Content-Length") == "9"
    # Other clients are not touched.
    assert get(e, "/", src="127.0.0.2").status == 200


def test_http2(lab, tmp_path):
    e = start(lab, tmp_path, [API], tls=True)
    for _ in range(3):
        rc, body, status, ver = curl2(e.https, "/api/x")
        assert (rc, status, ver) == (0, "200", "2"), body
    rc, body, status, ver = curl2(e.https, "/api/x", extra=["-i"])
    assert (rc, status, ver) == (0, "429", "2"), body
    assert re.search(rb"(?im)^retry-after: \d+\r?$", body), body
    # h1 from the same address shares the bucket.
    assert get(e, "/api/x").status == 429


def test_client_behind_trusted_proxy(lab, tmp_path):
    e = start(lab, tmp_path, [dict(API, requests_per_period=1)],
              geo={"trusted_proxies": ["127.0.0.1/32"]})

    def via(client):
        return get(e, "/api/x",
                   headers=[("X-Forwarded-For", client)]).status
    assert via("198.51.100.7") == 200
    assert via("198.51.100.7") == 429
    assert via("198.51.100.8") == 200
    # An IPv6 client counts by its /64.
    assert via("2001:db8:1:2::1") == 200
    assert via("2001:db8:1:2::99") == 429
    assert via("2001:db8:1:3::1") == 200


def test_reload_keeps_or_resets(lab, tmp_path):
    e = start(lab, tmp_path, [API])
    assert statuses(e, 4) == [200, 200, 200, 429]
    n = count(e, RELOADED)
    # Same name, rate and key: the counts carry over, whatever else
    # changed (here the answer).
    e.cfg["rate_limits"] = [dict(API, response={"status_code": 420 + 9,
                                                "content": "later"})]
    e.rewrite(mt.to_yaml(e.cfg) + "\n")
    hup_and_wait(e, RELOADED, n)
    r = get(e, "/api/x")
    assert (r.status, r.body) == (429, b"later"), r
    assert metric(e, "meridian_rate_limit_exceeded_total", "api") == 2
    # Another rate: a new count.
    e.cfg["rate_limits"] = [dict(API, requests_per_period=2)]
    e.rewrite(mt.to_yaml(e.cfg) + "\n")
    hup_and_wait(e, RELOADED, n + 1)
    assert statuses(e, 3) == [200, 200, 429]
    # A bad rule is refused and the running one stays.
    e.cfg["rate_limits"] = [dict(API, characteristics=["ip.srcc"])]
    e.rewrite(mt.to_yaml(e.cfg) + "\n")
    bad = r"did you mean 'ip.src'"
    hup_and_wait(e, bad, count(e, bad))
    assert get(e, "/api/x").status == 429


def test_connections_per_client(lab, tmp_path):
    """edge.limits.max_connections_per_client: a client holding its
    connections gets no more (503, as over max_connections), others do;
    a close gives one back; trusted proxies are not limited."""
    web = lab.origin("web")
    e = lab.edge([{"id": "web", "origins": [org(web)]}],
                 [{"name": HOST, "default_pools": ["web"]}],
                 edge_extra={"limits": {"max_connections_per_client": 2}},
                 geo={"trusted_proxies": ["127.0.0.4/32"]})

    def served(c):
        c.send(mt.req("GET", "/", HOST))
        return who(c.read_response()) == "web"

    def refused(src):
        try:
            with SrcConn(e.port, src) as c:
                c.send(mt.req("GET", "/", HOST))
                r = c.read_response()
                return r.status == 503
        except (mt.Closed, ConnectionResetError, BrokenPipeError):
            return True

    held = [SrcConn(e.port, "127.0.0.2") for _ in range(2)]
    try:
        assert all(served(c) for c in held)
        assert refused("127.0.0.2")
        # Another client, and a trusted proxy with three at once.
        with SrcConn(e.port, "127.0.0.3") as c:
            assert served(c)
        proxies = [SrcConn(e.port, "127.0.0.4") for _ in range(3)]
        try:
            assert all(served(c) for c in proxies)
        finally:
            for c in proxies:
                c.close()
        # The held ones still work.
        assert all(served(c) for c in held)
        held.pop().close()

        def one_more():
            with SrcConn(e.port, "127.0.0.2") as c:
                try:
                    return served(c)
                except (mt.Closed, ConnectionResetError, BrokenPipeError):
                    return False
        mt.wait_for(one_more, what="a connection once one closed")
    finally:
        for c in held:
            c.close()
    text = metrics(e)
    m = re.search(r'^meridian_client_connections_refused_total'
                  r'\{reason="per_client"\} (\d+)$', text, re.M)
    assert m and int(m.group(1)) >= 1, text
    assert re.search(r'^meridian_client_connections_refused_total'
                     r'\{reason="max_connections"\} 0$', text, re.M)


def test_evictions_never_go_back(lab, tmp_path):
    """A full table's evictions, counted on /metrics, go on from the old
    table's when a reload gives the rule a new one (its rate changed):
    a counter never goes back while the rule keeps its name."""
    rule = {"name": "k", "requests_per_period": 1, "max_keys": 64,
            "characteristics": ['http.request.headers["X-K"]']}
    e = start(lab, tmp_path, [rule])
    # 300 keys at once in a table of 64: most push out one still counting.
    with SrcConn(e.port) as c:
        for i in range(300):
            c.send(mt.req("GET", "/", HOST, [("X-K", "k%d" % i)]))
            assert c.read_response().status == 200
    ev = metric(e, "meridian_rate_limit_evictions_total", "k")
    assert ev >= 300 - 64 - 64, ev
    n = count(e, RELOADED)
    e.cfg["rate_limits"] = [dict(rule, requests_per_period=2)]
    e.rewrite(mt.to_yaml(e.cfg) + "\n")
    hup_and_wait(e, RELOADED, n)
    # A new count (k0 has its burst again), the same counter.
    assert get(e, "/", headers=[("X-K", "k0")]).status == 200
    assert metric(e, "meridian_rate_limit_evictions_total", "k") == ev


def test_counting_by_response(lab, tmp_path):
    """counting_expression: only responses it matches count (failed
    logins); a client whose bucket they emptied is refused on arrival."""
    e = start(lab, tmp_path, [{
        "name": "logins", "requests_per_period": 3, "period": "60s",
        "expression": 'starts_with(http.request.uri.path, "/status/")',
        "counting_expression": "http.response.code in {401 403}"}])
    src = "127.0.0.2"
    assert statuses(e, 10, "/status/200", src=src) == [200] * 10
    assert statuses(e, 3, "/status/401", src=src) == [401] * 3
    r = get(e, "/status/200", src=src)
    assert r.status == 429 and 1 <= int(r.header("Retry-After")) <= 20, r
    assert get(e, "/other", src=src).status == 200  # not under the rule
    assert statuses(e, 2, "/status/403", src="127.0.0.3") == [403, 403]
    assert metric(e, "meridian_rate_limit_exceeded_total", "logins") == 1


def test_counting_rule_blocks_for_its_mitigation_timeout(lab, tmp_path):
    """A counting rule's key that goes over the rate is blocked for the
    mitigation timeout, as a rule that counts on arrival is (brute-force
    protection: five failed logins, then no attempt for ten minutes)."""
    e = start(lab, tmp_path, [{
        "name": "logins", "requests_per_period": 3, "period": "60s",
        "mitigation_timeout": "10m",
        "expression": 'starts_with(http.request.uri.path, "/status/")',
        "counting_expression": "http.response.code eq 401"}])
    src = "127.0.0.2"
    assert statuses(e, 3, "/status/401", src=src) == [401] * 3
    for _ in range(2):  # the refusal started the block; it holds
        r = get(e, "/status/200", src=src)
        assert r.status == 429 and \
            590 <= int(r.header("Retry-After")) <= 600, r.headers


def test_counting_rule_bounds_requests_in_flight(lab, tmp_path):
    """A counting rule holds a token for each request in flight and gives
    it back when the response does not count: attempts sent at once
    cannot all pass before the first answer is counted (twenty parallel
    logins against three per period did)."""
    web = lab.origin("web")
    e = lab.edge([{"id": "web", "origins": [org(web)]}],
                 [{"name": HOST, "default_pools": ["web"]}],
                 top={"rate_limits": [{
                     "name": "logins", "requests_per_period": 3,
                     "period": "600s",
                     "counting_expression": "http.response.code eq 401"}]})
    # The origin answers (else the three below would get a 502 at once).
    mt.wait_for(lambda: get(e, "/status/200", src="127.0.0.9").status == 200,
                what="the origin serving")
    src = "127.0.0.2"
    held = [SrcConn(e.port, src) for _ in range(3)]
    try:
        for c in held:  # three attempts the origin sits on
            c.send(mt.req("GET", "/sleep/600000", HOST))

        def active():
            m = re.search(r'^meridian_upstream_connections'
                          r'\{state="active"\} (\d+)$', metrics(e), re.M)
            return m and int(m.group(1)) == 3
        mt.wait_for(active, what="three requests at the origin")
        # With the three in flight, a fourth is refused on arrival.
        assert get(e, "/status/200", src=src).status == 429
        # The origin dies: the three get the edge's 502, which does not
        # count, and their tokens come back.
        lab.kill(web)
        assert [c.read_response().status for c in held] == [502] * 3
    finally:
        for c in held:
            c.close()
    assert get(e, "/status/200", src=src).status != 429


def test_keys_read_the_normalized_host_and_path(lab, tmp_path):
    """A per-host, per-path limit cannot be dodged by the Host's case or
    by spelling the path another way."""
    e = start(lab, tmp_path, [{
        "name": "per-host-path", "requests_per_period": 3,
        "characteristics": ["http.host", "http.request.uri.path"],
        "expression": 'starts_with(http.request.uri.path, "/h")'}])
    got = [get(e, p, host=h).status for p, h in (
        ("/h", HOST), ("/%68", HOST.upper()), ("//h", HOST.title()),
        ("/x/../h", HOST))]
    assert got == [200, 200, 200, 429], got
    # Another path is another key.
    assert get(e, "/h2").status == 200


def test_acme_challenges_are_never_limited(lab, tmp_path):
    """A catch-all limit (one bucket for all) would block the edge's own
    certificate renewals: ACME http-01 challenges pass it."""
    e = start(lab, tmp_path, [{"name": "all", "requests_per_period": 1,
                               "characteristics": []}])
    assert get(e, "/").status == 200
    assert get(e, "/").status == 429
    for _ in range(3):
        r = get(e, "/.well-known/acme-challenge/tok")
        assert r.status == 200 and who(r) == "web", r
    assert get(e, "/").status == 429


def test_connections_per_client_behind_proxy_protocol(lab, tmp_path):
    """Behind an L4 balancer speaking PROXY, the peer is a trusted proxy
    (not counted); the client its header names is counted once the header
    is read, so max_connections_per_client still holds per client."""
    web = lab.origin("web")
    e = lab.edge([{"id": "web", "origins": [org(web)]}],
                 [{"name": HOST, "default_pools": ["web"]}],
                 edge_extra={"limits": {"max_connections_per_client": 1},
                             "listen": {"proxy_protocol": True}},
                 geo={"trusted_proxies": ["127.0.0.0/8"]})

    def conn(client):
        c = SrcConn(e.port)
        c.send(("PROXY TCP4 %s 127.0.0.1 5555 80\r\n" % client).encode())
        return c

    def served(c):
        try:
            c.send(mt.req("GET", "/", HOST))
            return who(c.read_response()) == "web"
        except (mt.Closed, ConnectionResetError, BrokenPipeError):
            return False
    held = conn("198.51.100.7")
    try:
        assert served(held)
        with conn("198.51.100.7") as c:  # the same client: closed
            assert not served(c)
        with conn("198.51.100.8") as c:  # another: served
            assert served(c)
        assert served(held)
    finally:
        held.close()

    def again():
        with conn("198.51.100.7") as c:
            return served(c)
    mt.wait_for(again, what="the client's slot once its connection closed")
    text = metrics(e)
    m = re.search(r'^meridian_client_connections_refused_total'
                  r'\{reason="per_client"\} (\d+)$', text, re.M)
    assert m and int(m.group(1)) >= 1, text
