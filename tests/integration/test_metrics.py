"""/metrics on the admin listener: Prometheus text format (parsed with
python3-prometheus-client's parser), naming conventions, and counters and
gauges that move with real traffic through the real binary: requests by
load balancer, pool, origin and status class, latency histograms,
retries, cross-pool failovers, passive ejections, active health checks,
connections, DNS queries by rcode."""
import re
import signal
import time

import dns.message
import dns.query
import dns.rcode
import pytest

import meridian_test as mt
from meridian_test import HttpConn, req, request, LOCAL, WAIT
from obs_helpers import edge_section, scrape, start_edge

HOST = "lb.example.com"
OFF = "off.example.com"
ZONE = "example.org"


def _config(port, admin, live, dead, dns_port, name=mt.EDGE_NAME):
    return {
        "edge": edge_section(port, admin, name=name,
                             listen={"http": ["%s:%d" % (LOCAL, port)],
                                     "admin": "%s:%d" % (LOCAL, admin),
                                     "dns": ["%s:%d" % (LOCAL, dns_port)]}),
        "zones": [{"name": ZONE, "records": [
            {"name": "www." + ZONE, "type": "A", "content": "203.0.113.20"}]}],
        "monitors": [{"id": "m", "type": "http", "path": "/healthz",
                      "interval": "1s", "timeout": "1s"}],
        "pools": [
            # a: only a dead origin, no monitor (unknown counts as up), so
            # requests go there first, fail to connect and fail over to b
            # until passive health ejects it.
            {"id": "a", "origins": [{"name": "dead", "address": LOCAL,
                                     "port": dead}]},
            {"id": "b", "monitor": "m",
             "origins": [{"name": "live", "address": LOCAL,
                          "port": live.port}]},
            {"id": "off", "enabled": False,
             "origins": [{"name": "x", "address": LOCAL,
                          "port": live.port}]},
        ],
        "load_balancers": [
            {"name": HOST, "default_pools": ["a", "b"],
             "adaptive_routing": {"failover_across_pools": True}},
            {"name": OFF, "default_pools": ["off"]},
        ],
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    def build(s):
        live = s.origin("live", "gcp")
        dead = mt.free_port()
        dns_port = mt.free_port()
        e = start_edge(s, lambda p, a: _config(p, a, live, dead, dns_port))
        return mt.Env(edge=e, live=live, dead=dead, dns_port=dns_port)

    yield from mt.module_stack(tmp_path_factory, "metrics", build)


@pytest.fixture
def m(env):
    yield from mt.per_test(env)


def wait_metric(edge, cond, what):
    box = {}

    def ok():
        box["m"] = scrape(edge)
        return cond(box["m"])

    mt.wait_for(ok, what=what)
    return box["m"]


def test_format_and_conventions(m):
    mx = scrape(m.edge)
    names = [f.name for f in mx.families]
    assert len(names) == len(set(names)), "a family twice: %r" % names
    for f in mx.families:
        # Every family has HELP and TYPE (the parser says "unknown" and an
        # empty documentation otherwise) and follows the conventions.
        assert f.type in ("counter", "gauge", "histogram"), f
        assert f.documentation, f.name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", f.name), f.name
        assert f.name.startswith("meridian_") or \
            f.name == "process_start_time_seconds", f.name
        if f.type == "counter":
            for s in f.samples:
                assert s.name == f.name + "_total", s
        if "seconds" in f.name:
            assert f.name.endswith("_seconds"), f.name
    for line in mx.text.splitlines():
        if line.startswith("# TYPE "):
            # The text format names counters with their _total suffix.
            n, t = line.split()[2:4]
            assert t != "counter" or n.endswith("_total"), line
    assert mx.get("meridian_build_info", version="0.1.0") == 1
    start = mx.get("process_start_time_seconds")
    assert start and abs(start - time.time()) < 3600, start
    assert mx.get("meridian_config_generation") == 1
    assert mx.get("meridian_edge_info", edge=mt.EDGE_NAME) == 1
    # HEAD has no body; other paths still answer.
    r = mt.request(m.edge.admin, "HEAD", "/metrics", host="admin")
    assert r.status == 200 and r.body == b""


def test_every_metric_is_documented(m):
    """docs/API.md lists every family /metrics serves (its table names
    each in backquotes), so an operator can look any of them up."""
    import os
    doc = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                            "API.md")).read()
    names = [line.split()[2] for line in scrape(m.edge).text.splitlines()
             if line.startswith("# TYPE ")]
    assert len(names) > 30
    missing = [n for n in names if "`%s`" % n not in doc]
    assert not missing, "not in docs/API.md: %s" % missing


