/* proxy_proto.h - PROXY protocol v1 and v2 header parser, pure (no I/O, no
 * allocation).
 *
 * HAProxy's PROXY protocol (doc/proxy-protocol.txt) lets a load balancer in
 * front of Meridian pass the client's address. The header comes first on
 * the connection; the listener accepts it only from geo.trusted_proxies.
 *
 *   v1 (text): "PROXY TCP4 <src> <dst> <sport> <dport>\r\n", "PROXY TCP6 ..."
 *      or "PROXY UNKNOWN[ anything]\r\n"; at most 107 bytes with the CRLF.
 *      Strict: single spaces, addresses as inet_pton reads them (no leading
 *      zeros in IPv4 octets), the family matching the addresses, ports
 *      0..65535 in decimal without leading zeros, printable ASCII only.
 *   v2 (binary): the 12-byte signature, version 2, command LOCAL or PROXY,
 *      family AF_UNSPEC, AF_INET or AF_INET6 over STREAM, a length covering
 *      the addresses, then TLVs, which are checked for framing and skipped.
 *      UNIX and DGRAM are refused (Meridian listens on TCP only). The
 *      length may be at most PROXY_PROTO_V2_MAX_LEN.
 *
 * A prefix of a valid header parses as "need more" (0), so the caller may
 * parse what it has after every read. The answer is never 0 once
 * PROXY_PROTO_MAX_HEADER bytes are there, so a buffer that size suffices.
 */
#ifndef MERIDIAN_PROXY_PROTO_H
#define MERIDIAN_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_PROTO_V1_MAX     107  /* bytes, CRLF included */
#define PROXY_PROTO_V2_MAX_LEN 4096 /* the v2 length field (after 16 bytes) */
#define PROXY_PROTO_MAX_HEADER (16 + PROXY_PROTO_V2_MAX_LEN)

typedef struct proxy_proto_result {
	uint8_t version; /* 1 or 2 */
	/* No addresses were given (v1 UNKNOWN, v2 LOCAL, v2 AF_UNSPEC): use
	 * the connection's own endpoints. src/dst are then zeroed. */
	bool local;
	struct sockaddr_storage src, dst; /* client, and the address it hit */
	socklen_t srclen, dstlen;
} proxy_proto_result;

/* Parses the PROXY header at the start of buf[0..len).
 * Returns the header's length in bytes (> 0) with *out filled; 0 when more
 * bytes are needed; a negative errno-style code when the bytes are not a
 * valid PROXY header: -EINVAL (malformed, or not the PROXY protocol at all),
 * -EPROTONOSUPPORT (v2 UNIX or DGRAM), -EMSGSIZE (v2 length over
 * PROXY_PROTO_V2_MAX_LEN). Any error means: close the connection. */
int proxy_proto_parse(const uint8_t *buf, size_t len, proxy_proto_result *out);

#endif
