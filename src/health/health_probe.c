/* health_probe.c - non-blocking tcp/http/https/smtp checks; see
 * health_probe.h.
 *
 * A probe is a small state machine over one socket (one per redirect hop):
 * CONNECT -> [TLS] -> SEND -> HEAD -> BODY for http(s), CONNECT -> SMTP for
 * smtp, CONNECT alone for tcp. The socket is registered edge-triggered, so
 * pump() works each phase until the socket would block. Every exit goes
 * through finish(), which releases everything and then calls the owner's
 * callback as its very last action: the owner may recycle the probe.
 *
 * Buffer layout: the response head is read into buf; once parsed, the body
 * bytes kept (at most HEALTH_BODY_MAX, de-chunked) move to buf->data[0..
 * body_len) and each later read lands right after them and is folded in
 * place (the de-chunked output never overtakes the input).
 */
#include "health/health_probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config/cfg_values.h"
#include "core/core_ring.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "http/px_head.h"
#include "tls/tls.h"

/* Head (the parser stops at 16 KiB) + 10 KiB of body + a read's worth. */
#define PROBE_BUF_SIZE 32768
/* Buffers kept for reuse while idle; the rest go back to malloc. */
#define PROBE_BUF_FREE 64

enum {
	P_IDLE = 0,
	P_DEFER, /* failed before any I/O: deliver from the timer */
	P_CONNECT,
	P_TLS,
	P_SEND,
	P_HEAD,
	P_BODY,
	P_SMTP,
};

enum { SMTP_BANNER = 0, SMTP_EHLO, SMTP_HELO, SMTP_QUIT };

/* Step results: progress, would block, probe finished (do not touch p). */
enum { STEP_AGAIN = 1, STEP_WAIT = 0, STEP_DONE = -1 };

/* A kept connection served by the ring. Owned by the ctx: it outlives its
 * idle slot (k NULL) until its last operation has completed. */
typedef struct health_rconn {
	core_op recv_op; /* the multishot receive */
	core_op send_op; /* the request */
	health_probe_ctx *ctx;
	health_idle *k; /* NULL once the slot let go of it */
	char *req;	/* the slot's request head, its own copy */
	uint32_t req_len;
	uint8_t inflight; /* operations the kernel still holds */
	bool recv_armed;
	/* A descriptor kept open until inflight is 0, when the ring could
	 * not take the cancel (see ring_let_go); else -1. */
	int fd_after;
	struct health_rconn *free_next, *all_next;
} health_rconn;

/* TLS handshakes of https checks, process-wide (health_probe_tls_counts). */
static _Atomic uint64_t n_tls_full, n_tls_resumed;

static void io_cb(core_io *io, uint32_t events);
static void timer_cb(core_timer *t);
static int connect_to(health_probe *p);
static void ring_let_go(health_probe_ctx *c, health_idle *k);
static void ring_adopt(health_probe_ctx *c, health_idle *k);

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- pure helpers ---- */

static const char *header_value(const cfg_header *h, size_t n, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < n; i++)
		if (strlen(h[i].name) == nl &&
		    core_strncaseeq(h[i].name, name, nl) == 0 &&
		    h[i].nvalues > 0)
			return h[i].values[0];
	return NULL;
}

/* A header value we may put on the wire: no CR, LF or other controls
 * (the config accepts any string; a stray newline must not inject a
 * header). */
static bool safe_value(const char *v)
{
	for (const unsigned char *s = (const unsigned char *)v; *s; s++)
		if ((*s < 0x20 && *s != '\t') || *s == 0x7f)
			return false;
	return true;
}

/* The origin's own Host override first, then the monitor's: as
 * Cloudflare documents ("a header override on an individual endpoint
 * takes precedence over one set on a monitor"), so that a check asks for
 * the same host as the origin's live traffic (App Engine, S3, Heroku
 * origins behind one monitor). */
static const char *host_override(const cfg_monitor *m, const cfg_origin *o)
{
	const char *h = px_origin_host(o);
	if (h && *h && safe_value(h))
		return h;
	h = header_value(m->headers, m->nheaders, "Host");
	if (h && *h && safe_value(h))
		return h;
	return NULL;
}

static uint16_t probe_port(const cfg_monitor *m, const cfg_origin *o)
{
	return m->port ? m->port : o->port;
}

int health_http_host(const cfg_monitor *m, const cfg_origin *o, char *buf,
		     size_t size)
{
	const char *h = host_override(m, o);
	int n;
	if (h) {
		n = snprintf(buf, size, "%s", h);
	} else if (o->tunnel) {
		/* No address to name: the tunnel's id, which the
		 * connector's ingress rules see as the host. */
		n = snprintf(buf, size, "%s", o->tunnel->id);
	} else {
		const char *a = o->address ? o->address : "";
		bool v6 = strchr(a, ':') && a[0] != '[';
		uint16_t port = probe_port(m, o);
		uint16_t def = m->type == CFG_MON_HTTPS ? 443 : 80;
		if (port == def)
			n = snprintf(buf, size, v6 ? "[%s]" : "%s", a);
		else
			n = snprintf(buf, size, v6 ? "[%s]:%u" : "%s:%u", a,
				     port);
	}
	if (n < 0 || (size_t)n >= size)
		return -ENOSPC;
	return n;
}

static bool is_ip_literal(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;
	return inet_pton(AF_INET, s, &a4) == 1 ||
	       inet_pton(AF_INET6, s, &a6) == 1;
}

bool health_tls_name(const cfg_monitor *m, const cfg_origin *o, char *buf,
		     size_t size)
{
	const char *mh = header_value(m->headers, m->nheaders, "Host");
	if (o->tls && !(mh && *mh)) {
		/* The data plane's name (cfg_origin.sni). */
		if (!o->sni || strlen(o->sni) >= size)
			return false;
		snprintf(buf, size, "%s", o->sni);
		return true;
	}
	const char *h = host_override(m, o);
	const char *src = h ? h : o->address;
	if (!src || !*src || src[0] == '[' || size == 0)
		return false;
	size_t len = strlen(src);
	const char *colon = strchr(src, ':');
	/* "name:port" loses the port; two colons is an IPv6 literal. */
	if (colon && !strchr(colon + 1, ':'))
		len = (size_t)(colon - src);
	/* "example.com." is the same name; SNI has none (RFC 6066 §3) and
	 * certificates name it without one (as cfg_origin.sni). */
	if (len > 0 && src[len - 1] == '.')
		len--;
	if (len == 0 || len >= size)
		return false;
	memcpy(buf, src, len);
	buf[len] = '\0';
	return !is_ip_literal(buf);
}

/* Fields the probe writes itself, or that would break the exchange. */
static bool skipped_header(const char *name)
{
	static const char *const skip[] = {"Host",
					   "User-Agent",
					   "Connection",
					   "Content-Length",
					   "Transfer-Encoding",
					   "Keep-Alive",
					   "Upgrade",
					   "TE"};
	size_t nl = strlen(name);
	for (size_t i = 0; i < ARRAY_LEN(skip); i++)
		if (strlen(skip[i]) == nl &&
		    core_strncaseeq(skip[i], name, nl) == 0)
			return true;
	return false;
}

/* Appends to out[*pos..size); false once it does not fit. */
static bool put(char *out, size_t size, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool put(char *out, size_t size, size_t *pos, const char *fmt, ...)
{
	if (*pos >= size)
		return false;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out + *pos, size - *pos, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size - *pos)
		return false;
	*pos += (size_t)n;
	return true;
}

static bool method_has_body(const char *method)
{
	return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	       strcmp(method, "PATCH") == 0;
}

