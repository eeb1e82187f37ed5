/* cfg_load.h - read a YAML configuration into an immutable cfg_snapshot.
 *
 * Every problem found is appended to a cfg_diag as "file:line:col: message";
 * loading goes on after an error so that `meridian check` reports them all.
 * Warnings (a valid config that will not do what it likely means) go to
 * cfg_diag.warns as "file:line:col: warning: message" and fail nothing.
 * Return convention: 0 on success (*out set), -1 on any error (*out NULL).
 */
#ifndef MERIDIAN_CFG_LOAD_H
#define MERIDIAN_CFG_LOAD_H

#include "config/cfg_model.h"

typedef struct cfg_diag {
	char **msgs; /* each "file:line:col: message", malloc'd */
	/* Per message: for an error in an object from the API (cfg_json.h),
	 * the field path the message starts with, as "pools[gcp].origins[0]"
	 * in "pools[gcp].origins[0]: ..."; NULL for a file error. */
	char **fields;
	size_t n, cap;
	char **warns; /* "file:line:col: warning: message", malloc'd */
	size_t nwarn;
} cfg_diag;

/* Free everything in d and leave it empty (ready for another load). */
void cfg_diag_free(cfg_diag *d);

int cfg_load_file(const char *path, cfg_snapshot **out, cfg_diag *diag);
/* The file's bytes (NUL-terminated, malloc'd) as cfg_load_file reads them,
 * with the same errors and size limit. 0 or -1. */
int cfg_read_file(const char *path, char **out, size_t *len, cfg_diag *diag);
/* `name` is used as the file name in messages. */
int cfg_load_string(const char *name, const char *yaml, size_t len,
		    cfg_snapshot **out, cfg_diag *diag);

void cfg_snapshot_free(cfg_snapshot *snap);

/* One-line summary for `meridian check`, e.g.
 * "ok: 2 monitors, 3 pools (5 origins), 1 load balancer, 1 zone". */
void cfg_summary(const cfg_snapshot *snap, char *buf, size_t size);
/* The pool with this id, or NULL. `hint`: the index to try first (a
 * config change mostly keeps the order; SIZE_MAX for none). */
const cfg_pool *cfg_pool_by_id(const cfg_snapshot *cfg, const char *id,
			       size_t hint);
/* The origin of p with this name (unique in a pool), or NULL; `hint` as
 * above. */
const cfg_origin *cfg_origin_by_name(const cfg_pool *p, const char *name,
				     size_t hint);

#endif
