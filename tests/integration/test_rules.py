"""Load balancer rules (Cloudflare's rules[]) against the real binary:
path, header and client-address conditions steering to other pools over
HTTP/1.1 and HTTP/2, the last matching rule winning, fixed responses
(maintenance page, redirect, HEAD), DNS-only answers steered by the
client subnet with an overridden TTL, requests counted under the pool a
rule chose, and rules changed live through the API, where a bad condition
is refused and changes nothing."""
import json
import re
import urllib.request

import dns.edns
import dns.message
import dns.query
import pytest

import meridian_test as mt
from test_api import Api
from test_health import HOST, SrcConn, get, lab, org, who  # noqa: F401
from test_h2 import curl2
from test_tls import certs

DNS_LB = "dns.example.com"

RULES = [
    {"name": "api", "condition":
     'starts_with(http.request.uri.path, "/api/")',
     "overrides": {"default_pools": ["api"]}},
    {"name": "canary", "condition":
     'any(http.request.headers["x-canary"][*] eq "1")',
     "overrides": {"default_pools": ["canary"]}},
    {"name": "from-127.0.0.2", "condition": "ip.src in {127.0.0.2/32}",
     "overrides": {"default_pools": ["canary"]}},
    {"name": "maintenance", "condition": 'http.request.uri.path eq "/admin"',
     "fixed_response": {"status_code": 503, "message_body": "back soon",
                        "content_type": "text/plain; charset=utf-8"}},
    {"name": "moved", "condition": 'http.request.uri.path eq "/old"',
     "fixed_response": {"status_code": 301,
                        "location": "https://lb.example.com/new"}},
    {"name": "never", "disabled": True, "condition": "true",
     "fixed_response": {"status_code": 418}},
]


@pytest.fixture
def env(lab, tmp_path):
    web, api, canary = (lab.origin(n) for n in ("web", "api", "canary"))
    pools = [{"id": "web", "origins": [org(web)]},
             {"id": "api", "origins": [org(api)]},
             {"id": "canary", "origins": [org(canary)]},
             # DNS-only answers: addresses nobody needs to serve.
             {"id": "dweb", "origins": [{"name": "d1",
                                         "address": "127.0.0.11"}]},
             {"id": "dasia", "origins": [{"name": "d2",
                                          "address": "127.0.0.12"}]}]
    lbs = [{"name": HOST, "default_pools": ["web"], "rules": RULES},
           {"name": DNS_LB, "proxied": False, "ttl": 60,
            "default_pools": ["dweb"],
            "rules": [{"name": "asia", "condition":
                       "ip.src in {127.3.0.0/16}",
                       "overrides": {"default_pools": ["dasia"],
                                     "ttl": 7}}]}]
    hp, dp = mt.free_port(), mt.free_port()
    e = lab.edge(pools, lbs, https_port=hp, dns_port=dp,
                 zones=[{"name": "example.com"}],
                 edge_extra={"tls": certs(tmp_path), "access_log": {
                     "path": str(tmp_path / "access.log")}})
    e.https, e.dns = hp, dp
    e.alog = tmp_path / "access.log"
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    return e


def test_conditions_choose_the_pool(env):
    assert who(get(env, "/")) == "web"
    assert who(get(env, "/api/items?x=1")) == "api"
    assert who(get(env, "/apix")) == "web"
    assert who(get(env, "/", headers=[("X-Canary", "1")])) == "canary"
    assert who(get(env, "/", headers=[("X-Canary", "0")])) == "web"
    # Both match: canary comes later, its default_pools win.
    assert who(get(env, "/api/items", headers=[("X-Canary", "1")])) == \
        "canary"
    # ip.src: the connection's address.
    assert who(get(env, "/", src="127.0.0.2")) == "canary"
    assert who(get(env, "/", src="127.0.0.3")) == "web"


