/* notify.c - the notifier thread: queue, debounce, deliveries over libcurl.
 * See notify.h for the behaviour; the pure parts are in notify_msg.c and
 * notify_debounce.c.
 *
 * The thread owns a curl multi handle and sleeps in curl_multi_poll() until
 * the next due time (a debounce window ending, a retry becoming due) or
 * until notify_submit() wakes it with curl_multi_wakeup(). Every delivery is
 * a job with a due time; each target (the mail server, each webhook) runs
 * at most its share of NOTIFY_MAX_RUNNING transfers at once (at least one),
 * each bounded by its timeouts, so a dead receiver costs its own slots,
 * never another target's, nor the thread.
 */
#include "notify/notify.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/core_arena.h"
#include "core/core_log.h"
#include "core/core_util.h"
#include "notify/notify_debounce.h"
#include "notify/notify_msg.h"

enum {
	NOTIFY_QUEUE_MAX = 4096,   /* events waiting for the thread */
	NOTIFY_JOBS_MAX = 4096,	   /* deliveries waiting or running */
	NOTIFY_MAX_RUNNING = 16,   /* concurrent transfers, shared out */
	NOTIFY_POLL_MAX_MS = 1000, /* longest sleep without a reason */
};

/* Debounce entities of origins and pools quiet for a day are forgotten
 * (removed pools would stay forever); swept every ten minutes. */
#define NOTIFY_EXPIRE_IDLE_MS  (24u * 3600u * 1000u)
#define NOTIFY_EXPIRE_EVERY_MS (600u * 1000u)

#define EMAIL_TARGET (-1)

typedef struct notify_target {
	const char *url;
	const char *label; /* "webhook[0] (http://host:port)" */
	/* Webhooks: Content-Type and cf-webhook-auth. */
	struct curl_slist *headers;
	size_t running; /* transfers in flight (notifier thread) */
	/* Email: the URL holds credentials, which only go over TLS
	 * (smtps://, or smtp:// with STARTTLS required). */
	bool creds;
} notify_target;

typedef struct notify_job {
	struct notify_job *next;
	int target; /* EMAIL_TARGET or a webhook index */
	char *payload;
	size_t len, off;  /* off: SMTP upload cursor */
	unsigned attempt; /* attempts finished */
	uint64_t due;	  /* monotonic ms */
	CURL *easy;	  /* while running */
	char what[160];	  /* the subject, for logs */
	char err[CURL_ERROR_SIZE];
	/* Email: recipients the server refused in this attempt (the mail
	 * still goes to the others: CURLOPT_MAIL_RCPT_ALLOWFAILS). */
	char rcpt[256];	   /* the RCPT TO whose reply is awaited */
	char refused[512]; /* "addr (reply)", ... */
	unsigned nrefused;
} notify_job;

struct notify_ctx {
	bool active;
	pthread_t thread;
	pthread_mutex_t lock;
	/* Under lock. */
	notify_queue queue;
	bool stopping;
	bool handover; /* stopping: keep the pending changes (notify_restart) */
	size_t unsettled; /* events taken by the thread, not yet accounted */
	size_t inner;	  /* pending changes + jobs, as of the last pass */

	/* The notifier thread's own. */
	CURLM *multi;
	notify_db *db;
	notify_job *jobs; /* waiting and running, oldest first */
	size_t njobs;
	size_t target_max; /* running transfers per target */
	uint64_t seq;

	/* Targets, copied at start (the snapshot may go away). */
	core_arena *arena;
	notify_site site;
	bool has_email;
	notify_target email;
	char *mail_from; /* "<addr>" */
	struct curl_slist *rcpts;
	notify_target *webhooks;
	size_t nwebhooks;

	_Atomic uint64_t submitted, sent, failed, retried, dropped, debounced,
	    filtered, rcpt_refused;
};

/* ---- curl global state: initialised by the first active notifier ---- */

static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned global_users;

