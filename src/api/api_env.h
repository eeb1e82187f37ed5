/* api_env.h - the Cloudflare v4 envelope and the API's error codes, shared
 * by every handler of src/api:
 *   {"success":bool,"errors":[{"code":n,"message":"..."}],"messages":[],
 *    "result":...,"result_info":{...}}
 * docs/API.md lists the codes. */
#ifndef MERIDIAN_API_ENV_H
#define MERIDIAN_API_ENV_H

#include <jansson.h>

#include "api/api.h"
#include "config/cfg_load.h"

enum api_code {
	API_E_NOT_FOUND = 1001,	   /* no such object */
	API_E_BAD_JSON = 1002,	   /* body is not a JSON object */
	API_E_INVALID = 1003,	   /* a field is invalid */
	API_E_IN_USE = 1004,	   /* referenced by another object */
	API_E_FILE_MANAGED = 1005, /* object comes from the config file */
	API_E_STORE = 1007,	   /* store or swap failed */
	API_E_ZONE = 1008,	   /* unknown zone */
	API_E_BAD_QUERY = 1009,	   /* bad query parameter */
	API_E_BUSY = 1010,	   /* too many previews running */
	API_E_RUNNING = 1011,	   /* message: the preview is still running */
	API_E_CERT = 1012,	   /* a certificate or key file is unusable */
	API_E_NO_TLS = 1013,	   /* no https listener: no certificates */
	API_M_CERT_WARN = 1014,	   /* message: expired, names claimed twice */
	API_M_CONFIG_WARN = 1015,  /* message: a config warning (cfg_diag) */
	API_E_CLUSTER_DOWN = 1016, /* cluster mode: etcd unreachable (503) */
	API_E_CONFLICT = 1017,	   /* cluster mode: changed concurrently */
	API_E_METHOD = 7001,	   /* method not allowed on the path */
	API_E_NO_ROUTE = 7003,	   /* unknown path */
	API_E_AUTH = 10000,	   /* missing or unknown token */
	API_E_SCOPE = 10001,	   /* read token on a write */
};

/* Success. Takes ownership of result (NULL: null), info and messages
 * (either may be NULL: no result_info, empty messages). */
void api_reply(api_response *rs, int status, json_t *result, json_t *info,
	       json_t *messages);
/* Failure with the errors array given (owned). */
void api_reply_errors(api_response *rs, int status, json_t *errors);
/* 405 for method, naming the allowed ones (a static string) in the
 * message and in the answer's Allow field (RFC 9110 15.5.6). */
void api_reply_method(api_response *rs, const char *method,
		      const char *allowed);
/* Failure with one error. */
void api_reply_err(api_response *rs, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same naming the field it is about ("field", as validation errors
 * have it). */
void api_reply_field_err(api_response *rs, int status, int code,
			 const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* 400 with every problem of a rejected object, one error each, naming its
 * field ("field" is also set on the error). what: "object", "monitor"...
 * for the message when d is empty. */
void api_reply_diag(api_response *rs, const cfg_diag *d, const char *what);
json_t *api_err_obj(int code, const char *msg);

#endif
