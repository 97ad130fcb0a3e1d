/* GGUF writer: tensor descriptions and the file. Layout: header, metadata, tensor infos,
 * zero padding to the alignment, then each tensor's data padded to the alignment, with
 * offsets relative to the start of the data section. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/gguf_write_internal.h"

#define GGUF_VERSION 3
#define DEFAULT_ALIGNMENT 32
/* llama.cpp refuses longer tensor names (GGML_MAX_NAME is 64 with the NUL). */
#define MAX_NAME_BYTES 63

static mt_status tensor_bytes(const char *name, int type, int n_dims, const int64_t *ne,
                              uint64_t *bytes) {
    int64_t be;
    size_t bb;
    if (!mt_ggml_type_layout(type, &be, &bb))
        return mt_fail(MT_ERR_ARG, "gguf writer: tensor '%s' has unknown GGML type %d", name, type);
    if (n_dims < 1 || n_dims > 4)
        return mt_fail(MT_ERR_ARG, "gguf writer: tensor '%s' has %d dimensions (1 to 4)", name,
                       n_dims);
    uint64_t count = 1;
    for (int i = 0; i < n_dims; i++)
        if (ne[i] < 1 || __builtin_mul_overflow(count, (uint64_t)ne[i], &count) ||
            count > INT64_MAX)
            return mt_fail(MT_ERR_ARG, "gguf writer: tensor '%s' has invalid dimension %d (%lld)",
                           name, i, (long long)ne[i]);
    if (ne[0] % be != 0)
        return mt_fail(MT_ERR_ARG, "gguf writer: tensor '%s' rows of %lld are not whole %s blocks",
                       name, (long long)ne[0], mt_dtype_name(type));
    if (__builtin_mul_overflow(count / (uint64_t)be, (uint64_t)bb, bytes))
        return mt_fail(MT_ERR_ARG, "gguf writer: tensor '%s' is too large", name);
    return MT_OK;
}

static mt_status check_name(const mt_gguf_writer *w, const char *name) {
    if (!name || !*name) return mt_fail(MT_ERR_ARG, "gguf writer: empty tensor name");
    if (strlen(name) > MAX_NAME_BYTES)
        return mt_fail(MT_ERR_ARG, "gguf writer: tensor name '%s' is longer than %d bytes", name,
                       MAX_NAME_BYTES);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return mt_fail(MT_ERR_ARG, "gguf writer: duplicate tensor '%s'", name);
    return MT_OK;
}

static mt_status add(mt_gguf_writer *w, const mt_gguf_writer_tensor *t) {
    uint64_t bytes = 0;
    mt_status st = check_name(w, t->name);
    if (!st) st = tensor_bytes(t->name, t->ggml_type, t->n_dims, t->ne, &bytes);
    if (st) return st;
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        mt_gguf_writer_tensor *p = realloc(w->tensors, cap * sizeof *p);
        if (!p) return mt_fail(MT_ERR_NOMEM, "gguf writer: out of memory for tensors");
        w->tensors = p;
        w->cap_tensors = cap;
    }
    mt_gguf_writer_tensor *slot = &w->tensors[w->n_tensors];
    *slot = *t;
    slot->nbytes = bytes;
    if (!(slot->name = mt_strdup(t->name))) return MT_ERR_NOMEM;
    w->n_tensors++;
    return MT_OK;
}

/* Dimensions past n_dims are 1 so readers that look at all four see a plain shape. */
static void fill_shape(mt_gguf_writer_tensor *t, int n_dims, const int64_t *ne) {
    t->n_dims = n_dims;
    for (int i = 0; i < 4; i++) t->ne[i] = i < n_dims && n_dims <= 4 ? ne[i] : 1;
}

mt_status mt_gguf_writer_add_tensor(mt_gguf_writer *w, const char *name, int ggml_type, int n_dims,
                                    const int64_t *ne, const void *data) {
    if (!data) return mt_fail(MT_ERR_ARG, "gguf writer: tensor '%s' has no data", name);
    mt_gguf_writer_tensor t = {.name = (char *)name, .ggml_type = ggml_type, .data = data};
    fill_shape(&t, n_dims, ne);
    return add(w, &t);
}

