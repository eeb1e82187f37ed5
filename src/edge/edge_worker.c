/* edge_worker.c - a worker thread: its loop, listeners, wake-ups, drain.
 * The proxy itself lives in src/http/px_conn.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core_log.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "edge/edge.h"
#include "edge/edge_dns.h"
#include "edge/edge_worker.h"
#include "http/px.h"
#include "http/px_head.h"
#include "tls/tls.h"
#include "waf/waf.h"

/* A connection the edge will not serve: on http listeners a canned 503
 * (best effort: the socket buffer of a new connection takes it without
 * blocking), on https ones nothing (no plain text inside TLS). */
static void refuse(edge_worker *w, const edge_listener *li, int fd)
{
	if (!li->tls) {
		ssize_t s = send(fd, w->overload, (size_t)w->overload_len,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)s;
		shutdown(fd, SHUT_WR);
	}
	close(fd);
}

static void listener_cb(core_io *io, uint32_t ev)
{
	edge_listener *li = container_of(io, edge_listener, io);
	edge_worker *w = li->w;
	uint32_t max = w->snap->cfg->edge.limits.max_connections;
	/* Edge-triggered: accept until EAGAIN or the edge is lost. */
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(io->fd, (struct sockaddr *)&ss, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (core_sock_err_local(errno)) {
				/* Every new connection wakes the listener
				 * again: say it once per second, not once per
				 * connection, and keep one retry timer. */
				log_warn_every(1000,
					       "accept: %s; retrying "
					       "every 100ms",
					       strerror(errno));
				if (!core_timer_armed(&w->accept_retry))
					core_timer_after(&w->loop,
							 &w->accept_retry, 100);
			}
			return;
		}
		unsigned n = atomic_fetch_add(&w->e->nconns, 1) + 1;
		if (n > max) {
			atomic_fetch_sub(&w->e->nconns, 1);
			atomic_fetch_add_explicit(&w->e->refused_max, 1,
						  memory_order_relaxed);
			refuse(w, li, fd);
			continue;
		}
		uint64_t key;
		if (!px_client_may_connect(w, (struct sockaddr *)&ss, &key)) {
			atomic_fetch_sub(&w->e->nconns, 1);
			refuse(w, li, fd);
			continue;
		}
		px_client_accept(w, fd, (struct sockaddr *)&ss,
				 li->tls ? w->snap->tls : NULL, key);
	}
}

static void accept_retry_cb(core_timer *t)
{
	edge_worker *w = container_of(t, edge_worker, accept_retry);
	for (size_t i = 0; i < w->nlisteners; i++)
		if (w->listeners[i].io.fd >= 0)
			listener_cb(&w->listeners[i].io, EPOLLIN);
}

void edge_worker_close_listeners(edge_worker *w)
{
	for (size_t i = 0; i < w->nlisteners; i++) {
		if (w->listeners[i].io.fd >= 0) {
			close(w->listeners[i].io.fd);
			w->listeners[i].io.fd = -1;
		}
	}
	core_timer_cancel(&w->loop, &w->accept_retry);
	core_timer_cancel(&w->loop, &w->tls_rotate);
}

/* Session ticket keys are shared by every tls_server of the edge (each is
 * built with the previous as `prev`): one timer on worker 0 rotates them. */
static void tls_rotate_cb(core_timer *t)
{
	edge_worker *w = container_of(t, edge_worker, tls_rotate);
	tls_server *s = w->snap->tls;
	if (!s)
		return;
	tls_server_rotate_tickets(s);
	core_timer_after(&w->loop, t, tls_server_rotation_ms(s));
}

/* Worker 0, after a swap: a changed ticket_rotation takes effect now
 * (the next rotation at the earlier of the armed one and a new period
 * from now), not once the old period has run out; a timer not armed
 * (no TLS before) is armed. Not while draining (the listeners are
 * closed and the timer cancelled). */
static void tls_rotate_follow(edge_worker *w, uint32_t old_ms)
{
	const tls_server *s = w->snap->tls;
	if (w->id != 0 || !s || w->draining)
		return;
	uint32_t ms = tls_server_rotation_ms(s);
	bool armed = core_timer_armed(&w->tls_rotate);
	if (armed && ms == old_ms)
		return;
	uint64_t at = w->loop.now + ms;
	if (armed && w->tls_rotate.deadline < at)
		at = w->tls_rotate.deadline;
	core_timer_set(&w->loop, &w->tls_rotate, at);
}

static void drain_timer_cb(core_timer *t)
{
	edge_worker *w = container_of(t, edge_worker, drain_timer);
	if (w->nclients)
		log_warn("%s: closing %u connection%s",
			 atomic_load(&w->e->drain_now)
			     ? "drain cut short"
			     : "drain deadline passed",
			 w->nclients, w->nclients == 1 ? "" : "s");
	px_close_all(w);
	w->loop.stop = true;
}

static void wake_cb(core_io *io, uint32_t ev)
{
	edge_worker *w = container_of(io, edge_worker, wake_io);
	uint64_t v;
	while (read(io->fd, &v, sizeof(v)) > 0)
		;
	/* A config swap (edge_swap_publish): new requests use the new
	 * snapshot. The pending slot carries a reference for us. */
	edge_snapshot *next =
	    atomic_exchange_explicit(&w->pending, NULL, memory_order_acq_rel);
	if (next) {
		uint32_t rot =
		    w->snap->tls ? tls_server_rotation_ms(w->snap->tls) : 0;
		px_adopt_snapshot(w, next);
		edge_snapshot_unref(next);
		tls_rotate_follow(w, rot);
	}
	if (atomic_load(&w->e->draining) && !w->draining) {
		w->draining = true;
		/* Connections the kernel already accepted for us would be
		 * reset when the listener closes: take them first (each is
		 * answered once, with Connection: close). */
		for (size_t i = 0; i < w->nlisteners; i++)
			if (w->listeners[i].io.fd >= 0)
				listener_cb(&w->listeners[i].io, EPOLLIN);
		edge_worker_close_listeners(w);
		px_drain(w);
		core_timer_after(&w->loop, &w->drain_timer,
				 w->snap->cfg->edge.timeouts.drain_ms);
	}
	if (w->draining && atomic_load(&w->e->drain_now))
		core_timer_set(&w->loop, &w->drain_timer, w->loop.now);
}

