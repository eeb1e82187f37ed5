/* dns_zone.c - see dns_zone.h.
 *
 * Build: records (configured, then generated) are collected as pending
 * entries with their rdata already in wire form, sorted by (name, type,
 * order written), and grouped into nodes and RRsets; zone apexes, load
 * balancer names and the empty non-terminals above every node are added;
 * then the checks that need the whole picture (CNAME beside other data,
 * zone cuts, load balancer names against both) run. Everything that
 * outlives the build lives in one arena.
 */
#include "dns/dns_zone.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_diag.h"
#include "core/core_arena.h"
#include "core/core_util.h"
#include "dns/dns_rdata.h"

typedef struct slot {
	uint32_t hash;
	uint32_t idx; /* node (or zone) index + 1; 0: empty */
} slot;

struct dns_zoneset {
	core_arena *arena;
	dns_zone *zones;
	size_t nzones;
	dns_node *nodes;
	size_t nnodes;
	slot *slots;
	uint32_t mask;
	uint16_t udp_max;
	uint64_t id; /* unique per build in this process */
	/* for load balancer answers (dns_zoneset_origin_family/_public) */
	uint8_t *origin_family; /* [norigins]: 4, 6 or 0 (a host name) */
	size_t norigins;
	uint8_t npub4, npub6;
	uint8_t pub4[DNS_PUBLIC_MAX][4];
	uint8_t pub6[DNS_PUBLIC_MAX][16];
};

uint64_t dns_zoneset_id(const dns_zoneset *zs)
{
	return zs ? zs->id : 0;
}

int dns_zoneset_origin_family(const dns_zoneset *zs, uint32_t index)
{
	return zs && index < zs->norigins ? zs->origin_family[index] : 0;
}

const uint8_t *dns_zoneset_public(const dns_zoneset *zs, int family, size_t *n)
{
	*n = !zs ? 0 : family == 4 ? zs->npub4 : family == 6 ? zs->npub6 : 0;
	if (!*n)
		return NULL;
	return family == 4 ? zs->pub4[0] : zs->pub6[0];
}

uint32_t dns_name_hash(const uint8_t *lname, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ lname[i]) * 16777619u;
	return h;
}

static const dns_node *table_find(const dns_zoneset *zs, const uint8_t *name,
				  size_t len, uint32_t h)
{
	for (uint32_t i = h & zs->mask;; i = (i + 1) & zs->mask) {
		const slot *s = &zs->slots[i];
		if (!s->idx)
			return NULL;
		if (s->hash == h) {
			const dns_node *n = &zs->nodes[s->idx - 1];
			if (n->namelen == len && !memcmp(n->name, name, len))
				return n;
		}
	}
}

const dns_node *dns_zoneset_find(const dns_zoneset *zs, const uint8_t *lname)
{
	size_t len = dns_name_len(lname, DNS_MAX_NAME);
	if (!zs || !len || !zs->nnodes)
		return NULL;
	return table_find(zs, lname, len, dns_name_hash(lname, len));
}

void dns_zoneset_lookup(const dns_zoneset *zs, const uint8_t *lname,
			dns_lookup *out)
{
	out->match = DNS_MATCH_NONE;
	out->zone = NULL;
	out->node = NULL;
	out->at_cut = false;
	size_t len = dns_name_len(lname, DNS_MAX_NAME);
	if (!zs || !len || !zs->nnodes)
		return;
	const dns_node *n =
	    table_find(zs, lname, len, dns_name_hash(lname, len));
	if (n) {
		out->zone = n->zone;
		if (n->cut) {
			out->match = DNS_MATCH_DELEGATION;
			out->node = n->cut;
			out->at_cut = n->cut == n;
		} else {
			out->match = DNS_MATCH_EXACT;
			out->node = n;
		}
		return;
	}
	/* the closest encloser */
	const uint8_t *s = lname;
	size_t slen = len;
	while (*s) {
		slen -= 1u + *s;
		s += 1u + *s;
		n = table_find(zs, s, slen, dns_name_hash(s, slen));
		if (n)
			break;
	}
	if (!n)
		return;
	out->zone = n->zone;
	if (n->cut) {
		out->match = DNS_MATCH_DELEGATION;
		out->node = n->cut;
		return;
	}
	/* the source of synthesis, "*.<closest encloser>" */
	if (slen + 2 <= DNS_MAX_NAME) {
		uint8_t wild[DNS_MAX_NAME];
		wild[0] = 1;
		wild[1] = '*';
		memcpy(wild + 2, s, slen);
		const dns_node *w = table_find(zs, wild, slen + 2,
					       dns_name_hash(wild, slen + 2));
		if (w) {
			out->match =
			    w->cut ? DNS_MATCH_DELEGATION : DNS_MATCH_WILDCARD;
			out->node = w->cut ? w->cut : w;
			return;
		}
	}
	out->match = DNS_MATCH_NXDOMAIN;
	out->node = n;
}

