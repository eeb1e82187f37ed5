/* tun_bridge.c - the worker side of a tunnel (see tun_edge.h and
 * docs/ARCHITECTURE.md "Tunnels"): each worker connection accepted on a
 * tunnel's bridge socket is an HTTP/1.1 server side whose requests become
 * HTTP/2 streams on a connector link, and the HTTP/2 callbacks that turn
 * the streams' answers back into HTTP/1.1 for it. Runs on the tunnel
 * thread. */
#include "tunnel/tun_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core_log.h"
#include "core/core_util.h"
#include "http/px_head.h"

/* ---- buffers ---- */

static void bput(tun_bridge *b, const void *p, size_t n)
{
	tun_grow(&b->out, &b->outcap, b->outlen + n);
	memcpy(b->out + b->outlen, p, n);
	b->outlen += n;
}

static void bputs(tun_bridge *b, const char *s)
{
	bput(b, s, strlen(s));
}

/* ---- bridges (worker side) ---- */

static void list_unlink_bridge(tun_bridge *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else if (b->entry->bridges == b)
		b->entry->bridges = b->next;
	if (b->next)
		b->next->prev = b->prev;
	b->prev = b->next = NULL;
}

/* Give the stream's window back for the DATA bytes that left (or were
 * dropped); the connection's was given back as they arrived. */
static void bridge_give_back(tun_bridge *b)
{
	if (!b->unconsumed)
		return;
	if (b->link && b->link->h2 && b->sid > 0) {
		nghttp2_session_consume_stream(b->link->h2, b->sid,
					       b->unconsumed);
		tun_link_flush(b->link);
	}
	b->unconsumed = 0;
}

void tun_bridge_close(tun_bridge *b)
{
	if (b->closed)
		return;
	b->closed = true;
	tun_link *l = b->link;
	if (l && l->h2 && b->sid > 0) {
		if (b->unconsumed)
			nghttp2_session_consume_stream(l->h2, b->sid,
						       b->unconsumed);
		b->unconsumed = 0;
		nghttp2_session_set_stream_user_data(l->h2, b->sid, NULL);
		if (!b->resp_done)
			nghttp2_submit_rst_stream(l->h2, NGHTTP2_FLAG_NONE,
						  b->sid, NGHTTP2_CANCEL);
		tun_link_flush(l);
	}
	b->link = NULL;
	list_unlink_bridge(b);
	if (b->io.fd >= 0)
		close(b->io.fd);
	b->io.fd = -1;
	b->dead_next = b->entry->t->dead_bridges;
	b->entry->t->dead_bridges = b;
}

/* An answer of the edge's own on the bridge (the worker relays it), then
 * the connection closes. */
static void bridge_answer(tun_bridge *b, int status, const char *msg)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, px_status_reason(status), strlen(msg) + 1);
	b->outlen = b->outoff = 0;
	bput(b, head, (size_t)n);
	bputs(b, msg);
	bputs(b, "\n");
	b->head_sent = b->resp_done = b->close_after = true;
	tun_bridge_flush(b);
}

/* The stream is over on the tunnel side before its answer was whole. */
void tun_bridge_stream_failed(tun_bridge *b, const char *why)
{
	atomic_fetch_add_explicit(&b->entry->stream_errors, 1,
				  memory_order_relaxed);
	if (!b->head_sent) {
		bridge_answer(b, 502, why);
	} else {
		/* Part of the answer went out: the worker must see it
		 * cut, not complete. */
		tun_bridge_close(b);
	}
}

/* Request body bytes for nghttp2, taken from the bridge's input. */
static size_t take_body(tun_bridge *b, uint8_t *buf, size_t len, bool *eof,
			bool *bad)
{
	size_t n = 0;
	*eof = *bad = false;
	if (b->body == HTTP1_BODY_LENGTH) {
		size_t avail = b->inlen - b->inoff;
		n = len < avail ? len : avail;
		if (n > b->remaining)
			n = (size_t)b->remaining;
		memcpy(buf, b->in + b->inoff, n);
		b->inoff += n;
		b->remaining -= n;
		*eof = b->remaining == 0;
		return n;
	}
	/* chunked: payload bytes go out, framing is walked one byte at a
	 * time (a few bytes per chunk). */
	while (n < len && b->inoff < b->inlen) {
		uint64_t data = http1_chunked_data_next(&b->ch);
		size_t avail = b->inlen - b->inoff;
		size_t k = 1;
		bool payload = data > 0;
		if (payload) {
			k = len - n < avail ? len - n : avail;
			if (k > data)
				k = (size_t)data;
		}
		bool done = false;
		ssize_t r =
		    http1_chunked_feed(&b->ch, b->in + b->inoff, k, &done);
		if (r < 0) {
			*bad = true;
			return n;
		}
		if (payload) {
			memcpy(buf + n, b->in + b->inoff, (size_t)r);
			n += (size_t)r;
		}
		b->inoff += (size_t)r;
		if (done) {
			*eof = true;
			break;
		}
		if (r == 0)
			break;
	}
	return n;
}

