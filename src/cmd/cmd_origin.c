/* cmd_origin.c - `meridian origin`: run the demo/test origin server.
 *
 *   meridian origin --listen 127.0.0.1:PORT --name NAME [--cloud CLOUD]
 *                   [--threads N]
 *
 * After binding it prints "listening on HOST:PORT" (the real port when PORT
 * is 0) and runs until SIGTERM or SIGINT; it then exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "demo/demo_origin.h"

static void origin_usage(FILE *f)
{
	fputs("usage: meridian origin --listen ADDR:PORT --name NAME "
	      "[--cloud CLOUD] [--threads N]\n"
	      "  ADDR:PORT  e.g. 127.0.0.1:9001 or [::1]:0 (0: ephemeral)\n"
	      "  --cloud    cloud label in the demo answer (default: local)\n"
	      "  --threads  event loops (default: 1)\n",
	      f);
}

int cmd_origin(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"name", required_argument, NULL, 'n'},
	    {"cloud", required_argument, NULL, 'c'},
	    {"threads", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *listen = NULL, *name = "origin", *cloud = "local";
	long threads = 1;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "l:n:c:t:h", opts, NULL)) != -1) {
		char *end;
		switch (opt) {
		case 'l':
			listen = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'c':
			cloud = optarg;
			break;
		case 't':
			threads = strtol(optarg, &end, 10);
			if (*end || threads < 1 || threads > 64) {
				fprintf(stderr, "meridian origin: --threads "
						"wants 1..64\n");
				return 2;
			}
			break;
		case 'h':
			origin_usage(stdout);
			return 0;
		default:
			origin_usage(stderr);
			return 2;
		}
	}
	if (!listen || optind != argc) {
		origin_usage(stderr);
		return 2;
	}

	/* Block the stop signals before any thread starts, so they all
	 * inherit the mask and only sigwait below sees them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	demo_origin *o;
	int err = demo_origin_start_n(listen, cloud, name, (int)threads, &o);
	if (err < 0) {
		fprintf(stderr, "meridian origin: cannot listen on %s: %s\n",
			listen, strerror(-err));
		return 1;
	}
	const char *colon = strrchr(listen, ':');
	printf("listening on %.*s:%u\n", (int)(colon - listen), listen,
	       (unsigned)demo_origin_port(o));
	fflush(stdout);

	int sig = 0;
	while (sigwait(&set, &sig) != 0)
		;
	demo_origin_stop(o);
	return 0;
}
