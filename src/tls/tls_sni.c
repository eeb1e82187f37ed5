/* tls_sni.c - SNI name index (see tls_sni.h). Two sorted arrays, exact
 * names and wildcard suffixes, searched with bsearch. */
#include "tls/tls_sni.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_util.h"

typedef struct sni_entry {
	char *name; /* lowercase; for wildcards the suffix after "*." */
	uint32_t set;
} sni_entry;

typedef struct sni_list {
	sni_entry *v;
	size_t n, cap;
} sni_list;

struct tls_sni {
	sni_list exact, wild;
	bool finished;
};

tls_sni *tls_sni_new(void)
{
	return xcalloc(1, sizeof(tls_sni));
}

static void list_free(sni_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
}

void tls_sni_free(tls_sni *x)
{
	if (!x)
		return;
	list_free(&x->exact);
	list_free(&x->wild);
	free(x);
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_' || c == '.';
}

/* Lowercase `in` (len bytes) into out without a trailing dot. Returns the
 * length, or -1 when it is empty, too long or has a byte that is not a
 * host name byte. */
static int normalise(const char *in, size_t len, char *out)
{
	if (len && in[len - 1] == '.')
		len--;
	if (!len || len > TLS_SNI_MAX_NAME)
		return -1;
	for (size_t i = 0; i < len; i++) {
		out[i] = lower(in[i]);
		if (!name_char(out[i]))
			return -1;
	}
	out[len] = '\0';
	return (int)len;
}

static bool has_empty_label(const char *s)
{
	return s[0] == '.' || strstr(s, "..") != NULL;
}

int tls_sni_add(tls_sni *x, const char *name, uint32_t set)
{
	char buf[TLS_SNI_MAX_NAME + 1];
	sni_list *l = &x->exact;
	size_t len = strlen(name);

	if (len >= 2 && name[0] == '*' && name[1] == '.') {
		l = &x->wild;
		name += 2;
		len -= 2;
	}
	if (normalise(name, len, buf) < 0 || has_empty_label(buf))
		return -EINVAL;
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].name, buf))
			return 1;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 8;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = (sni_entry){.name = xstrdup(buf), .set = set};
	x->finished = false;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const sni_entry *)a)->name,
		      ((const sni_entry *)b)->name);
}

void tls_sni_finish(tls_sni *x)
{
	if (x->exact.n)
		qsort(x->exact.v, x->exact.n, sizeof(sni_entry), entry_cmp);
	if (x->wild.n)
		qsort(x->wild.v, x->wild.n, sizeof(sni_entry), entry_cmp);
	x->finished = true;
}

static const sni_entry *find(const sni_list *l, const char *name)
{
	if (!l->n)
		return NULL;
	sni_entry key = {.name = (char *)name};
	return bsearch(&key, l->v, l->n, sizeof(sni_entry), entry_cmp);
}

int tls_sni_lookup(const tls_sni *x, const char *host, size_t len)
{
	char buf[TLS_SNI_MAX_NAME + 1];

	if (!x || !x->finished || !host || normalise(host, len, buf) < 0)
		return -1;
	const sni_entry *e = find(&x->exact, buf);
	if (e)
		return (int)e->set;
	/* One label, not empty, then the wildcard's suffix. */
	const char *dot = strchr(buf, '.');
	if (!dot || dot == buf || !dot[1])
		return -1;
	e = find(&x->wild, dot + 1);
	return e ? (int)e->set : -1;
}

size_t tls_sni_count(const tls_sni *x)
{
	return x ? x->exact.n + x->wild.n : 0;
}
