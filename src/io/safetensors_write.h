/* Hugging Face safetensors writer (one file). Tensors are only referenced (or produced
 * on demand by a callback) until mt_st_writer_write streams them to a temporary file
 * that is renamed into place, so writing holds at most one tensor's bytes.
 *
 * Layout: an 8-byte little-endian header length, the JSON header padded with spaces so
 * the data section starts 8-byte aligned, then the data with no gaps. Tensors are laid
 * out (and listed) by element size, largest first, then by name: every tensor's data is
 * then aligned to its element size, and equal inputs give byte-identical files. */
#ifndef MT_IO_SAFETENSORS_WRITE_H
#define MT_IO_SAFETENSORS_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "io/atomic_file.h"
#include "kernels/dtype.h"

#define MT_ST_MAX_DIMS 8

typedef struct mt_st_writer mt_st_writer;

mt_status mt_st_writer_new(mt_st_writer **out);
void mt_st_writer_free(mt_st_writer *w);

/* A tensor of type F32, F16 or BF16 with shape[0..n_dims) in Hugging Face order (row-major,
 * last dimension contiguous: a torch [out, in] weight is shape {out, in}). 0 <= n_dims <=
 * MT_ST_MAX_DIMS; a dimension may be 0 (an empty tensor, data may then be NULL). data must
 * stay valid until mt_st_writer_write returns. A name used twice, an empty name or
 * "__metadata__" is MT_ERR_ARG. */
mt_status mt_st_writer_add(mt_st_writer *w, const char *name, mt_dtype type, int n_dims,
                           const int64_t *shape, const void *data);
/* Same, with the bytes produced by fill(ctx, buffer, nbytes) during the write. */
mt_status mt_st_writer_add_fn(mt_st_writer *w, const char *name, mt_dtype type, int n_dims,
                              const int64_t *shape, mt_fill_fn fill, void *ctx);
size_t mt_st_writer_count(const mt_st_writer *w);

/* A `__metadata__` entry (string to string); setting a key again replaces its value. */
mt_status mt_st_writer_set_meta(mt_st_writer *w, const char *key, const char *value);

/* Writes path atomically; on failure path is untouched and no temporary file is left. */
mt_status mt_st_writer_write(const mt_st_writer *w, const char *path);

#endif
