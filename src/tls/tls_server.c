/* tls_server.c - certificates, SNI, ALPN and session tickets (see tls.h).
 *
 * Certificates whose name sets are equal form one set with one SSL_CTX,
 * so an RSA and an ECDSA certificate for the same names sit side by side
 * and OpenSSL serves the one the client's signature algorithms (TLS 1.3)
 * or cipher suites (TLS 1.2) allow. Connections start on the default
 * set's context; the ClientHello callback looks the SNI up in the index
 * (tls_sni.c) and moves the connection to its set's context before any
 * session is resumed (each set has its own session id context); the
 * servername callback refuses an unknown name under sni_required.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "core/core_util.h"
#include "tls/tls_int.h"
#include "tls/tls_sni.h"

/* Mozilla "intermediate" (TLS 1.2 part; TLS 1.3 suites are all good). */
#define TLS12_CIPHERS                                                          \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"           \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"                 \
	"DHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES                                                           \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"                       \
	"TLS_CHACHA20_POLY1305_SHA256"
#define TLS_GROUPS "X25519:P-256:P-384"

/* ---- session ticket keys ---- */

typedef struct ticket_key {
	unsigned char name[16];
	unsigned char aes[32];	/* AES-256-CBC */
	unsigned char hmac[32]; /* HMAC-SHA256 */
} ticket_key;

/* Shared by a server and the servers built from it (reload). */
typedef struct tls_tickets {
	atomic_uint refs;
	pthread_mutex_t lock;
	ticket_key cur, prev;
	bool has_prev;
	/* Fetched once: with EVP_aes_256_cbc() OpenSSL 3 fetches the
	 * provider's cipher again in every EVP_EncryptInit_ex (per ticket). */
	EVP_CIPHER *aes;
} tls_tickets;

static void ticket_key_new(ticket_key *k)
{
	if (RAND_bytes((unsigned char *)k, sizeof(*k)) != 1)
		abort(); /* no randomness: nothing safe to do */
}

static tls_tickets *tickets_new(void)
{
	tls_tickets *t = xcalloc(1, sizeof(*t));
	atomic_init(&t->refs, 1);
	pthread_mutex_init(&t->lock, NULL);
	ticket_key_new(&t->cur);
	t->aes = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	if (!t->aes)
		abort(); /* no AES in the default provider: a broken install */
	return t;
}

static void tickets_unref(tls_tickets *t)
{
	if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&t->lock);
	EVP_CIPHER_free(t->aes);
	OPENSSL_cleanse(t, sizeof(*t));
	free(t);
}

/* ---- the server ---- */

typedef struct tls_set {
	SSL_CTX *ctx;
	char **names; /* lowercase, sorted, unique */
	size_t nnames;
	size_t first; /* index of its first certificate in cfg */
} tls_set;

struct tls_server {
	atomic_uint refs;
	tls_set *sets;
	size_t nsets;
	tls_sni *sni;
	int default_set;
	bool sni_required;
	unsigned flags;
	uint32_t rotation_ms;
	tls_tickets *tickets;
	char **warnings;
	size_t nwarnings;
};

static void server_free(tls_server *s)
{
	for (size_t i = 0; i < s->nsets; i++) {
		SSL_CTX_free(s->sets[i].ctx);
		for (size_t j = 0; j < s->sets[i].nnames; j++)
			free(s->sets[i].names[j]);
		free(s->sets[i].names);
	}
	free(s->sets);
	tls_sni_free(s->sni);
	tickets_unref(s->tickets);
	for (size_t i = 0; i < s->nwarnings; i++)
		free(s->warnings[i]);
	free(s->warnings);
	free(s);
}

tls_server *tls_server_ref(tls_server *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void tls_server_unref(tls_server *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1)
		server_free(s);
}

const char *tls_server_warning(const tls_server *s, size_t i)
{
	return i < s->nwarnings ? s->warnings[i] : NULL;
}

size_t tls_server_nsets(const tls_server *s)
{
	return s->nsets;
}

uint32_t tls_server_rotation_ms(const tls_server *s)
{
	return s->rotation_ms;
}

SSL_CTX *tls_server_default_ctx(const tls_server *s)
{
	return s->sets[s->default_set].ctx;
}

int tls_server_select(const tls_server *s, const char *host)
{
	int set = host ? tls_sni_lookup(s->sni, host, strlen(host)) : -1;
	if (set >= 0)
		return set;
	return s->sni_required ? -1 : s->default_set;
}

