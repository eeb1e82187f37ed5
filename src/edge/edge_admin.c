/* edge_admin.c - see edge_admin.h. */
#include "edge/edge_admin.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/core_log.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "health/health_status.h"
#include "http/http1_parse.h"

#define ADMIN_HEAD_MAX	    8192
#define ADMIN_IO_TIMEOUT_MS 2000

struct edge_admin {
	const edge_snapshot *snap;
	int lfd, stop_fd;
	pthread_t thread;
	http1_request req;
};

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void respond(int fd, int status, const char *reason, const char *type,
		    const char *body, size_t blen, bool head_only)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
			 "Content-Length: %zu\r\nCache-Control: no-store\r\n"
			 "Connection: close\r\n\r\n",
			 status, reason, type, blen);
	send_all(fd, head, (size_t)n);
	if (!head_only)
		send_all(fd, body, blen);
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

static void serve_status(edge_admin *a, int fd, bool json, bool head_only)
{
	const edge_snapshot *s = a->snap;
	int n =
	    health_format_status(s->cfg, s->ostates, s->pstates, NULL, 0, json);
	if (n < 0) {
		respond(fd, 500, "Internal Server Error", "text/plain", "", 0,
			head_only);
		return;
	}
	/* States may change between the two calls: leave some room. */
	size_t size = (size_t)n + 4096;
	char *buf = xmalloc(size);
	n = health_format_status(s->cfg, s->ostates, s->pstates, buf, size,
				 json);
	if (n < 0 || (size_t)n >= size)
		n = (int)strlen(buf);
	respond(fd, 200, "OK",
		json ? "application/json" : "text/plain; charset=utf-8", buf,
		(size_t)n, head_only);
	free(buf);
}

static void serve(edge_admin *a, int fd)
{
	char buf[ADMIN_HEAD_MAX];
	size_t len = 0;
	struct timeval tv = {.tv_sec = ADMIN_IO_TIMEOUT_MS / 1000,
			     .tv_usec = (ADMIN_IO_TIMEOUT_MS % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	http1_limits lim = {.max_head_bytes = ADMIN_HEAD_MAX - 1,
			    .max_headers = 64,
			    .max_target = 2048};
	int r = 0;
	while (len < sizeof(buf)) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n <= 0)
			return;
		len += (size_t)n;
		r = http1_parse_request(buf, len, &lim, &a->req);
		if (r != 0)
			break;
	}
	if (r <= 0) {
		const char *m = "bad request\n";
		respond(fd, 400, "Bad Request", "text/plain", m, strlen(m),
			false);
		return;
	}
	const http1_request *q = &a->req;
	bool head_only = q->method_id == HTTP_M_HEAD;
	if (q->method_id != HTTP_M_GET && !head_only) {
		const char *m = "only GET and HEAD\n";
		respond(fd, 405, "Method Not Allowed", "text/plain", m,
			strlen(m), false);
		return;
	}
	if (target_is(q->target, "/status")) {
		const http1_header *acc =
		    http1_find_header(q->headers, q->nheaders, "Accept");
		bool json = query_has(q->target, "format=json") ||
			    (acc && memmem(acc->value.p, acc->value.len,
					   "application/json", 16));
		serve_status(a, fd, json, head_only);
	} else if (target_is(q->target, "/healthz")) {
		respond(fd, 200, "OK", "text/plain", "ok\n", 3, head_only);
	} else {
		const char *m = "not found: try /status, /status?format=json, "
				"/healthz\n";
		respond(fd, 404, "Not Found", "text/plain", m, strlen(m),
			head_only);
	}
}

static void *admin_main(void *arg)
{
	edge_admin *a = arg;
	core_log_set_thread_name("admin");
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
		if (fd < 0)
			continue;
		serve(a, fd);
		shutdown(fd, SHUT_WR);
		close(fd);
	}
	return NULL;
}

edge_admin *edge_admin_start(const edge_snapshot *snap)
{
	const cfg_addr *addr = &snap->cfg->edge.listen_admin;
	edge_admin *a = xcalloc(1, sizeof(*a));
	a->snap = snap;
	a->stop_fd = -1;
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
	log_info("admin: listening on http://%s (/status, /healthz)",
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
	close(a->stop_fd);
	close(a->lfd);
	free(a);
}
