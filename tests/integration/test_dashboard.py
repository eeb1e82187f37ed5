"""The dashboard on the admin listener: its three files with their types
and security headers, / sending there, every endpoint its script reads
answering, its script's functions (run under node) turning a real edge's
/metrics, /status and health events into the rows it shows, and its one
action (disable or enable an origin of an API pool) run by node against
the edge."""
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

import meridian_test as mt
from test_health import HOST, get, lab, monitor, org, who  # noqa: F401

ROOT = mt.os.path.dirname(mt.os.path.dirname(mt.os.path.dirname(
    mt.os.path.abspath(__file__))))
APP = mt.os.path.join(ROOT, "src", "edge", "dashboard", "app.js")
TOKEN = "d" * 40
EDIT = "e" * 40


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body


def fetch(e, path, method="GET", token=None):
    rq = urllib.request.Request("http://%s:%d%s" % (mt.LOCAL, e.admin, path),
                                method=method)
    if token:
        rq.add_header("Authorization", "Bearer " + token)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(rq, timeout=mt.WAIT) as r:
            return Answer(r.status, r.headers, r.read())
    except urllib.error.HTTPError as err:
        return Answer(err.code, err.headers, err.read())


@pytest.fixture
def env(lab):
    web = lab.origin("web")
    e = lab.edge([{"id": "web", "monitor": "m", "origins": [org(web)]}],
                 [{"name": HOST, "default_pools": ["web"]}],
                 monitors=[monitor()],
                 api={"tokens": [{"token": TOKEN, "scope": "read"},
                                 {"token": EDIT, "scope": "edit"}]},
                 top={"rate_limits": [{
                     "name": "slow", "requests_per_period": 2,
                     "expression": 'http.request.uri.path eq "/slow"'}],
                      "waf": {"custom_rules": [{
                          "name": "bots",
                          "expression": 'http.user_agent eq "sqlmap"'}],
                          "managed": {"enabled": True}}})
    return e


def test_files_and_headers(env):
    r = fetch(env, "/")
    assert r.status == 302 and r.headers["Location"] == "/dashboard/", \
        r.status
    for path in ("/dashboard", "/dashboard/", "/dashboard/?x=1"):
        r = fetch(env, path)
        assert r.status == 200, (path, r.status)
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and \
            "frame-ancestors 'none'" in csp, csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    page = r.body.decode()
    refs = re.findall(r'(?:src|href)="(/dashboard/[^"]+)"', page)
    assert sorted(refs) == ["/dashboard/app.js", "/dashboard/style.css"]
    types = {"/dashboard/app.js": "text/javascript; charset=utf-8",
             "/dashboard/style.css": "text/css; charset=utf-8"}
    for ref in refs:
        r = fetch(env, ref)
        assert r.status == 200 and r.headers["Content-Type"] == types[ref]
        assert r.headers["Content-Security-Policy"]
    # The served script is the file in the tree, byte for byte.
    with open(APP, "rb") as f:
        assert fetch(env, "/dashboard/app.js").body == f.read()
    r = fetch(env, "/dashboard/app.js", method="HEAD")
    assert r.status == 200 and r.body == b"" and \
        int(r.headers["Content-Length"]) > 1000
    assert fetch(env, "/dashboard/nope.js").status == 404
    assert fetch(env, "/dashboard/../status").status == 404
    # 405 names what is allowed (RFC 9110 15.5.6: Allow is a MUST).
    for path in ("/dashboard/app.js", "/dashboard/", "/status"):
        r = fetch(env, path, method="POST")
        assert r.status == 405 and r.headers["Allow"] == "GET, HEAD", \
            (path, r.status, dict(r.headers))


