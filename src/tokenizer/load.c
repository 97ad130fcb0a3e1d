/* Picks the tokenizer source from what the model path is: a folder means Hugging Face
 * files, anything else a GGUF file. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

mt_status mt_tokenizer_load(const char *model_path, mt_tokenizer **out) {
    *out = NULL;
    struct stat sb;
    if (!model_path || stat(model_path, &sb) != 0)
        return mt_fail(MT_ERR_IO, "%s: %s", model_path ? model_path : "(null)", strerror(errno));
    if (S_ISDIR(sb.st_mode)) return mt_tokenizer_from_hf_dir(model_path, out);
    mt_gguf *g;
    mt_status st = mt_gguf_open(model_path, &g);
    if (st != MT_OK) return st;
    st = mt_tokenizer_from_gguf(g, out);
    mt_gguf_close(g);
    return st;
}
