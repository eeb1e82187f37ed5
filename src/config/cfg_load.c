/* cfg_load.c - file or string to cfg_snapshot; see cfg_load.h.
 *
 * Steps: read, parse YAML into a scratch tree, apply the root key table
 * (parsing, defaults, per-object checks), resolve references by id,
 * number pools and origins. Every step runs even after errors, so one run
 * reports everything; any error discards the snapshot.
 */
#include "config/cfg_load.h"
#include "config/cfg_rules.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_schema.h"
#include "config/cfg_validate.h"
#include "config/cfg_values.h"
#include "config/cfg_yaml.h"
#include "core/core_arena.h"
#include "core/core_util.h"

/* Larger files are refused rather than read into memory. */
#define CFG_MAX_FILE_BYTES (64u << 20)

static const void *find_ref(cfg_ctx *c, const cfg_ref *r)
{
	const cfg_snapshot *s = c->snap;
	const char *id = r->node->str;
	if (r->kind == CFG_REF_POOL) {
		for (size_t i = 0; i < s->npools; i++)
			if (s->pools[i].id && !strcmp(s->pools[i].id, id))
				return &s->pools[i];
	} else {
		for (size_t i = 0; i < s->nmonitors; i++)
			if (s->monitors[i].id && !strcmp(s->monitors[i].id, id))
				return &s->monitors[i];
	}
	return NULL;
}

static void unknown_ref(cfg_ctx *c, const cfg_ref *r)
{
	const cfg_snapshot *s = c->snap;
	bool pool = r->kind == CFG_REF_POOL;
	size_t n = pool ? s->npools : s->nmonitors;
	const char *what = pool ? "pool" : "monitor";
	if (n == 0) {
		cfg_error(c, r->node, "unknown %s '%s' (no %ss are defined)",
			  what, r->node->str, what);
		return;
	}
	const char **ids = core_arena_alloc(c->tmp, n * sizeof(*ids));
	for (size_t i = 0; i < n; i++)
		ids[i] = pool ? s->pools[i].id : s->monitors[i].id;
	const char *hint = cfg_suggest(r->node->str, ids, n);
	if (hint)
		cfg_error(c, r->node, "unknown %s '%s'; did you mean '%s'?",
			  what, r->node->str, hint);
	else
		cfg_error(c, r->node, "unknown %s '%s'", what, r->node->str);
}

static void resolve_refs(cfg_ctx *c)
{
	/* Collected newest first; resolved in the order found, so errors
	 * without a position (API objects) keep the order of the fields. */
	cfg_ref *prev = NULL;
	while (c->refs) {
		cfg_ref *next = c->refs->next;
		c->refs->next = prev;
		prev = c->refs;
		c->refs = next;
	}
	c->refs = prev;
	for (cfg_ref *r = c->refs; r; r = r->next) {
		const void *p = find_ref(c, r);
		if (p)
			*r->target = p;
		else
			unknown_ref(c, r);
	}
}

static void index_objects(cfg_ctx *c)
{
	cfg_snapshot *s = c->snap;
	size_t n = 0;
	for (size_t i = 0; i < s->npools; i++) {
		s->pools[i].index = (uint32_t)i;
		n += s->pools[i].norigins;
	}
	s->origins = core_arena_alloc(c->arena, n * sizeof(*s->origins));
	s->norigins = n;
	n = 0;
	for (size_t i = 0; i < s->npools; i++)
		for (size_t j = 0; j < s->pools[i].norigins; j++) {
			cfg_origin *o = &s->pools[i].origins[j];
			o->index = (uint32_t)n;
			s->origins[n++] = o;
		}
}

static void load_tree(cfg_ctx *c, const char *buf, size_t len,
		      cfg_root_hook hook, void *arg)
{
	cfg_node *root =
	    buf ? cfg_yaml_parse(c->tmp, buf, len, &c->errs) : NULL;
	if (!root && c->errs.n)
		return;
	if (root && root->kind == CFG_NODE_SCALAR && root->is_null)
		root = NULL;
	if (hook)
		root = hook(c, root, arg);
	if (!root) {
		cfg_errs_add(&c->errs, 1, 1, "configuration is empty");
		return;
	}
	if (root->kind != CFG_NODE_MAP) {
		cfg_error(c, root,
			  "expected a mapping of sections (edge, monitors, "
			  "pools, load_balancers, ...) at the top level, got "
			  "%s",
			  cfg_node_kind_name(root));
		return;
	}
	cfg_apply_table(c, &cfg_root_table, root, c->snap);
	resolve_refs(c);
	index_objects(c);
	cfg_finish_rules(c);
}

int cfg_load_string(const char *name, const char *yaml, size_t len,
		    cfg_snapshot **out, cfg_diag *diag)
{
	return cfg_load_hooked(name, yaml ? yaml : "", len, NULL, NULL, out,
			       diag);
}

