#include "pipeline/expert_spec.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* A name that cannot be an environment variable's (POSIX: letters, digits, '_', not
 * starting with a digit), or that reads like an API key (a vendor prefix, or a long run
 * mixing cases and digits): most likely the key itself, given in place of the name. */
static int looks_like_key(const char *name) {
    static const char *const prefixes[] = {"sk-", "sk_", "hf_", "AIza", "gsk_", "xai-", "ghp_"};
    int lower = 0, upper = 0, digit = 0;
    size_t n = strlen(name);
    if (!n || isdigit((unsigned char)name[0])) return 1;
    for (const char *p = name; *p; p++) {
        const unsigned char c = (unsigned char)*p;
        if (!isalnum(c) && c != '_') return 1;
        lower |= islower(c) != 0;
        upper |= isupper(c) != 0;
        digit |= isdigit(c) != 0;
    }
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i]))) return 1;
    return n >= 20 && lower && upper && digit;
}

mt_status mt_expert_api_key(const mt_expert_spec *sp, const char **key) {
    *key = NULL;
    if (!sp->key_env) return MT_OK;
    const char *v = getenv(sp->key_env);
    if (v && *v) {
        *key = v;
        return MT_OK;
    }
    /* Never echo it: what was given may be the key. */
    if (looks_like_key(sp->key_env))
        return mt_fail(MT_ERR_ARG, "--api-key-env takes the NAME of an environment variable; the "
                                   "value given looks like an API key (not shown)");
    return mt_fail(MT_ERR_ARG, "environment variable %s (the expert's API key) is not set",
                   sp->key_env);
}

mt_status mt_expert_open(const mt_expert_spec *sp, mt_store *s, mt_expert **out) {
    *out = NULL;
    if (sp->local_model) {
        mt_local_opts lo = sp->local;
        lo.model_path = sp->local_model;
        return mt_expert_local_new(&lo, out);
    }
    if (!sp->remote.url)
        return mt_fail(
            MT_ERR_ARG,
            "no expert: pass --expert local:MODEL or --expert-url URL --expert-model NAME");
    mt_remote_opts ro = sp->remote;
    mt_status st = mt_expert_api_key(sp, &ro.api_key);
    if (st) return st;
    mt_usage u;
    st = mt_store_usage(s, NULL, &u);
    if (st) return st;
    ro.spent_cost = u.cost;
    ro.spent_requests = u.attempts;
    return mt_expert_remote_new(&ro, out);
}
