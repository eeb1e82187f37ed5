/* clu_etcd.c - see clu_etcd.h. */
#include "cluster/clu_etcd.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_util.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void clu_etcd_global_init(void)
{
	pthread_once(&once, global_init);
}

void clu_etcd_open(clu_etcd *c, const char *const *eps, size_t neps,
		   long timeout_ms)
{
	clu_etcd_global_init();
	memset(c, 0, sizeof(*c));
	c->curl = curl_easy_init();
	if (!c->curl)
		abort();
	c->eps = xcalloc(neps ? neps : 1, sizeof(*c->eps));
	for (size_t i = 0; i < neps; i++) {
		/* Without a trailing '/': paths start with one. */
		size_t n = strlen(eps[i]);
		while (n && eps[i][n - 1] == '/')
			n--;
		c->eps[i] = xmalloc(n + 1);
		memcpy(c->eps[i], eps[i], n);
		c->eps[i][n] = '\0';
	}
	c->neps = neps;
	c->timeout_ms = timeout_ms;
}

void clu_etcd_close(clu_etcd *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	for (size_t i = 0; i < c->neps; i++)
		free(c->eps[i]);
	free(c->eps);
	memset(c, 0, sizeof(*c));
}

const char *clu_etcd_endpoint(const clu_etcd *c)
{
	return c->neps ? c->eps[c->cur] : "";
}

void clu_etcd_next(clu_etcd *c)
{
	if (c->neps)
		c->cur = (c->cur + 1) % c->neps;
}

typedef struct rbuf {
	char *p;
	size_t len, cap;
} rbuf;

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	rbuf *b = arg;
	size_t add = size * n;
	if (b->len + add + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + add + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, add);
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

/* CURLOPT_XFERINFOFUNCTION: non-zero ends the transfer. */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
		       curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	const clu_etcd *c = arg;
	return c->abort && atomic_load(c->abort);
}

int clu_etcd_post(clu_etcd *c, const char *path, const char *body, char **resp,
		  size_t *len, char *err, size_t errlen)
{
	*resp = NULL;
	*len = 0;
	CURL *h = c->curl;
	char cerr[CURL_ERROR_SIZE];
	/* One request, all endpoints told, within timeout_ms (and the
	 * owner's deadline): one that refuses costs nothing, one that does
	 * not answer takes the time of all. */
	uint64_t end = core_now_ms() + (uint64_t)c->timeout_ms;
	if (c->deadline_ms && c->deadline_ms < end)
		end = c->deadline_ms;
	for (size_t t = 0; t < c->neps; t++) {
		const char *ep = c->eps[c->cur];
		uint64_t now = core_now_ms();
		if (now >= end) {
			if (!t)
				snprintf(err, errlen,
					 "etcd: no answer in time");
			return -EIO;
		}
		long tmo = (long)MIN(end - now, (uint64_t)c->timeout_ms);
		if (c->abort && atomic_load(c->abort)) {
			snprintf(err, errlen,
				 "etcd: request aborted (stopping)");
			return -EIO;
		}
		char url[1024];
		snprintf(url, sizeof(url), "%s%s", ep, path);
		rbuf b = {0};
		struct curl_slist *hdrs =
		    curl_slist_append(NULL, "Content-Type: application/json");
		cerr[0] = '\0';
		curl_easy_reset(h);
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
				 tmo < 1000 ? tmo : 1000L);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, tmo);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		CURLcode res = curl_easy_perform(h);
		curl_slist_free_all(hdrs);
		if (res == CURLE_OK) {
			long status = 0;
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
			*resp = b.p ? b.p : xstrdup("");
			*len = b.len;
			if (status == 200)
				return 0;
			snprintf(err, errlen, "etcd %s%s: HTTP %ld", ep, path,
				 status);
			return -EPROTO;
		}
		free(b.p);
		snprintf(err, errlen, "etcd %s: %s", ep,
			 cerr[0] ? cerr : curl_easy_strerror(res));
		clu_etcd_next(c);
	}
	if (!c->neps)
		snprintf(err, errlen, "etcd: no endpoints");
	return -EIO;
}
