/* px_h2.c - HTTP/2 client connections in the proxy; see px_h2.h and
 * docs/ARCHITECTURE.md ("HTTP/2 in the proxy").
 *
 * The connection (state PX_H2) reads TLS bytes into its session, writes
 * what the session produces, and runs its streams. nghttp2 callbacks never
 * pump a stream client directly (that could re-enter the session): they
 * queue it on the connection's run queue, drained by px_h2_step. A stream
 * client pumped from elsewhere (its upstream's events, its timers) pokes
 * its connection, which is then flushed at the end of the loop batch
 * (px_flush) or, when it is the one pumping, goes round once more.
 */
#include "http/px_h2.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core_log.h"
#include "core/core_util.h"
#include "h2/h2_req.h"
#include "h2/h2_session.h"
#include "http/http1_parse.h"
#include "http/px_head.h"
#include "http/px_stats.h"

enum { RS_HEAD = 0, RS_BODY, RS_DONE };

typedef struct px_h2_stream px_h2_stream;
typedef struct px_h2 px_h2;

struct px_h2_stream {
	px_h2 *h;
	px_client *sc; /* the exchange; NULL once it ended */
	px_h2_stream *next, *prev;
	int32_t sid;
	/* Request DATA not yet taken by sc, as received: bounded by the
	 * stream's flow-control window, which reopens by exactly the bytes
	 * sc takes. With an unknown length (`chunked`) px_h2_read frames
	 * what it copies as chunks, then copies `tail` (the last chunk and
	 * the request trailers). */
	core_bq rq;
	char *tail;
	size_t tail_off, tail_len;
	bool chunked, req_ended, head_req;
	bool gone;     /* nghttp2 closed the stream */
	bool deferred; /* read_body said H2_DEFERRED: resume when there is
			* more, or the end */
	/* Response, from the HTTP/1.1 bytes px_conn writes. */
	uint8_t rstate;
	uint8_t body; /* http1_body */
	uint64_t remaining;
	http1_chunked ch;
	char *trl; /* the chunked trailer section as received */
	size_t trl_len, trl_cap;
	core_buf *ob; /* decoded body bytes for read_body */
};

struct px_h2 {
	px_client *cl;
	h2_session *sess;
	px_h2_stream *streams;
	px_client *runq; /* stream clients to pump */
	bool in_step, again, dirty;
	bool rd_done; /* the session failed: send its GOAWAY, then close */
	bool goaway;  /* draining: close once the live streams are done */
	bool closing; /* the connection is closing: streams just go */
	/* ms: since when the connection has had no stream (0: it has
	 * some). The idle deadline runs from here, so frames that open no
	 * stream (PING, SETTINGS, WINDOW_UPDATE) cannot keep an idle
	 * connection and its max_connections slot forever. */
	uint64_t idle_since;
};

/* The worker's scratch for translating response heads (one at a time). */
struct px_h2_scratch {
	http1_response resp;
	h2_field in[HTTP1_MAX_HEADERS], out[HTTP1_MAX_HEADERS + PX_EDGE_FIELDS];
	char add_names[256]; /* the edge's field names, lowercased */
	char cl_text[24];    /* a Content-Length list, as one value */
	size_t names_cap;
	char names[];
};

/* Trailer sections above this are not forwarded (http1 caps them at
 * 16 KiB already). */
#define TRL_MAX (16 * 1024)

static _Atomic uint64_t n_conns, n_streams, n_errors[PX_H2_NERR],
    n_sresets[PX_H2_NSRESET];

static void count_error(px_h2_err e)
{
	atomic_fetch_add_explicit(&n_errors[e], 1, memory_order_relaxed);
}

static void count_sreset(px_h2_sreset r)
{
	atomic_fetch_add_explicit(&n_sresets[r], 1, memory_order_relaxed);
}

void px_h2_stats_get(px_h2_stats *out)
{
	out->connections = atomic_load_explicit(&n_conns, memory_order_relaxed);
	out->streams = atomic_load_explicit(&n_streams, memory_order_relaxed);
	for (int i = 0; i < PX_H2_NERR; i++)
		out->errors[i] =
		    atomic_load_explicit(&n_errors[i], memory_order_relaxed);
	for (int i = 0; i < PX_H2_NSRESET; i++)
		out->stream_resets[i] =
		    atomic_load_explicit(&n_sresets[i], memory_order_relaxed);
}

