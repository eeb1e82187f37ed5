/* kube_obj.c - Kubernetes objects from JSON; see kube_obj.h. */
#include "kube/kube_obj.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core_arena.h"
#include "core/core_util.h"

const char *kube_kind_name(kube_kind k)
{
	switch (k) {
	case KUBE_INGRESS:
		return "ingresses";
	case KUBE_SERVICE:
		return "services";
	case KUBE_SLICE:
		return "endpointslices";
	default:
		return "?";
	}
}

int64_t kube_parse_time(const char *s)
{
	struct tm tm = {0};
	if (!s)
		return -1;
	const char *e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!e)
		return -1;
	return (int64_t)timegm(&tm);
}

/* A string member, copied to the arena, or NULL. */
static const char *str(core_arena *a, const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		return NULL;
	return core_arena_strndup(a, json_string_value(v),
				  json_string_length(v));
}

static const json_t *obj(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_object(v) ? v : NULL;
}

static const json_t *arr(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_array(v) ? v : NULL;
}

static uint32_t port_num(const json_t *v)
{
	if (!json_is_integer(v))
		return 0;
	json_int_t n = json_integer_value(v);
	return n >= 1 && n <= 65535 ? (uint32_t)n : 0;
}

static void backend(core_arena *a, const json_t *j, kube_backend *b)
{
	*b = (kube_backend){0};
	if (!j)
		return;
	b->set = true;
	const json_t *s = obj(j, "service");
	if (!s)
		return; /* a resource backend */
	b->service = str(a, s, "name");
	const json_t *p = obj(s, "port");
	if (p) {
		b->port_number = port_num(json_object_get(p, "number"));
		b->port_name = str(a, p, "name");
	}
}

static const char *ingress(core_arena *a, const json_t *j, kube_ingress *ing)
{
	const json_t *md = obj(j, "metadata");
	const json_t *an = md ? obj(md, "annotations") : NULL;
	if (an)
		ing->class_annot = str(a, an, "kubernetes.io/ingress.class");
	const json_t *spec = obj(j, "spec");
	if (spec) {
		ing->class_name = str(a, spec, "ingressClassName");
		backend(a, obj(spec, "defaultBackend"), &ing->def);
		const json_t *rules = arr(spec, "rules");
		size_t n = json_array_size(rules);
		if (n > KUBE_MAX_RULES)
			return "too many rules";
		ing->rules =
		    core_arena_alloc(a, (n ? n : 1) * sizeof(*ing->rules));
		for (size_t i = 0; i < n; i++) {
			const json_t *r = json_array_get(rules, i);
			if (!json_is_object(r))
				continue;
			kube_rule *kr = &ing->rules[ing->nrules++];
			kr->host = str(a, r, "host");
			if (kr->host && !*kr->host)
				kr->host = NULL;
			const json_t *http = obj(r, "http");
			const json_t *paths = http ? arr(http, "paths") : NULL;
			size_t np = json_array_size(paths);
			if (np > KUBE_MAX_RULES)
				return "too many paths";
			kr->paths = core_arena_alloc(a, (np ? np : 1) *
							    sizeof(*kr->paths));
			for (size_t k = 0; k < np; k++) {
				const json_t *p = json_array_get(paths, k);
				if (!json_is_object(p))
					continue;
				kube_path *kp = &kr->paths[kr->npaths++];
				kp->path = str(a, p, "path");
				const char *t = str(a, p, "pathType");
				kp->type =
				    !t			   ? KUBE_PATH_IMPL
				    : !strcmp(t, "Exact")  ? KUBE_PATH_EXACT
				    : !strcmp(t, "Prefix") ? KUBE_PATH_PREFIX
							   : KUBE_PATH_IMPL;
				backend(a, obj(p, "backend"), &kp->backend);
			}
		}
	}
	const json_t *st = obj(j, "status");
	const json_t *lb = st ? obj(st, "loadBalancer") : NULL;
	const json_t *li = lb ? arr(lb, "ingress") : NULL;
	size_t n = json_array_size(li);
	if (n > KUBE_MAX_STATUS)
		n = KUBE_MAX_STATUS;
	ing->status = core_arena_alloc(a, (n ? n : 1) * sizeof(*ing->status));
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(li, i);
		if (!json_is_object(e))
			continue;
		kube_lb *l = &ing->status[ing->nstatus++];
		l->hostname = str(a, e, "hostname");
		l->ip = str(a, e, "ip");
	}
	return NULL;
}

