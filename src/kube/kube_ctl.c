/* kube_ctl.c - the ingress controller thread; see kube_ctl.h.
 *
 * One thread, one curl multi handle holding the three watches; lists and
 * status writes are plain blocking requests made between two polls (each
 * bounded by a 30 s timeout). Per kind: the resourceVersion to watch
 * from, whether a (re-)list is due, the watch's handle and the bytes of
 * the event line not complete yet, and a retry time with backoff.
 */
#include "kube/kube_ctl.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_log.h"
#include "core/core_util.h"
#include "kube/kube_map.h"
#include "kube/kube_obj.h"
#include "tunnel/tun_rules.h"

#define DEBOUNCE_MS	100
#define WATCH_TIMEOUT_S 300 /* timeoutSeconds asked of the API */
#define LINE_MAX_BYTES	(16u << 20)
#define BACKOFF_BASE_MS 250
#define BACKOFF_MAX_MS	30000
#define STATUS_RETRY_MS 5000
#define LIST_PAGE	500 /* objects per page of a list (`limit`) */

typedef struct kwatch {
	kube_kind kind;
	char rv[64];
	bool listed, need_list, gone;
	CURL *h;
	struct curl_slist *hdrs;
	uint64_t started;
	uint64_t next_at; /* the next list or watch, ms */
	unsigned fails;
	long status; /* of the running watch, once known */
	char *buf;   /* an incomplete line, or an error body */
	size_t len, cap;
	size_t scanned; /* of buf, known to hold no newline */
	struct kube_ctl *k;
} kwatch;

typedef struct attempt {
	char *name, *rv;
	uint64_t at;
} attempt;

struct kube_ctl {
	kube_ctl_opts o;
	pthread_t thread;
	atomic_bool stop;
	CURLM *multi;
	kube_store store;
	kwatch w[KUBE_NKINDS];
	bool dirty, published;
	uint64_t dirty_at;
	kube_problems problems;
	attempt *att; /* status writes tried, by Ingress */
	size_t natt;
	uint64_t rnd;
};

static uint64_t backoff(kube_ctl *k, unsigned fails)
{
	uint64_t cap = BACKOFF_BASE_MS;
	for (unsigned i = 0; i < fails && cap < BACKOFF_MAX_MS; i++)
		cap *= 2;
	cap = MIN(cap, BACKOFF_MAX_MS);
	k->rnd ^= k->rnd << 13;
	k->rnd ^= k->rnd >> 7;
	k->rnd ^= k->rnd << 17;
	return cap / 2 + k->rnd % (cap / 2 + 1); /* [cap/2, cap] */
}

static const char *api_group(kube_kind kind)
{
	switch (kind) {
	case KUBE_INGRESS:
		return "/apis/networking.k8s.io/v1";
	case KUBE_SLICE:
		return "/apis/discovery.k8s.io/v1";
	default:
		return "/api/v1";
	}
}

static void kind_path(kube_ctl *k, kube_kind kind, char *buf, size_t n)
{
	snprintf(buf, n, "%s/namespaces/%s/%s", api_group(kind), k->o.ns,
		 kube_kind_name(kind));
}

static void mark_dirty(kube_ctl *k)
{
	if (!k->dirty) {
		k->dirty = true;
		k->dirty_at = core_now_ms() + DEBOUNCE_MS;
	}
}

/* --- lists ------------------------------------------------------------------
 */

/* A failed list: logged (with the server when it did not answer),
 * retried after a backoff. */
static void list_failed(kube_ctl *k, kwatch *w, bool no_answer, const char *fmt,
			...) __attribute__((format(printf, 4, 5)));
static void list_failed(kube_ctl *k, kwatch *w, bool no_answer, const char *fmt,
			...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uint64_t d = backoff(k, w->fails++);
	log_warn("ingress: kubernetes API%s%s: list %s: %s; retrying in %.1f s",
		 no_answer ? " " : "",
		 no_answer ? kube_api_server(k->o.api) : "",
		 kube_kind_name(w->kind), msg, (double)d / 1000);
	w->next_at = core_now_ms() + d;
}

