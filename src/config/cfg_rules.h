/* cfg_rules.h - load balancer rules in the config: conditions compiled,
 * evaluation order and the load balancer each rule's overrides make.
 *
 * cfg_finish_rule (the rules[] table's hook) compiles a condition where it
 * is written, so its errors carry file:line:col. cfg_finish_rules runs once
 * references are resolved: per load balancer it sorts the enabled rules by
 * priority (equal ones as written) into rule_order, and builds each rule's
 * `eff`, the load balancer with that rule's overrides, so a request that
 * matches one rule steers with it as is (lb_rules.h).
 */
#ifndef MERIDIAN_CFG_RULES_H
#define MERIDIAN_CFG_RULES_H

#include "config/cfg_schema.h"

/* Rules per load balancer (a match is a bit of a 64-bit mask). */
#define CFG_MAX_RULES 64

/* Compile src, the value of key in the mapping node, into *out (NULL for
 * an empty expression: always true); errors point at the character.
 * response: a rate limit's counting_expression, which reads
 * http.response.code alone (no other expression may read it). */
struct lb_expr;
void cfg_compile_expr(cfg_ctx *c, const cfg_node *node, const char *key,
		      const char *src, bool response,
		      const struct lb_expr **out);
void cfg_finish_rule(cfg_ctx *c, const cfg_node *node, void *base);
void cfg_finish_rules(cfg_ctx *c);
/* Copy into dst the fields r overrides, taken from src (r->ov, or r->eff
 * whose derived fields are already built). */
void cfg_lb_overlay(cfg_lb *dst, const cfg_lb_rule *r, const cfg_lb *src);

#endif
