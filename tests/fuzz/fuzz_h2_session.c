/* fuzz_h2_session.c - libFuzzer harness for the HTTP/2 session core
 * (h2_session over nghttp2) and the h2 -> h1 request translation.
 *
 * The input is what a client sends after the connection preface; it is fed
 * in a few h2_session_recv() calls cut at positions taken from the input, so
 * frames arrive split. The caller side is driven too: bytes read backwards
 * from the end of the input (the "control" bytes) decide, in the callbacks
 * and between the recv calls, to respond (with or without body, with
 * interim 1xx and trailers), to defer and resume the body, to consume the
 * request DATA, to reset streams and to drain the session. A fake clock
 * moves between recv calls so the flood windows roll over.
 *
 * Besides sanitizer reports it checks the callback contract (on_close once,
 * last, for a delivered stream; read_body and on_data only for live
 * streams), that h2_req_to_h1 stays in its buffer and writes a whole head,
 * that h2_resp_fields (run on origin-style fields before some responses)
 * drops hop-by-hop fields and lowercases names in its buffer,
 * and that the server's output is a well-formed frame sequence whose header
 * blocks decode with a fresh HPACK inflater.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "fuzz.h"
#include "h2/h2_req.h"
#include "h2/h2_session.h"

#define MIN(a, b)   ((a) < (b) ? (a) : (b))
#define NSLOTS	    16
#define BODY_MAX    (96 * 1024) /* response body bytes per stream */
#define OUT_CHUNK   16384
#define PUMP_ROUNDS 256

typedef struct slot {
	bool used, responded, deferred, body, eof;
	int32_t sid;
	size_t unconsumed; /* request DATA not yet consumed */
	size_t body_left;  /* response body still to produce */
	uint32_t reads;
} slot;

/* The server's output, parsed frame by frame across send calls. */
typedef struct outp {
	uint8_t hdr[9];
	size_t hfill, left;
	uint8_t type, flags;
	int32_t sid;
	bool in_block; /* HEADERS without END_HEADERS seen */
	int32_t block_sid;
	uint8_t *blk;
	size_t blen, bcap;
	nghttp2_hd_inflater *inf;
} outp;

typedef struct fz {
	h2_session *s;
	const uint8_t *d;
	size_t n, ci; /* control bytes: d[n-1], d[n-2], ... cycling */
	uint64_t t;
	slot st[NSLOTS];
	outp out;
	bool in_recv;
} fz;

static uint8_t ctl(fz *z)
{
	uint8_t c;

	if (!z->n)
		return (uint8_t)(z->ci++ * 0x9d);
	c = z->d[z->n - 1 - z->ci % z->n];
	c ^= (uint8_t)((z->ci / z->n) * 0x9d); /* vary on wrap-around */
	z->ci++;
	return c;
}

static slot *slot_for(fz *z, int32_t sid)
{
	for (int i = 0; i < NSLOTS; i++)
		if (z->st[i].used && z->st[i].sid == sid)
			return &z->st[i];
	return NULL;
}

/* ---- response fields ---- */

static const h2_field resp_pool[] = {
    {{"content-type", 12}, {"text/plain", 10}},
    {{"cache-control", 13}, {"no-store", 8}},
    {{"server", 6}, {"meridian", 8}},
    {{"set-cookie", 10}, {"a=1; Path=/", 11}},
    {{"vary", 4}, {"accept-encoding", 15}},
    {{"content-length", 14}, {"5", 1}},
    {{"x-empty", 7}, {"", 0}},
    {{"link", 4}, {"</s.css>; rel=preload", 21}},
};
#define NPOOL (sizeof(resp_pool) / sizeof(resp_pool[0]))

/* Up to 40 fields (more than the session's 32 on the stack); the last
 * one may carry raw bytes from the input. */
