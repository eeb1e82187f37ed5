/* api_regions.h - Cloudflare's Regions API (`/accounts/{a}/load_balancers/
 * regions[/{region}]`) over the built-in country -> region table
 * (geo_region.c): which countries a region's region_pools serve, and which
 * region a country's clients count as. Read-only; pure. */
#ifndef MERIDIAN_API_REGIONS_H
#define MERIDIAN_API_REGIONS_H

#include <jansson.h>

/* {"iso_standard": ..., "regions": [{"region_code", "countries":
 * [{"country_code_a2"}...]}...]}: every region, or only `region` (NULL:
 * all), with only the countries equal to `country` (NULL: all; two
 * letters, any case). A region left without countries by the filter is
 * left out. NULL when `region` names no region. */
json_t *api_regions_json(const char *region, const char *country);

#endif
