/* cfg_values.c - value parsers and validators; see cfg_values.h. */
#include "config/cfg_values.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ctype.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core_util.h"

const char *const cfg_regions[CFG_NREGIONS] = {
    "WNAM", "ENAM", "WEU", "EEU", "NSAM", "SSAM", "OC",
    "ME",   "NAF",  "SAF", "SAS", "SEAS", "NEAS",
};

bool cfg_is_region(const char *s)
{
	for (size_t i = 0; i < CFG_NREGIONS; i++)
		if (!strcmp(s, cfg_regions[i]))
			return true;
	return false;
}

bool cfg_is_country(const char *s)
{
	return s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' &&
	       !s[2];
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

bool cfg_is_hostname(const char *s, bool allow_wildcard)
{
	if (allow_wildcard && s[0] == '*' && s[1] == '.')
		s += 2;
	size_t total = strlen(s);
	if (total == 0 || total > 253)
		return false;
	const char *label = s;
	for (const char *p = s;; p++) {
		if (*p == '.' || *p == '\0') {
			size_t n = (size_t)(p - label);
			if (n == 0 || n > 63 || label[0] == '-' || p[-1] == '-')
				return false;
			if (*p == '\0')
				return true;
			label = p + 1;
		} else if (!is_alnum(*p) && *p != '-') {
			return false;
		}
	}
}

bool cfg_is_header_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!is_alnum(*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

int cfg_parse_int(const char *s, int64_t *out)
{
	const char *p = s;
	if (*p == '-')
		p++;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (const char *q = p; *q; q++)
		if (*q < '0' || *q > '9')
			return -EINVAL;
	errno = 0;
	long long v = strtoll(s, NULL, 10);
	if (errno)
		return -ERANGE;
	*out = v;
	return 0;
}

int cfg_parse_double(const char *s, double *out)
{
	if (!*s || strchr(s, ' ') || strchr(s, 'x') || strchr(s, 'X'))
		return -EINVAL;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (*end || errno || !isfinite(v))
		return -EINVAL;
	*out = v;
	return 0;
}

int cfg_parse_bool(const char *s, bool *out)
{
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
		*out = true;
		return 0;
	}
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

int cfg_parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} units[] = {
	    {"", 1},
	    {"b", 1},
	    {"B", 1},
	    {"k", 1ull << 10},
	    {"K", 1ull << 10},
	    {"KB", 1ull << 10},
	    {"KiB", 1ull << 10},
	    {"M", 1ull << 20},
	    {"MB", 1ull << 20},
	    {"MiB", 1ull << 20},
	    {"G", 1ull << 30},
	    {"GB", 1ull << 30},
	    {"GiB", 1ull << 30},
	};
	const char *p = s;
	uint64_t v = 0;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	for (size_t i = 0; i < ARRAY_LEN(units); i++) {
		if (strcmp(p, units[i].suffix))
			continue;
		if (v > UINT64_MAX / units[i].mult)
			return -ERANGE;
		*out = v * units[i].mult;
		return 0;
	}
	return -EINVAL;
}

int cfg_parse_ip(const char *s, uint16_t port, struct sockaddr_storage *ss,
		 socklen_t *len)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, s, &a4) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		memset(ss, 0, sizeof(*ss));
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr = a4;
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &a6) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		memset(ss, 0, sizeof(*ss));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = a6;
		*len = sizeof(*sin6);
		return 0;
	}
	return -EINVAL;
}

