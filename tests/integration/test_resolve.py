"""Origins written as host names follow their DNS (edge.resolve_interval).

A cloud load balancer in front of a cluster is a host name whose address
changes. The edge runs in a mount namespace the test makes, with its own
/etc/hosts (a bind mount of a file the test rewrites), so getaddrinfo gives
what the test says and nothing outside the test sees it. Two origins listen
on the same port, one on 127.0.0.1 and one on 127.0.0.2; moving the name
from one to the other must move the traffic and the health checks, without
a reload. A name that stops resolving keeps its address; round-robin
answers that still hold the address in use change nothing; SIGHUP
resolves afresh."""
import contextlib
import os
import re
import shutil
import signal
import socket
import time

import pytest

import meridian_test as mt
from obs_helpers import scrape, start_edge

HOST = "lb.example.com"
NAME = "app.meridian.test"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"),
    reason="needs root and unshare(1) for a private /etc/hosts")


def write_hosts(path, text):
    # In place (same inode): the edge's /etc/hosts is a bind mount of it.
    with open(path, "r+") as f:
        f.truncate(0)
        f.write(text)


def origin_at(stack, ip, port, name):
    p = stack.spawn([mt.BIN, "origin", "--listen", "%s:%d" % (ip, port),
                     "--name", name, "--cloud", "test"], "origin-" + name)
    mt.wait_for(lambda: ("listening on %s:%d" % (ip, port))
                in p.stdout_text() or not p.alive(),
                what="origin %s on %s:%d" % (name, ip, port))
    assert p.alive(), p.describe()
    return p


def served_by(port):
    r = mt.request(port, "GET", "/", host=HOST)
    assert r.status == 200, r
    return r.text


def requests_at(ip, port):
    with mt.HttpConn(port, host=ip) as c:
        c.send(mt.req("GET", "/count", host="origin"))
        r = c.read_response("GET")
    assert r.status == 200, r
    vals = dict(ln.split(" ", 1) for ln in r.text.strip().split("\n"))
    return int(vals["requests"])


def start(stack, hosts_path, origin_port, interval="200ms", geo=None,
          resolv=None):
    def build(port, admin):
        cfg = {
            "edge": {"name": mt.EDGE_NAME, "workers": 2,
                     "resolve_interval": interval,
                     "listen": {"http": ["127.0.0.1:%d" % port],
                                "admin": "127.0.0.1:%d" % admin},
                     "timeouts": {"drain": "5s"}},
            "monitors": [{"id": "m", "type": "http", "path": "/",
                          "interval": "1s", "timeout": "1s"}],
            "pools": [{"id": "p", "monitor": "m", "origins": [
                {"name": "app", "address": NAME, "port": origin_port}]}],
            "load_balancers": [{"name": HOST, "default_pools": ["p"]}],
        }
        if geo:
            cfg["geo"] = geo
        return cfg
    if not resolv:
        # A name that leaves the hosts file goes to DNS: to a loopback
        # address where nothing listens (refused at once), never to the
        # machine's resolver.
        resolv = os.path.join(os.path.dirname(hosts_path), "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver 127.255.255.254\n"
                    "options timeout:1 attempts:1\n")
    wrap = ["unshare", "--mount", "--propagation", "private", "sh",
            "-c", 'mount --bind "$0" /etc/hosts && '
            'mount --bind "$1" /etc/resolv.conf && shift && '
            'exec "$@"', hosts_path, resolv]
    return start_edge(stack, build, wrap=wrap)


def origin_pair(stack):
    """Origins on 127.0.0.1:P and 127.0.0.2:P (one port, two addresses)."""
    for _ in range(5):
        p = mt.free_port()
        a = origin_at(stack, "127.0.0.1", p, "a")
        try:
            b = origin_at(stack, "127.0.0.2", p, "b")
            return p, a, b
        except AssertionError:
            a.expect_exit = True
            a.kill()
    raise AssertionError("no port free on both 127.0.0.1 and 127.0.0.2")


