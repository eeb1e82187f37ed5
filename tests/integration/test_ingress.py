"""The Kubernetes ingress controller (`meridian ingress`, SPEC 4.7,
docs/TUNNEL.md "meridian ingress") end to end.

A fake Kubernetes API server (this file: http.server over TLS with the
test's CA) serves list and watch for Ingresses, Services and EndpointSlices
of namespace `shop`, checks the bearer token, records status writes, and
can push watch events, expire resourceVersions (410 as an HTTP status or
an ERROR event) and close watches. A real `meridian edge` has a tunnel
listener and a pool whose origin is the tunnel; the "pods" are real
`meridian origin` processes on 127.0.0.2, 127.0.0.3, ... (the
EndpointSlices' addresses). Requests go to the edge and must come back from
the right pod. Every wait has a deadline; every process and server thread
is stopped at teardown.
"""
import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

import meridian_test as mt
from test_tunnel_connector import make_pki

NS = "shop"
TUN_TOKEN = "t0k3n-ingress-0123456789abcdef0123456789"
KUBE_TOKEN = "kube-sa-token-abcdef"
HOSTS = ["shop.example.com", "api.example.com", "other.example.com",
         "new.example.com", "nowhere.example.com", "x.wild.example.com",
         "a.b.wild.example.com"]

KINDS = {
    "ingresses": ("/apis/networking.k8s.io/v1", "Ingress"),
    "services": ("/api/v1", "Service"),
    "endpointslices": ("/apis/discovery.k8s.io/v1", "EndpointSlice"),
}


# ------------------------------------------------------------ fake API

