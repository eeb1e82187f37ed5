/* kube_map.c - Ingress objects -> rule set; see kube_map.h.
 *
 * Order (first match wins in the connector), as nginx-ingress serves it:
 * 1. hosts: exact names first, then wildcards (longer suffix first; a
 *    wildcard covers exactly one label, as the Ingress API says), then
 *    the rules without a host;
 * 2. within a host: longer paths first; at equal length Exact before
 *    Prefix/ImplementationSpecific; then the older Ingress
 *    (creationTimestamp, then name), then the Ingress's own order;
 * 3. after the paths of a host, a catch-all for that host, as an nginx
 *    server block answers every path of its host: the spec.defaultBackend
 *    of the oldest Ingress with a rule for that host that has one (a rule
 *    with a host and no paths gives its host just that), else the
 *    catch-all below;
 * 4. last, the catch-all: spec.defaultBackend of the oldest Ingress that
 *    has one, else http_status:404.
 */
#include "kube/kube_map.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_arena.h"
#include "core/core_util.h"

bool kube_ingress_ours(const kube_ingress *ing, const char *cls,
		       bool without_class)
{
	if (ing->class_name)
		return !strcmp(ing->class_name, cls);
	if (ing->class_annot)
		return !strcmp(ing->class_annot, cls);
	return without_class;
}

