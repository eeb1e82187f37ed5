/* sec_conns.c - open connections per client; see sec_conns.h. */
#include "sec/sec_conns.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_util.h"
#include "geo/geo.h"
#include "lb/lb_hash.h"

#define WAYS	4
#define STRIPES 256

typedef struct slot {
	uint64_t key; /* 0: free */
	uint64_t count;
} slot;

typedef struct set {
	slot s[WAYS];
} __attribute__((aligned(64))) set;

struct sec_conns {
	uint32_t mask; /* sets - 1 */
	uint8_t key[16];
	pthread_mutex_t lock[STRIPES];
	set *sets;
};

sec_conns *sec_conns_new(uint32_t nclients, const uint8_t key[16])
{
	/* Room for twice the clients: two sets of four per key keep
	 * untracked connections rare until the table is near full. */
	uint32_t nsets = 16;
	while (nsets * WAYS < 2 * (uint64_t)nclients && nsets < (1u << 24))
		nsets <<= 1;
	sec_conns *t = xcalloc(1, sizeof(*t));
	t->mask = nsets - 1;
	memcpy(t->key, key, sizeof(t->key));
	for (size_t i = 0; i < STRIPES; i++)
		pthread_mutex_init(&t->lock[i], NULL);
	/* Zero pages: the table costs memory as clients fill it. */
	t->sets = core_pages_alloc(nsets * sizeof(set));
	return t;
}

void sec_conns_free(sec_conns *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&t->lock[i]);
	core_pages_free(t->sets, (t->mask + 1) * sizeof(set));
	free(t);
}

uint64_t sec_conns_key(const sec_conns *t, const struct sockaddr *client)
{
	uint8_t net[1 + 16] = {0};
	unsigned bits;
	int fam = geo_network(client, 32, 64, net + 1, &bits);
	net[0] = (uint8_t)fam;
	uint64_t k = lb_hash_siphash(t->key, net,
				     fam == AF_INET ? 5
				     : fam	    ? 17
						    : 1);
	return k ? k : 1;
}

/* A key lives in its set or that set's pair (si ^ 1); both are under one
 * stripe, so one lock covers a key. */
static pthread_mutex_t *lock_of(sec_conns *t, uint32_t si)
{
	return &t->lock[(si >> 1) & (STRIPES - 1)];
}

/* The slot holding key in its two sets, else NULL; *free_slot the first
 * free one seen. */
static slot *find(sec_conns *t, uint32_t si, uint64_t key, slot **free_slot)
{
	*free_slot = NULL;
	for (uint32_t k = 0; k < 2; k++) {
		set *st = &t->sets[si ^ k];
		for (int i = 0; i < WAYS; i++) {
			slot *s = &st->s[i];
			if (s->key == key)
				return s;
			if (!s->key && !*free_slot)
				*free_slot = s;
		}
	}
	return NULL;
}

sec_conns_verdict sec_conns_take(sec_conns *t, uint64_t key, uint32_t max)
{
	uint32_t si = (uint32_t)(key >> 32) & t->mask;
	pthread_mutex_t *m = lock_of(t, si);
	sec_conns_verdict v = SEC_CONNS_TAKEN;
	pthread_mutex_lock(m);
	slot *fs;
	slot *s = find(t, si, key, &fs);
	if (s && s->count >= max) {
		v = SEC_CONNS_OVER;
	} else if (s) {
		s->count++;
	} else if (fs && max) {
		fs->key = key;
		fs->count = 1;
	} else {
		v = max ? SEC_CONNS_UNTRACKED : SEC_CONNS_OVER;
	}
	pthread_mutex_unlock(m);
	return v;
}

void sec_conns_release(sec_conns *t, uint64_t key)
{
	uint32_t si = (uint32_t)(key >> 32) & t->mask;
	pthread_mutex_t *m = lock_of(t, si);
	pthread_mutex_lock(m);
	slot *fs;
	slot *s = find(t, si, key, &fs);
	if (s && s->count && --s->count == 0)
		s->key = 0;
	pthread_mutex_unlock(m);
}

uint32_t sec_conns_count(sec_conns *t, uint64_t key)
{
	uint32_t si = (uint32_t)(key >> 32) & t->mask;
	pthread_mutex_t *m = lock_of(t, si);
	pthread_mutex_lock(m);
	slot *fs;
	slot *s = find(t, si, key, &fs);
	uint32_t n = s ? (uint32_t)s->count : 0;
	pthread_mutex_unlock(m);
	return n;
}
