/* edge_admin.c - see edge_admin.h. */
#include "edge/edge_admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/api_preview.h"
#include "core/core_log.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "edge/edge_assets.h"
#include "edge/edge_dns.h"
#include "edge/edge_metrics.h"
#include "health/health_status.h"
#include "http/http1_parse.h"

#define ADMIN_HEAD_MAX 8192
/* Bounds of one connection, whatever the peer does: the whole request
 * (head and body) must arrive within ADMIN_READ_MS of the accept, and the
 * answer must be taken within ADMIN_WRITE_MS. */
#define ADMIN_READ_MS  5000
#define ADMIN_WRITE_MS 10000
/* Connections served at once, each on its own thread; one more is
 * answered 503 at once. A peer that sends slowly or never reads holds one
 * slot for at most the two bounds above, not the whole listener. */
#define ADMIN_MAX_CONNS 32

struct edge_admin {
	edge *e;
	int lfd, stop_fd;
	pthread_t thread; /* accepts and starts a thread per connection */
	/* Requests are handled one at a time (the API's writes, status and
	 * metrics rendering ran on a single thread before, and their code
	 * assumes it); only the network I/O of connections overlaps. */
	pthread_mutex_t handle_lock;
	pthread_mutex_t conns_lock;
	pthread_cond_t conns_idle; /* nconns dropped to 0 */
	unsigned nconns;
	uint64_t last_refusal_log_ms;
};

/* One connection, on its own thread: the request is read, handled (under
 * handle_lock) into `out`, then `out` is sent, with no lock held. */
typedef struct admin_conn {
	edge_admin *a;
	int fd;
	http1_request req;
	char *out; /* the whole answer, head and body */
	size_t outlen;
} admin_conn;

/* The connection a thread serves: its deadline and the stop eventfd, so a
 * slow peer never holds the thread past the deadline nor delays
 * shutdown. */
static _Thread_local uint64_t conn_deadline;
static _Thread_local int conn_stop_fd = -1;

/* Wait until fd is ready for ev. False at the deadline, on stop or on an
 * error. */
static bool wait_io(int fd, short ev)
{
	for (;;) {
		uint64_t now = core_now_ms();
		if (now >= conn_deadline)
			return false;
		struct pollfd p[2] = {{.fd = fd, .events = ev},
				      {.fd = conn_stop_fd, .events = POLLIN}};
		int n = poll(p, conn_stop_fd >= 0 ? 2 : 1,
			     (int)(conn_deadline - now));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (conn_stop_fd >= 0 && p[1].revents))
			return false;
		return true;
	}
}

/* recv with the connection's deadline: > 0 bytes, or <= 0 to give up. */
static ssize_t recv_dl(int fd, char *p, size_t n)
{
	for (;;) {
		ssize_t r = recv(fd, p, n, MSG_DONTWAIT);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if ((errno != EAGAIN && errno != EWOULDBLOCK) ||
		    !wait_io(fd, POLLIN))
			return -1;
	}
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!wait_io(fd, POLLOUT))
				return;
			continue;
		}
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Set the connection's answer (sent by conn_main once handling is over):
 * cache is its Cache-Control ("no-store"; NULL: none), extra more header
 * fields ("Name: value\r\n"...) or NULL. */
static void respond_with(admin_conn *c, int status, const char *reason,
			 const char *type, const void *body, size_t blen,
			 bool head_only, const char *cache, const char *extra)
{
	char head[1024];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
			 "Content-Length: %zu\r\n%s%s%s%s"
			 "Connection: close\r\n\r\n",
			 status, reason, type, blen,
			 cache ? "Cache-Control: " : "", cache ? cache : "",
			 cache ? "\r\n" : "", extra ? extra : "");
	if (n < 0 || (size_t)n >= sizeof(head))
		abort(); /* fixed strings of this file only */
	size_t hl = (size_t)n, bl = head_only ? 0 : blen;
	free(c->out);
	c->out = xmalloc(hl + bl + 1);
	memcpy(c->out, head, hl);
	if (bl)
		memcpy(c->out + hl, body, bl);
	c->outlen = hl + bl;
}