static bool global_ref(void)
{
	bool ok = true;
	pthread_mutex_lock(&global_lock);
	if (global_users == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		ok = false;
	else
		global_users++;
	pthread_mutex_unlock(&global_lock);
	return ok;
}

static void global_unref(void)
{
	pthread_mutex_lock(&global_lock);
	if (global_users && --global_users == 0)
		curl_global_cleanup();
	pthread_mutex_unlock(&global_lock);
}

/* ---- start ---- */

/* Whether url carries a user (and so a password) to log in with. */
static bool url_has_user(const char *url)
{
	CURLU *u = curl_url();
	char *user = NULL;
	bool has = u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
		   !curl_url_get(u, CURLUPART_USER, &user, 0) && user && *user;
	curl_free(user);
	curl_url_cleanup(u);
	return has;
}

/* "kind (scheme://host:port)" without user info, path or query (which may
 * hold credentials); "kind (bad URL)" when curl cannot parse it. */
static const char *target_label(core_arena *a, const char *kind,
				const char *url, bool *bad)
{
	char buf[320];
	char *scheme = NULL, *host = NULL, *port = NULL;
	CURLU *u = curl_url();
	*bad = true;
	if (u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
	    !curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) &&
	    !curl_url_get(u, CURLUPART_HOST, &host, 0)) {
		curl_url_get(u, CURLUPART_PORT, &port, 0);
		snprintf(buf, sizeof(buf), "%s (%s://%s%s%s)", kind, scheme,
			 host, port ? ":" : "", port ? port : "");
		*bad = false;
	} else {
		snprintf(buf, sizeof(buf), "%s (bad URL)", kind);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return core_arena_strdup(a, buf);
}

static void copy_targets(notify_ctx *n, const cfg_snapshot *cfg)
{
	const cfg_notifications *c = &cfg->notifications;
	core_arena *a = n->arena;
	bool bad;
	n->site.edge =
	    core_arena_strdup(a, cfg->edge.name ? cfg->edge.name : "meridian");
	n->site.account_id = core_arena_strdup(
	    a, cfg->api.account_id ? cfg->api.account_id : "default");
	if (c->has_email && c->email.smtp_url && c->email.from &&
	    c->email.nto) {
		n->has_email = true;
		n->email.url = core_arena_strdup(a, c->email.smtp_url);
		n->email.label = target_label(a, "email", n->email.url, &bad);
		n->email.creds = url_has_user(n->email.url);
		if (bad)
			log_error("notify: %s: curl cannot parse the SMTP URL; "
				  "emails will fail",
				  n->email.label);
		n->site.from = core_arena_strdup(a, c->email.from);
		size_t len = strlen(c->email.from) + 3;
		n->mail_from = core_arena_alloc(a, len);
		snprintf(n->mail_from, len, "<%s>", c->email.from);
		const char **to =
		    core_arena_alloc(a, c->email.nto * sizeof(*to));
		for (size_t i = 0; i < c->email.nto; i++) {
			to[i] = core_arena_strdup(a, c->email.to[i]);
			char rcpt[512];
			snprintf(rcpt, sizeof(rcpt), "<%s>", to[i]);
			n->rcpts = curl_slist_append(n->rcpts, rcpt);
		}
		n->site.to = to;
		n->site.nto = c->email.nto;
	}
	n->nwebhooks = c->nwebhooks;
	n->webhooks = core_arena_alloc(a, (c->nwebhooks ? c->nwebhooks : 1) *
					      sizeof(*n->webhooks));
	for (size_t i = 0; i < c->nwebhooks; i++) {
		notify_target *t = &n->webhooks[i];
		char kind[32];
		snprintf(kind, sizeof(kind), "webhook[%zu]", i);
		t->url = core_arena_strdup(a, c->webhooks[i].url);
		t->label = target_label(a, kind, t->url, &bad);
		if (bad)
			log_error("notify: %s: curl cannot parse the URL; its "
				  "deliveries will fail",
				  t->label);
		t->headers =
		    curl_slist_append(NULL, "Content-Type: application/json");
		t->headers = curl_slist_append(t->headers, "Expect:");
		const char *secret = c->webhooks[i].secret;
		if (secret && *secret) {
			/* Never logged; lives only in this list. */
			size_t len =
			    strlen(secret) + sizeof("cf-webhook-auth: ");
			char *h = xmalloc(len);
			snprintf(h, len, "cf-webhook-auth: %s", secret);
			t->headers = curl_slist_append(t->headers, h);
			memset(h, 0, len);
			free(h);
		}
	}
}

static void *notify_main(void *arg);

static void free_targets(notify_ctx *n)
{
	curl_slist_free_all(n->rcpts);
	for (size_t i = 0; i < n->nwebhooks; i++)
		curl_slist_free_all(n->webhooks[i].headers);
	core_arena_free(n->arena);
}

static bool configured(const cfg_snapshot *cfg)
{
	return cfg && (cfg->notifications.has_email ||
		       cfg->notifications.nwebhooks != 0);
}

/* notify_start, taking over db (NULL: a new one). */
static notify_ctx *start_with(const cfg_snapshot *cfg, notify_db *db)
{
	notify_ctx *n = xcalloc(1, sizeof(*n));
	if (!configured(cfg) || !global_ref()) {
		if (configured(cfg))
			log_error("notify: curl_global_init failed; "
				  "notifications off");
		notify_db_free(db);
		return n; /* drops events */
	}
	n->arena = core_arena_new(0);
	copy_targets(n, cfg);
	size_t ntargets = n->nwebhooks + (n->has_email ? 1 : 0);
	n->target_max = MAX(NOTIFY_MAX_RUNNING / MAX(ntargets, 1), 1);
	if (db)
		notify_db_set_debounce(db, cfg->notifications.debounce_ms,
				       core_now_ms());
	else
		db = notify_db_new(cfg->notifications.debounce_ms);
	n->db = db;
	n->multi = curl_multi_init();
	pthread_mutex_init(&n->lock, NULL);
	if (!n->multi)
		goto fail;
	/* The thread takes no process signals (the main thread waits on
	 * them with signalfd). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&n->thread, NULL, notify_main, n);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		goto fail;
	n->active = true;
	log_info("notify: %s%zu webhook(s), debounce %u ms",
		 n->has_email ? "email, " : "", n->nwebhooks,
		 cfg->notifications.debounce_ms);
	return n;
fail:
	log_error("notify: cannot start the notifier; notifications off");
	if (n->multi)
		curl_multi_cleanup(n->multi);
	n->multi = NULL;
	notify_db_free(n->db);
	n->db = NULL;
	pthread_mutex_destroy(&n->lock);
	free_targets(n);
	n->arena = NULL;
	n->rcpts = NULL;
	n->nwebhooks = 0;
	global_unref();
	return n;
}

notify_ctx *notify_start(const cfg_snapshot *cfg)
{
	return start_with(cfg, NULL);
}

/* ---- submit (any thread) ---- */

bool notify_active(const notify_ctx *n)
{
	return n && n->active;
}

void notify_submit(notify_ctx *n, const cfg_pool *pool, const notify_event *ev)
{
	if (!n || !n->active || !ev)
		return;
	notify_item *it =
	    notify_item_new(ev, pool ? pool->name : NULL,
			    pool ? &pool->notification_filter : NULL);
	if (!it) {
		uint64_t d = atomic_fetch_add(&n->dropped, 1) + 1;
		log_error("notify: out of memory, event dropped (%llu dropped)",
			  (unsigned long long)d);
		return;
	}
	pthread_mutex_lock(&n->lock);
	notify_item *old = notify_queue_push(&n->queue, it, NOTIFY_QUEUE_MAX);
	pthread_mutex_unlock(&n->lock);
	atomic_fetch_add(&n->submitted, 1);
	curl_multi_wakeup(n->multi);
	if (old) {
		uint64_t d = atomic_fetch_add(&n->dropped, 1) + 1;
		/* The first drop and then one line per 1024. */
		if (d == 1 || d % 1024 == 0)
			log_warn("notify: queue full (%d events), oldest event "
				 "dropped (%llu dropped so far)",
				 NOTIFY_QUEUE_MAX, (unsigned long long)d);
		free(old);
	}
}

void notify_counters_add(notify_counters *dst, const notify_counters *src)
{
	dst->submitted += src->submitted;
	dst->sent += src->sent;
	dst->failed += src->failed;
	dst->retried += src->retried;
	dst->dropped += src->dropped;
	dst->debounced += src->debounced;
	dst->filtered += src->filtered;
	dst->rcpt_refused += src->rcpt_refused;
	dst->pending += src->pending;
}

void notify_counters_get(notify_ctx *n, notify_counters *out)
{
	memset(out, 0, sizeof(*out));
	if (!n || !n->active)
		return;
	out->submitted = atomic_load(&n->submitted);
	out->sent = atomic_load(&n->sent);
	out->failed = atomic_load(&n->failed);
	out->retried = atomic_load(&n->retried);
	out->dropped = atomic_load(&n->dropped);
	out->debounced = atomic_load(&n->debounced);
	out->filtered = atomic_load(&n->filtered);
	out->rcpt_refused = atomic_load(&n->rcpt_refused);
	pthread_mutex_lock(&n->lock);
	out->pending = n->queue.len + n->unsettled + n->inner;
	pthread_mutex_unlock(&n->lock);
}

/* ---- jobs (notifier thread) ---- */

static notify_target *job_target(notify_ctx *n, const notify_job *j)
{
	return j->target == EMAIL_TARGET ? &n->email : &n->webhooks[j->target];
}

static void job_free(notify_job *j)
{
	free(j->payload);
	free(j);
}

static void job_unlink(notify_ctx *n, notify_job *j)
{
	for (notify_job **pp = &n->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			n->njobs--;
			return;
		}
	}
}

static void job_add(notify_ctx *n, int target, char *payload, size_t len,
		    const char *what, uint64_t now)
{
	if (n->njobs >= NOTIFY_JOBS_MAX) {
		/* Make room: the oldest job that is not running. */
		for (notify_job *j = n->jobs; j; j = j->next) {
			if (j->easy)
				continue;
			log_warn("notify: too many deliveries pending; %s: "
				 "dropped \"%s\"",
				 job_target(n, j)->label, j->what);
			job_unlink(n, j);
			job_free(j);
			atomic_fetch_add(&n->dropped, 1);
			break;
		}
	}
	if (n->njobs >= NOTIFY_JOBS_MAX) {
		free(payload);
		atomic_fetch_add(&n->dropped, 1);
		return;
	}
	notify_job *j = xcalloc(1, sizeof(*j));
	j->target = target;
	j->payload = payload;
	j->len = len;
	j->due = now;
	snprintf(j->what, sizeof(j->what), "%s", what);
	notify_job **pp = &n->jobs;
	while (*pp)
		pp = &(*pp)->next;
	*pp = j;
	n->njobs++;
}

/* A change out of the debounce: filter, then one job per target. */
static void release(notify_ctx *n, notify_item *c, uint64_t now)
{
	char subject[256];
	notify_subject(c, subject, sizeof(subject));
	const char *what = subject + strlen("[Meridian] ");
	if (!notify_filter_pass(&c->filter, c->kind, c->new_healthy)) {
		atomic_fetch_add(&n->filtered, 1);
		log_info("notify: not sent (notification_filter): %s", what);
		return;
	}
	if (notify_startup_quiet(c)) {
		atomic_fetch_add(&n->filtered, 1);
		log_info("notify: not sent (first verdict, healthy): %s", what);
		return;
	}
	char old[32];
	notify_clean(c->old_state, old, sizeof(old));
	log_info("notify: %s (was %s)", what, old);
	if (n->has_email) {
		size_t len = 0;
		char *msg = notify_email_build(c, &n->site, core_wall_ms(),
					       ++n->seq, (long)getpid(), &len);
		job_add(n, EMAIL_TARGET, msg, len, what, now);
	}
	if (n->nwebhooks) {
		size_t len = 0;
		char *json = notify_json_build(c, &n->site, &len);
		for (size_t i = 0; i < n->nwebhooks; i++) {
			if (!json) {
				atomic_fetch_add(&n->failed, 1);
				log_error("notify: %s: cannot build the JSON "
					  "body for \"%s\"",
					  n->webhooks[i].label, what);
				continue;
			}
			job_add(n, (int)i, xstrdup(json), len, what, now);
		}
		free(json);
	}
}

static size_t read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	notify_job *j = arg;
	size_t room = size * nitems, left = j->len - j->off;
	size_t k = MIN(room, left);
	memcpy(buf, j->payload + j->off, k);
	j->off += k;
	return k;
}

