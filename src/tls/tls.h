/* tls.h - TLS termination for the edge (OpenSSL 3).
 *
 * tls_server: everything one `edge.tls` configuration needs, built once and
 * immutable after: the certificate sets (certificates with the same names,
 * RSA and ECDSA side by side in one SSL_CTX, OpenSSL picking by what the
 * client offers), the SNI index (tls_sni.h), the default set, ALPN, and a
 * reference to the session ticket keys. One tls_server serves every worker.
 *
 * Reload: build a new tls_server from the new config with the old one as
 * `prev` (it shares the ticket keys, so tickets stay valid), publish it for
 * new connections and drop the old reference. Connections keep the server
 * they started with (each tls_conn holds a reference; OpenSSL refcounts the
 * SSL_CTXs), so the old one is freed when its last connection ends.
 *
 * tls_conn: one TLS connection on a non-blocking socket, for an
 * edge-triggered loop. Every call returns a count (>= 0) or a tls_rc code.
 * A short count (fewer bytes than asked) means the call stopped on a code:
 * for want read / want write the socket is drained or full, as with a
 * short read(2)/write(2); closed and error are sticky and returned by the
 * next call (closed only for reads: a peer's close_notify still lets the
 * edge write its answer, a half-close as with TCP). So the loop's "short read
 * clears can_read" rule stays true, although OpenSSL buffers whole records.
 *
 * Threads: tls_server_* may be called from any thread; a tls_conn belongs
 * to the thread that drives it. Return convention: 0 / -errno (see
 * core_util.h) unless said otherwise.
 */
#ifndef MERIDIAN_TLS_H
#define MERIDIAN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "config/cfg_model.h"

typedef struct tls_server tls_server;
typedef struct tls_client tls_client;
typedef struct ssl_st SSL;
typedef struct ssl_session_st tls_session; /* OpenSSL's SSL_SESSION */

/* ---- server ---- */

enum {
	/* The caller speaks HTTP/2: offer h2 by ALPN (preferred over
	 * http/1.1). Without it only http/1.1 is selected. */
	TLS_F_ALPN_H2 = 1u << 0,
};

/* Build a server from `cfg` (edge.tls). `prev`, when not NULL, is the
 * server this one replaces: its session ticket keys are shared, so tickets
 * it issued resume on the new one. On error returns -EINVAL (or -ENOMEM),
 * *out NULL and `err` says what, naming the key and file:
 *   "edge.tls.certificates[1].key: certs/b.key does not match certificate
 *    certs/b.pem"
 * (indexes are 0-based; prefixed with file:line:col when cfg has them). */
int tls_server_new(const cfg_tls *cfg, unsigned flags, const tls_server *prev,
		   tls_server **out, char *err, size_t errlen);
/* Take / drop a reference; the last tls_server_unref frees. The creator
 * holds one; every tls_conn holds one. */
tls_server *tls_server_ref(tls_server *s);
void tls_server_unref(tls_server *s);

/* Non-fatal findings of tls_server_new for the caller to log (expired or
 * not yet valid certificates, names claimed by two certificates, names
 * that cannot match). NULL past the last. */
const char *tls_server_warning(const tls_server *s, size_t i);

/* Number of certificate sets (certificates with the same names). */
size_t tls_server_nsets(const tls_server *s);
/* The set a client sending SNI `host` (NULL: none) gets: its index, or -1
 * when the handshake fails (no match and sni_required). Pure: the same
 * choice the handshake makes, without one. */
int tls_server_select(const tls_server *s, const char *host);

/* Ticket keys: rotate now. The new key encrypts new tickets; the previous
 * one still decrypts (and the ticket is renewed); older ones are gone, so a
 * ticket made two rotations ago gives a full handshake. Call every
 * cfg_tls.ticket_rotation_ms (tls_server_rotation_ms) from one timer; any
 * thread. The keys are shared by every server built with `prev`. */
void tls_server_rotate_tickets(tls_server *s);
uint32_t tls_server_rotation_ms(const tls_server *s);

/* ---- what a server has loaded (tls_info.c) ----
 *
 * The certificates of a server as the API and /metrics show them: read
 * from the files of cfg_tls when the server is built (tls_server_load)
 * and kept with it, immutable, so what is shown is what is served. */

/* tls_server_new, then the certificate files are read again for
 * tls_server_cert; when they changed in between (a renewal writing them while
 * the edge reloads), the build is done again (up to three times, then
 * -EAGAIN with err saying so). Errors as for tls_server_new. */
