/* cfg_schema.c - the engine that applies key tables to YAML nodes; see
 * cfg_schema.h. Messages read "<key>: expected <what>, got <value>" at the
 * value's position. */
#include "config/cfg_schema.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_values.h"
#include "core/core_arena.h"
#include "core/core_util.h"

/* Tables are small; the per-walk scratch array is sized for the largest. */
#define MAX_TABLE_KEYS 48

/* An error at a node from an API object: "<path>: <what is wrong>". The
 * engine names such a value by its path already; a finish hook names it
 * by its key ("minimum_origins: ..."), which the path ends with. */
__attribute__((format(printf, 3, 0))) static void
path_error(cfg_ctx *c, const cfg_node *n, const char *fmt, va_list ap)
{
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	const char *m = msg;
	const char *names[] = {n->path, n->key};
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		size_t len = names[i] ? strlen(names[i]) : 0;
		if (len && !strncmp(m, names[i], len) && m[len] == ':' &&
		    m[len + 1] == ' ') {
			m += len + 2;
			break;
		}
	}
	cfg_errs_add_field(&c->errs, n->path, "%s", m);
	free(msg);
}

void cfg_error(cfg_ctx *c, const cfg_node *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (n && n->path)
		path_error(c, n, fmt, ap);
	else
		cfg_errs_vadd(&c->errs, n ? n->line : 0, n ? n->col : 0, fmt,
			      ap);
	va_end(ap);
}

char *cfg_strdup(cfg_ctx *c, const char *s)
{
	return core_arena_strdup(c->arena, s);
}

cfg_pos cfg_pos_of(const cfg_ctx *c, const cfg_node *n)
{
	return (cfg_pos){c->file, n ? n->line : 0, n ? n->col : 0};
}

static void store_uint(void *p, size_t size, uint64_t v)
{
	switch (size) {
	case 1:
		*(uint8_t *)p = (uint8_t)v;
		break;
	case 2:
		*(uint16_t *)p = (uint16_t)v;
		break;
	case 4:
		*(uint32_t *)p = (uint32_t)v;
		break;
	default:
		*(uint64_t *)p = v;
		break;
	}
}

/* The scalar text of n, or NULL after "expected <what>, got a list". */
static const char *scalar(cfg_ctx *c, const char *name, const cfg_node *n,
			  const char *what)
{
	if (n->kind == CFG_NODE_SCALAR && !n->is_null)
		return n->str;
	cfg_error(c, n, "%s: expected %s, got %s", name, what,
		  cfg_node_kind_name(n));
	return NULL;
}

