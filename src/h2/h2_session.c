/* h2_session.c - server-side HTTP/2 session over nghttp2 (see
 * h2_session.h). */
#include "h2/h2_session.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "core/core_util.h"

typedef struct h2_stream h2_stream;

/* Header fields and bytes kept inside the stream before it allocates. */
#define STREAM_INL_FIELDS 24
#define STREAM_INL_BYTES  1024
struct h2_stream {
	h2_stream *next, **pprev;
	int32_t id;
	void *sud;
	/* request header block being collected: strings in hbuf, fields as
	 * offsets (hbuf may move while it grows) */
	char *hbuf;
	size_t hlen, hcap;
	uint32_t (*foff)[4];
	size_t nf, fcap;
	size_t hlist; /* RFC 9113 header list size so far */
	h2_field *fields;
	h2_req req;
	bool too_big, trailers_phase, delivered, rejected, req_done,
	    resp_started, resp_done, body_ready, deferred, want_trailers;
	/* Who reset it: the client (RST_STREAM, counted as it came) or the
	 * caller (h2_session_rst, a head nghttp2 could not send). A reset
	 * of neither is one the client provoked (see on_stream_close). */
	bool peer_reset, own_reset;
	/* Since when its response data waits on its own window, which the
	 * client keeps at zero while the connection's is open (0: not). */
	uint64_t stall_since;
	/* Answered while the client still sends: its DATA is read and
	 * dropped (up to linger_left bytes, then RST_STREAM NO_ERROR). */
	bool lingering;
	uint32_t linger_left;
	uint16_t refused; /* the edge refused it before delivery: its status
			   * (431, 405; 400 for a malformed request) */
	uint64_t body_recv, unconsumed;
	nghttp2_nv *tnv; /* response trailers to send at eof */
	size_t ntnv;
	/* Typical requests fit these; bigger ones move to the heap. */
	uint32_t foff_inl[STREAM_INL_FIELDS][4];
	h2_field fields_inl[STREAM_INL_FIELDS];
	char hbuf_inl[STREAM_INL_BYTES];
};

typedef struct flood_counter {
	uint64_t start;
	uint32_t count;
} flood_counter;

struct h2_session {
	nghttp2_session *ng;
	h2_settings st;
	h2_callbacks cb;
	void *ud;
	h2_stream *streams;
	size_t nstreams;
	size_t nlinger; /* of them, lingering (answered, body dropped) */
	/* Request DATA delivered and not consumed, over all streams, and of
	 * it what the connection window has not been reopened for (the
	 * excess over conn_reopen_max). */
	uint64_t held, conn_owed;
	const uint8_t *pend; /* nghttp2's output not yet copied */
	size_t pend_len;
	flood_counter resets, pings, settings, empty;
	uint64_t stall_since;
	/* A header block is being received (HEADERS without END_HEADERS, or
	 * not all CONTINUATIONs yet): since when, 0 when none. nghttp2 lets
	 * only one block be open at a time. */
	uint64_t hdr_since;
	int32_t hdr_sid;
	const char *error;
	h2_error_kind error_kind;
	bool fatal;
};

static uint64_t now(const h2_session *s)
{
	return s->cb.now_ms ? s->cb.now_ms(s->ud) : core_now_ms();
}

void h2_settings_default(h2_settings *st)
{
	*st = (h2_settings){
	    .max_concurrent_streams = 100,
	    .initial_window = 256 * 1024,
	    .conn_window = 1024 * 1024,
	    .max_header_list = 16 * 1024,
	    .max_frame_size = 16 * 1024,
	    .header_table_size = 4096,
	    .max_continuations = 8,
	    .flood_window_ms = 10000,
	    .max_resets = 200,
	    .max_pings = 50,
	    .max_settings = 50,
	    .max_empty_frames = 100,
	    .max_outbound_ack = 100,
	    .conn_reopen_max = 3 * 1024 * 1024,
	};
}

static void set_error(h2_session *s, h2_error_kind kind, const char *why)
{
	s->error = why;
	s->error_kind = kind;
}

