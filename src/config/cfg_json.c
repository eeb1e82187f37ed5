/* cfg_json.c - API objects into the config tree, snapshot objects out as
 * JSON, and PATCH; see cfg_json.h.
 *
 * In: each JSON body becomes a cfg_node tree whose nodes carry their field
 * path instead of a position, appended to the file's list of its kind by a
 * hook that runs between the YAML parser and the key tables. Out: the same
 * tables are walked over the snapshot's structs.
 */
#include "config/cfg_json.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_schema.h"
#include "config/cfg_values.h"
#include "core/core_arena.h"
#include "core/core_util.h"

#define NKINDS 3

/* The top-level list of each kind, also the head of its objects' paths. */
static const char *const list_keys[NKINDS] = {"monitors", "pools",
					      "load_balancers"};
static const char *const kind_names[NKINDS] = {"monitor", "pool",
					       "load balancer"};

/* Fields the API computes (Cloudflare's read-only ones): a client may echo
 * them from a GET; they are ignored. */
static const char *const ro_common[] = {"id", "created_on", "modified_on"};
static const char *const ro_pool[] = {"healthy", "disabled_at", "networks"};
static const char *const ro_lb[] = {"zone_name", "networks"};
static const char *const ro_origin[] = {"disabled_at"};

const char *cfg_json_kind_name(cfg_json_kind kind)
{
	return (unsigned)kind < NKINDS ? kind_names[kind] : "object";
}

static bool in_list(const char *const *l, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(l[i], key))
			return true;
	return false;
}

bool cfg_json_is_readonly(cfg_json_kind kind, const char *key)
{
	if (in_list(ro_common, ARRAY_LEN(ro_common), key))
		return true;
	if (kind == CFG_JSON_POOL)
		return in_list(ro_pool, ARRAY_LEN(ro_pool), key);
	if (kind == CFG_JSON_LB)
		return in_list(ro_lb, ARRAY_LEN(ro_lb), key);
	return false;
}

static void del_keys(json_t *o, const char *const *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_object_del(o, l[i]); /* -1 when absent: fine */
}

void cfg_json_strip_readonly(cfg_json_kind kind, json_t *body)
{
	if (!json_is_object(body))
		return;
	del_keys(body, ro_common, ARRAY_LEN(ro_common));
	if (kind == CFG_JSON_LB)
		del_keys(body, ro_lb, ARRAY_LEN(ro_lb));
	if (kind != CFG_JSON_POOL)
		return;
	del_keys(body, ro_pool, ARRAY_LEN(ro_pool));
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(body, "origins"), i, o)
	{
		if (json_is_object(o))
			del_keys(o, ro_origin, ARRAY_LEN(ro_origin));
	}
}

json_t *cfg_json_patch(const json_t *stored, const json_t *patch)
{
	if (!json_is_object(stored) || !json_is_object(patch))
		return NULL;
	json_t *out = json_deep_copy(stored);
	if (!out)
		abort();
	const char *key;
	json_t *v;
	/* jansson's iteration takes a non-const object; nothing is
	 * changed. */
	json_object_foreach((json_t *)patch, key, v)
	{
		if (json_object_set_new(out, key, json_deep_copy(v)))
			abort();
	}
	return out;
}

const char *cfg_json_diag_message(const cfg_diag *d, size_t i,
				  const char **field)
{
	const char *f = d->fields ? d->fields[i] : NULL;
	size_t len = f ? strlen(f) : 0;
	if (f && (strncmp(d->msgs[i], f, len) || d->msgs[i][len] != ':'))
		f = NULL; /* not "field: ..." (cannot happen) */
	if (field)
		*field = f;
	return f ? d->msgs[i] + len + 2 : d->msgs[i];
}

/* ---- JSON in: cfg_node trees ---- */

__attribute__((format(printf, 2, 3))) static const char *
tmp_printf(cfg_ctx *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0)
		abort();
	char *s = core_arena_alloc(c->tmp, (size_t)len + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)len + 1, fmt, ap);
	va_end(ap);
	return s;
}

