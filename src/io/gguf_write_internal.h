/* Private to the GGUF writer: the writer's state and a growable byte buffer, shared by
 * gguf_write.c (metadata), gguf_write_copy.c (copying a read file's metadata) and
 * gguf_write_file.c (tensors and the file). */
#ifndef MT_IO_GGUF_WRITE_INTERNAL_H
#define MT_IO_GGUF_WRITE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "io/gguf_write.h"

typedef struct {
    char *key;
    uint32_t type;
    uint8_t *val; /* the value's bytes as they follow the type in the file */
    size_t val_len;
} mt_gguf_writer_kv;

typedef struct {
    char *name;
    int ggml_type;
    int n_dims;
    int64_t ne[4];
    uint64_t nbytes;
    const void *data; /* either data ... */
    mt_fill_fn fill;  /* ... or fill(ctx) */
    void *ctx;
} mt_gguf_writer_tensor;

struct mt_gguf_writer {
    mt_gguf_writer_kv *kv;
    size_t n_kv, cap_kv;
    mt_gguf_writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
};

/* Appends stay silent on allocation failure and set oom, so an encoder checks once. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
} gw_buf;

void gw_buf_put(gw_buf *b, const void *data, size_t n);
void gw_buf_u32(gw_buf *b, uint32_t v);
void gw_buf_u64(gw_buf *b, uint64_t v);
void gw_buf_str(gw_buf *b, const char *s, uint64_t len);

mt_gguf_writer_kv *gw_find_kv(const mt_gguf_writer *w, const char *key);

#endif