static void calm(h2_session *s, h2_error_kind kind, const char *why)
{
	if (s->fatal)
		return;
	s->fatal = true;
	set_error(s, kind, why);
	nghttp2_session_terminate_session(s->ng, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* The edge refused stream st before delivering it: status is what an
 * HTTP/1.1 client would have got; reported once, at its close. */
static void refuse(h2_stream *st, uint16_t status)
{
	if (!st->delivered && !st->refused)
		st->refused = status;
}

/* Count one event; true when over `limit` in the current window. */
static bool flood(h2_session *s, flood_counter *c, uint32_t limit)
{
	uint64_t t = now(s);
	if (!c->start || t - c->start >= s->st.flood_window_ms) {
		c->start = t ? t : 1;
		c->count = 0;
	}
	return ++c->count > limit;
}

static h2_stream *get(h2_session *s, int32_t sid)
{
	return nghttp2_session_get_stream_user_data(s->ng, sid);
}

/* Reopen the connection window for the held bytes it still waits for,
 * but the excess of `held` over the budget (see conn_reopen_max). */
static void conn_settle(h2_session *s)
{
	uint64_t max =
	    s->st.stream_window_only ? UINT64_MAX : s->st.conn_reopen_max;
	uint64_t keep = s->held > max ? s->held - max : 0;
	if (s->conn_owed > keep) {
		nghttp2_session_consume_connection(
		    s->ng, (size_t)(s->conn_owed - keep));
		s->conn_owed = keep;
	}
}

static void stream_free(h2_stream *st)
{
	if (st->hbuf != st->hbuf_inl)
		free(st->hbuf);
	if (st->foff != st->foff_inl)
		free(st->foff);
	if (st->fields != st->fields_inl)
		free(st->fields);
	free(st->tnv);
	free(st);
}

static int append(h2_stream *st, const uint8_t *name, size_t nl,
		  const uint8_t *val, size_t vl)
{
	if (st->nf == st->fcap) {
		size_t cap = st->fcap * 2;
		if (st->foff == st->foff_inl) {
			st->foff = xmalloc(cap * sizeof(*st->foff));
			memcpy(st->foff, st->foff_inl, sizeof(st->foff_inl));
		} else {
			st->foff = xrealloc(st->foff, cap * sizeof(*st->foff));
		}
		st->fcap = cap;
	}
	if (nl + vl > st->hcap - st->hlen) {
		size_t cap = st->hcap;
		while (cap - st->hlen < nl + vl)
			cap *= 2;
		if (st->hbuf == st->hbuf_inl) {
			st->hbuf = xmalloc(cap);
			memcpy(st->hbuf, st->hbuf_inl, st->hlen);
		} else {
			st->hbuf = xrealloc(st->hbuf, cap);
		}
		st->hcap = cap;
	}
	uint32_t *o = st->foff[st->nf++];
	o[0] = (uint32_t)st->hlen;
	o[1] = (uint32_t)nl;
	memcpy(st->hbuf + st->hlen, name, nl);
	st->hlen += nl;
	o[2] = (uint32_t)st->hlen;
	o[3] = (uint32_t)vl;
	memcpy(st->hbuf + st->hlen, val, vl);
	st->hlen += vl;
	return 0;
}

/* Turn the collected offsets into h2_field pointers; resets collection. */
static h2_field *build_fields(h2_stream *st, size_t *n)
{
	if (st->fields != st->fields_inl)
		free(st->fields);
	st->fields = st->nf <= STREAM_INL_FIELDS
			 ? st->fields_inl
			 : xcalloc(st->nf, sizeof(h2_field));
	for (size_t i = 0; i < st->nf; i++) {
		uint32_t *o = st->foff[i];
		st->fields[i].name = (h2_str){st->hbuf + o[0], o[1]};
		st->fields[i].value = (h2_str){st->hbuf + o[2], o[3]};
	}
	*n = st->nf;
	return st->fields;
}

static void respond_error(h2_session *s, h2_stream *st, const char *status)
{
	nghttp2_nv nv[] = {
	    {(uint8_t *)":status", (uint8_t *)status, 7, 3,
	     NGHTTP2_NV_FLAG_NONE},
	    {(uint8_t *)"content-length", (uint8_t *)"0", 14, 1,
	     NGHTTP2_NV_FLAG_NONE},
	};
	st->rejected = true;
	st->resp_started = st->resp_done = true;
	refuse(st, (uint16_t)atoi(status));
	nghttp2_submit_response(s->ng, st->id, nv, 2, NULL);
}

static void reject(h2_session *s, h2_stream *st, uint32_t code)
{
	st->rejected = true;
	st->own_reset = code == NGHTTP2_INTERNAL_ERROR; /* the caller failed */
	refuse(st, 400); /* as a malformed HTTP/1.1 request */
	nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, code);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *fr,
			    void *ud)
{
	h2_session *s = ud;
	if (fr->hd.type != NGHTTP2_HEADERS)
		return 0;
	s->hdr_since = now(s) ? now(s) : 1;
	s->hdr_sid = fr->hd.stream_id;
	if (fr->headers.cat == NGHTTP2_HCAT_REQUEST) {
		h2_stream *st = xmalloc(sizeof(*st));
		/* zero all but the inline buffers */
		memset(st, 0, offsetof(h2_stream, foff_inl));
		st->foff = st->foff_inl;
		st->fcap = STREAM_INL_FIELDS;
		st->hbuf = st->hbuf_inl;
		st->hcap = STREAM_INL_BYTES;
		st->fields = st->fields_inl;
		st->id = fr->hd.stream_id;
		st->next = s->streams;
		if (st->next)
			st->next->pprev = &st->next;
		st->pprev = &s->streams;
		s->streams = st;
		s->nstreams++;
		nghttp2_session_set_stream_user_data(ng, st->id, st);
		return 0;
	}
	h2_stream *st = get(s, fr->hd.stream_id);
	if (st) { /* trailers: a new block */
		st->trailers_phase = true;
		st->nf = st->hlen = st->hlist = 0;
	}
	return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *fr,
		     const uint8_t *name, size_t nl, const uint8_t *val,
		     size_t vl, uint8_t flags, void *ud)
{
	h2_session *s = ud;
	h2_stream *st = get(s, fr->hd.stream_id);
	if (!st || st->rejected || st->too_big)
		return 0;
	/* HPACK bombs and huge lists: bounded by the decoded size (RFC 9113
	 * §6.5.2: name + value + 32 per field), whatever the wire size. */
	st->hlist += nl + vl + 32;
	if (st->hlist > s->st.max_header_list) {
		st->too_big = true;
		return 0;
	}
	return append(st, name, nl, val, vl);
}

static void request_end(h2_session *s, h2_stream *st, const h2_field *t,
			size_t nt)
{
	if (st->req_done || !st->delivered)
		return;
	if (h2_req_check_length(&st->req, st->body_recv, true) < 0) {
		reject(s, st, NGHTTP2_PROTOCOL_ERROR);
		return;
	}
	st->req_done = true;
	if (s->cb.on_request_end &&
	    s->cb.on_request_end(s->ud, st->id, st->sud, t, nt) != 0)
		reject(s, st, NGHTTP2_INTERNAL_ERROR);
}

static void headers_done(h2_session *s, h2_stream *st, const nghttp2_frame *fr)
{
	bool es = fr->hd.flags & NGHTTP2_FLAG_END_STREAM;
	size_t n;
	const char *why;
	if (st->rejected)
		return;
	if (st->too_big) {
		if (st->trailers_phase)
			reject(s, st, NGHTTP2_PROTOCOL_ERROR);
		else
			respond_error(s, st, "431");
		return;
	}
	h2_field *f = build_fields(st, &n);
	if (st->trailers_phase) {
		for (size_t i = 0; i < n; i++)
			if (f[i].name.len && f[i].name.p[0] == ':') {
				reject(s, st, NGHTTP2_PROTOCOL_ERROR);
				return;
			}
		request_end(s, st, f, n);
		return;
	}
	int rc = h2_req_parse(f, n, es, &st->req, &why);
	if (rc == -EOPNOTSUPP) {
		respond_error(s, st, "405");
		return;
	}
	if (rc < 0) {
		reject(s, st, NGHTTP2_PROTOCOL_ERROR);
		return;
	}
	st->delivered = true;
	if (s->cb.on_request &&
	    s->cb.on_request(s->ud, st->id, &st->req, &st->sud) != 0) {
		reject(s, st, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	if (es)
		request_end(s, st, NULL, 0);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *fr, void *ud)
{
	h2_session *s = ud;
	h2_stream *st;
	switch (fr->hd.type) {
	case NGHTTP2_HEADERS:
		s->hdr_since = 0; /* the block is whole */
		st = get(s, fr->hd.stream_id);
		if (st)
			headers_done(s, st, fr);
		break;
	case NGHTTP2_DATA:
		if (fr->hd.length == 0 &&
		    !(fr->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
		    flood(s, &s->empty, s->st.max_empty_frames))
			calm(s, H2_ERR_FLOOD, "empty frame flood");
		st = get(s, fr->hd.stream_id);
		if (st && !st->rejected &&
		    (fr->hd.flags & NGHTTP2_FLAG_END_STREAM))
			request_end(s, st, NULL, 0);
		break;
	case NGHTTP2_RST_STREAM:
		/* Rapid reset (CVE-2023-44487): a stream the client opens and
		 * cancels before its response is done costs us an upstream
		 * exchange; count those. */
		st = get(s, fr->hd.stream_id);
		if (st)
			st->peer_reset = true;
		if (st && !st->resp_done &&
		    flood(s, &s->resets, s->st.max_resets))
			calm(s, H2_ERR_RAPID_RESET, "rapid reset");
		break;
	case NGHTTP2_PING:
		if (!(fr->hd.flags & NGHTTP2_FLAG_ACK) &&
		    flood(s, &s->pings, s->st.max_pings))
			calm(s, H2_ERR_FLOOD, "PING flood");
		break;
	case NGHTTP2_SETTINGS:
		if (!(fr->hd.flags & NGHTTP2_FLAG_ACK) &&
		    flood(s, &s->settings, s->st.max_settings))
			calm(s, H2_ERR_FLOOD, "SETTINGS flood");
		break;
	default:
		break;
	}
	/* Once we ended the session, stop parsing: nghttp2 1.52 would go on
	 * with the rest of the buffer after a DATA frame and abort on an
	 * assertion at the next bad frame (found by fuzz_h2_session). */
	return s->fatal ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t sid,
			 const uint8_t *p, size_t len, void *ud)
{
	h2_session *s = ud;
	h2_stream *st = get(s, sid);
	if (st && st->lingering) {
		nghttp2_session_consume(ng, sid, len);
		if (len >= st->linger_left)
			nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, sid,
						  NGHTTP2_NO_ERROR);
		else
			st->linger_left -= (uint32_t)len;
		return 0;
	}
	if (!st || !st->delivered || st->rejected || st->req_done) {
		nghttp2_session_consume(ng, sid, len);
		return 0;
	}
	st->body_recv += len;
	if (h2_req_check_length(&st->req, st->body_recv, false) < 0) {
		nghttp2_session_consume(ng, sid, len);
		reject(s, st, NGHTTP2_PROTOCOL_ERROR);
		return 0;
	}
	st->unconsumed += len;
	s->held += len;
	s->conn_owed += len;
	conn_settle(s);
	if (s->cb.on_data && s->cb.on_data(s->ud, sid, st->sud, p, len) != 0)
		reject(s, st, NGHTTP2_INTERNAL_ERROR);
	return 0;
}

/* The open header block, if any, is over once another frame starts (a
 * block's CONTINUATIONs must come back to back), or when nghttp2 rejects
 * it (an invalid frame, or its stream closed): then nothing is being
 * waited for, even though on_frame_recv never saw the block. */
static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd,
			  void *ud)
{
	h2_session *s = ud;
	(void)ng;
	if (s->fatal)
		return NGHTTP2_ERR_CALLBACK_FAILURE; /* see on_frame_recv */
	if (hd->type != NGHTTP2_CONTINUATION)
		s->hdr_since = 0;
	return 0;
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *fr,
			    int err, void *ud)
{
	h2_session *s = ud;
	(void)ng;
	(void)err;
	if (fr->hd.type == NGHTTP2_HEADERS ||
	    fr->hd.type == NGHTTP2_CONTINUATION) {
		s->hdr_since = 0;
		/* nghttp2's own checks (RFC 9113 §8.2, §8.3) refused a
		 * request head: it resets the stream. */
		h2_stream *st = get(s, fr->hd.stream_id);
		if (st)
			refuse(st, 400);
	}
	return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t sid, uint32_t code,
			   void *ud)
{
	h2_session *s = ud;
	if (sid == s->hdr_sid)
		s->hdr_since = 0;
	h2_stream *st = get(s, sid);
	if (!st)
		return 0;
	/* "MadeYouReset" (CVE-2025-8671): a frame that makes us reset a
	 * stream the caller is serving (a stream WINDOW_UPDATE overflow,
	 * DATA past content-length or past the stream's window) cancels its
	 * upstream exchange just as the client's RST_STREAM would: counted
	 * with those. */
	if (st->delivered && !st->resp_done && code != NGHTTP2_NO_ERROR &&
	    !st->peer_reset && !st->own_reset &&
	    flood(s, &s->resets, s->st.max_resets))
		calm(s, H2_ERR_RAPID_RESET,
		     "rapid reset (streams the client "
		     "made the edge reset)");
	/* bytes the caller never consumed may still hold the connection
	 * window */
	s->held -= st->unconsumed;
	conn_settle(s);
	if (st->delivered && s->cb.on_close)
		s->cb.on_close(s->ud, sid, st->sud, code);
	else if (st->refused && s->cb.on_refused)
		s->cb.on_refused(s->ud, st->refused);
	nghttp2_session_set_stream_user_data(ng, sid, NULL);
	*st->pprev = st->next;
	if (st->next)
		st->next->pprev = st->pprev;
	s->nstreams--;
	if (st->lingering)
		s->nlinger--;
	stream_free(st);
	return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *fr, void *ud)
{
	h2_session *s = ud;
	if (fr->hd.type == NGHTTP2_RST_STREAM &&
	    fr->rst_stream.error_code == NGHTTP2_REFUSED_STREAM &&
	    s->cb.on_refused_stream)
		s->cb.on_refused_stream(s->ud);
	if (fr->hd.type == NGHTTP2_DATA && fr->hd.length) {
		s->stall_since = 0;
		h2_stream *st = get(s, fr->hd.stream_id);
		if (st)
			st->stall_since = 0;
	}
	/* nghttp2 ending the session itself (a protocol error it found):
	 * say why. */
	if (fr->hd.type == NGHTTP2_GOAWAY && fr->goaway.error_code && !s->error)
		set_error(s, H2_ERR_PROTOCOL,
			  nghttp2_http2_strerror(fr->goaway.error_code));
	/* The response is whole but the client is still sending (an early
	 * answer: 413, a rule's fixed_response, a rate limit's 429). RFC
	 * 9113 §8.1 lets us RST_STREAM NO_ERROR at once, but clients such as
	 * curl 7.88 then drop the response they were sent; as nginx does,
	 * the rest of the body is read and dropped instead, up to
	 * H2_LINGER_BYTES, and only then is the stream reset. A lingering
	 * stream does not count as one in progress (h2_session_streams), so
	 * a client that never ends it still meets the idle timeout. */
	if ((fr->hd.type == NGHTTP2_DATA || fr->hd.type == NGHTTP2_HEADERS) &&
	    (fr->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    nghttp2_session_get_stream_remote_close(ng, fr->hd.stream_id) ==
		0) {
		h2_stream *st = get(s, fr->hd.stream_id);
		if (st && !st->lingering) {
			st->lingering = true;
			st->linger_left = H2_LINGER_BYTES;
			s->nlinger++;
		} else if (!st) {
			nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE,
						  fr->hd.stream_id,
						  NGHTTP2_NO_ERROR);
		}
	}
	return 0;
}

/* nghttp2 could not send a frame we queued. A response head it cannot
 * encode (over its 64 KiB header block bound: an origin head that big
 * passes HTTP/1.1) is dropped with the stream left open, so the client
 * would wait for ever: reset the stream instead. An interim (1xx) head
 * that fails is only skipped; the final one follows. */
static int on_frame_not_send(nghttp2_session *ng, const nghttp2_frame *fr,
			     int err, void *ud)
{
	(void)ud;
	(void)err;
	if (fr->hd.type != NGHTTP2_HEADERS || !fr->hd.stream_id)
		return 0;
	const nghttp2_nv *nv = fr->headers.nva;
	if (fr->headers.nvlen && nv[0].namelen == 7 &&
	    !memcmp(nv[0].name, ":status", 7) && nv[0].valuelen == 3 &&
	    nv[0].value[0] == '1')
		return 0;
	h2_stream *st =
	    nghttp2_session_get_stream_user_data(ng, fr->hd.stream_id);
	if (st) {
		st->own_reset = true;
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE,
					  fr->hd.stream_id,
					  NGHTTP2_INTERNAL_ERROR);
	}
	return 0;
}

static ssize_t read_cb(nghttp2_session *ng, int32_t sid, uint8_t *buf,
		       size_t len, uint32_t *flags, nghttp2_data_source *src,
		       void *ud)
{
	h2_session *s = ud;
	h2_stream *st = get(s, sid);
	bool eof = false;
	if (!st || !s->cb.read_body)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	ssize_t n = s->cb.read_body(s->ud, sid, st->sud, buf, len, &eof);
	if (n == H2_DEFERRED) {
		st->deferred = true;
		st->body_ready = false;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (n < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		st->body_ready = false;
		st->resp_done = true;
		if (st->ntnv) {
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			nghttp2_submit_trailer(ng, sid, st->tnv, st->ntnv);
		}
	}
	return n;
}

int h2_session_new(const h2_settings *cfg, const h2_callbacks *cb, void *ud,
		   h2_session **out)
{
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_option *opt = NULL;
	h2_session *s = xcalloc(1, sizeof(*s));
	int rc = -ENOMEM;

	if (cfg)
		s->st = *cfg;
	else
		h2_settings_default(&s->st);
	s->cb = *cb;
	s->ud = ud;
	if (nghttp2_session_callbacks_new(&cbs) != 0 ||
	    nghttp2_option_new(&opt) != 0)
		goto out;
	nghttp2_session_callbacks_set_on_begin_headers_callback(
	    cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_begin_frame_callback(cbs,
							      on_begin_frame);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(
	    cbs, on_invalid_frame);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
							     on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
	    cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
							       on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs,
							     on_frame_send);
	nghttp2_session_callbacks_set_on_frame_not_send_callback(
	    cbs, on_frame_not_send);
	/* the caller reopens windows when the origin took the bytes */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_outbound_ack(opt, s->st.max_outbound_ack);
	nghttp2_option_set_max_settings(opt, 32);
	nghttp2_option_set_max_continuations(opt, s->st.max_continuations);
	/* nghttp2's own token bucket on every RST_STREAM, a backstop to
	 * our count of resets of live streams */
	nghttp2_option_set_stream_reset_rate_limit(
	    opt, (uint64_t)s->st.max_resets * 2, 100);
	nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
	if (nghttp2_session_server_new2(&s->ng, cbs, s, opt) != 0)
		goto out;
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
	     s->st.max_concurrent_streams},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, s->st.initial_window},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, s->st.max_header_list},
	    {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, s->st.max_frame_size},
	    {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, s->st.header_table_size},
	    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	    /* RFC 9218 §2.1: RFC 7540's priority tree is not kept (a
	     * proxy answers each stream as its origin does; flow control
	     * shares the link). With this setting nghttp2 keeps no tree and
	     * no closed streams for it: a PRIORITY frame, or a priority in
	     * HEADERS, costs a parse and nothing else (CVE-2019-9513's
	     * reshuffling needs the tree). */
	    {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
	};
	if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv,
				    sizeof(iv) / sizeof(iv[0])) != 0) {
		rc = -EINVAL;
		goto out;
	}
	if (s->st.conn_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
		nghttp2_session_set_local_window_size(
		    s->ng, NGHTTP2_FLAG_NONE, 0, (int32_t)s->st.conn_window);
	rc = 0;
out:
	nghttp2_session_callbacks_del(cbs);
	nghttp2_option_del(opt);
	if (rc < 0) {
		h2_session_free(s);
		s = NULL;
	}
	*out = s;
	return rc;
}

