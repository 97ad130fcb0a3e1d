#include "infer/json_schema.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

enum {
    T_OBJECT = 1,
    T_ARRAY = 2,
    T_STRING = 4,
    T_NUMBER = 8,
    T_INTEGER = 16,
    T_BOOL = 32,
    T_NULL = 64
};

static const struct {
    const char *name;
    int bit;
} TYPES[] = {{"object", T_OBJECT}, {"array", T_ARRAY},     {"string", T_STRING},
             {"number", T_NUMBER}, {"integer", T_INTEGER}, {"boolean", T_BOOL},
             {"null", T_NULL}};

static const char *const ANNOTATIONS[] = {"title",    "description", "$schema",
                                          "$id",      "examples",    "default",
                                          "$comment", "$defs",       "definitions"};
static const char *const ASSERTIONS[] = {"type",
                                         "properties",
                                         "required",
                                         "additionalProperties",
                                         "enum",
                                         "const",
                                         "items",
                                         "minItems",
                                         "maxItems",
                                         "minLength",
                                         "maxLength",
                                         "minimum",
                                         "maximum",
                                         "exclusiveMinimum",
                                         "exclusiveMaximum",
                                         "anyOf",
                                         "$ref"};

#define N_OF(a) (sizeof(a) / sizeof *(a))

typedef struct {
    const cJSON *node;
    int32_t start;
    char *path;
} rule;

typedef struct {
    mt_gbuild *b;
    const cJSON *root;
    rule *rules;
    int n_rules, cap_rules;
    int32_t any_start;
    int depth;
    char path[1024];
    size_t plen;
} cc;

/* ---- errors and paths ------------------------------------------------------------- */

static mt_status fail_at(cc *c, mt_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static mt_status fail_at(cc *c, mt_status code, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!c->plen) return mt_fail(code, "json schema: %s at the schema root", msg);
    return mt_fail(code, "json schema: %s at %s", msg, c->path);
}

/* Appends "/seg" (JSON-pointer escaped) to the path; returns the length to restore. */
static size_t path_push(cc *c, const char *seg) {
    const size_t old = c->plen;
    size_t n = c->plen;
    if (n + 1 < sizeof c->path) c->path[n++] = '/';
    for (const char *p = seg; *p && n + 2 < sizeof c->path; p++) {
        if (*p == '~' || *p == '/') {
            c->path[n++] = '~';
            c->path[n++] = *p == '~' ? '0' : '1';
        } else {
            c->path[n++] = *p;
        }
    }
    c->path[n] = '\0';
    c->plen = n;
    return old;
}

static size_t path_push_index(cc *c, int i) {
    char s[16];
    snprintf(s, sizeof s, "%d", i);
    return path_push(c, s);
}

static void path_pop(cc *c, size_t old) {
    c->plen = old;
    c->path[old] = '\0';
}

/* ---- building blocks --------------------------------------------------------------- */

static mt_status new_state(cc *c, int32_t *s) {
    *s = mt_gbuild_state(c->b);
    return *s < 0 ? MT_ERR_UNSUPPORTED : MT_OK;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        mt_status try_st_ = (x);                                                                   \
        if (try_st_) return try_st_;                                                               \
    } while (0)

static mt_status byte_edge(cc *c, int32_t from, uint8_t b, int32_t to) {
    return mt_gbuild_bytes(c->b, from, b, b, to);
}

/* Optional whitespace: nothing, one space, or a newline and a bounded indentation. */
static mt_status ws(cc *c, int32_t from, int32_t to) {
    TRY(mt_gbuild_eps(c->b, from, to));
    TRY(byte_edge(c, from, ' ', to));
    int32_t at;
    TRY(new_state(c, &at));
    TRY(byte_edge(c, from, '\n', at));
    TRY(mt_gbuild_eps(c->b, at, to));
    for (int k = 0; k < MT_JSON_WS_MAX_INDENT; k++) {
        int32_t nx;
        TRY(new_state(c, &nx));
        TRY(byte_edge(c, at, ' ', nx));
        TRY(byte_edge(c, at, '\t', nx));
        TRY(mt_gbuild_eps(c->b, nx, to));
        at = nx;
    }
    return MT_OK;
}

/* The exact bytes s[0..n), n >= 1. */
static mt_status literal(cc *c, int32_t from, const char *s, size_t n, int32_t to) {
    int32_t at = from;
    for (size_t k = 0; k < n; k++) {
        int32_t nx = to;
        if (k + 1 < n) TRY(new_state(c, &nx));
        TRY(byte_edge(c, at, (uint8_t)s[k], nx));
        at = nx;
    }
    return MT_OK;
}

/* A call of the rule at start from `from`, going on at `to`. */
static mt_status call(cc *c, int32_t start, int32_t from, int32_t to) {
    int32_t k;
    TRY(new_state(c, &k));
    TRY(mt_gbuild_eps(c->b, from, k));
    return mt_gbuild_call(c->b, k, start, to);
}

static mt_status string_frag(cc *c, int32_t from, int32_t min, int32_t max,
                             const char *const *excluded, int n_excluded, int32_t to) {
    int32_t body;
    TRY(new_state(c, &body));
    TRY(byte_edge(c, from, '"', body));
    return mt_gbuild_string(c->b, body, min, max, excluded, n_excluded, to);
}

