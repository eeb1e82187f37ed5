/* http_norm.h - URL path normalization for the rules language, pure.
 *
 * Why: a condition on `http.request.uri.path eq "/admin"` (a load balancer
 * rule, a rate limit) must not be dodged with `/%61dmin`, `//admin`,
 * `/x/../admin` or `\admin`, which origins treat as /admin. Conditions
 * therefore read the path normalized as Cloudflare's default URL
 * normalization does (RFC 3986 section 6.2.2, plus two steps of its own);
 * the request goes to the origin unchanged.
 *   1. a backslash is a slash;
 *   2. percent-encoded unreserved characters (A-Z a-z 0-9 - . _ ~) are
 *      decoded; other percent-encodings get upper-case hex digits; a '%'
 *      not followed by two hex digits stays as it is (and a decoded hex
 *      digit that would make a new escape with it stays encoded);
 *   3. runs of slashes become one;
 *   4. dot segments ("." and "..") are removed (RFC 3986 5.2.4).
 * The result is no longer than the input and normalizing it again changes
 * nothing.
 */
#ifndef MERIDIAN_HTTP_NORM_H
#define MERIDIAN_HTTP_NORM_H

#include <stddef.h>

/* Normalize the path p[0..n) (no query) into out (at least n bytes).
 * Returns the length written. */
size_t http_norm_path(const char *p, size_t n, char *out);

#endif
