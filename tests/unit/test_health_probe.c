/* test_health_probe.c - health probes against real servers started inside
 * this process on 127.0.0.1 ephemeral ports (http, https with a certificate
 * made at run time, tcp, smtp), the pure helpers, and the health checker
 * thread over small snapshots (hand-built and loaded from YAML), with state
 * transitions, events and the status table.
 *
 * Nothing sleeps and hopes: probes finish through their loop (bounded by
 * the monitor timeout) and checker events are awaited on a condition
 * variable with a deadline. Test servers are blocking threads that handle
 * one connection at a time.
 *
 * `test_health_probe --bench [origins] [seconds] [interval_ms] [ports]
 * [http|tcp|https|https-close|https-full]` is the harness of
 * bench/health.sh (not a test).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <liburing.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config/cfg_load.h"
#include "core/core_loop.h"
#include "core/core_ring.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "health/health_checker.h"
#include "health/health_probe.h"

/* ---- test servers ---- */

enum mode {
	M_OK = 0,      /* 200, "Hello WORLD" */
	M_500,	       /* 500 */
	M_204,	       /* 204, no body */
	M_301,	       /* 301 Location: /x */
	M_CHUNKED,     /* 200 chunked "hello world" in three chunks */
	M_BIG,	       /* 200, 20000 bytes, NEEDLE at srv.needle_at */
	M_EOF,	       /* 200 without length, body until close */
	M_REDIRECT,    /* /start -> 302 absolute URL elsewhere -> /next?x=1 */
	M_LOOP,	       /* always 302 to /loop */
	M_SLOW,	       /* read the request, never answer */
	M_GARBAGE,     /* not HTTP */
	M_CLOSE,       /* read the request, close */
	M_INTERIM,     /* 100 Continue, then 200 */
	M_HEAD,	       /* 200 with Content-Length: 100 and no body (HEAD) */
	M_KEEP,	       /* keep-alive: 200 "Hello WORLD" to every request */
	M_KEEP_IDLE,   /* keep-alive 200, then closes the idle connection */
	M_KEEP_ONCE,   /* keep-alive 200, then closes at the next request */
	M_KEEP_JUNK,   /* keep-alive 200, then unasked bytes while idle */
	M_KEEP_BIG,    /* keep-alive 200, 3 KB chunked body ending in NEEDLE */
	M_KEEP_TICKET, /* keep-alive 200 and (TLS 1.3) a new session ticket
			* in the same segment */
	M_SMTP_OK,     /* 220, EHLO 250 (multi-line), QUIT 221 */
	M_SMTP_HELO,   /* 220, EHLO 502, HELO 250, QUIT 221 */
	M_SMTP_554,    /* 554 banner */
	M_SMTP_JUNK,   /* an HTTP status line instead of a banner */
	M_SMTP_DROP,   /* 220 banner, then close at EHLO */
};

typedef struct srv {
	int lfd;
	uint16_t port;
	pthread_t th;
	atomic_int mode;
	atomic_int nconn;
	atomic_int nresumed;	/* TLS connections that resumed a session */
	atomic_bool ticket_now; /* keep-alive TLS 1.3: send a new session
				 * ticket while idle (then cleared) */
	atomic_bool junk_now;	/* keep-alive: send unasked bytes while
				 * idle (then cleared) */
	atomic_int needle_at;
	atomic_int hs_delay_ms; /* TLS: wait this long before the handshake */
	atomic_bool stop;
	SSL_CTX *tls; /* https server when set */
	pthread_mutex_t mu;
	char last_req[4096]; /* the last request head (HTTP) or dialogue */
	char last_sni[256];
	char paths[8][128]; /* request targets, in order */
	int npaths;
} srv;

typedef struct conn {
	int fd;
	SSL *ssl;
} conn;

static ssize_t c_read(conn *c, char *b, size_t n)
{
	if (c->ssl) {
		int r = SSL_read(c->ssl, b, (int)n);
		return r > 0 ? r : -1;
	}
	return recv(c->fd, b, n, 0);
}

static void c_write(conn *c, const char *b, size_t n)
{
	while (n > 0) {
		ssize_t r = c->ssl ? SSL_write(c->ssl, b, (int)n)
				   : send(c->fd, b, n, MSG_NOSIGNAL);
		if (r <= 0)
			return;
		b += r;
		n -= (size_t)r;
	}
}

static void c_puts(conn *c, const char *s)
{
	c_write(c, s, strlen(s));
}

/* Read a request head (through the empty line). Returns its length, 0 on
 * EOF or error. */
static size_t read_head(conn *c, char *buf, size_t size)
{
	size_t len = 0;
	while (len + 1 < size) {
		ssize_t n = c_read(c, buf + len, size - 1 - len);
		if (n <= 0)
			return 0;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			return len;
	}
	return 0;
}

/* Read one CRLF line (SMTP), appending it to the server's dialogue. */
static bool read_line(srv *s, conn *c, char *buf, size_t size)
{
	size_t len = 0;
	while (len + 1 < size) {
		ssize_t n = c_read(c, buf + len, 1);
		if (n <= 0)
			return false;
		len++;
		if (buf[len - 1] == '\n')
			break;
	}
	buf[len] = '\0';
	pthread_mutex_lock(&s->mu);
	strncat(s->last_req, buf,
		sizeof(s->last_req) - strlen(s->last_req) - 1);
	pthread_mutex_unlock(&s->mu);
	return true;
}

static void record(srv *s, const char *head)
{
	pthread_mutex_lock(&s->mu);
	snprintf(s->last_req, sizeof(s->last_req), "%s", head);
	const char *sp = strchr(head, ' ');
	if (sp && s->npaths < 8) {
		size_t l = strcspn(sp + 1, " ");
		snprintf(s->paths[s->npaths++], sizeof(s->paths[0]), "%.*s",
			 (int)l, sp + 1);
	}
	pthread_mutex_unlock(&s->mu);
}

/* Wait until the client goes away (or the test ends). */
static void wait_close(srv *s, conn *c)
{
	char b[512];
	for (int i = 0; i < 100 && !atomic_load(&s->stop); i++) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		int r = poll(&pfd, 1, 50);
		if (r > 0 && recv(c->fd, b, sizeof(b), 0) <= 0)
			return;
	}
}

static void smtp_session(srv *s, conn *c, int mode)
{
	char line[512];
	switch (mode) {
	case M_SMTP_554:
		c_puts(c, "554 go away\r\n");
		return;
	case M_SMTP_JUNK:
		c_puts(c, "HTTP/1.1 400 Bad Request\r\n\r\n");
		return;
	default:
		break;
	}
	c_puts(c, "220-smtp.test ESMTP\r\n220 ready\r\n");
	if (!read_line(s, c, line, sizeof(line)))
		return;
	if (mode == M_SMTP_DROP)
		return;
	if (strncmp(line, "EHLO ", 5) == 0) {
		if (mode == M_SMTP_HELO) {
			c_puts(c, "502 command not implemented\r\n");
			if (!read_line(s, c, line, sizeof(line)) ||
			    strncmp(line, "HELO ", 5) != 0)
				return;
			c_puts(c, "250 smtp.test\r\n");
		} else {
			c_puts(c, "250-smtp.test hello\r\n250-SIZE 1000\r\n"
				  "250 8BITMIME\r\n");
		}
	} else {
		c_puts(c, "500 what\r\n");
		return;
	}
	if (!read_line(s, c, line, sizeof(line)) || strcmp(line, "QUIT\r\n"))
		return;
	c_puts(c, "221 bye\r\n");
}

/* A TLS 1.3 server's extra session ticket: queued, then flushed by a
 * handshake call as a record of its own. */
static void send_ticket(conn *c)
{
	if (c->ssl && SSL_version(c->ssl) == TLS1_3_VERSION &&
	    SSL_new_session_ticket(c->ssl) == 1)
		SSL_do_handshake(c->ssl);
}

/* Keep-alive sessions: answer requests on c until the client closes, the
 * mode says to close, or the test stops the server. */
static void keep_session(srv *s, conn *c, int mode)
{
	char head[4096];
	for (int n = 0;; n++) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		while (poll(&pfd, 1, 20) == 0) {
			if (atomic_load(&s->stop))
				return;
			if (atomic_exchange(&s->ticket_now, false))
				send_ticket(c);
			if (atomic_exchange(&s->junk_now, false))
				c_puts(c,
				       "HTTP/1.1 408 Request Timeout\r\n\r\n");
		}
		if (!read_head(c, head, sizeof(head)))
			return;
		if (atomic_load(&s->mode) == M_SLOW)
			continue; /* told to stop answering */
		if (mode == M_KEEP_ONCE && n > 0)
			return; /* closed instead of answering */
		record(s, head);
		if (mode == M_KEEP_BIG) {
			/* Longer than several receive buffers of the ring in
			 * the tests (4 of 64 bytes). */
			char chunk[1100];
			memset(chunk, 'a', sizeof(chunk));
			int hl = snprintf(chunk, sizeof(chunk), "3e8\r\n");
			chunk[hl + 1000] = '\r';
			chunk[hl + 1001] = '\n';
			c_puts(c, "HTTP/1.1 200 OK\r\n"
				  "Transfer-Encoding: chunked\r\n\r\n");
			for (int i = 0; i < 3; i++)
				c_write(c, chunk, (size_t)hl + 1002);
			c_puts(c, "6\r\nNEEDLE\r\n0\r\n\r\n");
			continue;
		}
		/* M_KEEP_TICKET: the answer and a ticket leave in one segment,
		 * so they arrive with one epoll edge. */
		int cork = 1;
		if (mode == M_KEEP_TICKET)
			setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &cork,
				   sizeof(cork));
		c_puts(c, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"
			  "Hello WORLD");
		if (mode == M_KEEP_TICKET) {
			send_ticket(c);
			cork = 0;
			setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &cork,
				   sizeof(cork));
		}
		if (mode == M_KEEP_IDLE || mode == M_KEEP_JUNK)
			usleep(20000); /* the client reads and parks first */
		if (mode == M_KEEP_IDLE)
			return;
		if (mode == M_KEEP_JUNK) {
			c_puts(c, "HTTP/1.1 408 Request Timeout\r\n\r\n");
			wait_close(s, c);
			return;
		}
	}
}

static void http_session(srv *s, conn *c, int mode)
{
	char head[4096], resp[512];
	if (mode >= M_KEEP) {
		keep_session(s, c, mode);
		return;
	}
	if (!read_head(c, head, sizeof(head)))
		return;
	record(s, head);
	switch (mode) {
	case M_OK:
		c_puts(c, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"
			  "Hello WORLD");
		break;
	case M_500:
		c_puts(c, "HTTP/1.1 500 Internal Server Error\r\n"
			  "Content-Length: 4\r\n\r\noops");
		break;
	case M_204:
		c_puts(c, "HTTP/1.1 204 No Content\r\n\r\n");
		break;
	case M_301:
		c_puts(c, "HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\n"
			  "Content-Length: 0\r\n\r\n");
		break;
	case M_CHUNKED:
		c_puts(c,
		       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		       "3\r\nhel\r\n5;ext=1\r\nlo wo\r\n");
		/* Let the rest arrive in another read. */
		usleep(20000);
		c_puts(c, "3\r\nrld\r\n0\r\n\r\n");
		break;
	case M_BIG: {
		static char body[20000];
		memset(body, 'a', sizeof(body));
		int at = atomic_load(&s->needle_at);
		memcpy(body + at, "NEEDLE", 6);
		snprintf(resp, sizeof(resp),
			 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
			 sizeof(body));
		c_puts(c, resp);
		c_write(c, body, sizeof(body));
		break;
	}
	case M_EOF:
		c_puts(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
			  "the body ends at close");
		break;
	case M_REDIRECT: {
		const char *path = s->paths[s->npaths - 1];
		if (strcmp(path, "/start") == 0)
			c_puts(c, "HTTP/1.1 302 Found\r\nLocation: "
				  "http://elsewhere.invalid:9/next?x=1#frag\r\n"
				  "Content-Length: 0\r\n\r\n");
		else if (strcmp(path, "/next?x=1") == 0)
			c_puts(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"
				  "done");
		else
			c_puts(c, "HTTP/1.1 404 Not Found\r\n"
				  "Content-Length: 0\r\n\r\n");
		break;
	}
	case M_LOOP:
		c_puts(c, "HTTP/1.1 302 Found\r\nLocation: /loop\r\n"
			  "Content-Length: 0\r\n\r\n");
		break;
	case M_SLOW:
		wait_close(s, c);
		break;
	case M_GARBAGE:
		c_puts(c, "hello there\r\n\r\n");
		break;
	case M_CLOSE:
		break;
	case M_INTERIM:
		c_puts(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
			  "Content-Length: 2\r\n\r\nok");
		break;
	case M_HEAD:
		c_puts(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
		break;
	default:
		break;
	}
}

static void *srv_main(void *arg)
{
	srv *s = arg;
	for (;;) {
		int fd = accept(s->lfd, NULL, NULL);
		if (fd < 0) {
			if (atomic_load(&s->stop))
				return NULL;
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;
		}
		atomic_fetch_add(&s->nconn, 1);
		struct timeval tv = {.tv_sec = 3};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		conn c = {.fd = fd};
		if (s->tls) {
			int d = atomic_load(&s->hs_delay_ms);
			if (d)
				usleep((useconds_t)d * 1000);
			c.ssl = SSL_new(s->tls);
			SSL_set_fd(c.ssl, fd);
			if (SSL_accept(c.ssl) != 1) {
				ERR_clear_error();
				SSL_free(c.ssl);
				close(fd);
				continue;
			}
			if (SSL_session_reused(c.ssl))
				atomic_fetch_add(&s->nresumed, 1);
			const char *sni = SSL_get_servername(
			    c.ssl, TLSEXT_NAMETYPE_host_name);
			pthread_mutex_lock(&s->mu);
			snprintf(s->last_sni, sizeof(s->last_sni), "%s",
				 sni ? sni : "");
			pthread_mutex_unlock(&s->mu);
		}
		int mode = atomic_load(&s->mode);
		if (mode >= M_SMTP_OK)
			smtp_session(s, &c, mode);
		else
			http_session(s, &c, mode);
		if (c.ssl) {
			SSL_shutdown(c.ssl);
			SSL_free(c.ssl);
		}
		ERR_clear_error();
		close(fd);
	}
}

static void srv_start(srv *s, int mode, SSL_CTX *tls)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	atomic_store(&s->mode, mode);
	s->tls = tls;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 128), 0);
	int port = core_sock_local_port(s->lfd);
	assert_true(port > 0);
	s->port = (uint16_t)port;
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_stop(srv *s)
{
	atomic_store(&s->stop, true);
	shutdown(s->lfd, SHUT_RDWR); /* wakes accept() */
	pthread_join(s->th, NULL);
	close(s->lfd);
	pthread_mutex_destroy(&s->mu);
}

