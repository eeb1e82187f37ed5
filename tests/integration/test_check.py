"""`meridian check -c FILE`: exit codes and exact `file:line:col: message`
output for good and bad files, usage errors, and docs/CONFIG.md matching
`meridian check --reference`."""
import json
import os
import shutil
import subprocess

import pytest

import meridian_test as mt

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

GOOD = """\
edge:
  name: pop-test
  listen:
    http: ["127.0.0.1:8080"]
monitors:
  - { id: http-ok, path: /healthz, interval: 5s, expected_codes: "2xx" }
pools:
  - id: gcp
    monitor: http-ok
    origins:
      - { name: gke-1, address: 127.0.0.1, port: 9001 }
      - { name: gke-2, address: 127.0.0.1, port: 9002 }
  - id: aws
    origins: [ { name: eks-1, address: 127.0.0.1, port: 9101 } ]
load_balancers:
  - name: lb.example.com
    default_pools: [gcp, aws]
    fallback_pool: aws
"""


def run(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([mt.BIN, "check"] + list(args), capture_output=True,
                       text=True, timeout=mt.WAIT, env=e)
    return p.returncode, p.stdout, p.stderr


def write(tmp_path, text, name="meridian.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def check_file(tmp_path, text, env=None):
    path = write(tmp_path, text)
    return (path,) + run("-c", path, env=env)


def test_good_file(tmp_path):
    _, rc, out, err = check_file(tmp_path, GOOD)
    assert (rc, out, err) == (
        0, "ok: 1 monitor, 2 pools (3 origins), 1 load balancer, 0 zones\n",
        "")


def test_monitor_of_the_other_protocol_warns(tmp_path):
    """An http monitor on an origin reached over TLS: valid (exit 0, the
    summary), with a warning at the origin on stderr."""
    text = GOOD.replace("address: 127.0.0.1, port: 9002",
                        'address: "https://127.0.0.1:9443"')
    path, rc, out, err = check_file(tmp_path, text)
    assert rc == 0 and out.startswith("ok: "), (rc, out, err)
    assert err == (
        "%s:12:9: warning: origin 'gke-2' is reached over TLS but its "
        "pool's monitor 'http-ok' is type http: every check would send "
        "plain HTTP to port 9443 and fail (use type https, or monitor.port "
        "for a plain-HTTP health port)\n" % path), err


def test_option_spellings(tmp_path):
    path = write(tmp_path, GOOD)
    for args in (["--config", path], ["--config=" + path], ["-c" + path]):
        rc, out, _ = run(*args)
        assert rc == 0 and out.startswith("ok: "), args


def test_every_error_reported_in_file_order(tmp_path):
    path, rc, out, err = check_file(tmp_path, """\
edge:
  workers: 999
  listen: { admin: "localhost:9090" }
monitors:
  - { id: m, interval: 5 sec, expected_codes: "2x0" }
pools:
  - id: gcp
    monitor: mm
    origins:
      - { name: a, address: 127.0.0.1, prot: 80 }
      - { name: a, address: 127.0.0.1:81 }
  - origins: []
load_balancers:
  - name: lb.example.com
    default_pools: [gpc]
    steering_policy: rnadom
  - name: lb.example.com
""")
    assert rc == 1
    assert out == ""
    want = [
        "2:12: workers: 999 is out of range 0..256",
        "3:20: admin: bad address 'localhost:9090': not a numeric IP "
        "address (host names are not accepted here)",
        "5:24: interval: expected a duration like 500ms, 5s, 1m, got "
        "'5 sec'",
        "5:47: expected_codes: expected status codes like \"200\", \"2xx\" "
        "or \"200,301\", got '2x0'",
        "8:14: unknown monitor 'mm'; did you mean 'm'?",
        "10:40: unknown key 'prot' in origin; did you mean 'port'?",
        "11:17: duplicate origin name 'a' (first at line 10)",
        "11:29: address: '127.0.0.1:81' includes a port; write it as "
        "'port: 81'",
        "12:5: pool is missing required key 'id'",
        "12:14: origins: must not be empty",
        "15:21: unknown pool 'gpc'; did you mean 'gcp'?",
        "16:22: steering_policy: 'rnadom' is not one of \"\", off, random, "
        "geo, dynamic_latency, proximity, least_outstanding_requests, "
        "least_connections; did you mean 'random'?",
        "17:5: load balancer is missing required key 'default_pools'",
        "17:11: duplicate load balancer name 'lb.example.com' (first at "
        "line 14)",
    ]
    assert err.splitlines() == ["%s:%s" % (path, w) for w in want]


def test_yaml_syntax_error(tmp_path):
    path, rc, out, err = check_file(tmp_path,
                                    "pools:\n  - id: a\n   origins: []\n")
    assert (rc, out) == (1, "")
    assert err == ("%s:3:4: YAML syntax error: did not find expected '-' "
                   "indicator (while parsing a block collection)\n" % path)


def test_empty_file(tmp_path):
    path, rc, out, err = check_file(tmp_path, "# nothing yet\n")
    assert (rc, out, err) == (1, "", "%s:1:1: configuration is empty\n"
                              % path)


def test_top_level_not_a_mapping(tmp_path):
    path, rc, _, err = check_file(tmp_path, "- edge\n")
    assert rc == 1
    assert err == ("%s:1:1: expected a mapping of sections (edge, monitors, "
                   "pools, load_balancers, ...) at the top level, got a "
                   "list\n" % path)


def test_env_substitution(tmp_path):
    text = ('api:\n  tokens:\n    - { token: "${MERIDIAN_T_TOKEN}", '
            'scope: edit }\nedge: { listen: { dns: ["127.0.0.1:5353"] } }\n')
    path = write(tmp_path, text)
    rc, out, err = run("-c", path, env={"MERIDIAN_T_TOKEN": "s3cret"})
    assert (rc, err) == (0, "")
    env = dict(os.environ)
    env.pop("MERIDIAN_T_TOKEN", None)
    p = subprocess.run([mt.BIN, "check", "-c", path], capture_output=True,
                       text=True, timeout=mt.WAIT, env=env)
    assert p.returncode == 1
    assert p.stderr == ("%s:3:16: environment variable 'MERIDIAN_T_TOKEN' "
                        "is not set\n" % path)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare(1) for a private "
                    "/etc/resolv.conf")
def test_unresolvable_origin(tmp_path):
    """The lookup goes to a resolver on loopback where nothing listens
    (a private /etc/resolv.conf in a mount namespace): a test sends
    nothing to the machine's own resolver."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.255.255.254\n"
                      "options timeout:1 attempts:1\n")
    path = write(tmp_path, """\
pools:
  - id: p
    origins: [ { name: o, address: no-such-host.invalid } ]
""")
    p = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv),
         mt.BIN, "check", "-c", path],
        capture_output=True, text=True, timeout=mt.WAIT)
    rc, err = p.returncode, p.stderr
    assert rc == 1, p
    assert err.startswith("%s:3:36: address: cannot resolve "
                          "'no-such-host.invalid': " % path)


def test_unreadable_file(tmp_path):
    missing = str(tmp_path / "missing.yaml")
    rc, out, err = run("-c", missing)
    assert (rc, out) == (1, "")
    assert err == "%s: cannot open: No such file or directory\n" % missing
    rc, _, err = run("-c", str(tmp_path))
    assert rc == 1
    assert err == "%s: cannot read: Is a directory\n" % tmp_path


def test_usage_errors():
    rc, out, err = run()
    assert (rc, out) == (2, "")
    assert err.startswith("meridian check: missing -c FILE\nusage: ")
    rc, _, err = run("-c")
    assert rc == 2 and err.startswith("meridian check: -c needs a file\n")
    rc, _, err = run("--bogus")
    assert rc == 2 and err.startswith(
        "meridian check: unexpected argument '--bogus'\n")
    rc, out, _ = run("--help")
    assert rc == 0 and out.startswith("usage: meridian check -c FILE\n")


def test_test_helper_config_is_valid(tmp_path):
    """The config the other integration tests generate passes check."""
    text = mt.edge_config({"a": [("o1", 9001), ("o2", 9002, 0.5)],
                           "b": [{"name": "o3", "port": 9003}]},
                          {"lb.example.com": ["a", "b"]}, 8080,
                          limits={"max_body_bytes": 1000},
                          timeouts={"client_header": "500ms"})
    _, rc, out, err = check_file(tmp_path, text)
    assert (rc, err) == (0, "")
    assert out == ("ok: 0 monitors, 2 pools (3 origins), 1 load balancer, "
                   "0 zones\n")


def test_reference_matches_docs():
    """docs/CONFIG.md is generated: `meridian check --reference >
    docs/CONFIG.md` after changing a key table."""
    rc, out, err = run("--reference")
    assert (rc, err) == (0, "")
    with open(os.path.join(ROOT, "docs", "CONFIG.md")) as f:
        assert out == f.read(), "docs/CONFIG.md is stale; regenerate it"


def test_check_refuses_what_the_edge_would_refuse_at_start(tmp_path):
    """check builds what the edge builds at start-up: https listeners
    without certificates, a missing certificate file and a missing geo
    database are errors there too (a file check accepts must start)."""
    base = {"edge": {"name": "c", "listen": {
        "https": ["127.0.0.1:%d" % mt.free_port()]}},
        "pools": [{"id": "p", "origins": [
            {"name": "o", "address": "127.0.0.1", "port": 9}]}],
        "load_balancers": [{"name": "lb.example.com",
                            "default_pools": ["p"]}]}
    cases = [
        ({}, "needs certificates"),
        ({"tls": {"certificates": [{"cert": str(tmp_path / "no.pem"),
                                    "key": str(tmp_path / "no.key")}]}},
         "no.pem"),
    ]
    for extra, want in cases:
        cfg = json.loads(json.dumps(base))
        cfg["edge"].update(extra)
        p = tmp_path / "c.yaml"
        p.write_text(mt.to_yaml(cfg) + "\n")
        r = subprocess.run([mt.BIN, "check", "-c", str(p)],
                           capture_output=True, text=True, timeout=mt.WAIT)
        assert r.returncode == 1, (extra, r.stdout, r.stderr)
        assert want in r.stderr, (extra, r.stderr)
        # file:line:col once, not the file name twice
        assert not r.stderr.startswith("%s: %s:" % (p, p)), r.stderr
    # Every zone error, each as file:line:col: message.
    cfg = json.loads(json.dumps(base))
    cfg["edge"]["listen"] = {"dns": ["127.0.0.1:%d" % mt.free_port()]}
    cfg["zones"] = [{"name": "example.com", "records": [
        {"name": "s.example.com", "type": "SRV", "content": "garbage"},
        {"name": "t.example.com", "type": "SRV", "content": "1 2"}]}]
    p = tmp_path / "z.yaml"
    p.write_text(mt.to_yaml(cfg) + "\n")
    r = subprocess.run([mt.BIN, "check", "-c", str(p)],
                       capture_output=True, text=True, timeout=mt.WAIT)
    lines = r.stderr.splitlines()
    assert r.returncode == 1 and len(lines) == 2, r.stderr
    assert all(ln.startswith(str(p) + ":") and
               not ln.startswith("%s: %s" % (p, p)) for ln in lines), lines
    cfg = json.loads(json.dumps(base))
    cfg["edge"]["listen"] = {"http": ["127.0.0.1:%d" % mt.free_port()]}
    cfg["geo"] = {"database": str(tmp_path / "missing.mmdb")}
    p = tmp_path / "g.yaml"
    p.write_text(mt.to_yaml(cfg) + "\n")
    r = subprocess.run([mt.BIN, "check", "-c", str(p)],
                       capture_output=True, text=True, timeout=mt.WAIT)
    assert r.returncode == 1 and "missing.mmdb" in r.stderr, r.stderr
    # Where in the file: the geo section's database key (it was the file
    # name alone).
    text = p.read_text()
    line = text.splitlines().index("  database: %s" % (
        tmp_path / "missing.mmdb")) + 1
    assert r.stderr.startswith("%s:%d:3: geo.database " % (p, line)), \
        r.stderr


def test_two_listeners_on_one_port_are_refused(tmp_path):
    """http and admin on one port (or a wildcard over a specific address):
    with SO_REUSEPORT both binds would succeed and connections would land
    on either listener at random, so check refuses it."""
    text = GOOD.replace('http: ["127.0.0.1:8080"]',
                        'http: ["127.0.0.1:8080"]\n'
                        '    admin: "0.0.0.0:8080"')
    path, rc, out, err = check_file(tmp_path, text)
    assert rc == 1
    assert path + ":4:5: edge.listen.admin: 0.0.0.0:8080 uses the " \
        "port of edge.listen.http 127.0.0.1:8080" in err, err
    ok = GOOD.replace('http: ["127.0.0.1:8080"]',
                      'http: ["127.0.0.1:8080"]\n'
                      '    admin: "127.0.0.1:8081"')
    assert check_file(tmp_path, ok)[1] == 0


def test_check_refuses_what_the_edge_refuses_before_it_builds(tmp_path):
    """check said "ok" for files `meridian edge` refuses to start: no
    listener to serve, and the API on a non-loopback admin listener
    without tokens (the loopback rule of docs/API.md). Both are errors
    in check now, with the edge's words; MERIDIAN_API_TOKEN in check's
    environment counts, as it does for the edge."""
    env = dict(os.environ)
    env.pop("MERIDIAN_API_TOKEN", None)
    nothing = "edge:\n  name: quiet\n" + GOOD[GOOD.index("monitors:"):]
    path, rc, out, err = check_file(tmp_path, nothing, env=env)
    assert (rc, out) == (1, ""), (rc, out, err)
    assert err == ("%s: edge.listen.http, https and dns are all empty; "
                   "nothing to serve\n" % path), err
    public = GOOD.replace('http: ["127.0.0.1:8080"]',
                          'http: ["127.0.0.1:8080"]\n'
                          '    admin: "0.0.0.0:8081"')
    path, rc, out, err = check_file(tmp_path, public, env=env)
    assert (rc, out) == (1, ""), (rc, out, err)
    assert err == ("%s: edge.listen.admin: refusing to serve the API on "
                   "0.0.0.0:8081 without tokens: set api.tokens (or "
                   "MERIDIAN_API_TOKEN), or listen on a loopback address\n"
                   % path), err
    # The edge gives the same reason and does not start.
    p = subprocess.run([mt.BIN, "edge", "-c", path], env=env,
                       capture_output=True, text=True, timeout=mt.WAIT)
    assert p.returncode == 1 and "refusing to serve the API on " \
        "0.0.0.0:8081 without tokens" in p.stderr, p.stderr
    # A token from the environment or the file makes both fine.
    _, rc, out, err = check_file(
        tmp_path, public, env=dict(env, MERIDIAN_API_TOKEN="t" * 32))
    assert (rc, err) == (0, ""), (rc, err)
    tokens = public + 'api:\n  tokens: [ { token: "%s" } ]\n' % ("t" * 32)
    _, rc, out, err = check_file(tmp_path, tokens, env=env)
    assert (rc, err) == (0, ""), (rc, err)
