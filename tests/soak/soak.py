#!/usr/bin/python3
"""A bounded churn soak for a real edge (not part of `make test`).

Starts origins on fixed loopback addresses, an edge with http, https (h2),
dns and admin listeners, then for --seconds runs at once:

  * HTTP/1.1 clients: keep-alive, Connection: close, aborts mid-request and
    mid-response (RST), slow readers, aborted uploads;
  * HTTP/2 over TLS: h2load runs (bounded in requests) and curl --http2;
  * DNS queries (UDP and TCP) for a DNS-only load balancer;
  * a SIGHUP about every second with a changed config (origins added and
    removed, weights, monitor changes, certificates swapped);
  * API writes: monitors, pools and load balancers created, patched and
    deleted through the admin API;
  * origins killed and restarted (one origin never flaps, so a healthy
    origin always exists).

Then it waits for things to settle and reports: the edge alive, the
metrics gauges back to zero (client connections, active upstream
connections, outstanding requests), no negative metric, fds and RSS before
and after, sanitizer reports in stderr, and the exit code after SIGTERM.

Usage: /usr/bin/python3 tests/soak/soak.py --bin build-asan/meridian
         [--seconds 180] [--dir /tmp/soak]
Every loop is bounded in count and in time; every process it starts is
killed at the end. Exit status 0 when nothing anomalous was seen.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import dns.message
import dns.query
import dns.rdatatype

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                "integration"))
import meridian_test as mt  # noqa: E402

HOST = "lb.example.com"
DNSLB = "dns.example.com"
ORIGIN_ADDRS = ["127.0.0.%d" % i for i in range(11, 16)]  # o1..o5
STABLE = 4  # index of the origin that never flaps (o5)


class Soak:
    def __init__(self, a):
        self.a = a
        self.bin = os.path.abspath(a.bin)
        self.dir = a.dir
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.stats = {}
        self.anomalies = []
        self.procs = []
        self.origin_ports = {}
        self.origins = {}
        self.cert_race = False

    # ---------------------------------------------------------- bookkeeping
    def count(self, k, n=1):
        with self.lock:
            self.stats[k] = self.stats.get(k, 0) + n

    def anomaly(self, what):
        with self.lock:
            if len(self.anomalies) < 200:
                self.anomalies.append("%.1fs %s" % (time.monotonic() -
                                                   self.t0, what))

    # ---------------------------------------------------------- processes
    def start_origin(self, i):
        addr = ORIGIN_ADDRS[i]
        port = self.origin_ports[i]
        out = open(os.path.join(self.dir, "o%d.out" % (i + 1)), "ab")
        p = subprocess.Popen([self.bin, "origin", "--listen",
                              "%s:%d" % (addr, port), "--name",
                              "o%d" % (i + 1), "--cloud", "soak"],
                             stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        out.close()
        self.origins[i] = p
        self.procs.append(p)
        for _ in range(200):
            try:
                socket.create_connection((addr, port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)

    def make_certs(self):
        self.certs = []
        for n in range(2):
            c, k = (os.path.join(self.dir, "lb%d.pem" % n),
                    os.path.join(self.dir, "lb%d.key" % n))
            subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "3",
                            "-newkey", "rsa:2048", "-keyout", k, "-out", c,
                            "-subj", "/CN=%s" % HOST, "-addext",
                            "subjectAltName=DNS:%s,DNS:*.example.com" % HOST],
                           check=True, capture_output=True, timeout=60)
            self.certs.append((c, k))
        # the file served: replaced in place by the churn
        self.live_cert = (os.path.join(self.dir, "live.pem"),
                          os.path.join(self.dir, "live.key"))
        shutil.copy(self.certs[0][0], self.live_cert[0])
        shutil.copy(self.certs[0][1], self.live_cert[1])

    def config(self, v):
        """Config variant v (an int)."""
        rnd = random.Random(v)
        origins = []
        n = 2 + v % 3  # 2..4 origins in p1
        for i in range(n):
            o = {"name": "o%d" % (i + 1), "address": ORIGIN_ADDRS[i],
                 "port": self.origin_ports[i],
                 "weight": round(rnd.uniform(0.1, 1.0), 2)}
            origins.append(o)
        mon = {"id": "m1", "type": "http", "path": "/healthz",
               "interval": "1s", "timeout": "1s", "retries": 0,
               "expected_codes": rnd.choice(["200", "2xx"])}
        if v % 4 == 1:
            mon["consecutive_down"] = 2
        mon2 = {"id": "m2", "type": "tcp", "interval": "1s",
                "timeout": "1s"}
        cert = self.certs[v % 2] if v % 3 == 0 else self.live_cert
        cfg = {
            "edge": {
                "name": "soak", "workers": 2, "region": "WEU",
                "store": os.path.join(self.dir, "store.db"),
                "public_addresses": ["203.0.113.10"],
                "listen": {"http": ["127.0.0.1:%d" % self.http],
                           "https": ["127.0.0.1:%d" % self.https],
                           "dns": ["127.0.0.1:%d" % self.dns],
                           "admin": "127.0.0.1:%d" % self.admin},
                "tls": {"certificates": [{"cert": cert[0], "key": cert[1]}]},
                "access_log": {"path": os.path.join(self.dir, "access.log")},
                "timeouts": {"drain": "5s", "client_idle": "5s",
                             "client_header": "3s",
                             "upstream_connect": "1s"},
            },
            "zones": [{"name": "example.com", "records": [
                {"name": "www.example.com", "type": "A",
                 "content": "203.0.113.20"}]}],
            "monitors": [mon, mon2],
            "pools": [
                {"id": "p1", "monitor": "m1" if v % 5 else "m2",
                 "origin_steering": {"policy": rnd.choice(
                     ["random", "hash", "least_outstanding_requests",
                      "least_connections"])},
                 "origins": origins},
                {"id": "p2", "monitor": "m1", "origins": [
                    {"name": "o5", "address": ORIGIN_ADDRS[STABLE],
                     "port": self.origin_ports[STABLE]}]},
            ],
            "load_balancers": [
                {"name": HOST, "default_pools": ["p1", "p2"],
                 "fallback_pool": "p2",
                 "steering_policy": rnd.choice(["off", "random", ""]),
                 "adaptive_routing": {"failover_across_pools": True}},
                {"name": DNSLB, "proxied": False, "ttl": 30,
                 "default_pools": ["p1", "p2"], "fallback_pool": "p2"},
            ],
        }
        return mt.to_yaml(cfg) + "\n"

    def start_edge(self):
        self.cfg_path = os.path.join(self.dir, "edge.yaml")
        with open(self.cfg_path, "w") as f:
            f.write(self.config(0))
        self.err_path = os.path.join(self.dir, "edge.err")
        err = open(self.err_path, "wb")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.edge = subprocess.Popen([self.bin, "edge", "-c", self.cfg_path],
                                     stdout=err, stderr=err,
                                     stdin=subprocess.DEVNULL, env=env)
        err.close()
        self.procs.append(self.edge)
        mt.wait_for(lambda: mt.port_accepts(self.http) and
                    mt.port_accepts(self.admin), timeout=60,
                    what="edge up")

    # ---------------------------------------------------------- probes
    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" %
                                    self.admin, timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if not line or line[0] == "#":
                continue
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
        return out

    def fds(self):
        try:
            return len(os.listdir("/proc/%d/fd" % self.edge.pid))
        except OSError:
            return -1

    def rss(self):
        try:
            with open("/proc/%d/status" % self.edge.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return -1

    # ---------------------------------------------------------- workers
    def loop(self, name, fn, pause=0.0, limit=10 ** 6):
        if self.a.only and name.rstrip("0123456789") not in self.a.only:
            return None

        def run():
            for i in range(limit):
                if self.stop.is_set():
                    return
                try:
                    fn(i)
                except Exception as e:  # noqa: BLE001 (counted, reported)
                    self.count("%s.exc.%s" % (name, type(e).__name__))
                if pause:
                    self.stop.wait(pause)
        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        return t

    def conn(self, timeout=10):
        s = socket.create_connection(("127.0.0.1", self.http),
                                     timeout=timeout)
        return s

    def read_response(self, s, deadline, carry=None):
        """One response from s; with carry (a one-item list), bytes past
        it (pipelined answers) are kept there for the next call."""
        buf = carry[0] if carry else b""
        while b"\r\n\r\n" not in buf:
            if time.monotonic() > deadline:
                raise TimeoutError("head")
            d = s.recv(65536)
            if not d:
                raise ConnectionError("eof in head")
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        body = rest
        if status < 200 or status in (204, 304):
            n = 0  # no body (and a 100 may come with the answer)
        elif "content-length" in hdrs:
            n = int(hdrs["content-length"])
            while len(body) < n:
                if time.monotonic() > deadline:
                    raise TimeoutError("body")
                d = s.recv(min(1 << 20, n - len(body)))
                if not d:
                    raise ConnectionError("eof in body")
                body += d
        elif hdrs.get("transfer-encoding") == "chunked":
            while b"0\r\n\r\n" not in body:
                if time.monotonic() > deadline:
                    raise TimeoutError("chunked")
                d = s.recv(65536)
                if not d:
                    raise ConnectionError("eof in chunked")
                body += d
            n = body.index(b"0\r\n\r\n") + 5
        else:
            n = len(body)
        if carry is not None:
            carry[0] = body[n:]
        return status, hdrs, body[:n]

    def keepalive(self, i):
        s = self.conn()
        try:
            for j in range(20):
                path = random.choice(["/", "/bytes/1000", "/bytes/70000",
                                      "/chunked/5000"])
                s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" %
                           (path, HOST)).encode())
                st, h, b = self.read_response(s, time.monotonic() + 15)
                self.count("ka.%d" % st)
                if st != 200:
                    break
                if h.get("connection", "").lower() == "close":
                    break
        finally:
            s.close()

    def closer(self, i):
        s = self.conn()
        try:
            s.sendall(("GET /bytes/%d HTTP/1.1\r\nHost: %s\r\n"
                       "Connection: close\r\n\r\n" %
                       (random.choice([0, 10, 30000]), HOST)).encode())
            st, h, b = self.read_response(s, time.monotonic() + 15)
            self.count("close.%d" % st)
        finally:
            s.close()

    def rst_close(self, s):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        s.close()

    def abort_req(self, i):
        s = self.conn()
        kind = i % 4
        if kind == 0:
            s.sendall(b"GET / HTTP/1.1\r\nHost: lb.exa")
        elif kind == 1:
            s.sendall(("POST /upload HTTP/1.1\r\nHost: %s\r\n"
                       "Content-Length: 1000000\r\n\r\n" % HOST).encode() +
                      b"x" * 100000)
        elif kind == 2:
            s.sendall(("POST /upload HTTP/1.1\r\nHost: %s\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n1000\r\n" %
                       HOST).encode() + b"y" * 2000)
        else:
            s.sendall(("GET /sleep/%d HTTP/1.1\r\nHost: %s\r\n\r\n" %
                       (random.choice([300, 5000]), HOST)).encode())
        time.sleep(random.random() * 0.05)
        if random.random() < 0.5:
            self.rst_close(s)
        else:
            s.close()
        self.count("abort_req")

    def abort_resp(self, i):
        s = self.conn()
        s.sendall(("GET /%s/%d HTTP/1.1\r\nHost: %s\r\n\r\n" %
                   (random.choice(["bytes", "chunked", "eof"]),
                    random.choice([200000, 5000000]), HOST)).encode())
        got = 0
        want = random.choice([0, 100, 20000, 200000])
        deadline = time.monotonic() + 10
        while got < want and time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                break
            got += len(d)
        if random.random() < 0.5:
            self.rst_close(s)
        else:
            s.close()
        self.count("abort_resp")

    def slow(self, i):
        s = self.conn()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(("GET /bytes/3000000 HTTP/1.1\r\nHost: %s\r\n\r\n" %
                   HOST).encode())
        end = time.monotonic() + random.uniform(1, 4)
        got = 0
        while time.monotonic() < end and not self.stop.is_set():
            try:
                d = s.recv(2048)
            except socket.timeout:
                break
            if not d:
                break
            got += len(d)
            time.sleep(0.02)
        s.close()
        self.count("slow")

    def h2load(self, i):
        n = random.choice([200, 1000])
        r = subprocess.run(["h2load", "-n", str(n), "-c", "4", "-m", "8",
                            "-H", ":authority: %s" % HOST,
                            "https://127.0.0.1:%d/bytes/%d" %
                            (self.https, random.choice([10, 20000]))],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, "
                      r"(\d+) succeeded, (\d+) failed, (\d+) errored, "
                      r"(\d+) timeout", r.stdout)
        if not m:
            self.anomaly("h2load output: %s %s" % (r.stdout[-300:],
                                                   r.stderr[-300:]))
            return
        tot, _, done, ok, fail, err, to = map(int, m.groups())
        self.count("h2load.req", tot)
        self.count("h2load.ok", ok)
        self.count("h2load.failed", fail)
        self.count("h2load.errored", err)
        self.count("h2load.timeout", to)
        sc = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, "
                       r"(\d+) 5xx", r.stdout)
        if sc:
            self.count("h2load.5xx", int(sc.group(4)))
            self.count("h2load.4xx", int(sc.group(3)))

    def curl_h2(self, i):
        r = subprocess.run(["curl", "--http2", "-sk", "-m", "10", "-o",
                            "/dev/null", "-w", "%{http_code} %{http_version}",
                            "--resolve", "%s:%d:127.0.0.1" % (HOST,
                                                              self.https),
                            "https://%s:%d/bytes/%d" %
                            (HOST, self.https, random.choice([1, 300000]))],
                           capture_output=True, text=True, timeout=30)
        self.count("curl.%s" % r.stdout.strip().replace(" ", "_"))

    def h2_abort(self, i):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", self.https), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname=HOST)
        import h2.config
        import h2.connection
        c = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True))
        c.initiate_connection()
        ids = []
        for k in range(random.randint(1, 6)):
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                                 (":authority", HOST),
                                 (":path", "/bytes/%d" %
                                  random.choice([100, 1000000]))],
                           end_stream=True)
            ids.append(sid)
        s.sendall(c.data_to_send())
        try:
            s.recv(random.choice([10, 5000, 40000]))
        except OSError:
            pass
        if random.random() < 0.5:
            for sid in ids:
                try:
                    c.reset_stream(sid)
                except Exception:  # noqa: BLE001
                    pass
            try:
                s.sendall(c.data_to_send())
                s.recv(1000)
            except OSError:
                pass
        if random.random() < 0.5:
            self.rst_close(s)  # the SSLSocket owns the fd now
        else:
            s.close()
        self.count("h2_abort")

    def dnsq(self, i):
        q = dns.message.make_query(DNSLB, dns.rdatatype.A)
        if i % 5 == 0:
            r = dns.query.tcp(q, "127.0.0.1", port=self.dns, timeout=5)
        else:
            r = dns.query.udp(q, "127.0.0.1", port=self.dns, timeout=5)
        addrs = [it.address for rr in r.answer for it in rr
                 if rr.rdtype == dns.rdatatype.A]
        self.count("dns.rcode%d" % r.rcode())
        if r.rcode() != 0 or not addrs:
            self.anomaly("dns answer rcode %d %s" % (r.rcode(), addrs))
        for a in addrs:
            if a not in ORIGIN_ADDRS:
                self.anomaly("dns answer %s not an origin" % a)

    def ws(self, i):
        s = self.conn()
        try:
            s.sendall(("GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: "
                       "Upgrade\r\nUpgrade: websocket\r\n"
                       "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
                       "bWVyaWRpYW4tdGVzdC0xNg==\r\n\r\n" % HOST).encode())
            buf = b""
            deadline = time.monotonic() + 10
            while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
                d = s.recv(4096)
                if not d:
                    break
                buf += d
            st = buf.split(b" ", 2)[1].decode() if b" " in buf else "eof"
            self.count("ws.%s" % st)
            if st != "101":
                return
            rest = buf.partition(b"\r\n\r\n")[2]
            for k in range(random.randint(0, 20)):
                msg = bytes([k]) * random.randint(1, 50000)
                s.sendall(msg)
                got = len(rest)
                rest = b""
                while got < len(msg) and time.monotonic() < deadline:
                    d = s.recv(65536)
                    if not d:
                        raise ConnectionError("ws eof")
                    got += len(d)
                if got != len(msg):
                    self.anomaly("ws echo %d of %d" % (got, len(msg)))
                    return
            if random.random() < 0.5:
                self.rst_close(s)
                s = None
        finally:
            if s:
                s.close()

    def pipeline(self, i):
        s = self.conn()
        try:
            n = random.randint(2, 8)
            s.sendall(("GET /bytes/%d HTTP/1.1\r\nHost: %s\r\n\r\n" %
                       (random.choice([1, 5000, 70000]), HOST)).encode() * n)
            carry = [b""]
            for k in range(n):
                st, h, b = self.read_response(s, time.monotonic() + 15,
                                              carry)
                self.count("pipe.%d" % st)
                if st != 200 or h.get("connection") == "close":
                    break
        finally:
            s.close()

    def upload(self, i):
        s = self.conn()
        try:
            carry = [b""]  # a 100 and the answer may come together
            n = random.choice([0, 1000, 300000, 3000000])
            body = os.urandom(1024) * (n // 1024) + b"x" * (n % 1024)
            if i % 2:
                head = ("POST /upload HTTP/1.1\r\nHost: %s\r\n"
                        "Content-Length: %d\r\n%s\r\n" %
                        (HOST, n, "Expect: 100-continue\r\n"
                         if i % 4 == 1 else "")).encode()
                s.sendall(head)
                if i % 4 == 1:
                    st, _, _ = self.read_response(s, time.monotonic() + 15,
                                                  carry)
                    if st != 100:
                        self.count("upload.expect.%d" % st)
                        return
                s.sendall(body)
            else:
                s.sendall(("POST /upload HTTP/1.1\r\nHost: %s\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n" %
                           HOST).encode())
                for off in range(0, n, 65536):
                    part = body[off:off + 65536]
                    s.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
                s.sendall(b"0\r\n\r\n")
            st, h, b = self.read_response(s, time.monotonic() + 30, carry)
            self.count("upload.%d" % st)
            if st == 200 and not b.startswith(b"length %d\n" % n):
                self.anomaly("upload of %d answered %r" % (n, b[:60]))
        finally:
            s.close()

    def admin_abort(self, i):
        s = socket.create_connection(("127.0.0.1", self.admin), timeout=10)
        kind = i % 3
        if kind == 0:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHo")
        elif kind == 1:
            s.sendall(b"POST /client/v4/accounts/default/load_balancers/"
                      b"monitors HTTP/1.1\r\nHost: a\r\n"
                      b"Content-Length: 100\r\n\r\n{\"type\"")
        else:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
            try:
                s.recv(100)
            except OSError:
                pass
        if random.random() < 0.5:
            self.rst_close(s)
        else:
            s.close()
        self.count("admin_abort")

    def dns_tcp_abort(self, i):
        s = socket.create_connection(("127.0.0.1", self.dns), timeout=10)
        q = dns.message.make_query(DNSLB, dns.rdatatype.A).to_wire()
        msg = struct.pack("!H", len(q)) + q
        kind = i % 3
        if kind == 0:
            s.sendall(msg[:1])
        elif kind == 1:
            s.sendall(msg[:len(msg) // 2])
        else:
            s.sendall(msg * 3)
        if random.random() < 0.5:
            self.rst_close(s)
        else:
            s.close()
        self.count("dns_tcp_abort")

    def rotate(self, i):
        log = os.path.join(self.dir, "access.log")
        try:
            os.rename(log, "%s.%d" % (log, i))
        except FileNotFoundError:
            pass
        self.edge.send_signal(signal.SIGUSR1)
        self.count("rotate")

    def access_lines(self):
        n = 0
        for f in os.listdir(self.dir):
            if f.startswith("access.log"):
                with open(os.path.join(self.dir, f), "rb") as fh:
                    n += fh.read().count(b"\n")
        return n

    def hup(self, i):
        v = i + 1
        if v % 7 == 3:  # replace the certificate file in place
            src = self.certs[(v // 7) % 2]
            shutil.copy(src[0], self.live_cert[0] + ".tmp")
            shutil.copy(src[1], self.live_cert[1] + ".tmp")
            os.rename(self.live_cert[0] + ".tmp", self.live_cert[0])
            os.rename(self.live_cert[1] + ".tmp", self.live_cert[1])
        with open(self.cfg_path + ".tmp", "w") as f:
            f.write(self.config(v))
        os.rename(self.cfg_path + ".tmp", self.cfg_path)
        self.edge.send_signal(signal.SIGHUP)
        self.count("hup")

    def api(self, method, path, body=None):
        url = "http://127.0.0.1:%d/client/v4%s" % (self.admin, path)
        data = json.dumps(body).encode() if body is not None else None
        rq = urllib.request.Request(url, data=data, method=method,
                                    headers={"Content-Type":
                                             "application/json"})
        try:
            with urllib.request.urlopen(rq, timeout=15) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
            if "does not match certificate" in str(body.get("errors")):
                # known: an API write re-reads the certificate files, and
                # the churn replaces the pair one file at a time
                self.count("api.known_cert_race")
                self.cert_race = True
            elif not (self.cert_race and e.code == 400):  # its sequel
                self.anomaly("API %s %s: %d %s" % (method, path, e.code,
                                                   body.get("errors")))
            return e.code, body

    def api_churn(self, i):
        self.cert_race = False
        acc = "/accounts/default/load_balancers"
        st, m = self.api("POST", acc + "/monitors",
                         {"type": "http", "path": "/healthz", "interval": 1,
                          "timeout": 1})
        self.count("api.post_monitor.%d" % st)
        if st != 200:
            if not self.cert_race:
                self.anomaly("POST monitor %d %s" % (st, m))
            return
        mid = m["result"]["id"]
        st, p = self.api("POST", acc + "/pools", {
            "name": "api%d" % i, "monitor": mid,
            "origins": [{"name": "a%d" % k, "address": ORIGIN_ADDRS[k],
                         "port": self.origin_ports[k]}
                        for k in range(random.randint(1, 5))]})
        self.count("api.post_pool.%d" % st)
        if st != 200:
            if not self.cert_race:
                self.anomaly("POST pool %d %s" % (st, p))
        pid = p.get("result", {}) and p["result"]["id"]
        name = "api%d.example.com" % i
        lid = None
        if pid:
            st, lb = self.api("POST", "/zones/example.com/load_balancers", {
                "name": name, "default_pools": [pid], "fallback_pool": pid,
                "proxied": i % 2 == 0})
            self.count("api.post_lb.%d" % st)
            if st == 200:
                lid = lb["result"]["id"]
            else:
                if not self.cert_race:
                    self.anomaly("POST lb %d %s" % (st, lb))
            st, _ = self.api("PATCH", acc + "/pools/%s" % pid, {
                "origins": [{"name": "a0", "address": ORIGIN_ADDRS[0],
                             "port": self.origin_ports[0],
                             "weight": random.random()}]})
            self.count("api.patch_pool.%d" % st)
        st, _ = self.api("PATCH", acc + "/monitors/%s" % mid,
                         {"path": random.choice(["/healthz", "/"])})
        self.count("api.patch_monitor.%d" % st)
        # a request through the new load balancer
        if lid and i % 2 == 0:
            try:
                s = self.conn()
                s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: "
                           "close\r\n\r\n" % name).encode())
                st2, _, _ = self.read_response(s, time.monotonic() + 10)
                s.close()
                self.count("api.lbreq.%d" % st2)
            except OSError:
                self.count("api.lbreq.err")
        self.stop.wait(random.random())
        if lid:
            st, _ = self.api("DELETE", "/zones/example.com/load_balancers/%s"
                             % lid)
            self.count("api.del_lb.%d" % st)
        if pid:
            st, _ = self.api("DELETE", acc + "/pools/%s" % pid)
            self.count("api.del_pool.%d" % st)
        st, _ = self.api("DELETE", acc + "/monitors/%s" % mid)
        self.count("api.del_monitor.%d" % st)

    def flap(self, i):
        k = random.choice([x for x in range(5) if x != STABLE])
        p = self.origins.get(k)
        if p and p.poll() is None:
            if random.random() < 0.5:
                p.kill()
            else:
                p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
            self.count("flap.kill")
            self.stop.wait(random.uniform(0.5, 3))
        self.start_origin(k)
        self.count("flap.start")

    def scrape(self, i):
        m = self.metrics()
        for k, v in m.items():
            if v < 0:
                self.anomaly("negative metric %s %s" % (k, v))
        self.samples.append((time.monotonic() - self.t0, self.fds(),
                             self.rss(),
                             m.get("meridian_client_connections"),
                             m.get('meridian_upstream_connections'
                                   '{state="active"}'),
                             m.get('meridian_upstream_connections'
                                   '{state="idle"}')))

    # ---------------------------------------------------------- main
    def run(self):
        a = self.a
        self.t0 = time.monotonic()
        self.http, self.https, self.dns, self.admin = (
            mt.free_port(), mt.free_port(), mt.free_port(), mt.free_port())
        for i in range(5):
            self.origin_ports[i] = mt.free_port()
            self.start_origin(i)
        self.make_certs()
        self.start_edge()
        self.samples = []
        time.sleep(3)
        self.metrics()  # the admin listener answers
        base = (self.fds(), self.rss())
        print("baseline fds %d rss %d KiB" % base, flush=True)
        threads = []
        L = self.loop
        for n in range(3):
            threads.append(L("ka%d" % n, self.keepalive))
        threads.append(L("close", self.closer))
        threads.append(L("ws", self.ws, 0.05))
        threads.append(L("pipeline", self.pipeline, 0.01))
        threads.append(L("upload", self.upload, 0.01))
        threads.append(L("abort_req", self.abort_req, 0.01))
        threads.append(L("abort_resp", self.abort_resp, 0.01))
        threads.append(L("slow", self.slow))
        threads.append(L("h2load", self.h2load, 0.5))
        threads.append(L("curl", self.curl_h2, 0.2))
        threads.append(L("h2_abort", self.h2_abort, 0.05))
        threads.append(L("dns", self.dnsq, 0.01))
        threads.append(L("admin_abort", self.admin_abort, 0.05))
        threads.append(L("dns_tcp_abort", self.dns_tcp_abort, 0.02))
        threads.append(L("hup", self.hup, 1.0))
        threads.append(L("rotate", self.rotate, 0.7))
        threads.append(L("api", self.api_churn, 0.3))
        threads.append(L("flap", self.flap, 2.0))
        threads.append(L("scrape", self.scrape, 2.0))
        end = self.t0 + a.seconds
        if a.term_under_load:
            end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.edge.poll() is not None:
                self.anomaly("edge exited rc=%s" % self.edge.returncode)
                break
            time.sleep(1)
        if a.term_under_load:
            return self.term_under_load(threads)
        self.stop.set()
        threads = [t for t in threads if t]
        for t in threads:
            t.join(timeout=90)
            if t.is_alive():
                self.anomaly("thread %s stuck" % t.name)
        # restore every origin, put the config back to variant 0
        for i in range(5):
            p = self.origins.get(i)
            if not p or p.poll() is not None:
                self.start_origin(i)
        if self.edge.poll() is None:
            with open(self.cfg_path, "w") as f:
                f.write(self.config(0))
            self.edge.send_signal(signal.SIGHUP)
        # settle: gauges back to zero
        settled = None
        for _ in range(60):
            if self.edge.poll() is not None:
                break
            try:
                m = self.metrics()
            except OSError:
                time.sleep(1)
                continue
            cc = m.get("meridian_client_connections")
            act = m.get('meridian_upstream_connections{state="active"}')
            outst = sum(v for k, v in m.items() if k.startswith(
                "meridian_origin_outstanding_requests"))
            idle = m.get('meridian_upstream_connections{state="idle"}')
            conns = sum(v for k, v in m.items() if k.startswith(
                "meridian_origin_connections{"))
            settled = (cc, act, outst)
            if cc == 0 and act == 0 and outst == 0 and idle == conns:
                break
            time.sleep(1)
        print("settled gauges (client, upstream active, outstanding):",
              settled, flush=True)
        print("idle upstream connections %s, origin connections %s" %
              (idle, conns))
        if idle != conns:
            self.anomaly("idle upstream connections %s but the origins "
                         "have %s" % (idle, conns))
        if settled != (0, 0, 0):
            self.anomaly("gauges did not return to zero: %s" % (settled,))
            for k, v in sorted(m.items()):
                if v and ("outstanding" in k or "connections" in k):
                    print("  ", k, v)
        # health: every origin back, so every one healthy and none
        # ejected; DNS answers with p1's origins (config 0: o1, o2)
        health = None
        for _ in range(60):
            if self.edge.poll() is not None:
                break
            try:
                m = self.metrics()
            except OSError:
                time.sleep(1)
                continue
            health = {k: v for k, v in m.items() if k.startswith((
                "meridian_origin_healthy{", "meridian_origin_ejected{"))
                and ('pool="p1"' in k or 'pool="p2"' in k)}
            bad = [k for k, v in health.items() if
                   (k.startswith("meridian_origin_healthy") and v != 1) or
                   (k.startswith("meridian_origin_ejected") and v != 0)]
            if not bad:
                break
            time.sleep(1)
        else:
            self.anomaly("origins not all healthy after the churn: %s" %
                         bad)
        if self.edge.poll() is None:
            seen = set()
            for i in range(50):
                q = dns.message.make_query(DNSLB, dns.rdatatype.A)
                r = dns.query.udp(q, "127.0.0.1", port=self.dns, timeout=5)
                seen |= {it.address for rr in r.answer for it in rr}
            print("DNS answers after the churn:", sorted(seen))
            if not seen or not seen <= set(ORIGIN_ADDRS[:2]):
                self.anomaly("DNS after the churn answers %s" % seen)
        if self.edge.poll() is None:
            m = self.metrics()
            want = (m.get("meridian_access_log_lines_total", 0) -
                    m.get("meridian_access_log_dropped_total", 0))
            for _ in range(50):
                got = self.access_lines()
                if got >= want:
                    break
                time.sleep(0.2)
            print("access log lines %d, queued-dropped %d, dropped %d, "
                  "write errors %d" % (got, want, m.get(
                      "meridian_access_log_dropped_total", 0), m.get(
                      "meridian_access_log_write_errors_total", 0)))
            if got != want:
                self.anomaly("access log has %d lines, metrics say %d" %
                             (got, want))
        after = (self.fds(), self.rss())
        print("after fds %d rss %d KiB" % after, flush=True)
        if after[0] > base[0] + 10:
            self.anomaly("fd count grew %d -> %d" % (base[0], after[0]))
            try:
                for fd in sorted(os.listdir("/proc/%d/fd" % self.edge.pid),
                                 key=int):
                    print("  fd", fd, os.readlink("/proc/%d/fd/%s" %
                                                  (self.edge.pid, fd)))
            except OSError:
                pass
        # shut down
        rc = None
        if self.edge.poll() is None:
            self.edge.send_signal(signal.SIGTERM)
            try:
                rc = self.edge.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.anomaly("edge did not exit on SIGTERM")
        else:
            rc = self.edge.returncode
        if rc != 0:
            self.anomaly("edge exit code %r" % rc)
        with open(self.err_path, "rb") as f:
            err = f.read().decode(errors="replace")
        for pat in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                    "runtime error:", "SUMMARY:"):
            if pat in err:
                self.anomaly("sanitizer report in stderr: %s" % pat)
        errs = [l for l in err.splitlines() if " error" in l.lower()]
        print("edge stderr lines with 'error': %d (first 10 below)" %
              len(errs))
        for l in errs[:10]:
            print("  ", l[:300])
        print("stats:")
        for k in sorted(self.stats):
            print("  %-40s %d" % (k, self.stats[k]))
        print("samples (t, fds, rss KiB, client conns, up active, up idle):")
        for s in self.samples[:: max(1, len(self.samples) // 20)]:
            print("  ", s)
        print("anomalies: %d" % len(self.anomalies))
        for x in self.anomalies:
            print("  ", x)
        return 1 if self.anomalies else 0

    def term_under_load(self, threads):
        """SIGTERM while the load runs: the edge must drain, exit 0 and
        report no leak."""
        self.edge.send_signal(signal.SIGTERM)
        rc = None
        try:
            rc = self.edge.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.anomaly("edge did not exit on SIGTERM under load")
        self.stop.set()
        for t in threads:
            if t:
                t.join(timeout=90)
        if rc != 0:
            self.anomaly("edge exit code %r" % rc)
        with open(self.err_path, "rb") as f:
            err = f.read().decode(errors="replace")
        for pat in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                    "runtime error:", "SUMMARY:"):
            if pat in err:
                self.anomaly("sanitizer report in stderr: %s" % pat)
        print("anomalies: %d" % len(self.anomalies))
        for x in self.anomalies:
            print("  ", x)
        return 1 if self.anomalies else 0

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build-asan/meridian")
    ap.add_argument("--seconds", type=int, default=180)
    ap.add_argument("--dir", default="/tmp/meridian-soak")
    ap.add_argument("--term-under-load", action="store_true",
                    help="send SIGTERM after 20 s of load, while it runs")
    ap.add_argument("--only", default="",
                    help="comma-separated loops to run (ka, close, ws, pipeline, upload, "
                    "abort_req, abort_resp, slow, h2load, curl, h2_abort, "
                    "dns, admin_abort, dns_tcp_abort, hup, rotate, api, flap, "
                    "scrape); default all")
    a = ap.parse_args()
    a.only = set(x for x in a.only.split(",") if x)
    if a.only:
        a.only.add("scrape")
    a.seconds = max(10, min(a.seconds, 3600))
    s = Soak(a)
    try:
        rc = s.run()
    finally:
        s.cleanup()
    sys.exit(rc)


if __name__ == "__main__":
    main()