static int http_request(const cfg_monitor *m, const cfg_origin *o,
			const char *method, const char *path, bool keep,
			char *out, size_t size)
{
	char host[512];
	size_t pos = 0;
	if (health_http_host(m, o, host, sizeof(host)) < 0)
		return -ENOSPC;
	if (!put(out, size, &pos,
		 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: " HEALTH_USER_AGENT
		 "\r\n",
		 method, path, host))
		return -ENOSPC;
	for (size_t i = 0; i < m->nheaders; i++) {
		const cfg_header *h = &m->headers[i];
		if (skipped_header(h->name))
			continue;
		for (size_t j = 0; j < h->nvalues; j++)
			if (safe_value(h->values[j]) &&
			    !put(out, size, &pos, "%s: %s\r\n", h->name,
				 h->values[j]))
				return -ENOSPC;
	}
	if (method_has_body(method) &&
	    !put(out, size, &pos, "Content-Length: 0\r\n"))
		return -ENOSPC;
	if (!put(out, size, &pos, keep ? "\r\n" : "Connection: close\r\n\r\n"))
		return -ENOSPC;
	return (int)pos;
}

int health_http_request(const cfg_monitor *m, const cfg_origin *o,
			const char *method, const char *path, char *out,
			size_t size)
{
	return http_request(m, o, method, path, false, out, size);
}

static bool target_char_ok(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

int health_redirect_path(const char *loc, size_t len, const char *cur,
			 char *out, size_t size)
{
	const char *p = loc, *end = loc + len;
	const char *hash = memchr(loc, '#', len);
	if (hash)
		end = hash;

	/* scheme "://" authority, or "//" authority: keep what follows. */
	const char *colon = memchr(p, ':', (size_t)(end - p));
	const char *slash = memchr(p, '/', (size_t)(end - p));
	if (colon && (!slash || colon < slash)) {
		size_t sl = (size_t)(colon - p);
		if (!((sl == 4 && core_strncaseeq(p, "http", 4) == 0) ||
		      (sl == 5 && core_strncaseeq(p, "https", 5) == 0)))
			return -EINVAL;
		p = colon + 1;
		if (end - p < 2 || p[0] != '/' || p[1] != '/')
			return -EINVAL;
	}
	bool absolute = false;
	if (end - p >= 2 && p[0] == '/' && p[1] == '/') {
		p += 2;
		while (p < end && *p != '/' && *p != '?')
			p++;
		absolute = true;
	}

	size_t pos = 0, n = (size_t)(end - p);
	if (absolute || (n > 0 && p[0] == '/')) {
		if (n == 0 || p[0] != '/') {
			/* "http://host" or "http://host?q": path "/" */
			if (size < 2)
				return -ENOSPC;
			out[pos++] = '/';
		}
	} else {
		/* Relative reference: cur's directory (RFC 3986 §5.2.3,
		 * without dot-segment removal: the origin resolves those);
		 * a bare "?query" keeps cur's whole path. */
		size_t cl = strcspn(cur, "?");
		if (n == 0 || p[0] != '?')
			while (cl > 0 && cur[cl - 1] != '/')
				cl--;
		if (cl == 0) {
			if (size < 2)
				return -ENOSPC;
			out[pos++] = '/';
		} else {
			if (cl >= size)
				return -ENOSPC;
			memcpy(out, cur, cl);
			pos = cl;
		}
	}
	if (n >= size - pos)
		return -ENOSPC;
	for (size_t i = 0; i < n; i++) {
		if (!target_char_ok((unsigned char)p[i]))
			return -EINVAL;
		out[pos++] = p[i];
	}
	out[pos] = '\0';
	return (int)pos;
}

static inline unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

bool health_body_contains(const char *hay, size_t n, const char *needle)
{
	size_t m = strlen(needle);
	if (m == 0)
		return true;
	if (m > n)
		return false;
	unsigned char first = lower((unsigned char)needle[0]);
	for (size_t i = 0; i + m <= n; i++) {
		if (lower((unsigned char)hay[i]) != first)
			continue;
		size_t j = 1;
		while (j < m && lower((unsigned char)hay[i + j]) ==
				    lower((unsigned char)needle[j]))
			j++;
		if (j == m)
			return true;
	}
	return false;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int health_smtp_reply(const char *buf, size_t len, int *code)
{
	size_t pos = 0;
	for (;;) {
		const char *line = buf + pos;
		const char *lf = memchr(line, '\n', len - pos);
		if (!lf) {
			/* A partial line can already be judged malformed. */
			size_t have = len - pos;
			for (size_t i = 0; i < have && i < 3; i++)
				if (!is_digit(line[i]))
					return -1;
			return 0;
		}
		size_t ll = (size_t)(lf - line);
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		if (ll < 3 || !is_digit(line[0]) || !is_digit(line[1]) ||
		    !is_digit(line[2]) ||
		    (ll > 3 && line[3] != ' ' && line[3] != '-'))
			return -1;
		pos = (size_t)(lf - buf) + 1;
		if (ll == 3 || line[3] == ' ') {
			*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
				(line[2] - '0');
			return pos > INT32_MAX ? -1 : (int)pos;
		}
	}
}

/* ---- context ---- */

int health_probe_ctx_init(health_probe_ctx *c, core_loop *loop)
{
	memset(c, 0, sizeof(*c));
	c->loop = loop;
	core_buf_pool_init(&c->bufs, PROBE_BUF_SIZE, PROBE_BUF_FREE);
	/* Parked connections hold descriptors: at most a quarter of them,
	 * as for the checker's probe slots; the rest is the data plane's. */
	struct rlimit rl;
	c->idle_max = 256;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		c->idle_max = rl.rlim_cur == RLIM_INFINITY
				  ? UINT32_MAX
				  : (uint32_t)MIN(rl.rlim_cur / 4, UINT32_MAX);
	if (gethostname(c->ehlo_name, sizeof(c->ehlo_name)) != 0 ||
	    !cfg_is_hostname(c->ehlo_name, false))
		snprintf(c->ehlo_name, sizeof(c->ehlo_name), "localhost");
	return 0;
}

/* A verifying context with a CA file (a pool's origin_tls.ca). */
struct health_ca_ctx {
	struct health_ca_ctx *next;
	char *file;
	tls_client *tls;
};

void health_probe_ctx_destroy(health_probe_ctx *c)
{
	/* The ring is gone or about to go with the loop: no completion will
	 * name these again. */
	while (c->rc_all) {
		health_rconn *n = c->rc_all->all_next;
		if (c->rc_all->fd_after >= 0)
			close(c->rc_all->fd_after);
		free(c->rc_all->req);
		free(c->rc_all);
		c->rc_all = n;
	}
	c->rc_free = NULL;
	tls_client_free(c->tls_verify);
	tls_client_free(c->tls_insecure);
	c->tls_verify = c->tls_insecure = NULL;
	while (c->tls_cas) {
		struct health_ca_ctx *n = c->tls_cas->next;
		tls_client_free(c->tls_cas->tls);
		free(c->tls_cas->file);
		free(c->tls_cas);
		c->tls_cas = n;
	}
	core_buf_pool_destroy(&c->bufs);
}

/* The client settings of a check (tls/tls_client.c, as for the data
 * plane's origin connections), made on first use and kept. NULL with err
 * set when the CA file cannot be loaded. */
static tls_client *tls_settings(health_probe_ctx *c, bool insecure,
				const char *ca, char *err, size_t errlen)
{
	tls_client **slot = insecure ? &c->tls_insecure : &c->tls_verify;
	struct health_ca_ctx *cc = NULL;
	if (!insecure && ca) {
		for (cc = c->tls_cas; cc; cc = cc->next)
			if (!strcmp(cc->file, ca))
				break;
		if (!cc) {
			cc = xcalloc(1, sizeof(*cc));
			cc->file = xstrdup(ca);
			cc->next = c->tls_cas;
			c->tls_cas = cc;
		}
		slot = &cc->tls;
	}
	if (!*slot)
		(void)tls_client_new(ca, !insecure, slot, err, errlen);
	return *slot;
}

/* ---- TLS sessions and kept TLS connections ---- */

void health_probe_tls_counts(uint64_t *full, uint64_t *resumed)
{
	*full = atomic_load_explicit(&n_tls_full, memory_order_relaxed);
	*resumed = atomic_load_explicit(&n_tls_resumed, memory_order_relaxed);
}

static bool probe_insecure(const health_probe *p)
{
	const cfg_origin_tls *ot = p->origin->tls;
	return p->mon->allow_insecure || (ot && ot->allow_insecure);
}

/* May the slot's kept TLS connection or session serve this check? Only
 * within HEALTH_TLS_REVERIFY_MS of the full handshake (monotonic clock,
 * so a stepped wall clock cannot stretch it), and, when verifying, while
 * every certificate of the chain it verified is valid (wall clock). */
static bool tls_still_valid(const health_probe *p)
{
	const health_idle *k = p->idle;
	return p->ctx->loop->now < k->tls_reverify_at &&
	       (probe_insecure(p) || core_wall_ms() < k->tls_trust_until);
}

/* The earliest notAfter, as a Unix time, among the certificates of the
 * chain OpenSSL built for this handshake (leaf, intermediates and the
 * trust anchor; it builds one even when verification fails or is off),
 * else of what the peer sent. 0 when there is no certificate. */
static int64_t chain_not_after(SSL *ssl)
{
	STACK_OF(X509) *chain = SSL_get0_verified_chain(ssl);
	if (!chain)
		chain = SSL_get_peer_cert_chain(ssl);
	int64_t first = 0;
	for (int i = 0; chain && i < sk_X509_num(chain); i++) {
		int64_t t =
		    tls_asn1_unix(X509_get0_notAfter(sk_X509_value(chain, i)));
		if (!t)
			continue;  /* unreadable */
		t = t > 0 ? t : 1; /* 0 means "none" */
		if (!first || t < first)
			first = t;
	}
	return first;
}

/* What the handshake saw of the peer's chain goes into the result and the
 * slot (later checks on the kept connection or a resumed session carry
 * it). */
static void note_chain(health_probe *p)
{
	int64_t na = chain_not_after(p->ssl);
	if (!na)
		return;
	p->res.tls_not_after = na;
	if (p->idle)
		p->idle->tls_not_after = na;
}

/* A full handshake (verified, unless allow_insecure): its connection and
 * session serve later checks for HEALTH_TLS_REVERIFY_MS at most, and a
 * verifying check only until the first certificate of the chain expires.
 * Insecure origins are handshaken afresh hourly too, so the expiry they
 * report follows a renewed certificate. A resumption verifies nothing and
 * keeps the earlier limits. */
static void note_verified_chain(health_probe *p)
{
	health_idle *k = p->idle;
	if (SSL_session_reused(p->ssl))
		return;
	note_chain(p);
	if (!k)
		return;
	k->tls_reverify_at = p->ctx->loop->now + HEALTH_TLS_REVERIFY_MS;
	if (probe_insecure(p))
		k->tls_trust_until = UINT64_MAX;
	else
		k->tls_trust_until = k->tls_not_after > 0
					 ? (uint64_t)k->tls_not_after * 1000
					 : 0;
}

/* The next handshake of k verifies afresh: no session to resume. */
static void forget_session(health_idle *k)
{
	SSL_SESSION_free(k->sess);
	k->sess = NULL;
}

/* Free ssl, first keeping its session in k when it can be resumed. The
 * shutdown flag stops SSL_free from marking the session unusable (OpenSSL
 * does that to sessions of connections closed without close_notify; a
 * fatal TLS error has marked it already, so it is not kept). */
static void tls_release(health_idle *k, SSL *ssl)
{
	if (k && SSL_is_init_finished(ssl)) {
		SSL_SESSION *s = SSL_get1_session(ssl);
		if (s && SSL_SESSION_is_resumable(s)) {
			SSL_SESSION_free(k->sess);
			k->sess = s;
			SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) |
						  SSL_SENT_SHUTDOWN);
		} else {
			SSL_SESSION_free(s);
		}
	}
	SSL_free(ssl);
}

