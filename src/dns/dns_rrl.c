/* dns_rrl.c - response rate limiting; see dns_rrl.h. */
#include "dns/dns_rrl.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_util.h"
#include "dns/dns_wire.h"
#include "geo/geo.h"
#include "lb/lb_hash.h"

/* A bucket: second (32 bits) | count (16) | tag (16). */
#define B_SEC(v)   ((uint32_t)((v) >> 32))
#define B_COUNT(v) ((uint32_t)(((v) >> 16) & 0xffff))
#define B_TAG(v)   ((uint16_t)((v)&0xffff))
#define B_MAKE(sec, count, tag)                                                \
	(((uint64_t)(sec) << 32) | ((uint64_t)(count) << 16) | (uint64_t)(tag))

struct dns_rrl {
	uint8_t key[16];
	uint32_t mask;
	_Atomic uint64_t b[];
};

dns_rrl *dns_rrl_new(uint32_t nbuckets, const uint8_t key[16])
{
	if (nbuckets < 64 || (nbuckets & (nbuckets - 1)))
		return NULL;
	/* calloc: the pages of an unused table are never touched. */
	dns_rrl *r = xcalloc(1, sizeof(*r) + nbuckets * sizeof(r->b[0]));
	memcpy(r->key, key, sizeof(r->key));
	r->mask = nbuckets - 1;
	return r;
}

void dns_rrl_free(dns_rrl *r)
{
	free(r);
}

dns_rrl_class dns_rrl_class_of(unsigned rcode)
{
	if (rcode == 0)
		return DNS_RRL_ANSWER;
	return rcode == 3 ? DNS_RRL_NXDOMAIN : DNS_RRL_ERROR;
}

int dns_rrl_network(const dns_rrl_cfg *c, const struct sockaddr *client,
		    uint8_t addr[16], unsigned *bits)
{
	return geo_network(client, c->v4_prefix, c->v6_prefix, addr, bits);
}

dns_rrl_action dns_rrl_check(dns_rrl *r, const dns_rrl_cfg *c,
			     const struct sockaddr *client, dns_rrl_class cls,
			     const uint8_t *qname, size_t qname_len,
			     uint16_t qtype, uint32_t now_s)
{
	if (!r || !c->rps || c->rps >= 0xffff || !client)
		return DNS_RRL_SEND;
	/* network (17) | class (1) | qtype (2) | lowercased name (<= 255) */
	uint8_t k[17 + 1 + 2 + 255];
	unsigned bits;
	int fam = dns_rrl_network(c, client, k + 1, &bits);
	if (!fam)
		return DNS_RRL_SEND;
	k[0] = fam == AF_INET ? 4 : 16;
	size_t n = 17;
	k[n++] = (uint8_t)cls;
	if (cls == DNS_RRL_ANSWER && qname) { /* others: network only */
		k[n++] = (uint8_t)(qtype >> 8);
		k[n++] = (uint8_t)qtype;
		size_t ql = MIN(qname_len, (size_t)255);
		for (size_t i = 0; i < ql; i++)
			k[n++] = dns_lower(qname[i]);
	}
	uint64_t h = lb_hash_siphash(r->key, k, n);
	uint16_t tag = (uint16_t)(h >> 48);
	_Atomic uint64_t *b = &r->b[h & r->mask];
	uint64_t old = atomic_load_explicit(b, memory_order_relaxed), nv;
	uint32_t count;
	do {
		/* 0: this second; -1: a worker whose cached clock has not
		 * turned yet (count into the newer window). */
		int32_t age = (int32_t)(now_s - B_SEC(old));
		uint32_t sec = now_s;
		if (B_TAG(old) == tag && (age == 0 || age == -1)) {
			sec = B_SEC(old);
			count = B_COUNT(old) + 1;
			if (count > 0xffff) /* wrap, still over the limit */
				count = c->rps + 1;
		} else {
			count = 1;
		}
		nv = B_MAKE(sec, count, tag);
	} while (!atomic_compare_exchange_weak_explicit(
	    b, &old, nv, memory_order_relaxed, memory_order_relaxed));
	if (count <= c->rps)
		return DNS_RRL_SEND;
	if (c->slip && (count - c->rps) % c->slip == 0)
		return DNS_RRL_SLIP;
	return DNS_RRL_DROP;
}

size_t dns_rrl_qname(const uint8_t *q, size_t len, const uint8_t **name,
		     uint16_t *qtype)
{
	if (len < DNS_HEADER_LEN || !dns_get16(q + 4))
		return 0;
	size_t nl = dns_name_len(q + DNS_HEADER_LEN, len - DNS_HEADER_LEN);
	if (!nl || DNS_HEADER_LEN + nl + 4 > len)
		return 0;
	*name = q + DNS_HEADER_LEN;
	*qtype = dns_get16(q + DNS_HEADER_LEN + nl);
	return nl;
}

size_t dns_rrl_truncate(uint8_t *msg, size_t len)
{
	if (len < DNS_HEADER_LEN || !(msg[2] & 0x80)) /* not a response */
		return 0;
	unsigned qd = dns_get16(msg + 4);
	size_t end = DNS_HEADER_LEN;
	if (qd == 1) { /* our responses echo at most one question, which
			* has no pointer */
		size_t nl = dns_name_len(msg + end, len - end);
		end += nl + 4; /* type, class */
		if (!nl || end > len)
			return 0;
	} else if (qd != 0) {
		return 0;
	}
	/* Find the OPT record among the records (an OPT's owner is the
	 * root, so it can move as it is). */
	unsigned nan = dns_get16(msg + 6), nns = dns_get16(msg + 8);
	unsigned nar = dns_get16(msg + 10);
	size_t i = end, opt = 0, optlen = 0;
	for (unsigned k = 0; k < nan + nns + nar; k++) {
		size_t j = i;
		if (dns_name_skip(msg, len, &j) < 0 || j + 10 > len)
			return 0;
		unsigned type = dns_get16(msg + j);
		size_t rdlen = dns_get16(msg + j + 8);
		if (j + 10 + rdlen > len)
			return 0;
		if (type == DNS_T_OPT && k >= nan + nns && j == i + 1) {
			opt = i;
			optlen = j + 10 + rdlen - i;
		}
		i = j + 10 + rdlen;
	}
	if (i != len)
		return 0;
	msg[2] |= DNS_F_TC >> 8;
	memset(msg + 6, 0, 6); /* no answer or authority records */
	if (optlen) {
		memmove(msg + end, msg + opt, optlen);
		msg[11] = 1; /* the OPT alone in additional */
	}
	return end + optlen;
}
