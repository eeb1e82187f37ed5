/* http1_parse.h - strict HTTP/1.1 message parsing, no I/O (RFC 9110/9112).
 *
 * The proxy keeps a message head in its input buffer until it is complete,
 * then parses it in one pass with http1_parse_request/response. The parsed
 * strings point into that buffer (no copies). Bodies are framed by the
 * result (RFC 9112 §6.3) and chunked bodies are walked incrementally by
 * http1_chunked_feed, which validates every byte so the proxy can forward the
 * raw chunked bytes unchanged.
 *
 * Strictness (anti request smuggling): CL together with TE, differing or
 * malformed Content-Length, a Transfer-Encoding whose final coding is not
 * chunked (requests), any coding other than chunked (501), HTTP/1.0 with TE,
 * obs-fold, whitespace before the colon, bare CR, bare LF line endings,
 * invalid token characters in method and field names, control characters in
 * field values, missing or duplicate Host in HTTP/1.1, a request target with
 * spaces or control characters, bad chunk sizes / extensions / CRLFs, all
 * fail with an error code; the proxy answers 400 (or the code's status) and
 * closes.
 */
#ifndef MERIDIAN_HTTP1_PARSE_H
#define MERIDIAN_HTTP1_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP1_MAX_HEADERS 256 /* hard cap on fields in one head */
/* Used when http1_limits is NULL or one of its fields is 0. */
#define HTTP1_DEFAULT_MAX_HEAD_BYTES 16384
#define HTTP1_DEFAULT_MAX_HEADERS    100

typedef struct http_str {
	const char *p;
	uint32_t len;
} http_str;

typedef struct http1_header {
	http_str name, value; /* value with surrounding OWS removed */
} http1_header;

typedef enum http1_method {
	HTTP_M_OTHER = 0,
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_CONNECT,
	HTTP_M_OPTIONS,
	HTTP_M_TRACE,
	HTTP_M_PATCH,
} http1_method;

/* RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE. Only these may
 * be sent again by a proxy after a failure (RFC 9112 §9.3.1.1). */
bool http1_method_idempotent(http1_method m);

typedef enum http1_body {
	HTTP1_BODY_NONE = 0, /* no body */
	HTTP1_BODY_LENGTH,   /* content_length bytes */
	HTTP1_BODY_CHUNKED,  /* chunked, walk with http1_chunked_feed */
	HTTP1_BODY_EOF,	     /* responses only: until the connection closes */
} http1_body;

/* Error codes: negative, each with a status and a short reason.  */
typedef enum http1_err {
	HTTP1_INCOMPLETE = 0, /* not an error: need more bytes */
	HTTP1_E_BAD_REQUEST_LINE = -1,
	HTTP1_E_BAD_METHOD = -2,
	HTTP1_E_BAD_TARGET = -3,
	HTTP1_E_BAD_VERSION = -4,	  /* malformed version -> 400 */
	HTTP1_E_VERSION_UNSUPPORTED = -5, /* HTTP/2.0 over h1, HTTP/3 -> 505 */
	HTTP1_E_BAD_HEADER_NAME = -6,
	HTTP1_E_BAD_HEADER_VALUE = -7,
	HTTP1_E_OBS_FOLD = -8,
	HTTP1_E_SPACE_BEFORE_COLON = -9,
	HTTP1_E_BARE_CR = -10,
	HTTP1_E_BARE_LF = -11,
	HTTP1_E_HEADERS_TOO_LARGE = -12, /* -> 431 */
	HTTP1_E_TOO_MANY_HEADERS = -13,	 /* -> 431 */
	HTTP1_E_URI_TOO_LONG = -14,	 /* -> 414 */
	HTTP1_E_BAD_CONTENT_LENGTH = -15,
	HTTP1_E_CL_AND_TE = -16,
	HTTP1_E_BAD_TRANSFER_ENCODING = -17,
	HTTP1_E_UNSUPPORTED_TRANSFER_CODING = -18, /* -> 501 */
	HTTP1_E_TE_IN_HTTP10 = -19,
	HTTP1_E_MISSING_HOST = -20,
	HTTP1_E_DUPLICATE_HOST = -21,
	HTTP1_E_BAD_HOST = -22,
	HTTP1_E_BAD_STATUS_LINE = -23,
	HTTP1_E_BAD_CHUNK_SIZE = -24,
	HTTP1_E_BAD_CHUNK_EXT = -25,
	HTTP1_E_BAD_CHUNK_CRLF = -26,
	HTTP1_E_BAD_TRAILER = -27,
	HTTP1_E_CHUNK_TOO_LARGE = -28,
	HTTP1_E_LAST = -29,
} http1_err;