/* Read an idle TLS connection: take in what OpenSSL handles itself
 * (session tickets). True when nothing else came (the connection may stay
 * parked): no application data, no close_notify, no error. */
static bool tls_idle_read(SSL *ssl)
{
	char junk[64];
	ERR_clear_error();
	int r = SSL_read(ssl, junk, sizeof(junk));
	bool keep = r <= 0 && SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ;
	ERR_clear_error();
	return keep;
}

/* ---- finishing ---- */

/* Close a connection whose answer was read: with an RST unless the peer
 * closed first (see health_probe.h). Closing removes it from the loop. */
static void close_fd(core_io *io, bool eof)
{
	if (io->fd < 0)
		return;
	/* Linux resets by itself when unread bytes remain; after a peer FIN
	 * a plain close leaves no TIME_WAIT on our side. */
	if (!eof) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(io->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(io->fd);
	io->fd = -1;
}

void health_idle_close(health_probe_ctx *c, health_idle *k)
{
	if (!k || k->io.fd < 0 || k->user)
		return;
	if (k->ssl) {
		tls_release(k, k->ssl);
		k->ssl = NULL;
	}
	ring_let_go(c, k);
	close_fd(&k->io, false);
	c->nidle--;
}

void health_idle_destroy(health_probe_ctx *c, health_idle *k)
{
	if (!k)
		return;
	health_idle_close(c, k);
	free(k->req);
	SSL_SESSION_free(k->sess);
	*k = (health_idle)HEALTH_IDLE_INIT;
}

/* An event on a parked connection. Nothing may arrive unasked, so bytes,
 * a FIN, an RST or an error all mean the origin closed it (or broke it):
 * close it now and let the next check connect afresh. A readable event
 * with nothing to read (an edge queued before the answer was taken) is
 * ignored; so is writability. */
static void parked_event(health_probe_ctx *c, health_idle *k, uint32_t events)
{
	if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		return;
	if (!(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
		if (k->ssl) {
			if (tls_idle_read(k->ssl))
				return;
		} else {
			char junk[64];
			ssize_t r =
			    recv(k->io.fd, junk, sizeof(junk), MSG_DONTWAIT);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				return;
		}
	}
	health_idle_close(c, k);
}

/* Park the connection of a fully read answer in p->idle: it stays on the
 * loop, so for plain http this is bookkeeping only. A record that came
 * with the answer (a session ticket) may still wait, in OpenSSL's read
 * buffer (read_ahead) or in the socket with its epoll edge spent: a TLS
 * connection is read until the socket is empty first, and parked only
 * when nothing but such records came and no partial record is left. */
static bool park(health_probe *p)
{
	health_idle *k = p->idle;
	if (!p->parkable || !k || p->conn != &k->io || k->io.fd < 0 || p->eof ||
	    p->ctx->nidle >= p->ctx->idle_max ||
	    (p->ssl && (!tls_idle_read(p->ssl) || SSL_has_pending(p->ssl))))
		return false;
	k->user = NULL;
	p->ctx->nidle++;
	if (p->ssl) {
		k->ssl = p->ssl; /* stays on epoll: OpenSSL reads the socket */
		p->ssl = NULL;
	} else if (!k->rc && core_ring_on(p->ctx->loop)) {
		ring_adopt(p->ctx, k);
	}
	return true;
}

static void close_conn(health_probe *p)
{
	p->parkable = false;
	if (p->ssl) {
		tls_release(p->idle, p->ssl);
		p->ssl = NULL;
	}
	if (p->idle && p->conn == &p->idle->io)
		ring_let_go(p->ctx, p->idle);
	close_fd(p->conn, p->eof);
	p->eof = false;
}

static void release(health_probe *p)
{
	if (!park(p))
		close_conn(p);
	if (p->idle && p->idle->user == p)
		p->idle->user = NULL;
	p->conn = &p->io;
	core_timer_cancel(p->ctx->loop, &p->timer);
	core_buf_put(&p->ctx->bufs, p->buf);
	p->buf = NULL;
	p->phase = P_IDLE;
	p->running = false;
}

/* Deliver the result; the owner may reuse p from its callback on. */
static int finish(health_probe *p)
{
	if (p->res.reason == HEALTH_OK) {
		uint64_t us = now_us() - p->t0_us;
		p->res.rtt_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
		p->res.detail[0] = '\0';
	}
	release(p);
	health_result r = p->res;
	p->cb(p, &r);
	return STEP_DONE;
}

static int fail(health_probe *p, health_reason why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(health_probe *p, health_reason why, const char *fmt, ...)
{
	va_list ap;
	p->res.reason = why;
	va_start(ap, fmt);
	vsnprintf(p->res.detail, sizeof(p->res.detail), fmt, ap);
	va_end(ap);
	return finish(p);
}

static int succeed(health_probe *p)
{
	p->res.reason = HEALTH_OK;
	return finish(p);
}

/* Before any I/O: report from the timer so cb never runs inside start. */
static void fail_later(health_probe *p, health_reason why, const char *detail)
{
	p->res.reason = why;
	snprintf(p->res.detail, sizeof(p->res.detail), "%s", detail);
	p->phase = P_DEFER;
	core_timer_set(p->ctx->loop, &p->timer, p->ctx->loop->now);
}

/* The last OpenSSL error, or the certificate verdict, as a detail. */
static int tls_fail(health_probe *p, const char *when)
{
	/* Without verification OpenSSL still records the verdict: not the
	 * reason of a failure then. */
	long v = p->ssl && !probe_insecure(p) ? SSL_get_verify_result(p->ssl)
					      : X509_V_OK;
	unsigned long e = ERR_peek_last_error();
	ERR_clear_error();
	char names[384];
	if (v != X509_V_OK)
		return fail(p, HEALTH_TLS_ERROR, "certificate: %s%s",
			    X509_verify_cert_error_string(v),
			    tls_verify_detail(p->ssl, names, sizeof(names)));
	if (e) {
		const char *r = ERR_reason_error_string(e);
		return fail(p, HEALTH_TLS_ERROR, "%s: %s", when,
			    r ? r : "error");
	}
	return fail(p, HEALTH_TLS_ERROR, "%s: connection closed", when);
}

/* ---- I/O ---- */

/* > 0 bytes, 0 at EOF, -EAGAIN, -EPROTO (TLS: the error queue says why), or
 * another -errno. */
static ssize_t p_read(health_probe *p, char *dst, size_t n)
{
	if (p->ssl) {
		ERR_clear_error();
		errno = 0;
		int r = SSL_read(p->ssl, dst, (int)MIN(n, (size_t)INT32_MAX));
		if (r > 0)
			return r;
		switch (SSL_get_error(p->ssl, r)) {
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			return -EAGAIN;
		case SSL_ERROR_ZERO_RETURN:
			return 0;
		case SSL_ERROR_SYSCALL:
			/* No TLS error queued: a socket error, or EOF. */
			if (ERR_peek_error() == 0)
				return errno ? -errno : 0;
			return -EPROTO;
		default:
			return -EPROTO;
		}
	}
	for (;;) {
		ssize_t r = recv(p->conn->fd, dst, n, 0);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			return -EAGAIN;
		return -errno;
	}
}

static ssize_t p_write(health_probe *p, const char *src, size_t n)
{
	if (p->ssl) {
		ERR_clear_error();
		errno = 0;
		int r = SSL_write(p->ssl, src, (int)MIN(n, (size_t)INT32_MAX));
		if (r > 0)
			return r;
		int e = SSL_get_error(p->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return -EAGAIN;
		if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno)
			return -errno;
		return -EPROTO;
	}
	for (;;) {
		ssize_t r = send(p->conn->fd, src, n, MSG_NOSIGNAL);
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			return -EAGAIN;
		return -errno;
	}
}

/* A reused connection that failed before the first response byte (the
 * origin closed it while parked, or is gone): the check starts over on a
 * fresh connection, which gives the verdict a fresh check would. */
static bool retry_point(const health_probe *p)
{
	return p->reused && (p->phase == P_SEND || p->phase == P_HEAD);
}

static int retry_fresh(health_probe *p)
{
	close_conn(p);
	return connect_to(p);
}

/* An I/O error after the connection was up. */
static int io_fail(health_probe *p, ssize_t err, const char *when)
{
	if (retry_point(p))
		return retry_fresh(p);
	if (err == -EPROTO)
		return tls_fail(p, when);
	return fail(p, HEALTH_CONNECT_FAILED, "%s: %s", when,
		    strerror((int)-err));
}

/* Send [wpos, wlen) of wbuf. */
static int send_pending(health_probe *p)
{
	while (p->wpos < p->wlen) {
		ssize_t n = p_write(p, p->wbuf + p->wpos, p->wlen - p->wpos);
		if (n == -EAGAIN)
			return STEP_WAIT;
		if (n < 0)
			return io_fail(p, n, "sending");
		p->wpos += (uint32_t)n;
	}
	return STEP_AGAIN;
}

/* ---- HTTP ---- */

static http1_method method_id(const char *m)
{
	if (strcmp(m, "HEAD") == 0)
		return HTTP_M_HEAD;
	if (strcmp(m, "GET") == 0)
		return HTTP_M_GET;
	return HTTP_M_OTHER;
}

static int http_prepare(health_probe *p)
{
	core_buf *b = p->buf;
	health_idle *k = p->idle;
	b->start = b->end = 0;
	p->wpos = 0;
	p->phase = P_SEND;
	/* RTT runs from the first request out (redirect hops included), so
	 * a fresh connection's connect and TLS handshake are not in it, as
	 * they are not for a kept one: dynamic_latency compares like with
	 * like. */
	if (p->redirects == 0)
		p->t0_us = now_us();
	if (k && k->req && p->redirects == 0) {
		/* The first request of a check: the one built once. */
		p->wbuf = k->req;
		p->wlen = k->req_len;
		return STEP_AGAIN;
	}
	int n = http_request(p->mon, p->origin, p->method, p->path, k != NULL,
			     b->data, b->cap);
	if (n < 0)
		return fail(p, HEALTH_PROTOCOL_ERROR, "request head too large");
	p->wbuf = b->data;
	p->wlen = (uint32_t)n;
	return STEP_AGAIN;
}

static bool is_redirect(int status)
{
	return status == 301 || status == 302 || status == 303 ||
	       status == 307 || status == 308;
}

static int follow(health_probe *p, const http1_header *loc)
{
	char np[HEALTH_PATH_MAX];
	if (p->redirects >= HEALTH_MAX_REDIRECTS)
		return fail(p, HEALTH_CODE_MISMATCH,
			    "more than %d redirects (HTTP %d)",
			    HEALTH_MAX_REDIRECTS, p->res.status);
	int n = health_redirect_path(loc->value.p, loc->value.len, p->path, np,
				     sizeof(np));
	if (n < 0)
		return fail(p, HEALTH_PROTOCOL_ERROR,
			    "HTTP %d: unusable Location", p->res.status);
	memcpy(p->path, np, (size_t)n + 1);
	p->redirects++;
	if (p->res.status == 303 && strcmp(p->method, "HEAD") != 0)
		p->method = "GET";
	else if ((p->res.status == 301 || p->res.status == 302) &&
		 strcmp(p->method, "POST") == 0)
		p->method = "GET";
	close_conn(p);
	return connect_to(p);
}

/* exact: the answer ended where the bytes read end (nothing after it, not
 * cut at HEALTH_BODY_MAX, not ended by EOF): the connection may be parked. */
static int body_complete(health_probe *p, bool exact)
{
	p->parkable = exact && p->peer_ka && p->idle;
	const char *want = p->mon->expected_body;
	if (want && *want &&
	    !health_body_contains(p->buf->data, p->body_len, want))
		return fail(p, HEALTH_BODY_MISMATCH,
			    "expected body not found in %u bytes", p->body_len);
	return succeed(p);
}

/* Keep up to HEALTH_BODY_MAX body bytes of raw data at buf->data[off..]. */
static void keep(health_probe *p, uint32_t off, uint32_t n)
{
	uint32_t room = HEALTH_BODY_MAX - p->body_len;
	n = MIN(n, room);
	if (n && off != p->body_len)
		memmove(p->buf->data + p->body_len, p->buf->data + off, n);
	p->body_len += n;
}

/* Fold the raw bytes at [off, off + n) into the body. Returns STEP_AGAIN
 * when more is needed, else the probe's end. */
static int body_bytes(health_probe *p, uint32_t off, uint32_t n)
{
	switch (p->framing) {
	case HTTP1_BODY_NONE:
		return body_complete(p, n == 0);
	case HTTP1_BODY_LENGTH: {
		uint32_t take = (uint32_t)MIN((uint64_t)n, p->body_left);
		keep(p, off, take);
		p->body_left -= take;
		if (p->body_left == 0)
			return body_complete(p, take == n);
		break;
	}
	case HTTP1_BODY_EOF:
		keep(p, off, n);
		break;
	case HTTP1_BODY_CHUNKED: {
		const char *raw = p->buf->data;
		uint32_t i = 0;
		bool done = false;
		while (i < n && !done) {
			if (p->in_chunk_data) {
				/* All of it is data: feed in bulk. */
				uint32_t take = (uint32_t)MIN(
				    (uint64_t)(n - i), p->chunk.remaining);
				ssize_t r = http1_chunked_feed(
				    &p->chunk, raw + off + i, take, &done);
				if (r < 0)
					goto bad_chunk;
				keep(p, off + i, take);
				i += take;
				if (p->chunk.remaining == 0)
					p->in_chunk_data = false;
				continue;
			}
			/* Framing bytes one at a time: a size line that ends
			 * with a non-zero size raises `total`. */
			uint64_t before = p->chunk.total;
			ssize_t r = http1_chunked_feed(&p->chunk, raw + off + i,
						       1, &done);
			if (r < 0)
				goto bad_chunk;
			i += (uint32_t)r;
			if (p->chunk.total != before)
				p->in_chunk_data = true;
		}
		if (done)
			return body_complete(p, i == n);
		break;
	bad_chunk:
		return fail(p, HEALTH_PROTOCOL_ERROR, "invalid chunked body");
	}
	}
	if (p->body_len >= HEALTH_BODY_MAX)
		return body_complete(p, false); /* the first 10 KB is all */
	p->buf->end = p->body_len;
	return STEP_AGAIN;
}

/* A complete head is at buf->data. */
static int http_head(health_probe *p)
{
	core_buf *b = p->buf;
	http1_response *resp = &p->ctx->resp;
	for (;;) {
		int r = http1_parse_response(b->data, b->end, NULL,
					     method_id(p->method), resp);
		if (r == HTTP1_INCOMPLETE)
			return STEP_AGAIN;
		if (r < 0)
			return fail(p, HEALTH_PROTOCOL_ERROR,
				    "invalid response: %s",
				    http1_err_reason(r));
		p->res.status = resp->status;
		if (resp->status == 101)
			return fail(p, HEALTH_PROTOCOL_ERROR,
				    "unexpected HTTP 101");
		if (resp->status < 200) {
			/* Interim (100 Continue, 103): the final head
			 * follows. */
			memmove(b->data, b->data + r, b->end - (uint32_t)r);
			b->end -= (uint32_t)r;
			continue;
		}
		if (p->mon->follow_redirects && is_redirect(resp->status)) {
			const http1_header *loc = http1_find_header(
			    resp->headers, resp->nheaders, "Location");
			if (loc)
				return follow(p, loc);
		}
		const char *codes =
		    p->mon->expected_codes ? p->mon->expected_codes : "200";
		if (!cfg_expected_codes_match(codes, resp->status))
			return fail(p, HEALTH_CODE_MISMATCH,
				    "HTTP %d, expected %s", resp->status,
				    codes);
		p->framing = (uint8_t)resp->body;
		p->peer_ka = resp->conn.keep_alive;
		p->body_left = resp->content_length;
		memset(&p->chunk, 0, sizeof(p->chunk));
		p->in_chunk_data = false;
		p->body_len = 0;
		p->phase = P_BODY;
		return body_bytes(p, (uint32_t)r, b->end - (uint32_t)r);
	}
}

static int http_eof(health_probe *p)
{
	if (retry_point(p))
		return retry_fresh(p);
	if (p->phase == P_HEAD)
		return fail(p, HEALTH_PROTOCOL_ERROR,
			    p->buf->end ? "connection closed in the head"
					: "connection closed without response");
	if (p->framing == HTTP1_BODY_EOF)
		return body_complete(p, false);
	return fail(p, HEALTH_PROTOCOL_ERROR, "connection closed in the body");
}

/* n new bytes landed at buf->data[off..]. */
static int http_got(health_probe *p, uint32_t off, uint32_t n)
{
	return p->phase == P_HEAD ? http_head(p) : body_bytes(p, off, n);
}

static int http_read(health_probe *p)
{
	core_buf *b = p->buf;
	for (;;) {
		uint32_t space = core_buf_space(b);
		if (space == 0) /* the parser's 16 KiB limit comes first */
			return fail(p, HEALTH_PROTOCOL_ERROR,
				    "response head too large");
		ssize_t n = p_read(p, core_buf_tail(b), space);
		if (n == -EAGAIN)
			return STEP_WAIT;
		if (n < 0)
			return io_fail(p, n, "reading");
		if (n == 0) {
			p->eof = true;
			return http_eof(p);
		}
		p->reused = false; /* a response byte: no retry from here */
		uint32_t off = b->end;
		b->end += (uint32_t)n;
		int r = http_got(p, off, (uint32_t)n);
		if (r != STEP_AGAIN || p->phase == P_CONNECT)
			return r == STEP_AGAIN ? STEP_WAIT : r;
	}
}

/* ---- SMTP ---- */

static int smtp_send(health_probe *p, const char *verb, int step)
{
	int n;
	if (strcmp(verb, "QUIT") == 0)
		n = snprintf(p->smtp_out, sizeof(p->smtp_out), "QUIT\r\n");
	else
		n = snprintf(p->smtp_out, sizeof(p->smtp_out), "%s %s\r\n",
			     verb, p->ctx->ehlo_name);
	p->wbuf = p->smtp_out;
	p->wpos = 0;
	p->wlen = (uint32_t)MIN((size_t)n, sizeof(p->smtp_out) - 1);
	p->smtp_step = (uint8_t)step;
	return STEP_AGAIN;
}

/* The last line of the reply, trimmed, for the detail. */
static void last_line(const char *buf, size_t len, char *out, size_t size)
{
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	size_t s = len;
	while (s > 0 && buf[s - 1] != '\n')
		s--;
	size_t n = MIN(len - s, size - 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[s + i];
		out[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	out[n] = '\0';
}

static int smtp_reply(health_probe *p, int code, const char *text)
{
	static const char *const what[] = {"banner", "EHLO", "HELO", "QUIT"};
	p->res.status = code;
	switch (p->smtp_step) {
	case SMTP_BANNER:
		if (code == 220)
			return smtp_send(p, "EHLO", SMTP_EHLO);
		break;
	case SMTP_EHLO:
		if (code == 250)
			return smtp_send(p, "QUIT", SMTP_QUIT);
		if (code >= 500) /* an old server: try HELO */
			return smtp_send(p, "HELO", SMTP_HELO);
		break;
	case SMTP_HELO:
		if (code == 250)
			return smtp_send(p, "QUIT", SMTP_QUIT);
		break;
	case SMTP_QUIT:
		if (code == 221)
			return succeed(p);
		break;
	}
	return fail(p, HEALTH_PROTOCOL_ERROR, "SMTP %s: %s", what[p->smtp_step],
		    text);
}

static int smtp_pump(health_probe *p)
{
	core_buf *b = p->buf;
	for (;;) {
		int r = send_pending(p);
		if (r != STEP_AGAIN)
			return r;
		int code = 0;
		int n = health_smtp_reply(b->data, b->end, &code);
		if (n < 0) {
			char t[48];
			last_line(b->data, MIN(b->end, 40u), t, sizeof(t));
			return fail(p, HEALTH_PROTOCOL_ERROR,
				    "not an SMTP reply: %s", t);
		}
		if (n > 0) {
			char t[64];
			last_line(b->data, (size_t)n, t, sizeof(t));
			memmove(b->data, b->data + n, b->end - (uint32_t)n);
			b->end -= (uint32_t)n;
			r = smtp_reply(p, code, t);
			if (r != STEP_AGAIN)
				return r;
			continue;
		}
		if (core_buf_space(b) == 0)
			return fail(p, HEALTH_PROTOCOL_ERROR,
				    "SMTP reply too long");
		ssize_t got = p_read(p, core_buf_tail(b), core_buf_space(b));
		if (got == -EAGAIN)
			return STEP_WAIT;
		if (got < 0)
			return io_fail(p, got, "reading");
		if (got == 0) {
			p->eof = true;
			return fail(p, HEALTH_PROTOCOL_ERROR,
				    "connection closed in the SMTP dialogue");
		}
		b->end += (uint32_t)got;
	}
}

/* ---- the machine ---- */

static int tls_start(health_probe *p)
{
	/* An origin reached over TLS (origin_tls): the data plane's client
	 * settings (CA, allow_insecure, SNI name) unless the monitor sets its
	 * own Host header. */
	const cfg_origin_tls *ot = p->origin->tls;
	bool insecure = probe_insecure(p);
	char err[256];
	tls_client *t =
	    tls_settings(p->ctx, insecure, ot && !insecure ? ot->ca : NULL, err,
			 sizeof(err));
	if (!t)
		return fail(p, HEALTH_TLS_ERROR, "%s", err);
	char name[256], ip[64];
	bool have_name = health_tls_name(p->mon, p->origin, name, sizeof(name));
	core_sock_ip_text((const struct sockaddr *)&p->ss, ip, sizeof(ip));
	ERR_clear_error();
	p->ssl =
	    tls_client_ssl_new(t, p->conn->fd, have_name ? name : NULL, ip);
	if (!p->ssl)
		return tls_fail(p, "TLS setup");
	health_idle *k = p->idle;
	if (k && k->sess) {
		if (tls_still_valid(p))
			(void)SSL_set_session(p->ssl, k->sess);
		else
			forget_session(k);
	}
	p->phase = P_TLS;
	return STEP_AGAIN;
}

static int tls_handshake(health_probe *p)
{
	ERR_clear_error();
	errno = 0;
	int r = SSL_do_handshake(p->ssl);
	if (r == 1) {
		atomic_fetch_add_explicit(
		    SSL_session_reused(p->ssl) ? &n_tls_resumed : &n_tls_full,
		    1, memory_order_relaxed);
		note_verified_chain(p);
		return http_prepare(p);
	}
	int e = SSL_get_error(p->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return STEP_WAIT;
	note_chain(p); /* an expired certificate's date, say */
	if (p->idle)
		forget_session(p->idle);
	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno &&
	    errno != EAGAIN)
		return fail(p, HEALTH_TLS_ERROR, "handshake: %s",
			    strerror(errno));
	return tls_fail(p, "handshake");
}

/* The TCP connection is up. */
static int connected(health_probe *p)
{
	switch (p->mon->type) {
	case CFG_MON_TCP:
		return succeed(p);
	case CFG_MON_SMTP:
		p->phase = P_SMTP;
		p->smtp_step = SMTP_BANNER;
		p->wpos = p->wlen = 0;
		p->buf->start = p->buf->end = 0;
		return STEP_AGAIN;
	case CFG_MON_HTTPS:
		return tls_start(p);
	case CFG_MON_HTTP:
		break;
	}
	return http_prepare(p);
}

static int connect_check(health_probe *p, uint32_t events)
{
	if (events & (EPOLLERR | EPOLLHUP)) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(p->conn->fd, SOL_SOCKET, SO_ERROR, &err, &len) <
		    0)
			err = errno;
		return fail(p, HEALTH_CONNECT_FAILED, "%s",
			    strerror(err ? err : ECONNREFUSED));
	}
	/* Writable without error: connected (no SO_ERROR call needed). */
	if (!(events & EPOLLOUT))
		return STEP_WAIT;
	return connected(p);
}

static void pump(health_probe *p, uint32_t events)
{
	if (events & EPOLLRDHUP)
		p->eof = true; /* the peer's FIN is in: close plainly */
	for (;;) {
		int r;
		switch (p->phase) {
		case P_CONNECT:
			r = connect_check(p, events);
			break;
		case P_TLS:
			r = tls_handshake(p);
			break;
		case P_SEND:
			r = send_pending(p);
			if (r == STEP_AGAIN) {
				p->buf->start = p->buf->end = 0;
				p->phase = P_HEAD;
				/* The answer can only arrive after the
				 * request, and its arrival is a new edge:
				 * skip the read that would see EAGAIN. */
				r = STEP_WAIT;
			}
			break;
		case P_HEAD:
		case P_BODY:
			/* Only writable (the registration of a reused
			 * connection whose request is out): nothing to read. */
			if (!(events & ~(uint32_t)EPOLLOUT))
				return;
			r = http_read(p);
			break;
		case P_SMTP:
			r = smtp_pump(p);
			break;
		default:
			return;
		}
		if (r != STEP_AGAIN)
			return;
	}
}

static void io_cb(core_io *io, uint32_t events)
{
	pump(container_of(io, health_probe, io), events);
}

/* Events of a connection kept in a health_idle: its probe's, or the
 * origin closing it while parked. */
static void idle_io_cb(core_io *io, uint32_t events)
{
	health_idle *k = container_of(io, health_idle, io);
	if (k->user)
		pump(k->user, events);
	else
		parked_event(k->ctx, k, events);
}

static void timer_cb(core_timer *t)
{
	health_probe *p = container_of(t, health_probe, timer);
	static const char *const what[] = {
	    [P_CONNECT] = "connect",
	    [P_TLS] = "TLS handshake",
	    [P_SEND] = "sending",
	    [P_HEAD] = "waiting for the response",
	    [P_BODY] = "reading the body",
	    [P_SMTP] = "SMTP dialogue"};
	if (p->phase == P_DEFER) {
		finish(p);
		return;
	}
	if (p->phase == P_TLS && p->idle)
		forget_session(p->idle);
	const char *w = p->phase < ARRAY_LEN(what) && what[p->phase]
			    ? what[p->phase]
			    : "check";
	fail(p, HEALTH_TIMEOUT, "%s timed out after %u ms", w,
	     p->mon->timeout_ms);
}

/* A non-blocking connect registered on the loop: 0 or -errno. Not
 * core_sock_connect: TCP_NODELAY buys nothing for one request write, and
 * at 10,000 checks a second every syscall shows. Even a connect that
 * completes at once is handled on its first epoll edge (registration
 * reports a ready socket), so no result arrives inside
 * health_probe_start. With an idle slot the connection lives in the slot
 * (its io stays on the loop when parked). */
static int open_conn(health_probe *p)
{
	int fd = socket(p->ss.ss_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&p->ss, p->sslen) < 0 &&
	    errno != EINPROGRESS) {
		int err = errno;
		close(fd);
		return -err;
	}
	health_idle *k = p->idle;
	if (k) {
		if (k->io.fd >= 0 && !k->user)
			health_idle_close(p->ctx, k); /* not reused: replaced */
		k->io.cb = idle_io_cb;
		k->ctx = p->ctx;
		k->user = p;
		p->conn = &k->io;
	} else {
		p->io.cb = io_cb;
		p->conn = &p->io;
	}
	p->conn->fd = fd;
	p->ctx->nconnect++;
	p->eof = false;
	p->reused = false;
	int err = core_loop_add(p->ctx->loop, p->conn, false);
	if (err < 0) {
		close(fd);
		p->conn->fd = -1;
		return err;
	}
	p->phase = P_CONNECT;
	if (p->buf)
		p->buf->start = p->buf->end = 0;
	return 0;
}

/* The connection of the next redirect hop. */
static int connect_to(health_probe *p)
{
	int err = open_conn(p);
	if (err < 0)
		return fail(p, HEALTH_CONNECT_FAILED, "%s", strerror(-err));
	return STEP_WAIT;
}

/* ---- io_uring: kept connections (see health_probe.h) ---- */

static void ring_recv_cb(core_op *op, int res, uint32_t flags, char *buf,
			 uint16_t bid);
static void ring_send_cb(core_op *op, int res, uint32_t flags, char *buf,
			 uint16_t bid);

/* Back to the free list once nobody holds it. */
static void rc_release(health_rconn *rc)
{
	if (rc->k || rc->inflight)
		return;
	if (rc->fd_after >= 0) {
		close(rc->fd_after);
		rc->fd_after = -1;
	}
	free(rc->req);
	rc->req = NULL;
	rc->free_next = rc->ctx->rc_free;
	rc->ctx->rc_free = rc;
}

static bool ring_arm_recv(health_rconn *rc)
{
	struct io_uring_sqe *sqe = core_ring_sqe(rc->ctx->loop);
	if (!sqe)
		return false;
	io_uring_prep_recv_multishot(sqe, rc->k->io.fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = CORE_RING_BGID;
	core_ring_set_op(sqe, &rc->recv_op);
	rc->inflight++;
	rc->recv_armed = true;
	return true;
}

/* Queue the request. false: the ring takes nothing now (and nothing
 * was queued). */
static bool ring_send(health_probe_ctx *c, health_rconn *rc)
{
	if (!core_ring_reserve(c->loop, 2))
		return false;
	if (!rc->recv_armed && !ring_arm_recv(rc)) /* ended: again */
		return false;
	struct io_uring_sqe *sqe = core_ring_sqe(c->loop);
	if (!sqe)
		return false;
	/* MSG_WAITALL: a short send is retried by the kernel, so the
	 * completion says all or an error. */
	io_uring_prep_send(sqe, rc->k->io.fd, rc->req, rc->req_len,
			   MSG_NOSIGNAL | MSG_WAITALL);
	core_ring_set_op(sqe, &rc->send_op);
	rc->inflight++;
	return true;
}

/* Move the parked connection of k from epoll onto the ring. Stays on
 * epoll when that fails (or nothing is known to send). */
static void ring_adopt(health_probe_ctx *c, health_idle *k)
{
	if (!k->req || core_loop_del(c->loop, &k->io) < 0)
		return;
	health_rconn *rc = c->rc_free;
	if (rc) {
		c->rc_free = rc->free_next;
	} else {
		rc = xcalloc(1, sizeof(*rc));
		rc->all_next = c->rc_all;
		c->rc_all = rc;
		rc->ctx = c;
		rc->fd_after = -1;
		rc->recv_op.cb = ring_recv_cb;
		rc->send_op.cb = ring_send_cb;
	}
	rc->k = k;
	rc->req = xmalloc(k->req_len);
	memcpy(rc->req, k->req, k->req_len);
	rc->req_len = k->req_len;
	k->rc = rc;
	if (!ring_arm_recv(rc)) { /* back to epoll */
		k->rc = NULL;
		rc->k = NULL;
		rc_release(rc);
		if (core_loop_add(c->loop, &k->io, false) < 0) {
			close_fd(&k->io, false);
			c->nidle--;
		}
	}
}

/* k's connection is about to be closed: cancel what the kernel holds and
 * submit now, before the descriptor number can be reused. */
static void ring_let_go(health_probe_ctx *c, health_idle *k)
{
	health_rconn *rc = k->rc;
	if (!rc)
		return;
	k->rc = NULL;
	rc->k = NULL;
	if (rc->inflight) {
		struct io_uring_sqe *sqe = core_ring_sqe(c->loop);
		if (sqe) {
			io_uring_prep_cancel(sqe, &rc->recv_op, 0);
			io_uring_sqe_set_data64(sqe, 0);
		}
		if (!sqe || core_ring_flush(c->loop) < 0) {
			/* The ring takes nothing now. End what it holds
			 * through the socket (a receive sees EOF, a send an
			 * error) and keep the descriptor until the kernel is
			 * done with it, so an entry still queued cannot meet
			 * another socket under a reused number. The RST
			 * comes at the last close (SO_LINGER 0). */
			struct linger lg = {.l_onoff = 1, .l_linger = 0};
			setsockopt(k->io.fd, SOL_SOCKET, SO_LINGER, &lg,
				   sizeof(lg));
			shutdown(k->io.fd, SHUT_RDWR);
			rc->fd_after = k->io.fd;
			k->io.fd = -1; /* the caller's close_fd skips it */
		}
	}
	rc_release(rc);
}

/* The answer's bytes from a provided buffer: copied to the probe's buffer
 * and parsed as read(2) would have given them. Bytes left over after the
 * answer mean the connection cannot be kept. */
static void ring_feed(health_probe *p, health_idle *k, const char *data,
		      uint32_t n)
{
	p->reused = false; /* a response byte: no retry from here */
	uint32_t off = 0;
	while (off < n) {
		core_buf *b = p->buf;
		uint32_t space = core_buf_space(b);
		if (space == 0) {
			fail(p, HEALTH_PROTOCOL_ERROR,
			     "response head too large");
			return;
		}
		uint32_t take = MIN(space, n - off);
		memcpy(core_buf_tail(b), data + off, take);
		uint32_t at = b->end;
		b->end += take;
		off += take;
		int r = http_got(p, at, take);
		if (r == STEP_DONE) {
			if (off < n && !k->user)
				health_idle_close(k->ctx, k);
			return;
		}
		if (r != STEP_AGAIN || p->phase == P_CONNECT)
			return;
	}
}

/* The multishot receive of a kept connection ended (out of buffers, or
 * after the last bytes it could take): arm it again. When the ring takes
 * nothing, the connection cannot be watched: a parked one is closed, a
 * running check fails (rather than waiting for its timeout). */
static void ring_rearm(health_rconn *rc)
{
	if (ring_arm_recv(rc))
		return;
	health_idle *k = rc->k;
	if (k->user)
		io_fail(k->user, -ENOMEM, "reading");
	else
		health_idle_close(rc->ctx, k);
}

static void ring_recv_cb(core_op *op, int res, uint32_t flags, char *buf,
			 uint16_t bid)
{
	health_rconn *rc = container_of(op, health_rconn, recv_op);
	health_probe_ctx *c = rc->ctx;
	if (!(flags & IORING_CQE_F_MORE)) {
		rc->recv_armed = false;
		rc->inflight--;
	}
	health_idle *k = rc->k;
	if (!k) {
		if (buf)
			core_ring_buf_put(c->loop, bid);
		rc_release(rc);
		return;
	}
	health_probe *p = k->user;
	if (res > 0 && buf) {
		if (p && p->phase >= P_HEAD && p->phase <= P_BODY)
			ring_feed(p, k, buf, (uint32_t)res);
		else
			health_idle_close(c, k); /* bytes nobody asked for */
		core_ring_buf_put(c->loop, bid);
		/* Still kept, and the multishot receive ended: again. */
		if (k->rc == rc && !rc->recv_armed)
			ring_rearm(rc);
		return;
	}
	if (res == -ENOBUFS) { /* every buffer in use: the bytes wait */
		if (!rc->recv_armed)
			ring_rearm(rc);
		return;
	}
	if (!p) {
		health_idle_close(c, k); /* EOF or an error while parked */
		return;
	}
	if (res == 0) {
		p->eof = true;
		http_eof(p);
		return;
	}
	io_fail(p, res, "reading");
}

static void ring_send_cb(core_op *op, int res, uint32_t flags, char *buf,
			 uint16_t bid)
{
	(void)flags, (void)buf, (void)bid;
	health_rconn *rc = container_of(op, health_rconn, send_op);
	rc->inflight--;
	health_idle *k = rc->k;
	if (!k) {
		rc_release(rc);
		return;
	}
	health_probe *p = k->user;
	if (!p || res == (int)rc->req_len || p->phase != P_HEAD)
		return;
	/* EPIPE or ECONNRESET: the origin closed it while parked (the
	 * probe starts over on a fresh connection). */
	io_fail(p, res < 0 ? res : -EIO, "sending");
}

/* Send the request on the connection parked in p->idle (still on the loop:
 * had the origin closed it, its event would have closed it already) at
 * once: a check on a kept connection costs this send and the read of the
 * answer. Returns false to have the caller open a fresh connection (send
 * failed: the origin closed it after the last epoll_wait). Nothing here
 * calls cb. */
static bool reuse_conn(health_probe *p)
{
	health_idle *k = p->idle;
	if (!k || k->io.fd < 0 || !k->req)
		return false;
	if (k->ssl && !tls_still_valid(p))
		return false; /* open_conn closes it: verify afresh */
	k->user = p;
	p->ctx->nidle--;
	p->conn = &k->io;
	p->ssl = k->ssl;
	k->ssl = NULL;
	p->eof = false;
	p->reused = true;
	p->wbuf = k->req;
	p->wlen = k->req_len;
	p->wpos = 0;
	if (k->rc) {
		if (!ring_send(p->ctx, k->rc)) {
			close_conn(p);
			k->user = NULL;
			p->conn = &p->io;
			return false;
		}
		p->ctx->nreuse++;
		p->ctx->nring++;
		p->buf->start = p->buf->end = 0;
		p->phase = P_HEAD;
		return true;
	}
	while (p->wpos < p->wlen) {
		ssize_t w = p_write(p, p->wbuf + p->wpos, p->wlen - p->wpos);
		if (w == -EAGAIN)
			break;
		if (w < 0) { /* EPIPE, ECONNRESET: closed while parked */
			close_conn(p);
			k->user = NULL;
			p->conn = &p->io;
			return false;
		}
		p->wpos += (uint32_t)w;
	}
	p->ctx->nreuse++;
	/* A partial send finishes on the EPOLLOUT edge. */
	p->buf->start = p->buf->end = 0;
	p->phase = p->wpos < p->wlen ? P_SEND : P_HEAD;
	return true;
}

/* The request head of the monitor's method and path, kept in the idle
 * slot: built by the first check, sent as is by all the others. Left
 * unset when it does not fit (the fresh path then reports it). */
static void idle_request(health_probe *p)
{
	health_idle *k = p->idle;
	if (!k || k->req)
		return;
	core_buf *b = p->buf;
	int n = http_request(p->mon, p->origin, p->method, p->path, true,
			     b->data, b->cap);
	if (n <= 0)
		return;
	k->req = xmalloc((size_t)n);
	memcpy(k->req, b->data, (size_t)n);
	k->req_len = (uint32_t)n;
}

void health_probe_start(health_probe *p, health_probe_ctx *c,
			const cfg_monitor *m, const cfg_origin *o,
			health_probe_cb cb, void *arg)
{
	health_probe_start_idle(p, c, m, o, NULL, cb, arg);
}

void health_probe_start_idle(health_probe *p, health_probe_ctx *c,
			     const cfg_monitor *m, const cfg_origin *o,
			     health_idle *idle, health_probe_cb cb, void *arg)
{
	p->arg = arg;
	p->ctx = c;
	p->mon = m;
	p->origin = o;
	p->cb = cb;
	p->ssl = NULL;
	p->io.fd = -1;
	p->io.cb = io_cb;
	p->conn = &p->io;
	core_timer_init(&p->timer, timer_cb);
	p->redirects = 0;
	p->eof = false;
	p->running = true;
	p->idle =
	    m->type == CFG_MON_HTTP || m->type == CFG_MON_HTTPS ? idle : NULL;
	p->reused = p->parkable = p->peer_ka = false;
	/* Not the whole result: detail is 100+ bytes and only read once
	 * set (finish and fail write it). */
	p->res.reason = HEALTH_OK;
	p->res.rtt_us = 0;
	p->res.status = 0;
	p->res.detail[0] = '\0';
	p->res.tls_not_after = p->idle ? p->idle->tls_not_after : 0;
	p->method = m->method && *m->method ? m->method : "GET";
	p->t0_us = now_us();
	/* A tcp check reads nothing: no buffer (32 KiB) for it. */
	p->buf = NULL;
	if (m->type != CFG_MON_TCP) {
		p->buf = core_buf_get(&c->bufs);
		p->buf->start = p->buf->end = 0;
	}
	core_timer_set(c->loop, &p->timer,
		       c->loop->now + (m->timeout_ms ? m->timeout_ms : 5000));

	const char *path = m->path && *m->path ? m->path : "/";
	size_t pl = strlen(path);
	if (pl >= sizeof(p->path)) {
		fail_later(p, HEALTH_PROTOCOL_ERROR, "path too long");
		return;
	}
	memcpy(p->path, path, pl + 1);

	/* The address's own length, not the 128-byte storage. */
	p->sslen = MIN(o->sslen, (socklen_t)sizeof(p->ss));
	memcpy(&p->ss, &o->ss, p->sslen);
	uint16_t port = htons(probe_port(m, o));
	sa_family_t fam = p->sslen >= sizeof(struct sockaddr_in)
			      ? p->ss.ss_family
			      : AF_UNSPEC;
	if (fam == AF_INET)
		((struct sockaddr_in *)&p->ss)->sin_port = port;
	else if (fam == AF_INET6 && p->sslen >= sizeof(struct sockaddr_in6))
		((struct sockaddr_in6 *)&p->ss)->sin6_port = port;
	else if (!(fam == AF_UNIX && o->tunnel)) { /* a tunnel: no port */
		fail_later(p, HEALTH_CONNECT_FAILED, "no usable address");
		return;
	}

	idle_request(p);
	if (reuse_conn(p))
		return;
	int err = open_conn(p);
	if (err < 0)
		fail_later(p, HEALTH_CONNECT_FAILED, strerror(-err));
}

void health_probe_cancel(health_probe *p)
{
	if (!p->running)
		return;
	release(p);
}
