#include "io/yaml_flat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct {
    yaml_parser_t p;
    yaml_event_t ev;
    const char *path;
    int have_event;
} reader;

static mt_status next(reader *r) {
    if (r->have_event) yaml_event_delete(&r->ev);
    r->have_event = 0;
    if (!yaml_parser_parse(&r->p, &r->ev))
        return mt_fail(MT_ERR_FORMAT, "%s:%zu: %s", r->path, r->p.problem_mark.line + 1,
                       r->p.problem ? r->p.problem : "invalid YAML");
    r->have_event = 1;
    return MT_OK;
}

static int line(const reader *r) {
    return (int)r->ev.start_mark.line + 1;
}

/* libyaml gives a scalar's length; a NUL inside one (a quoted "\0") would leave every
 * reader after this one with only the text before it. */
static mt_status check_scalar(const reader *r, const char *key) {
    const yaml_event_t *e = &r->ev;
    if (strlen((const char *)e->data.scalar.value) == e->data.scalar.length) return MT_OK;
    if (!key) return mt_fail(MT_ERR_FORMAT, "%s:%d: a key holds a NUL character", r->path, line(r));
    return mt_fail(MT_ERR_FORMAT, "%s:%d: the value of '%s' holds a NUL character", r->path,
                   line(r), key);
}

/* A list of scalars into one comma-separated string (malloc'ed). */
static mt_status read_list(reader *r, const char *key, char **out) {
    size_t len = 0, cap = 64;
    char *s = malloc(cap);
    if (!s) return mt_fail(MT_ERR_NOMEM, "out of memory");
    s[0] = '\0';
    mt_status st;
    while (!(st = next(r)) && r->ev.type == YAML_SCALAR_EVENT) {
        if ((st = check_scalar(r, key))) break;
        const size_t n = r->ev.data.scalar.length;
        if (len + n + 2 > cap) {
            while (len + n + 2 > cap) cap *= 2;
            char *g = realloc(s, cap);
            if (!g) {
                free(s);
                return mt_fail(MT_ERR_NOMEM, "out of memory");
            }
            s = g;
        }
        if (len) s[len++] = ',';
        memcpy(s + len, r->ev.data.scalar.value, n);
        len += n;
        s[len] = '\0';
    }
    if (!st && r->ev.type != YAML_SEQUENCE_END_EVENT)
        st = mt_fail(MT_ERR_FORMAT, "%s:%d: '%s' must be a list of plain values", r->path, line(r),
                     key);
    if (st) {
        free(s);
        return st;
    }
    *out = s;
    return MT_OK;
}

/* The key's value: a scalar, a list, or an error for anything else. */
static mt_status read_value(reader *r, const char *key, char **out, int *is_null) {
    mt_status st = next(r);
    if (st) return st;
    *out = NULL;
    *is_null = 0;
    if (r->ev.type == YAML_SCALAR_EVENT) {
        if ((st = check_scalar(r, key))) return st;
        const char *v = (const char *)r->ev.data.scalar.value;
        *is_null = r->ev.data.scalar.length == 0 && r->ev.data.scalar.plain_implicit;
        if (!*is_null && !(*out = strdup(v))) return mt_fail(MT_ERR_NOMEM, "out of memory");
        return MT_OK;
    }
    if (r->ev.type == YAML_SEQUENCE_START_EVENT) return read_list(r, key, out);
    return mt_fail(MT_ERR_FORMAT, "%s:%d: '%s': nested mappings are not supported", r->path,
                   line(r), key);
}

static mt_status read_mapping(reader *r, mt_yaml_kv_fn fn, void *user) {
    mt_status st;
    while (!(st = next(r)) && r->ev.type == YAML_SCALAR_EVENT) {
        char key[128];
        const int at = line(r);
        if ((st = check_scalar(r, NULL))) return st;
        if (r->ev.data.scalar.length >= sizeof key)
            return mt_fail(MT_ERR_FORMAT, "%s:%d: a key is longer than %zu characters", r->path, at,
                           sizeof key - 1);
        snprintf(key, sizeof key, "%s", (const char *)r->ev.data.scalar.value);
        char *value = NULL;
        int is_null = 0;
        if ((st = read_value(r, key, &value, &is_null))) return st;
        st = fn(user, key, is_null ? NULL : value, at);
        free(value);
        if (st) return st;
    }
    if (!st && r->ev.type != YAML_MAPPING_END_EVENT)
        st = mt_fail(MT_ERR_FORMAT, "%s:%d: keys must be plain names", r->path, line(r));
    return st;
}

static mt_status read_doc(reader *r, mt_yaml_kv_fn fn, void *user) {
    mt_status st = next(r); /* stream start */
    if (!st) st = next(r);
    if (st) return st;
    if (r->ev.type == YAML_STREAM_END_EVENT) return MT_OK; /* empty file: no settings */
    if (!st) st = next(r);
    if (st) return st;
    if (r->ev.type == YAML_SCALAR_EVENT && r->ev.data.scalar.length == 0) return MT_OK;
    if (r->ev.type != YAML_MAPPING_START_EVENT)
        return mt_fail(MT_ERR_FORMAT, "%s:%d: expected a mapping of settings (key: value)", r->path,
                       line(r));
    if ((st = read_mapping(r, fn, user))) return st;
    if ((st = next(r))) return st; /* document end */
    if ((st = next(r))) return st;
    if (r->ev.type != YAML_STREAM_END_EVENT)
        return mt_fail(MT_ERR_FORMAT, "%s:%d: only one YAML document is allowed", r->path, line(r));
    return MT_OK;
}

mt_status mt_yaml_read_flat(const char *path, mt_yaml_kv_fn fn, void *user) {
    FILE *f = fopen(path, "rb");
    if (!f) return mt_fail(MT_ERR_IO, "cannot open config %s: %s", path, strerror(errno));
    reader r = {.path = path};
    if (!yaml_parser_initialize(&r.p)) {
        fclose(f);
        return mt_fail(MT_ERR_NOMEM, "out of memory");
    }
    yaml_parser_set_input_file(&r.p, f);
    mt_status st = read_doc(&r, fn, user);
    if (r.have_event) yaml_event_delete(&r.ev);
    yaml_parser_delete(&r.p);
    fclose(f);
    return st;
}
