/* tun_connector.c - the tunnel connector; see tun_connector.h and
 * docs/ARCHITECTURE.md ("Tunnels", "Connector").
 *
 * Edge connections (tconn) are a fixed array: connections_per_edge slots per
 * edge address, each cycling WAIT -> CONNECTING -> TLS -> HELLO -> H2 and
 * back to WAIT (a backoff timer) when lost. In H2 the connection drives an
 * h2_session (the connector is the HTTP/2 server) from the TLS bytes.
 *
 * Streams (tstream) are requests the edge opened. nghttp2 callbacks never
 * do a stream's work: they record what came and queue the stream on its
 * connection's run queue, drained after h2_session_recv/send returns.
 * Service socket events and timers run a stream directly. Either way the
 * connection is marked dirty and flushed after the loop's batch (post
 * hook), where freed streams are released too (their fds are closed at
 * once, so later events of the batch skip them).
 *
 * Memory per stream is bounded: the request body held is at most the
 * stream's HTTP/2 window (bytes are given back to the edge only as the
 * service takes them), the response is read from the service only while
 * the decoded-body buffer has room (read_body empties it as the edge's
 * window allows).
 */
#include "tunnel/tun_connector.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "config/cfg_diag.h"
#include "core/core_log.h"
#include "core/core_loop.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "h2/h2_session.h"
#include "http/http1_parse.h"
#include "tls/tls.h"
#include "tunnel/tun_backoff.h"
#include "tunnel/tun_rules.h"

#define HS_TIMEOUT_MS 10000u /* TCP + TLS + hello answer */
/* The protocol's timers (ms). Tests shorten them with
 * MERIDIAN_TUNNEL_TEST_TIMERS="ping,dead,connect,head" (a test hook, read
 * once at start; not documented for operators). */
static uint32_t PING_MS = 15000;       /* send a PING after this long quiet */
static uint32_t DEAD_MS = 45000;       /* nothing from the edge: close */
static uint32_t SVC_CONNECT_MS = 5000; /* a service's TCP connect */
static uint32_t SVC_HEAD_MS = 60000;   /* a service's response head */
#define OUT_CAP		(64u * 1024)   /* h2 bytes to the edge */
#define IN_CAP		(16u * 1024)   /* TLS bytes read per call */
#define HELLO_CAP	4096u
#define RB_CAP		(64u * 1024) /* service bytes; a head must fit */
#define OB_CAP		(64u * 1024) /* decoded response body */
#define HEAD_CAP	(16u * 1024) /* the HTTP/1.1 request head */
#define MAX_STEP_ROUNDS 64
/* Kept-alive service connections: at most IDLE_MAX in all, each reused
 * within IDLE_MS of its last answer (services close idle connections
 * after a while: nginx after 75 s, Go's default after 3 min). */
#define IDLE_MAX 64
#define IDLE_MS	 20000
/* A connection to an endpoint of a set (the ingress controller's
 * services) that is refused or not accepted within SVC_CONNECT_MS (a pod
 * or node gone before its EndpointSlice says so) is tried on the next
 * endpoint, at most this many in all, as nginx's proxy_next_upstream
 * error timeout does: no byte of the request has left yet. */
#define EP_TRIES 3

enum { C_OFF = 0, C_WAIT, C_CONNECTING, C_TLS, C_HELLO, C_REFUSED, C_H2 };
enum { S_NEW = 0, S_CONNECTING, S_ACTIVE, S_DONE };
enum { RS_HEAD = 0, RS_BODY, RS_DONE };

typedef struct tun tun;
typedef struct tconn tconn;
typedef struct tstream tstream;

struct tstream {
	tconn *c;
	tstream *next, *prev; /* c->streams */
	tstream *qnext;	      /* c->runq */
	tstream *gnext;	      /* x->grave */
	int32_t sid;
	tun_ruleset *rs; /* the rules it started with (a reference) */
	int rule;
	uint8_t state;
	bool queued, gone, dead, head_req, upgrade;
	core_io io;	   /* the service connection; fd -1 when none */
	tun_svc_addr addr; /* where it is */
	/* reused: the connection came from the idle pool (a close before any
	 * answer is then the keep-alive race: the request goes again on a
	 * new connection, if no body byte was handed to the service yet);
	 * fresh: take no pooled connection (that retry); keep: the service's
	 * answer lets the connection serve another request. */
	bool reused, fresh, keep, body_written;
	uint8_t tries; /* endpoints of the set that refused the connection */
	bool addr_set; /* st_start: connect to addr (the next endpoint) */
	core_timer timer;
	/* request -> service: the head, then the body (chunk-framed when
	 * its length is unknown) */
	char *head;
	size_t head_len, head_off;
	bool chunked, req_ended, req_sent, drop_req;
	core_bq rq; /* DATA not yet written, held against the window */
	char chdr[24];
	uint8_t chdr_len, chdr_off, crlf_left;
	size_t chunk_left;
	size_t term_off; /* "0\r\n\r\n" written so far */
	/* service -> response */
	char *rb;
	size_t rb_len;
	bool svc_eof;
	uint8_t rstate, body;
	bool responded, deferred;
	uint64_t remaining;
	http1_chunked ch;
	uint8_t *ob;
	size_t ob_start, ob_end;
};

struct tconn {
	tun *x;
	int edge, slot;
	uint8_t state;
	core_io io;
	core_timer timer;
	tls_conn tls;
	bool tls_live;
	tun_backoff backoff;
	uint64_t since;	  /* C_H2: when it came up; else when the dial began */
	uint64_t last_rx; /* last bytes from the edge */
	uint64_t last_tx; /* last bytes to the edge */
	char hello[HELLO_CAP];
	size_t hlen, hoff; /* C_HELLO: to write, then the answer read */
	bool hello_sent;
	int refused_status;
	h2_session *sess;
	uint8_t *out, *in;
	size_t olen, ooff;
	bool rd_done, goaway, dirty;
	tconn *dnext;
	tstream *streams, *runq;
};

/* The hand-over of rule sets from another thread (tun_connector.h). */
struct tun_live {
	pthread_mutex_t lock;
	tun_ruleset *pending; /* under lock */
	int efd;	      /* eventfd: the loop takes pending */
	atomic_uint up;	      /* connections in C_H2 */
};

/* An idle kept-alive service connection: any event on it (the service
 * closing it, or bytes nobody asked for) closes it. */
typedef struct tidle {
	core_io io; /* fd -1: a free slot */
	tun_svc_addr addr;
	uint64_t since;
} tidle;

struct tun {
	const tun_config *cfg;
	const char *name;
	tun_ruleset *rs; /* current: new streams match against it */
	tun_live *live;	 /* NULL: the rules never change */
	core_io live_io;
	core_loop loop;
	tls_client *tls;
	tconn *conns;
	size_t nconns;
	tconn *dirty;
	tstream *grave;
	bool draining;
	int sfd;
	core_io sig_io;
	core_timer drain_timer;
	core_timer kick; /* fires at once: dirty connections left */
	uint64_t rnd;
	tidle idle[IDLE_MAX];
	/* scratch for response heads (one at a time) */
	http1_response resp;
	h2_field in[HTTP1_MAX_HEADERS], out[HTTP1_MAX_HEADERS];
	char names[RB_CAP];
};

static void conn_run(tconn *c);
static void conn_lost(tconn *c, const char *why);
static void st_run(tstream *st);
static bool st_next_endpoint(tstream *st);
static bool st_stale(const tstream *st);
static void st_retry_fresh(tstream *st);

static const char *edge_text(const tconn *c)
{
	return c->x->cfg->edges[c->edge].text;
}

static uint64_t rnd_next(tun *x)
{
	/* xorshift64*: jitter only, seeded from getrandom */
	x->rnd ^= x->rnd >> 12;
	x->rnd ^= x->rnd << 25;
	x->rnd ^= x->rnd >> 27;
	return x->rnd * 2685821657736338717ull;
}

