#include "infer/constraint.h"

#include <stdlib.h>

#include "core/alloc.h"
#include "infer/json_schema.h"

mt_status mt_json_constraint_new(const char *schema_json, size_t len, const mt_token_index *ix,
                                 mt_json_constraint **out) {
    *out = NULL;
    mt_json_constraint *c = mt_calloc(1, sizeof *c);
    if (!c) return MT_ERR_NOMEM;
    c->index = ix;
    mt_status st = mt_json_schema_compile(schema_json, len, &c->grammar);
    if (!st) st = mt_gcache_new(c->grammar, ix, 0, &c->cache);
    if (st) {
        mt_json_constraint_free(c);
        return st;
    }
    *out = c;
    return MT_OK;
}

void mt_json_constraint_free(mt_json_constraint *c) {
    if (!c) return;
    if (c->cache) mt_gcache_release(c->cache);
    mt_grammar_free(c->grammar);
    free(c);
}
