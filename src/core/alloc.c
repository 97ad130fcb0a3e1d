#include "core/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *mt_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) {
        mt_fail(MT_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) mt_fail(MT_ERR_NOMEM, "out of memory allocating %zu bytes", n * size);
    return p;
}

void *mt_alloc_aligned(size_t bytes) {
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) mt_fail(MT_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
    return p;
}

void mt_free_aligned(void *p) {
    free(p);
}

char *mt_strndup(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) {
        mt_fail(MT_ERR_NOMEM, "out of memory copying a string of %zu bytes", n);
        return NULL;
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *mt_strdup(const char *s) {
    return mt_strndup(s, strlen(s));
}
