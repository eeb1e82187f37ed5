/* http_norm.c - URL path normalization; see http_norm.h. */
#include "http/http_norm.h"

#include <stdbool.h>
#include <string.h>

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

/* Steps 1-3 into out: slashes, percent-encodings, runs of slashes. */
static size_t decode(const char *p, size_t n, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i] == '\\' ? '/' : p[i];
		int hi, lo;
		if (c == '%' && i + 2 < n && (hi = hexval(p[i + 1])) >= 0 &&
		    (lo = hexval(p[i + 2])) >= 0) {
			unsigned char d = (unsigned char)(hi << 4 | lo);
			i += 2;
			/* A decoded hex digit right after a lone '%' (or '%'
			 * and a digit) would make a new escape: "%%61" is not
			 * "%a". It stays encoded, so a second pass agrees. */
			bool joins = hexval((char)d) >= 0 &&
				     ((o >= 1 && out[o - 1] == '%') ||
				      (o >= 2 && out[o - 2] == '%' &&
				       hexval(out[o - 1]) >= 0));
			if (unreserved(d) && !joins) {
				c = (char)d;
			} else {
				out[o++] = '%';
				out[o++] = hex[hi];
				out[o++] = hex[lo];
				continue;
			}
		}
		if (c == '/' && o && out[o - 1] == '/')
			continue;
		out[o++] = c;
	}
	return o;
}

/* Step 4 in place: RFC 3986 5.2.4 over the segments. A segment is kept
 * as the text between slashes; "." is dropped and ".." drops the segment
 * before it. */
static size_t remove_dots(char *s, size_t n)
{
	size_t o = 0, i = 0;
	bool abs = n && s[0] == '/';
	if (abs) {
		o = 1;
		i = 1;
	}
	while (i <= n) {
		size_t j = i;
		while (j < n && s[j] != '/')
			j++;
		size_t len = j - i;
		bool last = j >= n;
		if (len == 1 && s[i] == '.') {
			/* "." : nothing; a trailing one leaves the slash */
		} else if (len == 2 && s[i] == '.' && s[i + 1] == '.') {
			/* ".." : back over the previous segment and its slash
			 */
			if (o > (abs ? 1u : 0u)) {
				o--; /* the slash after the previous segment */
				while (o > (abs ? 1u : 0u) && s[o - 1] != '/')
					o--;
			}
		} else {
			memmove(s + o, s + i, len);
			o += len;
			if (!last)
				s[o++] = '/';
		}
		i = j + 1;
	}
	return o;
}

size_t http_norm_path(const char *p, size_t n, char *out)
{
	size_t o = decode(p, n, out);
	return remove_dots(out, o);
}
