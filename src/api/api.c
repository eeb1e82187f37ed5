/* api.c - see api.h. Routes, the envelope, authentication, paging, and the
 * handlers of monitors, pools, load balancers, pool health, references and
 * health events. */
#include "api/api_tunnels.h"
#include "api/api.h"
#include "api/api_certs.h"
#include "api/api_env.h"
#include "api/api_preview.h"
#include "api/api_regions.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "cluster/clu_edge.h"
#include "config/cfg_load.h"
#include "config/cfg_json.h"
#include "config/cfg_values.h"
#include "core/core_log.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "edge/edge_ctl.h"
#include "health/health_fsm.h"
#include "store/store.h"

#define PER_PAGE_DEFAULT 100
#define PER_PAGE_MAX	 1000
#define MAX_SEGS	 10

int api_owns(const char *path)
{
	return strncmp(path, "/client/v4/", 11) == 0;
}

/* ---- query strings ----------------------------------------------------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower((unsigned char)c); /* a byte of UTF-8 may be negative */
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode a path segment in place ("%2A" -> '*'; a '%' not
 * followed by two hex digits stays as it is, '+' too). -1 for %00. */
static int path_decode(char *s)
{
	char *o = s;
	for (const char *p = s; *p; p++) {
		if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
			int c = hexval(p[1]) * 16 + hexval(p[2]);
			if (!c)
				return -1;
			*o++ = (char)c;
			p += 2;
			continue;
		}
		*o++ = *p;
	}
	*o = '\0';
	return 0;
}

/* The decoded value of key in rq's query, into out: *val is out, or NULL
 * when the key is absent. A value that does not fit is not cut (a cut one
 * could mean something else): -1 with a 400 (1009) naming the key made. */
static int query_get(const api_request *rq, api_response *rs, const char *key,
		     char *out, size_t size, const char **val)
{
	*val = NULL;
	if (!rq->query)
		return 0;
	size_t klen = strlen(key);
	for (const char *p = rq->query; *p;) {
		const char *end = strchr(p, '&');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n > klen && !memcmp(p, key, klen) && p[klen] == '=') {
			size_t o = 0;
			for (size_t i = klen + 1; i < n; i++) {
				if (o + 1 >= size) {
					api_reply_err(rs, 400, API_E_BAD_QUERY,
						      "%s: longer than %zu "
						      "bytes",
						      key, size - 1);
					return -1;
				}
				int c = (unsigned char)p[i];
				if (c == '+')
					c = ' ';
				else if (c == '%' && i + 2 < n + 1 &&
					 hexval(p[i + 1]) >= 0 &&
					 hexval(p[i + 2]) >= 0) {
					c = hexval(p[i + 1]) * 16 +
					    hexval(p[i + 2]);
					i += 2;
					if (c == 0) {
						/* would cut the value short */
						api_reply_err(
						    rs, 400, API_E_BAD_QUERY,
						    "%s: contains a NUL byte "
						    "(%%00)",
						    key);
						return -1;
					}
				}
				out[o++] = (char)c;
			}
			out[o] = '\0';
			*val = out;
			return 0;
		}
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

/* page and per_page: -1 with the reply made on a bad value. */
static int paging(const api_request *rq, api_response *rs, size_t *page,
		  size_t *per_page)
{
	char buf[32];
	const char *val;
	int64_t v;
	*page = 1;
	*per_page = PER_PAGE_DEFAULT;
	if (query_get(rq, rs, "page", buf, sizeof(buf), &val) < 0)
		return -1;
	if (val) {
		if (cfg_parse_int(buf, &v) || v < 1 || v > 1000000) {
			api_reply_err(rs, 400, API_E_BAD_QUERY,
				      "page: expected a number >= 1, got '%s'",
				      buf);
			return -1;
		}
		*page = (size_t)v;
	}
	if (query_get(rq, rs, "per_page", buf, sizeof(buf), &val) < 0)
		return -1;
	if (val) {
		if (cfg_parse_int(buf, &v) || v < 1 || v > PER_PAGE_MAX) {
			api_reply_err(rs, 400, API_E_BAD_QUERY,
				      "per_page: expected 1..%d, got '%s'",
				      PER_PAGE_MAX, buf);
			return -1;
		}
		*per_page = (size_t)v;
	}
	return 0;
}

/* Keep page `page` of the array all (consumed) and reply with it. */
static void reply_page(api_response *rs, json_t *all, size_t page,
		       size_t per_page)
{
	size_t total = json_array_size(all);
	json_t *out = json_array();
	size_t start = (page - 1) * per_page;
	for (size_t i = start; i < total && i < start + per_page; i++)
		json_array_append(out, json_array_get(all, i));
	json_decref(all);
	json_t *info = json_object();
	json_object_set_new(info, "page", json_integer((json_int_t)page));
	json_object_set_new(info, "per_page",
			    json_integer((json_int_t)per_page));
	json_object_set_new(info, "count",
			    json_integer((json_int_t)json_array_size(out)));
	json_object_set_new(info, "total_count",
			    json_integer((json_int_t)total));
	json_object_set_new(
	    info, "total_pages",
	    json_integer((json_int_t)((total + per_page - 1) / per_page)));
	api_reply(rs, 200, out, info, NULL);
}

/* ---- authentication ---------------------------------------------------- */

static void sha256(const char *s, size_t n, unsigned char out[32])
{
	unsigned int len = 32;
	if (!EVP_Digest(s, n, out, &len, EVP_sha256(), NULL))
		memset(out, 0, 32);
}

/* Compare in constant time whatever the lengths: hashes of both. */
static bool token_eq(const char *a, size_t alen, const char *b)
{
	unsigned char ha[32], hb[32];
	sha256(a, alen, ha);
	sha256(b, strlen(b), hb);
	return CRYPTO_memcmp(ha, hb, 32) == 0;
}

/* 0 when allowed; else the reply is made. */
static int authorize(const cfg_snapshot *cfg, const api_request *rq, bool write,
		     api_response *rs)
{
	const char *env = getenv("MERIDIAN_API_TOKEN");
	bool have_env = env && *env;
	if (cfg->api.ntokens == 0 && !have_env) {
		/* No tokens: open only on loopback (start-up and every change
		 * refuse the other case; this is the last line). */
		if (core_sock_is_loopback(&cfg->edge.listen_admin.ss))
			return 0;
		api_reply_err(rs, 401, API_E_AUTH,
			      "no API tokens are configured for this "
			      "non-loopback listener");
		return -1;
	}
	const char *h = rq->authorization;
	if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
		api_reply_err(rs, 401, API_E_AUTH,
			      "authentication required: Authorization: Bearer "
			      "<token>");
		return -1;
	}
	const char *t = h + 7;
	while (*t == ' ')
		t++;
	size_t tlen = strlen(t);
	while (tlen && (t[tlen - 1] == ' ' || t[tlen - 1] == '\t'))
		tlen--;
	int scope = -1;
	/* Every token is compared (no early exit on a match). */
	for (size_t i = 0; i < cfg->api.ntokens; i++)
		if (token_eq(t, tlen, cfg->api.tokens[i].token) &&
		    (int)cfg->api.tokens[i].scope > scope)
			scope = (int)cfg->api.tokens[i].scope;
	if (have_env && token_eq(t, tlen, env))
		scope = CFG_SCOPE_EDIT;
	if (scope < 0) {
		api_reply_err(rs, 401, API_E_AUTH, "invalid token");
		return -1;
	}
	if (write && scope != CFG_SCOPE_EDIT) {
		api_reply_err(rs, 403, API_E_SCOPE,
			      "this token is read-only: changes need an edit "
			      "token");
		return -1;
	}
	return 0;
}

