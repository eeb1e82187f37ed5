/* dns_rdata.h - record content as configured (Cloudflare's `content`, zone
 * file form) into wire rdata, pure. Run once per configuration snapshot,
 * never per query.
 *
 *   A      "192.0.2.1"
 *   AAAA   "2001:db8::1"
 *   CNAME  "target.example.net" (a trailing dot is allowed)
 *   NS     "ns1.example.net"
 *   MX     "mail.example.com" with the record's `priority` as preference, or
 *          "10 mail.example.com" (the number wins); "." is the null MX
 *   TXT    the text as is, split into 255-byte strings; or, when it begins
 *          with a double quote, zone-file strings: "a" "b", with \" \\ and
 *          \DDD escapes, each at most 255 bytes
 *   SRV    "weight port target" with the record's `priority`, or
 *          "priority weight port target" (Cloudflare's API and zone files)
 *   CAA    "flags tag value": flags 0-255, tag 1-15 letters or digits,
 *          value quoted (escapes as TXT) or bare
 *   SOA    "mname rname serial refresh retry expire minimum"; an rname
 *          written as a mail address (hostmaster@example.com) is accepted
 *
 * Names in rdata are stored in full (never compressed) and lowercased.
 */
#ifndef MERIDIAN_DNS_RDATA_H
#define MERIDIAN_DNS_RDATA_H

#include <stddef.h>
#include <stdint.h>

/* Largest rdata this module produces. */
#define DNS_RDATA_MAX 65535

/* The rdata of `type` (DNS_T_*) for content into out[0..cap). Returns the
 * rdata length, or -EINVAL with a message for the operator in err
 * ("expected ..."), or -EMSGSIZE when it does not fit in cap. */
int dns_rdata_from_text(uint16_t type, const char *content, uint16_t priority,
			uint8_t *out, size_t cap, char *err, size_t errlen);

#endif