void tls_server_rotate_tickets(tls_server *s)
{
	tls_tickets *t = s->tickets;
	ticket_key k;
	ticket_key_new(&k);
	pthread_mutex_lock(&t->lock);
	t->prev = t->cur;
	t->has_prev = true;
	t->cur = k;
	pthread_mutex_unlock(&t->lock);
	OPENSSL_cleanse(&k, sizeof(k));
}

/* ---- callbacks (run inside handshakes, on worker threads) ---- */

/* The connection onto set's context (a no-op when already there). */
static bool move_to_set(SSL *ssl, const tls_server *s, int set)
{
	SSL_CTX *ctx = s->sets[set].ctx;
	return SSL_get_SSL_CTX(ssl) == ctx || SSL_set_SSL_CTX(ssl, ctx) == ctx;
}

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
	const tls_server *s = arg;
	const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	int set = tls_server_select(s, host);
	if (set < 0) {
		*alert = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	if (!move_to_set(ssl, s, set)) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
}

/* Runs first in a ClientHello, before a session or ticket is looked at:
 * moves the connection to the context of the set its SNI names, whose
 * session id context (set_sid_ctx) is then the one a resumed session must
 * carry. A session made under another certificate set gets a full
 * handshake (RFC 6066 §3: no resumption for a different server name),
 * not a resumption that skips the certificate the name needs. No SNI or
 * no match stays on the default set; sni_cb, later, refuses with
 * sni_required (it sees what the handshake goes on with). A malformed
 * extension is left to OpenSSL's parser, which refuses it. */
static int hello_cb(SSL *ssl, int *alert, void *arg)
{
	const tls_server *s = arg;
	const unsigned char *p = NULL;
	size_t len = 0;
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) !=
	    1)
		return SSL_CLIENT_HELLO_SUCCESS;
	/* ServerNameList: a 2-byte length, then one host_name entry (type 0,
	 * a 2-byte length, the name); OpenSSL accepts no other form. */
	if (len < 5 || (size_t)(p[0] << 8 | p[1]) != len - 2 || p[2] != 0)
		return SSL_CLIENT_HELLO_SUCCESS;
	size_t n = (size_t)(p[3] << 8 | p[4]);
	if (n != len - 5)
		return SSL_CLIENT_HELLO_SUCCESS;
	int set = tls_sni_lookup(s->sni, (const char *)p + 5, n);
	if (set >= 0 && !move_to_set(ssl, s, set)) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

static bool alpn_offered(const unsigned char *in, size_t inlen,
			 const char *proto)
{
	size_t plen = strlen(proto);
	for (size_t i = 0; i < inlen;) {
		size_t n = in[i++];
		if (n > inlen - i)
			return false;
		if (n == plen && !memcmp(in + i, proto, n))
			return true;
		i += n;
	}
	return false;
}

