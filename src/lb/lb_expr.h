/* lb_expr.h - conditions of load balancer rules, pure (no I/O).
 *
 * A subset of Cloudflare's Rules language (the wirefilter syntax that
 * load balancing rules use), compiled once per config snapshot into a tree
 * in the snapshot's arena and evaluated per request or DNS query without
 * allocating (except a regex's per-thread match block, made once, and a
 * composed http.cookie or http.request.full_uri, or a lower() or upper()
 * value, longer than 1 KiB).
 *
 * Grammar (precedence from low to high: or, xor, and, not):
 *   expr    := term (("or" | "||") term)*
 *   term    := xterm (("xor" | "^^") xterm)*
 *   xterm   := factor (("and" | "&&") factor)*
 *   factor  := ("not" | "!") factor | "(" expr ")" | test
 *   test    := boolfield | "true" | "false"
 *            | value OP literal | value "in" "{" literal* "}"
 *            | ("starts_with" | "ends_with") "(" value "," string ")"
 *            | "any" "(" test ")"          (around a header [*] test)
 *   value   := field | ("lower" | "upper") "(" field ")"
 *   field   := a name below, or http.request.headers["Name"] with an
 *              optional [N] (the N-th such field) or [*] (any)
 *   OP      := eq == ne != lt < le <= gt > ge >= contains matches ~
 *              wildcard "strict wildcard"
 *   literal := "string" (\" and \\ escapes; after matches, backslashes
 *              stay as written but for \", as Cloudflare lexes a regex)
 *            | r"raw" | r#"raw"# | integer
 *            | IP or CIDR (ip.src) | lo..hi (integer sets)
 *
 * Fields (lb_expr_field_names): ip.src (IP), ip.src.country,
 * cf.load_balancer.name, cf.load_balancer.region (bytes); proxied only:
 * http.host (without port), http.request.method, http.request.uri (path
 * and query), http.request.uri.path, http.request.uri.query (without "?"),
 * http.request.full_uri, http.request.version ("HTTP/1.1", "HTTP/2"),
 * http.user_agent, http.referer, http.cookie, http.request.headers[...]
 * (bytes), ssl (boolean); DNS-only: dns.qry.name (without the trailing
 * dot), dns.qry.name.len and dns.qry.type (integers); in a rate limit's
 * counting_expression only: http.response.code (integer). A field the traffic
 * does not have is empty (bytes), 0 (integers), false (ssl), or no address
 * (every IP test is false but ne). An IPv4-mapped IPv6 client
 * (::ffff:a.b.c.d) passes an IP test when either form does.
 *
 * Header tests are true when any field of that name (case-insensitive)
 * passes, of the first LB_EXPR_MAX_FIELDS; with no such field none does. Bytes
 * compare byte-wise (lt/le/gt/ge lexicographically); "wildcard" is a
 * case-insensitive match with * for any run of bytes (\* a literal *, \\ a
 * literal \, no other escape), "strict wildcard" the case-sensitive one;
 * "matches" is a PCRE2 regular expression (unanchored) with a match
 * limit, so a pathological pattern fails the test instead of stalling a
 * worker.
 */
#ifndef MERIDIAN_LB_EXPR_H
#define MERIDIAN_LB_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http/http1_parse.h"

struct core_arena;

/* Longest condition accepted (Cloudflare's limit is 4096). */
#define LB_EXPR_MAX_LEN 4096
/* A header test over any field of a name looks at this many at most. */
#define LB_EXPR_MAX_FIELDS 16

typedef enum lb_expr_field {
	LB_F_IP_SRC = 0,
	LB_F_COUNTRY,
	LB_F_LB_NAME,
	LB_F_LB_REGION,
	LB_F_HOST,
	LB_F_METHOD,
	LB_F_URI,
	LB_F_PATH,
	LB_F_QUERY,
	LB_F_FULL_URI,
	LB_F_VERSION,
	LB_F_USER_AGENT,
	LB_F_REFERER,
	LB_F_COOKIE,
	LB_F_HEADER,
	LB_F_SSL,
	LB_F_DNS_NAME,
	LB_F_DNS_NAME_LEN,
	LB_F_DNS_TYPE,
	LB_F_RESPONSE_CODE,
	LB_F_COUNT
} lb_expr_field;

