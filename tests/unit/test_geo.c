/* Unit tests for geo: the country -> region table (complete for ISO 3166-1,
 * Cloudflare's regions), geo.networks overrides (longest prefix, v4 and v6,
 * derived regions), trusted proxies, and lookups in the real country
 * database installed by scripts/geo-data.sh (skipped, with a message, only
 * when that file is absent). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/cfg_values.h"
#include "geo/geo.h"

#ifndef MERIDIAN_SOURCE_ROOT
#define MERIDIAN_SOURCE_ROOT "."
#endif
#define GEO_DB MERIDIAN_SOURCE_ROOT "/data/geo/geo-whois-asn-country.mmdb"

/* ISO 3166-1 alpha-2, all 249 officially assigned codes. */
static const char iso_codes[] =
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH "
    "BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL "
    "CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET "
    "FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU "
    "GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE "
    "KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC "
    "MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC "
    "NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT "
    "PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR "
    "SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA "
    "UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

static void test_region_table_complete(void **state)
{
	int per_region[CFG_NREGIONS] = {0};
	int n = 0;

	for (size_t i = 0; iso_codes[i]; i += 3) {
		char cc[3] = {iso_codes[i], iso_codes[i + 1], '\0'};
		const char *r = geo_country_region(cc);
		if (!r)
			fail_msg("country %s has no region", cc);
		int found = -1;
		for (int k = 0; k < CFG_NREGIONS; k++)
			if (strcmp(r, cfg_regions[k]) == 0)
				found = k;
		if (found < 0)
			fail_msg("country %s: %s is not a region", cc, r);
		per_region[found]++;
		n++;
		if (!iso_codes[i + 2])
			break;
	}
	assert_int_equal(n, 249);
	for (int k = 0; k < CFG_NREGIONS; k++)
		if (per_region[k] == 0)
			fail_msg("region %s has no country", cfg_regions[k]);
	/* every table entry is a country: the table holds 250 codes with XK */
	int known = 0;
	for (char a = 'A'; a <= 'Z'; a++)
		for (char b = 'A'; b <= 'Z'; b++) {
			char cc[3] = {a, b, '\0'};
			known += geo_country_region(cc) != NULL;
		}
	assert_int_equal(known, 250);
}