/* --- scheduling -------------------------------------------------------- */

static void mark(tconn *c)
{
	if (c->dirty || c->state != C_H2)
		return;
	c->dirty = true;
	c->dnext = c->x->dirty;
	c->x->dirty = c;
}

static void queue(tstream *st)
{
	if (st->queued || st->dead)
		return;
	st->queued = true;
	st->qnext = st->c->runq;
	st->c->runq = st;
	mark(st->c);
}

static void run_queue(tconn *c)
{
	while (c->runq) {
		tstream *st = c->runq;
		c->runq = st->qnext;
		st->qnext = NULL;
		st->queued = false;
		st_run(st);
	}
}

/* --- kept-alive service connections --------------------------------------- */

static bool same_addr(const tun_svc_addr *a, const tun_svc_addr *b)
{
	return a->len == b->len && !memcmp(&a->ss, &b->ss, a->len);
}

static void idle_close(tidle *k)
{
	if (k->io.fd >= 0)
		close(k->io.fd); /* also leaves epoll */
	k->io.fd = -1;
}

static void idle_io(core_io *io, uint32_t events)
{
	(void)events;
	idle_close(container_of(io, tidle, io));
}

/* Park a service connection whose exchange ended cleanly. */
static void idle_put(tun *x, int fd, const tun_svc_addr *a)
{
	tidle *slot = NULL, *oldest = NULL;
	for (size_t i = 0; i < IDLE_MAX && !slot; i++) {
		tidle *k = &x->idle[i];
		if (k->io.fd < 0)
			slot = k;
		else if (!oldest || k->since < oldest->since)
			oldest = k;
	}
	if (!slot) {
		idle_close(oldest);
		slot = oldest;
	}
	slot->io.fd = fd;
	slot->io.cb = idle_io;
	slot->addr = *a;
	slot->since = x->loop.now;
	if (core_loop_add(&x->loop, &slot->io, true) < 0)
		idle_close(slot);
}

/* A parked connection to a, taken off the loop; -1: none. */
static int idle_take(tun *x, const tun_svc_addr *a)
{
	tidle *best = NULL;
	for (size_t i = 0; i < IDLE_MAX; i++) {
		tidle *k = &x->idle[i];
		if (k->io.fd < 0 || !same_addr(&k->addr, a))
			continue;
		if (x->loop.now - k->since > IDLE_MS) {
			idle_close(k);
			continue;
		}
		if (!best || k->since > best->since)
			best = k; /* the newest: the least likely closed */
	}
	if (!best)
		return -1;
	int fd = best->io.fd;
	(void)core_loop_del(&x->loop, &best->io);
	best->io.fd = -1;
	return fd;
}

/* --- streams: helpers -------------------------------------------------- */

static void svc_close(tstream *st)
{
	tun *x = st->c->x;
	core_timer_cancel(&x->loop, &st->timer);
	if (st->io.fd >= 0) {
		close(st->io.fd);
		st->io.fd = -1;
	}
}

/* The stream is over for us: off its connection, freed after the batch. */
static void st_kill(tstream *st)
{
	if (st->dead)
		return;
	tconn *c = st->c;
	svc_close(st);
	st->dead = true;
	if (st->queued) {
		for (tstream **pp = &c->runq; *pp; pp = &(*pp)->qnext)
			if (*pp == st) {
				*pp = st->qnext;
				break;
			}
		st->queued = false;
	}
	if (st->prev)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	st->gnext = c->x->grave;
	c->x->grave = st;
}

static void st_free(tstream *st)
{
	tun_ruleset_unref(st->rs);
	free(st->head);
	core_bq_free(&st->rq);
	free(st->rb);
	free(st->ob);
	free(st);
}

static size_t ob_len(const tstream *st)
{
	return st->ob_end - st->ob_start;
}

static size_t ob_room(tstream *st)
{
	if (!st->ob)
		st->ob = xmalloc(OB_CAP);
	if (st->ob_start == st->ob_end)
		st->ob_start = st->ob_end = 0;
	if (st->ob_end == OB_CAP && st->ob_start) {
		memmove(st->ob, st->ob + st->ob_start, ob_len(st));
		st->ob_end -= st->ob_start;
		st->ob_start = 0;
	}
	return OB_CAP - st->ob_end;
}

static void ob_put(tstream *st, const void *p, size_t n)
{
	memcpy(st->ob + st->ob_end, p, n);
	st->ob_end += n;
}

static void resume(tstream *st)
{
	if (st->deferred && (ob_len(st) || st->rstate == RS_DONE)) {
		st->deferred = false;
		(void)h2_session_resume(st->c->sess, st->sid);
	}
	mark(st->c);
}

/* No more request bytes are wanted: give the edge its window back. */
static void drop_request(tstream *st)
{
	st->drop_req = true;
	st->rq.start = st->rq.end = 0;
	if (!st->gone)
		(void)h2_session_consume_all(st->c->sess, st->sid);
}

/* The response is whole (or the stream failed): the service connection
 * is not needed any more. */
static void response_done(tstream *st)
{
	/* Whole on both sides, framed, nothing extra: kept for the next
	 * request to this service. */
	if (st->keep && st->rstate == RS_DONE && st->req_sent &&
	    !st->drop_req && !st->rb_len && !st->svc_eof && st->io.fd >= 0 &&
	    st->state == S_ACTIVE && !st->c->x->draining) {
		tun *x = st->c->x;
		core_timer_cancel(&x->loop, &st->timer);
		(void)core_loop_del(&x->loop, &st->io);
		idle_put(x, st->io.fd, &st->addr);
		st->io.fd = -1;
	}
	st->rstate = RS_DONE;
	st->state = S_DONE;
	svc_close(st);
	drop_request(st);
	resume(st);
}

/* Answer locally (text body), or reset when a response has started. */
static void local_answer(tstream *st, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void local_answer(tstream *st, int status, const char *fmt, ...)
{
	tconn *c = st->c;
	if (st->gone)
		return;
	if (st->responded) {
		(void)h2_session_rst(c->sess, st->sid, H2_INTERNAL_ERROR);
		response_done(st);
		return;
	}
	char text[512];
	int n = 0;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		n = vsnprintf(text, sizeof(text) - 1, fmt, ap);
		va_end(ap);
		if (n < 0)
			n = 0;
		if ((size_t)n > sizeof(text) - 2)
			n = sizeof(text) - 2;
		text[n++] = '\n';
	}
	char clen[24];
	snprintf(clen, sizeof(clen), "%d", n);
	h2_field f[2] = {
	    {{"content-type", 12}, {"text/plain; charset=utf-8", 25}},
	    {{"content-length", 14}, {clen, strlen(clen)}},
	};
	bool body = n > 0 && !st->head_req;
	st->responded = true;
	if (status < 200 ||
	    h2_session_respond(c->sess, st->sid, status, n ? f : f + 1,
			       n ? 2 : 1, body) < 0) {
		(void)h2_session_rst(c->sess, st->sid, H2_INTERNAL_ERROR);
	} else if (body) {
		(void)ob_room(st);
		ob_put(st, text, (size_t)n);
	}
	response_done(st);
}

/* --- streams: request side ---------------------------------------------- */

