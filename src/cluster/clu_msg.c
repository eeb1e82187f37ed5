/* clu_msg.c - see clu_msg.h. */
#include "cluster/clu_msg.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/clu_key.h"
#include "core/core_util.h"

static char *dump(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s)
		abort();
	return s;
}

static json_t *b64(const char *p, size_t n)
{
	char *e = clu_b64_encode(p, n);
	json_t *j = json_string(e);
	free(e);
	return j;
}

static json_t *i64(int64_t v)
{
	char s[24];
	snprintf(s, sizeof(s), "%" PRId64, v);
	return json_string(s);
}

/* A number or a decimal string; absent: 0. */
static int64_t get_i64(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return 0;
}

void clu_kvs_free(clu_kv *kv, size_t n)
{
	for (size_t i = 0; kv && i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

/* One kv object; false when malformed. */
static bool kv_parse(const json_t *o, clu_kv *kv)
{
	memset(kv, 0, sizeof(*kv));
	const char *k = json_string_value(json_object_get(o, "key"));
	const char *v = json_string_value(json_object_get(o, "value"));
	if (!k)
		return false;
	kv->key = clu_b64_decode(k, strlen(k), &kv->key_len);
	kv->value =
	    clu_b64_decode(v ? v : "", v ? strlen(v) : 0, &kv->value_len);
	if (!kv->key || !kv->value) {
		free(kv->key);
		free(kv->value);
		return false;
	}
	kv->create_rev = get_i64(o, "create_revision");
	kv->mod_rev = get_i64(o, "mod_revision");
	kv->lease = get_i64(o, "lease");
	return true;
}

static int kvs_parse(const json_t *arr, clu_kv **kvs, size_t *nkv)
{
	size_t n = json_array_size(arr);
	*kvs = NULL;
	*nkv = 0;
	if (!n)
		return 0;
	clu_kv *v = xcalloc(n, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		if (!kv_parse(json_array_get(arr, i), &v[i])) {
			clu_kvs_free(v, i);
			return -EINVAL;
		}
	*kvs = v;
	*nkv = n;
	return 0;
}

/* The body as an object, or -EINVAL with why (the gateway's error). */
static json_t *load(const char *body, size_t n, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_loadb(body, n, 0, &je);
	if (!json_is_object(j)) {
		snprintf(err, errlen, "etcd: not a JSON object: %s",
			 j ? "" : je.text);
		json_decref(j);
		return NULL;
	}
	const json_t *e = json_object_get(j, "error");
	if (e) {
		const char *m =
		    json_string_value(json_object_get(j, "message"));
		if (!m && json_is_object(e))
			m = json_string_value(json_object_get(e, "message"));
		if (!m)
			m = json_string_value(e);
		snprintf(err, errlen, "etcd: %s", m ? m : "error");
		json_decref(j);
		return NULL;
	}
	return j;
}

char *clu_msg_range(const char *key, const char *range_end)
{
	json_t *j = json_object();
	json_object_set_new(j, "key", b64(key, strlen(key)));
	if (range_end)
		json_object_set_new(j, "range_end",
				    b64(range_end, strlen(range_end)));
	return dump(j);
}

int clu_msg_range_parse(const char *body, size_t n, clu_kv **kvs, size_t *nkv,
			int64_t *revision, char *err, size_t errlen)
{
	*kvs = NULL;
	*nkv = 0;
	json_t *j = load(body, n, err, errlen);
	if (!j)
		return -EINVAL;
	*revision = get_i64(json_object_get(j, "header"), "revision");
	int rc = kvs_parse(json_object_get(j, "kvs"), kvs, nkv);
	if (rc < 0)
		snprintf(err, errlen, "etcd: malformed range answer");
	json_decref(j);
	return rc;
}

char *clu_msg_txn(const clu_cmp *cmp, size_t ncmp, const clu_op *ops,
		  size_t nops, const char *fail_key)
{
	json_t *j = json_object(), *c = json_array(), *s = json_array();
	for (size_t i = 0; i < ncmp; i++) {
		json_t *o = json_object();
		json_object_set_new(o, "key",
				    b64(cmp[i].key, strlen(cmp[i].key)));
		json_object_set_new(
		    o, "result", json_string(cmp[i].less ? "LESS" : "EQUAL"));
		json_object_set_new(
		    o, "target", json_string(cmp[i].create ? "CREATE" : "MOD"));
		json_object_set_new(
		    o, cmp[i].create ? "create_revision" : "mod_revision",
		    i64(cmp[i].rev));
		json_array_append_new(c, o);
	}
	for (size_t i = 0; i < nops; i++) {
		json_t *o = json_object(), *r = json_object();
		json_object_set_new(r, "key",
				    b64(ops[i].key, strlen(ops[i].key)));
		if (ops[i].del) {
			json_object_set_new(o, "request_delete_range", r);
		} else {
			json_object_set_new(
			    r, "value", b64(ops[i].value, ops[i].value_len));
			if (ops[i].lease)
				json_object_set_new(r, "lease",
						    i64(ops[i].lease));
			json_object_set_new(o, "request_put", r);
		}
		json_array_append_new(s, o);
	}
	json_object_set_new(j, "compare", c);
	json_object_set_new(j, "success", s);
	if (fail_key) {
		json_t *f = json_array(), *o = json_object(),
		       *r = json_object();
		json_object_set_new(r, "key", b64(fail_key, strlen(fail_key)));
		json_object_set_new(o, "request_range", r);
		json_array_append_new(f, o);
		json_object_set_new(j, "failure", f);
	}
	return dump(j);
}

int clu_msg_txn_parse(const char *body, size_t n, bool *succeeded,
		      int64_t *revision, clu_kv **kvs, size_t *nkv, char *err,
		      size_t errlen)
{
	if (kvs) {
		*kvs = NULL;
		*nkv = 0;
	}
	json_t *j = load(body, n, err, errlen);
	if (!j)
		return -EINVAL;
	*succeeded = json_is_true(json_object_get(j, "succeeded"));
	*revision = get_i64(json_object_get(j, "header"), "revision");
	int rc = 0;
	const json_t *rs = json_object_get(j, "responses");
	if (kvs && !*succeeded && json_array_size(rs) > 0) {
		const json_t *r =
		    json_object_get(json_array_get(rs, 0), "response_range");
		rc = kvs_parse(json_object_get(r, "kvs"), kvs, nkv);
		if (rc < 0)
			snprintf(err, errlen, "etcd: malformed txn answer");
	}
	json_decref(j);
	return rc;
}

char *clu_msg_put(const char *key, const char *value, size_t len, int64_t lease)
{
	json_t *j = json_object();
	json_object_set_new(j, "key", b64(key, strlen(key)));
	json_object_set_new(j, "value", b64(value, len));
	if (lease)
		json_object_set_new(j, "lease", i64(lease));
	return dump(j);
}

char *clu_msg_lease_grant(int64_t ttl_s)
{
	json_t *j = json_object();
	json_object_set_new(j, "TTL", i64(ttl_s));
	json_object_set_new(j, "ID", i64(0));
	return dump(j);
}

char *clu_msg_lease_id(int64_t id)
{
	json_t *j = json_object();
	json_object_set_new(j, "ID", i64(id));
	return dump(j);
}

int clu_msg_lease_parse(const char *body, size_t n, int64_t *id, int64_t *ttl,
			char *err, size_t errlen)
{
	json_t *j = load(body, n, err, errlen);
	if (!j)
		return -EINVAL;
	const json_t *r = json_object_get(j, "result");
	if (!r)
		r = j;
	*id = get_i64(r, "ID");
	*ttl = get_i64(r, "TTL");
	json_decref(j);
	return 0;
}

char *clu_msg_watch(const char *key, const char *range_end, int64_t start_rev)
{
	json_t *j = json_object(), *c = json_object();
	json_object_set_new(c, "key", b64(key, strlen(key)));
	if (range_end)
		json_object_set_new(c, "range_end",
				    b64(range_end, strlen(range_end)));
	if (start_rev > 0)
		json_object_set_new(c, "start_revision", i64(start_rev));
	json_object_set_new(j, "create_request", c);
	return dump(j);
}

void clu_watch_msg_clear(clu_watch_msg *m)
{
	for (size_t i = 0; i < m->nev; i++) {
		free(m->ev[i].kv.key);
		free(m->ev[i].kv.value);
	}
	free(m->ev);
	memset(m, 0, sizeof(*m));
}

int clu_msg_watch_parse(const char *s, size_t n, clu_watch_msg *m, char *err,
			size_t errlen)
{
	memset(m, 0, sizeof(*m));
	json_t *j = load(s, n, err, errlen);
	if (!j)
		return -EINVAL;
	const json_t *r = json_object_get(j, "result");
	if (!json_is_object(r)) {
		snprintf(err, errlen, "etcd: watch message without result");
		json_decref(j);
		return -EINVAL;
	}
	m->created = json_is_true(json_object_get(r, "created"));
	m->canceled = json_is_true(json_object_get(r, "canceled"));
	m->compact_rev = get_i64(r, "compact_revision");
	m->revision = get_i64(json_object_get(r, "header"), "revision");
	const json_t *evs = json_object_get(r, "events");
	size_t ne = json_array_size(evs);
	if (ne)
		m->ev = xcalloc(ne, sizeof(*m->ev));
	for (size_t i = 0; i < ne; i++) {
		const json_t *e = json_array_get(evs, i);
		const char *t = json_string_value(json_object_get(e, "type"));
		if (!kv_parse(json_object_get(e, "kv"), &m->ev[i].kv)) {
			snprintf(err, errlen, "etcd: malformed watch event");
			json_decref(j);
			clu_watch_msg_clear(m);
			return -EINVAL;
		}
		m->ev[i].del = t && !strcmp(t, "DELETE");
		m->nev++;
	}
	json_decref(j);
	return 0;
}

size_t clu_msg_split(const char *buf, size_t len, size_t *skip)
{
	size_t i = 0;
	while (i < len && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\r' ||
			   buf[i] == '\t'))
		i++;
	*skip = i;
	int depth = 0;
	bool str = false, esc = false;
	for (size_t k = i; k < len; k++) {
		char c = buf[k];
		if (str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				str = false;
			continue;
		}
		if (c == '"')
			str = true;
		else if (c == '{' || c == '[')
			depth++;
		else if (c == '}' || c == ']') {
			if (--depth == 0)
				return k + 1 - i;
		}
	}
	return 0;
}
