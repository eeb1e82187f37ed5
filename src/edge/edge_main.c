/* edge_main.c - start the workers, wait for signals, drain, stop. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "config/cfg_load.h"
#include "config/cfg_resolve.h"
#include "core/core_log.h"
#include "core/core_sock.h"
#include "core/core_util.h"
#include "dns/dns_rrl.h"
#include "edge/edge.h"
#include "sec/sec_conns.h"
#include "tunnel/tun_edge.h"
#include "edge/edge_admin.h"
#include "edge/edge_alog.h"
#include "cluster/clu_edge.h"
#include "edge/edge_ctl.h"
#include "edge/edge_resolve.h"
#include "edge/edge_stats.h"
#include "edge/edge_health.h"
#include "edge/edge_worker.h"
#include "lb/lb_affinity.h"

static uint32_t buffer_size(const cfg_snapshot *cfg, bool with_waf)
{
	/* The client buffer must hold a maximal head plus one byte (to see
	 * it overflow) and the rewritten head our additions; at start-up,
	 * also the request body the managed rules inspect (held in it; a
	 * reload that wants more inspects what fits). */
	const cfg_waf_managed *m = &cfg->waf.managed;
	uint32_t need = cfg->edge.limits.max_header_bytes + 4096;
	if (with_waf && m->enabled)
		need += (uint32_t)m->body_limit;
	uint32_t size = 16384;
	while (size < need)
		size *= 2;
	return size;
}

static uint32_t worker_count(const cfg_snapshot *cfg)
{
	if (cfg->edge.workers)
		return cfg->edge.workers;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (uint32_t)n : 1;
}

static bool same_addrs(const cfg_addr *a, size_t na, const cfg_addr *b,
		       size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].len != b[i].len ||
		    memcmp(&a[i].ss, &b[i].ss, a[i].len))
			return false;
	return true;
}

/* What a running edge cannot change: its sockets, threads and buffers. */
static const char *needs_restart(const edge *e, const cfg_snapshot *old,
				 const cfg_snapshot *cfg)
{
	const cfg_edge *a = &old->edge, *b = &cfg->edge;
	if (!same_addrs(a->listen_http, a->nlisten_http, b->listen_http,
			b->nlisten_http))
		return "edge.listen.http";
	if (!same_addrs(a->listen_https, a->nlisten_https, b->listen_https,
			b->nlisten_https))
		return "edge.listen.https";
	if (!same_addrs(a->listen_dns, a->nlisten_dns, b->listen_dns,
			b->nlisten_dns))
		return "edge.listen.dns";
	if (!same_addrs(a->listen_tunnel, a->nlisten_tunnel, b->listen_tunnel,
			b->nlisten_tunnel))
		return "edge.listen.tunnel";
	if (a->has_admin != b->has_admin ||
	    (a->has_admin &&
	     !same_addrs(&a->listen_admin, 1, &b->listen_admin, 1)))
		return "edge.listen.admin";
	if (a->listen_proxy_protocol != b->listen_proxy_protocol)
		return "edge.listen.proxy_protocol";
	if (worker_count(cfg) != e->nworkers)
		return "edge.workers";
	const char *ap = a->access_log.path, *bp = b->access_log.path;
	if ((!ap != !bp) || (ap && strcmp(ap, bp)) ||
	    a->access_log.buffer != b->access_log.buffer)
		return "edge.access_log";
	/* The store holds the API's objects: writing them to another file
	 * than the one the edge read them from would lose them. */
	const char *as = a->store, *bs = b->store;
	if ((!as != !bs) || (as && strcmp(as, bs)))
		return "edge.store";
	/* The cluster thread's endpoints, keys and lease (and the node's
	 * name in it) are set up once, at start. */
	const cfg_cluster *ac = &a->cluster, *bc = &b->cluster;
	bool same = ac->netcd == bc->netcd && !strcmp(ac->prefix, bc->prefix) &&
		    ac->lease_ttl_ms == bc->lease_ttl_ms;
	for (size_t i = 0; same && i < ac->netcd; i++)
		same = !strcmp(ac->etcd[i], bc->etcd[i]);
	if (!same || (ac->netcd && strcmp(a->name, b->name)))
		return "edge.cluster";
	if (a->limits.dns_receive_buffer != b->limits.dns_receive_buffer)
		return "edge.limits.dns_receive_buffer";
	if (buffer_size(cfg, false) > e->buf_size)
		return "edge.limits.max_header_bytes (a larger buffer)";
	return NULL;
}

