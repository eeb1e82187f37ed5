/* http1_parse.c - strict HTTP/1.1 message parsing, no I/O (RFC 9110/9112).
 *
 * One pass over the head: every byte is classified exactly once through a
 * lookup table (or eight at a time with SWAR word tests on the long runs:
 * request-target and field values), so a complete head costs one scan and an
 * incomplete one is rejected as soon as a byte is invalid. The framing
 * fields (Host, Content-Length, Transfer-Encoding, Connection, ...) are
 * recognised while the line is still hot in the cache; the cross-field rules
 * (CL with TE, missing Host, ...) run once the empty line is reached.
 *
 * When a head is incomplete the caller parses it again from the start with
 * more bytes; heads are small (max_head_bytes) so this costs less than
 * keeping a resumable state. A caller facing a client that trickles bytes
 * should only re-parse when the new bytes contain a LF.
 */
#include "http/http1_parse.h"

#include <arpa/inet.h>
#include <limits.h>
#include <string.h>

#include "core/core_util.h"

/* ---- character classes ---- */

enum {
	C_TCHAR = 1 << 0,   /* token: method, field name, coding names */
	C_VALUE = 1 << 1,   /* field-value: VCHAR / obs-text / SP / HTAB */
	C_HEX = 1 << 2,	    /* HEXDIG */
	C_TARGET = 1 << 3,  /* request-target: VCHAR (0x21-0x7e) */
	C_REGNAME = 1 << 4, /* reg-name: unreserved / sub-delims / '%' */
	C_QDTEXT = 1 << 5,  /* quoted-string text: value chars but '"' '\' */
};

