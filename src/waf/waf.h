/* waf.h - the managed rules (waf.managed): the OWASP Core Rule Set run by
 * the ModSecurity v3 engine (libmodsecurity3) on proxied requests.
 *
 * Three objects, after the library's own life cycle:
 *  - waf_rules: a loaded rule set (ModSecurity's RulesSet), built by
 *    edge_snapshot_new off the request path and shared read-only by every
 *    worker; reference-counted so a snapshot built by an API write can keep
 *    the previous one's (loading the CRS takes 100-200 ms). Loading is not
 *    thread-safe in the library (its parser has globals), so loads are
 *    serialised here.
 *  - waf_engine: one ModSecurity instance per worker thread. It holds the
 *    persistent collections (CRS's IP and GLOBAL ones), which the library
 *    does not lock well enough to share between threads.
 *  - waf_tx: one request's transaction: connection, URI, head, then the
 *    body (or none), then the verdict.
 * See docs/ARCHITECTURE.md ("Managed rules").
 */
#ifndef MERIDIAN_WAF_H
#define MERIDIAN_WAF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cfg_model.h"
#include "http/http1_parse.h"

typedef struct waf_rules waf_rules;
typedef struct waf_engine waf_engine;
typedef struct waf_tx waf_tx;

/* The directives the edge writes in place of crs-setup.conf (engine mode,
 * body access and limit, the CRS variables), NUL-terminated, malloc'd.
 * Pure: unit-tested. */
char *waf_setup_text(const cfg_waf_managed *m);

/* Load the rule set m names: the setup, <crs>/rules/ *.conf in name order,
 * m->rules_files, then the removals of m->disabled_rules. NULL with a
 * message in err ("file:line:col: waf.managed: ...") on any failure. */
waf_rules *waf_rules_load(const cfg_waf_managed *m, char *err, size_t errlen);
/* Whether r was loaded from the same keys as m (its files may have changed
 * since: a reload reads them again, an API write keeps r). */
bool waf_rules_same(const waf_rules *r, const cfg_waf_managed *m);
/* Rules loaded (what the library counted), for /metrics. */
uint32_t waf_rules_count(const waf_rules *r);
void waf_rules_ref(const waf_rules *r);
void waf_rules_unref(const waf_rules *r); /* NULL is fine */

/* A worker's engine (made on the worker's first managed request). Both
 * are serialised process-wide; free an engine only when no other thread
 * uses the library (libxml2's cleanup is global): the edge frees them
 * after joining its workers. */
waf_engine *waf_engine_new(void);
void waf_engine_free(waf_engine *e); /* NULL is fine */

/* What the rules made of a request. */
typedef struct waf_verdict {
	bool block;	 /* the rules deny it (mode block only) */
	bool detected;	 /* CRS's blocking evaluation (949xxx) matched: denied
			  * in block mode, only logged in detect mode */
	uint16_t status; /* block: the answer's status (403 unless the rule
			  * said otherwise) */
} waf_verdict;

/* The connection a request came on, as text and ports. */
typedef struct waf_conn {
	const char *client_ip;
	int client_port;
	const char *server_ip;
	int server_port;
} waf_conn;

/* Start a transaction for one request on worker engine e with rules r
 * (which the transaction holds a reference to). */
waf_tx *waf_tx_begin(waf_engine *e, const waf_rules *r, const waf_conn *c);
/* The request head: method, target, "1.0" / "1.1" / "2.0", fields.
 * Returns true when the rules already decided to deny it (phase 1). */
bool waf_tx_head(waf_tx *t, const http_str *method, const http_str *target,
		 const char *version, const http1_header *h, uint32_t nh,
		 waf_verdict *v);
/* Request body bytes, decoded (as many calls as needed). */
void waf_tx_body(waf_tx *t, const char *p, size_t n);
/* The body is in (or there is none): phase 2, the verdict. */
void waf_tx_end(waf_tx *t, waf_verdict *v);
/* The ids of the rules that matched (space-separated, at most 8, the
 * deciding one last), for the access log; "" when none. */
const char *waf_tx_rules(const waf_tx *t);
void waf_tx_free(waf_tx *t); /* NULL is fine */

/* Process-wide counters for /metrics. */
typedef struct waf_counters {
	uint64_t inspected; /* requests the rules ran on */
	uint64_t blocked;   /* denied (mode block) */
	uint64_t detected;  /* would have been denied (mode detect) */
	uint64_t partial;   /* bodies inspected only up to body_limit */
} waf_counters;
void waf_counters_get(waf_counters *out);
void waf_count_partial(void);

#endif