class FakeKube:
    """The API of one namespace. Objects by kind and name; every change
    gets the next resourceVersion and an event in the kind's history."""

    def __init__(self, certfile, keyfile):
        self.lock = threading.Condition()
        self.rv = 100
        self.objs = {k: {} for k in KINDS}
        self.history = {k: [] for k in KINDS}   # (rv, type, obj)
        self.token = KUBE_TOKEN
        self.gone = {k: None for k in KINDS}    # "http" / "event"
        self.watch_gen = {k: 0 for k in KINDS}  # bump: close watches
        self.lists = {k: 0 for k in KINDS}   # lists started (first pages)
        self.pages = {k: 0 for k in KINDS}   # pages served
        self.snaps = []                      # (rv, items) per list
        self.expire_continue = {k: 0 for k in KINDS}  # next N: 410
        self.watches = {k: 0 for k in KINDS}
        self.unauthorized = 0
        self.status_writes = []
        self.long_line = {k: 0 for k in KINDS}  # bytes before a newline
        self.list_hold = threading.Event()      # cleared: lists wait
        self.list_hold.set()
        self.lists_held = 0
        self.stopping = False
        fk = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_GET(self):
                fk._get(self)

            def do_PATCH(self):
                fk._patch(self)

            def do_PUT(self):
                fk._patch(self)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile, keyfile)

        class TLSServer(http.server.ThreadingHTTPServer):
            # The handshake runs in the connection's own thread, with a
            # deadline: done by accept() on a wrapped listening socket,
            # one client that stalls it would hold every other request.
            daemon_threads = True

            def finish_request(self, request, client_address):
                request.settimeout(mt.WAIT)
                try:
                    tls = ctx.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    return
                try:
                    tls.settimeout(None)
                    H(tls, client_address, self)
                finally:
                    self.shutdown_request(tls)

        self.srv = TLSServer((mt.LOCAL, mt.free_port()), H)
        self.port = self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever,
                                  kwargs={"poll_interval": 0.1}, daemon=True)
        self.t.start()

    def close(self):
        with self.lock:
            self.stopping = True
            self.lock.notify_all()
        self.list_hold.set()
        self.srv.shutdown()
        self.srv.server_close()
        self.t.join(timeout=mt.WAIT)

    # --- state changes (the test's side) ---

    def _event(self, kind, typ, obj):
        self.rv += 1
        obj = json.loads(json.dumps(obj))
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        if typ == "DELETED":
            self.objs[kind].pop(obj["metadata"]["name"], None)
        else:
            self.objs[kind][obj["metadata"]["name"]] = obj
        self.history[kind].append((self.rv, typ, obj))
        self.lock.notify_all()

    def put(self, kind, obj):
        with self.lock:
            name = obj["metadata"]["name"]
            typ = "MODIFIED" if name in self.objs[kind] else "ADDED"
            obj["metadata"].setdefault(
                "creationTimestamp", self.objs[kind].get(name, {}).get(
                    "metadata", {}).get("creationTimestamp",
                                        time.strftime(
                                            "%Y-%m-%dT%H:%M:%SZ",
                                            time.gmtime())))
            self._event(kind, typ, obj)

    def delete(self, kind, name):
        with self.lock:
            self._event(kind, "DELETED", self.objs[kind][name])

    def bookmark(self, kind):
        with self.lock:
            self.rv += 1
            self.history[kind].append((self.rv, "BOOKMARK", {
                "kind": KINDS[kind][1],
                "metadata": {"resourceVersion": str(self.rv)}}))
            self.lock.notify_all()

    def expire(self, kind, mode):
        """The next watch (and the running ones) of kind get 410."""
        with self.lock:
            self.gone[kind] = mode
            self.watch_gen[kind] += 1
            self.lock.notify_all()

    def close_watches(self, kind):
        with self.lock:
            self.watch_gen[kind] += 1
            self.lock.notify_all()

    # --- HTTP ---

    def _route(self, path):
        """(kind, name, sub) of an API path of namespace NS."""
        path = path.split("?", 1)[0]
        for kind, (prefix, _) in KINDS.items():
            base = "%s/namespaces/%s/%s" % (prefix, NS, kind)
            if path == base:
                return kind, None, None
            if path.startswith(base + "/"):
                rest = path[len(base) + 1:].split("/")
                return kind, rest[0], rest[1] if len(rest) > 1 else None
        return None, None, None

    def _send(self, h, code, obj):
        body = json.dumps(obj).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _status(self, h, code, reason, message):
        self._send(h, code, {"kind": "Status", "apiVersion": "v1",
                             "status": "Failure", "message": message,
                             "reason": reason, "code": code})

    def _auth(self, h):
        with self.lock:
            ok = h.headers.get("Authorization") == "Bearer " + self.token
            if not ok:
                self.unauthorized += 1
        if not ok:
            self._status(h, 401, "Unauthorized", "Unauthorized")
        return ok

    def _get(self, h):
        if not self._auth(h):
            return
        kind, name, _ = self._route(h.path)
        if not kind or name:
            return self._status(h, 404, "NotFound", "not found")
        q = dict(p.split("=", 1) for p in h.path.split("?", 1)[1].split("&")
                 ) if "?" in h.path else {}
        if q.get("watch") in ("1", "true"):
            return self._watch(h, kind, q)
        if not self.list_hold.is_set():
            with self.lock:
                self.lists_held += 1
            self.list_hold.wait(timeout=4 * mt.WAIT)
        with self.lock:
            cont = q.get("continue")
            if cont is None:
                # A list is a snapshot at one resourceVersion, served in
                # pages of `limit` (sorted by name, as etcd keys are);
                # the token names the snapshot and the offset.
                self.lists[kind] += 1
                self.gone[kind] = None
                snap = (str(self.rv), [self.objs[kind][n] for n in
                                       sorted(self.objs[kind])])
                self.snaps.append(snap)
                sid, off = len(self.snaps) - 1, 0
            else:
                sid, off = (int(x) for x in cont[1:].split("_"))
                if self.expire_continue[kind] > 0:
                    self.expire_continue[kind] -= 1
                    return self._status(
                        h, 410, "Expired", "The provided continue "
                        "parameter is too old to display a consistent "
                        "list result.")
                snap = self.snaps[sid]
            self.pages[kind] += 1
            limit = int(q.get("limit") or 0) or len(snap[1]) or 1
            items = snap[1][off:off + limit]
            md = {"resourceVersion": snap[0]}
            if off + limit < len(snap[1]):
                md["continue"] = "c%d_%d" % (sid, off + limit)
            body = {"kind": KINDS[kind][1] + "List", "apiVersion": "v1",
                    "metadata": md, "items": items}
        self._send(h, 200, body)

    def _watch(self, h, kind, q):
        assert q.get("allowWatchBookmarks") == "true"
        with self.lock:
            self.watches[kind] += 1
            mode = self.gone[kind]
            gen = self.watch_gen[kind]
        if mode == "http":
            return self._status(h, 410, "Expired",
                                "too old resource version")
        since = int(q.get("resourceVersion") or 0)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.end_headers()
        with self.lock:
            junk, self.long_line[kind] = self.long_line[kind], 0
        if junk:  # one line of junk, 16 KiB at a time, then on as usual
            chunk = b"x" * 16384
            try:
                for _ in range(junk // len(chunk)):
                    h.wfile.write(chunk)
                h.wfile.write(b"\n")
                h.wfile.flush()
            except OSError:
                return
        if mode == "event":
            h.wfile.write((json.dumps({"type": "ERROR", "object": {
                "kind": "Status", "code": 410, "reason": "Expired",
                "message": "too old resource version"}}) + "\n").encode())
            h.wfile.flush()
            return
        sent = since
        try:
            while True:
                with self.lock:
                    while True:
                        if self.stopping or self.watch_gen[kind] != gen:
                            if self.gone[kind] == "event" and \
                                    not self.stopping:
                                out = [{"type": "ERROR", "object": {
                                    "kind": "Status", "code": 410,
                                    "message": "too old resource "
                                    "version"}}]
                                break
                            return
                        out = [{"type": t, "object": o}
                               for rv, t, o in self.history[kind]
                               if rv > sent]
                        if out:
                            sent = self.history[kind][-1][0]
                            break
                        self.lock.wait(0.5)
                for ev in out:
                    h.wfile.write((json.dumps(ev) + "\n").encode())
                h.wfile.flush()
                if out[0]["type"] == "ERROR":
                    return
        except OSError:
            return

    def _patch(self, h):
        n = int(h.headers.get("Content-Length", "0"))
        body = h.rfile.read(n)
        if not self._auth(h):
            return
        kind, name, sub = self._route(h.path)
        if kind != "ingresses" or sub != "status":
            return self._status(h, 404, "NotFound", "not found")
        patch = json.loads(body)
        with self.lock:
            if name not in self.objs[kind]:
                return self._status(h, 404, "NotFound", "no " + name)
            self.status_writes.append((name, h.command,
                                       h.headers.get("Content-Type"), patch))
            obj = json.loads(json.dumps(self.objs[kind][name]))
            obj["status"] = patch["status"]
            self._event(kind, "MODIFIED", obj)
            out = self.objs[kind][name]
        self._send(h, 200, out)


# ------------------------------------------------------------ objects

def ingress(name, rules=(), cls="meridian", default=None, ts=None,
            annotation=None):
    md = {"name": name, "namespace": NS}
    if ts:
        md["creationTimestamp"] = ts
    if annotation:
        md["annotations"] = {"kubernetes.io/ingress.class": annotation}
    spec = {"rules": [
        {"host": host, "http": {"paths": [
            {"path": p, "pathType": t, "backend": {"service": {
                "name": svc, "port": port}}}
            for p, t, svc, port in paths]}}
        for host, paths in rules]}
    if cls:
        spec["ingressClassName"] = cls
    if default:
        spec["defaultBackend"] = {"service": {"name": default[0],
                                              "port": default[1]}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": md, "spec": spec}


def service(name, ports):
    return {"kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"ports": [dict(p, protocol="TCP") for p in ports]}}


def slice_(name, svc, port, eps, port_name="http"):
    """eps: [(ip, ready)]"""
    return {"kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name, "namespace": NS, "labels": {
                "kubernetes.io/service-name": svc}},
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip],
                           "conditions": {"ready": ready}}
                          for ip, ready in eps]}


