#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const mt_opt *find_opt(const mt_opt *opts, int n, const char *arg) {
    for (int i = 0; i < n; i++)
        if (!strcmp(arg, opts[i].name) || (opts[i].alias && !strcmp(arg, opts[i].alias)))
            return &opts[i];
    return NULL;
}

static mt_status parse_value(const mt_opt *o, const char *v) {
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case MT_OPT_STR:
        *(const char **)o->dst = v;
        return MT_OK;
    case MT_OPT_STR_LIST: {
        mt_str_list *l = o->dst;
        if (l->n == MT_OPT_LIST_MAX)
            return mt_fail(MT_ERR_ARG, "%s given more than %d times", o->name, MT_OPT_LIST_MAX);
        l->items[l->n++] = v;
        return MT_OK;
    }
    case MT_OPT_INT: {
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < -2147483647L || x > 2147483647L)
            return mt_fail(MT_ERR_ARG, "%s expects an integer, got '%s'", o->name, v);
        *(int *)o->dst = (int)x;
        return MT_OK;
    }
    case MT_OPT_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-')
            return mt_fail(MT_ERR_ARG, "%s expects a non-negative integer, got '%s'", o->name, v);
        *(uint64_t *)o->dst = x;
        return MT_OK;
    }
    case MT_OPT_FLOAT: {
        float x = strtof(v, &end);
        if (errno || end == v || *end || !isfinite(x))
            return mt_fail(MT_ERR_ARG, "%s expects a number, got '%s'", o->name, v);
        *(float *)o->dst = x;
        return MT_OK;
    }
    case MT_OPT_FLAG:
        break;
    }
    return mt_fail(MT_ERR_INTERNAL, "option %s has no value kind", o->name);
}

mt_status mt_parse_opts(const mt_opt *opts, int n_opts, int argc, char **argv, int *help) {
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            *help = 1;
            return MT_OK;
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
        mt_status s = parse_value(o, v);
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
    fprintf(f, "  %-30s %s\n", "-h, --help", "show this help");
}

int mt_report_error(void) {
    fprintf(stderr, "meteor: error: %s\n", mt_last_error());
    return 1;
}