const char *px_h2_sreset_name(px_h2_sreset r)
{
	static const char *const names[PX_H2_NSRESET] = {"refused", "stalled"};
	return (unsigned)r < PX_H2_NSRESET ? names[r] : "?";
}

const char *px_h2_err_name(px_h2_err e)
{
	static const char *const names[PX_H2_NERR] = {
	    "rapid_reset", "flood", "protocol_error", "header_timeout",
	    "stalled"};
	return (unsigned)e < PX_H2_NERR ? names[e] : "?";
}

static inline uint32_t blen(const core_buf *b)
{
	return b ? core_buf_len(b) : 0;
}

/* --- scheduling -------------------------------------------------------- */

/* The connection has work: go round again if it is running, else flush it
 * after this batch. */
static void mark(px_h2 *h)
{
	if (h->in_step) {
		h->again = true;
		return;
	}
	if (h->dirty)
		return;
	h->dirty = true;
	edge_worker *w = h->cl->w;
	h->cl->h2_next = w->h2_dirty;
	w->h2_dirty = h->cl;
}

static void queue(px_h2 *h, px_client *sc)
{
	if (!sc->h2_queued) {
		sc->h2_queued = true;
		sc->h2_next = h->runq;
		h->runq = sc;
	}
	mark(h);
}

void px_h2_poke(px_client *conn)
{
	if (!conn->closed && conn->h2)
		mark(conn->h2);
}

void px_flush(edge_worker *w)
{
	/* Pumping a connection marks only itself, and not while it runs:
	 * the list only shrinks. (A closing connection unlinks itself.) */
	while (w->h2_dirty) {
		px_client *cl = w->h2_dirty;
		w->h2_dirty = cl->h2_next;
		cl->h2_next = NULL;
		if (cl->closed || !cl->h2)
			continue;
		cl->h2->dirty = false;
		px_pump(cl);
	}
}

/* --- request side ------------------------------------------------------ */

static void rq_append(px_h2_stream *st, const void *p, size_t n)
{
	core_bq_put(&st->rq, p, n, 4096);
}

/* Give n DATA bytes back to the client's windows. */
static void give_back(px_h2_stream *st, size_t n)
{
	if (!n)
		return;
	(void)h2_session_consume(st->h->sess, st->sid, n);
	mark(st->h);
}

ssize_t px_h2_read(px_client *sc, core_buf *b)
{
	px_h2_stream *st = sc->h2s;
	size_t have = st->rq.end - st->rq.start;
	size_t tail = st->tail_len - st->tail_off;
	if (have == 0 && tail == 0) {
		sc->can_read = false;
		return -EAGAIN;
	}
	if (core_buf_space(b) < 64)
		core_buf_compact(b);
	uint32_t space = core_buf_space(b);
	if (space == 0)
		return -ENOBUFS;
	char *out = core_buf_tail(b);
	size_t n = 0;
	if (have && !st->chunked) {
		n = MIN(have, (size_t)space);
		memcpy(out, st->rq.p + st->rq.start, n);
		st->rq.start += n;
		give_back(st, n);
	} else if (have) {
		/* one chunk: size line, data, CRLF */
		if (space < 32)
			return -ENOBUFS;
		size_t k = MIN(have, (size_t)space - 24);
		int h = snprintf(out, 24, "%zx\r\n", k);
		memcpy(out + h, st->rq.p + st->rq.start, k);
		memcpy(out + h + k, "\r\n", 2);
		n = (size_t)h + k + 2;
		st->rq.start += k;
		give_back(st, k);
	} else {
		n = MIN(tail, (size_t)space);
		memcpy(out, st->tail + st->tail_off, n);
		st->tail_off += n;
	}
	b->end += (uint32_t)n;
	if (st->rq.start == st->rq.end)
		st->rq.start = st->rq.end = 0;
	if (st->rq.end == 0 && st->tail_off == st->tail_len)
		sc->can_read = false; /* drained: the next DATA says */
	return (ssize_t)n;
}

