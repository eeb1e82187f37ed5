"""Managed rules (waf.managed: the OWASP CRS on ModSecurity v3) against the
real binary and Debian's modsecurity-crs: attacks in the query, in form
bodies (Content-Length and chunked, HTTP/1.1 and HTTP/2) denied before the
origin sees them; clean requests and big bodies through intact; 100
Continue; detect mode; disabled rules, rules files and skip rules; reloads
that load or refuse rule sets; the access log and the metrics."""
import json
import re
import subprocess
import threading
import urllib.request
import zlib

import meridian_test as mt
from test_h2 import curl2
from test_health import HOST, get, lab, org  # noqa: F401
from test_reload import count, hup_and_wait
from test_tls import certs

SQLI = "/search?id=1%27%20OR%20%271%27=%271"
XSS_FORM = b"name=bob&comment=%3Cscript%3Ealert(1)%3C%2Fscript%3E"
SQLI_FORM = b"name=bob&comment=1' UNION SELECT password FROM users--"
CLEAN_FORM = b"name=bob&comment=a+nice+day+at+the+sea"
FORM = [("Content-Type", "application/x-www-form-urlencoded")]
OCTETS = [("Content-Type", "application/octet-stream")]


def start(lab, tmp_path, managed=None, custom=None, https=False, workers=2):
    web = lab.origin("web")
    m = {"enabled": True}
    m.update(managed or {})
    waf = {"managed": m}
    if custom:
        waf["custom_rules"] = custom
    extra = {"access_log": {"path": str(tmp_path / "access.log")}}
    hp = None
    if https:
        hp = mt.free_port()
        extra["tls"] = certs(tmp_path)
    e = lab.edge([{"id": "web", "origins": [org(web)]}],
                 [{"name": HOST, "default_pools": ["web"]}],
                 https_port=hp, edge_extra=extra, workers=workers,
                 top={"waf": waf})
    e.https = hp
    e.alog = tmp_path / "access.log"
    e.web = web
    if hp:
        mt.wait_for(lambda: mt.port_accepts(hp), what="https listener")
    return e


def send(e, method="GET", path="/", body=None, headers=()):
    return mt.request(e.port, method, path, host=HOST, headers=list(headers),
                      body=body)


def upload_ok(r, body):
    assert r.status == 200, r
    assert r.text == "length %d\nadler32 %08x\n" % (
        len(body), zlib.adler32(body)), r.text


def metrics(e):
    with urllib.request.urlopen("http://%s:%d/metrics" % (mt.LOCAL, e.admin),
                                timeout=mt.WAIT) as r:
        text = r.read().decode()
    out = {}
    for m in re.finditer(r'^meridian_waf_managed_requests_total\{result="'
                         r'([a-z_]+)"\} (\d+)$', text, re.M):
        out[m.group(1)] = int(m.group(2))
    m = re.search(r"^meridian_waf_managed_rules (\d+)$", text, re.M)
    out["rules"] = int(m.group(1)) if m else None
    return out


def log_lines(e, n):
    def lines():
        if not e.alog.exists():
            return None
        ls = [json.loads(x) for x in e.alog.read_text().splitlines()]
        return ls if len(ls) >= n else None
    return mt.wait_for(lines, what="%d access log lines" % n)


def origin_requests(e):
    """Requests the origin answered (its /count)."""
    r = send(e, "GET", "/count")
    assert r.status == 200, r
    return int(r.text.split()[-1])