int cfg_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len,
		     const char **why)
{
	char host[64];
	const char *colon;
	size_t hlen;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close) {
			*why = "missing ']' after the IPv6 address";
			return -EINVAL;
		}
		if (close[1] != ':') {
			*why = "a port is required, as in [::1]:8080";
			return -EINVAL;
		}
		hlen = (size_t)(close - s - 1);
		if (hlen >= sizeof(host)) {
			*why = "not an IPv6 address";
			return -EINVAL;
		}
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		colon = close + 1;
		if (!strchr(host, ':')) {
			*why = "brackets are for IPv6 addresses only";
			return -EINVAL;
		}
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			*why = "a port is required, as in 127.0.0.1:8080";
			return -EINVAL;
		}
		if (strchr(s, ':') != colon) {
			*why = "IPv6 addresses need brackets, as in [::1]:8080";
			return -EINVAL;
		}
		hlen = (size_t)(colon - s);
		if (hlen == 0 || hlen >= sizeof(host)) {
			*why = "an IP address is required before the port "
			       "(0.0.0.0 for all)";
			return -EINVAL;
		}
		memcpy(host, s, hlen);
		host[hlen] = '\0';
	}
	const char *ps = colon + 1;
	int64_t port;
	if (cfg_parse_int(ps, &port) || ps[0] == '-' || port < 1 ||
	    port > 65535) {
		/* 0 would give each worker's SO_REUSEPORT socket its own
		 * random port, and nobody could know where to connect. */
		*why = "the port must be a number 1..65535";
		return -EINVAL;
	}
	if (cfg_parse_ip(host, (uint16_t)port, ss, len)) {
		*why = "not a numeric IP address (host names are not "
		       "accepted here)";
		return -EINVAL;
	}
	return 0;
}

int cfg_parse_cidr(const char *s, cfg_cidr *out, const char **why, char *fixed,
		   size_t fixedsize)
{
	const char *slash = strchr(s, '/');
	char host[64];
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	if (hlen == 0 || hlen >= sizeof(host)) {
		*why = "not an IP address";
		return -EINVAL;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	cfg_cidr c = {0};
	int maxbits;
	if (inet_pton(AF_INET, host, c.addr) == 1) {
		c.family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, host, c.addr) == 1) {
		c.family = AF_INET6;
		maxbits = 128;
	} else {
		*why = "not an IP address";
		return -EINVAL;
	}
	int64_t bits = maxbits;
	if (slash && (cfg_parse_int(slash + 1, &bits) || slash[1] == '-' ||
		      bits > maxbits)) {
		*why = c.family == AF_INET ? "the prefix length must be 0..32"
					   : "the prefix length must be 0..128";
		return -EINVAL;
	}
	c.prefix = (uint8_t)bits;
	bool hostbits = false;
	for (int i = 0; i < maxbits / 8; i++) {
		int keep = (int)bits - i * 8;
		uint8_t mask = keep >= 8   ? 0xff
			       : keep <= 0 ? 0
					   : (uint8_t)(0xff << (8 - keep));
		if (c.addr[i] & ~mask)
			hostbits = true;
		c.addr[i] &= mask;
	}
	if (hostbits) {
		*why = "host bits are set";
		if (fixed && fixedsize >= 64) {
			char net[INET6_ADDRSTRLEN];
			inet_ntop(c.family, c.addr, net, sizeof(net));
			snprintf(fixed, fixedsize, "%s/%u", net, c.prefix);
		}
		return -EINVAL;
	}
	*out = c;
	return 0;
}

bool cfg_cidr_contains(const cfg_cidr *c, const struct sockaddr *sa)
{
	const uint8_t *a;
	if (sa->sa_family != c->family)
		return false;
	if (c->family == AF_INET)
		a = (const uint8_t *)&((const struct sockaddr_in *)sa)
			->sin_addr;
	else
		a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)
			->sin6_addr;
	int bits = c->prefix;
	for (int i = 0; bits > 0; i++, bits -= 8) {
		uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));
		if ((a[i] & mask) != c->addr[i])
			return false;
	}
	return true;
}

