/* cfg_resolve.c - the process-wide cache of origin host names (see
 * cfg_resolve.h). An open-addressing hash table keyed by name: a config
 * with thousands of host-name origins looks each up once per build. */
#include "config/cfg_resolve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_model.h"
#include "core/core_sock.h"
#include "core/core_util.h"

typedef struct entry {
	char *host;
	struct sockaddr_storage ss; /* port 0 */
	socklen_t len;
	bool failing; /* the last refresh could not resolve it */
	char *err;    /* a batch's failed lookup: why (else NULL) */
} entry;

/* An open-addressing table of entries by name: the cache's (under lock)
 * and each batch's (one thread at a time). */
typedef struct table {
	entry **slots; /* cap slots, NULL: empty */
	size_t cap, count;
} table;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static table cache;
static _Atomic uint64_t n_lookups, n_failures, n_changes;

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/* The slot of host, or of the empty slot where it would go. */
static size_t slot_of(const table *t, const char *host)
{
	size_t i = (size_t)hash_name(host) & (t->cap - 1);
	while (t->slots[i] && strcmp(t->slots[i]->host, host) != 0)
		i = (i + 1) & (t->cap - 1);
	return i;
}

static void put_entry(table *t, entry *e)
{
	if ((t->count + 1) * 2 > t->cap) {
		size_t ocap = t->cap;
		entry **old = t->slots;
		t->cap = t->cap ? t->cap * 2 : 64;
		t->slots = xcalloc(t->cap, sizeof(*t->slots));
		for (size_t i = 0; i < ocap; i++)
			if (old[i])
				t->slots[slot_of(t, old[i]->host)] = old[i];
		free(old);
	}
	t->slots[slot_of(t, e->host)] = e;
	t->count++;
}

static entry *find(const table *t, const char *host)
{
	return t->cap ? t->slots[slot_of(t, host)] : NULL;
}

static void entry_free(entry *e)
{
	free(e->host);
	free(e->err);
	free(e);
}

static void free_all(entry **s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i])
			entry_free(s[i]);
	free(s);
}

/* The addresses' own bytes, ports aside. */
static bool same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
			      &((const struct sockaddr_in *)b)->sin_addr,
			      4) == 0;
	if (a->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr,
			      16) == 0 &&
		       ((const struct sockaddr_in6 *)a)->sin6_scope_id ==
			   ((const struct sockaddr_in6 *)b)->sin6_scope_id;
	return false;
}

static bool usable(const struct addrinfo *ai)
{
	return (ai->ai_family == AF_INET &&
		ai->ai_addrlen >= sizeof(struct sockaddr_in)) ||
	       (ai->ai_family == AF_INET6 &&
		ai->ai_addrlen >= sizeof(struct sockaddr_in6));
}

bool cfg_resolve_pick(const struct sockaddr_storage *kept, socklen_t kept_len,
		      const struct addrinfo *answer,
		      struct sockaddr_storage *out, socklen_t *out_len)
{
	const struct addrinfo *first = NULL;
	for (const struct addrinfo *ai = answer; ai; ai = ai->ai_next) {
		if (!usable(ai))
			continue;
		if (!first)
			first = ai;
		if (kept_len &&
		    same_ip(ai->ai_addr, (const struct sockaddr *)kept)) {
			first = ai;
			break;
		}
	}
	if (!first)
		return false;
	memset(out, 0, sizeof(*out));
	socklen_t n = first->ai_family == AF_INET
			  ? (socklen_t)sizeof(struct sockaddr_in)
			  : (socklen_t)sizeof(struct sockaddr_in6);
	memcpy(out, first->ai_addr, n);
	if (out->ss_family == AF_INET)
		((struct sockaddr_in *)out)->sin_port = 0;
	else
		((struct sockaddr_in6 *)out)->sin6_port = 0;
	*out_len = n;
	return true;
}

/* A batch: a table of its own, used by one thread at a time (no lock). */
struct cfg_resolve_batch {
	table t;
};

static _Thread_local cfg_resolve_batch *tl_batch;
static _Thread_local bool tl_fresh;

cfg_resolve_batch *cfg_resolve_batch_new(void)
{
	return xcalloc(1, sizeof(cfg_resolve_batch));
}

void cfg_resolve_batch_free(cfg_resolve_batch *b)
{
	if (!b)
		return;
	free_all(b->t.slots, b->t.cap);
	free(b);
}