def test_query_and_form_attacks_denied_clean_pass(lab, tmp_path):
    e = start(lab, tmp_path)
    assert send(e, "GET", "/search?q=hello+world").status == 200
    r = send(e, "GET", SQLI)
    assert r.status == 403 and b"blocked by the managed rules" in r.body, r
    upload_ok(send(e, "POST", "/upload", CLEAN_FORM, FORM), CLEAN_FORM)
    assert send(e, "POST", "/upload", XSS_FORM, FORM).status == 403
    chunked = [("Transfer-Encoding", "chunked")] + FORM
    r = send(e, "POST", "/upload", mt.chunked(SQLI_FORM, 7), chunked)
    assert r.status == 403, r
    r = send(e, "POST", "/upload", mt.chunked(CLEAN_FORM, 5), chunked)
    upload_ok(r, CLEAN_FORM)
    m = metrics(e)
    assert m["rules"] > 500, m
    # /search?q, SQLI, 2 forms, 2 chunked forms (the /count is later).
    assert m["inspected"] == 6 and m["blocked"] == 3, m
    logged = log_lines(e, 6)
    blocked = [x for x in logged if x["status"] == 403]
    assert len(blocked) == 3
    for x in blocked:
        assert x["waf_managed"] == "block" and x["origin"] is None, x
        assert re.fullmatch(r"\d{6}( \d{6})*", x["waf_managed_rules"]), x
    assert any("942100" in x["waf_managed_rules"].split() for x in blocked)
    assert any(x["waf_managed_rules"].startswith("941") for x in blocked)
    assert all(x["waf_managed"] == "pass" for x in logged
               if x["status"] == 200), logged


def test_denied_head_keeps_the_connection(lab, tmp_path):
    """A body-less request denied on its head: the connection goes on (the
    next request is read); one with an unread body is closed."""
    e = start(lab, tmp_path)
    with mt.HttpConn(e.port) as c:
        c.send(mt.req("GET", SQLI, HOST))
        assert c.read_response().status == 403
        c.send(mt.req("GET", "/search?q=fine", HOST))
        assert c.read_response().status == 200
        # Pipelined: a held POST, then a GET behind it.
        c.send(mt.req("POST", "/upload", HOST, FORM, CLEAN_FORM) +
               mt.req("GET", "/echo", HOST))
        upload_ok(c.read_response("POST"), CLEAN_FORM)
        assert c.read_response().status == 200
        c.send(mt.req("POST", "/upload", HOST, FORM, XSS_FORM))
        r = c.read_response("POST")
        assert r.status == 403 and r.header("Connection") == "close", r
        c.wait_closed()


def test_big_bodies_pass_intact_and_partial_is_counted(lab, tmp_path):
    """Bodies beyond body_limit: inspected up to it, the whole body reaches
    the origin unchanged; an attack past the limit is not seen (what
    ProcessPartial means), one inside it is."""
    # CRS 3.3 denies application/octet-stream by default (920420): the
    # operator's setup file allows it, before the CRS reads the variable.
    setup = tmp_path / "setup.conf"
    setup.write_text(
        "SecAction \"id:900220,phase:1,nolog,pass,t:none,setvar:'tx.allowed"
        "_request_content_type=|application/x-www-form-urlencoded| "
        "|application/octet-stream|'\"\n")
    e = start(lab, tmp_path, managed={"body_limit": 4096,
                                      "setup_files": [str(setup)]})
    r = send(e, "POST", "/upload", b"{}",
             [("Content-Type", "application/json")])
    assert r.status == 403  # not in the list any more
    for n in (4095, 4096, 300000, 3 * 1024 * 1024):
        body = mt.pattern(n)
        upload_ok(send(e, "POST", "/upload", body, OCTETS), body)
        r = send(e, "POST", "/upload", mt.chunked(body, 1000),
                 [("Transfer-Encoding", "chunked")] + OCTETS)
        upload_ok(r, body)
    m = metrics(e)
    assert m["body_partial"] == 4, m  # 300000 and 3 MiB, twice each
    pad = b"x=" + b"a" * 5000
    late = pad + b"&" + XSS_FORM
    upload_ok(send(e, "POST", "/upload", late, FORM), late)
    early = XSS_FORM + b"&" + pad
    assert send(e, "POST", "/upload", early, FORM).status == 403


def test_expect_100_continue(lab, tmp_path):
    """A client that waits for 100 Continue before its body gets it from
    the edge (which needs the body before the origin is asked)."""
    e = start(lab, tmp_path)
    for body, want in ((CLEAN_FORM, 200), (XSS_FORM, 403)):
        with mt.HttpConn(e.port) as c:
            head = mt.req("POST", "/upload", HOST,
                          FORM + [("Expect", "100-continue"),
                                  ("Content-Length", str(len(body)))])
            c.send(head)
            r = c.read_head(c._deadline(None))
            assert r.status == 100, r
            c.send(body)
            r = c.read_response("POST")  # the origin's 100 may come too
            assert r.status == want, r
            if want == 200:
                upload_ok(r, body)


