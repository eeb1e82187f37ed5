/* px_head.c - see px_head.h. */
#include "http/px_head.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/core_util.h"

typedef struct wbuf {
	char *p;
	size_t len, size;
	bool overflow;
} wbuf;

static void put(wbuf *w, const char *s, size_t n)
{
	if (w->overflow || w->size - w->len < n) {
		w->overflow = true;
		return;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void puts_(wbuf *w, const char *s)
{
	put(w, s, strlen(s));
}

/* As much of s as fits (put writes all or nothing). */
static void put_cut(wbuf *w, const char *s)
{
	size_t n = strlen(s), room = w->size - w->len;
	put(w, s, n < room ? n : room);
}

static void put_u64(wbuf *w, uint64_t v)
{
	char tmp[24];
	put(w, tmp, core_fmt_u64(tmp, v, 1));
}

static void put_str(wbuf *w, http_str s)
{
	put(w, s.p, s.len);
}

static void put_field(wbuf *w, const http1_header *h)
{
	put_str(w, h->name);
	put(w, ": ", 2);
	put_str(w, h->value);
	put(w, "\r\n", 2);
}

static bool name_is(const http1_header *h, const char *name, size_t n)
{
	return h->name.len == n && !core_strncaseeq(h->name.p, name, n);
}
#define NAME_IS(h, lit) name_is((h), lit, sizeof(lit) - 1)

/* X_Forwarded_For, x-forwarded_proto, X_Real_IP, ...: CGI, WSGI and
 * FastCGI origins map '_' and '-' to the same variable, so a client could
 * smuggle its own value past the fields the edge sets. Dropped, as nginx
 * drops every field with '_' by default. Only names of the right length
 * that hold a '_' are compared. */
static bool forwarded_alias(const http1_header *h)
{
	static const char *const names[] = {"x-forwarded-for",
					    "x-forwarded-proto",
					    "x-forwarded-host", "x-real-ip"};
	uint32_t n = h->name.len;
	if (n < 9 || n > 17 || !memchr(h->name.p, '_', n))
		return false;
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		if (strlen(names[i]) != n)
			continue;
		uint32_t j = 0;
		for (; j < n; j++) {
			char c = h->name.p[j];
			c = c == '_' ? '-' : (char)(c | 0x20);
			if (c != names[i][j])
				break;
		}
		if (j == n)
			return true;
	}
	return false;
}

/* The fixed hop-by-hop names (RFC 9110 §7.6.1 and common practice),
 * checked by length first: most fields are rejected by one compare. */
static bool fixed_hop(const http1_header *h)
{
	switch (h->name.len) {
	case 2:
		return NAME_IS(h, "TE");
	case 7:
		return NAME_IS(h, "Trailer") || NAME_IS(h, "Upgrade");
	case 10:
		return NAME_IS(h, "Connection") || NAME_IS(h, "Keep-Alive");
	case 16:
		return NAME_IS(h, "Proxy-Connection");
	case 17:
		return NAME_IS(h, "Transfer-Encoding");
	default:
		return false;
	}
}

static bool value_is(const http1_header *h, const char *v, size_t n)
{
	return h->value.len == n && !core_strncaseeq(h->value.p, v, n);
}

/* Whether some Connection field may name other fields (anything but a
 * lone close / keep-alive / upgrade). Only then is the full, quadratic
 * http1_is_hop_by_hop check needed. */
static bool connection_names_fields(const http1_header *all, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		const http1_header *h = &all[i];
		if (!NAME_IS(h, "Connection"))
			continue;
		if (!value_is(h, "close", 5) &&
		    !value_is(h, "keep-alive", 10) &&
		    !value_is(h, "upgrade", 7))
			return true;
	}
	return false;
}

/* A Connection field may name end-to-end fields as hop-by-hop; never let
 * it remove the framing (Content-Length: dropping it would desync the two
 * sides) -- Host and the X-Forwarded-* fields are rebuilt by us anyway. */
static bool is_hop(const http1_header *all, uint32_t n, const http1_header *h,
		   bool named)
{
	if (fixed_hop(h))
		return true;
	if (!named || NAME_IS(h, "Content-Length"))
		return false;
	return http1_is_hop_by_hop(all, n, h);
}

