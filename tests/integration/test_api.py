"""The admin REST API in Cloudflare's v4 shape (issue 5): every path and
method, the envelope, auth, validation, paging, referential integrity,
file-managed objects, persistence across restart and kill -9, pool health,
references, health events, and live changes under load."""
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import meridian_test as mt
from test_health import HOST, get, lab, monitor, org  # noqa: F401
from test_health import wait_health

ACCT = "/client/v4/accounts/default/load_balancers"
ZONE = "/client/v4/zones/example.com/load_balancers"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


class Api:
    def __init__(self, port, token=None):
        self.port = port
        self.token = token

    def call(self, method, path, body=None, token=None, raw=None,
             headers=None):
        c = http.client.HTTPConnection(mt.LOCAL, self.port, timeout=mt.WAIT)
        h = dict(headers or {})
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = "Bearer " + tok
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read()
        finally:
            c.close()
        env = json.loads(text)
        # The envelope is always complete.
        for k in ("success", "errors", "messages", "result"):
            assert k in env, env
        assert env["success"] == (200 <= r.status < 300), (r.status, env)
        return r.status, env

    def ok(self, method, path, body=None):
        st, env = self.call(method, path, body)
        assert st == 200, (method, path, st, env)
        return env["result"]


def api_edge(lab, tmp_path, pools=(), lbs=(), monitors=(), api=None,
             store=None, geo=None):
    extra = {"store": str(store or tmp_path / "store.db")}
    return lab.edge(list(pools), list(lbs), monitors=monitors,
                    edge_extra=extra, api=api, geo=geo)


def start(lab, tmp_path, **kw):
    """An edge whose file also holds api and zones sections."""
    return api_edge(lab, tmp_path, **kw)


@pytest.fixture
def env(lab, tmp_path):
    o1, o2 = lab.origin("o1"), lab.origin("o2")
    ed = api_edge(lab, tmp_path,
                  pools=[{"id": "filepool", "origins": [org(o1)]}],
                  lbs=[{"name": HOST, "default_pools": ["filepool"]}])
    return ed, Api(ed.admin), o1, o2


def test_monitor_crud_and_envelope(env):
    ed, api, _, _ = env
    m = api.ok("POST", ACCT + "/monitors",
               {"type": "http", "path": "/healthz", "interval": 5,
                "expected_codes": "2xx", "description": "web"})
    assert HEX32.match(m["id"]), m
    # Cloudflare's defaults are filled in.
    assert m["timeout"] == 5 and m["retries"] == 2 and m["method"] == "GET"
    assert m["interval"] == 5 and m["source"] == "api"
    assert m["created_on"] and m["created_on"] == m["modified_on"]
    got = api.ok("GET", ACCT + "/monitors/" + m["id"])
    assert got == m
    lst = api.ok("GET", ACCT + "/monitors")
    assert [x["id"] for x in lst] == [m["id"]]
    # PUT replaces the object: what is not given is back to its default.
    put = api.ok("PUT", ACCT + "/monitors/" + m["id"],
                 {"type": "tcp", "interval": 10})
    assert put["type"] == "tcp" and put["path"] == "/" and \
        put["interval"] == 10 and put["description"] is None
    assert put["created_on"] == m["created_on"]
    assert put["modified_on"] >= m["modified_on"]
    # PATCH changes only what it names.
    pat = api.ok("PATCH", ACCT + "/monitors/" + m["id"], {"retries": 0})
    assert pat["retries"] == 0 and pat["type"] == "tcp" and \
        pat["interval"] == 10
    # Echoing a GET back with PUT works (read-only fields ignored).
    echo = dict(pat)
    assert api.ok("PUT", ACCT + "/monitors/" + m["id"], echo)["retries"] == 0
    res = api.ok("DELETE", ACCT + "/monitors/" + m["id"])
    assert res == {"id": m["id"]}
    st, envl = api.call("GET", ACCT + "/monitors/" + m["id"])
    assert st == 404 and envl["errors"][0]["code"] == 1001
    assert "not found" in envl["errors"][0]["message"]


def test_validation_names_every_bad_field_and_changes_nothing(env):
    ed, api, _, _ = env
    st, e = api.call("POST", ACCT + "/monitors",
                     {"type": "gopher", "interval": "soon", "retries": -1,
                      "bogus": 1})
    assert st == 400, e
    msgs = " | ".join(x["message"] for x in e["errors"])
    assert len(e["errors"]) >= 4, msgs
    for field in ("type", "interval", "retries", "bogus"):
        assert field in msgs, msgs
    assert api.ok("GET", ACCT + "/monitors") == []
    # Bad JSON, not an object, empty.
    for raw in (b"{", b"[1]", b""):
        st, e = api.call("POST", ACCT + "/pools", raw=raw)
        assert st == 400 and e["errors"][0]["code"] == 1002, (raw, e)
    # A pool's origin weight out of range names the field path.
    st, e = api.call("POST", ACCT + "/pools",
                     {"name": "p", "origins": [
                         {"name": "a", "address": "127.0.0.1",
                          "weight": 1.5}]})
    assert st == 400
    assert any("origins[0].weight" in x["message"] for x in e["errors"]), e
    # Control characters in names and ids (a newline would forge a line
    # of the /status table, the log or a mail): refused, field named.
    st, e = api.call("POST", ACCT + "/pools",
                     {"name": "p\nq", "origins": [
                         {"name": "a\r\nb", "address": "127.0.0.1"}]})
    assert st == 400, e
    msgs = " | ".join(x["message"] for x in e["errors"])
    assert "origins[0].name" in msgs and "control characters" in msgs, msgs
    assert msgs.count("control characters") == 2, msgs
    # More errors than are listed: the last line says so, naming the
    # body (not a config file).
    st, e = api.call("POST", ACCT + "/pools", {"name": "p", "origins": [
        {"name": "o%d" % i, "address": "127.0.0.1", "weight": 5}
        for i in range(150)]})
    assert st == 400, e
    last = e["errors"][-1]["message"]
    assert last.startswith("body: too many errors"), last
    assert "yaml" not in last, last
    assert [p["id"] for p in api.ok("GET", ACCT + "/pools")] == ["filepool"]


def test_pool_and_lb_go_live_through_the_proxy(env):
    ed, api, o1, o2 = env
    p = api.ok("POST", ACCT + "/pools",
               {"name": "api-pool", "origins": [org(o2), org(o1, weight=0)]})
    assert [o["name"] for o in p["origins"]] == ["o2", "o1"]
    assert p["origins"][1]["weight"] == 0
    lb = api.ok("POST", ZONE, {"name": "api.example.com",
                               "default_pools": [p["id"]],
                               "fallback_pool": p["id"]})
    assert HEX32.match(lb["id"]) and lb["name"] == "api.example.com"
    # Live: the proxy routes the new host at once.
    for _ in range(5):
        r = get(ed, host="api.example.com")
        assert r.status == 200 and r.header("X-Origin") == "o2", r
    # Listing by zone name and by a subzone filter.
    names = [x["name"] for x in api.ok("GET", ZONE)]
    assert names == [HOST, "api.example.com"]
    assert api.ok("GET", "/client/v4/zones/other.org/load_balancers") == []
    # Repoint the LB to the file's pool with PATCH.
    api.ok("PATCH", ZONE + "/" + lb["id"], {"default_pools": ["filepool"]})
    assert get(ed, host="api.example.com").header("X-Origin") == "o1"
    # An LB outside its zone is refused.
    st, e = api.call("POST", ZONE, {"name": "x.other.org",
                                    "default_pools": ["filepool"]})
    assert st == 400 and "not in zone" in e["errors"][0]["message"]
    # Delete the LB: the host is gone from the proxy.
    api.ok("DELETE", ZONE + "/" + lb["id"])
    assert get(ed, host="api.example.com").status == 404