def test_http2(lab, tmp_path):
    e = start(lab, tmp_path, https=True)
    rc, body, status, ver = curl2(e.https, SQLI)
    assert (rc, status, ver) == (0, "403", "2"), body
    hdr = ["-H", "Content-Type: application/x-www-form-urlencoded"]
    rc, body, status, _ = curl2(e.https, "/upload", extra=hdr, data=XSS_FORM)
    assert (rc, status) == (0, "403"), body
    rc, body, status, _ = curl2(e.https, "/upload", extra=hdr,
                                data=CLEAN_FORM)
    assert (rc, status) == (0, "200"), body
    assert body == b"length %d\nadler32 %08x\n" % (
        len(CLEAN_FORM), zlib.adler32(CLEAN_FORM))
    big = b"x=" + b"a" * 200000  # beyond body_limit: streams on
    rc, body, status, _ = curl2(e.https, "/upload", data=big, extra=hdr)
    assert (rc, status) == (0, "200"), body
    assert body == b"length %d\nadler32 %08x\n" % (len(big),
                                                   zlib.adler32(big))


def test_detect_mode_logs_and_passes(lab, tmp_path):
    e = start(lab, tmp_path, managed={"mode": "detect"})
    r = send(e, "GET", SQLI)
    assert r.status == 200 and r.header("X-Origin") == "web", r
    upload_ok(send(e, "POST", "/upload", XSS_FORM, FORM), XSS_FORM)
    assert send(e, "GET", "/search?q=fine").status == 200
    m = metrics(e)
    assert m["detected"] == 2 and m["blocked"] == 0, m
    logged = log_lines(e, 3)
    det = [x for x in logged if x.get("waf_managed") == "detect"]
    assert len(det) == 2, logged
    assert any("942100" in x["waf_managed_rules"].split() for x in det)
    assert any("949110" in x["waf_managed_rules"].split() for x in det)


def test_skip_rule_acme_and_disabled_rules(lab, tmp_path):
    custom = [{"name": "scanner", "expression": "ip.src in {127.0.0.7/32}",
               "action": "skip"}]
    e = start(lab, tmp_path, custom=custom)
    r = send(e, "GET", SQLI)
    assert r.status == 403
    # The trusted scanner's custom skip rule skips the managed rules too.
    assert get(e, SQLI, src="127.0.0.7").status == 200
    # ACME http-01 challenges are not inspected.
    r = send(e, "GET", "/.well-known/acme-challenge/x?id=1%27%20OR%20"
             "%271%27=%271")
    assert r.status == 200, r
    # The rules the SQL injection trips, disabled: it passes.
    logged = log_lines(e, 3)
    ids = [int(i) for x in logged if x["status"] == 403
           for i in x["waf_managed_rules"].split()]
    assert ids[-1] == 949110, ids  # the deciding rule, last
    ids = ids[:-1]  # the SQL injection rules, not the anomaly score
    n = count(e, r"SIGHUP: reloaded")
    assert ids, ids
    e.cfg["waf"]["managed"]["disabled_rules"] = ids
    e.rewrite(mt.to_yaml(e.cfg) + "\n")
    hup_and_wait(e, r"SIGHUP: reloaded", n)
    assert send(e, "GET", SQLI).status == 200
    assert send(e, "POST", "/upload", XSS_FORM, FORM).status == 403


