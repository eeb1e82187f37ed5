"""`meridian ctl health`: the health table (and --json) from a running
edge's admin listener; clear errors and exit codes otherwise."""
import contextlib
import http.server
import json
import subprocess
import threading

import meridian_test as mt


def _run(*args, env=None):
    return subprocess.run([mt.BIN, "ctl"] + list(args), capture_output=True,
                          text=True, timeout=30, env=env)


def test_ctl_health_table_and_json(stack):
    o = stack.origin("o1", "gcp")
    port, admin = mt.free_port(), mt.free_port()
    cfg = mt.to_yaml({
        "edge": {"name": mt.EDGE_NAME, "workers": 1,
                 "listen": {"http": ["%s:%d" % (mt.LOCAL, port)],
                            "admin": "%s:%d" % (mt.LOCAL, admin)},
                 "timeouts": {"drain": "5s"}},
        "monitors": [{"id": "m", "type": "http", "path": "/healthz",
                      "interval": "1s", "timeout": "1s"}],
        "pools": [{"id": "gcp", "monitor": "m",
                   "origins": [{"name": "o1", "address": mt.LOCAL,
                                "port": o.port},
                               {"name": "dead", "address": mt.LOCAL,
                                "port": mt.free_port()}]}],
        "load_balancers": [{"name": "lb.example.com",
                            "default_pools": ["gcp"]}],
    }) + "\n"
    e = mt.Edge(stack.logdir, cfg, port)
    stack.procs.append(e)
    stack.edges.append(e)
    server = "http://%s:%d" % (mt.LOCAL, admin)

    def judged():
        r = _run("--server", server, "health", "--json")
        if r.returncode != 0:
            return None
        doc = json.loads(r.stdout)
        states = {x["name"]: x["health"] for x in doc["pools"][0]["origins"]}
        return doc if states == {"o1": "healthy", "dead": "unhealthy"} \
            else None

    doc = mt.wait_for(judged, what="both origins judged")
    dead = [x for x in doc["pools"][0]["origins"] if x["name"] == "dead"][0]
    assert "TCP connection failed" in dead["reason"], dead
    r = _run("health", "--server", server)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["POOL/ORIGIN", "ADDRESS", "HEALTH"], r.stdout
    assert any(l.split()[0] == "o1" and "healthy" in l for l in lines), r.stdout
    assert any(l.split()[0] == "dead" and "unhealthy" in l and
               "TCP connection failed" in l for l in lines), r.stdout
    # The admin listener's other answers.
    assert mt.request(admin, "GET", "/healthz", host="admin").body == b"ok\n"
    assert mt.request(admin, "POST", "/status", host="admin",
                      body=b"x").status == 405
    assert mt.request(admin, "GET", "/nope", host="admin").status == 404
    r = mt.request(admin, "GET", "/status", host="admin",
                   headers=[("Accept", "application/json")])
    assert r.header("Content-Type") == "application/json", r
    assert json.loads(r.body)["pools"][0]["id"] == "gcp"
    # The environment variable names the server too.
    env = {"MERIDIAN_SERVER": server, "PATH": "/usr/bin:/bin"}
    assert _run("health", env=env).returncode == 0


def test_ctl_errors():
    r = _run("--server", "http://127.0.0.1:%d" % mt.free_port(), "health")
    assert r.returncode == 3  # 3: cannot reach the server
    assert "meridian ctl:" in r.stderr and "127.0.0.1" in r.stderr
    r = _run("frobnicate")
    assert r.returncode == 2 and "unknown command" in r.stderr
    r = _run()
    assert r.returncode == 2 and "usage" in r.stderr


def test_set_with_too_many_key_parts_is_a_usage_error():
    """--set with a key of 17 parts (one more than ctl keeps) is refused
    before anything is sent; it used to write past the parts array (a
    stack overflow that the ASan build reports)."""
    dead = "http://%s:%d" % (mt.LOCAL, mt.free_port())
    key = ".".join("abcdefghijklmnopq")
    r = _run("--server", dead, "monitors", "create", "--set", key + "=1")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "at most 16 parts" in r.stderr and not r.stdout, r
    assert "AddressSanitizer" not in r.stderr, r.stderr
    # 16 parts are fine: ctl goes on to the (unreachable) server.
    r = _run("--server", dead, "monitors", "create", "--set",
             ".".join("abcdefghijklmnop") + "=1")
    assert r.returncode == 3, (r.returncode, r.stderr)
    r = _run("--server", dead, "monitors", "create", "--set",
             "x" * 200 + "=1")
    assert r.returncode == 2 and "at most 16 parts" in r.stderr, r


