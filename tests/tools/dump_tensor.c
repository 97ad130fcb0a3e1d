/* Test tool: dumps a GGUF tensor dequantised to raw little-endian float32, or lists
 * the tensors of a file, so oracle tests can compare meteor with reference readers.
 *   dump_tensor FILE.gguf TENSOR OUT.f32 [FIRST_ROW N_ROWS]
 *   dump_tensor --list FILE.gguf
 * A row range keeps huge tensors (a 262144-row embedding) cheap to compare. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/file_util.h"
#include "io/gguf.h"
#include "kernels/dequant.h"

static void list(const mt_gguf *g) {
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const mt_gguf_tensor *t = &g->tensors[i];
        printf("%s %s", t->name, mt_dtype_name(t->ggml_type));
        for (int d = 0; d < t->n_dims; d++) printf(" %lld", (long long)t->ne[d]);
        printf("\n");
    }
}

/* Parses a non-negative decimal integer, or returns -1. */
static int64_t parse_count(const char *s) {
    char *end;
    long long v = strtoll(s, &end, 10);
    return (*s && !*end && v >= 0) ? (int64_t)v : -1;
}

static mt_status dump(const mt_gguf *g, const char *name, const char *out_path, const char *first,
                      const char *count) {
    const mt_tensor *t;
    mt_status st = mt_gguf_tensor_view(g, name, &t);
    if (st) return st;
    int64_t rows = mt_tensor_nelements(t) / t->ne[0], r0 = 0, nr = rows;
    if (first) {
        r0 = parse_count(first), nr = parse_count(count);
        if (r0 < 0 || nr < 0 || r0 > rows || nr > rows - r0)
            return mt_fail(MT_ERR_ARG, "rows %s+%s outside tensor '%s' of %lld rows", first, count,
                           name, (long long)rows);
    }
    float *buf = mt_calloc((size_t)(nr * t->ne[0]), sizeof *buf);
    if (!buf) return MT_ERR_NOMEM;
    for (int64_t r = 0; r < nr; r++) mt_dequantize_row(t, r0 + r, buf + r * t->ne[0]);
    st = mt_write_file_atomic(out_path, buf, (size_t)(nr * t->ne[0]) * sizeof *buf);
    free(buf);
    return st;
}

int main(int argc, char **argv) {
    int listing = argc == 3 && !strcmp(argv[1], "--list");
    if (!listing && argc != 4 && argc != 6) {
        fprintf(stderr, "usage: dump_tensor FILE.gguf TENSOR OUT.f32 [FIRST_ROW N_ROWS] | "
                        "dump_tensor --list FILE.gguf\n");
        return 1;
    }
    mt_gguf *g;
    mt_status st = mt_gguf_open(listing ? argv[2] : argv[1], &g);
    if (!st) {
        if (listing)
            list(g);
        else
            st = dump(g, argv[2], argv[3], argc == 6 ? argv[4] : NULL, argc == 6 ? argv[5] : NULL);
        mt_gguf_close(g);
    }
    if (st) {
        fprintf(stderr, "dump_tensor: %s\n", mt_last_error());
        return 1;
    }
    return 0;
}