static size_t discard_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	(void)buf;
	(void)arg;
	return size * nitems;
}

static void set_protocols(CURL *e, bool email)
{
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR,
			 email ? "smtp,smtps" : "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS,
			 email ? (long)(CURLPROTO_SMTP | CURLPROTO_SMTPS)
			       : (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
}

/* Start the transfer of j. Returns 0, or -1 when no handle could be made
 * (counted as a failed attempt by the caller). */
/* libcurl's SMTP dialogue, line by line: a RCPT TO going out, then its
 * reply. With MAIL_RCPT_ALLOWFAILS curl sends the mail to the recipients
 * the server took and says nothing of the others; this is how they are
 * found, to be logged and counted. */
static int smtp_trace_cb(CURL *e, curl_infotype type, char *data, size_t size,
			 void *ud)
{
	(void)e;
	notify_job *j = ud;
	size_t k = size; /* the line without its CRLF */
	while (k && (data[k - 1] == '\r' || data[k - 1] == '\n'))
		k--;
	if (type == CURLINFO_HEADER_OUT && k > 8 &&
	    !strncasecmp(data, "RCPT TO:", 8)) {
		snprintf(j->rcpt, sizeof(j->rcpt), "%.*s", (int)(k - 8),
			 data + 8);
	} else if (type == CURLINFO_HEADER_IN && j->rcpt[0] && size >= 3) {
		if (data[0] == '4' || data[0] == '5') {
			size_t len = strlen(j->refused);
			if (len + 8 < sizeof(j->refused))
				snprintf(j->refused + len,
					 sizeof(j->refused) - len,
					 "%s%s (%.*s)", len ? ", " : "",
					 j->rcpt, (int)MIN(k, 120), data);
			core_mask_controls(j->refused + len); /* for the log */
			j->nrefused++;
		}
		if (size < 4 || data[3] != '-') /* the reply's last line */
			j->rcpt[0] = '\0';
	}
	return 0;
}

static int job_start(notify_ctx *n, notify_job *j)
{
	notify_target *t = job_target(n, j);
	bool email = j->target == EMAIL_TARGET;
	CURL *e = curl_easy_init();
	if (!e)
		return -1;
	j->err[0] = '\0';
	j->off = 0;
	curl_easy_setopt(e, CURLOPT_PRIVATE, j);
	curl_easy_setopt(e, CURLOPT_URL, t->url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 NOTIFY_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, NOTIFY_TOTAL_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->err);
	set_protocols(e, email);
	if (email) {
		j->rcpt[0] = j->refused[0] = '\0';
		j->nrefused = 0;
		curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, smtp_trace_cb);
		curl_easy_setopt(e, CURLOPT_DEBUGDATA, j);
		curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
		curl_easy_setopt(e, CURLOPT_MAIL_FROM, n->mail_from);
		curl_easy_setopt(e, CURLOPT_MAIL_RCPT, n->rcpts);
#if LIBCURL_VERSION_NUM >= 0x080200
		curl_easy_setopt(e, CURLOPT_MAIL_RCPT_ALLOWFAILS, 1L);
#elif LIBCURL_VERSION_NUM >= 0x074500
		curl_easy_setopt(e, CURLOPT_MAIL_RCPT_ALLLOWFAILS, 1L);
#endif
		/* STARTTLS when the server offers it; required when there
		 * are credentials: a server that does not offer it would
		 * get the password in the clear. */
		curl_easy_setopt(e, CURLOPT_USE_SSL,
				 t->creds ? (long)CURLUSESSL_ALL
					  : (long)CURLUSESSL_TRY);
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)j->len);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(e, CURLOPT_READDATA, j);
	} else {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->payload);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)j->len);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
		curl_easy_setopt(e, CURLOPT_USERAGENT,
				 "Meridian/" MERIDIAN_VERSION);
		curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
	}
	if (curl_multi_add_handle(n->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		return -1;
	}
	if (j->attempt > 0)
		atomic_fetch_add(&n->retried, 1);
	j->easy = e;
	t->running++;
	return 0;
}