static void test_region_spot_checks(void **state)
{
	static const char *const cases[][2] = {
	    {"JP", "NEAS"}, {"DE", "WEU"},  {"BR", "SSAM"}, {"AU", "OC"},
	    {"ZA", "SAF"},  {"IN", "SAS"},  {"SG", "SEAS"}, {"EG", "NAF"},
	    {"AE", "ME"},   {"PL", "EEU"},  {"CO", "NSAM"}, {"MX", "WNAM"},
	    {"HT", "WNAM"}, {"US", "ENAM"}, {"CA", "ENAM"}, {"GB", "WEU"},
	    {"RU", "EEU"},  {"CN", "NEAS"}, {"KR", "NEAS"}, {"NZ", "OC"},
	    {"NG", "NAF"},  {"KE", "SAF"},  {"AR", "SSAM"}, {"PE", "NSAM"},
	    {"TR", "ME"},   {"XK", "EEU"},  {"VN", "SEAS"}, {"PK", "SAS"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		const char *r = geo_country_region(cases[i][0]);
		assert_non_null(r);
		if (strcmp(r, cases[i][1]) != 0)
			fail_msg("%s: %s, expected %s", cases[i][0], r,
				 cases[i][1]);
	}
	assert_string_equal(geo_country_region("jp"), "NEAS");
	assert_null(geo_country_region("EU"));
	assert_null(geo_country_region("ZZ"));
	assert_null(geo_country_region(""));
	assert_null(geo_country_region("J"));
	assert_null(geo_country_region("JPN"));
	assert_null(geo_country_region("1A"));
	assert_null(geo_country_region(NULL));
}

/* ---- overrides ------------------------------------------------------- */

static cfg_geo_network nets[6];
static cfg_cidr trusted[2];
static cfg_geo geo;

static void cidr(cfg_cidr *c, const char *s)
{
	const char *why = NULL;
	if (cfg_parse_cidr(s, c, &why, NULL, 0) != 0)
		fail_msg("bad cidr %s: %s", s, why);
	c->text = s;
}

static int setup(void **state)
{
	memset(nets, 0, sizeof(nets));
	/* order in the config does not matter: the longest prefix wins */
	cidr(&nets[0].cidr, "127.0.0.0/8");
	nets[0].country = "US";
	nets[0].region = "WNAM"; /* both given: both kept */
	cidr(&nets[1].cidr, "127.1.0.0/16");
	nets[1].country = "JP"; /* region derived: NEAS */
	cidr(&nets[2].cidr, "127.1.2.0/24");
	nets[2].region = "SAS"; /* region only: country "" */
	cidr(&nets[3].cidr, "2001:db8::/32");
	nets[3].country = "DE";
	cidr(&nets[4].cidr, "2001:db8:1::/48");
	nets[4].country = "IN";
	nets[4].region = "SAS";
	cidr(&nets[5].cidr, "8.8.8.0/24");
	nets[5].country = "JP";
	cidr(&trusted[0], "10.0.0.0/8");
	cidr(&trusted[1], "::1/128");
	geo = (cfg_geo){.networks = nets,
			.nnetworks = 6,
			.trusted_proxies = trusted,
			.ntrusted_proxies = 2};
	return 0;
}

static struct sockaddr_storage ss;

static const struct sockaddr *addr(const char *ip)
{
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(4321);
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(1234);
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return (const struct sockaddr *)&ss;
}

static void expect(const geo_db *db, const char *ip, const char *country,
		   const char *region, geo_source src)
{
	geo_result r;
	int rc = geo_lookup(db, addr(ip), &r);
	if (rc != (src == GEO_SRC_NONE ? -ENOENT : 0))
		fail_msg("%s: geo_lookup returned %d", ip, rc);
	if (strcmp(r.country, country) != 0 || strcmp(r.region, region) != 0 ||
	    r.source != src)
		fail_msg("%s: got %s/%s/%d, expected %s/%s/%d", ip, r.country,
			 r.region, (int)r.source, country, region, (int)src);
}

static void test_overrides(void **state)
{
	char err[256];
	geo_db *db = geo_open(&geo, err, sizeof(err));
	assert_non_null(db);
	assert_false(geo_has_database(db));
	expect(db, "127.9.9.9", "US", "WNAM", GEO_SRC_NETWORK);
	expect(db, "127.1.9.9", "JP", "NEAS", GEO_SRC_NETWORK);
	expect(db, "127.1.2.3", "", "SAS", GEO_SRC_NETWORK);
	expect(db, "::ffff:127.1.2.3", "", "SAS", GEO_SRC_NETWORK);
	expect(db, "::ffff:127.1.200.3", "JP", "NEAS", GEO_SRC_NETWORK);
	expect(db, "2001:db8:ffff::1", "DE", "WEU", GEO_SRC_NETWORK);
	expect(db, "2001:db8:1:2::1", "IN", "SAS", GEO_SRC_NETWORK);
	/* no database: anything else is unknown */
	expect(db, "192.0.2.1", "", "", GEO_SRC_NONE);
	expect(db, "2001:db9::1", "", "", GEO_SRC_NONE);
	/* a v4 network never matches a real v6 address and back */
	expect(db, "::127.1.2.3", "", "", GEO_SRC_NONE);
	geo_close(db);
}

static uint8_t prefix_of(const geo_db *db, const char *ip)
{
	geo_result r;
	geo_lookup(db, addr(ip), &r);
	return r.prefix;
}

static uint8_t split_of(const geo_db *db, const char *ip, unsigned source)
{
	return geo_split_prefix(db, addr(ip), source);
}

/* Regression (ECS scope): a lookup says which network its answer holds
 * for, and a subnet says how finely the overrides split it, so a Client
 * Subnet answer is scoped to the geo data rather than to the query's
 * source prefix alone. */
static void test_prefixes(void **state)
{
	geo_db *db = geo_open(&geo, NULL, 0);
	assert_non_null(db);
	/* the override that matched */
	assert_int_equal(prefix_of(db, "127.9.9.9"), 8);
	assert_int_equal(prefix_of(db, "127.1.9.9"), 16);
	assert_int_equal(prefix_of(db, "127.1.2.3"), 24);
	assert_int_equal(prefix_of(db, "::ffff:127.1.2.3"), 96 + 24);
	assert_int_equal(prefix_of(db, "2001:db8:1:2::1"), 48);
	/* nothing known (no database): 0 */
	assert_int_equal(prefix_of(db, "192.0.2.1"), 0);
	double lat, lon;
	uint8_t p = 99;
	assert_int_equal(
	    geo_lookup_point(db, addr("127.1.2.3"), &lat, &lon, &p), -ENOENT);
	assert_int_equal(p, 24);
	/* overrides strictly inside the subnet: the longest */
	assert_int_equal(split_of(db, "127.0.0.0", 15), 24);
	assert_int_equal(split_of(db, "127.1.0.0", 16), 24);
	assert_int_equal(split_of(db, "127.1.0.0", 20), 24);
	assert_int_equal(split_of(db, "127.1.2.0", 24), 0);
	assert_int_equal(split_of(db, "127.1.16.0", 20), 0);
	assert_int_equal(split_of(db, "126.0.0.0", 7), 24);
	assert_int_equal(split_of(db, "128.0.0.0", 1), 0);
	assert_int_equal(split_of(db, "8.8.0.0", 16), 24);
	assert_int_equal(split_of(db, "2001:db8::", 32), 48);
	assert_int_equal(split_of(db, "2001:db8::", 40), 48);
	assert_int_equal(split_of(db, "2001:db8:100::", 40), 0);
	/* IPv4 networks inside an IPv4-mapped subnet, in IPv6 bits */
	assert_int_equal(split_of(db, "::ffff:127.0.0.0", 96 + 15), 96 + 24);
	assert_int_equal(split_of(db, "::", 0), 96 + 24);
	/* without a database special ranges do not split anything */
	assert_int_equal(split_of(db, "192.0.0.0", 16), 0);
	assert_int_equal(geo_split_prefix(NULL, addr("127.0.0.0"), 8), 0);
	assert_int_equal(geo_split_prefix(db, NULL, 8), 0);
	geo_close(db);
}

static void test_lookup_args(void **state)
{
	geo_result r;
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	geo_db *db = geo_open(NULL, NULL, 0);
	assert_non_null(db);
	memset(&r, 0x55, sizeof(r));
	assert_int_equal(geo_lookup(db, (struct sockaddr *)&un, &r), -EINVAL);
	assert_string_equal(r.country, "");
	assert_int_equal(geo_lookup(db, NULL, &r), -EINVAL);
	assert_int_equal(geo_lookup(NULL, addr("1.2.3.4"), &r), -EINVAL);
	assert_int_equal(geo_lookup(db, addr("1.2.3.4"), NULL), -EINVAL);
	assert_int_equal(geo_lookup(db, addr("1.2.3.4"), &r), -ENOENT);
	assert_false(geo_is_trusted(db, addr("10.0.0.1")));
	geo_close(db);
	geo_close(NULL);
}

static void test_trusted(void **state)
{
	geo_db *db = geo_open(&geo, NULL, 0);
	assert_non_null(db);
	assert_true(geo_is_trusted(db, addr("10.1.2.3")));
	assert_true(geo_is_trusted(db, addr("::ffff:10.1.2.3")));
	assert_true(geo_is_trusted(db, addr("::1")));
	assert_false(geo_is_trusted(db, addr("11.0.0.1")));
	assert_false(geo_is_trusted(db, addr("::2")));
	assert_false(geo_is_trusted(db, NULL));
	geo_close(db);
}

static void test_open_errors(void **state)
{
	char err[256];
	cfg_geo g = {.database = "/nonexistent/meridian/geo.mmdb"};
	assert_null(geo_open(&g, err, sizeof(err)));
	assert_non_null(strstr(err, "geo.database /nonexistent/meridian/"));
	/* a file that is not a MaxMind DB */
	g.database = MERIDIAN_SOURCE_ROOT "/meson.build";
	assert_null(geo_open(&g, err, sizeof(err)));
	assert_non_null(strstr(err, "meson.build"));
	assert_null(geo_open(&g, NULL, 0));
}

/* ---- the real database ------------------------------------------------ */

static bool have_db(void)
{
	if (access(GEO_DB, R_OK) == 0)
		return true;
	print_message("test_geo: %s not found: run scripts/geo-data.sh; "
		      "database checks skipped (overrides and the table are "
		      "still tested)\n",
		      GEO_DB);
	return false;
}

static void test_database(void **state)
{
	char err[256];
	if (!have_db())
		skip();
	geo.database = GEO_DB;
	geo_db *db = geo_open(&geo, err, sizeof(err));
	if (!db)
		fail_msg("%s", err);
	assert_true(geo_has_database(db));
	expect(db, "9.9.9.9", "US", "ENAM", GEO_SRC_DATABASE);
	expect(db, "::ffff:9.9.9.9", "US", "ENAM", GEO_SRC_DATABASE);
	expect(db, "2001:4860:4860::8888", "US", "ENAM", GEO_SRC_DATABASE);
	expect(db, "193.0.6.139", "NL", "WEU", GEO_SRC_DATABASE);
	expect(db, "202.12.29.205", "AU", "OC", GEO_SRC_DATABASE);
	expect(db, "133.242.0.3", "JP", "NEAS", GEO_SRC_DATABASE);
	/* overrides come first */
	expect(db, "8.8.8.8", "JP", "NEAS", GEO_SRC_NETWORK);
	expect(db, "127.0.0.1", "US", "WNAM", GEO_SRC_NETWORK);
	/* special-purpose ranges are never looked up (this database puts
	 * 192.168.0.0/16, 172.16.0.0/12 and 198.51.100.0/24 in AU) */
	expect(db, "192.168.1.1", "", "", GEO_SRC_NONE);
	expect(db, "172.16.0.1", "", "", GEO_SRC_NONE);
	expect(db, "198.51.100.1", "", "", GEO_SRC_NONE);
	expect(db, "10.1.1.1", "", "", GEO_SRC_NONE);
	expect(db, "::ffff:192.168.1.1", "", "", GEO_SRC_NONE);
	expect(db, "fe80::1", "", "", GEO_SRC_NONE);
	expect(db, "fd00::1", "", "", GEO_SRC_NONE);
	expect(db, "::1", "", "", GEO_SRC_NONE);
	/* A country database has no coordinates (proximity needs a City
	 * database; the integration tests write one), nor has an override. */
	double lat, lon;
	assert_int_equal(
	    geo_lookup_point(db, addr("133.242.0.3"), &lat, &lon, NULL),
	    -ENOENT);
	assert_int_equal(
	    geo_lookup_point(db, addr("8.8.8.8"), &lat, &lon, NULL), -ENOENT);
	assert_int_equal(geo_lookup_point(db, NULL, &lat, &lon, NULL), -EINVAL);
	assert_int_equal(
	    geo_lookup_point(NULL, addr("8.8.8.8"), &lat, &lon, NULL), -EINVAL);
	geo_close(db);
}

typedef struct worker_arg {
	const geo_db *db;
	int bad;
} worker_arg;

static void *lookup_worker(void *p)
{
	worker_arg *a = p;
	struct sockaddr_in s = {.sin_family = AF_INET};
	geo_result r;
	inet_pton(AF_INET, "193.0.6.139", &s.sin_addr);
	for (int i = 0; i < 20000; i++)
		if (geo_lookup(a->db, (struct sockaddr *)&s, &r) != 0 ||
		    strcmp(r.country, "NL") != 0)
			a->bad++;
	return NULL;
}

static void test_database_threads(void **state)
{
	pthread_t t[4];
	worker_arg a[4];
	if (!have_db())
		skip();
	geo.database = GEO_DB;
	geo_db *db = geo_open(&geo, NULL, 0);
	assert_non_null(db);
	for (int i = 0; i < 4; i++) {
		a[i] = (worker_arg){.db = db};
		assert_int_equal(
		    pthread_create(&t[i], NULL, lookup_worker, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].bad, 0);
	}
	geo_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_region_table_complete),
	    cmocka_unit_test(test_region_spot_checks),
	    cmocka_unit_test_setup(test_overrides, setup),
	    cmocka_unit_test_setup(test_prefixes, setup),
	    cmocka_unit_test_setup(test_lookup_args, setup),
	    cmocka_unit_test_setup(test_trusted, setup),
	    cmocka_unit_test_setup(test_open_errors, setup),
	    cmocka_unit_test_setup(test_database, setup),
	    cmocka_unit_test_setup(test_database_threads, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