/* One page of a list: 200 and its body, or the status (0: no answer) and
 * err. */
static long get_page(kube_ctl *k, kwatch *w, const char *cont, char **resp,
		     size_t *len, char *err, size_t errlen)
{
	/* Tokens are base64 (the API server's are the URL alphabet); a
	 * '+' would read as a space in the query, so it is escaped. */
	char path[512 + 3 * KUBE_MAX_CONTINUE + 64];
	kind_path(k, w->kind, path, sizeof(path));
	size_t pl = strlen(path);
	pl += (size_t)snprintf(path + pl, sizeof(path) - pl, "?limit=%d%s",
			       LIST_PAGE, cont ? "&continue=" : "");
	for (const char *c = cont; c && *c && pl + 4 < sizeof(path); c++)
		if (*c == '+') {
			memcpy(path + pl, "%2B", 3);
			pl += 3;
		} else {
			path[pl++] = *c;
		}
	path[pl] = '\0';
	long status = 0;
	*resp = NULL;
	if (kube_api_call(k->o.api, "GET", path, NULL, NULL, &status, resp, len,
			  err, errlen) < 0)
		return 0;
	return status;
}

/* A list, page by page (`limit`, then `continue` until the API gives no
 * token), as client-go's pager does: a namespace with more objects than
 * one answer should carry is still listed whole, and the store is
 * replaced only when every page is in. An expired token (410) starts the
 * list again from the first page, once; then the usual backoff. */
static void do_list(kube_ctl *k, kwatch *w)
{
	kube_list all = {0};
	char *cont = NULL;
	int restarts = 0;
	size_t pages = 0;
	for (;;) {
		char err[256], *resp;
		size_t len = 0;
		long status =
		    get_page(k, w, cont, &resp, &len, err, sizeof(err));
		if (status == 410 && cont && restarts++ == 0) {
			log_info("ingress: list %s: the continue token "
				 "expired after %zu page%s; listing again",
				 kube_kind_name(w->kind), pages,
				 pages == 1 ? "" : "s");
			free(resp);
			free(cont);
			cont = NULL;
			kube_list_free(&all);
			pages = 0;
			continue;
		}
		if (status == 0) {
			list_failed(k, w, true, "%s", err);
			goto fail;
		}
		if (status != 200) {
			char msg[256];
			kube_api_message(resp, len, msg, sizeof(msg));
			list_failed(
			    k, w, false, "%ld %s: %s%s", status,
			    status == 401   ? "Unauthorized"
			    : status == 403 ? "Forbidden"
			    : status == 410 ? "Gone"
					    : "error",
			    msg,
			    status == 401 ? " (check the token)"
			    : status == 403
				? " (check the RBAC: list/watch ingresses, "
				  "services, endpointslices)"
				: "");
			free(resp);
			goto fail;
		}
		kube_list l;
		const char *why = NULL;
		int rc = kube_list_decode(w->kind, resp, len, &l, &why);
		free(resp);
		if (rc == 0)
			rc = kube_list_append(&all, &l, &why);
		kube_list_free(&l);
		if (rc < 0) {
			list_failed(k, w, false, "%s", why);
			goto fail;
		}
		pages++;
		free(cont);
		cont = all.cont;
		all.cont = NULL;
		if (!cont)
			break;
	}
	size_t n = all.n;
	snprintf(w->rv, sizeof(w->rv), "%s", all.rv);
	kube_store_replace(&k->store, w->kind, &all);
	kube_list_free(&all);
	log_info("ingress: listed %zu %s in %zu page%s (resourceVersion %s)", n,
		 kube_kind_name(w->kind), pages, pages == 1 ? "" : "s", w->rv);
	w->listed = true;
	w->need_list = false;
	w->fails = 0;
	w->next_at = 0;
	mark_dirty(k);
	return;
fail:
	free(cont);
	kube_list_free(&all);
}

/* --- watches ----------------------------------------------------------------
 */