static void respond(admin_conn *c, int status, const char *reason,
		    const char *type, const char *body, size_t blen,
		    bool head_only)
{
	respond_with(c, status, reason, type, body, blen, head_only, "no-store",
		     NULL);
}

/* The dashboard's files: a page that may run only its own script and
 * style, in no frame, sending no referrer; revalidated on every load so a
 * new binary's page shows at once. */
#define DASHBOARD_HEADERS                                                      \
	"Content-Security-Policy: default-src 'self'; base-uri 'none'; "       \
	"form-action 'none'; frame-ancestors 'none'\r\n"                       \
	"X-Content-Type-Options: nosniff\r\n"                                  \
	"Referrer-Policy: no-referrer\r\n"

static bool serve_asset(admin_conn *c, http_str target, bool head_only)
{
	size_t n = target.len;
	const char *q = memchr(target.p, '?', target.len);
	if (q)
		n = (size_t)(q - target.p);
	const char *path = target.p;
	if ((n == 10 || n == 11) && !memcmp(path, "/dashboard/", n)) {
		path = "/dashboard/index.html";
		n = strlen(path);
	}
	for (const edge_asset *a = edge_assets; a->path; a++) {
		if (strlen(a->path) == n && !memcmp(a->path, path, n)) {
			respond_with(c, 200, "OK", a->type, a->data, a->len,
				     head_only, "no-cache", DASHBOARD_HEADERS);
			return true;
		}
	}
	return false;
}

static bool target_is(http_str t, const char *path)
{
	size_t n = strlen(path);
	return t.len >= n && !memcmp(t.p, path, n) &&
	       (t.len == n || t.p[n] == '?');
}

static bool query_has(http_str t, const char *kv)
{
	const char *q = memchr(t.p, '?', t.len);
	if (!q)
		return false;
	size_t qlen = t.len - (size_t)(q - t.p);
	return memmem(q, qlen, kv, strlen(kv)) != NULL;
}

/* The DNS counters (issue 4) after the health table, or as "dns" in its
 * JSON object. Nothing without DNS listeners. */
static size_t append_dns(const edge *e, char **buf, size_t len, bool json)
{
	if (!edge_dns_enabled(e))
		return len;
	edge_dns_stats st;
	edge_dns_stats_sum(e, &st);
	int n = edge_dns_stats_format(&st, NULL, 0, json);
	size_t at = len;
	if (json) /* {"pools":[...]}\n  ->  {"pools":[...],"dns":{...}}\n */
		while (at > 0 && (*buf)[at - 1] != '}')
			at--;
	if (n < 0 || (json && !at))
		return len;
	at -= json;
	size_t size = at + (size_t)n + 16;
	*buf = xrealloc(*buf, size);
	char *p = *buf + at;
	if (json)
		p = stpcpy(p, ",\"dns\":");
	edge_dns_stats_format(&st, p, size - (size_t)(p - *buf), json);
	p += n;
	if (json)
		p = stpcpy(p, "}\n");
	return (size_t)(p - *buf);
}

static void serve_status(admin_conn *c, bool json, bool head_only)
{
	edge_admin *a = c->a;
	/* A reference: a config swap may happen while we format. */
	const edge_snapshot *s = edge_acquire(a->e);
	/* One pass into a growing buffer: states may change while it
	 * formats, and a cut JSON document is no answer. */
	size_t n = 0;
	char *buf = health_format_status_alloc(s->cfg, s->ostates, s->pstates,
					       json, &n);
	size_t len = append_dns(a->e, &buf, n, json);
	respond(c, 200, "OK",
		json ? "application/json" : "text/plain; charset=utf-8", buf,
		len, head_only);
	free(buf);
	edge_snapshot_unref(s);
}