static int finish(wbuf *w)
{
	put(w, "\r\n", 2);
	return w->overflow ? -ENOSPC : (int)w->len;
}

const char *px_origin_host(const cfg_origin *o)
{
	for (size_t i = 0; o && i < o->nheaders; i++) {
		const cfg_header *h = &o->headers[i];
		if (!strcasecmp(h->name, "Host") && h->nvalues > 0)
			return h->values[0];
	}
	return NULL;
}

/* The request target as an origin receives it (RFC 9112 §3.2.1): an
 * absolute-form target ("http://host/p?q", which http1_parse_request
 * checked against Host) loses its scheme and authority; an empty path
 * becomes "/", or "*" for an OPTIONS without a query (§3.2.4). */
static void put_target(wbuf *w, const http1_request *req)
{
	http_str t = req->target;
	const char *sep = t.len ? memchr(t.p, ':', t.len) : NULL;
	if (req->method_id == HTTP_M_CONNECT || !t.len || t.p[0] == '/' ||
	    t.p[0] == '*' || !sep || (size_t)(t.p + t.len - sep) < 3 ||
	    sep[1] != '/' || sep[2] != '/') {
		put_str(w, t); /* origin-form, asterisk-form, authority-form */
		return;
	}
	const char *e = sep + 3, *end = t.p + t.len;
	while (e < end && *e != '/' && *e != '?')
		e++;
	if (e == end && req->method_id == HTTP_M_OPTIONS) {
		put(w, "*", 1);
		return;
	}
	if (e == end || *e == '?')
		put(w, "/", 1);
	put(w, e, (size_t)(end - e));
}

/* A Content-Length that came as a list of one value ("5, 5", or the
 * field twice; RFC 9110 §8.6 lets a recipient take it as that value) goes
 * on as one field, once: a list is invalid to strict parsers (Go's
 * net/http, nghttp2 over HTTP/2). */
static void put_length(wbuf *w, bool *done, uint64_t n)
{
	if (*done)
		return;
	*done = true;
	puts_(w, "Content-Length: ");
	put_u64(w, n);
	put(w, "\r\n", 2);
}