const dns_rrset *dns_node_rrset(const dns_node *n, uint16_t type)
{
	for (uint16_t i = 0; i < n->nrrsets; i++)
		if (n->rrsets[i].type == type)
			return &n->rrsets[i];
	return NULL;
}

uint16_t dns_zoneset_udp_max(const dns_zoneset *zs)
{
	return zs ? zs->udp_max : DNS_UDP_DEFAULT;
}

size_t dns_zoneset_nzones(const dns_zoneset *zs)
{
	return zs ? zs->nzones : 0;
}

const dns_zone *dns_zoneset_zone(const dns_zoneset *zs, size_t i)
{
	return zs && i < zs->nzones ? &zs->zones[i] : NULL;
}

size_t dns_zoneset_nnodes(const dns_zoneset *zs)
{
	return zs ? zs->nnodes : 0;
}

void dns_zoneset_free(dns_zoneset *zs)
{
	if (!zs)
		return;
	core_arena_free(zs->arena);
	free(zs);
}

/* ---- build ---- */

typedef struct pend {
	const uint8_t *name; /* lowercased wire, in the arena */
	uint8_t namelen;
	uint16_t type;
	uint32_t ttl;
	const uint8_t *rdata; /* in the arena */
	uint16_t rdlen;
	uint32_t zone;
	uint32_t seq;
	const cfg_record *src; /* NULL when generated */
} pend;

typedef struct lbmark {
	const uint8_t *name;
	uint8_t namelen;
	uint32_t zone;
	const cfg_lb *lb;
} lbmark;

typedef struct builder {
	dns_zoneset *zs;
	const cfg_snapshot *snap;
	cfg_diag *diag;
	int errors;
	pend *p;
	size_t np, capp;
	lbmark *lbs;
	size_t nlbs;
	slot *zslots; /* zone names */
	uint32_t zmask;
	bool *zhas_soa, *zhas_ns;
	size_t maxnodes;
	uint8_t *rdbuf;
	uint32_t serial;
	size_t nsorted; /* p[0..nsorted) is sorted */
	cfg_errs errs;
} builder;

/* Errors are gathered with their positions and handed to the caller's
 * diag in file order at the end (cfg_errs). */
__attribute__((format(printf, 3, 4))) static void
report(builder *b, const cfg_pos *pos, const char *fmt, ...)
{
	va_list ap;

	b->errors++;
	if (!b->errs.file && pos && pos->file)
		b->errs.file = pos->file;
	va_start(ap, fmt);
	cfg_errs_vadd(&b->errs, pos ? pos->line : 0, pos ? pos->col : 0, fmt,
		      ap);
	va_end(ap);
}

static uint32_t table_size(size_t n)
{
	uint32_t size = 8;
	while (size < n * 2)
		size *= 2;
	return size;
}

static const uint8_t *arena_copy(builder *b, const void *p, size_t n)
{
	uint8_t *d = core_arena_alloc(b->zs->arena, n ? n : 1);
	memcpy(d, p, n);
	return d;
}

static unsigned count_labels(const uint8_t *name)
{
	unsigned n = 0;
	for (; *name; name += 1u + *name)
		n++;
	return n;
}

