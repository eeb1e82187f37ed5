/* tls_info.c - what a tls_server has loaded, for the API and /metrics
 * (tls.h: tls_server_load, tls_server_cert).
 *
 * tls_server.c keeps only what handshakes need (contexts, names, keys), so
 * the details of each certificate are read here from the same files, right
 * after the server is built, and checked to be what the build read: the
 * files are hashed before and after the build and the build is done again
 * if they changed in between. The result hangs on the server's default
 * SSL_CTX as ex_data, so it lives and dies with the server (OpenSSL frees
 * it with the context) and needs no field of tls_server.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/core_util.h"
#include "tls/tls_int.h"

/* Larger files are not certificates we serve (tls_server_new reads them
 * anyway; here they only change the hash). */
#define INFO_MAX_FILE (8u << 20)
#define LOAD_TRIES    3

typedef struct tls_info {
	tls_cert_info *certs;
	unsigned char (*digest)[32]; /* per certificate: its two files */
	size_t n;
} tls_info;

static int ex_idx = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void cert_info_clear(tls_cert_info *ci)
{
	free((char *)ci->cert_file);
	free((char *)ci->key_file);
	free((char *)ci->curve);
	free((char *)ci->subject_cn);
	free((char *)ci->issuer_cn);
	free((char *)ci->serial);
	for (size_t i = 0; i < ci->nsans; i++)
		free((char *)ci->sans[i]);
	free((void *)ci->sans);
}

static void info_free(tls_info *info)
{
	if (!info)
		return;
	for (size_t i = 0; i < info->n; i++)
		cert_info_clear(&info->certs[i]);
	free(info->certs);
	free(info->digest);
	free(info);
}

static void ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
		    long argl, void *argp)
{
	info_free(ptr);
}

static void ex_init(void)
{
	ex_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ex_free);
}

static const tls_info *info_of(const tls_server *s)
{
	pthread_once(&ex_once, ex_init);
	if (!s || ex_idx < 0)
		return NULL;
	return SSL_CTX_get_ex_data(tls_server_default_ctx(s), ex_idx);
}

size_t tls_server_ncerts(const tls_server *s)
{
	const tls_info *info = info_of(s);
	return info ? info->n : 0;
}

const tls_cert_info *tls_server_cert(const tls_server *s, size_t i)
{
	const tls_info *info = info_of(s);
	return info && i < info->n ? &info->certs[i] : NULL;
}

/* ---- reading ---- */

/* The whole file (at most INFO_MAX_FILE bytes) into *out (malloc'd);
 * 0 or -errno. */
static int slurp(const char *path, unsigned char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	size_t cap = 16384, n = 0;
	unsigned char *p = xmalloc(cap);
	for (;;) {
		if (n == cap) {
			if (cap >= INFO_MAX_FILE)
				break;
			cap *= 2;
			p = xrealloc(p, cap);
		}
		size_t got = fread(p + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	int rc = ferror(f) ? -EIO : 0;
	fclose(f);
	if (rc < 0) {
		free(p);
		return rc;
	}
	*out = p;
	*len = n;
	return 0;
}

/* Hash one file (or why it cannot be read) into md. */
static void hash_file(EVP_MD_CTX *md, const char *path, unsigned char **data,
		      size_t *len)
{
	int rc = slurp(path, data, len);
	if (rc < 0) {
		EVP_DigestUpdate(md, "\0error", 6);
		EVP_DigestUpdate(md, &rc, sizeof(rc));
		return;
	}
	uint64_t n = *len;
	EVP_DigestUpdate(md, &n, sizeof(n)); /* no ambiguity between files */
	EVP_DigestUpdate(md, *data, *len);
}

static char *utf8_entry(const X509_NAME *name)
{
	int idx = -1, last = -1;
	while ((idx = X509_NAME_get_index_by_NID(name, NID_commonName, idx)) >=
	       0)
		last = idx;
	if (last < 0)
		return NULL;
	unsigned char *u = NULL;
	int n = ASN1_STRING_to_UTF8(
	    &u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, last)));
	if (n < 0)
		return NULL;
	char *s = xmalloc((size_t)n + 1);
	memcpy(s, u, (size_t)n);
	s[n] = '\0';
	OPENSSL_free(u);
	return s;
}

int64_t tls_asn1_unix(const ASN1_TIME *t)
{
	struct tm tm;
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

static void key_of(tls_cert_info *ci, X509 *x)
{
	EVP_PKEY *pk = X509_get0_pubkey(x);
	ci->key_type = "unknown";
	if (!pk)
		return;
	ci->key_bits = EVP_PKEY_get_bits(pk);
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:
		ci->key_type = "RSA";
		break;
	case EVP_PKEY_EC: {
		ci->key_type = "ECDSA";
		char g[80];
		if (EVP_PKEY_get_utf8_string_param(pk,
						   OSSL_PKEY_PARAM_GROUP_NAME,
						   g, sizeof(g), NULL) == 1) {
			const char *nist = EC_curve_nid2nist(OBJ_txt2nid(g));
			ci->curve = xstrdup(nist ? nist : g);
		}
		break;
	}
	case EVP_PKEY_ED25519:
		ci->key_type = "Ed25519";
		break;
	case EVP_PKEY_ED448:
		ci->key_type = "Ed448";
		break;
	case EVP_PKEY_DSA:
		ci->key_type = "DSA";
		break;
	default:
		break;
	}
}