static int svc_write(tstream *st, const void *p, size_t n)
{
	ssize_t w = send(st->io.fd, p, n, MSG_NOSIGNAL);
	if (w >= 0)
		return (int)w;
	return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

/* Write what is pending towards the service. Returns 0 (blocked or done)
 * or a negative code when the service cannot take more. */
static int write_side(tstream *st)
{
	while (st->io.fd >= 0 && !st->req_sent) {
		int w;
		if (st->head_off < st->head_len) {
			w = svc_write(st, st->head + st->head_off,
				      st->head_len - st->head_off);
			if (w < 0)
				return w == -EAGAIN ? 0 : w;
			st->head_off += (size_t)w;
			continue;
		}
		size_t have = st->rq.end - st->rq.start;
		if (st->chunked) {
			if (st->chdr_off < st->chdr_len) {
				w = svc_write(st, st->chdr + st->chdr_off,
					      st->chdr_len - st->chdr_off);
				if (w < 0)
					return w == -EAGAIN ? 0 : w;
				st->chdr_off += (uint8_t)w;
				continue;
			}
			if (st->chunk_left) {
				w = svc_write(st, st->rq.p + st->rq.start,
					      MIN(have, st->chunk_left));
				if (w < 0)
					return w == -EAGAIN ? 0 : w;
				st->rq.start += (size_t)w;
				st->chunk_left -= (size_t)w;
				st->body_written = true;
				(void)h2_session_consume(st->c->sess, st->sid,
							 (size_t)w);
				mark(st->c);
				if (!st->chunk_left)
					st->crlf_left = 2;
				continue;
			}
			if (st->crlf_left) {
				static const char crlf[] = "\r\n";
				w = svc_write(st, crlf + (2 - st->crlf_left),
					      st->crlf_left);
				if (w < 0)
					return w == -EAGAIN ? 0 : w;
				st->crlf_left -= (uint8_t)w;
				continue;
			}
			if (have) {
				st->chunk_left = have;
				st->chdr_len = (uint8_t)snprintf(
				    st->chdr, sizeof(st->chdr), "%zx\r\n",
				    have);
				st->chdr_off = 0;
				continue;
			}
			if (!st->req_ended)
				return 0;
			static const char term[] = "0\r\n\r\n";
			w = svc_write(st, term + st->term_off,
				      5 - st->term_off);
			if (w < 0)
				return w == -EAGAIN ? 0 : w;
			st->term_off += (size_t)w;
			if (st->term_off == 5)
				st->req_sent = true;
			continue;
		}
		if (have) {
			w = svc_write(st, st->rq.p + st->rq.start, have);
			if (w < 0)
				return w == -EAGAIN ? 0 : w;
			st->rq.start += (size_t)w;
			st->body_written = true;
			(void)h2_session_consume(st->c->sess, st->sid,
						 (size_t)w);
			mark(st->c);
			continue;
		}
		if (st->req_ended)
			st->req_sent = true;
		return 0;
	}
	return 0;
}

/* --- streams: response side --------------------------------------------- */

/* Content-Length has no place in a 1xx or 204 response (RFC 9110 §8.6). */
static bool length_banned(int status, const http_str *name)
{
	return (status < 200 || status == 204) && name->len == 14 &&
	       !strncasecmp(name->p, "content-length", 14);
}

/* A head at the start of rb. Returns its length, 0 when incomplete, or a
 * negative code (the service's answer is not HTTP/1.1). */
static int take_head(tstream *st)
{
	tun *x = st->c->x;
	http1_limits lim = {.max_head_bytes = RB_CAP,
			    .max_headers = HTTP1_MAX_HEADERS};
	int r = http1_parse_response(st->rb, st->rb_len, &lim,
				     st->head_req ? HTTP_M_HEAD : HTTP_M_GET,
				     &x->resp);
	if (r <= 0)
		return r < 0 ? -EPROTO : 0;
	const http1_response *p = &x->resp;
	size_t k = 0;
	for (uint32_t i = 0; i < p->nheaders; i++)
		if (!length_banned(p->status, &p->headers[i].name))
			x->in[k++] = (h2_field){
			    {p->headers[i].name.p, p->headers[i].name.len},
			    {p->headers[i].value.p, p->headers[i].value.len}};
	int n = h2_resp_fields(x->in, k, x->out, HTTP1_MAX_HEADERS, x->names,
			       sizeof(x->names));
	if (n < 0)
		return -EPROTO;
	if (p->status < 200) {
		if (p->status != 101)
			(void)h2_session_interim(st->c->sess, st->sid,
						 p->status, x->out, (size_t)n);
		return r;
	}
	bool has_body =
	    !st->head_req &&
	    (p->body == HTTP1_BODY_CHUNKED || p->body == HTTP1_BODY_EOF ||
	     (p->body == HTTP1_BODY_LENGTH && p->content_length > 0));
	if (h2_session_respond(st->c->sess, st->sid, p->status, x->out,
			       (size_t)n, has_body) < 0)
		return -EPROTO;
	st->responded = true;
	st->keep = p->conn.keep_alive && p->body != HTTP1_BODY_EOF;
	st->body = (uint8_t)p->body;
	st->remaining = p->content_length;
	st->rstate = has_body ? RS_BODY : RS_DONE;
	core_timer_cancel(&x->loop, &st->timer);
	return r;
}

/* Decode body bytes at rb into ob while there is room. Returns the bytes
 * taken or a negative code. */
static ssize_t take_body(tstream *st, const char *p, size_t len)
{
	size_t done = 0;
	while (done < len && st->rstate == RS_BODY) {
		size_t room = ob_room(st), take;
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
				st->rstate = RS_DONE;
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
			ssize_t k =
			    http1_chunked_feed(&st->ch, p + done, take, &fin);
			if (k < 0)
				return -EPROTO;
			if (k == 0 && !fin)
				return -EPROTO;
			/* trailers are not forwarded (docs/TUNNEL.md) */
			done += (size_t)k;
			if (fin)
				st->rstate = RS_DONE;
			break;
		}
		default:
			st->rstate = RS_DONE;
			break;
		}
	}
	return (ssize_t)done;
}

static const char *svc_text(const tstream *st)
{
	return st->rs->rules[st->rule].svc.text;
}