/* The REST API (src/api): read the body (Content-Length, bounded), hand
 * the request over, send the envelope. */
/* The status to refuse a write with as cross-site request forgery (403:
 * another origin, 415: not JSON), *why set; or 0.
 * A page on any site can make a browser send a "simple" POST (a form or
 * text/plain body, no custom header) to a loopback admin listener, which
 * needs no token; the browser says where it comes from (Origin) and
 * cannot send Content-Type: application/json across origins without a
 * CORS preflight, which this listener never grants. So a write must not
 * come from another origin, and its body must be JSON by type. */
static int csrf_refusal(const http1_request *q, const char **why)
{
	if (q->method_id == HTTP_M_GET || q->method_id == HTTP_M_HEAD)
		return 0;
	const http1_header *o =
	    http1_find_header(q->headers, q->nheaders, "Origin");
	if (o) {
		/* scheme "://" authority, and the authority is our Host */
		const char *sep = memmem(o->value.p, o->value.len, "://", 3);
		size_t at = sep ? (size_t)(sep - o->value.p) + 3 : 0;
		bool same =
		    sep && q->host.len == o->value.len - at &&
		    !strncasecmp(o->value.p + at, q->host.p, q->host.len);
		if (!same) {
			*why = "cross-origin requests are refused (Origin is "
			       "not this listener)";
			return 403;
		}
	}
	if (q->body != HTTP1_BODY_NONE && q->content_length > 0) {
		const http1_header *t =
		    http1_find_header(q->headers, q->nheaders, "Content-Type");
		if (!t || t->value.len < 16 ||
		    strncasecmp(t->value.p, "application/json", 16) ||
		    (t->value.len > 16 && t->value.p[16] != ';' &&
		     t->value.p[16] != ' ')) {
			*why = "send the body with Content-Type: "
			       "application/json";
			return 415;
		}
	}
	return 0;
}