def test_a_change_that_will_not_work_as_meant_comes_with_a_warning(env):
    """Applied, with the config warning in messages (code 1015): a pool
    whose origin is reached over TLS under an http monitor. Fixing the
    monitor's type clears it."""
    ed, api, _, _ = env
    m = api.ok("POST", ACCT + "/monitors", {"type": "http", "path": "/"})
    st, e = api.call("POST", ACCT + "/pools", {
        "name": "tls-pool", "monitor": m["id"],
        "origins": [{"name": "t1", "address": "https://127.0.0.1:9443"}]})
    assert st == 200 and e["success"], e
    assert [x["code"] for x in e["messages"]] == [1015], e["messages"]
    msg = e["messages"][0]["message"]
    assert "pools[%s].origins[0]: warning: origin 't1' is reached over " \
        "TLS" % e["result"]["id"] in msg, msg
    assert "monitor '%s' is type http" % m["id"] in msg, msg
    st, e = api.call("PATCH", ACCT + "/monitors/" + m["id"],
                     {"type": "https"})
    assert st == 200 and e["messages"] == [], e


def test_referential_integrity(env):
    ed, api, o1, _ = env
    m = api.ok("POST", ACCT + "/monitors", {"type": "tcp", "interval": 60})
    p = api.ok("POST", ACCT + "/pools", {"name": "p", "monitor": m["id"],
                                         "origins": [org(o1)]})
    lb = api.ok("POST", ZONE, {"name": "ri.example.com",
                               "default_pools": [p["id"]]})
    st, e = api.call("DELETE", ACCT + "/pools/" + p["id"])
    assert st == 400 and e["errors"][0]["code"] == 1004, e
    assert "ri.example.com" in e["errors"][0]["message"]
    st, e = api.call("DELETE", ACCT + "/monitors/" + m["id"])
    assert st == 400 and e["errors"][0]["code"] == 1004, e
    st, e = api.call("POST", ZONE, {"name": "bad.example.com",
                                    "default_pools": ["nosuchpool"]})
    assert st == 400 and "nosuchpool" in e["errors"][0]["message"], e
    st, e = api.call("PATCH", ACCT + "/pools/" + p["id"],
                     {"monitor": "nosuchmonitor"})
    assert st == 400 and "nosuchmonitor" in e["errors"][0]["message"], e
    # References, both ways.
    refs = api.ok("GET", ACCT + "/pools/" + p["id"] + "/references")
    kinds = sorted((r["reference_type"], r["resource_type"],
                    r["resource_id"]) for r in refs)
    assert kinds == [("referral", "monitor", m["id"]),
                     ("referrer", "load_balancer", lb["id"])]
    refs = api.ok("GET", ACCT + "/monitors/" + m["id"] + "/references")
    assert [r["resource_id"] for r in refs] == [p["id"]]
    # In order, everything can go.
    api.ok("DELETE", ZONE + "/" + lb["id"])
    api.ok("DELETE", ACCT + "/pools/" + p["id"])
    api.ok("DELETE", ACCT + "/monitors/" + m["id"])


def test_file_objects_are_read_only(env):
    ed, api, _, _ = env
    p = api.ok("GET", ACCT + "/pools/filepool")
    assert p["source"] == "file" and p["created_on"] is None
    for method, body in (("PUT", {"name": "x", "origins": []}),
                         ("PATCH", {"enabled": False}), ("DELETE", None)):
        st, e = api.call(method, ACCT + "/pools/filepool", body)
        assert st == 409 and e["errors"][0]["code"] == 1005, e
        assert "managed by the config file" in e["errors"][0]["message"]
    lbid = api.ok("GET", ZONE)[0]["id"]
    st, e = api.call("DELETE", ZONE + "/" + lbid)
    assert st == 409


def test_paging(env):
    ed, api, _, _ = env
    ids = [api.ok("POST", ACCT + "/monitors",
                  {"type": "tcp", "description": "m%d" % i})["id"]
           for i in range(5)]
    st, e = api.call("GET", ACCT + "/monitors?per_page=2&page=3")
    assert st == 200 and [m["id"] for m in e["result"]] == ids[4:]
    assert e["result_info"] == {"page": 3, "per_page": 2, "count": 1,
                                "total_count": 5, "total_pages": 3}
    st, e = api.call("GET", ACCT + "/monitors?per_page=2")
    assert [m["id"] for m in e["result"]] == ids[:2]
    for q in ("page=0", "per_page=0", "per_page=100000", "page=x"):
        st, e = api.call("GET", ACCT + "/monitors?" + q)
        assert st == 400 and e["errors"][0]["code"] == 1009, (q, e)


def test_routes_methods_and_limits(env):
    ed, api, _, _ = env
    for path in ("/client/v4/nope", ACCT + "/nope",
                 "/client/v4/accounts/default/other"):
        st, e = api.call("GET", path)
        assert st == 404 and e["errors"][0]["code"] == 7003, (path, e)
    st, e = api.call("GET", "/client/v4/accounts/someone/load_balancers/pools")
    assert st == 404
    st, e = api.call("GET", "/client/v4/zones/0123456789abcdef0123456789abcdef/"
                     "load_balancers")
    assert st == 404 and e["errors"][0]["code"] == 1008
    st, e = api.call("DELETE", ACCT + "/pools")
    assert st == 405 and e["errors"][0]["code"] == 7001
    # A 405 says what is allowed, in the Allow field too (RFC 9110).
    for method, path, allowed in (
            ("DELETE", ACCT + "/pools", "GET, POST"),
            ("POST", ACCT + "/pools/filepool", "GET, PUT, PATCH, DELETE"),
            ("POST", "/client/v4/accounts", "GET"),
            ("PUT", "/client/v4/edge/certificates/reload", "POST")):
        c = http.client.HTTPConnection(mt.LOCAL, ed.admin, timeout=mt.WAIT)
        try:
            c.request(method, path)
            r = c.getresponse()
            r.read()
        finally:
            c.close()
        assert (r.status, r.getheader("Allow")) == (405, allowed), \
            (method, path, r.status, r.getheader("Allow"))
        assert r.getheader("Cache-Control") == "no-store"
    st, e = api.call("GET", ACCT + "/pools/nosuch")
    assert st == 404 and e["errors"][0]["code"] == 1001
    big = b'{"name": "' + b"x" * (2 << 20) + b'"}'
    try:
        st, e = api.call("POST", ACCT + "/pools", raw=big)
        assert st == 413
    except (ConnectionError, OSError):
        pass  # the edge may close before reading it all: also a refusal
    ed.check_alive()


def test_tokens_scopes_and_loopback_rule(lab, tmp_path, monkeypatch):
    o1 = lab.origin("o1")
    ed = lab.edge([{"id": "p", "origins": [org(o1)]}],
                  [{"name": HOST, "default_pools": ["p"]}],
                  edge_extra={"store": str(tmp_path / "s.db")},
                  api={"tokens": [{"token": "r" * 40, "scope": "read"},
                                  {"token": "w" * 40, "scope": "edit"}]})
    api = Api(ed.admin)
    st, e = api.call("GET", ACCT + "/pools")
    assert st == 401 and e["errors"][0]["code"] == 10000
    st, e = api.call("GET", ACCT + "/pools", token="nope")
    assert st == 401
    st, e = api.call("GET", ACCT + "/pools", token="r" * 40)
    assert st == 200
    st, e = api.call("POST", ACCT + "/monitors", {"type": "tcp"},
                     token="r" * 40)
    assert st == 403 and e["errors"][0]["code"] == 10001
    st, e = api.call("POST", ACCT + "/monitors", {"type": "tcp"},
                     token="w" * 40)
    assert st == 200
    # The token never shows in the log.
    assert "w" * 40 not in ed.stderr_tail(1 << 20)


