#include "cli/args.h"

#include <stdlib.h>
#include <string.h>

#include "io/yaml_flat.h"

static const mt_opt *find_opt(const mt_opt *opts, int n, const char *arg) {
    for (int i = 0; i < n; i++)
        if (!strcmp(arg, opts[i].name) || (opts[i].alias && !strcmp(arg, opts[i].alias)))
            return &opts[i];
    return NULL;
}

/* v as the option's value; `name` is how the user spelled the option (--lr, or lr in a
 * config file), for the error. */
static mt_status parse_value(const mt_opt *o, const char *name, const char *v) {
    switch (o->kind) {
    case MT_OPT_STR:
        *(const char **)o->dst = v;
        return MT_OK;
    case MT_OPT_STR_LIST: {
        mt_str_list *l = o->dst;
        if (l->n == MT_OPT_LIST_MAX)
            return mt_fail(MT_ERR_ARG, "%s given more than %d times", name, MT_OPT_LIST_MAX);
        l->items[l->n++] = v;
        return MT_OK;
    }
    case MT_OPT_INT:
        return mt_range_parse_int(MT_ERR_ARG, name, v, o->range, (int *)o->dst);
    case MT_OPT_U64:
        return mt_range_parse_u64(MT_ERR_ARG, name, v, (uint64_t *)o->dst);
    case MT_OPT_FLOAT:
        return mt_range_parse_float(MT_ERR_ARG, name, v, o->range, (float *)o->dst);
    case MT_OPT_FLAG:
        break;
    }
    return mt_fail(MT_ERR_INTERNAL, "option %s has no value kind", o->name);
}

/* A numeric option without a range would take any value unchecked; the zero range (what
 * a table entry that leaves it out gets) is never a real one. */
static mt_status check_table(const mt_opt *opts, int n) {
    for (int i = 0; i < n; i++) {
        const mt_range r = opts[i].range;
        const int unset = r.lo == 0 && r.hi == 0 && !r.lo_open && !r.hi_open;
        if ((opts[i].kind == MT_OPT_INT || opts[i].kind == MT_OPT_FLOAT) && unset)
            return mt_fail(MT_ERR_INTERNAL, "option %s has no range", opts[i].name);
    }
    return MT_OK;
}

typedef struct {
    const mt_opt *opts;
    int n_opts;
    const char *path;
} config_ctx;

/* Values from a config file outlive the parse: options keep pointers to them. */
static char **config_strings;
static int n_config_strings;

static void free_config_strings(void) {
    for (int i = 0; i < n_config_strings; i++) free(config_strings[i]);
    free(config_strings);
}

static mt_status keep_string(const char *v, const char **out) {
    char **grown = realloc(config_strings, (size_t)(n_config_strings + 1) * sizeof *grown);
    char *copy = strdup(v);
    if (!grown || !copy) {
        free(copy);
        if (grown) config_strings = grown;
        return mt_fail(MT_ERR_NOMEM, "out of memory");
    }
    if (!config_strings) atexit(free_config_strings);
    config_strings = grown;
    config_strings[n_config_strings++] = copy;
    *out = copy;
    return MT_OK;
}

static int is_true(const char *v) {
    return !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1");
}

static int is_false(const char *v) {
    return !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0");
}

/* One `key: value` of a config file, as if `--key value` had been given there. */
static mt_status config_kv(void *user, const char *key, const char *value, int line) {
    const config_ctx *c = user;
    char flag[160];
    snprintf(flag, sizeof flag, "--%s", key);
    for (char *p = flag + 2; *p; p++)
        if (*p == '_') *p = '-';
    const mt_opt *o = find_opt(c->opts, c->n_opts, flag);
    if (!o || !strcmp(flag, "--config"))
        return mt_fail(MT_ERR_ARG,
                       "%s:%d: unknown setting '%s' (settings are the flags without "
                       "their dashes; see --help)",
                       c->path, line, key);
    if (!value) return mt_fail(MT_ERR_ARG, "%s:%d: '%s' has no value", c->path, line, key);
    if (o->kind == MT_OPT_FLAG) {
        if (!is_true(value) && !is_false(value))
            return mt_fail(MT_ERR_ARG, "%s:%d: '%s' must be true or false", c->path, line, key);
        *(int *)o->dst = is_true(value);
        return MT_OK;
    }
    const char *kept = NULL;
    mt_status s = keep_string(value, &kept);
    if (!s) s = parse_value(o, key, kept);
    if (s) {
        char where[4200];
        snprintf(where, sizeof where, "%s:%d", c->path, line);
        mt_fail_prefix(s, where);
    }
    return s;
}

mt_status mt_parse_opts(const mt_opt *opts, int n_opts, int argc, char **argv, int *help) {
    *help = 0;
    mt_status checked = check_table(opts, n_opts);
    if (checked) return checked;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            *help = 1;
            return MT_OK;
        }
        /* --config FILE (for verbs without an option of that name): the file's settings
         * apply where it stands, so flags after it override them. */
        if (!strcmp(a, "--config") && !find_opt(opts, n_opts, a)) {
            if (i + 1 >= argc) return mt_fail(MT_ERR_ARG, "--config needs a file");
            config_ctx c = {opts, n_opts, argv[++i]};
            mt_status s = mt_yaml_read_flat(c.path, config_kv, &c);
            if (s) return s;
            continue;
        }
        /* Accept --flag=value as well as --flag value. */
        char name[64];
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        if (eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            a = name;
        }
        const mt_opt *o = find_opt(opts, n_opts, a);
        if (!o) {
            if (argv[i][0] == '-')
                return mt_fail(MT_ERR_ARG, "unknown option '%s' (see --help)", argv[i]);
            return mt_fail(MT_ERR_ARG, "unexpected argument '%s' (see --help)", argv[i]);
        }
        if (o->kind == MT_OPT_FLAG) {
            if (eq) return mt_fail(MT_ERR_ARG, "%s takes no value", o->name);
            *(int *)o->dst = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return mt_fail(MT_ERR_ARG, "%s needs a value", o->name);
        mt_status s = parse_value(o, a, v);
        if (s) return s;
    }
    return MT_OK;
}

void mt_print_help(FILE *f, const char *usage, const char *about, const mt_opt *opts, int n_opts) {
    fprintf(f, "usage: %s\n\n%s\n\noptions:\n", usage, about);
    for (int i = 0; i < n_opts; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s %s", opts[i].alias ? opts[i].alias : "",
                 opts[i].alias ? ", " : "", opts[i].name, opts[i].metavar ? opts[i].metavar : "");
        fprintf(f, "  %-30s %s\n", left, opts[i].help);
    }
    fprintf(f, "  %-30s %s\n", "--config FILE.yaml",
            "settings from a YAML mapping (keys: the flags without dashes)");
    fprintf(f, "  %-30s %s\n", "-h, --help", "show this help");
}

int mt_report_error(void) {
    fprintf(stderr, "meteor: error: %s\n", mt_last_error());
    return 1;
}
