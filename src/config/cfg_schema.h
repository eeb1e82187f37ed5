/* cfg_schema.h - configuration keys declared once, in tables.
 *
 * Each key names its YAML key, its type (with range, choices or nested
 * table), where it is stored (offsetof into the model struct), its default
 * written as YAML text, and one line of help. The engine in cfg_schema.c
 * walks a YAML mapping against a table: it parses and stores each value,
 * applies defaults, reports unknown keys (with "did you mean"), type and
 * range errors at the value's position, and missing required keys at the
 * mapping's. The same tables produce docs/CONFIG.md (cfg_doc.c), so the
 * reference cannot drift from what the loader accepts.
 *
 * A table's optional finish hook runs after its keys are applied, for what
 * one key cannot say alone (latitude needs longitude, origin names unique in
 * a pool, an origin's address resolved with its port).
 */
#ifndef MERIDIAN_CFG_SCHEMA_H
#define MERIDIAN_CFG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cfg_diag.h"
#include "config/cfg_model.h"
#include "config/cfg_yaml.h"

struct core_arena;

typedef enum cfg_type {
	CFG_STRING = 0, /* const char *; .choices / .check restrict it */
	CFG_BOOL,	/* bool */
	CFG_TRISTATE,	/* int8_t: 1 true, 0 false, -1 null */
	CFG_UINT,	/* unsigned integer of .size bytes, .min .. .max */
	CFG_DOUBLE,	/* double, .dmin .. .dmax */
	CFG_DURATION,	/* uint32_t ms (seconds with CFG_F_SECONDS) */
	CFG_SIZE,	/* bytes with k/M/G suffixes, .size bytes */
	CFG_ENUM,	/* C enum: index into .choices */
	CFG_ADDR,	/* cfg_addr: numeric IP:port */
	CFG_CIDR,	/* cfg_cidr */
	CFG_REF,	/* const cfg_pool * / const cfg_monitor *, by id */
	CFG_LIST,	/* array of .item at .off, count at .count_off */
	CFG_MAP,	/* array of elements, key string at .key_off */
	CFG_OBJECT,	/* .sub table applied at base + .off */
} cfg_type;

enum {
	CFG_F_REQUIRED = 1u << 0, /* error when missing */
	CFG_F_NONEMPTY = 1u << 1, /* strings and lists: not empty */
	CFG_F_SECONDS = 1u << 2,  /* CFG_DURATION stored in whole seconds */
	CFG_F_HAS = 1u << 3,	  /* set the bool at .has_off when given */
	CFG_F_SECRET = 1u << 5,	  /* strings: errors do not show the value */
};

typedef enum cfg_ref_kind {
	CFG_REF_POOL = 0,
	CFG_REF_MONITOR,
} cfg_ref_kind;

typedef struct cfg_ctx cfg_ctx;
typedef struct cfg_table cfg_table;
typedef struct cfg_key cfg_key;

struct cfg_key {
	const char *name;
	cfg_type type;
	unsigned flags;
	size_t off;	     /* into the struct the table describes */
	size_t size;	     /* CFG_UINT, CFG_SIZE, CFG_ENUM: field size */
	const char *def;     /* default as YAML text; NULL: none (zero) */
	const char *def_doc; /* documented default when computed in a hook */
	int64_t min, max; /* CFG_UINT; CFG_DURATION and CFG_SIZE in ms/bytes */
	double dmin, dmax;
	const char *const *choices; /* CFG_ENUM, or allowed CFG_STRING values */
	size_t nchoices;
	/* CFG_STRING: NULL when s is fine, else what was expected ("a host
	 * name like lb.example.com"). */
	const char *(*check)(const char *s);
	const char *doc_type; /* type name in the docs instead of the default */
	cfg_ref_kind ref;
	const cfg_table *sub;  /* CFG_OBJECT */
	const cfg_key *item;   /* CFG_LIST element; CFG_MAP value */
	const cfg_key *mapkey; /* CFG_MAP: applied to the key (optional) */
	size_t elem_size;      /* CFG_LIST, CFG_MAP */
	size_t count_off;      /* CFG_LIST, CFG_MAP: size_t count */
	size_t key_off;	       /* CFG_MAP: const char * key in the element */
	size_t has_off;	       /* CFG_F_HAS */
	const char *help;
};

struct cfg_table {
	const char *path; /* docs heading, e.g. "pools[].origins[]" */
	const char *what; /* in messages: "unknown key 'x' in origin" */
	const char *help; /* docs paragraph */
	const cfg_key *keys;
	size_t nkeys;
	bool has_pos; /* the struct has a cfg_pos at pos_off */
	size_t pos_off;
	/* Cross-key checks and computed defaults. node is NULL when the
	 * object was absent and only defaults were applied. */
	void (*finish)(cfg_ctx *c, const cfg_node *node, void *base);
};

/* A reference by id, resolved once every object is known. */
typedef struct cfg_ref {
	cfg_ref_kind kind;
	const cfg_node *node;
	const void **target;
	struct cfg_ref *next;
} cfg_ref;

struct cfg_ctx {
	const char *file;	  /* in the snapshot arena */
	struct core_arena *arena; /* the snapshot's */
	struct core_arena *tmp;	  /* YAML tree, references */
	cfg_errs errs;
	cfg_errs warns; /* cfg_warn_checks */
	cfg_snapshot *snap;
	cfg_ref *refs;
};

/* The whole file: the root table applied to the snapshot. */
extern const cfg_table cfg_root_table;

/* cfg_load_string with a hook between parsing and the tables: it gets the
 * document's root (NULL for an empty document) and returns the root to
 * apply (NULL: "configuration is empty"). cfg_json adds the API's objects
 * there. */
typedef cfg_node *(*cfg_root_hook)(cfg_ctx *c, cfg_node *root, void *arg);
int cfg_load_hooked(const char *name, const char *yaml, size_t len,
		    cfg_root_hook hook, void *arg, cfg_snapshot **out,
		    cfg_diag *diag);

void cfg_error(cfg_ctx *c, const cfg_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Apply t to mapping node (NULL: defaults only) at base. */
void cfg_apply_table(cfg_ctx *c, const cfg_table *t, const cfg_node *node,
		     void *base);
char *cfg_strdup(cfg_ctx *c, const char *s);
cfg_pos cfg_pos_of(const cfg_ctx *c, const cfg_node *n);

/* "500ms", "5s", "1m", "2h": the largest unit that is exact. */
void cfg_fmt_duration(uint64_t ms, char *buf, size_t size);
/* "16384", "64k", "10M", "1G": likewise for byte counts. */
void cfg_fmt_size(uint64_t bytes, char *buf, size_t size);

/* Every key of t, for tools that walk the tables (docs, self-test). */
typedef void (*cfg_table_visit)(const cfg_table *t, void *arg);
/* Visit t and every table below it, depth first, each once. */
void cfg_tables_walk(const cfg_table *t, cfg_table_visit fn, void *arg);

#endif
