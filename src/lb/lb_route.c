/* lb_route.c - see lb_route.h. Two open-addressing hash tables (exact names
 * and wildcard suffixes) keyed by lowercased name; a lookup is one probe for
 * the exact name plus one per label for wildcards. */
#include "lb/lb_route.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_util.h"

#define HOST_MAX 255

typedef struct route_slot {
	char *key; /* lowercased; wildcards stored without the '*' */
	uint32_t len;
	uint32_t hash;
	const cfg_lb *lb;
} route_slot;

typedef struct route_table {
	route_slot *slots;
	uint32_t mask; /* size - 1, size a power of two */
	uint32_t count;
} route_table;

struct lb_router {
	route_table exact, wild;
};

static uint32_t hash_bytes(const char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

static void table_init(route_table *t, size_t n)
{
	uint32_t size = 8;
	while (size < n * 2)
		size *= 2;
	t->slots = xcalloc(size, sizeof(*t->slots));
	t->mask = size - 1;
	t->count = 0;
}

static const cfg_lb *table_get(const route_table *t, const char *k, size_t n,
			       uint32_t h)
{
	for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
		const route_slot *s = &t->slots[i];
		if (!s->key)
			return NULL;
		if (s->hash == h && s->len == n && !memcmp(s->key, k, n))
			return s->lb;
	}
}

static void table_put(route_table *t, const char *k, size_t n, const cfg_lb *lb)
{
	uint32_t h = hash_bytes(k, n);
	if (table_get(t, k, n, h))
		return; /* first definition wins; config rejects duplicates */
	for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
		route_slot *s = &t->slots[i];
		if (!s->key) {
			s->key = xmalloc(n + 1);
			memcpy(s->key, k, n);
			s->key[n] = '\0';
			s->len = (uint32_t)n;
			s->hash = h;
			s->lb = lb;
			t->count++;
			return;
		}
	}
}

static void table_free(route_table *t)
{
	for (uint32_t i = 0; t->slots && i <= t->mask; i++)
		free(t->slots[i].key);
	free(t->slots);
}

/* Lowercase host into out, dropping ":port" and a trailing dot. Returns the
 * length, or -1 when the host is empty or too long. IPv6 literals keep their
 * brackets. */
static int normalize(const char *host, size_t len, char *out)
{
	size_t n = 0;
	if (len == 0)
		return -1;
	if (host[0] == '[') {
		const char *end = memchr(host, ']', len);
		if (end)
			len = (size_t)(end - host) + 1;
	} else {
		const char *colon = memchr(host, ':', len);
		if (colon)
			len = (size_t)(colon - host);
	}
	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len == 0 || len > HOST_MAX)
		return -1;
	for (; n < len; n++) {
		char c = host[n];
		out[n] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	return (int)n;
}

lb_router *lb_router_build(const cfg_snapshot *snap)
{
	lb_router *r = xcalloc(1, sizeof(*r));
	table_init(&r->exact, snap->nlbs);
	table_init(&r->wild, snap->nlbs);
	for (size_t i = 0; i < snap->nlbs; i++) {
		const cfg_lb *lb = &snap->lbs[i];
		if (!lb->enabled || !lb->proxied || !lb->name)
			continue;
		char key[HOST_MAX + 1];
		size_t nlen = strlen(lb->name);
		if (nlen >= 2 && lb->name[0] == '*' && lb->name[1] == '.') {
			int k = normalize(lb->name + 1, nlen - 1, key);
			if (k > 0)
				table_put(&r->wild, key, (size_t)k, lb);
		} else {
			int k = normalize(lb->name, nlen, key);
			if (k > 0)
				table_put(&r->exact, key, (size_t)k, lb);
		}
	}
	return r;
}

void lb_router_free(lb_router *r)
{
	if (!r)
		return;
	table_free(&r->exact);
	table_free(&r->wild);
	free(r);
}

const cfg_lb *lb_route(const lb_router *r, const char *host, size_t len)
{
	char key[HOST_MAX + 1];
	int n = normalize(host, len, key);
	if (n <= 0)
		return NULL;
	const cfg_lb *lb =
	    table_get(&r->exact, key, (size_t)n, hash_bytes(key, (size_t)n));
	if (lb || r->wild.count == 0)
		return lb;
	/* Longest wildcard first: ".b.example.com", then ".example.com". */
	for (int i = 0; i < n; i++) {
		if (key[i] != '.')
			continue;
		size_t sl = (size_t)(n - i);
		lb = table_get(&r->wild, key + i, sl, hash_bytes(key + i, sl));
		if (lb)
			return lb;
	}
	return NULL;
}
