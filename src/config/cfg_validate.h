/* cfg_validate.h - the finish hooks of the key tables (internal).
 *
 * Each runs after its table's keys are applied and checks what one key
 * cannot check alone, or computes a default from another key. node is the
 * object's mapping (NULL when the object was absent).
 */
#ifndef MERIDIAN_CFG_VALIDATE_H
#define MERIDIAN_CFG_VALIDATE_H

#include "config/cfg_schema.h"

void cfg_finish_edge(cfg_ctx *c, const cfg_node *node, void *base);
void cfg_finish_api(cfg_ctx *c, const cfg_node *node, void *base);
void cfg_finish_record(cfg_ctx *c, const cfg_node *node, void *base);
void cfg_finish_zone(cfg_ctx *c, const cfg_node *node, void *base);
void cfg_finish_network(cfg_ctx *c, const cfg_node *node, void *base);
void cfg_finish_origin(cfg_ctx *c, const cfg_node *node, void *base);
void cfg_finish_pool(cfg_ctx *c, const cfg_node *node, void *base);
void cfg_finish_lb(cfg_ctx *c, const cfg_node *node, void *base);
/* session_affinity_attributes (of a load balancer or a rule's overrides). */
void cfg_finish_affinity(cfg_ctx *c, const cfg_node *node, void *base);
/* default_pools (the list's node, NULL-safe): no pool twice. For
 * cfg_finish_lb and a rule's overrides. */
void cfg_check_default_pools(cfg_ctx *c, const cfg_node *dp);
/* lb->random_pool_weights: the map-shaped view of lb->pool_weights (NULL
 * when there are none). For cfg_finish_lb and a rule's overrides. */
void cfg_lb_weight_map(cfg_ctx *c, cfg_lb *lb);
void cfg_finish_root(cfg_ctx *c, const cfg_node *node, void *base);
/* After references are resolved and nothing failed: what is valid but
 * will not work as likely meant, into c->warns. */
void cfg_warn_checks(cfg_ctx *c);

#endif