/* A chain of 1..n digits from `from`, each length ending at `to`; first digit in lo..hi. */
static mt_status digits(cc *c, int32_t from, char lo, char hi, int n, int32_t to) {
    int32_t at;
    TRY(new_state(c, &at));
    TRY(mt_gbuild_bytes(c->b, from, (uint8_t)lo, (uint8_t)hi, at));
    TRY(mt_gbuild_eps(c->b, at, to));
    for (int k = 1; k < n; k++) {
        int32_t nx;
        TRY(new_state(c, &nx));
        TRY(mt_gbuild_bytes(c->b, at, '0', '9', nx));
        TRY(mt_gbuild_eps(c->b, nx, to));
        at = nx;
    }
    return MT_OK;
}

/* -?(0|[1-9][0-9]*) with bounded digits, and for numbers a fraction and an exponent. */
static mt_status number_frag(cc *c, int32_t from, int integer_only, int32_t to) {
    int32_t sign, int_end;
    TRY(new_state(c, &sign));
    TRY(new_state(c, &int_end));
    TRY(byte_edge(c, from, '-', sign));
    TRY(digits(c, from, '1', '9', MT_JSON_MAX_INT_DIGITS, int_end));
    /* "-0" is valid JSON for a number (as in -0.5); an integer is never written so. */
    TRY(byte_edge(c, from, '0', int_end));
    if (!integer_only) TRY(byte_edge(c, sign, '0', int_end));
    TRY(digits(c, sign, '1', '9', MT_JSON_MAX_INT_DIGITS, int_end));
    if (integer_only) return mt_gbuild_eps(c->b, int_end, to);
    int32_t dot, exp_at, e, e_sign;
    TRY(new_state(c, &dot));
    TRY(new_state(c, &exp_at));
    TRY(new_state(c, &e));
    TRY(new_state(c, &e_sign));
    TRY(mt_gbuild_eps(c->b, int_end, exp_at));
    TRY(byte_edge(c, int_end, '.', dot));
    TRY(digits(c, dot, '0', '9', MT_JSON_MAX_FRAC_DIGITS, exp_at));
    TRY(mt_gbuild_eps(c->b, exp_at, to));
    TRY(mt_gbuild_bytes(c->b, exp_at, 'e', 'e', e));
    TRY(mt_gbuild_bytes(c->b, exp_at, 'E', 'E', e));
    TRY(mt_gbuild_eps(c->b, e, e_sign));
    TRY(byte_edge(c, e, '+', e_sign));
    TRY(byte_edge(c, e, '-', e_sign));
    return digits(c, e_sign, '0', '9', MT_JSON_MAX_EXP_DIGITS, to);
}

/* Digit strings of length len between x and y (same length, as text), from s to `to`:
 * at each position the digit may sit on the lower bound (lo_tight), the upper bound, or
 * strictly between, which frees the rest. */
static mt_status digit_range(cc *c, int32_t s, const char *x, const char *y, int i, int len,
                             int lo_tight, int hi_tight, int32_t to) {
    char dlo = lo_tight ? x[i] : '0', dhi = hi_tight ? y[i] : '9';
    if (i == len - 1) return mt_gbuild_bytes(c->b, s, (uint8_t)dlo, (uint8_t)dhi, to);
    int32_t t;
    if (dlo == dhi) {
        TRY(new_state(c, &t));
        TRY(byte_edge(c, s, (uint8_t)dlo, t));
        return digit_range(c, t, x, y, i + 1, len, lo_tight, hi_tight, to);
    }
    if (lo_tight) {
        TRY(new_state(c, &t));
        TRY(byte_edge(c, s, (uint8_t)dlo, t));
        TRY(digit_range(c, t, x, y, i + 1, len, 1, 0, to));
        dlo++;
    }
    if (hi_tight) {
        TRY(new_state(c, &t));
        TRY(byte_edge(c, s, (uint8_t)dhi, t));
        TRY(digit_range(c, t, x, y, i + 1, len, 0, 1, to));
        dhi--;
    }
    if (dlo <= dhi) {
        TRY(new_state(c, &t));
        TRY(mt_gbuild_bytes(c->b, s, (uint8_t)dlo, (uint8_t)dhi, t));
        TRY(digit_range(c, t, x, y, i + 1, len, 0, 0, to));
    }
    return MT_OK;
}

/* Decimal forms of the integers a..b, 0 <= a <= b, no leading zeros. */
static mt_status nonneg_range(cc *c, int32_t from, long long a, long long b, int32_t to) {
    long long lo_len = 1;
    for (int len = 1; len <= MT_JSON_MAX_INT_DIGITS; len++, lo_len *= 10) {
        const long long first = len == 1 ? 0 : lo_len, last = lo_len * 10 - 1;
        const long long x = a > first ? a : first, y = b < last ? b : last;
        if (x > y) continue;
        char xs[24], ys[24];
        snprintf(xs, sizeof xs, "%lld", x);
        snprintf(ys, sizeof ys, "%lld", y);
        int32_t s;
        TRY(new_state(c, &s));
        TRY(mt_gbuild_eps(c->b, from, s));
        TRY(digit_range(c, s, xs, ys, 0, len, 1, 1, to));
    }
    return MT_OK;
}