/* What a compiled expression reads, as bits (1u << lb_expr_field), so a
 * caller computes costly inputs (the client's country) only when asked
 * and config checks can warn about fields the traffic never has. */
#define LB_EXPR_PROXIED_FIELDS                                                 \
	((1u << LB_F_HOST) | (1u << LB_F_METHOD) | (1u << LB_F_URI) |          \
	 (1u << LB_F_PATH) | (1u << LB_F_QUERY) | (1u << LB_F_FULL_URI) |      \
	 (1u << LB_F_VERSION) | (1u << LB_F_USER_AGENT) |                      \
	 (1u << LB_F_REFERER) | (1u << LB_F_COOKIE) | (1u << LB_F_HEADER) |    \
	 (1u << LB_F_SSL))
#define LB_EXPR_DNS_FIELDS                                                     \
	((1u << LB_F_DNS_NAME) | (1u << LB_F_DNS_NAME_LEN) |                   \
	 (1u << LB_F_DNS_TYPE))

/* The request or query a condition is tested against. Unset pointers are
 * empty values. */
typedef struct lb_expr_input {
	const struct sockaddr *client; /* ip.src; NULL: unknown */
	const char *country;	       /* ip.src.country, "" unknown */
	const char *lb_name, *lb_region;
	/* HTTP (proxied) */
	http_str host;	 /* Host, port included or not */
	http_str method; /* "GET" */
	http_str target; /* origin-form "/path?query" */
	bool http2;	 /* http.request.version */
	bool http10;
	bool ssl;
	/* An ACME http-01 challenge (/.well-known/acme-challenge/): no
	 * fixed_response answers it (lb_rules.h). */
	bool acme_challenge;
	const http1_header *headers;
	uint32_t nheaders;
	/* DNS (DNS-only): the question */
	const char *qname; /* without the trailing dot */
	size_t qname_len;
	uint16_t qtype;
	/* The answer's status, for a rate limit's counting_expression: the
	 * only place http.response.code is known (0 elsewhere). */
	uint16_t response_code;
} lb_expr_input;

typedef struct lb_expr lb_expr;

typedef struct lb_expr_error {
	char msg[256];
	size_t offset; /* byte offset of the error in the source */
	/* For "unknown field" errors, the name that was not known (so the
	 * caller can suggest a close one), else "". */
	char unknown[64];
} lb_expr_error;

/* Compile src[0..len) into arena. NULL with *err set on any error. The
 * result lives (and dies) with the arena. */
lb_expr *lb_expr_compile(const char *src, size_t len, struct core_arena *arena,
			 lb_expr_error *err);
bool lb_expr_eval(const lb_expr *e, const lb_expr_input *in);
/* Fields read by e, as (1u << lb_expr_field) bits. */
uint32_t lb_expr_fields(const lb_expr *e);
/* Every field name, for "did you mean" (count in *n). */
const char *const *lb_expr_field_names(size_t *n);

/* One field named alone, as a rate limit's characteristics name them:
 * ip.src, or a field whose value is one run of bytes (not http.cookie or
 * http.request.full_uri, which are composed, nor the DNS ones), or
 * http.request.headers["Name"] (its first field, or [N] the N-th). */
typedef struct lb_expr_ref {
	lb_expr_field field;
	const char *hname; /* headers: the name (in the arena) */
	size_t hlen;
	int32_t hindex;
} lb_expr_ref;

bool lb_expr_ref_parse(const char *src, size_t len, struct core_arena *arena,
		       lb_expr_ref *out, lb_expr_error *err);
/* The value of a ref that is not ip.src: empty when the request has none
 * (a missing header counts as one value, ""). */
http_str lb_expr_ref_value(const lb_expr_ref *r, const lb_expr_input *in);

#endif
