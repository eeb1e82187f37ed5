/* edge_worker.h - worker life cycle, used by edge_main.c. */
#ifndef MERIDIAN_EDGE_WORKER_H
#define MERIDIAN_EDGE_WORKER_H

#include "edge/edge.h"

/* Set up the loop, buffers and listeners (on the calling thread, so bind
 * errors stop start-up). Returns 0 or -errno. */
int edge_worker_init(edge_worker *w, edge *e, uint32_t id);
void edge_worker_destroy(edge_worker *w);
void *edge_worker_main(void *arg);
/* Make the worker look at the edge's flags (thread-safe). */
void edge_worker_wake(edge_worker *w);

#endif
