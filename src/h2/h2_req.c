/* h2_req.c - strict HTTP/2 <-> HTTP/1.1 translation (see h2_req.h). */
#include "h2/h2_req.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char h2_req_err_pseudo_after[] = "pseudo-header after regular header";
const char h2_req_err_pseudo_dup[] = "duplicate pseudo-header";
const char h2_req_err_pseudo_unknown[] = "unknown pseudo-header";
const char h2_req_err_pseudo_missing[] = "missing pseudo-header";
const char h2_req_err_name[] = "invalid header name";
const char h2_req_err_uppercase[] = "uppercase header name";
const char h2_req_err_conn_specific[] = "connection-specific header";
const char h2_req_err_te[] = "te other than trailers";
const char h2_req_err_value[] = "invalid header value";
const char h2_req_err_content_length[] = "invalid content-length";
const char h2_req_err_connect[] = "CONNECT not allowed";
const char h2_req_err_host[] = "host missing or disagrees with :authority";
const char h2_req_err_path[] = "invalid :path";
const char h2_req_err_method[] = "invalid :method";
const char h2_req_err_scheme[] = "invalid :scheme";
const char h2_req_err_authority[] = "invalid :authority";
const char h2_req_err_length_mismatch[] = "content-length disagrees with DATA";

/* RFC 9110 tchar */
static bool is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool str_eq(h2_str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.len == n && memcmp(s.p, lit, n) == 0;
}

static bool str_caseeq(h2_str a, h2_str b)
{
	if (a.len != b.len)
		return false;
	for (size_t i = 0; i < a.len; i++) {
		unsigned char x = (unsigned char)a.p[i],
			      y = (unsigned char)b.p[i];
		if (x >= 'A' && x <= 'Z')
			x += 32;
		if (y >= 'A' && y <= 'Z')
			y += 32;
		if (x != y)
			return false;
	}
	return true;
}

static bool is_token(h2_str s)
{
	if (!s.len)
		return false;
	for (size_t i = 0; i < s.len; i++)
		if (!is_tchar((unsigned char)s.p[i]))
			return false;
	return true;
}

/* Field value (RFC 9113 §8.2.1): no NUL, CR, LF, nor other controls
 * except HTAB; no leading or trailing whitespace. */