@contextlib.contextmanager
def fake_server(answer):
    """A plain HTTP server on loopback whose every GET is answer():
    (status, content type, body bytes). Yields its URL."""
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, ctype, b = answer()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer((mt.LOCAL, 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield "http://%s:%d" % (mt.LOCAL, srv.server_address[1])
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(mt.WAIT)


def test_ctl_survives_answers_missing_fields():
    """An API answer from another version (or a proxy) may lack a field
    the table shows, or hold items that are not objects: ctl prints '-'
    and never crashes (a missing field used to be a segfault)."""
    bodies = [
        {"success": True, "errors": [], "messages": [],
         "result": [{"id": "a", "name": "p", "enabled": True,
                     "origins": [], "monitor": None}],
         "result_info": {"total_pages": 1}},
        {"success": True, "errors": [], "messages": [],
         "result": [1, "s", None], "result_info": {"total_pages": 1}},
    ]
    which = [0]

    def answer():
        return (200, "application/json",
                json.dumps(bodies[which[0]]).encode())
    with fake_server(answer) as server:
        for i in range(len(bodies)):
            which[0] = i
            for cmd in (["pools", "list"], ["monitors", "list"],
                        ["lbs", "list", "--zone", "example.com"]):
                r = _run("--server", server, *cmd)
                assert r.returncode in (0, 1), (i, cmd, r.returncode,
                                                r.stderr)


def test_a_404_from_another_server_is_not_not_found():
    """--server naming something that is not the admin listener (here a
    plain HTTP server answering 404 to everything, as the edge's proxy
    listener does for an unknown host): exit 1, "not an API answer", not
    4, which a script would take for "the object does not exist"."""
    with fake_server(lambda: (404, "text/plain", b"no such host\n")) \
            as server:
        for cmd in (["pools", "get", "x"], ["pools", "list"],
                    ["lbs", "get", "x", "--zone", "example.com"]):
            r = _run("--server", server, *cmd)
            assert r.returncode == 1, (cmd, r.returncode, r.stderr)
            assert "not an API answer" in r.stderr and not r.stdout, r
        r = _run("--server", server, "health")
        assert r.returncode == 1 and "HTTP 404" in r.stderr, r


def test_every_option_is_documented_and_exists():
    """Every option `meridian ctl --help` names has a row in the options
    table of docs/API.md's meridian ctl section, and every option of
    that table is one the help names (and ctl takes)."""
    import os
    import re
    p = subprocess.run([mt.BIN, "ctl", "--help"], capture_output=True,
                       text=True, timeout=mt.WAIT)
    assert p.returncode == 0, p
    helped = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", p.stdout))
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                           "API.md")) as f:
        doc = f.read()
    sec = doc[doc.index("## meridian ctl"):]
    sec = sec[:sec.index("\n## ", 1)]
    rows = [ln for ln in sec.splitlines() if ln.startswith("| `-")]
    documented = set()
    for ln in rows:
        documented |= set(re.findall(r"`(--[a-z][a-z-]*)", ln.split("|")[1]))
    assert len(helped) > 10, helped
    assert helped == documented, (helped - documented, documented - helped)
    for opt in documented:
        # An unknown option is a usage error naming it; a known one is not.
        p = subprocess.run([mt.BIN, "ctl", opt], capture_output=True,
                           text=True, timeout=mt.WAIT)
        assert "unrecognized option" not in p.stderr, (opt, p.stderr)


def test_every_command_of_the_help_is_in_the_docs_synopsis():
    """Each command `meridian ctl --help` lists (its leading words) has a
    line in the synopsis of docs/API.md's meridian ctl section."""
    import os
    import re
    p = subprocess.run([mt.BIN, "ctl", "--help"], capture_output=True,
                       text=True, timeout=mt.WAIT)
    assert p.returncode == 0, p
    helptext = p.stdout[p.stdout.index("commands:"):p.stdout.index(
        "options:")]
    cmds = []
    for ln in helptext.splitlines()[1:]:
        m = re.match(r"  (\S.*?)(?:\s{2,}|$)", ln)
        if not m or "..." in m.group(1):
            continue
        cmds.append(" ".join(re.sub(r"\[[^\]]*\]", "",
                                    m.group(1)).split()))
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                           "API.md")) as f:
        doc = f.read()
    sec = doc[doc.index("## meridian ctl"):]
    block = sec[sec.index("```") + 3:]
    block = block[:block.index("```")]
    synopsis = set()
    for ln in block.splitlines():
        if not ln.startswith("meridian ctl [options] "):
            continue
        words = re.sub(r"\[[^\]]*\]", "", ln[len(
            "meridian ctl [options] "):].split("  ")[0]).split()
        for first in words[0].split("|"):
            synopsis.add(" ".join([first] + words[1:]))
    assert len(cmds) > 10, cmds
    missing = [c for c in cmds if c not in synopsis]
    assert not missing, (missing, sorted(synopsis))