/* ---- lookups ----------------------------------------------------------- */

static const cfg_monitor *find_monitor(const cfg_snapshot *c, const char *id)
{
	for (size_t i = 0; i < c->nmonitors; i++)
		if (!strcmp(c->monitors[i].id, id))
			return &c->monitors[i];
	return NULL;
}

static const cfg_lb *find_lb(const cfg_snapshot *c, const char *id)
{
	for (size_t i = 0; i < c->nlbs; i++)
		if (!strcmp(c->lbs[i].id, id))
			return &c->lbs[i];
	return NULL;
}

/* A zone's id: stable, derived from its name (32 hex like Cloudflare's). */
static void zone_id(const char *name, char out[33])
{
	unsigned char h[32];
	sha256(name, strlen(name), h);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* The configured zone (zones[]) named by ident, its name or its id, or
 * NULL. */
static const char *configured_zone(const cfg_snapshot *c, const char *ident)
{
	for (size_t i = 0; i < c->nzones; i++) {
		char id[33];
		zone_id(c->zones[i].name, id);
		if (!strcasecmp(c->zones[i].name, ident) || !strcmp(id, ident))
			return c->zones[i].name;
	}
	return NULL;
}

/* The zone of a load balancers path named by ident: a configured zone's
 * name or id, or any host name (a zone need not be served in DNS to group
 * load balancers; such a zone has no id: ids are only handed out, by
 * /zones, for configured zones). Writes the lowercase name to out; false
 * when unknown. */
static bool resolve_zone(const cfg_snapshot *c, const char *ident, char *out,
			 size_t size)
{
	const char *z = configured_zone(c, ident);
	if (z) {
		snprintf(out, size, "%s", z);
		return true;
	}
	if (strlen(ident) >= size || !strchr(ident, '.') ||
	    !cfg_is_hostname(ident, false))
		return false;
	for (size_t i = 0; ident[i]; i++)
		out[i] = (char)tolower((unsigned char)ident[i]);
	out[strlen(ident)] = '\0';
	return true;
}

static bool lb_fields_use_pool(const cfg_lb *lb, const cfg_pool *p)
{
	for (size_t i = 0; i < lb->ndefault_pools; i++)
		if (lb->default_pools[i] == p)
			return true;
	if (lb->fallback_pool == p)
		return true;
	const cfg_pool_map *maps[3] = {lb->region_pools, lb->country_pools,
				       lb->pop_pools};
	size_t nmaps[3] = {lb->nregion_pools, lb->ncountry_pools,
			   lb->npop_pools};
	for (int m = 0; m < 3; m++)
		for (size_t i = 0; i < nmaps[m]; i++)
			for (size_t j = 0; j < maps[m][i].npools; j++)
				if (maps[m][i].pools[j] == p)
					return true;
	for (size_t i = 0; i < lb->npool_weights; i++)
		if (lb->pool_weights[i].pool == p)
			return true;
	return false;
}

/* Its rules' overrides included. */
static bool lb_uses_pool(const cfg_lb *lb, const cfg_pool *p)
{
	if (lb_fields_use_pool(lb, p))
		return true;
	for (size_t i = 0; i < lb->nrules; i++)
		if (lb_fields_use_pool(lb->rules[i].eff, p))
			return true;
	return false;
}

/* ---- rendering --------------------------------------------------------- */

typedef struct times {
	store_obj *o[3];
	size_t n[3];
} times;

static int load_times(store *st, void *arg)
{
	times *t = arg;
	for (int k = 0; k < 3; k++)
		if (store_list(st, (store_kind)k, NULL, &t->o[k], &t->n[k]) < 0)
			t->n[k] = 0;
	return 0;
}

static void times_free(times *t)
{
	for (int k = 0; k < 3; k++)
		store_objs_free(t->o[k], t->n[k]);
}

/* Add created_on/modified_on (API objects) and Meridian's "source". */
static json_t *decorate(json_t *j, const times *t, store_kind k, const char *id,
			bool from_api)
{
	const store_obj *o = NULL;
	for (size_t i = 0; from_api && i < t->n[k]; i++)
		if (!strcmp(t->o[k][i].id, id))
			o = &t->o[k][i];
	json_object_set_new(j, "created_on",
			    o ? json_string(o->created_on) : json_null());
	json_object_set_new(j, "modified_on",
			    o ? json_string(o->modified_on) : json_null());
	json_object_set_new(j, "source",
			    json_string(from_api ? "api" : "file"));
	return j;
}

static json_t *render(const void *obj, store_kind k, const times *t)
{
	switch (k) {
	case STORE_MONITOR: {
		const cfg_monitor *m = obj;
		return decorate(cfg_json_monitor(m), t, k, m->id, m->from_api);
	}
	case STORE_POOL: {
		const cfg_pool *p = obj;
		return decorate(cfg_json_pool(p), t, k, p->id, p->from_api);
	}
	default: {
		const cfg_lb *lb = obj;
		return decorate(cfg_json_lb(lb), t, k, lb->id, lb->from_api);
	}
	}
}

/* ---- requests ---------------------------------------------------------- */

typedef struct req_ctx {
	edge *e;
	const edge_snapshot *snap; /* referenced for the request */
	const cfg_snapshot *cfg;
	const api_request *rq;
	api_response *rs;
	const char *seg[MAX_SEGS];
	size_t nseg;
	char path[2048];
} req_ctx;

/* query_get() of the request. */
static int qget(req_ctx *c, const char *key, char *out, size_t size,
		const char **val)
{
	return query_get(c->rq, c->rs, key, out, size, val);
}

static bool is(const req_ctx *c, const char *m)
{
	return !strcmp(c->rq->method, m);
}

static void method_not_allowed(req_ctx *c, const char *allowed)
{
	api_reply_method(c->rs, c->rq->method, allowed);
}

/* The body as a JSON object, or NULL with the reply made. */
static json_t *body_object(req_ctx *c)
{
	json_error_t je;
	if (!c->rq->body_len) {
		api_reply_err(c->rs, 400, API_E_BAD_JSON,
			      "a JSON object body is required");
		return NULL;
	}
	json_t *j = json_loadb(c->rq->body, c->rq->body_len,
			       JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		api_reply_err(
		    c->rs, 400, API_E_BAD_JSON,
		    "request body is not valid JSON: line %d column %d: "
		    "%s",
		    je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		api_reply_err(c->rs, 400, API_E_BAD_JSON,
			      "request body must be a JSON object");
		return NULL;
	}
	return j;
}

static cfg_json_kind jkind(store_kind k)
{
	return k == STORE_MONITOR ? CFG_JSON_MONITOR
	       : k == STORE_POOL  ? CFG_JSON_POOL
				  : CFG_JSON_LB;
}

/* Apply one op through the control plane; on success reply with the
 * object as it now runs (status 200). 1, nothing replied, when may_retry
 * and the op's base_rev went stale (cluster mode: another edge changed
 * the object the PATCH was merged with): merge again. */
static int commit(req_ctx *c, store_op *op, bool may_retry)
{
	cfg_diag d = {0};
	char err[512] = "";
	int rc = edge_ctl_change(c->e->ctl, op, 1, &d, err, sizeof(err));
	if (rc == -1) {
		api_reply_diag(c->rs, &d, "object");
		cfg_diag_free(&d);
		return 0;
	}
	if (rc == -5 && may_retry) {
		cfg_diag_free(&d);
		return 1;
	}
	/* The config as now committed runs, but not as likely meant
	 * (cfg_warn_checks): said in messages and in the log, as a start or
	 * a SIGHUP says it. */
	json_t *msgs = NULL;
	for (size_t i = 0; rc == 0 && i < d.nwarn; i++) {
		if (!msgs)
			msgs = json_array();
		json_array_append_new(
		    msgs, api_err_obj(API_M_CONFIG_WARN, d.warns[i]));
		log_warn("api: %s", d.warns[i]);
	}
	cfg_diag_free(&d);
	if (rc == -3) {
		api_reply_err(c->rs, 503, API_E_CLUSTER_DOWN, "%s", err);
		return 0;
	}
	if (rc == -4 || rc == -5) {
		api_reply_err(c->rs, 409, API_E_CONFLICT,
			      "%s; try again (the change was not made)", err);
		return 0;
	}
	if (rc < 0) {
		api_reply_err(c->rs, 500, API_E_STORE, "%s", err);
		return 0;
	}
	if (op->type == STORE_DELETE) {
		json_t *r = json_object();
		json_object_set_new(r, "id", json_string(op->id));
		api_reply(c->rs, 200, r, NULL, msgs);
		return 0;
	}
	const edge_snapshot *s = edge_acquire(c->e);
	const void *obj =
	    op->kind == STORE_MONITOR
		? (const void *)find_monitor(s->cfg, op->id)
	    : op->kind == STORE_POOL
		? (const void *)cfg_pool_by_id(s->cfg, op->id, SIZE_MAX)
		: (const void *)find_lb(s->cfg, op->id);
	if (!obj) {
		json_decref(msgs);
		edge_snapshot_unref(s);
		api_reply_err(c->rs, 500, API_E_STORE,
			      "object vanished after commit");
		return 0;
	}
	times t = {0};
	edge_ctl_with_store(c->e->ctl, load_times, &t);
	json_t *j = render(obj, op->kind, &t);
	times_free(&t);
	edge_snapshot_unref(s);
	api_reply(c->rs, 200, j, NULL, msgs);
	return 0;
}

/* Prepare a body for storing: no read-only fields, no "id" (the path or
 * the store names it), no Meridian "source". */
static char *store_body(store_kind k, json_t *body)
{
	cfg_json_strip_readonly(jkind(k), body);
	json_object_del(body, "id");
	json_object_del(body, "source");
	char *s = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER |
				       JSON_REAL_PRECISION(15));
	if (!s)
		abort();
	return s;
}

/* A pool's or load balancer's body as it will be stored (POST, PUT, or
 * PATCH merged with the stored one) must name it with a string, a load
 * balancer's in zone (NULL: not checked). false with the reply made. */
static bool name_ok(req_ctx *c, store_kind k, const json_t *body,
		    const char *zone)
{
	json_t *n = json_object_get(body, "name");
	if (k == STORE_POOL && !json_is_string(n)) {
		api_reply_field_err(
		    c->rs, 400, API_E_INVALID, "name",
		    "name: required (a string naming the pool)");
		return false;
	}
	if (k != STORE_LB)
		return true;
	if (!json_is_string(n)) {
		api_reply_field_err(
		    c->rs, 400, API_E_INVALID, "name",
		    "name: required (the load balancer's host name)");
		return false;
	}
	if (zone && !cfg_name_in_zone(json_string_value(n), zone)) {
		api_reply_field_err(c->rs, 400, API_E_INVALID, "name",
				    "name: %s is not in zone %s",
				    json_string_value(n), zone);
		return false;
	}
	return true;
}

static void do_create(req_ctx *c, store_kind k, const char *zone)
{
	json_t *body = body_object(c);
	if (!body)
		return;
	if (!name_ok(c, k, body, zone)) {
		json_decref(body);
		return;
	}
	char id[STORE_ID_LEN + 1];
	if (store_id_new(id) < 0) {
		json_decref(body);
		api_reply_err(c->rs, 500, API_E_STORE, "cannot generate an id");
		return;
	}
	char *text = store_body(k, body);
	json_decref(body);
	store_op op = {.type = STORE_CREATE,
		       .kind = k,
		       .id = id,
		       .zone = k == STORE_LB ? zone : NULL,
		       .body = text};
	commit(c, &op, false);
	free(text);
}

static bool obj_from_api(const void *obj, store_kind k)
{
	return k == STORE_MONITOR ? ((const cfg_monitor *)obj)->from_api
	       : k == STORE_POOL  ? ((const cfg_pool *)obj)->from_api
				  : ((const cfg_lb *)obj)->from_api;
}

static const char *kind_name(store_kind k)
{
	return k == STORE_MONITOR ? "monitor"
	       : k == STORE_POOL  ? "pool"
				  : "load balancer";
}

/* Refuse changes to objects of the file. */
static bool file_managed(req_ctx *c, const void *obj, store_kind k,
			 const char *id)
{
	if (obj_from_api(obj, k))
		return false;
	api_reply_err(
	    c->rs, 409, API_E_FILE_MANAGED,
	    "%s %s is managed by the config file %s: edit the file and "
	    "reload (SIGHUP)",
	    kind_name(k), id, c->cfg->file ? c->cfg->file : "");
	return true;
}

typedef struct get_arg {
	edge_ctl *ctl;
	store_kind k;
	const char *id;
	store_obj obj;
	int64_t rev; /* cluster mode: the revision obj is at */
	int rc;
} get_arg;

static int get_stored(store *st, void *arg)
{
	get_arg *g = arg;
	g->rc = store_get(st, g->k, g->id, &g->obj);
	g->rev = edge_ctl_object_rev(g->ctl, g->k, g->id);
	return g->rc;
}

/* Who refers to a pool or monitor: the reply's error when deleting. */
static bool in_use(req_ctx *c, const void *obj, store_kind k)
{
	const cfg_snapshot *cfg = c->cfg;
	char users[600] = "";
	size_t n = 0;
	if (k == STORE_POOL) {
		for (size_t i = 0; i < cfg->nlbs; i++)
			if (lb_uses_pool(&cfg->lbs[i], obj) && n++ < 5)
				snprintf(users + strlen(users),
					 sizeof(users) - strlen(users), "%s%s",
					 n > 1 ? ", " : "", cfg->lbs[i].name);
		if (n)
			api_reply_err(
			    c->rs, 400, API_E_IN_USE,
			    "pool %s is used by %zu load balancer%s (%s): "
			    "remove it from them first",
			    ((const cfg_pool *)obj)->id, n, n == 1 ? "" : "s",
			    users);
	} else if (k == STORE_MONITOR) {
		for (size_t i = 0; i < cfg->npools; i++)
			if (cfg->pools[i].monitor == obj && n++ < 5)
				snprintf(users + strlen(users),
					 sizeof(users) - strlen(users), "%s%s",
					 n > 1 ? ", " : "", cfg->pools[i].id);
		if (n)
			api_reply_err(c->rs, 400, API_E_IN_USE,
				      "monitor %s is used by %zu pool%s (%s): "
				      "remove it from them first",
				      ((const cfg_monitor *)obj)->id, n,
				      n == 1 ? "" : "s", users);
	}
	return n > 0;
}

/* PUT or PATCH once; 1 when it is to be merged again (commit()). */
static int replace(req_ctx *c, store_kind k, const char *id, const char *zone,
		   bool patch, bool may_retry)
{
	json_t *body = body_object(c);
	if (!body)
		return 0;
	get_arg g = {.ctl = c->e->ctl, .k = k, .id = id};
	edge_ctl_with_store(c->e->ctl, get_stored, &g);
	if (g.rc < 0) {
		json_decref(body);
		api_reply_err(c->rs, 404, API_E_NOT_FOUND, "%s %s not found",
			      kind_name(k), id);
		return 0;
	}
	json_t *next = body;
	if (patch) {
		json_t *stored = json_loads(g.obj.body, 0, NULL);
		cfg_json_strip_readonly(jkind(k), body);
		json_object_del(body, "source");
		next = stored ? cfg_json_patch(stored, body) : NULL;
		json_decref(stored);
		json_decref(body);
		if (!next) {
			store_obj_clear(&g.obj);
			api_reply_err(c->rs, 500, API_E_STORE,
				      "stored %s is not JSON", kind_name(k));
			return 0;
		}
	}
	/* As POST: PUT must name the object, PATCH may not unname it. */
	if (!name_ok(c, k, next, zone)) {
		json_decref(next);
		store_obj_clear(&g.obj);
		return 0;
	}
	char *text = store_body(k, next);
	json_decref(next);
	store_op op = {.type = STORE_REPLACE,
		       .kind = k,
		       .id = id,
		       .zone =
			   k == STORE_LB ? (zone ? zone : g.obj.zone) : NULL,
		       .body = text,
		       .base_rev = patch ? g.rev : 0};
	int again = commit(c, &op, may_retry);
	free(text);
	store_obj_clear(&g.obj);
	return again;
}

static void do_object(req_ctx *c, store_kind k, const void *obj, const char *id,
		      const char *zone)
{
	if (is(c, "GET")) {
		times t = {0};
		edge_ctl_with_store(c->e->ctl, load_times, &t);
		json_t *j = render(obj, k, &t);
		times_free(&t);
		api_reply(c->rs, 200, j, NULL, NULL);
		return;
	}
	bool put = is(c, "PUT"), patch = is(c, "PATCH"), del = is(c, "DELETE");
	if (!put && !patch && !del) {
		method_not_allowed(c, "GET, PUT, PATCH, DELETE");
		return;
	}
	if (file_managed(c, obj, k, id))
		return;
	if (del) {
		if (in_use(c, obj, k))
			return;
		store_op op = {.type = STORE_DELETE, .kind = k, .id = id};
		commit(c, &op, false);
		return;
	}
	/* A PATCH is merged with the object as stored; in cluster mode
	 * another edge may change it meanwhile: then merge again (a few
	 * times, then 409), so no update is lost. */
	for (int tries = 1; replace(c, k, id, zone, patch, tries < 3); tries++)
		;
}

static void do_list(req_ctx *c, store_kind k, const char *zone)
{
	if (is(c, "POST")) {
		do_create(c, k, zone);
		return;
	}
	if (!is(c, "GET")) {
		method_not_allowed(c, "GET, POST");
		return;
	}
	size_t page, per_page;
	if (paging(c->rq, c->rs, &page, &per_page) < 0)
		return;
	/* Cloudflare's List Pools filter: the pools that use this monitor
	 * (none for an unknown one; an empty value filters nothing). */
	char mon[256];
	const char *monitor = NULL;
	if (k == STORE_POOL &&
	    qget(c, "monitor", mon, sizeof(mon), &monitor) < 0)
		return;
	times t = {0};
	edge_ctl_with_store(c->e->ctl, load_times, &t);
	json_t *all = json_array();
	const cfg_snapshot *cfg = c->cfg;
	if (k == STORE_MONITOR)
		for (size_t i = 0; i < cfg->nmonitors; i++)
			json_array_append_new(all,
					      render(&cfg->monitors[i], k, &t));
	else if (k == STORE_POOL)
		for (size_t i = 0; i < cfg->npools; i++) {
			const cfg_monitor *m = cfg->pools[i].monitor;
			if (monitor && *monitor &&
			    (!m || strcmp(m->id, monitor)))
				continue;
			json_array_append_new(all,
					      render(&cfg->pools[i], k, &t));
		}
	else
		for (size_t i = 0; i < cfg->nlbs; i++)
			if (cfg_name_in_zone(cfg->lbs[i].name, zone))
				json_array_append_new(
				    all, render(&cfg->lbs[i], k, &t));
	times_free(&t);
	reply_page(c->rs, all, page, per_page);
}

static json_t *origin_health(const edge_snapshot *s, const cfg_pool *p,
			     const cfg_origin *o)
{
	lb_origin_state *st = &s->ostates[o->index];
	uint8_t h = atomic_load(&st->active);
	uint32_t rtt = atomic_load(&st->rtt_us);
	char reason[sizeof(st->reason)];
	pthread_mutex_lock(&st->lock);
	memcpy(reason, st->reason, sizeof(reason));
	uint16_t code = st->response_code;
	pthread_mutex_unlock(&st->lock);
	json_t *j = json_object();
	json_object_set_new(j, "name", json_string(o->name));
	json_object_set_new(j, "address", json_string(o->address));
	json_object_set_new(j, "enabled", json_boolean(o->enabled));
	json_object_set_new(j, "healthy",
			    !p->monitor || h == LB_HEALTH_UNKNOWN
				? json_null()
				: json_boolean(h == LB_HEALTH_HEALTHY));
	json_object_set_new(j, "state", json_string(health_state_name(h)));
	char rtts[32];
	snprintf(rtts, sizeof(rtts), "%.1fms", rtt / 1000.0);
	json_object_set_new(j, "rtt", rtt ? json_string(rtts) : json_null());
	json_object_set_new(j, "failure_reason",
			    json_string(reason[0] ? reason : "No failures"));
	/* As Cloudflare's: the status of the last check's answer (null:
	 * none, e.g. tcp monitors or a refused connection). */
	json_object_set_new(j, "response_code",
			    code ? json_integer(code) : json_null());
	return j;
}

static void do_pool_health(req_ctx *c, const cfg_pool *p)
{
	if (!is(c, "GET")) {
		method_not_allowed(c, "GET");
		return;
	}
	const edge_snapshot *s = c->snap;
	uint8_t ph = atomic_load(&s->pstates[p->index].health);
	json_t *origins = json_array();
	for (size_t i = 0; i < p->norigins; i++)
		json_array_append_new(origins,
				      origin_health(s, p, &p->origins[i]));
	json_t *pop = json_object();
	/* null while there is no verdict; true when the pool takes traffic
	 * (as meridian_pool_healthy says). */
	json_object_set_new(pop, "healthy",
			    ph == LB_POOL_UNKNOWN
				? json_null()
				: json_boolean(ph == LB_POOL_HEALTHY ||
					       ph == LB_POOL_DEGRADED));
	json_object_set_new(pop, "state",
			    json_string(health_pool_state_name(ph)));
	json_object_set_new(pop, "origins", origins);
	json_t *pops = json_object();
	json_object_set_new(pops, s->cfg->edge.name, pop);
	/* Cluster mode: every other live node's view (its reports). */
	if (c->e->ctl->clu)
		clu_edge_pool_health(c->e->ctl->clu, p->id, pops);
	json_t *r = json_object();
	json_object_set_new(r, "pool_id", json_string(p->id));
	json_object_set_new(r, "pop_health", pops);
	api_reply(c->rs, 200, r, NULL, NULL);
}

/* Meridian's extension: the live nodes of the cluster (SPEC §4.9). */
static void do_cluster_nodes(req_ctx *c)
{
	if (!is(c, "GET")) {
		method_not_allowed(c, "GET");
		return;
	}
	if (!c->e->ctl->clu) {
		api_reply_err(c->rs, 404, API_E_NOT_FOUND,
			      "this edge is not in a cluster (edge.cluster)");
		return;
	}
	size_t page, per_page;
	if (paging(c->rq, c->rs, &page, &per_page) < 0)
		return;
	reply_page(c->rs, clu_edge_nodes(c->e->ctl->clu), page, per_page);
}

static json_t *ref(const char *type, const char *rtype, const char *id,
		   const char *name)
{
	json_t *j = json_object();
	json_object_set_new(j, "reference_type", json_string(type));
	json_object_set_new(j, "resource_type", json_string(rtype));
	json_object_set_new(j, "resource_id", json_string(id));
	json_object_set_new(j, "resource_name", json_string(name));
	return j;
}

static void do_references(req_ctx *c, store_kind k, const void *obj)
{
	if (!is(c, "GET")) {
		method_not_allowed(c, "GET");
		return;
	}
	const cfg_snapshot *cfg = c->cfg;
	json_t *r = json_array();
	if (k == STORE_POOL) {
		const cfg_pool *p = obj;
		for (size_t i = 0; i < cfg->nlbs; i++)
			if (lb_uses_pool(&cfg->lbs[i], p))
				json_array_append_new(
				    r, ref("referrer", "load_balancer",
					   cfg->lbs[i].id, cfg->lbs[i].name));
		if (p->monitor)
			json_array_append_new(
			    r, ref("referral", "monitor", p->monitor->id,
				   p->monitor->description
				       ? p->monitor->description
				       : p->monitor->id));
	} else {
		for (size_t i = 0; i < cfg->npools; i++)
			if (cfg->pools[i].monitor == obj)
				json_array_append_new(
				    r, ref("referrer", "pool", cfg->pools[i].id,
					   cfg->pools[i].name));
	}
	api_reply(c->rs, 200, r, NULL, NULL);
}

/* ---- health events ----------------------------------------------------- */

typedef struct events_arg {
	store_event_filter f;
	store_event *ev;
	size_t n, total;
	int rc;
} events_arg;

static int query_events(store *st, void *arg)
{
	events_arg *a = arg;
	a->rc = store_events_query(st, &a->f, &a->ev, &a->n, &a->total);
	return a->rc;
}

/* n digits at *p (advanced past them) as a number in [lo, hi]. */
static int fixed_digits(const char **p, int n, int lo, int hi, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return v < lo || v > hi ? -1 : 0;
}

static bool leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* An RFC 3339 time in UTC (YYYY-MM-DDTHH:MM:SS[.frac], then Z or +00:00;
 * no zone is taken as UTC), every field in its range (no February 30th:
 * it is refused, not taken as March 2nd), or milliseconds since the
 * epoch. */
static int parse_time(const char *s, uint64_t *ms)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30,
				      31, 31, 30, 31, 30, 31};
	int64_t v;
	if (!cfg_parse_int(s, &v) && v >= 0) {
		*ms = (uint64_t)v;
		return 0;
	}
	const char *p = s;
	int year, mon, day, hour, min, sec;
	if (fixed_digits(&p, 4, 1970, 9999, &year) || *p++ != '-' ||
	    fixed_digits(&p, 2, 1, 12, &mon) || *p++ != '-' ||
	    fixed_digits(&p, 2, 1, 31, &day) || (*p != 'T' && *p != 't'))
		return -1;
	p++;
	if (fixed_digits(&p, 2, 0, 23, &hour) || *p++ != ':' ||
	    fixed_digits(&p, 2, 0, 59, &min) || *p++ != ':' ||
	    fixed_digits(&p, 2, 0, 60, &sec)) /* 60: a leap second */
		return -1;
	if (day > mdays[mon - 1] + (mon == 2 && leap_year(year) ? 1 : 0))
		return -1;
	uint64_t frac = 0;
	if (*p == '.') {
		int digits = 0;
		for (p++; isdigit((unsigned char)*p); p++)
			if (digits++ < 3)
				frac = frac * 10 + (uint64_t)(*p - '0');
		if (!digits)
			return -1;
		while (digits++ < 3)
			frac *= 10;
	}
	if (strcmp(p, "Z") && strcmp(p, "z") && strcmp(p, "+00:00") &&
	    strcmp(p, "-00:00") && *p)
		return -1;
	struct tm tm = {.tm_year = year - 1900,
			.tm_mon = mon - 1,
			.tm_mday = day,
			.tm_hour = hour,
			.tm_min = min,
			.tm_sec = sec};
	time_t t = timegm(&tm);
	if (t < 0)
		return -1;
	*ms = (uint64_t)t * 1000 + frac;
	return 0;
}

