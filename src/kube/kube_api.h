/* kube_api.h - the Kubernetes API over HTTPS with libcurl: handles set up
 * with the server, its CA, and the bearer token or client certificate;
 * one-shot requests (lists, status) and the handles the watches stream on.
 *
 * Return convention: 0 / -1 (err filled) unless said otherwise.
 */
#ifndef MERIDIAN_KUBE_API_H
#define MERIDIAN_KUBE_API_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stddef.h>

#include "kube/kube_config.h"

typedef struct kube_api kube_api;

/* From creds (copied). NULL and err when a file named there cannot be
 * read. */
kube_api *kube_api_new(const kube_creds *c, char *err, size_t errlen);
void kube_api_free(kube_api *api);
const char *kube_api_server(const kube_api *api);
/* Requests made after this abort (within about a second) once *stop is
 * true: a stopping controller does not wait for a slow API. */
void kube_api_set_stop(kube_api *api, const atomic_bool *stop);

/* An easy handle for server + path (query included), with TLS, auth and
 * timeouts set (timeout_s 0: none); *hdrs to be freed after the handle
 * (curl_slist_free_all). The token file, when there is one, is read again
 * each time (tokens are rotated). */
CURL *kube_api_handle(kube_api *api, const char *path, long timeout_s,
		      struct curl_slist **hdrs);

/* A whole request: method, path, optional body (content type ctype).
 * *status the HTTP status (0: no answer), *resp the body (malloc'd, NUL
 * terminated). Returns 0 when an answer came (any status), else -1 and
 * err. */
int kube_api_call(kube_api *api, const char *method, const char *path,
		  const char *body, const char *ctype, long *status,
		  char **resp, size_t *resp_len, char *err, size_t errlen);

/* The "message" of a Status object body, else the start of the body, into
 * out. */
void kube_api_message(const char *body, size_t len, char *out, size_t n);

#endif