static mt_status int_range(cc *c, int32_t from, long long lo, long long hi, int32_t to) {
    if (lo < 0) {
        int32_t neg;
        TRY(new_state(c, &neg));
        TRY(byte_edge(c, from, '-', neg));
        TRY(nonneg_range(c, neg, hi < 0 ? -hi : 1, -lo, to));
    }
    if (hi >= 0) TRY(nonneg_range(c, from, lo > 0 ? lo : 0, hi, to));
    return MT_OK;
}

/* ---- keyword reading ----------------------------------------------------------------- */

static int in_list(const char *k, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(k, list[i])) return 1;
    return 0;
}

static mt_status check_keywords(cc *c, const cJSON *s) {
    const cJSON *k;
    cJSON_ArrayForEach(k, s) {
        if (!in_list(k->string, ANNOTATIONS, N_OF(ANNOTATIONS)) &&
            !in_list(k->string, ASSERTIONS, N_OF(ASSERTIONS)))
            return fail_at(c, MT_ERR_UNSUPPORTED, "unsupported JSON Schema keyword \"%s\"",
                           k->string);
    }
    const cJSON *defs[2] = {cJSON_GetObjectItemCaseSensitive(s, "$defs"),
                            cJSON_GetObjectItemCaseSensitive(s, "definitions")};
    for (int i = 0; i < 2; i++)
        if (defs[i] && !cJSON_IsObject(defs[i]))
            return fail_at(c, MT_ERR_FORMAT, "\"%s\" must be an object", defs[i]->string);
    return MT_OK;
}

/* The first assertion keyword of s other than the allowed ones, or NULL. */
static const char *other_assertion(const cJSON *s, const char *const *allowed, size_t n) {
    const cJSON *k;
    cJSON_ArrayForEach(k, s) {
        if (in_list(k->string, ASSERTIONS, N_OF(ASSERTIONS)) && !in_list(k->string, allowed, n))
            return k->string;
    }
    return NULL;
}

/* A non-negative integer keyword; *v keeps its default when absent. */
static mt_status read_count(cc *c, const cJSON *s, const char *key, int32_t *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(s, key);
    if (!x) return MT_OK;
    if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble != floor(x->valuedouble))
        return fail_at(c, MT_ERR_FORMAT, "\"%s\" must be a non-negative integer", key);
    if (x->valuedouble > MT_JSON_SCHEMA_MAX_COUNT)
        return fail_at(c, MT_ERR_UNSUPPORTED, "\"%s\" above %d is not supported", key,
                       MT_JSON_SCHEMA_MAX_COUNT);
    *v = (int32_t)x->valuedouble;
    return MT_OK;
}

static mt_status read_types(cc *c, const cJSON *s, int *types) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
    *types = 0;
    if (!t) return MT_OK;
    if (!cJSON_IsString(t) && !cJSON_IsArray(t))
        return fail_at(c, MT_ERR_FORMAT, "\"type\" must be a string or an array of strings");
    const cJSON *x;
    const cJSON *list = cJSON_IsArray(t) ? t : NULL;
    cJSON_ArrayForEach(x, list) {
        if (!cJSON_IsString(x))
            return fail_at(c, MT_ERR_FORMAT, "\"type\" must be a string or an array of strings");
    }
    const int n = cJSON_IsArray(t) ? cJSON_GetArraySize(t) : 1;
    if (!n) return fail_at(c, MT_ERR_FORMAT, "\"type\" is an empty list");
    for (int i = 0; i < n; i++) {
        const char *name =
            cJSON_IsArray(t) ? cJSON_GetArrayItem(t, i)->valuestring : t->valuestring;
        int bit = 0;
        for (size_t k = 0; k < N_OF(TYPES); k++)
            if (!strcmp(name, TYPES[k].name)) bit = TYPES[k].bit;
        if (!bit) return fail_at(c, MT_ERR_FORMAT, "unknown type \"%s\"", name);
        *types |= bit;
    }
    return MT_OK;
}

