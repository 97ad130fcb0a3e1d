/* safetensors writer: the header (JSON, laid out by element size then name, padded with
 * spaces to 8 bytes) and the streamed, atomically renamed file. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/safetensors_write_internal.h"

static int cmp_layout(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    size_t ex = st_elem_size(x->type), ey = st_elem_size(y->type);
    if (ex != ey) return ex > ey ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Integers printed exactly: cJSON would print large ones in exponent notation, which
 * the Rust reader rejects. */
static cJSON *int_array(const uint64_t *v, int n) {
    char buf[MT_ST_MAX_DIMS * 21 + 3];
    size_t len = 0;
    buf[len++] = '[';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%llu", i ? "," : "",
                                (unsigned long long)v[i]);
    buf[len++] = ']';
    buf[len] = '\0';
    return cJSON_CreateRaw(buf);
}

static int add_tensor_json(cJSON *root, const st_entry *e, uint64_t begin) {
    uint64_t dims[MT_ST_MAX_DIMS], offs[2] = {begin, begin + e->nbytes};
    for (int i = 0; i < e->n_dims; i++) dims[i] = (uint64_t)e->shape[i];
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToObject(root, e->name, o)) {
        cJSON_Delete(o);
        return 0;
    }
    cJSON *shape = int_array(dims, e->n_dims), *data_offsets = int_array(offs, 2);
    int ok = cJSON_AddStringToObject(o, "dtype", st_dtype_tag(e->type)) != NULL;
    ok = ok && shape && cJSON_AddItemToObject(o, "shape", shape);
    if (!ok) cJSON_Delete(shape);
    ok = ok && data_offsets && cJSON_AddItemToObject(o, "data_offsets", data_offsets);
    if (!ok) cJSON_Delete(data_offsets);
    return ok;
}

static cJSON *header_json(const mt_st_writer *w, st_entry *const *order) {
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && w->n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (size_t i = 0; ok && i < w->n_meta; i++)
            ok = cJSON_AddStringToObject(m, w->meta[i].key, w->meta[i].value) != NULL;
    }
    uint64_t offset = 0;
    for (size_t i = 0; ok && i < w->n; i++) {
        ok = add_tensor_json(root, order[i], offset);
        offset += order[i]->nbytes;
    }
    if (ok && offset > ST_MAX_BYTES) ok = 0;
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* The length prefix and the JSON padded with spaces to an 8-byte boundary. */
static mt_status encode_header(const mt_st_writer *w, st_entry *const *order, char **out,
                               size_t *len) {
    cJSON *root = header_json(w, order);
    char *json = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json) return mt_fail(MT_ERR_NOMEM, "safetensors writer: cannot build the header");
    size_t n = strlen(json), padded = (n + 7) / 8 * 8;
    char *buf = malloc(8 + padded);
    if (!buf) {
        cJSON_free(json);
        return mt_fail(MT_ERR_NOMEM, "safetensors writer: out of memory for the header");
    }
    uint64_t hlen = padded;
    memcpy(buf, &hlen, 8);
    memcpy(buf + 8, json, n);
    memset(buf + 8 + n, ' ', padded - n);
    cJSON_free(json);
    *out = buf;
    *len = 8 + padded;
    return MT_OK;
}

static mt_status write_entry(mt_atomic_file *f, const st_entry *e) {
    if (e->nbytes == 0) return MT_OK;
    if (e->data) return mt_atomic_write(f, e->data, (size_t)e->nbytes);
    void *buf = malloc((size_t)e->nbytes);
    if (!buf)
        return mt_fail(MT_ERR_NOMEM, "safetensors writer: out of memory for tensor '%s'", e->name);
    mt_status st = e->fill(e->ctx, buf, (size_t)e->nbytes);
    if (st) st = mt_fail_prefix(st, e->name);
    if (!st) st = mt_atomic_write(f, buf, (size_t)e->nbytes);
    free(buf);
    return st;
}

static mt_status write_body(const mt_st_writer *w, st_entry *const *order, mt_atomic_file *f) {
    char *header = NULL;
    size_t len = 0;
    mt_status st = encode_header(w, order, &header, &len);
    if (st) return st;
    st = mt_atomic_write(f, header, len);
    free(header);
    for (size_t i = 0; !st && i < w->n; i++) st = write_entry(f, order[i]);
    return st;
}

mt_status mt_st_writer_write(const mt_st_writer *w, const char *path) {
    st_entry **order = mt_calloc(w->n ? w->n : 1, sizeof *order);
    if (!order) return MT_ERR_NOMEM;
    for (size_t i = 0; i < w->n; i++) order[i] = &w->t[i];
    qsort(order, w->n, sizeof *order, cmp_layout);
    mt_atomic_file f;
    mt_status st = mt_atomic_open(&f, path);
    if (st) {
        free(order);
        return mt_fail_prefix(st, "safetensors writer");
    }
    st = write_body(w, order, &f);
    free(order);
    if (st) {
        mt_atomic_abort(&f);
        return mt_fail_prefix(st, path);
    }
    st = mt_atomic_commit(&f);
    return st ? mt_fail_prefix(st, "safetensors writer") : MT_OK;
}
