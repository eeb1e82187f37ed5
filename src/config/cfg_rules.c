/* cfg_rules.c - load balancer rules in the config (see cfg_rules.h). */
#include "config/cfg_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_validate.h"
#include "config/cfg_values.h"
#include "config/cfg_yaml.h"
#include "core/core_arena.h"
#include "core/core_util.h"
#include "lb/lb_expr.h"

#define CFG_STR_(x) #x
#define CFG_STR(x)  CFG_STR_(x)

/* Cloudflare's limits on a fixed_response. */
#define MAX_BODY	 1024
#define MAX_CONTENT_TYPE 32
#define MAX_LOCATION	 2048

void cfg_compile_expr(cfg_ctx *c, const cfg_node *node, const char *key,
		      const char *src, bool response,
		      const struct lb_expr **out)
{
	*out = NULL;
	/* Empty (or only blanks): always true, as Cloudflare's "". */
	if (!src || !src[strspn(src, " \t\r\n")])
		return;
	const cfg_node *at = cfg_node_get(node, key);
	lb_expr_error err;
	*out = lb_expr_compile(src, strlen(src), c->arena, &err);
	if (*out) {
		/* The response exists only after the request has gone: a
		 * counting_expression reads it alone, nothing else may. */
		uint32_t f = lb_expr_fields(*out);
		uint32_t resp = 1u << LB_F_RESPONSE_CODE;
		if (!response && (f & resp))
			cfg_error(c, at ? at : node,
				  "%s: http.response.code is known only in a "
				  "rate limit's counting_expression",
				  key);
		else if (response && (f & ~resp))
			cfg_error(c, at ? at : node,
				  "%s: reads only http.response.code (the "
				  "request's fields go in expression)",
				  key);
		return;
	}
	size_t n;
	const char *const *names = lb_expr_field_names(&n);
	const char *hint =
	    err.unknown[0] ? cfg_suggest(err.unknown, names, n) : NULL;
	char msg[512];
	snprintf(msg, sizeof(msg), "%s: %s (at character %zu)%s%s%s", key,
		 err.msg, err.offset + 1, hint ? "; did you mean '" : "",
		 hint ? hint : "", hint ? "'?" : "");
	/* A plain one-line YAML scalar without ${VAR} is the condition byte
	 * for byte: the error's column is the character's own. */
	if (at && at->line && at->verbatim && err.offset <= strlen(src))
		cfg_errs_add(&c->errs, at->line, at->col + (uint32_t)err.offset,
			     "%s", msg);
	else
		cfg_error(c, at ? at : node, "%s", msg);
}

/* Whether a rule's overrides set any field: an empty `overrides: {}` (as
 * Cloudflare's API gives a fixed-response rule back) steers nothing. */
static bool overrides_set(const cfg_lb_overridden *h)
{
	static const cfg_lb_overridden none;
	return memcmp(h, &none, sizeof(none)) != 0;
}

void cfg_finish_rule(cfg_ctx *c, const cfg_node *node, void *base)
{
	cfg_lb_rule *r = base;
	if (!node)
		return;
	cfg_compile_expr(c, node, "condition", r->condition, false, &r->expr);
	/* As the load balancer's own (cfg_finish_lb). */
	cfg_check_default_pools(
	    c, cfg_node_get(cfg_node_get(node, "overrides"), "default_pools"));
	const cfg_node *fr = cfg_node_get(node, "fixed_response");
	if (r->has_fixed_response) {
		const cfg_lb_fixed *f = &r->fixed_response;
		if (r->has_overrides && overrides_set(&r->has))
			cfg_error(c, fr,
				  "fixed_response: a rule answers with "
				  "fixed_response or steers with overrides, "
				  "not both");
		if (f->message_body && strlen(f->message_body) > MAX_BODY)
			cfg_error(c, fr,
				  "fixed_response.message_body: at most %d "
				  "bytes",
				  MAX_BODY);
		if (f->content_type &&
		    strlen(f->content_type) > MAX_CONTENT_TYPE)
			cfg_error(c, fr,
				  "fixed_response.content_type: at most %d "
				  "bytes",
				  MAX_CONTENT_TYPE);
		if (f->location && strlen(f->location) > MAX_LOCATION)
			cfg_error(c, fr,
				  "fixed_response.location: at most %d bytes",
				  MAX_LOCATION);
	}
}