static void apply_line(kwatch *w, const char *line, size_t len)
{
	kube_ctl *k = w->k;
	kube_event ev;
	const char *why = NULL;
	if (kube_event_decode(w->kind, line, len, &ev, &why) < 0) {
		if (!ev.name[0]) {
			log_warn("ingress: watch %s: an event not understood "
				 "(%s); skipped",
				 kube_kind_name(w->kind), why);
			return;
		}
		/* An object we cannot use is left out, as in a list: the
		 * version held before (or one deleted) must not stay. */
		log_warn("ingress: watch %s: %s is not usable (%s); left out",
			 kube_kind_name(w->kind), ev.name, why);
		if (ev.rv[0])
			snprintf(w->rv, sizeof(w->rv), "%s", ev.rv);
		if (kube_store_del(&k->store, w->kind, ev.name))
			mark_dirty(k);
		return;
	}
	if (ev.type == KUBE_EV_ERROR) {
		log_info("ingress: watch %s: ERROR event %d: %s",
			 kube_kind_name(w->kind), ev.code, ev.message);
		if (ev.code == 410)
			w->gone = true;
		return;
	}
	if (ev.rv[0])
		snprintf(w->rv, sizeof(w->rv), "%s", ev.rv);
	if (ev.type == KUBE_EV_BOOKMARK)
		return;
	log_debug("ingress: watch %s: %s %s", kube_kind_name(w->kind),
		  ev.type == KUBE_EV_ADDED	? "ADDED"
		  : ev.type == KUBE_EV_MODIFIED ? "MODIFIED"
						: "DELETED",
		  ev.obj->name);
	if (ev.type == KUBE_EV_DELETED) {
		kube_store_del(&k->store, w->kind, ev.obj->name);
		kube_obj_free(ev.obj);
	} else {
		char name[sizeof(ev.name)];
		snprintf(name, sizeof(name), "%s", ev.name);
		if (!kube_store_put(&k->store, ev.obj))
			log_warn(
			    "ingress: watch %s: %s is one more than the %d "
			    "objects kept; left out",
			    kube_kind_name(w->kind), name, KUBE_MAX_OBJECTS);
	}
	mark_dirty(k);
}

static size_t on_watch(char *p, size_t sz, size_t nm, void *ud)
{
	kwatch *w = ud;
	size_t n = sz * nm;
	if (!w->status)
		curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->status);
	if (w->gone)
		return 0; /* a 410 came: stop reading, re-list */
	if (w->len + n > LINE_MAX_BYTES)
		return 0;
	if (w->len + n > w->cap) {
		w->cap = MAX(w->cap * 2, w->len + n);
		w->buf = xrealloc(w->buf, w->cap);
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	if (w->status != 200)
		return n; /* an error body: read at the end */
	/* Only the new bytes are looked at: a line that never ends (up to
	 * LINE_MAX_BYTES) costs its length, not its length squared. */
	size_t start = 0;
	for (size_t i = w->scanned; i < w->len && !w->gone; i++) {
		if (w->buf[i] != '\n')
			continue;
		if (i > start)
			apply_line(w, w->buf + start, i - start);
		start = i + 1;
	}
	if (w->gone)
		start = w->len;
	memmove(w->buf, w->buf + start, w->len - start);
	w->len -= start;
	w->scanned = w->len;
	return n;
}

static void watch_start(kube_ctl *k, kwatch *w)
{
	char path[768];
	kind_path(k, w->kind, path, sizeof(path));
	size_t l = strlen(path);
	snprintf(path + l, sizeof(path) - l,
		 "?watch=1&resourceVersion=%s&allowWatchBookmarks=true&"
		 "timeoutSeconds=%d",
		 w->rv, WATCH_TIMEOUT_S);
	w->h = kube_api_handle(k->o.api, path, WATCH_TIMEOUT_S + 30, &w->hdrs);
	if (!w->h) {
		w->next_at = core_now_ms() + backoff(k, w->fails++);
		return;
	}
	curl_easy_setopt(w->h, CURLOPT_HTTPHEADER, w->hdrs);
	curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, on_watch);
	curl_easy_setopt(w->h, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->h, CURLOPT_PRIVATE, w);
	w->status = 0;
	w->len = w->scanned = 0;
	w->gone = false;
	w->started = core_now_ms();
	curl_multi_add_handle(k->multi, w->h);
	log_debug("ingress: watching %s from resourceVersion %s",
		  kube_kind_name(w->kind), w->rv);
}

