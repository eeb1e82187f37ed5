/* cfg_diag.c - load errors: collection, ordering and formatting. */
#include "config/cfg_diag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_util.h"

void cfg_diag_push_field(cfg_diag *d, char *msg_owned, char *field_owned)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 8;
		d->msgs = xrealloc(d->msgs, d->cap * sizeof(*d->msgs));
		d->fields = xrealloc(d->fields, d->cap * sizeof(*d->fields));
	}
	d->fields[d->n] = field_owned;
	d->msgs[d->n++] = msg_owned;
}

void cfg_diag_push(cfg_diag *d, char *msg_owned)
{
	cfg_diag_push_field(d, msg_owned, NULL);
}

void cfg_diag_free(cfg_diag *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++) {
		free(d->msgs[i]);
		free(d->fields[i]);
	}
	free(d->msgs);
	free(d->fields);
	d->msgs = NULL;
	d->fields = NULL;
	d->n = d->cap = 0;
	for (size_t i = 0; i < d->nwarn; i++)
		free(d->warns[i]);
	free(d->warns);
	d->warns = NULL;
	d->nwarn = 0;
}

__attribute__((format(printf, 1, 0))) static char *vformat(const char *fmt,
							   va_list ap)
{
	if (!fmt) /* callers pass literals; this keeps GCC's check quiet */
		return xstrdup("");
	va_list ap2;
	va_copy(ap2, ap);
	int len = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (len < 0)
		len = 0;
	char *s = xmalloc((size_t)len + 1);
	vsnprintf(s, (size_t)len + 1, fmt, ap);
	return s;
}

/* A message is one line: a value it quotes (from a file or an API body)
 * may hold CR, LF or other control bytes, which would otherwise start a
 * line of their own in a terminal or a log. They are written as C escapes.
 * Takes msg; returns it or its escaped copy. */
static char *escape_controls(char *msg)
{
	size_t extra = 0;
	for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			extra += 3;
	if (!extra)
		return msg;
	char *out = xmalloc(strlen(msg) + extra + 1), *o = out;
	for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
		if (*p >= 0x20 && *p != 0x7f) {
			*o++ = (char)*p;
			continue;
		}
		*o++ = '\\';
		if (*p == '\n')
			*o++ = 'n';
		else if (*p == '\r')
			*o++ = 'r';
		else if (*p == '\t')
			*o++ = 't';
		else
			o += sprintf(o, "x%02x", *p);
	}
	*o = '\0';
	free(msg);
	return out;
}

static void push_err(cfg_errs *e, uint32_t line, uint32_t col, char *msg,
		     char *field)
{
	msg = escape_controls(msg);
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 16;
		e->v = xrealloc(e->v, e->cap * sizeof(*e->v));
	}
	e->v[e->n] = (cfg_err){line, col, (uint32_t)e->n, msg, field};
	e->n++;
}

/* False once the list is full; the first refusal adds the last line, so
 * the reader knows the list is cut short. */
static bool room(cfg_errs *e, uint32_t line, uint32_t col, bool field)
{
	if (e->full)
		return false;
	if (e->n < CFG_MAX_ERRORS)
		return true;
	e->full = true;
	char buf[64];
	snprintf(buf, sizeof(buf), "too many %s, stopping after %d",
		 e->noun ? e->noun : "errors", CFG_MAX_ERRORS);
	/* An API body's errors name fields, not the file's name. */
	push_err(e, line, col, xstrdup(buf), field ? xstrdup("body") : NULL);
	return false;
}

void cfg_errs_vadd(cfg_errs *e, uint32_t line, uint32_t col, const char *fmt,
		   va_list ap)
{
	if (room(e, line, col, false))
		push_err(e, line, col, vformat(fmt, ap), NULL);
}

void cfg_errs_add_field(cfg_errs *e, const char *field, const char *fmt, ...)
{
	if (!room(e, 0, 0, true))
		return;
	va_list ap;
	va_start(ap, fmt);
	push_err(e, 0, 0, vformat(fmt, ap), xstrdup(field));
	va_end(ap);
}

void cfg_errs_add(cfg_errs *e, uint32_t line, uint32_t col, const char *fmt,
		  ...)
{
	va_list ap;
	va_start(ap, fmt);
	cfg_errs_vadd(e, line, col, fmt, ap);
	va_end(ap);
}

static int err_cmp(const void *pa, const void *pb)
{
	const cfg_err *a = pa, *b = pb;
	/* API objects' errors after the file's, in the order found. */
	if (!a->field != !b->field)
		return a->field ? 1 : -1;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	if (a->col != b->col)
		return a->col < b->col ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Sort e, append its messages to d's errors (or, `warn`, to its
 * warnings with "warning: " before the message), and empty e. */
static void flush(cfg_errs *e, cfg_diag *d, bool warn)
{
	if (!e->n) /* (qsort's array may not be NULL, even for 0) */
		return;
	/* The "too many errors" line stays last whatever its position. */
	size_t nsort = e->full ? e->n - 1 : e->n;
	qsort(e->v, nsort, sizeof(*e->v), err_cmp);
	const char *file = e->file ? e->file : "<config>";
	const char *kind = warn ? "warning: " : "";
	for (size_t i = 0; i < e->n; i++) {
		cfg_err *r = &e->v[i];
		const char *where = r->field ? r->field : file;
		size_t len = strlen(where) + strlen(r->msg) + 48;
		char *s = xmalloc(len);
		if (r->line)
			snprintf(s, len, "%s:%u:%u: %s%s", file, r->line,
				 r->col, kind, r->msg);
		else
			snprintf(s, len, "%s: %s%s", where, kind, r->msg);
		free(r->msg);
		if (warn) {
			free(r->field);
			d->warns = xrealloc(d->warns,
					    (d->nwarn + 1) * sizeof(*d->warns));
			d->warns[d->nwarn++] = s;
		} else {
			cfg_diag_push_field(d, s, r->field);
		}
	}
	free(e->v);
	e->v = NULL;
	e->n = e->cap = 0;
	e->full = false;
}

void cfg_errs_flush(cfg_errs *e, cfg_diag *d)
{
	flush(e, d, false);
}

void cfg_errs_flush_warnings(cfg_errs *e, cfg_diag *d)
{
	flush(e, d, true);
}

void cfg_errs_clear(cfg_errs *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->v[i].msg);
		free(e->v[i].field);
	}
	free(e->v);
	e->v = NULL;
	e->n = e->cap = 0;
	e->full = false;
}
