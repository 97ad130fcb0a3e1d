/* Private to the safetensors reader: the handle and per-file header parsing. */
#ifndef MT_IO_SAFETENSORS_INTERNAL_H
#define MT_IO_SAFETENSORS_INTERNAL_H

#include <cjson/cJSON.h>

#include "io/safetensors.h"

struct mt_safetensors {
    size_t n_files;
    const void **maps;
    size_t *map_sizes;
    size_t n, cap;
    mt_st_tensor *tensors;
    const mt_st_tensor **sorted; /* by name, for lookups */
    cJSON *meta;                 /* __metadata__ of the first file that has one */
};

/* Maps path and appends the tensors its header describes. */
mt_status st_add_file(mt_safetensors *st, const char *path);

#endif
