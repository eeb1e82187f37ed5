/* core_sock.h - socket helpers: listeners, non-blocking connects, address
 * text. */
#ifndef MERIDIAN_CORE_SOCK_H
#define MERIDIAN_CORE_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <errno.h>
#include <sys/socket.h>

/* Non-blocking TCP listener with SO_REUSEADDR and, when reuseport,
 * SO_REUSEPORT (one per worker). Returns fd or -errno. */
/* 0 when no other socket holds sa for type (SOCK_STREAM or SOCK_DGRAM):
 * a plain bind, without SO_REUSEPORT, then closed. The workers' listeners
 * use SO_REUSEPORT, which would let a second edge join them silently and
 * take part of the traffic; this asks first. TCP TIME_WAIT does not count
 * (SO_REUSEADDR). Else -errno (EADDRINUSE: someone holds it). */
int core_sock_probe_free(const struct sockaddr *sa, socklen_t len, int type);
int core_sock_listen(const struct sockaddr *sa, socklen_t len, bool reuseport,
		     int backlog);
/* Whether socket(), accept() or connect() failed for want of this
 * process's or this machine's descriptors or memory rather than because
 * of the peer: such a failure blames no peer, and trying again at once
 * fails the same way. (connect's EADDRNOTAVAIL and EAGAIN, no local port
 * left, are the caller's to add: for accept EAGAIN means done.) */
static inline bool core_sock_err_local(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS ||
	       err == ENOMEM;
}

/* Non-blocking connect; returns fd (connect may still be in progress:
 * *in_progress set) or -errno (e.g. -ECONNREFUSED). */
int core_sock_connect(const struct sockaddr *sa, socklen_t len,
		      bool *in_progress);
/* Parse "1.2.3.4:80" or "[::1]:80" (numeric only). Returns 0 or -EINVAL. */
int core_sock_parse_addr(const char *text, struct sockaddr_storage *ss,
			 socklen_t *len);
/* "1.2.3.4" or "::1" (no port) into buf. Returns length. */
size_t core_sock_ip_text(const struct sockaddr *sa, char *buf, size_t size);
/* The port of a bound socket, or -errno. */
int core_sock_local_port(int fd);

/* Whether ss is a loopback address (127.0.0.0/8 or ::1). */
bool core_sock_is_loopback(const struct sockaddr_storage *ss);

#endif
