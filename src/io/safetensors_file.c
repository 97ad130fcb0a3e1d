/* One .safetensors file: an 8-byte little-endian header length, a JSON header
 * mapping names to {dtype, shape, data_offsets}, then the data section. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/file_util.h"
#include "io/json_file.h"
#include "io/safetensors_internal.h"

/* Largest integer a double (cJSON's number type) holds exactly. */
#define MAX_EXACT_INT 9007199254740992.0

typedef struct {
    const char *path;
    const uint8_t *data; /* start of the data section */
    uint64_t data_size;
} st_file;

static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= MAX_EXACT_INT) || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

static mt_status parse_dtype(const st_file *f, const char *name, const cJSON *entry, mt_dtype *t,
                             size_t *elem) {
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    if (!cJSON_IsString(dt))
        return mt_fail(MT_ERR_FORMAT, "safetensors: %s: tensor '%s' has no dtype string", f->path,
                       name);
    const char *s = dt->valuestring;
    if (!strcmp(s, "F32"))
        *t = MT_F32, *elem = 4;
    else if (!strcmp(s, "F16"))
        *t = MT_F16, *elem = 2;
    else if (!strcmp(s, "BF16"))
        *t = MT_BF16, *elem = 2;
    else
        return mt_fail(MT_ERR_UNSUPPORTED,
                       "safetensors: %s: tensor '%s' has dtype %s; meteor reads F32, F16 and BF16",
                       f->path, name, s);
    return MT_OK;
}

/* Shape in GGUF order (ne[0] = last dimension) and the element count. */
static mt_status parse_shape(const st_file *f, const char *name, const cJSON *entry, mt_tensor *v,
                             uint64_t *count) {
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    if (!cJSON_IsArray(shape))
        return mt_fail(MT_ERR_FORMAT, "safetensors: %s: tensor '%s' has no shape array", f->path,
                       name);
    int n = cJSON_GetArraySize(shape);
    if (n > 4)
        return mt_fail(MT_ERR_UNSUPPORTED,
                       "safetensors: %s: tensor '%s' has %d dimensions (at most 4)", f->path, name,
                       n);
    v->n_dims = n;
    for (int i = 0; i < 4; i++) v->ne[i] = 1;
    uint64_t total = 1;
    for (int i = 0; i < n; i++) {
        uint64_t d;
        if (!json_uint(cJSON_GetArrayItem(shape, i), &d))
            return mt_fail(MT_ERR_FORMAT, "safetensors: %s: tensor '%s' has an invalid dimension",
                           f->path, name);
        if (d == 0)
            return mt_fail(MT_ERR_UNSUPPORTED, "safetensors: %s: tensor '%s' is empty", f->path,
                           name);
        if (__builtin_mul_overflow(total, d, &total) || total > (uint64_t)INT64_MAX)
            return mt_fail(MT_ERR_FORMAT, "safetensors: %s: tensor '%s' is too large", f->path,
                           name);
        v->ne[n - 1 - i] = (int64_t)d;
    }
    *count = total;
    return MT_OK;
}

static mt_status parse_offsets(const st_file *f, const char *name, const cJSON *entry,
                               uint64_t expect, uint64_t *begin) {
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    uint64_t b, e;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(cJSON_GetArrayItem(offs, 0), &b) || !json_uint(cJSON_GetArrayItem(offs, 1), &e))
        return mt_fail(MT_ERR_FORMAT,
                       "safetensors: %s: tensor '%s' needs data_offsets [begin, end]", f->path,
                       name);
    if (b > e || e > f->data_size)
        return mt_fail(MT_ERR_FORMAT,
                       "safetensors: %s: tensor '%s' data [%llu, %llu) lies outside the %llu-byte "
                       "data section",
                       f->path, name, (unsigned long long)b, (unsigned long long)e,
                       (unsigned long long)f->data_size);
    if (e - b != expect)
        return mt_fail(
            MT_ERR_FORMAT,
            "safetensors: %s: tensor '%s' has %llu bytes of data but its shape needs %llu", f->path,
            name, (unsigned long long)(e - b), (unsigned long long)expect);
    *begin = b;
    return MT_OK;
}

