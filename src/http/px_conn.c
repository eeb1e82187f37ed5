/* px_conn.c - the HTTP/1.1 proxy state machine; see px.h and
 * docs/ARCHITECTURE.md ("Life of a request").
 *
 * Sockets are edge-triggered: can_read/can_write record readiness, a short
 * read or write or EAGAIN clears them, the next epoll edge sets them again.
 * pump() loops over the steps of the current state until none progresses,
 * so it must never return while a ready socket still has work it could do.
 *
 * Objects are never freed inside a callback: closed clients and upstreams go
 * to the worker's dead lists (io.fd = -1 makes later events in the same
 * epoll batch no-ops) and px_reap() recycles them after the batch.
 */
#include "http/px.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/core_log.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "edge/edge_stats.h"
#include "h2/h2_req.h"
#include "http/http_norm.h"
#include "http/px_h2.h"
#include "http/px_head.h"
#include "http/proxy_proto.h"
#include "lb/lb_affinity.h"
#include "lb/lb_hash.h"
#include "lb/lb_passive.h"
#include "lb/lb_rules.h"
#include "lb/lb_select.h"
#include "lb/lb_steer.h"
#include "sec/sec_conns.h"
#include "sec/sec_rlkey.h"
#include "tls/tls.h"
#include "waf/waf.h"

#define LINGER_MS 2000

static void client_io_cb(core_io *io, uint32_t ev);
static void tls_client_io_cb(core_io *io, uint32_t ev);
static void client_timer_cb(core_timer *t);
static void up_io_cb(core_io *io, uint32_t ev);
static void up_timer_cb(core_timer *t);
static void pump(px_client *cl);
static void attach_upstream(px_client *cl, bool allow_idle);

static inline const cfg_timeouts *timeouts(const edge_worker *w)
{
	return &w->snap->cfg->edge.timeouts;
}

/* An origin's live state, in the snapshot the origin belongs to. */
static inline lb_origin_state *ostate(const edge_snapshot *s,
				      const cfg_origin *o)
{
	return &s->ostates[o->index];
}

/* outstanding requests per origin, for least_outstanding_requests */
static void set_busy(px_client *cl, const cfg_origin *o)
{
	if (cl->busy == o)
		return;
	if (cl->busy)
		atomic_fetch_sub(&ostate(cl->snap, cl->busy)->outstanding, 1);
	if (o)
		atomic_fetch_add(&ostate(cl->snap, o)->outstanding, 1);
	cl->busy = o;
}

static void origin_failed(px_client *cl, const cfg_origin *o, const char *why)
{
	edge_worker *w = cl->w;
	uint64_t d = 0;
	if (lb_passive_failure(ostate(cl->snap, o),
			       &w->snap->cfg->edge.passive_health, w->loop.now,
			       &d))
		log_warn(
		    "origin %s (%s): ejected for %llu ms after %u failures "
		    "on live traffic (last: %s)",
		    o->name, o->address, (unsigned long long)d,
		    w->snap->cfg->edge.passive_health.failures, why);
	px_stats_origin_failed(cl, o, d != 0);
}

static inline bool is_closed(const px_client *cl)
{
	return cl->closed;
}

/* The client reached us over TLS (directly or as an HTTP/2 stream). */
static inline bool is_https(const px_client *cl)
{
	return cl->tls || cl->h2s;
}

static inline uint32_t blen(const core_buf *b)
{
	return b ? core_buf_len(b) : 0;
}

/* A buffer that can take more bytes (or none yet: it will be taken). */
static inline bool has_room(const core_buf *b)
{
	return !b || core_buf_space(b) > 0 || b->start > 0;
}

/* --- allocation and close ------------------------------------------- */

static px_client *client_alloc(edge_worker *w)
{
	px_client *cl = w->free_clients;
	if (cl) {
		w->free_clients = cl->next;
		cfg_lb *rule_lb = cl->rule_lb;
		memset(cl, 0, sizeof(*cl));
		cl->rule_lb = rule_lb;
	} else {
		cl = xcalloc(1, sizeof(*cl));
	}
	return cl;
}

static px_upstream *up_alloc(edge_worker *w)
{
	px_upstream *up = w->free_upstreams;
	if (up) {
		w->free_upstreams = up->next;
		memset(up, 0, sizeof(*up));
	} else {
		up = xcalloc(1, sizeof(*up));
	}
	return up;
}

static void idle_unlink(px_upstream *up)
{
	edge_idle_list *l = &up->w->idle[up->origin->index];
	if (up->prev)
		up->prev->next = up->next;
	else
		l->head = up->next;
	if (up->next)
		up->next->prev = up->prev;
	up->next = up->prev = NULL;
	l->count--;
	px_stats_idle(up->w, -1);
	up->idle = false;
}

/* TLS origins: keep the newest session the origin sent, for the next new
 * connection of this worker to it (only for the worker's snapshot: the
 * slots are filed by its origin indices). */
static void up_keep_session(px_upstream *up)
{
	tls_session *s = tls_conn_take_session(up->tls);
	if (!s)
		return;
	edge_worker *w = up->w;
	if (up->snap != w->snap || !w->idle) {
		tls_session_free(s);
		return;
	}
	edge_idle_list *l = &w->idle[up->origin->index];
	tls_session_free(l->sess);
	l->sess = s;
}

/* Drop the worker's kept TLS sessions (before its idle lists go). */
static void free_sessions(edge_worker *w)
{
	for (size_t i = 0; w->idle && i < w->snap->cfg->norigins; i++) {
		tls_session_free(w->idle[i].sess);
		w->idle[i].sess = NULL;
	}
}

static void up_close(px_upstream *up)
{
	if (up->io.fd < 0)
		return;
	edge_worker *w = up->w;
	if (up->idle)
		idle_unlink(up);
	atomic_fetch_sub(&ostate(up->snap, up->origin)->connections, 1);
	core_timer_cancel(&w->loop, &up->timer);
	if (up->tls) {
		up_keep_session(up);
		tls_conn_free(up->tls);
		free(up->tls);
		up->tls = NULL;
	}
	close(up->io.fd);
	up->io.fd = -1;
	core_buf_put(&w->bufs, up->in);
	up->in = NULL;
	up->client = NULL;
	up->next = w->dead_upstreams;
	w->dead_upstreams = up;
}

static void count_response(px_client *cl, int status);

static void client_close(px_client *cl)
{
	if (is_closed(cl))
		return;
	edge_worker *w = cl->w;
	px_stats_close(cl);    /* a request still open ends here */
	count_response(cl, 0); /* unanswered: its tokens go back */
	waf_tx_free(cl->waf_tx);
	cl->waf_tx = NULL;
	if (cl->up) {
		up_close(cl->up);
		cl->up = NULL;
	}
	set_busy(cl, NULL);
	core_timer_cancel(&w->loop, &cl->timer);
	cl->closed = true;
	bool stream = cl->h2s != NULL;
	if (stream) {
		px_h2_stream_closed(cl);
		cl->h2s = NULL;
	} else if (cl->h2) {
		px_h2_conn_closed(cl);
	}
	if (cl->tls) {
		tls_conn_free(cl->tls);
		free(cl->tls);
		cl->tls = NULL;
	}
	if (cl->io.fd >= 0)
		close(cl->io.fd);
	cl->io.fd = -1;
	core_buf_put(&w->bufs, cl->in);
	core_buf_put(&w->bufs, cl->uhead);
	core_buf_put(&w->bufs, cl->chead);
	cl->in = cl->uhead = cl->chead = NULL;
	if (stream) {
		/* A stream client is in no list and holds no connection slot.
		 */
		edge_snapshot_unref(cl->snap);
		cl->snap = NULL;
		cl->next = w->dead_clients;
		w->dead_clients = cl;
		return;
	}
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		w->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	w->nclients--;
	if (cl->counted)
		atomic_fetch_sub(&w->e->nconns, 1);
	if (cl->conn_key) {
		sec_conns_release(w->e->conns, cl->conn_key);
		cl->conn_key = 0;
	}
	edge_snapshot_unref(cl->snap);
	cl->snap = NULL;
	cl->prev = NULL;
	cl->next = w->dead_clients;
	w->dead_clients = cl;
}

/* Close with a reset (an HTTP/2 stream is reset by client_close): for an
 * answer cut where the client's framing cannot show it. */
static void client_abort(px_client *cl)
{
	if (!cl->h2s && cl->io.fd >= 0) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(cl->io.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	client_close(cl);
}

void px_reap(edge_worker *w)
{
	while (w->dead_clients) {
		px_client *cl = w->dead_clients;
		w->dead_clients = cl->next;
		cl->next = w->free_clients;
		w->free_clients = cl;
	}
	while (w->dead_upstreams) {
		px_upstream *up = w->dead_upstreams;
		w->dead_upstreams = up->next;
		up->next = w->free_upstreams;
		w->free_upstreams = up;
	}
}

/* Shut the client's write side; TLS clients get a close_notify first
 * (best effort: if the socket is full it is skipped). */
static void client_shut_wr(px_client *cl)
{
	if (cl->tls)
		(void)tls_conn_shutdown(cl->tls);
	shutdown(cl->io.fd, SHUT_WR);
	cl->wr_shut = true;
}

/* Half-close and discard what the client still sends, so the response is
 * not destroyed by an RST for unread data (RFC 9112 §9.6). */
static void begin_linger(px_client *cl)
{
	edge_worker *w = cl->w;
	if (cl->h2s) {
		/* An HTTP/2 stream ends with its exchange. */
		client_close(cl);
		return;
	}
	if (cl->up) {
		up_close(cl->up);
		cl->up = NULL;
	}
	client_shut_wr(cl);
	cl->state = PX_LINGER;
	core_buf_put(&w->bufs, cl->uhead);
	core_buf_put(&w->bufs, cl->chead);
	cl->uhead = cl->chead = NULL;
	core_timer_after(&w->loop, &cl->timer, LINGER_MS);
}

/* --- accept ----------------------------------------------------------- */

void px_client_accept(edge_worker *w, int fd, const struct sockaddr *peer,
		      tls_server *tls, uint64_t conn_key)
{
	px_client *cl = client_alloc(w);
	cl->w = w;
	cl->snap = w->snap;
	edge_snapshot_ref(cl->snap);
	cl->io.fd = fd;
	cl->io.cb = tls ? tls_client_io_cb : client_io_cb;
	cl->counted = true;
	cl->conn_key = conn_key;
	core_timer_init(&cl->timer, client_timer_cb);
	core_sock_ip_text(peer, cl->ip, sizeof(cl->ip));
	memcpy(&cl->peer, peer,
	       peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					   : sizeof(struct sockaddr_in));
	/* Once per connection: the location steers every request on it. */
	geo_lookup(w->snap->geo, peer, &cl->geo);
	cl->trusted_peer = geo_is_trusted(w->snap->geo, peer);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	cl->next = w->clients;
	if (w->clients)
		w->clients->prev = cl;
	w->clients = cl;
	w->nclients++;
	cl->last_read = cl->last_write = w->loop.now;
	if (tls) {
		/* The handshake first, bounded by the client header timeout. */
		cl->tls = xcalloc(1, sizeof(*cl->tls));
		if (tls_conn_init(cl->tls, tls, fd) < 0) {
			free(cl->tls);
			cl->tls = NULL;
			client_close(cl);
			return;
		}
		cl->state = PX_HANDSHAKE;
		cl->head_start = w->loop.now;
	}
	if (core_loop_add(&w->loop, &cl->io, false) < 0) {
		client_close(cl);
		return;
	}
	if (w->snap->cfg->edge.listen_proxy_protocol) {
		if (!cl->trusted_peer) {
			log_info("%s: PROXY header expected from an untrusted "
				 "peer; closed (geo.trusted_proxies)",
				 cl->ip);
			client_close(cl);
			return;
		}
		cl->want_proxy_hdr = true;
	}
	core_timer_after(&w->loop, &cl->timer,
			 tls ? timeouts(w)->client_header_ms
			     : timeouts(w)->client_idle_ms);
}

/* The request's status is known (status), or none will come (0): each
 * rate limit that counts by its counting_expression took a token when the
 * request arrived; it keeps it when the expression holds on the status,
 * else gives it back. */
static void count_response(px_client *cl, int status)
{
	uint8_t n = cl->nrl;
	cl->nrl = 0; /* once per request, retries or not */
	if (!n)
		return;
	const edge_snapshot *s = cl->snap;
	lb_expr_input in = {.response_code = (uint16_t)status};
	uint64_t now = core_now_ns();
	for (uint8_t k = 0; k < n; k++) {
		const cfg_rate_limit *r = &s->cfg->rate_limits[cl->rl_index[k]];
		if (status && lb_expr_eval(r->counting, &in))
			continue;
		sec_rl_refund(s->rl[cl->rl_index[k]],
			      &s->rl_rate[cl->rl_index[k]], cl->rl_key[k], now);
	}
}

/* --- local responses ------------------------------------------------- */

/* The edge's own fields on every answer to cl's request, and the
 * origin's fields they replace: the request id (edge.request_id_header),
 * and over TLS the load balancer's Strict-Transport-Security (unless sts
 * is false: not on a switch of protocols). */
static void edge_fields(const px_client *cl, px_resp_edit *ed, bool sts)
{
	const cfg_lb *lb = cl->lb;
	if (sts && lb && lb->hsts_value && is_https(cl)) {
		ed->add[ed->nadd++] =
		    (http1_header){{"Strict-Transport-Security", 25},
				   {lb->hsts_value, lb->hsts_value_len}};
		ed->drop_sts = true;
	}
	if (cl->req_id_len) {
		const cfg_edge *e = &cl->snap->cfg->edge;
		ed->drop =
		    (http_str){e->request_id_header, e->request_id_header_len};
		ed->add[ed->nadd++] =
		    (http1_header){ed->drop, {cl->req_id, cl->req_id_len}};
	}
}

/* An HTTP/1.0 client that asked to keep its connection is told it is
 * kept (HTTP/1.0's default is the close, RFC 9112 9.3 and Appendix C.2.2):
 * ab -k and other 1.0 clients that send Connection: keep-alive. */
static void keep_alive_10(const px_client *cl, px_resp_edit *ed, bool close)
{
	if (cl->http10 && !cl->h2s && !close)
		ed->add[ed->nadd++] =
		    (http1_header){{"Connection", 10}, {"keep-alive", 10}};
}

/* Date (RFC 9110 §6.6.1): the edge's own answers always have one; an
 * origin's answer without one gets it, as a proxy with a clock must add
 * it when forwarding. */
static void add_date(px_resp_edit *ed)
{
	ed->add[ed->nadd++] =
	    (http1_header){{"Date", 4}, {core_http_date(), 29}};
}

/* The edge's fields into its own answer of n bytes in chead. */
static int add_edge_fields(px_client *cl, int n)
{
	px_resp_edit ed = {0};
	add_date(&ed);
	edge_fields(cl, &ed, true);
	keep_alive_10(cl, &ed, cl->close_after);
	return px_head_insert_fields(cl->chead->data, (size_t)n, cl->chead->cap,
				     ed.add, ed.nadd);
}

/* Whether the client may have begun to read what chead holds: bytes of
 * its first head went out (start > 0), or did before chead was compacted
 * (chead_cut). Such bytes must go out as they are, or the answer is cut;
 * replacing them would splice another head into one half sent. */
static bool chead_started(const px_client *cl)
{
	return cl->chead && blen(cl->chead) &&
	       (cl->chead->start > 0 || cl->chead_cut);
}

/* Make room at chead's tail for one more head (a 1xx, then the final
 * one), remembering whether part of what stays was sent already. */
static void chead_compact(px_client *cl)
{
	if (cl->chead->start > 0 && blen(cl->chead))
		cl->chead_cut = true;
	core_buf_compact(cl->chead);
}

/* The edge's own answer to the request (or a cut, when part of another
 * already went out). log: false for answers the operator asked for (a
 * rule's fixed_response: a 503 maintenance page is not an edge error). */
static void local_answer(px_client *cl, int status, const char *detail,
			 bool close, bool log)
{
	edge_worker *w = cl->w;
	if (cl->resp_head_done || chead_started(cl)) {
		/* Part of a response (or of a 1xx) already went out: all we
		 * can do is cut. */
		client_close(cl);
		return;
	}
	if (cl->up) {
		up_close(cl->up);
		cl->up = NULL;
	}
	set_busy(cl, NULL);
	core_buf_put(&w->bufs, cl->uhead);
	cl->uhead = NULL;
	if (cl->state == PX_PROXY && cl->req_framed && cl->in) {
		/* Body fully read: drop what was not forwarded, keep the next
		 * pipelined request. */
		core_buf_consume(cl->in, cl->req_fwd);
		cl->req_fwd = 0;
	} else {
		/* Mid-head or mid-body: where the next request starts is
		 * unknown, so the connection cannot be reused. */
		close = true;
	}
	close = close || cl->close_after || w->draining;
	if (!cl->chead)
		cl->chead = core_buf_get(&w->bufs);
	cl->chead->start = cl->chead->end = 0;
	cl->chead_cut = false;
	int n = px_head_local(status, detail, w->snap->cfg->edge.name, close,
			      cl->method == HTTP_M_HEAD, cl->chead->data,
			      cl->chead->cap);
	cl->close_after = close;
	if (n >= 0)
		n = add_edge_fields(cl, n);
	if (n < 0) {
		client_close(cl);
		return;
	}
	cl->chead->end = (uint32_t)n;
	cl->state = PX_LOCAL;
	px_stats_local(cl, status);
	count_response(cl, status);
	if (status >= 500 && log)
		log_info("%s: %d %s", cl->ip, status, detail);
	else
		log_debug("%s: %d %s", cl->ip, status, detail);
}

static void local_response(px_client *cl, int status, const char *detail,
			   bool close)
{
	local_answer(cl, status, detail, close, true);
}

/* --- I/O helpers ------------------------------------------------------- */

/* writev of up to two buffer prefixes; returns bytes written, 0 on
 * EAGAIN, -errno on error. Clears *can_write on a short write. */
/* The non-empty ones of a[0..alen) and b[0..blen) as an iovec. */
static inline int fill_iov(struct iovec iov[2], core_buf *a, uint32_t alen,
			   core_buf *b, uint32_t blen_)
{
	int k = 0;
	if (alen)
		iov[k++] = (struct iovec){core_buf_head(a), alen};
	if (blen_)
		iov[k++] = (struct iovec){core_buf_head(b), blen_};
	return k;
}

static ssize_t write2(int fd, core_buf *a, uint32_t alen, core_buf *b,
		      uint32_t blen_, bool *can_write)
{
	struct iovec iov[2];
	int k = fill_iov(iov, a, alen, b, blen_);
	if (k == 0)
		return 0;
	size_t want = (size_t)alen + blen_;
	ssize_t n =
	    k == 1 ? send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
		   : writev(fd, iov, k);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			*can_write = false;
			return 0;
		}
		if (errno == EINTR)
			return 0;
		return -errno;
	}
	if ((size_t)n < want)
		*can_write = false;
	return n;
}