/* The types a schema without "type" describes, from the keywords it has. */
static int implied_types(const cJSON *s) {
    int t = 0;
    const char *obj[] = {"properties", "required", "additionalProperties"};
    const char *arr[] = {"items", "minItems", "maxItems"};
    const char *str[] = {"minLength", "maxLength"};
    const char *num[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
    for (size_t i = 0; i < N_OF(obj); i++)
        if (cJSON_GetObjectItemCaseSensitive(s, obj[i])) t |= T_OBJECT;
    for (size_t i = 0; i < N_OF(arr); i++)
        if (cJSON_GetObjectItemCaseSensitive(s, arr[i])) t |= T_ARRAY;
    for (size_t i = 0; i < N_OF(str); i++)
        if (cJSON_GetObjectItemCaseSensitive(s, str[i])) t |= T_STRING;
    for (size_t i = 0; i < N_OF(num); i++)
        if (cJSON_GetObjectItemCaseSensitive(s, num[i])) t |= T_NUMBER;
    return t;
}

static int value_has_type(const cJSON *v, int types) {
    if (cJSON_IsObject(v)) return types & T_OBJECT;
    if (cJSON_IsArray(v)) return types & T_ARRAY;
    if (cJSON_IsString(v)) return types & T_STRING;
    if (cJSON_IsBool(v)) return types & T_BOOL;
    if (cJSON_IsNull(v)) return types & T_NULL;
    if (cJSON_IsNumber(v)) {
        if (types & T_NUMBER) return 1;
        return (types & T_INTEGER) && isfinite(v->valuedouble) &&
               v->valuedouble == floor(v->valuedouble);
    }
    return 0;
}

/* ---- schemas ----------------------------------------------------------------------- */

static mt_status value(cc *c, const cJSON *s, int32_t from, int32_t to);

static mt_status any_value(cc *c, int32_t from, int32_t to);

/* The rule deriving schema s (compiled once, at the current path, on first use). */
static mt_status rule_for(cc *c, const cJSON *s, int32_t *start) {
    for (int i = 0; i < c->n_rules; i++)
        if (c->rules[i].node == s) {
            *start = c->rules[i].start;
            return MT_OK;
        }
    if (c->n_rules == c->cap_rules) {
        const int nc = c->cap_rules ? c->cap_rules * 2 : 16;
        rule *r = realloc(c->rules, (size_t)nc * sizeof *r);
        if (!r) return mt_fail(MT_ERR_NOMEM, "json schema: out of memory");
        c->rules = r;
        c->cap_rules = nc;
    }
    int32_t end;
    TRY(new_state(c, start));
    TRY(new_state(c, &end));
    TRY(mt_gbuild_ret(c->b, end));
    char *path = mt_strdup(c->path);
    if (!path) return MT_ERR_NOMEM;
    c->rules[c->n_rules++] = (rule){s, *start, path};
    return value(c, s, *start, end);
}

static mt_status resolve_ref(cc *c, const char *ref, const cJSON **out) {
    if (ref[0] != '#' || (ref[1] && ref[1] != '/'))
        return fail_at(c, MT_ERR_UNSUPPORTED,
                       "$ref \"%s\" is not supported (only \"#\" and \"#/...\" pointers)", ref);
    const cJSON *at = c->root;
    const char *p = ref + 1;
    while (*p == '/') {
        char tok[256];
        size_t n = 0;
        for (p++; *p && *p != '/'; p++) {
            char ch = *p;
            if (ch == '~' && (p[1] == '0' || p[1] == '1')) ch = *++p == '0' ? '~' : '/';
            if (n + 1 < sizeof tok) tok[n++] = ch;
        }
        tok[n] = '\0';
        const cJSON *nx = NULL;
        if (cJSON_IsObject(at)) {
            nx = cJSON_GetObjectItemCaseSensitive(at, tok);
        } else if (cJSON_IsArray(at)) {
            char *end;
            const long i = strtol(tok, &end, 10);
            if (n && !*end && i >= 0) nx = cJSON_GetArrayItem(at, (int)i);
        }
        if (!nx) return fail_at(c, MT_ERR_FORMAT, "dangling $ref \"%s\"", ref);
        at = nx;
    }
    *out = at;
    return MT_OK;
}

static mt_status ref_frag(cc *c, const cJSON *s, int32_t from, int32_t to) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(s, "$ref");
    if (!cJSON_IsString(r)) return fail_at(c, MT_ERR_FORMAT, "\"$ref\" must be a string");
    const char *allowed[] = {"$ref"};
    const char *other = other_assertion(s, allowed, 1);
    if (other)
        return fail_at(c, MT_ERR_UNSUPPORTED, "\"$ref\" together with \"%s\" is not supported",
                       other);
    const cJSON *target = NULL;
    TRY(resolve_ref(c, r->valuestring, &target));
    /* The target compiles at its own path, so its errors name where it is. */
    char saved[sizeof c->path];
    const size_t saved_len = c->plen;
    memcpy(saved, c->path, saved_len + 1);
    snprintf(c->path, sizeof c->path, "%s", r->valuestring + 1);
    c->plen = strlen(c->path);
    int32_t start;
    mt_status st = rule_for(c, target, &start);
    memcpy(c->path, saved, saved_len + 1);
    c->plen = saved_len;
    if (st) return st;
    return call(c, start, from, to);
}

static mt_status any_of_frag(cc *c, const cJSON *s, int32_t from, int32_t to) {
    const cJSON *alts = cJSON_GetObjectItemCaseSensitive(s, "anyOf");
    if (!cJSON_IsArray(alts) || !cJSON_GetArraySize(alts))
        return fail_at(c, MT_ERR_FORMAT, "\"anyOf\" must be a non-empty array of schemas");
    const char *allowed[] = {"anyOf"};
    const char *other = other_assertion(s, allowed, 1);
    if (other)
        return fail_at(c, MT_ERR_UNSUPPORTED, "\"anyOf\" together with \"%s\" is not supported",
                       other);
    int i = 0;
    const cJSON *alt;
    cJSON_ArrayForEach(alt, alts) {
        const size_t old = path_push(c, "anyOf");
        path_push_index(c, i++);
        mt_status st = value(c, alt, from, to);
        path_pop(c, old);
        if (st) return st;
    }
    return MT_OK;
}

