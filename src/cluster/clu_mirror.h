/* clu_mirror.h - an in-memory copy of a range of etcd keys, kept by
 * revision (SPEC §4.9), pure: no I/O, no locking (the owner locks).
 *
 * Entries are sorted by key. A deleted key stays as a tombstone (value
 * NULL) with its deletion's revision, so an older event that arrives later
 * (this edge's own write seen again on the watch) cannot bring it back;
 * tombstones go at the next clu_mirror_reset, whose revision is a floor
 * instead: an event at or below it is already in the range (a watch that
 * lags behind a range read meanwhile), so it changes nothing.
 *
 * Every function that changes the mirror calls fn (may be NULL) once per
 * key that changed, with the entry as it is now (deleted: value NULL), and
 * returns how many changed.
 */
#ifndef MERIDIAN_CLU_MIRROR_H
#define MERIDIAN_CLU_MIRROR_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/clu_msg.h"

typedef struct clu_entry {
	char *key;
	char *value; /* NULL: deleted (tombstone) */
	size_t value_len;
	int64_t mod_rev, create_rev, lease;
} clu_entry;

typedef struct clu_mirror {
	clu_entry *e;
	size_t n, cap;
	size_t live;	  /* entries that are not tombstones */
	int64_t revision; /* the newest revision applied or read */
	int64_t floor;	  /* the last reset's: events up to it are known */
} clu_mirror;

typedef void (*clu_mirror_fn)(void *arg, const clu_entry *e);

void clu_mirror_init(clu_mirror *m);
void clu_mirror_free(clu_mirror *m);

/* The live entry of key, or NULL (absent or deleted). */
const clu_entry *clu_mirror_get(const clu_mirror *m, const char *key);
/* The key's mod_revision as known: a live entry's, or 0 (absent, deleted). */
int64_t clu_mirror_rev(const clu_mirror *m, const char *key);

/* A put seen at kv->mod_rev: applied when the key is unknown or known at
 * an older revision. 1 when applied, 0 when a duplicate. */
int clu_mirror_put(clu_mirror *m, const clu_kv *kv, clu_mirror_fn fn,
		   void *arg);
/* A delete at rev: applied when the key is live at an older revision (or
 * unknown: a tombstone is kept). 1 when a live key went, else 0. */
int clu_mirror_del(clu_mirror *m, const char *key, int64_t rev,
		   clu_mirror_fn fn, void *arg);
/* A watch event (put or delete). */
int clu_mirror_event(clu_mirror *m, const clu_event *ev, clu_mirror_fn fn,
		     void *arg);
/* A whole range read at revision: afterwards the mirror holds exactly
 * kvs; fn sees what was added, changed (another mod_revision) or is gone.
 * kvs need not be sorted. */
int clu_mirror_reset(clu_mirror *m, const clu_kv *kvs, size_t n,
		     int64_t revision, clu_mirror_fn fn, void *arg);

#endif
