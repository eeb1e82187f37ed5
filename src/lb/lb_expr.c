/* lb_expr.c - conditions of load balancer rules: compiler and evaluator.
 * See lb_expr.h for the language. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "lb/lb_expr.h"

#include <ctype.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_values.h"
#include "core/core_arena.h"
#include "core/core_util.h"
#include "geo/geo.h"

/* Nesting of parentheses and "not" (the parser recurses on them). */
#define MAX_DEPTH 64
/* A regex gets this many backtracking steps and this much heap (KiB)
 * per test; beyond, the test is false. */
#define RE_MATCH_LIMIT 200000
#define RE_HEAP_LIMIT  4096

typedef enum vtype { T_BYTES, T_INT, T_IP, T_BOOL } vtype;

static const struct field_def {
	const char *name;
	lb_expr_field field;
	vtype type;
} field_defs[] = {
    {"ip.src", LB_F_IP_SRC, T_IP},
    {"ip.src.country", LB_F_COUNTRY, T_BYTES},
    {"ip.geoip.country", LB_F_COUNTRY, T_BYTES},
    {"cf.load_balancer.name", LB_F_LB_NAME, T_BYTES},
    {"cf.load_balancer.region", LB_F_LB_REGION, T_BYTES},
    {"http.host", LB_F_HOST, T_BYTES},
    {"http.request.method", LB_F_METHOD, T_BYTES},
    {"http.request.uri", LB_F_URI, T_BYTES},
    {"http.request.uri.path", LB_F_PATH, T_BYTES},
    {"http.request.uri.query", LB_F_QUERY, T_BYTES},
    {"http.request.full_uri", LB_F_FULL_URI, T_BYTES},
    {"http.request.version", LB_F_VERSION, T_BYTES},
    {"http.user_agent", LB_F_USER_AGENT, T_BYTES},
    {"http.referer", LB_F_REFERER, T_BYTES},
    {"http.cookie", LB_F_COOKIE, T_BYTES},
    {"http.request.headers", LB_F_HEADER, T_BYTES},
    {"ssl", LB_F_SSL, T_BOOL},
    {"dns.qry.name", LB_F_DNS_NAME, T_BYTES},
    {"dns.qry.name.len", LB_F_DNS_NAME_LEN, T_INT},
    {"dns.qry.type", LB_F_DNS_TYPE, T_INT},
    {"http.response.code", LB_F_RESPONSE_CODE, T_INT},
};

typedef enum op {
	OP_EQ,
	OP_NE,
	OP_LT,
	OP_LE,
	OP_GT,
	OP_GE,
	OP_CONTAINS,
	OP_MATCHES,
	OP_WILDCARD,
	OP_SWILDCARD,
	OP_IN,
	OP_STARTS,
	OP_ENDS,
} op;

typedef enum nkind {
	N_OR,
	N_XOR,
	N_AND,
	N_NOT,
	N_TEST,
	N_BOOL,
	N_TRUE,
	N_FALSE
} nkind;
typedef enum xform { X_NONE, X_LOWER, X_UPPER } xform;

typedef struct lit {
	const char *s; /* bytes */
	size_t len;
	int64_t lo, hi; /* integers: lo..hi (lo == hi for one) */
	cfg_cidr cidr;	/* IP */
} lit;

typedef struct node {
	nkind kind;
	struct node *a, *b; /* N_OR, N_XOR, N_AND: both; N_NOT: a */
	/* N_TEST */
	lb_expr_field field;
	vtype type;
	xform xf;
	const char *hname; /* http.request.headers["hname"] */
	size_t hlen;
	int32_t hindex; /* -1: any field of that name */
	op op;
	const lit *lits; /* one, or a set for OP_IN */
	size_t nlits;
	pcre2_code *re;
	pcre2_match_context *mctx; /* the limits of re */
} node;

struct lb_expr {
	node *root;
	uint32_t fields;
};

typedef struct parser {
	const char *s;
	size_t len, pos;
	core_arena *arena;
	lb_expr_error *err;
	bool failed;
	int depth;
	uint32_t fields;
	pcre2_general_context *gctx;
	pcre2_compile_context *cctx;
	pcre2_match_context *mctx;
	bool regex; /* the string being read is a `matches` pattern */
} parser;

/* ---- PCRE2 memory: the snapshot's arena ------------------------------ */

static void *re_alloc(PCRE2_SIZE n, void *arena)
{
	return core_arena_alloc(arena, n ? n : 1);
}

static void re_free(void *p, void *arena)
{
	(void)p; /* freed with the arena */
	(void)arena;
}

/* ---- errors and tokens ----------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void fail(parser *p, size_t at,
						       const char *fmt, ...)
{
	if (p->failed)
		return;
	p->failed = true;
	p->err->offset = at;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
	va_end(ap);
}

static void skip_ws(parser *p)
{
	while (p->pos < p->len &&
	       (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
		p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
		p->pos++;
}

static bool word_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '.';
}

/* The identifier at the cursor (after blanks), not consumed. */
static size_t peek_word(parser *p, const char **w)
{
	skip_ws(p);
	size_t e = p->pos;
	while (e < p->len && word_char(p->s[e]))
		e++;
	*w = p->s + p->pos;
	return e - p->pos;
}

