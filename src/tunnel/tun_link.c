/* tun_link.c - one connector connection on the edge (see tun_edge.h and
 * docs/ARCHITECTURE.md "Tunnels"): TLS, the hello (tun_hello.h), then an
 * nghttp2 client session whose bytes go through tls_conn. Runs on the
 * tunnel thread. */
#include "tunnel/tun_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core_log.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "edge/edge.h"
#include "tunnel/tun_hello.h"

/* ---- links: I/O ---- */

static void link_unlist(tun_link *l)
{
	tun_link **head = l->entry ? &l->entry->links : &l->t->all;
	if (!l->entry && (l->prev || *head == l))
		l->t->npending--;
	if (l->prev)
		l->prev->next = l->next;
	else if (*head == l)
		*head = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
}

static void link_list(tun_link *l, tun_link **head)
{
	l->prev = NULL;
	l->next = *head;
	if (*head)
		(*head)->prev = l;
	*head = l;
}

void tun_link_close(tun_link *l, const char *why)
{
	if (l->closed)
		return;
	if (l->busy) {
		if (!l->close_why)
			l->close_why = why;
		return;
	}
	l->closed = true;
	tun_entry *en = l->entry;
	if (en) {
		log_info("tunnel %s: connector %s (%s) disconnected: %s",
			 en->id, l->name, l->peer, why);
		for (tun_bridge *b = en->bridges, *nx; b; b = nx) {
			nx = b->next;
			if (b->link != l)
				continue;
			b->unconsumed = 0;
			bool open = !b->resp_done;
			b->link = NULL;
			b->sid = -1;
			if (open)
				tun_bridge_stream_failed(
				    b, "the tunnel's connector connection "
				       "was lost");
		}
	}
	link_unlist(l);
	if (en) {
		en->nlinks--;
		tun_conns_del(en, l);
		tun_entry_update(en);
	}
	if (l->h2)
		nghttp2_session_del(l->h2);
	l->h2 = NULL;
	if (l->tls.ssl) {
		if (l->state == L_H2)
			(void)tls_conn_shutdown(&l->tls);
		tls_conn_free(&l->tls);
	}
	if (l->io.fd >= 0)
		close(l->io.fd);
	l->io.fd = -1;
	l->dead_next = l->t->dead_links;
	l->t->dead_links = l;
}

/* Write what is queued: first the bytes TLS has not taken, then what
 * nghttp2 has to send. */
void tun_link_flush(tun_link *l)
{
	if (l->closed || !l->can_write || l->busy)
		return;
	for (int guard = 0; guard < 1024; guard++) {
		/* First what TLS has not taken yet; else nghttp2's next frame,
		 * written from its own buffer (only a rest TLS does not take
		 * is copied, as OpenSSL wants the same bytes again). */
		const uint8_t *src = l->out;
		size_t len = l->outlen;
		if (!len && l->h2) {
			l->busy = true;
			ssize_t n = nghttp2_session_mem_send(l->h2, &src);
			l->busy = false;
			if (l->close_why) {
				tun_link_close(l, l->close_why);
				return;
			}
			if (n < 0) {
				tun_link_close(l, nghttp2_strerror((int)n));
				return;
			}
			len = (size_t)n;
		}
		if (!len)
			break;
		ssize_t w = tls_conn_write(&l->tls, src, len);
		if (w < 0 && w != TLS_WANT_WRITE && w != TLS_WANT_READ) {
			tun_link_close(l, tls_conn_error(&l->tls)
					      ? tls_conn_error(&l->tls)
					      : "write failed");
			return;
		}
		size_t done = w > 0 ? (size_t)w : 0;
		if (done)
			l->last_tx = l->t->loop.now;
		if (src == l->out) {
			memmove(l->out, l->out + done, len - done);
		} else if (done < len) {
			tun_grow(&l->out, &l->outcap, len - done);
			memcpy(l->out, src + done, len - done);
		}
		l->outlen = len - done;
		if (w < 0) {
			l->can_write = false;
			return;
		}
	}
	if (l->state == L_REFUSING && !l->outlen) {
		tun_link_close(l, "refused");
		return;
	}
	if (l->h2 && !nghttp2_session_want_read(l->h2) &&
	    !nghttp2_session_want_write(l->h2) && !l->outlen)
		tun_link_close(l, "the session ended (GOAWAY)");
}

/* Feed received bytes to nghttp2, busy meanwhile (a close a callback
 * asked for happens after). false: the link is closed. */
static bool link_recv(tun_link *l, const uint8_t *p, size_t n)
{
	l->busy = true;
	ssize_t r = nghttp2_session_mem_recv(l->h2, p, n);
	l->busy = false;
	if (l->close_why) {
		tun_link_close(l, l->close_why);
		return false;
	}
	if (r < 0) {
		tun_link_close(l, nghttp2_strerror((int)r));
		return false;
	}
	return true;
}

