/* sec_rlkey.c - a request's rate-limit key; see sec_rlkey.h. */
#include "sec/sec_rlkey.h"

#include <string.h>

#include "geo/geo.h"

#define LAYOUT 1024

typedef struct value {
	const void *p;
	size_t len;
	uint8_t net[1 + 16]; /* ip.src: family, network */
} value;

static void value_of(const cfg_rate_limit *r, const lb_expr_ref *ref,
		     const lb_expr_input *in, value *v)
{
	if (ref->field != LB_F_IP_SRC) {
		http_str s = lb_expr_ref_value(ref, in);
		v->p = s.p;
		v->len = s.len;
		return;
	}
	unsigned bits;
	memset(v->net, 0, sizeof(v->net));
	int fam = in->client
		      ? geo_network(in->client, r->ipv4_prefix_length,
				    r->ipv6_prefix_length, v->net + 1, &bits)
		      : 0;
	v->net[0] = (uint8_t)fam;
	v->p = v->net;
	v->len = fam == AF_INET ? 5 : fam ? 17 : 1;
}

uint64_t sec_rl_request_key(const sec_rl *t, const cfg_rate_limit *r,
			    const lb_expr_input *in)
{
	uint8_t buf[LAYOUT];
	size_t n = r->nrefs < SEC_RL_MAX_CHARS ? r->nrefs : SEC_RL_MAX_CHARS;
	value v[SEC_RL_MAX_CHARS];
	size_t len = 1;
	buf[0] = 'v'; /* values */
	for (size_t i = 0; i < n; i++) {
		value_of(r, &r->refs[i], in, &v[i]);
		if (len <= LAYOUT && v[i].len <= LAYOUT - len &&
		    LAYOUT - len - v[i].len >= 2) {
			buf[len++] = (uint8_t)(v[i].len >> 8);
			buf[len++] = (uint8_t)v[i].len;
			memcpy(buf + len, v[i].p, v[i].len);
			len += v[i].len;
		} else {
			len = LAYOUT + 1; /* too long: hashes instead */
		}
	}
	if (len <= LAYOUT)
		return sec_rl_key(t, buf, len);
	buf[0] = 'h'; /* hashes of the values */
	for (size_t i = 0; i < n; i++) {
		uint64_t h = sec_rl_key(t, v[i].p, v[i].len);
		memcpy(buf + 1 + 8 * i, &h, 8);
	}
	return sec_rl_key(t, buf, 1 + 8 * n);
}
