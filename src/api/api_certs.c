/* api_certs.c - see api_certs.h. */
#include "api/api_certs.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "api/api_env.h"
#include "config/cfg_diag.h"
#include "core/core_log.h"
#include "edge/edge_ctl.h"
#include "tls/tls.h"

static json_t *rfc3339(int64_t t)
{
	struct tm tm;
	time_t tt = (time_t)t;
	char buf[32];
	if (!gmtime_r(&tt, &tm) ||
	    !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return json_null();
	return json_string(buf);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *cert_json(const tls_cert_info *ci)
{
	json_t *j = json_object();
	json_object_set_new(j, "index", json_integer((json_int_t)ci->index));
	json_object_set_new(j, "file", json_string(ci->cert_file));
	json_object_set_new(j, "key_file", json_string(ci->key_file));
	json_object_set_new(j, "key_type", json_string(ci->key_type));
	json_object_set_new(j, "key_bits", json_integer(ci->key_bits));
	json_object_set_new(j, "curve", str_or_null(ci->curve));
	json_object_set_new(j, "subject_cn", str_or_null(ci->subject_cn));
	json_t *san = json_array();
	for (size_t i = 0; i < ci->nsans; i++)
		json_array_append_new(san, json_string(ci->sans[i]));
	json_object_set_new(j, "san", san);
	json_object_set_new(j, "issuer_cn", str_or_null(ci->issuer_cn));
	json_object_set_new(j, "serial", str_or_null(ci->serial));
	json_object_set_new(j, "not_before", rfc3339(ci->not_before));
	json_object_set_new(j, "not_after", rfc3339(ci->not_after));
	json_object_set_new(j, "fingerprint_sha256", json_string(ci->sha256));
	json_object_set_new(j, "default", json_boolean(ci->is_default));
	return j;
}

static json_t *certs_json(const edge_snapshot *s)
{
	json_t *a = json_array();
	for (size_t i = 0; s->tls && i < tls_server_ncerts(s->tls); i++)
		json_array_append_new(a, cert_json(tls_server_cert(s->tls, i)));
	return a;
}

static void do_list(const edge_snapshot *s, api_response *rs)
{
	json_t *a = certs_json(s);
	json_t *info = json_object();
	json_object_set_new(info, "count",
			    json_integer((json_int_t)json_array_size(a)));
	json_object_set_new(info, "total_count",
			    json_integer((json_int_t)json_array_size(a)));
	api_reply(rs, 200, a, info, NULL);
}

static void do_reload(edge *e, const edge_snapshot *snap, api_response *rs)
{
	if (!snap->tls) {
		api_reply_err(rs, 409, API_E_NO_TLS,
			      "this edge has no https listener "
			      "(edge.listen.https): no certificates to reload");
		return;
	}
	cfg_diag d = {0};
	char err[1024] = "";
	int rc = edge_ctl_change(e->ctl, NULL, 0, &d, err, sizeof(err));
	if (rc == -1) {
		/* The running config no longer builds (it did when it was
		 * applied): say what, as for any change. */
		api_reply_diag(rs, &d, "configuration");
		cfg_diag_free(&d);
		return;
	}
	cfg_diag_free(&d);
	if (rc < 0) {
		/* edge_swap_prepare refused: an unusable file, named. */
		log_error("certificate reload: %s (the running certificates "
			  "stay)",
			  err);
		api_reply_err(rs, 400, API_E_CERT, "%s", err);
		return;
	}
	const edge_snapshot *now = edge_acquire(e);
	json_t *msgs = json_array();
	for (size_t i = 0; now->tls && tls_server_warning(now->tls, i); i++)
		json_array_append_new(
		    msgs, api_err_obj(API_M_CERT_WARN,
				      tls_server_warning(now->tls, i)));
	json_t *r = json_object();
	json_object_set_new(r, "generation",
			    json_integer((json_int_t)now->generation));
	json_object_set_new(r, "certificates", certs_json(now));
	log_info("certificate reload: %zu certificate%s (config generation "
		 "%llu)",
		 now->tls ? tls_server_ncerts(now->tls) : 0,
		 now->tls && tls_server_ncerts(now->tls) == 1 ? "" : "s",
		 (unsigned long long)now->generation);
	edge_snapshot_unref(now);
	api_reply(rs, 200, r, NULL, msgs);
}

void api_certs(edge *e, const edge_snapshot *snap, const api_request *rq,
	       const char *const *seg, size_t nseg, api_response *rs)
{
	bool get = !strcmp(rq->method, "GET");
	if (nseg == 2) {
		if (get)
			do_list(snap, rs);
		else
			api_reply_method(rs, rq->method, "GET");
		return;
	}
	if (nseg == 3 && !strcmp(seg[2], "reload")) {
		if (!strcmp(rq->method, "POST"))
			do_reload(e, snap, rs);
		else
			api_reply_method(rs, rq->method, "POST");
		return;
	}
	api_reply_err(rs, 404, API_E_NO_ROUTE, "no route for %s %s", rq->method,
		      rq->path);
}