static size_t pick_fields(fz *z, h2_field *f, char *raw, size_t rawcap)
{
	uint8_t c = ctl(z);
	size_t n = c & 0x80 ? 33 + c % 8 : c % 4;

	for (size_t i = 0; i < n; i++)
		f[i] = resp_pool[ctl(z) % NPOOL];
	if (n && (c & 0x40)) {
		size_t len = ctl(z) % rawcap;

		for (size_t i = 0; i < len; i++)
			raw[i] = (char)ctl(z);
		f[n - 1] = (h2_field){{"x-fuzz", 6}, {raw, len}};
	}
	return n;
}

/* HTTP/1.1 response fields as an origin sends them, for h2_resp_fields. */
static const h2_field h1_pool[] = {
    {{"Content-Type", 12}, {"text/html", 9}},
    {{"Connection", 10}, {"keep-alive, X-Secret", 20}},
    {{"Keep-Alive", 10}, {"timeout=5", 9}},
    {{"Transfer-Encoding", 17}, {"chunked", 7}},
    {{"X-Secret", 8}, {"1", 1}},
    {{"Upgrade", 7}, {"h2c", 3}},
    {{"Proxy-Connection", 16}, {"close", 5}},
    {{"TE", 2}, {"trailers", 8}},
    {{"Set-Cookie", 10}, {"b=2", 3}},
    {{"ETag", 4}, {"\"x\"", 3}},
};
#define NH1 (sizeof(h1_pool) / sizeof(h1_pool[0]))

/* Fields from the HTTP/1 side, translated; the last one may be a
 * Connection field naming others with bytes from the input. */
static size_t h1_fields(fz *z, h2_field *out, size_t outcap, char *names,
			size_t ncap, char *raw, size_t rawcap)
{
	h2_field in[12];
	size_t n = ctl(z) % 12, cap = ctl(z) % (outcap + 1);
	int rc;

	for (size_t i = 0; i < n; i++)
		in[i] = h1_pool[ctl(z) % NH1];
	if (n && (ctl(z) & 1)) {
		size_t len = ctl(z) % rawcap;

		for (size_t i = 0; i < len; i++)
			raw[i] = (char)ctl(z);
		in[n - 1] = (h2_field){{"Connection", 10}, {raw, len}};
	}
	rc = h2_resp_fields(in, n, out, cap, names, ncap);
	CHECK(rc == -ENOSPC ||
	      (rc >= 0 && (size_t)rc <= n && (size_t)rc <= cap));
	if (rc < 0)
		return 0;
	for (int i = 0; i < rc; i++) {
		CHECK(out[i].name.len > 0);
		CHECK(out[i].name.p >= names &&
		      out[i].name.p + out[i].name.len <= names + ncap);
		for (size_t k = 0; k < out[i].name.len; k++)
			CHECK(out[i].name.p[k] < 'A' || out[i].name.p[k] > 'Z');
		CHECK(!(out[i].name.len == 10 &&
			!memcmp(out[i].name.p, "connection", 10)));
		CHECK(!(out[i].name.len == 17 &&
			!memcmp(out[i].name.p, "transfer-encoding", 17)));
	}
	return (size_t)rc;
}

static const int finals[] = {200, 204, 206, 301, 304, 404, 413, 500, 503, 999};
static const int interims[] = {100, 103, 101, 199, 99};

