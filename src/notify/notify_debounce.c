/* notify_debounce.c - see notify_debounce.h. */
#include "notify/notify_debounce.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_util.h"

typedef struct db_ent {
	struct db_ent *hnext;	      /* hash chain */
	struct db_ent *pprev, *pnext; /* pending list, while pending */
	uint64_t hash;
	uint64_t due;	      /* while pending */
	uint64_t last;	      /* last event or release (notify_db_expire) */
	notify_item *pending; /* NULL: none */
	char *notified;	      /* last notified (or first old) state */
	bool released;	      /* a change of this entity was released */
	int kind;	      /* key_kind */
	const char *origin;   /* NULL for a pool; points into key */
	char key[];	      /* pool id, NUL, origin name, NUL */
} db_ent;

struct notify_db {
	uint64_t debounce;
	db_ent **buckets;
	size_t nbuckets, n;
	db_ent *phead, *ptail;
	size_t npending;
};

notify_db *notify_db_new(uint64_t debounce_ms)
{
	notify_db *db = xcalloc(1, sizeof(*db));
	db->debounce = debounce_ms;
	db->nbuckets = 64;
	db->buckets = xcalloc(db->nbuckets, sizeof(*db->buckets));
	return db;
}

void notify_db_free(notify_db *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < db->nbuckets; i++) {
		db_ent *e = db->buckets[i];
		while (e) {
			db_ent *next = e->hnext;
			free(e->pending);
			free(e->notified);
			free(e);
			e = next;
		}
	}
	free(db->buckets);
	free(db);
}

void notify_db_set_debounce(notify_db *db, uint64_t debounce_ms, uint64_t now)
{
	db->debounce = debounce_ms;
	for (db_ent *e = db->phead; e; e = e->pnext)
		if (e->due > now + debounce_ms)
			e->due = now + debounce_ms;
}

static uint64_t fnv(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (h ^ 0xff) * 1099511628211ull; /* separator */
}

static uint64_t key_hash(int kind, const char *pool, const char *origin)
{
	uint64_t h = 14695981039346656037ull ^ (uint64_t)(kind + 1);
	h = fnv(h, pool);
	return origin ? fnv(h, origin) : h;
}

static bool key_eq(const db_ent *e, int kind, const char *pool,
		   const char *origin)
{
	if (e->kind != kind || strcmp(e->key, pool))
		return false;
	return origin ? e->origin && !strcmp(e->origin, origin) : !e->origin;
}

static void grow(notify_db *db)
{
	size_t nb = db->nbuckets * 2;
	db_ent **b = xcalloc(nb, sizeof(*b));
	for (size_t i = 0; i < db->nbuckets; i++) {
		db_ent *e = db->buckets[i];
		while (e) {
			db_ent *next = e->hnext;
			size_t j = (size_t)(e->hash & (nb - 1));
			e->hnext = b[j];
			b[j] = e;
			e = next;
		}
	}
	free(db->buckets);
	db->buckets = b;
	db->nbuckets = nb;
}

/* Enablement changes are entities of their own: "disabled" is not a
 * health state to debounce health changes against. */
static int key_kind(const notify_item *it)
{
	return it->kind + (it->enablement ? 2 : 0);
}