static bool word_is(const char *w, size_t n, const char *kw)
{
	return strlen(kw) == n && !memcmp(w, kw, n);
}

/* Consume keyword kw when it is the next word. */
static bool accept_word(parser *p, const char *kw)
{
	const char *w;
	size_t n = peek_word(p, &w);
	if (!word_is(w, n, kw))
		return false;
	p->pos += n;
	return true;
}

/* Consume symbol sym when it comes next. */
static bool accept_sym(parser *p, const char *sym)
{
	skip_ws(p);
	size_t n = strlen(sym);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, sym, n))
		return false;
	p->pos += n;
	return true;
}

static void expect_sym(parser *p, const char *sym, const char *what)
{
	if (!accept_sym(p, sym))
		fail(p, p->pos, "expected %s", what);
}

/* A short quote of the text at the cursor, for messages. */
static const char *near(const parser *p, char *buf, size_t size)
{
	if (p->pos >= p->len)
		return "the end";
	size_t n = 0;
	buf[n++] = '\'';
	for (size_t i = p->pos; i < p->len && n < size - 5 && i < p->pos + 20;
	     i++) {
		unsigned char c = (unsigned char)p->s[i];
		buf[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[n++] = '\'';
	buf[n] = '\0';
	return buf;
}

static node *new_node(parser *p, nkind k)
{
	node *n = core_arena_alloc(p->arena, sizeof(*n));
	memset(n, 0, sizeof(*n));
	n->kind = k;
	n->hindex = -1;
	return n;
}

/* ---- literals -------------------------------------------------------- */

/* "text" with \" and \\ escapes, r"raw" or r#"raw"#. */
static bool parse_string(parser *p, lit *l)
{
	skip_ws(p);
	size_t start = p->pos;
	if (p->pos + 1 < p->len && p->s[p->pos] == 'r' &&
	    (p->s[p->pos + 1] == '"' || p->s[p->pos + 1] == '#')) {
		size_t i = p->pos + 1, hashes = 0;
		while (i < p->len && p->s[i] == '#')
			hashes++, i++;
		if (i >= p->len || p->s[i] != '"') {
			fail(p, start, "expected '\"' after r%.*s", (int)hashes,
			     "################");
			return false;
		}
		size_t body = ++i;
		for (; i < p->len; i++) {
			if (p->s[i] != '"' || p->len - i - 1 < hashes)
				continue;
			size_t h = 0;
			while (h < hashes && p->s[i + 1 + h] == '#')
				h++;
			if (h == hashes) {
				l->s = core_arena_strndup(p->arena, p->s + body,
							  i - body);
				l->len = i - body;
				p->pos = i + 1 + hashes;
				return true;
			}
		}
		fail(p, start, "raw string not closed");
		return false;
	}
	if (p->pos >= p->len || p->s[p->pos] != '"') {
		char b[32];
		fail(p, p->pos, "expected a string in double quotes, found %s",
		     near(p, b, sizeof(b)));
		return false;
	}
	char *out = core_arena_alloc(p->arena, p->len - p->pos);
	size_t n = 0;
	for (size_t i = p->pos + 1; i < p->len; i++) {
		char c = p->s[i];
		if (c == '"') {
			out[n] = '\0';
			l->s = out;
			l->len = n;
			p->pos = i + 1;
			return true;
		}
		if (c == '\\' && p->regex) {
			/* A regex keeps its escapes as written (\. \d \\),
			 * as Cloudflare reads a quoted pattern; only \"
			 * stands for the quote. */
			if (i + 1 < p->len && p->s[i + 1] == '"')
				c = p->s[++i];
			else if (i + 1 < p->len)
				out[n++] = p->s[i++], c = p->s[i];
		} else if (c == '\\') {
			if (i + 1 >= p->len ||
			    (p->s[i + 1] != '"' && p->s[i + 1] != '\\')) {
				fail(p, i,
				     "unknown escape in a string (only \\\" "
				     "and \\\\; use r\"...\" for regexes)");
				return false;
			}
			c = p->s[++i];
		}
		out[n++] = c;
	}
	fail(p, start, "string not closed");
	return false;
}

static bool parse_int(parser *p, int64_t *v)
{
	skip_ws(p);
	size_t i = p->pos;
	bool neg = i < p->len && p->s[i] == '-';
	if (neg)
		i++;
	if (i >= p->len || !isdigit((unsigned char)p->s[i])) {
		char b[32];
		fail(p, p->pos, "expected an integer, found %s",
		     near(p, b, sizeof(b)));
		return false;
	}
	int64_t x = 0;
	for (; i < p->len && isdigit((unsigned char)p->s[i]); i++) {
		if (x > (INT64_MAX - 9) / 10) {
			fail(p, p->pos, "integer too large");
			return false;
		}
		x = x * 10 + (p->s[i] - '0');
	}
	*v = neg ? -x : x;
	p->pos = i;
	return true;
}

static bool parse_ip(parser *p, lit *l)
{
	skip_ws(p);
	size_t i = p->pos;
	while (i < p->len &&
	       (isxdigit((unsigned char)p->s[i]) || p->s[i] == ':' ||
		p->s[i] == '.' || p->s[i] == '/'))
		i++;
	char buf[64];
	if (i == p->pos || i - p->pos >= sizeof(buf)) {
		char b[32];
		fail(p, p->pos, "expected an IP address or CIDR, found %s",
		     near(p, b, sizeof(b)));
		return false;
	}
	memcpy(buf, p->s + p->pos, i - p->pos);
	buf[i - p->pos] = '\0';
	const char *why = NULL;
	char fixed[64];
	if (cfg_parse_cidr(buf, &l->cidr, &why, fixed, sizeof(fixed))) {
		fail(p, p->pos, "'%s': %s", buf, why);
		return false;
	}
	p->pos = i;
	return true;
}

static bool parse_lit(parser *p, vtype t, bool in_set, lit *l)
{
	switch (t) {
	case T_BYTES:
		return parse_string(p, l);
	case T_INT:
		if (!parse_int(p, &l->lo))
			return false;
		l->hi = l->lo;
		if (in_set && accept_sym(p, "..")) {
			if (!parse_int(p, &l->hi))
				return false;
			if (l->hi < l->lo) {
				fail(p, p->pos, "range %lld..%lld is empty",
				     (long long)l->lo, (long long)l->hi);
				return false;
			}
		}
		return true;
	case T_IP:
		return parse_ip(p, l);
	case T_BOOL:
		break;
	}
	return false;
}

static bool parse_set(parser *p, node *n)
{
	size_t cap = 4, count = 0;
	lit *v = core_arena_alloc(p->arena, cap * sizeof(*v));
	size_t at = (skip_ws(p), p->pos);
	expect_sym(p, "{", "'{' after 'in'");
	while (!p->failed && !accept_sym(p, "}")) {
		skip_ws(p);
		if (p->pos >= p->len) {
			fail(p, p->pos, "set not closed with '}'");
			break;
		}
		if (count == cap) {
			lit *bigger =
			    core_arena_alloc(p->arena, 2 * cap * sizeof(*v));
			memcpy(bigger, v, cap * sizeof(*v));
			v = bigger;
			cap *= 2;
		}
		memset(&v[count], 0, sizeof(v[count]));
		if (parse_lit(p, n->type, true, &v[count]))
			count++;
	}
	if (!p->failed && !count)
		fail(p, at, "empty set");
	n->lits = v;
	n->nlits = count;
	return !p->failed;
}

/* ---- tests ----------------------------------------------------------- */

static const struct field_def *find_field(const char *w, size_t n)
{
	for (size_t i = 0; i < ARRAY_LEN(field_defs); i++)
		if (word_is(w, n, field_defs[i].name))
			return &field_defs[i];
	return NULL;
}

/* A field, with a header's ["name"][index]. */
static bool parse_field(parser *p, node *n)
{
	const char *w;
	size_t at = (skip_ws(p), p->pos);
	size_t wl = peek_word(p, &w);
	const struct field_def *f = find_field(w, wl);
	if (!f) {
		if (!wl) {
			char b[32];
			fail(p, at, "expected a field, found %s",
			     near(p, b, sizeof(b)));
		} else {
			size_t k = wl < sizeof(p->err->unknown)
				       ? wl
				       : sizeof(p->err->unknown) - 1;
			memcpy(p->err->unknown, w, k);
			p->err->unknown[k] = '\0';
			fail(p, at, "unknown field '%.*s'",
			     (int)(wl > 64 ? 64 : wl), w);
		}
		return false;
	}
	p->pos += wl;
	n->field = f->field;
	n->type = f->type;
	p->fields |= 1u << f->field;
	if (f->field != LB_F_HEADER)
		return true;
	expect_sym(p, "[", "'[\"Header-Name\"]' after http.request.headers");
	lit name = {0};
	if (p->failed || !parse_string(p, &name))
		return false;
	if (!name.len) {
		fail(p, at, "empty header name");
		return false;
	}
	n->hname = name.s;
	n->hlen = name.len;
	expect_sym(p, "]", "']' after the header name");
	if (accept_sym(p, "[")) {
		int64_t i;
		if (accept_sym(p, "*"))
			n->hindex = -1;
		else if (parse_int(p, &i)) {
			if (i < 0 || i > 255) {
				fail(p, at, "header index must be 0..255");
				return false;
			}
			n->hindex = (int32_t)i;
		}
		expect_sym(p, "]", "']' after the index");
	}
	return !p->failed;
}

/* A field, or lower(field) / upper(field). */
static bool parse_value(parser *p, node *n)
{
	const char *w;
	size_t wl = peek_word(p, &w);
	xform xf = word_is(w, wl, "lower")   ? X_LOWER
		   : word_is(w, wl, "upper") ? X_UPPER
					     : X_NONE;
	if (xf == X_NONE)
		return parse_field(p, n);
	size_t at = p->pos;
	p->pos += wl;
	expect_sym(p, "(", "'(' after lower/upper");
	if (p->failed || !parse_field(p, n))
		return false;
	if (n->type != T_BYTES) {
		fail(p, at, "lower() and upper() take a text field");
		return false;
	}
	n->xf = xf;
	expect_sym(p, ")", "')'");
	return !p->failed;
}

static bool parse_op(parser *p, node *n)
{
	static const struct {
		const char *s;
		bool word;
		op o;
	} ops[] = {
	    {"==", false, OP_EQ},	   {"!=", false, OP_NE},
	    {"<=", false, OP_LE},	   {">=", false, OP_GE},
	    {"<", false, OP_LT},	   {">", false, OP_GT},
	    {"~", false, OP_MATCHES},	   {"eq", true, OP_EQ},
	    {"ne", true, OP_NE},	   {"lt", true, OP_LT},
	    {"le", true, OP_LE},	   {"gt", true, OP_GT},
	    {"ge", true, OP_GE},	   {"contains", true, OP_CONTAINS},
	    {"matches", true, OP_MATCHES}, {"wildcard", true, OP_WILDCARD},
	    {"in", true, OP_IN},
	};
	size_t at = (skip_ws(p), p->pos);
	if (accept_word(p, "strict")) {
		if (!accept_word(p, "wildcard")) {
			fail(p, at, "expected 'wildcard' after 'strict'");
			return false;
		}
		n->op = OP_SWILDCARD;
		return true;
	}
	for (size_t i = 0; i < ARRAY_LEN(ops); i++)
		if (ops[i].word ? accept_word(p, ops[i].s)
				: accept_sym(p, ops[i].s)) {
			n->op = ops[i].o;
			return true;
		}
	char b[32];
	fail(p, at,
	     "expected an operator (eq, ne, contains, matches, in, ...), "
	     "found %s",
	     near(p, b, sizeof(b)));
	return false;
}

static bool op_fits(op o, vtype t)
{
	switch (t) {
	case T_BYTES:
		return true;
	case T_INT:
		return o <= OP_GE || o == OP_IN;
	case T_IP:
		return o == OP_EQ || o == OP_NE || o == OP_IN;
	case T_BOOL:
		break;
	}
	return false;
}

static const char *type_name(vtype t)
{
	return t == T_INT ? "an integer" : t == T_IP ? "an IP address" : "text";
}

static bool compile_regex(parser *p, node *n, size_t at)
{
	if (!p->gctx) {
		p->gctx =
		    pcre2_general_context_create(re_alloc, re_free, p->arena);
		p->cctx =
		    p->gctx ? pcre2_compile_context_create(p->gctx) : NULL;
		p->mctx = p->gctx ? pcre2_match_context_create(p->gctx) : NULL;
		if (!p->cctx || !p->mctx) {
			fail(p, at, "out of memory");
			return false;
		}
		pcre2_set_match_limit(p->mctx, RE_MATCH_LIMIT);
		pcre2_set_heap_limit(p->mctx, RE_HEAP_LIMIT);
	}
	n->mctx = p->mctx;
	int code;
	PCRE2_SIZE off;
	n->re = pcre2_compile((PCRE2_SPTR)n->lits[0].s, n->lits[0].len,
			      PCRE2_NEVER_BACKSLASH_C, &code, &off, p->cctx);
	if (!n->re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(code, msg, sizeof(msg));
		fail(p, at, "bad regular expression at its character %zu: %s",
		     (size_t)off + 1, (const char *)msg);
		return false;
	}
	return true;
}

/* In a wildcard pattern a backslash escapes * or \ and nothing else (as
 * in Cloudflare's). */
static bool wildcard_ok(parser *p, const lit *l, size_t at)
{
	for (size_t i = 0; i < l->len; i++) {
		if (l->s[i] != '\\')
			continue;
		if (i + 1 >= l->len ||
		    (l->s[i + 1] != '*' && l->s[i + 1] != '\\')) {
			fail(p, at,
			     "in a wildcard pattern \\ escapes only * and \\ "
			     "(its character %zu)",
			     i + 1);
			return false;
		}
		i++;
	}
	return true;
}

static node *parse_test(parser *p)
{
	node *n = new_node(p, N_TEST);
	const char *w;
	size_t at = (skip_ws(p), p->pos);
	size_t wl = peek_word(p, &w);
	bool starts = word_is(w, wl, "starts_with");
	if (starts || word_is(w, wl, "ends_with")) {
		p->pos += wl;
		expect_sym(p, "(", "'('");
		if (p->failed || !parse_value(p, n))
			return NULL;
		if (n->type != T_BYTES) {
			fail(p, at, "%s() takes a text field",
			     starts ? "starts_with" : "ends_with");
			return NULL;
		}
		expect_sym(p, ",", "','");
		lit *l = core_arena_alloc(p->arena, sizeof(*l));
		memset(l, 0, sizeof(*l));
		if (p->failed || !parse_string(p, l))
			return NULL;
		expect_sym(p, ")", "')'");
		n->op = starts ? OP_STARTS : OP_ENDS;
		n->lits = l;
		n->nlits = 1;
		return p->failed ? NULL : n;
	}
	if (word_is(w, wl, "true") || word_is(w, wl, "false")) {
		p->pos += wl;
		n->kind = *w == 't' ? N_TRUE : N_FALSE;
		return n;
	}
	if (word_is(w, wl, "any")) {
		p->pos += wl;
		expect_sym(p, "(", "'(' after any");
		const char *iw;
		size_t iat = (skip_ws(p), p->pos);
		size_t iwl = peek_word(p, &iw);
		if (!p->failed && word_is(iw, iwl, "any")) {
			/* any() is not an array: nothing to unpack again (and
			 * this recursion is not under MAX_DEPTH) */
			fail(p, iat, "any() inside any()");
			return NULL;
		}
		node *t = p->failed ? NULL : parse_test(p);
		if (!t)
			return NULL;
		if (t->kind != N_TEST || t->field != LB_F_HEADER ||
		    t->hindex != -1) {
			fail(p, at,
			     "any() takes one test of "
			     "http.request.headers[\"Name\"][*]");
			return NULL;
		}
		expect_sym(p, ")", "')' closing any(");
		return p->failed ? NULL : t;
	}
	if (!parse_value(p, n))
		return NULL;
	if (n->type == T_BOOL) {
		n->kind = N_BOOL;
		return n;
	}
	size_t opat = (skip_ws(p), p->pos);
	if (!parse_op(p, n))
		return NULL;
	if (!op_fits(n->op, n->type)) {
		fail(p, opat, "this operator does not apply to %s",
		     type_name(n->type));
		return NULL;
	}
	if (n->op == OP_IN)
		return parse_set(p, n) ? n : NULL;
	lit *l = core_arena_alloc(p->arena, sizeof(*l));
	memset(l, 0, sizeof(*l));
	size_t litat = (skip_ws(p), p->pos);
	p->regex = n->op == OP_MATCHES;
	bool ok = parse_lit(p, n->type, false, l);
	p->regex = false;
	if (!ok)
		return NULL;
	n->lits = l;
	n->nlits = 1;
	if (n->op == OP_MATCHES && !compile_regex(p, n, litat))
		return NULL;
	if ((n->op == OP_WILDCARD || n->op == OP_SWILDCARD) &&
	    !wildcard_ok(p, l, litat))
		return NULL;
	return n;
}

/* ---- logic ----------------------------------------------------------- */

static node *parse_or(parser *p);

static node *parse_factor(parser *p)
{
	if (++p->depth > MAX_DEPTH) {
		fail(p, p->pos, "expression nested too deeply (over %d)",
		     MAX_DEPTH);
		return NULL;
	}
	node *n;
	if (accept_word(p, "not") || accept_sym(p, "!")) {
		node *a = parse_factor(p);
		n = NULL;
		if (a) {
			n = new_node(p, N_NOT);
			n->a = a;
		}
	} else if (accept_sym(p, "(")) {
		n = parse_or(p);
		if (n)
			expect_sym(p, ")", "')'");
	} else {
		n = parse_test(p);
	}
	p->depth--;
	return p->failed ? NULL : n;
}

static node *binary(parser *p, nkind k, node *a, node *b)
{
	node *n = new_node(p, k);
	n->a = a;
	n->b = b;
	return n;
}

/* The binary operators, loosest first: or, xor, and (then not, in
 * parse_factor). */
static const struct level {
	nkind kind;
	const char *word, *sym;
} levels[] = {{N_OR, "or", "||"}, {N_XOR, "xor", "^^"}, {N_AND, "and", "&&"}};

static node *parse_level(parser *p, size_t level)
{
	if (level == ARRAY_LEN(levels))
		return parse_factor(p);
	const struct level *l = &levels[level];
	node *n = parse_level(p, level + 1);
	while (n && (accept_word(p, l->word) || accept_sym(p, l->sym))) {
		node *b = parse_level(p, level + 1);
		n = b ? binary(p, l->kind, n, b) : NULL;
	}
	return n;
}

static node *parse_or(parser *p)
{
	return parse_level(p, 0);
}

lb_expr *lb_expr_compile(const char *src, size_t len, core_arena *arena,
			 lb_expr_error *err)
{
	memset(err, 0, sizeof(*err));
	parser p = {.s = src, .len = len, .arena = arena, .err = err};
	if (len > LB_EXPR_MAX_LEN) {
		fail(&p, LB_EXPR_MAX_LEN, "longer than %d characters",
		     LB_EXPR_MAX_LEN);
		return NULL;
	}
	if (memchr(src, '\0', len)) {
		fail(&p, (size_t)((const char *)memchr(src, '\0', len) - src),
		     "NUL byte in the condition");
		return NULL;
	}
	skip_ws(&p);
	if (p.pos == len) {
		fail(&p, 0, "empty condition");
		return NULL;
	}
	node *root = parse_or(&p);
	if (root) {
		skip_ws(&p);
		if (p.pos < len) {
			char b[32];
			fail(&p, p.pos,
			     "expected 'and', 'or' or the end, found %s",
			     near(&p, b, sizeof(b)));
		}
	}
	if (p.failed)
		return NULL;
	lb_expr *e = core_arena_alloc(arena, sizeof(*e));
	memset(e, 0, sizeof(*e));
	e->root = root;
	e->fields = p.fields;
	return e;
}

uint32_t lb_expr_fields(const lb_expr *e)
{
	return e ? e->fields : 0;
}

static const char *field_names[ARRAY_LEN(field_defs)];
static pthread_once_t field_names_once = PTHREAD_ONCE_INIT;

static void fill_field_names(void)
{
	for (size_t i = 0; i < ARRAY_LEN(field_defs); i++)
		field_names[i] = field_defs[i].name;
}

/* Filled once: config loads may run on several threads (SIGHUP, API). */
const char *const *lb_expr_field_names(size_t *n)
{
	pthread_once(&field_names_once, fill_field_names);
	*n = ARRAY_LEN(field_defs);
	return field_names;
}

/* ---- evaluation ------------------------------------------------------ */

/* One match block per thread, made on its first regex test and freed
 * when the thread ends. */
static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void md_free(void *md)
{
	pcre2_match_data_free(md);
}

static void md_init(void)
{
	if (pthread_key_create(&md_key, md_free))
		abort();
}

static pcre2_match_data *thread_match_data(void)
{
	pthread_once(&md_once, md_init);
	pcre2_match_data *md = pthread_getspecific(md_key);
	if (!md) {
		md = pcre2_match_data_create(1, NULL);
		if (md && pthread_setspecific(md_key, md)) {
			pcre2_match_data_free(md);
			md = NULL;
		}
	}
	return md;
}

/* A wildcard pattern: * is any run of bytes, \* a literal * and \\ a
 * literal \ (checked by wildcard_ok, so a \ is always followed by one). */
static bool glob(const char *pat, size_t plen, const char *s, size_t slen,
		 bool fold)
{
	size_t pi = 0, si = 0, star = SIZE_MAX, mark = 0;
	while (si < slen) {
		if (pi < plen && pat[pi] == '*') {
			star = pi++;
			mark = si;
			continue;
		}
		if (pi < plen) {
			size_t w = pat[pi] == '\\' && pi + 1 < plen ? 2 : 1;
			unsigned char pc = (unsigned char)pat[pi + w - 1];
			unsigned char sc = (unsigned char)s[si];
			if (fold ? tolower(pc) == tolower(sc) : pc == sc) {
				pi += w;
				si++;
				continue;
			}
		}
		if (star == SIZE_MAX)
			return false;
		pi = star + 1;
		si = ++mark;
	}
	while (pi < plen && pat[pi] == '*')
		pi++;
	return pi == plen;
}

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static bool bytes_test(const node *n, const char *v, size_t len)
{
	const lit *l = n->lits;
	switch (n->op) {
	case OP_EQ:
		return len == l->len && !memcmp(v, l->s, len);
	case OP_NE:
		return !(len == l->len && !memcmp(v, l->s, len));
	case OP_LT:
		return bytes_cmp(v, len, l->s, l->len) < 0;
	case OP_LE:
		return bytes_cmp(v, len, l->s, l->len) <= 0;
	case OP_GT:
		return bytes_cmp(v, len, l->s, l->len) > 0;
	case OP_GE:
		return bytes_cmp(v, len, l->s, l->len) >= 0;
	case OP_CONTAINS:
		return !l->len || (len && memmem(v, len, l->s, l->len));
	case OP_STARTS:
		return len >= l->len && !memcmp(v, l->s, l->len);
	case OP_ENDS:
		return len >= l->len && !memcmp(v + len - l->len, l->s, l->len);
	case OP_WILDCARD:
		return glob(l->s, l->len, v, len, true);
	case OP_SWILDCARD:
		return glob(l->s, l->len, v, len, false);
	case OP_IN:
		for (size_t i = 0; i < n->nlits; i++)
			if (len == l[i].len && !memcmp(v, l[i].s, len))
				return true;
		return false;
	case OP_MATCHES: {
		pcre2_match_data *md = thread_match_data();
		return md && pcre2_match(n->re, (PCRE2_SPTR)(len ? v : ""), len,
					 0, 0, md, n->mctx) >= 0;
	}
	}
	return false;
}

/* Apply lower()/upper() into buf (cap bytes) or a heap block in *heap. */
static const char *transform(const node *n, const char *v, size_t len,
			     char *buf, size_t cap, char **heap)
{
	char *out = buf;
	if (len > cap) {
		out = *heap = malloc(len);
		if (!out)
			return NULL;
	}
	for (size_t i = 0; i < len; i++)
		out[i] =
		    (char)(n->xf == X_LOWER ? tolower((unsigned char)v[i])
					    : toupper((unsigned char)v[i]));
	return out;
}

static bool bytes_test_xf(const node *n, const char *v, size_t len)
{
	if (n->xf == X_NONE)
		return bytes_test(n, v, len);
	char buf[1024], *heap = NULL;
	const char *t = transform(n, v, len, buf, sizeof(buf), &heap);
	bool r = t && bytes_test(n, t, len);
	free(heap);
	return r;
}

static http_str str_of(const char *s)
{
	return (http_str){s ? s : "", s ? (uint32_t)strlen(s) : 0};
}

static http_str host_only(http_str h)
{
	if (!h.p)
		return (http_str){"", 0};
	return (http_str){h.p, (uint32_t)http1_host_len(h)};
}

static const http1_header *next_header(const lb_expr_input *in, uint32_t *i,
				       const char *name, size_t nlen)
{
	for (; *i < in->nheaders; (*i)++) {
		const http1_header *h = &in->headers[*i];
		if (h->name.len == nlen &&
		    !strncasecmp(h->name.p, name, nlen)) {
			(*i)++;
			return h;
		}
	}
	return NULL;
}

static bool header_test(const node *n, const lb_expr_input *in)
{
	uint32_t i = 0;
	int32_t k = 0;
	const http1_header *h;
	while ((h = next_header(in, &i, n->hname, n->hlen))) {
		if (n->hindex < 0) {
			/* A client choosing how many fields to send must not
			 * choose how many regex runs a request costs. */
			if (k++ == LB_EXPR_MAX_FIELDS)
				return false;
			if (bytes_test_xf(n, h->value.p, h->value.len))
				return true;
		} else if (k++ == n->hindex) {
			return bytes_test_xf(n, h->value.p, h->value.len);
		}
	}
	return false;
}

/* The first field of that name, or empty. */
static http_str first_header(const lb_expr_input *in, const char *name)
{
	const http1_header *h =
	    in->headers ? http1_find_header(in->headers, in->nheaders, name)
			: NULL;
	return h ? h->value : (http_str){"", 0};
}

/* Values built from several parts (full_uri, cookie) go through buf, or
 * the heap when they do not fit. */
typedef struct joined {
	char *p, *heap;
	size_t len, cap;
} joined;

static void join_add(joined *j, const char *s, size_t n)
{
	if (!j->p)
		return;
	if (j->len + n > j->cap) {
		size_t cap = (j->len + n) * 2;
		char *b = malloc(cap);
		if (!b) {
			j->p = NULL;
			return;
		}
		memcpy(b, j->p, j->len);
		free(j->heap);
		j->p = j->heap = b;
		j->cap = cap;
	}
	memcpy(j->p + j->len, s, n);
	j->len += n;
}

/* The value of a field that is one run of bytes (not a header, a cookie
 * or the full URI, which are composed); empty when the traffic has none. */
static http_str field_bytes(lb_expr_field f, const lb_expr_input *in)
{
	http_str v = {"", 0};
	const char *q;
	switch (f) {
	case LB_F_COUNTRY:
		v = str_of(in->country);
		break;
	case LB_F_LB_NAME:
		v = str_of(in->lb_name);
		break;
	case LB_F_LB_REGION:
		v = str_of(in->lb_region);
		break;
	case LB_F_HOST:
		v = in->host.p ? host_only(in->host) : v;
		break;
	case LB_F_METHOD:
		v = in->method.p ? in->method : v;
		break;
	case LB_F_URI:
		v = in->target.p ? in->target : v;
		break;
	case LB_F_PATH:
	case LB_F_QUERY:
		if (!in->target.p)
			break;
		q = memchr(in->target.p, '?', in->target.len);
		if (f == LB_F_PATH)
			v = (http_str){in->target.p,
				       q ? (uint32_t)(q - in->target.p)
					 : in->target.len};
		else if (q)
			v = (http_str){q + 1,
				       (uint32_t)(in->target.len -
						  (q + 1 - in->target.p))};
		break;
	case LB_F_VERSION:
		if (in->method.p)
			v = str_of(in->http2	? "HTTP/2"
				   : in->http10 ? "HTTP/1.0"
						: "HTTP/1.1");
		break;
	case LB_F_USER_AGENT:
		v = first_header(in, "user-agent");
		break;
	case LB_F_REFERER:
		v = first_header(in, "referer");
		break;
	case LB_F_DNS_NAME:
		v = (http_str){in->qname ? in->qname : "",
			       in->qname ? (uint32_t)in->qname_len : 0};
		break;
	default:
		break;
	}
	return v;
}

static bool bytes_field_test(const node *n, const lb_expr_input *in)
{
	http_str v = {"", 0};
	switch (n->field) {
	case LB_F_HEADER:
		return header_test(n, in);
	case LB_F_FULL_URI:
	case LB_F_COOKIE: {
		if (n->field == LB_F_FULL_URI && !in->method.p)
			break; /* no HTTP request (DNS): empty */
		char buf[1024];
		joined j = {.p = buf, .cap = sizeof(buf)};
		if (n->field == LB_F_FULL_URI) {
			const char *scheme = in->ssl ? "https://" : "http://";
			http_str h = host_only(in->host);
			join_add(&j, scheme, strlen(scheme));
			join_add(&j, h.p, h.len);
			join_add(&j, in->target.p ? in->target.p : "",
				 in->target.len);
		} else {
			/* HTTP/2 splits the Cookie field (RFC 9113 §8.2.3);
			 * the value is all of them joined with "; ". */
			uint32_t i = 0;
			const http1_header *h;
			bool first = true;
			while ((h = next_header(in, &i, "cookie", 6))) {
				if (!first)
					join_add(&j, "; ", 2);
				join_add(&j, h->value.p, h->value.len);
				first = false;
			}
		}
		bool r = j.p && bytes_test_xf(n, j.p, j.len);
		free(j.heap);
		return r;
	}
	default:
		v = field_bytes(n->field, in);
		break;
	}
	return bytes_test_xf(n, v.p, v.len);
}

static bool int_test(const node *n, int64_t v)
{
	const lit *l = n->lits;
	switch (n->op) {
	case OP_EQ:
		return v == l->lo;
	case OP_NE:
		return v != l->lo;
	case OP_LT:
		return v < l->lo;
	case OP_LE:
		return v <= l->lo;
	case OP_GT:
		return v > l->lo;
	case OP_GE:
		return v >= l->lo;
	case OP_IN:
		for (size_t i = 0; i < n->nlits; i++)
			if (v >= l[i].lo && v <= l[i].hi)
				return true;
		return false;
	default:
		return false;
	}
}

static bool ip_test(const node *n, const struct sockaddr *sa)
{
	if (!sa)
		return n->op == OP_NE;
	/* An IPv4 client seen as ::ffff:a.b.c.d (X-Forwarded-For or PROXY
	 * from a dual-stack proxy) is also that IPv4 address, as geo and
	 * hashing take it. */
	struct sockaddr_in tmp;
	const struct sockaddr *v4 = geo_unmap(sa, &tmp);
	bool any = false;
	for (size_t i = 0; i < n->nlits && !any; i++)
		any = cfg_cidr_contains(&n->lits[i].cidr, sa) ||
		      (v4 != sa && cfg_cidr_contains(&n->lits[i].cidr, v4));
	return n->op == OP_NE ? !any : any;
}

static bool eval(const node *n, const lb_expr_input *in)
{
	switch (n->kind) {
	case N_OR:
		return eval(n->a, in) || eval(n->b, in);
	case N_AND:
		return eval(n->a, in) && eval(n->b, in);
	case N_XOR:
		return eval(n->a, in) != eval(n->b, in);
	case N_NOT:
		return !eval(n->a, in);
	case N_BOOL:
		return in->ssl;
	case N_TRUE:
		return true;
	case N_FALSE:
		return false;
	case N_TEST:
		switch (n->type) {
		case T_BYTES:
			return bytes_field_test(n, in);
		case T_INT:
			return int_test(n, n->field == LB_F_DNS_TYPE
					       ? (int64_t)in->qtype
					   : n->field == LB_F_RESPONSE_CODE
					       ? (int64_t)in->response_code
					       : (int64_t)in->qname_len);
		case T_IP:
			return ip_test(n, in->client);
		case T_BOOL:
			return in->ssl;
		}
	}
	return false;
}

bool lb_expr_eval(const lb_expr *e, const lb_expr_input *in)
{
	return e && eval(e->root, in);
}

/* ---- fields named alone (rate limits' characteristics) ---------------- */

bool lb_expr_ref_parse(const char *src, size_t len, core_arena *arena,
		       lb_expr_ref *out, lb_expr_error *err)
{
	memset(err, 0, sizeof(*err));
	memset(out, 0, sizeof(*out));
	parser p = {.s = src, .len = len, .arena = arena, .err = err};
	node n = {0};
	if (len > LB_EXPR_MAX_LEN || memchr(src, '\0', len)) {
		fail(&p, 0, "not a field name");
		return false;
	}
	if (!parse_field(&p, &n))
		return false;
	skip_ws(&p);
	if (p.pos < len) {
		char b[32];
		fail(&p, p.pos, "expected the end, found %s",
		     near(&p, b, sizeof(b)));
		return false;
	}
	if (n.field == LB_F_HEADER && n.hindex < 0) {
		fail(&p, 0, "a header's [*] names no one value");
		return false;
	}
	if (n.field == LB_F_COOKIE || n.field == LB_F_FULL_URI ||
	    (n.type != T_BYTES && n.field != LB_F_IP_SRC) ||
	    (LB_EXPR_DNS_FIELDS & (1u << n.field))) {
		fail(&p, 0,
		     "'%.*s' cannot be a characteristic (ip.src, a field of "
		     "one text value, or http.request.headers[\"Name\"])",
		     (int)(len > 64 ? 64 : len), src);
		return false;
	}
	out->field = n.field;
	out->hname = n.hname;
	out->hlen = n.hlen;
	out->hindex = n.hindex;
	return true;
}

http_str lb_expr_ref_value(const lb_expr_ref *r, const lb_expr_input *in)
{
	if (r->field != LB_F_HEADER)
		return field_bytes(r->field, in);
	uint32_t i = 0;
	int32_t k = 0;
	const http1_header *h;
	while ((h = next_header(in, &i, r->hname, r->hlen)))
		if (k++ == r->hindex)
			return h->value;
	return (http_str){"", 0};
}