static int on_request(void *ud, int32_t sid, const h2_req *req, void **sud)
{
	px_h2 *h = ud;
	edge_worker *w = h->cl->w;
	px_h2_stream *st = xcalloc(1, sizeof(*st));
	st->h = h;
	st->sid = sid;
	st->next = h->streams;
	if (st->next)
		st->next->prev = st;
	h->streams = st;
	*sud = st;

	atomic_fetch_add_explicit(&n_streams, 1, memory_order_relaxed);
	px_client *sc = px_stream_new(h->cl);
	sc->h2s = st;
	st->sc = sc;
	sc->in = core_buf_get(&w->bufs);
	bool chunked = false;
	int n = h2_req_to_h1(req, sc->in->data, sc->in->cap, &chunked);
	st->head_req =
	    req->method.len == 4 && !memcmp(req->method.p, "HEAD", 4);
	if (n < 0) {
		sc->method = st->head_req ? HTTP_M_HEAD : HTTP_M_OTHER;
		px_local(sc, 431, "request head too large to forward", true);
	} else {
		sc->in->end = (uint32_t)n;
		sc->parse_pending = true;
		sc->head_start = w->loop.now;
	}
	st->chunked = chunked;
	queue(h, sc);
	return 0;
}

static int on_data(void *ud, int32_t sid, void *sud, const uint8_t *p,
		   size_t len)
{
	px_h2 *h = ud;
	px_h2_stream *st = sud;
	if (!st->sc) {
		/* The exchange is over (an early answer): drop the rest. */
		(void)h2_session_consume(h->sess, sid, len);
		return 0;
	}
	if (!len)
		return 0;      /* (a zero-size chunk would end the body) */
	rq_append(st, p, len); /* counted by the session until give_back */
	st->sc->can_read = true;
	queue(h, st->sc);
	return 0;
}

static int on_request_end(void *ud, int32_t sid, void *sud, const h2_field *t,
			  size_t n)
{
	px_h2 *h = ud;
	px_h2_stream *st = sud;
	(void)sid;
	st->req_ended = true;
	if (!st->sc || !st->chunked)
		return 0; /* a known length carries no trailers: dropped */
	size_t len = 5;
	for (size_t i = 0; i < n; i++)
		if (h2_req_trailer_ok(t[i].name))
			len += t[i].name.len + t[i].value.len + 4;
	char *q = st->tail = xmalloc(len);
	memcpy(q, "0\r\n", 3);
	q += 3;
	for (size_t i = 0; i < n; i++) {
		if (!h2_req_trailer_ok(t[i].name))
			continue; /* RFC 9110 §6.5.1 (h2_req.h) */
		memcpy(q, t[i].name.p, t[i].name.len);
		q += t[i].name.len;
		memcpy(q, ": ", 2);
		memcpy(q + 2, t[i].value.p, t[i].value.len);
		q += 2 + t[i].value.len;
		memcpy(q, "\r\n", 2);
		q += 2;
	}
	memcpy(q, "\r\n", 2);
	st->tail_len = len;
	st->sc->can_read = true;
	queue(h, st->sc);
	return 0;
}

static void stream_free(px_h2 *h, px_h2_stream *st)
{
	if (st->prev)
		st->prev->next = st->next;
	else
		h->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	core_buf_put(&h->cl->w->bufs, st->ob);
	core_bq_free(&st->rq);
	free(st->tail);
	free(st->trl);
	free(st);
}

static void on_close(void *ud, int32_t sid, void *sud, uint32_t code)
{
	px_h2 *h = ud;
	px_h2_stream *st = sud;
	(void)sid;
	st->gone = true;
	if (st->sc) {
		if (code)
			log_debug("%s: HTTP/2 stream %d reset (%u)", h->cl->ip,
				  (int)sid, code);
		px_client_close(st->sc); /* clears st->sc */
	}
	stream_free(h, st);
}

/* A request the h2 layer refused: counted as the edge's own answer
 * before routing, as an HTTP/1.1 400 or 431 is. */
static void on_refused(void *ud, int status)
{
	px_stats_refused(((px_h2 *)ud)->cl, status);
}

/* A stream over max_concurrent_streams, refused (REFUSED_STREAM: the
 * client may send it again). */
static void on_refused_stream(void *ud)
{
	(void)ud;
	count_sreset(PX_H2_SR_REFUSED);
}

/* --- response side ----------------------------------------------------- */

static void finish(px_h2_stream *st)
{
	st->rstate = RS_DONE;
	if (st->deferred) {
		st->deferred = false;
		(void)h2_session_resume(st->h->sess, st->sid);
	}
}

