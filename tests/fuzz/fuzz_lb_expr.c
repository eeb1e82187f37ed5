/* fuzz_lb_expr.c - libFuzzer harness for lb_expr_compile and
 * lb_expr_eval.
 *
 * The input's first byte picks request values (method, a header, the
 * client's address family, a long Cookie field, a DNS query with no HTTP
 * fields); the rest is a condition. Besides crashes and
 * sanitizer reports it checks the contract: a compile error has a message
 * and an offset inside the input; a compiled condition evaluates the same
 * twice (no hidden state), and its negation evaluates to the opposite.
 * The same text is parsed as a rate limit's characteristic too.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "core/core_arena.h"
#include "lb/lb_expr.h"

#define S(x) ((http_str){(x), (uint32_t)strlen(x)})

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > LB_EXPR_MAX_LEN + 2)
		return 0;
	uint8_t pick = data[0];
	const char *src = (const char *)data + 1;
	size_t len = size - 1;

	struct sockaddr_in a4 = {.sin_family = AF_INET};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET, "198.51.100.7", &a4.sin_addr);
	inet_pton(AF_INET6, "2001:db8::7", &a6.sin6_addr);
	/* A value longer than the stack buffers of lower() and http.cookie */
	static char big[3000];
	if (!big[0]) {
		memset(big, 'A', sizeof(big) - 1);
		memcpy(big, "x=", 2);
	}
	http1_header h[4] = {{S("Cookie"), S("a=1")},
			     {S("X-Canary"), S(pick & 2 ? "1" : "")},
			     {S("cookie"), S("b=2")},
			     {S("Cookie"), S(big)}};
	struct sockaddr_in6 m6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "::ffff:198.51.100.7", &m6.sin6_addr);
	lb_expr_input in = {
	    .client = pick & 1 ? (const struct sockaddr *)&a6
			       : (const struct sockaddr *)&a4,
	    .country = "JP",
	    .lb_name = "lb.example.com",
	    .lb_region = pick & 4 ? "WEU" : NULL,
	    .host = S("lb.example.com:8443"),
	    .method = S(pick & 8 ? "POST" : "GET"),
	    .target = S("/api/v1/items?x=1"),
	    .http2 = pick & 16,
	    .ssl = pick & 32,
	    .headers = h,
	    .nheaders = pick & 128 ? 4 : 3,
	    .qname = "dns.example.com",
	    .qname_len = 15,
	    .qtype = pick & 64 ? 28 : 1,
	};

	if ((pick & 129) == 128) /* an IPv4 client in IPv6 form */
		in.client = (const struct sockaddr *)&m6;
	if ((pick & 192) == 192) /* a DNS query: no HTTP fields at all */
		in = (lb_expr_input){.client = in.client,
				     .country = "",
				     .lb_name = "lb.example.com",
				     .qname = "dns.example.com",
				     .qname_len = 15,
				     .qtype = 28};

	core_arena *arena = core_arena_new(0);
	lb_expr_error err;
	lb_expr *e = lb_expr_compile(src, len, arena, &err);
	if (!e) {
		CHECK(err.msg[0]);
		CHECK(err.offset <= len);
	} else {
		bool v = lb_expr_eval(e, &in);
		CHECK(lb_expr_eval(e, &in) == v);
		/* "not (" src ")" is the opposite, unless src only compiled
		 * because of what follows it (a comment-like tail cannot
		 * exist: the grammar has none) or nesting runs out. */
		char *neg = malloc(len + 7);
		memcpy(neg, "not (", 5);
		memcpy(neg + 5, src, len);
		neg[len + 5] = ')';
		lb_expr *n = lb_expr_compile(neg, len + 6, arena, &err);
		if (n)
			CHECK(lb_expr_eval(n, &in) == !v);
		free(neg);
	}
	/* The same text as a rate limit's characteristic (lb_expr_ref):
	 * an error inside the input, or a value that points into the
	 * request (or is empty). */
	lb_expr_ref ref;
	if (!lb_expr_ref_parse(src, len, arena, &ref, &err)) {
		CHECK(err.msg[0]);
		CHECK(err.offset <= len);
	} else if (ref.field != LB_F_IP_SRC) {
		http_str v = lb_expr_ref_value(&ref, &in);
		CHECK(v.p != NULL);
		/* Every byte readable (ASan checks the reads). */
		volatile uint8_t x = 0;
		for (uint32_t i = 0; i < v.len; i++)
			x ^= (uint8_t)v.p[i];
		(void)x;
	}
	core_arena_free(arena);
	return 0;
}
