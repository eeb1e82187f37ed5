/* geo.c - see geo.h. */
#include "geo/geo.h"

#include <errno.h>
#include <maxminddb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_values.h"
#include "core/core_util.h"

typedef struct geo_net {
	cfg_cidr cidr;
	char country[3];
	char region[5];
	size_t order; /* position in geo.networks, for a stable sort */
} geo_net;

struct geo_db {
	MMDB_s mmdb;
	bool has_mmdb;
	geo_net *nets; /* longest prefix first */
	size_t nnets;
	cfg_cidr *trusted;
	size_t ntrusted;
};

static int net_cmp(const void *a, const void *b)
{
	const geo_net *x = a, *y = b;
	if (x->cidr.prefix != y->cidr.prefix)
		return x->cidr.prefix > y->cidr.prefix ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void copy_code(char *dst, size_t size, const char *src)
{
	size_t i = 0;
	for (; src && src[i] && i + 1 < size; i++)
		dst[i] =
		    (char)((src[i] >= 'a' && src[i] <= 'z') ? src[i] - 'a' + 'A'
							    : src[i]);
	dst[i] = '\0';
}

geo_db *geo_open(const cfg_geo *g, char *err, size_t errlen)
{
	geo_db *db = xcalloc(1, sizeof(*db));

	if (err && errlen)
		err[0] = '\0';
	if (!g)
		return db;
	if (g->nnetworks) {
		db->nets = xcalloc(g->nnetworks, sizeof(*db->nets));
		for (size_t i = 0; i < g->nnetworks; i++) {
			const cfg_geo_network *n = &g->networks[i];
			geo_net *d = &db->nets[db->nnets++];
			d->cidr = n->cidr;
			d->cidr.text = NULL; /* the snapshot may go first */
			d->order = i;
			copy_code(d->country, sizeof(d->country), n->country);
			if (n->region)
				copy_code(d->region, sizeof(d->region),
					  n->region);
			else if (d->country[0]) {
				const char *r = geo_country_region(d->country);
				copy_code(d->region, sizeof(d->region), r);
			}
		}
		qsort(db->nets, db->nnets, sizeof(*db->nets), net_cmp);
	}
	if (g->ntrusted_proxies) {
		db->trusted =
		    xcalloc(g->ntrusted_proxies, sizeof(*db->trusted));
		for (size_t i = 0; i < g->ntrusted_proxies; i++) {
			db->trusted[i] = g->trusted_proxies[i];
			db->trusted[i].text = NULL;
		}
		db->ntrusted = g->ntrusted_proxies;
	}
	if (g->database) {
		int rc = MMDB_open(g->database, MMDB_MODE_MMAP, &db->mmdb);
		if (rc != MMDB_SUCCESS) {
			int e = errno;
			/* "file:line:col: " of the geo section when the
			 * config has one. */
			char at[300] = "";
			if (g->pos.file)
				snprintf(at, sizeof(at),
					 "%s:%u:%u: ", g->pos.file, g->pos.line,
					 g->pos.col);
			if (err && errlen)
				snprintf(
				    err, errlen, "%sgeo.database %s: %s%s%s",
				    at, g->database, MMDB_strerror(rc),
				    rc == MMDB_IO_ERROR ? ": " : "",
				    rc == MMDB_IO_ERROR ? strerror(e) : "");
			geo_close(db);
			return NULL;
		}
		db->has_mmdb = true;
	}
	return db;
}

void geo_close(geo_db *db)
{
	if (!db)
		return;
	if (db->has_mmdb)
		MMDB_close(&db->mmdb);
	free(db->nets);
	free(db->trusted);
	free(db);
}

bool geo_has_database(const geo_db *db)
{
	return db && db->has_mmdb;
}

const struct sockaddr *geo_unmap(const struct sockaddr *sa,
				 struct sockaddr_in *tmp)
{
	if (!sa || sa->sa_family != AF_INET6)
		return sa;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		return sa;
	memset(tmp, 0, sizeof(*tmp));
	tmp->sin_family = AF_INET;
	tmp->sin_port = s6->sin6_port;
	memcpy(&tmp->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
	return (const struct sockaddr *)tmp;
}

int geo_network(const struct sockaddr *client, unsigned v4_prefix,
		unsigned v6_prefix, uint8_t addr[16], unsigned *bits)
{
	struct sockaddr_in tmp;
	const struct sockaddr *sa = geo_unmap(client, &tmp);
	const uint8_t *a;
	unsigned len;
	if (sa->sa_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)sa)
			->sin_addr;
		len = 4;
		*bits = MIN(v4_prefix, 32u);
	} else if (sa->sa_family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		len = 16;
		*bits = MIN(v6_prefix, 128u);
	} else {
		return 0;
	}
	memset(addr, 0, 16);
	for (unsigned i = 0; i < len; i++) {
		unsigned keep = *bits >= 8 * (i + 1) ? 8
				: *bits > 8 * i	     ? *bits - 8 * i
						     : 0;
		addr[i] = keep ? (uint8_t)(a[i] & (0xff00u >> keep)) : 0;
	}
	return sa->sa_family;
}