const edge_snapshot *edge_acquire(edge *e)
{
	pthread_mutex_lock(&e->swap_lock);
	edge_snapshot *s = edge_current(e);
	edge_snapshot_ref(s);
	pthread_mutex_unlock(&e->swap_lock);
	return s;
}

bool edge_api_unguarded(const cfg_snapshot *cfg)
{
	const char *env = getenv("MERIDIAN_API_TOKEN");
	return cfg->edge.has_admin &&
	       !core_sock_is_loopback(&cfg->edge.listen_admin.ss) &&
	       cfg->api.ntokens == 0 && !(env && *env);
}

edge_snapshot *edge_swap_prepare(edge *e, cfg_snapshot *cfg, bool keep_certs,
				 char *err, size_t errlen)
{
	/* Swaps are serialised by the caller (edge_ctl's lock): the current
	 * snapshot cannot change under us. */
	const edge_snapshot *old = edge_current(e);
	const char *what = needs_restart(e, old->cfg, cfg);
	if (what) {
		snprintf(
		    err, errlen,
		    "%s changed: restart meridian to apply it (the running "
		    "config stays)",
		    what);
		cfg_snapshot_free(cfg);
		return NULL;
	}
	if (edge_api_unguarded(cfg)) {
		snprintf(
		    err, errlen,
		    "api.tokens: the admin listener %s is not loopback, so "
		    "the API needs tokens (the running config stays)",
		    cfg->edge.listen_admin.text);
		cfg_snapshot_free(cfg);
		return NULL;
	}
	edge_snapshot *next = edge_snapshot_new(
	    cfg, old, keep_certs, e->buf_size, e->nworkers, err, errlen);
	if (!next) {
		cfg_snapshot_free(cfg);
		return NULL;
	}
	next->generation = old->generation + 1;
	return next;
}

void edge_swap_publish(edge *e, edge_snapshot *next)
{
	pthread_mutex_lock(&e->swap_lock);
	edge_snapshot *old = edge_current(e);
	/* Session affinity's drain_duration: when each origin and pool of
	 * next was disabled (stamped now, or carried while it stays so). */
	lb_affinity_drain_carry(old->cfg, old->ostates, old->pstates, next->cfg,
				next->ostates, next->pstates, core_now_ms());
	int hst = edge_health_swap(e->health, old, next);
	/* Counters go on from the old snapshot's totals (Prometheus counters
	 * never go back); what the old one still counts after this is
	 * carried when its last reference goes (edge_snapshot.c). */
	pthread_mutex_lock(&e->carry_lock);
	edge_stats_carry(old, next);
	old->retire_into = e;
	atomic_store_explicit(&e->snap, next, memory_order_release);
	pthread_mutex_unlock(&e->carry_lock);
	/* Each worker gets its own reference, handed over through its
	 * pending slot: a worker never has to take one on a snapshot that a
	 * later swap may already have dropped. */
	for (uint32_t i = 0; i < e->nworkers; i++) {
		edge_snapshot_ref(next);
		edge_snapshot *prev = atomic_exchange_explicit(
		    &e->workers[i].pending, next, memory_order_acq_rel);
		edge_snapshot_unref(prev); /* never adopted: superseded */
		edge_worker_wake(&e->workers[i]);
	}
	/* The workers and in-flight requests hold their own references: the
	 * old snapshot goes when the last request on it does. */
	edge_snapshot_unref(old);
	pthread_mutex_unlock(&e->swap_lock);
	if (hst < 0)
		log_error("health checks could not restart after the change");
}

int edge_swap(edge *e, cfg_snapshot *cfg, bool keep_certs, char *err,
	      size_t errlen)
{
	edge_snapshot *next =
	    edge_swap_prepare(e, cfg, keep_certs, err, errlen);
	if (!next)
		return -1;
	edge_swap_publish(e, next);
	return 0;
}