def test_origin_host_name_follows_its_address(stack, tmp_path):
    hosts = str(tmp_path / "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 %s\n" % NAME)
    port, a, b = origin_pair(stack)
    e = start(stack, hosts, port)
    assert "test a" in served_by(e.port)
    assert scrape(e).get("meridian_origin_resolve_names") == 1

    # The name moves: traffic and health checks follow, no reload.
    write_hosts(hosts, "127.0.0.2 %s\n" % NAME)
    mt.wait_for(lambda: "test b" in served_by(e.port),
                what="traffic to follow the name to 127.0.0.2")
    mt.wait_for(lambda: re.search(
        r"origin host %s now resolves to 127\.0\.0\.2 \(was 127\.0\.0\.1\)"
        % re.escape(NAME), e.stderr_tail(1 << 16)),
        what="the change in the log")
    # Every request now: no pooled connection of the old address reused.
    for _ in range(20):
        assert "test b" in served_by(e.port)
    assert scrape(e).get("meridian_origin_resolve_changes_total") == 1

    # The health checks reach the new address too: b's request count
    # grows while no traffic goes through the edge (/count is not counted).
    n0 = requests_at("127.0.0.2", port)
    mt.wait_for(lambda: requests_at("127.0.0.2", port) > n0,
                what="a health check of 127.0.0.2")

    # The name stops resolving: the address in use stays, and it is said.
    write_hosts(hosts, "")
    mt.wait_for(lambda: re.search(
        r"origin host %s: cannot resolve \(.*\); keeping 127\.0\.0\.2"
        % re.escape(NAME), e.stderr_tail(1 << 16)),
        what="the failed lookup in the log")
    assert "test b" in served_by(e.port)
    assert scrape(e).get("meridian_origin_resolve_failures_total") >= 1

    # Round-robin answers that still hold 127.0.0.2 keep it, whatever
    # their order.
    write_hosts(hosts, "127.0.0.1 %s\n127.0.0.2 %s\n" % (NAME, NAME))
    mt.wait_for(lambda: re.search(
        r"origin host %s resolves again" % re.escape(NAME),
        e.stderr_tail(1 << 16)), what="the recovery in the log")
    for _ in range(10):
        assert "test b" in served_by(e.port)
    assert scrape(e).get("meridian_origin_resolve_changes_total") == 1

    # SIGHUP resolves afresh (here the first address, 127.0.0.1).
    e.p.send_signal(signal.SIGHUP)
    mt.wait_for(lambda: "SIGHUP: reloaded" in e.stderr_tail(1 << 16),
                what="the reload")
    mt.wait_for(lambda: "test a" in served_by(e.port),
                what="traffic on the address resolved at the reload")
    e.check_alive()


def test_interval_zero_resolves_only_on_sighup(stack, tmp_path):
    hosts = str(tmp_path / "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 %s\n" % NAME)
    port, a, b = origin_pair(stack)
    e = start(stack, hosts, port, interval="0s")
    assert "test a" in served_by(e.port)
    write_hosts(hosts, "127.0.0.2 %s\n" % NAME)
    lookups = scrape(e).get("meridian_origin_resolve_lookups_total")
    # No lookup for 1.5 s, while the other test sees one every 200 ms:
    # requests keep going to a (bounded in time and count).
    deadline = time.monotonic() + 1.5
    for _ in range(2000):
        if time.monotonic() > deadline:
            break
        assert "test a" in served_by(e.port)
    assert scrape(e).get("meridian_origin_resolve_lookups_total") == lookups
    e.p.send_signal(signal.SIGHUP)
    mt.wait_for(lambda: "SIGHUP: reloaded" in e.stderr_tail(1 << 16),
                what="the reload")
    mt.wait_for(lambda: "test b" in served_by(e.port),
                what="traffic on the address resolved at the reload")


