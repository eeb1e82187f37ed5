/* tun_config.h - the connector's configuration file (`meridian tunnel -c
 * FILE`); the keys are documented in docs/TUNNEL.md.
 *
 * The YAML tree comes from cfg_yaml (positions on every node, ${VAR}
 * expanded in values, an unset variable an error naming it, duplicate keys
 * refused); this file walks it against a small fixed schema. Every problem
 * is reported as "file:line:col: message" into a cfg_diag, and loading goes
 * on so that `meridian tunnel check` lists them all. Unknown keys are
 * errors. No I/O besides reading the file (service host names are resolved
 * by the connector at start).
 *
 * Return convention: 0 and *out, or -1 (*out NULL) with the errors in d.
 */
#ifndef MERIDIAN_TUN_CONFIG_H
#define MERIDIAN_TUN_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/cfg_load.h"
#include "tunnel/tun_ingress.h"

#define TUN_MAX_EDGES	     16
#define TUN_MAX_CONNS	     8 /* connections_per_edge */
#define TUN_MAX_RULES	     1024
#define TUN_MIN_TOKEN	     32
#define TUN_DEFAULT_CONNS    2
#define TUN_DEFAULT_DRAIN_MS 30000u
#define TUN_MAX_DRAIN_MS     3600000u

typedef struct tun_edge_addr {
	const char *text; /* as written: "127.0.0.1:7844", "[::1]:7844" */
	const char *ip;	  /* "127.0.0.1", "::1" (the name verified without
			     server_name) */
	struct sockaddr_storage ss;
	socklen_t len;
} tun_edge_addr;

typedef struct tun_config {
	struct core_arena *arena; /* everything below lives here */
	const char *file;
	const char *tunnel;	 /* the tunnel id on the edges */
	const char *token;	 /* never logged */
	const char *name;	 /* NULL: "<hostname>-<pid>", by the caller */
	const char *server_name; /* NULL: verify the edge's IP */
	const char *ca;		 /* NULL: the system store */
	tun_edge_addr edges[TUN_MAX_EDGES];
	size_t nedges;
	uint32_t conns_per_edge;
	uint64_t drain_timeout_ms;
	tun_rule *rules;
	size_t nrules;
} tun_config;

int tun_config_load_file(const char *path, tun_config **out, cfg_diag *d);

/* Another command's file with the connector's keys (`meridian ingress`):
 * one more top-level key, required, whose node goes to load (strings it
 * keeps go to arena a, the config's; errors to e, with positions), and
 * no `ingress` (the caller builds the rules; the config has none). */
struct cfg_node;
struct cfg_errs;
typedef struct tun_config_ext {
	const char *key;
	void (*load)(void *arg, struct core_arena *a, const struct cfg_node *n,
		     struct cfg_errs *e);
	void *arg;
} tun_config_ext;
int tun_config_load_file_ext(const char *path, const tun_config_ext *ext,
			     tun_config **out, cfg_diag *d);
int tun_config_load_string_ext(const char *name, const char *yaml, size_t len,
			       const tun_config_ext *ext, tun_config **out,
			       cfg_diag *d);
/* `name` stands for the file in messages. */
int tun_config_load_string(const char *name, const char *yaml, size_t len,
			   tun_config **out, cfg_diag *d);
void tun_config_free(tun_config *c);

/* "ok: tunnel gke-prod, 2 edges x 2 connections, 3 ingress rules (2
 * services)" */
void tun_config_summary(const tun_config *c, char *buf, size_t size);

/* Parse a service value ("http://127.0.0.1:8001", "http://svc:80",
 * "http_status:404") into *svc (strings from arena a). NULL, or why not.
 * For the loader and its fuzz harness. */
struct core_arena;
const char *tun_service_parse(struct core_arena *a, const char *s, size_t len,
			      tun_service *svc);

/* A tunnel id or connector name: 1..63 of [A-Za-z0-9._-]. */
bool tun_config_valid_id(const char *s, size_t len);

#endif
