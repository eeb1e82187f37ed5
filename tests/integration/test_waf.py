"""Firewall custom rules (waf.custom_rules) against the real binary:
blocking by user agent, by country and by path (normalized), the edge's
403 or the rule's own answer, log-only rules named in the access log,
skip rules that let a client past the later rules and the rate limits,
HTTP/2, ACME challenges, the metric, and a reload that changes them."""
import json
import re
import urllib.request

import meridian_test as mt
from test_h2 import curl2
from test_health import HOST, get, lab, org, who  # noqa: F401
from test_reload import count, hup_and_wait
from test_tls import certs

RULES = [
    {"name": "office", "expression": "ip.src in {127.0.0.5/32}",
     "action": "skip"},
    {"name": "bots", "expression": 'lower(http.user_agent) contains "sqlmap"'},
    {"name": "geo", "expression": 'ip.src.country eq "JP"',
     "response": {"status_code": 451, "content": "not here",
                  "content_type": "text/plain; charset=utf-8"}},
    {"name": "admin", "expression": 'http.request.uri.path eq "/admin"'},
    {"name": "watch", "expression": 'http.request.method eq "DELETE"',
     "action": "log"},
    {"name": "off", "expression": "true", "disabled": True},
]


def start(lab, tmp_path, rules=RULES, rate_limits=()):
    web = lab.origin("web")
    hp = mt.free_port()
    e = lab.edge([{"id": "web", "origins": [org(web)]}],
                 [{"name": HOST, "default_pools": ["web"]}],
                 https_port=hp,
                 geo={"networks": {"127.2.0.0/16": {"country": "JP"}}},
                 edge_extra={"tls": certs(tmp_path), "access_log": {
                     "path": str(tmp_path / "access.log")}},
                 top={"waf": {"custom_rules": list(rules)},
                      "rate_limits": list(rate_limits)})
    e.https = hp
    e.alog = tmp_path / "access.log"
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    return e


def matches(e, rule):
    with urllib.request.urlopen("http://%s:%d/metrics" % (mt.LOCAL, e.admin),
                                timeout=mt.WAIT) as r:
        text = r.read().decode()
    m = re.search(r'^meridian_waf_rule_matches_total\{rule="%s",'
                  r'action="[a-z]+"\} (\d+)$' % re.escape(rule), text, re.M)
    return int(m.group(1)) if m else None


def test_block_log_skip(lab, tmp_path):
    e = start(lab, tmp_path)
    assert who(get(e, "/")) == "web"
    r = get(e, "/", headers=[("User-Agent", "SQLMap/1.7")])
    assert r.status == 403 and b"blocked by the firewall" in r.body, r
    r = get(e, "/", src="127.2.0.1")
    assert (r.status, r.body) == (451, b"not here"), r
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    # The path as origins read it: /%61dmin and //admin are /admin.
    for path in ("/admin", "/%61dmin", "//admin", "/x/../admin"):
        assert get(e, path).status == 403, path
    assert who(get(e, "/admins")) == "web"
    # skip: the office passes the later rules.
    assert who(get(e, "/admin", src="127.0.0.5",
                   headers=[("User-Agent", "sqlmap")])) == "web"
    # log: the request goes on, and is named.
    with mt.HttpConn(e.port) as c:
        c.send(mt.req("DELETE", "/thing", HOST))
        assert who(c.read_response()) == "web"
    assert matches(e, "bots") == 1 and matches(e, "geo") == 1
    assert matches(e, "admin") == 4 and matches(e, "watch") == 1
    assert matches(e, "office") == 1 and matches(e, "off") == 0

    def lines():
        if not e.alog.exists():
            return None
        ls = [json.loads(x) for x in e.alog.read_text().splitlines()]
        return ls if len(ls) >= 10 else None
    logged = mt.wait_for(lines, what="10 access log lines")
    by = {}
    for x in logged:
        by.setdefault(x.get("waf_rule"), []).append(x["status"])
    assert sorted(by["admin"]) == [403] * 4, by
    assert by["watch"] == [200] and by["office"] == [200], by
    assert by["geo"] == [451] and by["bots"] == [403], by


def test_skip_passes_rate_limits_and_http2(lab, tmp_path):
    e = start(lab, tmp_path, rate_limits=[{
        "name": "all", "requests_per_period": 1, "characteristics": []}])
    assert get(e, "/").status == 200
    assert get(e, "/").status == 429
    for _ in range(3):  # the office is never limited
        assert who(get(e, "/", src="127.0.0.5")) == "web"
    # HTTP/2: the same rules.
    rc, body, status, ver = curl2(e.https, "/admin")
    assert (rc, status, ver) == (0, "403", "2"), body
    rc, body, status, ver = curl2(e.https, "/",
                                  extra=["-A", "sqlmap/1.0"])
    assert (rc, status) == (0, "403"), body
    # ACME challenges pass the firewall as they pass rate limits.
    r = get(e, "/.well-known/acme-challenge/x",
            headers=[("User-Agent", "sqlmap")], src="127.0.0.6")
    assert who(r) == "web", r


def test_reload_changes_rules_and_keeps_counts(lab, tmp_path):
    e = start(lab, tmp_path)
    assert get(e, "/admin").status == 403
    n = count(e, r"SIGHUP: reloaded")
    e.cfg["waf"] = {"custom_rules": [
        {"name": "admin", "expression": 'http.request.uri.path eq "/x"'}]}
    e.rewrite(mt.to_yaml(e.cfg) + "\n")
    hup_and_wait(e, r"SIGHUP: reloaded", n)
    assert who(get(e, "/admin")) == "web"
    assert get(e, "/x").status == 403
    assert matches(e, "admin") == 2
    assert matches(e, "bots") is None
    # A bad rule is refused with its place, and the running rules stay.
    e.cfg["waf"] = {"custom_rules": [
        {"name": "bad", "expression": "http.user_agnt contains \"x\""}]}
    e.rewrite(mt.to_yaml(e.cfg) + "\n")
    bad = r"did you mean 'http.user_agent'"
    hup_and_wait(e, bad, count(e, bad))
    assert get(e, "/x").status == 403