/* The entity of it; *fresh tells whether it was made now. */
static db_ent *lookup(notify_db *db, const notify_item *it, bool *fresh)
{
	const char *origin = it->kind == NOTIFY_POOL ? NULL : it->origin_name;
	int kind = key_kind(it);
	uint64_t h = key_hash(kind, it->pool_id, origin);
	*fresh = false;
	for (db_ent *e = db->buckets[h & (db->nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == h && key_eq(e, kind, it->pool_id, origin))
			return e;
	*fresh = true;
	if (db->n >= db->nbuckets * 2)
		grow(db);
	size_t lp = strlen(it->pool_id) + 1;
	size_t lo = origin ? strlen(origin) + 1 : 0;
	db_ent *e = xcalloc(1, sizeof(*e) + lp + lo);
	e->hash = h;
	e->kind = kind;
	memcpy(e->key, it->pool_id, lp);
	if (origin) {
		memcpy(e->key + lp, origin, lo);
		e->origin = e->key + lp;
	}
	e->notified = xstrdup(it->old_state);
	size_t j = (size_t)(h & (db->nbuckets - 1));
	e->hnext = db->buckets[j];
	db->buckets[j] = e;
	db->n++;
	return e;
}

static void unlink_pending(notify_db *db, db_ent *e)
{
	if (e->pprev)
		e->pprev->pnext = e->pnext;
	else
		db->phead = e->pnext;
	if (e->pnext)
		e->pnext->pprev = e->pprev;
	else
		db->ptail = e->pprev;
	e->pprev = e->pnext = NULL;
	db->npending--;
}

static void append_pending(notify_db *db, db_ent *e, uint64_t due)
{
	e->due = due;
	e->pnext = NULL;
	e->pprev = db->ptail;
	if (db->ptail)
		db->ptail->pnext = e;
	else
		db->phead = e;
	db->ptail = e;
	db->npending++;
}

notify_db_result notify_db_feed(notify_db *db, notify_item *it, uint64_t now)
{
	bool fresh;
	db_ent *e = lookup(db, it, &fresh);
	e->last = now;
	if (fresh && it->new_healthy && !strcmp(it->old_state, "unknown")) {
		/* The first verdict, healthy: where the entity starts from,
		 * not news (start-up). Taken at once, so a failure inside
		 * the window reads "healthy -> unhealthy". */
		free(e->notified);
		e->notified = xstrdup(it->new_state);
		e->released = true;
		free(it);
		return NOTIFY_DB_BASELINE;
	}
	if (!strcmp(it->new_state, e->notified)) {
		free(it);
		if (!e->pending)
			return NOTIFY_DB_SAME;
		free(e->pending);
		e->pending = NULL;
		unlink_pending(db, e);
		return NOTIFY_DB_FLAP;
	}
	if (!e->pending) {
		e->pending = it;
		append_pending(db, e, now + db->debounce);
		return NOTIFY_DB_PENDING;
	}
	if (!strcmp(it->new_state, e->pending->new_state)) {
		/* Reported again: it has held since the first report. */
		free(it);
		return NOTIFY_DB_SAME;
	}
	free(e->pending);
	e->pending = it;
	unlink_pending(db, e);
	append_pending(db, e, now + db->debounce);
	return NOTIFY_DB_REPLACED;
}

uint64_t notify_db_next_due(const notify_db *db)
{
	return db->phead ? db->phead->due : UINT64_MAX;
}

notify_item *notify_db_pop_due(notify_db *db, uint64_t now)
{
	db_ent *e = db->phead;
	if (!e || e->due > now)
		return NULL;
	unlink_pending(db, e);
	e->last = now;
	notify_item *p = e->pending;
	e->pending = NULL;
	notify_item *out = notify_item_with_old(p, e->notified);
	if (out)
		out->first = !e->released;
	e->released = true;
	free(e->notified);
	e->notified = xstrdup(p->new_state);
	free(p);
	return out; /* NULL only when malloc failed: the change is lost */
}

size_t notify_db_drop_pending(notify_db *db)
{
	size_t n = 0;
	while (db->phead) {
		db_ent *e = db->phead;
		unlink_pending(db, e);
		free(e->pending);
		e->pending = NULL;
		n++;
	}
	return n;
}

size_t notify_db_pending(const notify_db *db)
{
	return db->npending;
}

size_t notify_db_entities(const notify_db *db)
{
	return db->n;
}

size_t notify_db_expire(notify_db *db, uint64_t now, uint64_t idle_ms)
{
	size_t n = 0;
	for (size_t i = 0; i < db->nbuckets; i++) {
		db_ent **pp = &db->buckets[i];
		while (*pp) {
			db_ent *e = *pp;
			if (e->pending || now - e->last < idle_ms) {
				pp = &e->hnext;
				continue;
			}
			*pp = e->hnext;
			free(e->notified);
			free(e);
			db->n--;
			n++;
		}
	}
	return n;
}