/* An attempt of j finished (j->easy already released). */
static void job_done(notify_ctx *n, notify_job *j, int code, long status,
		     bool stopping, uint64_t now)
{
	const notify_target *t = job_target(n, j);
	bool http = j->target != EMAIL_TARGET;
	j->attempt++;
	notify_outcome o = notify_classify(code, http, status);
	if (o == NOTIFY_DELIVERED) {
		atomic_fetch_add(&n->sent, 1);
		log_info("notify: %s: delivered \"%s\" (attempt %u)", t->label,
			 j->what, j->attempt);
		if (j->nrefused) {
			atomic_fetch_add(&n->rcpt_refused, j->nrefused);
			log_warn("notify: %s: \"%s\" did not reach %u "
				 "recipient%s, refused by the server: %s",
				 t->label, j->what, j->nrefused,
				 j->nrefused == 1 ? "" : "s", j->refused);
		}
		job_unlink(n, j);
		job_free(j);
		return;
	}
	char why[CURL_ERROR_SIZE + 64];
	if (code != CURLE_OK && !http && status > 0)
		/* What the server said: curl's text is often only "Weird
		 * server reply". */
		snprintf(why, sizeof(why), "%s (SMTP reply %ld)",
			 j->err[0] ? j->err
				   : curl_easy_strerror((CURLcode)code),
			 status);
	else if (code != CURLE_OK)
		snprintf(why, sizeof(why), "%s",
			 j->err[0] ? j->err
				   : curl_easy_strerror((CURLcode)code));
	else
		snprintf(why, sizeof(why), "HTTP status %ld", status);
	if (o == NOTIFY_RETRY && j->attempt < NOTIFY_MAX_ATTEMPTS) {
		uint64_t delay = stopping ? 0 : notify_backoff_ms(j->attempt);
		j->due = now + delay;
		log_warn("notify: %s: attempt %u/%u for \"%s\" failed: %s; "
			 "retry in %llu ms%s",
			 t->label, j->attempt, NOTIFY_MAX_ATTEMPTS, j->what,
			 why, (unsigned long long)delay,
			 stopping ? " (stopping)" : "");
		return;
	}
	atomic_fetch_add(&n->failed, 1);
	log_error("notify: %s: giving up on \"%s\" after %u attempt(s): %s",
		  t->label, j->what, j->attempt, why);
	job_unlink(n, j);
	job_free(j);
}