/* Addresses in IPv6 form (IPv4 as ::ffff:a.b.c.d, its prefixes + 96), so
 * networks of both families compare with one another. */
#define V4_BASE 96

static void v4_mapped_or_v6(bool v4, const void *addr, uint8_t out[16])
{
	if (v4) {
		static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
		memcpy(out, mapped, 12);
		memcpy(out + 12, addr, 4);
	} else {
		memcpy(out, addr, 16);
	}
}

static void v6_form(const struct sockaddr *sa, uint8_t out[16])
{
	if (sa->sa_family == AF_INET)
		v4_mapped_or_v6(
		    true, &((const struct sockaddr_in *)sa)->sin_addr, out);
	else
		v4_mapped_or_v6(
		    false, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr,
		    out);
}

/* Do a and b agree on their first `bits` bits? */
static bool same_prefix(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	for (unsigned i = 0; bits; i++) {
		unsigned n = bits < 8 ? bits : 8;
		uint8_t mask = (uint8_t)(0xff00u >> n);
		if ((a[i] ^ b[i]) & mask)
			return false;
		bits -= n;
	}
	return true;
}

/* Special-purpose ranges (RFC 6890 and successors): private, loopback,
 * link-local, shared (CGNAT), documentation, benchmarking, multicast,
 * reserved, ULA. No database can locate them; some country databases
 * answer anyway (the npm ip-location-db file puts 192.168.0.0/16 in AU),
 * so they are never looked up there. geo.networks may still place them.
 * In IPv6 form. */
#define V4R(a, b, c, d, len)                                                   \
	{                                                                      \
		{[10] = 0xff, [11] = 0xff, [12] = a,                           \
		 [13] = b,    [14] = c,	   [15] = d},                          \
		    V4_BASE + len                                              \
	}
static const struct {
	uint8_t addr[16];
	uint8_t prefix;
} specials[] = {
    V4R(0, 0, 0, 0, 8),
    V4R(10, 0, 0, 0, 8),
    V4R(100, 64, 0, 0, 10),
    V4R(127, 0, 0, 0, 8),
    V4R(169, 254, 0, 0, 16),
    V4R(172, 16, 0, 0, 12),
    V4R(192, 0, 0, 0, 24),
    V4R(192, 0, 2, 0, 24),
    V4R(192, 168, 0, 0, 16),
    V4R(198, 18, 0, 0, 15),
    V4R(198, 51, 100, 0, 24),
    V4R(203, 0, 113, 0, 24),
    V4R(224, 0, 0, 0, 3),	    /* 224.0.0.0/4 and 240.0.0.0/4 */
    {{0}, 127},			    /* :: and ::1 */
    {{0xfc}, 7},		    /* ULA */
    {{0xfe, 0x80}, 10},		    /* link-local */
    {{0xff}, 8},		    /* multicast */
    {{0x20, 0x01, 0x0d, 0xb8}, 32}, /* documentation */
};
#undef V4R

