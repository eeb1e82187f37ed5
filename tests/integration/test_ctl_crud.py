"""`meridian ctl` over the v4 admin API (issue 5, CLI): every command
(monitors, pools, lbs: list/get/create/update/patch/delete/references,
pools health, events), objects from -f YAML and JSON and from --set,
--json output, the API's error messages, and the exit codes scripts rely
on: 0 ok, 1 API error, 2 usage, 3 server unreachable, 4 not found."""
import json
import os
import re
import subprocess

import pytest

import meridian_test as mt
from test_api import api_edge
from test_health import HOST, get, lab, monitor, org  # noqa: F401
from test_health import wait_health

HEX32 = re.compile(r"^[0-9a-f]{32}$")
OK, API_ERROR, USAGE, DOWN, NOT_FOUND = 0, 1, 2, 3, 4


class Ctl:
    """Runs the real binary: `meridian ctl --server URL ...`."""

    def __init__(self, admin=None, token=None, zone=None):
        self.server = "http://%s:%d" % (mt.LOCAL, admin) if admin else None
        self.token = token
        self.zone = zone

    def run(self, *args, stdin=None, env=None, server=True):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("MERIDIAN_") or k in ("MERIDIAN_BIN",
                                                       "MERIDIAN_ASAN")}
        e.update(env or {})
        pre = []
        if server and self.server:
            pre += ["--server", self.server]
        if self.token:
            pre += ["--token", self.token]
        if self.zone:
            pre += ["--zone", self.zone]
        return subprocess.run([mt.BIN, "ctl"] + pre + [str(a) for a in args],
                              input=stdin, capture_output=True, text=True,
                              timeout=mt.WAIT * 2, env=e)

    def ok(self, *args, **kw):
        r = self.run(*args, **kw)
        assert r.returncode == OK, (args, r.returncode, r.stderr)
        return r

    def js(self, *args, **kw):
        """Run with --json: the API's result, parsed."""
        return json.loads(self.ok("--json", *args, **kw).stdout)

    def fails(self, code, *args, **kw):
        r = self.run(*args, **kw)
        assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
        assert r.stdout == "", r.stdout
        return r.stderr


def rows(text):
    """A table as a list of split lines (the header first)."""
    return [line.split() for line in text.splitlines() if line.strip()]


@pytest.fixture
def env(lab, tmp_path):
    o1, o2 = lab.origin("o1"), lab.origin("o2")
    ed = api_edge(lab, tmp_path,
                  pools=[{"id": "filepool", "origins": [org(o1)]}],
                  lbs=[{"name": HOST, "default_pools": ["filepool"]}])
    return ed, Ctl(ed.admin, zone="example.com"), o1, o2


def test_monitors_every_verb_with_set_and_json_file(env, tmp_path):
    ed, ctl, _, _ = env
    m = ctl.js("monitors", "create", "--set", "type=http",
               "--set", "path=/healthz", "--set", "interval=15",
               "--set", "description=web check",
               "--set", 'header.Host=["mon.example.com"]')
    assert HEX32.match(m["id"]), m
    assert m["type"] == "http" and m["interval"] == 15
    assert m["description"] == "web check" and m["source"] == "api"
    assert m["header"] == {"Host": ["mon.example.com"]}
    # The human table: a header and one row per monitor.
    t = rows(ctl.ok("monitors", "list").stdout)
    assert t[0] == ["ID", "TYPE", "PATH", "INTERVAL", "DESCRIPTION",
                    "SOURCE"], t
    assert t[1][:4] == [m["id"], "http", "/healthz", "15s"] and \
        t[1][-1] == "api", t
    assert [x["id"] for x in ctl.js("monitors", "list")] == [m["id"]]
    # get: the object pretty-printed (JSON either way).
    r = ctl.ok("monitors", "get", m["id"])
    assert json.loads(r.stdout) == m and "\n  " in r.stdout
    # update (PUT) from a JSON file replaces the object.
    f = tmp_path / "mon.json"
    f.write_text(json.dumps({"type": "tcp", "interval": 30, "port": 25}))
    put = ctl.js("monitors", "update", m["id"], "-f", f)
    assert put["type"] == "tcp" and put["interval"] == 30 and \
        put["description"] is None and put["port"] == 25
    # patch changes only what it names; --set values are JSON when they
    # parse (0 is a number), else strings.
    pat = ctl.js("monitors", "patch", m["id"], "--set", "retries=0",
                 "--set", "description=0x")
    assert pat["retries"] == 0 and pat["description"] == "0x" and \
        pat["type"] == "tcp" and pat["interval"] == 30
    # The object from stdin, YAML.
    pat = ctl.js("monitors", "patch", m["id"], "-f", "-",
                 stdin="consecutive_down: 3\nexpected_codes: \"2xx\"\n")
    assert pat["consecutive_down"] == 3 and pat["expected_codes"] == "2xx"
    # references: none yet.
    assert ctl.js("monitors", "references", m["id"]) == []
    r = ctl.ok("monitors", "delete", m["id"])
    assert r.stdout.strip() == "deleted monitor %s" % m["id"]
    ctl.fails(NOT_FOUND, "monitors", "get", m["id"])
    assert ctl.js("monitors", "list") == []