static cfg_node *new_node(cfg_ctx *c, cfg_node_kind kind, const char *path,
			  const char *key)
{
	cfg_node *n = core_arena_alloc(c->tmp, sizeof(*n));
	n->kind = kind;
	n->path = path;
	n->key = key;
	n->str = "";
	n->weight = 1;
	return n;
}

/* The shortest text that reads back as the same double. */
static void fmt_double(double v, char *buf, size_t size)
{
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, size, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

static const char *json_kind_text(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

/* j as a node at path; key is the mapping key it sits under (for items of
 * an array, the array's key). */
static cfg_node *from_json(cfg_ctx *c, const json_t *j, const char *path,
			   const char *key, int depth)
{
	cfg_node *n;
	if (depth > CFG_YAML_MAX_DEPTH) {
		cfg_errs_add_field(&c->errs, path,
				   "nesting deeper than %d levels",
				   CFG_YAML_MAX_DEPTH);
		n = new_node(c, CFG_NODE_SCALAR, path, key);
		n->bad = true;
		return n;
	}
	char num[64];
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		n = new_node(c, CFG_NODE_MAP, path, key);
		size_t cap = json_object_size(j);
		n->keys = core_arena_alloc(c->tmp, cap * sizeof(*n->keys));
		n->items = core_arena_alloc(c->tmp, cap * sizeof(*n->items));
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)j, k, v)
		{
			if (n->n == cap)
				break;
			const char *kc = core_arena_strdup(c->tmp, k);
			const char *sub = tmp_printf(c, "%s.%s", path, kc);
			cfg_node *kn = new_node(c, CFG_NODE_SCALAR, sub, kc);
			kn->str = kc;
			kn->len = strlen(kc);
			kn->quoted = true;
			n->keys[n->n] = kn;
			n->items[n->n] = from_json(c, v, sub, kc, depth + 1);
			n->weight += n->items[n->n]->weight;
			n->n++;
		}
		return n;
	}
	case JSON_ARRAY: {
		n = new_node(c, CFG_NODE_SEQ, path, key);
		size_t cap = json_array_size(j);
		n->items = core_arena_alloc(c->tmp, cap * sizeof(*n->items));
		for (size_t i = 0; i < cap; i++) {
			const char *sub = tmp_printf(c, "%s[%zu]", path, i);
			n->items[i] = from_json(c, json_array_get(j, i), sub,
						key, depth + 1);
			n->weight += n->items[i]->weight;
		}
		n->n = cap;
		return n;
	}
	case JSON_STRING: {
		n = new_node(c, CFG_NODE_SCALAR, path, key);
		size_t len = json_string_length(j);
		n->str = core_arena_strndup(c->tmp, json_string_value(j), len);
		n->quoted = true;
		if (strlen(n->str) != len) {
			cfg_errs_add_field(&c->errs, path,
					   "value contains a NUL character");
			n->bad = true;
		}
		break;
	}
	case JSON_INTEGER:
		n = new_node(c, CFG_NODE_SCALAR, path, key);
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(j));
		n->str = core_arena_strdup(c->tmp, num);
		break;
	case JSON_REAL:
		n = new_node(c, CFG_NODE_SCALAR, path, key);
		fmt_double(json_real_value(j), num, sizeof(num));
		n->str = core_arena_strdup(c->tmp, num);
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		n = new_node(c, CFG_NODE_SCALAR, path, key);
		n->str = json_is_true(j) ? "true" : "false";
		break;
	default:
		n = new_node(c, CFG_NODE_SCALAR, path, key);
		n->is_null = true;
		break;
	}
	n->len = strlen(n->str);
	return n;
}

/* Cloudflare fields Meridian has no use for, which Cloudflare's GET gives
 * back empty (an object exported from Cloudflare, or sent by a client
 * that always writes them): taken when empty, refused with why when not
 * (silently dropping a value would misconfigure). */
typedef struct unused_field {
	cfg_json_kind kind;
	bool in_origin; /* a field of pools[].origins[] */
	const char *key;
	const char *why;
} unused_field;

static const unused_field unused[] = {
    {CFG_JSON_MONITOR, false, "probe_zone",
     "Meridian checks from each edge; set the Host header in `header`"},
    {CFG_JSON_POOL, false, "notification_email",
     "notifications are set in the edge's file (notifications.email), "
     "per pool filtered by notification_filter"},
    {CFG_JSON_POOL, true, "virtual_network_id",
     "Meridian reaches origins on the edge's own networks"},
};

