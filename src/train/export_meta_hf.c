#include "io/gguf_write.h"
#include "train/export_internal.h"

mt_status mt_export_hf_metadata(struct mt_gguf_writer *w, const mt_model *m) {
    (void)w;
    return mt_fail(MT_ERR_UNSUPPORTED,
                   "merged export of a Hugging Face folder (%s) is not supported yet; export from "
                   "a GGUF of the model",
                   m->path);
}