/* Read into b's tail. Returns bytes, 0 on EOF, -EAGAIN, or -errno.
 * A short read means the socket is drained, so can_read is cleared to
 * save the EAGAIN syscall -- unless the peer's FIN came in the same edge
 * (hup): then no further edge will come and we must read on to the EOF. */
static ssize_t read_into(int fd, core_buf *b, bool *can_read, bool hup)
{
	if (core_buf_space(b) == 0)
		core_buf_compact(b);
	uint32_t space = core_buf_space(b);
	if (space == 0)
		return -ENOBUFS;
	ssize_t n = read(fd, core_buf_tail(b), space);
	if (n > 0) {
		b->end += (uint32_t)n;
		if ((uint32_t)n < space && !hup)
			*can_read = false;
		return n;
	}
	if (n == 0) {
		*can_read = false;
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		*can_read = false;
		return -EAGAIN;
	}
	if (errno == EINTR)
		return -EAGAIN;
	*can_read = false;
	return -errno;
}

/* TLS versions of read_into and write2 for either side (client or TLS
 * origin), with the same contracts. A read that needs the socket writable
 * (or a write that needs it readable) sets *wants_write (*wants_read) and
 * waits for that edge (see tls_client_io_cb and up_io_cb). tls.h keeps
 * the short-count rule true: a short read means drained. */
static ssize_t tls_read_rc(ssize_t rc, bool *can_read, bool *wants_write)
{
	*can_read = false;
	switch (rc) {
	case TLS_WANT_WRITE:
		*wants_write = true;
		return -EAGAIN;
	case TLS_WANT_READ:
		return -EAGAIN;
	case TLS_CLOSED:
		return 0;
	default:
		return -EIO;
	}
}

static ssize_t tls_read_into(tls_conn *t, core_buf *b, bool *can_read, bool hup,
			     bool *wants_write)
{
	if (core_buf_space(b) == 0)
		core_buf_compact(b);
	uint32_t space = core_buf_space(b);
	if (space == 0)
		return -ENOBUFS;
	ssize_t n = tls_conn_read(t, core_buf_tail(b), space);
	if (n > 0) {
		b->end += (uint32_t)n;
		if ((uint32_t)n < space && !hup)
			*can_read = false;
		return n;
	}
	return tls_read_rc(n, can_read, wants_write);
}

static ssize_t tls_write2(tls_conn *t, core_buf *a, uint32_t alen, core_buf *b,
			  uint32_t blen_, bool *can_write, bool *wants_read)
{
	struct iovec iov[2];
	int k = fill_iov(iov, a, alen, b, blen_);
	if (k == 0)
		return 0;
	ssize_t n = tls_conn_writev(t, iov, k);
	if (n >= 0) {
		if ((size_t)n < (size_t)alen + blen_)
			*can_write = false;
		return n;
	}
	*can_write = false;
	if (n == TLS_WANT_READ)
		*wants_read = true;
	if (n == TLS_WANT_READ || n == TLS_WANT_WRITE)
		return 0;
	return -EIO;
}

/* Client-side read and write (plain or TLS). */
static inline ssize_t client_read(px_client *cl, core_buf *b)
{
	if (cl->h2s)
		return px_h2_read(cl, b);
	if (cl->tls)
		return tls_read_into(cl->tls, b, &cl->can_read, cl->hup,
				     &cl->tls_rd_wants_write);
	return read_into(cl->io.fd, b, &cl->can_read, cl->hup);
}

static ssize_t client_write2(px_client *cl, core_buf *a, uint32_t alen,
			     core_buf *b, uint32_t blen_)
{
	if (cl->h2s)
		return px_h2_write2(cl, a, alen, b, blen_);
	if (cl->tls)
		return tls_write2(cl->tls, a, alen, b, blen_, &cl->can_write,
				  &cl->tls_wr_wants_read);
	return write2(cl->io.fd, a, alen, b, blen_, &cl->can_write);
}

/* Upstream-side read and write (plain or TLS origins). */
static inline ssize_t up_read(px_upstream *up, core_buf *b)
{
	if (up->tls)
		return tls_read_into(up->tls, b, &up->can_read, up->hup,
				     &up->tls_rd_wants_write);
	return read_into(up->io.fd, b, &up->can_read, up->hup);
}

static ssize_t up_write2(px_upstream *up, core_buf *a, uint32_t alen,
			 core_buf *b, uint32_t blen_)
{
	if (up->tls)
		return tls_write2(up->tls, a, alen, b, blen_, &up->can_write,
				  &up->tls_wr_wants_read);
	return write2(up->io.fd, a, alen, b, blen_, &up->can_write);
}

static void up_shut_wr(px_upstream *up)
{
	if (up->tls)
		(void)tls_conn_shutdown(up->tls);
	shutdown(up->io.fd, SHUT_WR);
	up->wr_shut = true;
}

/* --- request start ---------------------------------------------------- */

static void reset_exchange(px_client *cl)
{
	cl->lb = NULL;
	cl->slb = NULL;
	cl->rule = NULL;
	cl->rate_limit = NULL;
	cl->waf_rule = NULL;
	waf_tx_free(cl->waf_tx);
	cl->waf_tx = NULL;
	cl->waf_head_len = 0;
	cl->waf_action = PX_WAF_NONE;
	cl->waf_matched[0] = 0;
	count_response(cl, 0); /* unanswered: its tokens go back */
	cl->pool = NULL;
	cl->origin = NULL;
	cl->req_id_len = 0;
	cl->ntried = 0;
	cl->stale_retried = false;
	cl->upgrade_req = false;
	cl->req_body = HTTP1_BODY_NONE;
	cl->req_framed = false;
	cl->req_remaining = cl->req_total = cl->req_sent = 0;
	memset(&cl->req_chunk, 0, sizeof(cl->req_chunk));
	cl->req_fwd = cl->req_trl = 0;
	cl->resp_head_done = cl->resp_framed = cl->resp_keepalive = false;
	cl->chead_cut = false;
	cl->resp_cut = cl->resp_unchunk = false;
	cl->resp_body = HTTP1_BODY_NONE;
	cl->resp_remaining = 0;
	memset(&cl->resp_chunk, 0, sizeof(cl->resp_chunk));
	cl->resp_fwd = 0;
	cl->method = HTTP_M_OTHER;
	cl->state = PX_HEAD;
	cl->head_start = 0;
}

/* The exchange is over and the connection stays: free its head buffers and
 * look at the next request, which may already be buffered (pipelining). */
static void next_request(px_client *cl)
{
	edge_worker *w = cl->w;
	core_buf_put(&w->bufs, cl->uhead);
	core_buf_put(&w->bufs, cl->chead);
	cl->uhead = cl->chead = NULL;
	reset_exchange(cl);
	cl->served = true;
	cl->parse_pending = blen(cl->in) > 0;
	if (cl->parse_pending)
		cl->head_start = w->loop.now;
	cl->last_read = w->loop.now;
}

static void steer_ctx(const px_client *cl, lb_steer_ctx *ctx)
{
	edge_worker *w = cl->w;
	const geo_result *g = cl->use_client ? &cl->cgeo : &cl->geo;
	*ctx = (lb_steer_ctx){
	    .lb = cl->slb,
	    .edge = &w->snap->cfg->edge,
	    .country = g->country,
	    .region = g->region,
	    .client = (const struct sockaddr *)(cl->use_client ? &cl->client
							       : &cl->peer),
	    .origins = cl->snap->ostates,
	    .now_ms = w->loop.now,
	    .rng = &w->rng,
	};
}

static bool header_lookup(void *arg, const char *name, const char **val,
			  size_t *vlen)
{
	const http1_request *req = arg;
	const http1_header *h =
	    http1_find_header(req->headers, req->nheaders, name);
	if (!h)
		return false;
	*val = h->value.p;
	*vlen = h->value.len;
	return true;
}

/* The origin named by the request's __cflb cookie, if it may keep its
 * session (session affinity cookie / ip_cookie). */
static const cfg_origin *affinity_origin(px_client *cl,
					 const http1_request *req,
					 const lb_steer_ctx *ctx,
					 const cfg_pool **pool,
					 const cfg_pool **shed_from)
{
	const edge_snapshot *s = cl->snap;
	const char *tok = NULL;
	size_t tlen = 0;
	for (uint32_t i = 0; i < req->nheaders && !tok; i++) {
		const http1_header *h = &req->headers[i];
		if (h->name.len == 6 &&
		    !core_strncaseeq(h->name.p, "Cookie", 6))
			lb_affinity_cookie_find(h->value.p, h->value.len, &tok,
						&tlen);
	}
	cl->aff_set = true; /* unless the cookie holds */
	if (!tok)
		return NULL;
	const cfg_origin *o =
	    lb_affinity_lookup(cl->slb, &s->aff_secret, tok, tlen, pool);
	if (!o)
		return NULL;
	/* drain_duration: since when o (or its pool) is disabled, if so. */
	uint64_t disabled_at =
	    lb_affinity_disabled_at(*pool, o, s->ostates, s->pstates);
	switch (lb_affinity_check(cl->slb, *pool, o, ctx, disabled_at)) {
	case LB_AFF_USE:
		cl->aff_set = false;
		cl->aff_bound = true;
		return o;
	case LB_AFF_REPICK_KEEP:
		cl->aff_set = false;
		return NULL;
	case LB_AFF_SHED: /* load_shedding.session_percent */
		*shed_from = *pool;
		return NULL;
	default:
		return NULL;
	}
}

