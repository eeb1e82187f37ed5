"""Helpers for the integration tests: processes, configs, a raw HTTP/1.1 client.

Everything runs on 127.0.0.0/8. Every wait has a deadline and every loop a
bound; processes are tracked by a Stack and always killed and reaped.
"""
import os
import random
import re
import signal
import socket
import subprocess
import time
import zlib

BIN = os.environ.get("MERIDIAN_BIN", "/work/main/build/meridian")
ASAN = os.environ.get("MERIDIAN_ASAN") == "1"
# Deadlines: generous for a busy 2-core box, more so under ASan.
WAIT = 30.0 if ASAN else 15.0
# Big-body size: 1 GiB normally, 128 MiB under ASan.
BIG = (128 << 20) if ASAN else (1 << 30)
EDGE_NAME = "test-edge"
LOCAL = "127.0.0.1"


# ---------------------------------------------------------------- waiting

def wait_for(cond, timeout=WAIT, interval=0.02, what="condition"):
    """Poll cond() until it returns a true value (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    delay = interval
    for _ in range(100000):  # bounded in count as well as in time
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


def check_config(path, text):
    """Write text to path and run `meridian check -c path` on it."""
    path.write_text(text)
    return subprocess.run([BIN, "check", "-c", str(path)],
                          capture_output=True, text=True, timeout=WAIT)


# Ports for listeners come from a slice below the kernel's ephemeral range
# (net.ipv4.ip_local_port_range, 32768-60999 by default), one slice per
# pytest-xdist worker. A port the kernel hands out for bind(0) is free only
# until it is closed: any connect() on the machine may then take it as its
# source port before the edge binds it, and with workers running load next
# to each other that happens. Below the range only this worker hands them out.
_PORT_BASE, _PORT_SLICE, _PORT_SLICES = 10000, 5000, 4


def _worker_index():
    w = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(w[2:]) if w.startswith("gw") and w[2:].isdigit() else 0


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


_port_lo = _PORT_BASE + (_worker_index() % _PORT_SLICES) * _PORT_SLICE
# Start at a random point of the slice: two suites running at once on one
# machine (two checkouts) would otherwise walk the same ports in step, and
# a port checked free here could be bound there before our edge binds it.
_port_next = [random.SystemRandom().randrange(_PORT_SLICE)]


def _bindable(port):
    """Free for a TCP listener and for UDP (DNS uses both), TIME_WAIT too."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((LOCAL, port))
            except OSError:
                return False
    return True


def free_port():
    """A loopback port no one holds, from this worker's slice."""
    if _ephemeral_low() < _PORT_BASE + _PORT_SLICE * _PORT_SLICES:
        # an unusual ephemeral range: fall back to asking the kernel
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOCAL, 0))
            return s.getsockname()[1]
    for _ in range(_PORT_SLICE):
        port = _port_lo + _port_next[0] % _PORT_SLICE
        _port_next[0] += 1
        if _bindable(port):
            return port
    raise AssertionError("no free port in %d-%d" %
                         (_port_lo, _port_lo + _PORT_SLICE - 1))