/* How often a health checker that could not restart is tried again. */
#define HEALTH_RETRY_MS 2000

/* True (logged) when another process holds one of the workers' listen
 * addresses. They bind with SO_REUSEPORT, so a second edge started on the
 * same addresses (an old one still running, another config) would
 * otherwise share them silently: the kernel would give it part of the
 * connections and DNS queries. */
static bool listeners_taken(const cfg_edge *ce)
{
	struct {
		const cfg_addr *v;
		size_t n;
		const char *what;
		bool udp;
	} sets[] = {
	    {ce->listen_http, ce->nlisten_http, "http://", false},
	    {ce->listen_https, ce->nlisten_https, "https://", false},
	    {ce->listen_dns, ce->nlisten_dns, "dns (tcp) ", false},
	    {ce->listen_dns, ce->nlisten_dns, "dns (udp) ", true},
	};
	for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++)
		for (size_t i = 0; i < sets[s].n; i++) {
			const cfg_addr *a = &sets[s].v[i];
			int rc = core_sock_probe_free(
			    (const struct sockaddr *)&a->ss, a->len,
			    sets[s].udp ? SOCK_DGRAM : SOCK_STREAM);
			if (rc == 0)
				continue;
			if (rc == -EADDRINUSE)
				log_error("cannot listen on %s%s: the address "
					  "is in use by another process (is "
					  "another meridian edge running?)",
					  sets[s].what, a->text);
			else
				log_error("cannot listen on %s%s: %s",
					  sets[s].what, a->text, strerror(-rc));
			return true;
		}
	return false;
}

/* The drain: the workers finish their connections, up to
 * edge.timeouts.drain. A second SIGINT meanwhile (Ctrl-C again, as with
 * Caddy and most servers run in a terminal) cuts it short: every
 * connection closes now. A second SIGTERM does not: supervisors resend
 * it, and they have SIGKILL for impatience. Other signals are read and
 * dropped, so none stays pending (see the end of edge_run). Returns with
 * every worker joined. */
static void drain_wait(edge *e, int sfd, uint32_t started)
{
	bool cut = false;
	for (uint32_t i = 0; i < started;) {
		/* Each worker in turn, 50 ms at a time: that is how late a
		 * second signal is read. */
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += 50 * 1000000L;
		if (t.tv_nsec >= 1000000000L) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000L;
		}
		if (pthread_timedjoin_np(e->workers[i].thread, NULL, &t) == 0) {
			i++;
			continue;
		}
		struct pollfd p = {.fd = sfd, .events = POLLIN};
		struct signalfd_siginfo si;
		if (sfd < 0 || poll(&p, 1, 0) <= 0 ||
		    read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGINT && !cut) {
			log_warn("SIGINT again: closing every connection now");
			cut = true;
			atomic_store(&e->drain_now, true);
			for (uint32_t w = 0; w < started; w++)
				edge_worker_wake(&e->workers[w]);
		} else {
			log_info("signal %u during the drain: ignored",
				 si.ssi_signo);
		}
	}
}

void edge_signals_block(sigset_t *sigs)
{
	sigemptyset(sigs);
	sigaddset(sigs, SIGTERM);
	sigaddset(sigs, SIGINT);
	sigaddset(sigs, SIGHUP);
	sigaddset(sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, sigs, NULL);
}