static bool value_ok(h2_str v)
{
	for (size_t i = 0; i < v.len; i++) {
		unsigned char c = (unsigned char)v.p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	if (v.len && (v.p[0] == ' ' || v.p[0] == '\t' ||
		      v.p[v.len - 1] == ' ' || v.p[v.len - 1] == '\t'))
		return false;
	return true;
}

/* Visible ASCII without spaces (request-target, authority). */
static bool visible(h2_str v)
{
	if (!v.len)
		return false;
	for (size_t i = 0; i < v.len; i++) {
		unsigned char c = (unsigned char)v.p[i];
		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

static int parse_cl(h2_str v, int64_t *out)
{
	int64_t n = 0;
	if (!v.len || v.len > 18)
		return -1;
	for (size_t i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -1;
		n = n * 10 + (v.p[i] - '0');
	}
	*out = n;
	return 0;
}

static const char *const conn_specific[] = {
    "connection",	 "keep-alive", "proxy-connection",
    "transfer-encoding", "upgrade",
};

#define FAIL(e)                                                                \
	do {                                                                   \
		*why = (e);                                                    \
		return -EPROTO;                                                \
	} while (0)

int h2_req_parse(const h2_field *f, size_t n, bool end_stream, h2_req *r,
		 const char **why)
{
	bool regular = false, have_auth = false;
	const h2_str *host = NULL;
	h2_str *slot;

	memset(r, 0, sizeof(*r));
	r->fields = f;
	r->nfields = n;
	r->content_length = -1;
	r->end_stream = end_stream;
	*why = NULL;
	for (size_t i = 0; i < n; i++) {
		h2_str name = f[i].name, val = f[i].value;
		if (!name.len)
			FAIL(h2_req_err_name);
		if (name.p[0] == ':') {
			if (regular)
				FAIL(h2_req_err_pseudo_after);
			if (str_eq(name, ":method"))
				slot = &r->method;
			else if (str_eq(name, ":scheme"))
				slot = &r->scheme;
			else if (str_eq(name, ":authority"))
				slot = &r->authority, have_auth = true;
			else if (str_eq(name, ":path"))
				slot = &r->path;
			else
				FAIL(h2_req_err_pseudo_unknown);
			if (slot->p)
				FAIL(h2_req_err_pseudo_dup);
			if (!value_ok(val))
				FAIL(h2_req_err_value);
			*slot = val;
			if (!slot->p)
				slot->p = "";
			continue;
		}
		regular = true;
		for (size_t k = 0; k < name.len; k++) {
			unsigned char c = (unsigned char)name.p[k];
			if (c >= 'A' && c <= 'Z')
				FAIL(h2_req_err_uppercase);
			if (!is_tchar(c))
				FAIL(h2_req_err_name);
		}
		if (!value_ok(val))
			FAIL(h2_req_err_value);
		for (size_t k = 0;
		     k < sizeof(conn_specific) / sizeof(conn_specific[0]); k++)
			if (str_eq(name, conn_specific[k]))
				FAIL(h2_req_err_conn_specific);
		if (str_eq(name, "te")) {
			if (!str_caseeq(val, (h2_str){"trailers", 8}))
				FAIL(h2_req_err_te);
		} else if (str_eq(name, "content-length")) {
			int64_t cl;
			if (parse_cl(val, &cl) < 0 ||
			    (r->content_length >= 0 && cl != r->content_length))
				FAIL(h2_req_err_content_length);
			r->content_length = cl;
		} else if (str_eq(name, "host")) {
			if (host)
				FAIL(h2_req_err_host);
			host = &f[i].value;
		}
	}
	if (!r->method.p)
		FAIL(h2_req_err_pseudo_missing);
	if (!is_token(r->method))
		FAIL(h2_req_err_method);
	if (str_eq(r->method, "CONNECT")) {
		*why = h2_req_err_connect;
		return -EOPNOTSUPP;
	}
	if (!r->scheme.p || !r->path.p)
		FAIL(h2_req_err_pseudo_missing);
	if (!str_eq(r->scheme, "http") && !str_eq(r->scheme, "https"))
		FAIL(h2_req_err_scheme);
	if (!visible(r->path))
		FAIL(h2_req_err_path);
	if (r->path.p[0] != '/' &&
	    !(str_eq(r->path, "*") && str_eq(r->method, "OPTIONS")))
		FAIL(h2_req_err_path);
	if (have_auth) {
		if (!visible(r->authority) ||
		    memchr(r->authority.p, '@', r->authority.len))
			FAIL(h2_req_err_authority);
		if (host && !str_caseeq(*host, r->authority))
			FAIL(h2_req_err_host);
	} else {
		if (!host || !visible(*host) || memchr(host->p, '@', host->len))
			FAIL(h2_req_err_host);
		r->authority = *host;
	}
	if (end_stream && r->content_length > 0)
		FAIL(h2_req_err_length_mismatch);
	return 0;
}

int h2_req_check_length(const h2_req *r, uint64_t received, bool at_end)
{
	if (r->content_length < 0)
		return 0;
	if (received > (uint64_t)r->content_length)
		return -EPROTO;
	if (at_end && received != (uint64_t)r->content_length)
		return -EPROTO;
	return 0;
}

typedef struct wbuf {
	char *p;
	size_t len, cap;
	bool over;
} wbuf;

static void put(wbuf *w, const char *s, size_t n)
{
	if (w->over || n > w->cap - w->len) {
		w->over = true;
		return;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void puts_(wbuf *w, const char *s)
{
	put(w, s, strlen(s));
}

int h2_req_to_h1(const h2_req *r, char *buf, size_t cap, bool *chunked)
{
	wbuf w = {buf, 0, cap, false};
	bool cookie_done = false;

	*chunked = false;
	put(&w, r->method.p, r->method.len);
	puts_(&w, " ");
	put(&w, r->path.p, r->path.len);
	puts_(&w, " HTTP/1.1\r\nhost: ");
	put(&w, r->authority.p, r->authority.len);
	puts_(&w, "\r\n");
	for (size_t i = 0; i < r->nfields; i++) {
		h2_str name = r->fields[i].name;
		if (name.p[0] == ':' || str_eq(name, "host") ||
		    str_eq(name, "te"))
			continue;
		if (str_eq(name, "cookie")) {
			/* RFC 9113 §8.2.3: crumbs joined with "; " */
			if (cookie_done)
				continue;
			cookie_done = true;
			puts_(&w, "cookie: ");
			bool first = true;
			for (size_t k = i; k < r->nfields; k++) {
				if (!str_eq(r->fields[k].name, "cookie"))
					continue;
				if (!first)
					puts_(&w, "; ");
				first = false;
				put(&w, r->fields[k].value.p,
				    r->fields[k].value.len);
			}
			puts_(&w, "\r\n");
			continue;
		}
		put(&w, name.p, name.len);
		puts_(&w, ": ");
		put(&w, r->fields[i].value.p, r->fields[i].value.len);
		puts_(&w, "\r\n");
	}
	if (!r->end_stream && r->content_length < 0) {
		puts_(&w, "transfer-encoding: chunked\r\n");
		*chunked = true;
	}
	puts_(&w, "\r\n");
	if (w.over || w.len > INT32_MAX)
		return -ENOSPC;
	return (int)w.len;
}

/* Is `name` listed in one of the Connection fields? */
static bool named_by_connection(const h2_field *in, size_t n, h2_str name)
{
	for (size_t i = 0; i < n; i++) {
		if (!str_caseeq(in[i].name, (h2_str){"connection", 10}))
			continue;
		const char *p = in[i].value.p, *end = p + in[i].value.len;
		while (p < end) {
			while (p < end &&
			       (*p == ' ' || *p == '\t' || *p == ','))
				p++;
			const char *s = p;
			while (p < end && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			if (p > s &&
			    str_caseeq((h2_str){s, (size_t)(p - s)}, name))
				return true;
		}
	}
	return false;
}

/* Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade,
 * TE: by length first, so most names cost one switch. */
static bool hop_by_hop(h2_str n)
{
	switch (n.len) {
	case 2:
		return str_caseeq(n, (h2_str){"te", 2});
	case 7:
		return str_caseeq(n, (h2_str){"upgrade", 7});
	case 10:
		return str_caseeq(n, (h2_str){"connection", 10}) ||
		       str_caseeq(n, (h2_str){"keep-alive", 10});
	case 16:
		return str_caseeq(n, (h2_str){"proxy-connection", 16});
	case 17:
		return str_caseeq(n, (h2_str){"transfer-encoding", 17});
	default:
		return false;
	}
}

int h2_resp_fields(const h2_field *in, size_t n, h2_field *out, size_t cap,
		   char *names, size_t names_cap)
{
	size_t cnt = 0, used = 0;
	/* Fields named by Connection are looked for only when there is one
	 * (an HTTP/1.1 origin rarely sends it on a kept-alive response). */
	bool has_connection = false;
	for (size_t i = 0; i < n && !has_connection; i++)
		has_connection =
		    str_caseeq(in[i].name, (h2_str){"connection", 10});
	for (size_t i = 0; i < n; i++) {
		h2_str name = in[i].name;
		if (hop_by_hop(name) ||
		    (has_connection && named_by_connection(in, n, name)))
			continue;
		if (cnt == cap || name.len > names_cap - used)
			return -ENOSPC;
		char *dst = names + used;
		for (size_t k = 0; k < name.len; k++) {
			char c = name.p[k];
			dst[k] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
		}
		used += name.len;
		out[cnt].name = (h2_str){dst, name.len};
		out[cnt].value = in[i].value;
		cnt++;
	}
	return (int)cnt;
}

bool h2_req_trailer_ok(h2_str name)
{
	static const char *const banned[] = {
	    "content-length",
	    "transfer-encoding",
	    "connection",
	    "keep-alive",
	    "te",
	    "trailer",
	    "upgrade",
	    "host",
	    "cache-control",
	    "expect",
	    "max-forwards",
	    "pragma",
	    "range",
	    "authorization",
	    "cookie",
	    "set-cookie",
	    "content-encoding",
	    "content-type",
	    "content-range",
	    "forwarded",
	    "x-real-ip",
	};
	static const char *const banned_prefix[] = {"if-", "proxy-",
						    "x-forwarded-"};
	if (!is_token(name))
		return false;
	/* CGI, WSGI and FastCGI origins map '_' and '-' to the same
	 * variable (X_Forwarded_For is HTTP_X_FORWARDED_FOR): compared with
	 * '_' read as '-', as px_head.c drops such aliases from the head.
	 * The banned names and prefixes are all shorter than `folded`. */
	char folded[32];
	size_t flen = name.len < sizeof(folded) ? name.len : sizeof(folded);
	for (size_t i = 0; i < flen; i++)
		folded[i] = name.p[i] == '_' ? '-' : name.p[i];
	for (size_t i = 0; i < sizeof(banned) / sizeof(banned[0]); i++)
		if (str_caseeq((h2_str){folded, name.len == flen ? flen : 0},
			       (h2_str){banned[i], strlen(banned[i])}))
			return false;
	for (size_t i = 0; i < sizeof(banned_prefix) / sizeof(banned_prefix[0]);
	     i++) {
		size_t k = strlen(banned_prefix[i]);
		if (name.len > k && str_caseeq((h2_str){folded, k},
					       (h2_str){banned_prefix[i], k}))
			return false;
	}
	return true;
}
