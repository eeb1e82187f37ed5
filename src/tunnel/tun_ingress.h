/* tun_ingress.h - the connector's ingress rules: which local service
 * answers a request that came through the tunnel. Pure (no I/O): the rule
 * list is built by tun_config.c and matched per stream by tun_connector.c.
 *
 * A rule matches on the host part of :authority (exact, or "*.example.com"
 * for one or more labels before ".example.com", or exactly one for a rule
 * marked one_label as Kubernetes' Ingress wants; case-insensitive; the port
 * is ignored) and on the path without its query: "prefix" compares whole
 * segments as Kubernetes' Prefix path type does (/api matches /api, /api/
 * and /api/x but not /apix; a trailing '/' of the rule's path is ignored),
 * "exact" compares the bytes. Paths are compared as received (no
 * percent-decoding, no dot-segment removal). The first rule that matches
 * wins; the last rule of a valid configuration has neither hostname nor
 * path, so every request matches one.
 */
#ifndef MERIDIAN_TUN_INGRESS_H
#define MERIDIAN_TUN_INGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef enum tun_svc_kind {
	TUN_SVC_HTTP = 0,  /* http://host:port: an HTTP/1.1 service */
	TUN_SVC_STATUS,	   /* http_status:NNN: answered by the connector */
	TUN_SVC_ENDPOINTS, /* a set of IP:port endpoints (the ingress
			      controller's services); none: 503 */
} tun_svc_kind;

/* A service's address (an HTTP service resolved at start, or one
 * endpoint of a set). */
typedef struct tun_svc_addr {
	struct sockaddr_storage ss;
	socklen_t len; /* 0: not an HTTP service */
} tun_svc_addr;

typedef struct tun_service {
	tun_svc_kind kind;
	uint16_t status;  /* TUN_SVC_STATUS: 100..599 */
	const char *host; /* TUN_SVC_HTTP: IP (no brackets) or name */
	uint16_t port;
	bool host_is_ip;
	const char *text; /* as written, for logs */
	/* TUN_SVC_ENDPOINTS: the ready endpoints (may be none) and, when
	 * none, why (NULL: "has no ready endpoint") */
	const tun_svc_addr *eps;
	uint32_t neps;
	const char *why;
} tun_service;

typedef struct tun_rule {
	const char *hostname; /* lowercased; NULL: any host */
	size_t hostname_len;
	bool wildcard;	  /* hostname is "*.suffix" */
	bool one_label;	  /* a wildcard covers exactly one label (Kubernetes
			     Ingress hosts) instead of one or more */
	const char *path; /* NULL: any path; prefix: without trailing '/' */
	size_t path_len;
	bool exact; /* path_type: exact (else prefix) */
	tun_service svc;
	uint32_t line, col; /* where the rule starts in the file */
} tun_rule;

/* The index of the first rule matching `authority` and `path` (the
 * request's :path, query included: it is cut here), or -1. */
int tun_ingress_match(const tun_rule *rules, size_t n, const char *authority,
		      size_t alen, const char *path, size_t plen);

/* The host part of an authority: without ":port", "[v6]" kept with its
 * brackets, a trailing '.' dropped. Returns its length (host at a). */
size_t tun_ingress_host_len(const char *a, size_t len);

bool tun_ingress_host_matches(const tun_rule *r, const char *host, size_t hlen);
bool tun_ingress_path_matches(const tun_rule *r, const char *path, size_t plen);

/* Validation for the config loader: NULL when s is a valid rule hostname
 * (a DNS name, or "*." and one; letters, digits, '-', labels of 1..63,
 * 253 at most), else why not (a static string). */
const char *tun_ingress_check_hostname(const char *s, size_t len);
/* NULL when s is a valid rule path (starts with '/', no '?', '#', space
 * or control character), else why not. */
const char *tun_ingress_check_path(const char *s, size_t len);

#endif
