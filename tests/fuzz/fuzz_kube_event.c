/* fuzz_kube_event.c - libFuzzer harness for the ingress controller's
 * decoders (kube_obj.c) and the mapping (kube_map.c): what the Kubernetes
 * API sends is not trusted.
 *
 * Input: the first byte picks the kind (mod 3); the rest is split on '\n'
 * into watch-event lines, each decoded and applied to a store as the
 * controller does (the whole rest is also tried as a list body). Then the
 * store is mapped with class "meridian".
 *
 * Contract: decoding returns 0 with an object for ADDED/MODIFIED/DELETED
 * (a name, this kind), none for BOOKMARK/ERROR, or -1 with a reason; the
 * rule set has at least one rule, its last a catch-all, every request
 * matches some rule, and picking an endpoint of any rule never reads out
 * of bounds.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kube/kube_map.h"
#include "kube/kube_obj.h"
#include "tunnel/tun_ingress.h"
#include "tunnel/tun_rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	kube_kind k = (kube_kind)(data[0] % KUBE_NKINDS);
	const char *p = (const char *)data + 1;
	size_t len = size - 1;
	kube_store s = {0};
	kube_list l;
	const char *why = NULL;
	if (kube_list_decode(k, p, len, &l, &why) == 0) {
		CHECK(l.n <= KUBE_MAX_OBJECTS);
		CHECK(!l.cont || strlen(l.cont) <= KUBE_MAX_CONTINUE);
		kube_store_replace(&s, k, &l);
	} else {
		CHECK(why != NULL);
	}
	kube_list_free(&l);
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && p[i] != '\n')
			continue;
		kube_event ev;
		why = NULL;
		int rc = kube_event_decode(k, p + start, i - start, &ev, &why);
		start = i + 1;
		if (rc < 0) {
			CHECK(why != NULL && !ev.obj);
			continue;
		}
		if (ev.type == KUBE_EV_BOOKMARK || ev.type == KUBE_EV_ERROR) {
			CHECK(!ev.obj);
			continue;
		}
		CHECK(ev.obj && ev.obj->name && ev.obj->kind == k);
		if (ev.type == KUBE_EV_DELETED) {
			(void)kube_store_del(&s, k, ev.obj->name);
			kube_obj_free(ev.obj);
		} else {
			kube_store_put(&s, ev.obj);
		}
	}
	kube_problems pr = {0};
	tun_ruleset *rs = kube_map_build(&s, "ns", "meridian", size & 1, &pr);
	CHECK(rs && rs->nrules >= 1);
	const tun_rule *last = &rs->rules[rs->nrules - 1];
	CHECK(!last->hostname && !last->path);
	CHECK(tun_ingress_match(rs->rules, rs->nrules, "a.example.com", 13,
				"/x/y?z", 6) >= 0);
	for (size_t i = 0; i < rs->nrules; i++) {
		tun_svc_addr a;
		if (tun_ruleset_pick(rs, i, &a) == 0)
			CHECK(a.len > 0 && a.len <= sizeof(a.ss));
	}
	tun_ruleset_unref(rs);
	kube_problems_free(&pr);
	kube_store_clear(&s);
	return 0;
}
