/* Unit tests for src/tls: the SNI index (exact, wildcard, one label), ALPN
 * choice, loading (key mismatch, bad files, expired, duplicates,
 * default_name), and real handshakes over a socketpair driven
 * non-blockingly through tls_conn against an OpenSSL client: SNI selection,
 * RSA vs ECDSA by the client's signature algorithms, ALPN, data both ways,
 * writev, sni_required, TLS 1.1 refused, resumption across ticket key
 * rotations and across a reload. Certificates are made at test time with
 * the OpenSSL API in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config/cfg_load.h"
#include "tls/tls.h"
#include "tls/tls_int.h"
#include "tls/tls_sni.h"

static char dir[] = "/tmp/meridian-tls-XXXXXX";

/* ---- certificate factory ---- */

typedef enum { K_RSA, K_EC } ktype;

static EVP_PKEY *make_key(ktype t)
{
	return t == K_RSA ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
			  : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static char *path(const char *name)
{
	static char buf[8][256];
	static int n;
	char *p = buf[n++ % 8];
	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

static void write_key(const char *file, EVP_PKEY *k)
{
	FILE *f = fopen(path(file), "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL),
			 1);
	fclose(f);
}

/* A certificate for `cn` with SANs `sans` ("DNS:a,DNS:b" or NULL), valid
 * from now+from_days to now+to_days, signed by (ca, cakey) or self-signed.
 * Written with `extra` appended (a chain). */
static X509 *make_cert(EVP_PKEY *k, const char *cn, const char *sans,
		       int from_days, int to_days, X509 *ca, EVP_PKEY *cakey)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), (long)from_days * 86400);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)to_days * 86400);
	X509_set_pubkey(x, k);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : n);
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, ca ? ca : x, x, NULL, NULL, 0);
	if (sans) {
		X509_EXTENSION *e =
		    X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, sans);
		assert_non_null(e);
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	if (!ca) {
		X509_EXTENSION *e = X509V3_EXT_conf_nid(
		    NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	assert_true(X509_sign(x, ca ? cakey : k, EVP_sha256()) > 0);
	return x;
}

static void write_certs(const char *file, X509 *a, X509 *b)
{
	FILE *f = fopen(path(file), "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, a), 1);
	if (b)
		assert_int_equal(PEM_write_X509(f, b), 1);
	fclose(f);
}

/* Self-signed leaf + key files "<name>.pem" / "<name>.key". */
static void self_signed(const char *name, ktype t, const char *cn,
			const char *sans, int from, int to)
{
	char f[64];
	EVP_PKEY *k = make_key(t);
	X509 *x = make_cert(k, cn, sans, from, to, NULL, NULL);
	snprintf(f, sizeof(f), "%s.pem", name);
	write_certs(f, x, NULL);
	snprintf(f, sizeof(f), "%s.key", name);
	write_key(f, k);
	X509_free(x);
	EVP_PKEY_free(k);
}

static int group_setup(void **state)
{
	assert_non_null(mkdtemp(dir));
	self_signed("rsa", K_RSA, "www.example.com",
		    "DNS:www.example.com,DNS:example.com", -1, 30);
	self_signed("ecdsa", K_EC, "www.example.com",
		    "DNS:example.com,DNS:WWW.example.com", -1, 30);
	self_signed("wild", K_EC, "*.example.com", "DNS:*.example.com", -1, 30);
	self_signed("wild2", K_EC, "foo.test", "DNS:foo.test,DNS:*.example.com",
		    -1, 30);
	self_signed("other", K_EC, "other.test", "DNS:other.test", -1, 30);
	self_signed("cnonly", K_EC, "cn.example.net", NULL, -1, 30);
	self_signed("expired", K_EC, "old.example.org", "DNS:old.example.org",
		    -30, -1);
	self_signed("rsa2", K_RSA, "www.example.com",
		    "DNS:www.example.com,DNS:example.com", -1, 30);
	/* A leaf signed by a CA, with the CA in the chain file. */
	EVP_PKEY *cak = make_key(K_EC), *k = make_key(K_EC);
	X509 *ca = make_cert(cak, "Meridian Test CA", NULL, -1, 30, NULL, NULL);
	X509 *leaf = make_cert(k, "chain.example.net", "DNS:chain.example.net",
			       -1, 30, ca, cak);
	write_certs("chain.pem", leaf, ca);
	write_certs("chainrev.pem", ca, leaf); /* issuer first: wrong */
	write_certs("ca.pem", ca, NULL);
	write_key("chain.key", k);
	X509_free(ca);
	X509_free(leaf);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(k);
	const char *junk[] = {"garbage.pem", "garbage.key"};
	for (int i = 0; i < 2; i++) {
		FILE *f = fopen(path(junk[i]), "w");
		fputs("not PEM\n", f);
		fclose(f);
	}
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- config helpers ---- */

typedef struct certs {
	cfg_tls_cert c[8];
	char cert[8][256], key[8][256];
	cfg_tls tls;
} certs;

/* cfg with the named pairs ("rsa" → rsa.pem + rsa.key; "a/b" → a.pem with
 * b.key). */
static void make_cfg(certs *cs, int n, ...)
{
	va_list ap;
	memset(cs, 0, sizeof(*cs));
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		const char *spec = va_arg(ap, const char *);
		const char *slash = strchr(spec, '/');
		int cl = slash ? (int)(slash - spec) : (int)strlen(spec);
		snprintf(cs->cert[i], 256, "%s/%.*s.pem", dir, cl, spec);
		snprintf(cs->key[i], 256, "%s/%s.key", dir,
			 slash ? slash + 1 : spec);
		cs->c[i].cert = cs->cert[i];
		cs->c[i].key = cs->key[i];
	}
	va_end(ap);
	cs->tls.certificates = cs->c;
	cs->tls.ncertificates = (size_t)n;
	cs->tls.session_tickets = true;
	cs->tls.ticket_rotation_ms = 3600 * 1000;
}

static tls_server *must_server(const cfg_tls *t, unsigned flags,
			       const tls_server *prev)
{
	char err[512] = "";
	tls_server *s = NULL;
	int rc = tls_server_new(t, flags, prev, &s, err, sizeof(err));
	if (rc)
		fail_msg("tls_server_new: %s", err);
	return s;
}

/* ---- the SNI index (pure) ---- */

static void test_sni_index(void **state)
{
	tls_sni *x = tls_sni_new();
	assert_int_equal(tls_sni_add(x, "www.example.com", 0), 0);
	assert_int_equal(tls_sni_add(x, "*.example.com", 1), 0);
	assert_int_equal(tls_sni_add(x, "*.eu.example.com", 2), 0);
	assert_int_equal(tls_sni_add(x, "WWW.Example.COM.", 3), 1);
	assert_int_equal(tls_sni_add(x, "*.example.com", 3), 1);
	assert_int_equal(tls_sni_add(x, "f*.example.com", 3), -EINVAL);
	assert_int_equal(tls_sni_add(x, "*", 3), -EINVAL);
	assert_int_equal(tls_sni_add(x, "*.", 3), -EINVAL);
	assert_int_equal(tls_sni_add(x, "a..b", 3), -EINVAL);
	assert_int_equal(tls_sni_add(x, "", 3), -EINVAL);
	tls_sni_finish(x);
	assert_int_equal(tls_sni_count(x), 3);
#define LK(h) tls_sni_lookup(x, h, strlen(h))
	assert_int_equal(LK("www.example.com"), 0); /* exact beats wild */
	assert_int_equal(LK("WWW.EXAMPLE.COM."), 0);
	assert_int_equal(LK("api.example.com"), 1);
	assert_int_equal(LK("a.eu.example.com"), 2);
	assert_int_equal(LK("a.b.example.com"), -1); /* one label only */
	assert_int_equal(LK("example.com"), -1);     /* not the apex */
	assert_int_equal(LK(".example.com"), -1);
	assert_int_equal(LK("other.test"), -1);
	assert_int_equal(LK(""), -1);
	assert_int_equal(LK("bad host.example.com"), -1);
	char big[400];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(LK(big), -1);
	assert_int_equal(tls_sni_lookup(x, NULL, 0), -1);
#undef LK
	tls_sni_free(x);
}

static void test_alpn_choose(void **state)
{
	static const unsigned char both[] = "\x08http/1.1\x02h2";
	static const unsigned char h1[] = "\x08http/1.1";
	static const unsigned char h2[] = "\x02h2";
	static const unsigned char other[] = "\x02h3\x06spdy/3";
	static const unsigned char bad[] = "\x09http/1.1"; /* overruns */
	assert_int_equal(tls_alpn_choose(both, sizeof(both) - 1, true),
			 TLS_ALPN_H2);
	assert_int_equal(tls_alpn_choose(both, sizeof(both) - 1, false),
			 TLS_ALPN_HTTP11);
	assert_int_equal(tls_alpn_choose(h1, sizeof(h1) - 1, true),
			 TLS_ALPN_HTTP11);
	assert_int_equal(tls_alpn_choose(h2, sizeof(h2) - 1, false),
			 TLS_ALPN_NONE);
	assert_int_equal(tls_alpn_choose(other, sizeof(other) - 1, true),
			 TLS_ALPN_NONE);
	assert_int_equal(tls_alpn_choose(bad, sizeof(bad) - 1, true),
			 TLS_ALPN_NONE);
	assert_int_equal(tls_alpn_choose(NULL, 0, true), TLS_ALPN_NONE);
	static const unsigned char h10[] = "\x02h3\x08http/1.0";
	assert_int_equal(tls_alpn_choose(h10, sizeof(h10) - 1, true),
			 TLS_ALPN_HTTP10);
	assert_int_equal(tls_alpn_choose(both, sizeof(both) - 1, true),
			 TLS_ALPN_H2);
}

/* ---- loading ---- */

static void expect_error(cfg_tls *t, const char *want)
{
	char err[512] = "";
	tls_server *s = (tls_server *)1;
	assert_int_equal(tls_server_new(t, 0, NULL, &s, err, sizeof(err)),
			 -EINVAL);
	assert_null(s);
	if (!strstr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_load_errors(void **state)
{
	certs cs;
	char want[600];

	make_cfg(&cs, 2, "rsa", "ecdsa/rsa");
	snprintf(want, sizeof(want),
		 "edge.tls.certificates[1].key: %s/rsa.key does not match "
		 "certificate %s/ecdsa.pem",
		 dir, dir);
	expect_error(&cs.tls, want);

	make_cfg(&cs, 1, "rsa/wild"); /* ECDSA key for an RSA certificate */
	expect_error(&cs.tls, "edge.tls.certificates[0].key: ");
	expect_error(&cs.tls, "does not match certificate");

	/* The key is for the second certificate of the file: say so. */
	make_cfg(&cs, 1, "chainrev/chain");
	snprintf(want, sizeof(want),
		 "edge.tls.certificates[0].cert: %s/chainrev.pem: "
		 "certificates out of order: the one for key %s/chain.key is "
		 "certificate 2 of the file",
		 dir, dir);
	expect_error(&cs.tls, want);

	make_cfg(&cs, 1, "missing");
	expect_error(&cs.tls, "edge.tls.certificates[0].cert: ");
	expect_error(&cs.tls, "No such file or directory");

	make_cfg(&cs, 1, "garbage/rsa");
	expect_error(&cs.tls, "not a PEM certificate chain");

	make_cfg(&cs, 1, "rsa/garbage");
	expect_error(&cs.tls, "edge.tls.certificates[0].key: ");
	expect_error(&cs.tls, "not an unencrypted PEM private key");

	make_cfg(&cs, 2, "rsa", "rsa2");
	expect_error(&cs.tls, "edge.tls.certificates[1].cert: ");
	expect_error(&cs.tls, "same names and key type as "
			      "edge.tls.certificates[0]");

	make_cfg(&cs, 1, "rsa");
	cs.tls.default_name = "nothing.example.org";
	expect_error(&cs.tls, "edge.tls.default_name: no certificate has the "
			      "name nothing.example.org");

	make_cfg(&cs, 0);
	expect_error(&cs.tls, "edge.tls.certificates: none configured");

	/* With a position the message starts with file:line:col. */
	make_cfg(&cs, 2, "rsa", "ecdsa/rsa");
	cs.c[1].pos = (cfg_pos){.file = "edge.yaml", .line = 12, .col = 9};
	expect_error(&cs.tls, "edge.yaml:12:9: edge.tls.certificates[1].key");
}

static void test_load_sets_and_warnings(void **state)
{
	certs cs;
	make_cfg(&cs, 6, "rsa", "ecdsa", "wild", "cnonly", "expired", "chain");
	tls_server *s = must_server(&cs.tls, 0, NULL);
	/* rsa + ecdsa share their names: 5 sets. */
	assert_int_equal(tls_server_nsets(s), 5);
	assert_non_null(tls_server_warning(s, 0));
	assert_non_null(strstr(tls_server_warning(s, 0),
			       "edge.tls.certificates[4].cert: "));
	assert_non_null(strstr(tls_server_warning(s, 0), "expired on"));
	assert_null(tls_server_warning(s, 1));

	/* Selection: exact beats wildcard, one label, CN fallback, default. */
	assert_int_equal(tls_server_select(s, "www.example.com"), 0);
	assert_int_equal(tls_server_select(s, "EXAMPLE.com"), 0);
	assert_int_equal(tls_server_select(s, "api.example.com"), 1);
	assert_int_equal(tls_server_select(s, "a.b.example.com"), 0);
	assert_int_equal(tls_server_select(s, "cn.example.net"), 2);
	assert_int_equal(tls_server_select(s, "old.example.org"), 3);
	assert_int_equal(tls_server_select(s, "chain.example.net"), 4);
	assert_int_equal(tls_server_select(s, "nope.test"), 0);
	assert_int_equal(tls_server_select(s, NULL), 0);
	tls_server_unref(s);

	/* default_name picks the default set; sni_required fails instead. */
	cs.tls.default_name = "x.example.com";
	s = must_server(&cs.tls, 0, NULL);
	assert_int_equal(tls_server_select(s, "nope.test"), 1);
	assert_int_equal(tls_server_select(s, NULL), 1);
	tls_server_unref(s);
	cs.tls.sni_required = true;
	s = must_server(&cs.tls, 0, NULL);
	assert_int_equal(tls_server_select(s, "nope.test"), -1);
	assert_int_equal(tls_server_select(s, NULL), -1);
	assert_int_equal(tls_server_select(s, "www.example.com"), 0);
	tls_server_unref(s);

	/* A name claimed twice: the first keeps it, with a warning. */
	make_cfg(&cs, 2, "wild", "wild2");
	s = must_server(&cs.tls, 0, NULL);
	assert_int_equal(tls_server_nsets(s), 2);
	assert_non_null(strstr(tls_server_warning(s, 0),
			       "edge.tls.certificates[1]: *.example.com is "
			       "also a name of an earlier certificate"));
	assert_int_equal(tls_server_select(s, "a.example.com"), 0);
	assert_int_equal(tls_server_select(s, "foo.test"), 1);
	tls_server_unref(s);

	make_cfg(&cs, 2, "ecdsa", "rsa2");
	s = must_server(&cs.tls, 0, NULL); /* same names, RSA + ECDSA: ok */
	assert_int_equal(tls_server_nsets(s), 1);
	tls_server_unref(s);
}

/* ---- handshakes over a socketpair ---- */

typedef struct pair {
	int fd[2];
	tls_conn srv;
	SSL_CTX *cctx;
	SSL *cli;
} pair;

typedef struct client_opts {
	const char *sni;
	const char *alpn; /* wire format */
	size_t alpn_len;
	const char *sigalgs;
	int max_version;
	SSL_SESSION *session;
} client_opts;

static void pair_open(pair *p, tls_server *s, const client_opts *o)
{
	memset(p, 0, sizeof(*p));
	assert_int_equal(socketpair(AF_UNIX,
				    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
				    0, p->fd),
			 0);
	assert_int_equal(tls_conn_init(&p->srv, s, p->fd[0]), 0);
	p->cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(p->cctx);
	SSL_CTX_set_verify(p->cctx, SSL_VERIFY_NONE, NULL);
	if (o->max_version) {
		SSL_CTX_set_min_proto_version(p->cctx, 0);
		SSL_CTX_set_max_proto_version(p->cctx, o->max_version);
		SSL_CTX_set_cipher_list(p->cctx, "DEFAULT:@SECLEVEL=0");
	}
	if (o->sigalgs)
		assert_int_equal(SSL_CTX_set1_sigalgs_list(p->cctx, o->sigalgs),
				 1);
	/* Sessions for resumption tests are kept by the caller (a client
	 * cache would mark them not resumable when the context is freed). */
	SSL_CTX_set_session_cache_mode(p->cctx, SSL_SESS_CACHE_OFF);
	p->cli = SSL_new(p->cctx);
	SSL_set_fd(p->cli, p->fd[1]);
	SSL_set_connect_state(p->cli);
	if (o->sni)
		SSL_set_tlsext_host_name(p->cli, o->sni);
	if (o->alpn)
		assert_int_equal(
		    SSL_set_alpn_protos(p->cli, (const unsigned char *)o->alpn,
					(unsigned)o->alpn_len),
		    0);
	if (o->session)
		assert_int_equal(SSL_set_session(p->cli, o->session), 1);
}

static void pair_close(pair *p)
{
	/* A client session freed without close_notify is not resumable. */
	if (SSL_is_init_finished(p->cli))
		SSL_shutdown(p->cli);
	tls_conn_free(&p->srv);
	SSL_free(p->cli);
	SSL_CTX_free(p->cctx);
	close(p->fd[0]);
	close(p->fd[1]);
	ERR_clear_error();
}

/* Step both sides until the handshake ends. Returns 0 when both finished,
 * else the server's tls_rc (TLS_ERROR) or -100 when the client failed. */
static int pair_handshake(pair *p)
{
	bool sdone = false, cdone = false;
	for (int i = 0; i < 100 && !(sdone && cdone); i++) {
		if (!sdone) {
			int rc = tls_conn_handshake(&p->srv);
			if (rc == 0)
				sdone = true;
			else if (rc != TLS_WANT_READ && rc != TLS_WANT_WRITE)
				return rc;
		}
		if (!cdone) {
			int r = SSL_do_handshake(p->cli);
			if (r == 1) {
				cdone = true;
			} else {
				int e = SSL_get_error(p->cli, r);
				if (e != SSL_ERROR_WANT_READ &&
				    e != SSL_ERROR_WANT_WRITE) {
					/* Let the server see the alert. */
					int rc = tls_conn_handshake(&p->srv);
					return rc == TLS_ERROR ? rc : -100;
				}
			}
		}
	}
	return sdone && cdone ? 0 : -101;
}

static int key_type(SSL *cli)
{
	X509 *x = SSL_get1_peer_certificate(cli);
	assert_non_null(x);
	int t = EVP_PKEY_get_base_id(X509_get0_pubkey(x));
	X509_free(x);
	return t;
}

static char *peer_cn(SSL *cli, char *buf, size_t len)
{
	X509 *x = SSL_get1_peer_certificate(cli);
	assert_non_null(x);
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf,
				  (int)len);
	X509_free(x);
	return buf;
}

static tls_server *main_server(unsigned flags, bool sni_required)
{
	certs cs;
	make_cfg(&cs, 5, "rsa", "ecdsa", "wild", "other", "chain");
	cs.tls.sni_required = sni_required;
	return must_server(&cs.tls, flags, NULL);
}

static void test_handshake_sni(void **state)
{
	tls_server *s = main_server(0, false);
	pair p;
	char cn[128];
	struct {
		const char *sni, *cn;
	} cases[] = {
	    {"www.example.com", "www.example.com"},
	    {"api.example.com", "*.example.com"},
	    {"other.test", "other.test"},
	    {"a.b.example.com", "www.example.com"}, /* no match: default */
	    {NULL, "www.example.com"},		    /* no SNI: default */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pair_open(&p, s, &(client_opts){.sni = cases[i].sni});
		assert_int_equal(pair_handshake(&p), 0);
		assert_string_equal(peer_cn(p.cli, cn, sizeof(cn)),
				    cases[i].cn);
		if (cases[i].sni)
			assert_string_equal(tls_conn_sni(&p.srv), cases[i].sni);
		else
			assert_null(tls_conn_sni(&p.srv));
		assert_string_equal(tls_conn_version(&p.srv), "TLSv1.3");
		pair_close(&p);
	}

	/* The chain file's CA goes out after the leaf. */
	pair_open(&p, s, &(client_opts){.sni = "chain.example.net"});
	assert_int_equal(pair_handshake(&p), 0);
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(p.cli);
	assert_int_equal(sk_X509_num(chain), 2);
	pair_close(&p);
	tls_server_unref(s);

	/* sni_required: no match or none → handshake failure. */
	s = main_server(0, true);
	pair_open(&p, s, &(client_opts){.sni = "nope.test"});
	assert_int_equal(pair_handshake(&p), TLS_ERROR);
	assert_non_null(tls_conn_error(&p.srv));
	pair_close(&p);
	pair_open(&p, s, &(client_opts){0});
	assert_int_equal(pair_handshake(&p), TLS_ERROR);
	pair_close(&p);
	pair_open(&p, s, &(client_opts){.sni = "api.example.com"});
	assert_int_equal(pair_handshake(&p), 0);
	pair_close(&p);
	tls_server_unref(s);
}

static void test_handshake_key_type(void **state)
{
	tls_server *s = main_server(0, false);
	pair p;
	/* TLS 1.3: by signature algorithm. */
	pair_open(&p, s,
		  &(client_opts){.sni = "www.example.com",
				 .sigalgs = "ECDSA+SHA256"});
	assert_int_equal(pair_handshake(&p), 0);
	assert_int_equal(key_type(p.cli), EVP_PKEY_EC);
	pair_close(&p);
	pair_open(&p, s,
		  &(client_opts){.sni = "www.example.com",
				 .sigalgs = "rsa_pss_rsae_sha256"});
	assert_int_equal(pair_handshake(&p), 0);
	assert_int_equal(key_type(p.cli), EVP_PKEY_RSA);
	pair_close(&p);
	/* TLS 1.2 too. */
	pair_open(&p, s,
		  &(client_opts){.sni = "example.com",
				 .sigalgs = "RSA+SHA256",
				 .max_version = TLS1_2_VERSION});
	assert_int_equal(pair_handshake(&p), 0);
	assert_int_equal(key_type(p.cli), EVP_PKEY_RSA);
	assert_string_equal(tls_conn_version(&p.srv), "TLSv1.2");
	pair_close(&p);
	/* A wildcard set with only ECDSA and an RSA-only client: fails. */
	pair_open(&p, s,
		  &(client_opts){.sni = "api.example.com",
				 .sigalgs = "rsa_pss_rsae_sha256"});
	assert_int_equal(pair_handshake(&p), TLS_ERROR);
	pair_close(&p);
	tls_server_unref(s);
}

static void test_handshake_alpn(void **state)
{
	tls_server *h2 = main_server(TLS_F_ALPN_H2, false);
	tls_server *h1 = main_server(0, false);
	static const char both[] = "\x02h2\x08http/1.1";
	static const char only_h1[] = "\x08http/1.1";
	static const char only_h2[] = "\x02h2";
	static const char other[] = "\x02h3\x0a"
				    "acme-tls/1";
	struct {
		tls_server *s;
		const char *alpn;
		size_t len;
		tls_alpn want;
		bool refused; /* no_application_protocol (RFC 7301 §3.2) */
	} cases[] = {
	    {h2, both, sizeof(both) - 1, TLS_ALPN_H2, false},
	    {h1, both, sizeof(both) - 1, TLS_ALPN_HTTP11, false},
	    {h2, only_h1, sizeof(only_h1) - 1, TLS_ALPN_HTTP11, false},
	    {h1, only_h2, sizeof(only_h2) - 1, TLS_ALPN_NONE, true},
	    {h2, other, sizeof(other) - 1, TLS_ALPN_NONE, true},
	    {h2, NULL, 0, TLS_ALPN_NONE, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pair p;
		pair_open(&p, cases[i].s,
			  &(client_opts){.sni = "www.example.com",
					 .alpn = cases[i].alpn,
					 .alpn_len = cases[i].len});
		if (cases[i].refused) {
			assert_int_equal(pair_handshake(&p), TLS_ERROR);
			pair_close(&p);
			continue;
		}
		assert_int_equal(pair_handshake(&p), 0);
		assert_int_equal(tls_conn_alpn(&p.srv), cases[i].want);
		pair_close(&p);
	}
	tls_server_unref(h2);
	tls_server_unref(h1);
}

static void test_tls11_refused(void **state)
{
	tls_server *s = main_server(0, false);
	pair p;
	pair_open(&p, s,
		  &(client_opts){.sni = "www.example.com",
				 .max_version = TLS1_1_VERSION});
	assert_int_equal(pair_handshake(&p), TLS_ERROR);
	assert_string_equal(tls_conn_error(&p.srv), "unsupported protocol");
	pair_close(&p);
	tls_server_unref(s);

	/* min_version 1.3 refuses 1.2. */
	certs cs;
	make_cfg(&cs, 1, "ecdsa");
	cs.tls.min_version = CFG_TLS_1_3;
	s = must_server(&cs.tls, 0, NULL);
	pair_open(&p, s, &(client_opts){.max_version = TLS1_2_VERSION});
	assert_int_equal(pair_handshake(&p), TLS_ERROR);
	pair_close(&p);
	tls_server_unref(s);
}

/* Client reads until it has `want` bytes, pumping the server's writes. */
static void client_read_all(SSL *cli, unsigned char *buf, size_t want)
{
	size_t got = 0;
	for (int i = 0; got < want && i < 100000; i++) {
		size_t n = 0;
		if (SSL_read_ex(cli, buf + got, want - got, &n) == 1)
			got += n;
		else
			assert_int_equal(SSL_get_error(cli, 0),
					 SSL_ERROR_WANT_READ);
		if (got < want && n == 0)
			break;
	}
	assert_int_equal(got, want);
}

static void test_data_both_ways(void **state)
{
	tls_server *s = main_server(0, false);
	pair p;
	pair_open(&p, s, &(client_opts){.sni = "www.example.com"});
	assert_int_equal(pair_handshake(&p), 0);

	/* Nothing yet: want read. */
	unsigned char buf[4096];
	assert_int_equal(tls_conn_read(&p.srv, buf, sizeof(buf)),
			 TLS_WANT_READ);

	/* Client → server: several records, read in one call. */
	const char *msg = "GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n";
	for (int i = 0; i < 3; i++)
		assert_int_equal(SSL_write(p.cli, msg, (int)strlen(msg)),
				 (int)strlen(msg));
	ssize_t n = tls_conn_read(&p.srv, buf, sizeof(buf));
	assert_int_equal(n, 3 * strlen(msg));
	assert_memory_equal(buf, msg, strlen(msg));
	/* A short count means the next call gives the code. */
	assert_int_equal(tls_conn_read(&p.srv, buf, sizeof(buf)),
			 TLS_WANT_READ);
	/* A small buffer: full counts until drained. */
	assert_int_equal(SSL_write(p.cli, msg, (int)strlen(msg)),
			 (int)strlen(msg));
	assert_int_equal(tls_conn_read(&p.srv, buf, 10), 10);
	assert_int_equal(tls_conn_read(&p.srv, buf + 10, sizeof(buf)),
			 strlen(msg) - 10);

	/* Server → client until the socket is full: a short count or want
	 * write, then drain on the client and finish the same bytes. */
	size_t big = 1 << 20;
	unsigned char *out = malloc(big), *in = malloc(big);
	for (size_t i = 0; i < big; i++)
		out[i] = (unsigned char)(i * 7 + i / 251);
	size_t sent = 0, got = 0;
	bool blocked = false;
	for (int i = 0; sent < big && i < 100000; i++) {
		ssize_t w = tls_conn_write(&p.srv, out + sent, big - sent);
		if (w > 0)
			sent += (size_t)w;
		else
			assert_int_equal(w, TLS_WANT_WRITE);
		if (sent < big)
			blocked = true;
		size_t r = 0;
		while (SSL_read_ex(p.cli, in + got, big - got, &r) == 1)
			got += r;
	}
	assert_true(blocked);
	assert_int_equal(sent, big);
	if (got < big)
		client_read_all(p.cli, in + got, big - got);
	assert_memory_equal(in, out, big);

	/* writev gathers a head and a body. */
	struct iovec iov[3] = {
	    {.iov_base = (void *)"HTTP/1.1 200 OK\r\n", .iov_len = 17},
	    {.iov_base = (void *)"Content-Length: 5\r\n\r\n", .iov_len = 21},
	    {.iov_base = (void *)"hello", .iov_len = 5},
	};
	assert_int_equal(tls_conn_writev(&p.srv, iov, 3), 43);
	client_read_all(p.cli, in, 43);
	assert_memory_equal(
	    in, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 43);
	/* A large iov after a small one. */
	iov[0] = (struct iovec){.iov_base = (void *)"head", .iov_len = 4};
	iov[1] = (struct iovec){.iov_base = out, .iov_len = 40000};
	assert_int_equal(tls_conn_writev(&p.srv, iov, 2), 40004);
	client_read_all(p.cli, in, 40004);
	assert_memory_equal(in, "head", 4);
	assert_memory_equal(in + 4, out, 40000);

	/* Shutdown: the client sees close_notify; the server sees the
	 * client's as closed (sticky). */
	assert_int_equal(tls_conn_shutdown(&p.srv), 0);
	assert_int_equal(SSL_read(p.cli, in, 10), 0);
	assert_int_equal(SSL_get_error(p.cli, 0), SSL_ERROR_ZERO_RETURN);
	assert_int_equal(SSL_shutdown(p.cli), 1);
	assert_int_equal(tls_conn_read(&p.srv, buf, sizeof(buf)), TLS_CLOSED);
	assert_int_equal(tls_conn_read(&p.srv, buf, sizeof(buf)), TLS_CLOSED);
	/* Writing after our own close_notify fails. */
	assert_int_equal(tls_conn_write(&p.srv, "x", 1), TLS_ERROR);
	free(out);
	free(in);
	pair_close(&p);

	/* A peer that just goes away: closed (not an error). */
	pair_open(&p, s, &(client_opts){.sni = "www.example.com"});
	assert_int_equal(pair_handshake(&p), 0);
	shutdown(p.fd[1], SHUT_WR);
	assert_int_equal(tls_conn_read(&p.srv, buf, sizeof(buf)), TLS_CLOSED);
	/* Half-close: the answer still goes out. */
	assert_int_equal(tls_conn_write(&p.srv, "bye", 3), 3);
	unsigned char bye[3];
	client_read_all(p.cli, bye, 3);
	assert_memory_equal(bye, "bye", 3);
	pair_close(&p);

	/* Garbage instead of a ClientHello: error with a reason. */
	pair_open(&p, s, &(client_opts){0});
	assert_int_equal(write(p.fd[1], "GET / HTTP/1.1\r\n\r\n", 18), 18);
	assert_int_equal(tls_conn_handshake(&p.srv), TLS_ERROR);
	assert_non_null(tls_conn_error(&p.srv));
	assert_int_equal(tls_conn_shutdown(&p.srv), 0);
	pair_close(&p);
	tls_server_unref(s);
}

/* ---- resumption ---- */

/* Full handshake, then read what the server sent after it (TLS 1.3
 * tickets) and return the client's session. */
static SSL_SESSION *get_session_sni(tls_server *s, const char *sni, int maxv,
				    bool *resumed, SSL_SESSION *use, char *cn,
				    size_t cnlen)
{
	pair p;
	unsigned char b[16];
	pair_open(
	    &p, s,
	    &(client_opts){.sni = sni, .max_version = maxv, .session = use});
	assert_int_equal(pair_handshake(&p), 0);
	/* Let the client process NewSessionTicket messages. */
	assert_int_equal(tls_conn_write(&p.srv, "x", 1), 1);
	client_read_all(p.cli, b, 1);
	*resumed = tls_conn_resumed(&p.srv);
	assert_int_equal(*resumed, SSL_session_reused(p.cli) == 1);
	if (cn)
		peer_cn(p.cli, cn, cnlen);
	SSL_SESSION *sess = SSL_get1_session(p.cli);
	assert_non_null(sess);
	pair_close(&p);
	return sess;
}

static SSL_SESSION *get_session(tls_server *s, int maxv, bool *resumed,
				SSL_SESSION *use)
{
	return get_session_sni(s, "www.example.com", maxv, resumed, use, NULL,
			       0);
}

static void resumption(int maxv)
{
	tls_server *s = main_server(0, false);
	bool r;
	SSL_SESSION *s0 = get_session(s, maxv, &r, NULL);
	assert_false(r);
	SSL_SESSION *s1 = get_session(s, maxv, &r, s0);
	assert_true(r);

	/* One rotation: the previous key still decrypts (and a new ticket
	 * under the current key is issued). */
	tls_server_rotate_tickets(s);
	SSL_SESSION *s2 = get_session(s, maxv, &r, s0);
	assert_true(r);
	/* Two rotations: s0's key is gone → full handshake; s2 was renewed
	 * after the first rotation so it is only one rotation old. */
	tls_server_rotate_tickets(s);
	SSL_SESSION *s3 = get_session(s, maxv, &r, s0);
	assert_false(r);
	SSL_SESSION *s4 = get_session(s, maxv, &r, s2);
	assert_true(r);

	/* Reload: a new server built with prev shares the keys. */
	certs cs;
	make_cfg(&cs, 2, "rsa", "ecdsa");
	char err[256];
	tls_server *s5 = NULL;
	assert_int_equal(tls_server_new(&cs.tls, 0, s, &s5, err, sizeof(err)),
			 0);
	SSL_SESSION *s6 = get_session(s5, maxv, &r, s4);
	assert_true(r);
	/* A server not built from it does not know them. */
	tls_server *fresh = must_server(&cs.tls, 0, NULL);
	SSL_SESSION *s7 = get_session(fresh, maxv, &r, s4);
	assert_false(r);

	SSL_SESSION *all[] = {s0, s1, s2, s3, s4, s6, s7};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		SSL_SESSION_free(all[i]);
	tls_server_unref(fresh);
	tls_server_unref(s5);
	tls_server_unref(s);
}

/* A session is resumed only under the certificate it was made with: a
 * ticket of www.example.com offered with the SNI of another certificate
 * gets a full handshake and that certificate (RFC 6066 §3: a server MUST
 * NOT resume a session for a different server name). The same name, in
 * another case, or another name of the same certificate still resumes. */
static void cross_name_resumption(int maxv)
{
	tls_server *s = main_server(0, false);
	bool r;
	char cn[128];
	SSL_SESSION *s0 = get_session_sni(s, "www.example.com", maxv, &r, NULL,
					  cn, sizeof(cn));
	assert_false(r);
	struct {
		const char *sni, *cn;
		bool resumed;
	} cases[] = {
	    {"other.test", "other.test", false},
	    {"api.example.com", "*.example.com", false},
	    {"WWW.Example.com", "www.example.com", true},
	    {"example.com", "www.example.com", true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		SSL_SESSION *s1 = get_session_sni(s, cases[i].sni, maxv, &r, s0,
						  cn, sizeof(cn));
		if (r != cases[i].resumed)
			fail_msg("SNI %s: resumed %d", cases[i].sni, r);
		assert_string_equal(cn, cases[i].cn);
		SSL_SESSION_free(s1);
	}
	/* A ticket of the default certificate, got without SNI, is not
	 * resumed under another one either. */
	SSL_SESSION *s2 =
	    get_session_sni(s, NULL, maxv, &r, NULL, cn, sizeof(cn));
	SSL_SESSION *s3 =
	    get_session_sni(s, "other.test", maxv, &r, s2, cn, sizeof(cn));
	assert_false(r);
	assert_string_equal(cn, "other.test");
	SSL_SESSION_free(s3);
	s3 = get_session_sni(s, NULL, maxv, &r, s2, cn, sizeof(cn));
	assert_true(r);
	SSL_SESSION_free(s3);
	SSL_SESSION_free(s2);
	SSL_SESSION_free(s0);
	tls_server_unref(s);
}

static void test_resumption_tls13(void **state)
{
	resumption(0);
	cross_name_resumption(0);
}

static void test_resumption_tls12(void **state)
{
	resumption(TLS1_2_VERSION);
	cross_name_resumption(TLS1_2_VERSION);
}

static void test_tickets_off(void **state)
{
	certs cs;
	make_cfg(&cs, 1, "ecdsa");
	cs.tls.session_tickets = false;
	tls_server *s = must_server(&cs.tls, 0, NULL);
	bool r;
	SSL_SESSION *s0 = get_session(s, 0, &r, NULL);
	SSL_SESSION *s1 = get_session(s, 0, &r, s0);
	assert_false(r);
	SSL_SESSION_free(s0);
	SSL_SESSION_free(s1);
	tls_server_unref(s);
}

/* A live connection keeps the server it started on after the caller
 * drops its reference (reload). */
static void test_conn_outlives_server(void **state)
{
	tls_server *s = main_server(0, false);
	pair p;
	pair_open(&p, s, &(client_opts){.sni = "www.example.com"});
	tls_server_unref(s); /* the caller swapped in another one */
	assert_int_equal(pair_handshake(&p), 0);
	assert_int_equal(tls_conn_write(&p.srv, "hi", 2), 2);
	unsigned char b[2];
	client_read_all(p.cli, b, 2);
	pair_close(&p);
}

/* From YAML through the key tables to a server: positions in errors,
 * the new keys applied. */
/* ---- the client side (towards origins) ---- */

/* Both ends ours: a tls_server and a client tls_conn over a socketpair.
 * Returns the client's handshake result (0, or the tls_rc it failed on). */
static int client_pair(tls_server *s, tls_client *c, const char *sni,
		       tls_session *sess, int fd[2], tls_conn *srv,
		       tls_conn *cli)
{
	assert_int_equal(socketpair(AF_UNIX,
				    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
				    0, fd),
			 0);
	assert_int_equal(tls_conn_init(srv, s, fd[0]), 0);
	assert_int_equal(
	    tls_conn_init_client(cli, c, fd[1], sni, "127.0.0.1", sess), 0);
	int crc = TLS_WANT_READ;
	for (int i = 0; i < 100 && crc; i++) {
		int r = tls_conn_handshake(srv);
		crc = tls_conn_handshake(cli);
		if (crc != TLS_WANT_READ && crc != TLS_WANT_WRITE && crc)
			break;
		if (r == TLS_ERROR)
			break;
	}
	return crc;
}

static void client_pair_close(int fd[2], tls_conn *srv, tls_conn *cli)
{
	tls_conn_free(cli);
	tls_conn_free(srv);
	close(fd[0]);
	close(fd[1]);
	ERR_clear_error();
}

static void test_client_verify_and_resume(void **state)
{
	certs cs;
	make_cfg(&cs, 1, "chain");
	tls_server *s = must_server(&cs.tls, 0, NULL);
	char err[256];
	tls_client *c = NULL, *sys = NULL;
	assert_int_equal(
	    tls_client_new(path("ca.pem"), true, &c, err, sizeof(err)), 0);
	assert_int_equal(tls_client_new(NULL, true, &sys, err, sizeof(err)), 0);
	int fd[2];
	tls_conn srv, cli;

	/* Verified by the CA and the name; data both ways; a ticket. */
	assert_int_equal(
	    client_pair(s, c, "chain.example.net", NULL, fd, &srv, &cli), 0);
	assert_string_equal(tls_conn_sni(&srv), "chain.example.net");
	assert_false(tls_conn_resumed(&cli));
	assert_int_equal(tls_conn_write(&cli, "ping", 4), 4);
	char buf[16];
	assert_int_equal(tls_conn_read(&srv, buf, sizeof(buf)), 4);
	assert_int_equal(tls_conn_write(&srv, "pong", 4), 4);
	assert_int_equal(tls_conn_read(&cli, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "pong", 4);
	tls_session *sess = tls_conn_take_session(&cli);
	assert_non_null(sess);
	assert_null(tls_conn_take_session(&cli));
	client_pair_close(fd, &srv, &cli);

	/* The kept session resumes (the connection above ended cleanly). */
	assert_int_equal(
	    client_pair(s, c, "chain.example.net", sess, fd, &srv, &cli), 0);
	assert_true(tls_conn_resumed(&cli));
	client_pair_close(fd, &srv, &cli);
	tls_session_free(sess);

	/* Another name: refused, with the reason. */
	assert_int_equal(
	    client_pair(s, c, "other.example.net", NULL, fd, &srv, &cli),
	    TLS_ERROR);
	assert_string_equal(tls_conn_error(&cli), "certificate verify failed");
	assert_string_equal(tls_conn_verify_error(&cli), "hostname mismatch");
	client_pair_close(fd, &srv, &cli);

	/* The system store does not know the test CA. */
	assert_int_equal(
	    client_pair(s, sys, "chain.example.net", NULL, fd, &srv, &cli),
	    TLS_ERROR);
	assert_non_null(tls_conn_verify_error(&cli));
	client_pair_close(fd, &srv, &cli);

	/* A CA file that is not one. */
	tls_client *bad = NULL;
	assert_int_equal(
	    tls_client_new(path("garbage.pem"), true, &bad, err, sizeof(err)),
	    -EINVAL);
	assert_null(bad);
	assert_non_null(strstr(err, "cannot load CA certificates"));

	tls_client_free(c);
	tls_client_free(sys);
	tls_server_unref(s);
}

static void test_from_yaml(void **state)
{
	char yaml[2048];
	snprintf(yaml, sizeof(yaml),
		 "edge:\n"
		 "  tls:\n"
		 "    certificates:\n"
		 "      - { cert: %s/rsa.pem, key: %s/rsa.key }\n"
		 "      - { cert: %s/wild.pem, key: %s/wild.key }\n"
		 "      - { cert: %s/ecdsa.pem, key: %s/rsa.key }\n"
		 "    default_name: api.example.com\n"
		 "    min_version: 1.3\n"
		 "    ticket_rotation: 30m\n",
		 dir, dir, dir, dir, dir, dir);
	cfg_snapshot *snap = NULL;
	cfg_diag diag = {0};
	assert_int_equal(
	    cfg_load_string("edge.yaml", yaml, strlen(yaml), &snap, &diag), 0);
	cfg_tls *t = &snap->edge.tls;
	assert_int_equal(t->min_version, CFG_TLS_1_3);
	assert_int_equal(t->ticket_rotation_ms, 30 * 60 * 1000);
	assert_true(t->session_tickets);
	assert_false(t->sni_required);

	char err[512], want[600];
	tls_server *s = NULL;
	assert_int_equal(tls_server_new(t, 0, NULL, &s, err, sizeof(err)),
			 -EINVAL);
	snprintf(want, sizeof(want),
		 "edge.yaml:6:9: edge.tls.certificates[2].key: %s/rsa.key "
		 "does not match certificate %s/ecdsa.pem",
		 dir, dir);
	assert_string_equal(err, want);

	t->ncertificates = 2;
	s = must_server(t, 0, NULL);
	assert_int_equal(tls_server_select(s, NULL), 1);
	assert_int_equal(tls_server_rotation_ms(s), 30 * 60 * 1000);
	pair p;
	pair_open(&p, s, &(client_opts){.max_version = TLS1_2_VERSION});
	assert_int_equal(pair_handshake(&p), TLS_ERROR);
	pair_close(&p);
	tls_server_unref(s);
	cfg_snapshot_free(snap);
	cfg_diag_free(&diag);
}

/* The short-count rule (tls.h): a read that returns fewer bytes than
 * asked means the socket is drained, so an edge-triggered caller may wait
 * for the next edge. It must hold when earlier calls left data buffered
 * in OpenSSL and more arrived since (its edge already spent). */
static void test_short_read_means_drained(void **state)
{
	(void)state;
	certs cs;
	make_cfg(&cs, 1, "chain");
	tls_server *s = must_server(&cs.tls, 0, NULL);
	char err[256];
	tls_client *c = NULL;
	assert_int_equal(
	    tls_client_new(path("ca.pem"), false, &c, err, sizeof(err)), 0);
	int fd[2];
	tls_conn srv, cli;
	assert_int_equal(
	    client_pair(s, c, "chain.example.net", NULL, fd, &srv, &cli), 0);
	static char big[16384], rd[65536];
	memset(big, 'a', sizeof(big));
	/* Finish the handshake both ways (tickets included). */
	for (int i = 0; i < 5; i++) {
		tls_conn_handshake(&srv);
		tls_conn_read(&cli, rd, sizeof(rd));
		tls_conn_read(&srv, rd, sizeof(rd));
	}
	assert_int_equal(tls_conn_write(&cli, big, sizeof(big)),
			 (ssize_t)sizeof(big));
	/* A full count: most of the record stays buffered in OpenSSL. */
	assert_int_equal(tls_conn_read(&srv, rd, 1000), 1000);
	assert_int_equal(tls_conn_write(&cli, big, sizeof(big)),
			 (ssize_t)sizeof(big));
	/* Each short count must leave the socket with nothing to read. */
	size_t got = 1000;
	for (int i = 0; i < 8 && got < 2 * sizeof(big); i++) {
		ssize_t n = tls_conn_read(&srv, rd, sizeof(rd));
		if (n == TLS_WANT_READ)
			break;
		assert_true(n > 0);
		got += (size_t)n;
		if ((size_t)n < sizeof(rd)) {
			struct pollfd p = {.fd = fd[0], .events = POLLIN};
			assert_int_equal(poll(&p, 1, 0), 0);
		}
	}
	assert_int_equal(got, 2 * sizeof(big));
	client_pair_close(fd, &srv, &cli);
	tls_client_free(c);
	tls_server_unref(s);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as the edge does (edge_main.c) */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sni_index),
	    cmocka_unit_test(test_alpn_choose),
	    cmocka_unit_test(test_load_errors),
	    cmocka_unit_test(test_load_sets_and_warnings),
	    cmocka_unit_test(test_handshake_sni),
	    cmocka_unit_test(test_handshake_key_type),
	    cmocka_unit_test(test_handshake_alpn),
	    cmocka_unit_test(test_tls11_refused),
	    cmocka_unit_test(test_data_both_ways),
	    cmocka_unit_test(test_resumption_tls13),
	    cmocka_unit_test(test_resumption_tls12),
	    cmocka_unit_test(test_tickets_off),
	    cmocka_unit_test(test_client_verify_and_resume),
	    cmocka_unit_test(test_conn_outlives_server),
	    cmocka_unit_test(test_short_read_means_drained),
	    cmocka_unit_test(test_from_yaml),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