static void watch_free(kube_ctl *k, kwatch *w)
{
	if (!w->h)
		return;
	curl_multi_remove_handle(k->multi, w->h);
	curl_easy_cleanup(w->h);
	curl_slist_free_all(w->hdrs);
	w->h = NULL;
	w->hdrs = NULL;
}

static void watch_done(kube_ctl *k, kwatch *w, CURLcode rc)
{
	long status = w->status;
	if (!status)
		curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &status);
	uint64_t lasted = core_now_ms() - w->started;
	watch_free(k, w);
	const char *kind = kube_kind_name(w->kind);
	if (w->gone || status == 410) {
		log_info("ingress: watch %s: 410 Gone (resourceVersion %s too "
			 "old); re-listing",
			 kind, w->rv);
		w->need_list = true;
		w->gone = false;
		w->next_at = 0;
		w->len = w->scanned = 0;
		return;
	}
	if (status && status != 200) {
		char msg[256];
		kube_api_message(w->buf, w->len, msg, sizeof(msg));
		uint64_t d = backoff(k, w->fails++);
		log_warn("ingress: kubernetes API: watch %s: %ld %s: %s%s; "
			 "retrying in %.1f s",
			 kind, status,
			 status == 401	 ? "Unauthorized"
			 : status == 403 ? "Forbidden"
					 : "error",
			 msg, status == 401 ? " (check the token)" : "",
			 (double)d / 1000);
		w->len = w->scanned = 0;
		w->next_at = core_now_ms() + d;
		/* An expired token or lost rights: the next list says so. */
		if (status == 401 || status == 403)
			w->need_list = true;
		return;
	}
	w->len = w->scanned = 0;
	if (rc == CURLE_OK && lasted >= 1000) {
		/* the API ended it (timeoutSeconds, a restart): again now */
		w->fails = 0;
		log_debug("ingress: watch %s ended after %.1f s; again", kind,
			  (double)lasted / 1000);
		w->next_at = core_now_ms() + 50;
		return;
	}
	uint64_t d = backoff(k, w->fails++);
	log_warn("ingress: watch %s: %s after %.1f s; again in %.1f s", kind,
		 rc == CURLE_OK ? "closed" : curl_easy_strerror(rc),
		 (double)lasted / 1000, (double)d / 1000);
	w->next_at = core_now_ms() + d;
}

/* --- rules and status --------------------------------------------------------
 */

static void attempts_prune(kube_ctl *k);

static void rebuild(kube_ctl *k)
{
	kube_problems p = {0};
	tun_ruleset *rs = kube_map_build(&k->store, k->o.ns, k->o.ingress_class,
					 k->o.without_class, &p);
	if (!kube_problems_equal(&p, &k->problems))
		for (size_t i = 0; i < p.n; i++)
			log_warn("ingress: %s (that path answers 503)",
				 p.msg[i]);
	kube_problems_free(&k->problems);
	k->problems = p;
	size_t ours = 0;
	for (size_t i = 0; i < k->store.n[KUBE_INGRESS]; i++)
		ours +=
		    kube_ingress_ours(&k->store.objs[KUBE_INGRESS][i]->u.ing,
				      k->o.ingress_class, k->o.without_class);
	log_info("ingress: %zu Ingress%s of class %s, %zu service%s, %zu "
		 "EndpointSlice%s -> %zu rule%s",
		 ours, ours == 1 ? "" : "es", k->o.ingress_class,
		 k->store.n[KUBE_SERVICE],
		 k->store.n[KUBE_SERVICE] == 1 ? "" : "s",
		 k->store.n[KUBE_SLICE], k->store.n[KUBE_SLICE] == 1 ? "" : "s",
		 rs->nrules, rs->nrules == 1 ? "" : "s");
	tun_live_publish(k->o.live, rs);
	k->published = true;
	attempts_prune(k);
}