def test_a_warning_from_the_api_reaches_stderr(env):
    """A change the API applies with a config warning (an https:// origin
    under an http monitor): ctl succeeds, prints the result, and says the
    warning on stderr."""
    ed, ctl, _, _ = env
    mon = ctl.js("monitors", "create", "--set", "type=http")
    r = ctl.ok("--json", "pools", "create", "-f", "-",
               stdin=json.dumps({"name": "tlsp", "monitor": mon["id"],
                                 "origins": [{
                                     "name": "t1",
                                     "address": "https://127.0.0.1:9443"}]}))
    assert json.loads(r.stdout)["name"] == "tlsp"
    assert "warning: origin 't1' is reached over TLS but its pool's " \
        "monitor '%s' is type http" % mon["id"] in r.stderr, r.stderr


def test_pools_and_lbs_from_yaml_go_live(env, tmp_path):
    ed, ctl, o1, o2 = env
    mon = ctl.js("monitors", "create", "--set", "type=http",
                 "--set", "path=/healthz", "--set", "interval=1",
                 "--set", "timeout=1", "--set", "retries=0")
    y = tmp_path / "pool.yaml"
    y.write_text("# a pool in YAML\n"
                 "name: web\n"
                 "description: \"the web pool\"\n"
                 "monitor: %s\n"
                 "origins:\n"
                 "  - name: o2\n"
                 "    address: %s\n"
                 "    port: %d\n"
                 "  - {name: o1, address: %s, port: %d, weight: 0.5}\n"
                 % (mon["id"], mt.LOCAL, o2.port, mt.LOCAL, o1.port))
    p = ctl.js("pools", "create", "-f", y)
    assert p["name"] == "web" and p["monitor"] == mon["id"]
    assert [(o["name"], o["weight"]) for o in p["origins"]] == \
        [("o2", 1.0), ("o1", 0.5)]
    # patch one origin's field by index: the rest of the list is kept.
    p2 = ctl.js("pools", "patch", p["id"], "--set", "origins[1].weight=0")
    assert [(o["name"], o["weight"]) for o in p2["origins"]] == \
        [("o2", 1.0), ("o1", 0)]
    t = rows(ctl.ok("pools", "list").stdout)
    assert t[0] == ["ID", "NAME", "ENABLED", "ORIGINS", "MONITOR", "SOURCE"]
    assert ["filepool", "filepool", "yes", "o1", "-", "file"] in t, t
    assert [p["id"], "web", "yes", "o2,o1", mon["id"], "api"] in t, t
    # A load balancer in the zone, from JSON on stdin; the proxy routes it.
    lb = ctl.js("lbs", "create", "-f", "-",
                stdin=json.dumps({"name": "ctl.example.com",
                                  "default_pools": [p["id"]]}))
    assert HEX32.match(lb["id"]) and lb["name"] == "ctl.example.com"
    r = get(ed, host="ctl.example.com")
    assert r.status == 200 and r.header("X-Origin") == "o2", r
    # The zone from the environment.
    r = ctl.ok("lbs", "list", env={"MERIDIAN_ZONE": "example.com"})
    t = rows(Ctl(ed.admin).ok("lbs", "list",
                              env={"MERIDIAN_ZONE": "example.com"}).stdout)
    assert t[0] == ["ID", "NAME", "ENABLED", "POOLS", "FALLBACK", "STEERING",
                    "RULES", "SOURCE"], t
    assert [lb["id"], "ctl.example.com", "yes", p["id"], "-", "-", "-",
            "api"] in t, t
    assert ctl.js("lbs", "get", lb["id"])["default_pools"] == [p["id"]]
    # update (PUT) the lb with --set only; then patch it to the file pool.
    u = ctl.js("lbs", "update", lb["id"], "--set", "name=ctl.example.com",
               "--set", 'default_pools=["filepool"]', "--set", "ttl=60")
    assert u["default_pools"] == ["filepool"] and u["ttl"] == 60
    assert get(ed, host="ctl.example.com").header("X-Origin") == "o1"
    ctl.js("lbs", "patch", lb["id"], "--set", 'default_pools=["%s"]'
           % p["id"])
    # Rules: the list names them (#N for one without a name).
    ctl.js("lbs", "patch", lb["id"], "--set",
           'rules=[{"name": "api", "condition": "starts_with('
           'http.request.uri.path, \\"/api/\\")", "overrides": '
           '{"default_pools": ["filepool"]}}, {"condition": "ssl", '
           '"terminates": true}]')
    t = rows(ctl.ok("lbs", "list").stdout)
    assert [lb["id"], "ctl.example.com", "yes", p["id"], "-", "-",
            "api,#1", "api"] in t, t
    assert get(ed, "/api/x", host="ctl.example.com").header(
        "X-Origin") == "o1"
    assert get(ed, "/x", host="ctl.example.com").header("X-Origin") == "o2"
    # references, both ways, as a table and as JSON.
    refs = ctl.js("pools", "references", p["id"])
    assert sorted((x["reference_type"], x["resource_id"]) for x in refs) == \
        [("referral", mon["id"]), ("referrer", lb["id"])]
    t = rows(ctl.ok("pools", "references", p["id"]).stdout)
    assert t[0] == ["REFERENCE", "TYPE", "ID", "NAME"]
    assert ["referrer", "load_balancer", lb["id"], "ctl.example.com"] in t
    assert [x["resource_id"] for x in
            ctl.js("monitors", "references", mon["id"])] == [p["id"]]
    # Pool health: both origins answer /healthz.
    wait_health(ed, {(p["id"], "o1"): "healthy", (p["id"], "o2"): "healthy"})
    h = ctl.js("pools", "health", p["id"])
    pop = h["pop_health"][mt.EDGE_NAME]
    assert {o["name"]: o["healthy"] for o in pop["origins"]} == \
        {"o1": True, "o2": True}
    t = rows(ctl.ok("pools", "health", p["id"]).stdout)
    assert t[0] == ["POP/ORIGIN", "ADDRESS", "STATE", "RTT", "REASON"], t
    assert t[1][:2] == [mt.EDGE_NAME, "healthy"], t
    assert any(r_[0] == "o2" and r_[2] == "healthy" for r_ in t), t
    # Deleting in use is refused (1) with the API's message; in order, all
    # goes.
    err = ctl.fails(API_ERROR, "pools", "delete", p["id"])
    assert "meridian ctl: pool %s is used by 1 load balancer" % p["id"] \
        in err, err
    assert ctl.ok("lbs", "delete", lb["id"]).stdout.strip() == \
        "deleted load balancer %s" % lb["id"]
    assert get(ed, host="ctl.example.com").status == 404
    assert ctl.js("pools", "delete", p["id"]) == {"id": p["id"]}
    ctl.ok("monitors", "delete", mon["id"])


