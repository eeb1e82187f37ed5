/* cfg_env.c - ${VAR} substitution; see cfg_env.h. */
#include "config/cfg_env.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_arena.h"
#include "core/core_util.h"

static bool name_char(char ch, bool first)
{
	if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_')
		return true;
	return !first && ch >= '0' && ch <= '9';
}

/* One pass that either measures (dst NULL) or copies. Returns the expanded
 * length or -1 with err set. */
static long expand(const char *s, size_t len, char *dst, char *err,
		   size_t errsize)
{
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' &&
		    s[i + 2] == '{') {
			if (dst)
				memcpy(dst + o, "${", 2);
			o += 2;
			i += 3;
			continue;
		}
		if (s[i] != '$' || i + 1 >= len || s[i + 1] != '{') {
			if (dst)
				dst[o] = s[i];
			o++;
			i++;
			continue;
		}
		size_t start = i + 2, j = start;
		while (j < len && s[j] != '}')
			j++;
		if (j == len) {
			snprintf(err, errsize,
				 "unterminated '${' (write '$${' for a "
				 "literal '${')");
			return -1;
		}
		size_t nlen = j - start;
		bool ok = nlen > 0 && nlen < 256;
		for (size_t k = start; ok && k < j; k++)
			ok = name_char(s[k], k == start);
		if (!ok) {
			snprintf(err, errsize,
				 "invalid environment variable name '%.*s'",
				 (int)MIN(nlen, 64), s + start);
			return -1;
		}
		char name[256];
		memcpy(name, s + start, nlen);
		name[nlen] = '\0';
		const char *val = getenv(name);
		if (!val) {
			snprintf(err, errsize,
				 "environment variable '%s' is not set", name);
			return -1;
		}
		size_t vlen = strlen(val);
		if (dst)
			memcpy(dst + o, val, vlen);
		o += vlen;
		i = j + 1;
	}
	return (long)o;
}

int cfg_env_expand(core_arena *a, const char *s, size_t len, const char **out,
		   size_t *outlen, char *err, size_t errsize)
{
	if (!memchr(s, '$', len)) {
		*out = s;
		*outlen = len;
		return 0;
	}
	long n = expand(s, len, NULL, err, errsize);
	if (n < 0)
		return -1;
	char *d = core_arena_alloc(a, (size_t)n + 1);
	/* getenv cannot change between the passes: loading is single
	 * threaded and nothing here calls setenv. */
	expand(s, len, d, err, errsize);
	d[n] = '\0';
	*out = d;
	*outlen = (size_t)n;
	return 0;
}
