/* clu_key.h - cluster mode's key layout and values (SPEC §4.9), pure: no
 * I/O (docs/ARCHITECTURE.md, "Cluster mode").
 *
 *   <prefix>/objects/<kind>/<id>                  the store's row as JSON
 *   <prefix>/nodes/<name>                         {name, region, version,
 *                                                 started}
 *   <prefix>/health/<name>/<pool id>/<origin>     {healthy, state, rtt_ms,
 *                                                 reason, time}
 *
 * <kind> is monitors, pools or load_balancers. Segments taken from names
 * are escaped ('%' as %25, '/' as %2F), so a name cannot reach outside
 * its key. Returned strings are malloc'd (free them).
 */
#ifndef MERIDIAN_CLU_KEY_H
#define MERIDIAN_CLU_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define CLU_SEG_MAX 256 /* an unescaped segment, with its NUL */

/* "monitors", "pools", "load_balancers". */
const char *clu_kind_seg(store_kind k);

/* "<prefix>/objects/", "<prefix>/nodes/", "<prefix>/health/". */
char *clu_key_dir(const char *prefix, const char *dir);
char *clu_key_object(const char *prefix, store_kind k, const char *id);
char *clu_key_node(const char *prefix, const char *name);
/* origin NULL: "<prefix>/health/<name>/" (a node's reports). */
char *clu_key_health(const char *prefix, const char *node, const char *pool,
		     const char *origin);
/* The range_end of every key that starts with p: p with its last byte
 * (not 0xff) plus one. len is p's length; the result has the same. */
char *clu_key_range_end(const char *p, size_t len);

typedef enum clu_key_type {
	CLU_KEY_OTHER = 0, /* not ours, or malformed */
	CLU_KEY_OBJECT,
	CLU_KEY_NODE,
	CLU_KEY_HEALTH,
} clu_key_type;

typedef struct clu_key_parts {
	clu_key_type type;
	store_kind kind;     /* objects */
	char a[CLU_SEG_MAX]; /* objects: the id; nodes, health: the node */
	char pool[CLU_SEG_MAX], origin[CLU_SEG_MAX]; /* health */
} clu_key_parts;

/* Split key[0..len) under prefix; the type says what it is. */
clu_key_type clu_key_parse(const char *prefix, const char *key, size_t len,
			   clu_key_parts *out);

/* Base64 (RFC 4648, with padding), as etcd's JSON gateway carries keys and
 * values. decode: NULL for malformed input; *outlen the length (the
 * result is NUL-terminated too). */
char *clu_b64_encode(const void *p, size_t n);
char *clu_b64_decode(const char *s, size_t n, size_t *outlen);

/* An object's value: {"zone", "created_on", "modified_on", "body"}, body
 * the JSON text the store keeps (embedded as JSON). NULL when body is not
 * JSON. */
char *clu_obj_encode(const char *zone, const char *body, const char *created,
		     const char *modified);

typedef struct clu_obj {
	char *zone; /* NULL: none */
	char *body; /* compact JSON text */
	char created_on[STORE_TIME_SZ], modified_on[STORE_TIME_SZ];
} clu_obj;
/* 0, or -EINVAL (not such a value). Free with clu_obj_clear. */
int clu_obj_decode(const char *v, size_t n, clu_obj *out);
void clu_obj_clear(clu_obj *o);

/* A node's value. started: RFC 3339 UTC. */
char *clu_node_encode(const char *name, const char *region, const char *version,
		      const char *started);

/* An origin's report as this node sees it. healthy: -1 null (no verdict),
 * 0, 1. rtt_ms < 0: null. time_ms: ms since the epoch. */
typedef struct clu_report {
	int healthy;
	const char *state;
	double rtt_ms;
	const char *reason;
	uint64_t time_ms;
} clu_report;
char *clu_report_encode(const clu_report *r);

#endif