/* Read and translate what the service sent, as far as ob has room. */
static void read_side(tstream *st)
{
	tun *x = st->c->x;
	for (int round = 0; round < 1024 && st->io.fd >= 0; round++) {
		/* first what rb holds */
		if (st->rstate == RS_HEAD && st->rb_len) {
			int r = take_head(st);
			if (r < 0) {
				local_answer(st, 502,
					     "meridian tunnel connector %s: "
					     "service %s sent an invalid "
					     "response",
					     x->name, svc_text(st));
				return;
			}
			if (r > 0) {
				memmove(st->rb, st->rb + r, st->rb_len - r);
				st->rb_len -= (size_t)r;
				continue;
			}
			if (st->rb_len == RB_CAP) {
				local_answer(st, 502,
					     "meridian tunnel connector %s: "
					     "service %s sent a response head "
					     "over %u bytes",
					     x->name, svc_text(st), RB_CAP);
				return;
			}
		}
		if (st->rstate == RS_BODY && st->rb_len) {
			ssize_t k = take_body(st, st->rb, st->rb_len);
			if (k < 0) {
				log_info("tunnel: service %s: invalid chunked "
					 "body; stream %d reset",
					 svc_text(st), (int)st->sid);
				local_answer(st, 502, NULL);
				return;
			}
			if (k > 0) {
				memmove(st->rb, st->rb + k, st->rb_len - k);
				st->rb_len -= (size_t)k;
				resume(st);
			}
		}
		if (st->rstate == RS_DONE) {
			response_done(st);
			return;
		}
		if (st->rb_len == RB_CAP ||
		    (st->rstate == RS_BODY && st->rb_len))
			return; /* ob is full: read_body will make room */
		if (st->svc_eof && st_stale(st)) {
			st_retry_fresh(st);
			st_run(st);
			return;
		}
		if (st->svc_eof) {
			if (st->rstate == RS_BODY &&
			    st->body == HTTP1_BODY_EOF) {
				response_done(st);
				return;
			}
			if (st->rstate == RS_HEAD)
				local_answer(st, 502,
					     "meridian tunnel connector %s: "
					     "service %s closed the connection "
					     "without answering",
					     x->name, svc_text(st));
			else
				local_answer(st, 502, NULL); /* cut short */
			return;
		}
		if (!st->rb)
			st->rb = xmalloc(RB_CAP);
		ssize_t n = recv(st->io.fd, st->rb + st->rb_len,
				 RB_CAP - st->rb_len, 0);
		if (n > 0) {
			st->rb_len += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		st->svc_eof = true; /* EOF or a reset: as a close */
	}
}

/* --- streams: the exchange ----------------------------------------------- */

static void st_timeout(core_timer *t)
{
	tstream *st = container_of(t, tstream, timer);
	tun *x = st->c->x;
	if (st->dead)
		return;
	if (st->state == S_CONNECTING && st_next_endpoint(st)) {
		mark(st->c);
		return;
	}
	if (st->state == S_CONNECTING)
		local_answer(st, 504,
			     "meridian tunnel connector %s: service %s did "
			     "not accept the connection within %g s",
			     x->name, svc_text(st),
			     (double)SVC_CONNECT_MS / 1000);
	else if (st->rstate == RS_HEAD)
		local_answer(st, 504,
			     "meridian tunnel connector %s: service %s did "
			     "not answer within %g s",
			     x->name, svc_text(st), (double)SVC_HEAD_MS / 1000);
	mark(st->c);
}

static void st_io(core_io *io, uint32_t events)
{
	tstream *st = container_of(io, tstream, io);
	(void)events;
	if (st->dead)
		return;
	st_run(st);
	mark(st->c);
}

static void st_start(tstream *st)
{
	tun *x = st->c->x;
	const tun_rule *r = &st->rs->rules[st->rule];
	if (st->upgrade) {
		local_answer(st, 501,
			     "meridian tunnel connector %s: upgrade "
			     "(WebSocket) requests are not supported through "
			     "tunnels yet",
			     x->name);
		return;
	}
	if (r->svc.kind == TUN_SVC_STATUS) {
		local_answer(st, r->svc.status, NULL);
		return;
	}
	tun_svc_addr a;
	if (st->addr_set) {
		a = st->addr;
		st->addr_set = false;
	} else if (tun_ruleset_pick(st->rs, (size_t)st->rule, &a) < 0) {
		local_answer(st, 503,
			     "meridian tunnel connector %s: service %s %s",
			     x->name, svc_text(st),
			     r->svc.why ? r->svc.why : "has no ready endpoint");
		return;
	}
	if (!st->head) {
		local_answer(st, 431,
			     "meridian tunnel connector %s: request head too "
			     "large to forward",
			     x->name);
		return;
	}
	st->addr = a;
	int kept = st->fresh ? -1 : idle_take(x, &a);
	if (kept >= 0) {
		st->reused = true;
		st->io.fd = kept;
		st->io.cb = st_io;
		if (core_loop_add(&x->loop, &st->io, false) < 0) {
			local_answer(st, 502,
				     "meridian tunnel connector %s: %s",
				     x->name, "cannot watch a socket");
			return;
		}
		st->state = S_ACTIVE;
		core_timer_after(&x->loop, &st->timer, SVC_HEAD_MS);
		return;
	}
	bool in_progress = false;
	int fd = core_sock_connect((const struct sockaddr *)&a.ss, a.len,
				   &in_progress);
	if (fd < 0 && st_next_endpoint(st))
		return;
	if (fd < 0) {
		local_answer(st, 502,
			     "meridian tunnel connector %s: service %s "
			     "refused the connection (%s)",
			     x->name, svc_text(st), strerror(-fd));
		return;
	}
	st->io.fd = fd;
	st->io.cb = st_io;
	if (core_loop_add(&x->loop, &st->io, false) < 0) {
		local_answer(st, 502, "meridian tunnel connector %s: %s",
			     x->name, "cannot watch a socket");
		return;
	}
	st->state = S_CONNECTING;
	core_timer_after(&x->loop, &st->timer, SVC_CONNECT_MS);
}

/* The connection to an endpoint failed: true when the stream went
 * on to the endpoint after it in its set (st_start again). The one after
 * the endpoint that failed, not the round robin's next: other streams
 * may have moved that meanwhile. */
static bool st_next_endpoint(tstream *st)
{
	const tun_service *s = &st->rs->rules[st->rule].svc;
	if (s->kind != TUN_SVC_ENDPOINTS ||
	    (uint32_t)st->tries + 1 >= MIN(s->neps, (uint32_t)EP_TRIES))
		return false;
	uint32_t i = 0;
	while (i < s->neps && memcmp(&s->eps[i], &st->addr, sizeof(st->addr)))
		i++;
	st->tries++;
	st->addr = s->eps[i < s->neps ? (i + 1) % s->neps : 0];
	st->addr_set = true;
	svc_close(st);
	st->state = S_NEW;
	st_start(st);
	return true;
}

/* A kept-alive connection the service had closed (the keep-alive race):
 * nothing of the answer came and no body byte was taken, so the request
 * goes again on a new connection. */
static bool st_stale(const tstream *st)
{
	return st->reused && !st->body_written && st->rstate == RS_HEAD &&
	       !st->rb_len && !st->responded;
}

static void st_retry_fresh(tstream *st)
{
	svc_close(st);
	st->reused = false;
	st->fresh = true;
	st->svc_eof = false;
	st->req_sent = false;
	st->head_off = 0;
	st->chdr_len = st->chdr_off = 0;
	st->crlf_left = 0;
	st->chunk_left = 0;
	st->term_off = 0;
	st->state = S_NEW;
	st_start(st);
}

static void st_run(tstream *st)
{
	if (st->dead)
		return;
	if (st->gone) {
		st_kill(st);
		return;
	}
	tun *x = st->c->x;
	if (st->state == S_NEW)
		st_start(st);
	if (st->state == S_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(st->io.fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err == EINPROGRESS || err == EALREADY)
			return;
		if (err && st_next_endpoint(st)) {
			st_run(st);
			return;
		}
		if (err) {
			local_answer(st, 502,
				     "meridian tunnel connector %s: service %s "
				     "refused the connection (%s)",
				     x->name, svc_text(st), strerror(err));
			return;
		}
		/* connected: is it? a zero-byte send tells without side
		 * effects */
		if (send(st->io.fd, "", 0, MSG_NOSIGNAL) < 0 &&
		    (errno == EAGAIN || errno == ENOTCONN))
			return;
		st->state = S_ACTIVE;
		core_timer_after(&x->loop, &st->timer, SVC_HEAD_MS);
	}
	if (st->state != S_ACTIVE)
		return;
	size_t before = st->head_off + st->rq.start + st->term_off;
	int w = write_side(st);
	if (st->rstate == RS_HEAD &&
	    st->head_off + st->rq.start + st->term_off != before)
		/* the head timeout runs from the last request byte sent:
		 * a long upload is not a slow answer */
		core_timer_after(&x->loop, &st->timer, SVC_HEAD_MS);
	if (w < 0 && w != -EAGAIN && st_stale(st)) {
		st_retry_fresh(st);
		st_run(st);
		return;
	}
	if (w < 0 && w != -EAGAIN) {
		/* The service stopped reading (it may have answered): the
		 * rest of the request is dropped, its answer still read. */
		st->req_sent = true;
		drop_request(st);
	}
	read_side(st);
}

/* --- h2 callbacks --------------------------------------------------------- */

static bool field_is(const h2_field *f, const char *name)
{
	size_t n = strlen(name);
	return f->name.len == n && !memcmp(f->name.p, name, n);
}

static int on_request(void *ud, int32_t sid, const h2_req *req, void **sud)
{
	tconn *c = ud;
	tun *x = c->x;
	tstream *st = xcalloc(1, sizeof(*st));
	st->c = c;
	st->sid = sid;
	st->io.fd = -1;
	core_timer_init(&st->timer, st_timeout);
	st->next = c->streams;
	if (st->next)
		st->next->prev = st;
	c->streams = st;
	*sud = st;
	st->head_req =
	    req->method.len == 4 && !memcmp(req->method.p, "HEAD", 4);
	for (size_t i = 0; i < req->nfields; i++)
		if (field_is(&req->fields[i], "upgrade") ||
		    field_is(&req->fields[i], ":protocol"))
			st->upgrade = true;
	st->rs = x->rs;
	tun_ruleset_ref(st->rs);
	int m =
	    tun_ingress_match(st->rs->rules, st->rs->nrules, req->authority.p,
			      req->authority.len, req->path.p, req->path.len);
	st->rule = m < 0 ? (int)st->rs->nrules - 1 : m;
	const tun_service *svc = &st->rs->rules[st->rule].svc;
	log_debug("tunnel: stream %d %.*s %.*s%.*s -> %s", (int)sid,
		  (int)req->method.len, req->method.p, (int)req->authority.len,
		  req->authority.p, (int)req->path.len, req->path.p, svc->text);
	if ((svc->kind == TUN_SVC_HTTP ||
	     (svc->kind == TUN_SVC_ENDPOINTS && svc->neps)) &&
	    !st->upgrade) {
		char buf[HEAD_CAP];
		int n = h2_req_to_h1(req, buf, sizeof(buf), &st->chunked);
		if (n >= 0) {
			st->head = xmalloc((size_t)n);
			memcpy(st->head, buf, (size_t)n);
			st->head_len = (size_t)n;
		}
	}
	queue(st);
	return 0;
}

static int on_data(void *ud, int32_t sid, void *sud, const uint8_t *p,
		   size_t len)
{
	tconn *c = ud;
	tstream *st = sud;
	if (st->drop_req || st->dead) {
		(void)h2_session_consume(c->sess, sid, len);
		return 0;
	}
	if (!len)
		return 0;
	/* bounded by the stream's window: bytes are consumed only once
	 * written to the service */
	core_bq_put(&st->rq, p, len, 16384);
	queue(st);
	return 0;
}

static int on_request_end(void *ud, int32_t sid, void *sud, const h2_field *t,
			  size_t n)
{
	tstream *st = sud;
	(void)ud;
	(void)sid;
	(void)t;
	(void)n; /* request trailers are not forwarded */
	st->req_ended = true;
	queue(st);
	return 0;
}

static void on_close(void *ud, int32_t sid, void *sud, uint32_t code)
{
	tconn *c = ud;
	tstream *st = sud;
	if (code && !st->dead)
		log_debug("tunnel: edge %s: stream %d reset (%u)", edge_text(c),
			  (int)sid, code);
	st->gone = true;
	if (!st->dead) {
		/* its fd goes now; the struct after the batch */
		svc_close(st);
		queue(st);
	}
}

static void on_refused(void *ud, int status)
{
	tconn *c = ud;
	log_info("tunnel: edge %s sent a request refused by HTTP/2 (%d)",
		 edge_text(c), status);
}

static ssize_t read_body(void *ud, int32_t sid, void *sud, uint8_t *buf,
			 size_t len, bool *eof)
{
	tstream *st = sud;
	(void)ud;
	(void)sid;
	size_t n = MIN(ob_len(st), len);
	if (n) {
		bool was_full = st->ob_end == OB_CAP;
		memcpy(buf, st->ob + st->ob_start, n);
		st->ob_start += n;
		if (was_full || st->rb_len)
			queue(st); /* room for more of the service's bytes */
	}
	if (!ob_len(st) && st->rstate == RS_DONE) {
		*eof = true;
		return (ssize_t)n;
	}
	if (!n) {
		st->deferred = true;
		return H2_DEFERRED;
	}
	return (ssize_t)n;
}

static uint64_t now_cb(void *ud)
{
	return ((tconn *)ud)->x->loop.now;
}

/* --- edge connections ----------------------------------------------------- */

static void conn_timer_rearm(tconn *c)
{
	tun *x = c->x;
	if (c->state == C_H2) {
		uint64_t d = MIN(c->last_tx + PING_MS, c->last_rx + DEAD_MS);
		core_timer_set(&x->loop, &c->timer, MAX(d, x->loop.now));
	}
}

static void all_off_check(tun *x)
{
	if (!x->draining)
		return;
	for (size_t i = 0; i < x->nconns; i++)
		if (x->conns[i].state != C_OFF)
			return;
	x->loop.stop = true;
}

/* Close the transport and drop every stream; no reconnect decision. */
static void conn_reset(tconn *c)
{
	tun *x = c->x;
	while (c->streams)
		st_kill(c->streams);
	c->runq = NULL;
	if (c->sess && x->live)
		atomic_fetch_sub(&x->live->up, 1);
	if (c->sess) {
		h2_session_free(c->sess); /* calls no callback */
		c->sess = NULL;
	}
	if (c->tls_live) {
		(void)tls_conn_shutdown(&c->tls);
		tls_conn_free(&c->tls);
		c->tls_live = false;
	}
	if (c->io.fd >= 0) {
		close(c->io.fd);
		c->io.fd = -1;
	}
	c->olen = c->ooff = 0;
	c->rd_done = c->goaway = false;
	c->hlen = c->hoff = 0;
	c->hello_sent = false;
	c->refused_status = 0;
	core_timer_cancel(&x->loop, &c->timer);
}

/* The connection ended (why: for the log); re-dial after the backoff. */
static void conn_lost(tconn *c, const char *why)
{
	tun *x = c->x;
	bool was_up = c->state == C_H2;
	bool refused = c->refused_status != 0;
	uint64_t up = was_up ? x->loop.now - c->since : 0;
	conn_reset(c);
	if (x->draining) {
		if (was_up)
			log_info("tunnel: edge %s #%d: closed (%s)",
				 edge_text(c), c->slot, why);
		c->state = C_OFF;
		all_off_check(x);
		return;
	}
	uint64_t d = tun_backoff_lost(&c->backoff, up, rnd_next(x));
	if (refused)
		; /* refused_done logs it, with the status */
	else if (was_up)
		log_warn("tunnel: edge %s #%d: disconnected after %.1f s: %s; "
			 "reconnecting in %.1f s",
			 edge_text(c), c->slot, (double)up / 1000, why,
			 (double)d / 1000);
	else
		log_warn("tunnel: edge %s #%d: connection failed: %s; "
			 "retrying in %.1f s",
			 edge_text(c), c->slot, why, (double)d / 1000);
	c->state = C_WAIT;
	core_timer_after(&x->loop, &c->timer, d);
}

static void conn_io(core_io *io, uint32_t events)
{
	tconn *c = container_of(io, tconn, io);
	(void)events;
	conn_run(c);
}

static void conn_dial(tconn *c)
{
	tun *x = c->x;
	const tun_edge_addr *ea = &x->cfg->edges[c->edge];
	bool in_progress = false;
	int fd = core_sock_connect((const struct sockaddr *)&ea->ss, ea->len,
				   &in_progress);
	c->since = x->loop.now;
	if (fd < 0) {
		c->state = C_CONNECTING; /* for conn_lost's bookkeeping */
		char why[128];
		snprintf(why, sizeof(why), "connect: %s", strerror(-fd));
		conn_lost(c, why);
		return;
	}
	c->io.fd = fd;
	c->io.cb = conn_io;
	c->state = C_CONNECTING;
	core_timer_after(&x->loop, &c->timer, HS_TIMEOUT_MS);
	if (core_loop_add(&x->loop, &c->io, false) < 0) {
		conn_lost(c, "epoll_ctl failed");
		return;
	}
	conn_run(c);
}

static void conn_timer(core_timer *t)
{
	tconn *c = container_of(t, tconn, timer);
	tun *x = c->x;
	switch (c->state) {
	case C_WAIT:
		conn_dial(c);
		return;
	case C_H2:
		if (x->loop.now - c->last_rx >= DEAD_MS) {
			conn_lost(c, "nothing from the edge for the liveness "
				     "timeout (45 s)");
			return;
		}
		if (x->loop.now - c->last_tx >= PING_MS) {
			(void)h2_session_ping(c->sess);
			c->last_tx = x->loop.now; /* once per quiet period */
			mark(c);
		}
		conn_timer_rearm(c);
		return;
	case C_OFF:
		return;
	default:
		conn_lost(c, c->state == C_CONNECTING ? "TCP connect timed out"
			     : c->state == C_TLS ? "TLS handshake timed out"
						 : "no answer to the hello");
		return;
	}
}

static void build_hello(tconn *c)
{
	tun *x = c->x;
	const tun_config *cfg = x->cfg;
	int n = snprintf(c->hello, sizeof(c->hello),
			 "GET /.meridian/tunnel/v1 HTTP/1.1\r\n"
			 "Host: %s\r\n"
			 "Authorization: Bearer %s\r\n"
			 "Meridian-Tunnel: %s\r\n"
			 "Meridian-Connector: %s\r\n"
			 "Connection: Upgrade\r\n"
			 "Upgrade: meridian-tunnel/1\r\n"
			 "\r\n",
			 cfg->server_name ? cfg->server_name
					  : cfg->edges[c->edge].text,
			 cfg->token, cfg->tunnel, x->name);
	c->hlen = (size_t)MIN(n, (int)sizeof(c->hello) - 1);
	c->hoff = 0;
}

static int h2_start(tconn *c)
{
	h2_settings st;
	h2_settings_default(&st);
	/* the edge multiplexes all its clients here: a service that does
	 * not take its upload must not stall the other streams */
	st.stream_window_only = true;
	h2_callbacks cb = {
	    .on_request = on_request,
	    .on_data = on_data,
	    .on_request_end = on_request_end,
	    .on_close = on_close,
	    .on_refused = on_refused,
	    .read_body = read_body,
	    .now_ms = now_cb,
	};
	if (h2_session_new(&st, &cb, c, &c->sess) < 0)
		return -ENOMEM;
	if (c->x->live)
		atomic_fetch_add(&c->x->live->up, 1);
	c->state = C_H2;
	c->since = c->last_rx = c->last_tx = c->x->loop.now;
	c->olen = c->ooff = 0;
	log_info("tunnel: edge %s #%d: connected (%s), tunnel %s up",
		 edge_text(c), c->slot, tls_conn_version(&c->tls),
		 c->x->cfg->tunnel);
	if (c->x->draining) {
		(void)h2_session_drain(c->sess);
		c->goaway = true;
	}
	return 0;
}

/* The hello's answer so far in c->hello[0..hlen). Returns 1 when the
 * connection became HTTP/2, 0 to wait, -1 after conn_lost. */
static int hello_answer(tconn *c)
{
	http1_response *resp = &c->x->resp;
	http1_limits lim = {.max_head_bytes = HELLO_CAP, .max_headers = 64};
	if (c->state == C_HELLO) {
		int r = http1_parse_response(c->hello, c->hlen, &lim,
					     HTTP_M_GET, resp);
		if (r < 0) {
			conn_lost(c, "the edge's answer is not HTTP/1.1");
			return -1;
		}
		if (r == 0) {
			if (c->hlen == HELLO_CAP) {
				conn_lost(c, "the edge's answer is too long");
				return -1;
			}
			return 0;
		}
		if (resp->status == 101) {
			const http1_header *u = http1_find_header(
			    resp->headers, resp->nheaders, "upgrade");
			if (!u || u->value.len != 17 ||
			    strncasecmp(u->value.p, "meridian-tunnel/1", 17)) {
				conn_lost(c, "101 without Upgrade: "
					     "meridian-tunnel/1");
				return -1;
			}
			size_t rest = c->hlen - (size_t)r;
			if (h2_start(c) < 0) {
				conn_lost(c, "out of memory");
				return -1;
			}
			if (rest) {
				c->last_rx = c->x->loop.now;
				if (h2_session_recv(c->sess,
						    (uint8_t *)c->hello + r,
						    rest) < 0)
					c->rd_done = true;
			}
			return 1;
		}
		c->refused_status = resp->status;
		c->state = C_REFUSED;
		memmove(c->hello, c->hello + r, c->hlen - (size_t)r);
		c->hlen -= (size_t)r;
		c->hoff = resp->body == HTTP1_BODY_LENGTH
			      ? (size_t)MIN(resp->content_length, HELLO_CAP - 1)
			      : HELLO_CAP - 1;
	}
	return 0;
}

/* C_REFUSED: the body (a one-line text) is complete or the edge closed. */
static void refused_done(tconn *c)
{
	tun *x = c->x;
	size_t n = MIN(c->hlen, c->hoff);
	char *nl = memchr(c->hello, '\n', n);
	if (nl)
		n = (size_t)(nl - c->hello);
	while (n && (c->hello[n - 1] == '\r' || c->hello[n - 1] == ' '))
		n--;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)c->hello[i] < ' ' ||
		    (unsigned char)c->hello[i] >= 0x7f)
			c->hello[i] = '?';
	int status = c->refused_status;
	char line[160];
	snprintf(line, sizeof(line), "%.*s", (int)MIN(n, 120), c->hello);
	/* the delay comes from conn_lost: log after it */
	conn_lost(c, "refused");
	if (c->state == C_WAIT)
		log_warn("tunnel: edge %s #%d: refused the tunnel: %d %s; "
			 "retrying in %.1f s",
			 edge_text(c), c->slot, status, line,
			 (double)(c->timer.deadline - x->loop.now) / 1000);
	else
		log_warn("tunnel: edge %s #%d: refused the tunnel: %d %s",
			 edge_text(c), c->slot, status, line);
}

