#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/range.h"
#include "io/gguf_internal.h"

size_t mt_gguf_scalar_size(uint32_t t) {
    switch (t) {
    case MT_GGUF_U8:
    case MT_GGUF_I8:
    case MT_GGUF_BOOL:
        return 1;
    case MT_GGUF_U16:
    case MT_GGUF_I16:
        return 2;
    case MT_GGUF_U32:
    case MT_GGUF_I32:
    case MT_GGUF_F32:
        return 4;
    case MT_GGUF_U64:
    case MT_GGUF_I64:
    case MT_GGUF_F64:
        return 8;
    default:
        return 0;
    }
}

static int is_integer(mt_gguf_type t) {
    return t == MT_GGUF_U8 || t == MT_GGUF_I8 || t == MT_GGUF_U16 || t == MT_GGUF_I16 ||
           t == MT_GGUF_U32 || t == MT_GGUF_I32 || t == MT_GGUF_U64 || t == MT_GGUF_I64;
}

static mt_status decode_scalar(const gguf_cursor *c, mt_gguf_kv *kv, const uint8_t *p) {
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
        float f32;
        double f64;
    } v;
    memcpy(&v, p, mt_gguf_scalar_size(kv->type));
    switch (kv->type) {
    case MT_GGUF_U8:
        kv->u64 = v.u8, kv->i64 = v.u8;
        break;
    case MT_GGUF_I8:
        kv->i64 = v.i8;
        break;
    case MT_GGUF_U16:
        kv->u64 = v.u16, kv->i64 = v.u16;
        break;
    case MT_GGUF_I16:
        kv->i64 = v.i16;
        break;
    case MT_GGUF_U32:
        kv->u64 = v.u32, kv->i64 = v.u32;
        break;
    case MT_GGUF_I32:
        kv->i64 = v.i32;
        break;
    case MT_GGUF_U64:
        kv->u64 = v.u64;
        kv->i64 = v.u64 > INT64_MAX ? INT64_MAX : (int64_t)v.u64;
        break;
    case MT_GGUF_I64:
        kv->i64 = v.i64;
        break;
    case MT_GGUF_F32:
        kv->f64 = v.f32;
        break;
    case MT_GGUF_F64:
        kv->f64 = v.f64;
        break;
    case MT_GGUF_BOOL:
        if (v.u8 > 1)
            return mt_fail(MT_ERR_FORMAT, "gguf: %s: metadata '%s' is a bool with value %u",
                           c->path, kv->key, v.u8);
        kv->i64 = v.u8;
        break;
    default:
        return mt_fail(MT_ERR_INTERNAL, "gguf: decode_scalar on type %d", (int)kv->type);
    }
    return MT_OK;
}

static mt_status read_string_value(gguf_cursor *c, mt_gguf_kv *kv) {
    const uint8_t *s;
    mt_status st = gguf_read_str_ref(c, &s, &kv->str_len, "string value");
    if (st) return st;
    kv->str = mt_strndup((const char *)s, (size_t)kv->str_len);
    return kv->str ? MT_OK : MT_ERR_NOMEM;
}

/* Strings of an array share one allocation: the pointer table, the length table and
 * the NUL-terminated bytes, so a 256k-token vocabulary costs one malloc. A first pass
 * validates every length and sizes the block; the second copies. */
static mt_status read_string_array(gguf_cursor *c, mt_gguf_kv *kv) {
    size_t start = c->pos, total = 0;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        const uint8_t *s;
        uint64_t len;
        mt_status st = gguf_read_str_ref(c, &s, &len, "string array element");
        if (st) return st;
        total += (size_t)len + 1;
    }
    size_t n = (size_t)kv->arr_n;
    char *block = mt_calloc(1, n * (sizeof(char *) + sizeof(uint64_t)) + total);
    if (!block) return MT_ERR_NOMEM;
    kv->arr_str = (char **)block;
    kv->arr_str_len = (uint64_t *)(block + n * sizeof(char *));
    char *text = block + n * (sizeof(char *) + sizeof(uint64_t));
    c->pos = start;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s;
        uint64_t len;
        gguf_read_str_ref(c, &s, &len, "string array element"); /* validated above */
        memcpy(text, s, (size_t)len);
        kv->arr_str[i] = text;
        kv->arr_str_len[i] = len;
        text += len + 1;
    }
    return MT_OK;
}

static mt_status check_bools(const gguf_cursor *c, const mt_gguf_kv *kv) {
    const uint8_t *b = kv->arr;
    for (uint64_t i = 0; i < kv->arr_n; i++)
        if (b[i] > 1)
            return mt_fail(MT_ERR_FORMAT, "gguf: %s: metadata '%s' element %llu is a bool of %u",
                           c->path, kv->key, (unsigned long long)i, b[i]);
    return MT_OK;
}