/* A port nothing listens on: bound, then closed. */
static uint16_t closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	int port = core_sock_local_port(fd);
	close(fd);
	return (uint16_t)port;
}

/* ---- a self-signed certificate, made now ---- */

static SSL_CTX *server_tls_until(long seconds, const char *ca_out)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	assert_non_null(key);
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), seconds);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1,
				   0);
	X509_set_issuer_name(x, name);
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(
	    NULL, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	if (ca_out) { /* the certificate is its own trust anchor */
		FILE *f = fopen(ca_out, "w");
		assert_non_null(f);
		assert_int_equal(PEM_write_X509(f, x), 1);
		assert_int_equal(fclose(f), 0);
	}

	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

static SSL_CTX *server_tls(void)
{
	return server_tls_until(3600, NULL);
}

/* ---- running one probe ---- */

static cfg_monitor mon;
static cfg_origin origin;
static cfg_header mon_hdrs[4];
static const char *hdr_vals[4][2];
static cfg_header origin_hdrs[1];
static const char *origin_host_val[1];

static void set_origin(uint16_t port)
{
	memset(&origin, 0, sizeof(origin));
	origin.name = "o1";
	origin.address = "127.0.0.1";
	origin.port = port;
	origin.enabled = true;
	origin.weight = 1;
	char text[32];
	snprintf(text, sizeof(text), "127.0.0.1:%u", port);
	assert_int_equal(core_sock_parse_addr(text, &origin.ss, &origin.sslen),
			 0);
}

static void set_monitor(cfg_monitor_type type)
{
	memset(&mon, 0, sizeof(mon));
	mon.id = "m";
	mon.type = type;
	mon.method = "GET";
	mon.path = "/";
	mon.timeout_ms = 5000; /* generous: passing probes must not flake */
	mon.retries = 0;
	mon.interval_ms = 1000;
	mon.expected_codes = "200";
	mon.consecutive_up = 1;
	mon.consecutive_down = 1;
}

static void add_header(const char *name, const char *value)
{
	size_t i = mon.nheaders++;
	hdr_vals[i][0] = value;
	mon_hdrs[i] =
	    (cfg_header){.name = name, .values = hdr_vals[i], .nvalues = 1};
	mon.headers = mon_hdrs;
}

typedef struct probe_run {
	core_loop *loop;
	int calls;
	health_result res;
} probe_run;

static void on_probe(health_probe *p, const health_result *r)
{
	probe_run *pr = p->arg;
	pr->calls++;
	pr->res = *r;
	pr->loop->stop = true;
}

static health_result run_probe(void)
{
	core_loop loop;
	health_probe_ctx ctx;
	health_probe p;
	probe_run pr = {.loop = &loop};
	memset(&p, 0, sizeof(p));
	assert_int_equal(core_loop_init(&loop), 0);
	health_probe_ctx_init(&ctx, &loop);
	health_probe_start(&p, &ctx, &mon, &origin, on_probe, &pr);
	assert_int_equal(pr.calls, 0); /* never from inside start */
	assert_true(health_probe_running(&p));
	assert_int_equal(core_loop_run(&loop), 0);
	assert_int_equal(pr.calls, 1);
	assert_false(health_probe_running(&p));
	assert_int_equal(ctx.bufs.in_use, 0);
	health_probe_ctx_destroy(&ctx);
	core_loop_destroy(&loop);
	return pr.res;
}

static void expect(health_result r, health_reason why, const char *detail)
{
	if (getenv("HEALTH_TEST_VERBOSE"))
		print_message("  -> %s: %s (status %d, rtt %u us)\n",
			      r.reason ? health_reason_text(r.reason) : "ok",
			      r.detail, r.status, r.rtt_us);
	if (r.reason != why)
		print_error("reason %d (%s: %s), want %d\n", r.reason,
			    health_reason_text(r.reason), r.detail, why);
	assert_int_equal(r.reason, why);
	if (detail && !strstr(r.detail, detail)) {
		print_error("detail '%s' lacks '%s'\n", r.detail, detail);
		fail();
	}
	if (why == HEALTH_OK)
		assert_true(r.rtt_us > 0);
}

static srv S;

/* The keep-alive tests run twice: on epoll alone, and with an io_uring on
 * the loop (setup_ring), whose receive buffers are made tiny so that one
 * answer spans several and uses them all up. */
static bool use_ring;

static health_result probe_mode(int mode)
{
	srv_start(&S, mode, NULL);
	set_origin(S.port);
	health_result r = run_probe();
	srv_stop(&S);
	return r;
}

static int setup(void **state)
{
	set_monitor(CFG_MON_HTTP);
	memset(&S, 0, sizeof(S));
	use_ring = false;
	return 0;
}

static int setup_ring(void **state)
{
	setup(state);
	use_ring = true;
	return 0;
}

/* ---- keep-alive: several probes sharing one ctx and one idle slot ---- */

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		n++;
		if (getenv("FD_DEBUG")) {
			char path[300], to[300];
			snprintf(path, sizeof(path), "/proc/self/fd/%s",
				 e->d_name);
			ssize_t l = readlink(path, to, sizeof(to) - 1);
			to[l > 0 ? l : 0] = 0;
			print_message("fd %s -> %s\n", e->d_name, to);
		}
	}
	closedir(d);
	return n;
}

typedef struct ka_run {
	core_loop loop;
	health_probe_ctx ctx;
	health_idle idle;
} ka_run;

static void ka_init(ka_run *k)
{
	assert_int_equal(core_loop_init(&k->loop), 0);
	if (use_ring) {
		int err = core_ring_attach(&k->loop, 64, 4, 64);
		if (err < 0) {
			print_message("io_uring unavailable: %s\n",
				      strerror(-err));
			core_loop_destroy(&k->loop);
			skip();
		}
	}
	health_probe_ctx_init(&k->ctx, &k->loop);
	k->idle = (health_idle)HEALTH_IDLE_INIT;
}

/* Checks after the first went through the ring (when there is one). */
static void assert_ring_used(const ka_run *k, uint64_t n)
{
	assert_int_equal(k->ctx.nring, use_ring ? n : 0);
}

static health_result ka_probe(ka_run *k)
{
	health_probe p;
	probe_run pr = {.loop = &k->loop};
	memset(&p, 0, sizeof(p));
	k->loop.stop = false;
	/* As a checker's timer would see it: a test may have slept. */
	k->loop.now = core_now_ms();
	health_probe_start_idle(&p, &k->ctx, &mon, &origin, &k->idle, on_probe,
				&pr);
	assert_int_equal(pr.calls, 0);
	assert_int_equal(core_loop_run(&k->loop), 0);
	assert_int_equal(pr.calls, 1);
	assert_int_equal(k->ctx.bufs.in_use, 0);
	return pr.res;
}

static void ka_destroy(ka_run *k)
{
	health_idle_destroy(&k->ctx, &k->idle);
	assert_int_equal(k->ctx.nidle, 0);
	assert_int_equal(k->idle.io.fd, -1);
	assert_null(k->idle.req);
	health_probe_ctx_destroy(&k->ctx);
	core_loop_destroy(&k->loop);
}

/* The server sees one connection for three checks, and requests without
 * "Connection: close". */
static void test_keepalive_reuse(void **state)
{
	int fds = count_fds();
	srv_start(&S, M_KEEP, NULL);
	set_origin(S.port);
	ka_run k;
	ka_init(&k);
	for (int i = 0; i < 3; i++) {
		expect(ka_probe(&k), HEALTH_OK, NULL);
		assert_true(k.idle.io.fd >= 0);
	}
	assert_int_equal(atomic_load(&S.nconn), 1);
	assert_int_equal(S.npaths, 3);
	assert_null(strstr(S.last_req, "Connection"));
	assert_ring_used(&k, 2);
	ka_destroy(&k);
	srv_stop(&S);
	assert_int_equal(count_fds(), fds);
}

/* An answer longer than a receive buffer (on the ring: many, more than
 * there are), chunked, its expected body at the very end: every check
 * passes on the one kept connection. */
static void test_keepalive_big_answer(void **state)
{
	int fds = count_fds();
	srv_start(&S, M_KEEP_BIG, NULL);
	set_origin(S.port);
	mon.expected_body = "needle";
	ka_run k;
	ka_init(&k);
	for (int i = 0; i < 4; i++) {
		expect(ka_probe(&k), HEALTH_OK, NULL);
		assert_true(k.idle.io.fd >= 0);
	}
	assert_int_equal(atomic_load(&S.nconn), 1);
	assert_ring_used(&k, 3);
	/* The body must really be searched: a needle that is not there. */
	mon.expected_body = "haystack";
	expect(ka_probe(&k), HEALTH_BODY_MISMATCH, NULL);
	ka_destroy(&k);
	srv_stop(&S);
	assert_int_equal(count_fds(), fds);
}

/* A check on a kept connection that times out (the origin stops
 * answering but keeps the connection): a timeout verdict, the connection
 * is dropped, and the next check connects afresh. */
static void test_keepalive_timeout(void **state)
{
	int fds = count_fds();
	srv_start(&S, M_KEEP, NULL);
	set_origin(S.port);
	ka_run k;
	ka_init(&k);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	atomic_store(&S.mode, M_SLOW); /* the session stops answering */
	mon.timeout_ms = 200;
	expect(ka_probe(&k), HEALTH_TIMEOUT, "timed out");
	assert_int_equal(k.idle.io.fd, -1);
	assert_int_equal(k.ctx.nidle, 0);
	atomic_store(&S.mode, M_KEEP);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_int_equal(atomic_load(&S.nconn), 2);
	ka_destroy(&k);
	srv_stop(&S);
	assert_int_equal(count_fds(), fds);
}

/* Not parked: an EOF-framed answer, and tcp checks. */
static void test_keepalive_not_parked(void **state)
{
	srv_start(&S, M_EOF, NULL);
	set_origin(S.port);
	ka_run k;
	ka_init(&k);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_int_equal(k.idle.io.fd, -1);
	assert_null(strstr(S.last_req, "Connection: close"));
	srv_stop(&S);
	srv_start(&S, M_KEEP, NULL);
	set_origin(S.port);
	set_monitor(CFG_MON_TCP);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_int_equal(k.idle.io.fd, -1);
	ka_destroy(&k);
	srv_stop(&S);
}

/* An origin that closes idle connections, before the next check or at its
 * request: still healthy, through a fresh connection. */
static void test_keepalive_origin_closes(void **state)
{
	int fds = count_fds();
	srv_start(&S, M_KEEP_IDLE, NULL);
	set_origin(S.port);
	ka_run k;
	ka_init(&k);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	usleep(50000); /* the close arrives while parked */
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_int_equal(atomic_load(&S.nconn), 2);
	srv_stop(&S);

	/* Closed at the request itself: the reused connection fails before
	 * any response byte, and the probe retries on a fresh one. */
	srv_start(&S, M_KEEP_ONCE, NULL);
	set_origin(S.port);
	health_idle_destroy(&k.ctx, &k.idle); /* another origin: new slot */
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_true(k.idle.io.fd >= 0);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_int_equal(atomic_load(&S.nconn), 2);
	assert_int_equal(S.npaths, 2);
	ka_destroy(&k);
	srv_stop(&S);
	assert_int_equal(count_fds(), fds);
}

/* Run k's loop (no probe) until its parked connection is gone, at most
 * 2 s. */
typedef struct park_watch {
	core_timer tick;
	ka_run *k;
	uint64_t deadline;
} park_watch;

static void park_tick(core_timer *t)
{
	park_watch *w = container_of(t, park_watch, tick);
	if (w->k->idle.io.fd < 0 || w->k->loop.now >= w->deadline)
		w->k->loop.stop = true;
	else
		core_timer_after(&w->k->loop, t, 5);
}

static void run_until_unparked(ka_run *k)
{
	park_watch w = {.k = k, .deadline = core_now_ms() + 2000};
	core_timer_init(&w.tick, park_tick);
	k->loop.stop = false;
	k->loop.now = core_now_ms();
	core_timer_after(&k->loop, &w.tick, 5);
	assert_int_equal(core_loop_run(&k->loop), 0);
	core_timer_cancel(&k->loop, &w.tick);
}

