/* Packing a model's weights for the AVX-512 kernels of kernels/qpack.h, for fast
 * generation. */
#ifndef MT_MODEL_PACK_H
#define MT_MODEL_PACK_H

#include "core/status.h"
#include "model/model.h"

/* Gives every linear weight and the LM head whose type kernels/qpack.h packs a packed
 * copy, in one allocation the model owns; a no-op when none qualifies or the weights
 * are packed already. The copied weights' file pages are then dropped from memory (an
 * embedding lookup reads its row back from the page cache), so the model's footprint
 * stays about the size of the file. MT_ERR_NOMEM leaves the model unpacked. */
mt_status mt_model_pack(mt_model *m);

/* Frees the packed copies (the weights read their stored rows again), for work that does
 * not use them, such as training. */
void mt_model_unpack(mt_model *m);

#endif
