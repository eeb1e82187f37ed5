/* px_head.h - rewrite message heads for forwarding (pure, no I/O).
 *
 * Request heads going to an origin: an absolute-form target sent in
 * origin-form (RFC 9112 §3.2.1, "*" for OPTIONS of an empty path), hop-by-hop
 * fields dropped (RFC 9110
 * §7.6.1) except the framing we forward unchanged (Transfer-Encoding when the
 * body is chunked) and Upgrade/Connection when the client asks to upgrade;
 * client-sent X-Forwarded-Proto/-Host replaced, X-Forwarded-For appended to.
 * Response heads going to a client: hop-by-hop dropped the same way,
 * "Connection: close" added when the edge will close.
 *
 * Each writer returns the head length written into out, or -ENOSPC.
 */
#ifndef MERIDIAN_PX_HEAD_H
#define MERIDIAN_PX_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cfg_model.h"
#include "http/http1_parse.h"

typedef struct px_req_ctx {
	const char *client_ip; /* for X-Forwarded-For: the peer */
	/* X-Real-IP: the client after PROXY and trusted X-Forwarded-For
	 * (NULL: no field; the client's own is dropped either way) */
	const char *real_ip;
	const char *proto;	  /* "http" or "https" */
	const cfg_origin *origin; /* its Host header override, if any */
	bool upstream_http10;	  /* HTTP/1.0 client: speak 1.0 upstream */
	/* edge.request_id_header with this request's id, or NULL: the
	 * client's fields of that name are replaced by this one. */
	const http1_header *req_id;
} px_req_ctx;

int px_head_request(const http1_request *req, const px_req_ctx *ctx, char *out,
		    size_t size);

/* The Host override of an origin (its header Host), or NULL. */
const char *px_origin_host(const cfg_origin *o);

/* Replace the Host value of a head written by px_head_request (Host is its
 * second line) in place. Returns the new length, -EINVAL or -ENOSPC. */
int px_head_set_host(char *head, size_t len, size_t cap, const char *host,
		     size_t hlen);

/* Fields the edge adds to an answer: the affinity cookie,
 * Strict-Transport-Security, the request id, and Connection: keep-alive
 * to an HTTP/1.0 client whose connection stays open. */
#define PX_EDGE_FIELDS 5

/* What the edge changes in an origin's response head. */
typedef struct px_resp_edit {
	http1_header add[PX_EDGE_FIELDS]; /* written after the origin's */
	uint32_t nadd;
	bool drop_sts; /* leave out the origin's Strict-Transport-Security
			* (the edge adds its own) */
	http_str drop; /* and its field of this name (len 0: none) */
	bool unchunk;  /* the chunked body goes out decoded (an HTTP/1.0
			* client): no Transfer-Encoding */
} px_resp_edit;

/* Whether a field of this name is one px_resp_edit leaves out. */
bool px_resp_edit_drops(const px_resp_edit *ed, const char *name, size_t len);

/* ed may be NULL (no change). */
int px_head_response(const http1_response *resp, bool upgrade, bool close,
		     const px_resp_edit *ed, char *out, size_t size);

/* Insert line ("Name: value\r\n", n bytes) after the status line of the
 * head of len bytes at head (cap bytes of room). The new length, or
 * -ENOSPC / -EINVAL (no status line). */
int px_head_insert_line(char *head, size_t len, size_t cap, const char *line,
			size_t n);
/* The same with n fields (the edge's fields on its own answers). */
int px_head_insert_fields(char *head, size_t len, size_t cap,
			  const http1_header *f, size_t n);

/* A complete locally generated response (error pages): text/plain body
 * "<code> <reason>: <detail> (edge <edge>)\n". */
int px_head_local(int status, const char *detail, const char *edge_name,
		  bool close, bool head_only, char *out, size_t size);

const char *px_status_reason(int status);

/* ---- https_redirect (a load balancer's option; issue 6) ---- */

/* Whether a request target (origin or absolute form) is under
 * /.well-known/acme-challenge/: ACME http-01 challenges, which must reach
 * the origin over plain HTTP. */
bool px_is_acme_challenge(http_str target);

/* The redirect's status: 301 for GET and HEAD, 308 for other methods (the
 * client repeats the method and body). */
int px_redirect_status(http1_method method);

/* A load balancer rule's fixed_response: status, Content-Type
 * (text/plain when NULL), Location when not NULL, Content-Length and the
 * body (left out for HEAD), Connection: close when close. The length, or
 * -ENOSPC. */
int px_head_fixed(int status, const char *content_type, const char *location,
		  const char *body, bool close, bool head_only, char *out,
		  size_t size);
/* The path and query of a request target: all of an origin-form target,
 * what follows the authority of an absolute-form one, nothing for "*". */
http_str px_target_path(http_str t);

/* The https:// URL of a request into out: "https://" HOST [":" port]
 * PATH-AND-QUERY, where HOST is host without its port (an IPv6 literal
 * keeps its brackets), the port is left out when 443, and the path and
 * query come from target ("/" for "*" and for an absolute-form target
 * without a path). NUL-terminated. Returns the length (without the NUL),
 * -EINVAL for an empty host, or -ENOSPC. */
int px_https_location(http_str host, http_str target, uint16_t port, char *out,
		      size_t size);

/* A complete redirect response to px_https_location(host, target, port),
 * otherwise as px_head_local (its body and Connection handling). */
int px_head_redirect(int status, http_str host, http_str target, uint16_t port,
		     const char *edge_name, bool close, bool head_only,
		     char *out, size_t size);

#endif
