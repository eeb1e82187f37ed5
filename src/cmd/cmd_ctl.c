/* cmd_ctl.c - `meridian ctl`: the operator's CLI over the admin listener.
 *
 * For now: `meridian ctl health` prints the health table of every pool and
 * origin (state, reason, RTT, since) from GET /status, or its JSON with
 * --json. The server is --server URL, else $MERIDIAN_SERVER, else
 * http://127.0.0.1:9090. Exit status: 0 ok, 1 the server answered an error
 * or could not be reached, 2 usage. The full CRUD commands arrive with the
 * control-plane API.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"

static void usage(FILE *f)
{
	fputs("usage: meridian ctl [--server URL] health [--json]\n"
	      "  --server URL   admin listener (default $MERIDIAN_SERVER or "
	      "http://127.0.0.1:9090)\n"
	      "  --json         print the JSON document instead of the table\n",
	      f);
}

static size_t write_out(char *p, size_t size, size_t n, void *arg)
{
	return fwrite(p, size, n, arg);
}

static int get(const char *server, const char *path)
{
	char url[1024];
	size_t sl = strlen(server);
	while (sl > 0 && server[sl - 1] == '/')
		sl--;
	if (snprintf(url, sizeof(url), "%.*s%s", (int)sl, server, path) >=
	    (int)sizeof(url)) {
		fputs("meridian ctl: server URL too long\n", stderr);
		return 2;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		fputs("meridian ctl: cannot initialise libcurl\n", stderr);
		return 1;
	}
	CURL *c = curl_easy_init();
	int rc = 1;
	if (!c)
		goto out;
	char err[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_out);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, stdout);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	CURLcode res = curl_easy_perform(c);
	if (res != CURLE_OK) {
		fprintf(stderr, "meridian ctl: %s: %s\n", url,
			err[0] ? err : curl_easy_strerror(res));
		goto out;
	}
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		fprintf(stderr, "meridian ctl: %s: HTTP %ld\n", url, status);
		goto out;
	}
	rc = 0;
out:
	if (c)
		curl_easy_cleanup(c);
	curl_global_cleanup();
	return rc;
}

int cmd_ctl(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"server", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *server = getenv("MERIDIAN_SERVER");
	bool json = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			server = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!server || !*server)
		server = "http://127.0.0.1:9090";
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	const char *what = argv[optind++];
	/* Options may also follow the command. */
	while ((c = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
		if (c == 's')
			server = optarg;
		else if (c == 'j')
			json = true;
		else {
			usage(c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	if (strcmp(what, "health") != 0 || optind != argc) {
		fprintf(stderr, "meridian ctl: unknown command '%s'\n", what);
		usage(stderr);
		return 2;
	}
	return get(server, json ? "/status?format=json" : "/status");
}