/* Parse one X-Forwarded-For element (an IP, maybe with spaces around). */
static bool xff_addr(const char *p, size_t n, struct sockaddr_in6 *out)
{
	while (n && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	char tmp[INET6_ADDRSTRLEN];
	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	memset(out, 0, sizeof(*out));
	struct sockaddr_in *in4 = (struct sockaddr_in *)out;
	if (inet_pton(AF_INET, tmp, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, tmp, &out->sin6_addr) == 1) {
		out->sin6_family = AF_INET6;
		return true;
	}
	return false;
}

/* Behind trusted proxies the client is the rightmost X-Forwarded-For
 * address that is not itself a trusted proxy. Anything unparsable stops
 * the walk: what lies left of it cannot be trusted. */
static void client_from_xff(px_client *cl, const http1_request *req)
{
	cl->use_client = false;
	if (!cl->trusted_peer)
		return;
	const geo_db *geo = cl->w->snap->geo;
	for (uint32_t i = req->nheaders; i-- > 0;) {
		const http1_header *h = &req->headers[i];
		if (h->name.len != 15 ||
		    core_strncaseeq(h->name.p, "X-Forwarded-For", 15))
			continue;
		const char *v = h->value.p;
		size_t end = h->value.len;
		for (;;) {
			size_t start = end;
			while (start > 0 && v[start - 1] != ',')
				start--;
			struct sockaddr_in6 a;
			if (!xff_addr(v + start, end - start, &a))
				return;
			if (!geo_is_trusted(geo, (struct sockaddr *)&a)) {
				cl->client = a;
				geo_lookup(geo, (struct sockaddr *)&a,
					   &cl->cgeo);
				cl->use_client = true;
				return;
			}
			if (start == 0)
				break;
			end = start - 1;
		}
	}
}

/* Pool and origin for a new request: affinity first, then steering. */
static void choose_origin(px_client *cl, const http1_request *req)
{
	lb_steer_ctx ctx;
	steer_ctx(cl, &ctx);
	const cfg_lb *lb = cl->slb;
	const cfg_pool *pool = NULL, *shed_from = NULL;
	const cfg_origin *o = NULL;
	cl->aff_bound = cl->aff_set = false;
	cl->nskip = 0;
	if (lb_affinity_uses_cookie(lb))
		o = affinity_origin(cl, req, &ctx, &pool, &shed_from);
	if (!o) {
		pool = lb_steer_pool_away(lb, &ctx, NULL, 0, shed_from);
		if (pool && lb->session_affinity == CFG_AFF_HEADER) {
			uint64_t key;
			if (lb_affinity_header_key(lb, header_lookup,
						   (void *)req, &key))
				o = lb_steer_origin_key(pool, key, &ctx, NULL,
							0);
		} else if (pool && lb->session_affinity == CFG_AFF_IP_COOKIE) {
			o = lb_steer_origin_by(pool, CFG_OSTEER_HASH, &ctx,
					       NULL, 0);
		}
		if (pool && !o)
			o = lb_steer_origin(pool, &ctx, NULL, 0);
	}
	cl->pool = pool;
	cl->origin = o;
}

/* After local_response: the answer is the n bytes in chead (n < 0: none
 * fit, and the connection closes); the request head is consumed. */
static void set_head(px_client *cl, int n, int head_len)
{
	core_buf_consume(cl->in, (uint32_t)head_len);
	if (n < 0) {
		client_close(cl);
		return;
	}
	cl->chead->end = (uint32_t)n;
}

/* After local_response: its answer replaced by another of n bytes built
 * in chead, given the edge's fields. */
static void replace_head(px_client *cl, int n, int head_len)
{
	set_head(cl, n >= 0 ? add_edge_fields(cl, n) : n, head_len);
}

/* A load balancer's https_redirect (issue 6): a request over plain HTTP
 * is sent to https:// on the first https listener. local_response does
 * what every local answer does (connection reuse, stats, state); its head
 * is then replaced by the redirect's, which is the same but for the status
 * line and Location. */
static void redirect_https(px_client *cl, const http1_request *req,
			   int head_len)
{
	const cfg_edge *e = &cl->snap->cfg->edge;
	int status = px_redirect_status(req->method_id);
	local_response(cl, status, "moved to https", false);
	if (is_closed(cl))
		return;
	int n = px_head_redirect(status, req->host, req->target, e->https_port,
				 e->name, cl->close_after,
				 cl->method == HTTP_M_HEAD, cl->chead->data,
				 cl->chead->cap);
	replace_head(cl, n, head_len);
}

/* A rule's fixed_response, built as redirect_https builds its answer. */
static void fixed_response(px_client *cl, const cfg_lb_rule *r, int head_len)
{
	const cfg_lb_fixed *f = &r->fixed_response;
	local_answer(cl, (int)f->status_code, "rule", false, false);
	if (is_closed(cl))
		return;
	int n = px_head_fixed((int)f->status_code, f->content_type, f->location,
			      f->message_body, cl->close_after,
			      cl->method == HTTP_M_HEAD, cl->chead->data,
			      cl->chead->cap);
	replace_head(cl, n, head_len);
}

/* What a condition (rules, rate limits) reads of this request. The path
 * is normalized (http_norm.h) and the host lower-cased, so `/%61dmin`,
 * `//admin` or `Admin.Example.com` cannot dodge a condition; the origin
 * gets the request as sent. */
static void expr_input(px_client *cl, const http1_request *req, uint32_t fields,
		       lb_expr_input *in)
{
	edge_worker *w = cl->w;
	const geo_result *g = cl->use_client ? &cl->cgeo : &cl->geo;
	http_str t = px_target_path(req->target);
	/* Only what the conditions read costs anything. */
	uint32_t path =
	    (1u << LB_F_URI) | (1u << LB_F_PATH) | (1u << LB_F_FULL_URI);
	uint32_t host_f = (1u << LB_F_HOST) | (1u << LB_F_FULL_URI);
	if ((fields & path) && t.len <= sizeof(w->norm_target)) {
		const char *q = memchr(t.p, '?', t.len);
		size_t plen = q ? (size_t)(q - t.p) : t.len;
		size_t n = http_norm_path(t.p, plen, w->norm_target);
		memcpy(w->norm_target + n, t.p + plen, t.len - plen);
		t = (http_str){w->norm_target, (uint32_t)(n + t.len - plen)};
	}
	http_str host = req->host;
	if ((fields & host_f) && host.len <= sizeof(w->norm_host)) {
		for (uint32_t i = 0; i < host.len; i++) {
			char c = host.p[i]; /* ASCII only: no locale */
			w->norm_host[i] = c >= 'A' && c <= 'Z' ? c + 32 : c;
		}
		host.p = w->norm_host;
	}
	*in = (lb_expr_input){
	    .client = (const struct sockaddr *)(cl->use_client ? &cl->client
							       : &cl->peer),
	    .country = g->country,
	    .lb_name = cl->lb->name,
	    .lb_region = cl->snap->cfg->edge.region,
	    .host = host,
	    .method = req->method,
	    .target = t,
	    .http2 = cl->h2s != NULL,
	    .http10 = cl->http10,
	    .ssl = is_https(cl),
	    .acme_challenge = px_is_acme_challenge(req->target),
	    .headers = req->headers,
	    .nheaders = req->nheaders,
	};
}

/* The edge's answer to a request a firewall rule blocked or a rate limit
 * refused: its own page (local_answer) or the rule's response, with
 * Retry-After in whole seconds, rounded up, when retry_ns is not 0. */
static void edge_answer(px_client *cl, const cfg_rl_response *rs,
			uint64_t retry_ns, const char *detail, int head_len)
{
	int status = (int)rs->status_code;
	local_answer(cl, status, detail, false, false);
	if (is_closed(cl))
		return;
	int n = (int)cl->chead->end;
	if (rs->content) {
		n = px_head_fixed(status, rs->content_type, NULL, rs->content,
				  cl->close_after, cl->method == HTTP_M_HEAD,
				  cl->chead->data, cl->chead->cap);
		if (n >= 0)
			n = add_edge_fields(cl, n);
	}
	if (n >= 0 && retry_ns) {
		char ra[24];
		uint64_t secs = (retry_ns + 999999999u) / 1000000000u;
		size_t ralen = core_fmt_u64(ra, secs ? secs : 1, 1);
		http1_header f = {{"Retry-After", 11}, {ra, (uint32_t)ralen}};
		n = px_head_insert_fields(cl->chead->data, (size_t)n,
					  cl->chead->cap, &f, 1);
	}
	set_head(cl, n, head_len);
}

/* The firewall's custom rules (waf.custom_rules), in order: the first
 * `block` that matches answers (false is returned), the first `skip`
 * ends them and the rate limits (*skip); `log` ones are named in the
 * access log. */
static bool firewall(px_client *cl, const lb_expr_input *in, int head_len,
		     bool *skip)
{
	const edge_snapshot *s = cl->snap;
	const cfg_waf *waf = &s->cfg->waf;
	for (size_t i = 0; i < waf->ncustom_rules; i++) {
		const cfg_waf_rule *r = &waf->custom_rules[i];
		if (r->disabled || !lb_expr_eval(r->expr, in))
			continue;
		cl->waf_rule = r;
		if (s->stats)
			edge_stats_waf(s->stats, cl->w->id, r->index);
		if (r->action == CFG_WAF_LOG)
			continue;
		if (r->action == CFG_WAF_SKIP) {
			*skip = true;
			return true;
		}
		edge_answer(cl, &r->response, 0, "blocked by the firewall",
			    head_len);
		return false;
	}
	return true;
}

/* The rate limits (sec_ratelimit.h), in order: every enabled one whose
 * expression holds counts the request; the first `block` one over its
 * rate answers, and then false is returned. A `log` one over its rate is
 * named in the access log. */
static bool rate_limit(px_client *cl, const lb_expr_input *in, int head_len)
{
	const edge_snapshot *s = cl->snap;
	const cfg_snapshot *cfg = s->cfg;
	for (size_t i = 0; i < cfg->nrate_limits; i++) {
		const cfg_rate_limit *r = &cfg->rate_limits[i];
		if (r->disabled || (r->expr && !lb_expr_eval(r->expr, in)))
			continue;
		uint64_t retry = 0;
		uint64_t key = sec_rl_request_key(s->rl[i], r, in);
		if (sec_rl_hit(s->rl[i], &s->rl_rate[i], key, cl->st.t0,
			       &retry)) {
			/* Counted by its response (count_response): the
			 * token taken here goes back unless the response
			 * counts, so requests in flight are bounded too. */
			if (r->counting && cl->nrl < CFG_RL_MAX_COUNTING) {
				cl->rl_key[cl->nrl] = key;
				cl->rl_index[cl->nrl++] = (uint8_t)i;
			}
			continue;
		}
		cl->rate_limit = r;
		if (s->stats)
			edge_stats_rate_limited(s->stats, cl->w->id, r->index);
		if (r->action == CFG_RL_LOG)
			continue;
		edge_answer(cl, &r->response, retry, "rate limit exceeded",
			    head_len);
		return false;
	}
	return true;
}

/* The load balancer's rules (lb_rules.h): their overrides give the load
 * balancer steering reads (cl->slb); a fixed_response answers here, and
 * then false is returned. */
static bool apply_rules(px_client *cl, const lb_expr_input *in, int head_len)
{
	lb_rules_result r;
	if (!lb_rules_apply(cl->lb, in, cl->rule_lb, &r)) {
		/* The first merge on this client struct: its scratch. */
		cl->rule_lb = xmalloc(sizeof(*cl->rule_lb));
		lb_rules_apply(cl->lb, in, cl->rule_lb, &r);
	}
	cl->slb = r.lb;
	cl->rule = r.last;
	if (r.matched && cl->snap->stats)
		edge_stats_rules(cl->snap->stats, cl->w->id, cl->lb, r.matched);
	if (!r.fixed)
		return true;
	fixed_response(cl, r.fixed, head_len);
	return false;
}

/* Firewall rules, rate limits and the load balancer's rules, in that
 * order, on one description of the request (expr_input, built once with
 * what any of them reads). ACME http-01 challenges pass the firewall and
 * the rate limits, as they pass fixed responses: a catch-all rule must
 * not stop the edge's certificates from renewing. False when one of them
 * answered. */
static bool conditions(px_client *cl, const http1_request *req, int head_len,
		       bool *skip)
{
	const cfg_snapshot *cfg = cl->snap->cfg;
	bool waf = cfg->waf.ncustom_rules, rl = cfg->nrate_limits,
	     rules = cl->lb->nrule_order;
	*skip = false;
	if (!waf && !rl && !rules)
		return true;
	lb_expr_input in;
	expr_input(cl, req,
		   (waf ? cfg->waf.fields : 0) | (rl ? cfg->rl_fields : 0) |
		       (rules ? cl->lb->rule_fields : 0),
		   &in);
	if (!in.acme_challenge) {
		if (waf && !firewall(cl, &in, head_len, skip))
			return false;
		if (rl && !*skip && !rate_limit(cl, &in, head_len))
			return false;
	}
	return !rules || apply_rules(cl, &in, head_len);
}

/* A client's request id is kept when it is 1..PX_REQ_ID_MAX characters
 * of letters, digits and -_.:/+=@ (nothing that could split a log line or
 * a header); anything else is replaced. */
static bool req_id_ok(const char *p, size_t n)
{
	if (!n || n > PX_REQ_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.' || c == ':' || c == '/' || c == '+' ||
		      c == '=' || c == '@'))
			return false;
	}
	return true;
}

/* This request's id (edge.request_id_header): the client's, or 32 hex
 * digits: SipHash of the worker's count under its random key (not
 * guessable), then the count masked by a random value (unique). */
