/* health_status.h - the health table operators read (`meridian ctl health`,
 * the admin status endpoint): per pool and origin the state, the reason,
 * the RTT average and since when. */
#ifndef MERIDIAN_HEALTH_STATUS_H
#define MERIDIAN_HEALTH_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include "config/cfg_model.h"
#include "lb/lb_state.h"

/* Print the health of every pool of cfg and of its origins into buf: a text
 * table, or (json) one JSON object
 *   {"pools":[{"id","name","enabled","monitor","health","healthy_origins",
 *     "enabled_origins","minimum_origins","since","origins":[{"name",
 *     "address","port","enabled","health","reason","rtt_ms","since",
 *     "tls_not_after","checks","failures"}]}]}
 * where since and tls_not_after are ISO-8601 UTC
 * ("2024-05-01T10:00:00.123Z") or null, and rtt_ms a number or null. Takes each
 * origin's lock briefly; callable from any thread while the checker runs.
 * Returns the length of the whole output like snprintf (buf holds a
 * NUL-terminated prefix when it is >= size; buf may be NULL when size is
 * 0), or -EOVERFLOW beyond INT_MAX. */
int health_format_status(const cfg_snapshot *cfg,
			 const lb_origin_state *ostates,
			 const lb_pool_state *pstates, char *buf, size_t size,
			 bool json);
/* The same in one pass into a buffer that grows to fit: malloc'd,
 * NUL-terminated, its length in *len. */
char *health_format_status_alloc(const cfg_snapshot *cfg,
				 const lb_origin_state *ostates,
				 const lb_pool_state *pstates, bool json,
				 size_t *len);

#endif
