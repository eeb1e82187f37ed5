/* lb_rules.h - which load balancer rules apply to a request or DNS query,
 * pure (no I/O, no allocation).
 *
 * The enabled rules run in rule_order (priority, then as written). A rule
 * whose condition holds (no condition: always) matches:
 *   - with a fixed_response, it is the answer and evaluation stops;
 *   - with overrides, they replace the load balancer's fields for this
 *     request; a later matching rule's overrides replace them again, field
 *     by field (Cloudflare: "the last rule applied overrides any prior");
 *   - with terminates, no rule after it is evaluated.
 * A rule with a fixed_response is passed over for an ACME http-01
 * challenge, as https_redirect passes it over: a catch-all maintenance
 * page must not stop the edge's certificates from renewing.
 * The result is the load balancer to steer with: the configured one, the
 * one rule's prepared copy (cfg_lb_rule.eff, most requests that match
 * anything), or a merge built in the caller's scratch when two or more
 * rules with overrides matched. Identity (id, name, stats, logs) stays the
 * configured load balancer's; only steering reads the result.
 */
#ifndef MERIDIAN_LB_RULES_H
#define MERIDIAN_LB_RULES_H

#include "config/cfg_model.h"
#include "lb/lb_expr.h"

typedef struct lb_rules_result {
	const cfg_lb *lb;	  /* steer with this */
	const cfg_lb_rule *fixed; /* answer with its fixed_response */
	const cfg_lb_rule *last;  /* the last rule that matched, or NULL */
	uint32_t nmatched;
	uint64_t matched; /* bit cfg_lb_rule.index of each rule that matched */
} lb_rules_result;

/* scratch: where a merge is built. With NULL, a request that needs a
 * merge returns false (nothing else is set), and the caller calls again
 * with one; it is rare: two rules with overrides matching one request. */
bool lb_rules_apply(const cfg_lb *lb, const lb_expr_input *in, cfg_lb *scratch,
		    lb_rules_result *out);

#endif