static int tristate(req_ctx *c, const char *key, store_tristate *out)
{
	char buf[16];
	const char *val;
	if (qget(c, key, buf, sizeof(buf), &val) < 0)
		return -1;
	if (!val)
		return 0;
	bool b;
	if (cfg_parse_bool(buf, &b)) {
		api_reply_err(c->rs, 400, API_E_BAD_QUERY,
			      "%s: expected true or false, got '%s'", key, buf);
		return -1;
	}
	*out = b ? STORE_YES : STORE_NO;
	return 0;
}

static void do_events(req_ctx *c)
{
	if (!is(c, "GET")) {
		method_not_allowed(c, "GET");
		return;
	}
	size_t page, per_page;
	if (paging(c->rq, c->rs, &page, &per_page) < 0)
		return;
	events_arg a = {0};
	char since[64], until[64], pid[256], pname[256], oname[256];
	const char *val;
	if (qget(c, "since", since, sizeof(since), &val) < 0)
		return;
	if (val && parse_time(since, &a.f.since_ms)) {
		api_reply_err(c->rs, 400, API_E_BAD_QUERY,
			      "since: expected an RFC 3339 time, got '%s'",
			      since);
		return;
	}
	if (qget(c, "until", until, sizeof(until), &val) < 0)
		return;
	if (val && parse_time(until, &a.f.until_ms)) {
		api_reply_err(c->rs, 400, API_E_BAD_QUERY,
			      "until: expected an RFC 3339 time, got '%s'",
			      until);
		return;
	}
	if (qget(c, "pool_id", pid, sizeof(pid), &a.f.pool_id) < 0 ||
	    qget(c, "pool_name", pname, sizeof(pname), &a.f.pool_name) < 0)
		return;
	if (qget(c, "origin_name", oname, sizeof(oname), &a.f.origin_name) < 0)
		return;
	if (tristate(c, "origin_healthy", &a.f.origin_healthy) < 0 ||
	    tristate(c, "pool_healthy", &a.f.pool_healthy) < 0)
		return;
	a.f.offset = (page - 1) * per_page;
	a.f.limit = per_page;
	/* Events queued by the health thread a moment ago belong in the
	 * answer: wait briefly for the writer. */
	store_events_writer_flush(c->e->ctl->events, 1000);
	edge_ctl_with_store(c->e->ctl, query_events, &a);
	if (a.rc < 0) {
		api_reply_err(c->rs, 500, API_E_STORE, "cannot read events: %s",
			      strerror(-a.rc));
		return;
	}
	json_t *out = json_array();
	for (size_t i = 0; i < a.n; i++) {
		const store_event *ev = &a.ev[i];
		char ts[STORE_TIME_SZ];
		store_time_format(ev->time_ms * 1000, ts);
		json_t *j = json_object();
		json_object_set_new(j, "id", json_integer(ev->id));
		json_object_set_new(j, "timestamp", json_string(ts));
		json_t *pool = json_object();
		json_object_set_new(pool, "id", json_string(ev->pool_id));
		json_object_set_new(
		    pool, "name",
		    json_string(ev->pool_name ? ev->pool_name : ev->pool_id));
		bool is_pool = ev->kind == STORE_EV_POOL;
		json_t *change = json_object();
		json_object_set_new(change, "healthy",
				    json_boolean(ev->healthy));
		json_object_set_new(change, "changed", json_true());
		json_object_set_new(change, "old_state",
				    json_string(ev->old_state));
		json_object_set_new(change, "new_state",
				    json_string(ev->new_state));
		json_object_set_new(change,
				    is_pool ? "reason" : "failure_reason",
				    json_string(ev->reason ? ev->reason : ""));
		if (is_pool) {
			json_object_update(pool, change);
			json_object_set_new(pool, "origins", json_array());
		} else {
			json_object_set_new(change, "name",
					    json_string(ev->origin_name));
			json_t *origins = json_array();
			json_array_append_new(origins, change);
			change = NULL;
			json_object_set_new(pool, "changed", json_false());
			json_object_set_new(pool, "origins", origins);
		}
		json_decref(change);
		json_t *pools = json_array();
		json_array_append_new(pools, pool);
		json_object_set_new(j, "pool", pools);
		json_array_append_new(out, j);
	}
	store_events_free(a.ev, a.n);
	json_t *info = json_object();
	json_object_set_new(info, "page", json_integer((json_int_t)page));
	json_object_set_new(info, "per_page",
			    json_integer((json_int_t)per_page));
	json_object_set_new(info, "count", json_integer((json_int_t)a.n));
	json_object_set_new(info, "total_count",
			    json_integer((json_int_t)a.total));
	json_object_set_new(
	    info, "total_pages",
	    json_integer((json_int_t)((a.total + per_page - 1) / per_page)));
	api_reply(c->rs, 200, out, info, NULL);
}