static void post_batch(core_loop *l, void *arg)
{
	edge_worker *w = arg;
	px_flush(w);
	px_reap(w);
	if (w->draining && w->nclients == 0)
		l->stop = true;
}

int edge_worker_init(edge_worker *w, edge *e, uint32_t id)
{
	const edge_snapshot *snap = edge_current(e);
	const cfg_snapshot *cfg = snap->cfg;
	int err;
	w->wake_io.fd = -1;
	w->e = e;
	w->id = id;
	edge_snapshot_ref(snap);
	w->snap = snap;
	err = core_loop_init(&w->loop);
	if (err < 0)
		return err;
	w->loop.post = post_batch;
	w->loop.post_arg = w;
	core_timer_init(&w->drain_timer, drain_timer_cb);
	core_timer_init(&w->accept_retry, accept_retry_cb);
	core_timer_init(&w->tls_rotate, tls_rotate_cb);
	core_buf_pool_init(&w->bufs, e->buf_size, 1024);
	w->overload_len =
	    px_head_local(503, "too many client connections", cfg->edge.name,
			  true, false, w->overload, sizeof(w->overload));
	if (w->overload_len < 0)
		return -ENAMETOOLONG;
	w->idle = xcalloc(cfg->norigins ? cfg->norigins : 1, sizeof(*w->idle));
	lb_retry_init(&w->retry_budget);
	w->rng = ((uint64_t)id + 1) * 0x9E3779B97F4A7C15ULL ^ core_wall_ms();
	if (!w->rng)
		w->rng = 1;
	if (getrandom(&w->req_id, sizeof(w->req_id), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(w->req_id)) {
		/* Only before the kernel's pool is ready: unique still. */
		w->req_id.mask = w->rng;
		memcpy(w->req_id.key, &w->rng, sizeof(w->rng));
	}

	w->wake_io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->wake_io.cb = wake_cb;
	if (w->wake_io.fd < 0)
		return -errno;
	err = core_loop_add(&w->loop, &w->wake_io, true);
	if (err < 0)
		return err;

	/* edge.listen.http, then edge.listen.https */
	size_t nhttp = cfg->edge.nlisten_http;
	w->nlisteners = nhttp + cfg->edge.nlisten_https;
	w->listeners =
	    xcalloc(w->nlisteners ? w->nlisteners : 1, sizeof(*w->listeners));
	for (size_t i = 0; i < w->nlisteners; i++)
		w->listeners[i].io.fd = -1;
	for (size_t i = 0; i < w->nlisteners; i++) {
		bool tls = i >= nhttp;
		const cfg_addr *a = tls ? &cfg->edge.listen_https[i - nhttp]
					: &cfg->edge.listen_http[i];
		int fd = core_sock_listen((const struct sockaddr *)&a->ss,
					  a->len, true, 4096);
		if (fd < 0) {
			log_error("cannot listen on %s: %s", a->text,
				  strerror(-fd));
			return fd;
		}
		w->listeners[i].w = w;
		w->listeners[i].tls = tls;
		w->listeners[i].io.fd = fd;
		w->listeners[i].io.cb = listener_cb;
		err = core_loop_add(&w->loop, &w->listeners[i].io, true);
		if (err < 0)
			return err;
	}
	if (id == 0 && snap->tls)
		core_timer_after(&w->loop, &w->tls_rotate,
				 tls_server_rotation_ms(snap->tls));
	return edge_dns_worker_init(w); /* edge.listen.dns (issue 4) */
}

void edge_worker_destroy(edge_worker *w)
{
	px_close_all(w);
	edge_worker_close_listeners(w);
	if (w->wake_io.fd >= 0)
		close(w->wake_io.fd);
	w->wake_io.fd = -1;
	while (w->free_clients) {
		px_client *cl = w->free_clients;
		w->free_clients = cl->next;
		free(cl->rule_lb);
		free(cl);
	}
	while (w->free_upstreams) {
		px_upstream *up = w->free_upstreams;
		w->free_upstreams = up->next;
		free(up);
	}
	free(w->listeners);
	w->listeners = NULL;
	free(w->idle);
	w->idle = NULL;
	edge_dns_worker_destroy(w); /* issue 4 */
	waf_engine_free(w->waf);
	w->waf = NULL;
	core_buf_pool_destroy(&w->bufs);
	core_loop_destroy(&w->loop);
	edge_snapshot_unref(w->snap);
	w->snap = NULL;
	edge_snapshot_unref(atomic_exchange(&w->pending, NULL));
}

void edge_worker_wake(edge_worker *w)
{
	uint64_t one = 1;
	ssize_t n = write(w->wake_io.fd, &one, sizeof(one));
	(void)n;
}

void *edge_worker_main(void *arg)
{
	edge_worker *w = arg;
	char name[16];
	snprintf(name, sizeof(name), "worker-%u", w->id);
	core_log_set_thread_name(name);
	int err = core_loop_run(&w->loop);
	if (err < 0)
		log_error("event loop failed: %s", strerror(-err));
	px_close_all(w);
	return NULL;
}
