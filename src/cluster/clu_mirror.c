/* clu_mirror.c - see clu_mirror.h. */
#include "cluster/clu_mirror.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_util.h"

void clu_mirror_init(clu_mirror *m)
{
	memset(m, 0, sizeof(*m));
}

static void entry_free(clu_entry *e)
{
	free(e->key);
	free(e->value);
}

void clu_mirror_free(clu_mirror *m)
{
	for (size_t i = 0; i < m->n; i++)
		entry_free(&m->e[i]);
	free(m->e);
	memset(m, 0, sizeof(*m));
}

/* Index of key, or where it would go (*found false). */
static size_t find(const clu_mirror *m, const char *key, bool *found)
{
	size_t lo = 0, hi = m->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->e[mid].key, key);
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

static clu_entry *insert(clu_mirror *m, size_t at, const char *key)
{
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->e = xrealloc(m->e, m->cap * sizeof(*m->e));
	}
	memmove(&m->e[at + 1], &m->e[at], (m->n - at) * sizeof(*m->e));
	m->n++;
	clu_entry *e = &m->e[at];
	memset(e, 0, sizeof(*e));
	e->key = xstrdup(key);
	return e;
}

const clu_entry *clu_mirror_get(const clu_mirror *m, const char *key)
{
	bool f;
	size_t i = find(m, key, &f);
	return f && m->e[i].value ? &m->e[i] : NULL;
}

int64_t clu_mirror_rev(const clu_mirror *m, const char *key)
{
	const clu_entry *e = clu_mirror_get(m, key);
	return e ? e->mod_rev : 0;
}

static void bump(clu_mirror *m, int64_t rev)
{
	if (rev > m->revision)
		m->revision = rev;
}

int clu_mirror_put(clu_mirror *m, const clu_kv *kv, clu_mirror_fn fn, void *arg)
{
	bool f;
	size_t i = find(m, kv->key, &f);
	bump(m, kv->mod_rev);
	if ((f && m->e[i].mod_rev >= kv->mod_rev) || kv->mod_rev <= m->floor)
		return 0;
	clu_entry *e = f ? &m->e[i] : insert(m, i, kv->key);
	if (!e->value)
		m->live++;
	free(e->value);
	e->value = xmalloc(kv->value_len + 1);
	memcpy(e->value, kv->value, kv->value_len);
	e->value[kv->value_len] = '\0';
	e->value_len = kv->value_len;
	e->mod_rev = kv->mod_rev;
	e->create_rev = kv->create_rev;
	e->lease = kv->lease;
	if (fn)
		fn(arg, e);
	return 1;
}

int clu_mirror_del(clu_mirror *m, const char *key, int64_t rev,
		   clu_mirror_fn fn, void *arg)
{
	bool f;
	size_t i = find(m, key, &f);
	bump(m, rev);
	if ((f && m->e[i].mod_rev >= rev) || rev <= m->floor)
		return 0;
	clu_entry *e = f ? &m->e[i] : insert(m, i, key);
	bool was = e->value != NULL;
	free(e->value);
	e->value = NULL;
	e->value_len = 0;
	e->mod_rev = rev;
	if (!was)
		return 0;
	m->live--;
	if (fn)
		fn(arg, e);
	return 1;
}

int clu_mirror_event(clu_mirror *m, const clu_event *ev, clu_mirror_fn fn,
		     void *arg)
{
	return ev->del ? clu_mirror_del(m, ev->kv.key, ev->kv.mod_rev, fn, arg)
		       : clu_mirror_put(m, &ev->kv, fn, arg);
}

int clu_mirror_reset(clu_mirror *m, const clu_kv *kvs, size_t n,
		     int64_t revision, clu_mirror_fn fn, void *arg)
{
	int changed = 0;
	/* What the range does not have is gone (tombstones go silently). */
	bool *keep = xcalloc(m->n ? m->n : 1, sizeof(*keep));
	for (size_t k = 0; k < n; k++) {
		bool f;
		size_t i = find(m, kvs[k].key, &f);
		if (f)
			keep[i] = true;
	}
	size_t o = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (keep[i]) {
			m->e[o++] = m->e[i];
			continue;
		}
		if (m->e[i].value) {
			free(m->e[i].value);
			m->e[i].value = NULL;
			m->live--;
			if (fn)
				fn(arg, &m->e[i]);
			changed++;
		}
		free(m->e[i].key);
	}
	m->n = o;
	free(keep);
	/* A kept tombstone of a key the range has: it came back. */
	for (size_t i = 0; i < m->n; i++)
		if (!m->e[i].value)
			m->e[i].mod_rev = 0;
	int64_t floor = m->floor > revision ? m->floor : revision;
	m->floor = 0; /* the range's own entries go in */
	for (size_t k = 0; k < n; k++) {
		bool f;
		size_t i = find(m, kvs[k].key, &f);
		if (f && m->e[i].value && m->e[i].mod_rev == kvs[k].mod_rev)
			continue;
		if (f)
			m->e[i].mod_rev = 0; /* take the range's */
		changed += clu_mirror_put(m, &kvs[k], fn, arg);
	}
	bump(m, revision);
	m->floor = floor;
	return changed;
}