void h2_session_free(h2_session *s)
{
	if (!s)
		return;
	/* nghttp2_session_del calls no callback (1.52): the streams still
	 * open are freed here, without on_close or on_refused. */
	nghttp2_session_del(s->ng);
	while (s->streams) {
		h2_stream *st = s->streams;
		s->streams = st->next;
		stream_free(st);
	}
	free(s);
}

/* Is response data waiting on a window the client keeps at zero? The
 * connection's shut stalls the connection (h2_session_stalled_ms); one
 * stream's shut while the connection's is open stalls only that stream
 * (h2_session_stalled_stream): a client may pause one download (a
 * paused video) and go on with the others, as nginx lets it. */
static void update_stall(h2_session *s)
{
	bool blocked = false;
	uint64_t t = now(s);
	if (!t)
		t = 1; /* 0 means "not stalled" */
	int32_t conn = nghttp2_session_get_remote_window_size(s->ng);
	for (h2_stream *st = s->streams; st; st = st->next) {
		bool waits = st->body_ready && !st->own_reset;
		if (waits && conn <= 0)
			blocked = true;
		if (waits && conn > 0 &&
		    nghttp2_session_get_stream_remote_window_size(
			s->ng, st->id) <= 0) {
			if (!st->stall_since)
				st->stall_since = t;
		} else {
			st->stall_since = 0;
		}
	}
	if (!blocked)
		s->stall_since = 0;
	else if (!s->stall_since)
		s->stall_since = t;
}