/* A parked connection stays on the loop: when the origin closes it, or
 * sends bytes nobody asked for, between two checks, the checker's loop
 * closes it at once (no check needed to notice), and the next check opens
 * a fresh connection and parks that one. */
static void test_keepalive_closed_while_parked(void **state)
{
	static const int modes[] = {M_KEEP_IDLE, M_KEEP_JUNK};
	int fds = count_fds();
	for (size_t i = 0; i < ARRAY_LEN(modes); i++) {
		srv_start(&S, modes[i], NULL);
		set_origin(S.port);
		ka_run k;
		ka_init(&k);
		expect(ka_probe(&k), HEALTH_OK, NULL);
		assert_true(k.idle.io.fd >= 0);
		assert_int_equal(k.ctx.nidle, 1);
		run_until_unparked(&k);
		assert_int_equal(k.idle.io.fd, -1);
		assert_int_equal(k.ctx.nidle, 0);
		/* The new connection is parked in turn unless the origin's
		 * close already came with the answer. */
		expect(ka_probe(&k), HEALTH_OK, NULL);
		assert_int_equal(k.ctx.nidle, k.idle.io.fd >= 0 ? 1 : 0);
		assert_int_equal(atomic_load(&S.nconn), 2);
		assert_int_equal(S.npaths, 2);
		ka_destroy(&k);
		srv_stop(&S);
	}
	assert_int_equal(count_fds(), fds);
}

/* An origin killed between checks: the verdict of a fresh connection. */
static void test_keepalive_origin_killed(void **state)
{
	int fds = count_fds();
	srv_start(&S, M_KEEP, NULL);
	set_origin(S.port);
	ka_run k;
	ka_init(&k);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_true(k.idle.io.fd >= 0);
	srv_stop(&S);
	health_result r = ka_probe(&k);
	expect(r, HEALTH_CONNECT_FAILED, "Connection refused");
	assert_string_equal(r.detail, "Connection refused");
	assert_int_equal(k.idle.io.fd, -1);
	ka_destroy(&k);
	assert_int_equal(count_fds(), fds);
}

/* ---- HTTP probes ---- */

static void test_http_ok_and_request(void **state)
{
	mon.path = "/health?full=1";
	add_header("X-Probe", "a");
	add_header("User-Agent", "curl/8");	 /* cannot be replaced */
	add_header("X-Bad", "a\r\nInjected: 1"); /* never sent */
	health_result r = probe_mode(M_OK);
	expect(r, HEALTH_OK, NULL);
	assert_int_equal(r.status, 200);
	char want[256];
	snprintf(want, sizeof(want),
		 "GET /health?full=1 HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
		 "User-Agent: Meridian-Health-Check/1\r\n"
		 "X-Probe: a\r\nConnection: close\r\n\r\n",
		 S.port);
	assert_string_equal(S.last_req, want);
}

static void test_http_host_override(void **state)
{
	/* The monitor's Host header; the origin's own, when it has one,
	 * wins over it (Cloudflare: the endpoint's override takes
	 * precedence). */
	srv_start(&S, M_OK, NULL);
	set_origin(S.port);
	add_header("Host", "monitor.example");
	expect(run_probe(), HEALTH_OK, NULL);
	assert_non_null(strstr(S.last_req, "\r\nHost: monitor.example\r\n"));
	origin_host_val[0] = "origin.example";
	origin_hdrs[0] = (cfg_header){
	    .name = "host", .values = origin_host_val, .nvalues = 1};
	origin.headers = origin_hdrs;
	origin.nheaders = 1;
	expect(run_probe(), HEALTH_OK, NULL);
	assert_non_null(strstr(S.last_req, "\r\nHost: origin.example\r\n"));
	srv_stop(&S);
}

static void test_http_code_mismatch(void **state)
{
	health_result r = probe_mode(M_500);
	expect(r, HEALTH_CODE_MISMATCH, "HTTP 500, expected 200");
	assert_int_equal(r.status, 500);
	assert_int_equal(r.rtt_us, 0);
}

static void test_http_expected_codes(void **state)
{
	mon.expected_codes = "2xx";
	expect(probe_mode(M_204), HEALTH_OK, NULL);
	mon.expected_codes = "200,301";
	expect(probe_mode(M_301), HEALTH_OK, NULL); /* not followed */
	mon.expected_codes = "200";
	expect(probe_mode(M_301), HEALTH_CODE_MISMATCH, "HTTP 301");
}

static void test_http_body_match(void **state)
{
	mon.expected_body = "world";
	expect(probe_mode(M_OK), HEALTH_OK, NULL);
	mon.expected_body = "hello world!";
	expect(probe_mode(M_OK), HEALTH_BODY_MISMATCH, "not found");
	/* Across chunks and reads, case-insensitively. */
	mon.expected_body = "LO WOR";
	expect(probe_mode(M_CHUNKED), HEALTH_OK, NULL);
	mon.expected_body = "ends AT CLOSE";
	expect(probe_mode(M_EOF), HEALTH_OK, NULL);
}

static void test_http_body_first_10k_only(void **state)
{
	mon.expected_body = "needle";
	srv_start(&S, M_BIG, NULL);
	set_origin(S.port);
	atomic_store(&S.needle_at, HEALTH_BODY_MAX - 6); /* last bytes kept */
	expect(run_probe(), HEALTH_OK, NULL);
	atomic_store(&S.needle_at, HEALTH_BODY_MAX - 3); /* straddles */
	expect(run_probe(), HEALTH_BODY_MISMATCH, "10240 bytes");
	atomic_store(&S.needle_at, 15000);
	expect(run_probe(), HEALTH_BODY_MISMATCH, NULL);
	srv_stop(&S);
}

static void test_http_redirects(void **state)
{
	mon.follow_redirects = true;
	mon.path = "/start";
	health_result r = probe_mode(M_REDIRECT);
	expect(r, HEALTH_OK, NULL);
	/* Same address and port; only the path and query were taken. */
	assert_int_equal(S.npaths, 2);
	assert_string_equal(S.paths[0], "/start");
	assert_string_equal(S.paths[1], "/next?x=1");

	mon.path = "/loop";
	r = probe_mode(M_LOOP);
	expect(r, HEALTH_CODE_MISMATCH, "more than 5 redirects");
	assert_int_equal(atomic_load(&S.nconn), HEALTH_MAX_REDIRECTS + 1);

	mon.follow_redirects = false;
	mon.path = "/start";
	expect(probe_mode(M_REDIRECT), HEALTH_CODE_MISMATCH, "HTTP 302");
}

static void test_http_timeout(void **state)
{
	mon.timeout_ms = 200;
	srv_start(&S, M_SLOW, NULL);
	set_origin(S.port);
	uint64_t t0 = core_now_ms();
	expect(run_probe(), HEALTH_TIMEOUT,
	       "waiting for the response timed out after 200 ms");
	assert_true(core_now_ms() - t0 >= 190);
	srv_stop(&S);
}

static void test_http_connection_refused(void **state)
{
	set_origin(closed_port());
	expect(run_probe(), HEALTH_CONNECT_FAILED, "refused");
}

static void test_http_protocol_errors(void **state)
{
	expect(probe_mode(M_GARBAGE), HEALTH_PROTOCOL_ERROR,
	       "invalid response");
	expect(probe_mode(M_CLOSE), HEALTH_PROTOCOL_ERROR,
	       "closed without response");
}

static void test_http_interim_and_head(void **state)
{
	expect(probe_mode(M_INTERIM), HEALTH_OK, NULL);
	mon.method = "HEAD";
	expect(probe_mode(M_HEAD), HEALTH_OK, NULL);
	assert_memory_equal(S.last_req, "HEAD / HTTP/1.1\r\n", 17);
	mon.method = "POST";
	expect(probe_mode(M_OK), HEALTH_OK, NULL);
	assert_non_null(strstr(S.last_req, "\r\nContent-Length: 0\r\n"));
}

static void test_monitor_port_override(void **state)
{
	srv_start(&S, M_OK, NULL);
	set_origin(closed_port());
	mon.port = S.port;
	expect(run_probe(), HEALTH_OK, NULL);
	srv_stop(&S);
}

/* ---- HTTPS ---- */

static void test_https(void **state)
{
	SSL_CTX *tls = server_tls();
	srv_start(&S, M_OK, tls);
	set_origin(S.port);
	set_monitor(CFG_MON_HTTPS);

	mon.allow_insecure = true;
	time_t t0 = time(NULL);
	health_result r = run_probe();
	expect(r, HEALTH_OK, NULL);
	/* The certificate lives an hour from its making. */
	assert_true(r.tls_not_after >= t0 + 3590);
	assert_true(r.tls_not_after <= time(NULL) + 3601);
	assert_string_equal(S.last_sni, ""); /* an IP: no SNI */
	assert_non_null(strstr(S.last_req, "GET / HTTP/1.1\r\n"));

	add_header("Host", "localhost:8443");
	expect(run_probe(), HEALTH_OK, NULL);
	assert_string_equal(S.last_sni, "localhost");

	/* Verified against the system store: a self-signed cert fails; the
	 * result still has its expiry. */
	mon.allow_insecure = false;
	r = run_probe();
	expect(r, HEALTH_TLS_ERROR, "certificate");
	assert_true(r.tls_not_after >= t0 + 3590);
	mon.nheaders = 0;
	expect(run_probe(), HEALTH_TLS_ERROR, "certificate");
	mon.allow_insecure = true;

	/* RTT is request to answer, on a fresh connection as on a kept
	 * one: a handshake the server delays 1.5 s is not in it (else
	 * dynamic_latency would favour origins that keep connections). */
	atomic_store(&S.hs_delay_ms, 1500);
	r = run_probe();
	expect(r, HEALTH_OK, NULL);
	assert_true(r.rtt_us < 1000000);
	atomic_store(&S.hs_delay_ms, 0);
	srv_stop(&S);

	/* TLS against a server that speaks first, in plain text. */
	mon.allow_insecure = true;
	srv_start(&S, M_SMTP_554, NULL);
	set_origin(S.port);
	expect(run_probe(), HEALTH_TLS_ERROR, NULL);
	srv_stop(&S);
	SSL_CTX_free(tls);
}

/* ---- HTTPS keep-alive and session resumption ---- */

static void tls_counts(uint64_t *full, uint64_t *resumed)
{
	health_probe_tls_counts(full, resumed);
}

/* Run k's loop (no probe) for ms milliseconds. */
static void run_for(ka_run *k, uint64_t ms)
{
	park_watch w = {.k = k, .deadline = core_now_ms() + ms};
	core_timer_init(&w.tick, park_tick);
	k->loop.stop = false;
	k->loop.now = core_now_ms();
	core_timer_after(&k->loop, &w.tick, 5);
	assert_int_equal(core_loop_run(&k->loop), 0);
	core_timer_cancel(&k->loop, &w.tick);
}

/* The ticket of the parked connection's current session. */
static size_t ticket_of(SSL *ssl, unsigned char *out, size_t cap)
{
	const unsigned char *t = NULL;
	size_t len = 0;
	SSL_SESSION_get0_ticket(SSL_get_session(ssl), &t, &len);
	len = len < cap ? len : cap;
	if (len)
		memcpy(out, t, len);
	return len;
}

/* https checks keep their TLS connection: one handshake for three checks,
 * never on the ring (OpenSSL reads the socket). A session ticket that
 * arrives with the answer (M_KEEP_TICKET) or while the connection is
 * parked (ticket_now) is taken in and the connection stays; application
 * bytes while parked close it. */
static void test_https_keepalive(void **state)
{
	static const int modes[] = {M_KEEP, M_KEEP_TICKET};
	int fds = count_fds();
	SSL_CTX *tls = server_tls();
	for (size_t i = 0; i < ARRAY_LEN(modes); i++) {
		srv_start(&S, modes[i], tls);
		set_origin(S.port);
		set_monitor(CFG_MON_HTTPS);
		mon.allow_insecure = true;
		uint64_t f0, r0, f1, r1;
		tls_counts(&f0, &r0);
		ka_run k;
		ka_init(&k);
		for (int j = 0; j < 3; j++) {
			expect(ka_probe(&k), HEALTH_OK, NULL);
			assert_true(k.idle.io.fd >= 0);
			assert_non_null(k.idle.ssl);
			/* Parked with nothing left in the socket. */
			char b;
			assert_int_equal(
			    recv(k.idle.io.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT),
			    -1);
			/* A new ticket reaches the parked connection and is
			 * taken in; the connection stays. */
			unsigned char t0[512], t1[512];
			size_t l0 = ticket_of(k.idle.ssl, t0, sizeof(t0));
			atomic_store(&S.ticket_now, true);
			for (int w = 0;; w++) {
				assert_true(w < 40);
				run_for(&k, 50);
				assert_true(k.idle.io.fd >= 0);
				size_t l1 =
				    ticket_of(k.idle.ssl, t1, sizeof(t1));
				if (l1 != l0 || memcmp(t0, t1, l0))
					break;
			}
		}
		assert_int_equal(atomic_load(&S.nconn), 1);
		assert_int_equal(S.npaths, 3);
		assert_null(strstr(S.last_req, "Connection"));
		tls_counts(&f1, &r1);
		assert_int_equal(f1 - f0, 1);
		assert_int_equal(r1 - r0, 0);
		assert_int_equal(k.ctx.nreuse, 2);
		assert_int_equal(k.ctx.nring, 0);
		ka_destroy(&k);
		srv_stop(&S);
	}

	/* Bytes nobody asked for while parked: closed, the next check
	 * connects afresh (and resumes the session). */
	srv_start(&S, M_KEEP, tls);
	set_origin(S.port);
	ka_run k;
	ka_init(&k);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_non_null(k.idle.ssl);
	atomic_store(&S.junk_now, true);
	run_until_unparked(&k);
	assert_int_equal(k.idle.io.fd, -1);
	assert_null(k.idle.ssl);
	assert_int_equal(k.ctx.nidle, 0);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_int_equal(atomic_load(&S.nconn), 2);
	assert_int_equal(atomic_load(&S.nresumed), 1);
	ka_destroy(&k);
	srv_stop(&S);
	SSL_CTX_free(tls);
	assert_int_equal(count_fds(), fds);
}