static void push(kube_problems *p, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void push(kube_problems *p, const char *fmt, va_list ap)
{
	char buf[512];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	/* Logged: hosts and paths from the API (invalid ones are what is
	 * reported) must not bring control characters along. */
	for (char *c = buf; *c; c++)
		if ((unsigned char)*c < ' ' || *c == 0x7f)
			*c = '?';
	p->msg = xrealloc(p->msg, (p->n + 1) * sizeof(*p->msg));
	p->msg[p->n++] = xstrdup(buf);
}

/* A problem; past KUBE_MAX_PROBLEMS only counted. */
static void problem(kube_problems *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problem(kube_problems *p, const char *fmt, ...)
{
	if (!p)
		return;
	if (p->n >= KUBE_MAX_PROBLEMS) {
		p->more++;
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	push(p, fmt, ap);
	va_end(ap);
}

/* A last line, whatever the count. */
static void problem_last(kube_problems *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problem_last(kube_problems *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	push(p, fmt, ap);
	va_end(ap);
}

void kube_problems_free(kube_problems *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->msg[i]);
	free(p->msg);
	*p = (kube_problems){0};
}

bool kube_problems_equal(const kube_problems *a, const kube_problems *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->msg[i], b->msg[i]))
			return false;
	return true;
}

typedef struct ent {
	const char *host; /* lowercased; NULL: any */
	size_t host_len;
	bool wildcard;
	const char *path; /* NULL: any */
	size_t path_len;
	bool exact;
	int64_t created;
	const char *ing;
	size_t order;
	tun_service svc;
	bool host_only;		 /* a rule with a host and no paths */
	const tun_service *hdef; /* its Ingress's defaultBackend, or NULL */
} ent;

static int host_class(const ent *e)
{
	return !e->host ? 2 : e->wildcard ? 1 : 0;
}

static int cmp_ent(const void *pa, const void *pb)
{
	const ent *a = pa, *b = pb;
	int ca = host_class(a), cb = host_class(b);
	if (ca != cb)
		return ca - cb;
	if (a->host) {
		if (a->host_len != b->host_len && ca == 1)
			return a->host_len > b->host_len ? -1 : 1;
		int c = strcmp(a->host, b->host);
		if (c)
			return c;
	}
	size_t la = a->path ? a->path_len : 0, lb = b->path ? b->path_len : 0;
	if (la != lb)
		return la > lb ? -1 : 1;
	if (a->exact != b->exact)
		return a->exact ? -1 : 1;
	if (a->created != b->created)
		return a->created < b->created ? -1 : 1;
	int c = strcmp(a->ing, b->ing);
	if (c)
		return c;
	return a->order < b->order ? -1 : a->order > b->order;
}

static int cmp_ing(const void *pa, const void *pb)
{
	const kube_obj *a = *(const kube_obj *const *)pa;
	const kube_obj *b = *(const kube_obj *const *)pb;
	if (a->created != b->created)
		return a->created < b->created ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* The endpoints of backend b into svc (kind TUN_SVC_ENDPOINTS). */
static void resolve(core_arena *a, const kube_store *s, const char *ns,
		    const char *ing, const kube_backend *b, tun_service *svc,
		    kube_problems *p)
{
	char text[512];
	svc->kind = TUN_SVC_ENDPOINTS;
	if (!b->service) {
		svc->text = "(resource backend)";
		svc->why = "is a resource backend, which is not supported";
		problem(p, "ingress %s: a resource backend is not supported",
			ing);
		return;
	}
	if (b->port_number)
		snprintf(text, sizeof(text), "%s/%s:%u", ns, b->service,
			 b->port_number);
	else
		snprintf(text, sizeof(text), "%s/%s:%s", ns, b->service,
			 b->port_name ? b->port_name : "?");
	svc->text = core_arena_strdup(a, text);
	const kube_obj *so = kube_store_get(s, KUBE_SERVICE, b->service);
	if (!so) {
		svc->why = "does not exist (no such Service)";
		problem(p, "ingress %s: backend %s: no such Service", ing,
			text);
		return;
	}
	const kube_port *sp = NULL;
	for (size_t i = 0; i < so->u.svc.nports && !sp; i++) {
		const kube_port *q = &so->u.svc.ports[i];
		if (b->port_number
			? q->port == b->port_number
			: b->port_name && !strcmp(q->name, b->port_name))
			sp = q;
	}
	if (!sp) {
		svc->why = "does not exist (the Service has no such port)";
		problem(p,
			"ingress %s: backend %s: the Service has no such "
			"port",
			ing, text);
		return;
	}
	/* count, then fill: the ready addresses of the service's slices,
	 * with the slice port named as the service port */
	size_t n = 0;
	for (int pass = 0; pass < 2; pass++) {
		tun_svc_addr *eps = NULL;
		if (pass) {
			if (!n)
				break;
			eps = core_arena_alloc(a, n * sizeof(*eps));
			svc->eps = eps;
		}
		size_t k = 0;
		for (size_t i = 0; i < s->n[KUBE_SLICE]; i++) {
			const kube_slice *sl = &s->objs[KUBE_SLICE][i]->u.slice;
			if (!sl->service || strcmp(sl->service, b->service))
				continue;
			uint32_t port = 0;
			for (size_t j = 0; j < sl->nports && !port; j++)
				if (!strcmp(sl->ports[j].name, sp->name))
					port = sl->ports[j].port;
			if (!port)
				continue;
			for (size_t j = 0; j < sl->naddrs; j++) {
				tun_svc_addr ad = {0};
				struct sockaddr_in *v4 = (void *)&ad.ss;
				struct sockaddr_in6 *v6 = (void *)&ad.ss;
				if (inet_pton(AF_INET, sl->addrs[j],
					      &v4->sin_addr) == 1) {
					v4->sin_family = AF_INET;
					v4->sin_port = htons((uint16_t)port);
					ad.len = sizeof(*v4);
				} else if (inet_pton(AF_INET6, sl->addrs[j],
						     &v6->sin6_addr) == 1) {
					v6->sin6_family = AF_INET6;
					v6->sin6_port = htons((uint16_t)port);
					ad.len = sizeof(*v6);
				} else {
					continue;
				}
				bool dup = false;
				for (size_t q = 0; pass && q < k && !dup; q++)
					dup = !memcmp(&eps[q], &ad, sizeof(ad));
				if (dup)
					continue;
				if (pass)
					eps[k] = ad;
				k++;
			}
		}
		if (pass)
			svc->neps = (uint32_t)k;
		else
			n = k;
	}
}

static char *lower(core_arena *a, const char *s)
{
	char *h = core_arena_strdup(a, s);
	for (char *q = h; *q; q++)
		if (*q >= 'A' && *q <= 'Z')
			*q = (char)(*q + 32);
	return h;
}

/* The fields of an entry its Ingress and rule give (host: NULL for a
 * rule without one); the path's are the caller's. */
static void ent_init(core_arena *a, ent *e, const kube_obj *o, const char *host,
		     size_t order, const tun_service *hdef)
{
	if (host) {
		e->host = lower(a, host);
		e->host_len = strlen(e->host);
		e->wildcard = e->host[0] == '*';
	}
	e->created = o->created;
	e->ing = o->name;
	e->order = order;
	e->hdef = hdef;
}

tun_ruleset *kube_map_build(const kube_store *s, const char *ns,
			    const char *cls, bool without_class,
			    kube_problems *p)
{
	core_arena *a = core_arena_new(0);
	size_t ning = 0, nent = 0;
	const kube_obj **ings = xcalloc(s->n[KUBE_INGRESS] + 1, sizeof(*ings));
	for (size_t i = 0; i < s->n[KUBE_INGRESS]; i++) {
		const kube_obj *o = s->objs[KUBE_INGRESS][i];
		if (!kube_ingress_ours(&o->u.ing, cls, without_class))
			continue;
		ings[ning++] = o;
		for (size_t r = 0; r < o->u.ing.nrules; r++)
			nent += MAX(o->u.ing.rules[r].npaths, 1);
	}
	qsort(ings, ning, sizeof(*ings), cmp_ing);
	if (nent > KUBE_MAX_MAP_RULES)
		nent = KUBE_MAX_MAP_RULES;
	ent *ents = xcalloc(nent + 1, sizeof(*ents));
	size_t ne = 0, dropped = 0;
	tun_service def = {
	    .kind = TUN_SVC_STATUS, .status = 404, .text = "http_status:404"};
	bool have_def = false;
	for (size_t i = 0; i < ning; i++) {
		const kube_obj *o = ings[i];
		const kube_ingress *ing = &o->u.ing;
		tun_service *hdef = NULL;
		if (ing->def.set) {
			hdef = core_arena_alloc(a, sizeof(*hdef));
			*hdef = (tun_service){0};
			resolve(a, s, ns, o->name, &ing->def, hdef, p);
		}
		if (hdef && !have_def) {
			def = *hdef;
			have_def = true;
		}
		size_t order = 0;
		for (size_t r = 0; r < ing->nrules; r++) {
			const kube_rule *kr = &ing->rules[r];
			const char *why = kr->host
					      ? tun_ingress_check_hostname(
						    kr->host, strlen(kr->host))
					      : NULL;
			if (why) {
				problem(p, "ingress %s: host '%s': %s", o->name,
					kr->host, why);
				continue;
			}
			if (kr->host && !kr->npaths) {
				/* all of the host goes to the default */
				if (ne == KUBE_MAX_MAP_RULES) {
					dropped++;
					continue;
				}
				ent *e = &ents[ne++];
				*e = (ent){0};
				ent_init(a, e, o, kr->host, order++, hdef);
				e->host_only = true;
				continue;
			}
			for (size_t k = 0; k < kr->npaths; k++) {
				const kube_path *kp = &kr->paths[k];
				if (ne == KUBE_MAX_MAP_RULES) {
					dropped++;
					continue;
				}
				ent *e = &ents[ne];
				*e = (ent){0};
				e->exact = kp->type == KUBE_PATH_EXACT;
				const char *path = kp->path ? kp->path : "/";
				if (e->exact && !kp->path) {
					problem(p,
						"ingress %s: an Exact path "
						"needs a path",
						o->name);
					continue;
				}
				why =
				    tun_ingress_check_path(path, strlen(path));
				if (why) {
					problem(p, "ingress %s: path '%s': %s",
						o->name, path, why);
					continue;
				}
				ent_init(a, e, o, kr->host, order++, hdef);
				e->path = core_arena_strdup(a, path);
				e->path_len = strlen(path);
				while (!e->exact && e->path_len > 1 &&
				       e->path[e->path_len - 1] == '/')
					e->path_len--;
				resolve(a, s, ns, o->name, &kp->backend,
					&e->svc, p);
				ne++;
			}
		}
	}
	if (p && p->more)
		problem_last(p, "... and %zu more problems", p->more);
	if (p && dropped)
		problem_last(p,
			     "%zu paths over the %d the controller serves "
			     "(oldest Ingresses first) are left out",
			     dropped, KUBE_MAX_MAP_RULES);
	if (p)
		p->more = 0;
	qsort(ents, ne, sizeof(*ents), cmp_ent);
	/* rules: the entries, a catch-all after each host, the catch-all */
	tun_rule *rules = core_arena_alloc(a, (2 * ne + 1) * sizeof(*rules));
	size_t nr = 0;
	const ent *hbest = NULL; /* of this host: the oldest with a default */
	for (size_t i = 0; i < ne; i++) {
		const ent *e = &ents[i];
		if (e->hdef && (!hbest || e->created < hbest->created ||
				(e->created == hbest->created &&
				 strcmp(e->ing, hbest->ing) < 0)))
			hbest = e;
		if (!e->host_only) {
			tun_rule *r = &rules[nr++];
			r->hostname = e->host;
			r->hostname_len = e->host_len;
			r->wildcard = e->wildcard;
			r->one_label = e->wildcard;
			r->path = e->path;
			r->path_len = e->path_len;
			r->exact = e->exact;
			r->svc = e->svc;
		}
		bool last_of_host =
		    e->host && (i + 1 == ne || !ents[i + 1].host ||
				strcmp(ents[i + 1].host, e->host));
		if (last_of_host) {
			tun_rule *h = &rules[nr++];
			h->hostname = e->host;
			h->hostname_len = e->host_len;
			h->wildcard = e->wildcard;
			h->one_label = e->wildcard;
			h->svc = hbest ? *hbest->hdef : def;
		}
		if (!e->host || last_of_host)
			hbest = NULL;
	}
	rules[nr++].svc = def;
	free(ents);
	free(ings);
	return tun_ruleset_new(a, rules, nr, NULL, "kubernetes");
}
