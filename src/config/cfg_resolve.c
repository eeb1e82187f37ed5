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
} entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry **slots; /* cap slots, NULL: empty */
static size_t cap, count;
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

/* Under lock. The slot of host, or of the empty slot where it would go. */
static size_t slot_of(const char *host)
{
	size_t i = (size_t)hash_name(host) & (cap - 1);
	while (slots[i] && strcmp(slots[i]->host, host) != 0)
		i = (i + 1) & (cap - 1);
	return i;
}

static void put_entry(entry *e)
{
	if ((count + 1) * 2 > cap) {
		size_t ocap = cap;
		entry **old = slots;
		cap = cap ? cap * 2 : 64;
		slots = xcalloc(cap, sizeof(*slots));
		for (size_t i = 0; i < ocap; i++)
			if (old[i])
				slots[slot_of(old[i]->host)] = old[i];
		free(old);
	}
	slots[slot_of(e->host)] = e;
	count++;
}

static entry *find(const char *host)
{
	if (!cap)
		return NULL;
	return slots[slot_of(host)];
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

/* A batch: an open-addressing table like the cache's, private to the
 * threads that use it one at a time (no lock). */
typedef struct batch_entry {
	char *host;
	struct sockaddr_storage ss; /* port 0 */
	socklen_t len;
	bool ok;
	char err[128];
} batch_entry;

struct cfg_resolve_batch {
	batch_entry **slots;
	size_t cap, count;
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
	for (size_t i = 0; i < b->cap; i++)
		if (b->slots[i]) {
			free(b->slots[i]->host);
			free(b->slots[i]);
		}
	free(b->slots);
	free(b);
}

void cfg_resolve_batch_use(cfg_resolve_batch *b, bool fresh)
{
	tl_batch = b;
	tl_fresh = b && fresh;
}

static size_t batch_slot(const cfg_resolve_batch *b, const char *host)
{
	size_t i = (size_t)hash_name(host) & (b->cap - 1);
	while (b->slots[i] && strcmp(b->slots[i]->host, host) != 0)
		i = (i + 1) & (b->cap - 1);
	return i;
}

static batch_entry *batch_find(const cfg_resolve_batch *b, const char *host)
{
	return b->cap ? b->slots[batch_slot(b, host)] : NULL;
}

static void batch_put(cfg_resolve_batch *b, batch_entry *e)
{
	if ((b->count + 1) * 2 > b->cap) {
		size_t ocap = b->cap;
		batch_entry **old = b->slots;
		b->cap = b->cap ? b->cap * 2 : 64;
		b->slots = xcalloc(b->cap, sizeof(*b->slots));
		for (size_t i = 0; i < ocap; i++)
			if (old[i])
				b->slots[batch_slot(b, old[i]->host)] = old[i];
		free(old);
	}
	b->slots[batch_slot(b, e->host)] = e;
	b->count++;
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
	batch_entry *e = b ? batch_find(b, host) : NULL;
	if (!e && tl_fresh) {
		e = xcalloc(1, sizeof(*e));
		e->host = xstrdup(host);
		e->ok = lookup(host, NULL, 0, &e->ss, &e->len, e->err,
			       sizeof(e->err));
		batch_put(b, e);
	}
	if (!e)
		return 0;
	if (e->ok) {
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
	entry *e = find(host);
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
	if (!find(host)) { /* another build may have added it meanwhile */
		e = xcalloc(1, sizeof(*e));
		e->host = xstrdup(host);
		e->ss = *ss;
		e->len = *len;
		put_entry(e);
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
	if (!find(host)) {
		entry *e = xcalloc(1, sizeof(*e));
		e->host = xstrdup(host);
		memcpy(&e->ss, ss, MIN(len, (socklen_t)sizeof(e->ss)));
		e->len = len;
		if (e->ss.ss_family == AF_INET)
			((struct sockaddr_in *)&e->ss)->sin_port = 0;
		else
			((struct sockaddr_in6 *)&e->ss)->sin6_port = 0;
		put_entry(e);
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
	entry *e = find(host);
	bool differs = e && !same_ip((const struct sockaddr *)&e->ss,
				     (const struct sockaddr *)ss);
	pthread_mutex_unlock(&lock);
	return differs;
}

static void free_all(entry **s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i]) {
			free(s[i]->host);
			free(s[i]);
		}
	free(s);
}

void cfg_resolve_forget(void)
{
	pthread_mutex_lock(&lock);
	entry **old = slots;
	size_t ocap = cap;
	slots = NULL;
	cap = count = 0;
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
	job *jobs = xcalloc(count ? count : 1, sizeof(*jobs));
	for (size_t i = 0; i < cap; i++)
		if (slots[i]) {
			jobs[n].host = xstrdup(slots[i]->host);
			jobs[n].kept = slots[i]->ss;
			jobs[n].kept_len = slots[i]->len;
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
		if (!cap)
			break;
		size_t s = slot_of(j->host);
		entry *e = slots[s];
		if (!e)
			continue;
		if (j->drop) {
			/* Remove, then re-place the run of entries after it
			 * (linear probing has no tombstones). */
			slots[s] = NULL;
			count--;
			free(e->host);
			free(e);
			for (size_t k = (s + 1) & (cap - 1); slots[k];
			     k = (k + 1) & (cap - 1)) {
				entry *m = slots[k];
				slots[k] = NULL;
				slots[slot_of(m->host)] = m;
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
	out->names = count;
	pthread_mutex_unlock(&lock);
}