static ssize_t read_body(void *ud, int32_t sid, void *sud, uint8_t *buf,
			 size_t len, bool *eof)
{
	px_h2 *h = ud;
	px_h2_stream *st = sud;
	(void)sid;
	size_t n = MIN((size_t)blen(st->ob), len);
	if (n) {
		memcpy(buf, core_buf_head(st->ob), n);
		core_buf_consume(st->ob, (uint32_t)n);
	}
	if (st->ob && blen(st->ob) == 0) {
		/* Hold no buffer while waiting on the origin. */
		core_buf_put(&h->cl->w->bufs, st->ob);
		st->ob = NULL;
	}
	if (n && st->sc && !st->sc->can_write) {
		/* Room again: the exchange may write more. */
		st->sc->can_write = true;
		queue(h, st->sc);
	}
	if (blen(st->ob) == 0 && st->rstate == RS_DONE) {
		*eof = true;
		return (ssize_t)n;
	}
	if (n == 0) {
		st->deferred = true;
		return H2_DEFERRED;
	}
	return (ssize_t)n;
}

/* Content-Length has no place in a 1xx or 204 response (RFC 9110 §8.6)
 * nor in trailers (status 0 here); HTTP/2 clients (nghttp2: curl,
 * nghttpx) reset the stream when it is there and not 0. */
static bool no_length(int status)
{
	return status < 200 || status == 204;
}

static bool is_length(const http_str *name)
{
	return name->len == 14 && !strncasecmp(name->p, "content-length", 14);
}

/* An HTTP/1.1 head's fields (of a `status` response; 0: trailers), with
 * the edge's changes (ed may be NULL) and its Content-Length replaced by
 * `length` (when not NULL), as HTTP/2 fields in s->out
 * (hop-by-hop ones dropped, names lowercased by h2_resp_fields). Returns
 * their count or a negative code. */
static int h2_fields(struct px_h2_scratch *s, int status,
		     const http1_header *hd, uint32_t n, const px_resp_edit *ed,
		     const char *length)
{
	size_t k = 0;
	bool drop_length = length || no_length(status);
	for (uint32_t i = 0; i < n; i++)
		if (!px_resp_edit_drops(ed, hd[i].name.p, hd[i].name.len) &&
		    !(drop_length && is_length(&hd[i].name)))
			s->in[k++] =
			    (h2_field){{hd[i].name.p, hd[i].name.len},
				       {hd[i].value.p, hd[i].value.len}};
	/* A list of one value ("2, 2"): one value, which h2 clients take
	 * (the list makes nghttp2 reset the stream). */
	if (length && k < HTTP1_MAX_HEADERS)
		s->in[k++] = (h2_field){{"content-length", 14},
					{length, strlen(length)}};
	int r = h2_resp_fields(s->in, k, s->out, HTTP1_MAX_HEADERS, s->names,
			       s->names_cap);
	if (r < 0 || !ed || !ed->nadd)
		return r;
	/* The edge's own go after the origin's Connection names were
	 * applied, as px_head_response writes them over HTTP/1.1. */
	h2_field add[PX_EDGE_FIELDS];
	for (uint32_t i = 0; i < ed->nadd; i++)
		add[i] = (h2_field){{ed->add[i].name.p, ed->add[i].name.len},
				    {ed->add[i].value.p, ed->add[i].value.len}};
	int m = h2_resp_fields(add, ed->nadd, s->out + r, PX_EDGE_FIELDS,
			       s->add_names, sizeof(s->add_names));
	return m < 0 ? m : r + m;
}

/* A response head, its fields already h2-shaped: 1xx become interim
 * HEADERS, the final one the response. */
static int respond(px_h2_stream *st, const http1_response *resp,
		   const h2_field *f, size_t n)
{
	px_h2 *h = st->h;
	if (resp->status < 200) {
		/* A client that has not taken the 1xx queued so far gets no
		 * more: the caller fails the answer (as a full head buffer
		 * does on HTTP/1.1). Other refusals drop the 1xx. */
		if (resp->status != 101 &&
		    h2_session_interim(h->sess, st->sid, resp->status, f, n) ==
			-ENOBUFS)
			return -ENOBUFS;
		return 0;
	}
	bool has_body =
	    resp->body == HTTP1_BODY_CHUNKED || resp->body == HTTP1_BODY_EOF ||
	    (resp->body == HTTP1_BODY_LENGTH && resp->content_length > 0);
	if (h2_session_respond(h->sess, st->sid, resp->status, f, n, has_body) <
	    0)
		return -EPROTO;
	st->body = (uint8_t)resp->body;
	st->remaining = resp->content_length;
	st->rstate = has_body ? RS_BODY : RS_DONE;
	return 0;
}

