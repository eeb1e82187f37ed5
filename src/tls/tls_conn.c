/* tls_conn.c - one server-side TLS connection on a non-blocking socket
 * (see tls.h for the return codes and the short-count rule). */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include <openssl/err.h>

#include "core/core_util.h"
#include "tls/tls_int.h"

int tls_conn_init(tls_conn *c, tls_server *s, int fd)
{
	memset(c, 0, sizeof(*c));
	tls_err_reset();
	c->ssl = SSL_new(tls_server_default_ctx(s));
	if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_set_accept_state(c->ssl);
	tls_conn_watch_reads(c);
	c->srv = tls_server_ref(s);
	return 0;
}

void tls_conn_set_bulk(tls_conn *c)
{
	if (!c->ssl)
		return;
	SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
	SSL_set_default_read_buffer_len(c->ssl, 64 * 1024);
}

/* After each read on the socket BIO: did read(2) return less than asked?
 * (With read_ahead OpenSSL asks for all the free buffer space.) Other
 * operations pass through; `ret` is the operation's own result. */
static long watch_cb(BIO *b, int oper, const char *argp, size_t len, int argi,
		     long argl, int ret, size_t *processed)
{
	(void)argp, (void)argi, (void)argl;
	if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
		tls_conn *c = (tls_conn *)BIO_get_callback_arg(b);
		c->sock_drained = ret <= 0 || !processed || *processed < len;
		if (ret > 0 && processed && *processed > 0)
			c->rx_any = true;
	}
	return ret;
}

void tls_conn_watch_reads(tls_conn *c)
{
	BIO *b = SSL_get_rbio(c->ssl);
	if (!b)
		return;
	BIO_set_callback_arg(b, (char *)c);
	BIO_set_callback_ex(b, watch_cb);
}

void tls_conn_free(tls_conn *c)
{
	SSL_SESSION_free(c->sess);
	c->sess = NULL;
	/* A client connection that ended without an error: OpenSSL would
	 * mark its session (kept for resumption) not resumable when freed
	 * without a close_notify; the connection was fine, so say it was
	 * shut. */
	if (c->ssl && !c->srv && c->handshaken && c->sticky != TLS_ERROR)
		SSL_set_shutdown(c->ssl,
				 SSL_get_shutdown(c->ssl) | SSL_SENT_SHUTDOWN);
	SSL_free(c->ssl);
	c->ssl = NULL;
	if (c->srv)
		tls_server_unref(c->srv);
	c->srv = NULL;
}

/* ---- handshake counters (tls.h) ---- */

static _Atomic uint64_t hs_done, hs_resumed, hs_failed[TLS_HS_NFAIL], hs_empty;

static const char *const hs_fail_names[TLS_HS_NFAIL] = {
    [TLS_HS_PROTOCOL_VERSION] = "protocol_version",
    [TLS_HS_NO_SHARED_CIPHER] = "no_shared_cipher",
    [TLS_HS_UNKNOWN_SNI] = "unknown_sni",
    [TLS_HS_CERT_REJECTED] = "certificate_rejected",
    [TLS_HS_CLOSED] = "closed",
    [TLS_HS_OTHER] = "other",
};

const char *tls_hs_fail_name(tls_hs_fail f)
{
	return (unsigned)f < TLS_HS_NFAIL ? hs_fail_names[f] : "other";
}

void tls_hs_stats_get(tls_hs_stats *out)
{
	out->done = atomic_load_explicit(&hs_done, memory_order_relaxed);
	out->resumed = atomic_load_explicit(&hs_resumed, memory_order_relaxed);
	out->empty = atomic_load_explicit(&hs_empty, memory_order_relaxed);
	for (int i = 0; i < TLS_HS_NFAIL; i++)
		out->failed[i] =
		    atomic_load_explicit(&hs_failed[i], memory_order_relaxed);
}

/* The handshake is done: mark it, and count it for a server connection. */
static void handshake_done(tls_conn *c)
{
	c->handshaken = true;
	if (!c->srv)
		return;
	atomic_fetch_add_explicit(&hs_done, 1, memory_order_relaxed);
	if (SSL_session_reused(c->ssl) == 1)
		atomic_fetch_add_explicit(&hs_resumed, 1, memory_order_relaxed);
}