/* The deepest configured zone containing name, or -1. */
static int find_zone(const builder *b, const uint8_t *name, size_t len)
{
	const dns_zoneset *zs = b->zs;
	const uint8_t *s = name;
	for (;;) {
		uint32_t h = dns_name_hash(s, len);
		for (uint32_t i = h & b->zmask;; i = (i + 1) & b->zmask) {
			const slot *sl = &b->zslots[i];
			if (!sl->idx)
				break;
			const dns_zone *z = &zs->zones[sl->idx - 1];
			if (sl->hash == h && z->wirelen == len &&
			    !memcmp(z->wire, s, len))
				return (int)(sl->idx - 1);
		}
		if (!*s)
			return -1;
		len -= 1u + *s;
		s += 1u + *s;
	}
}

static void push_pend(builder *b, const uint8_t *name, size_t len,
		      uint16_t type, uint32_t ttl, const uint8_t *rdata,
		      size_t rdlen, uint32_t zone, const cfg_record *src)
{
	if (b->np == b->capp) {
		b->capp = b->capp ? b->capp * 2 : 64;
		b->p = xrealloc(b->p, b->capp * sizeof(*b->p));
	}
	pend *p = &b->p[b->np];
	p->name = arena_copy(b, name, len);
	p->namelen = (uint8_t)len;
	p->type = type;
	p->ttl = ttl;
	p->rdata = arena_copy(b, rdata, rdlen);
	p->rdlen = (uint16_t)rdlen;
	p->zone = zone;
	p->seq = (uint32_t)b->np;
	p->src = src;
	b->np++;
}

static const uint16_t rr_types[] = {
    [CFG_RR_NONE] = 0,		[CFG_RR_A] = DNS_T_A,
    [CFG_RR_AAAA] = DNS_T_AAAA, [CFG_RR_CNAME] = DNS_T_CNAME,
    [CFG_RR_TXT] = DNS_T_TXT,	[CFG_RR_MX] = DNS_T_MX,
    [CFG_RR_NS] = DNS_T_NS,	[CFG_RR_SRV] = DNS_T_SRV,
    [CFG_RR_CAA] = DNS_T_CAA,	[CFG_RR_SOA] = DNS_T_SOA,
};

static const char *type_name(uint16_t t)
{
	switch (t) {
	case DNS_T_A:
		return "A";
	case DNS_T_AAAA:
		return "AAAA";
	case DNS_T_CNAME:
		return "CNAME";
	case DNS_T_TXT:
		return "TXT";
	case DNS_T_MX:
		return "MX";
	case DNS_T_NS:
		return "NS";
	case DNS_T_SRV:
		return "SRV";
	case DNS_T_CAA:
		return "CAA";
	case DNS_T_SOA:
		return "SOA";
	default:
		return "?";
	}
}

/* Text name (any case, optional trailing dot) to lowercased wire form. */
static int wire_of(const char *text, uint8_t *out)
{
	char low[DNS_MAX_NAME + 2];
	size_t n = strlen(text);
	if (n >= sizeof(low))
		return -EMSGSIZE;
	for (size_t i = 0; i <= n; i++)
		low[i] = (char)dns_lower((uint8_t)text[i]);
	return dns_name_from_text(low, out, DNS_MAX_NAME);
}