tls_alpn tls_alpn_choose(const unsigned char *in, size_t inlen, bool h2)
{
	if (h2 && alpn_offered(in, inlen, "h2"))
		return TLS_ALPN_H2;
	if (alpn_offered(in, inlen, "http/1.1"))
		return TLS_ALPN_HTTP11;
	if (alpn_offered(in, inlen, "http/1.0"))
		return TLS_ALPN_HTTP10;
	return TLS_ALPN_NONE;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	const tls_server *s = arg;
	switch (tls_alpn_choose(in, inlen, s->flags & TLS_F_ALPN_H2)) {
	case TLS_ALPN_H2:
		*out = (const unsigned char *)"h2";
		*outlen = 2;
		return SSL_TLSEXT_ERR_OK;
	case TLS_ALPN_HTTP11:
		*out = (const unsigned char *)"http/1.1";
		*outlen = 8;
		return SSL_TLSEXT_ERR_OK;
	case TLS_ALPN_HTTP10:
		*out = (const unsigned char *)"http/1.0";
		*outlen = 8;
		return SSL_TLSEXT_ERR_OK;
	default:
		/* Offered, but nothing we speak (h2 alone with edge.tls.http2
		 * off, h3, another protocol): RFC 7301 §3.2's
		 * no_application_protocol alert, as nginx since 1.21.4. Going
		 * on would let a client of another protocol be answered in
		 * HTTP (cross-protocol attacks, ALPACA). A client that offers
		 * no ALPN at all gets no callback: it proceeds. */
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
}

/* Returns 1 (ticket made / accepted), 2 (accepted, issue a new one), 0
 * (unknown key: full handshake), -1. A new ticket is issued when the
 * accepted one was made with the previous key, and on every TLS 1.3
 * resumption: clients use a TLS 1.3 ticket once (RFC 8446 C.4; browsers
 * drop it when they offer it), so a resumption that hands out no
 * replacement leaves the client with nothing for its next connection. A
 * TLS 1.2 ticket stays valid (as nginx): no new ticket, no cost. */
static int ticket_cb(SSL *ssl, unsigned char name[16],
		     unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX *ectx,
		     EVP_MAC_CTX *hctx, int enc)
{
	const tls_server *s = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	tls_tickets *t = s->tickets;
	ticket_key k;
	int rc = 1;

	pthread_mutex_lock(&t->lock);
	if (enc) {
		k = t->cur;
	} else if (!memcmp(name, t->cur.name, sizeof(t->cur.name))) {
		k = t->cur;
		if (SSL_version(ssl) >= TLS1_3_VERSION)
			rc = 2;
	} else if (t->has_prev &&
		   !memcmp(name, t->prev.name, sizeof(t->prev.name))) {
		k = t->prev;
		rc = 2;
	} else {
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	if (rc == 0)
		return 0;

	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
					     (char *)"SHA256", 0),
	    OSSL_PARAM_construct_end(),
	};
	if (enc) {
		memcpy(name, k.name, sizeof(k.name));
		if (RAND_bytes(iv, 16) != 1 ||
		    EVP_EncryptInit_ex2(ectx, t->aes, k.aes, iv, NULL) != 1)
			rc = -1;
	} else if (EVP_DecryptInit_ex2(ectx, t->aes, k.aes, iv, NULL) != 1) {
		rc = -1;
	}
	if (rc > 0 && EVP_MAC_init(hctx, k.hmac, sizeof(k.hmac), params) != 1)
		rc = -1;
	OPENSSL_cleanse(&k, sizeof(k));
	return rc;
}

/* ---- building ---- */

static void warn(tls_server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void warn(tls_server *s, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->warnings =
	    xrealloc(s->warnings, (s->nwarnings + 1) * sizeof(*s->warnings));
	s->warnings[s->nwarnings++] = xstrdup(buf);
}

/* "file:line:col: " when the config has a position. */
static void pos_prefix(const cfg_pos *p, char *buf, size_t len)
{
	if (p && p->file)
		snprintf(buf, len, "%s:%u:%u: ", p->file, p->line, p->col);
	else
		buf[0] = '\0';
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* OpenSSL's reason for the last error (static text); clears the queue. */
static const char *ossl_reason(void)
{
	const char *r = ERR_reason_error_string(ERR_peek_last_error());
	ERR_clear_error();
	return r ? r : "unknown OpenSSL error";
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1; /* never prompt on a terminal */
}

static SSL_CTX *ctx_new(tls_server *s, const cfg_tls *cfg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return NULL;
	int minv =
	    cfg->min_version == CFG_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
	/* Server order (AES-128-GCM first) unless the client puts ChaCha20
	 * first (no AES hardware): clients left to choose take AES-256-GCM
	 * with SHA-384, whose TLS 1.3 key schedule (HKDF) costs the server 4 %
	 * more instructions per handshake than SHA-256, for no security a
	 * 128-bit key exchange (X25519, P-256) can use. */
	uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
			SSL_OP_IGNORE_UNEXPECTED_EOF |
			SSL_OP_CIPHER_SERVER_PREFERENCE |
			SSL_OP_PRIORITIZE_CHACHA;
	if (!cfg->session_tickets)
		opts |= SSL_OP_NO_TICKET;
	if (SSL_CTX_set_min_proto_version(ctx, minv) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1 ||
	    SSL_CTX_set_dh_auto(ctx, 1) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, opts);
	/* Idle connections give their 2 x 17 KiB record buffers back. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
				  SSL_MODE_ENABLE_PARTIAL_WRITE |
				  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Read ahead: one read(2) takes the header and body of a record (and
	 * whatever follows), instead of a 5-byte read for each header, another
	 * for the body and a third that says EAGAIN. tls_conn_read still reads
	 * until OpenSSL wants the socket, so a short count means drained. */
	SSL_CTX_set_read_ahead(ctx, 1);
	/* Tickets only: no per-session state on the edge. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (cfg->session_tickets) {
		SSL_CTX_set_timeout(ctx, (long)(2 * (s->rotation_ms / 1000)));
		SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
		/* One TLS 1.3 ticket per full handshake, not OpenSSL's two:
		 * each costs about 6 % of the handshake (the session encoded
		 * three times, decoded once, encrypted and MACed) and a client
		 * uses one per connection; every resumption brings one
		 * replacement (ticket_cb; OpenSSL never sends more on a
		 * resumption). The trade-off: a client that opens several
		 * connections at once after its first one resumes one of them,
		 * not two. */
		SSL_CTX_set_num_tickets(ctx, 1);
	} else {
		SSL_CTX_set_num_tickets(ctx, 0);
	}
	SSL_CTX_set_client_hello_cb(ctx, hello_cb, s);
	SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
	SSL_CTX_set_tlsext_servername_arg(ctx, s);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, s);
	SSL_CTX_set_app_data(ctx, s);
	return ctx;
}

