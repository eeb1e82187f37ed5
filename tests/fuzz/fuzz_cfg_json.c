/* fuzz_cfg_json.c - libFuzzer harness for what the admin API does with a
 * client's JSON: cfg_load_merged (JSON -> config through the key tables,
 * merged with a small file), cfg_json_render and cfg_json_patch.
 *
 * Input: one byte choosing the kind ('0' monitor, '1' pool, anything else a
 * load balancer), then the object's JSON text. Besides crashes, leaks and
 * sanitizer reports it checks the bridge's contract: loading fails exactly
 * when errors were reported; an accepted object renders to JSON that loads
 * again and renders the same (the API's GET -> PUT round trip); PATCH with
 * any object yields an object.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "config/cfg_json.h"
#include "config/cfg_load.h"

/* What the object may refer to: monitor m, pool p. */
static const char FILE_YAML[] =
    "monitors: [{id: m, type: tcp}]\n"
    "pools: [{id: p, origins: [{name: o, address: 127.0.0.1}]}]\n";

static const void *find(const cfg_snapshot *s, cfg_json_kind k, const char *id)
{
	if (k == CFG_JSON_MONITOR) {
		for (size_t i = 0; i < s->nmonitors; i++)
			if (!strcmp(s->monitors[i].id, id))
				return &s->monitors[i];
	} else if (k == CFG_JSON_POOL) {
		for (size_t i = 0; i < s->npools; i++)
			if (!strcmp(s->pools[i].id, id))
				return &s->pools[i];
	} else {
		for (size_t i = 0; i < s->nlbs; i++)
			if (!strcmp(s->lbs[i].id, id))
				return &s->lbs[i];
	}
	return NULL;
}

static cfg_snapshot *load(cfg_json_kind k, const char *json)
{
	cfg_json_obj obj = {.kind = k, .id = "fz", .json = json};
	cfg_snapshot *s = NULL;
	cfg_diag d = {0};
	int rc = cfg_load_merged("f.yaml", FILE_YAML, sizeof(FILE_YAML) - 1,
				 &obj, 1, &s, &d);
	CHECK((rc == 0) == (d.n == 0));
	CHECK((rc == 0) == (s != NULL));
	for (size_t i = 0; i < d.n; i++) {
		const char *field = NULL;
		CHECK(cfg_json_diag_message(&d, i, &field) != NULL);
	}
	cfg_diag_free(&d);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 1 << 16)
		return 0;
	cfg_json_kind k = data[0] == '0'   ? CFG_JSON_MONITOR
			  : data[0] == '1' ? CFG_JSON_POOL
					   : CFG_JSON_LB;
	char *json = malloc(size);
	memcpy(json, data + 1, size - 1);
	json[size - 1] = '\0';

	cfg_snapshot *s = load(k, json);
	if (s) {
		const void *obj = find(s, k, "fz");
		CHECK(obj != NULL);
		json_t *r1 = cfg_json_render(k, obj);
		cfg_json_strip_readonly(k, r1);
		char *t1 = json_dumps(r1, JSON_COMPACT | JSON_SORT_KEYS |
					      JSON_REAL_PRECISION(17));
		cfg_snapshot *s2 = load(k, t1);
		CHECK(s2 != NULL);
		json_t *r2 = cfg_json_render(k, find(s2, k, "fz"));
		cfg_json_strip_readonly(k, r2);
		CHECK(json_equal(r1, r2));
		json_decref(r2);
		cfg_snapshot_free(s2);
		free(t1);
		json_decref(r1);
		cfg_snapshot_free(s);
	}

	json_t *patch = json_loads(json, JSON_DECODE_ANY, NULL);
	json_t *stored = json_pack("{s:s, s:[s]}", "name", "x.example.com",
				   "default_pools", "p");
	json_t *merged = cfg_json_patch(stored, patch);
	CHECK((merged != NULL) == json_is_object(patch));
	json_decref(merged);
	json_decref(stored);
	json_decref(patch);
	free(json);
	return 0;
}
