/* lb_locate.c - see lb_locate.h. */
#include "lb/lb_locate.h"

#include <string.h>

unsigned lb_locate_needs(const cfg_lb *lb)
{
	switch (lb_steer_policy(lb)) {
	case CFG_STEER_GEO:
		return LB_LOC_NEED_AREA;
	case CFG_STEER_PROXIMITY:
		return LB_LOC_NEED_POINT;
	default:
		return 0;
	}
}

bool lb_locate_prefers_ecs(const cfg_lb *lb)
{
	switch (lb->location_strategy.prefer_ecs) {
	case CFG_ECS_ALWAYS:
		return true;
	case CFG_ECS_PROXIMITY:
		return lb_steer_policy(lb) == CFG_STEER_PROXIMITY;
	case CFG_ECS_GEO:
		return lb_steer_policy(lb) == CFG_STEER_GEO;
	case CFG_ECS_NEVER:
	default:
		return false;
	}
}

bool lb_locate_usable(const lb_loc *l, unsigned need)
{
	if ((need & LB_LOC_NEED_AREA) && !l->country[0] && !l->region[0])
		return false;
	if ((need & LB_LOC_NEED_POINT) && !l->has_point)
		return false;
	return true;
}

lb_loc_source lb_locate(const cfg_lb *lb, bool has_ecs, lb_loc_lookup_fn fn,
			void *arg, lb_loc *out, bool *ecs_consulted)
{
	unsigned need = lb_locate_needs(lb);
	memset(out, 0, sizeof(*out));
	*ecs_consulted = false;
	if (!need || !fn)
		return LB_LOC_POP;
	if (has_ecs && lb_locate_prefers_ecs(lb)) {
		*ecs_consulted = true;
		fn(arg, LB_LOC_ECS, need, out);
		if (lb_locate_usable(out, need))
			return LB_LOC_ECS;
		memset(out, 0, sizeof(*out));
	}
	if (lb->location_strategy.mode == CFG_LOC_RESOLVER_IP) {
		fn(arg, LB_LOC_RESOLVER, need, out);
		if (lb_locate_usable(out, need))
			return LB_LOC_RESOLVER;
		memset(out, 0, sizeof(*out));
	}
	return LB_LOC_POP;
}

void lb_locate_apply(const lb_loc *l, lb_steer_ctx *ctx)
{
	ctx->country = l->country[0] ? l->country : NULL;
	ctx->region = l->region[0] ? l->region : NULL;
	ctx->has_point = l->has_point;
	ctx->lat = l->lat;
	ctx->lon = l->lon;
}