#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIG(c)   ((c) >= '0' && (c) <= '9')
#define IS_TCHAR(c)                                                            \
	(IS_ALPHA(c) || IS_DIG(c) || (c) == '!' || (c) == '#' || (c) == '$' || \
	 (c) == '%' || (c) == '&' || (c) == '\'' || (c) == '*' ||              \
	 (c) == '+' || (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' || \
	 (c) == '`' || (c) == '|' || (c) == '~')
#define IS_VALUE(c) (((c) >= 0x20 && (c) != 0x7f) || (c) == '\t')
#define IS_HEX(c)                                                              \
	(IS_DIG(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define IS_TARGET(c) ((c) >= 0x21 && (c) <= 0x7e)
#define IS_SUBDELIM(c)                                                         \
	((c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' ||              \
	 (c) == '(' || (c) == ')' || (c) == '*' || (c) == '+' || (c) == ',' || \
	 (c) == ';' || (c) == '=')
#define IS_REGNAME(c)                                                          \
	(IS_ALPHA(c) || IS_DIG(c) || (c) == '-' || (c) == '.' || (c) == '_' || \
	 (c) == '~' || (c) == '%' || IS_SUBDELIM(c))
#define IS_QDTEXT(c) (IS_VALUE(c) && (c) != '"' && (c) != '\\')

#define CLS(c)                                                                 \
	((IS_TCHAR(c) ? C_TCHAR : 0) | (IS_VALUE(c) ? C_VALUE : 0) |           \
	 (IS_HEX(c) ? C_HEX : 0) | (IS_TARGET(c) ? C_TARGET : 0) |             \
	 (IS_REGNAME(c) ? C_REGNAME : 0) | (IS_QDTEXT(c) ? C_QDTEXT : 0))
#define R4(n)	CLS(n), CLS((n) + 1), CLS((n) + 2), CLS((n) + 3)
#define R16(n)	R4(n), R4((n) + 4), R4((n) + 8), R4((n) + 12)
#define R64(n)	R16(n), R16((n) + 16), R16((n) + 32), R16((n) + 48)
#define R256(n) R64(n), R64((n) + 64), R64((n) + 128), R64((n) + 192)

/* Built at compile time from the RFC grammar above. */
static const uint8_t cls[256] = {R256(0)};

#define ISCLS(c, k) (cls[(unsigned char)(c)] & (k))

static inline bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* ---- SWAR scanning ---- */

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
/* Non-zero iff some byte of x is below n (n <= 0x80). Borrows only start at
 * a byte that really is below n, so the test is exact for "any byte". */
static inline uint64_t has_less(uint64_t x, uint64_t n)
{
	return (x - ONES * n) & ~x & HIGHS;
}

static inline uint64_t load64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* On a little-endian machine the lowest flagged byte of a has_less() mask is
 * the first byte that really matched (false flags only sit above a true one),
 * so a failed word tells where it failed without a byte loop. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define FIRST_FLAGGED(m) ((size_t)__builtin_ctzll(m) / 8)
#endif

/* First byte at or after p that is not a field-value byte, or end. Values are
 * the bulk of a head, so test eight bytes per step: a word passes when it has
 * no CTL and no DEL; HTAB, the one valid CTL, is rare and stepped over. */
static const unsigned char *scan_value(const unsigned char *p,
				       const unsigned char *end)
{
	while (end - p >= 8) {
		uint64_t x = load64(p);
		uint64_t m = has_less(x, 0x20) | has_less(x ^ (ONES * 0x7f), 1);

		if (!m) {
			p += 8;
			continue;
		}
#ifdef FIRST_FLAGGED
		p += FIRST_FLAGGED(m);
#else
		while (ISCLS(*p, C_VALUE))
			p++;
#endif
		if (*p != '\t')
			return p;
		p++;
	}
	while (p < end && ISCLS(*p, C_VALUE))
		p++;
	return p;
}

/* Same for the request-target: bytes 0x21..0x7e. */
static const unsigned char *scan_target(const unsigned char *p,
					const unsigned char *end)
{
	while (end - p >= 8) {
		uint64_t x = load64(p);
		/* x + ONES sets the top bit of a 0x7f byte; a carry out of 0xff
		 * only follows a byte that already fails. */
		uint64_t m = has_less(x, 0x21) | ((x | (x + ONES)) & HIGHS);

		if (!m) {
			p += 8;
			continue;
		}
#ifdef FIRST_FLAGGED
		return p + FIRST_FLAGGED(m);
#else
		while (ISCLS(*p, C_TARGET))
			p++;
		return p;
#endif
	}
	while (p < end && ISCLS(*p, C_TARGET))
		p++;
	return p;
}

/* First non-token byte at or after p, or end. Field names are short, so
 * test eight table entries per branch instead of one. */
static const unsigned char *scan_token(const unsigned char *p,
				       const unsigned char *end)
{
	while (end - p >= 8 &&
	       (cls[p[0]] & cls[p[1]] & cls[p[2]] & cls[p[3]] & cls[p[4]] &
		cls[p[5]] & cls[p[6]] & cls[p[7]] & C_TCHAR))
		p += 8;
	while (p < end && ISCLS(*p, C_TCHAR))
		p++;
	return p;
}

/* ---- small helpers ---- */

/* name (any case, token chars only) equals lit (lower case letters, '-').
 * OR-ing 0x20 folds only A-Z onto a-z among token chars. */
static inline bool name_is(const unsigned char *s, const char *lit, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((s[i] | 0x20) != (unsigned char)lit[i])
			return false;
	return true;
}

static inline bool ci_eq(const unsigned char *a, size_t an, const char *b,
			 size_t bn)
{
	return an == bn && core_strncaseeq((const char *)a, b, an) == 0;
}

static inline http_str mkstr(const unsigned char *p, size_t n)
{
	return (http_str){(const char *)p, (uint32_t)n};
}

/* Iterate over the elements of a comma-separated list (RFC 9110 §5.6.1),
 * trimming OWS. Returns false at the end. Empty elements are returned as
 * such (len 0); callers decide whether they are allowed. */
struct list_it {
	const unsigned char *p, *end;
	bool done;
};

static bool list_next(struct list_it *it, const unsigned char **e, size_t *elen)
{
	if (it->done)
		return false;
	const unsigned char *s = it->p, *c = s;

	while (c < it->end && *c != ',')
		c++;
	it->done = c == it->end;
	it->p = c + !it->done;
	while (s < c && is_ows(*s))
		s++;
	while (c > s && is_ows(c[-1]))
		c--;
	*e = s;
	*elen = (size_t)(c - s);
	return true;
}

/* ---- limits ---- */

struct lims {
	size_t head, headers, target;
};

static void get_limits(const http1_limits *lim, struct lims *l)
{
	l->head = lim && lim->max_head_bytes ? lim->max_head_bytes
					     : HTTP1_DEFAULT_MAX_HEAD_BYTES;
	/* head_len is returned as an int */
	if (l->head > INT_MAX)
		l->head = INT_MAX;
	l->headers = lim && lim->max_headers ? lim->max_headers
					     : HTTP1_DEFAULT_MAX_HEADERS;
	if (l->headers > HTTP1_MAX_HEADERS)
		l->headers = HTTP1_MAX_HEADERS;
	l->target = lim && lim->max_target ? lim->max_target : l->head;
}

/* ---- field semantics ----
 * Accumulated while the fields are parsed, checked when the head is done. */

enum {
	F_HAS_CL = 1 << 0,
	F_HAS_TE = 1 << 1,
	F_TE_LAST_CHUNKED = 1 << 2,
	F_TE_OTHER = 1 << 3, /* a coding other than chunked */
	F_CONN_CLOSE = 1 << 4,
	F_CONN_KEEP = 1 << 5,
	F_CONN_UPGRADE = 1 << 6,
	F_HAS_UPGRADE = 1 << 7,
	F_EXPECT_100 = 1 << 8,
	F_TE_TRAILERS = 1 << 9,
	F_CL_LIST = 1 << 10,  /* Content-Length more than once (same value) */
	F_HAS_DATE = 1 << 11, /* responses: a Date field */
};

struct fstate {
	unsigned flags;
	unsigned hosts;
	uint64_t cl;
	http_str host;
};

/* Content-Length = 1#DIGIT (RFC 9110 §8.6): a list of identical values is
 * the same length (collapse), anything else is an error. No sign, no space
 * inside a number, no empty element, no overflow past INT64_MAX. */
static int field_content_length(struct fstate *fs, const unsigned char *v,
				size_t n)
{
	struct list_it it = {v, v + n, false};
	const unsigned char *e;
	size_t elen;

	while (list_next(&it, &e, &elen)) {
		uint64_t x = 0;

		if (elen == 0)
			return HTTP1_E_BAD_CONTENT_LENGTH;
		for (size_t i = 0; i < elen; i++) {
			unsigned d = (unsigned)e[i] - '0';

			if (d > 9 || x > ((uint64_t)INT64_MAX - d) / 10)
				return HTTP1_E_BAD_CONTENT_LENGTH;
			x = x * 10 + d;
		}
		if (fs->flags & F_HAS_CL) {
			if (fs->cl != x)
				return HTTP1_E_BAD_CONTENT_LENGTH;
			fs->flags |= F_CL_LIST;
		}
		fs->cl = x;
		fs->flags |= F_HAS_CL;
	}
	return 0;
}

/* Skip a token; returns its end (== s when there is none). */
static inline const unsigned char *skip_token(const unsigned char *s,
					      const unsigned char *end)
{
	while (s < end && ISCLS(*s, C_TCHAR))
		s++;
	return s;
}

/* quoted-string starting at s ('"'); returns the byte after the closing
 * quote, or NULL when malformed. */
static const unsigned char *skip_quoted(const unsigned char *s,
					const unsigned char *end)
{
	for (s++; s < end; s++) {
		if (*s == '"')
			return s + 1;
		if (*s == '\\') {
			if (++s == end || !ISCLS(*s, C_VALUE))
				return NULL;
		} else if (!ISCLS(*s, C_QDTEXT)) {
			return NULL;
		}
	}
	return NULL;
}

/* Transfer-Encoding = #transfer-coding, transfer-coding = token *( OWS ";"
 * OWS token "=" ( token / quoted-string ) ) (RFC 9112 §7, RFC 9110 §10.1.4).
 * Several fields form one list, so the state carries over between them.
 * Empty elements are rejected: parsers that skip them and parsers that do
 * not disagree about ",chunked", which is what smuggling feeds on. The list
 * is split at every comma, so a quoted parameter holding one is refused
 * too; no real coding has such a parameter. */
static int field_transfer_encoding(struct fstate *fs, const unsigned char *v,
				   size_t n)
{
	struct list_it it = {v, v + n, false};
	const unsigned char *e;
	size_t elen;

	fs->flags |= F_HAS_TE;
	while (list_next(&it, &e, &elen)) {
		const unsigned char *end = e + elen, *s = skip_token(e, end);
		bool params = false;

		if (s == e)
			return HTTP1_E_BAD_TRANSFER_ENCODING;
		bool chunked = ci_eq(e, (size_t)(s - e), "chunked", 7);

		while (s < end) {
			while (s < end && is_ows(*s))
				s++;
			if (s == end || *s != ';')
				return HTTP1_E_BAD_TRANSFER_ENCODING;
			s++;
			while (s < end && is_ows(*s))
				s++;
			const unsigned char *k = s;

			s = skip_token(s, end);
			if (s == k || s == end || *s != '=')
				return HTTP1_E_BAD_TRANSFER_ENCODING;
			s++;
			if (s < end && *s == '"') {
				s = skip_quoted(s, end);
				if (!s)
					return HTTP1_E_BAD_TRANSFER_ENCODING;
			} else {
				k = s;
				s = skip_token(s, end);
				if (s == k)
					return HTTP1_E_BAD_TRANSFER_ENCODING;
			}
			params = true;
		}
		if (chunked) {
			/* chunked once, and it takes no parameters */
			if ((fs->flags & F_TE_LAST_CHUNKED) || params)
				return HTTP1_E_BAD_TRANSFER_ENCODING;
			fs->flags |= F_TE_LAST_CHUNKED;
		} else {
			/* chunked applied before another coding: RFC 9112
			 * §6.3 - the length cannot be determined. */
			if (fs->flags & F_TE_LAST_CHUNKED)
				return HTTP1_E_BAD_TRANSFER_ENCODING;
			fs->flags |= F_TE_OTHER;
		}
	}
	return 0;
}

/* Connection = #connection-option; only close, keep-alive and upgrade
 * matter here (http1_is_hop_by_hop deals with the rest). */
static void field_connection(struct fstate *fs, const unsigned char *v,
			     size_t n)
{
	struct list_it it = {v, v + n, false};
	const unsigned char *e;
	size_t elen;

	while (list_next(&it, &e, &elen)) {
		if (ci_eq(e, elen, "close", 5))
			fs->flags |= F_CONN_CLOSE;
		else if (ci_eq(e, elen, "keep-alive", 10))
			fs->flags |= F_CONN_KEEP;
		else if (ci_eq(e, elen, "upgrade", 7))
			fs->flags |= F_CONN_UPGRADE;
	}
}

/* TE = #( t-codings ); "trailers" may carry parameters ("trailers;q=1"). */
static void field_te(struct fstate *fs, const unsigned char *v, size_t n)
{
	struct list_it it = {v, v + n, false};
	const unsigned char *e;
	size_t elen;

	while (list_next(&it, &e, &elen))
		if (ci_eq(e, (size_t)(skip_token(e, e + elen) - e), "trailers",
			  8))
			fs->flags |= F_TE_TRAILERS;
}

/* host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2). uri-host is
 * an IP-literal (IPv6 only: IPvFuture has no use here) or a reg-name, which
 * covers IPv4. The port, when present, is 1-5 digits up to 65535. */
static bool host_valid(const unsigned char *s, size_t n, bool need_port)
{
	const unsigned char *end = s + n, *h = s;

	if (n == 0)
		return false;
	if (*s == '[') {
		char tmp[INET6_ADDRSTRLEN];
		struct in6_addr a;
		const unsigned char *c = memchr(s, ']', n);

		if (!c || (size_t)(c - s - 1) >= sizeof(tmp) || c == s + 1)
			return false;
		for (h = s + 1; h < c; h++)
			if (!ISCLS(*h, C_HEX) && *h != ':' && *h != '.')
				return false;
		memcpy(tmp, s + 1, (size_t)(c - s - 1));
		tmp[c - s - 1] = '\0';
		if (inet_pton(AF_INET6, tmp, &a) != 1)
			return false;
		h = c + 1;
	} else {
		while (h < end && ISCLS(*h, C_REGNAME)) {
			if (*h == '%') {
				if (end - h < 3 || !ISCLS(h[1], C_HEX) ||
				    !ISCLS(h[2], C_HEX))
					return false;
				h += 2;
			}
			h++;
		}
		if (h == s)
			return false;
	}
	if (h == end)
		return !need_port;
	if (*h != ':' || end - h < 2 || end - h > 6)
		return false;
	unsigned port = 0;

	for (h++; h < end; h++) {
		if (!IS_DIG(*h))
			return false;
		port = port * 10 + (unsigned)(*h - '0');
	}
	return port <= 65535;
}

/* Host and absolute-form authority name the same origin: equal ignoring case
 * once the scheme's default port is dropped from either. */
static bool authority_eq(http_str a, http_str b, bool https)
{
	const char *dp = https ? ":443" : ":80";
	size_t dl = https ? 4 : 3;

	if (a.len > dl && memcmp(a.p + a.len - dl, dp, dl) == 0)
		a.len -= (uint32_t)dl;
	if (b.len > dl && memcmp(b.p + b.len - dl, dp, dl) == 0)
		b.len -= (uint32_t)dl;
	return a.len == b.len && core_strncaseeq(a.p, b.p, a.len) == 0;
}

/* Act on a field that matters for framing or connection handling. The
 * dispatch on length keeps the common, uninteresting fields to one switch. */
static int field_seen(struct fstate *fs, const unsigned char *nm, size_t nl,
		      const unsigned char *v, size_t vl, bool request)
{
	switch (nl) {
	case 2:
		if (request && name_is(nm, "te", 2))
			field_te(fs, v, vl);
		break;
	case 4:
		if (!request) {
			if (name_is(nm, "date", 4))
				fs->flags |= F_HAS_DATE;
		} else if (name_is(nm, "host", 4)) {
			if (++fs->hosts > 1)
				return HTTP1_E_DUPLICATE_HOST;
			if (!host_valid(v, vl, false))
				return HTTP1_E_BAD_HOST;
			fs->host = mkstr(v, vl);
		}
		break;
	case 6:
		if (request && name_is(nm, "expect", 6) &&
		    ci_eq(v, vl, "100-continue", 12))
			fs->flags |= F_EXPECT_100;
		break;
	case 7:
		if (name_is(nm, "upgrade", 7) && vl > 0)
			fs->flags |= F_HAS_UPGRADE;
		break;
	case 10:
		if (name_is(nm, "connection", 10))
			field_connection(fs, v, vl);
		break;
	case 14:
		if (name_is(nm, "content-length", 14))
			return field_content_length(fs, v, vl);
		break;
	case 17:
		if (name_is(nm, "transfer-encoding", 17))
			return field_transfer_encoding(fs, v, vl);
		break;
	}
	return 0;
}

/* ---- field lines ----
 * Parses field lines from *pp up to and including the empty line.
 * Returns 1 when the head is complete (*pp past the empty line), 0 when more
 * bytes are needed, or a negative error. */
static int parse_fields(const unsigned char **pp, const unsigned char *end,
			http1_header *hdrs, uint32_t *nh, size_t max,
			struct fstate *fs, bool request)
{
	const unsigned char *p = *pp;
	uint32_t n = 0;
	int rc;

	for (;;) {
		if (p == end)
			goto more;
		unsigned char c = *p;

		if (c == '\r') {
			if (p + 1 == end)
				goto more;
			if (p[1] != '\n')
				return HTTP1_E_BARE_CR;
			*pp = p + 2;
			*nh = n;
			return 1;
		}
		if (c == '\n')
			return HTTP1_E_BARE_LF;
		/* Whitespace at the start of a line is obs-fold, or, right
		 * after the start line, a smuggling attempt (RFC 9112 §2.2). */
		if (is_ows(c))
			return HTTP1_E_OBS_FOLD;

		const unsigned char *name = p;

		p = scan_token(p, end);
		if (p == end)
			goto more;
		if (*p != ':')
			return is_ows(*p) && p != name
				   ? HTTP1_E_SPACE_BEFORE_COLON
				   : HTTP1_E_BAD_HEADER_NAME;
		if (p == name)
			return HTTP1_E_BAD_HEADER_NAME;
		size_t nl = (size_t)(p - name);

		p++;
		while (p < end && is_ows(*p))
			p++;
		const unsigned char *v = p;

		p = scan_value(p, end);
		if (p == end)
			goto more;
		if (*p == '\r') {
			if (p + 1 == end)
				goto more;
			if (p[1] != '\n')
				return HTTP1_E_BARE_CR;
		} else {
			return *p == '\n' ? HTTP1_E_BARE_LF
					  : HTTP1_E_BAD_HEADER_VALUE;
		}
		const unsigned char *ve = p;

		while (ve > v && is_ows(ve[-1]))
			ve--;
		p += 2;
		/* Judge the field once the next line shows it is not folded,
		 * so the error does not depend on where the bytes were cut. */
		if (p == end)
			goto more;
		if (is_ows(*p))
			return HTTP1_E_OBS_FOLD;
		if (n == max)
			return HTTP1_E_TOO_MANY_HEADERS;
		hdrs[n].name = mkstr(name, nl);
		hdrs[n].value = mkstr(v, (size_t)(ve - v));
		n++;
		rc = field_seen(fs, name, nl, v, (size_t)(ve - v), request);
		if (rc < 0)
			return rc;
	}
more:
	*nh = n;
	return 0;
}

/* ---- versions ----
 * "HTTP/1.1" or "HTTP/1.0". With fewer than 8 bytes available, a prefix that
 * can still become a version returns 0 (more), otherwise an error. Returns 1
 * with *minor set when complete. */
static int parse_version(const unsigned char *p, const unsigned char *end,
			 uint8_t *minor)
{
	static const char pat[] = "HTTP/1.1";

	if (end - p >= 8) {
		uint64_t x = load64(p), want;

		memcpy(&want, pat, 8);
		if (LIKELY(x == want)) {
			*minor = 1;
			return 1;
		}
	}
	size_t avail = (size_t)(end - p) < 8 ? (size_t)(end - p) : 8;

	for (size_t i = 0; i < avail; i++) {
		bool ok = i < 5	   ? p[i] == (unsigned char)pat[i]
			  : i == 6 ? p[i] == '.'
				   : IS_DIG(p[i]);
		if (!ok)
			return HTTP1_E_BAD_VERSION;
	}
	if (avail < 8)
		return 0;
	if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
		return HTTP1_E_VERSION_UNSUPPORTED;
	*minor = (uint8_t)(p[7] - '0');
	return 1;
}

static http1_method method_id(const unsigned char *m, size_t n)
{
	switch (n) {
	case 3:
		if (!memcmp(m, "GET", 3))
			return HTTP_M_GET;
		if (!memcmp(m, "PUT", 3))
			return HTTP_M_PUT;
		break;
	case 4:
		if (!memcmp(m, "HEAD", 4))
			return HTTP_M_HEAD;
		if (!memcmp(m, "POST", 4))
			return HTTP_M_POST;
		break;
	case 5:
		if (!memcmp(m, "TRACE", 5))
			return HTTP_M_TRACE;
		if (!memcmp(m, "PATCH", 5))
			return HTTP_M_PATCH;
		break;
	case 6:
		if (!memcmp(m, "DELETE", 6))
			return HTTP_M_DELETE;
		break;
	case 7:
		if (!memcmp(m, "CONNECT", 7))
			return HTTP_M_CONNECT;
		if (!memcmp(m, "OPTIONS", 7))
			return HTTP_M_OPTIONS;
		break;
	}
	return HTTP_M_OTHER;
}

/* The four request-target forms (RFC 9112 §3.2). For absolute-form, *auth is
 * set to the authority and *https to the scheme. */
static int check_target(const unsigned char *t, size_t n, http1_method m,
			http_str *auth, bool *https)
{
	if (m == HTTP_M_CONNECT)
		return host_valid(t, n, true) ? 0 : HTTP1_E_BAD_TARGET;
	if (t[0] == '/')
		return 0;
	if (n == 1 && t[0] == '*')
		return m == HTTP_M_OPTIONS ? 0 : HTTP1_E_BAD_TARGET;

	size_t sl;

	if (n > 7 && core_strncaseeq((const char *)t, "http://", 7) == 0) {
		sl = 7;
		*https = false;
	} else if (n > 8 &&
		   core_strncaseeq((const char *)t, "https://", 8) == 0) {
		sl = 8;
		*https = true;
	} else {
		return HTTP1_E_BAD_TARGET;
	}
	const unsigned char *a = t + sl, *e = a, *end = t + n;

	while (e < end && *e != '/' && *e != '?')
		e++;
	/* userinfo ('@') is not host[:port] and is refused by host_valid */
	if (!host_valid(a, (size_t)(e - a), false))
		return HTTP1_E_BAD_TARGET;
	*auth = mkstr(a, (size_t)(e - a));
	return 0;
}

static void conn_info(http1_conn_info *ci, const struct fstate *fs,
		      uint8_t minor)
{
	ci->keep_alive = minor == 1 ? !(fs->flags & F_CONN_CLOSE)
				    : (fs->flags & F_CONN_KEEP) &&
					  !(fs->flags & F_CONN_CLOSE);
	ci->upgrade =
	    (fs->flags & F_CONN_UPGRADE) && (fs->flags & F_HAS_UPGRADE);
	ci->expect_continue = fs->flags & F_EXPECT_100;
	ci->te_trailers = fs->flags & F_TE_TRAILERS;
}

/* ---- requests ---- */

#define MAX_LEADING_EMPTY_LINES 8

int http1_parse_request(const char *buf, size_t len, const http1_limits *lim,
			http1_request *req)
{
	struct lims l;
	struct fstate fs = {0};
	const unsigned char *start = (const unsigned char *)buf, *p = start;
	http_str auth = {NULL, 0};
	bool https = false;
	int rc;

	get_limits(lim, &l);
	const unsigned char *end = start + (len < l.head ? len : l.head);

	/* RFC 9112 §2.2: ignore a few empty lines before the request line */
	for (unsigned i = 0;; i++) {
		if (p == end)
			goto more;
		if (*p == '\n')
			return HTTP1_E_BARE_LF;
		if (*p != '\r')
			break;
		if (p + 1 == end)
			goto more;
		if (p[1] != '\n')
			return HTTP1_E_BARE_CR;
		if (i == MAX_LEADING_EMPTY_LINES)
			return HTTP1_E_BAD_REQUEST_LINE;
		p += 2;
	}
	const unsigned char *line = p, *m = p;

	while (p < end && ISCLS(*p, C_TCHAR))
		p++;
	if (p == end)
		goto more;
	if (*p != ' ' || p == m)
		return p == m || *p == '\r' || *p == '\n'
			   ? HTTP1_E_BAD_REQUEST_LINE
			   : HTTP1_E_BAD_METHOD;
	req->method = mkstr(m, (size_t)(p - m));
	req->method_id = method_id(m, (size_t)(p - m));

	const unsigned char *t = ++p;

	p = scan_target(p, end);
	/* the length first: the answer must not depend on where the bytes
	 * were cut (a long target is 414 before and after its end arrives) */
	size_t tl = (size_t)(p - t);

	if (tl > l.target)
		return HTTP1_E_URI_TOO_LONG;
	if (p == end)
		goto more;
	if (*p != ' ' || p == t)
		return p == t || *p == '\r' || *p == '\n'
			   ? HTTP1_E_BAD_REQUEST_LINE
			   : HTTP1_E_BAD_TARGET;
	req->target = mkstr(t, tl);

	p++;
	rc = parse_version(p, end, &req->version_minor);
	if (rc <= 0) {
		if (rc < 0)
			return rc;
		goto more;
	}
	/* after the version, so that an HTTP/2 preface gets its 505 */
	rc = check_target((const unsigned char *)req->target.p, tl,
			  req->method_id, &auth, &https);
	if (rc < 0)
		return rc;
	p += 8;
	if (end - p < 2) {
		if (p < end && *p != '\r')
			return *p == '\n' ? HTTP1_E_BARE_LF
					  : HTTP1_E_BAD_VERSION;
		goto more;
	}
	if (p[0] != '\r')
		return p[0] == '\n' ? HTTP1_E_BARE_LF : HTTP1_E_BAD_VERSION;
	if (p[1] != '\n')
		return HTTP1_E_BARE_CR;
	p += 2;
	req->line_len = (uint32_t)(p - line);

	rc = parse_fields(&p, end, req->headers, &req->nheaders, l.headers, &fs,
			  true);
	if (rc <= 0) {
		if (rc < 0)
			return rc;
		goto more;
	}

	/* Cross-field rules, RFC 9112 §3.2 and §6.3. */
	if (req->version_minor == 1 && fs.hosts == 0)
		return HTTP1_E_MISSING_HOST;
	if (!fs.host.p) /* HTTP/1.0 without Host: empty, never NULL */
		fs.host = mkstr(t, 0);
	if (auth.p) {
		if (fs.hosts == 0)
			fs.host = auth;
		else if (!authority_eq(auth, fs.host, https))
			return HTTP1_E_BAD_HOST;
	}
	req->host = fs.host;
	req->content_length = 0;
	req->cl_list = fs.flags & F_CL_LIST;
	req->body = HTTP1_BODY_NONE;
	if (fs.flags & F_HAS_TE) {
		if (fs.flags & F_HAS_CL)
			return HTTP1_E_CL_AND_TE;
		if (req->version_minor == 0)
			return HTTP1_E_TE_IN_HTTP10;
		if (!(fs.flags & F_TE_LAST_CHUNKED))
			return HTTP1_E_BAD_TRANSFER_ENCODING;
		if (fs.flags & F_TE_OTHER)
			return HTTP1_E_UNSUPPORTED_TRANSFER_CODING;
		req->body = HTTP1_BODY_CHUNKED;
	} else if (fs.flags & F_HAS_CL) {
		req->body = HTTP1_BODY_LENGTH;
		req->content_length = fs.cl;
	}
	conn_info(&req->conn, &fs, req->version_minor);
	if (req->version_minor == 0) {
		/* RFC 9110 §7.8, §10.1.1: ignored in HTTP/1.0 requests */
		req->conn.upgrade = false;
		req->conn.expect_continue = false;
	}
	req->head_len = (uint32_t)(p - start);
	return (int)req->head_len;

more:
	/* Out of bytes: within the limits, wait for more. */
	if (len > l.head)
		return HTTP1_E_HEADERS_TOO_LARGE;
	return HTTP1_INCOMPLETE;
}

/* ---- responses ---- */

int http1_parse_response(const char *buf, size_t len, const http1_limits *lim,
			 http1_method req_method, http1_response *resp)
{
	struct lims l;
	struct fstate fs = {0};
	const unsigned char *start = (const unsigned char *)buf, *p = start;
	int rc;

	get_limits(lim, &l);
	const unsigned char *end = start + (len < l.head ? len : l.head);

	rc = parse_version(p, end, &resp->version_minor);
	if (rc <= 0) {
		if (rc < 0)
			return rc == HTTP1_E_BAD_VERSION
				   ? HTTP1_E_BAD_STATUS_LINE
				   : rc;
		goto more;
	}
	p += 8;
	/* SP 3DIGIT, then SP [reason] or, tolerated, CRLF straight away */
	for (int i = 0; i < 4; i++, p++) {
		if (p == end)
			goto more;
		if (i == 0 ? *p != ' ' : !IS_DIG(*p))
			return HTTP1_E_BAD_STATUS_LINE;
	}
	resp->status = (uint16_t)((p[-3] - '0') * 100 + (p[-2] - '0') * 10 +
				  (p[-1] - '0'));
	if (resp->status < 100 || resp->status > 599)
		return HTTP1_E_BAD_STATUS_LINE;
	if (p == end)
		goto more;
	const unsigned char *r = p;

	if (*p == ' ') {
		r = ++p;
		p = scan_value(p, end);
		if (p == end)
			goto more;
	}
	if (*p != '\r')
		return *p == '\n' ? HTTP1_E_BARE_LF : HTTP1_E_BAD_STATUS_LINE;
	if (p + 1 == end)
		goto more;
	if (p[1] != '\n')
		return HTTP1_E_BARE_CR;
	resp->reason = mkstr(r, (size_t)(p - r));
	p += 2;

	rc = parse_fields(&p, end, resp->headers, &resp->nheaders, l.headers,
			  &fs, false);
	if (rc <= 0) {
		if (rc < 0)
			return rc;
		goto more;
	}

	if (fs.flags & F_HAS_TE) {
		if (fs.flags & F_HAS_CL)
			return HTTP1_E_CL_AND_TE;
		/* RFC 9112 §6.1: HTTP/1.0 with TE has faulty framing */
		if (resp->version_minor == 0)
			return HTTP1_E_TE_IN_HTTP10;
	}
	resp->content_length = fs.cl;
	resp->cl_list = fs.flags & F_CL_LIST;
	resp->has_date = fs.flags & F_HAS_DATE;
	resp->te_other = fs.flags & F_TE_OTHER;
	unsigned st = resp->status;

	if (st < 200 || st == 204 || st == 304 || req_method == HTTP_M_HEAD ||
	    (req_method == HTTP_M_CONNECT && st < 300))
		resp->body = HTTP1_BODY_NONE;
	else if (fs.flags & F_HAS_TE)
		resp->body = fs.flags & F_TE_LAST_CHUNKED ? HTTP1_BODY_CHUNKED
							  : HTTP1_BODY_EOF;
	else if (fs.flags & F_HAS_CL)
		resp->body = HTTP1_BODY_LENGTH;
	else
		resp->body = HTTP1_BODY_EOF;
	conn_info(&resp->conn, &fs, resp->version_minor);
	if (resp->body == HTTP1_BODY_EOF)
		resp->conn.keep_alive = false;
	resp->conn.expect_continue = false;
	resp->conn.te_trailers = false;
	resp->head_len = (uint32_t)(p - start);
	return (int)resp->head_len;

more:
	if (len > l.head)
		return HTTP1_E_HEADERS_TOO_LARGE;
	return HTTP1_INCOMPLETE;
}

/* ---- errors ---- */

static const struct {
	int status;
	const char *reason;
} errs[] = {
    [-HTTP1_E_BAD_REQUEST_LINE] = {400, "invalid request line"},
    [-HTTP1_E_BAD_METHOD] = {400, "invalid method"},
    [-HTTP1_E_BAD_TARGET] = {400, "invalid request target"},
    [-HTTP1_E_BAD_VERSION] = {400, "invalid HTTP version"},
    [-HTTP1_E_VERSION_UNSUPPORTED] = {505, "HTTP version not supported"},
    [-HTTP1_E_BAD_HEADER_NAME] = {400, "invalid header name"},
    [-HTTP1_E_BAD_HEADER_VALUE] = {400, "invalid header value"},
    [-HTTP1_E_OBS_FOLD] = {400, "obsolete line folding"},
    [-HTTP1_E_SPACE_BEFORE_COLON] = {400, "whitespace before colon"},
    [-HTTP1_E_BARE_CR] = {400, "bare CR"},
    [-HTTP1_E_BARE_LF] = {400, "bare LF"},
    [-HTTP1_E_HEADERS_TOO_LARGE] = {431, "header section too large"},
    [-HTTP1_E_TOO_MANY_HEADERS] = {431, "too many header fields"},
    [-HTTP1_E_URI_TOO_LONG] = {414, "request target too long"},
    [-HTTP1_E_BAD_CONTENT_LENGTH] = {400, "invalid Content-Length"},
    [-HTTP1_E_CL_AND_TE] = {400, "both Content-Length and Transfer-Encoding"},
    [-HTTP1_E_BAD_TRANSFER_ENCODING] = {400, "invalid Transfer-Encoding"},
    [-HTTP1_E_UNSUPPORTED_TRANSFER_CODING] = {501,
					      "unsupported transfer coding"},
    [-HTTP1_E_TE_IN_HTTP10] = {400, "Transfer-Encoding in HTTP/1.0"},
    [-HTTP1_E_MISSING_HOST] = {400, "missing Host"},
    [-HTTP1_E_DUPLICATE_HOST] = {400, "duplicate Host"},
    [-HTTP1_E_BAD_HOST] = {400, "invalid Host"},
    [-HTTP1_E_BAD_STATUS_LINE] = {502, "invalid status line"},
    [-HTTP1_E_BAD_CHUNK_SIZE] = {400, "invalid chunk size"},
    [-HTTP1_E_BAD_CHUNK_EXT] = {400, "invalid chunk extension"},
    [-HTTP1_E_BAD_CHUNK_CRLF] = {400, "chunk data not followed by CRLF"},
    [-HTTP1_E_BAD_TRAILER] = {400, "invalid trailer section"},
    [-HTTP1_E_CHUNK_TOO_LARGE] = {400, "chunk too large"},
};

_Static_assert(ARRAY_LEN(errs) == -HTTP1_E_LAST, "one entry per error code");

int http1_err_status(int err)
{
	if (err < 0 && err > HTTP1_E_LAST)
		return errs[-err].status;
	return 400;
}

const char *http1_err_reason(int err)
{
	if (err < 0 && err > HTTP1_E_LAST)
		return errs[-err].reason;
	return err == 0 ? "incomplete" : "invalid message";
}

/* ---- header helpers ---- */

size_t http1_host_len(http_str host)
{
	const char *end;
	if (host.len && host.p[0] == '[')
		end = memchr(host.p, ']', host.len);
	else
		end = memchr(host.p, ':', host.len);
	if (!end)
		return host.len;
	return (size_t)(end - host.p) + (host.p[0] == '[');
}

const http1_header *http1_find_header(const http1_header *h, uint32_t n,
				      const char *name)
{
	size_t nl = strlen(name);

	for (uint32_t i = 0; i < n; i++)
		if (h[i].name.len == nl &&
		    core_strncaseeq(h[i].name.p, name, nl) == 0)
			return &h[i];
	return NULL;
}

bool http1_is_hop_by_hop(const http1_header *all, uint32_t n,
			 const http1_header *h)
{
	static const struct {
		const char *s;
		uint32_t n;
	} fixed[] = {
	    {"connection", 10}, {"keep-alive", 10}, {"proxy-connection", 16},
	    {"te", 2},		{"trailer", 7},	    {"transfer-encoding", 17},
	    {"upgrade", 7},
	};
	const unsigned char *hn = (const unsigned char *)h->name.p;

	for (size_t i = 0; i < ARRAY_LEN(fixed); i++)
		if (h->name.len == fixed[i].n &&
		    core_strncaseeq(h->name.p, fixed[i].s, fixed[i].n) == 0)
			return true;
	for (uint32_t i = 0; i < n; i++) {
		if (all[i].name.len != 10 ||
		    core_strncaseeq(all[i].name.p, "connection", 10) != 0)
			continue;
		const unsigned char *v = (const unsigned char *)all[i].value.p;
		struct list_it it = {v, v + all[i].value.len, false};
		const unsigned char *e;
		size_t elen;

		while (list_next(&it, &e, &elen))
			if (elen == h->name.len &&
			    core_strncaseeq((const char *)e, (const char *)hn,
					    elen) == 0)
				return true;
	}
	return false;
}

bool http1_method_idempotent(http1_method m)
{
	switch (m) {
	case HTTP_M_GET:
	case HTTP_M_HEAD:
	case HTTP_M_OPTIONS:
	case HTTP_M_TRACE:
	case HTTP_M_PUT:
	case HTTP_M_DELETE:
		return true;
	default:
		return false;
	}
}

/* ---- chunked bodies ----
 * chunked-body = *chunk last-chunk trailer-section CRLF (RFC 9112 §7.1),
 * walked one byte at a time outside chunk data so that any split of the input
 * gives the same result. */

enum {
	CS_SIZE0,	 /* first hex digit of a size line */
	CS_SIZE,	 /* more hex digits */
	CS_BWS_SEMI,	 /* BWS before ';' */
	CS_EXT_NAME0,	 /* after ';': BWS then ext-name */
	CS_EXT_NAME,	 /* in ext-name */
	CS_EXT_NAME_BWS, /* BWS after ext-name: '=' or ';' must follow */
	CS_EXT_VAL0,	 /* after '=': BWS then token or quoted-string */
	CS_EXT_TOKEN,	 /* in a token ext-val */
	CS_EXT_QS,	 /* in a quoted-string ext-val */
	CS_EXT_QS_ESC,	 /* after '\' in a quoted-string */
	CS_EXT_QS_END,	 /* after the closing quote */
	CS_SIZE_LF,	 /* CR of the size line seen */
	CS_DATA,
	CS_DATA_CR,
	CS_DATA_LF,
	CS_TRL0, /* start of a trailer line or of the final CRLF */
	CS_TRL_NAME,
	CS_TRL_VALUE,
	CS_TRL_LF,
	CS_END_LF,
	CS_DONE,
	CS_ERROR,
};

#define CF_IN_EXT 1 /* the size line has extensions: errors are BAD_EXT */

#define CHUNK_MAX_SIZE	   (1ULL << 62)
#define CHUNK_MAX_DIGITS   16
#define CHUNK_MAX_EXT	   4096
#define CHUNK_MAX_TRAILERS 16384

static ssize_t chunk_fail(http1_chunked *c, int err)
{
	c->state = CS_ERROR;
	c->err = (int8_t)err;
	return err;
}

/* End of a size line: the chunk's data, or the trailer section. */
static inline uint8_t chunk_after_size(http1_chunked *c)
{
	if (c->remaining == 0)
		return CS_TRL0;
	return CS_DATA;
}

ssize_t http1_chunked_feed(http1_chunked *c, const char *buf, size_t len,
			   bool *done)
{
	const unsigned char *p = (const unsigned char *)buf, *end = p + len;

	*done = false;
	if (c->state == CS_ERROR)
		return c->err;
	while (p < end) {
		unsigned char ch = *p;

		switch (c->state) {
		case CS_DATA: {
			size_t n = (size_t)(end - p);

			if (n > c->remaining)
				n = (size_t)c->remaining;
			p += n;
			c->remaining -= n;
			if (c->remaining == 0)
				c->state = CS_DATA_CR;
			continue;
		}
		case CS_DATA_CR:
			if (ch != '\r')
				return chunk_fail(c, HTTP1_E_BAD_CHUNK_CRLF);
			c->state = CS_DATA_LF;
			break;
		case CS_DATA_LF:
			if (ch != '\n')
				return chunk_fail(c, HTTP1_E_BAD_CHUNK_CRLF);
			c->state = CS_SIZE0;
			break;
		case CS_SIZE0:
			if (!ISCLS(ch, C_HEX))
				return chunk_fail(
				    c, ch == '\n' ? HTTP1_E_BARE_LF
						  : HTTP1_E_BAD_CHUNK_SIZE);
			c->remaining = 0;
			c->ndigits = 0;
			c->ext_len = 0;
			c->flags = 0;
			c->state = CS_SIZE;
			__attribute__((fallthrough));
		case CS_SIZE:
			if (ISCLS(ch, C_HEX)) {
				unsigned d = IS_DIG(ch)
						 ? ch - '0'
						 : (ch | 0x20) - 'a' + 10;

				if (++c->ndigits > CHUNK_MAX_DIGITS)
					return chunk_fail(
					    c, HTTP1_E_BAD_CHUNK_SIZE);
				c->remaining = c->remaining << 4 | d;
				if (c->remaining > CHUNK_MAX_SIZE)
					return chunk_fail(
					    c, HTTP1_E_CHUNK_TOO_LARGE);
				break;
			}
			if (ch == '\r') {
				c->state = CS_SIZE_LF;
				break;
			}
			if (ch == ';') {
				c->flags |= CF_IN_EXT;
				c->state = CS_EXT_NAME0;
			} else if (is_ows(ch)) {
				c->state = CS_BWS_SEMI;
			} else {
				return chunk_fail(
				    c, ch == '\n' ? HTTP1_E_BARE_LF
						  : HTTP1_E_BAD_CHUNK_SIZE);
			}
			goto ext_count;
		case CS_SIZE_LF:
			if (ch != '\n')
				return chunk_fail(c, HTTP1_E_BARE_CR);
			if (c->remaining) {
				c->total += c->remaining;
				if (c->total < c->remaining) /* saturate */
					c->total = UINT64_MAX;
			}
			c->state = chunk_after_size(c);
			if (c->state == CS_TRL0)
				c->trailer_len = 0;
			break;
		case CS_BWS_SEMI:
			if (ch == ';') {
				c->flags |= CF_IN_EXT;
				c->state = CS_EXT_NAME0;
			} else if (!is_ows(ch)) {
				return chunk_fail(c,
						  c->flags & CF_IN_EXT
						      ? HTTP1_E_BAD_CHUNK_EXT
						      : HTTP1_E_BAD_CHUNK_SIZE);
			}
			goto ext_count;
		case CS_EXT_NAME0:
			if (ISCLS(ch, C_TCHAR))
				c->state = CS_EXT_NAME;
			else if (!is_ows(ch))
				goto ext_bad;
			goto ext_count;
		case CS_EXT_NAME:
		case CS_EXT_TOKEN:
		case CS_EXT_QS_END:
			if (ISCLS(ch, C_TCHAR) && c->state != CS_EXT_QS_END)
				goto ext_count;
			if (ch == '\r') {
				c->state = CS_SIZE_LF;
				break;
			}
			if (ch == ';')
				c->state = CS_EXT_NAME0;
			else if (ch == '=' && c->state == CS_EXT_NAME)
				c->state = CS_EXT_VAL0;
			else if (is_ows(ch))
				c->state = c->state == CS_EXT_NAME
					       ? CS_EXT_NAME_BWS
					       : CS_BWS_SEMI;
			else
				goto ext_bad;
			goto ext_count;
		case CS_EXT_NAME_BWS:
			if (ch == '=')
				c->state = CS_EXT_VAL0;
			else if (ch == ';')
				c->state = CS_EXT_NAME0;
			else if (!is_ows(ch))
				goto ext_bad;
			goto ext_count;
		case CS_EXT_VAL0:
			if (ISCLS(ch, C_TCHAR))
				c->state = CS_EXT_TOKEN;
			else if (ch == '"')
				c->state = CS_EXT_QS;
			else if (!is_ows(ch))
				goto ext_bad;
			goto ext_count;
		case CS_EXT_QS:
			if (ch == '"')
				c->state = CS_EXT_QS_END;
			else if (ch == '\\')
				c->state = CS_EXT_QS_ESC;
			else if (!ISCLS(ch, C_QDTEXT))
				goto ext_bad;
			goto ext_count;
		case CS_EXT_QS_ESC:
			if (!ISCLS(ch, C_VALUE))
				goto ext_bad;
			c->state = CS_EXT_QS;
			goto ext_count;
		case CS_TRL0:
			if (ch == '\r') {
				c->state = CS_END_LF;
			} else if (ISCLS(ch, C_TCHAR)) {
				c->state = CS_TRL_NAME;
			} else {
				return chunk_fail(c, ch == '\n'
							 ? HTTP1_E_BARE_LF
							 : HTTP1_E_BAD_TRAILER);
			}
			goto trl_count;
		case CS_TRL_NAME:
			if (ch == ':')
				c->state = CS_TRL_VALUE;
			else if (!ISCLS(ch, C_TCHAR))
				return chunk_fail(c, HTTP1_E_BAD_TRAILER);
			goto trl_count;
		case CS_TRL_VALUE:
			if (ch == '\r')
				c->state = CS_TRL_LF;
			else if (ch == '\n')
				return chunk_fail(c, HTTP1_E_BARE_LF);
			else if (!ISCLS(ch, C_VALUE))
				return chunk_fail(c, HTTP1_E_BAD_TRAILER);
			goto trl_count;
		case CS_TRL_LF:
			if (ch != '\n')
				return chunk_fail(c, HTTP1_E_BARE_CR);
			c->state = CS_TRL0;
			goto trl_count;
		case CS_END_LF:
			if (ch != '\n')
				return chunk_fail(c, HTTP1_E_BARE_CR);
			c->state = CS_DONE;
			p++;
			__attribute__((fallthrough));
		case CS_DONE:
			*done = true;
			return (ssize_t)(p - (const unsigned char *)buf);
		default:
			return chunk_fail(c, HTTP1_E_BAD_CHUNK_SIZE);
		}
		p++;
		continue;
	ext_bad:
		return chunk_fail(c, ch == '\n' ? HTTP1_E_BARE_LF
						: HTTP1_E_BAD_CHUNK_EXT);
	ext_count:
		if (++c->ext_len > CHUNK_MAX_EXT)
			return chunk_fail(c, HTTP1_E_BAD_CHUNK_EXT);
		p++;
		continue;
	trl_count:
		if (++c->trailer_len > CHUNK_MAX_TRAILERS)
			return chunk_fail(c, HTTP1_E_BAD_TRAILER);
		p++;
	}
	*done = c->state == CS_DONE;
	return (ssize_t)len;
}

uint64_t http1_chunked_data_next(const http1_chunked *c)
{
	return c->state == CS_DATA ? c->remaining : 0;
}

bool http1_chunked_in_trailers(const http1_chunked *c)
{
	return c->state >= CS_TRL0 && c->state <= CS_END_LF;
}

uint32_t http1_chunked_trailer_bytes(const http1_chunked *c)
{
	/* trailer_len counts every byte from CS_TRL0 on except the last LF,
	 * which moves the walker to CS_DONE. */
	if (http1_chunked_in_trailers(c))
		return c->trailer_len;
	return c->state == CS_DONE ? c->trailer_len + 1 : 0;
}

size_t http1_trailers_filter(char *p, size_t n,
			     bool (*keep)(const char *name, size_t len))
{
	size_t r = 0, w = 0;
	while (r < n) {
		const char *eol = memchr(p + r, '\n', n - r);
		size_t line = eol ? (size_t)(eol - (p + r)) + 1 : n - r;
		const char *colon = memchr(p + r, ':', line);
		/* The empty line (or, defensively, a line without a colon)
		 * is kept as it is. */
		if (!colon || keep(p + r, (size_t)(colon - (p + r)))) {
			if (w != r)
				memmove(p + w, p + r, line);
			w += line;
		}
		r += line;
	}
	return w;
}

int http1_body_peek(http1_body kind, uint64_t content_length, const char *p,
		    size_t n, uint64_t limit,
		    void (*emit)(void *arg, const char *p, size_t n), void *arg,
		    bool *complete, uint64_t *data)
{
	*complete = false;
	*data = 0;
	if (kind == HTTP1_BODY_NONE) {
		*complete = true;
		return 0;
	}
	if (kind != HTTP1_BODY_CHUNKED) {
		*data = n < content_length ? n : content_length;
		*complete = n >= content_length;
		if (emit && *data)
			emit(arg, p, (size_t)(*data < limit ? *data : limit));
		return 0;
	}
	http1_chunked ch = {0};
	uint64_t fed = 0;
	size_t r = 0;
	while (r < n && !*complete) {
		/* Payload runs are taken whole, framing a byte at a time
		 * (it is short, and the walker validates each byte). */
		uint64_t dn = http1_chunked_data_next(&ch);
		size_t take = dn ? (n - r < dn ? n - r : (size_t)dn) : 1;
		ssize_t k = http1_chunked_feed(&ch, p + r, take, complete);
		if (k < 0)
			return (int)k;
		if (k == 0)
			break;
		if (dn) {
			*data += (uint64_t)k;
			if (emit && fed < limit) {
				uint64_t f = (uint64_t)k < limit - fed
						 ? (uint64_t)k
						 : limit - fed;
				emit(arg, p + r, (size_t)f);
				fed += f;
			}
		}
		r += (size_t)k;
	}
	return 0;
}
