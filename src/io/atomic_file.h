/* A file written in pieces that appears all at once: data goes to a temporary file in
 * the target's folder, which is synced and renamed over the target only on commit, so
 * readers see the old file or the complete new one, never a torn write, and a failed
 * write leaves nothing behind. Used by the GGUF and safetensors writers to stream
 * tensors without holding a whole model in memory. */
#ifndef MT_IO_ATOMIC_FILE_H
#define MT_IO_ATOMIC_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct {
    int fd;
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

#endif