ssize_t h2_session_recv(h2_session *s, const uint8_t *buf, size_t len)
{
	ssize_t n = nghttp2_session_mem_recv(s->ng, buf, len);
	if (n < 0) {
		if (n == NGHTTP2_ERR_FLOODED && !s->fatal)
			set_error(s, H2_ERR_FLOOD, "control frame flood");
		else if (!s->error)
			set_error(s, H2_ERR_PROTOCOL, nghttp2_strerror((int)n));
		/* nghttp2 does not always queue a GOAWAY itself (too many
		 * CONTINUATIONs, floods): make sure one goes out */
		if (n != NGHTTP2_ERR_NOMEM && !s->fatal) {
			s->fatal = true;
			nghttp2_session_terminate_session(
			    s->ng,
			    n == NGHTTP2_ERR_FLOODED ||
				    n == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
				? NGHTTP2_ENHANCE_YOUR_CALM
				: NGHTTP2_PROTOCOL_ERROR);
		}
		return n == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EPROTO;
	}
	update_stall(s);
	if (s->fatal)
		return -EPROTO;
	return n;
}

ssize_t h2_session_send(h2_session *s, uint8_t *buf, size_t cap)
{
	size_t done = 0;
	while (done < cap) {
		if (!s->pend_len) {
			ssize_t n = nghttp2_session_mem_send(s->ng, &s->pend);
			if (n < 0)
				return n == NGHTTP2_ERR_NOMEM ? -ENOMEM
							      : -EPROTO;
			if (n == 0)
				break;
			s->pend_len = (size_t)n;
		}
		size_t k = MIN(cap - done, s->pend_len);
		memcpy(buf + done, s->pend, k);
		s->pend += k;
		s->pend_len -= k;
		done += k;
	}
	update_stall(s);
	return (ssize_t)done;
}