def test_api_refuses_a_public_listener_without_tokens(tmp_path):
    port = mt.free_port()
    cfg = {"edge": {"name": "x", "workers": 1, "store": str(tmp_path / "s"),
                    "listen": {"http": ["127.0.0.1:%d" % port],
                               "admin": "0.0.0.0:%d" % mt.free_port()}}}
    path = tmp_path / "e.yaml"
    path.write_text(mt.to_yaml(cfg) + "\n")
    import subprocess
    env = dict(os.environ)
    env.pop("MERIDIAN_API_TOKEN", None)
    p = subprocess.run([mt.BIN, "edge", "-c", str(path)], env=env,
                       capture_output=True, text=True, timeout=mt.WAIT)
    assert p.returncode != 0
    assert "refusing to serve the API on 0.0.0.0" in p.stderr


def test_objects_survive_a_restart(lab, tmp_path):
    o1 = lab.origin("o1")
    store = tmp_path / "keep.db"
    ed = api_edge(lab, tmp_path, store=store,
                  pools=[{"id": "fp", "origins": [org(o1)]}],
                  lbs=[{"name": HOST, "default_pools": ["fp"]}])
    api = Api(ed.admin)
    p = api.ok("POST", ACCT + "/pools", {"name": "kept", "origins": [org(o1)]})
    lb = api.ok("POST", ZONE, {"name": "kept.example.com",
                               "default_pools": [p["id"]]})
    assert ed.terminate(timeout=mt.WAIT) == 0
    ed.expect_exit = True
    ed2 = lab.stack.respawn(ed)
    ed2.admin = ed.admin
    mt.wait_for(lambda: mt.port_accepts(ed.admin), what="admin after restart")
    api2 = Api(ed.admin)
    got = api2.ok("GET", ACCT + "/pools/" + p["id"])
    assert got["created_on"] == p["created_on"] and got["name"] == "kept"
    assert api2.ok("GET", ZONE + "/" + lb["id"])["name"] == "kept.example.com"
    assert get(ed2, host="kept.example.com").header("X-Origin") == "o1"


def test_kill_9_in_a_loop_of_writes_loses_nothing_acknowledged(lab, tmp_path):
    o1 = lab.origin("o1")
    store = tmp_path / "k9.db"
    ed = api_edge(lab, tmp_path, store=store,
                  pools=[{"id": "fp", "origins": [org(o1)]}],
                  lbs=[{"name": HOST, "default_pools": ["fp"]}])
    acked = []
    rng = random.Random(7)
    for round_ in range(4):
        api = Api(ed.admin)
        stop_at = rng.randint(5, 25)
        done = threading.Event()

        def writer():
            for i in range(200):  # bounded; killed long before
                try:
                    st, e = api.call("POST", ACCT + "/monitors",
                                     {"type": "tcp",
                                      "description": "r%d-%d" % (round_, i)})
                except (OSError, ValueError, http.client.HTTPException):
                    break
                if st == 200:
                    acked.append(e["result"]["id"])
            done.set()

        t = threading.Thread(target=writer)
        base = len(acked)
        t.start()
        mt.wait_for(lambda: len(acked) >= base + stop_at or done.is_set(),
                    what="some acknowledged writes")
        ed.expect_exit = True
        os.kill(ed.pid, signal.SIGKILL)
        t.join(timeout=mt.WAIT)
        ed.kill()
        ed2 = lab.stack.respawn(ed)
        ed2.admin = ed.admin
        mt.wait_for(lambda: mt.port_accepts(ed.admin),
                    what="admin after kill -9")
        ed = ed2
    have = {m["id"] for m in Api(ed.admin).ok(
        "GET", ACCT + "/monitors?per_page=1000")}
    missing = [i for i in acked if i not in have]
    assert len(acked) >= 20 and not missing, (len(acked), missing[:3])
    # And the store opens clean.
    import sqlite3
    con = sqlite3.connect(str(store))
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


def test_pool_health_and_events(lab, tmp_path):
    up, down = lab.origin("up"), lab.origin("down")
    ed = api_edge(lab, tmp_path,
                  monitors=[monitor(interval="1s")],
                  pools=[{"id": "p", "monitor": "m",
                          "origins": [org(up), org(down)]}],
                  lbs=[{"name": HOST, "default_pools": ["p"]}])
    api = Api(ed.admin)
    wait_health(ed, {("p", "up"): "healthy", ("p", "down"): "healthy"})
    lab.kill(down)
    wait_health(ed, {("p", "down"): "unhealthy"})
    h = api.ok("GET", ACCT + "/pools/p/health")
    pop = h["pop_health"][mt.EDGE_NAME]
    byname = {o["name"]: o for o in pop["origins"]}
    assert h["pool_id"] == "p"
    assert byname["up"]["healthy"] is True
    assert byname["down"]["healthy"] is False
    assert byname["down"]["failure_reason"] != "No failures"
    # the last check's answer: 200 for the live origin, none for the dead
    assert byname["up"]["response_code"] == 200, byname["up"]
    assert byname["down"]["response_code"] is None, byname["down"]
    assert pop["healthy"] is True and pop["state"] == "degraded"

    def events(q=""):
        return api.ok("GET", "/client/v4/user/load_balancing_analytics/"
                      "events" + q)
    ev = mt.wait_for(lambda: [e for e in events("?origin_healthy=false")],
                     what="an unhealthy origin event")
    o = ev[0]["pool"][0]["origins"][0]
    assert o["name"] == "down" and o["healthy"] is False
    assert o["old_state"] == "healthy" and o["new_state"] == "unhealthy"
    assert ev[0]["pool"][0]["id"] == "p"
    assert all(e["pool"][0]["origins"] and
               e["pool"][0]["origins"][0]["healthy"] is False
               for e in ev)
    # Filters: by origin, by pool, by time.
    assert events("?origin_name=nosuch") == []
    assert events("?pool_id=p")
    assert events("?since=2999-01-01T00:00:00Z") == []
    st, e = api.call("GET", "/client/v4/user/load_balancing_analytics/"
                     "events?since=yesterday")
    assert st == 400


def test_no_failed_request_while_api_changes_pools_under_load(lab, tmp_path):
    o = [lab.origin("o%d" % i) for i in range(3)]
    ed = api_edge(lab, tmp_path,
                  pools=[{"id": "fp", "origins": [org(o[0])]}],
                  lbs=[{"name": HOST, "default_pools": ["fp"]}])
    api = Api(ed.admin)
    p1 = api.ok("POST", ACCT + "/pools", {"name": "a", "origins": [org(o[1])]})
    lb = api.ok("POST", ZONE, {"name": "live.example.com",
                               "default_pools": [p1["id"]]})
    stop = threading.Event()
    res = {"ok": 0, "bad": []}
    lock = threading.Lock()

    def load():
        deadline = time.monotonic() + 60
        conn = None
        for _ in range(20000):
            if stop.is_set() or time.monotonic() > deadline:
                break
            try:
                if conn is None:
                    conn = mt.HttpConn(ed.port)
                conn.send(mt.req("GET", "/", "live.example.com"))
                r = conn.read_response("GET")
                good = r.status == 200
            except (OSError, mt.Closed, AssertionError) as ex:
                r, good, conn = ex, False, None
            with lock:
                if good:
                    res["ok"] += 1
                else:
                    res["bad"].append(repr(r)[:200])
        if conn:
            conn.close()

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(3):
            base = res["ok"]
            p2 = api.ok("POST", ACCT + "/pools",
                        {"name": "b%d" % i, "origins": [org(o[2])]})
            api.ok("PATCH", ZONE + "/" + lb["id"],
                   {"default_pools": [p2["id"], p1["id"]]})
            api.ok("PATCH", ACCT + "/pools/" + p1["id"],
                   {"origins": [org(o[1]), org(o[0])]})
            api.ok("PATCH", ZONE + "/" + lb["id"],
                   {"default_pools": [p1["id"]]})
            api.ok("DELETE", ACCT + "/pools/" + p2["id"])
            mt.wait_for(lambda: res["ok"] >= base + 30,
                        what="requests between changes")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=mt.WAIT)
    assert not res["bad"], res["bad"][:5]
    assert res["ok"] >= 90