static void sans_of(tls_cert_info *ci, X509 *x)
{
	GENERAL_NAMES *sans =
	    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int n = sk_GENERAL_NAME_num(sans);
	const char **out = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*out));
	size_t k = 0;
	for (int i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		if (g->type != GEN_DNS)
			continue;
		const char *d =
		    (const char *)ASN1_STRING_get0_data(g->d.dNSName);
		size_t len = (size_t)ASN1_STRING_length(g->d.dNSName);
		if (!len || memchr(d, '\0', len))
			continue;
		char *s = xmalloc(len + 1);
		memcpy(s, d, len);
		s[len] = '\0';
		out[k++] = s;
	}
	GENERAL_NAMES_free(sans);
	ci->sans = out;
	ci->nsans = k;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1; /* never prompt on a terminal */
}

/* The details of the leaf (the first certificate of the PEM text). */
static void describe(tls_cert_info *ci, const unsigned char *pem, size_t len)
{
	BIO *b = BIO_new_mem_buf(pem, (int)MIN(len, (size_t)INT32_MAX));
	X509 *x = b ? PEM_read_bio_X509(b, NULL, no_passphrase, NULL) : NULL;
	BIO_free(b);
	ERR_clear_error();
	if (!x) {
		ci->key_type = "unknown";
		return;
	}
	key_of(ci, x);
	ci->subject_cn = utf8_entry(X509_get_subject_name(x));
	ci->issuer_cn = utf8_entry(X509_get_issuer_name(x));
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	ci->serial = xstrdup(hex ? hex : "");
	OPENSSL_free(hex);
	BN_free(bn);
	sans_of(ci, x);
	ci->not_before = tls_asn1_unix(X509_get0_notBefore(x));
	ci->not_after = tls_asn1_unix(X509_get0_notAfter(x));
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1 && mdlen == 32)
		for (unsigned i = 0; i < 32; i++)
			snprintf(ci->sha256 + 2 * i, 3, "%02x", md[i]);
	X509_free(x);
	ERR_clear_error();
}

/* Every configured certificate as its files are now. */
static tls_info *info_read(const cfg_tls *cfg)
{
	tls_info *info = xcalloc(1, sizeof(*info));
	size_t n = cfg->ncertificates;
	info->n = n;
	info->certs = xcalloc(n ? n : 1, sizeof(*info->certs));
	info->digest = xcalloc(n ? n : 1, sizeof(*info->digest));
	for (size_t i = 0; i < n; i++) {
		const cfg_tls_cert *c = &cfg->certificates[i];
		tls_cert_info *ci = &info->certs[i];
		ci->index = i;
		ci->cert_file = xstrdup(c->cert);
		ci->key_file = xstrdup(c->key);
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
			abort(); /* no SHA-256: nothing works */
		unsigned char *cert = NULL, *key = NULL;
		size_t clen = 0, klen = 0;
		hash_file(md, c->cert, &cert, &clen);
		hash_file(md, c->key, &key, &klen);
		unsigned int dl = 0;
		EVP_DigestFinal_ex(md, info->digest[i], &dl);
		EVP_MD_CTX_free(md);
		if (cert)
			describe(ci, cert, clen);
		else
			ci->key_type = "unknown";
		free(cert);
		if (key)
			OPENSSL_cleanse(key, klen);
		free(key);
	}
	return info;
}

static bool info_same(const tls_info *a, const tls_info *b)
{
	return a->n == b->n &&
	       !memcmp(a->digest, b->digest, a->n * sizeof(*a->digest));
}

/* Mark what the default context serves (when a default is served: not
 * with sni_required), and hang info on the server. */
static void attach(tls_server *s, tls_info *info)
{
	SSL_CTX *ctx = tls_server_default_ctx(s);
	/* An SSL of its own: its copy of the context's certificates is ours
	 * to walk (walking the context would move its current certificate
	 * under the workers). */
	SSL *ssl = tls_server_select(s, NULL) >= 0 ? SSL_new(ctx) : NULL;
	for (long r = ssl ? SSL_set_current_cert(ssl, SSL_CERT_SET_FIRST) : 0;
	     r == 1; r = SSL_set_current_cert(ssl, SSL_CERT_SET_NEXT)) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0;
		char hex[65];
		X509 *x = SSL_get_certificate(ssl);
		if (!x || X509_digest(x, EVP_sha256(), md, &mdlen) != 1 ||
		    mdlen != 32)
			continue;
		for (unsigned i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		for (size_t i = 0; i < info->n; i++)
			if (!strcmp(info->certs[i].sha256, hex))
				info->certs[i].is_default = true;
	}
	SSL_free(ssl);
	ERR_clear_error();
	pthread_once(&ex_once, ex_init);
	if (ex_idx < 0 || SSL_CTX_set_ex_data(ctx, ex_idx, info) != 1)
		info_free(info); /* shown as none; serving is unaffected */
}

int tls_server_load(const cfg_tls *cfg, unsigned flags, const tls_server *prev,
		    tls_server **out, char *err, size_t errlen)
{
	*out = NULL;
	for (int attempt = 0; attempt < LOAD_TRIES; attempt++) {
		tls_info *before = info_read(cfg);
		int rc = tls_server_new(cfg, flags, prev, out, err, errlen);
		if (rc < 0) {
			info_free(before);
			return rc;
		}
		tls_info *after = info_read(cfg);
		bool same = info_same(before, after);
		info_free(before);
		if (same) {
			attach(*out, after);
			return 0;
		}
		info_free(after);
		tls_server_unref(*out);
		*out = NULL;
	}
	if (err && errlen)
		snprintf(err, errlen,
			 "edge.tls.certificates: the certificate files changed "
			 "while they were being read, %d times; try again",
			 LOAD_TRIES);
	return -EAGAIN;
}