int px_h2_respond(px_client *sc, const http1_response *resp,
		  const px_resp_edit *ed)
{
	px_h2_stream *st = sc->h2s;
	struct px_h2_scratch *s = sc->w->h2_scratch;
	if (st->gone)
		return -EPIPE;
	/* 1xx heads go out as the origin sent them. */
	const char *length = NULL;
	if (resp->cl_list && !no_length(resp->status)) {
		snprintf(s->cl_text, sizeof(s->cl_text), "%llu",
			 (unsigned long long)resp->content_length);
		length = s->cl_text;
	}
	int n = h2_fields(s, resp->status, resp->headers, resp->nheaders,
			  resp->status >= 200 ? ed : NULL, length);
	if (n < 0)
		return n;
	int r = respond(st, resp, s->out, (size_t)n);
	mark(st->h);
	return r;
}

/* One response head at p (local responses: px_conn writes their heads
 * whole). Returns its length or a negative code. */
static int take_head(px_h2_stream *st, px_client *sc, const char *p, size_t len)
{
	struct px_h2_scratch *s = sc->w->h2_scratch;
	http1_limits lim = {.max_head_bytes = (uint32_t)s->names_cap,
			    .max_headers = HTTP1_MAX_HEADERS};
	int r = http1_parse_response(
	    p, len, &lim, st->head_req ? HTTP_M_HEAD : sc->method, &s->resp);
	if (r <= 0)
		return -EPROTO;
	int n = h2_fields(s, s->resp.status, s->resp.headers, s->resp.nheaders,
			  NULL, NULL);
	if (n < 0 || respond(st, &s->resp, s->out, (size_t)n) < 0)
		return -EPROTO;
	return r;
}

/* The trailer section of a chunked response -> HEADERS after the body. */
static void send_trailers(px_h2_stream *st, px_client *sc)
{
	struct px_h2_scratch *s = sc->w->h2_scratch;
	size_t n = 0;
	const char *p = st->trl, *end = st->trl + st->trl_len;
	http1_header *hd = s->resp.headers;
	while (p < end && n < HTTP1_MAX_HEADERS) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			break;
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (colon) {
			const char *v = colon + 1, *ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' ||
					  ve[-1] == '\t'))
				ve--;
			hd[n].name = (http_str){p, (size_t)(colon - p)};
			hd[n].value = (http_str){v, (size_t)(ve - v)};
			n++;
		}
		p = eol + 1;
	}
	int k = h2_fields(s, 0, hd, (uint32_t)n, NULL, NULL);
	if (k > 0)
		(void)h2_session_trailers(st->h->sess, st->sid, s->out,
					  (size_t)k);
}

/* Room for decoded body bytes, or 0 while read_body has not taken them. */
static size_t ob_room(px_h2_stream *st, edge_worker *w)
{
	if (!st->ob)
		st->ob = core_buf_get(&w->bufs);
	if (core_buf_space(st->ob) == 0)
		core_buf_compact(st->ob);
	return core_buf_space(st->ob);
}

static void ob_put(px_h2_stream *st, const char *p, size_t n)
{
	memcpy(core_buf_tail(st->ob), p, n);
	st->ob->end += (uint32_t)n;
}

/* Decode framed body bytes into ob; returns the bytes taken or a negative
 * code. Stops early when ob is full. */
static ssize_t take_body(px_h2_stream *st, px_client *sc, const char *p,
			 size_t len)
{
	size_t done = 0;
	while (done < len && st->rstate == RS_BODY) {
		size_t room = ob_room(st, sc->w);
		size_t take;
		bool fin = false;
		switch (st->body) {
		case HTTP1_BODY_LENGTH:
			take = MIN(MIN(len - done, room), st->remaining);
			if (!take)
				return (ssize_t)done;
			ob_put(st, p + done, take);
			done += take;
			st->remaining -= take;
			if (!st->remaining)
				finish(st);
			break;
		case HTTP1_BODY_EOF:
			take = MIN(len - done, room);
			if (!take)
				return (ssize_t)done;
			ob_put(st, p + done, take);
			done += take;
			break;
		case HTTP1_BODY_CHUNKED: {
			uint64_t dn = http1_chunked_data_next(&st->ch);
			if (dn) {
				take = MIN(MIN(len - done, room), dn);
				if (!take)
					return (ssize_t)done;
				ob_put(st, p + done, take);
			} else {
				take = 1; /* framing: a byte at a time */
			}
			bool trl = http1_chunked_in_trailers(&st->ch);
			ssize_t k =
			    http1_chunked_feed(&st->ch, p + done, take, &fin);
			if (k < 0)
				return -EPROTO;
			if (trl && k > 0 &&
			    st->trl_len + (size_t)k <= TRL_MAX) {
				if (st->trl_len + (size_t)k > st->trl_cap) {
					st->trl_cap =
					    st->trl_cap ? st->trl_cap * 2 : 256;
					st->trl =
					    xrealloc(st->trl, st->trl_cap);
				}
				memcpy(st->trl + st->trl_len, p + done,
				       (size_t)k);
				st->trl_len += (size_t)k;
			}
			done += (size_t)k;
			if (fin) {
				if (st->trl_len > 2)
					send_trailers(st, sc);
				finish(st);
			} else if (k == 0) {
				return -EPROTO;
			}
			break;
		}
		default:
			finish(st);
			break;
		}
	}
	if (st->rstate == RS_DONE)
		return (ssize_t)len; /* nothing may follow a whole response */
	return (ssize_t)done;
}