bool h2_session_want_write(const h2_session *s)
{
	return s->pend_len || nghttp2_session_want_write(s->ng);
}

bool h2_session_done(const h2_session *s)
{
	return !s->pend_len && !nghttp2_session_want_read(s->ng) &&
	       !nghttp2_session_want_write(s->ng);
}

/* ":status" and the fields as nghttp2 name/value pairs, in `stack` when
 * they fit (else allocated: free when not stack); nghttp2 copies them
 * when a frame is submitted. */
#define NV_STACK 32
static nghttp2_nv *status_nv(int status, char code[4], const h2_field *f,
			     size_t n, nghttp2_nv *stack)
{
	nghttp2_nv *nv =
	    n + 1 <= NV_STACK ? stack : xcalloc(n + 1, sizeof(*nv));
	code[0] = (char)('0' + status / 100);
	code[1] = (char)('0' + status / 10 % 10);
	code[2] = (char)('0' + status % 10);
	code[3] = 0;
	nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, 3, 0};
	for (size_t i = 0; i < n; i++)
		nv[i + 1] = (nghttp2_nv){(uint8_t *)f[i].name.p,
					 (uint8_t *)f[i].value.p, f[i].name.len,
					 f[i].value.len, 0};
	return nv;
}

int h2_session_interim(h2_session *s, int32_t sid, int status,
		       const h2_field *f, size_t n)
{
	h2_stream *st = get(s, sid);
	char code[4];
	if (!st || st->resp_started || status < 100 || status > 199 ||
	    status == 101)
		return -EINVAL;
	if (nghttp2_session_get_outbound_queue_size(s->ng) >=
	    H2_INTERIM_QUEUE_MAX)
		return -ENOBUFS;
	nghttp2_nv stack[NV_STACK];
	nghttp2_nv *nv = status_nv(status, code, f, n, stack);
	int rc = nghttp2_submit_headers(s->ng, NGHTTP2_FLAG_NONE, sid, NULL, nv,
					n + 1, NULL);
	if (nv != stack)
		free(nv);
	return rc >= 0 ? 0 : -EINVAL;
}