def test_every_endpoint_the_script_reads(env):
    with open(APP) as f:
        src = f.read()
    paths = set(re.findall(r'"(/(?:status|metrics|client/v4/)[^"]*)"', src))
    assert {"/metrics", "/status?format=json"} <= paths, paths
    assert any(p.startswith("/client/v4/") for p in paths), paths
    for p in paths:
        token = TOKEN if p.startswith("/client/v4/") else None
        r = fetch(env, p, token=token)
        assert r.status == 200, (p, r.status, r.body[:200])
        if p.startswith("/client/v4/"):
            # Without the token the API refuses: the page asks for one.
            assert fetch(env, p).status in (401, 403)


NODE = """
const d = require(process.argv[1]);
const i = JSON.parse(require("fs").readFileSync(0, "utf8"));
const a = d.lbCounters(d.parseMetrics(i.m1));
const s2 = d.parseMetrics(i.m2);
const b = d.lbCounters(s2);
console.log(JSON.stringify({
  rates: d.lbRates(a, b, 2),
  pools: d.poolRows(i.status),
  events: d.eventRows(i.events.result),
  rl: d.rateLimits(s2),
  waf: d.wafRules(s2),
  wm: d.wafManaged(s2),
  gen: d.single(s2, "meridian_config_generation"),
}));
"""


def test_script_turns_real_answers_into_rows(env):
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node is installed with npm by scripts/deps.sh"
    m1 = fetch(env, "/metrics").body.decode()
    for _ in range(6):
        assert who(get(env, "/")) == "web"
    statuses = [get(env, "/slow").status for _ in range(3)]
    assert statuses == [200, 200, 429], statuses
    assert get(env, "/", host="unknown.example").status == 404
    assert get(env, "/", headers=[("User-Agent", "sqlmap")]).status == 403
    # The managed rules: a SQL injection the CRS denies.
    assert get(env, "/?id=1%27%20OR%20%271%27=%271").status == 403

    def lb_requests(text):
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
                   if ln.startswith("meridian_requests_total{") and
                   'lb="%s"' % HOST in ln)
    # A worker counts a request just after writing its answer: wait for
    # the 11 above (6 + 3 + the two 403) to be counted.
    before = lb_requests(m1)
    m2 = mt.wait_for(lambda: (lambda t: t if lb_requests(t) - before == 11
                              else None)(fetch(env, "/metrics").body.decode()),
                     what="the requests counted")
    status = json.loads(fetch(env, "/status?format=json").body)
    path = "/client/v4/user/load_balancing_analytics/events?per_page=20"

    def events_in():
        ev = json.loads(fetch(env, path, token=TOKEN).body)
        return ev if len(ev["result"]) >= 2 else None
    # The monitor's verdicts: the origin's and the pool's events.
    events = mt.wait_for(events_in, what="health events")
    r = subprocess.run([node, "-e", NODE, APP], capture_output=True,
                       timeout=60, input=json.dumps(
                           {"m1": m1, "m2": m2, "status": status,
                            "events": events}).encode())
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout)
    rows = {x["lb"]: x for x in out["rates"]}
    # 8 answered 2xx, a 429 and two 403 in 2 s (the dt given).
    assert rows[HOST]["rps"] == 5.5, rows
    assert rows[HOST]["c2xx"] == 4 and rows[HOST]["c4xx"] == 1.5, rows
    assert rows[HOST]["p50"] is not None and rows[HOST]["p50"] > 0
    assert rows["(no load balancer)"]["c4xx"] == 0.5, rows
    assert out["rl"] == {"slow": {"over": 1, "keys": 1}}, out["rl"]
    assert out["waf"] == {"bots": {"action": "block", "matches": 1}}, out
    assert out["gen"] == 1
    wm = out["wm"]
    assert wm["rules"] > 500 and wm["blocked"] == 1, wm
    # every routed request but the custom rule's 403 and the 429s ran them
    assert wm["inspected"] >= 9 and wm["detected"] == 0, wm
    pools = out["pools"]
    assert [(p["kind"], p["name"]) for p in pools] == \
        [("pool", "web"), ("origin", "web")], pools
    want = status["pools"][0]["origins"][0]
    assert pools[1]["health"] == want["health"]
    assert pools[1]["address"] == "%s:%d" % (want["address"], want["port"])
    assert len(out["events"]) == sum(
        max(len(p.get("origins") or []), 1)
        for ev in events["result"] for p in ev["pool"])
    assert {(x["pool"], x["origin"], x["health"]) for x in out["events"]} \
        >= {("web", "web", "healthy"), ("web", "", "healthy")}, out["events"]


