/* GGUF writer: the metadata store (each value kept encoded exactly as it will appear in
 * the file) and the setters. Tensors and the file itself: gguf_write_file.c. */
#include "io/gguf_write.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/gguf_write_internal.h"

/* Values are copied into the file in host order, which GGUF requires to be little-endian. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the GGUF writer needs a little-endian host");

#define ALIGNMENT_KEY "general.alignment"

void gw_buf_put(gw_buf *b, const void *data, size_t n) {
    if (b->oom || n == 0) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap = cap > SIZE_MAX / 2 ? b->n + n : cap * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

void gw_buf_u32(gw_buf *b, uint32_t v) {
    gw_buf_put(b, &v, sizeof v);
}

void gw_buf_u64(gw_buf *b, uint64_t v) {
    gw_buf_put(b, &v, sizeof v);
}

void gw_buf_str(gw_buf *b, const char *s, uint64_t len) {
    gw_buf_u64(b, len);
    gw_buf_put(b, s, (size_t)len);
}

mt_gguf_writer_kv *gw_find_kv(const mt_gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) return &w->kv[i];
    return NULL;
}

mt_status mt_gguf_writer_new(mt_gguf_writer **out) {
    *out = mt_calloc(1, sizeof **out);
    return *out ? MT_OK : mt_fail(MT_ERR_NOMEM, "gguf writer: out of memory");
}

void mt_gguf_writer_free(mt_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    free(w->kv);
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    free(w);
}

uint64_t mt_gguf_writer_n_kv(const mt_gguf_writer *w) {
    return w->n_kv;
}

/* Readers find the data by this key, so a wrong type or a non-power-of-two would make
 * every tensor offset unreadable: refuse it here rather than write a broken file. */
static mt_status check_alignment(const char *key, uint32_t type, const gw_buf *val) {
    if (strcmp(key, ALIGNMENT_KEY) != 0) return MT_OK;
    uint32_t a = 0;
    if (type == MT_GGUF_U32) memcpy(&a, val->p, sizeof a);
    if (type != MT_GGUF_U32 || a == 0 || (a & (a - 1)) != 0)
        return mt_fail(MT_ERR_ARG, "gguf writer: %s must be a u32 power of two", ALIGNMENT_KEY);
    return MT_OK;
}

/* The slot for key: the existing one, or a new one appended at the end. */
static mt_status slot_for(mt_gguf_writer *w, const char *key, mt_gguf_writer_kv **out) {
    if ((*out = gw_find_kv(w, key))) return MT_OK;
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        mt_gguf_writer_kv *p = realloc(w->kv, cap * sizeof *p);
        if (!p) return mt_fail(MT_ERR_NOMEM, "gguf writer: out of memory for '%s'", key);
        w->kv = p;
        w->cap_kv = cap;
    }
    char *k = mt_strdup(key);
    if (!k) return MT_ERR_NOMEM;
    *out = &w->kv[w->n_kv++];
    **out = (mt_gguf_writer_kv){.key = k};
    return MT_OK;
}

/* Takes ownership of val's bytes whatever the outcome. */
static mt_status put_kv(mt_gguf_writer *w, const char *key, uint32_t type, gw_buf *val) {
    mt_gguf_writer_kv *kv = NULL;
    mt_status st = MT_OK;
    if (val->oom) st = mt_fail(MT_ERR_NOMEM, "gguf writer: out of memory for '%s'", key);
    if (!st && (!key || !*key)) st = mt_fail(MT_ERR_ARG, "gguf writer: empty metadata key");
    if (!st) st = check_alignment(key, type, val);
    if (!st) st = slot_for(w, key, &kv);
    if (st) {
        free(val->p);
        return st;
    }
    free(kv->val);
    kv->type = type;
    kv->val = val->p;
    kv->val_len = val->n;
    return MT_OK;
}

static mt_status set_scalar(mt_gguf_writer *w, const char *key, mt_gguf_type t, const void *v,
                            size_t n) {
    gw_buf b = {0};
    gw_buf_put(&b, v, n);
    return put_kv(w, key, t, &b);
}