static void add_record(builder *b, uint32_t zi, const cfg_record *r)
{
	const dns_zone *z = &b->zs->zones[zi];
	uint16_t type =
	    (size_t)r->type < ARRAY_LEN(rr_types) ? rr_types[r->type] : 0;
	const char *rname = r->name ? r->name : "";
	uint8_t name[DNS_MAX_NAME];

	if (!type) {
		report(b, &r->pos, "zone '%s': record '%s': unsupported type",
		       z->name, rname);
		return;
	}
	const char *tn = type_name(type);
	int l = wire_of(rname, name);
	if (l < 0) {
		report(b, &r->pos,
		       "zone '%s': record '%s' %s: name is not a valid domain "
		       "name",
		       z->name, rname, tn);
		return;
	}
	if (!dns_name_in(name, z->wire)) {
		report(b, &r->pos,
		       "zone '%s': record '%s' %s: name is not inside the zone",
		       z->name, rname, tn);
		return;
	}
	int deepest = find_zone(b, name, (size_t)l);
	if (deepest != (int)zi) {
		const dns_zone *dz = &b->zs->zones[deepest];
		if (type == DNS_T_NS && dz->wirelen == l)
			return; /* the parent's delegation to a zone we serve */
		report(b, &r->pos,
		       "zone '%s': record '%s' %s: the name is inside zone "
		       "'%s', which is configured too; list the record there",
		       z->name, rname, tn, dz->name);
		return;
	}
	bool apex = (size_t)l == z->wirelen;
	if (type == DNS_T_SOA && !apex) {
		report(b, &r->pos,
		       "zone '%s': record '%s' SOA: an SOA belongs at the zone "
		       "apex",
		       z->name, rname);
		return;
	}
	if (type == DNS_T_CNAME && apex) {
		report(
		    b, &r->pos,
		    "zone '%s': record '%s' CNAME: no CNAME at the zone apex "
		    "(its SOA and NS live there)",
		    z->name, rname);
		return;
	}
	char err[200];
	int n = dns_rdata_from_text(type, r->content, r->priority, b->rdbuf,
				    DNS_RDATA_MAX, err, sizeof(err));
	if (n < 0) {
		report(b, &r->pos, "zone '%s': record '%s' %s: content: %s",
		       z->name, rname, tn,
		       n == -EMSGSIZE ? "longer than 65535 bytes" : err);
		return;
	}
	if (type == DNS_T_SOA)
		b->zhas_soa[zi] = true;
	if (type == DNS_T_NS && apex)
		b->zhas_ns[zi] = true;
	push_pend(b, name, (size_t)l, type, r->ttl, b->rdbuf, (size_t)n, zi, r);
}