/* Handshake phases. Returns true when the loop should go on (now H2). */
static bool conn_setup(tconn *c)
{
	tun *x = c->x;
	for (int round = 0; round < MAX_STEP_ROUNDS; round++) {
		switch (c->state) {
		case C_CONNECTING: {
			int err = 0;
			socklen_t el = sizeof(err);
			if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err,
				       &el) < 0)
				err = errno;
			if (err) {
				char why[128];
				snprintf(why, sizeof(why), "connect: %s",
					 strerror(err));
				conn_lost(c, why);
				return false;
			}
			if (send(c->io.fd, "", 0, MSG_NOSIGNAL) < 0 &&
			    (errno == EAGAIN || errno == ENOTCONN))
				return false; /* still connecting */
			const tun_edge_addr *ea = &x->cfg->edges[c->edge];
			if (tls_conn_init_client(&c->tls, x->tls, c->io.fd,
						 x->cfg->server_name, ea->ip,
						 NULL) < 0) {
				conn_lost(c, "out of memory");
				return false;
			}
			tls_conn_set_bulk(&c->tls);
			c->tls_live = true;
			c->state = C_TLS;
			break;
		}
		case C_TLS: {
			int r = tls_conn_handshake(&c->tls);
			if (r == TLS_WANT_READ || r == TLS_WANT_WRITE)
				return false;
			if (r < 0) {
				const char *why = tls_conn_error(&c->tls);
				const char *v = tls_conn_verify_error(&c->tls);
				char names[384], buf[768];
				const char *vd = tls_conn_verify_detail(
				    &c->tls, names, sizeof(names));
				snprintf(buf, sizeof(buf), "TLS: %s%s%s%s",
					 why ? why : "handshake failed",
					 v ? ": " : "", v ? v : "", vd);
				conn_lost(c, buf);
				return false;
			}
			build_hello(c);
			c->state = C_HELLO;
			break;
		}
		case C_HELLO:
			if (!c->hello_sent) {
				ssize_t w =
				    tls_conn_write(&c->tls, c->hello + c->hoff,
						   c->hlen - c->hoff);
				if (w == TLS_WANT_READ || w == TLS_WANT_WRITE)
					return false;
				if (w < 0) {
					conn_lost(c, "TLS write failed");
					return false;
				}
				c->hoff += (size_t)w;
				if (c->hoff < c->hlen)
					continue;
				/* the token is not kept in memory longer */
				explicit_bzero(c->hello, sizeof(c->hello));
				c->hello_sent = true;
				c->hlen = c->hoff = 0;
			}
			/* fall through */
		case C_REFUSED: {
			size_t cap = HELLO_CAP - c->hlen;
			ssize_t n = cap ? tls_conn_read(&c->tls,
							c->hello + c->hlen, cap)
					: 0;
			if (n == TLS_WANT_READ || n == TLS_WANT_WRITE)
				return false;
			if (n > 0) {
				c->hlen += (size_t)n;
				if (c->state == C_HELLO) {
					int r = hello_answer(c);
					if (r < 0)
						return false;
					if (r > 0)
						return true;
				}
				if (c->state == C_REFUSED &&
				    c->hlen >= c->hoff) {
					refused_done(c);
					return false;
				}
				continue;
			}
			if (c->state == C_REFUSED) {
				refused_done(c);
				return false;
			}
			conn_lost(c, n == TLS_CLOSED
					 ? "the edge closed the connection "
					   "before answering the hello"
					 : "TLS read failed");
			return false;
		}
		default:
			return c->state == C_H2;
		}
	}
	return false;
}

