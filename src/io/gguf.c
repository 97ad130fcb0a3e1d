#include "io/gguf.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/file_util.h"
#include "io/gguf_internal.h"

/* Smallest possible encodings, used to reject absurd counts before allocating:
 * a key/value is an empty key (8), a type (4) and a one-byte value; a tensor info is
 * an empty name (8), n_dims (4), no dimensions, a type (4) and an offset (8). */
#define MIN_KV_BYTES 13
#define MIN_TENSOR_INFO_BYTES 24
#define DEFAULT_ALIGNMENT 32
#define MAX_ALIGNMENT (1u << 30)

/* Grows *arr so that it holds at least need elements. */
static mt_status grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return MT_OK;
    size_t n = *cap ? *cap * 2 : 16;
    if (n < need) n = need;
    void *p = realloc(*arr, n * elem);
    if (!p) return mt_fail(MT_ERR_NOMEM, "gguf: out of memory for %zu entries", n);
    memset((char *)p + *cap * elem, 0, (n - *cap) * elem);
    *arr = p;
    *cap = n;
    return MT_OK;
}

static mt_status read_header(gguf_cursor *c, mt_gguf *g, uint64_t *n_tensors, uint64_t *n_kv) {
    uint8_t magic[4];
    mt_status st = gguf_read_bytes(c, magic, 4, "the magic number");
    if (st) return st;
    if (memcmp(magic, "GGUF", 4) != 0)
        return mt_fail(MT_ERR_FORMAT, "gguf: %s: not a GGUF file (starts with %02x %02x %02x %02x)",
                       c->path, magic[0], magic[1], magic[2], magic[3]);
    if ((st = gguf_read_u32(c, &g->version, "the version"))) return st;
    uint32_t v = g->version;
    if (v == 0x02000000u || v == 0x03000000u)
        return mt_fail(MT_ERR_UNSUPPORTED, "gguf: %s: big-endian GGUF files are not supported",
                       c->path);
    if (v == 1 || (v > 3 && v < 0x10000))
        return mt_fail(MT_ERR_UNSUPPORTED,
                       "gguf: %s: GGUF version %u is not supported (2 and 3 are)", c->path, v);
    if (v != 2 && v != 3)
        return mt_fail(MT_ERR_FORMAT, "gguf: %s: invalid GGUF version %u", c->path, v);
    if ((st = gguf_read_u64(c, n_tensors, "the tensor count"))) return st;
    return gguf_read_u64(c, n_kv, "the metadata count");
}

static mt_status read_kvs(gguf_cursor *c, mt_gguf *g, uint64_t n_kv) {
    if (n_kv > gguf_remaining(c) / MIN_KV_BYTES)
        return mt_fail(MT_ERR_FORMAT,
                       "gguf: %s: header claims %llu metadata entries but only %zu bytes follow",
                       c->path, (unsigned long long)n_kv, gguf_remaining(c));
    size_t cap = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        mt_status st = grow((void **)&g->kv, &cap, (size_t)i + 1, sizeof *g->kv);
        if (st) return st;
        g->n_kv = i + 1; /* the slot is zeroed, so close() can free a partial entry */
        if ((st = gguf_read_kv(c, &g->kv[i]))) return st;
    }
    return MT_OK;
}

static int cmp_kv_ptr(const void *a, const void *b) {
    return strcmp((*(const mt_gguf_kv *const *)a)->key, (*(const mt_gguf_kv *const *)b)->key);
}

static int cmp_tensor_ptr(const void *a, const void *b) {
    return strcmp((*(const mt_gguf_tensor *const *)a)->name,
                  (*(const mt_gguf_tensor *const *)b)->name);
}

static mt_status index_kvs(gguf_impl *impl) {
    mt_gguf *g = &impl->pub;
    impl->kv_sorted = mt_calloc((size_t)g->n_kv, sizeof *impl->kv_sorted);
    if (!impl->kv_sorted) return MT_ERR_NOMEM;
    for (size_t i = 0; i < g->n_kv; i++) impl->kv_sorted[i] = &g->kv[i];
    qsort(impl->kv_sorted, (size_t)g->n_kv, sizeof *impl->kv_sorted, cmp_kv_ptr);
    for (size_t i = 1; i < g->n_kv; i++)
        if (!strcmp(impl->kv_sorted[i - 1]->key, impl->kv_sorted[i]->key))
            return mt_fail(MT_ERR_FORMAT, "gguf: %s: duplicate metadata key '%s'", g->path,
                           impl->kv_sorted[i]->key);
    return MT_OK;
}