static void take_req_id(px_client *cl, const http1_request *req)
{
	const cfg_edge *e = &cl->snap->cfg->edge;
	cl->req_id_len = 0;
	if (!e->request_id_header)
		return;
	/* The client's first well-formed field of that name. */
	for (uint32_t i = 0; i < req->nheaders; i++) {
		const http1_header *h = &req->headers[i];
		if (h->name.len == e->request_id_header_len &&
		    !core_strncaseeq(h->name.p, e->request_id_header,
				     h->name.len) &&
		    req_id_ok(h->value.p, h->value.len)) {
			memcpy(cl->req_id, h->value.p, h->value.len);
			cl->req_id_len = (uint8_t)h->value.len;
			break;
		}
	}
	if (!cl->req_id_len) {
		static const char hex[] = "0123456789abcdef";
		edge_worker *w = cl->w;
		uint64_t seq = ++w->req_id_seq;
		uint64_t v[2] = {
		    lb_hash_siphash(w->req_id.key, &seq, sizeof(seq)),
		    seq ^ w->req_id.mask};
		for (int i = 0; i < 32; i++)
			cl->req_id[i] =
			    hex[(v[i / 16] >> (60 - 4 * (i % 16))) & 15];
		cl->req_id_len = 32;
	}
	cl->req_id[cl->req_id_len] = '\0';
}

static void forward_request(px_client *cl, const http1_request *req,
			    int head_len);
static int relay_interim(px_client *cl, const http1_response *resp);
static ssize_t read_client(px_client *cl);
static bool write_client(px_client *cl);

/* --- the managed rules (waf.managed, waf.h) ---------------------------- */

/* What the rules made of the request, kept for the access log; true when
 * the edge answers it (they deny it in mode block). */
static bool waf_apply(px_client *cl, const waf_verdict *v, bool close)
{
	const char *ids = waf_tx_rules(cl->waf_tx);
	snprintf(cl->waf_matched, sizeof(cl->waf_matched), "%s", ids);
	cl->waf_action = v->block      ? PX_WAF_BLOCK
			 : v->detected ? PX_WAF_DETECT
			 : *ids	       ? PX_WAF_LOG
				       : PX_WAF_PASS;
	waf_tx_free(cl->waf_tx);
	cl->waf_tx = NULL;
	if (!v->block)
		return false;
	local_response(cl, v->status, "blocked by the managed rules", close);
	return true;
}

static void waf_emit(void *arg, const char *p, size_t n)
{
	waf_tx_body(arg, p, n);
}

/* Run the managed rules on a routed request: its head now; then, for a
 * request with a body, hold it (PX_WAF, step_waf) until body_limit bytes
 * or all of it are in. True when the request is held or answered. */
static bool waf_start(px_client *cl, const http1_request *req, int head_len)
{
	edge_worker *w = cl->w;
	const edge_snapshot *s = cl->snap;
	if (!w->waf)
		w->waf = waf_engine_new();
	char ip[INET6_ADDRSTRLEN];
	waf_conn c = {
	    .client_ip = px_client_ip(cl, ip, sizeof(ip)),
	    .client_port =
		ntohs(((const struct sockaddr_in *)&cl->peer)->sin_port),
	    .server_ip = "0.0.0.0",
	    .server_port = is_https(cl) ? 443 : 80,
	};
	cl->waf_tx = waf_tx_begin(w->waf, s->waf, &c);
	const char *version = cl->h2s ? "2.0" : cl->http10 ? "1.0" : "1.1";
	bool body = req->body == HTTP1_BODY_CHUNKED ||
		    (req->body == HTTP1_BODY_LENGTH && req->content_length);
	waf_verdict v;
	if (waf_tx_head(cl->waf_tx, &req->method, &req->target, version,
			req->headers, req->nheaders, &v)) {
		core_buf_consume(cl->in, (uint32_t)head_len);
		return waf_apply(cl, &v, body);
	}
	if (!body || !s->cfg->waf.managed.body_limit) {
		waf_tx_end(cl->waf_tx, &v);
		if (!waf_apply(cl, &v, body))
			return false;
		core_buf_consume(cl->in, (uint32_t)head_len);
		return true;
	}
	/* Hold: the head stays in `in` (parsed again when the rules let the
	 * request go), the body gathers after it. */
	core_buf_compact(cl->in);
	cl->waf_head_len = (uint32_t)head_len;
	memset(&cl->waf_ch, 0, sizeof(cl->waf_ch));
	cl->waf_walked = 0;
	cl->waf_done = false;
	cl->state = PX_WAF;
	if (req->conn.expect_continue && blen(cl->in) == (uint32_t)head_len) {
		/* The client waits for this before it sends the body the
		 * rules need; the origin's own 100 may follow (several 1xx
		 * are allowed, RFC 9110 §15.2). */
		http1_response cont = {.status = 100,
				       .reason = {"Continue", 8},
				       .version_minor = 1};
		if (relay_interim(cl, &cont) < 0) {
			local_response(cl, 500, "cannot write 100 Continue",
				       true);
			return true;
		}
	}
	return true;
}

/* A request held for the managed rules: read its body until body_limit
 * bytes or all of it are in (or the buffer is full), then the verdict. */
static bool step_waf(px_client *cl)
{
	edge_worker *w = cl->w;
	const edge_snapshot *s = cl->snap;
	bool p = false;
	if (cl->can_write && blen(cl->chead)) { /* our 100 Continue */
		p = write_client(cl);
		if (is_closed(cl))
			return false;
	}
	uint32_t hl = cl->waf_head_len;
	uint64_t limit = s->cfg->waf.managed.body_limit;
	const char *body = core_buf_head(cl->in) + hl;
	uint32_t have = blen(cl->in) - hl;
	bool complete;
	uint64_t data;
	if (cl->req_body == HTTP1_BODY_CHUNKED) {
		if (!cl->waf_done && cl->waf_walked < have) {
			ssize_t k = http1_chunked_feed(
			    &cl->waf_ch, body + cl->waf_walked,
			    have - cl->waf_walked, &cl->waf_done);
			if (k < 0) {
				local_response(cl, 400,
					       http1_err_reason((int)k), true);
				return true;
			}
			cl->waf_walked += (uint32_t)k;
		}
		complete = cl->waf_done;
		/* total counts a chunk once its size line is in; inside
		 * its data, what is still to come of it is data_next. */
		data = cl->waf_ch.total - http1_chunked_data_next(&cl->waf_ch);
	} else {
		/* Nothing of the body is framed yet: req_remaining is its
		 * length. */
		complete = have >= cl->req_remaining;
		data = MIN((uint64_t)have, cl->req_remaining);
	}
	/* More than limit: the body is known to go on past what the rules
	 * will see (exactly limit might be all of it). */
	bool full = data > limit || core_buf_space(cl->in) == 0;
	if (!complete && !full) {
		if (!cl->can_read)
			return p;
		ssize_t n = read_client(cl);
		if (n > 0)
			return true;
		if (n != -ENOBUFS) /* -EAGAIN, or closed */
			return is_closed(cl) ? false : p;
		/* No room for more (an HTTP/2 stream's body of unknown
		 * length is framed as chunks and wants some space for a
		 * chunk's size line): the buffer is as full as it gets. */
	}
	if (blen(cl->chead))
		return p; /* the 100 Continue first */
	/* A body cut at body_limit is handed on with one byte more, so
	 * that the engine marks it cut (INBOUND_DATA_ERROR, ProcessPartial)
	 * and does not take the cut for a malformed body -- also when all
	 * of it is in already (one of exactly limit bytes is not cut). */
	http1_body_peek(cl->req_body, cl->req_remaining, body, have, limit + 1,
			waf_emit, cl->waf_tx, &complete, &data);
	if (!complete || data > limit)
		waf_count_partial();
	waf_verdict v;
	waf_tx_end(cl->waf_tx, &v);
	if (waf_apply(cl, &v, true))
		return true;
	/* Let it go: the head is parsed again (w->req served other
	 * connections meanwhile) and the request goes on as if just read. */
	int n = http1_parse_request(core_buf_head(cl->in), blen(cl->in),
				    &s->req_limits, &w->req);
	if (n != (int)hl) { /* cannot happen: the same bytes */
		local_response(cl, 500, "request head lost", true);
		return true;
	}
	cl->state = PX_PROXY;
	cl->waf_head_len = 0;
	forward_request(cl, &w->req, n);
	return true;
}

static void start_request(px_client *cl, int head_len)
{
	edge_worker *w = cl->w;
	const http1_request *req = &w->req;
	if (cl->snap != w->snap) {
		/* A new config arrived since this connection's last request:
		 * no upstream or outstanding count refers to the old one
		 * between requests, so the move is just the reference. */
		edge_snapshot_ref(w->snap);
		edge_snapshot_unref(cl->snap);
		cl->snap = w->snap;
	}
	const edge_snapshot *s = cl->snap;
	const cfg_limits *lim = &s->cfg->edge.limits;

	cl->state = PX_PROXY;
	take_req_id(cl, req);
	px_stats_start(cl, req);
	lb_retry_earn(&w->retry_budget, s->cfg->edge.retries.budget_percent);
	cl->method = req->method_id;
	cl->http10 = req->version_minor == 0;
	/* An HTTP/2 stream carries one request. */
	cl->close_after = !req->conn.keep_alive || w->draining || cl->h2s;
	cl->upgrade_req = req->conn.upgrade && !cl->http10;
	cl->req_body = (uint8_t)req->body;
	cl->req_remaining = req->content_length;
	cl->req_framed =
	    req->body == HTTP1_BODY_NONE ||
	    (req->body == HTTP1_BODY_LENGTH && req->content_length == 0);

	if (req->method_id == HTTP_M_CONNECT) {
		core_buf_consume(cl->in, (uint32_t)head_len);
		local_response(cl, 405, "CONNECT is not supported", true);
		return;
	}
	if (req->method_id == HTTP_M_TRACE) {
		/* As nginx: TRACE would echo the request, cookies and the
		 * edge's own fields included, back to a script (cross-site
		 * tracing); origins never see it. */
		core_buf_consume(cl->in, (uint32_t)head_len);
		local_response(cl, 405, "TRACE is not supported", false);
		return;
	}
	cl->lb = lb_route(s->router, req->host.p, req->host.len);
	if (!cl->lb) {
		core_buf_consume(cl->in, (uint32_t)head_len);
		local_response(cl, 404, "no load balancer for this host",
			       false);
		return;
	}
	if (cl->lb->https_redirect && !is_https(cl) &&
	    !px_is_acme_challenge(req->target)) {
		redirect_https(cl, req, head_len);
		return;
	}
	client_from_xff(cl, req);
	cl->slb = cl->lb;
	bool skip = false;
	if (!conditions(cl, req, head_len, &skip))
		return;
	if (lim->max_body_bytes && req->body == HTTP1_BODY_LENGTH &&
	    req->content_length > lim->max_body_bytes) {
		core_buf_consume(cl->in, (uint32_t)head_len);
		local_response(cl, 413, "request body too large", true);
		return;
	}
	if (s->waf && !skip && !px_is_acme_challenge(req->target) &&
	    waf_start(cl, req, head_len))
		return;
	forward_request(cl, req, head_len);
}

/* The request passed what the edge checks: to an origin. */
static void forward_request(px_client *cl, const http1_request *req,
			    int head_len)
{
	edge_worker *w = cl->w;
	choose_origin(cl, req);
	if (!cl->origin) {
		core_buf_consume(cl->in, (uint32_t)head_len);
		local_response(cl, 503, "no origin available", false);
		return;
	}

	if (!cl->uhead)
		cl->uhead = core_buf_get(&w->bufs);
	px_resp_edit ed = {0}; /* the request id, when there is one */
	edge_fields(cl, &ed, false);
	char real_ip[INET6_ADDRSTRLEN];
	px_req_ctx ctx = {
	    .client_ip = cl->ip,
	    .real_ip = px_client_ip(cl, real_ip, sizeof(real_ip)),
	    .proto = is_https(cl) ? "https" : "http",
	    .origin = cl->origin,
	    .upstream_http10 = cl->http10,
	    .req_id = ed.nadd ? &ed.add[0] : NULL,
	};
	int n = px_head_request(req, &ctx, cl->uhead->data, cl->uhead->cap);
	core_buf_consume(cl->in, (uint32_t)head_len);
	if (n < 0) {
		local_response(cl, 431, "request head too large to forward",
			       true);
		return;
	}
	cl->uhead->start = 0;
	cl->uhead->end = cl->uhead_len = (uint32_t)n;
	attach_upstream(cl, true);
}

/* --- upstream attach / connect ---------------------------------------- */

/* The forwarded head carries the Host for the origin it was built for; a
 * retry on an origin with another Host override rewrites it in place. The
 * client's own Host is always in X-Forwarded-Host. */
static bool retarget_head(px_client *cl, const cfg_origin *from,
			  const cfg_origin *to)
{
	const char *a = px_origin_host(from), *b = px_origin_host(to);
	if (a == b || (a && b && !strcmp(a, b)))
		return true;
	core_buf *h = cl->uhead;
	/* The new Host: the override, or the client's (X-Forwarded-Host).
	 * Copied out first, as it may point into the head being edited. */
	char host[256];
	size_t hlen;
	if (b) {
		hlen = strlen(b);
		if (hlen >= sizeof(host))
			return false;
		memcpy(host, b, hlen);
	} else {
		static const char key[] = "\r\nX-Forwarded-Host: ";
		const char *p =
		    memmem(h->data, cl->uhead_len, key, sizeof(key) - 1);
		if (!p)
			return false;
		p += sizeof(key) - 1;
		const char *e =
		    memchr(p, '\r', cl->uhead_len - (size_t)(p - h->data));
		if (!e || (size_t)(e - p) >= sizeof(host))
			return false;
		hlen = (size_t)(e - p);
		memcpy(host, p, hlen);
	}
	int n = px_head_set_host(h->data, cl->uhead_len, h->cap, host, hlen);
	if (n < 0)
		return false;
	cl->uhead_len = (uint32_t)n;
	return true;
}

