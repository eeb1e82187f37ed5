/* sec_ratelimit.c - GCRA token buckets per key; see sec_ratelimit.h. */
#include "sec/sec_ratelimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_util.h"
#include "lb/lb_hash.h"

#define WAYS	4
#define STRIPES 256

/* tat with this bit: the key is blocked until the rest (ns). */
#define BLOCKED (1ull << 63)

typedef struct slot {
	uint64_t key; /* 0: never used */
	uint64_t tat; /* ns, or BLOCKED | the end of the block */
} slot;

/* Until when the slot means something. */
static inline uint64_t until(const slot *s)
{
	return s->tat & ~BLOCKED;
}

/* One set is one 64-byte cache line: a lookup touches one line. */
typedef struct set {
	slot s[WAYS];
} __attribute__((aligned(64))) set;

struct sec_rl {
	_Atomic uint32_t refs;
	uint32_t mask; /* sets - 1 */
	uint8_t key[16];
	_Atomic uint64_t evictions;
	pthread_mutex_t lock[STRIPES];
	set *sets;
};

sec_rl_rate sec_rl_rate_of(uint32_t n, uint64_t period_ms, uint32_t burst,
			   uint64_t mitigation_ms)
{
	uint64_t t = n ? period_ms * 1000000u / n : 1;
	t = t ? t : 1;
	uint64_t b = burst ? burst : 1;
	uint64_t tol =
	    t > SEC_RL_MAX_TOLERANCE / b ? SEC_RL_MAX_TOLERANCE : t * b;
	return (sec_rl_rate){.interval_ns = t,
			     .tolerance_ns = tol,
			     .mitigation_ns = mitigation_ms * 1000000u};
}

sec_rl *sec_rl_new(uint32_t nkeys, const uint8_t key[16])
{
	uint32_t nsets = 16; /* 64 keys at least */
	while (nsets * WAYS < nkeys && nsets < (1u << 26))
		nsets <<= 1;
	sec_rl *t = xcalloc(1, sizeof(*t));
	atomic_init(&t->refs, 1);
	t->mask = nsets - 1;
	memcpy(t->key, key, sizeof(t->key));
	for (size_t i = 0; i < STRIPES; i++)
		pthread_mutex_init(&t->lock[i], NULL);
	/* Zero pages: the table costs memory as clients fill it. */
	t->sets = core_pages_alloc(nsets * sizeof(set));
	return t;
}

sec_rl *sec_rl_ref(sec_rl *t)
{
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	return t;
}

void sec_rl_unref(sec_rl *t)
{
	if (!t ||
	    atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&t->lock[i]);
	core_pages_free(t->sets, (t->mask + 1) * sizeof(set));
	free(t);
}

uint32_t sec_rl_capacity(const sec_rl *t)
{
	return (t->mask + 1) * WAYS;
}

uint64_t sec_rl_key(const sec_rl *t, const void *data, size_t len)
{
	uint64_t k = lb_hash_siphash(t->key, data, len);
	return k ? k : 1; /* 0 marks an unused slot */
}

/* The slot of key in its set: its own, else the one holding the least
 * (the oldest tat; an unused slot has tat 0), made key's with a full
 * bucket. */
static slot *find(sec_rl *t, set *st, uint64_t key, uint64_t now)
{
	slot *victim = &st->s[0];
	for (int i = 0; i < WAYS; i++) {
		slot *s = &st->s[i];
		if (s->key == key)
			return s;
		if (until(s) < until(victim))
			victim = s;
	}
	if (victim->key && until(victim) > now)
		atomic_fetch_add_explicit(&t->evictions, 1,
					  memory_order_relaxed);
	victim->key = key;
	victim->tat = 0;
	return victim;
}

/* The set of key (its high bits), and the lock guarding it: the stripe
 * of the set's index, so one key is always under one lock. */
static set *set_of(sec_rl *t, uint64_t key, pthread_mutex_t **lock)
{
	uint32_t si = (uint32_t)(key >> 32) & t->mask;
	*lock = &t->lock[si & (STRIPES - 1)];
	return &t->sets[si];
}

bool sec_rl_hit(sec_rl *t, const sec_rl_rate *r, uint64_t key, uint64_t now_ns,
		uint64_t *retry_ns)
{
	pthread_mutex_t *m;
	set *st = set_of(t, key, &m);
	uint64_t tol = r->tolerance_ns;
	uint64_t wait = 0;
	pthread_mutex_lock(m);
	slot *s = find(t, st, key, now_ns);
	if (s->tat & BLOCKED) {
		if (now_ns < until(s))
			wait = until(s) - now_ns;
		else
			s->tat = 0; /* the block is over: a full bucket */
	}
	if (!wait) {
		uint64_t base = s->tat > now_ns ? s->tat : now_ns;
		uint64_t next = base + r->interval_ns;
		if (next - now_ns <= tol) {
			s->tat = next;
		} else if (r->mitigation_ns) {
			/* Over the rate: blocked for the mitigation time. */
			s->tat = BLOCKED | (now_ns + r->mitigation_ns);
			wait = r->mitigation_ns;
		} else {
			wait = next - tol - now_ns;
		}
	}
	pthread_mutex_unlock(m);
	if (wait && retry_ns)
		*retry_ns = wait;
	return !wait;
}

void sec_rl_refund(sec_rl *t, const sec_rl_rate *r, uint64_t key,
		   uint64_t now_ns)
{
	pthread_mutex_t *m;
	set *st = set_of(t, key, &m);
	pthread_mutex_lock(m);
	for (int i = 0; i < WAYS; i++) {
		slot *s = &st->s[i];
		if (s->key != key)
			continue;
		/* A block stays; a bucket already full has nothing to give
		 * back (the token came back with time). */
		if (!(s->tat & BLOCKED) && s->tat > now_ns)
			s->tat = s->tat - now_ns > r->interval_ns
				     ? s->tat - r->interval_ns
				     : now_ns;
		break;
	}
	pthread_mutex_unlock(m);
}

uint64_t sec_rl_evictions(const sec_rl *t)
{
	return atomic_load_explicit(&t->evictions, memory_order_relaxed);
}

void sec_rl_add_evictions(sec_rl *t, uint64_t n)
{
	atomic_fetch_add_explicit(&t->evictions, n, memory_order_relaxed);
}

uint32_t sec_rl_active(sec_rl *t, uint64_t now_ns)
{
	/* Up to SEC_RL_ACTIVE_EXACT sets are all read; beyond, every
	 * step-th, scaled up: a scrape of a 16M-key table reads 256 KiB, not
	 * 256 MiB, and holds each stripe as briefly. */
	uint32_t nsets = t->mask + 1;
	uint32_t step = nsets > SEC_RL_ACTIVE_EXACT / WAYS
			    ? nsets / (SEC_RL_ACTIVE_EXACT / WAYS)
			    : 1;
	uint64_t n = 0;
	for (uint32_t k = 0; k < STRIPES && k <= t->mask; k++) {
		pthread_mutex_lock(&t->lock[k]);
		/* Sets of stripe k are k, k + STRIPES, ...: step is a power
		 * of two, so every step-th of them is too. */
		for (uint32_t si = k; si <= t->mask; si += STRIPES * step)
			for (int i = 0; i < WAYS; i++) {
				const slot *s = &t->sets[si].s[i];
				n += s->key && until(s) > now_ns;
			}
		pthread_mutex_unlock(&t->lock[k]);
	}
	n *= step;
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}
