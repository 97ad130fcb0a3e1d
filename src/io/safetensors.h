/* Hugging Face safetensors reader: a single file or a sharded folder
 * (model.safetensors.index.json). Files are mmap'ed; F32, F16 and BF16 tensors are
 * exposed as mt_tensor views with GGUF's dimension order (ne[0] innermost). */
#ifndef MT_IO_SAFETENSORS_H
#define MT_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "kernels/dtype.h"

/* The format does not promise alignment: view.data may not be a multiple of the element
 * size, so read it with memcpy or mt_dequantize rather than through a float pointer. */
typedef struct {
    char *name;
    mt_tensor view;
} mt_st_tensor;

typedef struct mt_safetensors mt_safetensors;

/* path: a .safetensors file, or a folder holding model.safetensors or an index + shards. */
mt_status mt_safetensors_open(const char *path, mt_safetensors **out);
void mt_safetensors_close(mt_safetensors *st);

size_t mt_safetensors_count(const mt_safetensors *st);
const mt_st_tensor *mt_safetensors_at(const mt_safetensors *st, size_t i);
/* A string from the file's __metadata__ map, or NULL. */
const char *mt_safetensors_meta(const mt_safetensors *st, const char *key);
const mt_st_tensor *mt_safetensors_find(const mt_safetensors *st, const char *name);

#endif