static bool next_origin(px_client *cl)
{
	uint32_t attempts = cl->w->snap->cfg->edge.retries.attempts;
	if (cl->ntried < ARRAY_LEN(cl->tried))
		cl->tried[cl->ntried++] = cl->origin->index;
	if (cl->ntried > attempts || cl->ntried >= ARRAY_LEN(cl->tried))
		return false;
	if (cl->aff_bound) {
		/* The session's origin failed: zero_downtime_failover says
		 * whether to go elsewhere and what becomes of the cookie. */
		lb_affinity_action a = lb_affinity_on_failure(cl->slb);
		if (a == LB_AFF_NO_RETRY)
			return false;
		cl->aff_bound = false;
		cl->aff_set = a == LB_AFF_REPICK;
	}
	lb_steer_ctx ctx;
	steer_ctx(cl, &ctx);
	const cfg_origin *o =
	    lb_steer_origin(cl->pool, &ctx, cl->tried, cl->ntried);
	while (!o && cl->slb->failover_across_pools &&
	       cl->nskip < ARRAY_LEN(cl->skip_pools)) {
		/* adaptive_routing.failover_across_pools: the next pool. */
		cl->skip_pools[cl->nskip++] = cl->pool->index;
		const cfg_pool *p =
		    lb_steer_pool(cl->slb, &ctx, cl->skip_pools, cl->nskip);
		if (!p)
			break;
		cl->pool = p;
		o = lb_steer_origin(p, &ctx, cl->tried, cl->ntried);
	}
	if (!o)
		return false;
	/* Nothing was sent yet (connect failed): the head is whole. */
	if (!retarget_head(cl, cl->origin, o))
		return false;
	cl->uhead->start = 0;
	cl->uhead->end = cl->uhead_len;
	cl->origin = o;
	px_stats_retry(cl);
	return true;
}

/* Whether an idle connection is still open as far as the kernel knows:
 * the origin's FIN (or reset) may have arrived since the loop last looked.
 * A plain connection must also hold no bytes (an idle origin sends none);
 * a TLS one may (a late session ticket). */
