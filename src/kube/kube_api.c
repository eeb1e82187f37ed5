/* kube_api.c - the Kubernetes API client; see kube_api.h. */
#include "kube/kube_api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_util.h"

struct kube_api {
	char *server;
	char *ca_file, *token, *token_file, *cert_file, *key_file;
	char *ca_data, *cert_data, *key_data;
	size_t ca_len, cert_len, key_len;
	bool insecure;
	const atomic_bool *stop;
};

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static char *dup_mem(const char *s, size_t n)
{
	if (!s)
		return NULL;
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

kube_api *kube_api_new(const kube_creds *c, char *err, size_t errlen)
{
	kube_api *api = xcalloc(1, sizeof(*api));
	api->server = xstrdup(c->server);
	api->ca_file = dup_or_null(c->ca_file);
	api->token = dup_or_null(c->token);
	api->token_file = dup_or_null(c->token_file);
	api->cert_file = dup_or_null(c->cert_file);
	api->key_file = dup_or_null(c->key_file);
	api->ca_data = dup_mem(c->ca_data, c->ca_data_len);
	api->ca_len = c->ca_data_len;
	api->cert_data = dup_mem(c->cert_data, c->cert_data_len);
	api->cert_len = c->cert_data_len;
	api->key_data = dup_mem(c->key_data, c->key_data_len);
	api->key_len = c->key_data_len;
	api->insecure = c->insecure;
	if (api->token_file) {
		FILE *f = fopen(api->token_file, "r");
		if (!f) {
			snprintf(err, errlen, "token file %s: cannot read it",
				 api->token_file);
			kube_api_free(api);
			return NULL;
		}
		fclose(f);
	}
	return api;
}

void kube_api_free(kube_api *api)
{
	if (!api)
		return;
	free(api->server);
	free(api->ca_file);
	free(api->token);
	free(api->token_file);
	free(api->cert_file);
	free(api->key_file);
	free(api->ca_data);
	free(api->cert_data);
	free(api->key_data);
	free(api);
}

const char *kube_api_server(const kube_api *api)
{
	return api->server;
}

void kube_api_set_stop(kube_api *api, const atomic_bool *stop)
{
	api->stop = stop;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut,
		       curl_off_t un)
{
	const atomic_bool *stop = ud;
	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return atomic_load(stop) ? 1 : 0;
}

/* The token: the file's first line when there is a file, else the
 * configured one. Into buf; "" when none. */
static void token(kube_api *api, char *buf, size_t n)
{
	buf[0] = '\0';
	if (api->token_file) {
		FILE *f = fopen(api->token_file, "r");
		if (f) {
			size_t k = fread(buf, 1, n - 1, f);
			buf[k] = '\0';
			fclose(f);
			buf[strcspn(buf, "\r\n")] = '\0';
		}
		if (buf[0])
			return;
	}
	if (api->token)
		snprintf(buf, n, "%s", api->token);
}

CURL *kube_api_handle(kube_api *api, const char *path, long timeout_s,
		      struct curl_slist **hdrs)
{
	CURL *h = curl_easy_init();
	if (!h)
		return NULL;
	size_t ul = strlen(api->server) + strlen(path) + 1;
	char *url = xmalloc(ul);
	snprintf(url, ul, "%s%s", api->server, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	if (timeout_s)
		curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 10L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT,
			 "meridian-ingress/" MERIDIAN_VERSION);
	if (api->stop) {
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)api->stop);
	}
	if (api->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (api->ca_data) {
		struct curl_blob b = {api->ca_data, api->ca_len,
				      CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
	} else if (api->ca_file) {
		curl_easy_setopt(h, CURLOPT_CAINFO, api->ca_file);
	}
	if (api->cert_data) {
		struct curl_blob b = {api->cert_data, api->cert_len,
				      CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &b);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
	} else if (api->cert_file) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, api->cert_file);
	}
	if (api->key_data) {
		struct curl_blob b = {api->key_data, api->key_len,
				      CURL_BLOB_COPY};
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &b);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	} else if (api->key_file) {
		curl_easy_setopt(h, CURLOPT_SSLKEY, api->key_file);
	}
	*hdrs = curl_slist_append(NULL, "Accept: application/json");
	char tok[4096], auth[4200];
	token(api, tok, sizeof(tok));
	if (tok[0]) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
		*hdrs = curl_slist_append(*hdrs, auth);
		memset(auth, 0, sizeof(auth));
		memset(tok, 0, sizeof(tok));
	}
	return h;
}

typedef struct rbuf {
	char *p;
	size_t n, cap;
} rbuf;

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
	rbuf *b = ud;
	size_t n = sz * nm;
	if (b->n + n + 1 > (64u << 20))
		return 0; /* over 64 MiB: refuse */
	if (b->n + n + 1 > b->cap) {
		b->cap = MAX(b->cap * 2, b->n + n + 1);
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

int kube_api_call(kube_api *api, const char *method, const char *path,
		  const char *rbody, const char *ctype, long *status,
		  char **resp, size_t *resp_len, char *err, size_t errlen)
{
	struct curl_slist *hdrs = NULL;
	rbuf b = {0};
	*status = 0;
	*resp = NULL;
	*resp_len = 0;
	CURL *h = kube_api_handle(api, path, 30, &hdrs);
	if (!h) {
		snprintf(err, errlen, "curl_easy_init failed");
		return -1;
	}
	if (rbody) {
		char ct[128];
		snprintf(ct, sizeof(ct), "Content-Type: %s",
			 ctype ? ctype : "application/json");
		hdrs = curl_slist_append(hdrs, ct);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, rbody);
	}
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", curl_easy_strerror(rc));
		free(b.p);
		return -1;
	}
	if (!b.p)
		b.p = xcalloc(1, 1);
	*resp = b.p;
	*resp_len = b.n;
	return 0;
}

void kube_api_message(const char *body, size_t len, char *out, size_t n)
{
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	const json_t *m = j ? json_object_get(j, "message") : NULL;
	if (json_is_string(m))
		snprintf(out, n, "%s", json_string_value(m));
	else
		snprintf(out, n, "%.*s", (int)MIN(len, 200), body ? body : "");
	json_decref(j);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < ' ')
			*p = ' ';
}