static ssize_t body_read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf,
			    size_t len, uint32_t *flags,
			    nghttp2_data_source *src, void *ud)
{
	(void)src;
	(void)ud;
	tun_bridge *b = nghttp2_session_get_stream_user_data(s, sid);
	if (!b || b->req_done) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return 0;
	}
	bool eof, bad;
	size_t n = take_body(b, buf, len, &eof, &bad);
	if (bad)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* reset */
	if (eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		b->req_done = true;
		b->state = B_WAIT;
	}
	if (!n && !eof) {
		b->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (n && b->can_read && !b->kicked) {
		b->kicked = true;
		b->kick_next = b->entry->t->kicks;
		b->entry->t->kicks = b;
	}
	return (ssize_t)n;
}

static bool name_is(http_str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.len == n && !strncasecmp(s.p, lit, n);
}

/* A request head is in: open its stream, on any link but `avoid`. */
static void bridge_start(tun_bridge *b, http1_request *req, tun_link *avoid)
{
	tun_entry *en = b->entry;
	if (req->conn.upgrade) {
		bridge_answer(b, 501,
			      "Meridian tunnels do not carry Upgrade "
			      "(WebSocket) requests yet");
		return;
	}
	tun_link *l = tun_pick_link(en, avoid);
	if (!l) {
		/* The last connector went between connect and request: close
		 * unanswered, so the proxy tries again elsewhere. */
		tun_bridge_close(b);
		return;
	}
	nghttp2_nv nva[HTTP1_MAX_HEADERS + 4];
	size_t n = 0;
	const http1_header *xfp =
	    http1_find_header(req->headers, req->nheaders, "x-forwarded-proto");
	const char *scheme =
	    xfp && name_is(xfp->value, "https") ? "https" : "http";
#define NV(name, nlen, value, vlen)                                            \
	nva[n++] = (nghttp2_nv){(uint8_t *)(name), (uint8_t *)(value), (nlen), \
				(vlen), NGHTTP2_NV_FLAG_NONE}
	NV(":method", 7, req->method.p, req->method.len);
	NV(":scheme", 7, scheme, strlen(scheme));
	NV(":authority", 10, req->host.p, req->host.len);
	NV(":path", 5, req->target.p, req->target.len);
	for (uint32_t i = 0; i < req->nheaders; i++) {
		const http1_header *h = &req->headers[i];
		if (name_is(h->name, "host") ||
		    http1_is_hop_by_hop(req->headers, req->nheaders, h))
			continue;
		/* HTTP/2 field names are lower case; the head is ours to
		 * change (nghttp2 copies it). */
		char *p = (char *)h->name.p;
		for (size_t k = 0; k < h->name.len; k++)
			if (p[k] >= 'A' && p[k] <= 'Z')
				p[k] = (char)(p[k] + 32);
		NV(h->name.p, h->name.len, h->value.p, h->value.len);
	}
#undef NV
	b->body = req->body;
	b->remaining = req->content_length;
	memset(&b->ch, 0, sizeof(b->ch));
	b->head_req = req->method_id == HTTP_M_HEAD;
	b->keep_alive = req->conn.keep_alive;
	b->req_done = req->body == HTTP1_BODY_NONE ||
		      (req->body == HTTP1_BODY_LENGTH && !req->content_length);
	b->status = 0;
	b->head_sent = b->chunked = b->has_cl = b->resp_done = false;
	b->deferred = false;
	nghttp2_data_provider dp = {.read_callback = body_read_cb};
	int32_t sid = nghttp2_submit_request(l->h2, NULL, nva, n,
					     b->req_done ? NULL : &dp, b);
	if (sid < 0) {
		bridge_answer(b, 502, "tunnel stream could not be opened");
		return;
	}
	b->link = l;
	b->sid = sid;
	b->state = b->req_done ? B_WAIT : B_BODY;
	l->streams++;
	atomic_fetch_add_explicit(&en->streams, 1, memory_order_relaxed);
	tun_link_flush(l);
}

