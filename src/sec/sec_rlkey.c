/* sec_rlkey.c - a request's rate-limit key; see sec_rlkey.h. */
#include "sec/sec_rlkey.h"

#include "geo/geo.h"

uint64_t sec_rl_request_key(const sec_rl *t, const cfg_rate_limit *r,
			    const lb_expr_input *in)
{
	uint64_t h[SEC_RL_MAX_CHARS];
	size_t n = r->nrefs < SEC_RL_MAX_CHARS ? r->nrefs : SEC_RL_MAX_CHARS;
	for (size_t i = 0; i < n; i++) {
		const lb_expr_ref *ref = &r->refs[i];
		if (ref->field == LB_F_IP_SRC) {
			uint8_t net[1 + 16] = {0};
			unsigned bits;
			int fam =
			    in->client
				? geo_network(in->client, r->ipv4_prefix_length,
					      r->ipv6_prefix_length, net + 1,
					      &bits)
				: 0;
			net[0] = (uint8_t)fam;
			h[i] = sec_rl_hash(t, net,
					   fam == AF_INET ? 5
					   : fam	  ? 17
							  : 1);
		} else {
			http_str v = lb_expr_ref_value(ref, in);
			h[i] = sec_rl_hash(t, v.p, v.len);
		}
	}
	return sec_rl_key(t, h, n);
}
