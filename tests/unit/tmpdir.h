/* Temporary directories for unit tests: made under /tmp, removed with everything in them
 * (nftw, no shell). Header-only so each test binary stays one file plus the library. */
#ifndef MT_TEST_TMPDIR_H
#define MT_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Fills dir (cap bytes) with a new directory's path; 0 on success. */
static inline int mt_test_mkdtemp(char *dir, size_t cap, const char *tag) {
    snprintf(dir, cap, "/tmp/mt_test_%s_XXXXXX", tag);
    return mkdtemp(dir) ? 0 : -1;
}

static inline int mt_test_rm_entry(const char *path, const struct stat *st, int flag,
                                   struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes dir and its contents; 0 on success. */
static inline int mt_test_rmtree(const char *dir) {
    return nftw(dir, mt_test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