/* ---- routing ----------------------------------------------------------- */

static bool seg_is(const req_ctx *c, size_t i, const char *s)
{
	return i < c->nseg && !strcmp(c->seg[i], s);
}

static void not_found(req_ctx *c, store_kind k, const char *id)
{
	api_reply_err(c->rs, 404, API_E_NOT_FOUND, "%s %s not found",
		      kind_name(k), id);
}

static json_t *account_json(const char *acct)
{
	json_t *a = json_object();
	json_object_set_new(a, "id", json_string(acct));
	json_object_set_new(a, "name", json_string(acct));
	return a;
}

/* /accounts/{account}/cfd_tunnel[/{id}[/connections]]: read-only (the
 * file defines tunnels; api_tunnels.h). */
static void route_tunnels(req_ctx *c)
{
	if (c->nseg > 5 || (c->nseg == 5 && !seg_is(c, 4, "connections"))) {
		api_reply_err(c->rs, 404, API_E_NO_ROUTE, "no route for %s %s",
			      c->rq->method, c->rq->path);
		return;
	}
	if (!is(c, "GET")) {
		method_not_allowed(c, "GET");
		return;
	}
	if (c->nseg == 3) {
		size_t page, per_page;
		if (paging(c->rq, c->rs, &page, &per_page) < 0)
			return;
		reply_page(c->rs, api_tunnels_json(c->e->tunnels, c->cfg), page,
			   per_page);
		return;
	}
	json_t *t = api_tunnel_json(c->e->tunnels, c->cfg, c->seg[3]);
	if (!t) {
		api_reply_err(c->rs, 404, API_E_NOT_FOUND,
			      "tunnel %s not found (tunnels are defined in the "
			      "file: tunnels[])",
			      c->seg[3]);
		return;
	}
	if (c->nseg == 5) {
		json_t *conns = json_incref(json_object_get(t, "connections"));
		json_decref(t);
		api_reply(c->rs, 200, conns, NULL, NULL);
		return;
	}
	api_reply(c->rs, 200, t, NULL, NULL);
}