def test_rules_files_and_reload_refusal(lab, tmp_path):
    """rules_files add the operator's rules after the CRS; a reload whose
    file does not load is refused with the library's place and the rules
    in force stay; check says the same."""
    mine = tmp_path / "mine.conf"
    mine.write_text('SecRule REQUEST_HEADERS:X-Evil "@streq yes" '
                    '"id:10001,phase:1,deny,status:418,log"\n')
    e = start(lab, tmp_path, managed={"rules_files": [str(mine)]})
    r = send(e, "GET", "/", headers=[("X-Evil", "yes")])
    assert r.status == 418, r
    assert send(e, "GET", "/", headers=[("X-Evil", "no")]).status == 200
    mine.write_text('SecRule REQUEST_HEADERS:X-Evil "@streq yes" '
                    '"id:10001,phase:1,deny,status:451,log"\n')
    # The same config: its files are read again on a reload.
    hup_and_wait(e, r"SIGHUP: reloaded", count(e, r"SIGHUP: reloaded"))
    assert send(e, "GET", "/", headers=[("X-Evil", "yes")]).status == 451
    mine.write_text("SecRul bogus\n")
    bad = r"waf\.managed: rules_files %s: Rules error\. File: %s\. Line: 1" % (
        re.escape(str(mine)), re.escape(str(mine)))
    hup_and_wait(e, bad, count(e, bad))
    assert send(e, "GET", "/", headers=[("X-Evil", "yes")]).status == 451
    assert send(e, "GET", SQLI).status == 403
    r = subprocess.run([mt.BIN, "check", "-c", e.config_path],
                       capture_output=True, text=True, timeout=mt.WAIT * 2)
    assert r.returncode == 1, r
    assert re.search(r"^%s:\d+:\d+: %s" % (re.escape(e.config_path), bad),
                     r.stderr, re.M), r.stderr
    # A CRS directory without rules is named.
    e.cfg["waf"]["managed"] = {"enabled": True, "crs": str(tmp_path)}
    e.rewrite(mt.to_yaml(e.cfg) + "\n")
    miss = r"waf\.managed: crs: no rules in %s/rules/\*\.conf" % re.escape(
        str(tmp_path))
    hup_and_wait(e, miss, count(e, miss))
    assert send(e, "GET", SQLI).status == 403


def test_turned_off_and_on_by_reload(lab, tmp_path):
    e = start(lab, tmp_path)
    assert send(e, "GET", SQLI).status == 403
    n = count(e, r"SIGHUP: reloaded")
    e.cfg["waf"]["managed"]["enabled"] = False
    e.rewrite(mt.to_yaml(e.cfg) + "\n")
    hup_and_wait(e, r"SIGHUP: reloaded", n)
    assert send(e, "GET", SQLI).status == 200
    assert metrics(e)["rules"] == 0
    e.cfg["waf"]["managed"]["enabled"] = True
    e.rewrite(mt.to_yaml(e.cfg) + "\n")
    hup_and_wait(e, r"SIGHUP: reloaded", n + 1)
    assert send(e, "GET", SQLI).status == 403


def test_concurrent_clients_on_two_workers(lab, tmp_path):
    """Both workers run transactions on the one shared rule set at once:
    every answer is the right one (a bounded number of requests)."""
    e = start(lab, tmp_path, workers=2)
    errors = []

    def client(k):
        try:
            with mt.HttpConn(e.port) as c:
                for i in range(40):
                    if i % 3 == 0:
                        c.send(mt.req("GET", SQLI, HOST))
                        want = 403
                    elif i % 3 == 1:
                        c.send(mt.req("POST", "/upload", HOST, FORM,
                                      CLEAN_FORM))
                        want = 200
                    else:
                        c.send(mt.req("GET", "/search?q=%d-%d" % (k, i),
                                      HOST))
                        want = 200
                    r = c.read_response("POST" if i % 3 == 1 else "GET")
                    if r.status != want:
                        errors.append((k, i, r.status))
                        return
        except Exception as ex:  # reported below
            errors.append((k, repr(ex)))
    ts = [threading.Thread(target=client, args=(k,)) for k in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=mt.WAIT * 4)
    assert not any(t.is_alive() for t in ts)
    assert not errors, errors
    m = metrics(e)
    assert m["inspected"] == 240 and m["blocked"] == 84, m