/* One configured certificate, read. */
typedef struct loaded {
	X509 *leaf;
	STACK_OF(X509) * chain;
	EVP_PKEY *key;
	char **names;
	size_t nnames;
} loaded;

static void loaded_free(loaded *l)
{
	X509_free(l->leaf);
	sk_X509_pop_free(l->chain, X509_free);
	EVP_PKEY_free(l->key);
	for (size_t i = 0; i < l->nnames; i++)
		free(l->names[i]);
	free(l->names);
	memset(l, 0, sizeof(*l));
}

static void add_name(loaded *l, const char *name, size_t len)
{
	char *n = xmalloc(len + 1);
	for (size_t i = 0; i < len; i++)
		n[i] = (char)(name[i] >= 'A' && name[i] <= 'Z'
				  ? name[i] - 'A' + 'a'
				  : name[i]);
	n[len] = '\0';
	for (size_t i = 0; i < l->nnames; i++)
		if (!strcmp(l->names[i], n)) {
			free(n);
			return;
		}
	l->names = xrealloc(l->names, (l->nnames + 1) * sizeof(*l->names));
	l->names[l->nnames++] = n;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* DNS subject alternative names, else the (last) common name. */
static void read_names(loaded *l)
{
	GENERAL_NAMES *sans =
	    X509_get_ext_d2i(l->leaf, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		if (g->type != GEN_DNS)
			continue;
		const ASN1_IA5STRING *s = g->d.dNSName;
		const char *d = (const char *)ASN1_STRING_get0_data(s);
		size_t len = (size_t)ASN1_STRING_length(s);
		if (len && !memchr(d, '\0', len))
			add_name(l, d, len);
	}
	GENERAL_NAMES_free(sans);
	if (!l->nnames) {
		const X509_NAME *subj = X509_get_subject_name(l->leaf);
		int idx = -1, last = -1;
		while ((idx = X509_NAME_get_index_by_NID(subj, NID_commonName,
							 idx)) >= 0)
			last = idx;
		if (last >= 0) {
			const ASN1_STRING *s = X509_NAME_ENTRY_get_data(
			    X509_NAME_get_entry(subj, last));
			const char *d = (const char *)ASN1_STRING_get0_data(s);
			size_t len = (size_t)ASN1_STRING_length(s);
			if (len && !memchr(d, '\0', len))
				add_name(l, d, len);
		}
	}
	if (l->nnames)
		qsort(l->names, l->nnames, sizeof(*l->names), str_cmp);
}

static void time_text(const ASN1_TIME *t, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n = 0;
	buf[0] = '\0';
	if (b && ASN1_TIME_print(b, t) == 1)
		n = BIO_read(b, buf, (int)len - 1);
	buf[n > 0 ? n : 0] = '\0';
	BIO_free(b);
}

/* Read certificates[i]; 0 or -EINVAL with err set. */
static int load_one(tls_server *s, const cfg_tls_cert *c, size_t i, loaded *l,
		    char *err, size_t errlen)
{
	char at[300];
	pos_prefix(&c->pos, at, sizeof(at));
	FILE *f = fopen(c->cert, "r");
	if (!f) {
		errf(err, errlen, "%sedge.tls.certificates[%zu].cert: %s: %s",
		     at, i, c->cert, strerror(errno));
		return -EINVAL;
	}
	ERR_clear_error();
	l->leaf = PEM_read_X509(f, NULL, no_passphrase, NULL);
	if (l->leaf) {
		l->chain = sk_X509_new_null();
		X509 *x;
		while ((x = PEM_read_X509(f, NULL, no_passphrase, NULL)))
			if (!l->chain || !sk_X509_push(l->chain, x))
				X509_free(x);
		unsigned long e = ERR_peek_last_error();
		if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
		    ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
			ERR_clear_error(); /* the end of the file */
	}
	fclose(f);
	if (!l->leaf || ERR_peek_error()) {
		errf(err, errlen,
		     "%sedge.tls.certificates[%zu].cert: %s: not a PEM "
		     "certificate chain (%s)",
		     at, i, c->cert, ossl_reason());
		return -EINVAL;
	}

	f = fopen(c->key, "r");
	if (!f) {
		errf(err, errlen, "%sedge.tls.certificates[%zu].key: %s: %s",
		     at, i, c->key, strerror(errno));
		return -EINVAL;
	}
	l->key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (!l->key) {
		errf(err, errlen,
		     "%sedge.tls.certificates[%zu].key: %s: not an unencrypted "
		     "PEM private key (%s)",
		     at, i, c->key, ossl_reason());
		return -EINVAL;
	}
	if (X509_check_private_key(l->leaf, l->key) != 1) {
		/* The key may belong to a later certificate of the file: the
		 * server's own must come first (then its issuers). */
		for (int j = 0; j < sk_X509_num(l->chain); j++) {
			if (X509_check_private_key(sk_X509_value(l->chain, j),
						   l->key) != 1)
				continue;
			ERR_clear_error();
			errf(err, errlen,
			     "%sedge.tls.certificates[%zu].cert: %s: "
			     "certificates out of order: the one for key %s "
			     "is certificate %d of the file; the server's "
			     "certificate must come first, then its issuers",
			     at, i, c->cert, c->key, j + 2);
			return -EINVAL;
		}
		ERR_clear_error();
		errf(err, errlen,
		     "%sedge.tls.certificates[%zu].key: %s does not match "
		     "certificate %s",
		     at, i, c->key, c->cert);
		return -EINVAL;
	}
	read_names(l);
	if (!l->nnames) {
		errf(err, errlen,
		     "%sedge.tls.certificates[%zu].cert: %s has no DNS name "
		     "(subject alternative name or common name)",
		     at, i, c->cert);
		return -EINVAL;
	}

	char when[64];
	if (X509_cmp_current_time(X509_get0_notAfter(l->leaf)) < 0) {
		time_text(X509_get0_notAfter(l->leaf), when, sizeof(when));
		warn(s, "%sedge.tls.certificates[%zu].cert: %s expired on %s",
		     at, i, c->cert, when);
	} else if (X509_cmp_current_time(X509_get0_notBefore(l->leaf)) > 0) {
		time_text(X509_get0_notBefore(l->leaf), when, sizeof(when));
		warn(s,
		     "%sedge.tls.certificates[%zu].cert: %s is not valid "
		     "before %s",
		     at, i, c->cert, when);
	}
	return 0;
}

/* The session id context of a set: a hash of its names, so a session
 * resumes only on the set it was made on (hello_cb), and still after a
 * reload that renews the certificates of the same names. */
static int set_sid_ctx(SSL_CTX *ctx, char *const *names, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *h = EVP_MD_CTX_new();
	int ok = h && EVP_DigestInit_ex(h, EVP_sha256(), NULL) == 1;
	for (size_t i = 0; ok && i < n; i++) /* with its NUL: no ambiguity */
		ok = EVP_DigestUpdate(h, names[i], strlen(names[i]) + 1) == 1;
	ok = ok && EVP_DigestFinal_ex(h, md, &mdlen) == 1;
	EVP_MD_CTX_free(h);
	if (!ok)
		return -1;
	static_assert(SSL_MAX_SID_CTX_LENGTH <= 32, "SHA-256 fills it");
	return SSL_CTX_set_session_id_context(ctx, md,
					      SSL_MAX_SID_CTX_LENGTH) == 1
		   ? 0
		   : -1;
}

static bool same_names(const tls_set *set, const loaded *l)
{
	if (set->nnames != l->nnames)
		return false;
	for (size_t i = 0; i < l->nnames; i++)
		if (strcmp(set->names[i], l->names[i]))
			return false;
	return true;
}

/* Put a read certificate into its set (a new one when no set has the same
 * names). 0, or -EINVAL / -ENOMEM with err set. */
static int place(tls_server *s, const cfg_tls *cfg, size_t i, loaded *l,
		 char *err, size_t errlen)
{
	const cfg_tls_cert *c = &cfg->certificates[i];
	char at[300];
	pos_prefix(&c->pos, at, sizeof(at));

	tls_set *set = NULL;
	for (size_t k = 0; k < s->nsets && !set; k++)
		if (same_names(&s->sets[k], l))
			set = &s->sets[k];
	if (!set) {
		SSL_CTX *ctx = ctx_new(s, cfg);
		if (ctx && set_sid_ctx(ctx, l->names, l->nnames) < 0) {
			SSL_CTX_free(ctx);
			ctx = NULL;
		}
		if (!ctx) {
			errf(err, errlen, "edge.tls: %s", ossl_reason());
			return -ENOMEM;
		}
		s->sets = xrealloc(s->sets, (s->nsets + 1) * sizeof(*s->sets));
		set = &s->sets[s->nsets++];
		*set = (tls_set){.ctx = ctx,
				 .names = l->names,
				 .nnames = l->nnames,
				 .first = i};
		l->names = NULL;
		l->nnames = 0;
	}
	ERR_clear_error();
	if (SSL_CTX_use_cert_and_key(set->ctx, l->leaf, l->key, l->chain, 0) !=
	    1) {
		unsigned long e = ERR_peek_last_error();
		if (ERR_GET_REASON(e) == SSL_R_NOT_REPLACING_CERTIFICATE) {
			ERR_clear_error();
			errf(err, errlen,
			     "%sedge.tls.certificates[%zu].cert: %s has the "
			     "same names and key type as "
			     "edge.tls.certificates[%zu] (one RSA and one "
			     "ECDSA certificate per set of names)",
			     at, i, c->cert, set->first);
		} else {
			errf(err, errlen,
			     "%sedge.tls.certificates[%zu].cert: %s: %s", at, i,
			     c->cert, ossl_reason());
		}
		return -EINVAL;
	}
	return 0;
}

static int index_names(tls_server *s, const cfg_tls *cfg, char *err,
		       size_t errlen)
{
	s->sni = tls_sni_new();
	for (size_t k = 0; k < s->nsets; k++) {
		const tls_set *set = &s->sets[k];
		for (size_t j = 0; j < set->nnames; j++) {
			int rc =
			    tls_sni_add(s->sni, set->names[j], (uint32_t)k);
			if (rc == 1)
				warn(s,
				     "edge.tls.certificates[%zu]: %s is also a "
				     "name of an earlier certificate, which "
				     "serves it",
				     set->first, set->names[j]);
			else if (rc < 0)
				warn(s,
				     "edge.tls.certificates[%zu]: name \"%s\" "
				     "cannot match a host name; ignored",
				     set->first, set->names[j]);
		}
	}
	tls_sni_finish(s->sni);
	s->default_set = 0;
	if (cfg->default_name) {
		const char *n = cfg->default_name;
		int set = tls_sni_lookup(s->sni, n, strlen(n));
		if (set < 0) {
			errf(err, errlen,
			     "edge.tls.default_name: no certificate has the "
			     "name %s",
			     n);
			return -EINVAL;
		}
		s->default_set = set;
	}
	return 0;
}

int tls_server_new(const cfg_tls *cfg, unsigned flags, const tls_server *prev,
		   tls_server **out, char *err, size_t errlen)
{
	int rc = 0;
	loaded l = {0};
	*out = NULL;
	if (!cfg->ncertificates) {
		errf(err, errlen, "edge.tls.certificates: none configured");
		return -EINVAL;
	}

	tls_server *s = xcalloc(1, sizeof(*s));
	atomic_init(&s->refs, 1);
	s->flags = flags;
	s->sni_required = cfg->sni_required;
	s->rotation_ms =
	    cfg->ticket_rotation_ms ? cfg->ticket_rotation_ms : 3600 * 1000;
	if (prev) {
		s->tickets = prev->tickets;
		atomic_fetch_add(&s->tickets->refs, 1);
	} else {
		s->tickets = tickets_new();
	}

	for (size_t i = 0; i < cfg->ncertificates; i++) {
		rc = load_one(s, &cfg->certificates[i], i, &l, err, errlen);
		if (rc == 0)
			rc = place(s, cfg, i, &l, err, errlen);
		loaded_free(&l);
		if (rc < 0)
			goto out;
	}
	rc = index_names(s, cfg, err, errlen);
out:
	ERR_clear_error();
	if (rc < 0) {
		server_free(s);
		return rc;
	}
	*out = s;
	return 0;
}