def _documented_families():
    """The metric names of docs/API.md's table of series (its rows start
    with the name in backquotes)."""
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                        "API.md")
    with open(path) as f:
        return {m.group(1) for m in
                re.finditer(r"^\| `((?:meridian|process)_[a-z0-9_]+)` \|",
                            f.read(), re.M)}


def test_docs_list_exactly_the_families_of_a_full_edge(stack, tmp_path):
    """The other direction of test_every_metric_is_documented: an edge
    with every listener (http, https, dns, tunnel, admin) serves every family
    docs/API.md lists, and no other, so the table names nothing that
    does not exist."""
    import subprocess
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "c.key")
    r = subprocess.run(
        ["openssl", "req", "-x509", "-nodes", "-days", "30", "-newkey",
         "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", key,
         "-out", cert, "-subj", "/CN=" + HOST,
         "-addext", "subjectAltName=DNS:" + HOST],
        capture_output=True, timeout=60)
    if r.returncode:
        pytest.skip("needs the openssl CLI")
    o = stack.origin("o1")

    def build(port, admin):
        listen = {"http": ["%s:%d" % (LOCAL, port)],
                  "https": ["%s:%d" % (LOCAL, mt.free_port())],
                  "dns": ["%s:%d" % (LOCAL, mt.free_port())],
                  "tunnel": ["%s:%d" % (LOCAL, mt.free_port())],
                  "admin": "%s:%d" % (LOCAL, admin)}
        return {"edge": edge_section(
                    port, admin, workers=1, listen=listen,
                    tls={"certificates": [{"cert": cert, "key": key}]}),
                "zones": [{"name": ZONE}],
                "monitors": [{"id": "m", "type": "tcp", "interval": "1s"}],
                "pools": [{"id": "p", "monitor": "m", "origins": [
                    {"name": "o1", "address": LOCAL, "port": o.port}]}],
                "load_balancers": [{"name": HOST, "default_pools": ["p"]}],
                "rate_limits": [{"name": "r", "requests_per_period": 100}],
                "tunnels": [{"id": "t", "token": "x" * 32}],
                "waf": {"custom_rules": [{"name": "w",
                                          "expression": "false"}],
                        "managed": {"enabled": True}}}
    e = start_edge(stack, build)
    # The names of the text format (counters with their _total), as the
    # table writes them.
    served = {ln.split()[2] for ln in scrape(e).text.splitlines()
              if ln.startswith("# TYPE ")}
    doc = _documented_families()
    assert len(doc) > 40, doc
    assert served - doc == set(), "not in docs/API.md: %s" % (served - doc)
    assert doc - served == set(), \
        "in docs/API.md, not served: %s" % (doc - served)