def test_in_flight_request_finishes_on_its_snapshot(env):
    """A request that started before its pool and load balancer were
    deleted completes from the origin it started on; the next request sees
    the new config."""
    ed, api, o1, o2 = env
    p = api.ok("POST", ACCT + "/pools", {"name": "slow", "origins": [org(o2)]})
    lb = api.ok("POST", ZONE, {"name": "slow.example.com",
                               "default_pools": [p["id"]]})
    with mt.HttpConn(ed.port) as c:
        c.send(mt.req("GET", "/sleep/1500", "slow.example.com"))
        # The swap must come while the request is at the origin: wait
        # until the origin holds a connection that carried it.
        mt.wait_for(lambda: o2.counters()[3] >= 1,
                    what="the request to reach the origin")
        api.ok("DELETE", ZONE + "/" + lb["id"])
        api.ok("DELETE", ACCT + "/pools/" + p["id"])
        r = c.read_response("GET")
        assert r.status == 200 and r.body == b"slept 1500\n", r
        # Same connection, next request: the load balancer is gone.
        c.send(mt.req("GET", "/", "slow.example.com"))
        r = c.read_response("GET")
        assert r.status == 404, r


def test_a_change_that_cannot_run_is_not_stored(lab, tmp_path):
    """Everything that can fail happens before the commit: with the geo
    database gone, a new snapshot cannot be built, the API answers 500 and
    the store holds nothing of the change (a retry cannot duplicate)."""
    import mmdb_writer
    import sqlite3
    geodb = tmp_path / "geo.mmdb"
    mmdb_writer.write(str(geodb), [
        ("127.9.0.0/24", {"country": {"iso_code": "JP"}})])
    o1 = lab.origin("o1")
    store = tmp_path / "s.db"
    ed = api_edge(lab, tmp_path, store=store,
                  pools=[{"id": "fp", "origins": [org(o1)]}],
                  lbs=[{"name": HOST, "default_pools": ["fp"]}],
                  geo={"database": str(geodb)})
    api = Api(ed.admin)
    geodb.unlink()
    for _ in range(2):
        st, e = api.call("POST", ACCT + "/monitors", {"type": "tcp"})
        assert st == 500 and e["errors"][0]["code"] == 1007, e
    assert api.ok("GET", ACCT + "/monitors") == []
    con = sqlite3.connect(str(store))
    try:
        assert con.execute("SELECT count(*) FROM objects").fetchone()[0] == 0
    finally:
        con.close()
    assert get(ed).header("X-Origin") == "o1"


def test_long_or_odd_paths_name_no_route(env):
    ed, api, _, _ = env
    m = api.ok("POST", ACCT + "/monitors", {"type": "tcp"})
    base = ACCT + "/monitors/" + m["id"]
    # A path longer than any route must not be cut into a real one.
    st, e = api.call("DELETE", base + "/" * 1100 + "references")
    assert st == 404 and e["errors"][0]["code"] == 7003, e
    for path in (base + "//references", ACCT + "//monitors",
                 base + "/a/b/c/d/e/f/g/h/i/j/k"):
        st, e = api.call("DELETE", path)
        assert st == 404, (path, e)
    # One trailing slash is the same path.
    assert api.ok("GET", base + "/")["id"] == m["id"]
    assert api.ok("GET", base)["id"] == m["id"]


def test_a_slow_client_neither_blocks_the_admin_nor_shutdown(env):
    """One connection trickling its request is dropped at its deadline;
    the next requests are served and SIGTERM is not held up."""
    ed, api, _, _ = env
    slow = socket.create_connection((mt.LOCAL, ed.admin))
    try:
        slow.sendall(b"POST " + ACCT.encode() + b"/monitors HTTP/1.1\r\n")
        t0 = time.monotonic()
        st, e = api.call("GET", ACCT + "/monitors")
        assert st == 200
        assert time.monotonic() - t0 < mt.WAIT
        # A body that never comes: the API is still answered.
        slow2 = socket.create_connection((mt.LOCAL, ed.admin))
        slow2.sendall(b"POST " + ACCT.encode() + b"/monitors HTTP/1.1\r\n"
                      b"Host: a\r\nContent-Length: 100\r\n\r\n{")
        st, e = api.call("GET", ACCT + "/pools")
        assert st == 200
        slow2.close()
    finally:
        slow.close()
    ed.check_alive()