/* An origin that closes every connection after its answer: each check
 * connects again and resumes the previous session (TLS 1.3 and 1.2),
 * and the handshake counters say so. */
static void test_https_resumes_session(void **state)
{
	static const int versions[] = {TLS1_3_VERSION, TLS1_2_VERSION};
	int fds = count_fds();
	for (size_t i = 0; i < ARRAY_LEN(versions); i++) {
		SSL_CTX *tls = server_tls();
		SSL_CTX_set_max_proto_version(tls, versions[i]);
		srv_start(&S, M_EOF, tls);
		set_origin(S.port);
		set_monitor(CFG_MON_HTTPS);
		mon.allow_insecure = true;
		uint64_t f0, r0, f1, r1;
		tls_counts(&f0, &r0);
		ka_run k;
		ka_init(&k);
		for (int j = 0; j < 4; j++) {
			expect(ka_probe(&k), HEALTH_OK, NULL);
			assert_int_equal(k.idle.io.fd, -1); /* EOF-framed */
			assert_non_null(k.idle.sess);
		}
		assert_int_equal(atomic_load(&S.nconn), 4);
		assert_int_equal(atomic_load(&S.nresumed), 3);
		tls_counts(&f1, &r1);
		assert_int_equal(f1 - f0, 1);
		assert_int_equal(r1 - r0, 3);
		ka_destroy(&k);
		assert_null(k.idle.sess);
		srv_stop(&S);
		SSL_CTX_free(tls);
	}
	assert_int_equal(count_fds(), fds);
}

/* A verified origin whose certificate expires while its connection is
 * kept: the next check does not reuse the connection (nor resume the
 * session), makes a full handshake and reports the expired certificate. */
static void test_https_kept_connection_expires(void **state)
{
	char ca[64];
	snprintf(ca, sizeof(ca), "/tmp/meridian-hp-ca.%d.pem", (int)getpid());
	/* 5 s: room for the first two checks on a busy machine (ASan). */
	time_t t0 = time(NULL);
	SSL_CTX *tls = server_tls_until(5, ca);
	time_t t1 = time(NULL);
	srv_start(&S, M_KEEP, tls);
	set_origin(S.port);
	set_monitor(CFG_MON_HTTPS);
	cfg_origin_tls ot = {.enabled = true, .ca = ca};
	origin.tls = &ot;
	ka_run k;
	ka_init(&k);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_int_equal(atomic_load(&S.nconn), 1);
	uint64_t wall = core_wall_ms();
	assert_true(k.idle.tls_trust_until > wall);
	assert_true(k.idle.tls_trust_until <= wall + 6000);
	/* Past notAfter (whole seconds). */
	for (int i = 0; i < 100 && time(NULL) <= t1 + 6; i++)
		usleep(100000);
	health_result r = ka_probe(&k);
	expect(r, HEALTH_TLS_ERROR, "certificate has expired");
	assert_true(r.tls_not_after >= t0 + 4 && r.tls_not_after <= t1 + 6);
	assert_true(r.tls_not_after < time(NULL));
	assert_int_equal(atomic_load(&S.nconn), 2);
	assert_int_equal(atomic_load(&S.nresumed), 0);
	assert_null(k.idle.sess);
	ka_destroy(&k);
	srv_stop(&S);
	SSL_CTX_free(tls);
	unlink(ca);
	origin.tls = NULL;
}

/* Kept connections and sessions serve verifying checks for at most
 * HEALTH_TLS_REVERIFY_MS after the full handshake that verified the chain
 * (a resumption verifies nothing); then a check makes a full handshake
 * again. A handshake that fails forgets the session. */
static void test_https_reverifies(void **state)
{
	char ca[64];
	snprintf(ca, sizeof(ca), "/tmp/meridian-hp-ca2.%d.pem", (int)getpid());
	SSL_CTX *tls = server_tls_until(7200, ca);
	srv_start(&S, M_KEEP, tls);
	set_origin(S.port);
	set_monitor(CFG_MON_HTTPS);
	cfg_origin_tls ot = {.enabled = true, .ca = ca};
	origin.tls = &ot;
	uint64_t f0, r0, f1, r1;
	tls_counts(&f0, &r0);
	ka_run k;
	ka_init(&k);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	/* The hour runs on the loop's clock; the certificate (2 h) on the
	 * wall clock. */
	assert_true(k.idle.tls_reverify_at <=
		    core_now_ms() + HEALTH_TLS_REVERIFY_MS);
	assert_true(k.idle.tls_reverify_at + 60000 >
		    core_now_ms() + HEALTH_TLS_REVERIFY_MS);
	assert_true(k.idle.tls_trust_until > core_wall_ms() + 7000 * 1000);
	assert_true(k.idle.tls_trust_until <= core_wall_ms() + 7200 * 1000);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_int_equal(atomic_load(&S.nconn), 1);
	/* The hour is over (made so): neither the kept connection nor the
	 * session serves the next check; it verifies again. */
	k.idle.tls_reverify_at = 0;
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_int_equal(atomic_load(&S.nconn), 2);
	assert_int_equal(atomic_load(&S.nresumed), 0);
	tls_counts(&f1, &r1);
	assert_int_equal(f1 - f0, 2);
	assert_int_equal(r1 - r0, 0);
	assert_true(k.idle.tls_reverify_at > core_now_ms()); /* renewed */
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_int_equal(atomic_load(&S.nconn), 2);
	ka_destroy(&k);
	srv_stop(&S);

	/* allow_insecure: no expiry limit, but the hour holds too (the
	 * certificate's date it reports must follow a renewal). */
	srv_start(&S, M_KEEP, tls);
	set_origin(S.port);
	mon.allow_insecure = true;
	ka_init(&k);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_int_equal(k.idle.tls_trust_until, UINT64_MAX);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_int_equal(atomic_load(&S.nconn), 1);
	k.idle.tls_reverify_at = 0;
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_int_equal(atomic_load(&S.nconn), 2);
	ka_destroy(&k);
	srv_stop(&S);
	mon.allow_insecure = false;

	/* A session from a verified origin, then the origin's address
	 * serves a certificate the CA does not vouch for: the session is
	 * offered, not taken, the full handshake fails, and the session is
	 * gone. */
	srv_start(&S, M_EOF, tls);
	set_origin(S.port);
	origin.tls = &ot;
	ka_init(&k);
	expect(ka_probe(&k), HEALTH_OK, NULL);
	assert_non_null(k.idle.sess);
	srv_stop(&S);
	SSL_CTX *other = server_tls();
	srv_start(&S, M_EOF, other);
	set_origin(S.port);
	origin.tls = &ot;
	expect(ka_probe(&k), HEALTH_TLS_ERROR, "certificate");
	assert_null(k.idle.sess);
	ka_destroy(&k);
	srv_stop(&S);
	SSL_CTX_free(other);
	SSL_CTX_free(tls);
	unlink(ca);
	origin.tls = NULL;
}

/* ---- TCP and SMTP ---- */

static void test_tcp(void **state)
{
	set_monitor(CFG_MON_TCP);
	expect(probe_mode(M_SLOW), HEALTH_OK, NULL);
	set_origin(closed_port());
	expect(run_probe(), HEALTH_CONNECT_FAILED, "refused");
}

static void test_smtp(void **state)
{
	set_monitor(CFG_MON_SMTP);
	health_result r = probe_mode(M_SMTP_OK);
	expect(r, HEALTH_OK, NULL);
	assert_int_equal(r.status, 221);
	assert_memory_equal(S.last_req, "EHLO ", 5);
	assert_non_null(strstr(S.last_req, "\r\nQUIT\r\n"));

	r = probe_mode(M_SMTP_HELO);
	expect(r, HEALTH_OK, NULL);
	assert_non_null(strstr(S.last_req, "\r\nHELO "));

	expect(probe_mode(M_SMTP_554), HEALTH_PROTOCOL_ERROR,
	       "SMTP banner: 554 go away");
	expect(probe_mode(M_SMTP_JUNK), HEALTH_PROTOCOL_ERROR,
	       "not an SMTP reply");
	expect(probe_mode(M_SMTP_DROP), HEALTH_PROTOCOL_ERROR, "closed");
	mon.timeout_ms = 200;
	expect(probe_mode(M_SLOW), HEALTH_TIMEOUT, "SMTP dialogue timed out");
}

/* ---- pure helpers ---- */

static void test_redirect_path(void **state)
{
	char out[64];
	struct {
		const char *loc, *cur, *want;
	} ok[] = {
	    {"/a/b?c=1", "/", "/a/b?c=1"},
	    {"http://evil.example:8080/x?y#z", "/", "/x?y"},
	    {"HTTPS://h", "/", "/"},
	    {"https://h?q=1", "/", "/?q=1"},
	    {"//other/p", "/", "/p"},
	    {"next", "/dir/page?x=1", "/dir/next"},
	    {"next", "nodir", "/next"},
	    {"?q", "/a/b?old", "/a/b?q"},
	    {"/frag#only", "/", "/frag"},
	};
	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		int n = health_redirect_path(ok[i].loc, strlen(ok[i].loc),
					     ok[i].cur, out, sizeof(out));
		if (n < 0 || strcmp(out, ok[i].want))
			print_error("'%s' from '%s': %d '%s', want '%s'\n",
				    ok[i].loc, ok[i].cur, n, n < 0 ? "" : out,
				    ok[i].want);
		assert_int_equal(n, (int)strlen(ok[i].want));
		assert_string_equal(out, ok[i].want);
	}
	const char *bad[] = {"ftp://h/x", "javascript:alert(1)", "/a b",
			     "/a\x01", "http:/x"};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		assert_int_equal(health_redirect_path(bad[i], strlen(bad[i]),
						      "/", out, sizeof(out)),
				 -EINVAL);
	char small[4];
	assert_int_equal(
	    health_redirect_path("/abcd", 5, "/", small, sizeof(small)),
	    -ENOSPC);
}

static void test_host_and_sni(void **state)
{
	char b[128];
	set_origin(80);
	assert_int_equal(health_http_host(&mon, &origin, b, sizeof(b)), 9);
	assert_string_equal(b, "127.0.0.1");
	origin.port = 8080;
	health_http_host(&mon, &origin, b, sizeof(b));
	assert_string_equal(b, "127.0.0.1:8080");
	mon.port = 80; /* the monitor's port decides */
	health_http_host(&mon, &origin, b, sizeof(b));
	assert_string_equal(b, "127.0.0.1");
	mon.type = CFG_MON_HTTPS;
	mon.port = 443;
	origin.address = "::1";
	health_http_host(&mon, &origin, b, sizeof(b));
	assert_string_equal(b, "[::1]");
	mon.port = 0;
	health_http_host(&mon, &origin, b, sizeof(b));
	assert_string_equal(b, "[::1]:8080");
	assert_false(health_tls_name(&mon, &origin, b, sizeof(b)));
	origin.address = "api.example.com";
	assert_true(health_tls_name(&mon, &origin, b, sizeof(b)));
	assert_string_equal(b, "api.example.com");
	add_header("host", "front.example:8443");
	assert_true(health_tls_name(&mon, &origin, b, sizeof(b)));
	assert_string_equal(b, "front.example");
	health_http_host(&mon, &origin, b, sizeof(b));
	assert_string_equal(b, "front.example:8443");
	/* A fully qualified Host: the SNI and the name verified have no
	 * trailing dot (RFC 6066 §3; certificates name it without one), as
	 * the data plane's (cfg_origin.sni). */
	hdr_vals[0][0] = "front.example.:8443";
	assert_true(health_tls_name(&mon, &origin, b, sizeof(b)));
	assert_string_equal(b, "front.example");
	hdr_vals[0][0] = "front.example.";
	assert_true(health_tls_name(&mon, &origin, b, sizeof(b)));
	assert_string_equal(b, "front.example");
	hdr_vals[0][0] = ".";
	assert_false(health_tls_name(&mon, &origin, b, sizeof(b)));
	hdr_vals[0][0] = "10.0.0.1:80";
	assert_false(health_tls_name(&mon, &origin, b, sizeof(b)));
	hdr_vals[0][0] = "10.0.0.1.";
	assert_false(health_tls_name(&mon, &origin, b, sizeof(b)));
	assert_int_equal(health_http_host(&mon, &origin, b, 4), -ENOSPC);
}

static void test_request_head(void **state)
{
	char b[512];
	set_origin(80);
	add_header("Accept", "text/plain");
	hdr_vals[0][1] = "application/json";
	mon_hdrs[0].nvalues = 2;
	add_header("Connection", "keep-alive");
	int n = health_http_request(&mon, &origin, "GET", "/", b, sizeof(b));
	assert_true(n > 0);
	assert_string_equal(b, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			       "User-Agent: Meridian-Health-Check/1\r\n"
			       "Accept: text/plain\r\n"
			       "Accept: application/json\r\n"
			       "Connection: close\r\n\r\n");
	assert_int_equal(health_http_request(&mon, &origin, "GET", "/", b, 40),
			 -ENOSPC);
}