/* Why a server handshake failed, from OpenSSL's error (err: the last one
 * queued; 0 for a close or an I/O error). */
static tls_hs_fail hs_classify(const tls_conn *c, int sslerr, unsigned long err)
{
	if (sslerr == SSL_ERROR_ZERO_RETURN || sslerr == SSL_ERROR_SYSCALL)
		return TLS_HS_CLOSED;
	if (sslerr != SSL_ERROR_SSL || ERR_GET_LIB(err) != ERR_LIB_SSL)
		return TLS_HS_OTHER;
	switch (ERR_GET_REASON(err)) {
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_VERSION_TOO_HIGH:
	case SSL_R_WRONG_SSL_VERSION:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		return TLS_HS_PROTOCOL_VERSION;
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_NO_SHARED_GROUPS:
	case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
	case SSL_R_NO_SUITABLE_KEY_SHARE:
	case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
	case SSL_R_TLSV1_ALERT_INSUFFICIENT_SECURITY:
		return TLS_HS_NO_SHARED_CIPHER;
	case SSL_R_CALLBACK_FAILED:
		/* The servername callback refuses exactly when the server
		 * has no certificate for the name (sni_required). */
		if (tls_server_select(
			c->srv, SSL_get_servername(
				    c->ssl, TLSEXT_NAMETYPE_host_name)) < 0)
			return TLS_HS_UNKNOWN_SNI;
		return TLS_HS_OTHER;
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		return TLS_HS_CERT_REJECTED;
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		return TLS_HS_CLOSED;
	default:
		return TLS_HS_OTHER;
	}
}

/* Map a failed OpenSSL call to a tls_rc; closed and error stick. A server
 * handshake that ends here is counted as failed, by reason. */
static int fail(tls_conn *c, int ret)
{
	int saved = errno;
	int sslerr = SSL_get_error(c->ssl, ret);
	if (c->srv && !c->handshaken && SSL_is_init_finished(c->ssl))
		handshake_done(c); /* completed by this read, then failed */
	/* Counted once: the first close or error (they stick). */
	if (c->srv && !c->handshaken && !c->sticky &&
	    sslerr != SSL_ERROR_WANT_READ && sslerr != SSL_ERROR_WANT_WRITE) {
		tls_hs_fail why = hs_classify(c, sslerr, ERR_peek_last_error());
		if (why == TLS_HS_CLOSED && !c->rx_any)
			atomic_fetch_add_explicit(&hs_empty, 1,
						  memory_order_relaxed);
		else
			atomic_fetch_add_explicit(&hs_failed[why], 1,
						  memory_order_relaxed);
	}
	switch (sslerr) {
	case SSL_ERROR_WANT_READ:
		return TLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return TLS_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		c->sticky = TLS_CLOSED;
		return TLS_CLOSED;
	case SSL_ERROR_SYSCALL:
		c->reason = saved ? strerrordesc_np(saved) : NULL;
		if (!c->reason)
			c->reason = "I/O error";
		break;
	case SSL_ERROR_SSL:
		c->reason = ERR_reason_error_string(ERR_peek_last_error());
		if (!c->reason)
			c->reason = "TLS protocol error";
		break;
	default:
		c->reason = "unexpected OpenSSL state";
		break;
	}
	ERR_clear_error();
	c->sticky = TLS_ERROR;
	return TLS_ERROR;
}

int tls_conn_handshake(tls_conn *c)
{
	if (c->handshaken)
		return 0;
	if (c->sticky)
		return c->sticky;
	tls_err_reset();
	errno = 0;
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		handshake_done(c);
		return 0;
	}
	return fail(c, r);
}