def test_requests_and_histograms_move(m):
    before = scrape(m.edge)
    n = 7
    with HttpConn(m.edge.port) as c:
        for _ in range(n):
            c.send(req(host=HOST, path="/"))
            r = c.read_response()
            assert r.status == 200 and r.header("X-Origin") == "live", r
    r = request(m.edge.port, host="unknown.example.net")
    assert r.status == 404
    r = request(m.edge.port, host=OFF)
    assert r.status == 503

    # A request is counted when its response is written, which may be a
    # moment after the client read it.
    def moved(mx):
        d = lambda **kw: (mx.total("meridian_requests_total", **kw) -
                          before.total("meridian_requests_total", **kw))
        return d(lb=HOST) >= n and d(lb="") >= 1 and d(lb=OFF) >= 1
    after = wait_metric(m.edge, moved, "request counters")
    d = lambda name, **kw: after.total(name, **kw) - before.total(name, **kw)
    assert d("meridian_requests_total", lb=HOST, pool="b", origin="live",
             code="2xx") == n
    assert d("meridian_requests_total", lb=HOST, code="5xx") == 0
    # Local answers: unknown host before routing, no pool after.
    assert d("meridian_requests_total", lb="", pool="", origin="",
             code="4xx") == 1
    assert d("meridian_requests_total", lb=OFF, pool="", origin="",
             code="5xx") == 1
    # Histograms: per lb, cumulative buckets, count = requests.
    for h in ("meridian_request_duration_seconds",
              "meridian_upstream_response_duration_seconds"):
        assert after.family(h).type == "histogram"
        assert d(h + "_count", lb=HOST) == n
        assert d(h + "_sum", lb=HOST) > 0
        buckets = sorted(
            (float(dict(lbl)["le"]), v)
            for (name, lbl), v in after.samples.items()
            if name == h + "_bucket" and dict(lbl)["lb"] == HOST)
        assert buckets[-1][0] == float("inf")
        assert buckets[-1][1] == after.get(h + "_count", lb=HOST)
        assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))
    # The 503 had no upstream: only its duration is observed.
    assert d("meridian_request_duration_seconds_count", lb=OFF) == 1
    assert d("meridian_upstream_response_duration_seconds_count",
             lb=OFF) == 0


def test_retries_failovers_and_passive_ejection(m):
    # Passive health (3 failures by default) ejects the dead origin of
    # pool a; until then every request fails over to pool b.
    mx = scrape(m.edge)
    if mx.get("meridian_passive_ejections_total", pool="a",
              origin="dead") == 0:
        for _ in range(3):
            r = request(m.edge.port, host=HOST)
            assert r.status == 200 and r.header("X-Origin") == "live"
        mx = wait_metric(
            m.edge, lambda x: x.get("meridian_passive_ejections_total",
                                    pool="a", origin="dead") == 1 and
            x.get("meridian_retries_total", lb=HOST) >= 3,
            "a passive ejection")
    assert mx.get("meridian_origin_ejected", pool="a", origin="dead") == 1
    assert mx.get("meridian_origin_failures_total", pool="a",
                  origin="dead") >= 3
    assert mx.get("meridian_retries_total", lb=HOST) >= 3
    assert mx.get("meridian_failovers_total", lb=HOST) >= 3
    assert mx.get("meridian_origin_failures_total", pool="b",
                  origin="live") == 0
    assert mx.get("meridian_origin_ejected", pool="b", origin="live") == 0


def test_health_gauges_and_checks(m):
    mx = wait_metric(
        m.edge, lambda x: (x.get("meridian_health_checks_total", pool="b",
                                 origin="live", result="success") or 0) >= 2,
        "two passed health checks")
    assert mx.get("meridian_health_checks_total", pool="b", origin="live",
                  result="failure") == 0
    assert mx.get("meridian_origin_healthy", pool="b", origin="live") == 1
    assert mx.get("meridian_health_checker_up") == 1
    assert mx.get("meridian_origin_state", pool="b", origin="live",
                  state="healthy") == 1
    assert mx.get("meridian_origin_state", pool="b", origin="live",
                  state="unhealthy") == 0
    rtt = mx.get("meridian_origin_rtt_seconds", pool="b", origin="live")
    assert rtt is not None and 0 < rtt < 1, rtt
    # No monitor: no checks, no RTT, state unknown.
    assert mx.get("meridian_health_checks_total", pool="a", origin="dead",
                  result="success") is None
    assert mx.get("meridian_origin_rtt_seconds", pool="a",
                  origin="dead") is None
    assert mx.get("meridian_pool_healthy", pool="b") == 1
    assert mx.get("meridian_pool_state", pool="b", state="healthy") == 1
    assert mx.get("meridian_pool_healthy_origins", pool="b") == 1
    assert mx.get("meridian_health_check_targets") == 1


def test_connection_gauges(m):
    with HttpConn(m.edge.port) as c:
        c.send(req(host=HOST))
        assert c.read_response().status == 200
        # The origin connection goes back to the idle pool (right after
        # the response was written).
        mx = wait_metric(m.edge, lambda x: x.get(
            "meridian_upstream_connections", state="idle") >= 1,
            "an idle upstream connection")
        assert mx.get("meridian_client_connections") >= 1
        assert mx.get("meridian_origin_connections", pool="b",
                      origin="live") >= 1
        assert mx.get("meridian_origin_outstanding_requests", pool="b",
                      origin="live") == 0
    wait_metric(m.edge,
                lambda x: x.get("meridian_client_connections") == 0,
                "the client connection to be closed")