ssize_t px_h2_write2(px_client *sc, core_buf *a, uint32_t alen, core_buf *b,
		     uint32_t blen_)
{
	px_h2_stream *st = sc->h2s;
	if (st->gone)
		return -EPIPE;
	const char *ap = alen ? core_buf_head(a) : NULL;
	size_t done = 0;
	while (st->rstate == RS_HEAD && done < alen) {
		int r = take_head(st, sc, ap + done, alen - done);
		if (r < 0) {
			log_info("%s: HTTP/2 stream %d: response head not "
				 "translatable",
				 sc->ip, (int)st->sid);
			return r;
		}
		done += (size_t)r;
	}
	if (st->rstate == RS_HEAD && blen_) {
		/* px_conn writes heads whole, before any body byte */
		return -EPROTO;
	}
	ssize_t k = 0;
	if (done < alen) {
		k = take_body(st, sc, ap + done, alen - done);
		if (k < 0)
			return k;
		done += (size_t)k;
	}
	if (done == alen && blen_) {
		k = take_body(st, sc, core_buf_head(b), blen_);
		if (k < 0)
			return k;
		done += (size_t)k;
	}
	if (done < (size_t)alen + blen_)
		sc->can_write = false;
	if (st->deferred && (blen(st->ob) || st->rstate == RS_DONE)) {
		st->deferred = false;
		(void)h2_session_resume(st->h->sess, st->sid);
	}
	mark(st->h);
	return (ssize_t)done;
}

void px_h2_stream_closed(px_client *sc)
{
	px_h2_stream *st = sc->h2s;
	px_h2 *h = st->h;
	st->sc = NULL;
	if (st->gone || h->closing)
		return;
	mark(h);
	if (st->rstate == RS_BODY && st->body == HTTP1_BODY_EOF &&
	    sc->resp_framed) {
		finish(st); /* the origin's close ended the body */
	} else if (st->rstate != RS_DONE) {
		/* Cut short (the origin failed mid-response, a timeout):
		 * the client must not take it for a whole response. */
		(void)h2_session_rst(h->sess, st->sid, H2_INTERNAL_ERROR);
		return;
	}
	/* The response is whole; request bytes still held reopen the
	 * windows, and what else comes is dropped (on_data). */
	(void)h2_session_consume_all(h->sess, st->sid);
	core_bq_free(&st->rq);
	free(st->tail);
	st->tail = NULL;
	st->tail_off = st->tail_len = 0;
}

/* --- the connection ---------------------------------------------------- */

static uint64_t now_cb(void *ud)
{
	px_h2 *h = ud;
	return h->cl->w->loop.now;
}

int px_h2_start(px_client *cl)
{
	edge_worker *w = cl->w;
	if (!w->h2_scratch) {
		size_t cap = w->bufs.buf_size;
		w->h2_scratch = xcalloc(1, sizeof(*w->h2_scratch) + cap);
		w->h2_scratch->names_cap = cap;
	}
	px_h2 *h = xcalloc(1, sizeof(*h));
	h->cl = cl;
	h->idle_since = cl->w->loop.now;
	h2_settings st;
	h2_settings_default(&st);
	const cfg_limits *lim = &cl->snap->cfg->edge.limits;
	if (lim->max_header_bytes)
		st.max_header_list = lim->max_header_bytes;
	h2_callbacks cb = {
	    .on_request = on_request,
	    .on_data = on_data,
	    .on_request_end = on_request_end,
	    .on_close = on_close,
	    .on_refused = on_refused,
	    .on_refused_stream = on_refused_stream,
	    .read_body = read_body,
	    .now_ms = now_cb,
	};
	if (h2_session_new(&st, &cb, h, &h->sess) < 0) {
		free(h);
		return -ENOMEM;
	}
	cl->h2 = h;
	cl->state = PX_H2;
	atomic_fetch_add_explicit(&n_conns, 1, memory_order_relaxed);
	cl->can_write = true;
	return 0;
}