# ------------------------------------------------------------ the world

class Pod(mt.Proc):
    def __init__(self, logdir, name, ip, port):
        super().__init__([mt.BIN, "origin", "--listen", "%s:%d" % (ip, port),
                          "--name", name], logdir, "pod-" + name)
        self.ip = ip
        self.port = port
        self.name = name
        mt.wait_for(lambda: mt.port_accepts(port, ip),
                    what="pod %s on %s:%d" % (name, ip, port))


class World:
    def __init__(self, stack, tmp):
        self.stack = stack
        self.tmp = str(tmp)
        self.pki = make_pki(tmp)  # ca, cert (127.0.0.1), key
        self.kube = FakeKube(self.pki[1], self.pki[2])
        self.http = mt.free_port()
        self.tun = mt.free_port()
        cfg = {
            "edge": {"name": "pop-ing", "workers": 2,
                     "listen": {"http": ["%s:%d" % (mt.LOCAL, self.http)],
                                "tunnel": ["%s:%d" % (mt.LOCAL, self.tun)]},
                     "tls": {"certificates": [{"cert": self.pki[1],
                                               "key": self.pki[2]}]},
                     "timeouts": {"drain": "5s"},
                     # the connector's own 503s are what is tested: the
                     # edge must not eject its only (tunnel) origin
                     "passive_health": {"failures": 0}},
            "tunnels": [{"id": "gke", "token": TUN_TOKEN}],
            "pools": [{"id": "gke", "origins": [
                {"name": "through-tunnel", "address": "tunnel:gke"}]}],
            "load_balancers": [{"name": h, "default_pools": ["gke"]}
                               for h in HOSTS],
        }
        self.edge = mt.Edge(stack.logdir, mt.to_yaml(cfg) + "\n",
                            self.http, "edge")
        stack.procs.append(self.edge)
        stack.edges.append(self.edge)
        mt.wait_for(lambda: mt.port_accepts(self.tun), what="tunnel listener")
        # pods: one port, several loopback addresses
        self.pod_port = mt.free_port()
        self.pods = {}
        self.ctl = None
        self.token_file = os.path.join(self.tmp, "token")
        with open(self.token_file, "w") as f:
            f.write(KUBE_TOKEN + "\n")

    def pod(self, name, ip):
        p = Pod(self.stack.logdir, name, ip, self.pod_port)
        self.stack.procs.append(p)
        self.pods[name] = p
        return p

    def config(self, extra_kube=None):
        kube = {"api": "https://127.0.0.1:%d" % self.kube.port,
                "namespace": NS, "token_file": self.token_file,
                "ca": self.pki[0], "status_hostname": "shop.example.com"}
        kube.update(extra_kube or {})
        cfg = {"tunnel": "gke", "token": "${TUN_TEST_TOKEN}",
               "name": "ing-a", "edges": ["127.0.0.1:%d" % self.tun],
               "connections_per_edge": 1, "ca": self.pki[0],
               "drain_timeout": "5s", "kubernetes": kube}
        path = os.path.join(self.tmp, "ingress.yaml")
        with open(path, "w") as f:
            f.write(mt.to_yaml(cfg) + "\n")
        return path

    def start(self, tag="ingress", env_extra=None, **kw):
        env = dict(os.environ, TUN_TEST_TOKEN=TUN_TOKEN)
        env.update(env_extra or {})
        p = mt.Proc.__new__(mt.Proc)
        args = [mt.BIN, "ingress", "--log-level", "debug", "-c",
                self.config(**kw)]
        p.args = args
        p.tag = tag
        p.out_path = os.path.join(self.tmp, tag + ".out")
        p.err_path = os.path.join(self.tmp, tag + ".err")
        p.out = open(p.out_path, "wb")
        p.err = open(p.err_path, "wb")
        p.p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=p.out,
                               stderr=p.err, env=env)
        p.pid = p.p.pid
        p.expect_exit = False
        self.stack.procs.append(p)
        if tag == "ingress":
            self.ctl = p
        return p

    def log(self):
        return self.ctl.stderr_tail(1 << 22)

    def get(self, host, path, timeout=None):
        return mt.request(self.http, "GET", path, host=host,
                          timeout=timeout or mt.WAIT)

    def who(self, host, path):
        """(status, pod name or body)"""
        r = self.get(host, path)
        return r.status, (r.header("X-Origin") or r.text)

    def wait_route(self, host, path, want, what=None):
        """Wait until host+path answers want: a pod name, or a status."""
        last = []

        def ok():
            st, w = self.who(host, path)
            last[:] = [st, w]
            if isinstance(want, int):
                return st == want
            return st == 200 and w == want
        try:
            mt.wait_for(ok, what=what or "%s%s -> %s" % (host, path, want))
        except AssertionError:
            raise AssertionError("%s%s: last %r; controller log:\n%s" % (
                host, path, last, self.log()[-4000:]))

    def close(self):
        problems = []
        if self.ctl:
            if not self.ctl.expect_exit:
                if not self.ctl.alive():
                    problems.append("ingress died: " + self.ctl.describe())
                else:
                    rc = self.ctl.terminate(timeout=mt.WAIT)
                    if rc != 0:
                        problems.append("ingress: rc %r on SIGTERM: %s" % (
                            rc, self.ctl.describe()))
            # after the exit: leaks are reported then
            err = self.log()
            for bad in ("runtime error", "AddressSanitizer",
                        "LeakSanitizer"):
                if bad in err:
                    problems.append("ingress: %s: %s" % (
                        bad, self.ctl.describe()))
        self.kube.close()
        return problems