typedef struct {
    int32_t parent, child;
    uint8_t byte;
} lit_edge;

/* enum / const: a trie of the values' compact JSON texts. */
static mt_status enum_frag(cc *c, const cJSON *s, int types, int32_t from, int32_t to) {
    const char *allowed[] = {"enum", "const", "type"};
    const char *other = other_assertion(s, allowed, N_OF(allowed));
    if (other)
        return fail_at(c, MT_ERR_UNSUPPORTED,
                       "\"enum\"/\"const\" together with \"%s\" is not supported", other);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(s, "enum");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(s, "const");
    if (e && (!cJSON_IsArray(e) || !cJSON_GetArraySize(e)))
        return fail_at(c, MT_ERR_FORMAT, "\"enum\" must be a non-empty array");
    const int n = e ? cJSON_GetArraySize(e) : 1;
    int32_t root;
    TRY(new_state(c, &root));
    TRY(mt_gbuild_eps(c->b, from, root));
    lit_edge *edges = NULL;
    size_t n_edges = 0, cap_edges = 0;
    int n_kept = 0;
    mt_status st = MT_OK;
    for (int i = 0; !st && i < n; i++) {
        const cJSON *v = e ? cJSON_GetArrayItem(e, i) : k;
        if (e && k && !cJSON_Compare(v, k, 1)) continue;
        if (types && !value_has_type(v, types)) continue;
        char *text = cJSON_PrintUnformatted(v);
        if (!text) {
            st = mt_fail(MT_ERR_NOMEM, "json schema: out of memory");
            break;
        }
        int32_t at = root;
        for (size_t j = 0; !st && text[j]; j++) {
            const uint8_t b = (uint8_t)text[j];
            int32_t nx = -1;
            for (size_t q = 0; q < n_edges; q++)
                if (edges[q].parent == at && edges[q].byte == b) nx = edges[q].child;
            if (nx < 0) {
                if (n_edges == cap_edges) {
                    cap_edges = cap_edges ? cap_edges * 2 : 64;
                    lit_edge *g = realloc(edges, cap_edges * sizeof *g);
                    if (!g) {
                        st = mt_fail(MT_ERR_NOMEM, "json schema: out of memory");
                        break;
                    }
                    edges = g;
                }
                if ((st = new_state(c, &nx))) break;
                if ((st = byte_edge(c, at, b, nx))) break;
                edges[n_edges++] = (lit_edge){at, nx, b};
            }
            at = nx;
        }
        if (!st) st = mt_gbuild_eps(c->b, at, to);
        n_kept++;
        free(text);
    }
    free(edges);
    if (!st && !n_kept)
        st = fail_at(c, MT_ERR_FORMAT, "no value of \"enum\"/\"const\" has an allowed type");
    return st;
}

static mt_status integer_frag(cc *c, const cJSON *s, int32_t from, int32_t to) {
    const double cap = 1e15 - 1;
    double lo = -cap, hi = cap;
    int bounded = 0;
    const char *keys[] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    for (int i = 0; i < 4; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(s, keys[i]);
        if (!x) continue;
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
            return fail_at(c, MT_ERR_FORMAT, "\"%s\" must be a number", keys[i]);
        const double v = x->valuedouble;
        bounded = 1;
        if (i == 0 && ceil(v) > lo) lo = ceil(v);
        if (i == 1 && floor(v) + 1 > lo) lo = floor(v) + 1;
        if (i == 2 && floor(v) < hi) hi = floor(v);
        if (i == 3 && ceil(v) - 1 < hi) hi = ceil(v) - 1;
    }
    if (!bounded) return number_frag(c, from, 1, to);
    if (lo < -cap) lo = -cap;
    if (hi > cap) hi = cap;
    if (lo > hi)
        return fail_at(c, MT_ERR_FORMAT,
                       "no integer of at most %d digits satisfies the minimum/maximum",
                       MT_JSON_MAX_INT_DIGITS);
    return int_range(c, from, (long long)lo, (long long)hi, to);
}

/* The frame of one object member: from `first` (no member before it) or from `later`
 * and a ',' to the key's start *key; the caller writes the key from *key to *key_end,
 * from which the ':' leads to the value's start *value_start. */
static mt_status member_frame(cc *c, int32_t first, int32_t later, int32_t *key, int32_t *key_end,
                              int32_t *value_start) {
    int32_t comma, colon_before, colon_after;
    mt_status st = new_state(c, key);
    if (!st) st = new_state(c, &comma);
    if (!st) st = new_state(c, key_end);
    if (!st) st = new_state(c, &colon_before);
    if (!st) st = new_state(c, &colon_after);
    if (!st) st = new_state(c, value_start);
    if (!st) st = mt_gbuild_eps(c->b, first, *key);
    if (!st) st = byte_edge(c, later, ',', comma);
    if (!st) st = ws(c, comma, *key);
    if (!st) st = ws(c, *key_end, colon_before);
    if (!st) st = byte_edge(c, colon_before, ':', colon_after);
    if (!st) st = ws(c, colon_after, *value_start);
    return st;
}

