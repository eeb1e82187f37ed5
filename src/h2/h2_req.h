/* h2_req.h - strict HTTP/2 <-> HTTP/1.1 message translation, pure (no I/O,
 * no nghttp2).
 *
 * Request side (RFC 9113 §8.2, §8.3): h2_req_parse() validates the fields of
 * one request header block as received (pseudo-headers first) and fills an
 * h2_req; h2_req_to_h1() writes the HTTP/1.1 request head the proxy sends
 * upstream (Host from :authority, cookie crumbs joined with "; ", chunked
 * framing when a body of unknown length follows). h2_req_check_length()
 * compares a declared content-length with the DATA received.
 *
 * Response side: h2_resp_fields() turns HTTP/1.1 response fields into HTTP/2
 * ones (hop-by-hop fields and those named by Connection dropped, names
 * lowercased).
 *
 * Errors are static strings (compare by pointer or log them). Return
 * convention: 0 or a count on success, a negative errno-style code on
 * failure.
 */
#ifndef MERIDIAN_H2_REQ_H
#define MERIDIAN_H2_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct h2_str {
	const char *p;
	size_t len;
} h2_str;

typedef struct h2_field {
	h2_str name, value;
} h2_field;

typedef struct h2_req {
	h2_str method, scheme, authority, path; /* authority: :authority, else
						   the Host field */
	const h2_field *fields; /* every field as received, pseudo included */
	size_t nfields;
	int64_t content_length; /* -1: none */
	bool end_stream; /* the HEADERS frame ended the stream: no body */
} h2_req;

/* Validate `n` fields (one request header block, in received order) and
 * fill `r` (which points into `f`; keep `f` alive). Returns 0, -EPROTO for
 * a malformed request (stream error PROTOCOL_ERROR / 400) or -EOPNOTSUPP
 * for CONNECT (405, as the HTTP/1.1 path); *why says what. */
int h2_req_parse(const h2_field *f, size_t n, bool end_stream, h2_req *r,
		 const char **why);

/* Write the HTTP/1.1 head for `r` into buf: request line, Host, the regular
 * fields except host/te/cookie, one joined cookie field, and
 * "transfer-encoding: chunked" when a body of unknown length follows (then
 * *chunked is true and the caller frames the body as chunks, which also
 * carries request trailers). Returns the length or -ENOSPC. */
int h2_req_to_h1(const h2_req *r, char *buf, size_t cap, bool *chunked);

/* At the end of the request body: 0 when `received` DATA bytes agree with
 * the content-length (or there is none), else -EPROTO. With `at_end`
 * false, only checks that `received` does not exceed it yet. */
int h2_req_check_length(const h2_req *r, uint64_t received, bool at_end);

/* Whether a request trailer field (name as nghttp2 validated it:
 * lowercase token) may be forwarded in the HTTP/1.1 request's chunked
 * trailer section. Not the fields RFC 9110 §6.5.1 keeps out of trailers
 * (framing, routing, request modifiers, authentication, content
 * metadata), nor connection-specific ones, nor the client address fields
 * the edge writes itself (Forwarded, X-Forwarded-*, X-Real-IP), each also
 * with '_' for '-' (CGI maps both to one variable): an origin that merges
 * trailers into the head must not get them from a client. */
bool h2_req_trailer_ok(h2_str name);

/* Error strings h2_req_parse may return, for tests. */
extern const char h2_req_err_pseudo_after[], h2_req_err_pseudo_dup[],
    h2_req_err_pseudo_unknown[], h2_req_err_pseudo_missing[], h2_req_err_name[],
    h2_req_err_uppercase[], h2_req_err_conn_specific[], h2_req_err_te[],
    h2_req_err_value[], h2_req_err_content_length[], h2_req_err_connect[],
    h2_req_err_host[], h2_req_err_path[], h2_req_err_method[],
    h2_req_err_scheme[], h2_req_err_authority[], h2_req_err_length_mismatch[];

/* HTTP/1.1 response fields -> HTTP/2: drops Connection, Keep-Alive,
 * Proxy-Connection, Transfer-Encoding, Upgrade, TE and every field named in
 * a Connection value; names are lowercased into `names` (out[i].name points
 * there; values point into `in`). Returns the count written or -ENOSPC. */
int h2_resp_fields(const h2_field *in, size_t n, h2_field *out, size_t cap,
		   char *names, size_t names_cap);

#endif
