/* clu_edge.h - cluster mode's glue with the edge (SPEC §4.9): the start-up
 * sync, the API's transactions, and the cluster thread (watch, lease,
 * health reports). See docs/ARCHITECTURE.md, "Cluster mode".
 *
 * Locking: the object mirror and the store change only under the
 * edge_ctl's lock: clu_edge_commit and clu_edge_object_rev are called
 * with it held (edge_ctl_change, the API's reads), and the cluster thread
 * takes it to apply the watch's object changes. The peers' nodes and
 * reports have a mutex of their own.
 */
#ifndef MERIDIAN_CLU_EDGE_H
#define MERIDIAN_CLU_EDGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cfg_model.h"
#include "store/store.h"

struct edge_ctl;
typedef struct clu_edge clu_edge;

/* What clu_edge_errors counts by operation. */
typedef enum clu_op_kind {
	CLU_OP_RANGE = 0,
	CLU_OP_TXN,
	CLU_OP_WATCH,
	CLU_OP_LEASE,
	CLU_OP_PUBLISH,
	CLU_NOPS,
} clu_op_kind;
const char *clu_op_name(clu_op_kind k);

typedef struct clu_stats {
	bool enabled, connected;
	uint64_t nodes; /* live nodes seen (this one included) */
	uint64_t changes_applied;
	uint64_t errors[CLU_NOPS];
} clu_stats;

/* Start-up, before the first build (file_cfg->edge.cluster set): claim
 * the node's name, read the cluster's objects into st. 0 with *out;
 * -EEXIST when a live node has this edge's name, or -EINVAL (bad name),
 * with err set. etcd unreachable is not an error: a warning is logged and
 * st (the objects last known) is used; the thread connects later. */
int clu_edge_open(const cfg_snapshot *file_cfg, store *st, clu_edge **out,
		  char *err, size_t errlen);
/* Start the cluster thread (once the edge runs). 0 or -errno. */
int clu_edge_start(clu_edge *cl, struct edge_ctl *ctl);
/* Stop the thread and revoke the lease (the node's keys go at once). */
void clu_edge_stop(clu_edge *cl);
void clu_edge_close(clu_edge *cl);

/* Under the ctl lock: commit ops (validated) to etcd in one transaction,
 * then to the store. 0 (the ops' timestamps set); -ENOTCONN or -EIO:
 * etcd unreachable (err says); -EAGAIN: another edge changed a key the
 * validation read (mirror and store are fresh again: validate again);
 * -ESTALE: an op's base_rev is no longer the object's (the API must merge
 * its PATCH again). */
int clu_edge_commit(clu_edge *cl, store *st, store_op *ops, size_t n, char *err,
		    size_t errlen);
/* Under the ctl lock: the object's mod_revision as known (0: unknown). */
int64_t clu_edge_object_rev(clu_edge *cl, store_kind k, const char *id);

void clu_edge_stats(clu_edge *cl, clu_stats *st);
/* The live nodes: [{name, region, version, started, self}]. */
json_t *clu_edge_nodes(clu_edge *cl);
/* Add every other live node's view of pool_id to pops (name → {healthy,
 * origins: [...]}). */
void clu_edge_pool_health(clu_edge *cl, const char *pool_id, json_t *pops);

#endif