static void serve_api(admin_conn *c, const char *head, size_t len)
{
	const http1_request *q = &c->req;
	int fd = c->fd;
	const char *why = NULL;
	int refuse_status = csrf_refusal(q, &why);
	if (refuse_status) {
		char m[256];
		bool origin = refuse_status == 403;
		int n = snprintf(m, sizeof(m),
				 "{\"success\":false,\"errors\":[{\"code\":%d,"
				 "\"message\":\"%s\"}],\"messages\":[],"
				 "\"result\":null}",
				 origin ? 10000 : 1002, why);
		respond(c, refuse_status,
			origin ? "Forbidden" : "Unsupported Media Type",
			"application/json", m, (size_t)n, false);
		return;
	}
	if (q->body == HTTP1_BODY_CHUNKED) {
		const char *m = "{\"success\":false,\"errors\":[{\"code\":1002,"
				"\"message\":\"send a Content-Length body\"}],"
				"\"messages\":[],\"result\":null}";
		respond(c, 411, "Length Required", "application/json", m,
			strlen(m), false);
		return;
	}
	if (q->content_length > API_MAX_BODY) {
		char m[256];
		int n =
		    snprintf(m, sizeof(m),
			     "{\"success\":false,\"errors\":[{\"code\":1002,"
			     "\"message\":\"body larger than %u bytes\"}],"
			     "\"messages\":[],\"result\":null}",
			     API_MAX_BODY);
		respond(c, 413, "Content Too Large", "application/json", m,
			(size_t)n, false);
		return;
	}
	size_t blen = (size_t)q->content_length;
	char *body = xmalloc(blen + 1);
	size_t have = len - q->head_len;
	if (have > blen)
		have = blen;
	memcpy(body, head + q->head_len, have);
	if (have < blen && q->conn.expect_continue)
		send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	while (have < blen) {
		ssize_t n = recv_dl(fd, body + have, blen - have);
		if (n <= 0) {
			free(body);
			return;
		}
		have += (size_t)n;
	}
	body[blen] = '\0';
	/* Every piece fits whole (the head is at most ADMIN_HEAD_MAX): nothing
	 * is cut short, which could change what the API sees. */
	char method[32], path[ADMIN_HEAD_MAX], query[ADMIN_HEAD_MAX];
	char auth[ADMIN_HEAD_MAX];
	if (q->method.len >= sizeof(method)) {
		free(body);
		/* Still the envelope: every answer under /client/v4/ is. */
		const char *m = "{\"success\":false,\"errors\":[{\"code\":7001,"
				"\"message\":\"method not allowed: longer than "
				"31 bytes\"}],\"messages\":[],\"result\":null}";
		respond(c, 405, "Method Not Allowed", "application/json", m,
			strlen(m), false);
		return;
	}
	snprintf(method, sizeof(method), "%.*s", (int)q->method.len,
		 q->method.p);
	const char *qm = memchr(q->target.p, '?', q->target.len);
	size_t plen = qm ? (size_t)(qm - q->target.p) : q->target.len;
	snprintf(path, sizeof(path), "%.*s", (int)plen, q->target.p);
	bool has_query = qm != NULL;
	if (qm)
		snprintf(query, sizeof(query), "%.*s",
			 (int)(q->target.len - plen - 1), qm + 1);
	const http1_header *h =
	    http1_find_header(q->headers, q->nheaders, "Authorization");
	if (h)
		snprintf(auth, sizeof(auth), "%.*s", (int)h->value.len,
			 h->value.p);
	api_request rq = {.method = method,
			  .path = path,
			  .query = has_query ? query : NULL,
			  .authorization = h ? auth : NULL,
			  .body = body,
			  .body_len = blen};
	api_response rs = {0};
	pthread_mutex_lock(&c->a->handle_lock);
	api_handle(c->a->e, &rq, &rs);
	pthread_mutex_unlock(&c->a->handle_lock);
	free(body);
	/* Every status src/api answers with (docs/API.md's error codes). */
	static const char *const reasons[] = {[200] = "OK",
					      [400] = "Bad Request",
					      [401] = "Unauthorized",
					      [403] = "Forbidden",
					      [404] = "Not Found",
					      [405] = "Method Not Allowed",
					      [409] = "Conflict",
					      [413] = "Content Too Large",
					      [429] = "Too Many Requests",
					      [500] = "Internal Server Error"};
	size_t nreasons = sizeof(reasons) / sizeof(*reasons);
	const char *reason =
	    rs.status > 0 && (size_t)rs.status < nreasons && reasons[rs.status]
		? reasons[rs.status]
		: "Status";
	char allow[128];
	if (rs.allow)
		snprintf(allow, sizeof(allow), "Allow: %s\r\n", rs.allow);
	respond_with(c, rs.status, reason, "application/json", rs.body, rs.len,
		     !strcmp(method, "HEAD"), "no-store",
		     rs.allow ? allow : NULL);
	free(rs.body);
}

