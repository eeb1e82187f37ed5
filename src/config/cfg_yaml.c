/* cfg_yaml.c - libyaml events to a cfg_node tree; see cfg_yaml.h. */
#include "config/cfg_yaml.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/cfg_env.h"
#include "config/cfg_values.h"
#include "core/core_arena.h"
#include "core/core_util.h"

/* Children are collected in a list while their parent is open, then turned
 * into an array; a link cell (not the node) carries the list so an aliased
 * node can sit in several parents. */
typedef struct link {
	cfg_node *node;
	struct link *next;
} link;

typedef struct frame {
	cfg_node *node;
	link *head, *tail;
	size_t count;
	const char *anchor; /* registered when the collection ends */
} frame;

typedef struct anchor {
	const char *name;
	cfg_node *node;
	struct anchor *next;
} anchor;

typedef struct builder {
	core_arena *a;
	cfg_errs *e;
	frame stack[CFG_YAML_MAX_DEPTH];
	int depth;
	anchor *anchors;
	cfg_node *root;
	int ndocs;
	bool failed; /* stop: the tree cannot be trusted */
} builder;

static cfg_node *new_node(builder *b, cfg_node_kind kind, yaml_mark_t m)
{
	cfg_node *n = core_arena_alloc(b->a, sizeof(*n));
	n->kind = kind;
	n->line = (uint32_t)m.line + 1;
	n->col = (uint32_t)m.column + 1;
	n->weight = 1;
	return n;
}

static void err_at(builder *b, uint32_t line, uint32_t col, const char *msg,
		   const char *arg)
{
	if (arg)
		cfg_errs_add(b->e, line, col, "%s '%s'", msg, arg);
	else
		cfg_errs_add(b->e, line, col, "%s", msg);
}

static void add_anchor(builder *b, const char *name, cfg_node *n)
{
	anchor *an = core_arena_alloc(b->a, sizeof(*an));
	an->name = name;
	an->node = n;
	an->next = b->anchors; /* newest first: a redefinition wins */
	b->anchors = an;
}

static cfg_node *find_anchor(builder *b, const char *name)
{
	for (anchor *an = b->anchors; an; an = an->next)
		if (!strcmp(an->name, name))
			return an->node;
	return NULL;
}

/* Attach a finished node to the open collection (or make it the root). */
static void attach(builder *b, cfg_node *n)
{
	if (b->depth == 0) {
		if (!b->root)
			b->root = n;
		return;
	}
	frame *f = &b->stack[b->depth - 1];
	link *l = core_arena_alloc(b->a, sizeof(*l));
	l->node = n;
	if (f->tail)
		f->tail->next = l;
	else
		f->head = l;
	f->tail = l;
	f->count++;
	f->node->weight += n->weight;
	if (f->node->weight > CFG_YAML_MAX_NODES) {
		cfg_errs_add(b->e, n->line, n->col,
			     "document too large: more than %d nodes once "
			     "aliases are expanded",
			     CFG_YAML_MAX_NODES);
		b->failed = true;
	}
}

/* A scalar in a mapping's key position (even child index) is a key. */
static bool next_is_key(const builder *b)
{
	if (b->depth == 0)
		return false;
	const frame *f = &b->stack[b->depth - 1];
	return f->node->kind == CFG_NODE_MAP && f->count % 2 == 0;
}

