/* Unit tests for edge_alog (the JSON access log): escaping (quotes,
 * backslashes, control characters, valid and invalid UTF-8, never a cut
 * escape), bounded strings, numbers and times; and the per-worker rings
 * through the writer thread: many lines from two producer threads arrive
 * whole, each counted as written or dropped, and the file is reopened. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "edge/edge_alog.h"

static void esc(const char *in, size_t n, size_t cap, const char *want,
		size_t want_used)
{
	char out[256];
	size_t used = 0;
	size_t len = edge_alog_escape(out, cap, in, n, &used);
	out[len] = '\0';
	assert_string_equal(out, want);
	assert_int_equal(used, want_used);
}

static void test_escape(void **state)
{
	esc("plain /a?b=c", 12, 100, "plain /a?b=c", 12);
	esc("q\"b\\", 4, 100, "q\\\"b\\\\", 4);
	esc("\n\r\t\x01\x1f\x7f", 6, 100, "\\n\\r\\t\\u0001\\u001f\\u007f", 6);
	/* A NUL inside the string is data, not the end. */
	esc("a\0b", 3, 100, "a\\u0000b", 3);
	/* Valid UTF-8 is kept: é (2 bytes), € (3), 😀 (4). */
	esc("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, 100,
	    "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
	/* Invalid UTF-8 (lone continuation, overlong, surrogate, cut
	 * sequence, 0xff): the bytes as Latin-1 code points. */
	esc("\x80", 1, 100, "\\u0080", 1);
	esc("\xc0\xaf", 2, 100, "\\u00c0\\u00af", 2);
	esc("\xed\xa0\x80", 3, 100, "\\u00ed\\u00a0\\u0080", 3);
	esc("\xe2\x82", 2, 100, "\\u00e2\\u0082", 2);
	esc("\xff", 1, 100, "\\u00ff", 1);
	/* Every single byte: printable ASCII as itself, the rest escaped. */
	for (int c = 0; c < 256; c++) {
		char in = (char)c, out[8];
		size_t used,
		    n = edge_alog_escape(out, sizeof(out), &in, 1, &used);
		assert_int_equal(used, 1);
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			assert_true(n == 1 && out[0] == in);
		else
			assert_true(n >= 2 && out[0] == '\\');
	}
	/* Never a cut escape or sequence. */
	esc("ab\"c", 4, 3, "ab", 2);
	esc("ab\x01", 3, 7, "ab", 2);
	esc("a\xe2\x82\xac", 4, 3, "a", 1);
}

static void test_put(void **state)
{
	char line[64];
	edge_alog_buf b = {line, 0, sizeof(line)};
	edge_alog_put(&b, "{\"a\":");
	edge_alog_put_str(&b, "x\"y", 3, 100);
	edge_alog_put(&b, ",\"n\":");
	edge_alog_put_str(&b, NULL, 0, 100);
	edge_alog_put(&b, ",\"c\":");
	edge_alog_put_u64(&b, 18446744073709551615ull);
	assert_string_equal(line, "{\"a\":\"x\\\"y\",\"n\":null,\"c\":"
				  "18446744073709551615");
	/* A long value is cut with "..." and stays a string. */
	b.len = 0;
	edge_alog_put_str(&b, "abcdefghij", 10, 4);
	assert_string_equal(line, "\"abcd...\"");
	/* The buffer's end is never passed. */
	b.len = 0;
	for (int i = 0; i < 20; i++)
		edge_alog_put_str(&b, "0123456789", 10, 100);
	assert_true(b.len < sizeof(line));
	assert_int_equal(strlen(line), b.len);
	b.len = 0;
	edge_alog_put_secs(&b, 1234567);
	edge_alog_put(&b, " ");
	edge_alog_put_secs(&b, 61000000000ull);
	edge_alog_put(&b, " ");
	edge_alog_put_secs(&b, 499);
	assert_string_equal(line, "0.001235 61.000000 0.000000");
}