void cfg_lb_overlay(cfg_lb *dst, const cfg_lb_rule *r, const cfg_lb *src)
{
	const cfg_lb_overridden *h = &r->has;
	if (h->default_pools) {
		dst->default_pools = src->default_pools;
		dst->ndefault_pools = src->ndefault_pools;
	}
	if (h->fallback_pool)
		dst->fallback_pool = src->fallback_pool;
	if (h->region_pools) {
		dst->region_pools = src->region_pools;
		dst->nregion_pools = src->nregion_pools;
	}
	if (h->country_pools) {
		dst->country_pools = src->country_pools;
		dst->ncountry_pools = src->ncountry_pools;
	}
	if (h->pop_pools) {
		dst->pop_pools = src->pop_pools;
		dst->npop_pools = src->npop_pools;
	}
	if (h->steering_policy)
		dst->steering_policy = src->steering_policy;
	if (h->random_steering) {
		dst->random_default_weight = src->random_default_weight;
		dst->pool_weights = src->pool_weights;
		dst->npool_weights = src->npool_weights;
		dst->random_pool_weights = src->random_pool_weights;
		dst->nrandom_pool_weights = src->nrandom_pool_weights;
	}
	if (h->adaptive_routing)
		dst->failover_across_pools = src->failover_across_pools;
	if (h->location_strategy)
		dst->location_strategy = src->location_strategy;
	if (h->session_affinity)
		dst->session_affinity = src->session_affinity;
	if (h->session_affinity_ttl)
		dst->session_affinity_ttl = src->session_affinity_ttl;
	if (h->session_affinity_attributes)
		dst->session_affinity_attributes =
		    src->session_affinity_attributes;
	if (h->ttl)
		dst->ttl = src->ttl;
}

static void rule_error(cfg_ctx *c, const cfg_lb *lb, const cfg_lb_rule *r,
		       const char *msg)
{
	if (r->pos.line) {
		cfg_errs_add(&c->errs, r->pos.line, r->pos.col, "%s", msg);
		return;
	}
	char field[600];
	snprintf(field, sizeof(field), "load_balancers[%s].rules[%u]",
		 lb->id ? lb->id : "?", r->index);
	cfg_errs_add_field(&c->errs, field, "%s", msg);
}

/* The load balancer a rule makes: the owner with its overrides. */
static const cfg_lb *build_eff(cfg_ctx *c, const cfg_lb *lb, cfg_lb_rule *r)
{
	cfg_lb *e = core_arena_alloc(c->arena, sizeof(*e));
	*e = *lb;
	e->rules = NULL;
	e->nrules = 0;
	e->rule_order = NULL;
	e->nrule_order = 0;
	cfg_lb_overlay(e, r, &r->ov);
	if (r->has.random_steering)
		cfg_lb_weight_map(c,
				  e); /* as cfg_finish_lb, for these weights */
	if ((r->has.session_affinity || r->has.session_affinity_attributes) &&
	    e->session_affinity == CFG_AFF_HEADER &&
	    !e->session_affinity_attributes.nheaders)
		rule_error(c, lb, r,
			   "overrides: session_affinity header needs "
			   "session_affinity_attributes.headers (in the rule "
			   "or the load balancer)");
	return e;
}

/* "#" and digits only: the form of an unnamed rule's label. */
static bool index_form(const char *name)
{
	if (name[0] != '#' || !name[1])
		return false;
	for (const char *p = name + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/* Metrics and logs tell rules apart by name (edge_stats_rule_name); a
 * name that does not do so gives way to the rule's place. */
static void mark_shared_names(cfg_lb *lb)
{
	for (size_t k = 0; k < lb->nrules; k++) {
		cfg_lb_rule *r = &lb->rules[k];
		if (!r->name)
			continue;
		r->name_shared = index_form(r->name);
		for (size_t j = 0; j < lb->nrules && !r->name_shared; j++)
			r->name_shared = j != k && lb->rules[j].name &&
					 !strcmp(lb->rules[j].name, r->name);
	}
}

static int by_priority(const void *a, const void *b)
{
	const cfg_lb_rule *x = *(const cfg_lb_rule *const *)a;
	const cfg_lb_rule *y = *(const cfg_lb_rule *const *)b;
	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

void cfg_finish_rules(cfg_ctx *c)
{
	cfg_snapshot *s = c->snap;
	for (size_t i = 0; i < s->nlbs; i++) {
		cfg_lb *lb = &s->lbs[i];
		if (!lb->nrules)
			continue;
		for (size_t k = 0; k < lb->nrules; k++)
			lb->rules[k].index = (uint32_t)k;
		if (lb->nrules > CFG_MAX_RULES) {
			rule_error(
			    c, lb, &lb->rules[CFG_MAX_RULES],
			    "rules: at most " CFG_STR(
				CFG_MAX_RULES) " rules per load balancer");
			lb->nrules = CFG_MAX_RULES;
		}
		mark_shared_names(lb);
		const cfg_lb_rule **order =
		    core_arena_alloc(c->arena, lb->nrules * sizeof(*order));
		size_t n = 0;
		for (size_t k = 0; k < lb->nrules; k++) {
			cfg_lb_rule *r = &lb->rules[k];
			r->eff = build_eff(c, lb, r);
			if (r->disabled)
				continue;
			order[n++] = r;
			lb->rule_fields |= lb_expr_fields(r->expr);
		}
		qsort(order, n, sizeof(*order), by_priority);
		lb->rule_order = order;
		lb->nrule_order = n;
	}
}