ssize_t tls_conn_read(tls_conn *c, void *buf, size_t len)
{
	size_t total = 0;
	if (c->sticky)
		return c->sticky;
	/* Only a read(2) made by this call may end it early: one from an
	 * earlier call says nothing of what has arrived since (its edge may
	 * already be spent while the caller held back). */
	c->sock_drained = false;
	while (total < len) {
		size_t n = 0;
		tls_err_reset();
		errno = 0;
		int r =
		    SSL_read_ex(c->ssl, (char *)buf + total, len - total, &n);
		if (r == 1) {
			total += n;
			/* Nothing buffered and the socket drained: stop here
			 * (a short count) rather than read(2) for EAGAIN. */
			if (c->sock_drained && !SSL_has_pending(c->ssl))
				break;
			continue;
		}
		int rc = fail(c, r);
		if (total)
			break;
		return rc;
	}
	if (!c->handshaken && SSL_is_init_finished(c->ssl))
		handshake_done(c);
	return (ssize_t)total;
}

ssize_t tls_conn_write(tls_conn *c, const void *buf, size_t len)
{
	size_t total = 0;
	if (c->sticky == TLS_ERROR)
		return TLS_ERROR;
	while (total < len) {
		size_t n = 0;
		tls_err_reset();
		errno = 0;
		int r = SSL_write_ex(c->ssl, (const char *)buf + total,
				     len - total, &n);
		if (r == 1) {
			total += n;
			continue;
		}
		int rc = fail(c, r);
		if (total)
			break;
		return rc;
	}
	return (ssize_t)total;
}

/* The largest TLS record payload: gathering beyond it gains nothing. */
#define TLS_RECORD 16384

ssize_t tls_conn_writev(tls_conn *c, const struct iovec *iov, int iovcnt)
{
	char stage[TLS_RECORD];
	size_t total = 0, off = 0;
	int i = 0;

	if (c->sticky == TLS_ERROR)
		return TLS_ERROR;
	while (i < iovcnt) {
		size_t rem = iov[i].iov_len - off;
		if (!rem) {
			i++;
			off = 0;
			continue;
		}
		const char *p = (const char *)iov[i].iov_base + off;
		size_t n = rem;
		if (rem < TLS_RECORD && i + 1 < iovcnt) {
			/* Gather the small buffers that follow. */
			size_t fill = 0, o = off;
			for (int j = i; j < iovcnt && fill < TLS_RECORD; j++) {
				size_t take =
				    MIN(iov[j].iov_len - o, TLS_RECORD - fill);
				memcpy(stage + fill,
				       (const char *)iov[j].iov_base + o, take);
				fill += take;
				o = 0;
			}
			p = stage;
			n = fill;
		}
		ssize_t w = tls_conn_write(c, p, n);
		if (w < 0)
			return total ? (ssize_t)total : w;
		total += (size_t)w;
		/* Advance (i, off) by w. */
		for (size_t left = (size_t)w; left;) {
			size_t take = MIN(iov[i].iov_len - off, left);
			off += take;
			left -= take;
			if (off == iov[i].iov_len) {
				i++;
				off = 0;
			}
		}
		if ((size_t)w < n)
			break;
	}
	return (ssize_t)total;
}

int tls_conn_shutdown(tls_conn *c)
{
	if (!c->ssl || c->sticky == TLS_ERROR || !c->handshaken)
		return 0;
	tls_err_reset();
	errno = 0;
	int r = SSL_shutdown(c->ssl);
	if (r >= 0)
		return 0; /* sent (0) or both sent (1) */
	int rc = fail(c, r);
	return rc == TLS_WANT_WRITE ? rc : 0;
}

tls_alpn tls_conn_alpn(const tls_conn *c)
{
	const unsigned char *p = NULL;
	unsigned int n = 0;
	SSL_get0_alpn_selected(c->ssl, &p, &n);
	if (n == 2 && !memcmp(p, "h2", 2))
		return TLS_ALPN_H2;
	if (n == 8 && !memcmp(p, "http/1.1", 8))
		return TLS_ALPN_HTTP11;
	return TLS_ALPN_NONE;
}

const char *tls_conn_sni(const tls_conn *c)
{
	return SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
}

bool tls_conn_resumed(const tls_conn *c)
{
	return SSL_session_reused(c->ssl) == 1;
}

const char *tls_conn_version(const tls_conn *c)
{
	return SSL_get_version(c->ssl);
}

const char *tls_conn_error(const tls_conn *c)
{
	return c->sticky == TLS_ERROR ? c->reason : NULL;
}

bool tls_conn_has_pending(const tls_conn *c)
{
	return c->ssl && SSL_has_pending(c->ssl);
}