static int pend_cmp(const void *pa, const void *pb)
{
	const pend *a = pa, *b = pb;
	if (a->namelen != b->namelen)
		return a->namelen < b->namelen ? -1 : 1;
	int c = memcmp(a->name, b->name, a->namelen);
	if (c)
		return c;
	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Does any configured record (sorted, the first nsorted) own name? */
static bool pend_has_name(const builder *b, const uint8_t *name, size_t len)
{
	size_t lo = 0, hi = b->nsorted;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const pend *p = &b->p[mid];
		int c = p->namelen != len ? (p->namelen < len ? -1 : 1)
					  : memcmp(p->name, name, len);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* "<label>.<zone>" in wire form; 0 when too long. */
static size_t prefixed(const char *label, const dns_zone *z, uint8_t *out)
{
	size_t l = strlen(label);
	if (1 + l + z->wirelen > DNS_MAX_NAME)
		return 0;
	out[0] = (uint8_t)l;
	memcpy(out + 1, label, l);
	memcpy(out + 1 + l, z->wire, z->wirelen);
	return 1 + l + z->wirelen;
}

static void generate(builder *b, uint32_t zi)
{
	const dns_zone *z = &b->zs->zones[zi];
	const cfg_pos *pos = &b->snap->zones[zi].pos;
	uint8_t ns1[DNS_MAX_NAME], hm[DNS_MAX_NAME], rd[2 * DNS_MAX_NAME + 20];
	size_t ns1len = prefixed("ns1", z, ns1);
	size_t hmlen = prefixed("hostmaster", z, hm);
	bool need_soa = !b->zhas_soa[zi], need_ns = !b->zhas_ns[zi];

	if (((need_soa || need_ns) && !ns1len) || (need_soa && !hmlen)) {
		report(b, pos,
		       "zone '%s': name too long to generate its SOA and NS "
		       "(ns1.%s, hostmaster.%s); configure them",
		       z->name, z->name, z->name);
		return;
	}
	if (need_soa) {
		memcpy(rd, ns1, ns1len);
		memcpy(rd + ns1len, hm, hmlen);
		uint8_t *t = rd + ns1len + hmlen;
		dns_put32(t, b->serial);
		dns_put32(t + 4, DNS_SOA_REFRESH);
		dns_put32(t + 8, DNS_SOA_RETRY);
		dns_put32(t + 12, DNS_SOA_EXPIRE);
		dns_put32(t + 16, DNS_SOA_MINIMUM);
		push_pend(b, z->wire, z->wirelen, DNS_T_SOA, DNS_GEN_TTL, rd,
			  ns1len + hmlen + 20, zi, NULL);
	}
	if (!need_ns)
		return;
	push_pend(b, z->wire, z->wirelen, DNS_T_NS, DNS_GEN_TTL, ns1, ns1len,
		  zi, NULL);
	/* addresses for ns1.<zone> from the edge, unless it has its own data
	 * (records or a load balancer) or is a zone of its own */
	if (pend_has_name(b, ns1, ns1len) ||
	    find_zone(b, ns1, ns1len) != (int)zi)
		return;
	for (size_t i = 0; i < b->nlbs; i++)
		if (b->lbs[i].namelen == ns1len &&
		    !memcmp(b->lbs[i].name, ns1, ns1len))
			return;
	const cfg_edge *e = &b->snap->edge;
	for (size_t i = 0; i < e->npublic_addresses; i++) {
		uint8_t a[16];
		if (inet_pton(AF_INET, e->public_addresses[i], a) == 1)
			push_pend(b, ns1, ns1len, DNS_T_A, DNS_GEN_TTL, a, 4,
				  zi, NULL);
		else if (inet_pton(AF_INET6, e->public_addresses[i], a) == 1)
			push_pend(b, ns1, ns1len, DNS_T_AAAA, DNS_GEN_TTL, a,
				  16, zi, NULL);
	}
}

static dns_node *node_get(builder *b, const uint8_t *name, size_t len,
			  uint32_t zi)
{
	dns_zoneset *zs = b->zs;
	uint32_t h = dns_name_hash(name, len);
	uint32_t i;
	for (i = h & zs->mask; zs->slots[i].idx; i = (i + 1) & zs->mask) {
		const slot *s = &zs->slots[i];
		dns_node *n = &zs->nodes[s->idx - 1];
		if (s->hash == h && n->namelen == len &&
		    !memcmp(n->name, name, len))
			return n;
	}
	if (zs->nnodes == b->maxnodes) /* the bound is computed above */
		abort();
	dns_node *n = &zs->nodes[zs->nnodes++];
	n->name = arena_copy(b, name, len);
	n->namelen = (uint8_t)len;
	n->nlabels = (uint8_t)count_labels(name);
	n->zone = &zs->zones[zi];
	zs->slots[i].hash = h;
	zs->slots[i].idx = (uint32_t)zs->nnodes;
	return n;
}

static bool same_name(const pend *a, const pend *b)
{
	return a->namelen == b->namelen &&
	       !memcmp(a->name, b->name, a->namelen);
}

static char *name_text(const uint8_t *wire, char *buf, size_t cap)
{
	if (dns_name_to_text(wire, buf, cap) > 1)
		buf[strlen(buf) - 1] = '\0'; /* no trailing dot in messages */
	return buf;
}

/* The records of one name, p[0..n), into node's RRsets. */
static void make_rrsets(builder *b, dns_node *node, const pend *p, size_t n)
{
	size_t nsets = 0;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || p[i].type != p[i - 1].type)
			nsets++;
	dns_rrset *sets = core_arena_alloc(b->zs->arena, nsets * sizeof(*sets));
	size_t s = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && p[j].type == p[i].type)
			j++;
		dns_rr *rr =
		    core_arena_alloc(b->zs->arena, (j - i) * sizeof(*rr));
		size_t k = 0;
		uint32_t ttl = p[i].ttl;
		for (size_t m = i; m < j; m++) {
			bool dup = false;
			for (size_t q = 0; q < k && !dup; q++)
				dup = rr[q].rdlen == p[m].rdlen &&
				      !memcmp(rr[q].rdata, p[m].rdata,
					      p[m].rdlen);
			if (dup)
				continue;
			rr[k].rdata = p[m].rdata;
			rr[k].rdlen = p[m].rdlen;
			k++;
			if (p[m].ttl < ttl)
				ttl = p[m].ttl;
		}
		sets[s].type = p[i].type;
		sets[s].n = (uint16_t)MIN(k, 65535u);
		sets[s].ttl = ttl;
		sets[s].rr = rr;
		char txt[DNS_MAX_NAME * 4 + 1];
		if ((p[i].type == DNS_T_CNAME || p[i].type == DNS_T_SOA) &&
		    k > 1) {
			const pend *second = &p[i + 1];
			report(b, second->src ? &second->src->pos : NULL,
			       "zone '%s': record '%s' %s: only one %s record "
			       "may own a name",
			       node->zone->name,
			       name_text(node->name, txt, sizeof(txt)),
			       type_name(p[i].type), type_name(p[i].type));
		}
		if (p[i].type == DNS_T_CNAME && nsets > 1) {
			report(b, p[i].src ? &p[i].src->pos : NULL,
			       "zone '%s': record '%s' CNAME: a CNAME cannot "
			       "share its name with other records",
			       node->zone->name,
			       name_text(node->name, txt, sizeof(txt)));
		}
		s++;
		i = j;
	}
	node->rrsets = sets;
	node->nrrsets = (uint16_t)nsets;
}