static mt_status object_frag(cc *c, const cJSON *s, int32_t from, int32_t to) {
    const cJSON *props = s ? cJSON_GetObjectItemCaseSensitive(s, "properties") : NULL;
    const cJSON *req = s ? cJSON_GetObjectItemCaseSensitive(s, "required") : NULL;
    const cJSON *extra = s ? cJSON_GetObjectItemCaseSensitive(s, "additionalProperties") : NULL;
    if (props && !cJSON_IsObject(props))
        return fail_at(c, MT_ERR_FORMAT, "\"properties\" must be an object");
    if (req && !cJSON_IsArray(req))
        return fail_at(c, MT_ERR_FORMAT, "\"required\" must be an array of strings");
    if (extra && !cJSON_IsBool(extra) && !cJSON_IsObject(extra))
        return fail_at(c, MT_ERR_FORMAT, "\"additionalProperties\" must be a boolean or a schema");
    const cJSON *x;
    cJSON_ArrayForEach(x, req) {
        if (!cJSON_IsString(x))
            return fail_at(c, MT_ERR_FORMAT, "\"required\" must be an array of strings");
        if (!props || !cJSON_GetObjectItemCaseSensitive(props, x->valuestring))
            return fail_at(c, MT_ERR_UNSUPPORTED,
                           "required property \"%s\" is not in \"properties\"", x->valuestring);
    }
    /* Without properties an object schema means any object; with them, only those. */
    const int extra_allowed = extra ? !cJSON_IsFalse(extra) : !props;
    const int n = props ? cJSON_GetArraySize(props) : 0;
    int32_t open, *sf = mt_calloc((size_t)n + 1, sizeof *sf), *stt = mt_calloc((size_t)n + 1, 4);
    const char **names = mt_calloc((size_t)n + 1, sizeof *names);
    mt_status st = sf && stt && names ? MT_OK : MT_ERR_NOMEM;
    for (int i = 0; !st && i <= n; i++) {
        st = new_state(c, &sf[i]);
        if (!st) st = new_state(c, &stt[i]);
    }
    if (!st) st = new_state(c, &open);
    if (!st) st = byte_edge(c, from, '{', open);
    if (!st) st = ws(c, open, sf[0]);
    int i = 0;
    cJSON_ArrayForEach(x, props) {
        if (st) break;
        names[i] = x->string;
        int required = 0;
        const cJSON *r;
        cJSON_ArrayForEach(r, req) required |= !strcmp(r->valuestring, x->string);
        int32_t key, k1, k4, v;
        char *key_text = NULL;
        cJSON *name = cJSON_CreateString(x->string);
        if (name) key_text = cJSON_PrintUnformatted(name);
        cJSON_Delete(name);
        if (!key_text) st = mt_fail(MT_ERR_NOMEM, "json schema: out of memory");
        if (!st) st = member_frame(c, sf[i], stt[i], &key, &k1, &k4);
        if (!st) st = new_state(c, &v);
        if (!st) st = literal(c, key, key_text, strlen(key_text), k1);
        if (!st) {
            const size_t old = path_push(c, "properties");
            path_push(c, x->string);
            st = value(c, x, k4, v);
            path_pop(c, old);
        }
        if (!st) st = ws(c, v, stt[i + 1]);
        if (!st && !required) st = mt_gbuild_eps(c->b, sf[i], sf[i + 1]);
        if (!st && !required) st = mt_gbuild_eps(c->b, stt[i], stt[i + 1]);
        free(key_text);
        i++;
    }
    if (!st) st = byte_edge(c, sf[n], '}', to);
    if (!st) st = byte_edge(c, stt[n], '}', to);
    if (!st && extra_allowed) {
        int32_t key, k1, k4, v;
        st = member_frame(c, sf[n], stt[n], &key, &k1, &k4);
        if (!st) st = new_state(c, &v);
        if (!st) st = string_frag(c, key, 0, -1, names, n, k1);
        if (!st && cJSON_IsObject(extra)) {
            const size_t old = path_push(c, "additionalProperties");
            st = value(c, extra, k4, v);
            path_pop(c, old);
        } else if (!st) {
            st = any_value(c, k4, v);
        }
        if (!st) st = ws(c, v, stt[n]);
    }
    free(sf);
    free(stt);
    free(names);
    return st;
}

/* One array item from `from` to `to`: inline when it occurs once, else a rule call. */
static mt_status item(cc *c, const cJSON *items, int once, int32_t from, int32_t to) {
    if (!items || cJSON_IsTrue(items)) return any_value(c, from, to);
    const size_t old = path_push(c, "items");
    mt_status st;
    if (once) {
        st = value(c, items, from, to);
    } else {
        int32_t start;
        st = rule_for(c, items, &start);
        if (!st) st = call(c, start, from, to);
    }
    path_pop(c, old);
    return st;
}

