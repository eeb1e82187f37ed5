/* tun_rules.h - a connector's rule set: the ingress rules and where their
 * services are, as one immutable unit that a running connector can swap
 * (the ingress controller builds a new one per change). See
 * docs/ARCHITECTURE.md "Ingress controller".
 *
 * A set is reference-counted by the connector thread alone: whoever makes
 * one holds the first reference and hands it over (to the connector, or
 * to tun_live_publish); each stream holds one while it lives. The only
 * mutable part is the round-robin position of each rule, also touched by
 * the connector thread alone. No I/O.
 */
#ifndef MERIDIAN_TUN_RULES_H
#define MERIDIAN_TUN_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "tunnel/tun_ingress.h"

struct core_arena;

typedef struct tun_ruleset {
	struct core_arena *arena; /* owns rules/addr when not NULL */
	const tun_rule *rules;	  /* nrules >= 1, the last a catch-all */
	size_t nrules;
	const tun_svc_addr *addr; /* per rule: a TUN_SVC_HTTP's address; may
				     be NULL when no rule is TUN_SVC_HTTP */
	uint32_t *next;		  /* per rule: the round-robin position */
	uint32_t refs;
	const char *origin; /* "the file", "kubernetes": for logs */
} tun_ruleset;

/* A set over rules[n] and addr[n] (NULL allowed), owning arena a (NULL:
 * the caller keeps them alive longer than the set). One reference. */
tun_ruleset *tun_ruleset_new(struct core_arena *a, const tun_rule *rules,
			     size_t n, const tun_svc_addr *addr,
			     const char *origin);
void tun_ruleset_ref(tun_ruleset *rs);
/* Drop a reference; the last frees the set (and its arena). NULL is a
 * no-op. */
void tun_ruleset_unref(tun_ruleset *rs);

/* Where a stream matched to rule i connects: 0 and *out, or -1 when the
 * rule's service is an endpoint set with no endpoint (answer 503), or
 * not an HTTP service. Endpoint sets are taken round-robin. */
int tun_ruleset_pick(tun_ruleset *rs, size_t i, tun_svc_addr *out);

#endif