static void test_smtp_reply_parser(void **state)
{
	int code = 0;
	assert_int_equal(health_smtp_reply("220 hi\r\n", 8, &code), 8);
	assert_int_equal(code, 220);
	assert_int_equal(
	    health_smtp_reply("250-a\r\n250-b\r\n250 c\r\nX", 22, &code), 21);
	assert_int_equal(code, 250);
	assert_int_equal(health_smtp_reply("221\n", 4, &code), 4);
	assert_int_equal(code, 221);
	assert_int_equal(health_smtp_reply("250-a\r\n250 c", 12, &code), 0);
	assert_int_equal(health_smtp_reply("25", 2, &code), 0);
	assert_int_equal(health_smtp_reply("HTTP/1.1", 8, &code), -1);
	assert_int_equal(health_smtp_reply("2x0 hi\r\n", 8, &code), -1);
	assert_int_equal(health_smtp_reply("220+hi\r\n", 8, &code), -1);
	assert_int_equal(health_smtp_reply("22\r\n", 4, &code), -1);
}

static void test_body_contains(void **state)
{
	assert_true(health_body_contains("Hello WORLD", 11, "o w"));
	assert_true(health_body_contains("Hello WORLD", 11, "HELLO WORLD"));
	assert_true(health_body_contains("abc", 3, ""));
	assert_false(health_body_contains("Hello", 5, "Hello!"));
	assert_false(health_body_contains("aab", 2, "ab")); /* n bounds it */
	assert_true(health_body_contains("xx\0ab", 5, "AB"));
}

/* ---- the checker ---- */

typedef struct ev_rec {
	health_event_kind kind;
	char pool[32], origin[32];
	int from, to;
	char reason[HEALTH_REASON_MAX];
} ev_rec;

typedef struct ev_log {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	ev_rec evs[512];
	int n;
	pthread_t thread; /* where callbacks ran */
	bool thread_set, other_thread, bad_event;
} ev_log;

static int ev_count(ev_log *l)
{
	pthread_mutex_lock(&l->mu);
	int n = l->n;
	pthread_mutex_unlock(&l->mu);
	return n;
}

static void on_event(void *arg, const health_event *ev)
{
	ev_log *l = arg;
	pthread_mutex_lock(&l->mu);
	if (!l->thread_set) {
		l->thread = pthread_self();
		l->thread_set = true;
	} else if (!pthread_equal(l->thread, pthread_self())) {
		l->other_thread = true;
	}
	if (l->n < (int)ARRAY_LEN(l->evs)) {
		ev_rec *r = &l->evs[l->n++];
		r->kind = ev->kind;
		snprintf(r->pool, sizeof(r->pool), "%s", ev->pool_id);
		snprintf(r->origin, sizeof(r->origin), "%s",
			 ev->origin_name ? ev->origin_name : "");
		r->from = ev->old_state;
		r->to = ev->new_state;
		snprintf(r->reason, sizeof(r->reason), "%s", ev->reason);
		/* No cmocka asserts off the test thread: flag it. */
		if (ev->wall_ms < 1600000000000ull ||
		    (ev->kind == HEALTH_EV_POOL) != (ev->origin_name == NULL) ||
		    !ev->reason || !ev->pool)
			l->bad_event = true;
	}
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

static void ev_log_init(ev_log *l)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
}

static void ev_log_destroy(ev_log *l)
{
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
}

/* Wait (at most timeout_ms) for an event at index >= *from matching; on
 * success *from is set past it and the event returned. */
static const ev_rec *wait_event(ev_log *l, int *from, health_event_kind kind,
				const char *pool, const char *origin_name,
				int to, int timeout_ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&l->mu);
	for (;;) {
		for (int i = *from; i < l->n; i++) {
			ev_rec *r = &l->evs[i];
			if (r->kind == kind && strcmp(r->pool, pool) == 0 &&
			    strcmp(r->origin, origin_name ? origin_name : "") ==
				0 &&
			    r->to == to) {
				*from = i + 1;
				pthread_mutex_unlock(&l->mu);
				return r;
			}
		}
		if (pthread_cond_timedwait(&l->cv, &l->mu, &dl) == ETIMEDOUT)
			break;
	}
	for (int i = 0; i < l->n; i++)
		print_error("event %d: %s %s/%s %d -> %d (%s)\n", i,
			    l->evs[i].kind == HEALTH_EV_POOL ? "pool"
							     : "origin",
			    l->evs[i].pool, l->evs[i].origin, l->evs[i].from,
			    l->evs[i].to, l->evs[i].reason);
	pthread_mutex_unlock(&l->mu);
	print_error("no %s event %s/%s -> %d within %d ms\n",
		    kind == HEALTH_EV_POOL ? "pool" : "origin", pool,
		    origin_name ? origin_name : "", to, timeout_ms);
	fail();
	return NULL;
}

static int count_events(ev_log *l, health_event_kind kind, const char *name)
{
	int n = 0;
	pthread_mutex_lock(&l->mu);
	for (int i = 0; i < l->n; i++)
		if (l->evs[i].kind == kind &&
		    strcmp(kind == HEALTH_EV_POOL ? l->evs[i].pool
						  : l->evs[i].origin,
			   name) == 0)
			n++;
	pthread_mutex_unlock(&l->mu);
	return n;
}

#define WAIT_MS 10000 /* generous: a busy 2-core CI machine */

/* A hand-built snapshot: intervals below the config's 1 s minimum keep the
 * test short. Pool "a" (monitored): a1 -> srv, a2 -> closed port, a3
 * disabled. Pool "b": no monitor. Pool "c": disabled. */
static cfg_origin o_a[3], o_b[1], o_c[1];
static cfg_origin *all_origins[5];
static cfg_pool pools[3];
static cfg_snapshot snap;

static void origin_at(cfg_origin *o, const char *name, uint16_t port,
		      uint32_t index)
{
	memset(o, 0, sizeof(*o));
	o->name = name;
	o->address = "127.0.0.1";
	o->port = port;
	o->enabled = true;
	o->weight = 1;
	o->index = index;
	char text[32];
	snprintf(text, sizeof(text), "127.0.0.1:%u", port);
	assert_int_equal(core_sock_parse_addr(text, &o->ss, &o->sslen), 0);
	all_origins[index] = o;
}

static void build_snapshot(uint16_t good, uint16_t bad)
{
	set_monitor(CFG_MON_HTTP);
	mon.interval_ms = 150;
	mon.timeout_ms = 2000;
	mon.path = "/healthz";
	origin_at(&o_a[0], "a1", good, 0);
	origin_at(&o_a[1], "a2", bad, 1);
	origin_at(&o_a[2], "a3", good, 2);
	o_a[2].enabled = false;
	origin_at(&o_b[0], "b1", bad, 3);
	origin_at(&o_c[0], "c1", good, 4);
	pools[0] = (cfg_pool){.id = "a",
			      .name = "a",
			      .enabled = true,
			      .origins = o_a,
			      .norigins = 3,
			      .minimum_origins = 1,
			      .monitor = &mon,
			      .index = 0};
	pools[1] = (cfg_pool){.id = "b",
			      .name = "b",
			      .enabled = true,
			      .origins = o_b,
			      .norigins = 1,
			      .minimum_origins = 1,
			      .index = 1};
	pools[2] = (cfg_pool){.id = "c",
			      .name = "c",
			      .enabled = false,
			      .origins = o_c,
			      .norigins = 1,
			      .minimum_origins = 1,
			      .monitor = &mon,
			      .index = 2};
	memset(&snap, 0, sizeof(snap));
	snap.pools = pools;
	snap.npools = 3;
	snap.origins = all_origins;
	snap.norigins = 5;
}

static void test_checker_transitions(void **state)
{
	srv_start(&S, M_OK, NULL);
	build_snapshot(S.port, closed_port());
	lb_origin_state os[5];
	lb_pool_state ps[3];
	health_states_init(os, 5, ps, 3);
	ev_log l;
	ev_log_init(&l);

	health_checker *hc = health_start(&snap, os, ps, on_event, &l);
	assert_non_null(hc);
	int at = 0;
	/* No monitor: the pool counts healthy at once. */
	wait_event(&l, &at, HEALTH_EV_POOL, "b", NULL, LB_POOL_HEALTHY,
		   WAIT_MS);
	at = 0;
	const ev_rec *e = wait_event(&l, &at, HEALTH_EV_ORIGIN, "a", "a1",
				     LB_HEALTH_HEALTHY, WAIT_MS);
	assert_int_equal(e->from, LB_HEALTH_UNKNOWN);
	assert_string_equal(e->reason, "");
	at = 0;
	e = wait_event(&l, &at, HEALTH_EV_ORIGIN, "a", "a2",
		       LB_HEALTH_UNHEALTHY, WAIT_MS);
	assert_string_equal(e->reason,
			    "TCP connection failed: Connection refused");
	/* Once both have verdicts: one healthy, one not. */
	at = 0;
	wait_event(&l, &at, HEALTH_EV_POOL, "a", NULL, LB_POOL_DEGRADED,
		   WAIT_MS);
	assert_int_equal(atomic_load(&ps[0].health), LB_POOL_DEGRADED);
	assert_int_equal(atomic_load(&ps[0].healthy_origins), 1);
	assert_true(ps[0].since_ms > 0);

	/* Shared state as published. */
	assert_int_equal(atomic_load(&os[0].active), LB_HEALTH_HEALTHY);
	assert_true(atomic_load(&os[0].rtt_us) > 0);
	assert_int_equal(atomic_load(&os[1].active), LB_HEALTH_UNHEALTHY);
	pthread_mutex_lock(&os[1].lock);
	assert_string_equal(os[1].reason,
			    "TCP connection failed: Connection refused");
	assert_true(os[1].since_ms > 0);
	assert_true(os[1].failures >= 1);
	pthread_mutex_unlock(&os[1].lock);

	/* a1 starts failing: unhealthy with the reason, pool critical. */
	int mark = ev_count(&l);
	atomic_store(&os[0].passive_fails, 7);
	atomic_store(&S.mode, M_500);
	at = mark;
	e = wait_event(&l, &at, HEALTH_EV_ORIGIN, "a", "a1",
		       LB_HEALTH_UNHEALTHY, WAIT_MS);
	assert_string_equal(e->reason,
			    "response code mismatch: HTTP 500, expected 200");
	at = mark;
	wait_event(&l, &at, HEALTH_EV_POOL, "a", NULL, LB_POOL_CRITICAL,
		   WAIT_MS);
	/* And recovers: an active pass also ends the passive ejection. */
	mark = ev_count(&l);
	atomic_store(&S.mode, M_OK);
	at = mark;
	wait_event(&l, &at, HEALTH_EV_ORIGIN, "a", "a1", LB_HEALTH_HEALTHY,
		   WAIT_MS);
	at = mark;
	wait_event(&l, &at, HEALTH_EV_POOL, "a", NULL, LB_POOL_DEGRADED,
		   WAIT_MS);
	assert_int_equal(atomic_load(&os[0].passive_fails), 0);
	/* The request the checker sends. */
	pthread_mutex_lock(&S.mu);
	assert_memory_equal(S.last_req, "GET /healthz HTTP/1.1\r\n", 23);
	pthread_mutex_unlock(&S.mu);

	health_stats st;
	health_get_stats(hc, &st);
	assert_int_equal(st.targets, 2); /* a1, a2 */
	assert_true(st.probes >= 4);
	assert_true(st.cpu_ns > 0);
	health_stop(hc);

	/* Never checked: no-monitor pool, disabled origin, disabled pool. */
	assert_int_equal(atomic_load(&os[2].active), LB_HEALTH_UNKNOWN);
	assert_int_equal(os[2].checks, 0);
	assert_int_equal(atomic_load(&os[3].active), LB_HEALTH_UNKNOWN);
	assert_int_equal(os[3].checks, 0);
	assert_int_equal(atomic_load(&os[4].active), LB_HEALTH_UNKNOWN);
	assert_int_equal(atomic_load(&ps[2].health), LB_POOL_UNKNOWN);
	assert_int_equal(count_events(&l, HEALTH_EV_ORIGIN, "b1"), 0);
	assert_int_equal(count_events(&l, HEALTH_EV_POOL, "c"), 0);
	assert_false(l.other_thread);
	assert_false(l.bad_event);
	assert_false(pthread_equal(l.thread, pthread_self()));

	srv_stop(&S);
	health_states_destroy(os, 5);
	ev_log_destroy(&l);
}

