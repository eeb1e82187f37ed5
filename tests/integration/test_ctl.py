"""`meridian ctl health`: the health table (and --json) from a running
edge's admin listener; clear errors and exit codes otherwise."""
import json
import subprocess

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