def test_fixed_responses(env):
    r = get(env, "/admin")
    assert r.status == 503, r
    assert r.body == b"back soon"
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    r = get(env, "/old")
    assert r.status == 301, r
    assert r.header("Location") == "https://lb.example.com/new"
    assert r.header("Content-Length") == "0"
    # HEAD: the same head, no body; and the connection goes on.
    with SrcConn(env.port) as c:
        c.send(mt.req("HEAD", "/admin", HOST))
        r = c.read_response("HEAD")
        assert r.status == 503 and r.body == b""
        assert r.header("Content-Length") == "9"
        c.send(mt.req("GET", "/api/x", HOST))
        assert who(c.read_response()) == "api"
    # The disabled rule (418 for everything) never answers.
    assert get(env, "/x").status == 200


def test_http2(env):
    rc, body, status, ver = curl2(env.https, "/api/items")
    assert (rc, status, ver) == (0, "200", "2"), (rc, body)
    rc, body, status, ver = curl2(env.https, "/admin")
    assert (rc, status, ver, body) == (0, "503", "2", b"back soon")
    rc, body, status, ver = curl2(env.https, "/",
                                  extra=["-H", "x-canary: 1"])
    assert (rc, status) == (0, "200")
    assert b"canary" in body, body


def dns_ask(env, ecs=None):
    opts = [dns.edns.ECSOption(ecs, 24)] if ecs else []
    q = dns.message.make_query(DNS_LB, "A", use_edns=0, options=opts)
    r = dns.query.udp(q, mt.LOCAL, port=env.dns, timeout=mt.WAIT)
    addrs = sorted(rr.address for rs in r.answer for rr in rs)
    ttl = r.answer[0].ttl if r.answer else None
    scope = [o.scopelen for o in r.options if isinstance(o, dns.edns.ECSOption)]
    return addrs, ttl, scope


def test_dns_only_rules(env):
    # The resolver (127.0.0.1) matches nothing: the load balancer as is.
    assert dns_ask(env) == (["127.0.0.11"], 60, [])
    # A subnet in 127.3/16: the rule's pool and TTL, scoped to the subnet
    # (the answer depends on it).
    assert dns_ask(env, "127.3.4.0") == (["127.0.0.12"], 7, [24])
    # No match, but the rule read the subnet: that answer holds for the
    # subnet too, not for every client (scope 0).
    assert dns_ask(env, "127.4.0.0") == (["127.0.0.11"], 60, [24])


def metric(env, pool):
    with urllib.request.urlopen("http://%s:%d/metrics" % (mt.LOCAL,
                                                          env.admin),
                                timeout=mt.WAIT) as r:
        text = r.read().decode()
    n = 0
    for m in re.finditer(r'^meridian_requests_total\{lb="%s",pool="%s",'
                         r'origin="[^"]*",code="2xx"\} (\d+)$'
                         % (re.escape(HOST), pool), text, re.M):
        n += int(m.group(1))
    return n


def rule_matches(env):
    with urllib.request.urlopen("http://%s:%d/metrics" % (mt.LOCAL,
                                                          env.admin),
                                timeout=mt.WAIT) as r:
        text = r.read().decode()
    return {(m.group(1), m.group(2)): int(m.group(3)) for m in re.finditer(
        r'^meridian_rule_matches_total\{lb="([^"]*)",rule="([^"]*)"\} '
        r'(\d+)$', text, re.M)}


def test_counted_under_the_rules_pool(env):
    before = metric(env, "api")
    for _ in range(3):
        assert who(get(env, "/api/x")) == "api"
    mt.wait_for(lambda: metric(env, "api") >= before + 3,
                what="requests counted under pool api")


def test_rule_matches_metric(env):
    m = rule_matches(env)
    # Every rule has a series, the disabled one too.
    assert {r["name"] for r in RULES} <= {k[1] for k in m if k[0] == HOST}
    assert m[(DNS_LB, "asia")] == 0
    get(env, "/api/a", headers=[("X-Canary", "1")])  # api and canary
    get(env, "/admin")
    dns_ask(env, "127.3.9.0")
    want = {(HOST, "api"): 1, (HOST, "canary"): 1, (HOST, "maintenance"): 1,
            (HOST, "moved"): 0, (HOST, "never"): 0, (DNS_LB, "asia"): 1}
    mt.wait_for(lambda: all(rule_matches(env)[k] == v
                            for k, v in want.items()),
                what="rule matches counted: %r" % want)