static void test_checker_thresholds_and_retries(void **state)
{
	/* consecutive_down 2, retries 1: two failed attempts of two probes
	 * each before a1 goes down; consecutive_up 2 to come back. */
	srv_start(&S, M_OK, NULL);
	build_snapshot(S.port, closed_port());
	mon.retries = 1;
	mon.consecutive_down = 2;
	mon.consecutive_up = 2;
	o_a[1].enabled = false;
	lb_origin_state os[5];
	lb_pool_state ps[3];
	health_states_init(os, 5, ps, 3);
	ev_log l;
	ev_log_init(&l);
	health_checker *hc = health_start(&snap, os, ps, on_event, &l);
	assert_non_null(hc);
	int at = 0;
	wait_event(&l, &at, HEALTH_EV_ORIGIN, "a", "a1", LB_HEALTH_HEALTHY,
		   WAIT_MS);
	at = 0;
	wait_event(&l, &at, HEALTH_EV_POOL, "a", NULL, LB_POOL_HEALTHY,
		   WAIT_MS);

	int mark = ev_count(&l);
	/* Read before the switch: every 500 is counted after it. */
	int before = atomic_load(&S.nconn);
	atomic_store(&S.mode, M_500);
	at = mark;
	wait_event(&l, &at, HEALTH_EV_ORIGIN, "a", "a1", LB_HEALTH_UNHEALTHY,
		   WAIT_MS);
	/* At least 2 attempts x (1 + 1 retry); the switch may land in the
	 * middle of an attempt, hence >= rather than ==. */
	assert_true(atomic_load(&S.nconn) - before >= 4);
	pthread_mutex_lock(&os[0].lock);
	assert_true(os[0].failures >= 2);
	pthread_mutex_unlock(&os[0].lock);

	mark = ev_count(&l);
	atomic_store(&S.mode, M_OK);
	at = mark;
	wait_event(&l, &at, HEALTH_EV_ORIGIN, "a", "a1", LB_HEALTH_HEALTHY,
		   WAIT_MS);
	health_stop(hc);
	/* One down and one up after the first verdict: no flapping. */
	assert_int_equal(count_events(&l, HEALTH_EV_ORIGIN, "a1"), 3);
	srv_stop(&S);
	health_states_destroy(os, 5);
	ev_log_destroy(&l);
}

static void test_checker_stop_with_probes_in_flight(void **state)
{
	srv_start(&S, M_SLOW, NULL);
	build_snapshot(S.port, S.port);
	mon.timeout_ms = 60000;
	lb_origin_state os[5];
	lb_pool_state ps[3];
	health_states_init(os, 5, ps, 3);
	health_checker *hc = health_start(&snap, os, ps, NULL, NULL);
	assert_non_null(hc);
	/* Wait for both probes to be connected and waiting. */
	uint64_t dl = core_now_ms() + WAIT_MS;
	health_stats st;
	do {
		health_get_stats(hc, &st);
		if (st.inflight == 2)
			break;
		usleep(5000);
	} while (core_now_ms() < dl);
	assert_int_equal(st.inflight, 2);
	uint64_t t0 = core_now_ms();
	health_stop(hc); /* abandons them at once */
	assert_true(core_now_ms() - t0 < 2000);
	assert_int_equal(atomic_load(&os[0].active), LB_HEALTH_UNKNOWN);
	srv_stop(&S);
	health_states_destroy(os, 5);
}

/* The checker keeps one connection per origin across checks and closes
 * it on health_stop. */
static void test_checker_keepalive(void **state)
{
	int fds = count_fds();
	srv_start(&S, M_KEEP, NULL);
	build_snapshot(S.port, closed_port());
	lb_origin_state os[5];
	lb_pool_state ps[3];
	health_states_init(os, 5, ps, 3);
	health_checker *hc = health_start(&snap, os, ps, NULL, NULL);
	assert_non_null(hc);
	uint64_t dl = core_now_ms() + WAIT_MS;
	health_stats st;
	do {
		health_get_stats(hc, &st);
		if (st.attempts >= 8)
			break;
		usleep(5000);
	} while (core_now_ms() < dl);
	assert_true(st.attempts >= 8);
	assert_int_equal(atomic_load(&os[0].active), LB_HEALTH_HEALTHY);
	assert_true(S.npaths >= 3);
	assert_int_equal(atomic_load(&S.nconn), 1);
	health_stop(hc);
	srv_stop(&S);
	health_states_destroy(os, 5);
	assert_int_equal(count_fds(), fds);
}

static void origin_counts(lb_origin_state *o, uint64_t *checks,
			  uint64_t *failures)
{
	pthread_mutex_lock(&o->lock);
	*checks = o->checks;
	*failures = o->failures;
	pthread_mutex_unlock(&o->lock);
}

/* Restart the checker on the same states after every attempt of a1 until
 * it reaches `want` (what a config change more often than once an interval
 * does, r3_reload_resets_runs). Returns how many restarts it took. */
static int restart_until(health_checker **hc, lb_origin_state *os,
			 lb_pool_state *ps, lb_health want)
{
	int restarts = 0;
	uint64_t checks, failures, seen;
	origin_counts(&os[0], &seen, &failures);
	uint64_t dl = core_now_ms() + WAIT_MS;
	while (atomic_load(&os[0].active) != want && core_now_ms() < dl) {
		origin_counts(&os[0], &checks, &failures);
		if (checks == seen) {
			usleep(2000);
			continue;
		}
		seen = checks;
		health_stop(*hc);
		*hc = health_start(&snap, os, ps, NULL, NULL);
		assert_non_null(*hc);
		restarts++;
	}
	assert_int_equal(atomic_load(&os[0].active), want);
	return restarts;
}

/* Regression (r3_reload_resets_runs): every config change restarts the
 * checker, which started consecutive_down/up from 0, so an origin failing
 * under frequent changes was never marked down. The runs now live in
 * lb_origin_state and the restarted checker goes on from them. */
static void test_checker_restart_keeps_runs(void **state)
{
	srv_start(&S, M_OK, NULL);
	build_snapshot(S.port, closed_port());
	mon.consecutive_down = 3;
	mon.consecutive_up = 3;
	o_a[1].enabled = false;
	lb_origin_state os[5];
	lb_pool_state ps[3];
	health_states_init(os, 5, ps, 3);
	health_checker *hc = health_start(&snap, os, ps, NULL, NULL);
	assert_non_null(hc);
	uint64_t dl = core_now_ms() + WAIT_MS;
	while (atomic_load(&os[0].active) != LB_HEALTH_HEALTHY &&
	       core_now_ms() < dl)
		usleep(2000);
	assert_int_equal(atomic_load(&os[0].active), LB_HEALTH_HEALTHY);

	atomic_store(&S.mode, M_500);
	/* Down after 3 failed attempts, each in a checker of its own. */
	assert_true(restart_until(&hc, os, ps, LB_HEALTH_UNHEALTHY) >= 2);

	atomic_store(&S.mode, M_OK);
	/* One pass is not a verdict yet: still unhealthy, and still saying
	 * why across the restart. */
	uint64_t checks, failures, c0;
	origin_counts(&os[0], &c0, &failures);
	dl = core_now_ms() + WAIT_MS;
	do {
		origin_counts(&os[0], &checks, &failures);
		if (checks > c0)
			break;
		usleep(2000);
	} while (core_now_ms() < dl);
	health_stop(hc);
	assert_true(checks > c0);
	assert_int_equal(atomic_load(&os[0].active), LB_HEALTH_UNHEALTHY);
	pthread_mutex_lock(&os[0].lock);
	assert_string_equal(os[0].reason,
			    "response code mismatch: HTTP 500, expected 200");
	pthread_mutex_unlock(&os[0].lock);
	hc = health_start(&snap, os, ps, NULL, NULL);
	assert_non_null(hc);
	assert_true(restart_until(&hc, os, ps, LB_HEALTH_HEALTHY) >= 1);
	health_stop(hc);
	srv_stop(&S);
	health_states_destroy(os, 5);
}

/* A restarted checker goes on from each origin's grid point instead of
 * checking every origin within the first second. */
static void test_checker_restart_keeps_schedule(void **state)
{
	srv_start(&S, M_OK, NULL);
	build_snapshot(S.port, closed_port());
	mon.interval_ms = 60000;
	o_a[1].enabled = false;
	lb_origin_state os[5];
	lb_pool_state ps[3];
	health_states_init(os, 5, ps, 3);
	health_checker *hc = health_start(&snap, os, ps, NULL, NULL);
	assert_non_null(hc);
	uint64_t dl = core_now_ms() + WAIT_MS;
	while (atomic_load(&os[0].active) != LB_HEALTH_HEALTHY &&
	       core_now_ms() < dl)
		usleep(2000);
	assert_int_equal(atomic_load(&os[0].active), LB_HEALTH_HEALTHY);
	/* The next grid point is published just after the verdict: read it
	 * once the thread has stopped. */
	health_stop(hc);
	uint64_t next = atomic_load(&os[0].next_check_ms);
	assert_true(next > core_now_ms() + 30000);

	/* health_stop joins the thread, which schedules before it waits. */
	hc = health_start(&snap, os, ps, NULL, NULL);
	assert_non_null(hc);
	health_stop(hc);
	assert_int_equal(atomic_load(&os[0].next_check_ms), next);
	srv_stop(&S);
	health_states_destroy(os, 5);
}

static void test_status_format(void **state)
{
	build_snapshot(8080, 8081);
	o_a[1].name = "we\"ird\n";
	lb_origin_state os[5];
	lb_pool_state ps[3];
	health_states_init(os, 5, ps, 3);
	atomic_store(&os[0].active, LB_HEALTH_HEALTHY);
	atomic_store(&os[0].rtt_us, 1234);
	os[0].since_ms = 1714557600123ull; /* 2024-05-01T10:00:00.123Z */
	os[0].checks = 3;
	atomic_store(&os[0].tls_not_after, 1767225600); /* 2026-01-01 */
	atomic_store(&os[1].active, LB_HEALTH_UNHEALTHY);
	snprintf(os[1].reason, sizeof(os[1].reason), "timeout: no \"answer\"");
	os[1].checks = 2;
	os[1].failures = 2;
	atomic_store(&ps[0].health, LB_POOL_DEGRADED);
	atomic_store(&ps[0].healthy_origins, 1);
	atomic_store(&ps[1].health, LB_POOL_HEALTHY);

	char buf[4096];
	int n = health_format_status(&snap, os, ps, buf, sizeof(buf), true);
	assert_true(n > 0 && n < (int)sizeof(buf));
	assert_int_equal(strlen(buf), (size_t)n);
	const char *want_a1 =
	    "{\"name\":\"a1\",\"address\":\"127.0.0.1\",\"port\":8080,"
	    "\"enabled\":true,\"health\":\"healthy\",\"reason\":\"\","
	    "\"rtt_ms\":1.234,\"since\":\"2024-05-01T10:00:00.123Z\","
	    "\"tls_not_after\":\"2026-01-01T00:00:00.000Z\","
	    "\"checks\":3,\"failures\":0}";
	if (!strstr(buf, want_a1))
		print_error("%s\n", buf);
	assert_non_null(strstr(buf, want_a1));
	assert_non_null(strstr(buf, "\"name\":\"we\\\"ird\\n\""));
	assert_non_null(
	    strstr(buf, "\"reason\":\"timeout: no \\\"answer\\\"\""));
	assert_non_null(strstr(buf, "\"rtt_ms\":null,\"since\":null,"
				    "\"tls_not_after\":null"));
	assert_non_null(strstr(
	    buf, "{\"pools\":[{\"id\":\"a\",\"name\":\"a\",\"enabled\":true,"
		 "\"monitor\":\"m\",\"health\":\"degraded\","
		 "\"healthy_origins\":1,\"enabled_origins\":2,"
		 "\"minimum_origins\":1,\"since\":null,\"origins\":["));
	assert_non_null(strstr(buf, "\"id\":\"b\",\"name\":\"b\",\"enabled\":"
				    "true,\"monitor\":null,\"health\":"
				    "\"healthy\""));
	assert_non_null(strstr(buf, "\"enabled\":false"));
	assert_memory_equal(buf + n - 3, "]}\n", 3);

	/* snprintf semantics. */
	char small[16];
	int m = health_format_status(&snap, os, ps, small, sizeof(small), true);
	assert_int_equal(m, n);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_memory_equal(small, buf, sizeof(small) - 1);
	assert_int_equal(health_format_status(&snap, os, ps, NULL, 0, true), n);
	/* The growing form (the admin listener's) gives the same text. */
	size_t glen = 0;
	char *grown = health_format_status_alloc(&snap, os, ps, true, &glen);
	assert_int_equal(glen, (size_t)n);
	assert_string_equal(grown, buf);
	free(grown);

	n = health_format_status(&snap, os, ps, buf, sizeof(buf), false);
	assert_true(n > 0 && n < (int)sizeof(buf));
	assert_memory_equal(buf, "POOL/ORIGIN", 11);
	assert_non_null(strstr(buf, "127.0.0.1:8080"));
	assert_non_null(strstr(buf, "1.23"));
	assert_non_null(strstr(buf, "2024-05-01T10:00:00.123Z"));
	assert_non_null(strstr(buf, "degraded"));
	assert_non_null(strstr(buf, "1/2 healthy, minimum 1, monitor m"));
	assert_non_null(strstr(buf, "timeout: no \"answer\""));
	assert_non_null(strstr(buf, "disabled"));
	assert_non_null(strstr(buf, "no monitor (counts healthy)"));
	health_states_destroy(os, 5);
}