static void respond(fz *z, slot *sl)
{
	h2_field f[40];
	char raw[32], names[160];
	size_t n;
	uint8_t c = ctl(z);
	int rc;

	if (c & 1) { /* an interim response first */
		int st = interims[ctl(z) % 5];

		n = pick_fields(z, f, raw, sizeof(raw));
		rc = h2_session_interim(z->s, sl->sid, st, f, n);
		if (st == 101 || st == 99)
			CHECK(rc == -EINVAL);
	}
	if (c & 8)
		n = h1_fields(z, f, 12, names, ctl(z) % sizeof(names) + 1, raw,
			      sizeof(raw));
	else
		n = pick_fields(z, f, raw, sizeof(raw));
	sl->body = c & 2;
	sl->body_left = sl->body ? (size_t)ctl(z) << (ctl(z) % 10) : 0;
	if (sl->body_left > BODY_MAX)
		sl->body_left = BODY_MAX;
	rc = h2_session_respond(z->s, sl->sid, finals[ctl(z) % 10], f, n,
				sl->body);
	if (rc == 0) {
		sl->responded = true;
		/* a second final response is refused */
		CHECK(h2_session_respond(z->s, sl->sid, 200, NULL, 0, false) ==
		      -EINVAL);
		CHECK(h2_session_interim(z->s, sl->sid, 100, NULL, 0) ==
		      -EINVAL);
	}
	if (rc == 0 && sl->body && (c & 4)) {
		n = pick_fields(z, f, raw, sizeof(raw));
		rc = h2_session_trailers(z->s, sl->sid, f, n);
		CHECK(n ? rc == 0 : rc == -EINVAL);
	}
}

/* Act on one live stream as a proxy would between reads. */
static void act(fz *z, slot *sl)
{
	uint8_t c = ctl(z);

	if (!sl->responded && (c & 3) == 0)
		respond(z, sl);
	if (sl->deferred && (c & 4)) {
		sl->deferred = false;
		(void)h2_session_resume(z->s, sl->sid);
	}
	if (sl->unconsumed && (c & 8)) {
		size_t k =
		    c & 16 ? sl->unconsumed : ctl(z) % sl->unconsumed + 1;

		CHECK(h2_session_consume(z->s, sl->sid, k) == 0);
		sl->unconsumed -= k;
	}
	if (c == 0xff) /* more than was received: refused */
		CHECK(h2_session_consume(z->s, sl->sid, sl->unconsumed + 1) ==
		      -EINVAL);
	if ((c & 0xe0) == 0xe0)
		(void)h2_session_rst(z->s, sl->sid,
				     (uint32_t[]){H2_NO_ERROR, H2_CANCEL,
						  H2_INTERNAL_ERROR,
						  H2_REFUSED_STREAM}[c & 3]);
}

/* ---- callbacks ---- */

static uint64_t clock_cb(void *ud)
{
	return ((fz *)ud)->t;
}

static void check_str(h2_str s)
{
	CHECK(s.len == 0 || s.p != NULL);
}

static void translate(fz *z, const h2_req *r)
{
	size_t caps[] = {8192, 64, 16, (size_t)ctl(z) * 4 + 1};
	size_t cap = caps[ctl(z) % 4];
	char *buf = malloc(cap); /* exact size: ASan sees any overflow */
	bool chunked = false;
	int n;

	CHECK(buf);
	n = h2_req_to_h1(r, buf, cap, &chunked);
	CHECK(n == -ENOSPC || (n > 0 && (size_t)n <= cap));
	if (n > 0) {
		CHECK((size_t)n >= r->method.len + 1 + r->path.len + 4);
		CHECK(!memcmp(buf, r->method.p, r->method.len));
		CHECK(!memcmp(buf + n - 4, "\r\n\r\n", 4));
		if (chunked)
			CHECK(!r->end_stream && r->content_length < 0);
	}
	free(buf);
}

static int on_request(void *ud, int32_t sid, const h2_req *r, void **sud)
{
	fz *z = ud;
	slot *sl = NULL;
	uint8_t c;

	CHECK(z->in_recv);
	CHECK(sid > 0 && (sid & 1));
	CHECK(slot_for(z, sid) == NULL);
	CHECK(r->method.len > 0 && r->method.p);
	check_str(r->scheme);
	check_str(r->authority);
	check_str(r->path);
	CHECK(r->nfields >= 3 && r->fields);
	for (size_t i = 0; i < r->nfields; i++) {
		check_str(r->fields[i].name);
		check_str(r->fields[i].value);
	}
	CHECK(r->content_length >= -1);
	if (r->end_stream)
		CHECK(r->content_length <= 0);
	CHECK(h2_req_check_length(r, 0, false) == 0);
	translate(z, r);

	for (int i = 0; i < NSLOTS; i++)
		if (!z->st[i].used) {
			sl = &z->st[i];
			break;
		}
	if (sl) {
		*sl = (slot){.used = true, .sid = sid};
		*sud = sl;
	}
	c = ctl(z);
	if (c == 0x5a)
		return -1; /* the stream is reset; on_close still follows */
	if (sl && (c & 0x30) == 0x30)
		respond(z, sl); /* answered from inside the callback */
	return 0;
}

