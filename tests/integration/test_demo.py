"""`meridian demo`: two clouds of in-process origins behind an edge, and a
third origin behind a tunnel; the commands it prints work, the default
host is served by gcp (first in default_pools) and spread over both gcp
origins; the dig commands it prints get the answers it announces from its
DNS listener; the tunnelled origin answers through the demo's connector."""
import os
import re
import signal
import shutil
import subprocess

import pytest

import meridian_test as mt
from meridian_test import HttpConn, req, WAIT


@pytest.fixture
def demo(stack):
    port = mt.free_port()
    admin = mt.free_port()
    dns = mt.free_port()
    tunnel = mt.free_port()
    p = stack.spawn([mt.BIN, "demo", "--listen", "%s:%d" % (mt.LOCAL, port),
                     "--admin", "%s:%d" % (mt.LOCAL, admin),
                     "--dns", "%s:%d" % (mt.LOCAL, dns),
                     "--tunnel", "%s:%d" % (mt.LOCAL, tunnel)], "demo")

    def printed():
        if not p.alive():
            raise AssertionError("demo exited: " + p.describe())
        out = p.stdout_text()
        return out if "curl " in out and mt.port_accepts(port) else None

    out = mt.wait_for(printed, what="the demo to listen and print commands")
    yield mt.Env(proc=p, port=port, dns=dns, out=out)
    assert p.alive(), "demo crashed: " + p.describe()
    p.expect_exit = True
    rc = p.terminate(timeout=WAIT)
    assert rc == 0, "demo did not exit 0 on SIGTERM: " + p.describe()


def _commands(out, port):
    """(host, path) of every printed `curl -H 'Host: H' URL`."""
    cmds = []
    for m in re.finditer(r"curl\s+(?:-\S+\s+)*-H\s+'Host:\s*([^']+)'\s+"
                         r"(?:-\S+\s+)*http://([\d.]+):(\d+)(/\S*)?", out):
        assert int(m.group(3)) == port, m.group(0)
        cmds.append((m.group(1).strip(), m.group(4) or "/"))
    return cmds


def test_demo_prints_working_commands(demo):
    cmds = _commands(demo.out, demo.port)
    assert cmds, "no curl command with a Host header in:\n" + demo.out
    for host, path in cmds:
        r = mt.request(demo.port, path=path, host=host)
        assert r.status < 500, (host, path, r)


def test_demo_default_host_served_by_gcp_origins(demo):
    host, _ = _commands(demo.out, demo.port)[0]
    seen = set()
    with HttpConn(demo.port) as c:
        for _ in range(200):
            c.send(req(host=host))
            r = c.read_response()
            assert r.status == 200, r
            assert r.text.startswith("gcp "), r
            seen.add(r.text)
            if len(seen) >= 2:
                break
    assert len(seen) >= 2, "only %r answered" % seen


def _get_from(port, host, source=None):
    """One GET through the demo edge, optionally from a given source
    address (geo.networks places 127.1.0.0/16 in ENAM)."""
    import socket
    s = socket.socket()
    s.settimeout(WAIT)
    if source:
        s.bind((source, 0))
    s.connect((mt.LOCAL, port))
    try:
        s.sendall(req(host=host, headers=[("Connection", "close")]))
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    finally:
        s.close()
    return data.decode(errors="replace")


def test_demo_geo_steers_enam_clients_to_aws(demo):
    assert "--interface 127.1.0.1" in demo.out
    for _ in range(20):
        assert "\r\n\r\naws " in _get_from(demo.port, "lb.example.com",
                                             "127.1.0.1")
        assert "\r\n\r\ngcp " in _get_from(demo.port, "lb.example.com")


def test_demo_rules(demo):
    """The printed rule commands: a header sends lb.example.com's
    traffic to aws; /old is answered by the edge with a redirect."""
    assert "-H 'X-Canary: 1'" in demo.out and "/old" in demo.out
    for _ in range(20):
        r = mt.request(demo.port, host="lb.example.com",
                       headers=[("X-Canary", "1")])
        assert r.status == 200 and r.text.startswith("aws "), r
    r = mt.request(demo.port, path="/old", host="lb.example.com")
    assert r.status == 301 and r.header("Location") == "/", r
    assert r.text == "moved to /\n", r


def test_demo_rate_limit(demo):
    """The printed rate limit: /login three times a minute per client,
    then 429 with Retry-After; other paths and clients go on."""
    assert "%d/login" % demo.port in demo.out
    for _ in range(3):
        r = mt.request(demo.port, path="/login", host="lb.example.com")
        assert r.status == 200, r
    r = mt.request(demo.port, path="/login", host="lb.example.com")
    assert r.status == 429 and 1 <= int(r.header("Retry-After")) <= 20, r
    assert mt.request(demo.port, path="/", host="lb.example.com").status \
        == 200


def test_demo_firewall_rule(demo):
    """The printed firewall rule: a scanner's user agent gets 403 from
    the edge; other clients are served."""
    assert "-A sqlmap/1.7" in demo.out
    r = mt.request(demo.port, host="lb.example.com",
                   headers=[("User-Agent", "sqlmap/1.7")])
    assert r.status == 403 and "firewall" in r.text, r
    assert mt.request(demo.port, host="lb.example.com").status == 200


