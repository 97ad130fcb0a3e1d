#include <string.h>

#include "core/alloc.h"
#include "io/gguf_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

mt_status gguf_read_bytes(gguf_cursor *c, void *out, size_t n, const char *what) {
    if (n > gguf_remaining(c))
        return mt_fail(MT_ERR_FORMAT, "gguf: %s: truncated at byte %zu while reading %s", c->path,
                       c->pos, what);
    memcpy(out, c->base + c->pos, n);
    c->pos += n;
    return MT_OK;
}

mt_status gguf_read_u32(gguf_cursor *c, uint32_t *v, const char *what) {
    return gguf_read_bytes(c, v, sizeof *v, what);
}

mt_status gguf_read_u64(gguf_cursor *c, uint64_t *v, const char *what) {
    return gguf_read_bytes(c, v, sizeof *v, what);
}

mt_status gguf_read_str_ref(gguf_cursor *c, const uint8_t **s, uint64_t *len, const char *what) {
    mt_status st = gguf_read_u64(c, len, what);
    if (st) return st;
    if (*len > gguf_remaining(c))
        return mt_fail(MT_ERR_FORMAT,
                       "gguf: %s: %s at byte %zu has length %llu but only %zu bytes remain",
                       c->path, what, c->pos - 8, (unsigned long long)*len, gguf_remaining(c));
    *s = c->base + c->pos;
    c->pos += (size_t)*len;
    return MT_OK;
}

mt_status gguf_read_name(gguf_cursor *c, char **out, const char *what) {
    const uint8_t *s;
    uint64_t len;
    mt_status st = gguf_read_str_ref(c, &s, &len, what);
    if (st) return st;
    if (memchr(s, 0, (size_t)len))
        return mt_fail(MT_ERR_FORMAT, "gguf: %s: %s at byte %zu contains a NUL byte", c->path, what,
                       c->pos - (size_t)len);
    *out = mt_strndup((const char *)s, (size_t)len);
    return *out ? MT_OK : MT_ERR_NOMEM;
}