static void serve(admin_conn *c)
{
	edge_admin *a = c->a;
	int fd = c->fd;
	char buf[ADMIN_HEAD_MAX];
	size_t len = 0;
	conn_stop_fd = a->stop_fd;
	conn_deadline = core_now_ms() + ADMIN_READ_MS;
	http1_limits lim = {.max_head_bytes = ADMIN_HEAD_MAX - 1,
			    .max_headers = 64,
			    .max_target = 2048};
	int r = 0;
	while (len < sizeof(buf)) {
		ssize_t n = recv_dl(fd, buf + len, sizeof(buf) - len);
		if (n <= 0)
			return;
		len += (size_t)n;
		r = http1_parse_request(buf, len, &lim, &c->req);
		if (r != 0)
			break;
	}
	if (r <= 0) {
		const char *m = "bad request\n";
		respond(c, 400, "Bad Request", "text/plain", m, strlen(m),
			false);
		return;
	}
	const http1_request *q = &c->req;
	if (q->target.len > 11 && !memcmp(q->target.p, "/client/v4/", 11)) {
		serve_api(c, buf, len);
		return;
	}
	bool head_only = q->method_id == HTTP_M_HEAD;
	if (q->method_id != HTTP_M_GET && !head_only) {
		/* Allow: a MUST on 405 (RFC 9110 15.5.6). */
		const char *m = "only GET and HEAD\n";
		respond_with(c, 405, "Method Not Allowed", "text/plain", m,
			     strlen(m), false, "no-store",
			     "Allow: GET, HEAD\r\n");
		return;
	}
	if (target_is(q->target, "/status")) {
		const http1_header *acc =
		    http1_find_header(q->headers, q->nheaders, "Accept");
		bool json = query_has(q->target, "format=json") ||
			    (acc && memmem(acc->value.p, acc->value.len,
					   "application/json", 16));
		pthread_mutex_lock(&a->handle_lock);
		serve_status(c, json, head_only);
		pthread_mutex_unlock(&a->handle_lock);
	} else if (target_is(q->target, "/metrics")) {
		size_t n;
		pthread_mutex_lock(&a->handle_lock);
		char *m = edge_metrics_render(a->e, &n);
		pthread_mutex_unlock(&a->handle_lock);
		respond(c, 200, "OK", EDGE_METRICS_CONTENT_TYPE, m, n,
			head_only);
		free(m);
	} else if (target_is(q->target, "/healthz")) {
		respond(c, 200, "OK", "text/plain", "ok\n", 3, head_only);
	} else if (serve_asset(c, q->target, head_only)) {
		/* the dashboard */
	} else if (target_is(q->target, "/")) {
		respond_with(c, 302, "Found", "text/plain", "/dashboard/\n", 12,
			     head_only, NULL, "Location: /dashboard/\r\n");
	} else {
		const char *m = "not found: try /dashboard/, /status, "
				"/status?format=json, /healthz, /metrics, "
				"/client/v4/\n";
		respond(c, 404, "Not Found", "text/plain", m, strlen(m),
			head_only);
	}
}

static void *conn_main(void *arg)
{
	admin_conn *c = arg;
	edge_admin *a = c->a;
	core_log_set_thread_name("admin");
	serve(c);
	if (c->out) {
		/* The answer gets its own bound, from when it starts. */
		conn_deadline = core_now_ms() + ADMIN_WRITE_MS;
		send_all(c->fd, c->out, c->outlen);
	}
	shutdown(c->fd, SHUT_WR);
	close(c->fd);
	free(c->out);
	free(c);
	pthread_mutex_lock(&a->conns_lock);
	if (--a->nconns == 0)
		pthread_cond_broadcast(&a->conns_idle);
	pthread_mutex_unlock(&a->conns_lock);
	return NULL;
}

static _Atomic uint64_t refused_total;

uint64_t edge_admin_refused_total(void)
{
	return atomic_load_explicit(&refused_total, memory_order_relaxed);
}

/* Over ADMIN_MAX_CONNS: a 503 in one non-blocking send, then close. */
static void refuse(edge_admin *a, int fd)
{
#define REFUSED_BODY "admin: too many connections\n"
	static const char m[] = "HTTP/1.1 503 Service Unavailable\r\n"
				"Content-Type: text/plain\r\n"
				"Content-Length: 28\r\nRetry-After: 1\r\n"
				"Connection: close\r\n\r\n" REFUSED_BODY;
	_Static_assert(sizeof(REFUSED_BODY) - 1 == 28, "Content-Length");
#undef REFUSED_BODY
	ssize_t n = send(fd, m, sizeof(m) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)n;
	close(fd);
	atomic_fetch_add_explicit(&refused_total, 1, memory_order_relaxed);
	uint64_t now = core_now_ms();
	if (now - a->last_refusal_log_ms >= 10000) {
		a->last_refusal_log_ms = now;
		log_warn("admin: %d connections open, refusing more (each is "
			 "bounded: %d s to send a request, %d s to read the "
			 "answer)",
			 ADMIN_MAX_CONNS, ADMIN_READ_MS / 1000,
			 ADMIN_WRITE_MS / 1000);
	}
}