ACTION = """
const d = require(process.argv[1]);
const [base, token, pool, origin, enabled] = process.argv.slice(2);
const f = (path, init) => fetch(base + path, init);
d.setOriginEnabled(f, token, pool, origin, enabled === "true")
  .then((p) => console.log(JSON.stringify({ok: p.origins})),
        (e) => console.log(JSON.stringify({err: e.message})));
"""


def run_action(env, token, pool, origin, enabled):
    node = shutil.which("node") or shutil.which("nodejs")
    r = subprocess.run([node, "-e", ACTION, APP,
                        "http://%s:%d" % (mt.LOCAL, env.admin), token, pool,
                        origin, "true" if enabled else "false"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def test_action_disables_and_enables_an_origin(env, lab):
    a, b = lab.origin("a"), lab.origin("b")
    body = json.dumps({"name": "api-pool", "origins": [
        {"name": "a", "address": mt.LOCAL, "port": a.port},
        {"name": "b", "address": mt.LOCAL, "port": b.port}]}).encode()
    rq = urllib.request.Request(
        "http://%s:%d/client/v4/accounts/default/load_balancers/pools"
        % (mt.LOCAL, env.admin), data=body, method="POST",
        headers={"Authorization": "Bearer " + EDIT,
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(rq, timeout=mt.WAIT) as r:
        pid = json.loads(r.read())["result"]["id"]
    # The accounts list the script starts from.
    acc = json.loads(fetch(env, "/client/v4/accounts", token=TOKEN).body)
    assert [x["id"] for x in acc["result"]] == ["default"], acc

    def enabled_in_status():
        st = json.loads(fetch(env, "/status?format=json").body)
        p = [x for x in st["pools"] if x["id"] == pid][0]
        return {o["name"]: o["enabled"] for o in p["origins"]}

    out = run_action(env, EDIT, pid, "b", False)
    assert [(o["name"], o["enabled"]) for o in out["ok"]] == \
        [("a", True), ("b", False)], out
    assert enabled_in_status() == {"a": True, "b": False}
    out = run_action(env, EDIT, pid, "b", True)
    assert enabled_in_status() == {"a": True, "b": True}, out
    # A read token, an unknown origin and a pool of the file are refused
    # with the API's own words, and change nothing.
    out = run_action(env, TOKEN, pid, "a", False)
    assert "err" in out and "edit" in out["err"].lower(), out
    out = run_action(env, EDIT, pid, "zz", False)
    assert out == {"err": "pool %s has no origin zz" % pid}, out
    out = run_action(env, EDIT, "web", "web", False)
    assert "err" in out and "file" in out["err"], out
    assert enabled_in_status() == {"a": True, "b": True}


# The page's own code (the DOM half of app.js) on a minimal document: the
# elements index.html has, tables whose rows can be read back, and fetch
# aimed at the edge. It loads, refreshes once, and prints what it shows.
DOM = r"""
const fs = require("fs");
const [app, html, base, token] = process.argv.slice(1);
class El {
  constructor(tag, id) { this.tagName = tag; this.id = id; this.children = [];
    this.hidden = false; this.className = ""; this._text = ""; this.value = "";
    this.listeners = {}; this.parent = null; }
  set textContent(t) { this._text = String(t); this.children = []; }
  get textContent() { return this._text + this.children.map((c) => c.textContent).join(""); }
  appendChild(c) { c.parent = this; this.children.push(c); return c; }
  replaceWith(n) { const p = this.parent; const i = p.children.indexOf(this);
    n.parent = p; p.children[i] = n; if (p.tBodies) p.tBodies[0] = n; }
  addEventListener(ev, f) { this.listeners[ev] = f; }
}
const byId = {};
for (const m of fs.readFileSync(html, "utf8").matchAll(/<(\w+)[^>]*\sid="([^"]+)"([^>]*)>/g)) {
  const el = new El(m[1], m[2]);
  el.hidden = /\shidden/.test(m[0]);
  if (m[1] === "table") { const tb = new El("tbody"); el.appendChild(tb); el.tBodies = [tb]; }
  byId[m[2]] = el;
}
const store = {};
if (token) store["meridian-token"] = token;
global.sessionStorage = { getItem: (k) => store[k] || null, setItem: (k, v) => { store[k] = v; } };
global.document = { getElementById: (id) => byId[id], createElement: (t) => new El(t) };
global.window = { confirm: () => true };
const realFetch = fetch;
global.fetch = (path, init) => realFetch(base + path, init);
global.setInterval = () => 0;
require(app);
const rows = (id) => byId[id].tBodies[0].children.map((tr) => tr.children.map((td) => td.textContent));
let tries = 0;
(function done() {
  if ((byId.pools.tBodies[0].children.length && byId.lbs.tBodies[0].children.length) || ++tries > 100) {
    console.log(JSON.stringify({ edge: byId.edge.textContent, summary: byId.summary.textContent,
      error: byId.error.hidden ? null : byId.error.textContent, tokenForm: !byId["token-form"].hidden,
      lbs: rows("lbs"), pools: rows("pools"), events: rows("events"), rls: rows("rls"),
      wafs: rows("wafs"), wafm: rows("wafm"), tunnels: rows("tunnels"),
      wafmHidden: byId["wafm-section"].hidden,
      rlHidden: byId["rl-section"].hidden, tunHidden: byId["tun-section"].hidden }));
  } else setTimeout(done, 50);
})();
"""

HTML = mt.os.path.join(ROOT, "src", "edge", "dashboard", "index.html")


def render(env, token):
    node = shutil.which("node") or shutil.which("nodejs")
    r = subprocess.run([node, "-e", DOM, APP, HTML,
                        "http://%s:%d" % (mt.LOCAL, env.admin), token],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def test_page_renders_what_the_edge_says(env):
    mt.wait_for(lambda: json.loads(fetch(
        env, "/client/v4/user/load_balancing_analytics/events",
        token=TOKEN).body)["result"], what="a health event")
    out = render(env, TOKEN)
    assert out["error"] is None, out
    assert out["edge"] == mt.EDGE_NAME
    assert out["summary"].startswith("config generation 1"), out["summary"]
    assert [r[0] for r in out["lbs"]] == [HOST], out["lbs"]
    names = [r[0] for r in out["pools"]]
    assert names == ["web", "web"], out["pools"]  # the pool, its origin
    assert out["pools"][1][2] in ("healthy", "unknown"), out["pools"]
    assert out["pools"][1][6] == "disable"  # the action's button
    assert not out["rlHidden"] and out["rls"][0][0] == "slow", out["rls"]
    assert [r[:2] for r in out["wafs"]] == [["bots", "block"]], out["wafs"]
    assert not out["wafmHidden"] and len(out["wafm"]) == 1, out["wafm"]
    assert int(out["wafm"][0][0]) > 500, out["wafm"]  # the rules loaded
    assert out["tunHidden"] and out["tunnels"] == [], out  # no tunnels
    assert out["events"] and not out["tokenForm"], out
    # Without a token the API refuses: the page asks for one and still
    # shows everything else.
    out = render(env, "")
    assert out["tokenForm"] and out["error"] is None and out["pools"], out
