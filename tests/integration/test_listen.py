"""A second edge on a running edge's listen addresses refuses to start.

The workers' listeners use SO_REUSEPORT, so without a check a second edge
(an old one left running, another config with its own store) would join
them silently and the kernel would hand it part of the connections and
DNS queries. Each kind of listener is checked: http, and DNS over TCP and
over UDP (a UDP-only holder, as another DNS server would be)."""
import socket
import subprocess


import meridian_test as mt
from meridian_test import LOCAL


def config(tmp_path, tag, http, dns, origin_port):
    cfg = {"edge": {"name": tag, "workers": 2,
                    "store": str(tmp_path / (tag + ".db")),
                    "listen": {"http": ["%s:%d" % (LOCAL, http)],
                               "dns": ["%s:%d" % (LOCAL, dns)]},
                    "timeouts": {"drain": "5s"}},
           "pools": [{"id": "p", "origins": [
               {"name": "o", "address": LOCAL, "port": origin_port}]}],
           "load_balancers": [{"name": "lb.example.com",
                               "default_pools": ["p"]}]}
    return mt.to_yaml(cfg) + "\n"


def second(tmp_path, text):
    path = tmp_path / "second.yaml"
    path.write_text(text)
    return subprocess.run([mt.BIN, "edge", "-c", str(path)],
                          capture_output=True, text=True, timeout=mt.WAIT)


def test_second_edge_on_the_same_addresses_refuses(stack, tmp_path):
    o = stack.origin("o")
    http, dns = mt.free_port(), mt.free_port()
    first = mt.Edge(stack.logdir, config(tmp_path, "first", http, dns, o.port),
                    http, "first")
    stack.procs.append(first)
    stack.edges.append(first)

    # The same http address.
    r = second(tmp_path, config(tmp_path, "second", http, mt.free_port(),
                                o.port))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert ("cannot listen on http://%s:%d: the address is in use by "
            "another process" % (LOCAL, http)) in r.stderr, r.stderr

    # The same DNS address (its TCP side is checked first).
    r = second(tmp_path, config(tmp_path, "second", mt.free_port(), dns,
                                o.port))
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert ("cannot listen on dns (tcp) %s:%d: the address is in use"
            % (LOCAL, dns)) in r.stderr, r.stderr

    # The first edge still has all its traffic.
    for _ in range(5):
        assert mt.request(http, "GET", "/").status == 200
    first.check_alive()


def test_dns_port_held_over_udp_only(stack, tmp_path):
    o = stack.origin("o")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        # A port free for TCP too (free_port checks both): the TCP side
        # is checked first, and a kernel-chosen UDP port can be some
        # connection's TCP port.
        dns = mt.free_port()
        u.bind((LOCAL, dns))
        r = second(tmp_path, config(tmp_path, "second", mt.free_port(), dns,
                                    o.port))
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert ("cannot listen on dns (udp) %s:%d: the address is in use"
                % (LOCAL, dns)) in r.stderr, r.stderr


def test_time_wait_does_not_count(stack, tmp_path):
    """An edge restarted on its port while the old connections sit in
    TIME_WAIT starts (the check allows what SO_REUSEADDR allows)."""
    o = stack.origin("o")
    http, dns = mt.free_port(), mt.free_port()
    text = config(tmp_path, "first", http, dns, o.port)
    e = mt.Edge(stack.logdir, text, http, "first")
    stack.procs.append(e)
    stack.edges.append(e)
    for _ in range(5):  # the edge closes: TIME_WAIT on its side
        assert mt.request(http, "GET", "/", headers=[
            ("Connection", "close")]).status == 200
    assert e.terminate(timeout=mt.WAIT) == 0
    e.expect_exit = True
    e2 = mt.Edge(stack.logdir, text, http, "again")
    stack.procs.append(e2)
    stack.edges.append(e2)
    assert mt.request(http, "GET", "/").status == 200