def test_json_bodies(lab, tmp_path):
    """JSON bodies are parsed (the recommended body processors), so an
    attack in a JSON value is denied; a JSON body that does not parse is
    refused (400), unless it was only cut at body_limit."""
    e = start(lab, tmp_path, managed={"body_limit": 2048})
    js = [("Content-Type", "application/json")]
    ok = b'{"user": "bob", "comment": "a nice day at the sea"}'
    upload_ok(send(e, "POST", "/upload", ok, js), ok)
    bad = b'{"user": "bob", "q": "1\' UNION SELECT password FROM users--"}'
    r = send(e, "POST", "/upload", bad, js)
    assert r.status == 403, r
    r = send(e, "POST", "/upload", b'{"user": "bob", ', js)
    assert r.status == 400, r
    big = b'{"items": [' + b",".join(b'"item-%d"' % i
                                     for i in range(3000)) + b"]}"
    assert len(big) > 2048
    upload_ok(send(e, "POST", "/upload", big, js), big)
    r = send(e, "POST", "/upload", mt.chunked(big, 999),
             [("Transfer-Encoding", "chunked")] + js)
    upload_ok(r, big)
    logged = log_lines(e, 5)  # two workers: lines in any order
    assert sorted(x["status"] for x in logged) == [200, 200, 200, 400, 403]
    bad = [x for x in logged if x["status"] == 400][0]
    assert bad["waf_managed_rules"].split()[-1] == "200002", bad


def test_multipart_forms(lab, tmp_path):
    """Multipart forms (a file upload, as browsers and curl -F send them)
    pass whole; an attack in one of their fields is denied."""
    e = start(lab, tmp_path)

    def form(fields):
        b = b"----meridian0123"
        out = b""
        for name, fn, value in fields:
            disp = b'form-data; name="%s"' % name.encode()
            if fn:
                disp += b'; filename="%s"' % fn.encode()
            out += b"--" + b + b"\r\nContent-Disposition: " + disp + b"\r\n"
            if fn:
                out += b"Content-Type: application/octet-stream\r\n"
            out += b"\r\n" + value + b"\r\n"
        out += b"--" + b + b"--\r\n"
        return out, [("Content-Type",
                      "multipart/form-data; boundary=" + b.decode())]
    body, hdr = form([("title", None, b"holiday"),
                      ("photo", "sea.bin", bytes(range(256)) * 8)])
    upload_ok(send(e, "POST", "/upload", body, hdr), body)
    body, hdr = form([("title", None, b"<script>alert(1)</script>")])
    assert send(e, "POST", "/upload", body, hdr).status == 403


def test_http2_unknown_length_body_fills_the_buffer(lab, tmp_path):
    """An HTTP/2 body of unknown length (framed as chunks for the held
    request) that fills the client buffer before body_limit (a reload
    raised it past what the buffers were sized for): the rules see what
    fits and the request goes on, it does not wait for room that never
    comes (client_body's 408)."""
    e = start(lab, tmp_path, managed={"body_limit": 0}, https=True)
    n = count(e, r"SIGHUP: reloaded")
    e.cfg["waf"]["managed"]["body_limit"] = 1048576
    e.rewrite(mt.to_yaml(e.cfg) + "\n")
    hup_and_wait(e, r"SIGHUP: reloaded", n)
    big = b"x=" + b"a" * 200000
    hdr = ["-H", "Content-Type: application/x-www-form-urlencoded",
           "-H", "Transfer-Encoding: chunked"]
    rc, body, status, ver = curl2(e.https, "/upload", extra=hdr, data=big)
    assert (rc, status, ver) == (0, "200", "2"), (rc, status, body)
    assert body == b"length %d\nadler32 %08x\n" % (len(big),
                                                   zlib.adler32(big))


def test_json_body_whole_in_the_buffer_past_body_limit(lab, tmp_path):
    """A JSON body longer than body_limit that is all in the buffer by the
    verdict (it fits the buffer sized for the limit): the rules see it cut
    at the limit, as one that arrives in pieces, and do not take the cut
    for a body that does not parse (400)."""
    e = start(lab, tmp_path, managed={"body_limit": 2048})
    js = [("Content-Type", "application/json")]
    big = b'{"items": [' + b",".join(b'"item-%d"' % i
                                     for i in range(300)) + b"]}"
    assert 2048 < len(big) < 4096
    with mt.HttpConn(e.port) as c:
        c.send(mt.req("POST", "/upload", HOST, js, big))  # one write
        upload_ok(c.read_response("POST"), big)
    r = send(e, "POST", "/upload", mt.chunked(big, 999),
             [("Transfer-Encoding", "chunked")] + js)
    upload_ok(r, big)
    assert metrics(e)["body_partial"] == 2
