/* cfg_ratelimit.c - rate limits in the config (see cfg_ratelimit.h). */
#include "config/cfg_ratelimit.h"

#include <string.h>

#include "config/cfg_rules.h"
#include "config/cfg_values.h"
#include "config/cfg_yaml.h"
#include "core/core_arena.h"
#include "lb/lb_expr.h"
#include "sec/sec_rlkey.h"

/* One characteristic, at its list item (its error points into it). */
static bool parse_ref(cfg_ctx *c, const cfg_node *item, const char *text,
		      lb_expr_ref *out)
{
	lb_expr_error err;
	if (lb_expr_ref_parse(text, strlen(text), c->arena, out, &err))
		return true;
	size_t n;
	const char *const *names = lb_expr_field_names(&n);
	const char *hint =
	    err.unknown[0] ? cfg_suggest(err.unknown, names, n) : NULL;
	cfg_error(c, item, "characteristics: %s%s%s%s", err.msg,
		  hint ? "; did you mean '" : "", hint ? hint : "",
		  hint ? "'?" : "");
	return false;
}

/* The checks of an edge answer (rate limits, firewall rules). */
static void check_response(cfg_ctx *c, const cfg_node *node,
			   const cfg_rl_response *r)
{
	const cfg_node *resp = cfg_node_get(node, "response");
	if (r->content && strlen(r->content) > CFG_RL_MAX_CONTENT)
		cfg_error(c, cfg_node_get(resp, "content"),
			  "response.content: at most %d bytes",
			  CFG_RL_MAX_CONTENT);
	if (r->content_type &&
	    strlen(r->content_type) > CFG_RL_MAX_CONTENT_TYPE)
		cfg_error(c, cfg_node_get(resp, "content_type"),
			  "response.content_type: at most %d bytes",
			  CFG_RL_MAX_CONTENT_TYPE);
	if (r->content_type && !r->content)
		cfg_error(c, cfg_node_get(resp, "content_type"),
			  "response.content_type: needs response.content (the "
			  "edge's own answer is text/plain)");
}

/* At most cap rules in list: the error is at the first one too many. */
static void list_cap(cfg_ctx *c, const cfg_node *list, size_t n, size_t cap,
		     const char *what)
{
	if (n <= cap)
		return;
	cfg_error(c,
		  list && list->kind == CFG_NODE_SEQ && list->n > cap
		      ? list->items[cap]
		      : list,
		  "%s: at most %zu rules", what, cap);
}

void cfg_finish_waf_rule(cfg_ctx *c, const cfg_node *node, void *base)
{
	cfg_waf_rule *r = base;
	if (!node)
		return;
	cfg_compile_expr(c, node, "expression", r->expression, false, &r->expr);
	check_response(c, node, &r->response);
	if (!r->has_response)
		r->response.status_code = 403;
}

void cfg_finish_waf_rules(cfg_ctx *c, const cfg_node *list)
{
	cfg_waf *w = &c->snap->waf;
	for (size_t i = 0; i < w->ncustom_rules; i++) {
		w->custom_rules[i].index = (uint32_t)i;
		w->fields |= lb_expr_fields(w->custom_rules[i].expr);
	}
	list_cap(c, list, w->ncustom_rules, CFG_MAX_WAF_RULES,
		 "waf.custom_rules");
}

static bool same_ref(const lb_expr_ref *a, const lb_expr_ref *b)
{
	return a->field == b->field && a->hindex == b->hindex &&
	       a->hlen == b->hlen &&
	       (!a->hlen || !strncasecmp(a->hname, b->hname, a->hlen));
}

void cfg_finish_rate_limit(cfg_ctx *c, const cfg_node *node, void *base)
{
	cfg_rate_limit *r = base;
	if (!node)
		return;
	cfg_compile_expr(c, node, "expression", r->expression, false, &r->expr);
	cfg_compile_expr(c, node, "counting_expression", r->counting_expression,
			 true, &r->counting);
	if (!r->burst)
		r->burst = r->requests_per_period;
	/* Absent: per client. Given empty ([]): one count for all. */
	const cfg_node *chars = cfg_node_get(node, "characteristics");
	static const char *const by_client[] = {"ip.src"};
	if (!chars || chars->is_null) {
		r->characteristics = (const char **)by_client;
		r->ncharacteristics = 1;
	}
	if (r->ncharacteristics > SEC_RL_MAX_CHARS)
		cfg_error(c, chars, "characteristics: at most %d",
			  SEC_RL_MAX_CHARS);
	r->refs = core_arena_alloc(
	    c->arena,
	    (r->ncharacteristics ? r->ncharacteristics : 1) * sizeof(*r->refs));
	for (size_t i = 0; i < r->ncharacteristics; i++) {
		const cfg_node *item =
		    chars && chars->kind == CFG_NODE_SEQ && i < chars->n
			? chars->items[i]
			: node;
		if (!r->characteristics[i] ||
		    !parse_ref(c, item, r->characteristics[i],
			       &r->refs[r->nrefs]))
			continue;
		bool dup = false;
		for (size_t j = 0; j < r->nrefs; j++)
			dup = dup || same_ref(&r->refs[j], &r->refs[r->nrefs]);
		if (dup)
			cfg_error(c, item,
				  "characteristics: '%s' is given twice",
				  r->characteristics[i]);
		else
			r->nrefs++;
	}
	check_response(c, node, &r->response);
	if (!r->has_response)
		r->response.status_code = 429;
}

void cfg_finish_rate_limits(cfg_ctx *c, const cfg_node *list)
{
	cfg_snapshot *s = c->snap;
	size_t counting = 0;
	for (size_t i = 0; i < s->nrate_limits; i++) {
		const cfg_rate_limit *r = &s->rate_limits[i];
		s->rl_fields |= lb_expr_fields(r->expr);
		for (size_t k = 0; k < r->nrefs; k++)
			s->rl_fields |= 1u << r->refs[k].field;
		s->rate_limits[i].index = (uint32_t)i;
		if (s->rate_limits[i].counting &&
		    ++counting == CFG_RL_MAX_COUNTING + 1)
			cfg_error(c,
				  list && list->kind == CFG_NODE_SEQ &&
					  i < list->n
				      ? cfg_node_get(list->items[i],
						     "counting_expression")
				      : list,
				  "rate_limits: at most %d rules with a "
				  "counting_expression",
				  CFG_RL_MAX_COUNTING);
	}
	list_cap(c, list, s->nrate_limits, CFG_MAX_RATE_LIMITS, "rate_limits");
}