/* C_H2: pump streams, write, read, until nothing moves. */
static void conn_h2(tconn *c)
{
	tun *x = c->x;
	for (int round = 0; round < MAX_STEP_ROUNDS; round++) {
		bool progress = false;
		run_queue(c);
		if (c->ooff == c->olen) {
			c->ooff = c->olen = 0;
			ssize_t n = h2_session_send(c->sess, c->out, OUT_CAP);
			if (n < 0) {
				conn_lost(c, "HTTP/2 session failed");
				return;
			}
			c->olen = (size_t)n;
		}
		if (c->ooff < c->olen) {
			ssize_t w = tls_conn_write(&c->tls, c->out + c->ooff,
						   c->olen - c->ooff);
			if (w > 0) {
				c->ooff += (size_t)w;
				c->last_tx = x->loop.now;
				progress = true;
			} else if (w != TLS_WANT_READ && w != TLS_WANT_WRITE) {
				conn_lost(c, w == TLS_CLOSED
						 ? "the edge closed the "
						   "connection"
						 : "TLS write failed");
				return;
			}
		}
		if (c->ooff == c->olen && !c->rd_done) {
			ssize_t n = tls_conn_read(&c->tls, c->in, IN_CAP);
			if (n > 0) {
				c->last_rx = x->loop.now;
				progress = true;
				if (h2_session_recv(c->sess, c->in, (size_t)n) <
				    0) {
					const char *why =
					    h2_session_error(c->sess);
					log_warn("tunnel: edge %s #%d: "
						 "HTTP/2 error: %s",
						 edge_text(c), c->slot,
						 why ? why : "protocol error");
					c->rd_done = true;
				}
			} else if (n == TLS_CLOSED) {
				conn_lost(c, "the edge closed the connection");
				return;
			} else if (n == TLS_ERROR) {
				const char *why = tls_conn_error(&c->tls);
				conn_lost(c, why ? why : "TLS read failed");
				return;
			}
		}
		bool flushed = c->ooff == c->olen &&
			       !h2_session_want_write(c->sess) && !c->runq;
		if (flushed &&
		    (c->rd_done || h2_session_done(c->sess) ||
		     (c->goaway && h2_session_streams(c->sess) == 0))) {
			conn_lost(c, c->rd_done	 ? "HTTP/2 error"
				     : c->goaway ? "drained"
						 : "the edge ended the "
						   "session (GOAWAY)");
			return;
		}
		if (!progress && !c->runq)
			break;
		if (round == MAX_STEP_ROUNDS - 1)
			mark(c); /* not drained (edge-triggered): again after
				    the batch */
	}
	conn_timer_rearm(c);
}