static bool idle_alive(const px_upstream *up)
{
	char c;
	ssize_t r = recv(up->io.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (r > 0)
		return up->tls != NULL;
	return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The newest idle connection to o. A request that may not be sent twice
 * (a non-idempotent one: may_resend) first has the connection looked
 * at: the keep-alive race (the origin closing it just now) would cost it
 * a 502 instead of a retry. */
static px_upstream *take_idle(edge_worker *w, const cfg_origin *o, bool check)
{
	edge_idle_list *l = &w->idle[o->index];
	for (px_upstream *up; (up = l->head);) {
		idle_unlink(up);
		core_timer_cancel(&w->loop, &up->timer);
		if (!check || idle_alive(up))
			return up;
		up_close(up);
	}
	return NULL;
}

/* A new connection to a TLS origin: the client side of the handshake,
 * resuming the worker's last session with that origin. */
static int up_tls_init(px_client *cl, px_upstream *up)
{
	edge_worker *w = cl->w;
	const cfg_origin *o = up->origin;
	char ip[64];
	core_sock_ip_text((const struct sockaddr *)&o->ss, ip, sizeof(ip));
	tls_session *sess = cl->snap == w->snap ? w->idle[o->index].sess : NULL;
	up->tls = xcalloc(1, sizeof(*up->tls));
	if (tls_conn_init_client(up->tls, cl->snap->otls[o->index], up->io.fd,
				 o->sni, ip, sess) < 0) {
		free(up->tls);
		up->tls = NULL;
		return -ENOMEM;
	}
	up->handshaking = true;
	return 0;
}

static void attach_upstream(px_client *cl, bool allow_idle)
{
	edge_worker *w = cl->w;
	for (;;) {
		const cfg_origin *o = cl->origin;
		if (o->tunnel && cl->upgrade_req) {
			/* Tunnels do not carry upgrades yet (docs/TUNNEL.md):
			 * answered here, before any connection, so that it
			 * says nothing about the tunnel's health (counted,
			 * any client could eject the tunnel). */
			local_response(cl, 501,
				       "Meridian tunnels do not carry Upgrade "
				       "(WebSocket) requests yet",
				       true);
			return;
		}
		px_upstream *up =
		    allow_idle && cl->snap == w->snap
			? take_idle(w, o, !http1_method_idempotent(cl->method))
			: NULL;
		if (up) {
			set_busy(cl, o);
			up->client = cl;
			up->reused = true;
			up->got_bytes = false;
			up->can_write = true;
			up->last_io = w->loop.now;
			cl->up = up;
			return;
		}
		bool in_progress;
		int fd = core_sock_connect((const struct sockaddr *)&o->ss,
					   o->sslen, &in_progress);
		if (fd >= 0) {
			up = up_alloc(w);
			up->w = w;
			up->io.fd = fd;
			up->io.cb = up_io_cb;
			up->snap = cl->snap;
			up->origin = o;
			up->client = cl;
			atomic_fetch_add(&ostate(cl->snap, o)->connections, 1);
			set_busy(cl, o);
			core_timer_init(&up->timer, up_timer_cb);
			if (core_loop_add(&w->loop, &up->io, false) < 0) {
				/* The count taken above goes back:
				 * least_connections and the upstream gauges
				 * read it. */
				atomic_fetch_sub(
				    &ostate(cl->snap, o)->connections, 1);
				close(fd);
				up->io.fd = -1;
				up->next = w->dead_upstreams;
				w->dead_upstreams = up;
				local_response(cl, 502, "internal error", true);
				return;
			}
			up->connecting = in_progress;
			up->can_write = !in_progress;
			up->last_io = w->loop.now;
			cl->up = up;
			if (o->tls && up_tls_init(cl, up) < 0) {
				local_response(cl, 502, "internal error", true);
				return;
			}
			/* The TLS handshake counts as part of the connect. */
			if (in_progress || up->tls)
				core_timer_after(
				    &w->loop, &up->timer,
				    timeouts(w)->upstream_connect_ms);
			return;
		}
		if (core_sock_err_local(-fd) || fd == -EADDRNOTAVAIL ||
		    fd == -EAGAIN) {
			/* Our shortage (descriptors, memory, local ports),
			 * not the origin's fault: no passive failure (it
			 * would eject every healthy origin), no other origin
			 * (it would fail the same way). */
			log_warn_every(1000,
				       "cannot open a connection to an "
				       "origin: %s",
				       strerror(-fd));
			local_response(cl, 503, "edge out of resources", false);
			return;
		}
		log_info("origin %s (%s): connect failed: %s", o->name,
			 o->address, strerror(-fd));
		origin_failed(cl, o, strerror(-fd));
		if (!next_origin(cl)) {
			local_response(cl, 502,
				       "no origin accepted the connection",
				       false);
			return;
		}
	}
}

/* The upstream failed before any response byte. */
/* Whether the request may go out again after its connection failed before
 * any answer: RFC 9112 §9.3.1.1 says a proxy MUST NOT retry a
 * non-idempotent request automatically, which the origin may have acted
 * on; only when none of it reached the origin is that not a retry. In
 * both cases no body byte may have gone (they left the buffer). */
static bool may_resend(const px_client *cl)
{
	if (!cl->uhead || cl->req_sent != 0)
		return false;
	bool none_written = blen(cl->uhead) == cl->uhead_len;
	return none_written || http1_method_idempotent(cl->method);
}

static void upstream_failed(px_client *cl, int err)
{
	px_upstream *up = cl->up;
	bool stale = up && up->reused && !up->got_bytes;
	if (up) {
		up_close(up);
		cl->up = NULL;
	}
	const char *why = err ? strerror(-err) : "connection closed";
	bool resend = may_resend(cl);
	if (stale && !cl->stale_retried) {
		/* Most likely the keep-alive race: the origin closed the
		 * idle connection as we reused it; no fault of the origin.
		 * Resend on a fresh connection, if it may go again. */
		if (resend) {
			cl->stale_retried = true;
			cl->uhead->start = 0;
			cl->uhead->end = cl->uhead_len;
			attach_upstream(cl, false);
			return;
		}
		log_info("origin %s: a kept connection ended (%s) before any "
			 "response; the request is not idempotent: not sent "
			 "again",
			 cl->origin->name, why);
		local_response(cl, 502, "origin closed the connection", true);
		return;
	}
	log_info("origin %s: %s before any response%s", cl->origin->name, why,
		 resend || cl->req_sent
		     ? ""
		     : "; the request is not idempotent: not sent again");
	origin_failed(cl, cl->origin, why);
	/* Zero-downtime failover: nothing came back, and no body byte went
	 * out, so the whole request can go to another origin. */
	if (resend && lb_retry_spend(&cl->w->retry_budget) && next_origin(cl)) {
		attach_upstream(cl, true);
		return;
	}
	local_response(cl, 502, "origin closed the connection", true);
}

static void connect_failed(px_client *cl, int err)
{
	log_info("origin %s (%s): connect failed: %s", cl->origin->name,
		 cl->origin->address, strerror(err));
	origin_failed(cl, cl->origin, strerror(err));
	up_close(cl->up);
	cl->up = NULL;
	if (next_origin(cl)) {
		attach_upstream(cl, true);
		return;
	}
	local_response(cl, 502, "no origin accepted the connection", false);
}

/* --- head state --------------------------------------------------------- */

/* px.h. */
bool px_client_may_connect(edge_worker *w, const struct sockaddr *peer,
			   uint64_t *key)
{
	*key = 0;
	uint32_t per = w->snap->cfg->edge.limits.max_connections_per_client;
	if (!per || !w->e->conns || geo_is_trusted(w->snap->geo, peer))
		return true;
	uint64_t k = sec_conns_key(w->e->conns, peer);
	switch (sec_conns_take(w->e->conns, k, per)) {
	case SEC_CONNS_TAKEN:
		*key = k;
		return true;
	case SEC_CONNS_UNTRACKED:
		atomic_fetch_add_explicit(&w->e->untracked, 1,
					  memory_order_relaxed);
		return true;
	default:
		atomic_fetch_add_explicit(&w->e->refused_per_client, 1,
					  memory_order_relaxed);
		return false;
	}
}

/* A parsed PROXY protocol header (only trusted peers get here; plain and
 * TLS listeners): the client it names replaces the peer. It is the one
 * max_connections_per_client counts (the peer was a trusted proxy, not
 * counted): false when it holds its limit already, and the connection is
 * to be closed. */
static bool use_proxy_header(px_client *cl, const proxy_proto_result *r)
{
	cl->want_proxy_hdr = false;
	if (r->local || r->srclen > sizeof(cl->peer))
		return true;
	memcpy(&cl->peer, &r->src, r->srclen);
	core_sock_ip_text((struct sockaddr *)&cl->peer, cl->ip, sizeof(cl->ip));
	geo_lookup(cl->w->snap->geo, (struct sockaddr *)&cl->peer, &cl->geo);
	/* The named client is not the trusted proxy itself. */
	cl->trusted_peer =
	    geo_is_trusted(cl->w->snap->geo, (struct sockaddr *)&cl->peer);
	if (cl->conn_key)
		return true;
	if (!px_client_may_connect(cl->w, (struct sockaddr *)&cl->peer,
				   &cl->conn_key)) {
		log_debug("%s: over max_connections_per_client; closed",
			  cl->ip);
		return false;
	}
	return true;
}

/* The PROXY protocol header in front of the first request on a plain
 * listener. Returns 1 when done, 0 for more bytes, -1 when the connection
 * was closed. */
static int take_proxy_header(px_client *cl)
{
	proxy_proto_result r;
	int n = proxy_proto_parse((const uint8_t *)core_buf_head(cl->in),
				  core_buf_len(cl->in), &r);
	if (n == 0 && core_buf_len(cl->in) < PROXY_PROTO_MAX_HEADER)
		return 0;
	if (n <= 0) {
		log_info("%s: bad PROXY protocol header; closed", cl->ip);
		client_close(cl);
		return -1;
	}
	if (!use_proxy_header(cl, &r)) {
		client_close(cl);
		return -1;
	}
	core_buf_consume(cl->in, (uint32_t)n);
	return 1;
}

static bool step_head(px_client *cl)
{
	edge_worker *w = cl->w;
	if (cl->want_proxy_hdr && cl->parse_pending && blen(cl->in) > 0) {
		int r = take_proxy_header(cl);
		if (r < 0)
			return false;
		if (r == 0)
			cl->parse_pending = false;
		else
			cl->parse_pending = blen(cl->in) > 0;
	}
	if (!cl->want_proxy_hdr && cl->in && cl->parse_pending &&
	    core_buf_len(cl->in) > 0) {
		cl->parse_pending = false;
		int r = http1_parse_request(core_buf_head(cl->in),
					    core_buf_len(cl->in),
					    &w->snap->req_limits, &w->req);
		if (r > 0) {
			start_request(cl, r);
			return true;
		}
		if (r < 0) {
			cl->method = HTTP_M_OTHER;
			local_response(cl, http1_err_status(r),
				       http1_err_reason(r), true);
			return true;
		}
		if (core_buf_space(cl->in) == 0) {
			if (cl->in->start == 0) {
				local_response(cl, 431,
					       "request head too large", true);
				return true;
			}
			core_buf_compact(cl->in);
		}
	}
	if (!cl->can_read)
		return false;
	if (!cl->in)
		cl->in = core_buf_get(&w->bufs);
	bool was_empty = core_buf_len(cl->in) == 0;
	ssize_t n = client_read(cl, cl->in);
	if (n > 0) {
		if (was_empty)
			cl->head_start = w->loop.now;
		cl->last_read = w->loop.now;
		/* Parse again only when a line may have ended (or the buffer
		 * is full): a client trickling a byte at a time must not cost
		 * a whole parse per byte. */
		if (cl->want_proxy_hdr ||
		    memchr(core_buf_tail(cl->in) - n, '\n', (size_t)n) ||
		    core_buf_space(cl->in) == 0)
			cl->parse_pending = true;
		return true;
	}
	if (n == -EAGAIN)
		return false;
	/* EOF or error between requests: just close. A partial head is
	 * incomplete, not answerable. */
	client_close(cl);
	return false;
}

/* --- proxy state -------------------------------------------------------- */

/* Frame body bytes at in[fwd..] as part of the message; returns bytes
 * framed or a negative http1_err. */
static int frame_body(uint8_t kind, uint64_t *remaining, http1_chunked *ch,
		      const char *p, uint32_t avail, bool eof, bool *done)
{
	switch (kind) {
	case HTTP1_BODY_LENGTH: {
		uint64_t take = MIN((uint64_t)avail, *remaining);
		*remaining -= take;
		*done = *remaining == 0;
		return (int)take;
	}
	case HTTP1_BODY_CHUNKED: {
		ssize_t n = http1_chunked_feed(ch, p, avail, done);
		return (int)n;
	}
	case HTTP1_BODY_EOF:
		*done = eof;
		return (int)avail;
	default:
		*done = true;
		return 0;
	}
}

static bool trailer_ok(const char *name, size_t len)
{
	return h2_req_trailer_ok((h2_str){name, len});
}

/* A chunked request's trailer section: its bytes are held after req_fwd
 * until the section is whole, then the fields an origin must not take
 * from a trailer (RFC 9110 §6.5.1: framing, routing, authentication,
 * the edge's own X-Forwarded-*; h2_req_trailer_ok, as for HTTP/2) are
 * cut out and the rest is framed. `fed` bytes at in[req_fwd + req_trl]
 * were just walked. Returns false when it answered. */
static bool hold_trailers(px_client *cl, uint32_t fed, bool done)
{
	uint32_t t = http1_chunked_trailer_bytes(&cl->req_chunk);
	cl->req_fwd += fed - (t - cl->req_trl); /* the body before them */
	cl->req_trl = t;
	/* The buffer holds max_header_bytes + 4 KiB: a held section of up
	 * to max_header_bytes always fits. */
	if (t > cl->snap->cfg->edge.limits.max_header_bytes) {
		local_response(cl, 431, "request trailer section too large",
			       true);
		return false;
	}
	if (!done)
		return true;
	char *sec = core_buf_head(cl->in) + cl->req_fwd;
	size_t kept = http1_trailers_filter(sec, t, trailer_ok);
	if (kept < t) {
		/* Move what follows (a pipelined request) down too. */
		uint32_t after = blen(cl->in) - cl->req_fwd - t;
		memmove(sec + kept, sec + t, after);
		cl->in->end -= t - (uint32_t)kept;
	}
	cl->req_fwd += (uint32_t)kept;
	cl->req_trl = 0;
	return true;
}

static bool frame_request(px_client *cl)
{
	uint32_t held = cl->req_trl;
	uint32_t avail = blen(cl->in) - cl->req_fwd - held;
	if (avail == 0)
		return false;
	bool done = false;
	int n = frame_body(cl->req_body, &cl->req_remaining, &cl->req_chunk,
			   core_buf_head(cl->in) + cl->req_fwd + held, avail,
			   false, &done);
	if (n < 0) {
		local_response(cl, 400, http1_err_reason(n), true);
		return true;
	}
	cl->req_total += (uint64_t)n;
	if (cl->req_body == HTTP1_BODY_CHUNKED &&
	    (held || done || http1_chunked_in_trailers(&cl->req_chunk))) {
		if (!hold_trailers(cl, (uint32_t)n, done))
			return true;
	} else {
		cl->req_fwd += (uint32_t)n;
	}
	cl->req_framed = done;
	uint64_t max = cl->w->snap->cfg->edge.limits.max_body_bytes;
	if (max && cl->req_body == HTTP1_BODY_CHUNKED &&
	    cl->req_chunk.total > max) {
		local_response(cl, 413, "request body too large", true);
		return true;
	}
	return n > 0 || done;
}

/* Read request body bytes: what client_read says (> 0 bytes, -EAGAIN,
 * -ENOBUFS: no room); anything else, the client went away in the middle
 * of its body and is closed. */
static ssize_t read_client(px_client *cl)
{
	if (!cl->in)
		cl->in = core_buf_get(&cl->w->bufs);
	ssize_t n = client_read(cl, cl->in);
	if (n > 0) {
		cl->last_read = cl->w->loop.now;
		return n;
	}
	if (n == -EAGAIN || n == -ENOBUFS)
		return n;
	cl->rd_eof = true;
	client_close(cl);
	return n ? n : -ECONNRESET;
}

static bool write_upstream(px_client *cl)
{
	px_upstream *up = cl->up;
	uint32_t hl = blen(cl->uhead);
	ssize_t n = up_write2(up, cl->uhead, hl, cl->in, cl->req_fwd);
	if (n < 0) {
		if (!up->got_bytes && !cl->resp_head_done) {
			upstream_failed(cl, (int)n);
			return true;
		}
		/* The origin answered early and stopped reading (a 413 to a
		 * big upload, say): drop the rest of the request body, let the
		 * answer through, then close (the body's end is unknown). */
		up->wr_shut = true;
		cl->req_framed = true;
		cl->req_fwd = 0;
		core_buf_put(&cl->w->bufs, cl->uhead);
		cl->uhead = NULL;
		cl->close_after = true;
		return true;
	}
	if (n == 0)
		return false;
	uint32_t m = (uint32_t)n;
	uint32_t h = MIN(m, hl);
	if (h)
		core_buf_consume(cl->uhead, h);
	m -= h;
	if (m) {
		core_buf_consume(cl->in, m);
		cl->req_fwd -= m;
		cl->req_sent += m;
		/* Room was made: the client's body clock starts again. */
		cl->last_read = cl->w->loop.now;
	}
	up->last_io = cl->w->loop.now;
	return true;
}

static bool read_upstream(px_client *cl)
{
	px_upstream *up = cl->up;
	if (!up->in)
		up->in = core_buf_get(&cl->w->bufs);
	ssize_t n = up_read(up, up->in);
	if (n > 0) {
		up->got_bytes = true;
		up->parse_pending = true;
		up->last_io = cl->w->loop.now;
		return true;
	}
	if (n == -EAGAIN || n == -ENOBUFS)
		return false;
	up->rd_eof = true;
	if (!cl->resp_head_done) {
		if (blen(up->in) == 0 && !up->got_bytes) {
			upstream_failed(cl, n == 0 ? 0 : (int)n);
			return true;
		}
		/* Nothing left unparsed: all that came was 1xx answers. */
		const char *why =
		    blen(up->in) ? "incomplete response head"
				 : "closed after 1xx, with no final answer";
		log_info("origin %s: %s", cl->origin->name, why);
		origin_failed(cl, cl->origin, why);
		local_response(cl, 502, "incomplete response from origin",
			       true);
		return true;
	}
	if (cl->resp_body == HTTP1_BODY_EOF && n < 0) {
		/* A reset where only the close ends the body: what came may
		 * not be all of it, and a clean close would say it is. Cut
		 * the client off with a reset once what came is out. */
		log_info("origin %s: response body cut by %s", cl->origin->name,
			 strerror((int)-n));
		cl->resp_cut = true;
	}
	if ((cl->resp_body != HTTP1_BODY_EOF || cl->resp_cut) &&
	    !cl->resp_framed) {
		/* Truncated body: forward what we have, then cut. */
		if (!cl->resp_cut)
			log_info("origin %s: response body truncated",
				 cl->origin->name);
		/* Decoded for an HTTP/1.0 client, the body has no framing
		 * left to show the cut: reset. */
		if (cl->resp_unchunk)
			cl->resp_cut = true;
		/* A 5xx answer was counted already. */
		if (cl->st.status < 500)
			origin_failed(cl, cl->origin, "response truncated");
		cl->close_after = true;
	}
	return true;
}

/* Append a 1xx interim response (100 Continue, 103 Early Hints). */
static int relay_interim(px_client *cl, const http1_response *resp)
{
	if (cl->http10)
		return 0; /* HTTP/1.0 clients do not get 1xx */
	if (cl->h2s)
		return px_h2_respond(cl, resp, NULL);
	if (!cl->chead)
		cl->chead = core_buf_get(&cl->w->bufs);
	chead_compact(cl);
	int n =
	    px_head_response(resp, false, false, NULL, core_buf_tail(cl->chead),
			     core_buf_space(cl->chead));
	if (n < 0)
		return n;
	/* px_head_response never adds Connection here; strip nothing. */
	cl->chead->end += (uint32_t)n;
	return 0;
}

/* Idempotent, bodiless, nothing streamed: safe to send again. */
static bool retry_5xx_ok(px_client *cl)
{
	const edge_worker *w = cl->w;
	if (!w->snap->cfg->edge.retries.on_5xx || !cl->uhead)
		return false;
	if (!http1_method_idempotent(cl->method))
		return false;
	if (cl->req_body != HTTP1_BODY_NONE || cl->req_sent != 0 ||
	    cl->upgrade_req)
		return false;
	return lb_retry_spend(&cl->w->retry_budget);
}

/* An answer the edge cannot pass on: logged with why, a passive failure
 * of the origin (as nginx's max_fails and HAProxy's observe layer7 count
 * it), and a 502 with detail to the client. */
static void invalid_answer(px_client *cl, const char *why, const char *detail)
{
	log_info("origin %s: invalid response: %s", cl->origin->name, why);
	origin_failed(cl, cl->origin, "invalid response");
	local_response(cl, 502, detail, true);
}

static bool parse_response(px_client *cl)
{
	edge_worker *w = cl->w;
	px_upstream *up = cl->up;
	up->parse_pending = false;
	http1_response *resp = &w->resp;
	int r = http1_parse_response(core_buf_head(up->in), blen(up->in),
				     &w->snap->resp_limits, cl->method, resp);
	if (r == 0) {
		if (core_buf_space(up->in) == 0 && up->in->start == 0) {
			invalid_answer(
			    cl, http1_err_reason(HTTP1_E_HEADERS_TOO_LARGE),
			    "response head too large");
			return true;
		}
		return false;
	}
	if (r < 0) {
		invalid_answer(cl, http1_err_reason(r),
			       "invalid response from origin");
		return true;
	}
	if (resp->status < 200 && resp->status != 101) {
		if (relay_interim(cl, resp) < 0) {
			local_response(cl, 502, "response head too large",
				       true);
			return true;
		}
		core_buf_consume(up->in, (uint32_t)r);
		up->parse_pending = blen(up->in) > 0;
		return true;
	}
	bool upgrade = resp->status == 101;
	if (upgrade && !cl->upgrade_req) {
		invalid_answer(cl, "101 to a request that asked for no upgrade",
			       "origin switched protocols unasked");
		return true;
	}
	if (resp->te_other && resp->body != HTTP1_BODY_NONE) {
		/* The body's bytes are in a coding other than chunked, which
		 * the edge does not decode and a client may not be told of
		 * (HTTP/1.0, HTTP/2): dropping the field would hand on the
		 * coded bytes as the content. nginx refuses it too. */
		invalid_answer(
		    cl, http1_err_reason(HTTP1_E_UNSUPPORTED_TRANSFER_CODING),
		    "unsupported transfer coding from origin");
		return true;
	}
	if (resp->status >= 500) {
		origin_failed(cl, cl->origin, "5xx answer");
		if ((resp->status == 502 || resp->status == 503) &&
		    retry_5xx_ok(cl) && next_origin(cl)) {
			/* Drop this answer with its connection; ask another
			 * origin (edge.retries.on_5xx). */
			up_close(up);
			cl->up = NULL;
			attach_upstream(cl, true);
			return true;
		}
	} else {
		lb_passive_success(ostate(cl->snap, cl->origin));
	}
	/* A request not all sent yet (the origin answered early) may never
	 * be: say close now rather than cut the connection after. */
	bool close = cl->close_after || w->draining ||
		     resp->body == HTTP1_BODY_EOF || !cl->req_framed ||
		     cl->req_fwd || blen(cl->uhead);
	if (!cl->chead && !cl->h2s)
		cl->chead = core_buf_get(&w->bufs);
	if (cl->chead)
		chead_compact(cl);
	/* The fields the edge adds to the origin's head: the affinity
	 * cookie, then those of every answer (edge_fields). */
	px_resp_edit ed = {0};
	char cookie[LB_AFF_SET_COOKIE_MAX];
	if (cl->aff_set && lb_affinity_uses_cookie(cl->slb)) {
		/* Remember the origin that answered (session affinity). */
		char tok[LB_AFF_TOKEN_LEN + 1];
		lb_affinity_token(&w->snap->aff_secret, cl->pool, cl->origin,
				  tok);
		int c = lb_affinity_set_cookie(cl->slb, tok, is_https(cl),
					       cookie, sizeof(cookie));
		if (c > 0)
			ed.add[ed.nadd++] = (http1_header){
			    {"Set-Cookie", 10}, {cookie, (uint32_t)c}};
	}
	edge_fields(cl, &ed, !upgrade);
	if (!resp->has_date)
		add_date(&ed);
	/* An HTTP/1.0 client gets a chunked body decoded (the origin was
	 * asked in HTTP/1.0 and should not have chunked it, RFC 9112 §6.1,
	 * but some do): it ends with the close. */
	ed.unchunk = cl->http10 && !cl->h2s && resp->body == HTTP1_BODY_CHUNKED;
	close = close || ed.unchunk;
	keep_alive_10(cl, &ed, close || upgrade);
	/* HTTP/2 streams: the head goes straight to HEADERS. */
	int n = cl->h2s ? px_h2_respond(cl, resp, &ed)
			: px_head_response(resp, upgrade, close && !upgrade,
					   &ed, core_buf_tail(cl->chead),
					   core_buf_space(cl->chead));
	if (n < 0) {
		local_response(cl, 502, "response head too large", true);
		return true;
	}
	if (!cl->h2s)
		cl->chead->end += (uint32_t)n;
	core_buf_consume(up->in, (uint32_t)r);
	cl->resp_head_done = true;
	px_stats_head(cl, resp->status);
	count_response(cl, resp->status);
	cl->close_after = close && !upgrade;
	cl->resp_keepalive = resp->conn.keep_alive;
	cl->resp_body = (uint8_t)resp->body;
	cl->resp_unchunk = ed.unchunk;
	cl->resp_remaining = resp->content_length;
	cl->resp_framed =
	    resp->body == HTTP1_BODY_NONE ||
	    (resp->body == HTTP1_BODY_LENGTH && resp->content_length == 0);
	/* No more retries once the origin answered: free the request head. */
	core_buf_put(&w->bufs, cl->uhead);
	cl->uhead = NULL;
	if (upgrade) {
		cl->state = PX_TUNNEL;
		cl->resp_framed = true;
	}
	return true;
}

/* frame_body for a chunked body sent decoded (resp_unchunk): walk the
 * bytes at resp_fwd as usual, keep the chunks' data and drop the framing
 * from up->in in place. Returns the data bytes framed or an http1_err. */
static int unchunk_body(px_client *cl, bool *done)
{
	core_buf *b = cl->up->in;
	char *p = core_buf_head(b);
	uint32_t len = blen(b), r = cl->resp_fwd, wr = cl->resp_fwd;
	*done = false;
	while (r < len && !*done) {
		uint64_t dn = http1_chunked_data_next(&cl->resp_chunk);
		uint32_t take = dn ? (uint32_t)MIN((uint64_t)(len - r), dn) : 1;
		ssize_t k =
		    http1_chunked_feed(&cl->resp_chunk, p + r, take, done);
		if (k < 0)
			return (int)k;
		if (k == 0)
			break;
		if (dn) {
			memmove(p + wr, p + r, (size_t)k);
			wr += (uint32_t)k;
		}
		r += (uint32_t)k;
	}
	if (r > wr) { /* close the gap the framing left */
		memmove(p + wr, p + r, len - r);
		b->end -= r - wr;
	}
	return (int)(wr - cl->resp_fwd);
}

static bool frame_response(px_client *cl)
{
	px_upstream *up = cl->up;
	uint32_t avail = blen(up->in) - cl->resp_fwd;
	/* A body cut by a reset never ends: the client is cut off too. */
	bool eof = up->rd_eof && !cl->resp_cut;
	if (avail == 0 && !(cl->resp_body == HTTP1_BODY_EOF && eof))
		return false;
	bool done = false;
	uint32_t before = blen(up->in);
	int n = cl->resp_unchunk
		    ? unchunk_body(cl, &done)
		    : frame_body(cl->resp_body, &cl->resp_remaining,
				 &cl->resp_chunk,
				 core_buf_head(up->in) + cl->resp_fwd, avail,
				 eof, &done);
	if (n < 0) {
		log_info("origin %s: bad response body: %s", cl->origin->name,
			 http1_err_reason(n));
		origin_failed(cl, cl->origin, "invalid response body");
		if (!cl->h2s && cl->chead && blen(cl->chead) &&
		    !chead_started(cl)) {
			/* Nothing of the answer went out yet (the body came
			 * with its head): the client gets a 502, not a bare
			 * close. (A head all written leaves chead empty, at
			 * 0 too: then the answer is cut.) */
			cl->chead->end = 0;
			cl->resp_head_done = false;
			local_response(cl, 502, "invalid response from origin",
				       true);
			return false;
		}
		if (cl->resp_unchunk)
			client_abort(cl);
		else
			client_close(cl);
		return false;
	}
	cl->resp_fwd += (uint32_t)n;
	cl->resp_framed = done;
	return n > 0 || done || blen(up->in) != before;
}

static bool write_client(px_client *cl)
{
	px_upstream *up = cl->up;
	uint32_t hl = blen(cl->chead);
	uint32_t bl = up ? cl->resp_fwd : 0;
	ssize_t n = client_write2(cl, cl->chead, hl, up ? up->in : NULL, bl);
	if (n < 0) {
		client_close(cl);
		return false;
	}
	if (n == 0)
		return false;
	px_stats_sent(&cl->st, (size_t)n);
	uint32_t m = (uint32_t)n;
	uint32_t h = MIN(m, hl);
	if (h) {
		core_buf_consume(cl->chead, h);
		if (!blen(cl->chead))
			cl->chead_cut = false;
	}
	m -= h;
	if (m) {
		core_buf_consume(up->in, m);
		cl->resp_fwd -= m;
		up->last_io = cl->w->loop.now;
	}
	cl->last_write = cl->w->loop.now;
	return true;
}

static void release_upstream(px_client *cl, bool reusable)
{
	edge_worker *w = cl->w;
	px_upstream *up = cl->up;
	cl->up = NULL;
	if (!up)
		return;
	if (up->tls)
		up_keep_session(up);
	edge_idle_list *l = &w->idle[up->origin->index];
	/* Once the response is framed nothing reads the origin, so bytes or
	 * a FIN that came after it spent their edge-triggered event here:
	 * pooled, the connection would hand them to the next request as its
	 * answer. can_read still set (an unread edge, or a last read that
	 * filled the buffer) or hup: not reusable. */
	if (!reusable || up->can_read || up->hup || blen(up->in) > 0 ||
	    w->draining || up->snap != w->snap ||
	    l->count >= w->snap->cfg->edge.limits.upstream_idle_per_origin) {
		up_close(up);
		return;
	}
	core_buf_put(&w->bufs, up->in);
	up->in = NULL;
	up->client = NULL;
	up->idle = true;
	up->prev = NULL;
	up->next = l->head;
	if (l->head)
		l->head->prev = up;
	l->head = up;
	l->count++;
	px_stats_idle(w, 1);
	core_timer_after(&w->loop, &up->timer, timeouts(w)->upstream_idle_ms);
}

static bool finish_exchange(px_client *cl)
{
	bool req_done =
	    cl->req_framed && cl->req_fwd == 0 && blen(cl->uhead) == 0;
	px_upstream *up = cl->up;
	/* An HTTP/1.0 request went with "Connection: close" (px_head_request):
	 * no further request may follow on that connection (RFC 9112 §9.6),
	 * whatever the origin's answer said. */
	bool reusable = up && req_done && !up->rd_eof && !up->wr_shut &&
			cl->resp_keepalive && !cl->http10 &&
			cl->resp_body != HTTP1_BODY_EOF;
	px_stats_end(cl);
	/* Not outstanding any more before its connection shows as idle: a
	 * reader of the gauges (/metrics, least_outstanding_requests on
	 * another worker) that sees the idle connection sees the request
	 * done too. */
	set_busy(cl, NULL);
	release_upstream(cl, reusable);
	if (cl->close_after || !req_done) {
		begin_linger(cl);
		return true;
	}
	next_request(cl);
	return true;
}

/* TLS origins: drive the client handshake. A failure (verification
 * included) is a failed connection to that origin: the next one is
 * tried, else 502 naming the reason. Returns progress. */
static bool up_handshake(px_client *cl)
{
	px_upstream *up = cl->up;
	const cfg_origin *o = cl->origin;
	int r = tls_conn_handshake(up->tls);
	if (r == 0) {
		up->handshaking = false;
		up->can_read = up->can_write = true;
		up->last_io = cl->w->loop.now;
		core_timer_cancel(&cl->w->loop, &up->timer);
		log_debug("origin %s (%s:%u): TLS %s%s", o->name, o->address,
			  o->port, tls_conn_version(up->tls),
			  tls_conn_resumed(up->tls) ? " (resumed)" : "");
		return true;
	}
	if (r == TLS_WANT_READ) {
		up->can_read = false;
		return false;
	}
	if (r == TLS_WANT_WRITE) {
		up->can_write = false;
		return false;
	}
	const char *why = tls_conn_error(up->tls);
	const char *verr = tls_conn_verify_error(up->tls);
	/* The log names the origin; the client's 502 says only what went
	 * wrong, not the origin's name and internal address. */
	char reason[256], detail[320];
	snprintf(reason, sizeof(reason), "%s%s%s",
		 why ? why : "TLS handshake failed", verr ? ": " : "",
		 verr ? verr : "");
	snprintf(detail, sizeof(detail), "TLS with the origin: %s", reason);
	char names[384];
	const char *vd = tls_conn_verify_detail(up->tls, names, sizeof(names));
	log_info("origin %s (%s:%u): %s%s", o->name, o->address, o->port,
		 reason, vd);
	origin_failed(cl, o, verr ? verr : why ? why : "TLS handshake failed");
	up_close(up);
	cl->up = NULL;
	if (next_origin(cl)) {
		attach_upstream(cl, true);
		return true;
	}
	local_response(cl, 502, detail, false);
	return true;
}

static bool step_proxy(px_client *cl)
{
	bool p = false;
	if (cl->reset && !cl->wr_shut) {
		/* The client reset its connection: nothing can reach it. End
		 * the exchange now (a 499) rather than hold the origin's
		 * connection until it answers or upstream_response runs out. */
		log_debug("%s: client reset the connection before the answer "
			  "was sent",
			  cl->ip);
		client_close(cl);
		return false;
	}
	if (!cl->req_framed)
		p |= frame_request(cl);
	if (is_closed(cl) || cl->state != PX_PROXY)
		return p;
	if (!cl->req_framed && cl->can_read)
		p |= read_client(cl) > 0;
	if (is_closed(cl) || cl->state != PX_PROXY)
		return p;
	px_upstream *up = cl->up;
	if (!up)
		return p; /* a failed attach already answered */
	if (up->handshaking) {
		if (up->connecting || !(up->can_read || up->can_write))
			return p;
		p |= up_handshake(cl);
		if (is_closed(cl) || cl->state != PX_PROXY || cl->up != up ||
		    up->handshaking)
			return p;
	}
	if (!up->connecting && up->can_write &&
	    (blen(cl->uhead) || cl->req_fwd))
		p |= write_upstream(cl);
	if (is_closed(cl) || cl->state != PX_PROXY || cl->up != up)
		return true;
	if (!up->connecting && !cl->resp_framed && up->can_read && !up->rd_eof)
		p |= read_upstream(cl);
	if (is_closed(cl) || cl->state != PX_PROXY || cl->up != up)
		return true;
	if (!cl->resp_head_done && up->parse_pending && blen(up->in))
		p |= parse_response(cl);
	if (is_closed(cl) || cl->state != PX_PROXY)
		return true;
	if (cl->resp_head_done && !cl->resp_framed)
		p |= frame_response(cl);
	if (is_closed(cl))
		return false;
	if (cl->can_write && (blen(cl->chead) || cl->resp_fwd))
		p |= write_client(cl);
	if (is_closed(cl) || cl->state != PX_PROXY)
		return p;
	if (cl->resp_head_done && cl->resp_framed && cl->resp_fwd == 0 &&
	    blen(cl->chead) == 0)
		return finish_exchange(cl);
	if (cl->resp_head_done && !cl->resp_framed && cl->up == up &&
	    up->rd_eof && blen(up->in) == 0 && blen(cl->chead) == 0) {
		/* The origin closed mid-body and all it sent is out: cut
		 * now (an HTTP/2 stream is reset) rather than at a timeout.
		 * A close-delimited body would look complete after a clean
		 * close: reset the connection instead. */
		if (cl->resp_cut)
			client_abort(cl);
		else
			client_close(cl);
		return false;
	}
	return p;
}

/* --- local, linger, tunnel ------------------------------------------- */

static bool step_local(px_client *cl)
{
	if (!cl->can_write)
		return false;
	bool p = write_client(cl);
	if (is_closed(cl))
		return false;
	if (blen(cl->chead) == 0) {
		px_stats_end(cl);
		if (cl->close_after) {
			begin_linger(cl);
		} else {
			next_request(cl);
		}
		return true;
	}
	return p;
}

static bool step_linger(px_client *cl)
{
	if (!cl->can_read)
		return false;
	char sink[4096];
	if (cl->tls) {
		ssize_t t = tls_conn_read(cl->tls, sink, sizeof(sink));
		if (t > 0)
			return true;
		if (tls_read_rc(t, &cl->can_read, &cl->tls_rd_wants_write) ==
		    -EAGAIN)
			return false;
		client_close(cl);
		return false;
	}
	ssize_t n = read(cl->io.fd, sink, sizeof(sink));
	if (n > 0)
		return true;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		cl->can_read = false;
		return false;
	}
	client_close(cl);
	return false;
}

static bool step_tunnel(px_client *cl)
{
	px_upstream *up = cl->up;
	edge_worker *w = cl->w;
	bool p = false;
	if (!up) {
		client_close(cl);
		return false;
	}
	/* client → origin */
	if (cl->can_read && !cl->rd_eof) {
		if (!cl->in)
			cl->in = core_buf_get(&w->bufs);
		ssize_t n = client_read(cl, cl->in);
		if (n > 0) {
			p = true;
			cl->last_read = w->loop.now;
		} else if (n == 0 || (n != -EAGAIN && n != -ENOBUFS)) {
			cl->rd_eof = true;
			p = true;
		}
	}
	if (up->can_write && blen(cl->in)) {
		ssize_t n = up_write2(up, cl->in, blen(cl->in), NULL, 0);
		if (n < 0) {
			client_close(cl);
			return false;
		}
		if (n > 0) {
			core_buf_consume(cl->in, (uint32_t)n);
			p = true;
		}
	}
	if (cl->rd_eof && blen(cl->in) == 0 && !up->wr_shut)
		up_shut_wr(up);
	/* origin → client (after the 101 head in chead) */
	if (up->can_read && !up->rd_eof) {
		if (!up->in)
			up->in = core_buf_get(&w->bufs);
		ssize_t n = up_read(up, up->in);
		if (n > 0) {
			p = true;
			cl->last_write = w->loop.now;
		} else if (n == 0 || (n != -EAGAIN && n != -ENOBUFS)) {
			up->rd_eof = true;
			p = true;
		}
	}
	cl->resp_fwd = blen(up->in);
	if (cl->can_write && (blen(cl->chead) || cl->resp_fwd)) {
		p |= write_client(cl);
		if (is_closed(cl))
			return false;
	}
	if (up->rd_eof && blen(up->in) == 0 && blen(cl->chead) == 0 &&
	    !cl->wr_shut)
		client_shut_wr(cl);
	if (cl->wr_shut && up->wr_shut) {
		client_close(cl);
		return false;
	}
	return p;
}

/* --- TLS handshake ------------------------------------------------------ */

/* The PROXY protocol header on an https listener: it comes in clear
 * before the ClientHello, and the TLS layer reads the socket itself. So
 * the bytes are peeked at until the whole header is there, then exactly
 * the header is read. Returns as take_proxy_header. */
static int take_tls_proxy_header(px_client *cl)
{
	if (!cl->can_read)
		return 0;
	uint8_t buf[PROXY_PROTO_MAX_HEADER];
	ssize_t got;
	do
		got = recv(cl->io.fd, buf, sizeof(buf), MSG_PEEK);
	while (got < 0 && errno == EINTR);
	if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		cl->can_read = false;
		return 0;
	}
	if (got <= 0) {
		log_debug("%s: closed before the PROXY header", cl->ip);
		client_close(cl);
		return -1;
	}
	proxy_proto_result r;
	int n = proxy_proto_parse(buf, (size_t)got, &r);
	if (n == 0 && (size_t)got < sizeof(buf) && !cl->hup) {
		/* A prefix: the rest wakes us (edge-triggered, new bytes). */
		cl->can_read = false;
		return 0;
	}
	if (n <= 0 || recv(cl->io.fd, buf, (size_t)n, 0) != n) {
		log_info("%s: bad PROXY protocol header; closed", cl->ip);
		client_close(cl);
		return -1;
	}
	if (!use_proxy_header(cl, &r)) {
		client_close(cl);
		return -1;
	}
	return 1;
}

