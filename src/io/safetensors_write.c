#include "io/safetensors_write.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/safetensors_write_internal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data is little-endian and written in host order");

mt_status mt_st_writer_new(mt_st_writer **out) {
    *out = mt_calloc(1, sizeof **out);
    return *out ? MT_OK : mt_fail(MT_ERR_NOMEM, "safetensors writer: out of memory");
}

void mt_st_writer_free(mt_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->t[i].name);
    free(w->t);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->meta);
    free(w);
}

size_t mt_st_writer_count(const mt_st_writer *w) {
    return w->n;
}

/* Grows *arr (of elem-byte entries) so one more fits. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 1;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, c * elem);
    if (!p) return 0;
    *arr = p;
    *cap = c;
    return 1;
}

static mt_status check_name(const mt_st_writer *w, const char *name) {
    if (!name || !*name) return mt_fail(MT_ERR_ARG, "safetensors writer: empty tensor name");
    if (!strcmp(name, "__metadata__"))
        return mt_fail(MT_ERR_ARG, "safetensors writer: '__metadata__' is not a tensor name");
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return mt_fail(MT_ERR_ARG, "safetensors writer: duplicate tensor '%s'", name);
    return MT_OK;
}

static mt_status check_shape(const char *name, mt_dtype type, int n_dims, const int64_t *shape,
                             uint64_t *bytes) {
    if (!st_dtype_tag(type))
        return mt_fail(MT_ERR_ARG, "safetensors writer: tensor '%s' has type %s (F32, F16, BF16)",
                       name, mt_dtype_name((int)type));
    if (n_dims < 0 || n_dims > MT_ST_MAX_DIMS)
        return mt_fail(MT_ERR_ARG, "safetensors writer: tensor '%s' has %d dimensions (0 to %d)",
                       name, n_dims, MT_ST_MAX_DIMS);
    uint64_t total = st_elem_size(type);
    for (int i = 0; i < n_dims; i++)
        if (shape[i] < 0 || __builtin_mul_overflow(total, (uint64_t)shape[i], &total) ||
            total > ST_MAX_BYTES)
            return mt_fail(MT_ERR_ARG, "safetensors writer: tensor '%s' has invalid dimension %d",
                           name, i);
    *bytes = total;
    return MT_OK;
}

static mt_status add(mt_st_writer *w, const st_entry *e) {
    uint64_t bytes = 0;
    mt_status st = check_name(w, e->name);
    if (!st) st = check_shape(e->name, e->type, e->n_dims, e->shape, &bytes);
    if (st) return st;
    if (bytes && !e->data && !e->fill)
        return mt_fail(MT_ERR_ARG, "safetensors writer: tensor '%s' has no data", e->name);
    if (!grow((void **)&w->t, &w->cap, w->n, sizeof *w->t))
        return mt_fail(MT_ERR_NOMEM, "safetensors writer: out of memory");
    st_entry *slot = &w->t[w->n];
    *slot = *e;
    slot->nbytes = bytes;
    if (!(slot->name = mt_strdup(e->name))) return MT_ERR_NOMEM;
    w->n++;
    return MT_OK;
}

static st_entry make_entry(const char *name, mt_dtype type, int n_dims, const int64_t *shape) {
    st_entry e = {.name = (char *)name, .type = type, .n_dims = n_dims};
    /* An out-of-range n_dims is rejected later without reading shape. */
    for (int i = 0; n_dims <= MT_ST_MAX_DIMS && i < n_dims; i++) e.shape[i] = shape[i];
    return e;
}

mt_status mt_st_writer_add(mt_st_writer *w, const char *name, mt_dtype type, int n_dims,
                           const int64_t *shape, const void *data) {
    st_entry e = make_entry(name, type, n_dims, shape);
    e.data = data;
    return add(w, &e);
}

mt_status mt_st_writer_add_fn(mt_st_writer *w, const char *name, mt_dtype type, int n_dims,
                              const int64_t *shape, mt_fill_fn fill, void *ctx) {
    if (!fill) return mt_fail(MT_ERR_ARG, "safetensors writer: tensor '%s' has no fill", name);
    st_entry e = make_entry(name, type, n_dims, shape);
    e.fill = fill;
    e.ctx = ctx;
    return add(w, &e);
}

mt_status mt_st_writer_set_meta(mt_st_writer *w, const char *key, const char *value) {
    char *v = mt_strdup(value);
    if (!v) return MT_ERR_NOMEM;
    for (size_t i = 0; i < w->n_meta; i++)
        if (!strcmp(w->meta[i].key, key)) {
            free(w->meta[i].value);
            w->meta[i].value = v;
            return MT_OK;
        }
    char *k = mt_strdup(key);
    if (!k || !grow((void **)&w->meta, &w->cap_meta, w->n_meta, sizeof *w->meta)) {
        free(k);
        free(v);
        return mt_fail(MT_ERR_NOMEM, "safetensors writer: out of memory");
    }
    w->meta[w->n_meta++] = (st_meta){k, v};
    return MT_OK;
}
