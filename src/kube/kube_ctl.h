/* kube_ctl.h - the ingress controller thread: lists and watches Ingresses,
 * Services and EndpointSlices of one namespace, rebuilds the connector's
 * rules on every change (debounced) and publishes them through tun_live,
 * and writes the Ingresses' status. See docs/ARCHITECTURE.md "Ingress
 * controller".
 */
#ifndef MERIDIAN_KUBE_CTL_H
#define MERIDIAN_KUBE_CTL_H

#include "kube/kube_api.h"
#include "tunnel/tun_connector.h"

typedef struct kube_ctl_opts {
	kube_api *api; /* owned by the caller, outlives the controller */
	const char *ns;
	const char *ingress_class;
	bool without_class;	     /* Ingresses with no class are ours too */
	const char *status_hostname; /* status: hostname H, else */
	const char *status_ip;	     /* ip */
	tun_live *live;
} kube_ctl_opts;

typedef struct kube_ctl kube_ctl;

/* Start the thread. NULL when it cannot. */
kube_ctl *kube_ctl_start(const kube_ctl_opts *o);
/* Stop it (any watch cut), join and free. */
void kube_ctl_stop(kube_ctl *k);

#endif