static mt_status array_frag(cc *c, const cJSON *s, int32_t from, int32_t to) {
    const cJSON *items = s ? cJSON_GetObjectItemCaseSensitive(s, "items") : NULL;
    int32_t min = 0, max = -1;
    if (s) TRY(read_count(c, s, "minItems", &min));
    if (s) TRY(read_count(c, s, "maxItems", &max));
    if (items && cJSON_IsArray(items))
        return fail_at(c, MT_ERR_UNSUPPORTED,
                       "\"items\" as an array (tuple form) is not supported");
    if (items && !cJSON_IsBool(items) && !cJSON_IsObject(items))
        return fail_at(c, MT_ERR_FORMAT, "\"items\" must be a schema");
    if (cJSON_IsFalse(items)) max = 0;
    if (max >= 0 && min > max)
        return fail_at(c, MT_ERR_FORMAT, "\"minItems\" %d is above \"maxItems\" %d", min, max);
    int32_t open, first;
    TRY(new_state(c, &open));
    TRY(new_state(c, &first));
    TRY(byte_edge(c, from, '[', open));
    TRY(ws(c, open, first));
    if (min == 0) TRY(byte_edge(c, first, ']', to));
    if (max == 0) return MT_OK;
    const int once = max == 1;
    int32_t done, after;
    TRY(new_state(c, &done));
    TRY(new_state(c, &after));
    TRY(item(c, items, once, first, done));
    TRY(ws(c, done, after));
    const int32_t loop_at = min > 1 ? min : 1;
    for (int32_t k = 1;; k++) {
        /* `after`: k items written. */
        if (k >= min) TRY(byte_edge(c, after, ']', to));
        if (max >= 0 && k >= max) break;
        int32_t comma, next_first, next_done;
        TRY(new_state(c, &comma));
        TRY(new_state(c, &next_first));
        TRY(new_state(c, &next_done));
        TRY(byte_edge(c, after, ',', comma));
        TRY(ws(c, comma, next_first));
        TRY(item(c, items, 0, next_first, next_done));
        if (max < 0 && k >= loop_at) {
            TRY(ws(c, next_done, after));
            break;
        }
        int32_t next_after;
        TRY(new_state(c, &next_after));
        TRY(ws(c, next_done, next_after));
        after = next_after;
    }
    return MT_OK;
}

static mt_status string_schema(cc *c, const cJSON *s, int32_t from, int32_t to) {
    int32_t min = 0, max = -1;
    if (s) TRY(read_count(c, s, "minLength", &min));
    if (s) TRY(read_count(c, s, "maxLength", &max));
    if (max >= 0 && min > max)
        return fail_at(c, MT_ERR_FORMAT, "\"minLength\" %d is above \"maxLength\" %d", min, max);
    return string_frag(c, from, min, max, NULL, 0, to);
}

/* The free JSON value (a rule, as it is recursive). */
static mt_status any_value(cc *c, int32_t from, int32_t to) {
    if (c->any_start < 0) {
        int32_t start, end;
        TRY(new_state(c, &start));
        TRY(new_state(c, &end));
        TRY(mt_gbuild_ret(c->b, end));
        c->any_start = start;
        TRY(object_frag(c, NULL, start, end));
        TRY(array_frag(c, NULL, start, end));
        TRY(string_frag(c, start, 0, -1, NULL, 0, end));
        TRY(number_frag(c, start, 0, end));
        TRY(literal(c, start, "true", 4, end));
        TRY(literal(c, start, "false", 5, end));
        TRY(literal(c, start, "null", 4, end));
    }
    return call(c, c->any_start, from, to);
}

static mt_status typed_value(cc *c, const cJSON *s, int32_t from, int32_t to) {
    int types;
    TRY(read_types(c, s, &types));
    /* Bad values of keywords are errors whatever the type. */
    int32_t dummy = 0;
    const char *counts[] = {"minItems", "maxItems", "minLength", "maxLength"};
    for (size_t i = 0; i < N_OF(counts); i++) TRY(read_count(c, s, counts[i], &dummy));
    if (cJSON_GetObjectItemCaseSensitive(s, "enum") || cJSON_GetObjectItemCaseSensitive(s, "const"))
        return enum_frag(c, s, types, from, to);
    if (!types) types = implied_types(s);
    if (!types) return any_value(c, from, to);
    const int bounded = cJSON_GetObjectItemCaseSensitive(s, "minimum") ||
                        cJSON_GetObjectItemCaseSensitive(s, "maximum") ||
                        cJSON_GetObjectItemCaseSensitive(s, "exclusiveMinimum") ||
                        cJSON_GetObjectItemCaseSensitive(s, "exclusiveMaximum");
    if (bounded && (types & T_NUMBER)) {
        if (cJSON_GetObjectItemCaseSensitive(s, "type"))
            return fail_at(c, MT_ERR_UNSUPPORTED,
                           "minimum/maximum are supported only for type \"integer\", not "
                           "\"number\"");
        types = (types & ~T_NUMBER) | T_INTEGER;
    }
    if (types & T_OBJECT) TRY(object_frag(c, s, from, to));
    if (types & T_ARRAY) TRY(array_frag(c, s, from, to));
    if (types & T_STRING) TRY(string_schema(c, s, from, to));
    if (types & T_NUMBER) TRY(number_frag(c, from, 0, to));
    if ((types & T_INTEGER) && !(types & T_NUMBER)) TRY(integer_frag(c, s, from, to));
    if (types & T_BOOL) {
        TRY(literal(c, from, "true", 4, to));
        TRY(literal(c, from, "false", 5, to));
    }
    if (types & T_NULL) TRY(literal(c, from, "null", 4, to));
    return MT_OK;
}