static mt_status index_tensors(gguf_impl *impl) {
    mt_gguf *g = &impl->pub;
    impl->tensor_sorted = mt_calloc((size_t)g->n_tensors, sizeof *impl->tensor_sorted);
    if (!impl->tensor_sorted) return MT_ERR_NOMEM;
    for (size_t i = 0; i < g->n_tensors; i++) impl->tensor_sorted[i] = &g->tensors[i];
    qsort(impl->tensor_sorted, (size_t)g->n_tensors, sizeof *impl->tensor_sorted, cmp_tensor_ptr);
    for (size_t i = 1; i < g->n_tensors; i++)
        if (!strcmp(impl->tensor_sorted[i - 1]->name, impl->tensor_sorted[i]->name))
            return mt_fail(MT_ERR_FORMAT, "gguf: %s: duplicate tensor '%s'", g->path,
                           impl->tensor_sorted[i]->name);
    return MT_OK;
}

static mt_status read_alignment(mt_gguf *g) {
    g->alignment = DEFAULT_ALIGNMENT;
    const mt_gguf_kv *kv = mt_gguf_find(g, "general.alignment");
    if (!kv) return MT_OK;
    int64_t a;
    if (!mt_gguf_get_int(g, "general.alignment", &a))
        return mt_fail(MT_ERR_FORMAT, "gguf: %s: general.alignment is not an integer", g->path);
    if (a <= 0 || a > MAX_ALIGNMENT || (a & (a - 1)) != 0)
        return mt_fail(MT_ERR_FORMAT, "gguf: %s: general.alignment %lld is not a power of two",
                       g->path, (long long)a);
    g->alignment = (uint64_t)a;
    return MT_OK;
}

static mt_status read_dims(gguf_cursor *c, mt_gguf_tensor *t) {
    uint32_t n_dims;
    mt_status st = gguf_read_u32(c, &n_dims, "tensor dimension count");
    if (st) return st;
    if (n_dims > 4)
        return mt_fail(MT_ERR_FORMAT, "gguf: %s: tensor '%s' has %u dimensions (at most 4)",
                       c->path, t->name, n_dims);
    t->n_dims = (int)n_dims;
    int64_t total = 1;
    for (int i = 0; i < 4; i++) {
        uint64_t d = 1;
        if (i < t->n_dims && (st = gguf_read_u64(c, &d, "tensor dimension"))) return st;
        if (d == 0 || d > INT64_MAX || (int64_t)d > INT64_MAX / total)
            return mt_fail(MT_ERR_FORMAT, "gguf: %s: tensor '%s' has invalid dimension %d (%llu)",
                           c->path, t->name, i, (unsigned long long)d);
        t->ne[i] = (int64_t)d;
        total *= t->ne[i];
    }
    return MT_OK;
}

static mt_status read_tensor_info(gguf_cursor *c, mt_gguf_tensor *t) {
    mt_status st = gguf_read_name(c, &t->name, "tensor name");
    if (!st) st = read_dims(c, t);
    uint32_t type;
    if (!st) st = gguf_read_u32(c, &type, "tensor type");
    if (!st) st = gguf_read_u64(c, &t->offset, "tensor offset");
    if (st) return st;
    t->ggml_type = type > INT_MAX ? -1 : (int)type;
    return MT_OK;
}

static mt_status read_tensor_infos(gguf_cursor *c, mt_gguf *g, uint64_t n) {
    if (n > gguf_remaining(c) / MIN_TENSOR_INFO_BYTES)
        return mt_fail(MT_ERR_FORMAT,
                       "gguf: %s: header claims %llu tensors but only %zu bytes follow", c->path,
                       (unsigned long long)n, gguf_remaining(c));
    size_t cap = 0;
    for (uint64_t i = 0; i < n; i++) {
        mt_status st = grow((void **)&g->tensors, &cap, (size_t)i + 1, sizeof *g->tensors);
        if (st) return st;
        g->n_tensors = i + 1;
        if ((st = read_tensor_info(c, &g->tensors[i]))) return st;
    }
    return MT_OK;
}