static void conn_run(tconn *c)
{
	if (c->state == C_OFF || c->state == C_WAIT)
		return;
	if (c->state != C_H2 && !conn_setup(c))
		return;
	if (c->state == C_H2)
		conn_h2(c);
}

/* --- the loop ---------------------------------------------------------------
 */

static void post_batch(core_loop *l, void *arg)
{
	tun *x = arg;
	(void)l;
	/* Each connection dirty now runs once; those marked again go on
	 * the next round, after a look at the other events. */
	tconn *list = x->dirty;
	x->dirty = NULL;
	while (list) {
		tconn *c = list;
		list = c->dnext;
		c->dnext = NULL;
		c->dirty = false;
		conn_run(c);
	}
	if (x->dirty) /* the next round without waiting for an event */
		core_timer_after(&x->loop, &x->kick, 0);
	while (x->grave) {
		tstream *st = x->grave;
		x->grave = st->gnext;
		st_free(st);
	}
}

static void kick(core_timer *t)
{
	(void)t; /* post_batch runs after the timers */
}

static void drain_start(tun *x)
{
	if (x->draining)
		return;
	x->draining = true;
	log_info("tunnel: draining: GOAWAY to the edges, up to %.1f s for "
		 "the streams in flight",
		 (double)x->cfg->drain_timeout_ms / 1000);
	core_timer_after(&x->loop, &x->drain_timer, x->cfg->drain_timeout_ms);
	for (size_t i = 0; i < x->nconns; i++) {
		tconn *c = &x->conns[i];
		if (c->state == C_H2) {
			(void)h2_session_drain(c->sess);
			c->goaway = true;
			mark(c);
		} else if (c->state != C_OFF) {
			conn_reset(c);
			c->state = C_OFF;
		}
	}
	all_off_check(x);
}

static void drain_timeout(core_timer *t)
{
	tun *x = container_of(t, tun, drain_timer);
	size_t left = 0;
	for (size_t i = 0; i < x->nconns; i++) {
		tconn *c = &x->conns[i];
		if (c->state == C_H2 && c->sess)
			left += h2_session_streams(c->sess);
		conn_reset(c);
		c->state = C_OFF;
	}
	log_warn("tunnel: drain timeout: %zu stream%s cut short", left,
		 left == 1 ? "" : "s");
	x->loop.stop = true;
}

static void on_signal(core_io *io, uint32_t events)
{
	tun *x = container_of(io, tun, sig_io);
	(void)events;
	struct signalfd_siginfo si;
	while (read(x->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo != SIGTERM && si.ssi_signo != SIGINT)
			continue;
		if (x->draining) {
			log_warn("tunnel: %s again: stopping now",
				 si.ssi_signo == SIGTERM ? "SIGTERM"
							 : "SIGINT");
			drain_timeout(&x->drain_timer);
			return;
		}
		log_info("tunnel: %s received",
			 si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
		drain_start(x);
	}
}

int tun_resolve_services(const tun_config *cfg, tun_svc_addr *out, cfg_diag *d)
{
	cfg_errs e = {.file = cfg->file};
	for (size_t i = 0; i < cfg->nrules; i++) {
		const tun_service *s = &cfg->rules[i].svc;
		out[i] = (tun_svc_addr){0};
		if (s->kind != TUN_SVC_HTTP)
			continue;
		/* the same service as an earlier rule: resolved once */
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++) {
			const tun_service *o = &cfg->rules[j].svc;
			if (o->kind == TUN_SVC_HTTP && o->port == s->port &&
			    !strcmp(o->host, s->host) && out[j].len) {
				out[i] = out[j];
				seen = true;
			}
		}
		if (seen)
			continue;
		struct addrinfo hints = {
		    .ai_socktype = SOCK_STREAM,
		    .ai_flags = s->host_is_ip ? AI_NUMERICHOST : 0};
		struct addrinfo *res = NULL;
		char port[8];
		snprintf(port, sizeof(port), "%u", s->port);
		int rc = getaddrinfo(s->host, port, &hints, &res);
		if (rc != 0 || !res) {
			cfg_errs_add(&e, cfg->rules[i].line, cfg->rules[i].col,
				     "ingress[%zu].service: cannot resolve "
				     "'%s': %s",
				     i, s->host, gai_strerror(rc));
			continue;
		}
		memcpy(&out[i].ss, res->ai_addr, res->ai_addrlen);
		out[i].len = res->ai_addrlen;
		freeaddrinfo(res);
	}
	if (!e.n)
		return 0;
	if (d)
		cfg_errs_flush(&e, d);
	else
		cfg_errs_clear(&e);
	return -1;
}