/* The length (IPv6 form) of the special range holding a, or 0. */
static unsigned special_prefix(const uint8_t a[16])
{
	for (size_t i = 0; i < sizeof(specials) / sizeof(*specials); i++)
		if (same_prefix(a, specials[i].addr, specials[i].prefix))
			return specials[i].prefix;
	return 0;
}

static unsigned net_prefix(const cfg_cidr *c)
{
	return c->prefix + (c->family == AF_INET ? V4_BASE : 0u);
}

/* A prefix length in IPv6 form back to the bits of sa's own family. */
static uint8_t own_bits(const struct sockaddr *sa, unsigned v6bits)
{
	if (sa->sa_family != AF_INET)
		return (uint8_t)v6bits;
	return (uint8_t)(v6bits > V4_BASE ? v6bits - V4_BASE : 0);
}

/* The MaxMind record's network length in IPv6 form. */
static unsigned db_prefix(const geo_db *db, const struct sockaddr *sa,
			  const MMDB_lookup_result_s *r)
{
	if (sa->sa_family == AF_INET && db->mmdb.metadata.ip_version != 6)
		return r->netmask + V4_BASE; /* an IPv4 tree */
	return r->netmask;
}

/* The two-letter code at path in entry, uppercased into out[3]. */
static bool db_code(MMDB_entry_s *entry, const char *const *path, char *out)
{
	MMDB_entry_data_s d;

	if (MMDB_aget_value(entry, &d, path) != MMDB_SUCCESS || !d.has_data ||
	    d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size != 2)
		return false;
	char c[3] = {d.utf8_string[0], d.utf8_string[1], '\0'};
	copy_code(out, 3, c);
	return out[0] >= 'A' && out[0] <= 'Z' && out[1] >= 'A' && out[1] <= 'Z';
}

static bool db_lookup(const geo_db *db, const struct sockaddr *sa,
		      geo_result *out, unsigned *prefix)
{
	static const char *const p_cc[] = {"country_code", NULL};
	static const char *const p_country[] = {"country", "iso_code", NULL};
	static const char *const p_reg[] = {"registered_country", "iso_code",
					    NULL};
	int mmerr = 0;

	MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&db->mmdb, sa, &mmerr);
	if (mmerr != MMDB_SUCCESS)
		return false;
	*prefix = db_prefix(db, sa, &r); /* found or not: the same block */
	if (!r.found_entry)
		return false;
	if (!db_code(&r.entry, p_cc, out->country) &&
	    !db_code(&r.entry, p_country, out->country) &&
	    !db_code(&r.entry, p_reg, out->country))
		return false;
	copy_code(out->region, sizeof(out->region),
		  geo_country_region(out->country));
	out->source = GEO_SRC_DATABASE;
	return true;
}

int geo_lookup(const geo_db *db, const struct sockaddr *sa, geo_result *out)
{
	struct sockaddr_in tmp;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!db || !sa)
		return -EINVAL;
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return -EINVAL;
	const struct sockaddr *orig = sa;
	sa = geo_unmap(sa, &tmp);
	for (size_t i = 0; i < db->nnets; i++) {
		const geo_net *n = &db->nets[i];
		if (!cfg_cidr_contains(&n->cidr, sa))
			continue;
		memcpy(out->country, n->country, sizeof(out->country));
		memcpy(out->region, n->region, sizeof(out->region));
		out->source = GEO_SRC_NETWORK;
		out->prefix = own_bits(orig, net_prefix(&n->cidr));
		return 0;
	}
	unsigned prefix = 0;
	if (db->has_mmdb) {
		uint8_t a[16];
		v6_form(sa, a);
		prefix = special_prefix(a);
		if (!prefix && db_lookup(db, sa, out, &prefix))
			out->prefix = own_bits(orig, prefix);
		if (out->source == GEO_SRC_DATABASE)
			return 0;
	}
	memset(out, 0, sizeof(*out));
	out->prefix = own_bits(orig, prefix);
	return -ENOENT;
}