static bool status_ok(const kube_ctl *k, const kube_ingress *ing)
{
	if (ing->nstatus != 1)
		return false;
	const kube_lb *l = &ing->status[0];
	if (k->o.status_hostname)
		return l->hostname &&
		       !strcmp(l->hostname, k->o.status_hostname) && !l->ip;
	return l->ip && !strcmp(l->ip, k->o.status_ip) && !l->hostname;
}

/* Status writes are remembered only while they may be needed again: an
 * Ingress deleted, no longer ours, or whose status now reads right
 * drops its record, so a controller that runs for months while Ingresses
 * come and go holds one per Ingress still waiting, not one per name it
 * ever saw. */
static void attempts_prune(kube_ctl *k)
{
	size_t keep = 0;
	for (size_t i = 0; i < k->natt; i++) {
		attempt *a = &k->att[i];
		const kube_obj *o =
		    kube_store_get(&k->store, KUBE_INGRESS, a->name);
		if (o &&
		    kube_ingress_ours(&o->u.ing, k->o.ingress_class,
				      k->o.without_class) &&
		    !status_ok(k, &o->u.ing)) {
			k->att[keep++] = *a;
			continue;
		}
		log_debug("ingress: status record of %s dropped (%s)", a->name,
			  !o			    ? "deleted"
			  : status_ok(k, &o->u.ing) ? "written"
						    : "not ours");
		free(a->name);
		free(a->rv);
	}
	k->natt = keep;
}

static attempt *attempt_of(kube_ctl *k, const char *name)
{
	for (size_t i = 0; i < k->natt; i++)
		if (!strcmp(k->att[i].name, name))
			return &k->att[i];
	k->att = xrealloc(k->att, (k->natt + 1) * sizeof(*k->att));
	attempt *a = &k->att[k->natt++];
	*a = (attempt){.name = xstrdup(name)};
	return a;
}

static void write_status(kube_ctl *k, const kube_obj *o)
{
	attempt *a = attempt_of(k, o->name);
	uint64_t now = core_now_ms();
	const char *rv = o->rv ? o->rv : "";
	if (a->rv && !strcmp(a->rv, rv) && now < a->at + STATUS_RETRY_MS)
		return; /* tried for this version already */
	free(a->rv);
	a->rv = xstrdup(rv);
	a->at = now;
	json_t *lb = json_object();
	if (k->o.status_hostname)
		json_object_set_new(lb, "hostname",
				    json_string(k->o.status_hostname));
	else
		json_object_set_new(lb, "ip", json_string(k->o.status_ip));
	json_t *body = json_pack("{s:{s:{s:[o]}}}", "status", "loadBalancer",
				 "ingress", lb);
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	char path[512], err[256], msg[256];
	snprintf(path, sizeof(path),
		 "/apis/networking.k8s.io/v1/namespaces/%s/ingresses/%s/"
		 "status",
		 k->o.ns, o->name);
	long status;
	char *resp;
	size_t len;
	char name[256];
	snprintf(name, sizeof(name), "%s", o->name);
	if (kube_api_call(k->o.api, "PATCH", path, text,
			  "application/merge-patch+json", &status, &resp, &len,
			  err, sizeof(err)) < 0) {
		log_warn("ingress: status of %s: %s", name, err);
	} else if (status / 100 != 2) {
		kube_api_message(resp, len, msg, sizeof(msg));
		log_warn("ingress: status of %s: %ld: %s%s", name, status, msg,
			 status == 403 ? " (the RBAC needs update on "
					 "ingresses/status)"
				       : "");
		free(resp);
	} else {
		log_info("ingress: status of %s: loadBalancer %s %s", name,
			 k->o.status_hostname ? "hostname" : "ip",
			 k->o.status_hostname ? k->o.status_hostname
					      : k->o.status_ip);
		kube_obj *no = kube_obj_decode(KUBE_INGRESS, resp, len, NULL);
		if (no && !strcmp(no->name, name))
			(void)kube_store_put(&k->store, no); /* replaces o */
		else
			kube_obj_free(no);
		free(resp);
	}
	free(text);
}