/* Whether j waits (not running) with its target below its share of
 * transfers (a receiver that hangs holds only its own slots): it starts
 * once due. */
static bool job_may_start(notify_ctx *n, const notify_job *j)
{
	return !j->easy && job_target(n, j)->running < n->target_max;
}

static void start_due(notify_ctx *n, bool stopping, uint64_t now)
{
	notify_job *j = n->jobs;
	while (j) {
		notify_job *next = j->next;
		if (job_may_start(n, j) && j->due <= now &&
		    job_start(n, j) < 0) {
			snprintf(j->err, sizeof(j->err),
				 "cannot start a transfer");
			job_done(n, j, CURLE_OUT_OF_MEMORY, 0, stopping, now);
		}
		j = next;
	}
}

static void reap(notify_ctx *n, bool stopping, uint64_t now)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(n->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *e = m->easy_handle;
		CURLcode code = m->data.result;
		char *priv = NULL;
		long status = 0;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
		notify_job *j = (notify_job *)priv;
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
		curl_multi_remove_handle(n->multi, e);
		curl_easy_cleanup(e);
		job_target(n, j)->running--;
		j->easy = NULL;
		job_done(n, j, code, status, stopping, now);
	}
}

/* How long the thread may sleep (ms). */
static long next_wait(notify_ctx *n, bool stopping, uint64_t deadline,
		      uint64_t now)
{
	uint64_t next = notify_db_next_due(n->db);
	for (notify_job *j = n->jobs; j; j = j->next)
		if (j->due < next && job_may_start(n, j))
			next = j->due;
	if (stopping && deadline < next)
		next = deadline;
	long wait = NOTIFY_POLL_MAX_MS;
	if (next <= now)
		wait = 0;
	else if (next - now < (uint64_t)wait)
		wait = (long)(next - now);
	long ct = -1;
	if (curl_multi_timeout(n->multi, &ct) == CURLM_OK && ct >= 0 &&
	    ct < wait)
		wait = ct;
	return wait;
}