int tls_server_load(const cfg_tls *cfg, unsigned flags, const tls_server *prev,
		    tls_server **out, char *err, size_t errlen);

typedef struct tls_cert_info {
	size_t index;	       /* in edge.tls.certificates */
	const char *cert_file; /* as configured */
	const char *key_file;
	const char *key_type; /* "RSA", "ECDSA", "Ed25519", "Ed448", "DSA" */
	int key_bits;
	const char *curve;	 /* ECDSA: "P-256"...; NULL otherwise */
	const char *subject_cn;	 /* NULL: none */
	const char *issuer_cn;	 /* NULL: none */
	const char *serial;	 /* hex, uppercase */
	const char *const *sans; /* DNS subject alternative names */
	size_t nsans;
	int64_t not_before, not_after; /* Unix time */
	char sha256[65]; /* of the DER certificate, lowercase hex */
	bool is_default; /* served without (a matching) SNI; never with
			    sni_required */
} tls_cert_info;

/* An X.509 time (an ASN1_TIME) as a Unix time; 0 when there is none or it
 * cannot be read. */
struct asn1_string_st;
int64_t tls_asn1_unix(const struct asn1_string_st *t);

/* The certificates of s in config order; 0 / NULL for a server built by
 * tls_server_new alone. */
size_t tls_server_ncerts(const tls_server *s);
const tls_cert_info *tls_server_cert(const tls_server *s, size_t i);

/* Handshakes of server connections, process-wide (relaxed atomic
 * counters, bumped by tls_conn.c where OpenSSL says a handshake ended). A
 * connection closed mid-handshake by its owner (a timeout) counts in
 * neither. */
typedef enum tls_hs_fail {
	TLS_HS_PROTOCOL_VERSION, /* no common TLS version (TLS 1.1 client) */
	TLS_HS_NO_SHARED_CIPHER, /* no common cipher, group or signature */
	TLS_HS_UNKNOWN_SNI,	 /* no certificate for the name, sni_required */
	TLS_HS_CERT_REJECTED,	 /* the client refused our certificate */
	TLS_HS_CLOSED,		 /* the peer closed or reset mid-handshake */
	TLS_HS_OTHER,		 /* not TLS, malformed, anything else */
	TLS_HS_NFAIL
} tls_hs_fail;

typedef struct tls_hs_stats {
	uint64_t done; /* completed handshakes (resumed ones too) */
	uint64_t resumed;
	uint64_t failed[TLS_HS_NFAIL];
	/* Closed before sending a byte of TLS (TCP health checks of a cloud
	 * load balancer, port scans; a PROXY protocol header, read before
	 * TLS starts, does not count): not a handshake, so not a failure. */
	uint64_t empty;
} tls_hs_stats;

void tls_hs_stats_get(tls_hs_stats *out);
/* "protocol_version", "no_shared_cipher", "unknown_sni",
 * "certificate_rejected", "closed", "other" (metric label values). */
const char *tls_hs_fail_name(tls_hs_fail f);

/* ---- connection ---- */

typedef enum tls_rc {
	TLS_WANT_READ = -1,  /* wait until the socket is readable */
	TLS_WANT_WRITE = -2, /* wait until the socket is writable */
	TLS_CLOSED = -3,     /* the peer closed (close_notify or EOF) */
	TLS_ERROR = -4,	     /* fatal; tls_conn_error() says why */
} tls_rc;

typedef enum tls_alpn {
	TLS_ALPN_NONE = 0, /* the client offered no protocol we speak */
	TLS_ALPN_HTTP11,
	TLS_ALPN_H2,
	TLS_ALPN_HTTP10, /* "http/1.0" (curl --http1.0 offers it) */
} tls_alpn;

/* Embedded in the caller's connection struct (no allocation of its own
 * beyond OpenSSL's SSL, whose buffers are released while idle). */
typedef struct tls_conn {
	SSL *ssl;
	tls_server *srv;    /* the reference this connection holds */
	const char *reason; /* TLS_ERROR: static text */
	int8_t sticky;	    /* TLS_CLOSED / TLS_ERROR once seen, else 0 */
	bool handshaken;
	/* The socket's last read(2) returned less than asked (or nothing):
	 * it was drained then, so the edge-triggered loop will hear of more.
	 * Kept by a callback on the socket BIO; lets tls_conn_read stop
	 * without one more read(2) that only says EAGAIN. */
	bool sock_drained;
	bool rx_any;	   /* a read(2) has returned data (a server: the client
			    * sent something) */
	tls_session *sess; /* client: a new resumable session, not taken yet */
} tls_conn;