static bool step_handshake(px_client *cl)
{
	if (!cl->can_read && !cl->can_write)
		return false;
	if (cl->want_proxy_hdr && take_tls_proxy_header(cl) <= 0)
		return false;
	int r = tls_conn_handshake(cl->tls);
	if (r == 0) {
		log_debug("%s: TLS %s%s, SNI %s", cl->ip,
			  tls_conn_version(cl->tls),
			  tls_conn_resumed(cl->tls) ? " (resumed)" : "",
			  tls_conn_sni(cl->tls) ? tls_conn_sni(cl->tls) : "-");
		cl->state = PX_HEAD;
		cl->head_start = 0;
		cl->last_read = cl->w->loop.now;
		/* The request may have come with the last flight. */
		cl->can_read = true;
		if (tls_conn_alpn(cl->tls) == TLS_ALPN_H2 &&
		    px_h2_start(cl) < 0) {
			client_close(cl);
			return false;
		}
		return true;
	}
	if (r == TLS_WANT_READ) {
		cl->can_read = false;
		return false;
	}
	if (r == TLS_WANT_WRITE) {
		cl->can_write = false;
		return false;
	}
	/* Scanners, old clients, wrong SNI: nothing to answer. */
	log_debug("%s: TLS handshake failed: %s", cl->ip,
		  tls_conn_error(cl->tls) ? tls_conn_error(cl->tls)
					  : "connection closed");
	client_close(cl);
	return false;
}

