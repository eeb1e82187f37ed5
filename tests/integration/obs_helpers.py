"""Helpers for the observability tests (test_metrics.py,
test_access_log.py): an edge started from a whole config with an admin
listener, and /metrics scraped and parsed with python3-prometheus-client's
parser (the format check is the parser's)."""
import meridian_test as mt
from prometheus_client.parser import text_string_to_metric_families


def start_edge(stack, build, tag=None, wrap=()):
    """Start an edge from a whole config: build(port, admin) returns the
    config dict, with an http listener on port and the admin listener on
    admin. Returns the Edge (with .admin) once both accept. wrap: a
    command the edge runs under (mt.Edge)."""
    for attempt in range(3):  # a free port may be taken meanwhile
        port, admin = mt.free_port(), mt.free_port()
        if port == admin:
            continue
        text = mt.to_yaml(build(port, admin)) + "\n"
        try:
            e = mt.Edge(stack.logdir, text, port,
                        tag or "edge%d" % len(stack.edges), wrap=wrap)
        except AssertionError:
            if attempt == 2:
                raise
            continue
        stack.procs.append(e)
        stack.edges.append(e)
        e.admin = admin
        try:
            mt.wait_for(lambda: mt.port_accepts(admin),
                        what="admin listener %d" % admin)
        except AssertionError:
            e.check_alive()
            raise
        return e
    raise AssertionError("could not start an edge")


def edge_section(port, admin, **extra):
    e = {"name": mt.EDGE_NAME, "workers": 2,
         "listen": {"http": ["%s:%d" % (mt.LOCAL, port)],
                    "admin": "%s:%d" % (mt.LOCAL, admin)},
         "timeouts": {"drain": "5s"}}
    e.update(extra)
    return e


class Metrics:
    """One scrape: samples by name and labels."""

    def __init__(self, text):
        self.text = text
        self.families = list(text_string_to_metric_families(text))
        self.samples = {}
        for f in self.families:
            for s in f.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                assert key not in self.samples, "duplicate sample %r" % (key,)
                self.samples[key] = s.value

    def get(self, name, default=None, **labels):
        return self.samples.get((name, tuple(sorted(labels.items()))),
                                default)

    def total(self, name, **labels):
        """Sum of the samples of name whose labels include labels."""
        n = 0.0
        for (sn, sl), v in self.samples.items():
            d = dict(sl)
            if sn == name and all(d.get(k) == v2 for k, v2 in labels.items()):
                n += v
        return n

    def family(self, name):
        for f in self.families:
            if f.name == name:
                return f
        return None


def scrape(edge):
    r = mt.request(edge.admin, "GET", "/metrics", host="admin")
    assert r.status == 200, r
    assert r.header("Content-Type") == \
        "text/plain; version=0.0.4; charset=utf-8", r
    return Metrics(r.text)
