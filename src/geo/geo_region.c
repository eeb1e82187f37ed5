/* geo_region.c - the built-in country -> Cloudflare region table.
 *
 * Cloudflare's Regions API maps countries (and, for the US and Canada,
 * states and provinces) to its 13 load-balancing regions but publishes the
 * full list only through the API. What its documentation shows is followed
 * here: the example response for WNAM lists Mexico and Haiti with the
 * western US states and Canadian provinces. The rest is derived from
 * geography (UN M49 sub-regions, then the nearest region):
 *
 *   - US and CA: Cloudflare splits them by state/province (WNAM: AZ, CA,
 *     CO, HI, MN, MO, NV, OR, TX, ...; AB, BC, ...), which the country alone
 *     cannot do. Both map to ENAM, where most of their people live. Use a
 *     geo.networks override (region: WNAM) for western address ranges.
 *   - Central America goes with Mexico (WNAM); the Caribbean with the
 *     eastern US (ENAM), except Haiti (WNAM, as documented) and the islands
 *     off Venezuela (Aruba, Curacao, Bonaire, Trinidad and Tobago: NSAM).
 *   - South America: NSAM is the north-west (Colombia, Venezuela, Ecuador,
 *     Peru, the Guianas); Brazil, Bolivia and the Southern Cone are SSAM.
 *   - Europe: the EU's western members, the Nordics and the British Isles
 *     are WEU; the former Eastern bloc, the Balkans, Greece, Cyprus, Russia
 *     and Central Asia are EEU.
 *   - ME: the Gulf, the Levant, Iraq, Iran, Turkey and the Caucasus.
 *   - Africa is split at the equator: NAF (north and west, the Sahel, the
 *     Horn) and SAF (central, east and south, Indian Ocean islands).
 *   - SAS: the Indian subcontinent and Afghanistan; SEAS: ASEAN and Timor;
 *     NEAS: China, Japan, the Koreas, Taiwan, Mongolia.
 *   - OC: Australia, New Zealand, the Pacific islands and Antarctica.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "geo/geo.h"

static const char *const region_names[] = {
    "WNAM", "ENAM", "WEU", "EEU", "NSAM", "SSAM", "OC",
    "ME",   "NAF",  "SAF", "SAS", "SEAS", "NEAS",
};

/* Countries per region, same order as region_names. */
static const char *const region_countries[] = {
    /* WNAM */ "MX HT BZ GT SV HN NI CR PA",
    /* ENAM */
    "US CA PR VI BM GL PM BS CU JM DO KY TC AG AI BB BL DM GD GP KN LC MF "
    "MQ MS SX VC VG",
    /* WEU */
    "AD AT BE CH DE DK ES FI FO FR GB GG GI IE IM IS IT JE LI LU MC MT NL "
    "NO PT SE SJ SM VA AX",
    /* EEU */
    "AL BA BG BY CZ EE GR HR HU LT LV MD ME MK PL RO RS RU SI SK UA CY KZ "
    "KG UZ TJ TM XK",
    /* NSAM */ "CO VE EC PE GY SR GF TT AW CW BQ",
    /* SSAM */ "BR AR CL UY PY BO FK GS",
    /* OC */
    "AQ AS AU CK FJ FM GU HM KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO "
    "TV UM VU WF WS",
    /* ME */ "AE AM AZ BH GE IL IQ IR JO KW LB OM PS QA SA SY TR YE",
    /* NAF */
    "DZ EG EH LY MA SD SS TN MR ML NE TD SN GM GW GN SL LR CI BF GH TG BJ "
    "NG CV CM CF ET ER DJ SO",
    /* SAF */
    "AO BI BW CD CG GA GQ KE KM LS MG MU MW MZ NA RE RW SC SH ST SZ TZ UG "
    "YT ZA ZM ZW TF BV",
    /* SAS */ "AF BD BT IN IO LK MV NP PK",
    /* SEAS */ "BN CC CX ID KH LA MM MY PH SG TH TL VN",
    /* NEAS */ "CN HK JP KP KR MN MO TW",
};

_Static_assert(sizeof(region_names) == sizeof(region_countries),
	       "one country list per region");
_Static_assert(sizeof(region_names) / sizeof(*region_names) == GEO_NREGIONS,
	       "GEO_NREGIONS is the table's");

/* region index + 1 per country code (AA..ZZ); 0 = unknown. */
static uint8_t table[26 * 26];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_build(void)
{
	for (size_t r = 0; r < sizeof(region_names) / sizeof(*region_names);
	     r++) {
		const char *s = region_countries[r];
		for (size_t i = 0; s[i]; i += s[i + 2] ? 3 : 2)
			table[(s[i] - 'A') * 26 + (s[i + 1] - 'A')] =
			    (uint8_t)(r + 1);
	}
}

static int upper(char c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 'A';
	return c;
}

const char *geo_country_region(const char *country)
{
	if (!country)
		return NULL;
	int a = upper(country[0]);
	int b = a ? upper(country[1]) : 0;
	if (a < 'A' || a > 'Z' || b < 'A' || b > 'Z' || country[2])
		return NULL;
	pthread_once(&table_once, table_build);
	uint8_t r = table[(a - 'A') * 26 + (b - 'A')];
	return r ? region_names[r - 1] : NULL;
}

const char *geo_region_code(size_t i)
{
	return i < GEO_NREGIONS ? region_names[i] : NULL;
}

const char *geo_region_countries(size_t i)
{
	return i < GEO_NREGIONS ? region_countries[i] : NULL;
}