def port_accepts(port, host=LOCAL):
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def connect_refused(port, host=LOCAL):
    """True when a connection attempt is actively refused (RST to SYN)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- body pattern

PERIOD = 251  # pattern byte i is i % 251 (same as the origin)
_BLOCK = bytes(range(PERIOD)) * ((1 << 20) // PERIOD + 2)
_BLOCK_MV = memoryview(_BLOCK)


def pattern_chunks(n, size=1 << 20):
    """Yield memoryviews that together are the first n pattern bytes."""
    off = 0
    while off < n:
        k = min(size, n - off)
        start = off % PERIOD
        yield _BLOCK_MV[start:start + k]
        off += k


def pattern(n):
    return b"".join(bytes(c) for c in pattern_chunks(n))


_adler_cache = {}


def pattern_adler(n):
    if n not in _adler_cache:
        a = 1
        for c in pattern_chunks(n):
            a = zlib.adler32(c, a)
        _adler_cache[n] = a
    return _adler_cache[n]


class BodyCheck:
    """A sink that counts bytes and checks them against the pattern."""

    def __init__(self):
        self.n = 0
        self.adler = 1
        self.first_bad = None

    def __call__(self, mv):
        for off in range(0, len(mv), 1 << 20):
            part = mv[off:off + (1 << 20)]
            if self.first_bad is None:
                start = self.n % PERIOD
                if _BLOCK_MV[start:start + len(part)] != part:
                    self.first_bad = self.n
            self.adler = zlib.adler32(part, self.adler)
            self.n += len(part)


# ---------------------------------------------------------------- YAML

def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if re.fullmatch(r"[A-Za-z0-9_./*:-]+", s) and not s.startswith("*") \
            and s != "-":
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts/lists/scalars (what our configs need)."""
    pad = "  " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                lines.append("%s%s:" % (pad, k))
                lines.append(to_yaml(v, indent + 1))
            elif isinstance(v, list):
                lines.append("%s%s: []" % (pad, k))
            elif isinstance(v, dict):
                lines.append("%s%s: {}" % (pad, k))
            else:
                lines.append("%s%s: %s" % (pad, k, _scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                sub = to_yaml(v, indent + 1).split("\n")
                first = sub[0].strip()
                lines.append("%s- %s" % (pad, first))
                lines.extend(sub[1:])
            else:
                lines.append("%s- %s" % (pad, _scalar(v)))
    else:
        lines.append(pad + _scalar(obj))
    return "\n".join(lines)


# ---------------------------------------------------------------- processes

class Proc:
    """A child process with stdout/stderr in files (no pipe can fill up)."""

    def __init__(self, args, logdir, tag):
        self.args = args
        self.tag = tag
        self.out_path = os.path.join(str(logdir), tag + ".out")
        self.err_path = os.path.join(str(logdir), tag + ".err")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                  stdout=self.out, stderr=self.err)
        self.pid = self.p.pid
        self.expect_exit = False  # set when a test stops it on purpose

    def alive(self):
        return self.p.poll() is None

    def stdout_text(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stderr_tail(self, n=3000):
        try:
            with open(self.err_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def describe(self):
        rc = self.p.poll()
        st = "running" if rc is None else (
            "killed by signal %d" % -rc if rc < 0 else "exited %d" % rc)
        return "%s (pid %d) %s; stderr tail:\n%s" % (
            self.tag, self.pid, st, self.stderr_tail())

    def terminate(self, timeout):
        """SIGTERM, wait up to timeout; returns the exit code or None."""
        if self.alive():
            try:
                self.p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.alive():
            try:
                self.p.kill()
            except ProcessLookupError:
                pass
        try:
            self.p.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            pass
        self.out.close()
        self.err.close()

    def status(self):
        """Fields of /proc/PID/status in KiB (VmRSS, VmHWM, ...)."""
        out = {}
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                v = v.strip()
                if v.endswith(" kB"):
                    out[k] = int(v[:-3])
        return out


class Origin(Proc):
    def __init__(self, logdir, name, cloud="test", threads=1):
        super().__init__([BIN, "origin", "--listen", LOCAL + ":0", "--name",
                          name, "--cloud", cloud, "--threads", str(threads)],
                         logdir, "origin-" + name)
        self.name = name
        self.cloud = cloud

        def listening():
            if not self.alive():
                raise AssertionError("origin died: " + self.describe())
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)\n",
                          self.stdout_text())
            return int(m.group(1)) if m else None

        try:
            self.port = wait_for(listening, what="origin %s to listen" % name)
        except BaseException:
            self.kill()  # never leave a half-started process behind
            raise

    def counters(self):
        """(requests, errors, connections, open) of this origin: requests
        answered and heads rejected so far, connections that carried a
        request, and how many of those are open now (/count itself is not
        counted)."""
        r = request(self.port, "GET", "/count", host="origin")
        assert r.status == 200, r
        vals = dict(line.split(" ", 1) for line in
                    r.body.decode().strip().split("\n"))
        return (int(vals["requests"]), int(vals["errors"]),
                int(vals["connections"]), int(vals["open"]))


class Edge(Proc):
    def __init__(self, logdir, config, port, tag="edge", wrap=()):
        """wrap: a command the edge runs under (e.g. prlimit ... --)."""
        self.config_path = os.path.join(str(logdir), tag + ".yaml")
        self.default_store = os.path.join(str(logdir), tag + "-store.db")
        self.rewrite(config)
        super().__init__(list(wrap) + [BIN, "edge", "-c", self.config_path],
                         logdir, tag)
        self.port = port

        # Ours, not another process on the same port (another suite on
        # the machine): the edge says it listens only once it does.
        mine = re.compile(r"(listening on [a-z]+://|serving DNS on )\S*:%d\b"
                          % port)

        def up():
            if not self.alive():
                raise AssertionError("edge died at start: " + self.describe())
            return port_accepts(port) and bool(
                mine.search(self.stderr_tail(1 << 16)))

        try:
            wait_for(up, what="edge to accept on port %d" % port)
        except BaseException:
            self.kill()  # never leave a half-started process behind
            raise

    def check_alive(self):
        assert self.alive(), "edge crashed: " + self.describe()

    def rewrite(self, config):
        """Write the config file (for the start or a SIGHUP). Never the
        system's default store (/var/lib/meridian): one edge per store,
        and tests run in parallel; a file without edge.store gets this
        edge's own, the same every time (a reload may not move it)."""
        if config.startswith("edge:\n") and \
                not re.search(r"^  store:", config, re.M):
            config = "edge:\n  store: %s\n" % self.default_store + \
                config[len("edge:\n"):]
        with open(self.config_path, "w") as f:
            f.write(config)


def edge_config(pools, lbs, port, name=EDGE_NAME, workers=2, limits=None,
                timeouts=None, store=None):
    """pools: {pool_id: [(origin_name, port[, weight]) or {origin fields}]}
    (ordered);
    lbs: {hostname: [pool_id, ...]}."""
    t = {"drain": "5s"}
    t.update(timeouts or {})
    edge = {"name": name, "workers": workers,
            "listen": {"http": ["%s:%d" % (LOCAL, port)]},
            "timeouts": t}
    if store:
        edge["store"] = store
    if limits:
        edge["limits"] = limits
    cfg = {"edge": edge, "pools": [], "load_balancers": []}
    for pid, origins in pools.items():
        ol = []
        for o in origins:
            if isinstance(o, dict):
                d = {"address": LOCAL}
                d.update(o)
            else:
                d = {"name": o[0], "address": LOCAL, "port": o[1]}
                if len(o) > 2:
                    d["weight"] = o[2]
            ol.append(d)
        cfg["pools"].append({"id": pid, "origins": ol})
    for host, pl in lbs.items():
        cfg["load_balancers"].append({"name": host, "default_pools": pl})
    return to_yaml(cfg) + "\n"


class Stack:
    """Origins and edges started by one test (or module); torn down together."""

    def __init__(self, logdir):
        if not os.access(BIN, os.X_OK):
            raise AssertionError("MERIDIAN_BIN %s is not an executable: build "
                                 "first (make build) or point MERIDIAN_BIN "
                                 "at one" % BIN)
        self.logdir = logdir
        self.procs = []
        self.edges = []

    def origin(self, name, cloud="test", threads=1):
        o = Origin(self.logdir, name, cloud, threads)
        self.procs.append(o)
        return o

    def edge(self, pools, lbs, **kw):
        port = kw.pop("port", None) or free_port()
        tag = "edge%d" % len(self.edges)
        # Each edge its own store (never the system default).
        kw.setdefault("store", os.path.join(str(self.logdir),
                                            tag + "-store.db"))
        cfg = edge_config(pools, lbs, port, **kw)
        for attempt in range(3):  # the free port may be taken meanwhile
            try:
                e = Edge(self.logdir, cfg, port, tag)
                break
            except AssertionError:
                if attempt == 2:
                    raise
                port = free_port()
                cfg = edge_config(pools, lbs, port, **kw)
        self.procs.append(e)
        self.edges.append(e)
        return e

    def respawn(self, e):
        """A fresh edge with the config and port of e, which has died (the
        test that killed it has already failed for it)."""
        e.expect_exit = True
        with open(e.config_path) as f:
            cfg = f.read()
        n = Edge(self.logdir, cfg, e.port, "edge%d" % len(self.edges))
        self.procs.append(n)
        self.edges.append(n)
        return n

    def spawn(self, args, tag):
        p = Proc(args, self.logdir, tag)
        self.procs.append(p)
        return p

    def close(self):
        """Stop everything. Returns the problems seen: an edge (or origin)
        that crashed before teardown or did not exit 0 on SIGTERM within
        its deadline (the edge's drain)."""
        problems = []
        try:
            for e in self.edges:  # edges first: they drain towards origins
                if e.expect_exit:
                    continue
                if not e.alive():
                    problems.append("edge not running at teardown: "
                                    + e.describe())
                    continue
                rc = e.terminate(timeout=5 + WAIT)
                if rc != 0:
                    problems.append("edge did not exit 0 on SIGTERM "
                                    "(rc=%r): %s" % (rc, e.describe()))
            for p in self.procs:
                if p in self.edges or p.expect_exit:
                    continue
                was_alive = p.alive()
                rc = p.terminate(timeout=WAIT)
                if isinstance(p, Origin) and (not was_alive or rc != 0):
                    problems.append("origin did not run until teardown and "
                                    "exit 0 on SIGTERM: " + p.describe())
        finally:
            for p in self.procs:  # whatever happened: kill and reap
                p.kill()
        return problems


# ---------------------------------------------------------------- HTTP client

class Response:
    def __init__(self):
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = []  # [(name, value)] as received
        self.body = b""
        self.interim = []  # 1xx statuses seen before this one
        self.trailers = []

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self):
        return self.body.decode(errors="replace")

    def __repr__(self):
        return "<Response %d %r headers=%r body=%r>" % (
            self.status, self.reason, self.headers, self.body[:300])


