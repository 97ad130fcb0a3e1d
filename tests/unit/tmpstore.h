/* A fresh run store for unit tests: run.db in a new temporary directory (tmpdir.h),
 * opened in a cmocka setup, closed and removed with its directory in the teardown.
 * Header-only, like tmpdir.h, so each test binary stays one file plus the library. */
#ifndef MT_TEST_TMPSTORE_H
#define MT_TEST_TMPSTORE_H

#include <stdio.h>

#include "store/store.h"
#include "tmpdir.h"

typedef struct {
    char dir[64];      /* the temporary directory; tests may put other files in it */
    char db_path[128]; /* dir/run.db */
    mt_store *store;   /* open on db_path */
} mt_test_store;

/* Makes a new directory (tag goes into its name) and opens a store in it; 0 on success. */
static inline int mt_test_store_open(mt_test_store *t, const char *tag) {
    t->store = NULL;
    if (mt_test_mkdtemp(t->dir, sizeof t->dir, tag)) return -1;
    snprintf(t->db_path, sizeof t->db_path, "%s/run.db", t->dir);
    return mt_store_open(t->db_path, &t->store) == MT_OK ? 0 : -1;
}

/* Closes the store (a test may have closed it and left NULL) and removes the directory
 * with everything in it; 0 on success. */
static inline int mt_test_store_close(mt_test_store *t) {
    mt_store_close(t->store);
    t->store = NULL;
    return mt_test_rmtree(t->dir) == 0 ? 0 : -1;
}

#endif