int edge_run(edge_ctl *ctl, cfg_snapshot *cfg, void (*ready_cb)(void *),
	     void *arg)
{
	int status = 1;
	uint32_t started = 0, ninit = 0;
	edge_health *health = NULL;
	edge_admin *admin = NULL;
	edge_resolve *resolver = NULL;
	int sfd = -1;
	sigset_t sigs;

	signal(SIGPIPE, SIG_IGN);
	/* Blocked here, inherited by the workers: only signalfd sees them. */
	edge_signals_block(&sigs);

	edge *e = xcalloc(1, sizeof(*e));
	pthread_mutex_init(&e->swap_lock, NULL);
	pthread_mutex_init(&e->carry_lock, NULL);
	e->buf_size = buffer_size(cfg, true);
	e->ctl = ctl;
	ctl->e = e;
	char errbuf[256] = "";
	e->nworkers = worker_count(cfg);
	edge_snapshot *snap = edge_snapshot_new(
	    cfg, NULL, false, e->buf_size, e->nworkers, errbuf, sizeof(errbuf));
	if (!snap) {
		log_error("%s", errbuf);
		edge_ctl_close(ctl);
		pthread_mutex_destroy(&e->swap_lock);
		pthread_mutex_destroy(&e->carry_lock);
		free(e);
		cfg_snapshot_free(cfg);
		return 1;
	}
	atomic_init(&e->snap, snap);
	/* From here on no thread writes stderr itself: a stalled reader
	 * (a full pipe) must not block a worker (core_log.h). */
	if (core_log_start() < 0)
		log_warn("log writer thread not started: threads log "
			 "directly");
	if (edge_alog_start(&cfg->edge.access_log, e->nworkers, &e->alog,
			    errbuf, sizeof(errbuf)) < 0) {
		log_error("%s", errbuf);
		goto out;
	}
	/* The DNS RRL table (2^16 buckets, 512 KiB of zero pages until
	 * used) and the per-client connection counts, keyed at random so
	 * nobody can aim hash collisions. */
	uint8_t key[16];
	int kerr = core_random_key(key, sizeof(key));
	if (kerr < 0) {
		log_error("getrandom: %s", strerror(-kerr));
		goto out;
	}
	if (cfg->edge.nlisten_dns)
		e->dns_rrl = dns_rrl_new(1u << 16, key);
	kerr = core_random_key(key, sizeof(key));
	if (kerr < 0) {
		log_error("getrandom: %s", strerror(-kerr));
		goto out;
	}
	e->conns = sec_conns_new(cfg->edge.limits.max_connections, key);
	if (listeners_taken(&cfg->edge))
		goto out;
	e->workers = xcalloc(e->nworkers, sizeof(*e->workers));
	for (uint32_t i = 0; i < e->nworkers; i++) {
		int err = edge_worker_init(&e->workers[i], e, i);
		ninit++;
		if (err < 0) {
			if (err != -EADDRINUSE && err != -EACCES &&
			    err != -EADDRNOTAVAIL)
				log_error("worker %u: %s", i, strerror(-err));
			goto out;
		}
	}
	if (tun_edge_start(e, cfg, &e->tunnels, errbuf, sizeof(errbuf)) < 0) {
		log_error("%s", errbuf);
		goto out;
	}
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		goto out;
	}
	health = edge_health_start(snap, ctl->events);
	if (!health)
		goto out;
	e->health = health;
	/* The admin thread can change the config: only once the health
	 * thread it swaps exists. */
	if (cfg->edge.has_admin) {
		admin = edge_admin_start(e);
		if (!admin)
			goto out;
	}
	/* It rebuilds the config too: also only once the health thread
	 * exists. */
	resolver = edge_resolve_start(e, ctl);
	/* Cluster mode: it rebuilds and reads the health state too. */
	if (ctl->clu && clu_edge_start(ctl->clu, ctl) < 0) {
		log_error("cannot start the cluster thread");
		goto out;
	}
	for (; started < e->nworkers; started++) {
		int err =
		    pthread_create(&e->workers[started].thread, NULL,
				   edge_worker_main, &e->workers[started]);
		if (err) {
			log_error("cannot start worker: %s", strerror(err));
			atomic_store(&e->draining, true);
			for (uint32_t i = 0; i < started; i++)
				edge_worker_wake(&e->workers[i]);
			goto join;
		}
	}
	for (size_t i = 0; i < cfg->edge.nlisten_http; i++)
		log_info("edge %s: listening on http://%s (%u workers)",
			 cfg->edge.name, cfg->edge.listen_http[i].text,
			 e->nworkers);
	for (size_t i = 0; i < cfg->edge.nlisten_https; i++)
		log_info("edge %s: listening on https://%s (%u workers)",
			 cfg->edge.name, cfg->edge.listen_https[i].text,
			 e->nworkers);
	for (size_t i = 0; i < cfg->edge.nlisten_dns; i++) /* issue 4 */
		log_info("edge %s: serving DNS on %s (udp+tcp, %zu zones)",
			 cfg->edge.name, cfg->edge.listen_dns[i].text,
			 dns_zoneset_nzones(snap->zones));
	if (ready_cb)
		ready_cb(arg);

	/* A SIGHUP's reload whose host name lookups are under way (on a
	 * thread of their own: edge_ctl.h), and whether another SIGHUP came
	 * meanwhile (one more reload follows: a storm of them coalesces). */
	edge_reload *reload = NULL;
	int reload_fd = -1;
	bool reload_again = false;
	for (;;) {
		/* While the health checker is down (a config change could not
		 * restart it: descriptors or threads ran out), try again every
		 * HEALTH_RETRY_MS; otherwise sleep until a signal. */
		struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN},
					{.fd = reload_fd, .events = POLLIN}};
		pthread_mutex_lock(&e->swap_lock);
		bool hc_down = !e->health->checker;
		pthread_mutex_unlock(&e->swap_lock);
		int pr =
		    poll(pfd, reload ? 2 : 1, hc_down ? HEALTH_RETRY_MS : -1);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0) {
			pthread_mutex_lock(&e->swap_lock);
			edge_health_retry(e->health, edge_current(e));
			pthread_mutex_unlock(&e->swap_lock);
			continue;
		}
		if (reload && (pfd[1].revents & POLLIN)) {
			edge_ctl_reload_finish(ctl, reload);
			reload = NULL;
			reload_fd = -1;
			if (reload_again) {
				reload_again = false;
				reload = edge_ctl_reload_start(ctl, &reload_fd);
			}
		}
		if (!(pfd[0].revents & POLLIN))
			continue;
		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof(si));
		if (n != sizeof(si)) {
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			log_error("signalfd read failed; stopping");
			break;
		}
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			const edge_snapshot *cur = edge_acquire(e);
			uint32_t drain_ms = cur->cfg->edge.timeouts.drain_ms;
			edge_snapshot_unref(cur);
			log_info("%s: draining (up to %u ms)",
				 si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT",
				 drain_ms);
			break;
		}
		if (si.ssi_signo == SIGHUP) {
			if (reload)
				reload_again = true;
			else
				reload = edge_ctl_reload_start(ctl, &reload_fd);
		} else if (si.ssi_signo == SIGUSR1)
			edge_alog_reopen(e->alog); /* logrotate */
		else
			log_info("signal %u ignored", si.ssi_signo);
	}
	edge_ctl_reload_abandon(reload);
	atomic_store(&e->draining, true);
	for (uint32_t i = 0; i < started; i++)
		edge_worker_wake(&e->workers[i]);
	drain_wait(e, sfd, started);
	started = 0; /* joined */
	status = 0;