/* One read(2) into the input, if it has room. Returns whether bytes
 * came; the worker's close closes the bridge (and cancels its stream). */
static bool bridge_read(tun_bridge *b)
{
	if (!b->can_read || b->closed)
		return false;
	if (b->inoff == b->inlen)
		b->inoff = b->inlen = 0;
	if (b->inoff && b->inlen == BRIDGE_IN) {
		memmove(b->in, b->in + b->inoff, b->inlen - b->inoff);
		b->inlen -= b->inoff;
		b->inoff = 0;
	}
	size_t room = BRIDGE_IN - b->inlen;
	if (!room)
		return false; /* nghttp2 takes body bytes first */
	ssize_t r = read(b->io.fd, b->in + b->inlen, room);
	if (r > 0) {
		b->inlen += (size_t)r;
		if ((size_t)r < room)
			b->can_read = false; /* drained */
		return true;
	}
	if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
		b->can_read = errno == EINTR;
		return false;
	}
	tun_bridge_close(b);
	return false;
}

/* Whatever the input allows: a new request, more body. */
void tun_bridge_process(tun_bridge *b)
{
	for (int guard = 0; guard < 256 && !b->closed; guard++) {
		bool moved = bridge_read(b);
		if (b->closed)
			return;
		if (b->state == B_HEAD && b->inoff < b->inlen) {
			http1_request req;
			http1_limits lim = {.max_head_bytes = BRIDGE_IN};
			int r = http1_parse_request(
			    b->in + b->inoff, b->inlen - b->inoff, &lim, &req);
			if (r < 0) {
				bridge_answer(b, 400, http1_err_reason(r));
				return;
			}
			if (r > 0) {
				/* A request without a body can go again on
				 * another connector if this one refuses it
				 * unseen (REFUSED_STREAM: it is draining). */
				b->retries = 0;
				b->head_len = 0;
				if (req.body == HTTP1_BODY_NONE ||
				    (req.body == HTTP1_BODY_LENGTH &&
				     !req.content_length)) {
					b->head = xrealloc(b->head, (size_t)r);
					memcpy(b->head, b->in + b->inoff,
					       (size_t)r);
					b->head_len = (size_t)r;
				}
				b->inoff += (size_t)r;
				bridge_start(b, &req, NULL);
				moved = true;
			}
		} else if (b->state == B_BODY && b->deferred && b->link &&
			   b->inoff < b->inlen) {
			b->deferred = false;
			nghttp2_session_resume_data(b->link->h2, b->sid);
			tun_link_flush(b->link);
			moved = true;
		}
		if (!moved)
			return;
	}
}

/* The answer is whole and written: ready for the next request. */
static void bridge_done(tun_bridge *b)
{
	bridge_give_back(b);
	if (b->close_after || !b->keep_alive || !b->req_done) {
		tun_bridge_close(b);
		return;
	}
	if (b->link && b->link->h2 && b->sid > 0)
		nghttp2_session_set_stream_user_data(b->link->h2, b->sid, NULL);
	b->link = NULL;
	b->sid = -1;
	b->state = B_HEAD;
	b->resp_done = false;
	tun_entry_update(b->entry); /* an idle bridge with no link goes */
	if (!b->closed)
		tun_bridge_process(b);
}

void tun_bridge_flush(tun_bridge *b)
{
	/* A response head still being built (its fields may come in more
	 * frames) is not written: a failure then answers 502 instead. */
	size_t end = b->status && !b->head_sent ? b->head_start : b->outlen;
	while (!b->closed && b->outoff < end) {
		ssize_t w =
		    write(b->io.fd, b->out + b->outoff, end - b->outoff);
		if (w > 0) {
			b->outoff += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			b->can_write = false;
			return;
		}
		tun_bridge_close(b);
		return;
	}
	if (b->closed || end < b->outlen)
		return;
	b->outoff = b->outlen = 0;
	bridge_give_back(b);
	if (b->resp_done)
		bridge_done(b);
}