/* Server side of a new accepted socket `fd` (non-blocking; the caller
 * keeps owning it). Returns 0 or -ENOMEM. */
int tls_conn_init(tls_conn *c, tls_server *s, int fd);
/* For a few long-lived connections that carry bulk data (tunnels): keep
 * OpenSSL's buffers while idle and read up to 64 KiB (several records)
 * per read(2). Call right after tls_conn_init*, before any I/O. */
void tls_conn_set_bulk(tls_conn *c);
/* Free the SSL and drop the server reference; does not close the fd. */
void tls_conn_free(tls_conn *c);

/* Drive the handshake: 0 when done, else a tls_rc. */
int tls_conn_handshake(tls_conn *c);
/* Decrypted bytes into buf (len > 0): a count > 0, or a tls_rc. A count
 * below len means the next call returns a code (see the top). Also
 * completes the handshake if it is not done. */
ssize_t tls_conn_read(tls_conn *c, void *buf, size_t len);
/* Encrypt and send: a count > 0, or a tls_rc (len 0 returns 0). After a
 * short count or TLS_WANT_WRITE, the next call must start with the bytes
 * not yet accepted (more may follow), as OpenSSL requires. */
ssize_t tls_conn_write(tls_conn *c, const void *buf, size_t len);
/* The same over several buffers; small ones are gathered into full
 * records (a response head and its body go out in one record). */
ssize_t tls_conn_writev(tls_conn *c, const struct iovec *iov, int iovcnt);
/* Send close_notify: 0 when sent (the peer's is not waited for), or
 * TLS_WANT_WRITE. After an error it returns 0 without sending. */
int tls_conn_shutdown(tls_conn *c);

/* After the handshake: */
tls_alpn tls_conn_alpn(const tls_conn *c);
const char *tls_conn_sni(const tls_conn *c); /* NULL: none sent */
bool tls_conn_resumed(const tls_conn *c);
/* OpenSSL holds bytes read from the socket and not yet returned (read
 * ahead): a peek at the socket would not see them. */
bool tls_conn_has_pending(const tls_conn *c);
const char *tls_conn_version(const tls_conn *c); /* "TLSv1.3" */
/* Why TLS_ERROR (static text, e.g. "unsupported protocol"); NULL if none. */
const char *tls_conn_error(const tls_conn *c);

/* ---- client (towards origins) ----
 *
 * tls_client: the settings of one origin's connections (an SSL_CTX):
 * verification against `ca_file` (PEM; NULL: the system store) or none.
 * Immutable after creation; connections may outlive it (OpenSSL counts
 * references to the context). A client connection is a tls_conn like a
 * server one, driven by the same calls; srv stays NULL. */
int tls_client_new(const char *ca_file, bool verify, tls_client **out,
		   char *err, size_t errlen);
void tls_client_free(tls_client *c);
/* Client side of a connected (or connecting) non-blocking socket. `sni`:
 * the name sent and verified in the certificate; NULL: none sent, and
 * `ip` (text, may be NULL) is verified instead. `sess`: a session to resume
 * (not taken; NULL: none). Returns 0 or -ENOMEM. */
int tls_conn_init_client(tls_conn *c, tls_client *cl, int fd, const char *sni,
			 const char *ip, tls_session *sess);
/* The same SSL for a caller that drives OpenSSL itself (the health
 * checker): client state on fd, `sni` sent and verified (else `ip`), as
 * above. NULL when OpenSSL fails (its error queue says why). */
struct ssl_st *tls_client_ssl_new(tls_client *cl, int fd, const char *sni,
				  const char *ip);
/* The newest resumable session the server sent on this connection (TLS 1.3
 * tickets come after the handshake, with the first reads), now owned by
 * the caller; NULL: none new. */
tls_session *tls_conn_take_session(tls_conn *c);
void tls_session_free(tls_session *s);
/* After a failed handshake: why the certificate was refused ("certificate
 * has expired"), NULL when it was not. */
const char *tls_conn_verify_error(const tls_conn *c);
/* After a hostname or address mismatch, for the log and health reasons
 * (not for clients: it shows the origin's certificate): " (for NAMES, not
 * CHECKED)" (the certificate's names, the one asked for) into buf, to
 * follow the verdict; "" after any other. Returns buf. */
const char *tls_conn_verify_detail(const tls_conn *c, char *buf, size_t n);
const char *tls_verify_detail(struct ssl_st *ssl, char *buf, size_t n);

#endif