static const char *ports(core_arena *a, const json_t *ps, bool svc,
			 kube_port **out, size_t *nout)
{
	size_t n = json_array_size(ps);
	if (n > KUBE_MAX_PORTS)
		return "too many ports";
	*out = core_arena_alloc(a, (n ? n : 1) * sizeof(**out));
	*nout = 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *p = json_array_get(ps, i);
		if (!json_is_object(p))
			continue;
		const char *proto = str(a, p, "protocol");
		if (proto && strcmp(proto, "TCP"))
			continue;
		uint32_t num = port_num(json_object_get(p, "port"));
		if (!num)
			continue;
		kube_port *kp = &(*out)[(*nout)++];
		kp->port = num;
		kp->name = str(a, p, "name");
		if (!kp->name)
			kp->name = "";
		(void)svc;
	}
	return NULL;
}

static const char *slice(core_arena *a, const json_t *j, kube_slice *sl)
{
	const json_t *md = obj(j, "metadata");
	const json_t *labels = md ? obj(md, "labels") : NULL;
	if (labels)
		sl->service = str(a, labels, "kubernetes.io/service-name");
	const json_t *at = json_object_get(j, "addressType");
	bool ip = !json_is_string(at) ||
		  !strcmp(json_string_value(at), "IPv4") ||
		  !strcmp(json_string_value(at), "IPv6");
	const char *why =
	    ports(a, arr(j, "ports"), false, &sl->ports, &sl->nports);
	if (why)
		return why;
	const json_t *eps = arr(j, "endpoints");
	size_t total = 0, n = json_array_size(eps);
	for (size_t i = 0; i < n; i++)
		total +=
		    json_array_size(arr(json_array_get(eps, i), "addresses"));
	if (total > KUBE_MAX_ENDPOINTS)
		return "too many endpoints";
	sl->addrs =
	    core_arena_alloc(a, (total ? total : 1) * sizeof(*sl->addrs));
	if (!ip)
		return NULL; /* FQDN slices: no addresses we can use */
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(eps, i);
		if (!json_is_object(e))
			continue;
		const json_t *c = obj(e, "conditions");
		const json_t *ready = c ? json_object_get(c, "ready") : NULL;
		if (ready && !json_is_true(ready) && !json_is_null(ready))
			continue;
		const json_t *addrs = arr(e, "addresses");
		for (size_t k = 0; k < json_array_size(addrs); k++) {
			const json_t *ad = json_array_get(addrs, k);
			if (json_is_string(ad))
				sl->addrs[sl->naddrs++] =
				    core_arena_strdup(a, json_string_value(ad));
		}
	}
	return NULL;
}

kube_obj *kube_obj_from_json(kube_kind k, const json_t *j, const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	*why = NULL;
	if (!json_is_object(j) || k >= KUBE_NKINDS) {
		*why = "not a JSON object";
		return NULL;
	}
	const json_t *md = obj(j, "metadata");
	if (!md || !json_is_string(json_object_get(md, "name"))) {
		*why = "no metadata.name";
		return NULL;
	}
	/* Names are printed in log lines: none with control characters
	 * (Kubernetes allows none at all; the API is not trusted). */
	for (const char *p = json_string_value(json_object_get(md, "name")); *p;
	     p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f) {
			*why = "a metadata.name with control characters";
			return NULL;
		}
	core_arena *a = core_arena_new(0);
	kube_obj *o = core_arena_alloc(a, sizeof(*o));
	o->arena = a;
	o->kind = k;
	o->name = str(a, md, "name");
	o->rv = str(a, md, "resourceVersion");
	o->created = kube_parse_time(
	    json_string_value(json_object_get(md, "creationTimestamp")));
	if (k == KUBE_INGRESS)
		*why = ingress(a, j, &o->u.ing);
	else if (k == KUBE_SERVICE) {
		const json_t *spec = obj(j, "spec");
		*why = ports(a, spec ? arr(spec, "ports") : NULL, true,
			     &o->u.svc.ports, &o->u.svc.nports);
	} else
		*why = slice(a, j, &o->u.slice);
	if (*why) {
		core_arena_free(a);
		return NULL;
	}
	return o;
}