static void *admin_main(void *arg)
{
	edge_admin *a = arg;
	core_log_set_thread_name("admin");
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		struct pollfd p[2] = {{.fd = a->lfd, .events = POLLIN},
				      {.fd = a->stop_fd, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (core_sock_err_local(errno)) {
				/* The connection stays in the backlog and
				 * poll says readable at once: back off rather
				 * than spin a core until descriptors free. */
				log_warn_every(1000, "admin accept: %s",
					       strerror(errno));
				poll(&p[1], 1, 100);
			}
			continue;
		}
		pthread_mutex_lock(&a->conns_lock);
		bool full = a->nconns >= ADMIN_MAX_CONNS;
		if (!full)
			a->nconns++;
		pthread_mutex_unlock(&a->conns_lock);
		if (full) {
			refuse(a, fd);
			continue;
		}
		admin_conn *c = xcalloc(1, sizeof(*c));
		c->a = a;
		c->fd = fd;
		pthread_t t;
		if (pthread_create(&t, &attr, conn_main, c) != 0) {
			free(c);
			pthread_mutex_lock(&a->conns_lock);
			if (--a->nconns == 0)
				pthread_cond_broadcast(&a->conns_idle);
			pthread_mutex_unlock(&a->conns_lock);
			refuse(a, fd);
		}
	}
	pthread_attr_destroy(&attr);
	return NULL;
}

edge_admin *edge_admin_start(edge *e)
{
	const cfg_snapshot *cfg = edge_current(e)->cfg;
	const cfg_addr *addr = &cfg->edge.listen_admin;
	if (edge_api_unguarded(cfg)) {
		log_error("admin: refusing to serve the API on %s without "
			  "tokens: set api.tokens (or MERIDIAN_API_TOKEN), or "
			  "listen on a loopback address",
			  addr->text);
		return NULL;
	}
	edge_admin *a = xcalloc(1, sizeof(*a));
	a->e = e;
	a->stop_fd = -1;
	pthread_mutex_init(&a->handle_lock, NULL);
	pthread_mutex_init(&a->conns_lock, NULL);
	pthread_cond_init(&a->conns_idle, NULL);
	a->lfd = core_sock_listen((const struct sockaddr *)&addr->ss, addr->len,
				  false, 64);
	if (a->lfd < 0) {
		log_error("cannot listen on %s (admin): %s", addr->text,
			  strerror(-a->lfd));
		free(a);
		return NULL;
	}
	/* The listener is non-blocking; poll tells when to accept. */
	a->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (a->stop_fd < 0 ||
	    pthread_create(&a->thread, NULL, admin_main, a) != 0) {
		log_error("cannot start the admin thread");
		if (a->stop_fd >= 0)
			close(a->stop_fd);
		close(a->lfd);
		free(a);
		return NULL;
	}
	log_info("admin: listening on http://%s (/status, /healthz, /metrics, "
		 "/client/v4)",
		 addr->text);
	return a;
}

void edge_admin_stop(edge_admin *a)
{
	if (!a)
		return;
	uint64_t one = 1;
	ssize_t n = write(a->stop_fd, &one, sizeof(one));
	(void)n;
	pthread_join(a->thread, NULL);
	/* Connection threads see the stop eventfd in every wait and finish
	 * at once (one being handled completes its request first). */
	pthread_mutex_lock(&a->conns_lock);
	while (a->nconns > 0)
		pthread_cond_wait(&a->conns_idle, &a->conns_lock);
	pthread_mutex_unlock(&a->conns_lock);
	api_preview_stop(); /* after the last request: joins the runner */
	close(a->stop_fd);
	close(a->lfd);
	pthread_mutex_destroy(&a->handle_lock);
	pthread_mutex_destroy(&a->conns_lock);
	pthread_cond_destroy(&a->conns_idle);
	free(a);
}