static bool json_empty(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_NULL:
	case JSON_FALSE:
		return true;
	case JSON_STRING:
		return json_string_length(v) == 0;
	case JSON_ARRAY:
		return json_array_size(v) == 0;
	case JSON_OBJECT:
		return json_object_size(v) == 0;
	default:
		return false;
	}
}

/* Drop one unused field of o; false (and an error at field) when it is
 * not empty. */
static bool drop_unused(cfg_ctx *c, json_t *o, const unused_field *u,
			const char *field)
{
	json_t *v = json_object_get(o, u->key);
	if (!v)
		return true;
	bool empty = json_empty(v);
	if (!empty)
		cfg_errs_add_field(&c->errs, field,
				   "not supported by Meridian (%s); leave it "
				   "out or empty",
				   u->why);
	json_object_del(o, u->key);
	return empty;
}

static bool drop_unused_fields(cfg_ctx *c, cfg_json_kind kind, json_t *body,
			       const char *label)
{
	bool ok = true;
	for (size_t i = 0; i < ARRAY_LEN(unused); i++) {
		const unused_field *u = &unused[i];
		if (u->kind != kind)
			continue;
		if (!u->in_origin) {
			ok &= drop_unused(
			    c, body, u, tmp_printf(c, "%s.%s", label, u->key));
			continue;
		}
		size_t j;
		json_t *o;
		json_array_foreach(json_object_get(body, "origins"), j, o)
		{
			if (json_is_object(o))
				ok &= drop_unused(
				    c, o, u,
				    tmp_printf(c, "%s.origins[%zu].%s", label,
					       j, u->key));
		}
	}
	return ok;
}

/* Cloudflare's own spellings of values Meridian names otherwise, as its
 * API gives them back (an exported object, a client that writes its
 * defaults): session_affinity "" (its default) is "none"; a tcp or smtp
 * monitor's method "connection_established" (its default for tcp) is no
 * HTTP method at all. */
static void affinity_none(json_t *o)
{
	json_t *v = json_object_get(o, "session_affinity");
	if (json_is_string(v) && !json_string_length(v))
		json_object_set_new(o, "session_affinity", json_string("none"));
}

static void cloudflare_spellings(cfg_json_kind kind, json_t *body)
{
	if (kind == CFG_JSON_MONITOR) {
		const char *type =
		    json_string_value(json_object_get(body, "type"));
		const char *method =
		    json_string_value(json_object_get(body, "method"));
		if (type && method &&
		    !strcmp(method, "connection_established") &&
		    (!strcmp(type, "tcp") || !strcmp(type, "smtp")))
			json_object_del(body, "method");
		return;
	}
	if (kind != CFG_JSON_LB)
		return;
	affinity_none(body);
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(body, "rules"), i, r)
	{
		json_t *ov = json_object_get(r, "overrides");
		if (json_is_object(ov))
			affinity_none(ov);
	}
}

/* One API object as a mapping of its list ("pools[gcp]": {...}) with the
 * API's id first, or NULL after reporting why not. */