static void test_time(void **state)
{
	char sec[20];
	edge_alog_fmt_second(0, sec);
	assert_string_equal(sec, "1970-01-01T00:00:00");
	edge_alog_fmt_second(1709251199, sec); /* leap year */
	assert_string_equal(sec, "2024-02-29T23:59:59");
	char line[64];
	edge_alog_buf b = {line, 0, sizeof(line)};
	edge_alog_put_time(&b, sec, 7999999);
	assert_string_equal(line, "\"2024-02-29T23:59:59.007Z\"");
}

typedef struct producer {
	edge_alog *a;
	uint32_t worker;
	int n, pushed, dropped;
} producer;

static void *produce(void *arg)
{
	producer *p = arg;
	for (int i = 0; i < p->n; i++) {
		char *line = edge_alog_line_get(p->a, p->worker);
		/* Lines of varied length, so the ring wraps at every offset. */
		int len = snprintf(
		    line, EDGE_ALOG_LINE_MAX,
		    "{\"w\":%u,\"i\":%d,\"pad\":\"%.*s\"}\n", p->worker, i,
		    i % 700,
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
		if (edge_alog_push(p->a, p->worker, line, (size_t)len))
			p->pushed++;
		else
			p->dropped++;
		edge_alog_line_put(p->a, p->worker, line);
	}
	return NULL;
}

static void test_rings(void **state)
{
	char dir[] = "/tmp/meridian-alog-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], old[300];
	snprintf(path, sizeof(path), "%s/access.log", dir);
	snprintf(old, sizeof(old), "%s.1", path);
	cfg_access_log cfg = {.path = path, .buffer = 65536};
	edge_alog *a = NULL;
	char err[256] = "";
	assert_int_equal(edge_alog_start(&cfg, 2, &a, err, sizeof(err)), 0);
	assert_non_null(a);

	producer p[2] = {{a, 0, 20000, 0, 0}, {a, 1, 20000, 0, 0}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, produce, &p[i]);
	/* logrotate in the middle: rename, reopen. */
	usleep(2000);
	assert_int_equal(rename(path, old), 0);
	edge_alog_reopen(a);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	edge_alog_counters c;
	edge_alog_counters_get(a, &c);
	edge_alog_stop(a);
	assert_int_equal(c.lines, p[0].pushed + p[1].pushed);
	assert_int_equal(c.dropped, p[0].dropped + p[1].dropped);
	assert_true(c.lines > 0);

	/* Every queued line arrived whole, in order per worker, in one of
	 * the two files. */
	int next[2] = {0, 0}, lines = 0;
	const char *files[2] = {old, path};
	for (int f = 0; f < 2; f++) {
		FILE *fp = fopen(files[f], "r");
		if (!fp)
			continue;
		static char buf[EDGE_ALOG_LINE_MAX + 2];
		while (fgets(buf, sizeof(buf), fp)) {
			unsigned w;
			int i, n = 0;
			assert_int_equal(
			    sscanf(buf, "{\"w\":%u,\"i\":%d,\"pad\":\"%n", &w,
				   &i, &n),
			    2);
			assert_true(w < 2 && i >= next[w]);
			next[w] = i + 1;
			size_t pad = strspn(buf + n, "x");
			assert_int_equal(pad, (size_t)(i % 700));
			assert_string_equal(buf + n + pad, "\"}\n");
			lines++;
		}
		fclose(fp);
		unlink(files[f]);
	}
	assert_int_equal(lines, c.lines);
	rmdir(dir);
}

static void test_off_and_errors(void **state)
{
	cfg_access_log off = {0};
	edge_alog *a = (edge_alog *)1;
	char err[256] = "";
	assert_int_equal(edge_alog_start(&off, 1, &a, err, sizeof(err)), 0);
	assert_null(a);
	edge_alog_reopen(NULL);
	edge_alog_stop(NULL);
	edge_alog_counters c;
	edge_alog_counters_get(NULL, &c);
	assert_int_equal(c.lines + c.dropped, 0);
	cfg_access_log bad = {.path = "/nonexistent-dir/x/access.log",
			      .buffer = 65536};
	assert_true(edge_alog_start(&bad, 1, &a, err, sizeof(err)) < 0);
	assert_null(a);
	assert_non_null(strstr(err, "cannot open"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape),	   cmocka_unit_test(test_put),
	    cmocka_unit_test(test_time),	   cmocka_unit_test(test_rings),
	    cmocka_unit_test(test_off_and_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