/* The status to answer a client with for this error (400, 414, 431, 501,
 * 505) and a short human reason ("invalid Content-Length"). */
int http1_err_status(int err);
const char *http1_err_reason(int err);

typedef struct http1_limits {
	uint32_t max_head_bytes; /* whole head incl. request line; 431 beyond */
	uint32_t
	    max_headers; /* field count; 431 beyond (<= HTTP1_MAX_HEADERS) */
	uint32_t max_target; /* request-target length; 414 beyond (0: =
				max_head_bytes) */
} http1_limits;		     /* NULL or 0 fields: HTTP1_DEFAULT_* */

/* Connection-level facts derived from the head. */
typedef struct http1_conn_info {
	bool keep_alive; /* after this message (version default + Connection) */
	bool upgrade;	 /* Connection: upgrade and an Upgrade field present
			  * (never for HTTP/1.0 requests, RFC 9110 §7.8) */
	bool expect_continue; /* requests: Expect: 100-continue (HTTP/1.1) */
	bool te_trailers;     /* requests: TE: trailers */
} http1_conn_info;

typedef struct http1_request {
	http_str method;
	http1_method method_id;
	http_str target;
	uint8_t version_minor; /* 0 or 1; major is always 1 */
	http_str host; /* Host field value (empty if none in HTTP/1.0) */
	http1_header headers[HTTP1_MAX_HEADERS];
	uint32_t nheaders;
	uint32_t head_len;	 /* bytes of the head incl. the empty line */
	uint32_t line_len;	 /* bytes of the request line incl. CRLF */
	http1_body body;	 /* NONE, LENGTH or CHUNKED */
	uint64_t content_length; /* LENGTH (also for "Content-Length: 0") */
	/* Content-Length came as a list of the same value ("5, 5", or the
	 * field twice): whoever passes the head on writes one value. */
	bool cl_list;
	http1_conn_info conn;
} http1_request;

typedef struct http1_response {
	uint16_t status;
	http_str reason;
	uint8_t version_minor;
	http1_header headers[HTTP1_MAX_HEADERS];
	uint32_t nheaders;
	uint32_t head_len;
	http1_body body; /* NONE, LENGTH, CHUNKED or EOF */
	uint64_t content_length;
	bool cl_list;  /* as in http1_request */
	bool has_date; /* a Date field (a proxy adds one when there is none,
			* RFC 9110 §6.6.1) */
	/* Transfer-Encoding names a coding other than chunked ("gzip",
	 * "gzip, chunked"): the body is framed as RFC 9112 §6.3 says, but
	 * its bytes are still in that coding. */
	bool te_other;
	http1_conn_info conn;
} http1_response;

/* Parse a request head at the start of buf[0..len).
 * Returns head_len (> 0) when a complete valid head was parsed,
 * HTTP1_INCOMPLETE (0) when more bytes are needed (and the limits are not yet
 * exceeded), or a negative http1_err. Leading empty lines before the request
 * line (RFC 9112 §2.2) are skipped and counted in head_len (at most 8).
 * Invalid bytes are reported as soon as they are seen, even in an incomplete
 * head. Each call parses from the start: with a client that trickles bytes,
 * call again only when the new bytes contain a LF (or the limit is reached).
 * An absolute-form target is accepted when its authority names the same
 * host[:port] as the Host field (default port ignored); host is the Host
 * value, or the authority for an HTTP/1.0 request without Host. The fields of
 * req are only meaningful when the return value is > 0. */