void cfg_resolve_batch_use(cfg_resolve_batch *b, bool fresh)
{
	tl_batch = b;
	tl_fresh = b && fresh;
}

static bool lookup(const char *host, const struct sockaddr_storage *kept,
		   socklen_t kept_len, struct sockaddr_storage *out,
		   socklen_t *out_len, char *err, size_t errlen);

/* cfg_resolve_host through this thread's batch: 1 answered (0 or -1 in
 * *rc), 0 not there (the usual way). */
static int batch_answer(const char *host, struct sockaddr_storage *ss,
			socklen_t *len, char *err, size_t errlen, int *rc)
{
	cfg_resolve_batch *b = tl_batch;
	entry *e = b ? find(&b->t, host) : NULL;
	if (!e && tl_fresh) {
		char why[128];
		e = xcalloc(1, sizeof(*e));
		e->host = xstrdup(host);
		if (!lookup(host, NULL, 0, &e->ss, &e->len, why, sizeof(why)))
			e->err = xstrdup(why);
		put_entry(&b->t, e);
	}
	if (!e)
		return 0;
	if (!e->err) {
		*ss = e->ss;
		*len = e->len;
		*rc = 0;
	} else {
		snprintf(err, errlen, "%s", e->err);
		*rc = -1;
	}
	return 1;
}

/* getaddrinfo for stream sockets; fills out (port 0) or err. */
static bool lookup(const char *host, const struct sockaddr_storage *kept,
		   socklen_t kept_len, struct sockaddr_storage *out,
		   socklen_t *out_len, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	atomic_fetch_add_explicit(&n_lookups, 1, memory_order_relaxed);
	int rc = getaddrinfo(host, NULL, &hints, &res);
	bool ok = rc == 0 && res &&
		  cfg_resolve_pick(kept, kept_len, res, out, out_len);
	if (!ok) {
		atomic_fetch_add_explicit(&n_failures, 1, memory_order_relaxed);
		snprintf(err, errlen, "%s",
			 rc ? gai_strerror(rc) : "no usable address");
	}
	if (res)
		freeaddrinfo(res);
	return ok;
}

int cfg_resolve_host(const char *host, struct sockaddr_storage *ss,
		     socklen_t *len, char *err, size_t errlen)
{
	int brc;
	if (batch_answer(host, ss, len, err, errlen, &brc))
		return brc;
	pthread_mutex_lock(&lock);
	entry *e = find(&cache, host);
	if (e) {
		*ss = e->ss;
		*len = e->len;
	}
	pthread_mutex_unlock(&lock);
	if (e)
		return 0;
	if (!lookup(host, NULL, 0, ss, len, err, errlen))
		return -1;
	pthread_mutex_lock(&lock);
	if (!find(&cache,
		  host)) { /* another build may have added it meanwhile */
		e = xcalloc(1, sizeof(*e));
		e->host = xstrdup(host);
		e->ss = *ss;
		e->len = *len;
		put_entry(&cache, e);
	}
	pthread_mutex_unlock(&lock);
	return 0;
}

void cfg_resolve_seed(const char *host, const struct sockaddr_storage *ss,
		      socklen_t len)
{
	if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6)
		return;
	pthread_mutex_lock(&lock);
	if (!find(&cache, host)) {
		entry *e = xcalloc(1, sizeof(*e));
		e->host = xstrdup(host);
		memcpy(&e->ss, ss, MIN(len, (socklen_t)sizeof(e->ss)));
		e->len = len;
		if (e->ss.ss_family == AF_INET)
			((struct sockaddr_in *)&e->ss)->sin_port = 0;
		else
			((struct sockaddr_in6 *)&e->ss)->sin6_port = 0;
		put_entry(&cache, e);
	}
	pthread_mutex_unlock(&lock);
}

void cfg_resolve_seed_config(const cfg_snapshot *cfg)
{
	for (size_t i = 0; i < cfg->norigins; i++) {
		const cfg_origin *o = cfg->origins[i];
		if (o->host)
			cfg_resolve_seed(o->host, &o->ss, o->sslen);
	}
}

