"""Cloudflare's monitor preview on the admin API (issue 5): POST a monitor
body to …/monitors/{id}/preview or …/pools/{id}/preview, then GET
…/preview/{preview_id}. Real origins on 127.0.0.1, one of them killed, one
that accepts and never answers (to see a running preview), a bad body, an
expected_codes mismatch, unknown ids, and an edge stopped while a preview
runs (teardown checks it exits 0, so ASan finds no leak)."""
import json
import socket

import pytest

import meridian_test as mt
from test_api import ACCT, HEX32, Api, api_edge
from test_health import HOST, lab, org  # noqa: F401

# Monitors of the file check every minute: the health checker stays out of
# the way of what the tests look at.
FILE_MON = {"id": "m", "type": "http", "path": "/healthz",
            "interval": "60s", "timeout": "1s", "retries": 0}
BODY = {"type": "http", "path": "/healthz", "timeout": 2, "retries": 1,
        "expected_codes": "2xx"}


@pytest.fixture
def env(lab, tmp_path):
    o1, o2, dead = lab.origin("o1"), lab.origin("o2"), lab.origin("dead")
    lab.kill(dead)  # its port now refuses connections
    ed = api_edge(
        lab, tmp_path, monitors=[FILE_MON],
        pools=[{"id": "p1", "name": "primary", "monitor": "m",
                "origins": [org(o1), org(dead)]},
               {"id": "p2", "monitor": "m", "origins": [org(o2)]},
               {"id": "p3", "origins": [org(o2)]}],
        lbs=[{"name": HOST, "default_pools": ["p1", "p2", "p3"]}])
    return ed, Api(ed.admin), o1, o2, dead


def result(api, pid, timeout=mt.WAIT, what="preview to finish"):
    """The preview's result once no origin is pending."""
    def done():
        st, env = api.call("GET", ACCT + "/preview/" + pid)
        assert st == 200, env
        res = env["result"]
        pending = [o for p in res.values() for x in p["origins"]
                   for o in x.values() if o.get("pending")]
        if pending:
            assert env["messages"] and "running" in \
                env["messages"][0]["message"], env
            return None
        assert env["messages"] == [], env
        return [res]  # true even when res is {}
    return mt.wait_for(done, timeout=timeout, what=what)[0]


def origins(pool):
    """{origin name: (address, health data)} of one pool of a result."""
    out = {}
    for x in pool["origins"]:
        assert len(x) == 1, x
        (addr, h), = x.items()
        out[h["name"]] = (addr, h)
    return out


def test_monitor_preview_probes_the_pools_that_use_it(env):
    ed, api, o1, o2, dead = env
    r = api.ok("POST", ACCT + "/monitors/m/preview", BODY)
    assert HEX32.match(r["preview_id"]), r
    # The pools using monitor m, with their names; not p3 (no monitor).
    assert r["pools"] == {"p1": "primary", "p2": "p2"}, r
    res = result(api, r["preview_id"])
    assert list(res) == ["p1", "p2"], res
    p1 = origins(res["p1"])
    assert list(p1) == ["o1", "dead"]  # the pool's order
    addr, h = p1["o1"]
    assert addr == mt.LOCAL and h["port"] == o1.port
    assert h["healthy"] is True and h["failure_reason"] == "No failures"
    assert h["response_code"] == 200 and h["rtt"].endswith("ms"), h
    assert float(h["rtt"][:-2]) >= 0
    _, h = p1["dead"]
    assert h["healthy"] is False and h["port"] == dead.port, h
    assert h["failure_reason"].startswith("TCP connection failed"), h
    assert "rtt" not in h and "response_code" not in h, h
    # minimum_origins 1: one healthy origin keeps p1 healthy.
    assert res["p1"]["healthy"] is True
    assert res["p2"]["healthy"] is True
    assert origins(res["p2"])["o2"][1]["healthy"] is True
    # The result stays readable; the running config did not change.
    assert result(api, r["preview_id"]) == res
    assert api.ok("GET", ACCT + "/monitors/m")["timeout"] == 1


def test_pool_preview_shows_an_expected_codes_mismatch(env):
    ed, api, o1, _, _ = env
    body = dict(BODY, expected_codes="404")
    r = api.ok("POST", ACCT + "/pools/p1/preview", body)
    assert r["pools"] == {"p1": "primary"}, r
    res = result(api, r["preview_id"])
    assert list(res) == ["p1"]
    _, h = origins(res["p1"])["o1"]
    assert h["healthy"] is False and h["response_code"] == 200, h
    assert h["failure_reason"].startswith("response code mismatch"), h
    assert "200" in h["failure_reason"], h
    assert res["p1"]["healthy"] is False
    # A pool without a monitor can be previewed too.
    r = api.ok("POST", ACCT + "/pools/p3/preview", {"type": "tcp"})
    res = result(api, r["preview_id"])
    _, h = origins(res["p3"])["o2"]
    assert h["healthy"] is True and "response_code" not in h, h


def test_bad_bodies_name_the_fields(env):
    ed, api, _, _, _ = env
    st, e = api.call("POST", ACCT + "/monitors/m/preview",
                     {"type": "gopher", "timeout": "soon", "bogus": 1})
    assert st == 400, e
    fields = [x.get("field", "") for x in e["errors"]]
    msgs = " | ".join(x["message"] for x in e["errors"])
    for f in ("type", "timeout", "bogus"):
        assert any(x.endswith("." + f) for x in fields), (f, e)
        assert f in msgs, msgs
    assert all(x["code"] == 1003 for x in e["errors"]), e
    st, e = api.call("POST", ACCT + "/pools/p1/preview", {"retries": -1})
    assert st == 400 and "retries" in e["errors"][0]["message"], e
    for raw in (b"{", b"[1]", b""):
        st, e = api.call("POST", ACCT + "/monitors/m/preview", raw=raw)
        assert st == 400 and e["errors"][0]["code"] == 1002, (raw, e)
    # Read-only fields echoed from a GET are ignored, as for a create.
    echo = api.ok("GET", ACCT + "/monitors/m")
    r = api.ok("POST", ACCT + "/monitors/m/preview", echo)
    assert HEX32.match(r["preview_id"]), r


