/* demo_cert.h - a throwaway self-signed certificate for `meridian demo`
 * (its tunnel listener speaks TLS). Not for anything else: the key is
 * written to a temporary directory and never rotated. */
#ifndef MERIDIAN_DEMO_CERT_H
#define MERIDIAN_DEMO_CERT_H

#include <stddef.h>

/* Write an ECDSA P-256 key and a certificate for `name` (CN and DNS
 * SAN), valid for 30 days, to cert_path and key_path (mode 0600). 0, or
 * -1 with err set. */
int demo_cert_make(const char *name, const char *cert_path,
		   const char *key_path, char *err, size_t errlen);

#endif
