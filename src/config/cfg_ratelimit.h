/* cfg_ratelimit.h - rate limits and firewall custom rules in the config:
 * the expressions compiled and the characteristics parsed where they are
 * written, so errors carry file:line:col (a rate limit's state lives in
 * sec_ratelimit, made by the edge). */
#ifndef MERIDIAN_CFG_RATELIMIT_H
#define MERIDIAN_CFG_RATELIMIT_H

#include "config/cfg_schema.h"

/* Rate limits in one config. */
#define CFG_MAX_RATE_LIMITS 32
/* Of them, with a counting_expression (a request carries the keys of
 * these to its response: px_client). */
#define CFG_RL_MAX_COUNTING 4
/* The longest response body and Content-Type. */
#define CFG_RL_MAX_CONTENT	4096
#define CFG_RL_MAX_CONTENT_TYPE 64

/* Firewall custom rules in one config. */
#define CFG_MAX_WAF_RULES 64

/* waf.custom_rules[]'s hook, and across the list (cfg_finish_root). */
void cfg_finish_waf_rule(cfg_ctx *c, const cfg_node *node, void *base);
void cfg_finish_waf_rules(cfg_ctx *c, const cfg_node *list);

/* The rate_limits[] table's hook. */
void cfg_finish_rate_limit(cfg_ctx *c, const cfg_node *node, void *base);
/* Across the list (cfg_finish_root): indexes, the count, unique names. */
void cfg_finish_rate_limits(cfg_ctx *c, const cfg_node *list);

#endif