/* One expected_codes item at s (3 chars): 0 no match / 1 match / -1 bad. */
static int code_item(const char *s, int status)
{
	if (s[0] < '1' || s[0] > '5')
		return -1;
	if (s[1] == 'x' && s[2] == 'x')
		return status / 100 == s[0] - '0';
	if (s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
		return -1;
	return status == (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

bool cfg_expected_codes_valid(const char *s)
{
	for (;;) {
		if (strlen(s) < 3 || code_item(s, 0) < 0)
			return false;
		if (s[3] == '\0')
			return true;
		if (s[3] != ',')
			return false;
		s += 4;
	}
}

bool cfg_expected_codes_match(const char *s, int status)
{
	for (;;) {
		if (strlen(s) < 3)
			return false;
		if (code_item(s, status) == 1)
			return true;
		if (s[3] != ',')
			return false;
		s += 4;
	}
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

size_t cfg_edit_distance(const char *a, const char *b, size_t limit)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return limit + 1;
	if ((la > lb ? la - lb : lb - la) > limit)
		return limit + 1;
	/* Three rows suffice for the swap rule. */
	size_t rows[3][65];
	size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = lower(a[i - 1]) != lower(b[j - 1]);
			size_t v = MIN(prev[j] + 1, cur[j - 1] + 1);
			v = MIN(v, prev[j - 1] + cost);
			if (i > 1 && j > 1 &&
			    lower(a[i - 1]) == lower(b[j - 2]) &&
			    lower(a[i - 2]) == lower(b[j - 1]))
				v = MIN(v, prev2[j - 2] + 1);
			cur[j] = v;
		}
		size_t *t = prev2;
		prev2 = prev;
		prev = cur;
		cur = t;
	}
	return MIN(prev[lb], limit + 1);
}

const char *cfg_suggest(const char *word, const char *const *cands, size_t n)
{
	/* Short words tolerate one slip, longer ones up to three. */
	size_t len = strlen(word);
	size_t limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
	const char *best = NULL;
	size_t bestd = limit + 1;
	for (size_t i = 0; i < n; i++) {
		if (!cands[i])
			continue;
		size_t d = cfg_edit_distance(word, cands[i], limit);
		if (d < bestd) {
			bestd = d;
			best = cands[i];
		}
	}
	return best;
}

bool cfg_name_in_zone(const char *name, const char *zone)
{
	if (!strncmp(name, "*.", 2))
		name += 2;
	size_t n = strlen(name), z = strlen(zone);
	if (n == z)
		return !strcasecmp(name, zone);
	return n > z && name[n - z - 1] == '.' &&
	       !strcasecmp(name + n - z, zone);
}

typedef struct repeat_ref {
	cfg_strref s;
	size_t i; /* position in the list */
} repeat_ref;

static int strref_cmp(const cfg_strref *a, const cfg_strref *b, bool nocase)
{
	size_t n = a->len < b->len ? a->len : b->len;
	for (size_t k = 0; k < n; k++) {
		int x = (unsigned char)a->p[k], y = (unsigned char)b->p[k];
		if (nocase) {
			x = tolower(x);
			y = tolower(y);
		}
		if (x != y)
			return x < y ? -1 : 1;
	}
	return (a->len > b->len) - (a->len < b->len);
}

/* By string, then position: a run of equal strings starts with the
 * first one written. */
static int repeat_cmp(const void *pa, const void *pb, bool nocase)
{
	const repeat_ref *a = pa, *b = pb;
	int r = strref_cmp(&a->s, &b->s, nocase);
	return r ? r : (a->i > b->i) - (a->i < b->i);
}

static int repeat_cmp_case(const void *a, const void *b)
{
	return repeat_cmp(a, b, false);
}

static int repeat_cmp_nocase(const void *a, const void *b)
{
	return repeat_cmp(a, b, true);
}

void cfg_find_repeats(const cfg_strref *s, size_t n, bool nocase, size_t *first)
{
	for (size_t i = 0; i < n; i++)
		first[i] = SIZE_MAX;
	if (n <= 32) { /* small lists (most mappings): no allocation */
		for (size_t i = 1; i < n; i++)
			for (size_t j = 0; s[i].p && j < i; j++)
				if (s[j].p &&
				    !strref_cmp(&s[i], &s[j], nocase)) {
					first[i] = j;
					break;
				}
		return;
	}
	repeat_ref *r = xmalloc(n * sizeof(*r));
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i].p)
			r[m++] = (repeat_ref){s[i], i};
	qsort(r, m, sizeof(*r), nocase ? repeat_cmp_nocase : repeat_cmp_case);
	for (size_t k = 1, lead = 0; k < m; k++) {
		if (strref_cmp(&r[lead].s, &r[k].s, nocase))
			lead = k;
		else
			first[r[k].i] = r[lead].i;
	}
	free(r);
}