def test_dns_queries_by_rcode(m):
    before = scrape(m.edge)
    queries = [("www." + ZONE, dns.rcode.NOERROR),
               ("nx." + ZONE, dns.rcode.NXDOMAIN),
               ("www.example.net", dns.rcode.REFUSED)]
    for name, rcode in queries:
        q = dns.message.make_query(name, "A")
        r = dns.query.udp(q, LOCAL, port=m.dns_port, timeout=5)
        assert r.rcode() == rcode, (name, r)
    d = lambda name, **kw: mx.total(name, **kw) - before.total(name, **kw)
    mx = wait_metric(m.edge, lambda x: x.total(
        "meridian_dns_responses_total") - before.total(
        "meridian_dns_responses_total") >= 3, "DNS counters")
    assert d("meridian_dns_queries_total", transport="udp") == 3
    for rc in ("NOERROR", "NXDOMAIN", "REFUSED"):
        assert d("meridian_dns_responses_total", rcode=rc) == 1, rc
    assert d("meridian_dns_responses_total", rcode="SERVFAIL") == 0


def test_label_values_escaped(stack):
    """An edge name with a quote and a backslash comes back intact through
    the parser (label values are escaped)."""
    o = stack.origin("o1")
    name = 'pop "one" \\ east'

    def build(port, admin):
        return {"edge": edge_section(port, admin, name=name, workers=1),
                "pools": [{"id": "p", "origins": [
                    {"name": "o1", "address": LOCAL, "port": o.port}]}],
                "load_balancers": [{"name": HOST, "default_pools": ["p"]}]}
    e = start_edge(stack, build)
    assert request(e.port, host=HOST).status == 200
    mx = wait_metric(e, lambda x: x.get("meridian_requests_total", lb=HOST,
                                        pool="p", origin="o1", code="2xx"),
                     "the request counted")
    assert mx.get("meridian_edge_info", edge=name) == 1
    assert mx.get("meridian_requests_total", lb=HOST, pool="p",
                  origin="o1", code="2xx") == 1
    # No DNS listener: no DNS families.
    assert mx.family("meridian_dns_queries") is None


def test_counters_survive_a_config_change(stack):
    """SIGHUP with a changed file: the totals of the load balancer, pool
    and origin that stay carry over to the new config (no counter goes
    back); a new pool starts from zero."""
    o = stack.origin("o1")

    def cfg(port, admin, extra_pool=False):
        pools = [{"id": "p", "origins": [
            {"name": "o1", "address": LOCAL, "port": o.port}]}]
        if extra_pool:
            pools.append({"id": "q", "origins": [
                {"name": "o1", "address": LOCAL, "port": o.port}]})
        return {"edge": edge_section(port, admin),
                "pools": pools,
                "load_balancers": [{"name": HOST, "default_pools": ["p"]}]}
    e = start_edge(stack, cfg)
    for _ in range(5):
        assert request(e.port, host=HOST).status == 200
    key = dict(lb=HOST, pool="p", origin="o1", code="2xx")
    before = wait_metric(e, lambda x: x.get("meridian_requests_total",
                                            **key) == 5, "5 requests")
    e.rewrite(mt.to_yaml(cfg(e.port, e.admin, extra_pool=True)) + "\n")
    e.p.send_signal(signal.SIGHUP)
    after = wait_metric(e, lambda x: x.get("meridian_config_generation") == 2,
                        "the new config")
    assert after.get("meridian_requests_total", **key) == 5
    assert after.get("meridian_request_duration_seconds_count",
                     lb=HOST) == 5
    assert after.get("meridian_request_duration_seconds_sum", lb=HOST) == \
        before.get("meridian_request_duration_seconds_sum", lb=HOST)
    assert after.get("meridian_origin_failures_total", pool="q",
                     origin="o1") == 0
    assert request(e.port, host=HOST).status == 200
    wait_metric(e, lambda x: x.get("meridian_requests_total", **key) == 6,
                "the sixth request counted on top")