@pytest.fixture
def world(stack, tmp_path):
    w = World(stack, tmp_path)
    try:
        yield w
    finally:
        problems = w.close()
    assert not problems, "\n".join(problems)


def base_objects(w):
    """Pods a, b (web) and c (api); two Services; their slices."""
    w.pod("a", "127.0.0.2")
    w.pod("b", "127.0.0.3")
    w.pod("c", "127.0.0.4")
    k = w.kube
    k.put("services", service("web", [{"name": "http", "port": 80,
                                       "targetPort": "http"}]))
    k.put("services", service("api", [{"name": "grpc", "port": 9000},
                                      {"name": "http", "port": 8080}]))
    k.put("endpointslices", slice_("web-abc", "web", w.pod_port,
                                   [("127.0.0.2", True)]))
    k.put("endpointslices", slice_("api-abc", "api", w.pod_port,
                                   [("127.0.0.4", True)]))


# ------------------------------------------------------------ tests

def test_routes_changes_and_status(world):
    w = world
    base_objects(w)
    k = w.kube
    k.put("ingresses", ingress("shop", ts="2026-01-01T00:00:00Z", rules=[
        ("shop.example.com", [
            ("/api", "Prefix", "api", {"number": 8080}),
            ("/", "Prefix", "web", {"name": "http"})]),
        ("api.example.com", [
            ("/v1/exact", "Exact", "api", {"name": "http"})])]))
    # another class: ignored (its host would otherwise go to pod a)
    k.put("ingresses", ingress("theirs", cls="nginx", rules=[
        ("other.example.com", [("/", "Prefix", "web", {"number": 80})])]))
    w.start()
    w.wait_route("shop.example.com", "/", "a")
    assert w.who("shop.example.com", "/api/users") == (200, "c")
    assert w.who("shop.example.com", "/apix") == (200, "a")
    assert w.who("api.example.com", "/v1/exact") == (200, "c")
    assert w.who("api.example.com", "/v1/exact/more")[0] == 404
    assert w.who("other.example.com", "/")[0] == 404
    # status: written once connected, with status_hostname, merge-patch
    mt.wait_for(lambda: [s for s in k.status_writes if s[0] == "shop"],
                what="status of shop")
    name, method, ctype, patch = k.status_writes[0]
    assert method == "PATCH" and ctype == "application/merge-patch+json"
    assert patch == {"status": {"loadBalancer": {"ingress": [
        {"hostname": "shop.example.com"}]}}}
    assert not [s for s in k.status_writes if s[0] == "theirs"]
    time.sleep(1.5)  # only when it differs: no second write
    assert len([s for s in k.status_writes if s[0] == "shop"]) == 1
    # once the status reads right, the write's record is forgotten
    mt.wait_for(lambda: "status record of shop dropped (written)" in
                w.log(), what="the status record dropped")

    # a long request in flight while the rules change completes
    res = {}

    def slow():
        res["r"] = w.get("shop.example.com", "/sleep/2500")
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    # add an Ingress; change a path of the first one
    k.put("ingresses", ingress("new", ts="2026-02-01T00:00:00Z", rules=[
        ("new.example.com", [("/", "Prefix", "api", {"number": 8080})])]))
    shop = ingress("shop", ts="2026-01-01T00:00:00Z", rules=[
        ("shop.example.com", [
            ("/v2", "Prefix", "api", {"number": 8080}),
            ("/", "Prefix", "web", {"name": "http"})]),
        ("api.example.com", [
            ("/v1/exact", "Exact", "api", {"name": "http"})])])
    k.put("ingresses", shop)
    w.wait_route("new.example.com", "/x", "c")
    w.wait_route("shop.example.com", "/api/users", "a")
    assert w.who("shop.example.com", "/v2/x") == (200, "c")
    t.join(timeout=mt.WAIT)
    assert not t.is_alive()
    assert res["r"].status == 200 and b"slept 2500" in res["r"].body
    # delete an Ingress
    k.delete("ingresses", "new")
    w.wait_route("new.example.com", "/x", 404)
    # defaultBackend (the oldest Ingress with one) is the catch-all
    k.put("ingresses", ingress("fallback", ts="2026-03-01T00:00:00Z",
                               default=("web", {"number": 80})))
    w.wait_route("nowhere.example.com", "/anything", "a")
    assert w.who("api.example.com", "/v1/other") == (200, "a")
    # a legacy annotation counts as the class
    k.put("ingresses", ingress("legacy", cls=None, annotation="meridian",
                               rules=[("other.example.com", [
                                   ("/", "Prefix", "api", {"number": 8080})
                               ])]))
    w.wait_route("other.example.com", "/", "c")
    assert "ingress rules from kubernetes" in w.log()