/* Empty non-terminals between node and the apex of its zone; for an apex,
 * those between it and the apex of the zone above it (if configured). */
static void add_ents(builder *b, size_t idx)
{
	dns_zoneset *zs = b->zs;
	const dns_node *n = &zs->nodes[idx];
	const uint8_t *s = n->name;
	size_t len = n->namelen;
	uint32_t zi = (uint32_t)(n->zone - zs->zones);
	size_t stop = n->zone->wirelen;

	if (n->apex) {
		if (!*s)
			return;
		int parent = find_zone(b, s + 1u + *s, len - 1u - *s);
		if (parent < 0)
			return;
		zi = (uint32_t)parent;
		stop = zs->zones[parent].wirelen;
	}
	while (*s) {
		len -= 1u + *s;
		s += 1u + *s;
		if (len <= stop)
			break;
		node_get(b, s, len, zi);
	}
}

/* Load balancer names against the zone data at them: a CNAME there would
 * be answered beside the load balancer's records (RFC 1034 §3.6.2, RFC
 * 2181 §10.1); a DNS-only load balancer at or below a zone cut is never
 * answered (the referral is). A proxied one there still serves HTTP, and
 * the delegation decides its DNS: fine. */
static void check_lbs(builder *b)
{
	char txt[DNS_MAX_NAME * 4 + 1];
	for (size_t i = 0; i < b->nlbs; i++) {
		const lbmark *m = &b->lbs[i];
		const dns_node *n =
		    table_find(b->zs, m->name, m->namelen,
			       dns_name_hash(m->name, m->namelen));
		if (!n)
			continue;
		if (dns_node_rrset(n, DNS_T_CNAME))
			report(b, &m->lb->pos,
			       "load balancer '%s': zone '%s' has a CNAME "
			       "record at this name, and a CNAME cannot share "
			       "its name with other data (remove the record or "
			       "rename the load balancer)",
			       m->lb->name, n->zone->name);
		if (n->cut && !m->lb->proxied && m->lb->enabled)
			report(b, &m->lb->pos,
			       "load balancer '%s' is DNS-only (proxied: "
			       "false) but lies at or below '%s', delegated "
			       "by NS records in zone '%s': the referral "
			       "answers, never the load balancer",
			       m->lb->name,
			       name_text(n->cut->name, txt, sizeof(txt)),
			       n->zone->name);
	}
}

/* The topmost delegation (NS below the apex) at or above n in its zone. */
static const dns_node *find_cut(builder *b, const dns_node *n)
{
	const dns_node *cut = NULL;
	const uint8_t *s = n->name;
	size_t len = n->namelen;
	while (len > n->zone->wirelen) {
		const dns_node *m =
		    table_find(b->zs, s, len, dns_name_hash(s, len));
		if (m && !m->apex && dns_node_rrset(m, DNS_T_NS))
			cut = m;
		len -= 1u + *s;
		s += 1u + *s;
	}
	return cut;
}