static mt_status read_array(gguf_cursor *c, mt_gguf_kv *kv) {
    uint32_t t;
    mt_status st = gguf_read_u32(c, &t, "array element type");
    if (!st) st = gguf_read_u64(c, &kv->arr_n, "array length");
    if (st) return st;
    kv->arr_type = (mt_gguf_type)t;
    if (t == MT_GGUF_ARRAY)
        return mt_fail(MT_ERR_UNSUPPORTED, "gguf: %s: metadata '%s' is a nested array", c->path,
                       kv->key);
    if (t == MT_GGUF_STRING) return read_string_array(c, kv);
    size_t es = mt_gguf_scalar_size(t);
    if (!es)
        return mt_fail(MT_ERR_FORMAT, "gguf: %s: metadata '%s' has unknown array element type %u",
                       c->path, kv->key, t);
    if (kv->arr_n > gguf_remaining(c) / es)
        return mt_fail(MT_ERR_FORMAT,
                       "gguf: %s: metadata '%s' claims %llu elements but only %zu bytes remain",
                       c->path, kv->key, (unsigned long long)kv->arr_n, gguf_remaining(c));
    size_t bytes = (size_t)kv->arr_n * es;
    kv->arr = mt_calloc(1, bytes);
    if (!kv->arr) return MT_ERR_NOMEM;
    gguf_read_bytes(c, kv->arr, bytes, "array data");
    return t == MT_GGUF_BOOL ? check_bools(c, kv) : MT_OK;
}

mt_status gguf_read_kv(gguf_cursor *c, mt_gguf_kv *kv) {
    mt_status st = gguf_read_name(c, &kv->key, "metadata key");
    if (st) return st;
    uint32_t t;
    if ((st = gguf_read_u32(c, &t, "metadata value type"))) return st;
    kv->type = (mt_gguf_type)t;
    if (t == MT_GGUF_STRING) return read_string_value(c, kv);
    if (t == MT_GGUF_ARRAY) return read_array(c, kv);
    size_t size = mt_gguf_scalar_size(t);
    if (!size)
        return mt_fail(MT_ERR_FORMAT, "gguf: %s: metadata '%s' has unknown value type %u", c->path,
                       kv->key, t);
    uint8_t raw[8];
    if ((st = gguf_read_bytes(c, raw, size, "metadata value"))) return st;
    return decode_scalar(c, kv, raw);
}

void gguf_kv_free(mt_gguf_kv *kv) {
    free(kv->key);
    free(kv->str);
    free(kv->arr);
    free(kv->arr_str);
}

static int cmp_key(const void *key, const void *elem) {
    return strcmp(key, (*(const mt_gguf_kv *const *)elem)->key);
}

const mt_gguf_kv *mt_gguf_find(const mt_gguf *g, const char *key) {
    const gguf_impl *impl = (const gguf_impl *)g;
    if (!impl->kv_sorted) return NULL;
    const mt_gguf_kv *const *hit =
        bsearch(key, impl->kv_sorted, (size_t)g->n_kv, sizeof *impl->kv_sorted, cmp_key);
    return hit ? *hit : NULL;
}

int mt_gguf_get_int(const mt_gguf *g, const char *key, int64_t *out) {
    const mt_gguf_kv *kv = mt_gguf_find(g, key);
    if (!kv || !is_integer(kv->type)) return 0;
    if (kv->type == MT_GGUF_U64 && kv->u64 > INT64_MAX) return 0;
    *out = kv->i64;
    return 1;
}

int mt_gguf_get_float(const mt_gguf *g, const char *key, double *out) {
    const mt_gguf_kv *kv = mt_gguf_find(g, key);
    if (!kv || (kv->type != MT_GGUF_F32 && kv->type != MT_GGUF_F64)) return 0;
    *out = kv->f64;
    return 1;
}

int mt_gguf_get_bool(const mt_gguf *g, const char *key, int *out) {
    const mt_gguf_kv *kv = mt_gguf_find(g, key);
    if (!kv || kv->type != MT_GGUF_BOOL) return 0;
    *out = (int)kv->i64;
    return 1;
}

const char *mt_gguf_get_str(const mt_gguf *g, const char *key) {
    const mt_gguf_kv *kv = mt_gguf_find(g, key);
    return kv && kv->type == MT_GGUF_STRING ? kv->str : NULL;
}

static const char *type_name(mt_gguf_type t) {
    static const char *const names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "unknown";
}

/* A numeric value as a double; 0 when kv holds no number. */
static int number_of(const mt_gguf_kv *kv, int integers_only, double *out) {
    if (kv->type == MT_GGUF_F32 || kv->type == MT_GGUF_F64) {
        *out = kv->f64;
        return !integers_only;
    }
    if (!is_integer(kv->type)) return 0;
    *out = kv->type == MT_GGUF_U64 ? (double)kv->u64 : (double)kv->i64;
    return 1;
}

mt_status mt_gguf_get_int_in(const mt_gguf *g, const char *key, int def, mt_range r, int *out) {
    const mt_gguf_kv *kv = mt_gguf_find(g, key);
    double v;
    *out = def;
    if (!kv) return MT_OK;
    if (!number_of(kv, 1, &v))
        return mt_fail(MT_ERR_FORMAT, "metadata '%s' must be an integer, not %s", key,
                       type_name(kv->type));
    return mt_range_int(MT_ERR_FORMAT, key, v, r, out);
}

mt_status mt_gguf_get_float_in(const mt_gguf *g, const char *key, float def, mt_range r,
                               float *out) {
    const mt_gguf_kv *kv = mt_gguf_find(g, key);
    double v;
    *out = def;
    if (!kv) return MT_OK;
    if (!number_of(kv, 0, &v))
        return mt_fail(MT_ERR_FORMAT, "metadata '%s' must be a number, not %s", key,
                       type_name(kv->type));
    return mt_range_float(MT_ERR_FORMAT, key, v, r, out);
}