static int link_h2_start(tun_link *l)
{
	nghttp2_session_callbacks *cbs;
	if (nghttp2_session_callbacks_new(&cbs))
		return -1;
	nghttp2_session_callbacks_set_on_header_callback(cbs, tun_h2_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(
	    cbs, tun_h2_on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
	    cbs, tun_h2_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(
	    cbs, tun_h2_on_stream_close);
	nghttp2_option *opt;
	if (nghttp2_option_new(&opt)) {
		nghttp2_session_callbacks_del(cbs);
		return -1;
	}
	/* Windows reopen as the workers take the bytes (bridge_give_back):
	 * a slow client slows the connector's service down. */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	int rc = nghttp2_session_client_new2(&l->h2, cbs, l, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	if (rc)
		return -1;
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_RESP_HEAD_BYTES},
	};
	if (nghttp2_submit_settings(l->h2, NGHTTP2_FLAG_NONE, iv,
				    sizeof(iv) / sizeof(iv[0])) ||
	    nghttp2_session_set_local_window_size(l->h2, NGHTTP2_FLAG_NONE, 0,
						  CONN_WINDOW))
		return -1;
	return 0;
}

static void hello_refuse(tun_link *l, const tun_hello *h)
{
	char ans[768];
	size_t n = tun_hello_answer(h, ans, sizeof(ans));
	tun_grow(&l->out, &l->outcap, n);
	memcpy(l->out, ans, n);
	l->outlen = n;
	l->state = L_REFUSING;
	atomic_fetch_add_explicit(
	    &l->t->hellos[h->status == 401 ? TUN_HELLO_UNAUTHORIZED
					   : TUN_HELLO_REFUSED],
	    1, memory_order_relaxed);
	log_info("tunnel: connector at %s refused: %d %s", l->peer, h->status,
		 h->why);
	tun_link_flush(l);
}

/* The hello is whole: judge it, answer, and start HTTP/2. */
static void hello_done(tun_link *l, http1_request *req, size_t head_len)
{
	tun_edge *t = l->t;
	const edge_snapshot *snap = edge_acquire(t->e);
	tun_hello h;
	tun_hello_judge(req, l->hello, snap->cfg, &h);
	tun_entry *en = NULL;
	if (h.status == 101) {
		en = tun_entry_get(t, h.tunnel->id);
		if (t->stopping) {
			h.status = 503;
			h.why = "the edge is shutting down";
		} else if (en->nlinks >= MAX_LINKS_PER_TUN) {
			h.status = 503;
			h.why = "the tunnel has its 64 connections already";
		}
	}
	if (h.status != 101) {
		edge_snapshot_unref(snap);
		hello_refuse(l, &h);
		return;
	}
	l->token = xstrdup(h.tunnel->token);
	edge_snapshot_unref(snap);
	snprintf(l->name, sizeof(l->name), "%s", h.connector);
	char ans[256];
	size_t n = tun_hello_answer(&h, ans, sizeof(ans));
	if (link_h2_start(l) < 0) {
		tun_link_close(l, "out of memory");
		return;
	}
	tun_grow(&l->out, &l->outcap, n);
	memcpy(l->out, ans, n);
	l->outlen = n;
	link_unlist(l);
	l->entry = en;
	link_list(l, &en->links);
	en->nlinks++;
	l->state = L_H2;
	tun_conns_add(en, l);
	atomic_fetch_add_explicit(&t->hellos[TUN_HELLO_ACCEPTED], 1,
				  memory_order_relaxed);
	log_info("tunnel %s: connector %s (%s) connected", en->id, l->name,
		 l->peer);
	/* Bytes after the hello are already HTTP/2. */
	size_t rest = l->hello_len - head_len;
	if (rest) {
		if (!link_recv(l, (const uint8_t *)l->hello + head_len, rest))
			return;
	}
	free(l->hello);
	l->hello = NULL;
	tun_entry_update(en);
	tun_link_flush(l);
}

static void link_read(tun_link *l)
{
	tun_edge *t = l->t;
	while (l->can_read && !l->closed) {
		if (l->state == L_REFUSING)
			return;
		if (l->state == L_HELLO) {
			if (!l->hello)
				l->hello = xmalloc(TUN_HELLO_MAX);
			ssize_t r =
			    tls_conn_read(&l->tls, l->hello + l->hello_len,
					  TUN_HELLO_MAX - l->hello_len);
			if (r == TLS_WANT_READ || r == TLS_WANT_WRITE) {
				l->can_read = false;
				if (r == TLS_WANT_WRITE)
					l->can_write = false;
				return;
			}
			if (r <= 0) {
				atomic_fetch_add_explicit(
				    &t->hellos[TUN_HELLO_FAILED], 1,
				    memory_order_relaxed);
				tun_link_close(l,
					       r == TLS_CLOSED
						   ? "closed before its hello"
						   : "TLS failed");
				return;
			}
			l->hello_len += (size_t)r;
			l->last_rx = t->loop.now;
			http1_request req;
			http1_limits lim = {.max_head_bytes = TUN_HELLO_MAX};
			int pr = http1_parse_request(l->hello, l->hello_len,
						     &lim, &req);
			if (pr > 0) {
				hello_done(l, &req, (size_t)pr);
				continue;
			}
			if (pr < 0 || l->hello_len == TUN_HELLO_MAX) {
				tun_hello h = {
				    .status =
					pr < 0 ? http1_err_status(pr) : 431,
				    .why = pr < 0 ? http1_err_reason(pr)
						  : "hello too large"};
				hello_refuse(l, &h);
				return;
			}
			continue;
		}
		ssize_t r = tls_conn_read(&l->tls, t->rbuf, sizeof(t->rbuf));
		if (r == TLS_WANT_READ || r == TLS_WANT_WRITE) {
			l->can_read = false;
			if (r == TLS_WANT_WRITE)
				l->can_write = false;
			break;
		}
		if (r <= 0) {
			tun_link_close(l, r == TLS_CLOSED
					      ? "closed by the connector"
					      : (tls_conn_error(&l->tls)
						     ? tls_conn_error(&l->tls)
						     : "TLS failed"));
			return;
		}
		l->last_rx = t->loop.now;
		if (!link_recv(l, t->rbuf, (size_t)r))
			return;
	}
	tun_bridges_flush(t);
	if (!l->closed)
		tun_link_flush(l);
}

static void link_io_cb(core_io *io, uint32_t ev)
{
	tun_link *l = (tun_link *)io;
	if (l->closed)
		return;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		l->can_read = true;
	if (ev & EPOLLOUT)
		l->can_write = true;
	/* A TLS write may wait on a read and the other way round: both
	 * directions are tried on any event. */
	tun_link_flush(l);
	if (!l->closed)
		link_read(l);
}

/* Make room for one more connection before its hello: the oldest such
 * goes (a real connector's hello takes milliseconds). */
static void pending_evict(tun_edge *t)
{
	if (t->npending < MAX_PENDING_HELLOS)
		return;
	tun_link *oldest = NULL;
	for (tun_link *l = t->all; l; l = l->next)
		if (!oldest || l->born <= oldest->born)
			oldest = l;
	if (!oldest)
		return;
	log_warn_every(1000,
		       "tunnel listener: %d connections without a hello; "
		       "closing the oldest (%s)",
		       MAX_PENDING_HELLOS, oldest->peer);
	if (oldest->state == L_HELLO)
		atomic_fetch_add_explicit(&t->hellos[TUN_HELLO_FAILED], 1,
					  memory_order_relaxed);
	tun_link_close(oldest, "too many connections without a hello");
}

/* Edge-triggered: accept until EAGAIN (connections left in the backlog
 * would wait for the next one to arrive). A local error (EMFILE, ...)
 * stops the batch; the tick tries again. */
void tun_listener_cb(core_io *io, uint32_t ev)
{
	(void)ev;
	tun_listener *ls = (tun_listener *)io;
	tun_edge *t = ls->t;
	/* Stopping: stop_cb has closed every link, and one accepted now
	 * (the same wake-up) would never be. The kernel's queue goes with
	 * the listener. */
	if (t->stopping)
		return;
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				log_warn_every(1000,
					       "tunnel listener: accept: %s",
					       strerror(errno));
			return;
		}
		pending_evict(t);
		t->npending++;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		const edge_snapshot *snap = edge_acquire(t->e);
		tun_link *l = xcalloc(1, sizeof(*l));
		l->t = t;
		l->io.fd = fd;
		l->io.cb = link_io_cb;
		l->born = l->last_rx = l->last_tx = t->loop.now;
		l->conn_id = ++t->nconn_ids;
		char ip[INET6_ADDRSTRLEN];
		core_sock_ip_text((struct sockaddr *)&ss, ip, sizeof(ip));
		snprintf(l->peer, sizeof(l->peer), "%s", ip);
		snprintf(l->name, sizeof(l->name), "-");
		int rc =
		    snap->tls ? tls_conn_init(&l->tls, snap->tls, fd) : -EINVAL;
		edge_snapshot_unref(snap);
		if (rc == 0)
			tls_conn_set_bulk(&l->tls);
		link_list(l, &t->all);
		if (rc < 0 || core_loop_add(&t->loop, &l->io, false) < 0) {
			tun_link_close(l, "cannot start TLS");
			continue;
		}
	}
}