def test_errors_and_exit_codes(env, tmp_path):
    ed, ctl, o1, _ = env
    # 1: the API refused; every message on stderr, naming the field.
    err = ctl.fails(API_ERROR, "pools", "create", "--set", "name=bad",
                    "--set", 'origins=[{"name": "a", "address": "%s", '
                    '"weight": 1.5}]' % mt.LOCAL)
    assert re.search(r"^meridian ctl: pools\[[0-9a-f]+\]\.origins\[0\]"
                     r"\.weight: .*1\.5", err, re.M), err
    err = ctl.fails(API_ERROR, "monitors", "create", "--set", "type=gopher",
                    "--set", "retries=-1", "--set", "bogus=1")
    lines = [x for x in err.splitlines() if x.startswith("meridian ctl: ")]
    assert len(lines) >= 3, err
    for field in ("type", "retries", "bogus"):
        assert field in err, err
    err = ctl.fails(API_ERROR, "pools", "patch", "filepool",
                    "--set", "enabled=false")
    assert "managed by the config file" in err, err
    # 4: unknown ids, zones, accounts.
    for args in (("pools", "get", "nosuch"), ("monitors", "delete", "nosuch"),
                 ("pools", "health", "nosuch"),
                 ("pools", "patch", "nosuch", "--set", "x=1"),
                 ("pools", "update", "nosuch", "--set", "name=x"),
                 ("lbs", "get", "nosuch")):
        err = ctl.fails(NOT_FOUND, *args)
        assert "nosuch not found" in err, (args, err)
    ctl.fails(NOT_FOUND, "lbs", "list", "--zone",
              "0123456789abcdef0123456789abcdef")
    ctl.fails(NOT_FOUND, "pools", "list", "--account", "someone")
    # 2: usage and bad input, before anything is sent.
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: [unclosed\n")
    a_list = tmp_path / "list.json"
    a_list.write_text("[1, 2]")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"name": }')
    for args, msg in (((), "no command"),
                      (("frobnicate",), "unknown command"),
                      (("pools",), "which verb"),
                      (("pools", "fly"), "unknown verb"),
                      (("pools", "get"), "expects one ID"),
                      (("pools", "list", "extra"), "takes no argument"),
                      (("pools", "create"), "-f FILE"),
                      (("pools", "create", "--set", "noequals"), "KEY=VALUE"),
                      (("pools", "create", "-f", tmp_path / "nope.yaml"),
                       "No such file"),
                      (("pools", "create", "-f", bad_yaml), "bad.yaml:"),
                      (("pools", "create", "-f", bad_json), "bad.json:1:"),
                      (("pools", "create", "-f", a_list), "expected an object"),
                      (("pools", "list", "--page", "0"), "--page"),
                      (("events", "extra"), "filters only"),
                      (("--bogus", "pools", "list"), "usage")):
        err = ctl.fails(USAGE, *args)
        assert msg in err, (args, err)
    # lbs need a zone.
    err = Ctl(ed.admin).fails(USAGE, "lbs", "list")
    assert "zone" in err
    # 3: nothing listens there.
    dead = Ctl(mt.free_port(), zone="example.com")
    for args in (("pools", "list"), ("lbs", "get", "x"), ("health",),
                 ("events",), ("monitors", "create", "--set", "type=tcp")):
        err = dead.fails(DOWN, *args)
        assert "meridian ctl: cannot reach http://127.0.0.1:" in err, err
    # --help documents the exit codes.
    r = ctl.ok("--help")
    for line in ("0 ok", "1 the API answered an error", "2 usage",
                 "3 cannot reach the server", "4 not found"):
        assert line in r.stdout, r.stdout
    # Nothing changed through all of that.
    assert [p["id"] for p in ctl.js("pools", "list")] == ["filepool"]
    assert ctl.js("monitors", "list") == []


