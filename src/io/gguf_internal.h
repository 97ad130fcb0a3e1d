/* Private to the GGUF reader: a bounds-checked cursor over the mapped file and the
 * pieces gguf.c and gguf_meta.c share. */
#ifndef MT_IO_GGUF_INTERNAL_H
#define MT_IO_GGUF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "io/gguf.h"

typedef struct {
    const uint8_t *base;
    size_t size;
    size_t pos;
    const char *path;
} gguf_cursor;

static inline size_t gguf_remaining(const gguf_cursor *c) {
    return c->size - c->pos;
}

/* Each read fails with MT_ERR_FORMAT naming `what` when the file ends first. */
mt_status gguf_read_bytes(gguf_cursor *c, void *out, size_t n, const char *what);
mt_status gguf_read_u32(gguf_cursor *c, uint32_t *v, const char *what);
mt_status gguf_read_u64(gguf_cursor *c, uint64_t *v, const char *what);
/* Reads a length-prefixed string without copying: *s points into the mapping. */
mt_status gguf_read_str_ref(gguf_cursor *c, const uint8_t **s, uint64_t *len, const char *what);
/* Reads a string that must not contain NUL (keys, tensor names) into a fresh copy. */
mt_status gguf_read_name(gguf_cursor *c, char **out, const char *what);

/* Parses one key/value pair into kv (zeroed by the caller); on failure kv holds only
 * what gguf_kv_free can release. */
mt_status gguf_read_kv(gguf_cursor *c, mt_gguf_kv *kv);
void gguf_kv_free(mt_gguf_kv *kv);

/* Sorted views for binary-search lookups, built once after parsing. */
typedef struct {
    mt_gguf pub;
    const mt_gguf_kv **kv_sorted;
    const mt_gguf_tensor **tensor_sorted;
} gguf_impl;

#endif