static void bridge_io_cb(core_io *io, uint32_t ev)
{
	tun_bridge *b = (tun_bridge *)io;
	if (b->closed)
		return;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		b->can_read = true;
	if (ev & EPOLLOUT) {
		b->can_write = true;
		tun_bridge_flush(b);
	}
	if (!b->closed)
		tun_bridge_process(b);
}

void tun_bridge_accept_cb(core_io *io, uint32_t ev)
{
	(void)ev;
	tun_entry *en = (tun_entry *)((char *)io - offsetof(tun_entry, lio));
	/* Edge-triggered: accept until EAGAIN (connections left in the
	 * backlog would wait for the next one). A local error (EMFILE, ...)
	 * stops the batch; the tick tries again. */
	while (en->lio.fd >= 0) {
		int fd = accept4(en->lio.fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				log_warn_every(1000,
					       "tunnel %s: bridge: accept: %s",
					       en->id, strerror(errno));
			return;
		}
		/* Only this process (its workers and health checks) may use
		 * the bridge: an abstract socket has no file permissions, and
		 * another local process must not reach the tunnel around the
		 * edge's routing, firewall and limits. */
		struct ucred cred = {0};
		socklen_t cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
		    cred.pid != getpid()) {
			log_warn_every(
			    1000,
			    "tunnel %s: bridge: refused a connection "
			    "from another process (pid %ld)",
			    en->id, (long)cred.pid);
			close(fd);
			continue;
		}
		tun_bridge *b = xcalloc(1, sizeof(*b));
		b->io.fd = fd;
		b->io.cb = bridge_io_cb;
		b->entry = en;
		b->sid = -1;
		b->in = xmalloc(BRIDGE_IN);
		b->can_write = true;
		b->next = en->bridges;
		if (en->bridges)
			en->bridges->prev = b;
		en->bridges = b;
		if (core_loop_add(&en->t->loop, &b->io, false) < 0)
			tun_bridge_close(b);
	}
}

/* ---- links: HTTP/2 callbacks ---- */

static tun_bridge *stream_bridge(nghttp2_session *s, int32_t sid)
{
	tun_bridge *b = nghttp2_session_get_stream_user_data(s, sid);
	return b && !b->closed ? b : NULL;
}

int tun_h2_on_header(nghttp2_session *s, const nghttp2_frame *f,
		     const uint8_t *name, size_t nlen, const uint8_t *value,
		     size_t vlen, uint8_t flags, void *ud)
{
	(void)flags;
	(void)ud;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	tun_bridge *b = stream_bridge(s, f->hd.stream_id);
	if (!b || b->head_sent)
		return 0; /* trailers: not passed on (HTTP/1.1 side) */
	if (nlen == 7 && !memcmp(name, ":status", 7)) {
		int st = 0;
		for (size_t i = 0; i < vlen && i < 3; i++)
			st = st * 10 + (value[i] - '0');
		b->status = st;
		char line[64];
		int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", st,
				 px_status_reason(st));
		b->head_start = b->outlen;
		bput(b, line, (size_t)n);
		return 0;
	}
	if (!nlen || name[0] == ':' || !b->status)
		return 0;
	if (b->outlen - b->head_start + nlen + vlen + 4 > MAX_RESP_HEAD_BYTES)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (nlen == 14 && !memcmp(name, "content-length", 14))
		b->has_cl = true;
	bput(b, name, nlen);
	bput(b, ": ", 2);
	bput(b, value, vlen);
	bput(b, "\r\n", 2);
	return 0;
}

static void resp_end(tun_bridge *b)
{
	if (b->chunked)
		bputs(b, "0\r\n\r\n");
	b->resp_done = true;
	if (!b->req_done) {
		/* Answered before the upload was in: the rest of it cannot
		 * be told apart from a next request, so the connection ends
		 * after this answer. */
		b->close_after = true;
		if (b->link && b->link->h2)
			nghttp2_submit_rst_stream(b->link->h2,
						  NGHTTP2_FLAG_NONE, b->sid,
						  NGHTTP2_NO_ERROR);
	}
	tun_bridge_flush(b);
}

