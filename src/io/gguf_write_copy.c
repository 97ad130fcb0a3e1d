/* Copying metadata a reader parsed, e.g. to write a merged model that keeps the source's
 * architecture and tokenizer keys. */
#include <string.h>

#include "io/gguf_write_internal.h"

static mt_status set_array_kv(mt_gguf_writer *w, const mt_gguf_kv *kv) {
    if (kv->arr_type == MT_GGUF_STRING)
        return mt_gguf_writer_set_str_array(w, kv->key, (const char *const *)kv->arr_str,
                                            kv->arr_str_len, kv->arr_n);
    return mt_gguf_writer_set_array(w, kv->key, kv->arr_type, kv->arr, kv->arr_n);
}

/* The reader accepts any integer type for the alignment; the format (and the reference
 * reader) want u32. */
static mt_status set_alignment_kv(mt_gguf_writer *w, const mt_gguf_kv *kv) {
    if (kv->type == MT_GGUF_U64 ? kv->u64 > UINT32_MAX : (kv->i64 < 0 || kv->i64 > UINT32_MAX))
        return mt_fail(MT_ERR_ARG, "gguf writer: general.alignment out of range");
    return mt_gguf_writer_set_u32(
        w, kv->key, (uint32_t)(kv->type == MT_GGUF_U64 ? kv->u64 : (uint64_t)kv->i64));
}

mt_status mt_gguf_writer_set_kv(mt_gguf_writer *w, const mt_gguf_kv *kv) {
    const char *k = kv->key;
    int is_int = kv->type == MT_GGUF_U8 || kv->type == MT_GGUF_I8 || kv->type == MT_GGUF_U16 ||
                 kv->type == MT_GGUF_I16 || kv->type == MT_GGUF_U32 || kv->type == MT_GGUF_I32 ||
                 kv->type == MT_GGUF_U64 || kv->type == MT_GGUF_I64;
    if (is_int && !strcmp(k, "general.alignment")) return set_alignment_kv(w, kv);
    switch (kv->type) {
    case MT_GGUF_U8:
        return mt_gguf_writer_set_u8(w, k, (uint8_t)kv->i64);
    case MT_GGUF_I8:
        return mt_gguf_writer_set_i8(w, k, (int8_t)kv->i64);
    case MT_GGUF_U16:
        return mt_gguf_writer_set_u16(w, k, (uint16_t)kv->i64);
    case MT_GGUF_I16:
        return mt_gguf_writer_set_i16(w, k, (int16_t)kv->i64);
    case MT_GGUF_U32:
        return mt_gguf_writer_set_u32(w, k, (uint32_t)kv->i64);
    case MT_GGUF_I32:
        return mt_gguf_writer_set_i32(w, k, (int32_t)kv->i64);
    case MT_GGUF_U64:
        return mt_gguf_writer_set_u64(w, k, kv->u64);
    case MT_GGUF_I64:
        return mt_gguf_writer_set_i64(w, k, kv->i64);
    case MT_GGUF_F32:
        return mt_gguf_writer_set_f32(w, k, (float)kv->f64);
    case MT_GGUF_F64:
        return mt_gguf_writer_set_f64(w, k, kv->f64);
    case MT_GGUF_BOOL:
        return mt_gguf_writer_set_bool(w, k, kv->i64 != 0);
    case MT_GGUF_STRING:
        return mt_gguf_writer_set_strn(w, k, kv->str, kv->str_len);
    case MT_GGUF_ARRAY:
        return set_array_kv(w, kv);
    }
    return mt_fail(MT_ERR_ARG, "gguf writer: '%s' has unknown value type %d", k, (int)kv->type);
}

mt_status mt_gguf_writer_copy_kv(mt_gguf_writer *w, const mt_gguf *src, mt_gguf_key_pred skip,
                                 void *ctx) {
    for (uint64_t i = 0; i < src->n_kv; i++) {
        const mt_gguf_kv *kv = &src->kv[i];
        if (skip && skip(kv->key, ctx)) continue;
        mt_status st = mt_gguf_writer_set_kv(w, kv);
        if (st) return st;
    }
    return MT_OK;
}