static mt_status parse_entry(const st_file *f, const cJSON *entry, mt_st_tensor *out) {
    const char *name = entry->string;
    if (!cJSON_IsObject(entry))
        return mt_fail(MT_ERR_FORMAT, "safetensors: %s: entry '%s' is not an object", f->path,
                       name);
    size_t elem = 0;
    uint64_t count = 0, begin = 0, bytes;
    mt_status st = parse_dtype(f, name, entry, &out->view.type, &elem);
    if (!st) st = parse_shape(f, name, entry, &out->view, &count);
    if (st) return st;
    if (__builtin_mul_overflow(count, (uint64_t)elem, &bytes))
        return mt_fail(MT_ERR_FORMAT, "safetensors: %s: tensor '%s' is too large", f->path, name);
    if ((st = parse_offsets(f, name, entry, bytes, &begin))) return st;
    out->view.data = f->data + begin;
    out->name = mt_strdup(name);
    return out->name ? MT_OK : MT_ERR_NOMEM;
}

static mt_status reserve(mt_safetensors *st, size_t extra) {
    if (st->n + extra <= st->cap) return MT_OK;
    size_t cap = st->cap ? st->cap : 16;
    while (cap < st->n + extra) cap *= 2;
    mt_st_tensor *t = realloc(st->tensors, cap * sizeof *t);
    if (!t) return mt_fail(MT_ERR_NOMEM, "safetensors: out of memory for %zu tensors", cap);
    st->tensors = t;
    st->cap = cap;
    return MT_OK;
}

static mt_status parse_header(mt_safetensors *st, const st_file *f, const cJSON *root) {
    if (!cJSON_IsObject(root))
        return mt_fail(MT_ERR_FORMAT, "safetensors: %s: header is not a JSON object", f->path);
    mt_status s = reserve(st, (size_t)cJSON_GetArraySize(root));
    if (s) return s;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!st->meta && cJSON_IsObject(e) && !(st->meta = cJSON_Duplicate(e, 1)))
                return mt_fail(MT_ERR_NOMEM, "safetensors: out of memory");
            continue;
        }
        memset(&st->tensors[st->n], 0, sizeof st->tensors[st->n]);
        if ((s = parse_entry(f, e, &st->tensors[st->n]))) return s;
        st->n++;
    }
    return MT_OK;
}

static mt_status record_map(mt_safetensors *st, const void *map, size_t size) {
    const void **maps = realloc(st->maps, (st->n_files + 1) * sizeof *maps);
    if (maps) st->maps = maps;
    size_t *sizes = maps ? realloc(st->map_sizes, (st->n_files + 1) * sizeof *sizes) : NULL;
    if (sizes) st->map_sizes = sizes;
    if (!maps || !sizes) {
        mt_unmap_file(map, size);
        return mt_fail(MT_ERR_NOMEM, "safetensors: out of memory");
    }
    st->maps[st->n_files] = map;
    st->map_sizes[st->n_files++] = size;
    return MT_OK;
}

mt_status st_add_file(mt_safetensors *st, const char *path) {
    const void *map;
    size_t size;
    mt_status s = mt_map_file(path, &map, &size);
    if (!s) s = record_map(st, map, size);
    if (s) return s;
    uint64_t hlen;
    if (size < 8)
        return mt_fail(MT_ERR_FORMAT, "safetensors: %s: file too short for a header", path);
    memcpy(&hlen, map, 8);
    if (hlen > size - 8)
        return mt_fail(MT_ERR_FORMAT, "safetensors: %s: header length %llu exceeds the file size",
                       path, (unsigned long long)hlen);
    cJSON *root;
    if ((s = mt_json_parse((const char *)map + 8, (size_t)hlen, path, &root))) return s;
    st_file f = {path, (const uint8_t *)map + 8 + hlen, size - 8 - hlen};
    s = parse_header(st, &f, root);
    cJSON_Delete(root);
    return s;
}