def test_unknown_ids_and_methods(env):
    ed, api, _, _, _ = env
    for path in ("/monitors/nope/preview", "/pools/nope/preview"):
        st, e = api.call("POST", ACCT + path, BODY)
        assert st == 404 and e["errors"][0]["code"] == 1001, (path, e)
    st, e = api.call("GET", ACCT + "/preview/" + "0" * 32)
    assert st == 404 and e["errors"][0]["code"] == 1001, e
    assert "not found" in e["errors"][0]["message"], e
    st, e = api.call("GET", ACCT + "/monitors/m/preview")
    assert st == 405, e
    r = api.ok("POST", ACCT + "/pools/p2/preview", BODY)
    st, e = api.call("DELETE", ACCT + "/preview/" + r["preview_id"])
    assert st == 405, e
    result(api, r["preview_id"])


def test_monitor_created_through_the_api(env):
    ed, api, _, o2, _ = env
    m = api.ok("POST", ACCT + "/monitors", {"type": "tcp", "interval": 60})
    p = api.ok("POST", ACCT + "/pools",
               {"name": "apipool", "monitor": m["id"],
                "origins": [{"name": "o2", "address": mt.LOCAL,
                             "port": o2.port}]})
    r = api.ok("POST", ACCT + "/monitors/%s/preview" % m["id"],
               {"type": "http", "path": "/healthz"})
    assert r["pools"] == {p["id"]: "apipool"}, r
    res = result(api, r["preview_id"])
    _, h = origins(res[p["id"]])["o2"]
    assert h["healthy"] is True and h["response_code"] == 200, h
    # A monitor no pool uses: an empty preview, done at once.
    m2 = api.ok("POST", ACCT + "/monitors", {"type": "tcp"})
    r = api.ok("POST", ACCT + "/monitors/%s/preview" % m2["id"],
               {"type": "tcp"})
    assert r["pools"] == {}
    assert result(api, r["preview_id"]) == {}


@pytest.fixture
def silent():
    """A port that accepts connections (the kernel's backlog) and never
    answers: a probe of it runs until the monitor's timeout."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((mt.LOCAL, 0))
    s.listen(16)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


def test_running_preview_reports_progress_then_timeout(lab, tmp_path,
                                                        silent):
    o1 = lab.origin("o1")
    ed = api_edge(
        lab, tmp_path, monitors=[FILE_MON],
        pools=[{"id": "p1", "monitor": "m", "origins": [
            org(o1), {"name": "hung", "address": mt.LOCAL,
                      "port": silent}]}],
        lbs=[{"name": HOST, "default_pools": ["p1"]}])
    api = Api(ed.admin)
    # The hung origin holds the preview for timeout x (retries + 1) = 8 s
    # at least: long enough to see it running.
    body = dict(BODY, timeout=4, retries=1)
    r = api.ok("POST", ACCT + "/monitors/m/preview", body)
    st, e = api.call("GET", ACCT + "/preview/" + r["preview_id"])
    assert st == 200, e
    hung = origins(e["result"]["p1"])["hung"][1]
    assert hung.get("pending") is True and "healthy" not in hung, e
    assert "healthy" not in e["result"]["p1"], e
    assert e["messages"][0]["code"] == 1011, e
    assert "of 2 origins checked" in e["messages"][0]["message"], e
    # The admin thread is not blocked meanwhile.
    assert api.ok("GET", ACCT + "/monitors/m")["id"] == "m"
    res = result(api, r["preview_id"], timeout=mt.WAIT + 10,
                 what="the hung origin to time out")
    hung = origins(res["p1"])["hung"][1]
    assert hung["healthy"] is False, hung
    assert hung["failure_reason"].startswith("timeout"), hung
    assert origins(res["p1"])["o1"][1]["healthy"] is True
    # Another preview is still running when the edge is stopped: the
    # teardown's SIGTERM must join the runner and exit 0 (no leak).
    api.ok("POST", ACCT + "/monitors/m/preview", body)


def test_too_many_previews_answer_429_with_its_reason(lab, tmp_path,
                                                      silent):
    """The 65th running preview is refused with 429 (1010), and the status
    line says "Too Many Requests" (it said "429 Status": 429 was missing
    from the admin's reason phrases)."""
    import http.client
    ed = api_edge(
        lab, tmp_path, monitors=[FILE_MON],
        pools=[{"id": "p1", "monitor": "m", "origins": [
            {"name": "hung", "address": mt.LOCAL, "port": silent}]}],
        lbs=[{"name": HOST, "default_pools": ["p1"]}])
    api = Api(ed.admin)
    body = dict(BODY, timeout=10, retries=0)
    for _ in range(64):
        api.ok("POST", ACCT + "/monitors/m/preview", body)
    c = http.client.HTTPConnection(mt.LOCAL, ed.admin, timeout=mt.WAIT)
    try:
        c.request("POST", ACCT + "/monitors/m/preview",
                  body=json.dumps(body).encode(),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        env = json.loads(r.read())
    finally:
        c.close()
    assert r.status == 429 and r.reason == "Too Many Requests", \
        (r.status, r.reason)
    assert env["errors"][0]["code"] == 1010, env