def test_endpoints_ready_and_missing_backends(world):
    w = world
    base_objects(w)
    k = w.kube
    k.put("ingresses", ingress("shop", rules=[
        ("shop.example.com", [
            ("/ghost", "Prefix", "ghost", {"number": 80}),
            ("/noport", "Prefix", "web", {"number": 81}),
            ("/", "Prefix", "web", {"name": "http"})])]))
    w.start()
    w.wait_route("shop.example.com", "/", "a")
    # b becomes ready too: traffic spreads over both
    k.put("endpointslices", slice_("web-abc", "web", w.pod_port,
                                   [("127.0.0.2", True),
                                    ("127.0.0.3", True)]))

    def both():
        seen = {w.who("shop.example.com", "/")[1] for _ in range(6)}
        return seen == {"a", "b"}
    mt.wait_for(both, what="traffic on pods a and b")
    # a not ready: only b
    k.put("endpointslices", slice_("web-abc", "web", w.pod_port,
                                   [("127.0.0.2", False),
                                    ("127.0.0.3", True)]))
    mt.wait_for(lambda: all(w.who("shop.example.com", "/")[1] == "b"
                            for _ in range(4)), what="only pod b")
    # none ready: 503 naming the service
    k.put("endpointslices", slice_("web-abc", "web", w.pod_port,
                                   [("127.0.0.2", False),
                                    ("127.0.0.3", False)]))
    w.wait_route("shop.example.com", "/", 503)
    r = w.get("shop.example.com", "/")
    assert b"shop/web:http has no ready endpoint" in r.body, r
    # a missing Service or port: 503 on that path, logged once
    r = w.get("shop.example.com", "/ghost/x")
    assert r.status == 503 and b"no such Service" in r.body, r
    r = w.get("shop.example.com", "/noport")
    assert r.status == 503 and b"no such port" in r.body, r
    log = w.log()
    assert "backend shop/ghost:80: no such Service" in log
    n = log.count("backend shop/ghost:80: no such Service")
    # the slice goes away and comes back ready: a again
    k.delete("endpointslices", "web-abc")
    time.sleep(0.5)
    k.put("endpointslices", slice_("web-abc-2", "web", w.pod_port,
                                   [("127.0.0.2", True)]))
    w.wait_route("shop.example.com", "/", "a")
    # problems are logged when they change, not on every rebuild
    assert w.log().count("backend shop/ghost:80: no such Service") <= n + 1


def test_default_backend_of_the_hosts_ingress(world):
    """A host's paths that match nothing go to the defaultBackend of the
    Ingress that has the host (the oldest with one), not to that of the
    oldest Ingress of the namespace: shop.example.com/zzz went to pod a
    (Ingress "older"'s default) instead of pod c ("newer"'s own). A rule
    with a host and no paths sends all of that host to its Ingress's
    default, not to the rules without a host."""
    w = world
    base_objects(w)
    k = w.kube
    k.put("ingresses", ingress("older", ts="2026-01-01T00:00:00Z",
                               default=("web", {"number": 80}), rules=[
                                   ("other.example.com", [
                                       ("/x", "Prefix", "api",
                                        {"number": 8080})])]))
    k.put("ingresses", ingress("newer", ts="2026-02-01T00:00:00Z",
                               default=("api", {"number": 8080}), rules=[
                                   ("shop.example.com", [
                                       ("/v1", "Prefix", "web",
                                        {"number": 80})])]))
    host_only = ingress("host-only", ts="2026-03-01T00:00:00Z",
                        default=("api", {"number": 8080}))
    host_only["spec"]["rules"] = [{"host": "api.example.com"}]
    k.put("ingresses", host_only)
    k.put("ingresses", ingress("no-host", ts="2026-04-01T00:00:00Z", rules=[
        (None, [("/nh", "Prefix", "web", {"number": 80})])]))
    w.start()
    w.wait_route("shop.example.com", "/v1", "a")
    assert w.who("shop.example.com", "/zzz") == (200, "c")
    assert w.who("other.example.com", "/zzz") == (200, "a")
    assert w.who("nowhere.example.com", "/zzz") == (200, "a")
    assert w.who("nowhere.example.com", "/nh") == (200, "a")
    assert w.who("api.example.com", "/nh") == (200, "c")


