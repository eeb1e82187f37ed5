/* tun_ingress.c - ingress rule matching; see tun_ingress.h. */
#include "tunnel/tun_ingress.h"

#include <string.h>

#include "core/core_util.h"

size_t tun_ingress_host_len(const char *a, size_t len)
{
	size_t n = 0;
	if (len && a[0] == '[') {
		const char *e = memchr(a, ']', len);
		return e ? (size_t)(e - a) + 1 : len;
	}
	while (n < len && a[n] != ':')
		n++;
	if (n > 1 && a[n - 1] == '.')
		n--;
	return n;
}

bool tun_ingress_host_matches(const tun_rule *r, const char *host, size_t hlen)
{
	if (!r->hostname)
		return true;
	if (!r->wildcard)
		return hlen == r->hostname_len &&
		       !core_strncaseeq(host, r->hostname, hlen);
	/* "*.example.com": at least one character before ".example.com"
	 * (one_label: and no '.' among them) */
	size_t sl = r->hostname_len - 1; /* ".example.com" */
	const char *suffix = r->hostname + 1;
	if (hlen <= sl || host[0] == '.' ||
	    core_strncaseeq(host + hlen - sl, suffix, sl))
		return false;
	return !r->one_label || !memchr(host, '.', hlen - sl);
}

bool tun_ingress_path_matches(const tun_rule *r, const char *path, size_t plen)
{
	if (!r->path)
		return true;
	const char *q = memchr(path, '?', plen);
	if (q)
		plen = (size_t)(q - path);
	if (r->exact)
		return plen == r->path_len && !memcmp(path, r->path, plen);
	if (r->path_len == 1)
		return true; /* "/" */
	return plen >= r->path_len && !memcmp(path, r->path, r->path_len) &&
	       (plen == r->path_len || path[r->path_len] == '/');
}

int tun_ingress_match(const tun_rule *rules, size_t n, const char *authority,
		      size_t alen, const char *path, size_t plen)
{
	size_t hlen = tun_ingress_host_len(authority, alen);
	for (size_t i = 0; i < n; i++)
		if (tun_ingress_host_matches(&rules[i], authority, hlen) &&
		    tun_ingress_path_matches(&rules[i], path, plen))
			return (int)i;
	return -1;
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-';
}

const char *tun_ingress_check_hostname(const char *s, size_t len)
{
	if (len >= 2 && s[0] == '*' && s[1] == '.') {
		s += 2;
		len -= 2;
		if (!len)
			return "a wildcard needs a domain after \"*.\"";
	}
	if (!len)
		return "empty";
	if (len > 253)
		return "longer than 253 characters";
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (!label)
				return "empty label";
			label = 0;
			continue;
		}
		if (c == '*')
			return "'*' only as the whole first label (\"*.example."
			       "com\")";
		if (c == ':')
			return "no port here (the port of :authority is "
			       "ignored)";
		if (!name_char(c))
			return "only letters, digits, '-' and '.'";
		if (++label > 63)
			return "a label is longer than 63 characters";
	}
	if (!label)
		return "empty label";
	return NULL;
}

const char *tun_ingress_check_path(const char *s, size_t len)
{
	if (!len || s[0] != '/')
		return "must start with \"/\"";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '?' || c == '#')
			return "no query or fragment ('?', '#')";
		if (c <= ' ' || c == 0x7f)
			return "no spaces or control characters";
	}
	return NULL;
}
