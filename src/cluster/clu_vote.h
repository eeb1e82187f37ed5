/* clu_vote.h - an origin's health by its pool's check regions (SPEC 4.2:
 * in cluster mode each edge reports what it sees, and an origin is healthy
 * when a majority of the pool's check regions say so). Pure. */
#ifndef MERIDIAN_CLU_VOTE_H
#define MERIDIAN_CLU_VOTE_H

#include <stddef.h>
#include <stdint.h>

#include "lb/lb_state.h"

/* One live node's verdict on an origin: its edge.region (an index into
 * cfg_regions; -1: none or unknown) and healthy 1, unhealthy 0, or -1 (no
 * verdict yet). */
typedef struct clu_vote_report {
	int region;
	int healthy;
} clu_vote_report;

/* check: the pool's check_regions as bits (1 << index in cfg_regions).
 * Each check region's nodes decide its verdict by majority (a tie: none);
 * the regions with a verdict decide the origin's by majority. A tie, or no
 * region with a verdict: LB_HEALTH_UNKNOWN (the edge goes by its own
 * checks). Reports from nodes outside the check regions do not count. */
lb_health clu_vote(const clu_vote_report *r, size_t n, uint32_t check);

/* The bits of a pool's check_regions (names as cfg_regions). */
uint32_t clu_vote_regions(const char *const *names, size_t n);
/* A region name's index in cfg_regions, -1 when it is none. */
int clu_vote_region_index(const char *name);

#endif
