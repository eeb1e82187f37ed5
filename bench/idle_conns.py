#!/usr/bin/python3
"""Open N keep-alive client connections to a proxy, send one request on each,
read the response, then hold them idle and report the proxy's RSS growth per
connection. Bounded: N connections, one request each, a deadline for all.

usage: idle_conns.py HOST PORT HOSTHEADER PID N
prints: rss_before_kib rss_after_kib kib_per_conn ok_count
"""
import resource
import selectors
import socket
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    host, port, hosthdr, pid, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 1000)), hard))
    req = f"GET / HTTP/1.1\r\nHost: {hosthdr}\r\n\r\n".encode()
    # Warm the proxy first (pools, first buffers) so growth is per connection.
    warm = socket.create_connection((host, port))
    warm.sendall(req)
    warm.recv(65536)
    warm.close()
    time.sleep(0.5)
    before = rss_kib(pid)
    sel = selectors.DefaultSelector()
    socks = []
    deadline = time.monotonic() + 120
    ok = 0
    pending = 0
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((host, port))
        sel.register(s, selectors.EVENT_WRITE, "connect")
        socks.append(s)
        pending += 1
        # Keep a bounded number in flight.
        while pending > 500 and time.monotonic() < deadline:
            pending, ok = step(sel, req, pending, ok)
    while pending and time.monotonic() < deadline:
        pending, ok = step(sel, req, pending, ok)
    time.sleep(1.0)
    after = rss_kib(pid)
    print(before, after, round((after - before) / max(ok, 1), 2), ok)
    for s in socks:
        s.close()


def step(sel, req, pending, ok):
    for key, ev in sel.select(timeout=1.0):
        s = key.fileobj
        if key.data == "connect":
            try:
                s.send(req)
            except OSError:
                sel.unregister(s)
                pending -= 1
                continue
            sel.modify(s, selectors.EVENT_READ, "read")
        else:
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            sel.unregister(s)
            pending -= 1
            if data.startswith(b"HTTP/1.1 200"):
                ok += 1
    return pending, ok


if __name__ == "__main__":
    main()
