#include "pipeline/adapter.h"

#include "train/export.h"

mt_status mt_session_apply_adapter(mt_session *s, const char *dir) {
    return dir ? mt_model_apply_adapter(s->model, dir, &s->lora) : MT_OK;
}

mt_status mt_model_apply_adapter(mt_model *m, const char *dir, mt_lora **out) {
    mt_lora *l = NULL;
    *out = NULL;
    mt_status s = mt_lora_import_peft(dir, m, &l);
    if (s) return mt_fail_prefix(s, dir);
    mt_lora_attach(l, m);
    *out = l;
    return MT_OK;
}