static cfg_node *object_node(cfg_ctx *c, const cfg_json_obj *o)
{
	const char *list = list_keys[o->kind];
	const char *label = o->id ? tmp_printf(c, "%s[%s]", list, o->id)
				  : tmp_printf(c, "%s[]", list);
	json_t *body;
	if (o->value) {
		body = json_deep_copy(o->value);
		if (!body)
			abort();
	} else {
		json_error_t err;
		body = json_loads(o->json ? o->json : "",
				  JSON_REJECT_DUPLICATES, &err);
		if (!body) {
			cfg_errs_add_field(&c->errs, label,
					   "invalid JSON: %s (line %d, column "
					   "%d)",
					   err.text, err.line, err.column);
			return NULL;
		}
	}
	if (!json_is_object(body)) {
		cfg_errs_add_field(&c->errs, label,
				   "expected a JSON object (a %s), got %s",
				   kind_names[o->kind], json_kind_text(body));
		json_decref(body);
		return NULL;
	}
	cfg_json_strip_readonly(o->kind, body);
	if (!drop_unused_fields(c, o->kind, body, label)) {
		json_decref(body);
		return NULL;
	}
	cloudflare_spellings(o->kind, body);
	cfg_node *n = from_json(c, body, label, list, 1);
	json_decref(body);
	if (!o->id)
		return n;
	/* The id goes first, as a client would have written it. */
	cfg_node **keys = core_arena_alloc(c->tmp, (n->n + 1) * sizeof(*keys));
	cfg_node **items =
	    core_arena_alloc(c->tmp, (n->n + 1) * sizeof(*items));
	const char *idpath = tmp_printf(c, "%s.id", label);
	keys[0] = new_node(c, CFG_NODE_SCALAR, idpath, "id");
	keys[0]->str = "id";
	keys[0]->len = 2;
	items[0] = new_node(c, CFG_NODE_SCALAR, idpath, "id");
	items[0]->str = core_arena_strdup(c->tmp, o->id);
	items[0]->len = strlen(o->id);
	items[0]->quoted = true;
	memcpy(keys + 1, n->keys, n->n * sizeof(*keys));
	memcpy(items + 1, n->items, n->n * sizeof(*items));
	n->keys = keys;
	n->items = items;
	n->n++;
	n->weight++;
	return n;
}

typedef struct merge {
	const cfg_json_obj *objs;
	size_t nobjs;
	size_t nfile[NKINDS]; /* the file's objects of each kind */
} merge;

static int key_index(const cfg_node *map, const char *key)
{
	for (size_t i = 0; i < map->n; i++)
		if (map->keys[i]->kind == CFG_NODE_SCALAR &&
		    !strcmp(map->keys[i]->str, key))
			return (int)i;
	return -1;
}

/* The root hook: the file's root with the API's objects appended to its
 * lists (added when the file has none). The file's nodes are not changed
 * (an alias may share them): lists and the root are new nodes. */
static cfg_node *merge_root(cfg_ctx *c, cfg_node *root, void *arg)
{
	merge *m = arg;
	if (root && root->kind != CFG_NODE_MAP)
		return root; /* reported by the loader */
	cfg_node *r = new_node(c, CFG_NODE_MAP, NULL, NULL);
	if (root)
		*r = *root;
	r->keys = core_arena_alloc(c->tmp, (r->n + NKINDS) * sizeof(*r->keys));
	r->items =
	    core_arena_alloc(c->tmp, (r->n + NKINDS) * sizeof(*r->items));
	if (root) {
		memcpy(r->keys, root->keys, root->n * sizeof(*r->keys));
		memcpy(r->items, root->items, root->n * sizeof(*r->items));
	}
	for (int kind = 0; kind < NKINDS; kind++) {
		size_t napi = 0;
		for (size_t i = 0; i < m->nobjs; i++) {
			assert((unsigned)m->objs[i].kind < NKINDS);
			napi += (int)m->objs[i].kind == kind;
		}
		int at = key_index(r, list_keys[kind]);
		cfg_node *old = at >= 0 ? r->items[at] : NULL;
		if (old && !old->is_null && old->kind != CFG_NODE_SEQ)
			continue; /* the file's error is reported */
		size_t nf = old && !old->is_null ? old->n : 0;
		m->nfile[kind] = nf;
		if (!napi)
			continue;
		cfg_node *seq = new_node(c, CFG_NODE_SEQ, NULL, NULL);
		if (old) {
			seq->line = old->line;
			seq->col = old->col;
		}
		seq->items =
		    core_arena_alloc(c->tmp, (nf + napi) * sizeof(*seq->items));
		for (size_t i = 0; i < nf; i++) {
			seq->items[seq->n++] = old->items[i];
			seq->weight += old->items[i]->weight;
		}
		for (size_t i = 0; i < m->nobjs; i++) {
			if ((int)m->objs[i].kind != kind)
				continue;
			cfg_node *o = object_node(c, &m->objs[i]);
			if (!o)
				continue;
			seq->items[seq->n++] = o;
			seq->weight += o->weight;
		}
		if (at >= 0) {
			r->items[at] = seq;
			continue;
		}
		cfg_node *k = new_node(c, CFG_NODE_SCALAR, NULL, NULL);
		k->str = list_keys[kind];
		k->len = strlen(k->str);
		r->keys[r->n] = k;
		r->items[r->n++] = seq;
	}
	return r;
}

