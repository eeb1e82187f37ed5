/* cfg_json.h - the configuration model and the admin API's JSON
 * (Cloudflare's Load Balancing shapes: monitor, pool, load balancer).
 *
 * The running configuration has two sources: the YAML file, and the
 * objects created through the API, kept as JSON bodies. cfg_load_merged()
 * builds one snapshot from both. Each body becomes a cfg_node tree
 * (objects → mappings, arrays → lists, strings, numbers and booleans →
 * scalars, null → "no value") appended to the file's monitors, pools or
 * load_balancers, so the same key tables parse, default and check it, and
 * references resolve across both sources. File errors read
 * "file:line:col: message"; an API object's errors name the object and the
 * field, "pools[gcp].origins[0].weight: 1.5 is out of range 0..1" (0-based
 * list indexes; cfg_diag.fields holds the path). ${VAR} is not expanded in
 * API objects: a client must not read the server's environment.
 *
 * cfg_json_render() goes the other way: an object of a snapshot as
 * Cloudflare's JSON, walked from the same tables, every key present with
 * its default. Loading a rendered object gives an equal object.
 *
 * Pure (an origin given as a host name is resolved at load, as for the
 * file). Return convention: 0 / -1 as cfg_load.h; every json_t returned
 * belongs to the caller (json_decref).
 */
#ifndef MERIDIAN_CFG_JSON_H
#define MERIDIAN_CFG_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "config/cfg_load.h"
#include "config/cfg_model.h"

typedef enum cfg_json_kind {
	CFG_JSON_MONITOR = 0,
	CFG_JSON_POOL,
	CFG_JSON_LB,
} cfg_json_kind;

/* One object created through the API. */
typedef struct cfg_json_obj {
	cfg_json_kind kind;
	/* The API's id; replaces any "id" in the body. A load balancer's id
	 * is not its name (the hostname); NULL: the id defaults to the name,
	 * as in the file. Monitors and pools need one. */
	const char *id;
	const char *json;    /* the body as text, NUL-terminated, or */
	const json_t *value; /* the body already parsed (wins over json) */
} cfg_json_obj;

/* The YAML file (name for messages; yaml NULL or empty: no file, every
 * edge, api... key at its default) and the API's objects, in one snapshot.
 * Each object goes after the file's objects of its kind, in the order
 * given, and is marked from_api. Read-only fields a client may echo from a
 * GET (cfg_json_strip_readonly) are ignored; any other unknown field is an
 * error. Every error of both sources goes to diag; any error: -1, *out
 * NULL. */
int cfg_load_merged(const char *name, const char *yaml, size_t yaml_len,
		    const cfg_json_obj *objs, size_t nobjs, cfg_snapshot **out,
		    cfg_diag *diag);

/* An object of a snapshot (a const cfg_monitor *, cfg_pool * or cfg_lb *
 * as kind says) as Cloudflare's JSON: "id" first, then every key of its
 * table in table order with its value or default. Durations in whole
 * seconds as integers (a monitor's "1500ms" stays a string), references as
 * ids, enums as their names, unset strings and references as null, keys
 * with a "has" flag (latitude, longitude) omitted when unset, rules as
 * written. Never NULL (aborts when out of memory). Weights and coordinates
 * are reals: dump with JSON_REAL_PRECISION(15) so 0.1 prints as 0.1, not
 * 0.10000000000000001 (both read back as the same double). */
json_t *cfg_json_render(cfg_json_kind kind, const void *obj);
json_t *cfg_json_monitor(const cfg_monitor *m);
json_t *cfg_json_pool(const cfg_pool *p);
json_t *cfg_json_lb(const cfg_lb *lb);

/* Whether key is a read-only field of the object (id, created_on,
 * modified_on; a pool's healthy, disabled_at, networks and its origins'
 * disabled_at; a load balancer's zone_name). */
bool cfg_json_is_readonly(cfg_json_kind kind, const char *key);
/* Remove the read-only fields from a body, in place (before storing it). */
void cfg_json_strip_readonly(cfg_json_kind kind, json_t *body);

/* PATCH, as Cloudflare does it: a copy of stored with every top-level field
 * of patch replacing the stored one (or added). Nested objects and arrays
 * are replaced whole, not merged ("origins" or "session_affinity_attributes"
 * as given); null sets the field back to its default. NULL when either is
 * not an object. */
json_t *cfg_json_patch(const json_t *stored, const json_t *patch);

/* The i-th error of d for an API response: the message without its field
 * ("1.5 is out of range 0..1"), with *field (if not NULL) set to the field
 * path ("pools[gcp].origins[0].weight"), or NULL for a file error (whose
 * message is the whole line). */
const char *cfg_json_diag_message(const cfg_diag *d, size_t i,
				  const char **field);

/* s as a JSON string, never NULL (aborts when out of memory): each byte
 * that is not part of well-formed UTF-8 becomes '?' (json_string() would
 * give NULL). NULL: json null. For text that may hold a client's or the
 * environment's bytes, such as an error message quoting them. */
json_t *cfg_json_string(const char *s);
/* Drop an incomplete UTF-8 sequence from the end of s, as a cut to a
 * buffer's size (snprintf) leaves one; complete text is left alone. */
void cfg_json_utf8_cut(char *s);

/* "monitor", "pool", "load balancer". */
const char *cfg_json_kind_name(cfg_json_kind kind);

#endif
