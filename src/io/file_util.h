/* Whole-file reads, crash-safe writes and read-only mappings. */
#ifndef MT_IO_FILE_UTIL_H
#define MT_IO_FILE_UTIL_H

#include <stddef.h>

#include "core/status.h"

/* Reads the whole file into a fresh buffer with a NUL appended (not counted in *len).
 * The caller frees *data. */
mt_status mt_read_file(const char *path, char **data, size_t *len);

/* Replaces path with data so that readers see the old or the new content, never a mix,
 * even after a crash: a temporary file in the same folder is written, synced, renamed
 * over path, and the folder is synced. */
mt_status mt_write_file_atomic(const char *path, const void *data, size_t len);

/* Maps a regular file read-only. An empty file gives *data == NULL and *size == 0.
 * Release with mt_unmap_file. */
mt_status mt_map_file(const char *path, const void **data, size_t *size);
void mt_unmap_file(const void *data, size_t size);
/* Drops the whole pages of [p, p + n), a range inside a mapping of mt_map_file, from the
 * process's memory: they are read again from the file (the page cache) when next used.
 * For data copied elsewhere that is seldom read in place. */
void mt_map_release(const void *p, size_t n);

/* Whether something (a file or a folder) is at path. */
int mt_path_exists(const char *path);

#endif
