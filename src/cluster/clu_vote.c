/* clu_vote.c - an origin's health by its pool's check regions (clu_vote.h). */
#include "cluster/clu_vote.h"

#include <string.h>

#include "config/cfg_values.h"

lb_health clu_vote(const clu_vote_report *r, size_t n, uint32_t check)
{
	uint32_t up[CFG_NREGIONS] = {0}, down[CFG_NREGIONS] = {0};
	for (size_t i = 0; i < n; i++) {
		int g = r[i].region;
		if (g < 0 || g >= CFG_NREGIONS || !(check & (1u << g)) ||
		    r[i].healthy < 0)
			continue;
		if (r[i].healthy)
			up[g]++;
		else
			down[g]++;
	}
	uint32_t healthy = 0, unhealthy = 0;
	for (int g = 0; g < CFG_NREGIONS; g++) {
		healthy += up[g] > down[g];
		unhealthy += down[g] > up[g];
	}
	if (healthy > unhealthy)
		return LB_HEALTH_HEALTHY;
	if (unhealthy > healthy)
		return LB_HEALTH_UNHEALTHY;
	return LB_HEALTH_UNKNOWN;
}

int clu_vote_region_index(const char *name)
{
	for (int g = 0; name && g < CFG_NREGIONS; g++)
		if (!strcmp(name, cfg_regions[g]))
			return g;
	return -1;
}

uint32_t clu_vote_regions(const char *const *names, size_t n)
{
	uint32_t bits = 0;
	for (size_t i = 0; i < n; i++) {
		int g = clu_vote_region_index(names[i]);
		if (g >= 0)
			bits |= 1u << g;
	}
	return bits;
}