def test_an_object_that_became_unusable_is_left_out(world):
    """An Ingress changed (or deleted) into something the controller
    cannot decode (here more paths than it reads in a rule) is left out,
    as a list leaves it out: its old rules went on being served, even
    after it was deleted, until a re-list."""
    w = world
    base_objects(w)
    k = w.kube
    k.put("ingresses", ingress("shop", rules=[
        ("shop.example.com", [("/", "Prefix", "web", {"number": 80})])]))
    k.put("ingresses", ingress("other", rules=[
        ("other.example.com", [("/", "Prefix", "web", {"number": 80})])]))
    w.start()
    w.wait_route("shop.example.com", "/", "a")
    w.wait_route("other.example.com", "/", "a")
    many = [("/p%d" % i, "Prefix", "api", {"number": 8080})
            for i in range(300)]
    k.put("ingresses", ingress("shop", rules=[("shop.example.com", many)]))
    w.wait_route("shop.example.com", "/", 404)
    mt.wait_for(lambda: "ingresses: shop is not usable (too many paths); "
                "left out" in w.log(), what="the log line")
    # deleted as something not decodable: gone as well
    with k.lock:
        k.objs["ingresses"]["other"] = ingress("other", rules=[
            ("other.example.com", many)])
    k.delete("ingresses", "other")
    w.wait_route("other.example.com", "/", 404)
    assert k.lists["ingresses"] == 1  # by the watch, not a re-list


def test_a_replica_not_synced_takes_no_request(world):
    """A second replica whose lists have not come back yet must not take
    requests: it used to connect to the edge at once and answer 503 to
    its share of them (which the edge's passive health also counts
    against the tunnel origin) until it had listed the API."""
    w = world
    base_objects(w)
    k = w.kube
    k.put("ingresses", ingress("shop", rules=[
        ("shop.example.com", [("/", "Prefix", "web", {"number": 80})])]))
    w.start()
    w.wait_route("shop.example.com", "/", "a")
    mt.wait_for(lambda: "tunnel gke up" in w.log(), what="replica 1 up")
    k.list_hold.clear()
    second = w.start(tag="ingress-2")

    def log2():
        return second.stderr_tail(1 << 20)
    mt.wait_for(lambda: k.lists_held >= 1, what="replica 2 listing")
    mt.wait_for(lambda: "dialled once the first ingress rules" in log2()
                or "tunnel gke up" in log2(), what="replica 2 started")
    got = [w.who("shop.example.com", "/") for _ in range(12)]
    assert got == [(200, "a")] * 12, got
    assert "tunnel gke up" not in log2()
    # listed: it connects and serves
    k.list_hold.set()
    mt.wait_for(lambda: "tunnel gke up" in log2(), what="replica 2 up")
    got = [w.who("shop.example.com", "/") for _ in range(6)]
    assert got == [(200, "a")] * 6, got
    assert second.terminate(timeout=mt.WAIT) == 0
    second.expect_exit = True
    for bad in ("runtime error", "AddressSanitizer", "LeakSanitizer"):
        assert bad not in log2(), log2()


def test_a_wildcard_host_covers_one_label(world):
    """networking.k8s.io/v1: "*.wild.example.com" matches
    x.wild.example.com but not a.b.wild.example.com (the conformance
    suite's host_rules.feature); the second went to the wildcard's
    service."""
    w = world
    base_objects(w)
    k = w.kube
    k.put("ingresses", ingress("wild", ts="2026-01-01T00:00:00Z", rules=[
        ("*.wild.example.com", [("/", "Prefix", "api", {"number": 8080})])]))
    k.put("ingresses", ingress("fallback", ts="2026-02-01T00:00:00Z",
                               default=("web", {"number": 80})))
    w.start()
    w.wait_route("x.wild.example.com", "/", "c")
    assert w.who("a.b.wild.example.com", "/") == (200, "a")


def test_a_refused_endpoint_is_skipped(world):
    """An endpoint still listed ready whose pod is gone (connection
    refused) made its share of the requests fail with 502 until the
    EndpointSlice changed; as nginx's proxy_next_upstream, the connector
    now tries the next endpoint (nothing of the request has left yet)."""
    w = world
    base_objects(w)
    k = w.kube
    # 127.0.0.9: nothing listens there
    k.put("endpointslices", slice_("web-abc", "web", w.pod_port,
                                   [("127.0.0.9", True),
                                    ("127.0.0.2", True)]))
    k.put("ingresses", ingress("shop", rules=[
        ("shop.example.com", [("/", "Prefix", "web", {"number": 80})])]))
    w.start()
    w.wait_route("shop.example.com", "/", "a")
    got = [w.who("shop.example.com", "/") for _ in range(8)]
    assert got == [(200, "a")] * 8, got
    # every endpoint refuses: 502 naming the service
    k.put("endpointslices", slice_("web-abc", "web", w.pod_port,
                                   [("127.0.0.9", True),
                                    ("127.0.0.10", True)]))
    w.wait_route("shop.example.com", "/", 502)
    r = w.get("shop.example.com", "/")
    assert b"shop/web:80 refused the connection" in r.body, r


def test_an_endpoint_that_does_not_accept_is_skipped(world):
    """An endpoint that never accepts (a node gone: its SYNs dropped; here
    a listener whose backlog is full) made its share of the requests
    wait for the connect timeout and fail with 504; as nginx's
    proxy_next_upstream timeout, the next endpoint now answers them."""
    w = world
    base_objects(w)
    k = w.kube
    hole = socket.socket()
    filler = socket.socket()
    try:
        hole.bind(("127.0.0.11", w.pod_port))
        hole.listen(0)
        filler.connect(("127.0.0.11", w.pod_port))  # the backlog, full
        k.put("endpointslices", slice_("web-abc", "web", w.pod_port,
                                       [("127.0.0.11", True),
                                        ("127.0.0.2", True)]))
        k.put("ingresses", ingress("shop", rules=[
            ("shop.example.com", [("/", "Prefix", "web", {"number": 80})])]))
        # the connect timeout down to 1 s (test hook)
        w.start(env_extra={
            "MERIDIAN_TUNNEL_TEST_TIMERS": "15000,45000,1000,60000"})
        w.wait_route("shop.example.com", "/", "a")
        got = [w.who("shop.example.com", "/") for _ in range(4)]
        assert got == [(200, "a")] * 4, got
    finally:
        filler.close()
        hole.close()