static void choices_text(const cfg_key *k, char *buf, size_t size)
{
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < k->nchoices && o < size; i++) {
		const char *ch = k->choices[i];
		if (!ch) /* a C enum value not offered for this key */
			continue;
		int w = snprintf(buf + o, size - o, "%s%s%s%s", o ? ", " : "",
				 *ch ? "" : "\"", ch, *ch ? "" : "\"");
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

/* Index of s in the key's choices, or -1 after reporting it. */
static int choose(cfg_ctx *c, const cfg_key *k, const char *name,
		  const cfg_node *n, const char *s)
{
	for (size_t i = 0; i < k->nchoices; i++)
		if (k->choices[i] && !strcmp(s, k->choices[i]))
			return (int)i;
	char list[512];
	choices_text(k, list, sizeof(list));
	const char *hint = cfg_suggest(s, k->choices, k->nchoices);
	if (hint)
		cfg_error(c, n, "%s: '%s' is not one of %s; did you mean '%s'?",
			  name, s, list, hint);
	else
		cfg_error(c, n, "%s: '%s' is not one of %s", name, s, list);
	return -1;
}

void cfg_fmt_duration(uint64_t ms, char *buf, size_t size)
{
	if (ms && ms % 3600000 == 0)
		snprintf(buf, size, "%" PRIu64 "h", ms / 3600000);
	else if (ms && ms % 60000 == 0)
		snprintf(buf, size, "%" PRIu64 "m", ms / 60000);
	else if (ms % 1000 == 0)
		snprintf(buf, size, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, size, "%" PRIu64 "ms", ms);
}

void cfg_fmt_size(uint64_t b, char *buf, size_t size)
{
	if (b && b % (1ull << 30) == 0)
		snprintf(buf, size, "%" PRIu64 "G", b >> 30);
	else if (b && b % (1ull << 20) == 0)
		snprintf(buf, size, "%" PRIu64 "M", b >> 20);
	else if (b && b % (1ull << 10) == 0 && b >= 1ull << 14)
		snprintf(buf, size, "%" PRIu64 "k", b >> 10);
	else
		snprintf(buf, size, "%" PRIu64, b);
}

static void set_string(cfg_ctx *c, const cfg_key *k, const char *name,
		       const cfg_node *n, void *field)
{
	const char *s = scalar(c, name, n, "a string");
	if (!s)
		return;
	if ((k->flags & CFG_F_NONEMPTY) && !*s) {
		cfg_error(c, n, "%s: must not be empty", name);
		return;
	}
	if (k->nchoices && choose(c, k, name, n, s) < 0)
		return;
	const char *want = k->check ? k->check(s) : NULL;
	if (want && (k->flags & CFG_F_SECRET)) { /* never echo a secret */
		cfg_error(c, n, "%s: expected %s, got %zu characters", name,
			  want, strlen(s));
		return;
	}
	if (want) {
		cfg_error(c, n, "%s: expected %s, got '%s'", name, want, s);
		return;
	}
	*(const char **)field = cfg_strdup(c, s);
}

static void set_uint(cfg_ctx *c, const cfg_key *k, const char *name,
		     const cfg_node *n, void *field)
{
	char what[96];
	snprintf(what, sizeof(what), "an integer %" PRId64 "..%" PRId64, k->min,
		 k->max);
	const char *s = scalar(c, name, n, what);
	if (!s)
		return;
	int64_t v;
	if (cfg_parse_int(s, &v)) {
		cfg_error(c, n, "%s: expected %s, got '%s'", name, what, s);
		return;
	}
	if (v < k->min || v > k->max) {
		cfg_error(c, n, "%s: %s is out of range %" PRId64 "..%" PRId64,
			  name, s, k->min, k->max);
		return;
	}
	store_uint(field, k->size, (uint64_t)v);
}

static void set_double(cfg_ctx *c, const cfg_key *k, const char *name,
		       const cfg_node *n, void *field)
{
	char what[96];
	snprintf(what, sizeof(what), "a number %g..%g", k->dmin, k->dmax);
	const char *s = scalar(c, name, n, what);
	if (!s)
		return;
	double v;
	if (cfg_parse_double(s, &v)) {
		cfg_error(c, n, "%s: expected %s, got '%s'", name, what, s);
		return;
	}
	if (v < k->dmin || v > k->dmax) {
		cfg_error(c, n, "%s: %s is out of range %g..%g", name, s,
			  k->dmin, k->dmax);
		return;
	}
	*(double *)field = v;
}

static void set_duration(cfg_ctx *c, const cfg_key *k, const char *name,
			 const cfg_node *n, void *field)
{
	static const char what[] = "a duration like 500ms, 5s, 1m";
	const char *s = scalar(c, name, n, what);
	if (!s)
		return;
	uint64_t ms;
	if (core_parse_duration_ms(s, &ms)) {
		cfg_error(c, n, "%s: expected %s, got '%s'", name, what, s);
		return;
	}
	if (ms < (uint64_t)k->min || ms > (uint64_t)k->max) {
		char lo[32], hi[32];
		cfg_fmt_duration((uint64_t)k->min, lo, sizeof(lo));
		cfg_fmt_duration((uint64_t)k->max, hi, sizeof(hi));
		cfg_error(c, n, "%s: %s is out of range %s..%s", name, s, lo,
			  hi);
		return;
	}
	if (k->flags & CFG_F_SECONDS) {
		if (ms % 1000) {
			cfg_error(c, n,
				  "%s: %s is not a whole number of "
				  "seconds",
				  name, s);
			return;
		}
		ms /= 1000;
	}
	*(uint32_t *)field = (uint32_t)ms;
}

static void set_size(cfg_ctx *c, const cfg_key *k, const char *name,
		     const cfg_node *n, void *field)
{
	static const char what[] = "a size like 16384, 64k or 10M";
	const char *s = scalar(c, name, n, what);
	if (!s)
		return;
	uint64_t v;
	if (cfg_parse_size(s, &v)) {
		cfg_error(c, n, "%s: expected %s, got '%s'", name, what, s);
		return;
	}
	if (v < (uint64_t)k->min || v > (uint64_t)k->max) {
		char lo[32], hi[32];
		cfg_fmt_size((uint64_t)k->min, lo, sizeof(lo));
		cfg_fmt_size((uint64_t)k->max, hi, sizeof(hi));
		cfg_error(c, n, "%s: %s is out of range %s..%s", name, s, lo,
			  hi);
		return;
	}
	store_uint(field, k->size, v);
}

static void set_addr(cfg_ctx *c, const char *name, const cfg_node *n,
		     cfg_addr *a)
{
	static const char what[] = "an address like 127.0.0.1:8080";
	const char *s = scalar(c, name, n, what);
	if (!s)
		return;
	const char *why = NULL;
	if (cfg_parse_listen(s, &a->ss, &a->len, &why)) {
		cfg_error(c, n, "%s: bad address '%s': %s", name, s, why);
		return;
	}
	a->text = cfg_strdup(c, s);
}

static void set_cidr(cfg_ctx *c, const char *name, const cfg_node *n,
		     cfg_cidr *out)
{
	const char *s = scalar(c, name, n, "a CIDR like 10.0.0.0/8");
	if (!s)
		return;
	const char *why = NULL;
	char fixed[64] = "";
	if (cfg_parse_cidr(s, out, &why, fixed, sizeof(fixed))) {
		if (*fixed)
			cfg_error(c, n,
				  "%s: bad CIDR '%s': %s; did you mean "
				  "'%s'?",
				  name, s, why, fixed);
		else
			cfg_error(c, n, "%s: bad CIDR '%s': %s", name, s, why);
		return;
	}
	out->text = cfg_strdup(c, s);
}

static void add_ref(cfg_ctx *c, const cfg_key *k, const char *name,
		    const cfg_node *n, void *field)
{
	const char *s = scalar(
	    c, name, n, k->ref == CFG_REF_POOL ? "a pool id" : "a monitor id");
	if (!s)
		return;
	cfg_ref *r = core_arena_alloc(c->tmp, sizeof(*r));
	r->kind = k->ref;
	r->node = n;
	r->target = field;
	r->next = c->refs;
	c->refs = r;
}

static void apply_value(cfg_ctx *c, const cfg_key *k, const char *name,
			const cfg_node *n, void *base);

static void set_list(cfg_ctx *c, const cfg_key *k, const char *name,
		     const cfg_node *n, void *base)
{
	if (n->kind != CFG_NODE_SEQ || n->is_null) {
		cfg_error(c, n, "%s: expected a list, got %s", name,
			  cfg_node_kind_name(n));
		return;
	}
	if ((k->flags & CFG_F_NONEMPTY) && n->n == 0) {
		cfg_error(c, n, "%s: must not be empty", name);
		return;
	}
	char *arr = core_arena_alloc(c->arena, n->n * k->elem_size);
	for (size_t i = 0; i < n->n; i++)
		apply_value(c, k->item, name, n->items[i],
			    arr + i * k->elem_size);
	*(void **)((char *)base + k->off) = arr;
	*(size_t *)((char *)base + k->count_off) = n->n;
}

static void set_map(cfg_ctx *c, const cfg_key *k, const char *name,
		    const cfg_node *n, void *base)
{
	if (n->kind != CFG_NODE_MAP) {
		cfg_error(c, n, "%s: expected a mapping, got %s", name,
			  cfg_node_kind_name(n));
		return;
	}
	if ((k->flags & CFG_F_NONEMPTY) && n->n == 0) {
		cfg_error(c, n, "%s: must not be empty", name);
		return;
	}
	char *arr = core_arena_alloc(c->arena, n->n * k->elem_size);
	for (size_t i = 0; i < n->n; i++) {
		char *elem = arr + i * k->elem_size;
		const cfg_node *key = n->keys[i];
		if (key->kind != CFG_NODE_SCALAR)
			continue; /* reported by the YAML reader */
		*(const char **)(elem + k->key_off) = cfg_strdup(c, key->str);
		if (k->mapkey)
			apply_value(c, k->mapkey, name, key, elem);
		char sub[160];
		snprintf(sub, sizeof(sub), "%s.%s", name, key->str);
		apply_value(c, k->item, sub, n->items[i], elem);
	}
	*(void **)((char *)base + k->off) = arr;
	*(size_t *)((char *)base + k->count_off) = n->n;
}

static void apply_value(cfg_ctx *c, const cfg_key *k, const char *name,
			const cfg_node *n, void *base)
{
	void *field = (char *)base + k->off;
	const char *s;
	bool b;
	if (n->bad)
		return;
	if (n->path) /* from the API: messages name the whole path */
		name = n->path;
	switch (k->type) {
	case CFG_STRING:
		set_string(c, k, name, n, field);
		break;
	case CFG_BOOL:
		if (!(s = scalar(c, name, n, "true or false")))
			break;
		if (cfg_parse_bool(s, &b))
			cfg_error(c, n, "%s: expected true or false, got '%s'",
				  name, s);
		else
			*(bool *)field = b;
		break;
	case CFG_TRISTATE:
		if (n->kind == CFG_NODE_SCALAR &&
		    (n->is_null || !strcmp(n->str, "null"))) {
			*(int8_t *)field = -1;
			break;
		}
		if (!(s = scalar(c, name, n, "true, false or null")))
			break;
		if (cfg_parse_bool(s, &b))
			cfg_error(c, n,
				  "%s: expected true, false or null, got '%s'",
				  name, s);
		else
			*(int8_t *)field = b ? 1 : 0;
		break;
	case CFG_UINT:
		set_uint(c, k, name, n, field);
		break;
	case CFG_DOUBLE:
		set_double(c, k, name, n, field);
		break;
	case CFG_DURATION:
		set_duration(c, k, name, n, field);
		break;
	case CFG_SIZE:
		set_size(c, k, name, n, field);
		break;
	case CFG_ENUM: {
		char what[512] = "one of ";
		choices_text(k, what + 7, sizeof(what) - 7);
		if (!(s = scalar(c, name, n, what)))
			break;
		int i = choose(c, k, name, n, s);
		if (i >= 0)
			store_uint(field, k->size, (uint64_t)i);
		break;
	}
	case CFG_ADDR:
		set_addr(c, name, n, field);
		break;
	case CFG_CIDR:
		set_cidr(c, name, n, field);
		break;
	case CFG_REF:
		add_ref(c, k, name, n, field);
		break;
	case CFG_LIST:
		set_list(c, k, name, n, base);
		break;
	case CFG_MAP:
		set_map(c, k, name, n, base);
		break;
	case CFG_OBJECT:
		if (n->kind != CFG_NODE_MAP) {
			cfg_error(c, n, "%s: expected a mapping (%s), got %s",
				  name, k->sub->what, cfg_node_kind_name(n));
			break;
		}
		cfg_apply_table(c, k->sub, n, field);
		break;
	}
}

static void apply_default(cfg_ctx *c, const cfg_key *k, void *base)
{
	if (k->type == CFG_OBJECT) {
		cfg_apply_table(c, k->sub, NULL, (char *)base + k->off);
		return;
	}
	if (!k->def)
		return;
	/* Defaults go through the same parser as the file, so a default
	 * that does not parse is an error (at line 0) like any value; the
	 * unit tests load every table with its defaults. */
	cfg_node d = {.kind = CFG_NODE_SCALAR,
		      .str = k->def,
		      .len = strlen(k->def),
		      .weight = 1};
	apply_value(c, k, k->name, &d, base);
}

static void unknown_key(cfg_ctx *c, const cfg_table *t, const cfg_node *key)
{
	const char *names[MAX_TABLE_KEYS];
	for (size_t i = 0; i < t->nkeys; i++)
		names[i] = t->keys[i].name;
	const char *hint = cfg_suggest(key->str, names, t->nkeys);
	if (hint)
		cfg_error(c, key, "unknown key '%s' in %s; did you mean '%s'?",
			  key->str, t->what, hint);
	else
		cfg_error(c, key, "unknown key '%s' in %s", key->str, t->what);
}

void cfg_apply_table(cfg_ctx *c, const cfg_table *t, const cfg_node *node,
		     void *base)
{
	const cfg_node *vals[MAX_TABLE_KEYS] = {0};
	assert(t->nkeys <= MAX_TABLE_KEYS);
	if (node && t->has_pos)
		*(cfg_pos *)((char *)base + t->pos_off) = cfg_pos_of(c, node);
	for (size_t i = 0; node && i < node->n; i++) {
		const cfg_node *key = node->keys[i];
		if (key->kind != CFG_NODE_SCALAR)
			continue;
		size_t k = 0;
		while (k < t->nkeys && strcmp(t->keys[k].name, key->str))
			k++;
		if (k == t->nkeys)
			unknown_key(c, t, key);
		else if (!vals[k]) /* a repeated key is reported by the reader
				    */
			vals[k] = node->items[i];
	}
	for (size_t k = 0; k < t->nkeys; k++) {
		const cfg_key *key = &t->keys[k];
		const cfg_node *v = vals[k];
		if (v && v->bad)
			continue;
		if (v && !v->is_null) {
			apply_value(c, key, key->name, v, base);
			if (key->flags & CFG_F_HAS)
				*(bool *)((char *)base + key->has_off) = true;
		} else if (node && (key->flags & CFG_F_REQUIRED)) {
			if (v)
				cfg_error(c, v, "%s: a value is required",
					  v->path ? v->path : key->name);
			else
				cfg_error(c, node,
					  "%s is missing required key '%s'",
					  t->what, key->name);
		} else {
			apply_default(c, key, base);
		}
	}
	if (t->finish)
		t->finish(c, node, base);
}

static void walk(const cfg_table *t, cfg_table_visit fn, void *arg,
		 const cfg_table **seen, size_t *nseen, size_t cap);

static void walk_key(const cfg_key *k, cfg_table_visit fn, void *arg,
		     const cfg_table **seen, size_t *nseen, size_t cap)
{
	if (k->sub)
		walk(k->sub, fn, arg, seen, nseen, cap);
	if (k->item)
		walk_key(k->item, fn, arg, seen, nseen, cap);
}

static void walk(const cfg_table *t, cfg_table_visit fn, void *arg,
		 const cfg_table **seen, size_t *nseen, size_t cap)
{
	for (size_t i = 0; i < *nseen; i++)
		if (seen[i] == t)
			return;
	assert(*nseen < cap);
	seen[(*nseen)++] = t;
	fn(t, arg);
	for (size_t i = 0; i < t->nkeys; i++)
		walk_key(&t->keys[i], fn, arg, seen, nseen, cap);
}

void cfg_tables_walk(const cfg_table *t, cfg_table_visit fn, void *arg)
{
	const cfg_table *seen[128];
	size_t nseen = 0;
	walk(t, fn, arg, seen, &nseen, ARRAY_LEN(seen));
}