/* --- timers --------------------------------------------------------- */

static void update_timers(px_client *cl)
{
	edge_worker *w = cl->w;
	const cfg_timeouts *to = timeouts(w);
	core_loop *l = &w->loop;
	switch (cl->state) {
	case PX_HEAD:
		if (blen(cl->in) > 0 && cl->head_start)
			core_timer_set(l, &cl->timer,
				       cl->head_start + to->client_header_ms);
		else if (cl->w->draining) /* a request may be on the way */
			core_timer_set(l, &cl->timer,
				       cl->last_read + to->client_header_ms);
		else
			core_timer_set(l, &cl->timer,
				       cl->last_read + to->client_idle_ms);
		break;
	case PX_PROXY:
		/* Each side's timer runs only while we wait on that side, not
		 * while the other side's backpressure holds us. */
		if (!cl->req_framed && !cl->can_read && has_room(cl->in))
			core_timer_set(l, &cl->timer,
				       cl->last_read + to->client_body_ms);
		else if ((blen(cl->chead) || cl->resp_fwd) && !cl->can_write)
			core_timer_set(l, &cl->timer,
				       cl->last_write + to->client_idle_ms);
		else
			core_timer_cancel(l, &cl->timer);
		if (cl->up && !cl->up->connecting && !cl->up->handshaking) {
			/* The origin is waited on once the request is out,
			 * while it does not take the request's bytes, or
			 * once it answers -- not while the client is slow to
			 * send its body (client_body covers that). */
			px_upstream *up = cl->up;
			bool to_send = blen(cl->uhead) || cl->req_fwd;
			bool sent = cl->req_framed && !to_send;
			if (!cl->resp_framed && has_room(up->in) &&
			    (sent || (to_send && !up->can_write) ||
			     up->got_bytes))
				core_timer_set(l, &cl->up->timer,
					       cl->up->last_io +
						   to->upstream_response_ms);
			else
				core_timer_cancel(l, &cl->up->timer);
		}
		break;
	case PX_WAF:
		if (blen(cl->chead) && !cl->can_write)
			core_timer_set(l, &cl->timer,
				       cl->last_write + to->client_idle_ms);
		else
			core_timer_set(l, &cl->timer,
				       cl->last_read + to->client_body_ms);
		break;
	case PX_LOCAL:
		core_timer_set(l, &cl->timer,
			       cl->last_write + to->client_idle_ms);
		break;
	case PX_TUNNEL:
		core_timer_set(l, &cl->timer,
			       MAX(cl->last_read, cl->last_write) +
				   to->client_idle_ms);
		if (cl->up)
			core_timer_cancel(l, &cl->up->timer);
		break;
	case PX_LINGER:
		break; /* fixed deadline set by begin_linger */
	case PX_HANDSHAKE:
		core_timer_set(l, &cl->timer,
			       cl->head_start + to->client_header_ms);
		break;
	case PX_H2: {
		uint64_t d = px_h2_deadline(cl);
		if (d)
			core_timer_set(l, &cl->timer, d);
		else
			core_timer_cancel(l, &cl->timer);
		break;
	}
	}
}

static void client_timer_cb(core_timer *t)
{
	px_client *cl = container_of(t, px_client, timer);
	switch (cl->state) {
	case PX_HEAD:
		if (blen(cl->in) > 0) {
			local_response(cl, 408, "timed out reading the request",
				       true);
			break;
		}
		client_close(cl); /* idle keep-alive connection */
		return;
	case PX_WAF:
	case PX_PROXY:
		if (!cl->req_framed && !cl->resp_head_done) {
			local_response(cl, 408,
				       "timed out reading the request body",
				       true);
			break;
		}
		client_close(cl);
		return;
	case PX_H2:
		px_h2_timeout(cl);
		return;
	default:
		client_close(cl);
		return;
	}
	pump(cl);
}

static void up_timer_cb(core_timer *t)
{
	px_upstream *up = container_of(t, px_upstream, timer);
	px_client *cl = up->client;
	if (!cl) {
		up_close(up); /* idle too long */
		return;
	}
	if (up->connecting || up->handshaking) {
		const char *what = up->connecting ? "connect" : "TLS handshake";
		log_info("origin %s (%s): %s timed out", cl->origin->name,
			 cl->origin->address, what);
		origin_failed(cl, cl->origin,
			      up->connecting ? "connect timed out"
					     : "TLS handshake timed out");
		up_close(up);
		cl->up = NULL;
		if (next_origin(cl))
			attach_upstream(cl, true);
		else
			local_response(cl, 504,
				       "timed out connecting to the origin",
				       false);
	} else if (!cl->resp_head_done) {
		/* Nothing, part of a head or only 1xx: no final head went
		 * out, so the client can still get an answer. */
		log_info("origin %s: no response%s in time", cl->origin->name,
			 up->got_bytes ? " head" : "");
		origin_failed(cl, cl->origin, "response timed out");
		local_response(cl, 504, "the origin did not answer in time",
			       true);
	} else {
		client_close(cl);
		return;
	}
	pump(cl);
}

/* --- events ------------------------------------------------------------ */

static void pump_steps(px_client *cl)
{
	/* Each step either makes progress or waits for an edge; the bound
	 * only guards against a logic error spinning a worker forever. */
	for (uint32_t rounds = 0; rounds < 1000000; rounds++) {
		if (is_closed(cl))
			return;
		bool p;
		switch (cl->state) {
		case PX_HEAD:
			p = step_head(cl);
			break;
		case PX_PROXY:
			p = step_proxy(cl);
			break;
		case PX_LOCAL:
			p = step_local(cl);
			break;
		case PX_TUNNEL:
			p = step_tunnel(cl);
			break;
		case PX_LINGER:
			p = step_linger(cl);
			break;
		case PX_HANDSHAKE:
			p = step_handshake(cl);
			break;
		case PX_H2:
			p = px_h2_step(cl);
			break;
		case PX_WAF:
			p = step_waf(cl);
			break;
		default:
			p = false;
		}
		if (!p)
			break;
	}
	if (is_closed(cl))
		return;
	if (cl->state == PX_HEAD && cl->in && core_buf_len(cl->in) == 0) {
		/* Idle between requests: hold no buffer. */
		core_buf_put(&cl->w->bufs, cl->in);
		cl->in = NULL;
	}
	update_timers(cl);
}

static void pump(px_client *cl)
{
	pump_steps(cl);
	/* An HTTP/2 stream's progress is frames for its connection. */
	if (cl->h2conn)
		px_h2_poke(cl->h2conn);
}

static void client_io_cb(core_io *io, uint32_t ev)
{
	px_client *cl = container_of(io, px_client, io);
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		cl->can_read = true;
	if (ev & (EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		cl->hup = true;
	if (ev & (EPOLLERR | EPOLLHUP))
		cl->reset = true;
	if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		cl->can_write = true;
	pump(cl);
}

/* TLS clients: as client_io_cb, and an edge may also wake the other
 * direction (a read that wanted writability, a write that wanted data). */
static void tls_client_io_cb(core_io *io, uint32_t ev)
{
	px_client *cl = container_of(io, px_client, io);
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
		cl->can_read = true;
		if (cl->tls_wr_wants_read) {
			cl->tls_wr_wants_read = false;
			cl->can_write = true;
		}
	}
	if (ev & (EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		cl->hup = true;
	if (ev & (EPOLLERR | EPOLLHUP))
		cl->reset = true;
	if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
		cl->can_write = true;
		if (cl->tls_rd_wants_write) {
			cl->tls_rd_wants_write = false;
			cl->can_read = true;
		}
	}
	pump(cl);
}

static void up_io_cb(core_io *io, uint32_t ev)
{
	px_upstream *up = container_of(io, px_upstream, io);
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		up->can_read = true;
	if (ev & (EPOLLRDHUP | EPOLLERR | EPOLLHUP))
		up->hup = true;
	if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		up->can_write = true;
	if (up->tls) {
		/* A TLS read may wait for writability and a write for data. */
		if ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) &&
		    up->tls_wr_wants_read) {
			up->tls_wr_wants_read = false;
			up->can_write = true;
		}
		if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
		    up->tls_rd_wants_write) {
			up->tls_rd_wants_write = false;
			up->can_read = true;
		}
	}
	if (up->idle) {
		/* An idle origin connection should be silent: data or a close
		 * means it is no longer usable. */
		if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))
			up_close(up);
		return;
	}
	px_client *cl = up->client;
	if (!cl)
		return;
	if (up->connecting) {
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			connect_failed(cl, err);
			pump(cl);
			return;
		}
		up->connecting = false;
		up->last_io = cl->w->loop.now;
		if (!up->handshaking) /* else the deadline covers it too */
			core_timer_cancel(&cl->w->loop, &up->timer);
	}
	pump(cl);
}

/* --- drain ------------------------------------------------------------- */

void px_drain(edge_worker *w)
{
	px_client *next;
	for (px_client *cl = w->clients; cl; cl = next) {
		next = cl->next;
		if (cl->state == PX_HEAD && blen(cl->in) == 0) {
			/* Closing a socket that holds unread bytes resets it:
			 * a request already sent would be lost. An idle
			 * keep-alive connection with nothing in it is closed
			 * (its client retries, RFC 9112 §9.3.1); one with
			 * bytes waiting, or one not yet asked anything (just
			 * accepted, its request may be on the way), gets
			 * its answer and Connection: close. */
			char c;
			ssize_t r = cl->tls && tls_conn_has_pending(cl->tls)
					? 1
					: recv(cl->io.fd, &c, 1,
					       MSG_PEEK | MSG_DONTWAIT);
			if (r <= 0 && cl->served) {
				client_close(cl);
				continue;
			}
			cl->close_after = true;
			if (r > 0) {
				cl->can_read = true;
				pump(cl);
			}
		} else if (cl->state == PX_H2) {
			px_h2_drain(cl);
		} else {
			/* Handshakes finish, then the request is answered
			 * with Connection: close (or, for HTTP/2, GOAWAY). */
			cl->close_after = true;
		}
	}
	for (size_t i = 0; i < w->snap->cfg->norigins; i++)
		while (w->idle[i].head)
			up_close(w->idle[i].head);
}

void px_close_all(edge_worker *w)
{
	while (w->clients)
		client_close(w->clients);
	for (size_t i = 0; w->idle && i < w->snap->cfg->norigins; i++)
		while (w->idle[i].head)
			up_close(w->idle[i].head);
	free_sessions(w);
	px_h2_worker_done(w);
	px_reap(w);
}

void px_adopt_snapshot(edge_worker *w, const edge_snapshot *next)
{
	if (next == w->snap)
		return;
	/* Idle upstreams are filed by the old snapshot's origin indices:
	 * close them rather than translate (busy ones finish their request
	 * and are closed by release_upstream). */
	for (size_t i = 0; w->idle && i < w->snap->cfg->norigins; i++)
		while (w->idle[i].head)
			up_close(w->idle[i].head);
	free_sessions(w);
	free(w->idle);
	size_t n = next->cfg->norigins;
	w->idle = xcalloc(n ? n : 1, sizeof(*w->idle));
	edge_snapshot_ref(next);
	const edge_snapshot *old = w->snap;
	w->snap = next;
	edge_snapshot_unref(old);
}

/* --- for px_h2.c -------------------------------------------------------- */

void px_pump(px_client *cl)
{
	pump(cl);
}

ssize_t px_conn_read(px_client *cl, core_buf *b)
{
	return client_read(cl, b);
}

ssize_t px_conn_write(px_client *cl, core_buf *a, uint32_t alen)
{
	return client_write2(cl, a, alen, NULL, 0);
}

void px_client_close(px_client *cl)
{
	client_close(cl);
}

void px_local(px_client *cl, int status, const char *detail, bool close)
{
	local_response(cl, status, detail, close);
}

px_client *px_stream_new(px_client *conn)
{
	edge_worker *w = conn->w;
	px_client *sc = client_alloc(w);
	sc->w = w;
	sc->snap = w->snap;
	edge_snapshot_ref(sc->snap);
	sc->io.fd = -1;
	sc->h2conn = conn;
	core_timer_init(&sc->timer, client_timer_cb);
	memcpy(sc->ip, conn->ip, sizeof(sc->ip));
	sc->peer = conn->peer;
	sc->geo = conn->geo;
	sc->trusted_peer = conn->trusted_peer;
	sc->can_write = true;
	sc->state = PX_HEAD;
	sc->last_read = sc->last_write = w->loop.now;
	return sc;
}
