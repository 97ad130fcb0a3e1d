#include "pipeline/run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/atomic_file.h"

static mt_status mkdir_p(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) && errno != EEXIST)
            return mt_fail(MT_ERR_IO, "cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) && errno != EEXIST)
        return mt_fail(MT_ERR_IO, "cannot create %s: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) || !S_ISDIR(st.st_mode))
        return mt_fail(MT_ERR_IO, "%s exists and is not a directory", buf);
    return MT_OK;
}

void mt_run_path(const mt_run_dir *d, const char *rel, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", d->root, rel);
}

mt_status mt_run_mkdir(const mt_run_dir *d, const char *rel) {
    char path[4096];
    mt_run_path(d, rel, path, sizeof path);
    return mkdir_p(path);
}

/* Cleans dir and every folder below it, depth levels deep at most. */
static void clean_tree(const char *dir_path, int depth) {
    mt_atomic_clean_dir(dir_path);
    DIR *dir = depth > 0 ? opendir(dir_path) : NULL;
    for (struct dirent *e; dir && (e = readdir(dir));) {
        if (e->d_name[0] == '.') continue;
        char sub[4096 + 256];
        struct stat st;
        snprintf(sub, sizeof sub, "%s/%s", dir_path, e->d_name);
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) clean_tree(sub, depth - 1);
    }
    if (dir) closedir(dir);
}

/* Removes what killed runs left of atomic writes in the run's folders (the root, data/,
 * and every folder under train/ and adapters/, where later phases keep a folder per
 * round), even of files this run may not write again soon. A run directory is meteor's
 * alone, so every leftover there is a run's. */
static void clean_leftovers(const mt_run_dir *d) {
    char path[4096];
    mt_atomic_clean_dir(d->root);
    mt_run_path(d, "data", path, sizeof path);
    mt_atomic_clean_dir(path);
    static const char *const nested[] = {"train", "adapters"};
    for (size_t i = 0; i < sizeof nested / sizeof *nested; i++) {
        mt_run_path(d, nested[i], path, sizeof path);
        clean_tree(path, 3);
    }
}

mt_status mt_run_dir_open(const char *root, mt_run_dir *d, mt_store **s) {
    *s = NULL;
    if (!root || !*root) return mt_fail(MT_ERR_ARG, "no run directory given (--run DIR)");
    if (strlen(root) >= sizeof d->root - 64)
        return mt_fail(MT_ERR_ARG, "run directory path too long");
    snprintf(d->root, sizeof d->root, "%s", root);
    mt_status st = mkdir_p(root);
    if (!st) st = mt_run_mkdir(d, "data");
    if (!st) st = mt_run_mkdir(d, "adapters");
    if (!st) clean_leftovers(d);
    char db[4096];
    mt_run_path(d, "run.db", db, sizeof db);
    if (!st) st = mt_store_open(db, s);
    return st;
}

mt_status mt_run_setting(mt_store *s, const char *key, const char *value, const char *what) {
    char *have = NULL;
    mt_status st = mt_store_meta_get(s, key, &have);
    if (st) return st;
    if (!have) return mt_store_meta_set(s, key, value);
    if (strcmp(have, value))
        st = mt_fail(MT_ERR_ARG,
                     "this run was started with %s %s; it cannot continue with %s (start a new "
                     "run directory)",
                     what, have, value);
    free(have);
    return st;
}

mt_status mt_write_jsonl(const char *path, char *const *lines, int n) {
    mt_atomic_file f;
    mt_status st = mt_atomic_open(&f, path);
    for (int i = 0; !st && i < n; i++) {
        st = mt_atomic_write(&f, lines[i], strlen(lines[i]));
        if (!st) st = mt_atomic_write(&f, "\n", 1);
    }
    if (!st) return mt_atomic_commit(&f);
    mt_atomic_abort(&f);
    return st;
}