/* /accounts/{account}/load_balancers/regions[/{region}]
 * [?country_code_a2=XX]: the built-in country -> region table
 * (api_regions.h). US and Canada are whole countries here (ENAM), so
 * subdivision codes are refused rather than answered wrongly. */
static void do_regions(req_ctx *c)
{
	if (c->nseg > 5) {
		api_reply_err(c->rs, 404, API_E_NO_ROUTE, "no route for %s %s",
			      c->rq->method, c->rq->path);
		return;
	}
	if (!is(c, "GET")) {
		method_not_allowed(c, "GET");
		return;
	}
	char cc[8], sub[8];
	const char *country, *subdiv;
	if (qget(c, "country_code_a2", cc, sizeof(cc), &country) < 0 ||
	    qget(c, "subdivision_code", sub, sizeof(sub), &subdiv) < 0)
		return;
	if (!subdiv &&
	    qget(c, "subdivision_code_a2", sub, sizeof(sub), &subdiv) < 0)
		return;
	if (subdiv) {
		api_reply_err(c->rs, 400, API_E_BAD_QUERY,
			      "subdivision_code: Meridian maps whole countries "
			      "(US and CA are ENAM); place western networks "
			      "with geo.networks (region: WNAM)");
		return;
	}
	if (country &&
	    (strlen(country) != 2 || !isalpha((unsigned char)country[0]) ||
	     !isalpha((unsigned char)country[1]))) {
		api_reply_err(c->rs, 400, API_E_BAD_QUERY,
			      "country_code_a2: want two letters (ISO 3166-1 "
			      "alpha-2), not \"%s\"",
			      country);
		return;
	}
	const char *region = c->nseg == 5 ? c->seg[4] : NULL;
	json_t *r = api_regions_json(region, country);
	if (!r) {
		api_reply_err(
		    c->rs, 404, API_E_NOT_FOUND,
		    "region %s not found (WNAM, ENAM, WEU, EEU, NSAM, "
		    "SSAM, OC, ME, NAF, SAF, SAS, SEAS, NEAS)",
		    region);
		return;
	}
	api_reply(c->rs, 200, r, NULL, NULL);
}

