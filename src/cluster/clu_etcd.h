/* clu_etcd.h - a blocking etcd v3 client over its JSON gateway (libcurl),
 * for one thread at a time (SPEC §4.9). Never on a request path: the
 * admin thread (API transactions) and the cluster thread each own one.
 *
 * A request goes to the endpoint that answered last; when it cannot be
 * reached, to the next ones in turn, all within the request's timeout (an
 * endpoint that does not answer uses it up; the next request starts at
 * the next endpoint). https:// endpoints are verified
 * against the system CAs.
 */
#ifndef MERIDIAN_CLU_ETCD_H
#define MERIDIAN_CLU_ETCD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct clu_etcd {
	void *curl; /* CURL * */
	char **eps;
	size_t neps, cur;
	long timeout_ms; /* one request, over all its endpoints */
	/* The owner's: when set, a request ends at this core_now_ms
	 * whatever endpoints are left (0: none), and at once when *abort
	 * turns true (a stop). */
	uint64_t deadline_ms;
	const atomic_bool *abort;
} clu_etcd;

/* libcurl's global init, once per process. */
void clu_etcd_global_init(void);

void clu_etcd_open(clu_etcd *c, const char *const *eps, size_t neps,
		   long timeout_ms);
void clu_etcd_close(clu_etcd *c);

/* POST body (JSON) to path ("/v3/kv/range"). 0 with the answer in *resp
 * (malloc'd, NUL-terminated, *len) on 200; -EPROTO on another status (the
 * answer, etcd's error, in *resp); -EIO when no endpoint could be reached
 * (err says why, naming the endpoints as scheme://host:port), the
 * deadline passed or the request was aborted. */
int clu_etcd_post(clu_etcd *c, const char *path, const char *body, char **resp,
		  size_t *len, char *err, size_t errlen);

/* The endpoint requests go to now (for the watch). */
const char *clu_etcd_endpoint(const clu_etcd *c);
/* Move on to the next endpoint (after the watch failed on this one). */
void clu_etcd_next(clu_etcd *c);

#endif
