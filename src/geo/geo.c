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
			if (err && errlen)
				snprintf(err, errlen, "geo.database %s: %s%s%s",
					 g->database, MMDB_strerror(rc),
					 rc == MMDB_IO_ERROR ? ": " : "",
					 rc == MMDB_IO_ERROR ? strerror(errno)
							     : "");
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

/* Special-purpose ranges (RFC 6890 and successors): private, loopback,
 * link-local, shared (CGNAT), documentation, benchmarking, multicast,
 * reserved, ULA. No database can locate them; some country databases
 * answer anyway (the npm ip-location-db file puts 192.168.0.0/16 in AU),
 * so they are never looked up there. geo.networks may still place them. */
static bool special_v4(const uint8_t *a)
{
	uint32_t v = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 |
		     (uint32_t)a[2] << 8 | a[3];
	static const struct {
		uint32_t net, mask;
	} r[] = {
	    {0x00000000, 0xff000000}, /* 0.0.0.0/8 */
	    {0x0a000000, 0xff000000}, /* 10.0.0.0/8 */
	    {0x64400000, 0xffc00000}, /* 100.64.0.0/10 */
	    {0x7f000000, 0xff000000}, /* 127.0.0.0/8 */
	    {0xa9fe0000, 0xffff0000}, /* 169.254.0.0/16 */
	    {0xac100000, 0xfff00000}, /* 172.16.0.0/12 */
	    {0xc0000000, 0xffffff00}, /* 192.0.0.0/24 */
	    {0xc0000200, 0xffffff00}, /* 192.0.2.0/24 */
	    {0xc0a80000, 0xffff0000}, /* 192.168.0.0/16 */
	    {0xc6120000, 0xfffe0000}, /* 198.18.0.0/15 */
	    {0xc6336400, 0xffffff00}, /* 198.51.100.0/24 */
	    {0xcb007100, 0xffffff00}, /* 203.0.113.0/24 */
	    {0xe0000000, 0xe0000000}, /* 224.0.0.0/4, 240.0.0.0/4 */
	};
	for (size_t i = 0; i < sizeof(r) / sizeof(*r); i++)
		if ((v & r[i].mask) == r[i].net)
			return true;
	return false;
}

static bool special_v6(const uint8_t *a)
{
	static const uint8_t zero[15];
	if (memcmp(a, zero, 15) == 0) /* :: and ::1 */
		return a[15] <= 1;
	if ((a[0] & 0xfe) == 0xfc) /* fc00::/7 ULA */
		return true;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) /* fe80::/10 */
		return true;
	if (a[0] == 0xff) /* multicast */
		return true;
	/* 2001:db8::/32 documentation */
	return a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8;
}

static bool special(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return special_v4(
		    (const uint8_t *)&((const struct sockaddr_in *)sa)
			->sin_addr);
	return special_v6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
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
		      geo_result *out)
{
	static const char *const p_cc[] = {"country_code", NULL};
	static const char *const p_country[] = {"country", "iso_code", NULL};
	static const char *const p_reg[] = {"registered_country", "iso_code",
					    NULL};
	int mmerr = 0;

	MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&db->mmdb, sa, &mmerr);
	if (mmerr != MMDB_SUCCESS || !r.found_entry)
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
	sa = geo_unmap(sa, &tmp);
	for (size_t i = 0; i < db->nnets; i++) {
		const geo_net *n = &db->nets[i];
		if (!cfg_cidr_contains(&n->cidr, sa))
			continue;
		memcpy(out->country, n->country, sizeof(out->country));
		memcpy(out->region, n->region, sizeof(out->region));
		out->source = GEO_SRC_NETWORK;
		return 0;
	}
	if (db->has_mmdb && !special(sa) && db_lookup(db, sa, out))
		return 0;
	memset(out, 0, sizeof(*out));
	return -ENOENT;
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
		     double *lon)
{
	static const char *const p_lat[] = {"location", "latitude", NULL};
	static const char *const p_lon[] = {"location", "longitude", NULL};
	struct sockaddr_in tmp;
	int mmerr = 0;

	if (!db || !sa || !lat || !lon ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return -EINVAL;
	sa = geo_unmap(sa, &tmp);
	/* An override places the address without coordinates: the database
	 * must not contradict it. */
	for (size_t i = 0; i < db->nnets; i++)
		if (cfg_cidr_contains(&db->nets[i].cidr, sa))
			return -ENOENT;
	if (!db->has_mmdb || special(sa))
		return -ENOENT;
	MMDB_lookup_result_s r = MMDB_lookup_sockaddr(&db->mmdb, sa, &mmerr);
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