static void test_timers(void)
{
	const char *e = getenv("MERIDIAN_TUNNEL_TEST_TIMERS");
	unsigned v[4];
	if (e && sscanf(e, "%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3]) == 4 &&
	    v[0] && v[1] && v[2] && v[3]) {
		PING_MS = v[0];
		DEAD_MS = v[1];
		SVC_CONNECT_MS = v[2];
		SVC_HEAD_MS = v[3];
		log_warn("tunnel: test timers: ping %u ms, dead %u ms, connect "
			 "%u ms, head %u ms",
			 v[0], v[1], v[2], v[3]);
	}
}

/* --- live rule sets -------------------------------------------------------
 */

tun_live *tun_live_new(void)
{
	tun_live *l = xcalloc(1, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
	l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->efd < 0) {
		pthread_mutex_destroy(&l->lock);
		free(l);
		return NULL;
	}
	return l;
}

void tun_live_free(tun_live *l)
{
	if (!l)
		return;
	tun_ruleset_unref(l->pending);
	close(l->efd);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

void tun_live_publish(tun_live *l, tun_ruleset *rs)
{
	pthread_mutex_lock(&l->lock);
	tun_ruleset *old = l->pending;
	l->pending = rs;
	pthread_mutex_unlock(&l->lock);
	/* Never taken by the loop: only this thread held it. */
	tun_ruleset_unref(old);
	uint64_t one = 1;
	(void)!write(l->efd, &one, sizeof(one));
}

unsigned tun_live_up(tun_live *l)
{
	return atomic_load(&l->up);
}

static void on_live(core_io *io, uint32_t events)
{
	tun *x = container_of(io, tun, live_io);
	(void)events;
	uint64_t v;
	while (read(x->live->efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
	pthread_mutex_lock(&x->live->lock);
	tun_ruleset *rs = x->live->pending;
	x->live->pending = NULL;
	pthread_mutex_unlock(&x->live->lock);
	if (!rs)
		return;
	bool first = !x->rs;
	/* Streams in flight hold their own reference to the old set. */
	tun_ruleset_unref(x->rs);
	x->rs = rs;
	log_info("tunnel: ingress rules from %s: %zu rule%s", rs->origin,
		 rs->nrules, rs->nrules == 1 ? "" : "s");
	if (first && !x->draining) /* the edges were waiting for them */
		for (size_t i = 0; i < x->nconns; i++)
			if (x->conns[i].state == C_WAIT)
				core_timer_after(&x->loop, &x->conns[i].timer,
						 0);
}

int tun_connector_run(const tun_config *cfg)
{
	tun_svc_addr *svc = xcalloc(cfg->nrules, sizeof(*svc));
	cfg_diag d = {0};
	if (tun_resolve_services(cfg, svc, &d) < 0) {
		for (size_t i = 0; i < d.n; i++)
			log_error("%s", d.msgs[i]);
		cfg_diag_free(&d);
		free(svc);
		return 1;
	}
	tun_ruleset *rs =
	    tun_ruleset_new(NULL, cfg->rules, cfg->nrules, svc, "the file");
	int status = tun_connector_run_live(cfg, rs, NULL);
	free(svc);
	return status;
}

int tun_connector_run_live(const tun_config *cfg, tun_ruleset *rs,
			   tun_live *live)
{
	tun *x = xcalloc(1, sizeof(*x));
	int status = 1;
	char host[256] = "", defname[320];
	x->cfg = cfg;
	x->sfd = -1;
	x->rs = rs;
	for (size_t i = 0; i < IDLE_MAX; i++)
		x->idle[i].io.fd = -1;
	x->live = live;
	test_timers();
	if (cfg->name) {
		x->name = cfg->name;
	} else {
		if (gethostname(host, sizeof(host) - 1) < 0)
			strcpy(host, "connector");
		for (char *p = host; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f)
				*p = '-';
		snprintf(defname, sizeof(defname), "%s-%ld", host,
			 (long)getpid());
		x->name = defname;
	}
	char err[512];
	if (tls_client_new(cfg->ca, true, &x->tls, err, sizeof(err)) < 0) {
		log_error("tunnel: %s: %s", cfg->ca ? cfg->ca : "CA store",
			  err);
		goto out;
	}
	if (core_random_key(&x->rnd, sizeof(x->rnd)) < 0 || !x->rnd)
		x->rnd = core_now_ns() | 1;
	if (core_loop_init(&x->loop) < 0) {
		log_error("tunnel: epoll: %s", strerror(errno));
		goto out;
	}
	x->loop.post = post_batch;
	x->loop.post_arg = x;
	core_timer_init(&x->drain_timer, drain_timeout);
	core_timer_init(&x->kick, kick);

	signal(SIGPIPE, SIG_IGN);
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	x->sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (x->sfd < 0) {
		log_error("tunnel: signalfd: %s", strerror(errno));
		goto out_loop;
	}
	x->sig_io.fd = x->sfd;
	x->sig_io.cb = on_signal;
	(void)core_loop_add(&x->loop, &x->sig_io, true);
	if (live) {
		x->live_io.fd = live->efd;
		x->live_io.cb = on_live;
		(void)core_loop_add(&x->loop, &x->live_io, true);
		on_live(&x->live_io, 0); /* one published before the start */
	}

	x->nconns = cfg->nedges * cfg->conns_per_edge;
	x->conns = xcalloc(x->nconns, sizeof(*x->conns));
	for (size_t i = 0; i < x->nconns; i++) {
		tconn *c = &x->conns[i];
		c->x = x;
		c->edge = (int)(i / cfg->conns_per_edge);
		c->slot = (int)(i % cfg->conns_per_edge);
		c->io.fd = -1;
		c->out = xmalloc(OUT_CAP);
		c->in = xmalloc(IN_CAP);
		core_timer_init(&c->timer, conn_timer);
		c->state = C_WAIT;
		if (x->rs) /* else on_live dials with the first set */
			core_timer_after(&x->loop, &c->timer, 0);
	}
	char rules[64] = "dialled once the first ingress rules are ready";
	if (x->rs)
		snprintf(rules, sizeof(rules), "%zu ingress rule%s",
			 x->rs->nrules, x->rs->nrules == 1 ? "" : "s");
	log_info("tunnel: connector %s for tunnel %s: %zu edge%s x %u "
		 "connection%s, %s",
		 x->name, cfg->tunnel, cfg->nedges, cfg->nedges == 1 ? "" : "s",
		 cfg->conns_per_edge, cfg->conns_per_edge == 1 ? "" : "s",
		 rules);
	if (core_loop_run(&x->loop) < 0) {
		log_error("tunnel: event loop failed: %s", strerror(errno));
		status = 1;
	} else {
		log_info("tunnel: drained; exiting");
		status = 0;
	}
	for (size_t i = 0; i < x->nconns; i++) {
		conn_reset(&x->conns[i]);
		free(x->conns[i].out);
		free(x->conns[i].in);
	}
	post_batch(&x->loop, x);
	for (size_t i = 0; i < IDLE_MAX; i++)
		idle_close(&x->idle[i]);
	free(x->conns);
	close(x->sfd);
	if (live)
		(void)core_loop_del(&x->loop, &x->live_io);
out_loop:
	core_loop_destroy(&x->loop);
out:
	tls_client_free(x->tls);
	tun_ruleset_unref(x->rs);
	free(x);
	return status;
}