#define SETTER(suffix, ctype, tag)                                                                 \
    mt_status mt_gguf_writer_set_##suffix(mt_gguf_writer *w, const char *key, ctype v) {           \
        return set_scalar(w, key, tag, &v, sizeof v);                                              \
    }
SETTER(u8, uint8_t, MT_GGUF_U8)
SETTER(i8, int8_t, MT_GGUF_I8)
SETTER(u16, uint16_t, MT_GGUF_U16)
SETTER(i16, int16_t, MT_GGUF_I16)
SETTER(u32, uint32_t, MT_GGUF_U32)
SETTER(i32, int32_t, MT_GGUF_I32)
SETTER(u64, uint64_t, MT_GGUF_U64)
SETTER(i64, int64_t, MT_GGUF_I64)
SETTER(f32, float, MT_GGUF_F32)
SETTER(f64, double, MT_GGUF_F64)
#undef SETTER

mt_status mt_gguf_writer_set_bool(mt_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, MT_GGUF_BOOL, &b, 1);
}

mt_status mt_gguf_writer_set_strn(mt_gguf_writer *w, const char *key, const char *s, uint64_t len) {
    gw_buf b = {0};
    gw_buf_str(&b, s, len);
    return put_kv(w, key, MT_GGUF_STRING, &b);
}

mt_status mt_gguf_writer_set_str(mt_gguf_writer *w, const char *key, const char *s) {
    return mt_gguf_writer_set_strn(w, key, s, strlen(s));
}

static mt_status check_bools(const char *key, const uint8_t *v, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (v[i] > 1)
            return mt_fail(MT_ERR_ARG, "gguf writer: '%s' element %llu is a bool of %u", key,
                           (unsigned long long)i, v[i]);
    return MT_OK;
}

mt_status mt_gguf_writer_set_array(mt_gguf_writer *w, const char *key, mt_gguf_type elem_type,
                                   const void *data, uint64_t n) {
    size_t es = mt_gguf_scalar_size(elem_type);
    if (!es)
        return mt_fail(MT_ERR_ARG, "gguf writer: '%s': arrays of type %d are not numeric", key,
                       (int)elem_type);
    if (n > SIZE_MAX / es) return mt_fail(MT_ERR_ARG, "gguf writer: '%s': array too large", key);
    if (elem_type == MT_GGUF_BOOL) {
        mt_status st = check_bools(key, data, n);
        if (st) return st;
    }
    gw_buf b = {0};
    gw_buf_u32(&b, elem_type);
    gw_buf_u64(&b, n);
    gw_buf_put(&b, data, (size_t)n * es);
    return put_kv(w, key, MT_GGUF_ARRAY, &b);
}

mt_status mt_gguf_writer_set_str_array(mt_gguf_writer *w, const char *key, const char *const *strs,
                                       const uint64_t *lens, uint64_t n) {
    gw_buf b = {0};
    gw_buf_u32(&b, MT_GGUF_STRING);
    gw_buf_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) gw_buf_str(&b, strs[i], lens ? lens[i] : strlen(strs[i]));
    return put_kv(w, key, MT_GGUF_ARRAY, &b);
}

int mt_gguf_writer_remove_kv(mt_gguf_writer *w, const char *key) {
    mt_gguf_writer_kv *kv = gw_find_kv(w, key);
    if (!kv) return 0;
    free(kv->key);
    free(kv->val);
    size_t i = (size_t)(kv - w->kv);
    memmove(kv, kv + 1, (w->n_kv - i - 1) * sizeof *kv);
    w->n_kv--;
    return 1;
}

int mt_gguf_key_in_list(const char *key, void *ctx) {
    for (const char *const *e = ctx; e && *e; e++) {
        size_t n = strlen(*e);
        if (n && (*e)[n - 1] == '*' ? !strncmp(key, *e, n - 1) : !strcmp(key, *e)) return 1;
    }
    return 0;
}
