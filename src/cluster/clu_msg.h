/* clu_msg.h - etcd v3's JSON gateway messages (SPEC §4.9), pure: request
 * bodies built and response bodies parsed; no I/O.
 *
 * The gateway carries keys and values in base64 and 64-bit integers as
 * strings ("revision": "12"); both spellings of a number are accepted.
 * Parsers return 0, or -EINVAL with a reason in err (the gateway's own
 * error message when it sent one).
 */
#ifndef MERIDIAN_CLU_MSG_H
#define MERIDIAN_CLU_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A key-value as etcd returns it (key and value decoded, NUL-terminated). */
typedef struct clu_kv {
	char *key;
	size_t key_len;
	char *value;
	size_t value_len;
	int64_t create_rev, mod_rev, lease;
} clu_kv;
void clu_kvs_free(clu_kv *kv, size_t n);

/* /v3/kv/range: every key in [key, range_end) (range_end NULL: key only). */
char *clu_msg_range(const char *key, const char *range_end);
int clu_msg_range_parse(const char *body, size_t n, clu_kv **kvs, size_t *nkv,
			int64_t *revision, char *err, size_t errlen);

/* /v3/kv/txn: if every compare holds, run the ops; else nothing (or the
 * failure range: read fail_key back, NULL: none). */
typedef struct clu_cmp {
	const char *key;
	bool create; /* compare create_revision (else mod_revision) */
	int64_t rev; /* expected; 0: the key is absent */
	bool less;   /* the revision must be below rev (else equal) */
} clu_cmp;
typedef struct clu_op {
	bool del; /* delete key (else put) */
	const char *key;
	const char *value; /* puts */
	size_t value_len;
	int64_t lease; /* puts: 0 none */
} clu_op;
char *clu_msg_txn(const clu_cmp *cmp, size_t ncmp, const clu_op *ops,
		  size_t nops, const char *fail_key);
/* succeeded, the revision after the txn, and (failure with fail_key) what
 * the range read (may be NULL). */
int clu_msg_txn_parse(const char *body, size_t n, bool *succeeded,
		      int64_t *revision, clu_kv **kvs, size_t *nkv, char *err,
		      size_t errlen);

/* /v3/kv/put (lease 0: none). */
char *clu_msg_put(const char *key, const char *value, size_t len,
		  int64_t lease);

/* /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke. */
char *clu_msg_lease_grant(int64_t ttl_s);
char *clu_msg_lease_id(int64_t id);
/* Grant and keepalive answers ({"ID","TTL"}, keepalive's inside
 * "result"): ttl <= 0 when the lease is gone. */
int clu_msg_lease_parse(const char *body, size_t n, int64_t *id, int64_t *ttl,
			char *err, size_t errlen);

/* /v3/watch: watch [key, range_end) from start_rev, with the previous
 * values of deleted keys not needed. */
char *clu_msg_watch(const char *key, const char *range_end, int64_t start_rev);

typedef struct clu_event {
	bool del;
	clu_kv kv; /* a delete: the key, and mod_rev the deletion's revision */
} clu_event;
typedef struct clu_watch_msg {
	bool created, canceled;
	int64_t compact_rev; /* > 0: the watch's start was compacted */
	int64_t revision;    /* the header's */
	clu_event *ev;
	size_t nev;
} clu_watch_msg;
/* One message of the watch stream ({"result": ...} or {"error": ...}). */
int clu_msg_watch_parse(const char *s, size_t n, clu_watch_msg *m, char *err,
			size_t errlen);
void clu_watch_msg_clear(clu_watch_msg *m);

/* The watch stream is one JSON object after another. The length of the
 * first complete object in buf[0..len) after leading whitespace (*skip
 * gets the whitespace's length); 0 while it is incomplete. */
size_t clu_msg_split(const char *buf, size_t len, size_t *skip);

#endif