/* /accounts[/{account}] (Cloudflare's List and Account Details, so a
 * client such as the dashboard learns api.account_id), and
 * /accounts/{account}/load_balancers/{monitors|pools|preview}... */
static void route_account(req_ctx *c)
{
	const char *acct = c->cfg->api.account_id;
	if (c->nseg == 1 || (c->nseg == 2 && seg_is(c, 1, acct))) {
		if (!is(c, "GET")) {
			method_not_allowed(c, "GET");
			return;
		}
		if (c->nseg == 2) {
			api_reply(c->rs, 200, account_json(acct), NULL, NULL);
			return;
		}
		size_t page, per_page;
		if (paging(c->rq, c->rs, &page, &per_page) < 0)
			return;
		json_t *all = json_array();
		json_array_append_new(all, account_json(acct));
		reply_page(c->rs, all, page, per_page);
		return;
	}
	if (!seg_is(c, 1, acct)) {
		api_reply_err(
		    c->rs, 404, API_E_NOT_FOUND,
		    "account %s not found (this edge's account is %s)",
		    c->nseg > 1 ? c->seg[1] : "", acct);
		return;
	}
	if (seg_is(c, 2, "cfd_tunnel")) {
		route_tunnels(c);
		return;
	}
	if (!seg_is(c, 2, "load_balancers") || c->nseg < 4)
		goto no_route;
	if (c->nseg == 5 && seg_is(c, 3, "preview")) {
		api_preview_get(c->rq, c->seg[4], c->rs);
		return;
	}
	if (seg_is(c, 3, "regions")) {
		do_regions(c);
		return;
	}
	if (c->nseg == 5 && seg_is(c, 3, "cluster") && seg_is(c, 4, "nodes")) {
		do_cluster_nodes(c);
		return;
	}
	store_kind k;
	if (seg_is(c, 3, "monitors"))
		k = STORE_MONITOR;
	else if (seg_is(c, 3, "pools"))
		k = STORE_POOL;
	else
		goto no_route;
	if (c->nseg == 4) {
		do_list(c, k, NULL);
		return;
	}
	const char *id = c->seg[4];
	const void *obj =
	    k == STORE_MONITOR
		? (const void *)find_monitor(c->cfg, id)
		: (const void *)cfg_pool_by_id(c->cfg, id, SIZE_MAX);
	if (!obj) {
		not_found(c, k, id);
		return;
	}
	if (c->nseg == 5) {
		do_object(c, k, obj, id, NULL);
		return;
	}
	if (c->nseg == 6 && seg_is(c, 5, "preview")) {
		api_preview_start(c->snap, c->rq,
				  k == STORE_MONITOR ? obj : NULL,
				  k == STORE_POOL ? obj : NULL, c->rs);
		return;
	}
	if (c->nseg == 6 && seg_is(c, 5, "references")) {
		do_references(c, k, obj);
		return;
	}
	if (c->nseg == 6 && k == STORE_POOL && seg_is(c, 5, "health")) {
		do_pool_health(c, obj);
		return;
	}
no_route:
	api_reply_err(c->rs, 404, API_E_NO_ROUTE, "no route for %s %s",
		      c->rq->method, c->rq->path);
}