def test_tokens_and_scopes(lab, tmp_path):
    o1 = lab.origin("o1")
    read, edit = "r" * 40, "w" * 40
    ed = lab.edge([{"id": "p", "origins": [org(o1)]}],
                  [{"name": HOST, "default_pools": ["p"]}],
                  edge_extra={"store": str(tmp_path / "s.db")},
                  api={"tokens": [{"token": read, "scope": "read"},
                                  {"token": edit, "scope": "edit"}]})
    anon = Ctl(ed.admin)
    err = anon.fails(API_ERROR, "pools", "list")
    assert "authentication required" in err, err
    assert "invalid token" in Ctl(ed.admin, token="nope").fails(
        API_ERROR, "pools", "list")
    reader = Ctl(ed.admin, token=read)
    assert [p["id"] for p in reader.js("pools", "list")] == ["p"]
    err = reader.fails(API_ERROR, "monitors", "create", "--set", "type=tcp")
    assert "read-only" in err and read not in err, err
    # The edit token from the environment.
    m = anon.js("monitors", "create", "--set", "type=tcp",
                env={"MERIDIAN_TOKEN": edit})
    assert m["type"] == "tcp"
    # --token wins over the environment.
    err = Ctl(ed.admin, token=read).fails(
        API_ERROR, "monitors", "delete", m["id"],
        env={"MERIDIAN_TOKEN": edit})
    assert "read-only" in err
    # The server from the environment.
    r = Ctl(token=edit).ok("monitors", "list", env={
        "MERIDIAN_SERVER": "http://%s:%d" % (mt.LOCAL, ed.admin)})
    assert m["id"] in r.stdout
    # The token never shows, not even when the server is down.
    for c in (Ctl(ed.admin, token=edit), Ctl(mt.free_port(), token=edit)):
        for args in (("pools", "list"), ("pools", "get", "nosuch"),
                     ("monitors", "create", "--set", "type=gopher")):
            r = c.run(*args)
            assert edit not in r.stdout + r.stderr, (args, r.stderr)


