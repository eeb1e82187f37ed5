"""edge.request_id_header: every request gets an id that reaches the
origin (one field), comes back on the response (the origin's own field of
that name is replaced) and on the edge's own answers, and is logged as
request_id; a client's well-formed id is kept, anything else replaced;
HTTP/2 too; check refuses a field the edge manages itself."""
import re
import subprocess

import pytest

import meridian_test as mt
from meridian_test import LOCAL
from obs_helpers import edge_section, start_edge
from test_access_log import read_lines
from test_health import lab  # noqa: F401  (the fixture)
from test_health import org
from test_tls import certs

HOST = "lb.example.com"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def echo_ids(r):
    """The X-Request-Id values the origin received (its /echo body)."""
    _, hdrs, _, _, _ = mt.parse_echo(r.body)
    return mt.echo_headers(hdrs, "X-Request-Id")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    def build(s):
        o = s.origin("o1", "gcp")
        log = str(s.logdir / "access.log")
        e = start_edge(s, lambda p, a: {
            "edge": edge_section(p, a, workers=1,
                                 request_id_header="X-Request-Id",
                                 access_log={"path": log}),
            "pools": [{"id": "p", "origins": [
                {"name": "o1", "address": LOCAL, "port": o.port}]}],
            "load_balancers": [{"name": HOST, "default_pools": ["p"]}],
        })
        return mt.Env(edge=e, origin=o, log=log)

    yield from mt.module_stack(tmp_path_factory, "request_id", build)


@pytest.fixture
def t(env):
    yield from mt.per_test(env)


def test_made_sent_returned_and_logged(t):
    r1 = mt.request(t.edge.port, "GET", "/echo", host=HOST)
    r2 = mt.request(t.edge.port, "GET", "/echo", host=HOST)
    ids = []
    for r in (r1, r2):
        assert r.status == 200
        got = r.header_all("X-Request-Id")
        assert len(got) == 1 and HEX32.match(got[0]), r
        assert echo_ids(r) == got  # the origin saw the same, once
        ids.append(got[0])
    assert ids[0] != ids[1]
    # Made ids share nothing guessable: both halves differ.
    assert ids[0][:16] != ids[1][:16] and ids[0][16:] != ids[1][16:]
    lines = read_lines(t.log, 2)
    logged = [ln.get("request_id") for ln in lines]
    assert ids[0] in logged and ids[1] in logged, lines


def test_client_id_kept_or_replaced(t):
    r = mt.request(t.edge.port, "GET", "/echo", host=HOST,
                   headers=[("X-Request-Id", "trace-42.a:b/c+d=e@f_g")])
    assert r.header_all("X-Request-Id") == ["trace-42.a:b/c+d=e@f_g"]
    assert echo_ids(r) == ["trace-42.a:b/c+d=e@f_g"]
    for bad in ("has space", "x" * 65, "quote\"d", "comma,d"):
        r = mt.request(t.edge.port, "GET", "/echo", host=HOST,
                       headers=[("X-Request-Id", bad)])
        got = r.header_all("X-Request-Id")
        assert len(got) == 1 and HEX32.match(got[0]), (bad, r)
        assert echo_ids(r) == got, bad
    # Several fields from the client: one id goes on, the first
    # well-formed.
    r = mt.request(t.edge.port, "GET", "/echo", host=HOST,
                   headers=[("X-Request-Id", "one"),
                            ("x-request-id", "two")])
    assert r.header_all("X-Request-Id") == ["one"]
    assert echo_ids(r) == ["one"]
    r = mt.request(t.edge.port, "GET", "/echo", host=HOST,
                   headers=[("X-Request-Id", "bad id"),
                            ("x-request-id", "two")])
    assert r.header_all("X-Request-Id") == ["two"]
    assert echo_ids(r) == ["two"]


def test_edge_answers_carry_the_id(t):
    r = mt.request(t.edge.port, "GET", "/", host="unknown.example.com")
    assert r.status == 404
    got = r.header_all("X-Request-Id")
    assert len(got) == 1 and HEX32.match(got[0]), r
    r = mt.request(t.edge.port, "GET", "/", host="unknown.example.com",
                   headers=[("X-Request-Id", "mine")])
    assert r.header_all("X-Request-Id") == ["mine"]


CHECK = """\
edge:
  name: t
  listen: { http: ["127.0.0.1:8080"] }
  request_id_header: %s
pools:
  - id: p
    origins: [ { name: o, address: 127.0.0.1, port: 9 } ]
load_balancers:
  - name: lb.example.com
    default_pools: [p]
"""


def test_check_refuses_managed_fields(tmp_path):
    p = tmp_path / "c.yaml"
    for name, ok in (("X-Request-Id", True), ("Host", False),
                     ("x-forwarded-for", False), ("Location", False),
                     ("Proxy-Connection", False), ("Bad Name", False)):
        r = mt.check_config(p, CHECK % name)
        assert (r.returncode == 0) == ok, (name, r.stderr)
        if not ok:
            assert "request_id_header" in r.stderr and "c.yaml:" in \
                r.stderr, r.stderr


def test_http2(lab, tmp_path):  # noqa: F811  (the fixture)
    o = lab.origin("o1")
    hp = mt.free_port()
    e = lab.edge([{"id": "p", "origins": [org(o)]}],
                 [{"name": HOST, "default_pools": ["p"]}], https_port=hp,
                 edge_extra={"tls": certs(tmp_path),
                             "request_id_header": "X-Request-Id"})
    mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    cmd = ["curl", "--http2", "-sk", "-D", "-", "--resolve",
           "%s:%d:127.0.0.1" % (HOST, hp), "https://%s:%d/echo" % (HOST, hp)]
    out = subprocess.run(cmd, capture_output=True, timeout=mt.WAIT + 5,
                         text=True).stdout
    # text mode: curl's CRLFs read as "\n"
    head, _, body = out.partition("\n\n")
    assert head.startswith("HTTP/2 200"), out
    got = [ln.split(":", 1)[1].strip() for ln in head.splitlines()
           if ln.lower().startswith("x-request-id:")]
    assert len(got) == 1 and HEX32.match(got[0]), head
    assert "X-Request-Id: %s\n" % got[0] in body, body
    e.check_alive()
