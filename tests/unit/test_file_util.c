/* Whole-file reads, atomic writes, mappings and JSON files. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/atomic_file.h"
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

static int exists(const char *name) {
    char p[128];
    struct stat sb;
    in_dir(p, name);
    return lstat(p, &sb) == 0;
}

static void make_file(const char *name, const char *text) {
    char p[128];
    in_dir(p, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int count_temps(void) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* Exactly <base>.tmp. + six of mkstemp's letters and digits, nothing else. */
static void test_temp_name_rule(void **state) {
    (void)state;
    assert_true(mt_atomic_is_temp_name("a.bin.tmp.AbC019", "a.bin"));
    assert_true(mt_atomic_is_temp_name("a.bin.tmp.zzzzzz", NULL));
    assert_true(mt_atomic_is_temp_name("x.tmp.tmp.Q1w2E3", "x.tmp"));
    assert_false(mt_atomic_is_temp_name("a.bin", "a.bin"));
    assert_false(mt_atomic_is_temp_name("a.bin.tmp.AbC01", "a.bin"));   /* five */
    assert_false(mt_atomic_is_temp_name("a.bin.tmp.AbC0123", "a.bin")); /* seven */
    assert_false(mt_atomic_is_temp_name("a.bin.tmp.AbC0123", NULL));
    assert_false(mt_atomic_is_temp_name("a.bin.tmp.AbC-01", "a.bin")); /* not mkstemp's */
    assert_false(mt_atomic_is_temp_name("a.bin.tmp.AbC01.", NULL));
    assert_false(mt_atomic_is_temp_name("a.bin.TMP.AbC019", "a.bin"));
    assert_false(mt_atomic_is_temp_name("a.bin.tmp.AbC019.json", NULL));
    assert_false(mt_atomic_is_temp_name("b.bin.tmp.AbC019", "a.bin")); /* other target */
    assert_false(mt_atomic_is_temp_name("xa.bin.tmp.AbC019", "a.bin"));
    assert_false(mt_atomic_is_temp_name("a.bin.tmp.AbC019", "bin"));
    assert_false(mt_atomic_is_temp_name(".tmp.AbC019", NULL)); /* no target name */
    assert_false(mt_atomic_is_temp_name(".tmp.AbC019", ""));
}

/* Cleaning one target removes its leftover regular files only; cleaning a folder removes
 * every target's, still never a link, a folder or a name off the pattern. */
static void test_clean_leftovers(void **state) {
    (void)state;
    char target[128], p[128], outside[128];
    in_dir(target, "t.bin");
    make_file("t.bin", "old");
    make_file("t.bin.tmp.Qx9zZ1", "stale");
    make_file("t.bin.tmp.keep", "not ours");
    make_file("t.bin.tmp.Abc12_", "not ours");
    make_file("u.bin.tmp.Abc123", "stale, other target");
    make_file("outside", "pointed at");
    in_dir(outside, "outside");
    in_dir(p, "t.bin.tmp.Lnk123");
    assert_int_equal(symlink(outside, p), 0);
    in_dir(p, "t.bin.tmp.Dir123");
    assert_int_equal(mkdir(p, 0755), 0);

    assert_int_equal(mt_atomic_clean_stale(target), 1);
    assert_false(exists("t.bin.tmp.Qx9zZ1"));
    assert_true(exists("t.bin") && exists("t.bin.tmp.keep") && exists("t.bin.tmp.Abc12_"));
    assert_true(exists("u.bin.tmp.Abc123") && exists("t.bin.tmp.Lnk123") && exists("outside"));
    assert_true(exists("t.bin.tmp.Dir123"));
    assert_int_equal(mt_atomic_clean_stale(target), 0);

    assert_int_equal(mt_atomic_clean_dir(dir), 1);
    assert_false(exists("u.bin.tmp.Abc123"));
    assert_true(exists("t.bin.tmp.keep") && exists("t.bin.tmp.Lnk123") && exists("outside"));
    assert_int_equal(mt_atomic_clean_dir("/nonexistent/dir"), 0);
    assert_int_equal(mt_atomic_clean_stale("/nonexistent/dir/t.bin"), 0);

    in_dir(p, "t.bin.tmp.Lnk123");
    unlink(p);
    in_dir(p, "t.bin.tmp.Dir123");
    rmdir(p);
    const char *rest[] = {"t.bin", "t.bin.tmp.keep", "t.bin.tmp.Abc12_", "outside"};
    for (size_t i = 0; i < sizeof rest / sizeof *rest; i++) {
        in_dir(p, rest[i]);
        unlink(p);
    }
    assert_int_equal(count_entries(), 0);
}

/* A writer removes its target's leftovers before it writes, not other targets'. */
static void test_writer_removes_its_leftovers(void **state) {
    (void)state;
    char p[128];
    in_dir(p, "w.json");
    make_file("w.json.tmp.Old123", "stale");
    make_file("v.json.tmp.Old123", "stale, other target");
    assert_int_equal(mt_write_file_atomic(p, "{}", 2), MT_OK);
    assert_false(exists("w.json.tmp.Old123"));
    assert_true(exists("v.json.tmp.Old123"));
    unlink(p);
    in_dir(p, "v.json.tmp.Old123");
    unlink(p);
}

/* While a writer holds the folder (its shared lock, as during any atomic write), nothing
 * is removed: the temporary may be that writer's. Writes still go ahead. */
static void test_busy_folder_is_left_alone(void **state) {
    (void)state;
    char p[128];
    in_dir(p, "b.bin");
    make_file("b.bin.tmp.Busy12", "maybe mid-write");
    int held = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(held >= 0);
    assert_int_equal(flock(held, LOCK_SH), 0);
    assert_int_equal(mt_atomic_clean_stale(p), 0);
    assert_int_equal(mt_atomic_clean_dir(dir), 0);
    assert_int_equal(mt_write_file_atomic(p, "x", 1), MT_OK);
    assert_true(exists("b.bin.tmp.Busy12"));
    close(held);
    assert_int_equal(mt_atomic_clean_stale(p), 1);
    assert_int_equal(count_entries(), 1);
    unlink(p);
}

/* Killed between writing its temporary and renaming it (crash point "atomic_written"),
 * a writer leaves the complete temporary and the old target; the next write of the
 * target removes the leftover, as the kernel dropped the dead writer's lock. */
static void test_kill_before_rename(void **state) {
    (void)state;
    char p[128];
    in_dir(p, "k.bin");
    assert_int_equal(mt_write_file_atomic(p, "old", 3), MT_OK);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("METEOR_FAULT_KILL", "atomic_written:1", 1);
        mt_write_file_atomic(p, "new data", 8);
        _exit(0);
    }
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    assert_int_equal(count_temps(), 1);
    char *got;
    size_t len;
    assert_int_equal(mt_read_file(p, &got, &len), MT_OK);
    assert_int_equal(len, 3);
    free(got);
    assert_int_equal(mt_write_file_atomic(p, "again", 5), MT_OK);
    assert_int_equal(count_temps(), 0);
    assert_int_equal(count_entries(), 1);
    unlink(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_then_read),
        cmocka_unit_test(test_empty_and_errors),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_map_release),
        cmocka_unit_test(test_json_file),
        cmocka_unit_test(test_json_parse_len),
        cmocka_unit_test(test_temp_name_rule),
        cmocka_unit_test(test_clean_leftovers),
        cmocka_unit_test(test_writer_removes_its_leftovers),
        cmocka_unit_test(test_busy_folder_is_left_alone),
        cmocka_unit_test(test_kill_before_rename),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