int px_head_request(const http1_request *req, const px_req_ctx *ctx, char *out,
		    size_t size)
{
	wbuf w = {.p = out, .size = size};
	bool upgrade = req->conn.upgrade && !ctx->upstream_http10;
	const char *host_override = px_origin_host(ctx->origin);

	put_str(&w, req->method);
	put(&w, " ", 1);
	put_target(&w, req);
	puts_(&w, ctx->upstream_http10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
	/* Host always comes first, so a retry on an origin with another Host
	 * override can swap it in place (px_head_set_host). */
	puts_(&w, "Host: ");
	if (host_override)
		puts_(&w, host_override);
	else
		put_str(&w, req->host);
	puts_(&w, "\r\n");

	bool has_xff = false, cl_done = false;
	bool named = connection_names_fields(req->headers, req->nheaders);
	for (uint32_t i = 0; i < req->nheaders; i++) {
		const http1_header *h = &req->headers[i];
		if (NAME_IS(h, "Host"))
			continue;
		if (NAME_IS(h, "X-Forwarded-For")) {
			has_xff = true; /* merged below, ours last */
			continue;
		}
		/* The edge's own: a client's value would pass for the
		 * edge's to an origin that trusts the edge. */
		if (NAME_IS(h, "X-Forwarded-Proto") ||
		    NAME_IS(h, "X-Forwarded-Host") || NAME_IS(h, "X-Real-IP") ||
		    forwarded_alias(h))
			continue;
		if (NAME_IS(h, "Transfer-Encoding")) {
			/* Chunked bodies are forwarded byte for byte. */
			if (req->body == HTTP1_BODY_CHUNKED)
				put_field(&w, h);
			continue;
		}
		if (req->cl_list && NAME_IS(h, "Content-Length")) {
			put_length(&w, &cl_done, req->content_length);
			continue;
		}
		if (upgrade && NAME_IS(h, "Upgrade")) {
			put_field(&w, h);
			continue;
		}
		if (is_hop(req->headers, req->nheaders, h, named))
			continue;
		if (ctx->req_id && h->name.len == ctx->req_id->name.len &&
		    !core_strncaseeq(h->name.p, ctx->req_id->name.p,
				     h->name.len))
			continue; /* ours follows */
		put_field(&w, h);
	}
	if (ctx->req_id)
		put_field(&w, ctx->req_id);
	/* Every X-Forwarded-For field of the client merged into one line, in
	 * order, with the client's address last. */
	puts_(&w, "X-Forwarded-For: ");
	for (uint32_t i = 0; has_xff && i < req->nheaders; i++) {
		const http1_header *h = &req->headers[i];
		if (NAME_IS(h, "X-Forwarded-For")) {
			put_str(&w, h->value);
			puts_(&w, ", ");
		}
	}
	puts_(&w, ctx->client_ip);
	puts_(&w, "\r\nX-Forwarded-Proto: ");
	puts_(&w, ctx->proto);
	if (req->host.len) {
		puts_(&w, "\r\nX-Forwarded-Host: ");
		put_str(&w, req->host);
	}
	if (ctx->real_ip) {
		puts_(&w, "\r\nX-Real-IP: ");
		puts_(&w, ctx->real_ip);
	}
	puts_(&w, "\r\n");
	if (upgrade)
		puts_(&w, "Connection: upgrade\r\n");
	else if (ctx->upstream_http10)
		puts_(&w, "Connection: close\r\n");
	return finish(&w);
}

int px_head_set_host(char *head, size_t len, size_t cap, const char *host,
		     size_t hlen)
{
	const char *eol = memchr(head, '\n', len);
	if (!eol)
		return -EINVAL;
	size_t start = (size_t)(eol + 1 - head) + 6; /* after "Host: " */
	if (start > len || memcmp(head + start - 6, "Host: ", 6) != 0)
		return -EINVAL;
	const char *end = memchr(head + start, '\r', len - start);
	if (!end)
		return -EINVAL;
	size_t old = (size_t)(end - head) - start;
	if (len - old + hlen > cap)
		return -ENOSPC;
	memmove(head + start + hlen, head + start + old, len - start - old);
	memcpy(head + start, host, hlen);
	return (int)(len - old + hlen);
}

bool px_resp_edit_drops(const px_resp_edit *ed, const char *name, size_t len)
{
	if (!ed)
		return false;
	/* core_strncaseeq is 0 when equal (as strncasecmp). */
	if (ed->drop_sts && len == 25 &&
	    !core_strncaseeq(name, "Strict-Transport-Security", 25))
		return true;
	return ed->drop.len && len == ed->drop.len &&
	       !core_strncaseeq(name, ed->drop.p, len);
}

int px_head_insert_line(char *head, size_t len, size_t cap, const char *line,
			size_t n)
{
	const char *eol = memchr(head, '\n', len);
	if (!eol)
		return -EINVAL;
	if (len + n > cap)
		return -ENOSPC;
	size_t at = (size_t)(eol - head) + 1;
	memmove(head + at + n, head + at, len - at);
	memcpy(head + at, line, n);
	return (int)(len + n);
}

int px_head_insert_fields(char *head, size_t len, size_t cap,
			  const http1_header *f, size_t n)
{
	char lines[512];
	wbuf w = {.p = lines, .size = sizeof(lines)};
	for (size_t i = 0; i < n; i++)
		put_field(&w, &f[i]);
	if (w.overflow)
		return -ENOSPC;
	return w.len ? px_head_insert_line(head, len, cap, lines, w.len)
		     : (int)len;
}

int px_head_response(const http1_response *resp, bool upgrade, bool close,
		     const px_resp_edit *ed, char *out, size_t size)
{
	wbuf w = {.p = out, .size = size};
	char line[13] = "HTTP/1.1 000 ";
	line[9] = (char)('0' + resp->status / 100 % 10);
	line[10] = (char)('0' + resp->status / 10 % 10);
	line[11] = (char)('0' + resp->status % 10);
	put(&w, line, sizeof(line));
	put_str(&w, resp->reason);
	put(&w, "\r\n", 2);
	bool named = connection_names_fields(resp->headers, resp->nheaders);
	/* RFC 9110 §8.6: no Content-Length in a 1xx or 204. */
	bool no_length = resp->status < 200 || resp->status == 204;
	bool cl_done = false;
	for (uint32_t i = 0; i < resp->nheaders; i++) {
		const http1_header *h = &resp->headers[i];
		if ((no_length || resp->cl_list) &&
		    NAME_IS(h, "Content-Length")) {
			if (!no_length)
				put_length(&w, &cl_done, resp->content_length);
			continue;
		}
		if (NAME_IS(h, "Transfer-Encoding")) {
			if (resp->body == HTTP1_BODY_CHUNKED &&
			    !(ed && ed->unchunk))
				put_field(&w, h);
			continue;
		}
		if (upgrade && NAME_IS(h, "Upgrade")) {
			put_field(&w, h);
			continue;
		}
		if (is_hop(resp->headers, resp->nheaders, h, named))
			continue;
		if (ed && px_resp_edit_drops(ed, h->name.p, h->name.len))
			continue;
		put_field(&w, h);
	}
	for (uint32_t i = 0; ed && i < ed->nadd; i++)
		put_field(&w, &ed->add[i]);
	if (upgrade)
		puts_(&w, "Connection: upgrade\r\n");
	else if (close)
		puts_(&w, "Connection: close\r\n");
	return finish(&w);
}

const char *px_status_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 205:
		return "Reset Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 410:
		return "Gone";
	case 426:
		return "Upgrade Required";
	case 429:
		return "Too Many Requests";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 417:
		return "Expectation Failed";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default: /* fixed_response may use any code */
		return status < 300   ? "OK"
		       : status < 400 ? "Redirect"
				      : "Error";
	}
}