def test_expect_100_continue(env):
    ed, api, _, _ = env
    body = json.dumps({"type": "tcp", "description": "x" * 2000}).encode()
    with socket.create_connection((mt.LOCAL, ed.admin), timeout=mt.WAIT) as s:
        s.sendall(b"POST " + ACCT.encode() + b"/monitors HTTP/1.1\r\n"
                  b"Host: a\r\nContent-Type: application/json\r\n"
                  b"Expect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        first = s.recv(64)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first
        s.sendall(body)
        rest = b""
        for _ in range(1000):
            d = s.recv(65536)
            if not d:
                break
            rest += d
        assert b"HTTP/1.1 200 OK" in rest and b'"success":true' in rest


def test_reload_cannot_drop_the_tokens_of_a_public_api(lab, tmp_path):
    """A SIGHUP that would leave a non-loopback API without tokens is
    refused: the running config, with its tokens, stays."""
    o1 = lab.origin("o1")
    tok = "t" * 40
    port, admin = mt.free_port(), mt.free_port()
    cfg = {"edge": {"name": mt.EDGE_NAME, "workers": 1,
                    "store": str(tmp_path / "s.db"),
                    "listen": {"http": ["%s:%d" % (mt.LOCAL, port)],
                               "admin": "0.0.0.0:%d" % admin}},
           "api": {"tokens": [{"token": tok, "scope": "edit"}]},
           "pools": [{"id": "p", "origins": [org(o1)]}],
           "load_balancers": [{"name": HOST, "default_pools": ["p"]}]}
    ed = mt.Edge(lab.stack.logdir, mt.to_yaml(cfg) + "\n", port, "pub")
    lab.stack.procs.append(ed)
    lab.stack.edges.append(ed)
    mt.wait_for(lambda: mt.port_accepts(admin), what="admin")
    api = Api(admin)
    assert api.call("GET", ACCT + "/pools")[0] == 401
    del cfg["api"]
    with open(ed.config_path, "w") as f:
        f.write(mt.to_yaml(cfg) + "\n")
    os.kill(ed.pid, signal.SIGHUP)
    mt.wait_for(lambda: "the API needs tokens" in ed.stderr_tail(1 << 20),
                what="the reload to be refused")
    assert api.call("GET", ACCT + "/pools")[0] == 401
    assert api.call("GET", ACCT + "/pools", token=tok)[0] == 200


def test_zones_by_name_and_by_id(lab, tmp_path):
    o1 = lab.origin("o1")
    ed = lab.edge([{"id": "p", "origins": [org(o1)]}],
                  [{"name": HOST, "default_pools": ["p"]}],
                  edge_extra={"store": str(tmp_path / "s.db")},
                  zones=[{"name": "example.com"}, {"name": "example.org"}])
    api = Api(ed.admin)
    zones = api.ok("GET", "/client/v4/zones")
    assert [z["name"] for z in zones] == ["example.com", "example.org"]
    assert all(HEX32.match(z["id"]) for z in zones)
    assert len({z["id"] for z in zones}) == 2
    zid = api.ok("GET", "/client/v4/zones?name=example.com")[0]["id"]
    assert api.ok("GET", "/client/v4/zones/" + zid)["name"] == "example.com"
    by_id = api.ok("GET", "/client/v4/zones/%s/load_balancers" % zid)
    by_name = api.ok("GET", ZONE)
    assert [x["id"] for x in by_id] == [x["id"] for x in by_name] != []
    lb = api.ok("POST", "/client/v4/zones/%s/load_balancers" % zid,
                {"name": "new.example.com", "default_pools": ["p"]})
    assert api.ok("GET", ZONE + "/" + lb["id"])["name"] == "new.example.com"
    st, e = api.call("GET", "/client/v4/zones/" + "f" * 32)
    assert st == 404 and e["errors"][0]["code"] == 1008


def test_an_unusable_store_stops_start_up_with_a_clear_error(tmp_path):
    import subprocess
    cfg = {"edge": {"name": "x", "workers": 1,
                    "store": str(tmp_path / "missing" / "s.db"),
                    "listen": {"http": ["127.0.0.1:%d" % mt.free_port()]}}}
    path = tmp_path / "e.yaml"
    path.write_text(mt.to_yaml(cfg) + "\n")
    p = subprocess.run([mt.BIN, "edge", "-c", str(path)],
                       capture_output=True, text=True, timeout=mt.WAIT)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "edge.store:" in p.stderr and "does not exist" in p.stderr


def _file_edge(lab, tmp_path, o1, tag):
    """An edge whose whole file the test owns (to rewrite it for SIGHUP)."""
    port, admin = mt.free_port(), mt.free_port()
    cfg = {"edge": {"name": mt.EDGE_NAME, "workers": 1,
                    "store": str(tmp_path / (tag + ".db")),
                    "listen": {"http": ["%s:%d" % (mt.LOCAL, port)],
                               "admin": "%s:%d" % (mt.LOCAL, admin)}},
           "pools": [{"id": "p", "origins": [org(o1)]}],
           "load_balancers": [{"name": HOST, "default_pools": ["p"]}]}
    ed = mt.Edge(lab.stack.logdir, mt.to_yaml(cfg) + "\n", port, tag)
    lab.stack.procs.append(ed)
    lab.stack.edges.append(ed)
    mt.wait_for(lambda: mt.port_accepts(admin), what="admin")
    return ed, cfg, Api(admin)


def _hup_refused(ed, cfg, what):
    with open(ed.config_path, "w") as f:
        f.write(mt.to_yaml(cfg) + "\n")
    before = ed.stderr_tail(1 << 20).count("the running config stays")
    os.kill(ed.pid, signal.SIGHUP)
    mt.wait_for(lambda: ed.stderr_tail(1 << 20).count(
        "the running config stays") > before, what="the reload refused")
    assert re.search(what, ed.stderr_tail(1 << 20)), ed.stderr_tail(4096)


def test_reload_cannot_move_the_store(lab, tmp_path):
    """The store holds the API's objects: a SIGHUP naming another store
    file is refused (a restart applies it), and writes after it still go
    to the store the objects came from, so nothing is lost."""
    o1 = lab.origin("o1")
    ed, cfg, api = _file_edge(lab, tmp_path, o1, "mv")
    before = api.ok("POST", ACCT + "/pools",
                    {"name": "before", "origins": [org(o1)]})
    cfg["edge"]["store"] = str(tmp_path / "other.db")
    _hup_refused(ed, cfg, r"edge\.store changed: restart meridian")
    after = api.ok("POST", ACCT + "/pools",
                   {"name": "after", "origins": [org(o1)]})
    assert not (tmp_path / "other.db").exists()
    # Both objects are in the store the edge started with.
    import sqlite3
    con = sqlite3.connect(str(tmp_path / "mv.db"))
    try:
        text = " ".join(str(r) for r in con.execute("select * from objects"))
    finally:
        con.close()
    assert before["id"] in text and after["id"] in text


def test_reload_refuses_a_file_that_refers_to_api_objects(lab, tmp_path):
    """The file must load on its own, as at start-up: a file whose pool
    names a monitor created through the API is refused on SIGHUP (with
    why), rather than accepted now and fatal at the next start."""
    o1 = lab.origin("o1")
    ed, cfg, api = _file_edge(lab, tmp_path, o1, "ref")
    m = api.ok("POST", ACCT + "/monitors", {"type": "tcp", "interval": 5})
    cfg["pools"][0]["monitor"] = m["id"]
    _hup_refused(ed, cfg, r"unknown monitor '%s'(.|\n)*objects of the "
                 r"config file may not refer to objects created through "
                 r"the API" % m["id"])
    assert api.ok("GET", ACCT + "/pools/p").get("monitor") in (None, "")


def test_error_message_survives_a_cut_or_bad_utf8(env):
    """Every error is {code, message}: a message cut to its buffer in the
    middle of a character, or quoting bytes that are not UTF-8, keeps its
    message (it used to lose the key: json_string() refused the text)."""
    ed, api, _, _ = env
    st, e = api.call("POST", ZONE, {"name": "\u00e9" * 2000 + ".org",
                                    "default_pools": ["filepool"]})
    assert st == 400 and e["errors"][0]["code"] == 1003, e
    msg = e["errors"][0]["message"]
    assert msg.startswith("name: \u00e9\u00e9"), e
    assert "\ufffd" not in msg and len(msg.encode()) < 1024, msg
    st, e = api.call("GET", "/client/v4/user/load_balancing_analytics/"
                     "events?since=%FF")
    assert st == 400 and e["errors"][0]["code"] == 1009, e
    assert e["errors"][0]["message"] == \
        "since: expected an RFC 3339 time, got '?'", e
    # A validation error quoting a long value, cut to its buffer: one of
    # the two is cut in the middle of an "é" (two bytes).
    for body in ({"type": "http", "path": "\u00e9" * 600},
                 {"type": "http", "expected_codes": "\u00e9" * 600}):
        st, e = api.call("POST", ACCT + "/monitors", body)
        assert st == 400 and e["errors"], e
        for x in e["errors"]:
            assert x["code"] == 1003 and "\u00e9\u00e9" in x["message"], e


def test_pool_health_is_null_while_the_pool_is_unknown(lab, tmp_path):
    """A pool with no verdict yet (its only origin's first check still
    running) answers "healthy": null, not true: /metrics says
    meridian_pool_healthy 0 for it."""
    silent = socket.socket()  # accepts (backlog), never answers
    silent.bind((mt.LOCAL, 0))
    silent.listen(8)
    try:
        port = silent.getsockname()[1]
        ed = api_edge(lab, tmp_path,
                      monitors=[monitor(interval="60s", timeout="10s")],
                      pools=[{"id": "p", "monitor": "m", "origins": [
                          {"name": "s", "address": mt.LOCAL,
                           "port": port}]}],
                      lbs=[{"name": HOST, "default_pools": ["p"]}])
        api = Api(ed.admin)
        pop = api.ok("GET", ACCT + "/pools/p/health")["pop_health"][
            mt.EDGE_NAME]
        assert pop["state"] == "unknown", pop
        assert pop["healthy"] is None, pop
        assert pop["origins"][0]["healthy"] is None, pop
        m = mt.request(ed.admin, "GET", "/metrics", host="admin").text
        assert 'meridian_pool_healthy{pool="p"} 0' in m
    finally:
        silent.close()


def test_put_and_patch_check_the_name_as_post_does(env):
    """PUT replaces a pool (name required, a string) and PATCH may not
    make its name anything but a string: both used to answer 200, PUT
    with the name reset to the id, PATCH {"name": 123} with "123"."""
    ed, api, o1, _ = env
    p = api.ok("POST", ACCT + "/pools",
               {"name": "web", "origins": [org(o1)]})
    path = ACCT + "/pools/" + p["id"]
    for method, body in (("PUT", {"origins": [org(o1)]}),
                         ("PUT", {"name": 123, "origins": [org(o1)]}),
                         ("PATCH", {"name": 123}),
                         ("PATCH", {"name": None})):
        st, e = api.call(method, path, body)
        assert st == 400 and e["errors"][0]["code"] == 1003, (method, e)
        assert e["errors"][0]["message"].startswith("name: required"), e
    assert api.ok("GET", path)["name"] == "web"
    assert api.ok("PATCH", path, {"name": "www"})["name"] == "www"
    assert api.ok("PATCH", path, {"minimum_origins": 1})["name"] == "www"
    assert api.ok("PUT", path, {"name": "w2", "origins": [org(o1)]})[
        "name"] == "w2"
    # A load balancer's name is checked the same way.
    lb = api.ok("POST", ZONE, {"name": "x.example.com",
                               "default_pools": [p["id"]]})
    for method, body in (("PUT", {"default_pools": [p["id"]]}),
                         ("PATCH", {"name": 5})):
        st, e = api.call(method, ZONE + "/" + lb["id"], body)
        assert st == 400 and e["errors"][0]["code"] == 1003, (method, e)
    assert api.ok("GET", ZONE + "/" + lb["id"])["name"] == "x.example.com"


def test_name_errors_carry_field_as_every_validation_error(env):
    """docs/API.md: validation errors (1003) carry `field`, the path of
    the bad value. The name checks of pools and load balancers (missing,
    not a string, outside the zone) answered without it."""
    ed, api, o1, _ = env
    p = api.ok("POST", ACCT + "/pools", {"name": "f", "origins": [org(o1)]})
    cases = [("POST", ACCT + "/pools", {"origins": [org(o1)]}),
             ("PATCH", ACCT + "/pools/" + p["id"], {"name": 7}),
             ("POST", ZONE, {"default_pools": [p["id"]]}),
             ("POST", ZONE, {"name": "x.other.org",
                             "default_pools": [p["id"]]})]
    for method, path, body in cases:
        st, e = api.call(method, path, body)
        assert st == 400, (method, path, e)
        assert e["errors"] == [{"code": 1003,
                                "message": e["errors"][0]["message"],
                                "field": "name"}], (method, path, e)
        assert e["errors"][0]["message"].startswith("name: "), e
    st, e = api.call("POST", ZONE, cases[3][2])
    assert e["errors"][0]["message"] == \
        "name: x.other.org is not in zone example.com", e


def _head(port, path, token=None):
    c = http.client.HTTPConnection(mt.LOCAL, port, timeout=mt.WAIT)
    try:
        c.request("HEAD", path, headers={"Authorization": "Bearer " + token}
                  if token else {})
        r = c.getresponse()
        return r.status, r.getheader("Content-Length"), r.read()
    finally:
        c.close()


def test_head_is_answered_as_get_without_a_body(lab, tmp_path):
    """docs/API.md: a read token may use GET (and HEAD). HEAD on a
    /client/v4/ path answered 405; now the status and Content-Length of
    the GET, no body."""
    o1 = lab.origin("o1")
    ed = lab.edge([{"id": "p", "origins": [org(o1)]}],
                  [{"name": HOST, "default_pools": ["p"]}],
                  edge_extra={"store": str(tmp_path / "s.db")},
                  api={"tokens": [{"token": "r" * 40, "scope": "read"}]})
    for path in (ACCT + "/pools", ACCT + "/pools/p", ACCT + "/pools/p/health",
                 ZONE, "/client/v4/user/load_balancing_analytics/events"):
        c = http.client.HTTPConnection(mt.LOCAL, ed.admin, timeout=mt.WAIT)
        try:
            c.request("GET", path, headers={"Authorization": "Bearer " +
                                            "r" * 40})
            g = c.getresponse()
            gbody = g.read()
        finally:
            c.close()
        st, clen, body = _head(ed.admin, path, "r" * 40)
        assert g.status == 200 and st == 200, (path, st)
        assert body == b"" and clen is not None, (path, clen, body)
        # Lengths agree up to what changes between two calls (times).
        if "events" not in path and "health" not in path:
            assert int(clen) == len(gbody), (path, clen, len(gbody))
    assert _head(ed.admin, ACCT + "/pools/nosuch", "r" * 40)[0] == 404
    assert _head(ed.admin, ACCT + "/pools")[0] == 401


def test_query_values_too_long_are_refused_not_cut(env):
    """A query value longer than its buffer answers 400 (1009) naming the
    parameter; it used to be cut: since=2999-...000Z lost its Z (and was
    taken), a long pool_id filtered on its first 127 bytes."""
    ed, api, _, _ = env
    ev = "/client/v4/user/load_balancing_analytics/events"
    for q, key in (("since=2999-01-01T00:00:00." + "0" * 60 + "Z", "since"),
                   ("until=2999-01-01T00:00:00." + "0" * 60 + "Z", "until"),
                   ("pool_id=" + "p" * 300, "pool_id"),
                   ("pool_name=" + "p" * 300, "pool_name"),
                   ("origin_name=" + "o" * 300, "origin_name"),
                   ("origin_healthy=" + "true" + "%20" * 20, "origin_healthy"),
                   ("per_page=" + "0" * 40 + "1", "per_page")):
        st, e = api.call("GET", ev + "?" + q)
        assert st == 400 and e["errors"][0]["code"] == 1009, (q, e)
        assert e["errors"][0]["message"].startswith(key + ": longer than"), \
            (q, e)
    st, e = api.call("GET", "/client/v4/zones?name=" + "a" * 300 + ".com")
    assert st == 400 and e["errors"][0]["code"] == 1009, e
    # A %00 would cut the value short just the same.
    st, e = api.call("GET", ev + "?pool_id=filepool%00junk")
    assert st == 400 and e["errors"][0]["code"] == 1009, e
    assert "pool_id: contains a NUL byte" in e["errors"][0]["message"], e
    # Values that fit still work.
    assert api.ok("GET", ev + "?since=2999-01-01T00:00:00.000Z") == []
    assert api.ok("GET", ev + "?pool_id=" + "p" * 255) == []


def test_event_times_out_of_range_are_refused(env):
    """since/until: a date that does not exist (February 30th, April
    31st), sloppy forms (no zero padding, a leading space, a dot without
    digits) answer 400 (1009) like any bad value; they used to be taken
    (strptime + timegm: February 30th read as March 2nd)."""
    ed, api, _, _ = env
    ev = "/client/v4/user/load_balancing_analytics/events"
    for v in ("2026-02-30T00:00:00Z", "2026-04-31T00:00:00Z",
              "2025-02-29T00:00:00Z", "2026-1-2T03:04:05Z",
              "%202026-01-02T03:04:05Z", "2026-01-02T03:04:05.Z",
              "2026-01-02T24:00:00Z", "2026-01-02T03:04:05Zjunk"):
        for key in ("since", "until"):
            st, e = api.call("GET", ev + "?%s=%s" % (key, v))
            assert st == 400 and e["errors"][0]["code"] == 1009, (key, v, e)
            assert e["errors"][0]["message"].startswith(
                key + ": expected an RFC 3339 time"), (key, v, e)
    # Valid ones, as documented: fractions, Z or +00:00, ms since the epoch.
    for v in ("2999-01-01T00:00:00Z", "2999-01-01T00:00:00.5Z",
              "2999-01-01T00:00:00%2B00:00", "2028-02-29T00:00:00z",
              "32503680000000"):
        assert api.ok("GET", ev + "?since=" + v) == [], v
    assert api.ok("GET", ev + "?until=1999-12-31T23:59:60Z") == []


def test_zone_ids_are_only_handed_out_for_configured_zones(lab, tmp_path):
    """GET /zones/other.org (a zone not in zones[]) answered an id that
    every other path then refused (404, 1008) and that /zones?name= did
    not list. /zones is about configured zones: it answers 404 for the
    others, whose load balancers stay reachable by the zone's name."""
    o1 = lab.origin("o1")
    ed = lab.edge([{"id": "p", "origins": [org(o1)]}],
                  [{"name": HOST, "default_pools": ["p"]}],
                  edge_extra={"store": str(tmp_path / "s.db")},
                  zones=[{"name": "example.com"}])
    api = Api(ed.admin)
    st, e = api.call("GET", "/client/v4/zones/other.org")
    assert st == 404 and e["errors"][0]["code"] == 1008, e
    assert api.ok("GET", "/client/v4/zones?name=other.org") == []
    lb = api.ok("POST", "/client/v4/zones/other.org/load_balancers",
                {"name": "www.other.org", "default_pools": ["p"]})
    assert [x["id"] for x in api.ok(
        "GET", "/client/v4/zones/other.org/load_balancers")] == [lb["id"]]
    # Every id /zones hands out is taken back by the other paths.
    for z in api.ok("GET", "/client/v4/zones"):
        assert api.ok("GET", "/client/v4/zones/" + z["id"]) == z
        assert api.ok("GET", "/client/v4/zones/" + z["name"].upper()) == z
        api.ok("GET", "/client/v4/zones/%s/load_balancers" % z["id"])


def test_one_edge_per_store(lab, tmp_path):
    """A second edge on the same store would run objects the first
    deleted and miss those it creates: it refuses to start, naming the
    store. After the first stops, the store opens again."""
    import subprocess
    o1 = lab.origin("o1")
    store = tmp_path / "shared.db"
    ed = api_edge(lab, tmp_path, store=store,
                  pools=[{"id": "fp", "origins": [org(o1)]}],
                  lbs=[{"name": HOST, "default_pools": ["fp"]}])
    cfg = {"edge": {"name": "second", "workers": 1, "store": str(store),
                    "listen": {"http": ["%s:%d" % (mt.LOCAL,
                                                   mt.free_port())]}},
           "pools": [{"id": "fp", "origins": [org(o1)]}],
           "load_balancers": [{"name": HOST, "default_pools": ["fp"]}]}
    path = tmp_path / "second.yaml"
    path.write_text(mt.to_yaml(cfg) + "\n")
    r = subprocess.run([mt.BIN, "edge", "-c", str(path)],
                       capture_output=True, text=True, timeout=mt.WAIT)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "is in use by another meridian edge" in r.stderr, r.stderr
    assert ed.terminate(timeout=mt.WAIT) == 0
    ed.expect_exit = True
    p = subprocess.Popen([mt.BIN, "edge", "-c", str(path)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port = cfg["edge"]["listen"]["http"][0].rsplit(":", 1)[1]
        mt.wait_for(lambda: mt.port_accepts(int(port)),
                    what="the second edge, once the store is free")
    finally:
        p.terminate()
        p.wait(timeout=mt.WAIT)
        p.stderr.close()


def test_every_answer_under_v4_is_the_envelope_even_odd_methods(env):
    """docs/API.md: every answer under /client/v4/ is one JSON object. A
    method longer than the admin listener keeps (31 bytes) got an empty
    text/plain 405."""
    ed, api, _, _ = env
    for method in ("FOO", "X" * 40):
        st, e = api.call(method, ACCT + "/pools")
        assert st == 405, (method, e)
        assert [x["code"] for x in e["errors"]] == [7001], (method, e)


def test_error_code_table_matches_the_enum():
    """docs/API.md's table of error codes lists exactly the codes of
    enum api_code (src/api/api_env.h), so a client can look up any code
    the API sends and the table names none it does not."""
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    with open(os.path.join(root, "src", "api", "api_env.h")) as f:
        enum = f.read()
    enum = enum[enum.index("enum api_code"):]
    enum = enum[:enum.index("};")]
    codes = {int(c) for c in re.findall(r"= (\d+),", enum)}
    with open(os.path.join(root, "docs", "API.md")) as f:
        doc = f.read()
    table = doc[doc.index("### Error codes"):]
    table = table[:table.index("\n```")]
    documented = {int(c) for c in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert len(codes) > 15, codes
    assert codes == documented, (codes - documented, documented - codes)


def test_cross_site_writes_are_refused(env):
    """A page on another site can make a browser POST a form or text/plain
    body to a loopback API without tokens. Writes from another Origin are
    refused (403), and so are bodies not sent as JSON (415, which a
    browser cannot send across origins without a preflight); nothing
    changes. The same origin (the dashboard) and clients that send no
    Origin (curl, meridian ctl) write as before."""
    ed, api, o1, _ = env
    body = json.dumps({"name": "csrf", "origins": [org(o1)]}).encode()
    st, e = api.call("POST", ACCT + "/pools", raw=body,
                     headers={"Origin": "http://evil.example"})
    assert st == 403 and "cross-origin" in e["errors"][0]["message"], e
    st, e = api.call("POST", ACCT + "/monitors/m/preview", raw=b"{}",
                     headers={"Origin": "null"})
    assert st == 403, e
    # text/plain, as a cross-site form can send it (call() sets JSON
    # only for its own bodies: a raw body with our header replaces it).
    c = http.client.HTTPConnection(mt.LOCAL, ed.admin, timeout=mt.WAIT)
    try:
        c.request("POST", ACCT + "/pools", body=body,
                  headers={"Content-Type": "text/plain"})
        r = c.getresponse()
        e = json.loads(r.read())
    finally:
        c.close()
    assert r.status == 415 and "application/json" in \
        e["errors"][0]["message"], (r.status, e)
    assert [p["name"] for p in api.ok("GET", ACCT + "/pools")] == \
        ["filepool"]
    # The same origin writes.
    st, e = api.call("POST", ACCT + "/pools", raw=body, headers={
        "Origin": "http://%s:%d" % (mt.LOCAL, ed.admin)})
    assert st == 200, e
    assert sorted(p["name"] for p in api.ok("GET", ACCT + "/pools")) == \
        ["csrf", "filepool"]


def test_regions_api(env):
    """Cloudflare's Regions API over the built-in country -> region table:
    every region, one region, the region of a country; bad input 4xx."""
    ed, api, _, _ = env
    r = api.ok("GET", ACCT + "/regions")
    codes = [x["region_code"] for x in r["regions"]]
    assert codes == ["WNAM", "ENAM", "WEU", "EEU", "NSAM", "SSAM", "OC",
                     "ME", "NAF", "SAF", "SAS", "SEAS", "NEAS"], codes
    seen = {}
    for reg in r["regions"]:
        for c in reg["countries"]:
            cc = c["country_code_a2"]
            assert re.fullmatch(r"[A-Z]{2}", cc), cc
            assert cc not in seen, (cc, seen.get(cc), reg["region_code"])
            seen[cc] = reg["region_code"]
    assert seen["JP"] == "NEAS" and seen["DE"] == "WEU"
    assert seen["US"] == "ENAM" and seen["MX"] == "WNAM"
    assert len(seen) > 200
    # one region
    weu = api.ok("GET", ACCT + "/regions/WEU")
    assert [x["region_code"] for x in weu["regions"]] == ["WEU"]
    assert {c["country_code_a2"] for c in weu["regions"][0]["countries"]} \
        == {cc for cc, reg in seen.items() if reg == "WEU"}
    # the region of a country, any case
    jp = api.ok("GET", ACCT + "/regions?country_code_a2=jp")
    assert jp["regions"] == [{"region_code": "NEAS",
                              "countries": [{"country_code_a2": "JP"}]}], jp
    assert api.ok("GET", ACCT + "/regions/WEU?country_code_a2=JP")[
        "regions"] == []
    assert api.ok("GET", ACCT + "/regions?country_code_a2=QQ")["regions"] \
        == []
    st, e = api.call("GET", ACCT + "/regions/MARS")
    assert st == 404 and e["errors"][0]["code"] == 1001, e
    assert "WNAM" in e["errors"][0]["message"]
    for q in ("country_code_a2=USA", "country_code_a2=1x",
              "subdivision_code=CA"):
        st, e = api.call("GET", ACCT + "/regions?" + q)
        assert st == 400 and e["errors"][0]["code"] == 1009, (q, e)
    st, e = api.call("POST", ACCT + "/regions", {})
    assert st == 405, e
    st, e = api.call("GET", ACCT + "/regions/WEU/x")
    assert st == 404, e


def test_ctl_regions(env):
    ed, _, _, _ = env
    server = "http://%s:%d" % (mt.LOCAL, ed.admin)

    def ctl(*a):
        return subprocess.run([mt.BIN, "ctl", "--server", server] + list(a),
                              capture_output=True, text=True,
                              timeout=mt.WAIT)
    r = ctl("regions")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["REGION", "COUNTRIES"], r.stdout
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[1:]}
    assert len(rows) == 13 and "JP" in rows["NEAS"], r.stdout
    r = ctl("regions", "country", "de")
    assert r.returncode == 0 and r.stdout.splitlines()[1].split() == \
        ["WEU", "DE"], r.stdout
    r = ctl("regions", "WEU")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stdout
    r = ctl("regions", "--json", "country", "JP")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["regions"][0]["region_code"] == "NEAS"
    r = ctl("regions", "country", "QQ")
    assert r.returncode == 4 and "QQ" in r.stderr and not r.stdout, r
    r = ctl("regions", "MARS")
    assert r.returncode == 4 and "MARS" in r.stderr, r
    r = ctl("regions", "country", "USA")
    assert r.returncode == 1 and "country_code_a2" in r.stderr, r
    r = ctl("regions", "a", "b")
    assert r.returncode == 2 and "regions takes" in r.stderr, r


def test_ids_in_the_path_are_percent_decoded(lab, tmp_path):
    """Clients escape ids (`meridian ctl` sends *.example.com as
    %2A.example.com, a space as %20): the API decodes each path segment,
    so a wildcard load balancer or a pool id with a space is found. %00
    names no route; an encoded '/' stays inside its segment."""
    o1 = lab.origin("o1")
    ed = api_edge(lab, tmp_path,
                  pools=[{"id": "gcp east", "origins": [org(o1)]}],
                  lbs=[{"name": "*.example.com",
                        "default_pools": ["gcp east"]}])
    api = Api(ed.admin)
    lb = api.ok("GET", ZONE + "/%2A.example.com")
    assert lb["id"] == "*.example.com", lb
    assert api.ok("GET", ACCT + "/pools/gcp%20east")["id"] == "gcp east"
    h = api.ok("GET", ACCT + "/pools/gcp%20east/health")
    assert h["pool_id"] == "gcp east", h
    refs = api.ok("GET", ACCT + "/pools/gcp%20east/references")
    assert [r["resource_id"] for r in refs] == ["*.example.com"], refs
    # Still 409 (file-managed), not 404: the id was found.
    st, e = api.call("DELETE", ACCT + "/pools/gcp%20east")
    assert st == 409 and e["errors"][0]["code"] == 1005, e
    st, e = api.call("GET", ACCT + "/pools/gcp%00east")
    assert st == 404 and e["errors"][0]["code"] == 7003, e
    st, e = api.call("GET", ACCT + "/pools/gcp%2Feast")
    assert st == 404 and e["errors"][0]["code"] == 1001, e
    assert "gcp/east" in e["errors"][0]["message"], e
    # A '%' without two hex digits is taken as it is.
    st, e = api.call("GET", ACCT + "/pools/gcp%zz")
    assert st == 404 and "gcp%zz" in e["errors"][0]["message"], e
    # A path too deep under cfd_tunnel names no route (the whole path).
    st, e = api.call("GET", "/client/v4/accounts/default/cfd_tunnel/a/b/c")
    assert st == 404 and e["errors"][0]["code"] == 7003, e
    assert "/cfd_tunnel/a/b/c" in e["errors"][0]["message"], e


def test_list_pools_filters_by_monitor(env):
    """Cloudflare's List Pools takes ?monitor=ID: only the pools that use
    that monitor (none for an unknown one); an empty value filters
    nothing."""
    ed, api, o1, _ = env
    m1 = api.ok("POST", ACCT + "/monitors", {"type": "tcp"})["id"]
    m2 = api.ok("POST", ACCT + "/monitors", {"type": "tcp"})["id"]
    ids = {}
    for name, mon in (("a", m1), ("b", m2), ("c", m1), ("d", None)):
        body = {"name": name, "origins": [org(o1)]}
        if mon:
            body["monitor"] = mon
        ids[name] = api.ok("POST", ACCT + "/pools", body)["id"]
    got = api.ok("GET", ACCT + "/pools?monitor=" + m1)
    assert [p["id"] for p in got] == [ids["a"], ids["c"]], got
    st, e = api.call("GET", ACCT + "/pools?monitor=%s&per_page=1&page=2"
                     % m2)
    assert st == 200 and e["result"] == [] and \
        e["result_info"]["total_count"] == 1, e
    assert api.ok("GET", ACCT + "/pools?monitor=nosuch") == []
    assert len(api.ok("GET", ACCT + "/pools?monitor=")) == 5  # + filepool


def test_cloudflare_spellings_of_defaults_are_taken(env):
    """What Cloudflare's API gives back for its defaults can be sent as it
    is: session_affinity "" (also in a rule's overrides) is "none"; a tcp
    monitor's method "connection_established" is no HTTP method. An http
    monitor with it is still refused, naming the field."""
    ed, api, _, _ = env
    m = api.ok("POST", ACCT + "/monitors",
               {"type": "tcp", "method": "connection_established",
                "port": 8080, "probe_zone": ""})
    assert m["type"] == "tcp" and m["port"] == 8080, m
    st, e = api.call("POST", ACCT + "/monitors",
                     {"type": "https", "method": "connection_established"})
    assert st == 400 and e["errors"][0]["field"].endswith(".method"), e
    # Changing the stored tcp monitor to http keeps its method: refused.
    st, e = api.call("PATCH", ACCT + "/monitors/" + m["id"],
                     {"type": "http"})
    assert st == 400 and e["errors"][0]["field"].endswith(".method"), e
    lb = api.ok("POST", ZONE,
                {"name": "cf.example.com", "default_pools": ["filepool"],
                 "session_affinity": "", "steering_policy": "",
                 "rules": [{"name": "r", "condition": "true",
                            "overrides": {"session_affinity": ""}}]})
    assert lb["session_affinity"] == "none", lb
    assert lb["rules"][0]["overrides"]["session_affinity"] == "none", lb
    st, e = api.call("POST", ZONE, {"name": "cf2.example.com",
                                    "default_pools": ["filepool"],
                                    "session_affinity": "sticky"})
    assert st == 400 and "session_affinity" in e["errors"][0]["field"], e