uint8_t geo_split_prefix(const geo_db *db, const struct sockaddr *sa,
			 unsigned prefix)
{
	if (!db || !sa ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return 0;
	uint8_t a[16];
	v6_form(sa, a);
	unsigned p = prefix + (sa->sa_family == AF_INET ? V4_BASE : 0u);
	unsigned best = 0;
	for (size_t i = 0; i < db->nnets; i++) {
		const cfg_cidr *c = &db->nets[i].cidr;
		unsigned np = net_prefix(c);
		uint8_t na[16];
		v4_mapped_or_v6(c->family == AF_INET, c->addr, na);
		if (np > p && np > best && same_prefix(na, a, p))
			best = np;
	}
	/* the database is never asked about special ranges: they answer
	 * otherwise than the addresses around them */
	for (size_t i = 0;
	     db->has_mmdb && i < sizeof(specials) / sizeof(*specials); i++) {
		unsigned np = specials[i].prefix;
		if (np > p && np > best && same_prefix(specials[i].addr, a, p))
			best = np;
	}
	return best ? own_bits(sa, best) : 0;
}

static bool db_double(MMDB_entry_s *entry, const char *const *path, double *out)
{
	MMDB_entry_data_s d;

	if (MMDB_aget_value(entry, &d, path) != MMDB_SUCCESS || !d.has_data ||
	    d.type != MMDB_DATA_TYPE_DOUBLE)
		return false;
	*out = d.double_value;
	return true;
}

int geo_lookup_point(const geo_db *db, const struct sockaddr *sa, double *lat,
		     double *lon, uint8_t *prefix)
{
	static const char *const p_lat[] = {"location", "latitude", NULL};
	static const char *const p_lon[] = {"location", "longitude", NULL};
	struct sockaddr_in tmp;
	int mmerr = 0;

	uint8_t unused;
	if (!prefix)
		prefix = &unused;
	*prefix = 0;
	if (!db || !sa || !lat || !lon ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return -EINVAL;
	const struct sockaddr *orig = sa;
	sa = geo_unmap(sa, &tmp);
	/* An override places the address without coordinates: the database
	 * must not contradict it. */
	for (size_t i = 0; i < db->nnets; i++)
		if (cfg_cidr_contains(&db->nets[i].cidr, sa)) {
			*prefix = own_bits(orig, net_prefix(&db->nets[i].cidr));
			return -ENOENT;
		}
	if (!db->has_mmdb)
		return -ENOENT;
	uint8_t a[16];
	v6_form(sa, a);
	unsigned sp = special_prefix(a);
	if (sp) {
		*prefix = own_bits(orig, sp);
		return -ENOENT;
	}
	MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&db->mmdb, sa, &mmerr);
	if (mmerr == MMDB_SUCCESS)
		*prefix = own_bits(orig, db_prefix(db, sa, &r));
	double la, lo;
	if (mmerr != MMDB_SUCCESS || !r.found_entry ||
	    !db_double(&r.entry, p_lat, &la) ||
	    !db_double(&r.entry, p_lon, &lo) || !(la >= -90 && la <= 90) ||
	    !(lo >= -180 && lo <= 180))
		return -ENOENT;
	*lat = la;
	*lon = lo;
	return 0;
}

bool geo_is_trusted(const geo_db *db, const struct sockaddr *sa)
{
	struct sockaddr_in tmp;

	if (!db || !sa)
		return false;
	sa = geo_unmap(sa, &tmp);
	for (size_t i = 0; i < db->ntrusted; i++)
		if (cfg_cidr_contains(&db->trusted[i], sa))
			return true;
	return false;
}