static void feed(notify_ctx *n, notify_item *list, uint64_t now)
{
	while (list) {
		notify_item *it = list;
		list = list->next;
		it->next = NULL;
		notify_db_result r = notify_db_feed(n->db, it, now);
		if (r == NOTIFY_DB_FLAP || r == NOTIFY_DB_REPLACED)
			atomic_fetch_add(&n->debounced, 1);
		else if (r == NOTIFY_DB_BASELINE)
			atomic_fetch_add(&n->filtered, 1);
	}
}

static void abort_jobs(notify_ctx *n)
{
	while (n->jobs) {
		notify_job *j = n->jobs;
		if (j->easy) {
			curl_multi_remove_handle(n->multi, j->easy);
			curl_easy_cleanup(j->easy);
			job_target(n, j)->running--;
		}
		atomic_fetch_add(&n->failed, 1);
		log_error("notify: %s: not delivered at stop: \"%s\"",
			  job_target(n, j)->label, j->what);
		n->jobs = j->next;
		n->njobs--;
		job_free(j);
	}
}

static void *notify_main(void *arg)
{
	notify_ctx *n = arg;
	core_log_set_thread_name("notify");
	uint64_t deadline = 0, next_expire = 0;
	for (;;) {
		size_t nb;
		pthread_mutex_lock(&n->lock);
		notify_item *batch = notify_queue_take(&n->queue, &nb);
		n->unsettled = nb;
		bool stopping = n->stopping, handover = n->handover;
		pthread_mutex_unlock(&n->lock);

		uint64_t now = core_now_ms();
		feed(n, batch, now);
		if (now >= next_expire) {
			next_expire = now + NOTIFY_EXPIRE_EVERY_MS;
			notify_db_expire(n->db, now, NOTIFY_EXPIRE_IDLE_MS);
		}
		notify_item *c;
		while ((c = notify_db_pop_due(n->db, now))) {
			release(n, c, now);
			free(c);
		}
		if (stopping) {
			if (!deadline)
				deadline = now + NOTIFY_STOP_MS;
			/* Handed over: the next notifier sends them. */
			size_t d = handover ? 0 : notify_db_drop_pending(n->db);
			if (d) {
				atomic_fetch_add(&n->dropped, d);
				log_info("notify: stop: %zu change(s) inside "
					 "their debounce window not sent",
					 d);
			}
			for (notify_job *j = n->jobs; j; j = j->next)
				if (!j->easy && j->due > now)
					j->due = now; /* one last try */
		}
		start_due(n, stopping, now);
		int running = 0;
		curl_multi_perform(n->multi, &running);
		now = core_now_ms();
		reap(n, stopping, now);

		pthread_mutex_lock(&n->lock);
		n->unsettled = 0;
		n->inner = notify_db_pending(n->db) + n->njobs;
		pthread_mutex_unlock(&n->lock);

		if (stopping && (n->njobs == 0 || now >= deadline))
			break;
		long wait = next_wait(n, stopping, deadline, now);
		if (wait > 0)
			curl_multi_poll(n->multi, NULL, 0, (int)wait, NULL);
	}
	abort_jobs(n);
	return NULL;
}