/* The end of the edge's own answers: Content-Length (unless !framed: 204,
 * 304), Cache-Control, Connection: close when close, the blank line, and
 * the body unless head_only. The head's length, or -ENOSPC. */
static int put_body(wbuf *w, bool framed, const char *body, size_t blen,
		    bool close, bool head_only)
{
	if (framed) {
		put(w, "Content-Length: ", 16);
		put_u64(w, blen);
		put(w, "\r\n", 2);
	}
	puts_(w, "Cache-Control: no-store\r\n");
	if (close)
		puts_(w, "Connection: close\r\n");
	put(w, "\r\n", 2);
	if (!head_only && blen)
		put(w, body, blen);
	return w->overflow ? -ENOSPC : (int)w->len;
}

/* The rest of a local response after its status line and any extra
 * fields: the text/plain body "<code> <reason>: <detail> (edge <edge>)\n"
 * and the fields describing it. */
static int local_rest(wbuf *w, int status, const char *detail,
		      const char *edge_name, bool close, bool head_only)
{
	/* Built without snprintf: a rate limit's 429 is a hot path. Cut
	 * at 511 bytes, as it always was. */
	char body[512];
	wbuf b = {.p = body, .size = sizeof(body) - 1};
	put_u64(&b, (uint64_t)(status < 0 ? 0 : status));
	const char *parts[] = {
	    " ",  px_status_reason(status), ": ", detail, " (edge ", edge_name,
	    ")\n"};
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		put_cut(&b, parts[i]);
	puts_(w, "Content-Type: text/plain; charset=utf-8\r\n");
	return put_body(w, true, body, b.len, close, head_only);
}

static void put_status_line(wbuf *w, int status)
{
	if (status < 100 || status > 999) {
		w->overflow = true;
		return;
	}
	put(w, "HTTP/1.1 ", 9);
	put_u64(w, (uint64_t)status);
	put(w, " ", 1);
	puts_(w, px_status_reason(status));
	put(w, "\r\n", 2);
}

