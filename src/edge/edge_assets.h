/* edge_assets.h - the dashboard's files (src/edge/dashboard/), embedded
 * at build time by scripts/embed_assets.py and served by the admin
 * listener (edge_admin.c). */
#ifndef MERIDIAN_EDGE_ASSETS_H
#define MERIDIAN_EDGE_ASSETS_H

#include <stddef.h>

typedef struct edge_asset {
	const char *path; /* "/dashboard/app.js" */
	const char *type; /* Content-Type */
	const unsigned char *data;
	size_t len;
} edge_asset;

/* Ends with an entry whose path is NULL. */
extern const edge_asset edge_assets[];

#endif
