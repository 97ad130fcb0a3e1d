#include "core/lines.h"

#include <stdlib.h>
#include <string.h>

mt_status mt_lines_push(mt_lines *l, char *s) {
    if (!s) return mt_fail(MT_ERR_NOMEM, "out of memory");
    if (l->n == l->cap) {
        const int cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            free(s);
            return mt_fail(MT_ERR_NOMEM, "out of memory");
        }
        l->v = v, l->cap = cap;
    }
    l->v[l->n++] = s;
    return MT_OK;
}

void mt_lines_free(mt_lines *l) {
    for (int k = 0; k < l->n; k++) free(l->v[k]);
    free(l->v);
    memset(l, 0, sizeof *l);
}
