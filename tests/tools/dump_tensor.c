/* Test tool: dumps a GGUF tensor dequantised to raw little-endian float32, or lists
 * the tensors of a file, so oracle tests can compare meteor with reference readers.
 *   dump_tensor FILE.gguf TENSOR OUT.f32
 *   dump_tensor --list FILE.gguf */
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

static mt_status dump(const mt_gguf *g, const char *name, const char *out_path) {
    const mt_tensor *t;
    mt_status st = mt_gguf_tensor_view(g, name, &t);
    if (st) return st;
    int64_t n = mt_tensor_nelements(t), rows = n / t->ne[0];
    float *buf = mt_calloc((size_t)n, sizeof *buf);
    if (!buf) return MT_ERR_NOMEM;
    for (int64_t r = 0; r < rows; r++) mt_dequantize_row(t, r, buf + r * t->ne[0]);
    st = mt_write_file_atomic(out_path, buf, (size_t)n * sizeof *buf);
    free(buf);
    return st;
}

int main(int argc, char **argv) {
    int listing = argc == 3 && !strcmp(argv[1], "--list");
    if (!listing && argc != 4) {
        fprintf(stderr,
                "usage: dump_tensor FILE.gguf TENSOR OUT.f32 | dump_tensor --list FILE.gguf\n");
        return 1;
    }
    mt_gguf *g;
    mt_status st = mt_gguf_open(listing ? argv[2] : argv[1], &g);
    if (!st) {
        if (listing)
            list(g);
        else
            st = dump(g, argv[2], argv[3]);
        mt_gguf_close(g);
    }
    if (st) {
        fprintf(stderr, "dump_tensor: %s\n", mt_last_error());
        return 1;
    }
    return 0;
}