mt_status mt_gguf_writer_add_tensor_fn(mt_gguf_writer *w, const char *name, int ggml_type,
                                       int n_dims, const int64_t *ne, mt_fill_fn fill, void *ctx) {
    if (!fill) return mt_fail(MT_ERR_ARG, "gguf writer: tensor '%s' has no fill function", name);
    mt_gguf_writer_tensor t = {
        .name = (char *)name, .ggml_type = ggml_type, .fill = fill, .ctx = ctx};
    fill_shape(&t, n_dims, ne);
    return add(w, &t);
}

uint64_t mt_gguf_writer_n_tensors(const mt_gguf_writer *w) {
    return w->n_tensors;
}

static uint64_t align_up(uint64_t v, uint64_t a) {
    return (v + a - 1) / a * a;
}

static uint64_t alignment_of(const mt_gguf_writer *w) {
    const mt_gguf_writer_kv *kv = gw_find_kv(w, "general.alignment");
    uint32_t a = DEFAULT_ALIGNMENT;
    if (kv) memcpy(&a, kv->val, sizeof a); /* validated as a u32 power of two when set */
    return a;
}

/* Everything before the data section, without the final padding. */
static mt_status encode_header(const mt_gguf_writer *w, uint64_t align, gw_buf *b) {
    gw_buf_put(b, "GGUF", 4);
    gw_buf_u32(b, GGUF_VERSION);
    gw_buf_u64(b, w->n_tensors);
    gw_buf_u64(b, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        const mt_gguf_writer_kv *kv = &w->kv[i];
        gw_buf_str(b, kv->key, strlen(kv->key));
        gw_buf_u32(b, kv->type);
        gw_buf_put(b, kv->val, kv->val_len);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const mt_gguf_writer_tensor *t = &w->tensors[i];
        gw_buf_str(b, t->name, strlen(t->name));
        gw_buf_u32(b, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) gw_buf_u64(b, (uint64_t)t->ne[d]);
        gw_buf_u32(b, (uint32_t)t->ggml_type);
        gw_buf_u64(b, offset);
        offset = align_up(offset + t->nbytes, align);
    }
    return b->oom ? mt_fail(MT_ERR_NOMEM, "gguf writer: out of memory for the header") : MT_OK;
}

static mt_status write_tensor(mt_atomic_file *f, const mt_gguf_writer_tensor *t) {
    if (t->data) return mt_atomic_write(f, t->data, (size_t)t->nbytes);
    void *buf = malloc((size_t)t->nbytes);
    if (!buf)
        return mt_fail(MT_ERR_NOMEM, "gguf writer: out of memory for tensor '%s' (%llu bytes)",
                       t->name, (unsigned long long)t->nbytes);
    mt_status st = t->fill(t->ctx, buf, (size_t)t->nbytes);
    if (st) st = mt_fail_prefix(st, t->name);
    if (!st) st = mt_atomic_write(f, buf, (size_t)t->nbytes);
    free(buf);
    return st;
}

static mt_status write_body(const mt_gguf_writer *w, mt_atomic_file *f, uint64_t align) {
    gw_buf header = {0};
    mt_status st = encode_header(w, align, &header);
    if (!st) st = mt_atomic_write(f, header.p, header.n);
    free(header.p);
    if (!st) st = mt_atomic_pad(f, align);
    for (size_t i = 0; !st && i < w->n_tensors; i++) {
        st = write_tensor(f, &w->tensors[i]);
        if (!st) st = mt_atomic_pad(f, align);
    }
    return st;
}

mt_status mt_gguf_writer_write(const mt_gguf_writer *w, const char *path) {
    mt_atomic_file f;
    mt_status st = mt_atomic_open(&f, path);
    if (st) return mt_fail_prefix(st, "gguf writer");
    if ((st = write_body(w, &f, alignment_of(w)))) {
        mt_atomic_abort(&f);
        return mt_fail_prefix(st, path);
    }
    st = mt_atomic_commit(&f);
    return st ? mt_fail_prefix(st, "gguf writer") : MT_OK;
}
