"""`meridian demo`: two clouds of in-process origins behind an edge; the
commands it prints work, the default host is served by gcp (first in
default_pools) and spread over both gcp origins."""
import re

import pytest

import meridian_test as mt
from meridian_test import HttpConn, req, WAIT


@pytest.fixture
def demo(stack):
    port = mt.free_port()
    p = stack.spawn([mt.BIN, "demo", "--listen", "%s:%d" % (mt.LOCAL, port)],
                    "demo")

    def printed():
        if not p.alive():
            raise AssertionError("demo exited: " + p.describe())
        out = p.stdout_text()
        return out if "curl " in out and mt.port_accepts(port) else None

    out = mt.wait_for(printed, what="the demo to listen and print commands")
    yield mt.Env(proc=p, port=port, out=out)
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
