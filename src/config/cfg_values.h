/* cfg_values.h - parsers and validators for configuration values.
 *
 * Pure functions (no I/O, no allocation) shared by the key tables, and
 * usable by anything else that accepts the same values (the admin API).
 * Each returns 0 / true on success; on failure the out parameters are
 * untouched.
 */
#ifndef MERIDIAN_CFG_VALUES_H
#define MERIDIAN_CFG_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/cfg_model.h"

/* Cloudflare's 13 regions, in their documentation's order. */
#define CFG_NREGIONS 13
extern const char *const cfg_regions[CFG_NREGIONS];

bool cfg_is_region(const char *s);
/* ISO 3166-1 alpha-2 shape: two uppercase ASCII letters. */
bool cfg_is_country(const char *s);
/* RFC 1123 host name: labels of letters, digits and '-', 1..63 bytes, no
 * leading or trailing '-', 253 bytes in all, no trailing dot. With
 * allow_wildcard, "*." may lead ("*.example.com"). */
bool cfg_is_hostname(const char *s, bool allow_wildcard);
/* Whether a host name (a "*." wildcard counts as its suffix) is zone
 * itself or below it, ASCII case-insensitively. */
bool cfg_name_in_zone(const char *name, const char *zone);
/* An HTTP field name (RFC 9110 token). */
bool cfg_is_header_name(const char *s);

/* Decimal integer, optional leading '-'; the whole string. */
int cfg_parse_int(const char *s, int64_t *out);
/* Finite decimal number; the whole string. */
int cfg_parse_double(const char *s, double *out);
/* true/True/TRUE/false/False/FALSE (YAML 1.2 core schema). */
int cfg_parse_bool(const char *s, bool *out);
/* Bytes: an integer with an optional k, M or G suffix (binary: 1k = 1024),
 * "KB"/"KiB" style spellings accepted too. */
int cfg_parse_size(const char *s, uint64_t *out);

/* An IP literal (no brackets) with port into ss/len. */
int cfg_parse_ip(const char *s, uint16_t port, struct sockaddr_storage *ss,
		 socklen_t *len);
/* "IP:port" or "[IPv6]:port", numeric only. On failure *why says what is
 * wrong (a static string). */
int cfg_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len,
		     const char **why);
/* "10.0.0.0/8", "2001:db8::/32". text is not set. On failure *why is set;
 * for host bits, fixed (if not NULL, >= 64 bytes) gets the network. */
int cfg_parse_cidr(const char *s, cfg_cidr *out, const char **why, char *fixed,
		   size_t fixedsize);
bool cfg_cidr_contains(const cfg_cidr *c, const struct sockaddr *sa);

/* Monitor expected_codes: comma-separated "200" (100..599) or "2xx"
 * (1xx..5xx) items, no spaces. */
bool cfg_expected_codes_valid(const char *s);
/* Whether an HTTP status matches a valid expected_codes string. */
bool cfg_expected_codes_match(const char *s, int status);

/* Optimal string alignment distance (edits and swaps), ASCII
 * case-insensitive; stops counting at limit + 1. */
size_t cfg_edit_distance(const char *a, const char *b, size_t limit);
/* The candidate closest to word if it is close enough to be a likely typo,
 * else NULL. */
const char *cfg_suggest(const char *word, const char *const *cands, size_t n);

/* A string of a list checked for repeats (p NULL: takes no part). */
typedef struct cfg_strref {
	const char *p;
	size_t len;
} cfg_strref;
/* For each of the n strings, first[i] = the index of the first string
 * equal to it when that is an earlier one, else SIZE_MAX. Equal: the
 * same bytes or, nocase, the same but for ASCII case. Sorted, not
 * pairwise, beyond a few dozen: O(n log n) (a list of 100,000 ids). */
void cfg_find_repeats(const cfg_strref *s, size_t n, bool nocase,
		      size_t *first);

#endif