def test_gone_and_closed_watches(world):
    w = world
    base_objects(w)
    k = w.kube
    k.put("ingresses", ingress("shop", rules=[
        ("shop.example.com", [("/", "Prefix", "web", {"number": 80})])]))
    w.start()
    w.wait_route("shop.example.com", "/", "a")
    mt.wait_for(lambda: all(k.watches[x] >= 1 for x in KINDS),
                what="three watches")
    # bookmarks move the resourceVersion; nothing else
    k.bookmark("services")
    # 410 as an HTTP status on the next watch: re-list
    lists = dict(k.lists)
    k.expire("endpointslices", "http")
    k.put("endpointslices", slice_("web-abc", "web", w.pod_port,
                                   [("127.0.0.3", True)]))
    mt.wait_for(lambda: k.lists["endpointslices"] > lists["endpointslices"],
                what="a re-list after 410")
    w.wait_route("shop.example.com", "/", "b")
    # 410 as an ERROR event in the stream: re-list too
    lists = dict(k.lists)
    k.expire("ingresses", "event")
    k.put("ingresses", ingress("shop", rules=[
        ("shop.example.com", [("/", "Prefix", "api", {"number": 8080})])]))
    mt.wait_for(lambda: k.lists["ingresses"] > lists["ingresses"],
                what="a re-list after an ERROR 410 event")
    w.wait_route("shop.example.com", "/", "c")
    assert "410" in w.log()
    # a watch closed by the server: watched again, changes still applied
    watches = dict(k.watches)
    k.close_watches("ingresses")
    mt.wait_for(lambda: k.watches["ingresses"] > watches["ingresses"],
                what="a new watch")
    k.put("ingresses", ingress("shop", rules=[
        ("shop.example.com", [("/", "Prefix", "web", {"number": 80})])]))
    w.wait_route("shop.example.com", "/", "b")
    assert k.lists["ingresses"] == lists["ingresses"] + 1  # no re-list


def test_a_large_namespace_is_listed_in_pages(world):
    """Lists go page by page (limit/continue, as client-go's pager):
    4,203 Services (past the 4,096 a single list was once allowed) come
    in nine pages, and the Service the Ingress needs sorts last, so it
    routes only when every page was read. A
    continue token that expired mid-list (410) starts the list again;
    the store is replaced only by a whole list."""
    w = world
    base_objects(w)
    k = w.kube
    for i in range(4200):
        k.put("services", service("fill-%04d" % i, [{"port": 80}]))
    k.put("services", service("zz-web", [{"name": "http", "port": 80}]))
    k.put("endpointslices", slice_("zz-web-abc", "zz-web", w.pod_port,
                                   [("127.0.0.3", True)]))
    k.put("ingresses", ingress("shop", rules=[
        ("shop.example.com", [("/", "Prefix", "zz-web", {"number": 80})])]))
    k.expire_continue["services"] = 1
    w.start()
    w.wait_route("shop.example.com", "/", "b")
    log = w.log()
    assert "the continue token expired after 1 page;" in log, log[-3000:]
    assert "listed 4203 services in 9 pages" in log, log[-3000:]
    with k.lock:
        assert k.lists["services"] == 2       # the first, then again
        assert k.pages["services"] == 1 + 9   # the 410 is not a page
        assert k.pages["ingresses"] == 1


def test_ingresses_without_a_class(world):
    """An Ingress with neither ingressClassName nor the annotation is
    someone else's by default, and ours (routes and status) with
    kubernetes.without_class: true."""
    w = world
    base_objects(w)
    k = w.kube
    k.put("ingresses", ingress("classed", rules=[
        ("api.example.com", [("/", "Prefix", "api", {"number": 8080})])]))
    k.put("ingresses", ingress("plain", cls=None, rules=[
        ("shop.example.com", [("/", "Prefix", "web", {"number": 80})])]))
    first = w.start()
    w.wait_route("api.example.com", "/", "c")
    # the same rule set carries both hosts: synced, and shop is not ours
    assert w.who("shop.example.com", "/")[0] == 404
    assert "1 Ingress of class meridian" in w.log(), w.log()[-3000:]
    assert first.terminate(timeout=mt.WAIT) == 0
    first.expect_exit = True
    w.start(tag="ingress", extra_kube={"without_class": True})
    w.wait_route("shop.example.com", "/", "a")
    assert w.who("api.example.com", "/") == (200, "c")
    mt.wait_for(lambda: [s for s in k.status_writes if s[0] == "plain"],
                what="a status write for the Ingress without a class")