static mt_status value(cc *c, const cJSON *s, int32_t from, int32_t to) {
    if (cJSON_IsTrue(s)) return any_value(c, from, to);
    if (cJSON_IsFalse(s))
        return fail_at(c, MT_ERR_UNSUPPORTED,
                       "the schema false is supported only as \"additionalProperties\" or "
                       "\"items\"");
    if (!cJSON_IsObject(s))
        return fail_at(c, MT_ERR_FORMAT, "a schema must be an object or a boolean");
    if (c->depth >= MT_JSON_SCHEMA_MAX_NEST)
        return fail_at(c, MT_ERR_UNSUPPORTED, "schema nested deeper than %d",
                       MT_JSON_SCHEMA_MAX_NEST);
    c->depth++;
    mt_status st = check_keywords(c, s);
    if (!st) {
        if (cJSON_GetObjectItemCaseSensitive(s, "$ref"))
            st = ref_frag(c, s, from, to);
        else if (cJSON_GetObjectItemCaseSensitive(s, "anyOf"))
            st = any_of_frag(c, s, from, to);
        else
            st = typed_value(c, s, from, to);
    }
    c->depth--;
    return st;
}

/* A rule whose start reaches a call of itself without consuming a byte would recurse
 * forever: refused. */
static mt_status check_left_recursion(cc *c) {
    const int n = c->n_rules + (c->any_start >= 0);
    int32_t *starts = mt_calloc((size_t)n + 1, sizeof *starts);
    uint8_t *adj = mt_calloc((size_t)n * (size_t)n + 1, 1);
    int32_t *callees = mt_calloc(256, sizeof *callees);
    int *color = mt_calloc((size_t)n + 1, sizeof *color),
        *stack = mt_calloc((size_t)n + 1, sizeof *stack);
    int *next = mt_calloc((size_t)n + 1, sizeof *next);
    mt_status st = starts && adj && callees && color && stack && next ? MT_OK : MT_ERR_NOMEM;
    for (int i = 0; i < c->n_rules; i++) starts[i] = c->rules[i].start;
    if (c->any_start >= 0) starts[c->n_rules] = c->any_start;
    for (int i = 0; !st && i < n; i++) {
        const int k = mt_gbuild_first_calls(c->b, starts[i], callees, 256);
        if (k < 0) st = MT_ERR_NOMEM;
        for (int j = 0; j < k; j++)
            for (int r = 0; r < n; r++)
                if (starts[r] == callees[j]) adj[(size_t)i * n + r] = 1;
    }
    /* Iterative depth-first search: a grey node met again closes a cycle. */
    for (int s0 = 0; !st && s0 < n; s0++) {
        if (color[s0]) continue;
        int top = 0;
        stack[0] = s0;
        color[s0] = 1;
        next[s0] = 0;
        while (!st && top >= 0) {
            const int u = stack[top];
            if (next[u] >= n) {
                color[u] = 2;
                top--;
                continue;
            }
            const int v = next[u]++;
            if (!adj[(size_t)u * n + v]) continue;
            if (color[v] == 1) {
                const char *where = v < c->n_rules ? c->rules[v].path : "";
                st = mt_fail(MT_ERR_UNSUPPORTED,
                             "json schema: $ref cycle that consumes no text at %s",
                             *where ? where : "the schema root");
            } else if (!color[v]) {
                color[v] = 1;
                next[v] = 0;
                stack[++top] = v;
            }
        }
    }
    free(starts);
    free(adj);
    free(callees);
    free(color);
    free(stack);
    free(next);
    return st;
}

mt_status mt_json_schema_compile(const char *schema_json, size_t len, mt_grammar **out) {
    *out = NULL;
    if (len > MT_JSON_SCHEMA_MAX_BYTES)
        return mt_fail(MT_ERR_UNSUPPORTED, "json schema: %zu bytes, more than the %d allowed", len,
                       MT_JSON_SCHEMA_MAX_BYTES);
    char *text = mt_strndup(schema_json, len);
    if (!text) return MT_ERR_NOMEM;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    const size_t at = end && end >= text ? (size_t)(end - text) : 0;
    free(text);
    if (!root) return mt_fail(MT_ERR_FORMAT, "json schema: not valid JSON (near byte %zu)", at);
    cc c = {.root = root, .any_start = -1};
    mt_status st = mt_gbuild_new(&c.b);
    int32_t start = -1, lead, top_end, done;
    if (!st) st = new_state(&c, &start);
    if (!st) st = new_state(&c, &lead);
    if (!st) st = new_state(&c, &done);
    if (!st) st = ws(&c, start, lead);
    if (!st) st = mt_gbuild_ret(c.b, done);
    if (!st) st = rule_for(&c, root, &top_end);
    if (!st) st = mt_gbuild_call(c.b, lead, top_end, done);
    if (!st) st = check_left_recursion(&c);
    if (!st) {
        st = mt_gbuild_finish(c.b, start, out);
        c.b = NULL;
    }
    mt_gbuild_free(c.b);
    for (int i = 0; i < c.n_rules; i++) free(c.rules[i].path);
    free(c.rules);
    cJSON_Delete(root);
    return st;
}