def test_access_log_names_the_rule(env):
    get(env, "/api/logged")
    get(env, "/admin")
    get(env, "/plain")

    def lines():
        if not env.alog.exists():
            return None
        got = {}
        for ln in env.alog.read_text().splitlines():
            d = json.loads(ln)
            got[d["path"]] = d
        return got if {"/api/logged", "/admin", "/plain"} <= set(got) \
            else None
    got = mt.wait_for(lines, what="three access log lines")
    assert got["/api/logged"]["rule"] == "api"
    assert got["/api/logged"]["lb"] == HOST
    assert got["/api/logged"]["pool"] == "api"
    assert got["/admin"]["rule"] == "maintenance"
    assert got["/admin"]["status"] == 503
    assert "rule" not in got["/plain"]


def test_api_changes_rules_live(env):
    api = Api(env.admin)
    lbs = "/client/v4/zones/example.com/load_balancers"
    body = {"name": "live.example.com", "default_pools": ["web"],
            "rules": [{"condition": 'http.request.method eq "POST"',
                       "overrides": {"default_pools": ["api"]}}]}
    made = api.ok("POST", lbs, body)
    assert made["rules"][0]["overrides"] == {"default_pools": ["api"]}

    def post_goes_to_api():
        with SrcConn(env.port) as c:
            c.send(mt.req("POST", "/", "live.example.com", body=b"x"))
            return who(c.read_response("POST")) == "api"
    mt.wait_for(post_goes_to_api, what="the new rule applied")
    assert who(get(env, "/", host="live.example.com")) == "web"

    # A bad condition: 400 naming it, and nothing changes.
    bad = dict(body, rules=[{"condition": 'http.request.metod eq "POST"',
                             "overrides": {"default_pools": ["canary"]}}])
    st, out = api.call("PUT", "%s/%s" % (lbs, made["id"]), bad)
    assert st == 400, out
    msg = json.dumps(out["errors"])
    assert "unknown field 'http.request.metod'" in msg, msg
    assert "did you mean 'http.request.method'" in msg, msg
    assert post_goes_to_api()
    got = api.ok("GET", "%s/%s" % (lbs, made["id"]))
    assert got["rules"] == made["rules"]


def test_config_change_with_many_rules(lab):
    """A config change carries every rule's counter: with more rules than
    the edge has routes, load balancers and origins together, the carry
    used to loop for ever holding the swap lock, so no change applied
    again (API writes and SIGHUP hung)."""
    web = lab.origin("web")
    rules = [{"condition": 'http.request.uri.path eq "/r%d"' % i,
              "fixed_response": {"status_code": 200,
                                 "message_body": "r%d" % i}}
             for i in range(40)]
    e = lab.edge([{"id": "web", "origins": [org(web)]}],
                 [{"name": HOST, "default_pools": ["web"], "rules": rules}])
    assert get(e, "/r39").body == b"r39"
    api = Api(e.admin)
    for i in range(2):  # the second change carries what the first did
        p = api.ok("POST", "/client/v4/accounts/default/load_balancers/"
                   "pools", {"name": "more%d" % i, "origins": [org(web)]})
        api.ok("POST", "/client/v4/zones/example.com/load_balancers",
               {"name": "more%d.example.com" % i,
                "default_pools": [p["id"]]})
        mt.wait_for(lambda: get(e, host="more%d.example.com" % i)
                    .status == 200, what="load balancer %d applied" % i)
    assert get(e, "/r39").body == b"r39"
    mt.wait_for(lambda: rule_matches(e).get((HOST, "#39")) == 2,
                what="rule #39's two matches carried")