static void test_checker_from_yaml(void **state)
{
	srv_start(&S, M_OK, NULL);
	char yaml[1024];
	snprintf(
	    yaml, sizeof(yaml),
	    "monitors:\n"
	    "  - { id: web, type: http, path: /ready, interval: 1s,"
	    " timeout: 2s, expected_codes: \"2xx\","
	    " expected_body: hello }\n"
	    "  - { id: port, type: tcp, interval: 1s }\n"
	    "pools:\n"
	    "  - id: gcp\n"
	    "    monitor: web\n"
	    "    origins: [ { name: gke-1, address: 127.0.0.1, port: %u,"
	    " header: { Host: [app.example] } } ]\n"
	    "  - id: aws\n"
	    "    monitor: port\n"
	    "    origins: [ { name: eks-1, address: 127.0.0.1, port: %u } ]\n",
	    S.port, closed_port());
	cfg_snapshot *cfg = NULL;
	cfg_diag d = {0};
	int rc = cfg_load_string("t.yaml", yaml, strlen(yaml), &cfg, &d);
	for (size_t i = 0; i < d.n; i++)
		print_error("%s\n", d.msgs[i]);
	assert_int_equal(rc, 0);
	cfg_diag_free(&d);
	assert_int_equal(cfg->norigins, 2);

	lb_origin_state os[2];
	lb_pool_state ps[2];
	health_states_init(os, 2, ps, 2);
	ev_log l;
	ev_log_init(&l);
	health_checker *hc = health_start(cfg, os, ps, on_event, &l);
	assert_non_null(hc);
	int at = 0;
	wait_event(&l, &at, HEALTH_EV_POOL, "gcp", NULL, LB_POOL_HEALTHY,
		   WAIT_MS);
	at = 0;
	/* retries 2 (default) at 100 ms each, then the verdict */
	wait_event(&l, &at, HEALTH_EV_POOL, "aws", NULL, LB_POOL_CRITICAL,
		   WAIT_MS);
	pthread_mutex_lock(&S.mu);
	assert_memory_equal(S.last_req, "GET /ready HTTP/1.1\r\n", 21);
	assert_non_null(strstr(S.last_req, "\r\nHost: app.example\r\n"));
	pthread_mutex_unlock(&S.mu);
	health_stop(hc);
	char buf[2048];
	health_format_status(cfg, os, ps, buf, sizeof(buf), false);
	assert_non_null(strstr(buf, "gke-1"));
	assert_non_null(strstr(buf, "TCP connection failed"));
	health_states_destroy(os, 2);
	ev_log_destroy(&l);
	cfg_snapshot_free(cfg);
	srv_stop(&S);
}

/* ---- bench harness (bench/health.sh) ---- */

/* A minimal epoll HTTP server on many ports: answers every request with a
 * fixed 200, keeping the connection unless asked to close (or `close`).
 * With `tls`, over TLS (non-blocking handshakes; tls_by_fd holds each
 * connection's SSL). */
typedef struct bench_srv {
	int ep;
	int *lfds;
	int nports;
	uint16_t *ports;
	atomic_bool stop;
	pthread_t th;
	SSL_CTX *tls;
	SSL **tls_by_fd;
	int tls_fds;
	bool close; /* answer with Connection: close and close */
} bench_srv;

static void bench_close(bench_srv *b, int fd)
{
	if (b->tls && fd < b->tls_fds && b->tls_by_fd[fd]) {
		SSL_free(b->tls_by_fd[fd]);
		b->tls_by_fd[fd] = NULL;
	}
	close(fd);
}

