/* dns_rdata.c - see dns_rdata.h. */
#include "dns/dns_rdata.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "dns/dns_wire.h"

typedef struct rd {
	uint8_t *out;
	size_t cap, len;
	char *err;
	size_t errlen;
	const char *p; /* the content still to read */
} rd;

__attribute__((format(printf, 2, 3))) static int fail(rd *r, const char *fmt,
						      ...)
{
	va_list ap;
	if (r->errlen) {
		va_start(ap, fmt);
		vsnprintf(r->err, r->errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool put(rd *r, const void *b, size_t n)
{
	if (r->cap - r->len < n)
		return false;
	memcpy(r->out + r->len, b, n);
	r->len += n;
	return true;
}

static bool put8(rd *r, unsigned v)
{
	uint8_t b = (uint8_t)v;
	return put(r, &b, 1);
}

static bool put16(rd *r, unsigned v)
{
	uint8_t b[2];
	dns_put16(b, (uint16_t)v);
	return put(r, b, 2);
}

static bool put32(rd *r, uint32_t v)
{
	uint8_t b[4];
	dns_put32(b, v);
	return put(r, b, 4);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_space(rd *r)
{
	while (is_space(*r->p))
		r->p++;
}

/* The next whitespace-separated token into tok (NUL-terminated).
 * Returns its length, 0 at the end, -1 when longer than cap - 1. */
static int token(rd *r, char *tok, size_t cap)
{
	skip_space(r);
	size_t n = 0;
	while (r->p[n] && !is_space(r->p[n]))
		n++;
	if (n >= cap)
		return -1;
	memcpy(tok, r->p, n);
	tok[n] = '\0';
	r->p += n;
	return (int)n;
}

static bool at_end(rd *r)
{
	skip_space(r);
	return *r->p == '\0';
}

/* Strict decimal in [0, max]. */
static bool parse_uint(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return false;
	}
	*out = (uint32_t)v;
	return true;
}

static int number(rd *r, const char *what, uint32_t max, uint32_t *out)
{
	char tok[16];
	int n = token(r, tok, sizeof(tok));
	if (n == 0)
		return fail(r, "missing %s", what);
	if (n < 0 || !parse_uint(tok, max, out))
		return fail(r, "%s: expected a number from 0 to %u", what, max);
	return 0;
}

/* A domain name token (lowercased) appended to the rdata. */
static int name(rd *r, const char *what, bool root_ok)
{
	char tok[DNS_MAX_NAME + 2];
	uint8_t wire[DNS_MAX_NAME];
	int n = token(r, tok, sizeof(tok));
	if (n == 0)
		return fail(r, "missing %s", what);
	if (n < 0)
		return fail(r, "%s: name longer than 253 characters", what);
	if (!root_ok && !strcmp(tok, "."))
		return fail(r, "%s: the root '.' is not allowed here", what);
	for (char *c = tok; *c; c++) {
		bool ok = (*c >= 'a' && *c <= 'z') ||
			  (*c >= 'A' && *c <= 'Z') ||
			  (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' ||
			  *c == '.' || *c == '*';
		if (!ok)
			return fail(r, "%s: '%s' is not a domain name", what,
				    tok);
		*c = (char)dns_lower((uint8_t)*c);
	}
	int l = dns_name_from_text(tok, wire, sizeof(wire));
	if (l == -EMSGSIZE)
		return fail(r,
			    "%s: '%s' is too long (labels of at most 63 "
			    "characters, names of at most 253)",
			    what, tok);
	if (l < 0)
		return fail(r, "%s: '%s' is not a domain name (empty label)",
			    what, tok);
	if (!put(r, wire, (size_t)l))
		return -EMSGSIZE;
	return 0;
}

/* A zone-file quoted string at r->p (which is at the opening quote),
 * unescaped into buf. Returns its length or a negative code. */
static int quoted(rd *r, uint8_t *buf, size_t cap, size_t *outlen)
{
	size_t n = 0;
	const char *p = r->p + 1;
	for (;;) {
		uint8_t c = (uint8_t)*p;
		if (c == '\0')
			return fail(r, "unterminated quoted string");
		if (c == '"') {
			p++;
			break;
		}
		if (c == '\\') {
			if (p[1] >= '0' && p[1] <= '9') {
				if (!(p[2] >= '0' && p[2] <= '9' &&
				      p[3] >= '0' && p[3] <= '9'))
					return fail(r, "bad \\DDD escape in a "
						       "quoted string");
				unsigned v = (unsigned)(p[1] - '0') * 100 +
					     (unsigned)(p[2] - '0') * 10 +
					     (unsigned)(p[3] - '0');
				if (v > 255)
					return fail(r, "bad \\DDD escape in a "
						       "quoted string");
				c = (uint8_t)v;
				p += 4;
			} else if (p[1] == '\0') {
				return fail(r, "unterminated quoted string");
			} else {
				c = (uint8_t)p[1];
				p += 2;
			}
		} else {
			p++;
		}
		if (n == cap)
			return fail(r,
				    "a quoted string is longer than %zu "
				    "bytes",
				    cap);
		buf[n++] = c;
	}
	if (*p && !is_space(*p))
		return fail(r, "expected a space after a quoted string");
	r->p = p;
	*outlen = n;
	return 0;
}

static int rd_txt(rd *r)
{
	skip_space(r);
	if (*r->p != '"') {
		/* the text as is, in strings of at most 255 bytes */
		const char *s = r->p;
		size_t n = strlen(s);
		if (n == 0)
			return fail(r, "empty TXT content");
		while (n) {
			size_t k = n > 255 ? 255 : n;
			if (!put8(r, (unsigned)k) || !put(r, s, k))
				return -EMSGSIZE;
			s += k;
			n -= k;
		}
		r->p = s;
		return 0;
	}
	while (!at_end(r)) {
		uint8_t buf[255];
		size_t n = 0;
		if (*r->p != '"')
			return fail(r, "expected a quoted string, got '%.32s'",
				    r->p);
		int rc = quoted(r, buf, sizeof(buf), &n);
		if (rc)
			return rc;
		if (!put8(r, (unsigned)n) || !put(r, buf, n))
			return -EMSGSIZE;
	}
	return 0;
}

static int rd_caa(rd *r)
{
	uint32_t flags;
	char tag[32];
	int rc = number(r, "CAA flags", 255, &flags);
	if (rc)
		return rc;
	int n = token(r, tag, sizeof(tag));
	if (n == 0)
		return fail(r, "missing CAA tag");
	if (n < 0 || n > 15)
		return fail(r, "CAA tag: at most 15 letters or digits");
	for (int i = 0; i < n; i++) {
		char c = tag[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9')))
			return fail(
			    r, "CAA tag: '%s' is not letters and digits", tag);
	}
	if (!put8(r, flags) || !put8(r, (unsigned)n) || !put(r, tag, (size_t)n))
		return -EMSGSIZE;
	skip_space(r);
	if (*r->p == '"') {
		size_t vlen = 0;
		rc = quoted(r, r->out + r->len, r->cap - r->len, &vlen);
		if (rc)
			return rc;
		r->len += vlen;
		if (!at_end(r))
			return fail(r, "unexpected text after the CAA value");
		return 0;
	}
	/* bare: the rest, trailing spaces dropped */
	size_t vlen = strlen(r->p);
	while (vlen && is_space(r->p[vlen - 1]))
		vlen--;
	if (!put(r, r->p, vlen))
		return -EMSGSIZE;
	r->p += strlen(r->p);
	return 0;
}

static int rd_soa(rd *r)
{
	int rc = name(r, "SOA mname", false);
	if (rc)
		return rc;
	/* rname: "hostmaster.example.com" or "hostmaster@example.com" */
	char tok[DNS_MAX_NAME + 2];
	skip_space(r);
	const char *save = r->p;
	int n = token(r, tok, sizeof(tok));
	if (n > 0) {
		char *at = strchr(tok, '@');
		if (at) {
			*at = '.';
			rd sub = *r;
			sub.p = tok;
			rc = name(&sub, "SOA rname", false);
			r->len = sub.len;
		} else {
			r->p = save;
			rc = name(r, "SOA rname", false);
		}
	} else {
		rc = fail(r, "missing SOA rname");
	}
	if (rc)
		return rc;
	static const char *const what[] = {"SOA serial", "SOA refresh",
					   "SOA retry", "SOA expire",
					   "SOA minimum"};
	for (size_t i = 0; i < 5; i++) {
		uint32_t v;
		rc = number(r, what[i], UINT32_MAX, &v);
		if (rc)
			return rc;
		if (!put32(r, v))
			return -EMSGSIZE;
	}
	return 0;
}

int dns_rdata_from_text(uint16_t type, const char *content, uint16_t priority,
			uint8_t *out, size_t cap, char *err, size_t errlen)
{
	rd r = {.out = out,
		.cap = cap,
		.err = err,
		.errlen = errlen,
		.p = content ? content : ""};
	char tok[64];
	int rc = 0;
	uint32_t v[3];

	if (errlen)
		err[0] = '\0';
	switch (type) {
	case DNS_T_A:
	case DNS_T_AAAA: {
		uint8_t a[16];
		int af = type == DNS_T_A ? AF_INET : AF_INET6;
		int n = token(&r, tok, sizeof(tok));
		if (n <= 0 || !at_end(&r) || inet_pton(af, tok, a) != 1)
			return fail(&r, "expected an %s address, got '%.64s'",
				    type == DNS_T_A ? "IPv4" : "IPv6", content);
		if (!put(&r, a, type == DNS_T_A ? 4 : 16))
			return -EMSGSIZE;
		break;
	}
	case DNS_T_CNAME:
	case DNS_T_NS:
		rc = name(&r, type == DNS_T_NS ? "NS target" : "CNAME target",
			  false);
		break;
	case DNS_T_MX: {
		/* "host" or "pref host" */
		const char *save = r.p;
		int n = token(&r, tok, sizeof(tok));
		uint32_t pref = priority;
		if (n > 0 && !at_end(&r)) {
			if (!parse_uint(tok, 65535, &pref))
				return fail(&r,
					    "MX preference: expected a number "
					    "from 0 to 65535, got '%s'",
					    tok);
		} else {
			r.p = save;
		}
		if (!put16(&r, pref))
			return -EMSGSIZE;
		rc = name(&r, "MX exchange", true);
		break;
	}
	case DNS_T_TXT:
		rc = rd_txt(&r);
		break;
	case DNS_T_SRV: {
		/* count the fields: 3 (priority from the record) or 4 */
		int fields = 0;
		for (const char *p = r.p; *p;) {
			while (is_space(*p))
				p++;
			if (!*p)
				break;
			fields++;
			while (*p && !is_space(*p))
				p++;
		}
		if (fields != 3 && fields != 4)
			return fail(&r, "expected SRV content 'weight port "
					"target' or 'priority weight port "
					"target'");
		uint32_t prio = priority;
		if (fields == 4 &&
		    (rc = number(&r, "SRV priority", 65535, &prio)))
			return rc;
		if ((rc = number(&r, "SRV weight", 65535, &v[0])) ||
		    (rc = number(&r, "SRV port", 65535, &v[1])))
			return rc;
		if (!put16(&r, prio) || !put16(&r, v[0]) || !put16(&r, v[1]))
			return -EMSGSIZE;
		rc = name(&r, "SRV target", true);
		break;
	}
	case DNS_T_CAA:
		rc = rd_caa(&r);
		break;
	case DNS_T_SOA:
		rc = rd_soa(&r);
		break;
	default:
		return fail(&r, "record type %u is not supported", type);
	}
	if (rc)
		return rc;
	if (!at_end(&r))
		return fail(&r, "unexpected text '%.32s'", r.p);
	if (r.len > DNS_RDATA_MAX)
		return fail(&r, "record data longer than 65535 bytes");
	return (int)r.len;
}
