/* A file written in pieces that appears all at once: data goes to a temporary file in
 * the target's folder, which is synced and renamed over the target only on commit, so
 * readers see the old file or the complete new one, never a torn write, and a failed
 * write leaves nothing behind. Used by the GGUF and safetensors writers to stream
 * tensors without holding a whole model in memory.
 *
 * A process killed mid-write leaves its temporary, NAME.tmp.XXXXXX (mkstemp's six
 * letters and digits), beside the target. Such leftovers are removed under a lock on the
 * folder: every writer holds a shared flock(2) on the target's folder from before it
 * creates its temporary until after the rename, and the kernel drops the lock of a killed
 * process, so whoever gets the folder's exclusive lock knows that no writer of any
 * process is mid-write there and that every temporary present is a leftover. A writer
 * removes the leftovers of its own target before writing; runs remove those of their
 * files when they start (mt_atomic_clean_stale, mt_atomic_clean_dir). Where the folder
 * cannot be locked (a file system without flock), nothing is removed. */
#ifndef MT_IO_ATOMIC_FILE_H
#define MT_IO_ATOMIC_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct {
    int fd;
    int dir_fd; /* the target's folder, share-locked while the temporary exists; -1: none */
    char *tmp;  /* temporary file name */
    char *path; /* final name */
    uint64_t written;
} mt_atomic_file;

/* Produces nbytes of tensor data into dst on demand, so a writer can hold one tensor at
 * a time (dequantise, merge, quantise, write, forget). */
typedef mt_status (*mt_fill_fn)(void *ctx, void *dst, size_t nbytes);

mt_status mt_atomic_open(mt_atomic_file *f, const char *path);
mt_status mt_atomic_write(mt_atomic_file *f, const void *data, size_t len);
/* Writes zero bytes until the file length is a multiple of align. */
mt_status mt_atomic_pad(mt_atomic_file *f, uint64_t align);
/* Syncs and renames into place. Whether it succeeds or not, f is closed afterwards and
 * on failure the temporary file is removed. */
mt_status mt_atomic_commit(mt_atomic_file *f);
/* Drops the temporary file; safe on a file that was never opened or already closed. */
void mt_atomic_abort(mt_atomic_file *f);

/* Whether name (a folder entry) is a temporary of this writer for the target named base
 * (a file name without folder): exactly base + ".tmp." + six of mkstemp's letters and
 * digits. base NULL accepts any non-empty base. */
int mt_atomic_is_temp_name(const char *name, const char *base);
/* Removes the leftover temporaries of the target path, if the folder's exclusive lock is
 * free (no writer is mid-write there). Best effort: returns how many were removed. */
int mt_atomic_clean_stale(const char *path);
/* The same for every target in folder dir: only for folders that meteor alone writes
 * (a run directory's), as other programs may name their temporaries alike. */
int mt_atomic_clean_dir(const char *dir);

#endif