int h2_session_respond(h2_session *s, int32_t sid, int status,
		       const h2_field *f, size_t n, bool has_body)
{
	h2_stream *st = get(s, sid);
	char code[4];
	if (!st || st->resp_started || status < 200 || status > 999)
		return -EINVAL;
	nghttp2_nv stack[NV_STACK];
	nghttp2_nv *nv = status_nv(status, code, f, n, stack);
	nghttp2_data_provider prd = {.read_callback = read_cb};
	st->resp_started = true;
	st->body_ready = has_body;
	if (!has_body)
		st->resp_done = true;
	int rc = nghttp2_submit_response(s->ng, sid, nv, n + 1,
					 has_body ? &prd : NULL);
	if (nv != stack)
		free(nv); /* nghttp2 copies the fields */
	return rc == 0 ? 0 : -EINVAL;
}

int h2_session_resume(h2_session *s, int32_t sid)
{
	h2_stream *st = get(s, sid);
	if (!st)
		return -ENOENT;
	st->deferred = false;
	st->body_ready = true;
	return nghttp2_session_resume_data(s->ng, sid) == 0 ? 0 : -EINVAL;
}

int h2_session_trailers(h2_session *s, int32_t sid, const h2_field *f, size_t n)
{
	h2_stream *st = get(s, sid);
	size_t bytes = 0;
	if (!st || st->resp_done || !n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		bytes += f[i].name.len + f[i].value.len;
	free(st->tnv);
	st->tnv = xmalloc(n * sizeof(nghttp2_nv) + bytes);
	char *p = (char *)(st->tnv + n);
	for (size_t i = 0; i < n; i++) {
		memcpy(p, f[i].name.p, f[i].name.len);
		memcpy(p + f[i].name.len, f[i].value.p, f[i].value.len);
		st->tnv[i] =
		    (nghttp2_nv){(uint8_t *)p, (uint8_t *)p + f[i].name.len,
				 f[i].name.len, f[i].value.len, 0};
		p += f[i].name.len + f[i].value.len;
	}
	st->ntnv = n;
	return 0;
}

int h2_session_rst(h2_session *s, int32_t sid, uint32_t code)
{
	h2_stream *st = get(s, sid);
	if (st) {
		st->own_reset = true;
		st->stall_since = 0;
	}
	return nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, sid, code) ==
		       0
		   ? 0
		   : -EINVAL;
}