join:
	for (uint32_t i = 0; i < started; i++)
		pthread_join(e->workers[i].thread, NULL);
	if (status == 0)
		log_info("drained; bye");
out:
	/* After the workers: their last requests may be on tunnels. */
	tun_edge_stop(e->tunnels);
	/* Before what it rebuilds: the health thread, the snapshots. */
	clu_edge_stop(ctl->clu);
	edge_resolve_stop(resolver);
	edge_admin_stop(admin);
	edge_health_stop(health);
	for (uint32_t i = 0; i < ninit; i++)
		edge_worker_destroy(&e->workers[i]);
	edge_alog_stop(e->alog); /* after the workers: their last lines */
	if (sfd >= 0)
		close(sfd);
	free(e->workers);
	dns_rrl_free(e->dns_rrl);
	sec_conns_free(e->conns);
	/* The workers dropped theirs in edge_worker_destroy: this is the
	 * last reference. */
	edge_snapshot_unref(edge_current(e));
	pthread_mutex_destroy(&e->swap_lock);
	pthread_mutex_destroy(&e->carry_lock);
	free(e);
	edge_ctl_close(ctl);
	cfg_resolve_forget();
	core_log_stop(); /* writes what is queued */
	/* The signals stay blocked: one that came during the drain (a
	 * SIGHUP, a second SIGTERM) is pending, and unblocking it would kill
	 * the process now, before the caller's cleanup (the demo's origins)
	 * and with that signal for its status instead of ours. */
	return status;
}