def test_a_failed_rebuild_is_tried_again(stack, tmp_path):
    """The name moves while the config cannot be rebuilt (here its geo
    database is unreadable, as during a botched update of the file): the
    running config stays, and the rebuild is tried every interval until
    it succeeds, although the name has not moved again since."""
    import mmdb_writer
    geodb = str(tmp_path / "geo.mmdb")
    mmdb_writer.write(geodb, [("127.9.0.0/24", {"country": {"iso_code":
                                                            "JP"}})])
    with open(geodb, "rb") as f:
        good = f.read()
    hosts = str(tmp_path / "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 %s\n" % NAME)
    port, a, b = origin_pair(stack)
    e = start(stack, hosts, port, geo={"database": geodb})
    assert "test a" in served_by(e.port)

    with open(geodb, "wb") as f:
        f.write(b"not a MaxMind database")
    write_hosts(hosts, "127.0.0.2 %s\n" % NAME)
    failed = re.compile(
        r"origin host names resolved again: the config could not be "
        r"rebuilt \(%s:\d+:\d+: geo\.database" % re.escape(e.config_path))

    def failures():
        return len(failed.findall(e.stderr_tail(1 << 16)))
    mt.wait_for(failures, what="the failed rebuild logged")
    n = failures()
    mt.wait_for(lambda: failures() > n, what="the rebuild tried again")
    assert "test a" in served_by(e.port)  # the running config stayed

    with open(geodb, "wb") as f:
        f.write(good)
    mt.wait_for(lambda: "test b" in served_by(e.port),
                what="traffic on the new address once a rebuild works")


def test_failed_reload_leaves_the_name_followed(stack, tmp_path):
    """A SIGHUP whose file has an error changes nothing, yet its build
    resolved every name afresh into the cache. The running config must
    still follow its names: here the failed reload's fresh lookup picks
    127.0.0.1 (getaddrinfo sorts it first) while the running config stays
    on 127.0.0.2, which then leaves DNS; the traffic must follow to
    127.0.0.1."""
    hosts = str(tmp_path / "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.2 %s\n" % NAME)
    port, a, b = origin_pair(stack)
    e = start(stack, hosts, port)
    assert "test b" in served_by(e.port)
    with open(e.config_path) as f:
        good = f.read()

    # Round-robin answers that still hold 127.0.0.2: it stays in use,
    # while a fresh lookup picks 127.0.0.1.
    write_hosts(hosts, "127.0.0.2 %s\n127.0.0.1 %s\n" % (NAME, NAME))
    # An error found after the origins were resolved: a load balancer
    # naming a pool that does not exist.
    assert good.endswith("default_pools:\n      - p\n"), good
    e.rewrite(good[:-2] + "nope\n")
    e.p.send_signal(signal.SIGHUP)
    mt.wait_for(lambda: "the running config stays" in e.stderr_tail(1 << 16)
                or "SIGHUP: reloaded" in e.stderr_tail(1 << 16),
                what="the failed reload")
    assert "SIGHUP: reloaded" not in e.stderr_tail(1 << 16)
    assert "test b" in served_by(e.port)

    # 127.0.0.2 leaves DNS: the traffic follows the name.
    write_hosts(hosts, "127.0.0.1 %s\n" % NAME)
    mt.wait_for(lambda: "test a" in served_by(e.port),
                what="traffic to follow the name to 127.0.0.1")
    e.check_alive()


def blackhole_dns():
    """A UDP socket on port 53 of some 127/8 address that reads queries
    and never answers: a DNS server that is down, the way a firewall
    dropping packets makes it."""
    for i in range(50):
        ip = "127.%d.%d.%d" % (53 + os.getpid() % 50, i, 53)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((ip, 53))
            return ip, s
        except OSError:
            s.close()
    raise AssertionError("no 127/8 address with port 53 free")


@contextlib.contextmanager
def dns_down(stack, tmp_path, options, **start_kw):
    """An edge whose origin's name is in a private hosts file (127.0.0.1,
    origin "test a"), its resolver a DNS server that never answers
    (options: resolv.conf's). Yields (edge, hosts file, the server's
    socket, which sees the queries)."""
    hosts = str(tmp_path / "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 %s\n" % NAME)
    ip, dns = blackhole_dns()
    try:
        resolv = str(tmp_path / "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver %s\noptions %s\n" % (ip, options))
        port, a, b = origin_pair(stack)
        e = start(stack, hosts, port, resolv=resolv, **start_kw)
        yield e, hosts, dns
    finally:
        dns.close()