int h2_session_consume(h2_session *s, int32_t sid, size_t n)
{
	h2_stream *st = get(s, sid);
	if (!st || n > st->unconsumed)
		return -EINVAL;
	st->unconsumed -= n;
	s->held -= n;
	conn_settle(s);
	return nghttp2_session_consume_stream(s->ng, sid, n) == 0 ? 0 : -EINVAL;
}

int h2_session_consume_all(h2_session *s, int32_t sid)
{
	h2_stream *st = get(s, sid);
	return st ? h2_session_consume(s, sid, st->unconsumed) : -ENOENT;
}

int h2_session_drain(h2_session *s)
{
	int32_t last = nghttp2_session_get_last_proc_stream_id(s->ng);
	return nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, last,
				     NGHTTP2_NO_ERROR, NULL, 0) == 0
		   ? 0
		   : -EINVAL;
}

int h2_session_ping(h2_session *s)
{
	static const uint8_t data[8] = {'m', 'e', 'r', 'i', 'd', 'i', 'a', 'n'};
	return nghttp2_submit_ping(s->ng, NGHTTP2_FLAG_NONE, data) == 0
		   ? 0
		   : -EINVAL;
}

uint64_t h2_session_header_wait_since(const h2_session *s)
{
	return s->hdr_since;
}

uint64_t h2_session_stalled_stream(const h2_session *s, int32_t *sid)
{
	uint64_t since = 0;
	*sid = 0;
	for (const h2_stream *st = s->streams; st; st = st->next)
		if (st->stall_since && (!since || st->stall_since < since)) {
			since = st->stall_since;
			*sid = st->id;
		}
	uint64_t t = now(s);
	return since ? (t > since ? t - since : 1) : 0;
}

uint64_t h2_session_stalled_ms(const h2_session *s)
{
	if (!s->stall_since)
		return 0;
	uint64_t t = now(s);
	return t > s->stall_since ? t - s->stall_since : 0;
}

const char *h2_session_error(const h2_session *s)
{
	return s->error;
}

h2_error_kind h2_session_error_kind(const h2_session *s)
{
	return s->error ? s->error_kind : H2_ERR_NONE;
}

size_t h2_session_streams(const h2_session *s)
{
	return s->nstreams - s->nlinger;
}
