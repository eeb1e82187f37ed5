/* api_regions.c - the Regions API; see api_regions.h. */
#include "api/api_regions.h"

#include <string.h>
#include <strings.h>

#include "geo/geo.h"

json_t *api_regions_json(const char *region, const char *country)
{
	bool found = false;
	json_t *regions = json_array();
	for (size_t i = 0; i < GEO_NREGIONS; i++) {
		const char *code = geo_region_code(i);
		if (region && strcmp(region, code) != 0)
			continue;
		found = true;
		json_t *countries = json_array();
		for (const char *s = geo_region_countries(i); *s;
		     s += s[2] ? 3 : 2) {
			char cc[3] = {s[0], s[1], 0};
			if (country && strcasecmp(country, cc) != 0)
				continue;
			json_t *c = json_object();
			json_object_set_new(c, "country_code_a2",
					    json_string(cc));
			json_array_append_new(countries, c);
		}
		if (country && json_array_size(countries) == 0) {
			json_decref(countries);
			continue;
		}
		json_t *r = json_object();
		json_object_set_new(r, "region_code", json_string(code));
		json_object_set_new(r, "countries", countries);
		json_array_append_new(regions, r);
	}
	if (region && !found) {
		json_decref(regions);
		return NULL;
	}
	json_t *out = json_object();
	json_object_set_new(out, "iso_standard",
			    json_string("Country codes follow ISO 3166-1 "
					"alpha-2"));
	json_object_set_new(out, "regions", regions);
	return out;
}
