/* tls_client.c - the client side: TLS towards origins (see tls.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/core_util.h"
#include "tls/tls_int.h"

struct tls_client {
	SSL_CTX *ctx;
	bool verify;
};

/* The ex_data slot holding a connection's tls_conn (for new_session). */
static int conn_index = -1;
static pthread_once_t conn_index_once = PTHREAD_ONCE_INIT;

static void make_conn_index(void)
{
	conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* A session (TLS 1.3: a ticket, which arrives after the handshake) to
 * resume with: kept on the connection until tls_conn_take_session. */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
	tls_conn *c = SSL_get_ex_data(ssl, conn_index);
	if (!c || !SSL_SESSION_is_resumable(sess))
		return 0;
	SSL_SESSION_free(c->sess);
	c->sess = sess;
	return 1; /* we keep the reference */
}

int tls_client_new(const char *ca_file, bool verify, tls_client **out,
		   char *err, size_t errlen)
{
	*out = NULL;
	pthread_once(&conn_index_once, make_conn_index);
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || conn_index < 0) {
		snprintf(err, errlen, "TLS client: out of memory");
		SSL_CTX_free(ctx);
		return -ENOMEM;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Origins that end an EOF-framed body without close_notify are
	 * common; the HTTP layer checks the framing. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* As the server side (tls_server.c): tls_conn's read and write rules
	 * hold the same way. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
				  SSL_MODE_ENABLE_PARTIAL_WRITE |
				  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(ctx, 1);
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
	SSL_CTX_set_session_cache_mode(
	    ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, new_session);
	int ok = 1;
	if (verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
			     : SSL_CTX_set_default_verify_paths(ctx);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	if (ok != 1) {
		const char *r = ERR_reason_error_string(ERR_peek_last_error());
		snprintf(err, errlen, "%s: cannot load CA certificates: %s",
			 ca_file ? ca_file : "system store", r ? r : "error");
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return -EINVAL;
	}
	tls_client *c = xcalloc(1, sizeof(*c));
	c->ctx = ctx;
	c->verify = verify;
	*out = c;
	return 0;
}

void tls_client_free(tls_client *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ctx); /* live connections hold their own reference */
	free(c);
}

SSL *tls_client_ssl_new(tls_client *cl, int fd, const char *sni, const char *ip)
{
	SSL *ssl = SSL_new(cl->ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1)
		goto fail;
	SSL_set_connect_state(ssl);
	if (sni && SSL_set_tlsext_host_name(ssl, sni) != 1)
		goto fail;
	if (cl->verify) {
		int ok =
		    sni ? SSL_set1_host(ssl, sni)
		    : ip
			? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip)
			: 1;
		if (ok != 1)
			goto fail;
	}
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}

int tls_conn_init_client(tls_conn *c, tls_client *cl, int fd, const char *sni,
			 const char *ip, tls_session *sess)
{
	memset(c, 0, sizeof(*c));
	ERR_clear_error();
	c->ssl = tls_client_ssl_new(cl, fd, sni, ip);
	if (!c->ssl || SSL_set_ex_data(c->ssl, conn_index, c) != 1) {
		SSL_free(c->ssl);
		c->ssl = NULL;
		ERR_clear_error();
		return -ENOMEM;
	}
	tls_conn_watch_reads(c);
	if (sess)
		(void)SSL_set_session(c->ssl, sess);
	return 0;
}

tls_session *tls_conn_take_session(tls_conn *c)
{
	tls_session *s = c->sess;
	c->sess = NULL;
	return s;
}

void tls_session_free(tls_session *s)
{
	SSL_SESSION_free(s);
}

const char *tls_conn_verify_error(const tls_conn *c)
{
	if (!c->ssl)
		return NULL;
	long v = SSL_get_verify_result(c->ssl);
	return v == X509_V_OK ? NULL : X509_verify_cert_error_string(v);
}

/* The DNS names and addresses of a certificate's subjectAltName, else
 * its CN, comma separated, into b (cut with "..."). */
static void cert_names(X509 *x, char *b, size_t n)
{
	size_t len = 0;
	b[0] = '\0';
	GENERAL_NAMES *gens =
	    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int k = gens ? sk_GENERAL_NAME_num(gens) : 0;
	for (int i = 0; i < k && len + 4 < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char ip[INET6_ADDRSTRLEN];
		const char *s = NULL;
		int sl = 0;
		if (g->type == GEN_DNS) {
			s = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
			sl = ASN1_STRING_length(g->d.dNSName);
		} else if (g->type == GEN_IPADD) {
			int al = ASN1_STRING_length(g->d.iPAddress);
			const void *a = ASN1_STRING_get0_data(g->d.iPAddress);
			if ((al == 4 || al == 16) &&
			    inet_ntop(al == 4 ? AF_INET : AF_INET6, a, ip,
				      sizeof(ip))) {
				s = ip;
				sl = (int)strlen(ip);
			}
		}
		if (!s)
			continue;
		int w = snprintf(b + len, n - len, "%s%.*s", len ? ", " : "",
				 sl, s);
		len = w < 0 || (size_t)w >= n - len ? n : len + (size_t)w;
	}
	GENERAL_NAMES_free(gens);
	if (!len)
		X509_NAME_get_text_by_NID(X509_get_subject_name(x),
					  NID_commonName, b, (int)n);
	if (len >= n && n > 4)
		memcpy(b + n - 4, "...", 4);
	core_mask_controls(b);
}

const char *tls_verify_detail(struct ssl_st *ssl, char *buf, size_t n)
{
	buf[0] = '\0';
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	if (v != X509_V_ERR_HOSTNAME_MISMATCH &&
	    v != X509_V_ERR_IP_ADDRESS_MISMATCH)
		return buf;
	X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
	char *ip = NULL;
	const char *want = v == X509_V_ERR_HOSTNAME_MISMATCH
			       ? X509_VERIFY_PARAM_get0_host(param, 0)
			       : (ip = X509_VERIFY_PARAM_get1_ip_asc(param));
	char names[256] = "";
	/* A refused leaf never becomes the session's peer: it is first in
	 * the chain the server sent (kept before verification). */
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	if (chain && sk_X509_num(chain) > 0)
		cert_names(sk_X509_value(chain, 0), names, sizeof(names));
	snprintf(buf, n, " (for %s, not %s)", names[0] ? names : "no name",
		 want ? want : "?");
	OPENSSL_free(ip);
	return buf;
}

const char *tls_conn_verify_detail(const tls_conn *c, char *buf, size_t n)
{
	return tls_verify_detail(c->ssl, buf, n);
}