def test_dns_scope_of_a_country_rule(lab):
    """A rule reading ip.src.country from the ECS subnet: the answer holds
    only for the part of the subnet that geo places as the subnet's own
    address, as steering by the subnet does (RFC 7871 §7.2.1). It was
    the source prefix, so a resolver cached the answer for the whole
    subnet, Japan included."""
    dp = mt.free_port()
    pools = [{"id": "dweb", "origins": [{"name": "d1",
                                         "address": "127.0.0.11"}]},
             {"id": "djp", "origins": [{"name": "d2",
                                        "address": "127.0.0.12"}]}]
    lbs = [{"name": DNS_LB, "proxied": False, "ttl": 60,
            "default_pools": ["dweb"],
            "rules": [{"name": "jp", "condition": 'ip.src.country eq "JP"',
                       "overrides": {"default_pools": ["djp"]}}]}]
    e = lab.edge(pools, lbs, dns_port=dp, zones=[{"name": "example.com"}],
                 geo={"networks": {"127.3.0.0/16": {"country": "JP"}}})
    e.dns = dp

    def ask(addr, source):
        q = dns.message.make_query(DNS_LB, "A", use_edns=0, options=[
            dns.edns.ECSOption(addr, source)])
        r = dns.query.udp(q, mt.LOCAL, port=dp, timeout=mt.WAIT)
        scope = [o.scopelen for o in r.options
                 if isinstance(o, dns.edns.ECSOption)]
        return sorted(rr.address for rs in r.answer for rr in rs), scope

    assert ask("127.3.0.0", 24) == (["127.0.0.12"], [24])
    # 127.2.0.0/15 holds Japan's 127.3/16; 127.2.0.0 is not in it.
    assert ask("127.2.0.0", 15) == (["127.0.0.11"], [16])


def test_a_catch_all_maintenance_page_lets_acme_challenges_through(lab):
    """A fixed_response for everything still leaves ACME http-01
    challenges to the origins, as https_redirect does: certificates must
    renew while the site is down for maintenance."""
    o = lab.origin("web")
    e = lab.edge([{"id": "web", "origins": [org(o)]}],
                 [{"name": HOST, "default_pools": ["web"],
                   "rules": [{"name": "down", "fixed_response": {
                       "status_code": 503, "message_body": "maintenance"}}]}])
    r = get(e, "/")
    assert (r.status, r.body) == (503, b"maintenance"), r
    r = get(e, "/.well-known/acme-challenge/tok3n")
    assert who(r) == "web", r
    r = get(e, "/.well-known/acme-challenge-not/x")
    assert r.status == 503, r


def test_conditions_read_the_normalized_path_and_host(env):
    """`/%61dmin`, `//admin` and `/x/../admin` are /admin to an origin:
    the maintenance rule (path eq "/admin") answers them too (the origin
    gets a request as sent)."""
    for path in ("/%61dmin", "//admin", "/x/../admin", "/x/%2e%2e/admin",
                 "/admin?x=1"):
        r = get(env, path)
        assert (r.status, r.body) == (503, b"back soon"), (path, r)
    # Not /admin: an encoded slash stays one, and case is kept.
    for path in ("/%2fadmin", "/Admin", "/admin/x"):
        assert get(env, path).status == 200, path
    # The api rule (starts_with path "/api/") on a dodged spelling.
    assert who(get(env, "/x/..//api/items")) == "api"


def test_http2_early_answer_to_a_large_upload(env):
    """A fixed_response answers before the request body is in. Over HTTP/2
    the edge reads and drops the rest of the body (as nginx does) instead
    of resetting the stream at once, which curl (7.88) takes as a failure
    and shows nothing; past 1 MiB it resets, after the answer."""
    for size in (200000, 3 << 20):
        rc, body, status, ver = curl2(env.https, "/admin",
                                      data=b"x" * size)
        assert (rc, status, ver, body) == (0, "503", "2", b"back soon"), \
            (size, rc, status, body[:100])
    # The connection's other streams are not disturbed: the edge serves.
    rc, body, status, _ = curl2(env.https, "/api/items")
    assert (rc, status) == (0, "200"), body
