/* lb_hash.c - see lb_hash.h. */
#include "lb/lb_hash.h"

#include <endian.h>
#include <math.h>
#include <netinet/in.h>
#include <string.h>

/* Meridian's public SipHash key for non-secret hashing ("meridian-lb-hash").
 * Changing it moves every hash-steered client: never change it. */
static const uint8_t public_key[16] = {'m', 'e', 'r', 'i', 'd', 'i', 'a', 'n',
				       '-', 'l', 'b', '-', 'h', 'a', 's', 'h'};

static inline uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

/* One load (the compiler does not merge a byte loop into one here). */
static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

#define SIPROUND                                                               \
	do {                                                                   \
		v0 += v1;                                                      \
		v1 = rotl(v1, 13);                                             \
		v1 ^= v0;                                                      \
		v0 = rotl(v0, 32);                                             \
		v2 += v3;                                                      \
		v3 = rotl(v3, 16);                                             \
		v3 ^= v2;                                                      \
		v0 += v3;                                                      \
		v3 = rotl(v3, 21);                                             \
		v3 ^= v0;                                                      \
		v2 += v1;                                                      \
		v1 = rotl(v1, 17);                                             \
		v1 ^= v2;                                                      \
		v2 = rotl(v2, 32);                                             \
	} while (0)

uint64_t lb_hash_siphash(const uint8_t key[16], const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
	uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
	uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
	uint64_t v3 = k1 ^ 0x7465646279746573ULL;
	size_t full = len & ~(size_t)7;

	for (size_t i = 0; i < full; i += 8) {
		uint64_t m = load_le64(p + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	uint64_t b = (uint64_t)len << 56;
	for (size_t i = 0; i < (len & 7); i++)
		b |= (uint64_t)p[full + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t lb_hash_bytes(const void *data, size_t len)
{
	return lb_hash_siphash(public_key, data, len);
}

/* MurmurHash3's 64-bit finalizer: a bijection with full avalanche. */
static inline uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

uint64_t lb_hash_mix(uint64_t a, uint64_t b)
{
	return fmix64(a ^ fmix64(b + 0x9e3779b97f4a7c15ULL));
}

uint64_t lb_hash_str(uint64_t h, const char *s)
{
	if (!s)
		s = "";
	return lb_hash_mix(h, lb_hash_bytes(s, strlen(s) + 1));
}

uint64_t lb_hash_sockaddr(const struct sockaddr *sa)
{
	if (!sa)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		return lb_hash_bytes(&s4->sin_addr, 4);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		const uint8_t *a = s6->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			return lb_hash_bytes(a + 12, 4);
		return lb_hash_bytes(a, 16);
	}
	return 0;
}

uint64_t lb_hash_origin_id(const char *pool_id, const char *origin_name)
{
	return lb_hash_str(lb_hash_str(0, pool_id), origin_name);
}

double lb_hash_hrw_score(uint64_t key, uint64_t node, double weight)
{
	if (!(weight > 0))
		return 0;
	/* 53 bits → u in (0, 1): never 0 (log), never 1 (division). */
	uint64_t h = lb_hash_mix(key, node);
	double u = ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
	return weight / -log(u);
}
