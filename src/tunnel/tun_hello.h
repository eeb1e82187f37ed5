/* tun_hello.h - the tunnel hello (docs/ARCHITECTURE.md "Tunnels"), pure:
 * the HTTP/1.1 Upgrade request a connector opens its connection with,
 * judged against the tunnels of a config, and the answer written back.
 * No I/O; the edge's tunnel thread (tun_edge.c) reads and writes. */
#ifndef MERIDIAN_TUN_HELLO_H
#define MERIDIAN_TUN_HELLO_H

#include <stdbool.h>
#include <stddef.h>

#include "config/cfg_model.h"
#include "http/http1_parse.h"

#define TUN_HELLO_PATH	  "/.meridian/tunnel/v1"
#define TUN_HELLO_UPGRADE "meridian-tunnel/1"
/* The longest hello head the edge reads. */
#define TUN_HELLO_MAX 4096

typedef struct tun_hello {
	int status;		  /* 101: accepted; else the refusal's status */
	const char *why;	  /* refusal: one line for the connector */
	const cfg_tunnel *tunnel; /* 101: the tunnel joined */
	char connector[64];	  /* Meridian-Connector, sanitised */
} tun_hello;

/* Judge a parsed hello request against the config's tunnels. */
void tun_hello_judge(const http1_request *req, const char *buf,
		     const cfg_snapshot *cfg, tun_hello *out);

/* The answer to write: the 101, or the refusal with its text body and
 * `Connection: close`. Returns the length (buf is at least 512 bytes). */
size_t tun_hello_answer(const tun_hello *h, char *buf, size_t cap);

/* Constant-time comparison of a presented token with the tunnel's. */
bool tun_token_eq(const char *given, size_t glen, const char *want);

#endif
