#include "train/ref_logps.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "io/file_util.h"
#include "io/json_file.h"
#include "model/train_graph.h"

void mt_ref_logps_free(mt_ref_logps *r) {
    free(r->chosen);
    free(r->rejected);
    memset(r, 0, sizeof *r);
}

/* Summed log-prob of e's trained tokens under the model as it is now. */
static mt_status seq_logp(const mt_model *m, const mt_sft_example *e, int train_prompt,
                          double *out) {
    int32_t *targets = mt_calloc((size_t)e->n, sizeof *targets);
    float *lp = mt_calloc((size_t)e->n, sizeof *lp);
    const int starts[2] = {0, e->n};
    mt_tape *tape = NULL;
    mt_status s = (!targets || !lp) ? MT_ERR_NOMEM : MT_OK;
    if (!s) {
        mt_example_targets(e, train_prompt, targets);
        s = mt_train_forward(m, e->tokens, starts, 1, NULL, 0, &tape);
    }
    if (!s) s = mt_head_logprobs(m, tape, targets, lp);
    double sum = 0.0;
    for (int i = 0; !s && i < e->n; i++)
        if (targets[i] >= 0) sum += lp[i];
    *out = sum;
    mt_tape_free(tape);
    free(targets);
    free(lp);
    return s;
}

static mt_status compute(const mt_model *m, const mt_dataset *d, const mt_train_opts *o,
                         mt_ref_logps *r) {
    mt_progress bar;
    mt_progress_start(&bar, "reference log-probs", d->n, 0);
    bar.quiet = o->quiet;
    for (int i = 0; i < d->n; i++) {
        mt_status s = seq_logp(m, &d->pref[i].chosen, o->train_prompt, &r->chosen[i]);
        if (!s) s = seq_logp(m, &d->pref[i].rejected, o->train_prompt, &r->rejected[i]);
        if (s) return s;
        mt_progress_update(&bar, i + 1, NULL);
    }
    mt_progress_finish(&bar, NULL);
    return MT_OK;
}

static mt_status save(const char *path, const mt_ref_logps *r, uint64_t fingerprint) {
    cJSON *root = cJSON_CreateObject();
    cJSON *c = cJSON_AddArrayToObject(root, "chosen"),
          *rj = cJSON_AddArrayToObject(root, "rejected");
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, fingerprint);
    cJSON_AddStringToObject(root, "data_fingerprint", fp);
    for (int i = 0; i < r->n; i++) {
        cJSON_AddItemToArray(c, cJSON_CreateNumber(r->chosen[i]));
        cJSON_AddItemToArray(rj, cJSON_CreateNumber(r->rejected[i]));
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) return mt_fail(MT_ERR_NOMEM, "out of memory writing %s", path);
    mt_status s = mt_write_file_atomic(path, text, strlen(text));
    cJSON_free(text);
    return s;
}

static mt_status load(const char *path, mt_ref_logps *r, uint64_t fingerprint) {
    cJSON *root = NULL;
    mt_status s = mt_json_read_file(path, &root);
    if (s) return s;
    const cJSON *c = cJSON_GetObjectItem(root, "chosen"),
                *rj = cJSON_GetObjectItem(root, "rejected");
    const cJSON *fp = cJSON_GetObjectItem(root, "data_fingerprint");
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, fingerprint);
    if (!cJSON_IsArray(c) || !cJSON_IsArray(rj) || cJSON_GetArraySize(c) != r->n ||
        cJSON_GetArraySize(rj) != r->n || !cJSON_IsString(fp) || strcmp(fp->valuestring, want))
        s = mt_fail(MT_ERR_FORMAT, "%s does not match the training data", path);
    for (int i = 0; !s && i < r->n; i++) {
        r->chosen[i] = cJSON_GetArrayItem(c, i)->valuedouble;
        r->rejected[i] = cJSON_GetArrayItem(rj, i)->valuedouble;
    }
    cJSON_Delete(root);
    return s;
}

mt_status mt_ref_logps_prepare(const mt_model *m, const mt_dataset *d, const mt_train_opts *o,
                               mt_ref_logps *out) {
    memset(out, 0, sizeof *out);
    out->n = d->n;
    out->chosen = mt_calloc((size_t)d->n, sizeof *out->chosen);
    out->rejected = mt_calloc((size_t)d->n, sizeof *out->rejected);
    if (!out->chosen || !out->rejected) {
        mt_ref_logps_free(out);
        return MT_ERR_NOMEM;
    }
    char path[4096];
    mt_train_path(o, "ref_logps.json", path, sizeof path);
    const uint64_t fp = mt_dataset_fingerprint(d);
    mt_status s = o->resume ? load(path, out, fp) : compute(m, d, o, out);
    if (!s && !o->resume) s = save(path, out, fp);
    if (s) mt_ref_logps_free(out);
    return s;
}