static void statuses(kube_ctl *k)
{
	if (!tun_live_up(k->o.live))
		return;
	for (size_t i = 0; i < k->store.n[KUBE_INGRESS]; i++) {
		const kube_obj *o = k->store.objs[KUBE_INGRESS][i];
		if (kube_ingress_ours(&o->u.ing, k->o.ingress_class,
				      k->o.without_class) &&
		    !status_ok(k, &o->u.ing))
			write_status(k, o);
	}
}

/* --- the thread
 * ---------------------------------------------------------------- */

static void *run(void *arg)
{
	kube_ctl *k = arg;
	log_info("ingress: controller for namespace %s, class %s, API %s",
		 k->o.ns, k->o.ingress_class, kube_api_server(k->o.api));
	while (!atomic_load(&k->stop)) {
		uint64_t now = core_now_ms();
		bool synced = true;
		for (int i = 0; i < KUBE_NKINDS; i++) {
			kwatch *w = &k->w[i];
			if (w->need_list && now >= w->next_at &&
			    !atomic_load(&k->stop))
				do_list(k, w);
			now = core_now_ms();
			if (!w->need_list && !w->h && now >= w->next_at)
				watch_start(k, w);
			synced = synced && w->listed;
		}
		now = core_now_ms();
		if (synced && k->dirty && now >= k->dirty_at) {
			k->dirty = false;
			rebuild(k);
		}
		if (synced && k->published)
			statuses(k);
		uint64_t next = now + 1000;
		for (int i = 0; i < KUBE_NKINDS; i++)
			if ((k->w[i].need_list || !k->w[i].h))
				next = MIN(next, MAX(k->w[i].next_at, now));
		if (k->dirty)
			next = MIN(next, MAX(k->dirty_at, now));
		int ms = (int)(next - now);
		curl_multi_poll(k->multi, NULL, 0, ms, NULL);
		int running;
		curl_multi_perform(k->multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(k->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			kwatch *w = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
					  (char **)&w);
			CURLcode rc = m->data.result;
			if (w)
				watch_done(k, w, rc);
		}
	}
	return NULL;
}

kube_ctl *kube_ctl_start(const kube_ctl_opts *o)
{
	kube_ctl *k = xcalloc(1, sizeof(*k));
	k->o = *o;
	k->multi = curl_multi_init();
	kube_api_set_stop(k->o.api, &k->stop);
	if (core_random_key(&k->rnd, sizeof(k->rnd)) < 0 || !k->rnd)
		k->rnd = core_now_ns() | 1;
	for (int i = 0; i < KUBE_NKINDS; i++) {
		k->w[i].kind = (kube_kind)i;
		k->w[i].need_list = true;
		k->w[i].k = k;
	}
	if (!k->multi || pthread_create(&k->thread, NULL, run, k)) {
		if (k->multi)
			curl_multi_cleanup(k->multi);
		free(k);
		return NULL;
	}
	return k;
}

void kube_ctl_stop(kube_ctl *k)
{
	if (!k)
		return;
	atomic_store(&k->stop, true);
	curl_multi_wakeup(k->multi);
	pthread_join(k->thread, NULL);
	for (int i = 0; i < KUBE_NKINDS; i++) {
		watch_free(k, &k->w[i]);
		free(k->w[i].buf);
	}
	curl_multi_cleanup(k->multi);
	kube_store_clear(&k->store);
	kube_problems_free(&k->problems);
	for (size_t i = 0; i < k->natt; i++) {
		free(k->att[i].name);
		free(k->att[i].rv);
	}
	free(k->att);
	free(k);
}
