/* api_env.c - see api_env.h. */
#include "api/api_env.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/cfg_json.h"

static void finish(api_response *rs, int status, json_t *env)
{
	rs->status = status;
	/* 15 digits: 0.1 prints as 0.1, not 0.10000000000000001. */
	rs->body = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER |
				       JSON_REAL_PRECISION(15));
	if (!rs->body)
		abort();
	rs->len = strlen(rs->body);
	json_decref(env);
}

void api_reply(api_response *rs, int status, json_t *result, json_t *info,
	       json_t *messages)
{
	json_t *env = json_object();
	json_object_set_new(env, "success", json_true());
	json_object_set_new(env, "errors", json_array());
	json_object_set_new(env, "messages",
			    messages ? messages : json_array());
	json_object_set_new(env, "result", result ? result : json_null());
	if (info)
		json_object_set_new(env, "result_info", info);
	finish(rs, status, env);
}

json_t *api_err_obj(int code, const char *msg)
{
	json_t *o = json_object();
	json_object_set_new(o, "code", json_integer(code));
	/* A message may quote a client's bytes, or be cut to a buffer in
	 * the middle of a character: it is always there, as valid UTF-8. */
	json_object_set_new(o, "message", cfg_json_string(msg));
	return o;
}

void api_reply_errors(api_response *rs, int status, json_t *errors)
{
	json_t *env = json_object();
	json_object_set_new(env, "success", json_false());
	json_object_set_new(env, "errors", errors);
	json_object_set_new(env, "messages", json_array());
	json_object_set_new(env, "result", json_null());
	finish(rs, status, env);
}

void api_reply_method(api_response *rs, const char *method, const char *allowed)
{
	api_reply_err(rs, 405, API_E_METHOD,
		      "%s is not allowed here (allowed: %s)", method, allowed);
	rs->allow = allowed;
}

__attribute__((format(printf, 5, 0))) static void
reply_err(api_response *rs, int status, int code, const char *field,
	  const char *fmt, va_list ap)
{
	char msg[1024];
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n >= (int)sizeof(msg))
		cfg_json_utf8_cut(msg);
	json_t *e = api_err_obj(code, msg);
	if (field)
		json_object_set_new(e, "field", json_string(field));
	json_t *errs = json_array();
	json_array_append_new(errs, e);
	api_reply_errors(rs, status, errs);
}

void api_reply_err(api_response *rs, int status, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply_err(rs, status, code, NULL, fmt, ap);
	va_end(ap);
}

void api_reply_field_err(api_response *rs, int status, int code,
			 const char *field, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply_err(rs, status, code, field, fmt, ap);
	va_end(ap);
}

void api_reply_diag(api_response *rs, const cfg_diag *d, const char *what)
{
	json_t *errs = json_array();
	for (size_t i = 0; i < d->n; i++) {
		const char *field = NULL;
		const char *m = cfg_json_diag_message(d, i, &field);
		char buf[1200];
		int n = field ? snprintf(buf, sizeof(buf), "%s: %s", field, m)
			      : snprintf(buf, sizeof(buf), "%s", m);
		if (n >= (int)sizeof(buf))
			cfg_json_utf8_cut(buf);
		json_t *e = api_err_obj(API_E_INVALID, buf);
		if (field)
			json_object_set_new(e, "field", cfg_json_string(field));
		json_array_append_new(errs, e);
	}
	if (!d->n) {
		char buf[128];
		snprintf(buf, sizeof(buf), "invalid %s", what);
		json_array_append_new(errs, api_err_obj(API_E_INVALID, buf));
	}
	api_reply_errors(rs, 400, errs);
}
