/* test_http1_corpus.c - run the HTTP/1 parser over tests/corpus/http1.
 *
 * Every file in good/ must parse completely (each message, its body, and
 * nothing left over) with the framing listed in expect.txt; every file in
 * bad/ must fail with the error listed there. Files use the escaped text
 * format described in tests/corpus/http1/README.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http1_parse.h"

#define CORPUS MERIDIAN_SOURCE_ROOT "/tests/corpus/http1"

static const struct {
	const char *name;
	int code;
} err_names[] = {
    {"BAD_REQUEST_LINE", HTTP1_E_BAD_REQUEST_LINE},
    {"BAD_METHOD", HTTP1_E_BAD_METHOD},
    {"BAD_TARGET", HTTP1_E_BAD_TARGET},
    {"BAD_VERSION", HTTP1_E_BAD_VERSION},
    {"VERSION_UNSUPPORTED", HTTP1_E_VERSION_UNSUPPORTED},
    {"BAD_HEADER_NAME", HTTP1_E_BAD_HEADER_NAME},
    {"BAD_HEADER_VALUE", HTTP1_E_BAD_HEADER_VALUE},
    {"OBS_FOLD", HTTP1_E_OBS_FOLD},
    {"SPACE_BEFORE_COLON", HTTP1_E_SPACE_BEFORE_COLON},
    {"BARE_CR", HTTP1_E_BARE_CR},
    {"BARE_LF", HTTP1_E_BARE_LF},
    {"HEADERS_TOO_LARGE", HTTP1_E_HEADERS_TOO_LARGE},
    {"TOO_MANY_HEADERS", HTTP1_E_TOO_MANY_HEADERS},
    {"URI_TOO_LONG", HTTP1_E_URI_TOO_LONG},
    {"BAD_CONTENT_LENGTH", HTTP1_E_BAD_CONTENT_LENGTH},
    {"CL_AND_TE", HTTP1_E_CL_AND_TE},
    {"BAD_TRANSFER_ENCODING", HTTP1_E_BAD_TRANSFER_ENCODING},
    {"UNSUPPORTED_TRANSFER_CODING", HTTP1_E_UNSUPPORTED_TRANSFER_CODING},
    {"TE_IN_HTTP10", HTTP1_E_TE_IN_HTTP10},
    {"MISSING_HOST", HTTP1_E_MISSING_HOST},
    {"DUPLICATE_HOST", HTTP1_E_DUPLICATE_HOST},
    {"BAD_HOST", HTTP1_E_BAD_HOST},
    {"BAD_STATUS_LINE", HTTP1_E_BAD_STATUS_LINE},
    {"BAD_CHUNK_SIZE", HTTP1_E_BAD_CHUNK_SIZE},
    {"BAD_CHUNK_EXT", HTTP1_E_BAD_CHUNK_EXT},
    {"BAD_CHUNK_CRLF", HTTP1_E_BAD_CHUNK_CRLF},
    {"BAD_TRAILER", HTTP1_E_BAD_TRAILER},
    {"CHUNK_TOO_LARGE", HTTP1_E_CHUNK_TOO_LARGE},
};

static int err_code(const char *name)
{
	for (size_t i = 0; i < sizeof(err_names) / sizeof(err_names[0]); i++)
		if (strcmp(err_names[i].name, name) == 0)
			return err_names[i].code;
	fail_msg("unknown error name %s in expect.txt", name);
	return 0;
}

static const char *err_name(int code)
{
	for (size_t i = 0; i < sizeof(err_names) / sizeof(err_names[0]); i++)
		if (err_names[i].code == code)
			return err_names[i].name;
	return code == 0 ? "INCOMPLETE" : "?";
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The corpus format: real CR and LF bytes are layout and dropped; \r \n \t
 * \\ and \xHH are escapes; anything else after a backslash is an error.
 * out must hold n bytes. Returns the decoded length or -1. */
static long corpus_decode(const char *in, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (c == '\r' || c == '\n')
			continue;
		if (c != '\\') {
			out[o++] = c;
			continue;
		}
		if (++i == n)
			return -1;
		switch (in[i]) {
		case 'r':
			out[o++] = '\r';
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case '\\':
			out[o++] = '\\';
			break;
		case 'x': {
			if (n - i < 3)
				return -1;
			int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);

			if (hi < 0 || lo < 0)
				return -1;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
			break;
		}
		default:
			return -1;
		}
	}
	return (long)o;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");

	if (!f)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	long n = ftell(f);

	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);

	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

static char *load_decoded(const char *rel, size_t *len)
{
	char path[512];
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", CORPUS, rel);
	char *raw = read_file(path, &n);
	char *out = malloc(n + 1);

	assert_non_null(out);
	long dl = corpus_decode(raw, n, out);

	if (dl < 0)
		fail_msg("%s: bad escape", rel);
	free(raw);
	*len = (size_t)dl;
	return out;
}

/* Every proper prefix of a head must be "incomplete" or fail with the same
 * error as the whole: the parser may reject early but never differently. */
static void check_prefixes(const char *rel, const char *buf, size_t len,
			   int full)
{
	static http1_request r;
	size_t upto = full > 0 ? (size_t)full : len;

	for (size_t i = 0; i < upto; i++) {
		int rc = http1_parse_request(buf, i, NULL, &r);

		if (rc != 0 && !(full < 0 && rc == full))
			fail_msg("%s: prefix %zu gives %s, whole gives %s", rel,
				 i, err_name(rc), err_name(full));
	}
}

/* Walk the messages in buf. For good files, check each framing token and
 * that nothing is left; returns the first error (0 when all parsed). */