/* Bytes of t's data, or MT_ERR_FORMAT if rows do not split into whole blocks. */
static mt_status tensor_bytes(const mt_gguf *g, const mt_gguf_tensor *t, int64_t be, size_t bb,
                              uint64_t *bytes) {
    if (t->ne[0] % be != 0)
        return mt_fail(
            MT_ERR_FORMAT,
            "gguf: %s: tensor '%s' rows of %lld elements are not whole %s blocks of %lld", g->path,
            t->name, (long long)t->ne[0], mt_dtype_name(t->ggml_type), (long long)be);
    uint64_t rows = (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
    uint64_t row_bytes = (uint64_t)(t->ne[0] / be) * bb, total;
    if (__builtin_mul_overflow(rows, row_bytes, &total))
        return mt_fail(MT_ERR_FORMAT, "gguf: %s: tensor '%s' is too large", g->path, t->name);
    *bytes = total;
    return MT_OK;
}

static mt_status check_tensor(mt_gguf *g, mt_gguf_tensor *t) {
    uint64_t avail = g->data_offset <= g->map_size ? g->map_size - g->data_offset : 0;
    if (t->offset % g->alignment != 0)
        return mt_fail(MT_ERR_FORMAT, "gguf: %s: tensor '%s' offset %llu is not aligned to %llu",
                       g->path, t->name, (unsigned long long)t->offset,
                       (unsigned long long)g->alignment);
    if (t->offset >= avail)
        return mt_fail(MT_ERR_FORMAT, "gguf: %s: tensor '%s' starts past the end of the file",
                       g->path, t->name);
    int64_t be;
    size_t bb;
    if (!mt_ggml_type_layout(t->ggml_type, &be, &bb)) return MT_OK; /* size unknowable */
    uint64_t bytes = 0;
    mt_status st = tensor_bytes(g, t, be, bb, &bytes);
    if (st) return st;
    if (bytes > avail - t->offset)
        return mt_fail(MT_ERR_FORMAT,
                       "gguf: %s: tensor '%s' (%llu bytes at data offset %llu) extends past the "
                       "end of the file",
                       g->path, t->name, (unsigned long long)bytes, (unsigned long long)t->offset);
    if (mt_dtype_supported(t->ggml_type)) {
        t->view.type = (mt_dtype)t->ggml_type;
        t->view.n_dims = t->n_dims;
        memcpy(t->view.ne, t->ne, sizeof t->ne);
        t->view.data = (const uint8_t *)g->map + g->data_offset + t->offset;
    }
    return MT_OK;
}

static mt_status parse(gguf_impl *impl) {
    mt_gguf *g = &impl->pub;
    gguf_cursor c = {g->map, g->map_size, 0, g->path};
    uint64_t n_tensors, n_kv;
    mt_status st = read_header(&c, g, &n_tensors, &n_kv);
    if (!st) st = read_kvs(&c, g, n_kv);
    if (!st) st = index_kvs(impl);
    if (!st) st = read_alignment(g);
    if (!st) st = read_tensor_infos(&c, g, n_tensors);
    if (!st) st = index_tensors(impl);
    if (st) return st;
    g->data_offset = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if ((st = check_tensor(g, &g->tensors[i]))) return st;
    return MT_OK;
}

mt_status mt_gguf_open(const char *path, mt_gguf **out) {
    *out = NULL;
    gguf_impl *impl = mt_calloc(1, sizeof *impl);
    if (!impl) return MT_ERR_NOMEM;
    mt_gguf *g = &impl->pub;
    mt_status st = (g->path = mt_strdup(path)) ? MT_OK : MT_ERR_NOMEM;
    if (!st) st = mt_map_file(path, (const void **)&g->map, &g->map_size);
    if (!st) st = parse(impl);
    if (st) {
        mt_gguf_close(g);
        return st;
    }
    *out = g;
    return MT_OK;
}

void mt_gguf_close(mt_gguf *g) {
    if (!g) return;
    gguf_impl *impl = (gguf_impl *)g;
    for (uint64_t i = 0; i < g->n_kv; i++) gguf_kv_free(&g->kv[i]);
    free(g->kv);
    for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    free(impl->kv_sorted);
    free(impl->tensor_sorted);
    mt_unmap_file(g->map, g->map_size);
    free(g->path);
    free(impl);
}

static int cmp_name(const void *name, const void *elem) {
    return strcmp(name, (*(const mt_gguf_tensor *const *)elem)->name);
}

const mt_gguf_tensor *mt_gguf_find_tensor(const mt_gguf *g, const char *name) {
    const gguf_impl *impl = (const gguf_impl *)g;
    if (!impl->tensor_sorted) return NULL;
    const mt_gguf_tensor *const *hit = bsearch(name, impl->tensor_sorted, (size_t)g->n_tensors,
                                               sizeof *impl->tensor_sorted, cmp_name);
    return hit ? *hit : NULL;
}

mt_status mt_gguf_tensor_view(const mt_gguf *g, const char *name, const mt_tensor **out) {
    const mt_gguf_tensor *t = mt_gguf_find_tensor(g, name);
    if (!t) return mt_fail(MT_ERR_FORMAT, "gguf: %s: no tensor named '%s'", g->path, name);
    if (!mt_dtype_supported(t->ggml_type))
        return mt_fail(MT_ERR_UNSUPPORTED,
                       "gguf: %s: tensor '%s' has type %s (GGML id %d), which meteor cannot read",
                       g->path, name, mt_dtype_name(t->ggml_type), t->ggml_type);
    *out = &t->view;
    return MT_OK;
}
