/* Whole-file reads, atomic writes, mappings and JSON files. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/file_util.h"
#include "io/json_file.h"

static char dir[64];

static int setup(void **state) {
    (void)state;
    strcpy(dir, "/tmp/mt_test_fu_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void in_dir(char *out, const char *name) {
    snprintf(out, 128, "%s/%s", dir, name);
}

static int count_entries(void) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_write_then_read(void **state) {
    (void)state;
    char p[128];
    in_dir(p, "a.bin");
    const char data[] = "hello\0world";
    assert_int_equal(mt_write_file_atomic(p, data, sizeof data), MT_OK);
    char *got;
    size_t len;
    assert_int_equal(mt_read_file(p, &got, &len), MT_OK);
    assert_int_equal(len, sizeof data);
    assert_memory_equal(got, data, sizeof data);
    assert_int_equal(got[len], '\0');
    free(got);
    /* replacing keeps the mode and leaves no temporary files behind */
    assert_int_equal(chmod(p, 0600), 0);
    assert_int_equal(mt_write_file_atomic(p, "x", 1), MT_OK);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_size, 1);
    assert_int_equal(count_entries(), 1);
    unlink(p);
}

static void test_empty_and_errors(void **state) {
    (void)state;
    char p[128];
    in_dir(p, "empty");
    assert_int_equal(mt_write_file_atomic(p, "", 0), MT_OK);
    char *got;
    size_t len;
    assert_int_equal(mt_read_file(p, &got, &len), MT_OK);
    assert_int_equal(len, 0);
    assert_int_equal(got[0], '\0');
    free(got);
    const void *map;
    size_t size;
    assert_int_equal(mt_map_file(p, &map, &size), MT_OK);
    assert_null(map);
    assert_int_equal(size, 0);
    mt_unmap_file(map, size);
    unlink(p);
    mt_clear_error();
    assert_int_equal(mt_read_file("/nonexistent/file", &got, &len), MT_ERR_IO);
    assert_non_null(strstr(mt_last_error(), "/nonexistent/file"));
    assert_int_equal(mt_read_file(dir, &got, &len), MT_ERR_IO);
    assert_int_equal(mt_map_file(dir, &map, &size), MT_ERR_IO);
    assert_int_equal(mt_write_file_atomic("/nonexistent/dir/f", "x", 1), MT_ERR_IO);
    assert_int_equal(count_entries(), 0);
}

static void test_map(void **state) {
    (void)state;
    char p[128];
    in_dir(p, "m.bin");
    assert_int_equal(mt_write_file_atomic(p, "abc", 3), MT_OK);
    const void *map;
    size_t size;
    assert_int_equal(mt_map_file(p, &map, &size), MT_OK);
    assert_int_equal(size, 3);
    assert_memory_equal(map, "abc", 3);
    mt_unmap_file(map, size);
    unlink(p);
}

/* Resident kB of the mapping that starts at p, from /proc/self/smaps; -1 if not found. */
static long rss_kb(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[256];
    long kb = -1;
    int in = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2)
            in = a == (uintptr_t)p;
        else if (in && sscanf(line, "Rss: %ld kB", &kb) == 1)
            break;
    }
    if (f) fclose(f);
    return kb;
}

/* Released pages leave the process (Rss falls) and read back the same bytes. */
static void test_map_release(void **state) {
    (void)state;
    char p[128];
    in_dir(p, "r.bin");
    enum { N = 64 * 4096 };
    unsigned char *buf = malloc(N);
    for (int i = 0; i < N; i++) buf[i] = (unsigned char)(i * 7 + i / 4096);
    assert_int_equal(mt_write_file_atomic(p, buf, N), MT_OK);
    const void *map;
    size_t size;
    assert_int_equal(mt_map_file(p, &map, &size), MT_OK);
    assert_memory_equal(map, buf, N); /* every page touched */
    assert_true(rss_kb(map) >= N / 1024);
    /* from the middle of page 1 to the middle of page 62: pages 2..61 go */
    mt_map_release((const unsigned char *)map + 6000, 61 * 4096);
    assert_true(rss_kb(map) <= N / 1024 - 60 * 4);
    assert_memory_equal(map, buf, N);
    mt_unmap_file(map, size);
    free(buf);
    unlink(p);
}

static void test_json_file(void **state) {
    (void)state;
    char p[128];
    in_dir(p, "c.json");
    const char *ok = "{\"a\": [1, 2], \"b\": \"x\"}\n";
    assert_int_equal(mt_write_file_atomic(p, ok, strlen(ok)), MT_OK);
    cJSON *doc;
    assert_int_equal(mt_json_read_file(p, &doc), MT_OK);
    assert_string_equal(cJSON_GetObjectItem(doc, "b")->valuestring, "x");
    cJSON_Delete(doc);

    const char *bad = "{\n  \"a\": [1, 2,\n  oops]\n}";
    assert_int_equal(mt_write_file_atomic(p, bad, strlen(bad)), MT_OK);
    assert_int_equal(mt_json_read_file(p, &doc), MT_ERR_FORMAT);
    assert_null(doc);
    assert_non_null(strstr(mt_last_error(), p));
    assert_non_null(strstr(mt_last_error(), "line 3"));

    const char *trail = "{} {}";
    assert_int_equal(mt_write_file_atomic(p, trail, strlen(trail)), MT_OK);
    assert_int_equal(mt_json_read_file(p, &doc), MT_ERR_FORMAT);
    assert_int_equal(mt_write_file_atomic(p, "", 0), MT_OK);
    assert_int_equal(mt_json_read_file(p, &doc), MT_ERR_FORMAT);
    unlink(p);
    assert_int_equal(mt_json_read_file(p, &doc), MT_ERR_IO);
}

static void test_json_parse_len(void **state) {
    (void)state;
    cJSON *doc;
    /* only len bytes count, even if more follow */
    assert_int_equal(mt_json_parse("[1]garbage", 3, "buf", &doc), MT_OK);
    cJSON_Delete(doc);
    assert_int_equal(mt_json_parse("[1,", 3, "buf", &doc), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "buf"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_then_read),
        cmocka_unit_test(test_empty_and_errors),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_map_release),
        cmocka_unit_test(test_json_file),
        cmocka_unit_test(test_json_parse_len),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
