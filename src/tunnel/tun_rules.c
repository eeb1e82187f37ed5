/* tun_rules.c - rule sets; see tun_rules.h. */
#include "tunnel/tun_rules.h"

#include <stdlib.h>

#include "core/core_arena.h"
#include "core/core_util.h"

tun_ruleset *tun_ruleset_new(core_arena *a, const tun_rule *rules, size_t n,
			     const tun_svc_addr *addr, const char *origin)
{
	tun_ruleset *rs = xcalloc(1, sizeof(*rs));
	rs->arena = a;
	rs->rules = rules;
	rs->nrules = n;
	rs->addr = addr;
	rs->next = xcalloc(n ? n : 1, sizeof(*rs->next));
	rs->refs = 1;
	rs->origin = origin ? origin : "the file";
	return rs;
}

void tun_ruleset_ref(tun_ruleset *rs)
{
	rs->refs++;
}

void tun_ruleset_unref(tun_ruleset *rs)
{
	if (!rs || --rs->refs)
		return;
	if (rs->arena)
		core_arena_free(rs->arena);
	free(rs->next);
	free(rs);
}

int tun_ruleset_pick(tun_ruleset *rs, size_t i, tun_svc_addr *out)
{
	if (i >= rs->nrules)
		return -1;
	const tun_service *s = &rs->rules[i].svc;
	if (s->kind == TUN_SVC_HTTP) {
		if (!rs->addr || !rs->addr[i].len)
			return -1;
		*out = rs->addr[i];
		return 0;
	}
	if (s->kind != TUN_SVC_ENDPOINTS || !s->neps)
		return -1;
	*out = s->eps[rs->next[i]++ % s->neps];
	return 0;
}