int dns_zoneset_build(const cfg_snapshot *snap, const dns_zoneset_opts *opts,
		      dns_zoneset **out, cfg_diag *diag)
{
	builder bb = {0}, *b = &bb;
	dns_zoneset *zs = xcalloc(1, sizeof(*zs));
	size_t nz = snap->nzones;

	*out = NULL;
	zs->arena = core_arena_new(0);
	uint32_t udp = opts && opts->udp_max ? opts->udp_max : DNS_UDP_DEFAULT;
	zs->udp_max = (uint16_t)(udp < DNS_UDP_MIN   ? DNS_UDP_MIN
				 : udp > DNS_UDP_MAX ? DNS_UDP_MAX
						     : udp);
	b->serial = opts ? opts->serial : 0;
	b->zs = zs;
	b->snap = snap;
	b->diag = diag;
	b->errs.file = snap->file;
	b->rdbuf = xmalloc(DNS_RDATA_MAX);
	b->zhas_soa = xcalloc(nz + 1, sizeof(bool));
	b->zhas_ns = xcalloc(nz + 1, sizeof(bool));

	static atomic_uint_fast64_t builds;
	zs->id = atomic_fetch_add(&builds, 1) + 1;
	/* what load balancer answers need per snapshot */
	zs->norigins = snap->norigins;
	zs->origin_family =
	    core_arena_alloc(zs->arena, snap->norigins ? snap->norigins : 1);
	/* From the parsed address, not the text: "[2001:db8::1]" and
	 * "https://[2001:db8::1]:8443" are IP literals too. */
	for (size_t i = 0; i < snap->norigins; i++) {
		const cfg_origin *o = snap->origins[i];
		int fam = o->ss.ss_family;
		zs->origin_family[i] = o->host || o->tunnel ? 0
				       : fam == AF_INET	    ? 4
				       : fam == AF_INET6    ? 6
							    : 0;
	}
	for (size_t i = 0; i < snap->edge.npublic_addresses; i++) {
		const char *t = snap->edge.public_addresses[i];
		if (zs->npub4 < DNS_PUBLIC_MAX &&
		    inet_pton(AF_INET, t, zs->pub4[zs->npub4]) == 1)
			zs->npub4++;
		else if (zs->npub6 < DNS_PUBLIC_MAX &&
			 inet_pton(AF_INET6, t, zs->pub6[zs->npub6]) == 1)
			zs->npub6++;
	}

	/* zones, and a table of their names */
	zs->zones = core_arena_alloc(zs->arena, (nz + 1) * sizeof(dns_zone));
	zs->nzones = nz;
	uint32_t zsize = table_size(nz);
	b->zslots = xcalloc(zsize, sizeof(slot));
	b->zmask = zsize - 1;
	for (size_t i = 0; i < nz; i++) {
		const cfg_zone *cz = &snap->zones[i];
		dns_zone *z = &zs->zones[i];
		uint8_t wire[DNS_MAX_NAME];
		z->name = cz->name ? cz->name : "";
		int l = wire_of(z->name, wire);
		if (l <= 1) {
			report(b, &cz->pos, "zone '%s': not a valid zone name",
			       z->name);
			continue;
		}
		z->wire = arena_copy(b, wire, (size_t)l);
		z->wirelen = (uint8_t)l;
		z->nlabels = (uint8_t)count_labels(wire);
		int dup = find_zone(b, wire, (size_t)l);
		if (dup >= 0 && zs->zones[dup].wirelen == l) {
			report(b, &cz->pos, "zone '%s': configured twice",
			       z->name);
			continue;
		}
		uint32_t h = dns_name_hash(wire, (size_t)l), j;
		for (j = h & b->zmask; b->zslots[j].idx; j = (j + 1) & b->zmask)
			;
		b->zslots[j].hash = h;
		b->zslots[j].idx = (uint32_t)i + 1;
	}
	if (b->errors)
		goto fail;

	/* load balancer names inside our zones */
	b->lbs = xcalloc(snap->nlbs + 1, sizeof(*b->lbs));
	for (size_t i = 0; i < snap->nlbs; i++) {
		const cfg_lb *lb = &snap->lbs[i];
		uint8_t wire[DNS_MAX_NAME];
		int l = lb->name ? wire_of(lb->name, wire) : -EINVAL;
		if (l <= 1)
			continue; /* not a DNS name: the proxy's business */
		int zi = find_zone(b, wire, (size_t)l);
		if (zi < 0)
			continue;
		lbmark *m = &b->lbs[b->nlbs++];
		m->name = arena_copy(b, wire, (size_t)l);
		m->namelen = (uint8_t)l;
		m->zone = (uint32_t)zi;
		m->lb = lb;
	}

	/* records, then what is generated */
	for (size_t i = 0; i < nz; i++)
		for (size_t j = 0; j < snap->zones[i].nrecords; j++)
			add_record(b, (uint32_t)i, &snap->zones[i].records[j]);
	if (b->np)
		qsort(b->p, b->np, sizeof(*b->p), pend_cmp);
	size_t nconf = b->np;
	b->nsorted = nconf;
	for (size_t i = 0; i < nz; i++)
		generate(b, (uint32_t)i);
	if (b->np != nconf)
		qsort(b->p, b->np, sizeof(*b->p), pend_cmp);
	if (b->errors)
		goto fail;

	/* nodes: an upper bound of their number first (names, apexes, load
	 * balancers, and one empty non-terminal per label of each) */
	b->maxnodes = 1;
	for (size_t i = 0; i < b->np; i++)
		b->maxnodes += 1 + count_labels(b->p[i].name);
	for (size_t i = 0; i < nz; i++)
		b->maxnodes += 1 + zs->zones[i].nlabels;
	for (size_t i = 0; i < b->nlbs; i++)
		b->maxnodes += 1 + count_labels(b->lbs[i].name);
	zs->nodes =
	    core_arena_alloc(zs->arena, b->maxnodes * sizeof(*zs->nodes));
	uint32_t size = table_size(b->maxnodes);
	zs->slots = core_arena_alloc(zs->arena, size * sizeof(*zs->slots));
	zs->mask = size - 1;

	for (size_t i = 0; i < b->np;) {
		size_t j = i + 1;
		while (j < b->np && same_name(&b->p[i], &b->p[j]))
			j++;
		dns_node *n =
		    node_get(b, b->p[i].name, b->p[i].namelen, b->p[i].zone);
		make_rrsets(b, n, &b->p[i], j - i);
		i = j;
	}
	for (size_t i = 0; i < nz; i++) {
		dns_zone *z = &zs->zones[i];
		dns_node *n = node_get(b, z->wire, z->wirelen, (uint32_t)i);
		n->apex = true;
		z->apex = n;
		z->soa = dns_node_rrset(n, DNS_T_SOA);
		if (!z->soa || z->soa->n < 1) /* generated when absent */
			abort();
		const dns_rr *soa = &z->soa->rr[0];
		uint32_t minimum = dns_get32(soa->rdata + soa->rdlen - 4);
		z->neg_ttl = MIN(minimum, z->soa->ttl);
	}
	for (size_t i = 0; i < b->nlbs; i++) {
		dns_node *n = node_get(b, b->lbs[i].name, b->lbs[i].namelen,
				       b->lbs[i].zone);
		if (!n->lb)
			n->lb = b->lbs[i].lb;
	}
	for (size_t i = 0; i < zs->nnodes; i++)
		add_ents(b, i);

	/* zone cuts */
	bool cuts = false;
	for (size_t i = 0; i < zs->nnodes; i++) {
		dns_node *n = &zs->nodes[i];
		if (!n->apex && dns_node_rrset(n, DNS_T_NS)) {
			((dns_zone *)n->zone)->has_cuts = true;
			cuts = true;
		}
	}
	for (size_t i = 0; cuts && i < zs->nnodes; i++)
		if (zs->nodes[i].zone->has_cuts)
			zs->nodes[i].cut = find_cut(b, &zs->nodes[i]);
	check_lbs(b);
	if (b->errors)
		goto fail;

	*out = zs;
	zs = NULL;
fail:
	free(b->p);
	free(b->lbs);
	free(b->zslots);
	free(b->zhas_soa);
	free(b->zhas_ns);
	free(b->rdbuf);
	/* (cfg_errs_flush qsorts even an empty list: not called then) */
	if (b->diag && b->errs.n)
		cfg_errs_flush(&b->errs, b->diag);
	else
		cfg_errs_clear(&b->errs);
	if (zs) {
		dns_zoneset_free(zs);
		return -EINVAL;
	}
	return 0;
}