int px_head_local(int status, const char *detail, const char *edge_name,
		  bool close, bool head_only, char *out, size_t size)
{
	/* One byte is kept free: callers may NUL-terminate. */
	if (size == 0)
		return -ENOSPC;
	wbuf w = {.p = out, .size = size - 1};
	put_status_line(&w, status);
	return local_rest(&w, status, detail, edge_name, close, head_only);
}

/* A load balancer rule's fixed_response: the operator's body, type and
 * Location, with the framing and Connection of the edge's own answers. */
int px_head_fixed(int status, const char *content_type, const char *location,
		  const char *body, bool close, bool head_only, char *out,
		  size_t size)
{
	if (size == 0)
		return -ENOSPC;
	wbuf w = {.p = out, .size = size - 1}; /* as px_head_local */
	/* 204 and 304 have no content and no Content-Length (RFC 9110
	 * §15.3.5, §15.4.5); 205 has no content but says so (§15.3.6), or a
	 * client would read to the close. */
	bool empty = status == 204 || status == 304;
	size_t blen = body && !empty && status != 205 ? strlen(body) : 0;
	put_status_line(&w, status);
	puts_(&w, "Content-Type: ");
	puts_(&w, content_type ? content_type : "text/plain");
	put(&w, "\r\n", 2);
	if (location) {
		puts_(&w, "Location: ");
		puts_(&w, location);
		put(&w, "\r\n", 2);
	}
	return put_body(&w, !empty, body, blen, close, head_only);
}

/* ---- https_redirect ---- */

#define ACME_PREFIX "/.well-known/acme-challenge/"

/* The path and query of a target: all of an origin-form target, what
 * follows the authority of an absolute-form one, nothing for "*". */
http_str px_target_path(http_str t)
{
	if (t.len && t.p[0] == '/')
		return t;
	const char *scheme = t.len ? memchr(t.p, ':', t.len) : NULL;
	if (!scheme || (size_t)(t.p + t.len - scheme) < 3 ||
	    memcmp(scheme, "://", 3) != 0)
		return (http_str){t.p + t.len, 0}; /* "*" */
	const char *a = scheme + 3, *end = t.p + t.len;
	while (a < end && *a != '/' && *a != '?')
		a++;
	return (http_str){a, (size_t)(end - a)};
}

bool px_is_acme_challenge(http_str target)
{
	http_str path = px_target_path(target);
	size_t n = sizeof(ACME_PREFIX) - 1;
	return path.len >= n && !memcmp(path.p, ACME_PREFIX, n);
}

int px_redirect_status(http1_method method)
{
	return method == HTTP_M_GET || method == HTTP_M_HEAD ? 301 : 308;
}

static int put_location(wbuf *w, http_str host, http_str target, uint16_t port)
{
	size_t hl = host.len ? http1_host_len(host) : 0;
	if (!hl)
		return -EINVAL;
	puts_(w, "https://");
	put(w, host.p, hl);
	if (port != 443) {
		char p[8];
		int n = snprintf(p, sizeof(p), ":%u", (unsigned)port);
		put(w, p, (size_t)n);
	}
	http_str path = px_target_path(target);
	if (!path.len || path.p[0] != '/')
		put(w, "/", 1); /* "*", or "http://host" or "http://host?q" */
	put_str(w, path);
	return w->overflow ? -ENOSPC : 0;
}

int px_https_location(http_str host, http_str target, uint16_t port, char *out,
		      size_t size)
{
	if (size == 0)
		return -ENOSPC;
	wbuf w = {.p = out, .size = size - 1}; /* room for the NUL */
	int r = put_location(&w, host, target, port);
	if (r < 0)
		return r;
	out[w.len] = '\0';
	return (int)w.len;
}

int px_head_redirect(int status, http_str host, http_str target, uint16_t port,
		     const char *edge_name, bool close, bool head_only,
		     char *out, size_t size)
{
	if (size == 0)
		return -ENOSPC;
	wbuf w = {.p = out, .size = size - 1}; /* as px_head_local */
	put_status_line(&w, status);
	puts_(&w, "Location: ");
	int r = put_location(&w, host, target, port);
	if (r < 0)
		return r;
	put(&w, "\r\n", 2);
	return local_rest(&w, status, "moved to https", edge_name, close,
			  head_only);
}