bool cfg_resolve_differs(const char *host, const struct sockaddr_storage *ss)
{
	pthread_mutex_lock(&lock);
	entry *e = find(&cache, host);
	bool differs = e && !same_ip((const struct sockaddr *)&e->ss,
				     (const struct sockaddr *)ss);
	pthread_mutex_unlock(&lock);
	return differs;
}

void cfg_resolve_forget(void)
{
	pthread_mutex_lock(&lock);
	entry **old = cache.slots;
	size_t ocap = cache.cap;
	cache = (table){0};
	pthread_mutex_unlock(&lock);
	free_all(old, ocap);
}

typedef struct job {
	char *host;
	struct sockaddr_storage kept, got;
	socklen_t kept_len, got_len;
	bool drop, ok;
	char err[128];
} job;

size_t cfg_resolve_refresh(bool (*keep)(const char *host, void *arg),
			   void (*report)(const cfg_resolve_change *ch,
					  void *arg),
			   void *arg)
{
	/* 1. The names, copied: lookups block and run unlocked. */
	pthread_mutex_lock(&lock);
	size_t n = 0;
	job *jobs = xcalloc(cache.count ? cache.count : 1, sizeof(*jobs));
	for (size_t i = 0; i < cache.cap; i++)
		if (cache.slots[i]) {
			jobs[n].host = xstrdup(cache.slots[i]->host);
			jobs[n].kept = cache.slots[i]->ss;
			jobs[n].kept_len = cache.slots[i]->len;
			n++;
		}
	pthread_mutex_unlock(&lock);

	/* 2. Resolve what is still in use. */
	for (size_t i = 0; i < n; i++) {
		job *j = &jobs[i];
		j->drop = keep && !keep(j->host, arg);
		if (!j->drop)
			j->ok = lookup(j->host, &j->kept, j->kept_len, &j->got,
				       &j->got_len, j->err, sizeof(j->err));
	}

	/* 3. Apply. A name forgotten meanwhile (SIGHUP) stays forgotten; one
	 * whose address a build put there meanwhile is left alone unless the
	 * lookup moved it. */
	size_t changes = 0;
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < n; i++) {
		job *j = &jobs[i];
		if (!cache.cap)
			break;
		size_t s = slot_of(&cache, j->host);
		entry *e = cache.slots[s];
		if (!e)
			continue;
		if (j->drop) {
			/* Remove, then re-place the run of entries after it
			 * (linear probing has no tombstones). */
			cache.slots[s] = NULL;
			cache.count--;
			entry_free(e);
			for (size_t k = (s + 1) & (cache.cap - 1);
			     cache.slots[k]; k = (k + 1) & (cache.cap - 1)) {
				entry *m = cache.slots[k];
				cache.slots[k] = NULL;
				cache.slots[slot_of(&cache, m->host)] = m;
			}
			continue;
		}
		cfg_resolve_change ch = {0};
		snprintf(ch.host, sizeof(ch.host), "%s", j->host);
		core_sock_ip_text((const struct sockaddr *)&e->ss, ch.old_ip,
				  sizeof(ch.old_ip));
		if (!j->ok) {
			snprintf(ch.error, sizeof(ch.error), "%s", j->err);
			ch.failed_now = !e->failing;
			e->failing = true;
		} else {
			core_sock_ip_text((const struct sockaddr *)&j->got,
					  ch.new_ip, sizeof(ch.new_ip));
			ch.recovered = e->failing;
			e->failing = false;
			if (!same_ip((const struct sockaddr *)&e->ss,
				     (const struct sockaddr *)&j->got)) {
				e->ss = j->got;
				e->len = j->got_len;
				ch.changed = true;
				changes++;
			}
		}
		if (report && (ch.changed || ch.failed_now || ch.recovered))
			report(&ch, arg);
	}
	pthread_mutex_unlock(&lock);
	atomic_fetch_add_explicit(&n_changes, changes, memory_order_relaxed);
	for (size_t i = 0; i < n; i++)
		free(jobs[i].host);
	free(jobs);
	return changes;
}

void cfg_resolve_counts_get(cfg_resolve_counts *out)
{
	out->lookups = atomic_load_explicit(&n_lookups, memory_order_relaxed);
	out->failures = atomic_load_explicit(&n_failures, memory_order_relaxed);
	out->changes = atomic_load_explicit(&n_changes, memory_order_relaxed);
	pthread_mutex_lock(&lock);
	out->names = cache.count;
	pthread_mutex_unlock(&lock);
}