int http1_parse_request(const char *buf, size_t len, const http1_limits *lim,
			http1_request *req);

/* Parse a response head. req_method is the method of the request it answers
 * (HEAD and CONNECT change the framing); 1xx, 204 and 304 have no body.
 * A status line without reason phrase ("HTTP/1.1 200\r\n") is accepted.
 * Return values as for http1_parse_request; body EOF forces
 * conn.keep_alive false. */
int http1_parse_response(const char *buf, size_t len, const http1_limits *lim,
			 http1_method req_method, http1_response *resp);

/* The length of a Host value without its ":port": up to the ']' of an
 * IPv6 literal, else up to the first ':' (a reg-name or IPv4 address has
 * none). */
size_t http1_host_len(http_str host);

/* Find a header by case-insensitive name; NULL if absent. */
const http1_header *http1_find_header(const http1_header *h, uint32_t n,
				      const char *name);

/* Hop-by-hop: Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
 * Transfer-Encoding, Upgrade, or any name listed in a Connection field of
 * this head. The proxy drops these (re-adding framing it generates). */
bool http1_is_hop_by_hop(const http1_header *all, uint32_t n,
			 const http1_header *h);

/* Incremental chunked-body walker. Zero-initialise, then feed bytes. */
typedef struct http1_chunked {
	uint8_t state;
	uint8_t flags;
	uint8_t ndigits; /* hex digits seen on this size line */
	int8_t err; /* the error once failed: every later call returns it */
	uint16_t ext_len;     /* bytes of extensions seen on this size line */
	uint32_t trailer_len; /* bytes of trailer section seen */
	uint64_t remaining;   /* data bytes left in the current chunk */
	uint64_t total;	      /* data bytes seen so far */
} http1_chunked;

/* Feed len bytes. Returns the number of bytes consumed (<= len) that belong
 * to the message, sets *done when the last chunk, trailers and final CRLF
 * have been consumed (bytes after that are not consumed: they are the next
 * message). Returns a negative http1_err on malformed input. Limits: a chunk
 * size above 2^62, size-line extensions above 4 KiB or trailers above
 * 16 KiB are errors. */
ssize_t http1_chunked_feed(http1_chunked *c, const char *p, size_t len,
			   bool *done);

/* For decoders that need the payload (HTTP/2 responses): how many of the
 * next bytes are chunk data (0: framing comes next), and whether the next
 * byte belongs to the trailer section (trailer fields or the final CRLF). */
uint64_t http1_chunked_data_next(const http1_chunked *c);
bool http1_chunked_in_trailers(const http1_chunked *c);

/* Bytes of the trailer section fed so far, its final CRLF included (0
 * before the last chunk's size line has ended). A proxy that filters
 * trailers holds these back until *done. */
uint32_t http1_chunked_trailer_bytes(const http1_chunked *c);

/* Drop from a whole trailer section p[0..n) (field lines, then the empty
 * line; as http1_chunked_feed accepted it) the fields keep() refuses,
 * moving the rest down in place. Returns the new length (the empty line
 * always stays). */
size_t http1_trailers_filter(char *p, size_t n,
			     bool (*keep)(const char *name, size_t len));

/* A request body held unconsumed in p[0..n) (LENGTH with content_length,
 * or CHUNKED; the proxy holds one for the managed rules): *complete once
 * its end is in it, *data the payload bytes in it; emit, when not NULL,
 * gets the first limit of them in order. The bytes are only read (they
 * are forwarded as received later). Returns 0, or a negative http1_err
 * for a malformed chunked body. */
int http1_body_peek(http1_body kind, uint64_t content_length, const char *p,
		    size_t n, uint64_t limit,
		    void (*emit)(void *arg, const char *p, size_t n), void *arg,
		    bool *complete, uint64_t *data);

#endif