/* ---- stop ---- */

void notify_stop(notify_ctx *n)
{
	notify_stop_counted(n, NULL);
}

/* Stop n; with keep, the debounce state is not dropped but moved to *keep
 * (NULL when n had none). */
static void stop(notify_ctx *n, notify_counters *out, notify_db **keep)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (keep)
		*keep = NULL;
	if (!n)
		return;
	if (n->active) {
		pthread_mutex_lock(&n->lock);
		n->stopping = true;
		n->handover = keep != NULL;
		pthread_mutex_unlock(&n->lock);
		curl_multi_wakeup(n->multi);
		pthread_join(n->thread, NULL);
		notify_counters c;
		notify_counters_get(n, &c);
		log_info("notify: stopped: %llu sent, %llu failed, %llu "
			 "dropped, %llu debounced, %llu filtered",
			 (unsigned long long)c.sent,
			 (unsigned long long)c.failed,
			 (unsigned long long)c.dropped,
			 (unsigned long long)c.debounced,
			 (unsigned long long)c.filtered);
		if (out) {
			*out = c;
			out->pending = 0;
		}
		size_t nq;
		notify_item *it = notify_queue_take(&n->queue, &nq);
		while (it) {
			notify_item *next = it->next;
			free(it);
			it = next;
		}
		curl_multi_cleanup(n->multi);
		if (keep) {
			*keep = n->db;
			n->db = NULL;
		}
		notify_db_free(n->db);
		pthread_mutex_destroy(&n->lock);
		free_targets(n);
		global_unref();
	}
	free(n);
}

void notify_stop_counted(notify_ctx *n, notify_counters *out)
{
	stop(n, out, NULL);
}

notify_ctx *notify_restart(notify_ctx *n, const cfg_snapshot *cfg,
			   notify_counters *out)
{
	notify_db *db = NULL;
	/* Without targets the pending changes have nowhere to go: dropped
	 * (and counted) as at any stop. */
	stop(n, out, configured(cfg) ? &db : NULL);
	if (db && notify_db_pending(db))
		log_info("notify: %zu change(s) inside their debounce window "
			 "handed to the new notifier",
			 notify_db_pending(db));
	return start_with(cfg, db);
}
