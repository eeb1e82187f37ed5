/* cfg_env.h - ${VAR} substitution in configuration values.
 *
 * "${NAME}" is replaced by the environment variable NAME (letters, digits,
 * '_', not starting with a digit); an unset variable is an error naming it,
 * so a missing secret never becomes an empty token. "$${" gives a literal
 * "${". Any other '$' is kept as is.
 */
#ifndef MERIDIAN_CFG_ENV_H
#define MERIDIAN_CFG_ENV_H

#include <stddef.h>

struct core_arena;

/* Expand s (len bytes, NUL-terminated) into arena memory. Returns 0 and sets
 * *out / *outlen (s itself when there is nothing to expand), or -1 with a
 * message in err. */
int cfg_env_expand(struct core_arena *a, const char *s, size_t len,
		   const char **out, size_t *outlen, char *err, size_t errsize);

#endif