static int on_data(void *ud, int32_t sid, void *sud, const uint8_t *p,
		   size_t len)
{
	fz *z = ud;
	slot *sl = sud;
	uint8_t c = ctl(z);
	uint8_t sum = 0;

	CHECK(z->in_recv);
	CHECK(len == 0 || p);
	for (size_t i = 0; i < len; i++) /* the bytes are readable */
		sum ^= p[i];
	(void)sum;
	if (!sl)
		return 0;
	CHECK(sl->used && sl->sid == sid);
	sl->unconsumed += len;
	if (c & 1) { /* an origin that keeps up */
		CHECK(h2_session_consume(z->s, sid, sl->unconsumed) == 0);
		sl->unconsumed = 0;
	}
	return c == 0xa5 ? -1 : 0;
}

static int on_request_end(void *ud, int32_t sid, void *sud, const h2_field *t,
			  size_t n)
{
	fz *z = ud;
	slot *sl = sud;
	uint8_t c = ctl(z);

	CHECK(z->in_recv);
	CHECK(n == 0 || t);
	for (size_t i = 0; i < n; i++) {
		check_str(t[i].name);
		check_str(t[i].value);
		CHECK(!t[i].name.len || t[i].name.p[0] != ':');
	}
	if (!sl)
		return 0;
	CHECK(sl->used && sl->sid == sid);
	if (!sl->responded && (c & 3) == 1)
		respond(z, sl);
	return c == 0x3c ? -1 : 0;
}

static void on_close(void *ud, int32_t sid, void *sud, uint32_t code)
{
	fz *z = ud;
	slot *sl = sud;

	(void)z;
	(void)code;
	if (!sl)
		return;
	CHECK(sl->used && sl->sid == sid);
	sl->used = false;
}

static ssize_t read_body(void *ud, int32_t sid, void *sud, uint8_t *buf,
			 size_t len, bool *eof)
{
	fz *z = ud;
	slot *sl = sud;
	uint8_t c = ctl(z);
	size_t n;

	CHECK(!z->in_recv); /* only while sending */
	CHECK(sl && sl->used && sl->sid == sid && sl->body);
	CHECK(!sl->eof);
	CHECK(len > 0 && buf);
	sl->reads++;
	if ((c & 7) == 0) {
		sl->deferred = true;
		return H2_DEFERRED;
	}
	if (c == 0xee)
		return -EIO; /* the origin failed: the stream is reset */
	n = sl->body_left;
	if (c & 8)
		n = MIN(n, (size_t)ctl(z) + 1);
	n = n < len ? n : len;
	memset(buf, 'a' + sid % 26, n);
	sl->body_left -= n;
	if (!sl->body_left) {
		*eof = true;
		sl->eof = true;
	}
	if (!n && !*eof) {
		sl->deferred = true;
		return H2_DEFERRED;
	}
	return (ssize_t)n;
}

static const h2_callbacks cbs = {.on_request = on_request,
				 .on_data = on_data,
				 .on_request_end = on_request_end,
				 .on_close = on_close,
				 .read_body = read_body,
				 .now_ms = clock_cb};

/* ---- server output ---- */