class Closed(Exception):
    pass


class HttpConn:
    """A raw HTTP/1.1 client connection with a read buffer."""

    def __init__(self, port, host=LOCAL, timeout=WAIT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.timeout = timeout
        self.rbuf = bytearray(1 << 20)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _deadline(self, timeout):
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data before the deadline")
        self.sock.settimeout(left)
        try:
            n = self.sock.recv_into(self.rbuf)
        except ConnectionResetError:
            raise Closed("connection reset") from None
        except socket.timeout:
            raise TimeoutError("no data before the deadline") from None
        if n == 0:
            raise Closed("connection closed by peer")
        self.buf += memoryview(self.rbuf)[:n]

    def read_line(self, deadline, limit=1 << 16):
        for _ in range(1 << 20):
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > limit:
                raise AssertionError("line too long")
            self._fill(deadline)
        raise AssertionError("unreachable")

    def read_exact(self, n, deadline, sink=None):
        """Read n bytes; to sink(memoryview) if given, else returned."""
        out = bytearray() if sink is None else None
        left = n
        take = min(left, len(self.buf))
        if take:
            if sink:
                sink(memoryview(bytes(self.buf[:take])))
            else:
                out += self.buf[:take]
            del self.buf[:take]
            left -= take
        mv = memoryview(self.rbuf)
        while left > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("body not complete before the deadline")
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                k = self.sock.recv_into(mv[:min(left, len(mv))])
            except ConnectionResetError:
                raise Closed("reset mid body (%d left)" % left) from None
            except socket.timeout:
                raise TimeoutError("body not complete before the deadline") \
                    from None
            if k == 0:
                raise Closed("closed mid body (%d of %d left)" % (left, n))
            if sink:
                sink(mv[:k])
            else:
                out += mv[:k]
            left -= k
        return bytes(out) if out is not None else None

    def read_to_eof(self, deadline, sink=None):
        out = bytearray()
        for _ in range(1 << 30):
            if self.buf:
                if sink:
                    sink(memoryview(bytes(self.buf)))
                else:
                    out += self.buf
                self.buf.clear()
            try:
                self._fill(deadline)
            except Closed:
                return bytes(out)

    def read_head(self, deadline):
        r = Response()
        line = self.read_line(deadline).decode("latin-1")
        m = re.fullmatch(r"(HTTP/1\.[01]) (\d{3}) ?(.*)", line)
        assert m, "bad status line %r" % line
        r.version, r.status, r.reason = m.group(1), int(m.group(2)), m.group(3)
        for _ in range(1000):
            line = self.read_line(deadline).decode("latin-1")
            if line == "":
                return r
            k, sep, v = line.partition(":")
            assert sep, "bad header line %r" % line
            r.headers.append((k, v.strip(" \t")))
        raise AssertionError("too many response headers")

    def read_response(self, method="GET", timeout=None, sink=None):
        """Read one final response (1xx other than 101 are collected in
        .interim). The body goes to sink(memoryview) if given."""
        deadline = self._deadline(timeout)
        interim = []
        for _ in range(100):
            r = self.read_head(deadline)
            if 100 <= r.status < 200 and r.status != 101:
                interim.append(r.status)
                continue
            break
        r.interim = interim
        if (method == "HEAD" or r.status in (101, 204, 304)
                or 100 <= r.status < 200):
            return r
        te = r.header("transfer-encoding")
        cl = r.header_all("content-length")
        if te is not None:
            assert te.lower() == "chunked", "unexpected TE %r" % te
            assert not cl, "response with both TE and CL: %r" % r
            r.body = self._read_chunked(deadline, sink, r)
        elif cl:
            assert len(set(cl)) == 1, "conflicting Content-Length %r" % cl
            r.body = self.read_exact(int(cl[0]), deadline, sink) or b""
        else:
            r.body = self.read_to_eof(deadline, sink)
        return r

    def _read_chunked(self, deadline, sink, r):
        out = bytearray() if sink is None else None
        for _ in range(1 << 30):
            line = self.read_line(deadline).decode("latin-1")
            size_s = line.split(";", 1)[0].strip()
            assert re.fullmatch(r"[0-9a-fA-F]+", size_s), \
                "bad chunk size line %r" % line
            size = int(size_s, 16)
            if size == 0:
                for _ in range(1000):
                    t = self.read_line(deadline).decode("latin-1")
                    if t == "":
                        return bytes(out) if out is not None else b""
                    k, _, v = t.partition(":")
                    r.trailers.append((k, v.strip()))
                raise AssertionError("too many trailers")
            data = self.read_exact(size, deadline, sink)
            if out is not None:
                out += data
            crlf = self.read_exact(2, deadline)
            assert crlf == b"\r\n", "chunk not followed by CRLF: %r" % crlf
        raise AssertionError("unreachable")

    def wait_closed(self, timeout=None):
        """True if the peer closes (FIN or RST) before the deadline with no
        further bytes; False on timeout or if bytes arrive."""
        deadline = self._deadline(timeout)
        if self.buf:
            return False
        try:
            self._fill(deadline)
        except Closed:
            return True
        except TimeoutError:
            return False
        return False


def req(method="GET", path="/", host="lb.example.com", headers=(), body=None,
        version="HTTP/1.1"):
    """Build request bytes. headers: [(name, value)]. A Content-Length is
    added for a body unless headers carry a framing field already."""
    lines = ["%s %s %s" % (method, path, version)]
    if host is not None:
        lines.append("Host: " + host)
    names = {k.lower() for k, _ in headers}
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    if body is not None and not names & {"content-length",
                                         "transfer-encoding"}:
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return data + (body or b"")


def request(port, method="GET", path="/", host="lb.example.com", headers=(),
            body=None, timeout=None):
    """One request on a fresh connection; returns the Response."""
    with HttpConn(port) as c:
        c.send(req(method, path, host, headers, body))
        return c.read_response(method, timeout=timeout)


def chunked(data, size):
    """Encode data in chunks of `size` bytes."""
    out = bytearray()
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return bytes(out + b"0\r\n\r\n")


def parse_echo(body):
    """The origin's /echo body -> (request line, [(name, value)], raw header
    lines, body length, body adler32)."""
    text = body.decode("latin-1")
    head, _, tail = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    hdrs = []
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs.append((k, v.strip(" \t")))
    info = dict(ln.split(": ", 1) for ln in tail.strip().split("\r\n") if ln)
    return (lines[0], hdrs, lines[1:], int(info["body-length"]),
            int(info["body-adler32"], 16))


def echo_headers(hdrs, name):
    return [v for k, v in hdrs if k.lower() == name.lower()]


def module_stack(tmp_path_factory, name, build):
    """Body of a module-scoped fixture (use with `yield from`): build(stack)
    starts what the module's tests share; teardown checks the edges."""
    s = Stack(tmp_path_factory.mktemp(name))
    try:
        env = build(s)
        env.stack = s
        yield env
    finally:
        problems = s.close()
    assert not problems, "\n".join(problems)


class Env:
    """What a module fixture hands its tests."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def per_test(env):
    """Body of the function-scoped fixture over a module's Env (use with
    `yield from`): replaces an edge an earlier test crashed, so one crash
    fails one test, and checks after the test that the edge still runs."""
    if not env.edge.alive():
        env.edge = env.stack.respawn(env.edge)
    yield env
    env.edge.check_alive()
