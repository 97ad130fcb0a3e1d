/* Allocation helpers that turn an allocation failure into an mt_status. */
#ifndef MT_CORE_ALLOC_H
#define MT_CORE_ALLOC_H

#include <stddef.h>

#include "core/status.h"

/* Zeroed allocation of n*size bytes with overflow check; records an error on failure. */
void *mt_calloc(size_t n, size_t size);
/* 64-byte aligned allocation (for SIMD and BLAS); free with mt_free_aligned. */
void *mt_alloc_aligned(size_t bytes);
void mt_free_aligned(void *p);
/* strdup that records an error on failure. */
char *mt_strdup(const char *s);
char *mt_strndup(const char *s, size_t n);

#endif