void px_h2_conn_closed(px_client *cl)
{
	px_h2 *h = cl->h2;
	h->closing = true;
	if (h->dirty) {
		/* Off the worker's list: this client may be recycled before
		 * the list is walked. */
		edge_worker *w = cl->w;
		for (px_client **pp = &w->h2_dirty; *pp; pp = &(*pp)->h2_next)
			if (*pp == cl) {
				*pp = cl->h2_next;
				break;
			}
		cl->h2_next = NULL;
		h->dirty = false;
	}
	for (px_h2_stream *st = h->streams; st; st = st->next)
		if (st->sc)
			px_client_close(st->sc);
	h2_session_free(h->sess); /* calls no callback */
	while (h->streams)
		stream_free(h, h->streams);
	cl->h2 = NULL;
	free(h);
}

/* The session ended the connection with an error (a GOAWAY is queued or
 * sent): say why, count it, read no more. Found on a read (the frame at
 * fault) or on a write (a limit a stream's reset crossed, a connection
 * error nghttp2 answered itself). */
static void conn_error(px_client *cl, px_h2 *h)
{
	const char *why = h2_session_error(h->sess);
	log_info("%s: HTTP/2 connection error: %s", cl->ip,
		 why ? why : "protocol error");
	h2_error_kind k = h2_session_error_kind(h->sess);
	count_error(k == H2_ERR_RAPID_RESET ? PX_H2_E_RAPID_RESET
		    : k == H2_ERR_FLOOD	    ? PX_H2_E_FLOOD
					    : PX_H2_E_PROTOCOL);
	h->rd_done = true;
}

static void run_queue(px_h2 *h)
{
	while (h->runq) {
		px_client *sc = h->runq;
		h->runq = sc->h2_next;
		sc->h2_next = NULL;
		sc->h2_queued = false;
		if (!sc->closed)
			px_pump(sc);
	}
}

bool px_h2_step(px_client *cl)
{
	px_h2 *h = cl->h2;
	edge_worker *w = cl->w;
	bool p = false;
	h->in_step = true;
	h->again = false;
	if (cl->snap != w->snap) {
		/* Hold no old config: streams take the current one anyway. */
		edge_snapshot_ref(w->snap);
		edge_snapshot_unref(cl->snap);
		cl->snap = w->snap;
	}
	run_queue(h);

	/* Output: what the session has, then the socket. */
	if (!cl->chead)
		cl->chead = core_buf_get(&w->bufs);
	core_buf *o = cl->chead;
	if (core_buf_len(o) < o->cap / 2) {
		core_buf_compact(o);
		ssize_t n = h2_session_send(
		    h->sess, (uint8_t *)core_buf_tail(o), core_buf_space(o));
		if (n < 0)
			goto fail;
		o->end += (uint32_t)n;
	}
	if (core_buf_len(o) && cl->can_write) {
		ssize_t n = px_conn_write(cl, o, core_buf_len(o));
		if (n < 0)
			goto fail;
		if (n > 0) {
			core_buf_consume(o, (uint32_t)n);
			cl->last_write = w->loop.now;
			p = true;
		}
	}

	/* Input, only once our output is out: a client that does not read
	 * does not get to make us queue more. */
	if (cl->can_read && !h->rd_done && core_buf_len(o) == 0) {
		if (!cl->in)
			cl->in = core_buf_get(&w->bufs);
		ssize_t n = px_conn_read(cl, cl->in);
		if (n > 0) {
			cl->last_read = w->loop.now;
			ssize_t r = h2_session_recv(
			    h->sess, (const uint8_t *)core_buf_head(cl->in),
			    core_buf_len(cl->in));
			cl->in->start = cl->in->end = 0;
			if (r < 0) {
				/* A GOAWAY is queued: send it, then close. */
				conn_error(cl, h);
			} else if (w->draining && !h->goaway) {
				/* Became HTTP/2 while the edge drains: the
				 * streams its first frames opened are
				 * served, then GOAWAY. */
				px_h2_drain(cl);
			}
			p = true;
		} else if (n != -EAGAIN && n != -ENOBUFS) {
			/* The client closed or failed: nothing more can
			 * reach it either. */
			goto fail;
		}
	}
	run_queue(h);
	if (!h->rd_done && h2_session_error(h->sess))
		conn_error(cl, h); /* found while writing */
	if (h2_session_streams(h->sess))
		h->idle_since = 0;
	else if (!h->idle_since)
		h->idle_since = w->loop.now;

	if (core_buf_len(o) == 0 && !h2_session_want_write(h->sess) &&
	    !h->runq &&
	    (h->rd_done || h2_session_done(h->sess) ||
	     (h->goaway && h2_session_streams(h->sess) == 0)))
		goto fail; /* all said: close */
	if (core_buf_len(o) == 0) {
		/* Hold no buffers while nothing is in transit. */
		core_buf_put(&w->bufs, cl->chead);
		cl->chead = NULL;
		core_buf_put(&w->bufs, cl->in);
		cl->in = NULL;
	}
	h->in_step = false;
	return p || h->again;
fail:
	h->in_step = false;
	px_client_close(cl);
	return false;
}