static bool is_null_text(const char *s)
{
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") ||
	       !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static void on_scalar(builder *b, const yaml_event_t *ev)
{
	const char *raw = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	cfg_node *n = new_node(b, CFG_NODE_SCALAR, ev->start_mark);
	if (memchr(raw, '\0', len)) {
		err_at(b, n->line, n->col, "value contains a NUL character",
		       NULL);
		len = strlen(raw);
	}
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		     !ev->data.scalar.tag;
	n->is_null = plain && is_null_text(raw);
	n->quoted = !plain;
	const char *s = core_arena_strndup(b->a, raw, len);
	if (!next_is_key(b)) {
		char err[320];
		if (cfg_env_expand(b->a, s, len, &s, &len, err, sizeof(err))) {
			err_at(b, n->line, n->col, err, NULL);
			s = "";
			len = 0;
			n->bad = true;
		}
	}
	n->str = s;
	n->len = len;
	n->verbatim = plain && ev->start_mark.line == ev->end_mark.line &&
		      len == ev->data.scalar.length && !memcmp(s, raw, len);
	if (ev->data.scalar.anchor)
		add_anchor(b,
			   core_arena_strdup(
			       b->a, (const char *)ev->data.scalar.anchor),
			   n);
	attach(b, n);
}

static void on_start(builder *b, const yaml_event_t *ev, cfg_node_kind kind,
		     const yaml_char_t *anchor_name)
{
	cfg_node *n = new_node(b, kind, ev->start_mark);
	if (b->depth == CFG_YAML_MAX_DEPTH) {
		cfg_errs_add(b->e, n->line, n->col,
			     "nesting deeper than %d levels",
			     CFG_YAML_MAX_DEPTH);
		b->failed = true;
		return;
	}
	frame *f = &b->stack[b->depth++];
	*f = (frame){.node = n};
	if (anchor_name)
		f->anchor = core_arena_strdup(b->a, (const char *)anchor_name);
}

static void report_duplicate(builder *b, const cfg_node *k, const cfg_node *p)
{
	cfg_errs_add(b->e, k->line, k->col,
		     "duplicate key '%s' (first at line %u)", k->str, p->line);
}

/* Report keys that appear twice in one mapping: YAML forbids it and the
 * second would silently win otherwise. Each repeat is reported against
 * the first occurrence, in file order (cfg_find_repeats: sorted, since
 * geo.networks can hold 100,000 entries). */
static void check_duplicate_keys(builder *b, const cfg_node *n)
{
	if (n->n < 2)
		return;
	cfg_strref *keys = xmalloc(n->n * sizeof(*keys));
	size_t *first = xmalloc(n->n * sizeof(*first));
	for (size_t i = 0; i < n->n; i++) {
		const cfg_node *k = n->keys[i];
		keys[i] = k->kind == CFG_NODE_SCALAR
			      ? (cfg_strref){k->str, k->len}
			      : (cfg_strref){0};
	}
	cfg_find_repeats(keys, n->n, false, first);
	for (size_t i = 0; i < n->n; i++)
		if (first[i] != SIZE_MAX)
			report_duplicate(b, n->keys[i], n->keys[first[i]]);
	free(first);
	free(keys);
}

static void on_end(builder *b)
{
	frame *f = &b->stack[--b->depth];
	cfg_node *n = f->node;
	link *l = f->head;
	if (n->kind == CFG_NODE_SEQ) {
		n->n = f->count;
		n->items = core_arena_alloc(b->a, n->n * sizeof(*n->items));
		for (size_t i = 0; i < n->n; i++, l = l->next)
			n->items[i] = l->node;
	} else {
		n->n = f->count / 2;
		n->keys = core_arena_alloc(b->a, n->n * sizeof(*n->keys));
		n->items = core_arena_alloc(b->a, n->n * sizeof(*n->items));
		for (size_t i = 0; i < n->n; i++) {
			n->keys[i] = l->node;
			n->items[i] = l->next->node;
			l = l->next->next;
			if (n->keys[i]->kind != CFG_NODE_SCALAR)
				cfg_errs_add(b->e, n->keys[i]->line,
					     n->keys[i]->col,
					     "mapping keys must be strings, "
					     "not %s",
					     cfg_node_kind_name(n->keys[i]));
		}
		check_duplicate_keys(b, n);
	}
	/* Registered only now, so an alias inside its own anchor is
	 * "unknown" and the tree stays acyclic. */
	if (f->anchor)
		add_anchor(b, f->anchor, n);
	attach(b, n);
}

static void on_alias(builder *b, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	cfg_node *n = find_anchor(b, name);
	if (!n) {
		cfg_node *bad = new_node(b, CFG_NODE_SCALAR, ev->start_mark);
		cfg_errs_add(b->e, bad->line, bad->col, "unknown alias '*%s'",
			     name);
		bad->bad = true;
		bad->str = "";
		n = bad;
	}
	attach(b, n);
}

/* libyaml's reader errors carry a byte offset, not a mark. */
static void offset_to_pos(const char *buf, size_t len, size_t off,
			  uint32_t *line, uint32_t *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)buf[i] & 0xC0) != 0x80) {
			(*col)++;
		}
	}
}

static void syntax_error(builder *b, const yaml_parser_t *p, const char *buf,
			 size_t len)
{
	uint32_t line, col;
	if (p->error == YAML_READER_ERROR) {
		offset_to_pos(buf, len, p->problem_offset, &line, &col);
	} else {
		line = (uint32_t)p->problem_mark.line + 1;
		col = (uint32_t)p->problem_mark.column + 1;
	}
	const char *problem = p->problem ? p->problem : "cannot parse";
	if (p->context)
		cfg_errs_add(b->e, line, col, "YAML syntax error: %s (%s)",
			     problem, p->context);
	else
		cfg_errs_add(b->e, line, col, "YAML syntax error: %s", problem);
	b->failed = true;
}

cfg_node *cfg_yaml_parse(core_arena *a, const char *buf, size_t len,
			 cfg_errs *e)
{
	builder b = {.a = a, .e = e};
	yaml_parser_t p;
	if (!yaml_parser_initialize(&p)) {
		cfg_errs_add(e, 0, 0, "cannot initialise the YAML parser");
		return NULL;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	bool done = false;
	while (!done && !b.failed) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&p, &ev)) {
			syntax_error(&b, &p, buf, len);
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++b.ndocs > 1) {
				cfg_errs_add(e,
					     (uint32_t)ev.start_mark.line + 1,
					     (uint32_t)ev.start_mark.column + 1,
					     "only one YAML document is "
					     "allowed");
				b.failed = true;
			}
			break;
		case YAML_SCALAR_EVENT:
			on_scalar(&b, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
			on_start(&b, &ev, CFG_NODE_SEQ,
				 ev.data.sequence_start.anchor);
			break;
		case YAML_MAPPING_START_EVENT:
			on_start(&b, &ev, CFG_NODE_MAP,
				 ev.data.mapping_start.anchor);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			on_end(&b);
			break;
		case YAML_ALIAS_EVENT:
			on_alias(&b, &ev);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	return b.failed ? NULL : b.root;
}

const cfg_node *cfg_node_key(const cfg_node *map, const char *key)
{
	if (!map || map->kind != CFG_NODE_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (map->keys[i]->kind == CFG_NODE_SCALAR &&
		    !strcmp(map->keys[i]->str, key))
			return map->keys[i];
	return NULL;
}

const cfg_node *cfg_node_get(const cfg_node *map, const char *key)
{
	if (!map || map->kind != CFG_NODE_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (map->keys[i]->kind == CFG_NODE_SCALAR &&
		    !strcmp(map->keys[i]->str, key))
			return map->items[i];
	return NULL;
}

const char *cfg_node_kind_name(const cfg_node *n)
{
	if (!n || n->is_null)
		return "nothing";
	switch (n->kind) {
	case CFG_NODE_SEQ:
		return "a list";
	case CFG_NODE_MAP:
		return "a mapping";
	default:
		return "a string";
	}
}