static void decode_block(outp *o)
{
	const uint8_t *in = o->blk;
	size_t inlen = o->blen;

	for (;;) {
		nghttp2_nv nv;
		int fl = 0;
		ssize_t r =
		    nghttp2_hd_inflate_hd2(o->inf, &nv, &fl, in, inlen, 1);

		CHECK(r >= 0);
		in += r;
		inlen -= (size_t)r;
		if (fl & NGHTTP2_HD_INFLATE_FINAL) {
			nghttp2_hd_inflate_end_headers(o->inf);
			break;
		}
		if (!r && !inlen)
			break;
	}
	o->blen = 0;
}

static void block_add(outp *o, const uint8_t *p, size_t n)
{
	if (o->blen + n > o->bcap) {
		o->bcap = (o->blen + n) * 2;
		o->blk = realloc(o->blk, o->bcap);
		CHECK(o->blk);
	}
	memcpy(o->blk + o->blen, p, n);
	o->blen += n;
}

static void frame_begin(outp *o)
{
	const uint8_t *h = o->hdr;

	o->left = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
	o->type = h[3];
	o->flags = h[4];
	o->sid = (int32_t)((uint32_t)(h[5] & 0x7f) << 24 |
			   (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]);
	/* no push, no extension frames from this server */
	CHECK(o->type <= NGHTTP2_CONTINUATION &&
	      o->type != NGHTTP2_PUSH_PROMISE);
	CHECK(o->left <= 16384 || o->type == NGHTTP2_GOAWAY);
	if (o->in_block)
		CHECK(o->type == NGHTTP2_CONTINUATION &&
		      o->sid == o->block_sid);
	else
		CHECK(o->type != NGHTTP2_CONTINUATION);
	if (o->type == NGHTTP2_HEADERS) {
		/* the server neither pads nor prioritises */
		CHECK(!(o->flags &
			(NGHTTP2_FLAG_PADDED | NGHTTP2_FLAG_PRIORITY)));
		CHECK(o->sid > 0);
		o->in_block = true;
		o->block_sid = o->sid;
		o->blen = 0;
	}
}

static void frame_end(outp *o)
{
	if ((o->type == NGHTTP2_HEADERS || o->type == NGHTTP2_CONTINUATION) &&
	    (o->flags & NGHTTP2_FLAG_END_HEADERS)) {
		o->in_block = false;
		decode_block(o);
	}
}

static void out_feed(outp *o, const uint8_t *p, size_t n)
{
	while (n) {
		if (o->hfill < 9) {
			size_t k = MIN(9 - o->hfill, n);

			memcpy(o->hdr + o->hfill, p, k);
			o->hfill += k;
			p += k;
			n -= k;
			if (o->hfill < 9)
				return;
			frame_begin(o);
			if (!o->left) {
				frame_end(o);
				o->hfill = 0;
			}
			continue;
		}
		size_t k = MIN(o->left, n);

		if (o->type == NGHTTP2_HEADERS ||
		    o->type == NGHTTP2_CONTINUATION)
			block_add(o, p, k);
		o->left -= k;
		p += k;
		n -= k;
		if (!o->left) {
			frame_end(o);
			o->hfill = 0;
		}
	}
}

static void pump(fz *z)
{
	static uint8_t buf[OUT_CHUNK];
	size_t cap = (ctl(z) & 1) ? sizeof(buf) : (size_t)ctl(z) % 200 + 1;

	for (int i = 0; i < PUMP_ROUNDS; i++) {
		ssize_t n = h2_session_send(z->s, buf, cap);

		CHECK(n >= 0 && (size_t)n <= cap);
		if (!n)
			break;
		out_feed(&z->out, buf, (size_t)n);
	}
	(void)h2_session_want_write(z->s);
	(void)h2_session_done(z->s);
	(void)h2_session_stalled_ms(z->s);
	(void)h2_session_header_wait_since(z->s);
	(void)h2_session_streams(z->s);
}

