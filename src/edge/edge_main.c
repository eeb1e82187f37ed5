/* edge_main.c - start the workers, wait for signals, drain, stop. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "config/cfg_load.h"
#include "core/core_log.h"
#include "core/core_util.h"
#include "edge/edge.h"
#include "edge/edge_admin.h"
#include "edge/edge_health.h"
#include "edge/edge_worker.h"

static uint32_t buffer_size(const cfg_snapshot *cfg)
{
	/* The client buffer must hold a maximal head plus one byte (to see
	 * it overflow) and the rewritten head our additions. */
	uint32_t need = cfg->edge.limits.max_header_bytes + 4096;
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

int edge_run(cfg_snapshot *cfg, void (*ready_cb)(void *), void *arg)
{
	int status = 1;
	uint32_t started = 0, ninit = 0;
	edge_health *health = NULL;
	edge_admin *admin = NULL;
	int sfd = -1;
	sigset_t sigs;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	/* Blocked here, inherited by the workers: only signalfd sees them. */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	edge *e = xcalloc(1, sizeof(*e));
	e->buf_size = buffer_size(cfg);
	char errbuf[256] = "";
	edge_snapshot *snap =
	    edge_snapshot_new(cfg, e->buf_size, errbuf, sizeof(errbuf));
	if (!snap) {
		log_error("%s", errbuf);
		free(e);
		cfg_snapshot_free(cfg);
		pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
		return 1;
	}
	e->snap = snap;
	e->nworkers = worker_count(cfg);
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
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		goto out;
	}
	if (cfg->edge.has_admin) {
		admin = edge_admin_start(snap);
		if (!admin)
			goto out;
	}
	health = edge_health_start(snap);
	if (!health)
		goto out;
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
	for (size_t i = 0; i < cfg->edge.nlisten_dns; i++) /* issue 4 */
		log_info("edge %s: serving DNS on %s (udp+tcp, %zu zones)",
			 cfg->edge.name, cfg->edge.listen_dns[i].text,
			 dns_zoneset_nzones(snap->zones));
	if (ready_cb)
		ready_cb(arg);

	for (;;) {
		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof(si));
		if (n != sizeof(si)) {
			if (n < 0 && errno == EINTR)
				continue;
			log_error("signalfd read failed; stopping");
			break;
		}
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			log_info("%s: draining (up to %u ms)",
				 si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT",
				 cfg->edge.timeouts.drain_ms);
			break;
		}
		log_info("signal %u ignored (reload arrives with the control "
			 "plane)",
			 si.ssi_signo);
	}
	atomic_store(&e->draining, true);
	for (uint32_t i = 0; i < started; i++)
		edge_worker_wake(&e->workers[i]);
	status = 0;
join:
	for (uint32_t i = 0; i < started; i++)
		pthread_join(e->workers[i].thread, NULL);
	if (status == 0)
		log_info("drained; bye");
out:
	edge_admin_stop(admin);
	edge_health_stop(health);
	for (uint32_t i = 0; i < ninit; i++)
		edge_worker_destroy(&e->workers[i]);
	if (sfd >= 0)
		close(sfd);
	free(e->workers);
	free(e);
	edge_snapshot_free(snap);
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	return status;
}