int cfg_load_hooked(const char *name, const char *yaml, size_t len,
		    cfg_root_hook hook, void *arg, cfg_snapshot **out,
		    cfg_diag *diag)
{
	core_arena *arena = core_arena_new(0);
	cfg_snapshot *snap = core_arena_alloc(arena, sizeof(*snap));
	snap->arena = arena;
	snap->file = core_arena_strdup(arena, name ? name : "<config>");
	cfg_ctx c = {
	    .file = snap->file,
	    .arena = arena,
	    .tmp = core_arena_new(0),
	    .errs = {.file = snap->file},
	    .warns = {.file = snap->file, .noun = "warnings"},
	    .snap = snap,
	};
	load_tree(&c, yaml, len, hook, arg);
	core_arena_free(c.tmp);
	*out = NULL;
	if (!c.errs.n)
		cfg_warn_checks(&c);
	if (diag)
		cfg_errs_flush_warnings(&c.warns, diag);
	else
		cfg_errs_clear(&c.warns);
	if (c.errs.n) {
		if (diag)
			cfg_errs_flush(&c.errs, diag);
		else
			cfg_errs_clear(&c.errs);
		core_arena_free(arena);
		return -1;
	}
	*out = snap;
	return 0;
}

static void file_error(const char *path, const char *what, int err,
		       cfg_diag *diag)
{
	if (!diag)
		return;
	cfg_errs e = {.file = path};
	cfg_errs_add(&e, 0, 0, "%s: %s", what, strerror(err));
	cfg_errs_flush(&e, diag);
}

int cfg_read_file(const char *path, char **out, size_t *outlen, cfg_diag *diag)
{
	*out = NULL;
	*outlen = 0;
	FILE *f = fopen(path, "rb");
	if (!f) {
		file_error(path, "cannot open", errno, diag);
		return -1;
	}
	size_t len = 0, cap = 4096;
	char *buf = xmalloc(cap + 1);
	for (;;) {
		if (len == cap) {
			if (cap >= CFG_MAX_FILE_BYTES) {
				file_error(path, "cannot read", EFBIG, diag);
				goto fail;
			}
			cap *= 2;
			buf = xrealloc(buf, cap + 1);
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f)) {
				file_error(path, "cannot read",
					   errno ? errno : EIO, diag);
				goto fail;
			}
			break;
		}
	}
	fclose(f);
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
fail:
	free(buf);
	fclose(f);
	return -1;
}

int cfg_load_file(const char *path, cfg_snapshot **out, cfg_diag *diag)
{
	*out = NULL;
	char *buf;
	size_t len;
	if (cfg_read_file(path, &buf, &len, diag) < 0)
		return -1;
	int rc = cfg_load_string(path, buf, len, out, diag);
	free(buf);
	return rc;
}

void cfg_snapshot_free(cfg_snapshot *snap)
{
	if (snap)
		core_arena_free(snap->arena);
}

static int plural(char *buf, size_t size, size_t n, const char *one,
		  const char *many)
{
	return snprintf(buf, size, "%zu %s", n, n == 1 ? one : many);
}

void cfg_summary(const cfg_snapshot *snap, char *buf, size_t size)
{
	char m[48], p[48], o[48], l[48], z[48];
	plural(m, sizeof(m), snap->nmonitors, "monitor", "monitors");
	plural(p, sizeof(p), snap->npools, "pool", "pools");
	plural(o, sizeof(o), snap->norigins, "origin", "origins");
	plural(l, sizeof(l), snap->nlbs, "load balancer", "load balancers");
	plural(z, sizeof(z), snap->nzones, "zone", "zones");
	/* Firewall rules, rate limits and tunnels only when there are some:
	 * the usual line stays. */
	char f[96] = "", r[48] = "";
	if (snap->waf.ncustom_rules) {
		memcpy(f, ", ", 2);
		plural(f + 2, sizeof(f) - 2, snap->waf.ncustom_rules,
		       "firewall rule", "firewall rules");
	}
	if (snap->waf.managed.enabled)
		snprintf(f + strlen(f), sizeof(f) - strlen(f),
			 ", managed rules (%s)",
			 snap->waf.managed.mode == CFG_WAF_MODE_DETECT
			     ? "detect"
			     : "block");
	if (snap->nrate_limits) {
		memcpy(r, ", ", 2);
		plural(r + 2, sizeof(r) - 2, snap->nrate_limits, "rate limit",
		       "rate limits");
	}
	char t[48] = "";
	if (snap->ntunnels) {
		memcpy(t, ", ", 2);
		plural(t + 2, sizeof(t) - 2, snap->ntunnels, "tunnel",
		       "tunnels");
	}
	snprintf(buf, size, "ok: %s, %s (%s), %s, %s%s%s%s", m, p, o, l, z, f,
		 r, t);
}

const cfg_pool *cfg_pool_by_id(const cfg_snapshot *cfg, const char *id,
			       size_t hint)
{
	if (hint < cfg->npools && strcmp(cfg->pools[hint].id, id) == 0)
		return &cfg->pools[hint];
	for (size_t i = 0; i < cfg->npools; i++)
		if (strcmp(cfg->pools[i].id, id) == 0)
			return &cfg->pools[i];
	return NULL;
}

const cfg_origin *cfg_origin_by_name(const cfg_pool *p, const char *name,
				     size_t hint)
{
	if (hint < p->norigins && strcmp(p->origins[hint].name, name) == 0)
		return &p->origins[hint];
	for (size_t i = 0; i < p->norigins; i++)
		if (strcmp(p->origins[i].name, name) == 0)
			return &p->origins[i];
	return NULL;
}