/* Between reads: act on every live stream, sometimes drain. */
static void caller(fz *z)
{
	uint8_t c = ctl(z);

	for (int i = 0; i < NSLOTS; i++)
		if (z->st[i].used)
			act(z, &z->st[i]);
	if (c == 0x77)
		(void)h2_session_drain(z->s);
	if (c == 0x78) { /* unknown streams */
		CHECK(h2_session_respond(z->s, 2, 200, NULL, 0, false) ==
		      -EINVAL);
		CHECK(h2_session_consume(z->s, 0x7fffffff, 1) == -EINVAL);
		CHECK(h2_session_resume(z->s, 4) < 0);
		CHECK(h2_session_rst(z->s, 0, H2_CANCEL) == -EINVAL);
	}
}

static void settings(fz *z, h2_settings *st)
{
	uint8_t c = ctl(z);

	h2_settings_default(st);
	if (!(c & 1))
		return;
	/* small limits, so windows, floods and 431 are reachable */
	st->max_concurrent_streams = 1 + c % 8;
	st->initial_window = c & 2 ? 16 + ctl(z) : 65535;
	st->conn_window = c & 4 ? 2 * 1024 * 1024 : 65535;
	st->max_header_list = 256 + ctl(z) * 8;
	/* a smaller HPACK table needs a size update from the client
	 * (RFC 7541 §4.2), which most seeds do not send: only sometimes */
	st->header_table_size = (c & 0x18) == 0x18 ? 0 : 4096;
	st->max_continuations = 1 + c % 3;
	st->flood_window_ms = 100;
	st->max_resets = 1 + ctl(z) % 8;
	st->max_pings = 1 + ctl(z) % 8;
	st->max_settings = 1 + ctl(z) % 8;
	st->max_empty_frames = 1 + ctl(z) % 8;
	st->max_outbound_ack = 1 + ctl(z) % 8;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char magic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	/* a private copy so ASan catches any read past the end */
	uint8_t *buf = malloc(size ? size : 1);
	fz z = {.d = data, .n = size, .t = 1000};
	h2_settings st;
	size_t cuts[6];
	size_t ncuts, prev = 0;
	bool dead = false;

	CHECK(buf);
	memcpy(buf, data, size);
	CHECK(nghttp2_hd_inflate_new(&z.out.inf) == 0);
	settings(&z, &st);
	CHECK(h2_session_new(&st, &cbs, &z, &z.s) == 0);

	ncuts = ctl(&z) % 5;
	for (size_t i = 0; i < ncuts; i++)
		cuts[i] = ((size_t)ctl(&z) << 8 | ctl(&z)) % (size + 1);
	cuts[ncuts++] = size;
	qsort(cuts, ncuts, sizeof(cuts[0]), cmp_size);

	z.in_recv = true;
	CHECK(h2_session_recv(z.s, (const uint8_t *)magic, 24) == 24);
	z.in_recv = false;
	pump(&z);
	for (size_t i = 0; i < ncuts && !dead; i++) {
		size_t len = cuts[i] - prev;
		ssize_t rc;

		z.in_recv = true;
		rc = h2_session_recv(z.s, buf + prev, len);
		z.in_recv = false;
		CHECK(rc < 0 || (size_t)rc == len);
		if (rc < 0) {
			CHECK(rc == -EPROTO || rc == -ENOMEM);
			CHECK(h2_session_error(z.s) != NULL);
			CHECK(h2_session_error_kind(z.s) != H2_ERR_NONE);
			dead = true; /* send the GOAWAY, then close */
		}
		prev = cuts[i];
		pump(&z);
		if (!dead)
			caller(&z);
		pump(&z);
		uint8_t c = ctl(&z);
		z.t += c & 0x80 ? 20000 : c; /* a flood window may roll over */
	}
	/* the origin finishes: more rounds of resume / consume / respond */
	for (int r = 0; r < 4 && !dead; r++) {
		caller(&z);
		pump(&z);
	}
	h2_session_free(z.s);
	nghttp2_hd_inflate_del(z.out.inf);
	free(z.out.blk);
	free(buf);
	return 0;
}