def test_sigterm_while_dns_does_not_answer(stack, tmp_path):
    """A name that left /etc/hosts goes to DNS, which does not answer: the
    lookup blocks for the resolver's whole timeout (here minutes). SIGTERM
    must not wait for it: the edge drains and exits as usual."""
    with dns_down(stack, tmp_path, "timeout:30 attempts:5") as \
            (e, hosts, dns):
        assert "test a" in served_by(e.port)
        write_hosts(hosts, "")
        # A query reaches the dead server: a lookup is under way.
        dns.settimeout(mt.WAIT)
        dns.recvfrom(512)
        e.expect_exit = True
        rc = e.terminate(timeout=5 + mt.WAIT)
        assert rc == 0, "edge did not exit 0 on SIGTERM (rc=%r): %s" % (
            rc, e.describe())
        assert "drained; bye" in e.stderr_tail(1 << 16)


def admin_get(e, path):
    """GET on the admin listener; the status, or the failure (a timeout
    of mt.WAIT: an answer that never comes)."""
    import http.client
    c = http.client.HTTPConnection(mt.LOCAL, e.admin, timeout=mt.WAIT)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    except OSError as ex:
        return repr(ex)
    finally:
        c.close()


def test_sighup_while_dns_does_not_answer(stack, tmp_path):
    """A SIGHUP resolves every origin host name afresh; when DNS does not
    answer, those lookups block for the resolver's whole timeout (here
    minutes). Meanwhile the proxy, the API (whose reads and writes take
    the control plane's lock, and which runs /metrics one call at a time
    with them) and SIGTERM must all go on as usual; more SIGHUPs meanwhile
    neither stack nor crash anything."""
    with dns_down(stack, tmp_path, "timeout:30 attempts:5",
                  interval="0s") as (e, hosts, dns):
        assert "test a" in served_by(e.port)
        write_hosts(hosts, "")
        e.p.send_signal(signal.SIGHUP)
        # A query reaches the dead server: the reload's lookup is under
        # way.
        dns.settimeout(mt.WAIT)
        dns.recvfrom(512)
        for _ in range(5):
            e.p.send_signal(signal.SIGHUP)
        assert "test a" in served_by(e.port)
        pools = "/client/v4/accounts/default/load_balancers/pools"
        assert admin_get(e, pools) == 200
        assert admin_get(e, "/metrics") == 200
        assert admin_get(e, "/status") == 200
        assert "test a" in served_by(e.port)
        assert "SIGHUP: reloaded" not in e.stderr_tail(1 << 16)
        e.expect_exit = True
        rc = e.terminate(timeout=5 + mt.WAIT)
        assert rc == 0, "edge did not exit 0 on SIGTERM (rc=%r): %s" % (
            rc, e.describe())
        assert "drained; bye" in e.stderr_tail(1 << 16)


def test_sighup_whose_lookup_fails_changes_nothing(stack, tmp_path):
    """The reload's lookup fails after the resolver's timeout: the reload
    is refused by name and the running config (and its address) stays;
    SIGHUPs that came meanwhile give one more reload, not one each."""
    with dns_down(stack, tmp_path, "timeout:1 attempts:1",
                  interval="0s") as (e, hosts, dns):
        write_hosts(hosts, "")
        e.p.send_signal(signal.SIGHUP)
        dns.settimeout(mt.WAIT)
        dns.recvfrom(512)
        for _ in range(3):
            e.p.send_signal(signal.SIGHUP)

        def refused():
            return e.stderr_tail(1 << 16).count(
                "errors; the running config stays") + \
                e.stderr_tail(1 << 16).count(
                    "error; the running config stays")
        mt.wait_for(lambda: refused() >= 2, what="two refused reloads")
        assert re.search(r"address: cannot resolve '%s'" % re.escape(NAME),
                         e.stderr_tail(1 << 16)), e.stderr_tail(1 << 16)
        assert "SIGHUP: reloaded" not in e.stderr_tail(1 << 16)
        assert "test a" in served_by(e.port)
        # The name is back: a reload now works.
        write_hosts(hosts, "127.0.0.2 %s\n" % NAME)
        e.p.send_signal(signal.SIGHUP)
        mt.wait_for(lambda: "SIGHUP: reloaded" in e.stderr_tail(1 << 16),
                    what="the reload")
        mt.wait_for(lambda: "test b" in served_by(e.port),
                    what="traffic on the address resolved at the reload")
        e.check_alive()