/* /zones/{zone}/load_balancers[/{id}] */
static json_t *zone_json(const char *name)
{
	char id[33];
	zone_id(name, id);
	json_t *z = json_object();
	json_object_set_new(z, "id", json_string(id));
	json_object_set_new(z, "name", json_string(name));
	return z;
}

/* GET /zones[?name=] and /zones/{zone}: the zones of the config (DNS
 * zones), so clients can learn a zone's id as they do from Cloudflare.
 * Only those: an id handed out here is one the API takes back. */
static void do_zones(req_ctx *c)
{
	if (!is(c, "GET")) {
		method_not_allowed(c, "GET");
		return;
	}
	if (c->nseg == 2) {
		const char *zone = configured_zone(c->cfg, c->seg[1]);
		if (!zone) {
			api_reply_err(c->rs, 404, API_E_ZONE,
				      "zone %s not found", c->seg[1]);
			return;
		}
		api_reply(c->rs, 200, zone_json(zone), NULL, NULL);
		return;
	}
	size_t page, per_page;
	if (paging(c->rq, c->rs, &page, &per_page) < 0)
		return;
	char want[256];
	const char *name;
	if (qget(c, "name", want, sizeof(want), &name) < 0)
		return;
	json_t *all = json_array();
	for (size_t i = 0; i < c->cfg->nzones; i++)
		if (!name || !strcasecmp(name, c->cfg->zones[i].name))
			json_array_append_new(all,
					      zone_json(c->cfg->zones[i].name));
	reply_page(c->rs, all, page, per_page);
}

