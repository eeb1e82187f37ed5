/* kube_map.h - Ingress objects -> the connector's rule set. Pure: the
 * store in, a tun_ruleset and a list of problems out. The order of the
 * rules (first match wins in the connector) follows nginx-ingress; see
 * docs/ARCHITECTURE.md "Ingress controller" and docs/TUNNEL.md.
 */
#ifndef MERIDIAN_KUBE_MAP_H
#define MERIDIAN_KUBE_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "kube/kube_obj.h"
#include "tunnel/tun_rules.h"

/* Bounds on what a namespace's objects (the API is not trusted) make the
 * connector hold and the controller log: rules past KUBE_MAX_MAP_RULES
 * (oldest Ingresses first) are left out, one problem says so; problems
 * past KUBE_MAX_PROBLEMS are counted in one last line. */
#define KUBE_MAX_MAP_RULES 16384
#define KUBE_MAX_PROBLEMS  64

typedef struct kube_problems {
	char **msg; /* malloc'd, one line each, in the order found */
	size_t n;
	size_t more; /* found past KUBE_MAX_PROBLEMS (while building) */
} kube_problems;

/* Whether an Ingress is of class cls: spec.ingressClassName, else the
 * annotation kubernetes.io/ingress.class; one with neither is ours when
 * without_class (kubernetes.without_class: our class is the default). */
bool kube_ingress_ours(const kube_ingress *ing, const char *cls,
		       bool without_class);

/* The rule set for the Ingresses of class cls in store s (namespace ns
 * for the texts). Problems (a backend naming a missing Service or port, a
 * bad host or path) go to p (may be NULL); such a path answers 503. */
tun_ruleset *kube_map_build(const kube_store *s, const char *ns,
			    const char *cls, bool without_class,
			    kube_problems *p);

void kube_problems_free(kube_problems *p);
bool kube_problems_equal(const kube_problems *a, const kube_problems *b);

#endif