int cfg_load_merged(const char *name, const char *yaml, size_t yaml_len,
		    const cfg_json_obj *objs, size_t nobjs, cfg_snapshot **out,
		    cfg_diag *diag)
{
	merge m = {.objs = objs, .nobjs = nobjs};
	int rc = cfg_load_hooked(name, yaml, yaml ? yaml_len : 0, merge_root,
				 &m, out, diag);
	if (rc)
		return rc;
	/* Every object was appended (anything else is an error): the API's
	 * are those after the file's. */
	cfg_snapshot *s = *out;
	for (size_t i = m.nfile[CFG_JSON_MONITOR]; i < s->nmonitors; i++)
		s->monitors[i].from_api = true;
	for (size_t i = m.nfile[CFG_JSON_POOL]; i < s->npools; i++)
		s->pools[i].from_api = true;
	for (size_t i = m.nfile[CFG_JSON_LB]; i < s->nlbs; i++)
		s->lbs[i].from_api = true;
	return 0;
}

/* ---- config out: JSON ---- */

static json_t *must(json_t *j)
{
	if (!j)
		abort(); /* out of memory, like xmalloc */
	return j;
}

/* Length of the well-formed UTF-8 sequence at s, or 0. */
static size_t utf8_seq(const unsigned char *s)
{
	uint32_t c = s[0];
	size_t n;
	uint32_t min;
	if (c < 0x80)
		return 1;
	if ((c & 0xE0) == 0xC0) {
		n = 2, min = 0x80, c &= 0x1F;
	} else if ((c & 0xF0) == 0xE0) {
		n = 3, min = 0x800, c &= 0x0F;
	} else if ((c & 0xF8) == 0xF0) {
		n = 4, min = 0x10000, c &= 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80) /* also stops at the NUL */
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	return n;
}

/* A copy of s with every byte that is not UTF-8 replaced by '?'. A value
 * from ${VAR} may be anything; JSON strings may not. */
static char *utf8_clean(const char *s)
{
	char *out = xstrdup(s);
	for (unsigned char *p = (unsigned char *)out; *p;) {
		size_t n = utf8_seq(p);
		if (n) {
			p += n;
		} else {
			*p++ = '?';
		}
	}
	return out;
}

json_t *cfg_json_string(const char *s)
{
	if (!s)
		return json_null();
	json_t *j = json_string(s);
	if (j)
		return j;
	char *clean = utf8_clean(s);
	j = must(json_string(clean));
	free(clean);
	return j;
}