static json_t *parse(const char *buf, size_t len, const char **why)
{
	json_error_t err;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
	if (!j)
		*why = "invalid JSON";
	return j;
}

kube_obj *kube_obj_decode(kube_kind k, const char *buf, size_t len,
			  const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	json_t *j = parse(buf, len, why);
	if (!j)
		return NULL;
	kube_obj *o = kube_obj_from_json(k, j, why);
	json_decref(j);
	return o;
}

void kube_obj_free(kube_obj *o)
{
	if (o)
		core_arena_free(o->arena);
}

static void copy_rv(char *dst, const json_t *md)
{
	const json_t *rv = md ? json_object_get(md, "resourceVersion") : NULL;
	dst[0] = '\0';
	if (json_is_string(rv) && json_string_length(rv) < 64)
		memcpy(dst, json_string_value(rv), json_string_length(rv) + 1);
}

int kube_event_decode(kube_kind k, const char *buf, size_t len, kube_event *ev,
		      const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	*ev = (kube_event){0};
	json_t *j = parse(buf, len, why);
	if (!j)
		return -1;
	int rc = -1;
	const json_t *t = json_object_get(j, "type");
	const json_t *o = obj(j, "object");
	if (!json_is_string(t) || !o) {
		*why = "no type or object";
		goto out;
	}
	const char *ts = json_string_value(t);
	if (!strcmp(ts, "ERROR")) {
		ev->type = KUBE_EV_ERROR;
		const json_t *c = json_object_get(o, "code");
		ev->code = json_is_integer(c) ? (int)json_integer_value(c) : 0;
		const json_t *m = json_object_get(o, "message");
		snprintf(ev->message, sizeof(ev->message), "%s",
			 json_is_string(m) ? json_string_value(m) : "");
		for (char *p = ev->message; *p; p++) /* it is logged */
			if ((unsigned char)*p < ' ' || *p == 0x7f)
				*p = ' ';
		rc = 0;
		goto out;
	}
	copy_rv(ev->rv, obj(o, "metadata"));
	if (!strcmp(ts, "BOOKMARK")) {
		ev->type = KUBE_EV_BOOKMARK;
		rc = ev->rv[0] ? 0 : -1;
		if (rc)
			*why = "a bookmark without a resourceVersion";
		goto out;
	}
	if (!strcmp(ts, "ADDED"))
		ev->type = KUBE_EV_ADDED;
	else if (!strcmp(ts, "MODIFIED"))
		ev->type = KUBE_EV_MODIFIED;
	else if (!strcmp(ts, "DELETED"))
		ev->type = KUBE_EV_DELETED;
	else {
		*why = "unknown event type";
		goto out;
	}
	ev->obj = kube_obj_from_json(k, o, why);
	rc = ev->obj ? 0 : -1;
	if (!ev->obj) {
		const json_t *md = obj(o, "metadata");
		const json_t *nm = md ? json_object_get(md, "name") : NULL;
		const char *n = json_is_string(nm) ? json_string_value(nm) : "";
		size_t nl = strlen(n);
		bool fit = nl < sizeof(ev->name);
		for (size_t i = 0; i < nl && fit; i++)
			fit = (unsigned char)n[i] >= ' ' && n[i] != 0x7f;
		if (fit)
			memcpy(ev->name, n, nl + 1);
	}
out:
	json_decref(j);
	return rc;
}

