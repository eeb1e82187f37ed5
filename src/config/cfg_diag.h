/* cfg_diag.h - collecting load errors with their positions (internal).
 *
 * Errors are gathered while a file is walked, then sorted by position and
 * formatted as "file:line:col: message" into the caller's cfg_diag, so
 * reference errors found after the walk still come out in file order.
 * Errors in objects from the API have a field path instead of a position
 * ("pools[gcp].origins[0].weight: message"); they come after the file's,
 * in the order found.
 */
#ifndef MERIDIAN_CFG_DIAG_H
#define MERIDIAN_CFG_DIAG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/cfg_load.h"

/* Past this many errors loading stops adding and says so once. */
#define CFG_MAX_ERRORS 100

typedef struct cfg_err {
	uint32_t line, col; /* 1-based; line 0: no position */
	uint32_t seq;	    /* keeps equal positions in the order found */
	char *msg;	    /* malloc'd, without the position */
	char *field;	    /* malloc'd field path of an API object, or NULL */
} cfg_err;

typedef struct cfg_errs {
	const char *file;
	cfg_err *v;
	size_t n, cap;
	bool full;	  /* CFG_MAX_ERRORS reached */
	const char *noun; /* "errors" (NULL) or "warnings", for the cap */
} cfg_errs;

void cfg_errs_add(cfg_errs *e, uint32_t line, uint32_t col, const char *fmt,
		  ...) __attribute__((format(printf, 4, 5)));
void cfg_errs_vadd(cfg_errs *e, uint32_t line, uint32_t col, const char *fmt,
		   va_list ap) __attribute__((format(printf, 4, 0)));
/* An error without a position, at a field of an API object
 * ("pools[gcp].origins[0].weight"); flushed as "field: msg". */
void cfg_errs_add_field(cfg_errs *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sort, append to d as "file:line:col: msg", and empty e. */
void cfg_errs_flush(cfg_errs *e, cfg_diag *d);
/* The same for warnings: to d->warns, as "file:line:col: warning: msg". */
void cfg_errs_flush_warnings(cfg_errs *e, cfg_diag *d);
/* Drop everything collected (no diag wanted). */
void cfg_errs_clear(cfg_errs *e);

/* Append one already formatted message to d; field_owned (NULL for a
 * file error) is the field path it starts with. */
void cfg_diag_push(cfg_diag *d, char *msg_owned);
void cfg_diag_push_field(cfg_diag *d, char *msg_owned, char *field_owned);

#endif
