/* kube_obj.h - Kubernetes objects as the ingress controller reads them:
 * JSON (jansson) list bodies and watch events decoded into small structs
 * (an Ingress, a Service, an EndpointSlice reduced to what the mapping
 * reads), and the store of the current objects of one namespace. Pure: no
 * I/O. See docs/ARCHITECTURE.md "Ingress controller".
 *
 * Every object lives in its own arena (freed with it). Decoders never trust
 * the input: wrong types are skipped or make the object invalid with a
 * reason; sizes are capped (KUBE_MAX_*).
 */
#ifndef MERIDIAN_KUBE_OBJ_H
#define MERIDIAN_KUBE_OBJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct core_arena;

/* Objects per kind, over every page of a list: past it, a list is refused
 * (and retried) and a watch event adding one more is logged and left out. */
#define KUBE_MAX_OBJECTS   100000
#define KUBE_MAX_CONTINUE  2048 /* bytes of a list's continue token */
#define KUBE_MAX_RULES	   256	/* per Ingress: rules, and paths per rule */
#define KUBE_MAX_PORTS	   64
#define KUBE_MAX_ENDPOINTS 1024 /* addresses per EndpointSlice */
#define KUBE_MAX_STATUS	   16

typedef enum kube_kind {
	KUBE_INGRESS = 0,
	KUBE_SERVICE,
	KUBE_SLICE,
	KUBE_NKINDS,
} kube_kind;

typedef enum kube_path_type {
	KUBE_PATH_PREFIX = 0,
	KUBE_PATH_EXACT,
	KUBE_PATH_IMPL, /* ImplementationSpecific, or none: a prefix */
} kube_path_type;

typedef struct kube_backend {
	bool set;
	const char *service;  /* NULL: a resource backend (not supported) */
	uint32_t port_number; /* 0: by name */
	const char *port_name;
} kube_backend;

typedef struct kube_path {
	const char *path; /* NULL: none given */
	kube_path_type type;
	kube_backend backend;
} kube_path;

typedef struct kube_rule {
	const char *host; /* NULL: any host */
	kube_path *paths;
	size_t npaths;
} kube_rule;

typedef struct kube_lb {
	const char *hostname, *ip;
} kube_lb;

typedef struct kube_ingress {
	const char *class_name;	 /* spec.ingressClassName */
	const char *class_annot; /* kubernetes.io/ingress.class */
	kube_backend def;	 /* spec.defaultBackend */
	kube_rule *rules;
	size_t nrules;
	kube_lb *status; /* status.loadBalancer.ingress */
	size_t nstatus;
} kube_ingress;

typedef struct kube_port {
	const char *name; /* "" when unnamed */
	uint32_t port;
} kube_port;

typedef struct kube_service {
	kube_port *ports;
	size_t nports;
} kube_service;

typedef struct kube_slice {
	const char *service; /* label kubernetes.io/service-name */
	kube_port *ports;    /* name and target port */
	size_t nports;
	const char **addrs; /* ready endpoints' addresses (IPv4/IPv6) */
	size_t naddrs;
} kube_slice;

typedef struct kube_obj {
	struct core_arena *arena;
	kube_kind kind;
	const char *name;
	const char *rv;	 /* metadata.resourceVersion */
	int64_t created; /* creationTimestamp, seconds since 1970 */
	union {
		kube_ingress ing;
		kube_service svc;
		kube_slice slice;
	} u;
} kube_obj;

typedef enum kube_ev_type {
	KUBE_EV_ADDED = 0,
	KUBE_EV_MODIFIED,
	KUBE_EV_DELETED,
	KUBE_EV_BOOKMARK,
	KUBE_EV_ERROR,
} kube_ev_type;

typedef struct kube_event {
	kube_ev_type type;
	kube_obj *obj;	   /* ADDED/MODIFIED/DELETED; owned by the caller */
	char rv[64];	   /* the object's resourceVersion ("" when none) */
	int code;	   /* ERROR: status.code (410: re-list) */
	char message[256]; /* ERROR: status.message */
	/* ADDED/MODIFIED/DELETED whose object is not usable (the decoder
	 * returned -1): its metadata.name when there is one fit to log
	 * (the object is then left out, as in a list), else "" */
	char name[256];
} kube_event;

typedef struct kube_list {
	kube_obj **items;
	size_t n;
	char rv[64]; /* metadata.resourceVersion of the list */
	char *cont;  /* metadata.continue: the next page's token, or NULL */
} kube_list;

const char *kube_kind_name(kube_kind k); /* "ingresses", "services", ... */

/* Decode one object (a JSON value of kind k). NULL and why when it is not
 * usable (no name, wrong shape). */
struct json_t;
kube_obj *kube_obj_from_json(kube_kind k, const struct json_t *j,
			     const char **why);
kube_obj *kube_obj_decode(kube_kind k, const char *buf, size_t len,
			  const char **why);
void kube_obj_free(kube_obj *o);

/* One watch event (a line of the watch stream). 0, or -1 and why (and
 * ev->type and ev->name when only the object was not usable). */
int kube_event_decode(kube_kind k, const char *buf, size_t len, kube_event *ev,
		      const char **why);
/* A list body. 0, or -1 and why; kube_list_free either way. */
int kube_list_decode(kube_kind k, const char *buf, size_t len, kube_list *out,
		     const char **why);
void kube_list_free(kube_list *l);
/* Moves a page's items to the end of all (the page is left empty; rv and
 * cont are the page's). -1 and why past KUBE_MAX_OBJECTS items. */
int kube_list_append(kube_list *all, kube_list *page, const char **why);

/* "2026-11-27T15:23:25Z" -> seconds since 1970, or -1. */
int64_t kube_parse_time(const char *s);

/* The current objects of a namespace, per kind, sorted by name. */
typedef struct kube_store {
	kube_obj **objs[KUBE_NKINDS];
	size_t n[KUBE_NKINDS], cap[KUBE_NKINDS];
} kube_store;

/* Insert or replace by name (the store owns o). false when o was a new
 * object past KUBE_MAX_OBJECTS of its kind: it is freed, not kept. */
bool kube_store_put(kube_store *s, kube_obj *o);
/* Remove by name; true when it was there. */
bool kube_store_del(kube_store *s, kube_kind k, const char *name);
/* Replace every object of kind k by the list's (taken from l). */
void kube_store_replace(kube_store *s, kube_kind k, kube_list *l);
const kube_obj *kube_store_get(const kube_store *s, kube_kind k,
			       const char *name);
void kube_store_clear(kube_store *s);

#endif
