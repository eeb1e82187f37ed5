/* cfg_yaml.h - a YAML document as a tree of nodes with source positions.
 *
 * libyaml's events become a small tree (scalars, lists, mappings) in a
 * scratch arena; every node keeps the 1-based line and column where it
 * starts, which is what every configuration error points at. Values (not
 * keys) have ${VAR} expanded here, once. Aliases share the anchored node.
 */
#ifndef MERIDIAN_CFG_YAML_H
#define MERIDIAN_CFG_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cfg_diag.h"

struct core_arena;

/* Nesting deeper than this is refused (the builder keeps a fixed stack). */
#define CFG_YAML_MAX_DEPTH 64
/* Nodes after alias expansion; stops "billion laughs" documents. */
#define CFG_YAML_MAX_NODES 1000000

typedef enum cfg_node_kind {
	CFG_NODE_SCALAR = 0,
	CFG_NODE_SEQ,
	CFG_NODE_MAP,
} cfg_node_kind;

typedef struct cfg_node {
	cfg_node_kind kind;
	uint32_t line, col; /* 1-based; 0 for synthetic nodes (defaults) */
	/* A plain ~, null, Null, NULL or empty scalar: "no value". */
	bool is_null;
	/* A scalar written as a string: quoted or tagged in YAML, a string in
	 * JSON (not a number, boolean or plain word). */
	bool quoted;
	/* A plain YAML scalar on one line whose text is the source's byte
	 * for byte (no ${VAR}): a column plus an offset into str is the
	 * source column of that character. */
	bool verbatim;
	/* Already reported (unset ${VAR}, unknown alias): skipped by the
	 * loader so one mistake gives one error. */
	bool bad;
	const char *str; /* scalar text, NUL-terminated, ${VAR} expanded */
	size_t len;
	struct cfg_node **keys;	 /* CFG_NODE_MAP: scalar keys */
	struct cfg_node **items; /* CFG_NODE_SEQ items, CFG_NODE_MAP values */
	size_t n;		 /* items (and keys) */
	size_t weight;		 /* nodes in this subtree, aliases expanded */
	/* Nodes built from an API object (cfg_json.c) have no position;
	 * errors at them read "<path>: <message>". path is where the value
	 * sits, "pools[gcp].origins[0].weight"; key is the mapping key it is
	 * under ("weight"; for list items the list's key), which a message
	 * may start with and which is then not repeated. NULL for YAML. */
	const char *path;
	const char *key;
} cfg_node;

/* Parse buf into a tree allocated from a. Errors (syntax, duplicate keys,
 * unknown aliases, ${VAR}) go to e. Returns the root, or NULL when the
 * document is empty or cannot be parsed (e tells which). */
cfg_node *cfg_yaml_parse(struct core_arena *a, const char *buf, size_t len,
			 cfg_errs *e);

/* The value of key in a mapping, or NULL. */
const cfg_node *cfg_node_get(const cfg_node *map, const char *key);
/* The key node of key in a mapping (for errors about the key), or NULL. */
const cfg_node *cfg_node_key(const cfg_node *map, const char *key);
/* "a mapping", "a list", "a string", "null": for "expected X, got Y". */
const char *cfg_node_kind_name(const cfg_node *n);

#endif