def test_demo_managed_rules(demo):
    """The printed managed-rules command: the CRS denies the SQL injection
    in its query; the same path with a plain query is served."""
    m = re.search(r"curl -i -H 'Host: lb.example.com' '\S+?(/search\?"
                  r"id=[^']+)'", demo.out)
    assert m, demo.out
    r = mt.request(demo.port, path=m.group(1), host="lb.example.com")
    assert r.status == 403 and "managed rules" in r.text, r
    r = mt.request(demo.port, path="/search?id=12", host="lb.example.com")
    assert r.status == 200, r


def test_demo_failover_when_gcp_origins_are_killed(demo):
    """The printed pids are the origins: killing both gcp origins moves
    lb.example.com's traffic to aws within a few health intervals."""
    pids = dict(re.findall(r"origin (\S+)\s+on \S+\s+pid (\d+)", demo.out))
    assert set(pids) == {"gke-1", "gke-2", "eks-1", "eks-2", "dc-1"}, \
        demo.out
    os.kill(int(pids["gke-1"]), signal.SIGKILL)
    os.kill(int(pids["gke-2"]), signal.SIGKILL)

    def on_aws():
        body = _get_from(demo.port, "lb.example.com")
        return body if "\r\n\r\naws " in body else None

    mt.wait_for(on_aws, what="traffic to move to aws")
    # Once moved, it stays there (no error between).
    for _ in range(20):
        body = _get_from(demo.port, "lb.example.com")
        assert " 200 " in body.split("\r\n")[0] and "\r\n\r\naws " in body, body


def _digs(out, port):
    """The printed dig commands (argument lists) and the comment after
    each."""
    cmds = []
    lines = out.splitlines()
    for i, ln in enumerate(lines):
        ln = ln.strip()
        if not ln.startswith("dig "):
            continue
        args = ln.split()
        assert args[args.index("-p") + 1] == str(port), ln
        note = ""
        for nxt in lines[i + 1:]:
            if not nxt.strip().startswith("#"):
                break
            note += nxt.strip() + " "
        cmds.append((args, note))
    return cmds


def _dig(args):
    r = subprocess.run(args + ["+time=3", "+tries=1", "+norec"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=WAIT, check=False)
    return r.stdout.decode(errors="replace")


def _a_records(out, name):
    return sorted(ln.split()[-1] for ln in out.splitlines()
                  if ln.startswith(name + ".") and ln.split()[3] == "A")


def test_demo_prints_working_dig_commands(demo):
    assert shutil.which("dig"), "dig missing: scripts/deps.sh installs " \
        "bind9-dnsutils"
    digs = _digs(demo.out, demo.dns)
    assert len(digs) >= 5, demo.out
    seen = {}
    for args, note in digs:
        out = _dig(args)
        name = [a for a in args[1:] if not a.startswith(("@", "-", "+"))
                and not a.isdigit() and "." in a and a[0] != "1"][0]
        if "NXDOMAIN" in note:
            assert "status: NXDOMAIN" in out, (args, out)
            assert "SOA" in out, (args, out)
            continue
        assert "status: NOERROR" in out, (args, out)
        addrs = _a_records(out, name)
        # The address the comment announces.
        if "127.0.0.2" in note or "aws" in note:
            assert addrs == ["127.0.0.2"], (args, note, out)
        elif "127.0.0.1" in note or "edge's own address" in note:
            assert addrs == ["127.0.0.1"], (args, note, out)
        seen[" ".join(args)] = addrs
        if "+subnet=" in " ".join(args):
            assert "CLIENT-SUBNET" in out, out
    assert any(a == ["127.0.0.2"] for a in seen.values()), seen
    assert any(a == ["127.0.0.1"] for a in seen.values()), seen


def test_demo_dns_fails_over_with_health(demo):
    """Killing both gcp origins moves dns.example.com to aws's address."""
    import os
    import signal
    base = ["dig", "@" + mt.LOCAL, "-p", str(demo.dns), "dns.example.com"]
    assert _a_records(_dig(base), "dns.example.com") == ["127.0.0.1"]
    pids = dict(re.findall(r"origin (\S+)\s+on \S+\s+pid (\d+)", demo.out))
    os.kill(int(pids["gke-1"]), signal.SIGKILL)
    os.kill(int(pids["gke-2"]), signal.SIGKILL)
    mt.wait_for(lambda: _a_records(_dig(base), "dns.example.com") ==
                ["127.0.0.2"], what="dns.example.com to answer aws")


def test_demo_tunnel(demo):
    """onprem.example.com is served by dc-1, which the edge reaches only
    through the tunnel the demo's connector dials out for; without the
    connector, aws takes over (failover_across_pools)."""
    assert "'Host: onprem.example.com'" in demo.out
    m = re.search(r"tunnel onprem: connector pid (\d+)", demo.out)
    assert m, demo.out

    def body():
        r = mt.request(demo.port, host="onprem.example.com")
        return r.status == 200 and r.body.decode(errors="replace")
    mt.wait_for(lambda: (body() or "").startswith("onprem dc-1"),
                what="dc-1 to answer through the tunnel")
    os.kill(int(m.group(1)), signal.SIGTERM)
    mt.wait_for(lambda: (body() or "").startswith("aws "),
                what="aws to take over without the connector")