static void head_end(tun_bridge *b, bool end_stream)
{
	if (b->status < 200) {
		/* 1xx (100 Continue, 103): relayed as they are. */
		bputs(b, "\r\n");
		b->status = 0;
		tun_bridge_flush(b);
		return;
	}
	bool bodiless = b->head_req || b->status == 204 || b->status == 304;
	if (!b->has_cl && !bodiless) {
		if (end_stream)
			bputs(b, "content-length: 0\r\n");
		else {
			bputs(b, "transfer-encoding: chunked\r\n");
			b->chunked = true;
		}
	}
	bputs(b, "\r\n");
	b->head_sent = true;
	if (end_stream)
		resp_end(b);
	else
		tun_bridge_flush(b);
}

int tun_h2_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	tun_link *l = ud;
	if (f->hd.type == NGHTTP2_GOAWAY) {
		if (!l->goaway)
			log_info("tunnel %s: connector %s (%s) is going away",
				 l->entry ? l->entry->id : "?", l->name,
				 l->peer);
		l->goaway = true;
		if (l->entry) {
			tun_conns_goaway(l->entry, l);
			tun_entry_update(l->entry);
		}
		return 0;
	}
	tun_bridge *b = stream_bridge(s, f->hd.stream_id);
	if (!b)
		return 0;
	bool es = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
	if (f->hd.type == NGHTTP2_HEADERS) {
		if (!b->head_sent && b->status)
			head_end(b, es);
		else if (b->head_sent && es && !b->resp_done)
			resp_end(b); /* trailers */
	} else if (f->hd.type == NGHTTP2_DATA && es && b->head_sent &&
		   !b->resp_done) {
		resp_end(b);
	}
	return 0;
}

int tun_h2_on_data(nghttp2_session *s, uint8_t flags, int32_t sid,
		   const uint8_t *data, size_t len, void *ud)
{
	(void)flags;
	(void)ud;
	tun_bridge *b = stream_bridge(s, sid);
	if (!b || !b->head_sent || b->head_req) {
		nghttp2_session_consume(s, sid, len);
		return 0;
	}
	if (b->chunked) {
		char sz[24];
		int n = snprintf(sz, sizeof(sz), "%zx\r\n", len);
		bput(b, sz, (size_t)n);
	}
	bput(b, data, len);
	if (b->chunked)
		bput(b, "\r\n", 2);
	/* The connection's window reopens at once: a link carries the
	 * streams of many clients, and one that does not read must not
	 * stall the others. The stream's waits until the worker took the
	 * bytes, which bounds what is held here. */
	nghttp2_session_consume_connection(s, len);
	b->unconsumed += len;
	if (!b->flush_queued) {
		b->flush_queued = true;
		b->flush_next = b->entry->t->flushq;
		b->entry->t->flushq = b;
	}
	return 0;
}

void tun_bridges_flush(tun_edge *t)
{
	for (int guard = 0; t->flushq && guard < 65536; guard++) {
		tun_bridge *b = t->flushq;
		t->flushq = b->flush_next;
		b->flush_queued = false;
		if (!b->closed)
			tun_bridge_flush(b);
	}
}

int tun_h2_on_stream_close(nghttp2_session *s, int32_t sid, uint32_t code,
			   void *ud)
{
	tun_link *l = ud;
	if (l->streams)
		l->streams--;
	tun_bridge *b = stream_bridge(s, sid);
	if (!b)
		return 0;
	if (code == NGHTTP2_REFUSED_STREAM && !b->head_sent && !b->status &&
	    b->head_len && b->retries < 2) {
		/* Not processed (RFC 9113 8.7): send it again elsewhere. */
		http1_request req;
		http1_limits lim = {.max_head_bytes = BRIDGE_IN};
		if (http1_parse_request(b->head, b->head_len, &lim, &req) > 0) {
			nghttp2_session_set_stream_user_data(s, sid, NULL);
			b->retries++;
			b->link = NULL;
			b->sid = -1;
			b->state = B_HEAD;
			bridge_start(b, &req, l);
			return 0;
		}
	}
	if (!b->resp_done) {
		char why[96];
		snprintf(why, sizeof(why),
			 "the tunnel's connector reset the stream (%s)",
			 nghttp2_http2_strerror(code));
		tun_bridge_stream_failed(b, why);
	}
	return 0;
}
