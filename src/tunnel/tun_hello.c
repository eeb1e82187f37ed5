/* tun_hello.c - see tun_hello.h. */
#include "tunnel/tun_hello.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/px_head.h"

bool tun_token_eq(const char *given, size_t glen, const char *want)
{
	size_t wlen = strlen(want);
	/* Every byte of the longer is looked at, whatever differs first. */
	size_t n = glen > wlen ? glen : wlen;
	unsigned diff = glen != wlen;
	for (size_t i = 0; i < n; i++) {
		unsigned char a = i < glen ? (unsigned char)given[i] : 0;
		unsigned char b = i < wlen ? (unsigned char)want[i] : 0;
		diff |= (unsigned)(a ^ b);
	}
	return diff == 0;
}

static bool value_is(const http1_header *h, const char *want)
{
	return h && h->value.len == strlen(want) &&
	       !strncasecmp(h->value.p, want, h->value.len);
}

/* Whether a comma-separated field value lists `token`. */
static bool lists(const http1_header *h, const char *token)
{
	if (!h)
		return false;
	size_t tl = strlen(token);
	const char *p = h->value.p, *end = p + h->value.len;
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		const char *s = p;
		while (p < end && *p != ',')
			p++;
		const char *e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - s) == tl && !strncasecmp(s, token, tl))
			return true;
	}
	return false;
}

static void refuse(tun_hello *out, int status, const char *why)
{
	out->status = status;
	out->why = why;
	out->tunnel = NULL;
}

void tun_hello_judge(const http1_request *req, const char *buf,
		     const cfg_snapshot *cfg, tun_hello *out)
{
	(void)buf;
	memset(out, 0, sizeof(*out));
	const http1_header *h = req->headers;
	uint32_t n = req->nheaders;
	if (req->method_id != HTTP_M_GET || req->version_minor != 1)
		return refuse(out, 400, "the hello is GET over HTTP/1.1");
	size_t pl = strlen(TUN_HELLO_PATH);
	if (req->target.len != pl || memcmp(req->target.p, TUN_HELLO_PATH, pl))
		return refuse(out, 404,
			      "no such path: tunnels say GET " TUN_HELLO_PATH);
	if (!req->conn.upgrade ||
	    !value_is(http1_find_header(h, n, "upgrade"), TUN_HELLO_UPGRADE) ||
	    !lists(http1_find_header(h, n, "connection"), "upgrade"))
		return refuse(out, 426, "expected Upgrade: " TUN_HELLO_UPGRADE);
	const http1_header *auth = http1_find_header(h, n, "authorization");
	const http1_header *tid = http1_find_header(h, n, "meridian-tunnel");
	static const char bearer[] = "Bearer ";
	size_t bl = sizeof(bearer) - 1;
	if (!tid || !tid->value.len || !auth || auth->value.len <= bl ||
	    strncasecmp(auth->value.p, bearer, bl))
		return refuse(out, 401, "unknown tunnel or wrong token");
	const cfg_tunnel *t = NULL;
	for (size_t i = 0; cfg && i < cfg->ntunnels; i++) {
		const cfg_tunnel *c = &cfg->tunnels[i];
		if (c->id && strlen(c->id) == tid->value.len &&
		    !memcmp(c->id, tid->value.p, tid->value.len))
			t = c;
	}
	/* One answer for an unknown tunnel and a wrong token: nobody
	 * learns which tunnels exist. The comparison runs either way. */
	bool ok = tun_token_eq(auth->value.p + bl, auth->value.len - bl,
			       t && t->token ? t->token : "");
	if (!t || !t->token || !ok)
		return refuse(out, 401, "unknown tunnel or wrong token");
	const http1_header *name =
	    http1_find_header(h, n, "meridian-connector");
	size_t k = 0;
	for (size_t i = 0;
	     name && i < name->value.len && k + 1 < sizeof(out->connector);
	     i++) {
		char ch = name->value.p[i];
		/* Printed in logs and metrics labels: a safe alphabet. */
		out->connector[k++] =
		    (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			    (ch >= '0' && ch <= '9') || ch == '.' ||
			    ch == '_' || ch == '-'
			? ch
			: '_';
	}
	out->connector[k] = '\0';
	if (!k)
		snprintf(out->connector, sizeof(out->connector), "unnamed");
	out->status = 101;
	out->tunnel = t;
}

size_t tun_hello_answer(const tun_hello *h, char *buf, size_t cap)
{
	int n;
	if (h->status == 101)
		n = snprintf(buf, cap,
			     "HTTP/1.1 101 Switching Protocols\r\n"
			     "Connection: Upgrade\r\n"
			     "Upgrade: " TUN_HELLO_UPGRADE "\r\n\r\n");
	else
		n = snprintf(buf, cap,
			     "HTTP/1.1 %d %s\r\n"
			     "Content-Type: text/plain\r\n"
			     "Content-Length: %zu\r\n"
			     "Connection: close\r\n\r\n%s\n",
			     h->status, px_status_reason(h->status),
			     strlen(h->why) + 1, h->why);
	if (n < 0)
		return 0;
	return (size_t)n < cap ? (size_t)n : cap - 1;
}
