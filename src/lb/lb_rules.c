/* lb_rules.c - which load balancer rules apply (see lb_rules.h). */
#include "lb/lb_rules.h"

#include <string.h>

#include "config/cfg_rules.h"

bool lb_rules_apply(const cfg_lb *lb, const lb_expr_input *in, cfg_lb *scratch,
		    lb_rules_result *out)
{
	*out = (lb_rules_result){.lb = lb};
	const cfg_lb_rule *single = NULL;
	bool merged = false;
	for (size_t i = 0; i < lb->nrule_order; i++) {
		const cfg_lb_rule *r = lb->rule_order[i];
		if (r->has_fixed_response && in->acme_challenge)
			continue; /* certificates must still renew */
		if (r->expr && !lb_expr_eval(r->expr, in))
			continue;
		out->nmatched++;
		out->matched |= UINT64_C(1) << (r->index & 63);
		out->last = r;
		if (r->has_fixed_response) {
			out->fixed = r;
			break;
		}
		if (r->has_overrides) {
			if (!single) {
				single = r;
			} else {
				if (!scratch)
					return false;
				if (!merged)
					*scratch = *single->eff;
				merged = true;
				cfg_lb_overlay(scratch, r, r->eff);
			}
		}
		if (r->terminates)
			break;
	}
	out->lb = merged ? scratch : single ? single->eff : lb;
	return true;
}