static void route_zone(req_ctx *c)
{
	if (c->nseg <= 2) {
		do_zones(c);
		return;
	}
	if (!seg_is(c, 2, "load_balancers") || c->nseg > 4) {
		api_reply_err(c->rs, 404, API_E_NO_ROUTE, "no route for %s %s",
			      c->rq->method, c->rq->path);
		return;
	}
	char zone[256];
	if (!resolve_zone(c->cfg, c->seg[1], zone, sizeof(zone))) {
		api_reply_err(c->rs, 404, API_E_ZONE, "zone %s not found",
			      c->seg[1]);
		return;
	}
	if (c->nseg == 3) {
		do_list(c, STORE_LB, zone);
		return;
	}
	const cfg_lb *lb = find_lb(c->cfg, c->seg[3]);
	if (!lb || !cfg_name_in_zone(lb->name, zone)) {
		not_found(c, STORE_LB, c->seg[3]);
		return;
	}
	do_object(c, STORE_LB, lb, lb->id, zone);
}

void api_handle(edge *e, const api_request *rq, api_response *rs)
{
	/* HEAD is answered as GET: the admin listener sends the head only
	 * (with the Content-Length GET's body would have). */
	api_request get;
	if (!strcmp(rq->method, "HEAD")) {
		get = *rq;
		get.method = "GET";
		rq = &get;
	}
	req_ctx c = {.e = e, .rq = rq, .rs = rs};
	c.snap = edge_acquire(e);
	c.cfg = c.snap->cfg;
	bool write = strcmp(rq->method, "GET") != 0;
	if (authorize(c.cfg, rq, write, rs) < 0)
		goto out;
	if (rq->body_len > API_MAX_BODY) {
		api_reply_err(rs, 413, API_E_BAD_JSON,
			      "body larger than %u bytes", API_MAX_BODY);
		goto out;
	}
	/* Split the path after /client/v4/ into segments. */
	/* Split the path after /client/v4/ into segments. Nothing is cut
	 * short or skipped: a path that does not fit, has too many segments
	 * or an empty one names no route. */
	size_t plen = strlen(rq->path + 11);
	bool bad = plen >= sizeof(c.path);
	if (!bad) {
		memcpy(c.path, rq->path + 11, plen + 1);
		if (plen && c.path[plen - 1] == '/')
			c.path[--plen] = '\0'; /* one trailing slash is fine */
		for (char *p = c.path; !bad && *p;) {
			char *slash = strchr(p, '/');
			if (slash == p || c.nseg == MAX_SEGS) {
				bad = true;
				break;
			}
			c.seg[c.nseg++] = p;
			if (!slash)
				break;
			*slash = '\0';
			p = slash + 1;
			if (!*p)
				bad = true;
		}
	}
	/* Ids in the path come percent-encoded from most clients (`ctl`
	 * escapes `*.example.com` as %2A.example.com, a space as %20):
	 * decode each segment once split, so an encoded '/' stays in its
	 * segment. A %00 would cut the id short: no route. */
	for (size_t i = 0; !bad && i < c.nseg; i++)
		bad = path_decode(c.path + (c.seg[i] - c.path)) < 0;
	if (bad)
		api_reply_err(rs, 404, API_E_NO_ROUTE, "no route for %s %.200s",
			      rq->method, rq->path);
	else if (seg_is(&c, 0, "accounts"))
		route_account(&c);
	else if (seg_is(&c, 0, "zones"))
		route_zone(&c);
	else if (c.nseg >= 2 && seg_is(&c, 0, "edge") &&
		 seg_is(&c, 1, "certificates"))
		api_certs(e, c.snap, rq, c.seg, c.nseg, rs);
	else if (c.nseg == 3 && seg_is(&c, 0, "user") &&
		 seg_is(&c, 1, "load_balancing_analytics") &&
		 seg_is(&c, 2, "events"))
		do_events(&c);
	else
		api_reply_err(rs, 404, API_E_NO_ROUTE, "no route for %s %s",
			      rq->method, rq->path);
out:
	edge_snapshot_unref(c.snap);
}
