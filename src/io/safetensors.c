#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "io/file_util.h"
#include "io/json_file.h"
#include "io/safetensors_internal.h"

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = mt_calloc(1, a + b + 2);
    if (p) snprintf(p, a + b + 2, "%s/%s", dir, name);
    return p;
}

static int is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Shard names come from a file we do not trust: keep them inside the folder. */
static int safe_shard_name(const char *s) {
    return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Distinct shard file names of the index's weight_map, sorted. */
static mt_status shard_names(const char *index, const cJSON *map, const char ***out, size_t *n) {
    size_t count = (size_t)cJSON_GetArraySize(map), k = 0;
    const char **names = mt_calloc(count, sizeof *names);
    if (!names) return MT_ERR_NOMEM;
    for (const cJSON *e = map->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !safe_shard_name(e->valuestring)) {
            free(names);
            return mt_fail(MT_ERR_FORMAT, "safetensors: %s: bad shard name for tensor '%s'", index,
                           e->string);
        }
        names[k++] = e->valuestring;
    }
    qsort(names, k, sizeof *names, cmp_str_ptr);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || strcmp(names[u - 1], names[i])) names[u++] = names[i];
    *out = names;
    *n = u;
    return MT_OK;
}

static mt_status check_listed(mt_safetensors *st, const char *index, const cJSON *map) {
    for (const cJSON *e = map->child; e; e = e->next)
        if (!mt_safetensors_find(st, e->string))
            return mt_fail(MT_ERR_FORMAT, "safetensors: %s: tensor '%s' is not in shard %s", index,
                           e->string, e->valuestring);
    return MT_OK;
}

static mt_status build_index(mt_safetensors *st, const char *where);

static mt_status load_index(mt_safetensors *st, const char *dir, const char *index,
                            const cJSON *map) {
    const char **names = NULL;
    size_t n = 0;
    mt_status s = shard_names(index, map, &names, &n);
    for (size_t i = 0; !s && i < n; i++) {
        char *p = join(dir, names[i]);
        s = p ? st_add_file(st, p) : MT_ERR_NOMEM;
        free(p);
    }
    free(names);
    if (!s) s = build_index(st, dir);
    return s ? s : check_listed(st, index, map);
}

static mt_status open_sharded(mt_safetensors *st, const char *dir, const char *index) {
    cJSON *doc;
    mt_status s = mt_json_read_file(index, &doc);
    if (s) return s;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(doc, "weight_map");
    if (!cJSON_IsObject(map))
        s = mt_fail(MT_ERR_FORMAT, "safetensors: %s: no weight_map object", index);
    else
        s = load_index(st, dir, index, map);
    cJSON_Delete(doc);
    return s;
}

static int cmp_tensor_ptr(const void *a, const void *b) {
    return strcmp((*(const mt_st_tensor *const *)a)->name, (*(const mt_st_tensor *const *)b)->name);
}

static mt_status build_index(mt_safetensors *st, const char *where) {
    free(st->sorted);
    st->sorted = mt_calloc(st->n, sizeof *st->sorted);
    if (!st->sorted) return MT_ERR_NOMEM;
    for (size_t i = 0; i < st->n; i++) st->sorted[i] = &st->tensors[i];
    qsort(st->sorted, st->n, sizeof *st->sorted, cmp_tensor_ptr);
    for (size_t i = 1; i < st->n; i++)
        if (!strcmp(st->sorted[i - 1]->name, st->sorted[i]->name))
            return mt_fail(MT_ERR_FORMAT, "safetensors: %s: tensor '%s' appears twice", where,
                           st->sorted[i]->name);
    return MT_OK;
}

static mt_status open_path(mt_safetensors *st, const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return mt_fail(MT_ERR_IO, "safetensors: cannot open %s: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) {
        mt_status s = st_add_file(st, path);
        return s ? s : build_index(st, path);
    }
    char *index = join(path, INDEX_NAME), *single = join(path, SINGLE_NAME);
    mt_status s = MT_OK;
    if (!index || !single)
        s = MT_ERR_NOMEM;
    else if (is_file(index))
        s = open_sharded(st, path, index);
    else if (is_file(single)) {
        s = st_add_file(st, single);
        if (!s) s = build_index(st, single);
    } else
        s = mt_fail(MT_ERR_IO, "safetensors: %s holds neither %s nor %s", path, SINGLE_NAME,
                    INDEX_NAME);
    free(index);
    free(single);
    return s;
}

mt_status mt_safetensors_open(const char *path, mt_safetensors **out) {
    *out = NULL;
    mt_safetensors *st = mt_calloc(1, sizeof *st);
    if (!st) return MT_ERR_NOMEM;
    mt_status s = open_path(st, path);
    if (s) {
        mt_safetensors_close(st);
        return s;
    }
    *out = st;
    return MT_OK;
}

void mt_safetensors_close(mt_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n; i++) free(st->tensors[i].name);
    free(st->tensors);
    free(st->sorted);
    for (size_t i = 0; i < st->n_files; i++) mt_unmap_file(st->maps[i], st->map_sizes[i]);
    free(st->maps);
    free(st->map_sizes);
    cJSON_Delete(st->meta);
    free(st);
}

const char *mt_safetensors_meta(const mt_safetensors *st, const char *key) {
    const cJSON *v = st->meta ? cJSON_GetObjectItemCaseSensitive(st->meta, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

size_t mt_safetensors_count(const mt_safetensors *st) {
    return st->n;
}

const mt_st_tensor *mt_safetensors_at(const mt_safetensors *st, size_t i) {
    return i < st->n ? &st->tensors[i] : NULL;
}

static int cmp_name(const void *name, const void *elem) {
    return strcmp(name, (*(const mt_st_tensor *const *)elem)->name);
}

const mt_st_tensor *mt_safetensors_find(const mt_safetensors *st, const char *name) {
    if (!st->sorted) return NULL;
    const mt_st_tensor *const *hit = bsearch(name, st->sorted, st->n, sizeof *st->sorted, cmp_name);
    return hit ? *hit : NULL;
}
