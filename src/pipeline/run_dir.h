/* A run directory: run.db (the store), data/ (JSONL exports), adapters/<phase>/ and
 * train/<phase>/ (checkpoints and metrics of the phase's training). */
#ifndef MT_PIPELINE_RUN_DIR_H
#define MT_PIPELINE_RUN_DIR_H

#include <stddef.h>

#include "store/store.h"

typedef struct {
    char root[3072];
} mt_run_dir;

/* Creates the directory and its sub-folders when missing, removes the temporaries that
 * killed runs left of atomic writes there (io/atomic_file.h) and opens run.db. */
mt_status mt_run_dir_open(const char *root, mt_run_dir *d, mt_store **s);
/* root/rel into buf. */
void mt_run_path(const mt_run_dir *d, const char *rel, char *buf, size_t cap);
/* Creates root/rel (and its parents). */
mt_status mt_run_mkdir(const mt_run_dir *d, const char *rel);

/* Records a setting the run's data depend on the first time; refuses a different value
 * later, naming the setting (what) and both values. */
mt_status mt_run_setting(mt_store *s, const char *key, const char *value, const char *what);

/* Writes the strings as JSONL, atomically. */
mt_status mt_write_jsonl(const char *path, char *const *lines, int n);

#endif