void cfg_json_utf8_cut(char *s)
{
	size_t len = strlen(s), i = len;
	/* Back over at most 3 continuation bytes to the sequence's start. */
	while (i > 0 && len - i < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if (i == 0)
		return;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t want = (lead & 0xE0) == 0xC0   ? 2
		      : (lead & 0xF0) == 0xE0 ? 3
		      : (lead & 0xF8) == 0xF0 ? 4
					      : 0;
	if (want && len - (i - 1) < want)
		s[i - 1] = '\0';
}

/* o[key] = v, taking v. */
static void jset(json_t *o, const char *key, json_t *v)
{
	must(v);
	int rc = json_object_set(o, key, v);
	if (rc) { /* a key that is not UTF-8 */
		char *clean = utf8_clean(key);
		rc = json_object_set(o, clean, v);
		free(clean);
	}
	json_decref(v);
	if (rc)
		abort();
}

static void jappend(json_t *a, json_t *v)
{
	if (json_array_append_new(a, must(v)))
		abort();
}

static uint64_t read_uint(const void *p, size_t size)
{
	switch (size) {
	case 1:
		return *(const uint8_t *)p;
	case 2:
		return *(const uint16_t *)p;
	case 4:
		return *(const uint32_t *)p;
	default:
		return *(const uint64_t *)p;
	}
}

static json_t *render_duration(const cfg_key *k, uint32_t v)
{
	if (k->flags & CFG_F_SECONDS)
		return json_integer(v);
	if (v % 1000 == 0)
		return json_integer(v / 1000);
	/* Below Cloudflare's resolution ("1500ms"): the loader reads it. */
	char buf[32];
	cfg_fmt_duration(v, buf, sizeof(buf));
	return cfg_json_string(buf);
}

static json_t *render_table(const cfg_table *t, const void *base);

static json_t *render_value(const cfg_key *k, const void *base)
{
	const char *field = (const char *)base + k->off;
	switch (k->type) {
	case CFG_STRING:
		return cfg_json_string(*(const char *const *)field);
	case CFG_BOOL:
		return json_boolean(*(const bool *)field);
	case CFG_TRISTATE: {
		int8_t v = *(const int8_t *)field;
		return v < 0 ? json_null() : json_boolean(v);
	}
	case CFG_UINT:
	case CFG_SIZE:
		return json_integer((json_int_t)read_uint(field, k->size));
	case CFG_DOUBLE:
		return json_real(*(const double *)field);
	case CFG_DURATION:
		return render_duration(k, *(const uint32_t *)field);
	case CFG_ENUM: {
		uint64_t i = read_uint(field, k->size);
		return i < k->nchoices && k->choices[i]
			   ? cfg_json_string(k->choices[i])
			   : json_null();
	}
	case CFG_ADDR:
		return cfg_json_string(((const cfg_addr *)field)->text);
	case CFG_CIDR:
		return cfg_json_string(((const cfg_cidr *)field)->text);
	case CFG_REF: {
		const void *p = *(const void *const *)field;
		if (!p)
			return json_null();
		return cfg_json_string(k->ref == CFG_REF_POOL
					   ? ((const cfg_pool *)p)->id
					   : ((const cfg_monitor *)p)->id);
	}
	case CFG_LIST:
	case CFG_MAP: {
		const char *arr = *(const char *const *)field;
		size_t n = *(const size_t *)((const char *)base + k->count_off);
		json_t *j =
		    must(k->type == CFG_LIST ? json_array() : json_object());
		for (size_t i = 0; i < n; i++) {
			const char *elem = arr + i * k->elem_size;
			if (k->type == CFG_LIST) {
				jappend(j, render_value(k->item, elem));
				continue;
			}
			const char *key =
			    *(const char *const *)(elem + k->key_off);
			if (key)
				jset(j, key, render_value(k->item, elem));
		}
		return j;
	}
	case CFG_OBJECT:
		return render_table(k->sub, field);
	}
	return json_null();
}

static json_t *render_table(const cfg_table *t, const void *base)
{
	json_t *o = must(json_object());
	const cfg_key *id = NULL;
	for (size_t i = 0; i < t->nkeys; i++)
		if (!strcmp(t->keys[i].name, "id"))
			id = &t->keys[i];
	if (id)
		jset(o, "id", render_value(id, base));
	for (size_t i = 0; i < t->nkeys; i++) {
		const cfg_key *k = &t->keys[i];
		if (k == id)
			continue;
		if ((k->flags & CFG_F_HAS) &&
		    !*(const bool *)((const char *)base + k->has_off))
			continue; /* unset: absent, as Cloudflare does */
		jset(o, k->name, render_value(k, base));
	}
	return o;
}

/* The table of an object kind: the item of its top-level list. */
static const cfg_table *kind_table(cfg_json_kind kind)
{
	assert((unsigned)kind < NKINDS);
	for (size_t i = 0; i < cfg_root_table.nkeys; i++) {
		const cfg_key *k = &cfg_root_table.keys[i];
		if (!strcmp(k->name, list_keys[kind]))
			return k->item->sub;
	}
	abort(); /* the tables lost a section */
}

json_t *cfg_json_render(cfg_json_kind kind, const void *obj)
{
	return render_table(kind_table(kind), obj);
}

json_t *cfg_json_monitor(const cfg_monitor *m)
{
	return cfg_json_render(CFG_JSON_MONITOR, m);
}

json_t *cfg_json_pool(const cfg_pool *p)
{
	return cfg_json_render(CFG_JSON_POOL, p);
}

json_t *cfg_json_lb(const cfg_lb *lb)
{
	return cfg_json_render(CFG_JSON_LB, lb);
}