static int walk(const char *rel, const char *buf, size_t len, char **tokens,
		int ntok)
{
	static http1_request r;
	size_t off = 0;
	int msg = 0;

	while (off < len) {
		int rc = http1_parse_request(buf + off, len - off, NULL, &r);

		if (msg == 0)
			check_prefixes(rel, buf, len, rc);
		if (rc <= 0)
			return rc;
		/* every string points into the input */
		assert_true(r.method.p >= buf + off &&
			    r.method.p + r.method.len <= buf + off + rc);
		assert_true(r.target.p >= buf + off &&
			    r.target.p + r.target.len <= buf + off + rc);
		off += (size_t)rc;
		char got[64];
		uint64_t blen = 0;

		if (r.body == HTTP1_BODY_LENGTH) {
			if (r.content_length > len - off)
				return 0;
			blen = r.content_length;
			off += (size_t)r.content_length;
			snprintf(got, sizeof(got), "length:%llu",
				 (unsigned long long)blen);
		} else if (r.body == HTTP1_BODY_CHUNKED) {
			http1_chunked c = {0};
			bool done = false;
			ssize_t n =
			    http1_chunked_feed(&c, buf + off, len - off, &done);

			if (n < 0)
				return (int)n;
			if (!done)
				return 0;
			off += (size_t)n;
			snprintf(got, sizeof(got), "chunked:%llu",
				 (unsigned long long)c.total);
		} else {
			snprintf(got, sizeof(got), "none");
		}
		if (tokens) {
			if (msg >= ntok)
				fail_msg("%s: more messages than expected",
					 rel);
			if (strcmp(got, tokens[msg]) != 0)
				fail_msg("%s: message %d framing %s, expected "
					 "%s",
					 rel, msg + 1, got, tokens[msg]);
		}
		msg++;
	}
	if (tokens && msg != ntok)
		fail_msg("%s: %d messages, expected %d", rel, msg, ntok);
	return 1;
}

struct entry {
	char file[256];
	char *tok[8];
	int ntok;
	bool seen;
};

static struct entry *load_expect(size_t *n)
{
	size_t len;
	char path[512];

	snprintf(path, sizeof(path), "%s/expect.txt", CORPUS);
	char *txt = read_file(path, &len);
	struct entry *e = calloc(512, sizeof(*e));
	size_t k = 0;

	assert_non_null(e);
	for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
		if (line[0] == '#' || line[0] == '\0')
			continue;
		assert_true(k < 512);
		char *save = NULL, *w = strtok_r(line, " \t", &save);

		snprintf(e[k].file, sizeof(e[k].file), "%s", w);
		while ((w = strtok_r(NULL, " \t", &save)) && e[k].ntok < 8)
			e[k].tok[e[k].ntok++] = strdup(w);
		assert_true(e[k].ntok > 0);
		k++;
	}
	free(txt);
	*n = k;
	return e;
}

static void free_expect(struct entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (int j = 0; j < e[i].ntok; j++)
			free(e[i].tok[j]);
	free(e);
}

static void run_dir(const char *dir, bool good, size_t min_files)
{
	size_t ne, count = 0;
	struct entry *e = load_expect(&ne);
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", CORPUS, dir);
	DIR *d = opendir(path);

	assert_non_null(d);
	for (struct dirent *de; (de = readdir(d));) {
		size_t nl = strlen(de->d_name);

		if (nl < 6 || strcmp(de->d_name + nl - 5, ".http") != 0)
			continue;
		char rel[300];

		snprintf(rel, sizeof(rel), "%s/%s", dir, de->d_name);
		struct entry *x = NULL;

		for (size_t i = 0; i < ne; i++)
			if (strcmp(e[i].file, rel) == 0)
				x = &e[i];
		if (!x)
			fail_msg("%s has no line in expect.txt", rel);
		x->seen = true;

		size_t len;
		char *buf = load_decoded(rel, &len);

		if (good) {
			int rc = walk(rel, buf, len, x->tok, x->ntok);

			if (rc != 1)
				fail_msg("%s: %s (%s)", rel, err_name(rc),
					 http1_err_reason(rc));
		} else {
			int rc = walk(rel, buf, len, NULL, 0);
			int want = err_code(x->tok[0]);

			if (rc != want)
				fail_msg("%s: got %s, expected %s", rel,
					 err_name(rc), x->tok[0]);
		}
		free(buf);
		count++;
	}
	closedir(d);
	for (size_t i = 0; i < ne; i++)
		if (strncmp(e[i].file, dir, strlen(dir)) == 0 && !e[i].seen)
			fail_msg("expect.txt names missing file %s", e[i].file);
	free_expect(e, ne);
	if (count < min_files)
		fail_msg("only %zu files in %s", count, dir);
}

static void test_good(void **state)
{
	(void)state;
	run_dir("good", true, 15);
}

static void test_bad(void **state)
{
	(void)state;
	run_dir("bad", false, 45);
}

static void test_decoder(void **state)
{
	(void)state;
	char out[64];
	const char *in = "a\\r\\n\nb\\t\\\\\\x00\\xfF\r\n";

	assert_int_equal(corpus_decode(in, strlen(in), out), 8);
	assert_memory_equal(out, "a\r\nb\t\\\x00\xff", 8);
	assert_int_equal(corpus_decode("\\q", 2, out), -1);
	assert_int_equal(corpus_decode("\\x4", 3, out), -1);
	assert_int_equal(corpus_decode("\\xg0", 4, out), -1);
	assert_int_equal(corpus_decode("\\", 1, out), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decoder),
	    cmocka_unit_test(test_good),
	    cmocka_unit_test(test_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