def test_a_long_watch_line(world):
    """A watch line that goes on for 15 MiB before its newline is read,
    refused as an event not understood, and the watch goes on. (Reading it
    took about 10 s of CPU when each read rescanned the whole line; that
    cost is not asserted here: tests assert behaviour, not time.)"""
    w = world
    base_objects(w)
    k = w.kube
    k.put("ingresses", ingress("shop", rules=[
        ("shop.example.com", [("/", "Prefix", "web", {"number": 80})])]))
    w.start()
    w.wait_route("shop.example.com", "/", "a")
    mt.wait_for(lambda: all(k.watches[x] >= 1 for x in KINDS),
                what="three watches")
    watches = k.watches["services"]
    with k.lock:
        k.long_line["services"] = 15 << 20
    k.close_watches("services")
    mt.wait_for(lambda: k.watches["services"] > watches, what="a new watch")
    mt.wait_for(lambda: "watch services: an event not understood" in w.log(),
                timeout=4 * mt.WAIT, what="the long line read")
    # and the watch goes on
    k.put("endpointslices", slice_("web-abc", "web", w.pod_port,
                                   [("127.0.0.3", True)]))
    w.wait_route("shop.example.com", "/", "b")


def test_wrong_token_logged_and_retried(world):
    w = world
    base_objects(w)
    k = w.kube
    k.put("ingresses", ingress("shop", rules=[
        ("shop.example.com", [("/", "Prefix", "web", {"number": 80})])]))
    with open(w.token_file, "w") as f:
        f.write("wrong-token\n")
    w.start()
    mt.wait_for(lambda: k.unauthorized >= 2, what="401s, retried")
    mt.wait_for(lambda: "401 Unauthorized" in w.log(), what="a clear log")
    assert "check the token" in w.log()
    assert "wrong-token" not in w.log()
    # not synced: the connector stays off the edge (which has no other
    # origin: its own 502)
    r = w.get("shop.example.com", "/")
    assert r.status == 502 and r.header("X-Origin") is None, r
    assert "tunnel gke up" not in w.log()
    # the token file is read again at each try (rotated tokens)
    with open(w.token_file, "w") as f:
        f.write(KUBE_TOKEN + "\n")
    w.wait_route("shop.example.com", "/", "a")


def test_sigterm_drains_an_inflight_request(world):
    w = world
    base_objects(w)
    w.kube.put("ingresses", ingress("shop", rules=[
        ("shop.example.com", [("/", "Prefix", "web", {"number": 80})])]))
    p = w.start()
    w.wait_route("shop.example.com", "/", "a")
    res = {}

    def slow():
        res["r"] = w.get("shop.example.com", "/sleep/1500")
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    p.p.send_signal(signal.SIGTERM)
    t.join(timeout=mt.WAIT)
    assert res["r"].status == 200 and b"slept 1500" in res["r"].body
    assert p.p.wait(timeout=mt.WAIT) == 0
    p.expect_exit = True
    assert "drained; exiting" in w.log()


def test_check(tmp_path):
    ca = os.path.join(str(tmp_path), "ca.pem")
    tok = os.path.join(str(tmp_path), "tok")
    for f in (ca, tok):
        with open(f, "w") as fh:
            fh.write("x\n")
    good = os.path.join(str(tmp_path), "good.yaml")
    with open(good, "w") as f:
        f.write("tunnel: gke\n"
                "token: %s\n"
                "edges: [\"127.0.0.1:7844\"]\n"
                "kubernetes:\n"
                "  api: https://127.0.0.1:6443\n"
                "  namespace: shop\n"
                "  token_file: %s\n"
                "  ca: %s\n" % (TUN_TOKEN, tok, ca))
    r = subprocess.run([mt.BIN, "ingress", "check", "-c", good],
                       capture_output=True, text=True, timeout=mt.WAIT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok: ingress controller for namespace shop")
    bad = os.path.join(str(tmp_path), "bad.yaml")
    with open(bad, "w") as f:
        f.write("tunnel: gke\n"
                "token: %s\n"
                "edges: [\"127.0.0.1:7844\"]\n"
                "ingress: []\n"
                "kubernetes:\n"
                "  namespace: Bad_NS\n"
                "  colour: blue\n" % TUN_TOKEN)
    r = subprocess.run([mt.BIN, "ingress", "check", "-c", bad],
                       capture_output=True, text=True, timeout=mt.WAIT)
    assert r.returncode == 1
    assert "%s:4:1: 'ingress' is not set in this file" % bad in r.stderr
    assert "%s:6:14: kubernetes.namespace" % bad in r.stderr
    assert "%s:7:3: unknown key 'colour' in kubernetes" % bad in r.stderr
    # a kubeconfig: its server and namespace
    kc = os.path.join(str(tmp_path), "kubeconfig")
    with open(kc, "w") as f:
        f.write("current-context: c\n"
                "clusters: [{name: k, cluster: {server: "
                "'https://10.1.2.3:6443', certificate-authority: ca.pem}}]\n"
                "contexts: [{name: c, context: {cluster: k, user: u, "
                "namespace: prod}}]\n"
                "users: [{name: u, user: {token: abc}}]\n")
    kf = os.path.join(str(tmp_path), "kc.yaml")
    with open(kf, "w") as f:
        f.write("tunnel: gke\ntoken: %s\nedges: [\"127.0.0.1:7844\"]\n"
                "kubernetes: {kubeconfig: %s}\n" % (TUN_TOKEN, kc))
    r = subprocess.run([mt.BIN, "ingress", "check", "-c", kf],
                       capture_output=True, text=True, timeout=mt.WAIT)
    assert r.returncode == 0, r.stderr
    assert "namespace prod" in r.stdout
    assert "https://10.1.2.3:6443" in r.stdout
