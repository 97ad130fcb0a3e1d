/* GGUF v3 writer. Metadata and tensor descriptions are collected first; tensor data is
 * only referenced (or produced on demand by a callback) and streamed to a temporary file
 * at write time, one tensor at a time, which is then renamed into place.
 *
 * Metadata keys are unique: setting a key that is already present replaces its value in
 * place (its position in the file is kept), so a caller can copy a source model's
 * metadata and then override a few keys. The data alignment is the `general.alignment`
 * key (u32, a power of two; 32 when absent), as in the format itself. */
#ifndef MT_IO_GGUF_WRITE_H
#define MT_IO_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "io/atomic_file.h"
#include "io/gguf.h"

typedef struct mt_gguf_writer mt_gguf_writer;

mt_status mt_gguf_writer_new(mt_gguf_writer **out);
void mt_gguf_writer_free(mt_gguf_writer *w);

/* Scalars. */
mt_status mt_gguf_writer_set_u8(mt_gguf_writer *w, const char *key, uint8_t v);
mt_status mt_gguf_writer_set_i8(mt_gguf_writer *w, const char *key, int8_t v);
mt_status mt_gguf_writer_set_u16(mt_gguf_writer *w, const char *key, uint16_t v);
mt_status mt_gguf_writer_set_i16(mt_gguf_writer *w, const char *key, int16_t v);
mt_status mt_gguf_writer_set_u32(mt_gguf_writer *w, const char *key, uint32_t v);
mt_status mt_gguf_writer_set_i32(mt_gguf_writer *w, const char *key, int32_t v);
mt_status mt_gguf_writer_set_u64(mt_gguf_writer *w, const char *key, uint64_t v);
mt_status mt_gguf_writer_set_i64(mt_gguf_writer *w, const char *key, int64_t v);
mt_status mt_gguf_writer_set_f32(mt_gguf_writer *w, const char *key, float v);
mt_status mt_gguf_writer_set_f64(mt_gguf_writer *w, const char *key, double v);
mt_status mt_gguf_writer_set_bool(mt_gguf_writer *w, const char *key, bool v);
mt_status mt_gguf_writer_set_str(mt_gguf_writer *w, const char *key, const char *s);
/* A string of len bytes that may hold NUL. */
mt_status mt_gguf_writer_set_strn(mt_gguf_writer *w, const char *key, const char *s, uint64_t len);

/* An array of n numbers or bools, packed in the element size of elem_type (u8..f64;
 * a bool is one byte, 0 or 1). */
mt_status mt_gguf_writer_set_array(mt_gguf_writer *w, const char *key, mt_gguf_type elem_type,
                                   const void *data, uint64_t n);
/* An array of n strings; lens may be NULL for NUL-terminated strings. */
mt_status mt_gguf_writer_set_str_array(mt_gguf_writer *w, const char *key, const char *const *strs,
                                       const uint64_t *lens, uint64_t n);

/* One key/value exactly as a reader returned it (type, arrays and string lengths kept). */
mt_status mt_gguf_writer_set_kv(mt_gguf_writer *w, const mt_gguf_kv *kv);

/* Every key/value of src in file order, except those for which skip(key, ctx) returns
 * non-zero (skip may be NULL). */
typedef int (*mt_gguf_key_pred)(const char *key, void *ctx);
mt_status mt_gguf_writer_copy_kv(mt_gguf_writer *w, const mt_gguf *src, mt_gguf_key_pred skip,
                                 void *ctx);
/* A ready-made skip predicate: ctx is a NULL-terminated array of const char* keys; an
 * entry ending in '*' matches every key starting with what precedes the '*'. */
int mt_gguf_key_in_list(const char *key, void *ctx);

/* Removes a key; returns 1 if it was present. */
int mt_gguf_writer_remove_kv(mt_gguf_writer *w, const char *key);
uint64_t mt_gguf_writer_n_kv(const mt_gguf_writer *w);

/* A tensor: ggml_type any GGML id whose block layout meteor knows (quantised types
 * included, so tensors can be copied verbatim), ne[] in GGUF order (ne[0] innermost,
 * a multiple of the block size), 1 <= n_dims <= 4, every ne >= 1. data must hold the
 * tensor's bytes and stay valid until mt_gguf_writer_write returns. Names are unique
 * (MT_ERR_ARG on a duplicate). Tensors are written in the order they were added. */
mt_status mt_gguf_writer_add_tensor(mt_gguf_writer *w, const char *name, int ggml_type, int n_dims,
                                    const int64_t *ne, const void *data);
/* Same, with the data produced by fill(ctx, buffer, nbytes) while writing, so only one
 * tensor's bytes are in memory at a time. An error from fill aborts the write. */
mt_status mt_gguf_writer_add_tensor_fn(mt_gguf_writer *w, const char *name, int ggml_type,
                                       int n_dims, const int64_t *ne, mt_fill_fn fill, void *ctx);
uint64_t mt_gguf_writer_n_tensors(const mt_gguf_writer *w);

/* Writes the file atomically; on failure path is untouched and no temporary file is
 * left. The writer can be written again (e.g. to a second path). */
mt_status mt_gguf_writer_write(const mt_gguf_writer *w, const char *path);

#endif