int kube_list_decode(kube_kind k, const char *buf, size_t len, kube_list *out,
		     const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	*out = (kube_list){0};
	json_t *j = parse(buf, len, why);
	if (!j)
		return -1;
	int rc = -1;
	const json_t *items = arr(j, "items");
	if (!json_is_object(j) || !items) {
		*why = "no items";
		goto out;
	}
	size_t n = json_array_size(items);
	if (n > KUBE_MAX_OBJECTS) {
		*why = "too many items";
		goto out;
	}
	const json_t *md = obj(j, "metadata");
	copy_rv(out->rv, md);
	/* The token goes into the next page's URL: bounded, and only the
	 * characters of its base64 (anything else is not a token). */
	const json_t *cont = md ? json_object_get(md, "continue") : NULL;
	if (json_is_string(cont) && json_string_length(cont) > 0) {
		const char *c = json_string_value(cont);
		size_t clen = json_string_length(cont);
		if (clen > KUBE_MAX_CONTINUE ||
		    strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
			      "wxyz0123456789+/=-_") != clen) {
			*why =
			    "a continue token that is not base64 or too long";
			goto out;
		}
		out->cont = xstrdup(c);
	}
	out->items = xcalloc(n ? n : 1, sizeof(*out->items));
	for (size_t i = 0; i < n; i++) {
		const char *w;
		kube_obj *o =
		    kube_obj_from_json(k, json_array_get(items, i), &w);
		if (o)
			out->items[out->n++] = o;
	}
	rc = 0;
out:
	json_decref(j);
	return rc;
}

void kube_list_free(kube_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		kube_obj_free(l->items[i]);
	free(l->items);
	free(l->cont);
	*l = (kube_list){0};
}

int kube_list_append(kube_list *all, kube_list *page, const char **why)
{
	if (page->n > KUBE_MAX_OBJECTS - all->n) {
		*why = "more objects than the controller keeps (100000)";
		return -1;
	}
	all->items =
	    xrealloc(all->items, (all->n + page->n + 1) * sizeof(*all->items));
	memcpy(all->items + all->n, page->items,
	       page->n * sizeof(*page->items));
	all->n += page->n;
	page->n = 0;
	memcpy(all->rv, page->rv, sizeof(all->rv));
	free(all->cont);
	all->cont = page->cont;
	page->cont = NULL;
	return 0;
}

/* --- the store ------------------------------------------------------------ */

static size_t find(const kube_store *s, kube_kind k, const char *name,
		   bool *found)
{
	size_t lo = 0, hi = s->n[k];
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(s->objs[k][mid]->name, name);
		if (!c) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

bool kube_store_put(kube_store *s, kube_obj *o)
{
	kube_kind k = o->kind;
	bool found;
	size_t i = find(s, k, o->name, &found);
	if (found) {
		kube_obj_free(s->objs[k][i]);
		s->objs[k][i] = o;
		return true;
	}
	if (s->n[k] >= KUBE_MAX_OBJECTS) {
		kube_obj_free(o); /* a namespace larger than we handle */
		return false;
	}
	if (s->n[k] == s->cap[k]) {
		s->cap[k] = s->cap[k] ? s->cap[k] * 2 : 16;
		s->objs[k] = xrealloc(s->objs[k], s->cap[k] * sizeof(o));
	}
	memmove(&s->objs[k][i + 1], &s->objs[k][i], (s->n[k] - i) * sizeof(o));
	s->objs[k][i] = o;
	s->n[k]++;
	return true;
}

bool kube_store_del(kube_store *s, kube_kind k, const char *name)
{
	bool found;
	size_t i = find(s, k, name, &found);
	if (!found)
		return false;
	kube_obj_free(s->objs[k][i]);
	memmove(&s->objs[k][i], &s->objs[k][i + 1],
		(s->n[k] - i - 1) * sizeof(kube_obj *));
	s->n[k]--;
	return true;
}

void kube_store_replace(kube_store *s, kube_kind k, kube_list *l)
{
	for (size_t i = 0; i < s->n[k]; i++)
		kube_obj_free(s->objs[k][i]);
	s->n[k] = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (l->items[i]->kind == k)
			kube_store_put(s, l->items[i]);
		else
			kube_obj_free(l->items[i]);
		l->items[i] = NULL;
	}
	l->n = 0;
}

const kube_obj *kube_store_get(const kube_store *s, kube_kind k,
			       const char *name)
{
	bool found;
	size_t i = find(s, k, name, &found);
	return found ? s->objs[k][i] : NULL;
}

void kube_store_clear(kube_store *s)
{
	for (int k = 0; k < KUBE_NKINDS; k++) {
		for (size_t i = 0; i < s->n[k]; i++)
			kube_obj_free(s->objs[k][i]);
		free(s->objs[k]);
	}
	*s = (kube_store){0};
}