/* The earliest of the connection's deadlines (0: none); *what says which:
 * 'h' a header block left unfinished, 'w' output the client does not
 * take, 's' a flow-control stall, 'r' one stream's flow-control stall,
 * 'i' idle without streams. */
static uint64_t deadline(const px_client *cl, char *what)
{
	const px_h2 *h = cl->h2;
	const cfg_timeouts *to = &cl->w->snap->cfg->edge.timeouts;
	uint64_t now = cl->w->loop.now, d = 0;
	*what = 0;
#define EARLIER(t, c)                                                          \
	do {                                                                   \
		uint64_t t_ = (t);                                             \
		if (!d || t_ < d) {                                            \
			d = t_;                                                \
			*what = (c);                                           \
		}                                                              \
	} while (0)
	uint64_t hs = h2_session_header_wait_since(h->sess);
	if (hs)
		EARLIER(hs + to->client_header_ms, 'h');
	if (blen(cl->chead) && !cl->can_write)
		EARLIER(cl->last_write + to->client_idle_ms, 'w');
	uint64_t stalled = h2_session_stalled_ms(h->sess);
	if (stalled)
		EARLIER(now - stalled + to->client_idle_ms, 's');
	int32_t sid;
	stalled = h2_session_stalled_stream(h->sess, &sid);
	if (stalled)
		EARLIER(now - stalled + to->client_idle_ms, 'r');
	if (h2_session_streams(h->sess) == 0)
		EARLIER((h->idle_since ? h->idle_since : now) +
			    to->client_idle_ms,
			'i');
#undef EARLIER
	return d;
}

uint64_t px_h2_deadline(const px_client *cl)
{
	char what;
	return deadline(cl, &what);
}

void px_h2_timeout(px_client *cl)
{
	char what;
	uint64_t d = deadline(cl, &what);
	if (!d || d > cl->w->loop.now) {
		px_pump(cl); /* re-arms */
		return;
	}
	const cfg_timeouts *to = &cl->w->snap->cfg->edge.timeouts;
	switch (what) {
	case 'i':
		/* Idle: say goodbye properly. */
		px_h2_drain(cl);
		px_pump(cl);
		return;
	case 'r': {
		/* One stream's window shut, the connection's open: that
		 * stream goes, the others stay. */
		int32_t sid;
		h2_session_stalled_stream(cl->h2->sess, &sid);
		count_sreset(PX_H2_SR_STALLED);
		log_info("%s: HTTP/2 stream %d: client kept its window shut "
			 "for %u ms; reset",
			 cl->ip, (int)sid, to->client_idle_ms);
		h2_session_rst(cl->h2->sess, sid, H2_CANCEL);
		px_pump(cl);
		return;
	}
	case 'h':
		count_error(PX_H2_E_HEADER_TIMEOUT);
		log_info("%s: HTTP/2 header block unfinished after %u ms; "
			 "closed",
			 cl->ip, to->client_header_ms);
		break;
	default:
		count_error(PX_H2_E_STALLED);
		log_info("%s: HTTP/2 client stopped reading (window or socket "
			 "shut for %u ms); closed",
			 cl->ip, to->client_idle_ms);
		break;
	}
	px_client_close(cl);
}

void px_h2_drain(px_client *cl)
{
	px_h2 *h = cl->h2;
	if (h->goaway || h->rd_done)
		return;
	(void)h2_session_drain(h->sess);
	h->goaway = true;
	mark(h);
}

void px_h2_worker_done(edge_worker *w)
{
	w->h2_dirty = NULL;
	free(w->h2_scratch);
	w->h2_scratch = NULL;
}