/* One readable TLS connection: handshake, then answer each request. */
static void bench_tls_event(bench_srv *b, int fd)
{
	static const char resp[] =
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n"
	    "\r\nok";
	static const char resp_ka[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
				      "\r\nok";
	SSL *ssl = fd < b->tls_fds ? b->tls_by_fd[fd] : NULL;
	if (!ssl) {
		close(fd);
		return;
	}
	char buf[2048];
	for (;;) {
		int r = SSL_read(ssl, buf, sizeof(buf));
		if (r <= 0) {
			int e = SSL_get_error(ssl, r);
			ERR_clear_error();
			if (e != SSL_ERROR_WANT_READ &&
			    e != SSL_ERROR_WANT_WRITE)
				bench_close(b, fd);
			return;
		}
		bool cl =
		    b->close || memmem(buf, (size_t)r, "Connection: close", 17);
		if (cl) {
			SSL_write(ssl, resp, sizeof(resp) - 1);
			SSL_shutdown(ssl);
			bench_close(b, fd);
			return;
		}
		SSL_write(ssl, resp_ka, sizeof(resp_ka) - 1);
	}
}

static void *bench_srv_main(void *arg)
{
	bench_srv *b = arg;
	static const char resp[] =
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n"
	    "\r\nok";
	static const char resp_ka[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
				      "\r\nok";
	struct epoll_event evs[256];
	char buf[2048];
	while (!atomic_load(&b->stop)) {
		int n = epoll_wait(b->ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (evs[i].events & EPOLLRDHUP &&
			    !(evs[i].events & EPOLLIN)) {
				close(fd);
				continue;
			}
			bool listener = false;
			for (int j = 0; j < b->nports && !listener; j++)
				listener = b->lfds[j] == fd;
			if (listener) {
				int c;
				while ((c = accept4(fd, NULL, NULL,
						    SOCK_NONBLOCK)) >= 0) {
					if (b->tls) {
						SSL *ssl = c < b->tls_fds
							       ? SSL_new(b->tls)
							       : NULL;
						if (!ssl) {
							close(c);
							continue;
						}
						SSL_set_fd(ssl, c);
						SSL_set_accept_state(ssl);
						b->tls_by_fd[c] = ssl;
					}
					struct epoll_event ev = {
					    .events = EPOLLIN | EPOLLRDHUP,
					    .data.fd = c};
					epoll_ctl(b->ep, EPOLL_CTL_ADD, c, &ev);
				}
				continue;
			}
			if (b->tls) {
				bench_tls_event(b, fd);
				continue;
			}
			/* Keep-alive (one request a read) unless the request
			 * asks to close. */
			ssize_t r = recv(fd, buf, sizeof(buf), 0);
			bool req =
			    r > 0 && memmem(buf, (size_t)r, "\r\n\r\n", 4);
			bool cl = req && memmem(buf, (size_t)r,
						"Connection: close", 17);
			if (req && cl)
				send(fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL);
			else if (req)
				send(fd, resp_ka, sizeof(resp_ka) - 1,
				     MSG_NOSIGNAL);
			if (r == 0 || (r < 0 && errno != EAGAIN) || cl)
				close(fd);
		}
	}
	return NULL;
}

/* The floor: what the kernel charges a client for the bare minimum of a
 * kept-alive check on this machine, i.e. one send of a request of the same
 * size and one recv of the answer per check, on nconn kept connections to
 * the same server, rate checks a second from one thread (epoll, a batch of
 * sends every HEALTH_TICK_MS, as the checker). Returns that thread's CPU in
 * microseconds per check. */
static double bench_floor(const bench_srv *b, int nconn, int seconds, int rate,
			  size_t req_len)
{
	char req[512];
	memset(req, 'x', sizeof(req));
	req_len = MIN(MAX(req_len, 8u), sizeof(req));
	memcpy(req, "GET ", 4);
	memcpy(req + req_len - 4, "\r\n\r\n", 4);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int *fds = calloc((size_t)nconn, sizeof(int));
	for (int i = 0; i < nconn; i++) {
		struct sockaddr_in a = {
		    .sin_family = AF_INET,
		    .sin_port = htons(b->ports[i % b->nports]),
		    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[i] < 0 ||
		    connect(fds[i], (struct sockaddr *)&a, sizeof(a)) < 0) {
			fprintf(stderr, "floor: connect: %s\n",
				strerror(errno));
			if (fds[i] >= 0)
				close(fds[i]);
			nconn = i;
			break;
		}
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT |
						   EPOLLRDHUP | EPOLLET,
					 .data.u32 = (uint32_t)i};
		epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
	}
	struct timespec c0, c1;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	uint64_t start = core_now_ms(), checks = 0;
	double due = 0, per_tick = (double)rate * HEALTH_TICK_MS / 1000.0;
	struct epoll_event evs[256];
	char buf[2048];
	int next = 0;
	for (uint64_t ms = 0; nconn > 0 && ms < (uint64_t)seconds * 1000;
	     ms += HEALTH_TICK_MS) {
		for (due += per_tick; due >= 1.0; due -= 1.0, checks++) {
			int fd = fds[next++ % nconn];
			if (send(fd, req, req_len, MSG_NOSIGNAL) < 0)
				fprintf(stderr, "floor: send: %s\n",
					strerror(errno));
		}
		for (;;) {
			uint64_t now = core_now_ms(),
				 end = start + ms + HEALTH_TICK_MS;
			int to = now >= end ? 0 : (int)(end - now);
			int n = epoll_wait(ep, evs, 256, to);
			for (int i = 0; i < n; i++)
				if (evs[i].events & EPOLLIN)
					(void)!recv(fds[evs[i].data.u32], buf,
						    sizeof(buf), 0);
			if (n <= 0 && to == 0)
				break;
		}
	}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	for (int i = 0; i < nconn; i++)
		close(fds[i]);
	free(fds);
	close(ep);
	double cpu = (double)(c1.tv_sec - c0.tv_sec) * 1e6 +
		     (double)(c1.tv_nsec - c0.tv_nsec) / 1e3;
	return checks ? cpu / (double)checks : 0;
}

/* The same floor through io_uring, as the checker's ring does it: every
 * connection keeps a multishot receive into provided buffers, and each
 * tick's sends go out with the one io_uring_enter that then waits for the
 * answers. Returns microseconds of this thread's CPU per check, or -1
 * when io_uring is unavailable. */
static double bench_floor_ring(const bench_srv *b, int nconn, int seconds,
			       int rate, size_t req_len)
{
	char req[512];
	memset(req, 'x', sizeof(req));
	req_len = MIN(MAX(req_len, 8u), sizeof(req));
	memcpy(req, "GET ", 4);
	memcpy(req + req_len - 4, "\r\n\r\n", 4);
	struct io_uring ring;
	struct io_uring_params prm = {.flags = IORING_SETUP_SINGLE_ISSUER |
					       IORING_SETUP_DEFER_TASKRUN |
					       IORING_SETUP_COOP_TASKRUN};
	if (io_uring_queue_init_params(1024, &ring, &prm) < 0)
		return -1;
	enum { NB = 64, BS = 2048 };
	struct io_uring_buf_ring *br =
	    mmap(NULL, NB * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
		 MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br,
				       .ring_entries = NB};
	char *bufs = malloc(NB * BS);
	if (br == MAP_FAILED || !bufs ||
	    io_uring_register_buf_ring(&ring, &reg, 0) < 0) {
		io_uring_queue_exit(&ring);
		free(bufs);
		return -1;
	}
	io_uring_buf_ring_init(br);
	for (int i = 0; i < NB; i++)
		io_uring_buf_ring_add(br, bufs + i * BS, BS, (unsigned short)i,
				      io_uring_buf_ring_mask(NB), i);
	io_uring_buf_ring_advance(br, NB);
	int *fds = calloc((size_t)nconn, sizeof(int));
	for (int i = 0; i < nconn; i++) {
		struct sockaddr_in a = {
		    .sin_family = AF_INET,
		    .sin_port = htons(b->ports[i % b->nports]),
		    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fds[i] < 0 ||
		    connect(fds[i], (struct sockaddr *)&a, sizeof(a)) < 0) {
			if (fds[i] >= 0)
				close(fds[i]);
			nconn = i;
			break;
		}
	}
	/* user_data: connection index * 2, +1 for the receive. */
	for (int i = 0; i < nconn; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		if (!sqe) {
			io_uring_submit(&ring);
			sqe = io_uring_get_sqe(&ring);
		}
		io_uring_prep_recv_multishot(sqe, fds[i], NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = 0;
		io_uring_sqe_set_data64(sqe, (uint64_t)i * 2 + 1);
	}
	io_uring_submit(&ring);
	struct timespec c0, c1;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	uint64_t start = core_now_ms(), checks = 0;
	double due = 0, per_tick = (double)rate * HEALTH_TICK_MS / 1000.0;
	int next = 0;
	for (uint64_t ms = 0; nconn > 0 && ms < (uint64_t)seconds * 1000;
	     ms += HEALTH_TICK_MS) {
		for (due += per_tick; due >= 1.0; due -= 1.0, checks++) {
			int i = next++ % nconn;
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			if (!sqe) {
				io_uring_submit(&ring);
				sqe = io_uring_get_sqe(&ring);
			}
			io_uring_prep_send(sqe, fds[i], req, req_len,
					   MSG_NOSIGNAL);
			io_uring_sqe_set_data64(sqe, (uint64_t)i * 2);
		}
		for (;;) {
			uint64_t now = core_now_ms(),
				 end = start + ms + HEALTH_TICK_MS;
			if (now >= end)
				break;
			struct __kernel_timespec ts = {
			    .tv_nsec = (long long)(end - now) * 1000000};
			struct io_uring_cqe *cqe;
			io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts,
							 NULL);
			unsigned head, seen = 0;
			io_uring_for_each_cqe(&ring, head, cqe)
			{
				seen++;
				if (cqe->flags & IORING_CQE_F_BUFFER) {
					int bid =
					    (int)(cqe->flags >>
						  IORING_CQE_BUFFER_SHIFT);
					io_uring_buf_ring_add(
					    br, bufs + bid * BS, BS,
					    (unsigned short)bid,
					    io_uring_buf_ring_mask(NB), 0);
					io_uring_buf_ring_advance(br, 1);
				}
				if ((cqe->user_data & 1) &&
				    !(cqe->flags & IORING_CQE_F_MORE)) {
					/* Out of buffers: arm it again. */
					struct io_uring_sqe *sqe =
					    io_uring_get_sqe(&ring);
					if (sqe) {
						int i =
						    (int)(cqe->user_data / 2);
						io_uring_prep_recv_multishot(
						    sqe, fds[i], NULL, 0, 0);
						sqe->flags |=
						    IOSQE_BUFFER_SELECT;
						sqe->buf_group = 0;
						io_uring_sqe_set_data64(
						    sqe, cqe->user_data);
					}
				}
			}
			io_uring_cq_advance(&ring, seen);
		}
	}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	io_uring_queue_exit(&ring);
	for (int i = 0; i < nconn; i++)
		close(fds[i]);
	free(fds);
	free(bufs);
	munmap(br, NB * sizeof(struct io_uring_buf));
	double cpu = (double)(c1.tv_sec - c0.tv_sec) * 1e6 +
		     (double)(c1.tv_nsec - c0.tv_nsec) / 1e3;
	return checks ? cpu / (double)checks : 0;
}

static int bench(int argc, char **argv)
{
	int norigins = argc > 2 ? atoi(argv[2]) : 10000;
	int seconds = argc > 3 ? atoi(argv[3]) : 10;
	int interval = argc > 4 ? atoi(argv[4]) : 1000;
	int nports = argc > 5 ? atoi(argv[5]) : 100;
	const char *type = argc > 6 ? argv[6] : "http";
	bool tcp = strcmp(type, "tcp") == 0;
	bool https = strncmp(type, "https", 5) == 0;
	bool want_floor = argc > 7 && strcmp(argv[7], "floor") == 0;
	bool bench_ring = !(argc > 8 && strcmp(argv[8], "epoll") == 0);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	signal(SIGPIPE, SIG_IGN);

	bench_srv b = {.nports = nports};
	if (https) {
		/* https: kept connections; https-close: the server closes
		 * after each answer (the checker resumes its session);
		 * https-full: and no session tickets (a full handshake per
		 * check, as before sessions were kept). */
		b.tls = server_tls();
		b.close = strcmp(type, "https") != 0;
		if (strcmp(type, "https-full") == 0) {
			SSL_CTX_set_num_tickets(b.tls, 0);
			SSL_CTX_set_session_cache_mode(b.tls,
						       SSL_SESS_CACHE_OFF);
		}
		b.tls_fds = (int)MIN(rl.rlim_max, (rlim_t)1 << 20);
		b.tls_by_fd = calloc((size_t)b.tls_fds, sizeof(SSL *));
	}
	b.ep = epoll_create1(0);
	b.lfds = calloc((size_t)nports, sizeof(int));
	b.ports = calloc((size_t)nports, sizeof(uint16_t));
	for (int i = 0; i < nports; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_addr.s_addr =
					    htonl(INADDR_LOOPBACK)};
		int fd = core_sock_listen((struct sockaddr *)&a, sizeof(a),
					  false, 4096);
		if (fd < 0) {
			fprintf(stderr, "listen: %s\n", strerror(-fd));
			return 1;
		}
		b.lfds[i] = fd;
		b.ports[i] = (uint16_t)core_sock_local_port(fd);
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
		epoll_ctl(b.ep, EPOLL_CTL_ADD, fd, &ev);
	}
	/* The server is a child process: its descriptors (a listener per
	 * port and one per connection) do not count against the checker's
	 * open-file limit, as with real origins. */
	pid_t srv_pid = fork();
	if (srv_pid < 0) {
		perror("fork");
		return 1;
	}
	if (srv_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGTERM, SIG_DFL);
		bench_srv_main(&b);
		_exit(0);
	}
	for (int i = 0; i < nports; i++)
		close(b.lfds[i]);
	close(b.ep);

	cfg_monitor m = {.id = "bench",
			 .type = tcp	 ? CFG_MON_TCP
				 : https ? CFG_MON_HTTPS
					 : CFG_MON_HTTP,
			 .allow_insecure = https,
			 .method = "GET",
			 .path = "/",
			 .timeout_ms = 2000,
			 .retries = 0,
			 .interval_ms = (uint32_t)interval,
			 .expected_codes = "200",
			 .consecutive_up = 1,
			 .consecutive_down = 1};
	cfg_origin *os = calloc((size_t)norigins, sizeof(*os));
	cfg_origin **idx = calloc((size_t)norigins, sizeof(*idx));
	char(*names)[16] = calloc((size_t)norigins, 16);
	for (int i = 0; i < norigins; i++) {
		char text[32];
		uint16_t port = b.ports[i % nports];
		snprintf(names[i], 16, "o%d", i);
		snprintf(text, sizeof(text), "127.0.0.1:%u", port);
		os[i] = (cfg_origin){.name = names[i],
				     .address = "127.0.0.1",
				     .port = port,
				     .enabled = true,
				     .weight = 1,
				     .index = (uint32_t)i};
		core_sock_parse_addr(text, &os[i].ss, &os[i].sslen);
		idx[i] = &os[i];
	}
	cfg_pool pool = {.id = "bench",
			 .name = "bench",
			 .enabled = true,
			 .origins = os,
			 .norigins = (size_t)norigins,
			 .minimum_origins = 1,
			 .monitor = &m};
	cfg_snapshot s = {.pools = &pool,
			  .npools = 1,
			  .origins = idx,
			  .norigins = (size_t)norigins};
	/* Every origin may keep its connection (the checker still leaves
	 * 1,024 descriptors free). */
	s.edge.limits.health_connections = (uint32_t)norigins;
	s.edge.io_uring = bench_ring;
	lb_origin_state *st = calloc((size_t)norigins, sizeof(*st));
	lb_pool_state ps;
	health_states_init(st, (size_t)norigins, &ps, 1);

	health_checker *hc = health_start(&s, st, &ps, NULL, NULL);
	if (!hc)
		return 1;
	/* Warm-up: every origin gets its first verdict. */
	sleep(2);
	health_stats a, z;
	clockid_t sclk;
	clock_getcpuclockid(srv_pid, &sclk);
	struct timespec s0, s1;
	health_get_stats(hc, &a);
	clock_gettime(sclk, &s0);
	uint64_t t0 = core_now_ms();
	sleep((unsigned)seconds);
	health_get_stats(hc, &z);
	clock_gettime(sclk, &s1);
	uint64_t t1 = core_now_ms();
	health_stop(hc);
	/* The request the checker sent, for the floor's size. */
	char reqtext[512];
	int reqlen = health_http_request(&m, &os[0], "GET", "/", reqtext,
					 sizeof(reqtext));
	reqlen -= (int)strlen("Connection: close\r\n");

	int healthy = 0;
	for (int i = 0; i < norigins; i++)
		healthy += atomic_load(&st[i].active) == LB_HEALTH_HEALTHY;
	double wall = (double)(t1 - t0) / 1000.0;
	double cpu = (double)(z.cpu_ns - a.cpu_ns) / 1e9;
	double expect = (double)norigins * wall * 1000.0 / interval;
	printf("origins %d (%s, %d ports), interval %d ms, measured %.1f s\n",
	       norigins, type, nports, interval, wall);
	printf("checks %llu (%.0f/s, expected %.0f), healthy %d/%d\n",
	       (unsigned long long)(z.attempts - a.attempts),
	       (double)(z.attempts - a.attempts) / wall, expect / wall, healthy,
	       norigins);
	double scpu = (double)(s1.tv_sec - s0.tv_sec) +
		      (double)(s1.tv_nsec - s0.tv_nsec) / 1e9;
	double load = 0;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &load) != 1)
			load = 0;
		fclose(f);
	}
	printf("I/O: %s\n",
	       z.io_uring ? "io_uring (kept connections)" : "epoll");
	printf("health thread CPU %.1f%% of one core (test server process "
	       "%.1f%%; load average %.1f on %ld cores)\n",
	       100.0 * cpu / wall, 100.0 * scpu / wall, load,
	       sysconf(_SC_NPROCESSORS_ONLN));
	uint64_t checks = z.probes - a.probes;
	uint64_t reused = z.reuses - a.reuses, conns = z.connects - a.connects;
	printf("per check %.2f us of health thread CPU; %llu checks on kept "
	       "connections (%llu through io_uring), %llu new connections "
	       "(%u parked at the end, at most %u; fd limit %llu)\n",
	       checks ? (double)(z.cpu_ns - a.cpu_ns) / 1e3 / (double)checks
		      : 0.0,
	       (unsigned long long)reused,
	       (unsigned long long)(z.ring_sends - a.ring_sends),
	       (unsigned long long)conns, z.kept, z.kept_max,
	       (unsigned long long)rl.rlim_cur);
	printf("missed intervals %llu, worst start delay %llu ms\n",
	       (unsigned long long)z.missed, (unsigned long long)z.max_late_ms);
	printf("health thread total: %llu probes, %.3f s CPU since start\n",
	       (unsigned long long)z.probes, (double)z.cpu_ns / 1e9);
	if (https) {
		uint64_t full, resumed;
		health_probe_tls_counts(&full, &resumed);
		printf("TLS handshakes since start: %llu full, %llu resumed\n",
		       (unsigned long long)full, (unsigned long long)resumed);
	}
	if (want_floor && !tcp && !https) {
		int n = (int)MIN((uint64_t)norigins, (uint64_t)z.kept);
		double us =
		    bench_floor(&b, n ? n : 1, seconds,
				norigins * 1000 / interval, (size_t)reqlen);
		printf("floor (one send + one recv per check on %d kept "
		       "connections, no checker): %.2f us per check = %.1f%% "
		       "of a core at %d checks/s\n",
		       n, us, us * norigins / interval / 10.0,
		       norigins * 1000 / interval);
		double rus = bench_floor_ring(&b, n ? n : 1, seconds,
					      norigins * 1000 / interval,
					      (size_t)reqlen);
		if (rus >= 0)
			printf("floor through io_uring (a tick's sends and "
			       "answers per io_uring_enter, no checker): %.2f "
			       "us per check = %.1f%% of a core\n",
			       rus, rus * norigins / interval / 10.0);
	}
	kill(srv_pid, SIGTERM);
	waitpid(srv_pid, NULL, 0);
	health_states_destroy(st, (size_t)norigins);
	free(b.lfds);
	free(b.ports);
	free(b.tls_by_fd);
	SSL_CTX_free(b.tls);
	free(st);
	free(names);
	free(idx);
	free(os);
	return z.missed == 0 && healthy == norigins ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--bench") == 0)
		return bench(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_http_ok_and_request, setup),
	    cmocka_unit_test_setup(test_http_host_override, setup),
	    cmocka_unit_test_setup(test_http_code_mismatch, setup),
	    cmocka_unit_test_setup(test_http_expected_codes, setup),
	    cmocka_unit_test_setup(test_http_body_match, setup),
	    cmocka_unit_test_setup(test_http_body_first_10k_only, setup),
	    cmocka_unit_test_setup(test_http_redirects, setup),
	    cmocka_unit_test_setup(test_http_timeout, setup),
	    cmocka_unit_test_setup(test_http_connection_refused, setup),
	    cmocka_unit_test_setup(test_http_protocol_errors, setup),
	    cmocka_unit_test_setup(test_http_interim_and_head, setup),
	    cmocka_unit_test_setup(test_monitor_port_override, setup),
	    cmocka_unit_test_setup(test_https, setup),
	    cmocka_unit_test_setup(test_https_keepalive, setup),
	    cmocka_unit_test_setup(test_https_resumes_session, setup),
	    cmocka_unit_test_setup(test_https_kept_connection_expires, setup),
	    cmocka_unit_test_setup(test_https_reverifies, setup),
	    cmocka_unit_test_setup(test_tcp, setup),
	    cmocka_unit_test_setup(test_smtp, setup),
	    cmocka_unit_test_setup(test_redirect_path, setup),
	    cmocka_unit_test_setup(test_host_and_sni, setup),
	    cmocka_unit_test_setup(test_request_head, setup),
	    cmocka_unit_test_setup(test_keepalive_reuse, setup),
	    cmocka_unit_test_setup(test_keepalive_not_parked, setup),
	    cmocka_unit_test_setup(test_keepalive_origin_closes, setup),
	    cmocka_unit_test_setup(test_keepalive_origin_killed, setup),
	    cmocka_unit_test_setup(test_keepalive_closed_while_parked, setup),
	    cmocka_unit_test_setup(test_keepalive_big_answer, setup),
	    cmocka_unit_test_setup(test_keepalive_timeout, setup),
	    /* The same on an io_uring. */
	    cmocka_unit_test_setup(test_keepalive_reuse, setup_ring),
	    cmocka_unit_test_setup(test_keepalive_not_parked, setup_ring),
	    cmocka_unit_test_setup(test_keepalive_origin_closes, setup_ring),
	    cmocka_unit_test_setup(test_keepalive_origin_killed, setup_ring),
	    cmocka_unit_test_setup(test_keepalive_closed_while_parked,
				   setup_ring),
	    cmocka_unit_test_setup(test_keepalive_big_answer, setup_ring),
	    cmocka_unit_test_setup(test_keepalive_timeout, setup_ring),
	    /* TLS connections stay on epoll beside the ring. */
	    cmocka_unit_test_setup(test_https_keepalive, setup_ring),
	    cmocka_unit_test_setup(test_https_resumes_session, setup_ring),
	    cmocka_unit_test_setup(test_https_reverifies, setup_ring),
	    cmocka_unit_test(test_smtp_reply_parser),
	    cmocka_unit_test(test_body_contains),
	    cmocka_unit_test_setup(test_checker_transitions, setup),
	    cmocka_unit_test_setup(test_checker_thresholds_and_retries, setup),
	    cmocka_unit_test_setup(test_checker_stop_with_probes_in_flight,
				   setup),
	    cmocka_unit_test_setup(test_checker_keepalive, setup),
	    cmocka_unit_test_setup(test_checker_restart_keeps_runs, setup),
	    cmocka_unit_test_setup(test_checker_restart_keeps_schedule, setup),
	    cmocka_unit_test_setup(test_status_format, setup),
	    cmocka_unit_test_setup(test_checker_from_yaml, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