def test_events_and_filters(lab, tmp_path):
    up, down = lab.origin("up"), lab.origin("down")
    ed = api_edge(lab, tmp_path, monitors=[monitor(interval="1s")],
                  pools=[{"id": "p", "monitor": "m",
                          "origins": [org(up), org(down)]}],
                  lbs=[{"name": HOST, "default_pools": ["p"]}])
    ctl = Ctl(ed.admin)
    wait_health(ed, {("p", "up"): "healthy", ("p", "down"): "healthy"})
    lab.kill(down)
    wait_health(ed, {("p", "down"): "unhealthy"})
    ev = mt.wait_for(lambda: ctl.js("events", "--unhealthy"),
                     what="an unhealthy event through ctl")
    o = ev[0]["pool"][0]["origins"][0]
    assert o["name"] == "down" and o["new_state"] == "unhealthy", ev
    assert all(e["pool"][0]["origins"][0]["healthy"] is False for e in ev)
    t = rows(ctl.ok("events", "--pool", "p").stdout)
    assert t[0] == ["TIME", "POOL", "ORIGIN", "CHANGE", "REASON"], t
    assert any(r[1:3] == ["p", "down"] and "healthy" in r and "->" in r
               and "unhealthy" in r for r in t[1:]), t
    healthy = ctl.js("events", "--healthy", "--origin", "up")
    assert healthy and all(
        e["pool"][0]["origins"][0]["name"] == "up" for e in healthy), healthy
    assert ctl.js("events", "--origin", "nosuch") == []
    assert ctl.js("events", "--pool", "nosuch") == []
    assert ctl.js("events", "--since", "2999-01-01T00:00:00Z") == []
    assert ctl.js("events", "--until", "1") == []
    assert len(ctl.js("events", "--page", "1", "--per-page", "1")) == 1
    err = ctl.fails(API_ERROR, "events", "--since", "yesterday")
    assert "since" in err, err
    # health (GET /status) still works next to the API.
    r = ctl.ok("health")
    assert rows(r.stdout)[0][:3] == ["POOL/ORIGIN", "ADDRESS", "HEALTH"]


def test_ids_that_need_escaping(lab, tmp_path):
    """ctl escapes ids in the path: a wildcard load balancer
    (*.example.com) and a pool id with a space are found by every verb
    that names one."""
    o1 = lab.origin("o1")
    ed = api_edge(lab, tmp_path,
                  pools=[{"id": "gcp east", "origins": [org(o1)]}],
                  lbs=[{"name": "*.example.com",
                        "default_pools": ["gcp east"]}])
    ctl = Ctl(ed.admin, zone="example.com")
    assert ctl.js("lbs", "get", "*.example.com")["id"] == "*.example.com"
    assert ctl.js("pools", "get", "gcp east")["id"] == "gcp east"
    refs = rows(ctl.ok("pools", "references", "gcp east").stdout)
    assert refs[1][:3] == ["referrer", "load_balancer", "*.example.com"], refs
    h = rows(ctl.ok("pools", "health", "gcp east").stdout)
    assert h[2][0] == o1.name, h
    err = ctl.fails(API_ERROR, "lbs", "delete", "*.example.com")
    assert "managed by the config file" in err, err


def test_monitors_list_shows_sub_second_intervals(env):
    """An interval that is not whole seconds is a string in the API
    ("1500ms"): the table shows it so, not as 0s."""
    ed, ctl, _, _ = env
    m = ctl.js("monitors", "create", "--set", "type=tcp",
               "--set", "interval=1500ms")
    assert m["interval"] == "1500ms", m
    ctl.js("monitors", "create", "--set", "type=tcp", "--set", "interval=7")
    got = {r[0]: r[3] for r in rows(ctl.ok("monitors", "list").stdout)[1:]}
    assert got[m["id"]] == "1500ms" and "7s" in got.values(), got
