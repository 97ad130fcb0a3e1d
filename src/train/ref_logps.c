#include "train/ref_logps.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "io/file_util.h"
#include "io/json_file.h"
#include "model/train_graph.h"

void mt_ref_logps_free(mt_ref_logps *r) {
    free(r->chosen);
    free(r->rejected);
    free(r->have);
    memset(r, 0, sizeof *r);
}

/* ---- which pairs, in which groups ------------------------------------------------------ */

/* The pairs to score, grouped as the micro-batches that first visit them: pair[start[b]]
 * .. pair[start[b + 1] - 1] is group b. */
typedef struct {
    int *pair, *start;
    int n_groups, n_pairs;
} work_list;

static void work_free(work_list *w) {
    free(w->pair);
    free(w->start);
}

/* Walks the first n_micro micro-batches of the plan, from (epoch 0, batch 0) as the
 * trainer does, and lists the pairs they visit that r lacks. Every epoch visits every
 * pair, so the walk ends at the latest once one epoch is through. */
static mt_status plan_work(const mt_dataset *d, const mt_batch_opts *bo, int64_t n_micro,
                           const mt_ref_logps *r, work_list *w) {
    memset(w, 0, sizeof *w);
    unsigned char *seen = mt_calloc((size_t)d->n, 1);
    w->pair = mt_calloc((size_t)d->n, sizeof *w->pair);
    w->start = mt_calloc((size_t)d->n + 1, sizeof *w->start);
    if (!seen || !w->pair || !w->start) {
        free(seen);
        work_free(w);
        return mt_fail(MT_ERR_NOMEM, "out of memory planning the reference pass");
    }
    memcpy(seen, r->have, (size_t)d->n);
    int n_seen = r->n_have;
    mt_batches plan = {0};
    mt_data_pos pos = {0, 0};
    mt_status s = MT_OK;
    for (int64_t k = 0; k < n_micro && n_seen < d->n; k++) {
        if (k == 0 || plan.epoch != pos.epoch) {
            mt_batches_free(&plan);
            if ((s = mt_batch_plan(d, bo, pos.epoch, &plan))) break;
        }
        int n_idx;
        const int *idx = mt_batch_indices(&plan, pos.batch, &n_idx);
        const int before = w->n_pairs;
        for (int i = 0; i < n_idx; i++)
            if (!seen[idx[i]]) {
                seen[idx[i]] = 1;
                n_seen++;
                w->pair[w->n_pairs++] = idx[i];
            }
        if (w->n_pairs > before) w->start[++w->n_groups] = w->n_pairs;
        mt_data_pos_advance(&pos, &plan);
    }
    mt_batches_free(&plan);
    free(seen);
    if (s) work_free(w);
    return s;
}

/* ---- scoring ---------------------------------------------------------------------------- */

/* Summed log-probs of the trained tokens of pairs[0..n)'s chosen and rejected answers,
 * under the model as it is now, in one forward pass: the 2n sequences end to end (chosen
 * then rejected of each pair), as the trainer's micro-batches are. */
static mt_status score_group(const mt_model *m, const mt_dataset *d, const int *pairs, int n,
                             int train_prompt, const unsigned char *ckpt, mt_ref_logps *r) {
    const int n_seqs = 2 * n;
    int n_tokens = 0;
    for (int p = 0; p < n; p++)
        n_tokens += d->pref[pairs[p]].chosen.n + d->pref[pairs[p]].rejected.n;
    int *seq_start = mt_calloc((size_t)n_seqs + 1, sizeof *seq_start);
    int32_t *tokens = mt_calloc((size_t)n_tokens, sizeof *tokens);
    int32_t *targets = mt_calloc((size_t)n_tokens, sizeof *targets);
    float *lp = mt_calloc((size_t)n_tokens, sizeof *lp);
    mt_tape *tape = NULL;
    mt_status s = (!seq_start || !tokens || !targets || !lp) ? MT_ERR_NOMEM : MT_OK;
    for (int i = 0; !s && i < n_seqs; i++) {
        const mt_pref_example *pe = &d->pref[pairs[i / 2]];
        const mt_sft_example *e = i % 2 == 0 ? &pe->chosen : &pe->rejected;
        const int o = seq_start[i];
        memcpy(tokens + o, e->tokens, (size_t)e->n * sizeof *tokens);
        mt_example_targets(e, train_prompt, targets + o);
        seq_start[i + 1] = o + e->n;
    }
    if (!s) s = mt_train_forward(m, tokens, seq_start, n_seqs, ckpt, 0, &tape);
    if (!s) s = mt_head_logprobs(m, tape, targets, lp);
    for (int i = 0; !s && i < n_seqs; i++) {
        double sum = 0.0;
        for (int t = seq_start[i]; t < seq_start[i + 1]; t++)
            if (targets[t] >= 0) sum += lp[t];
        const int pair = pairs[i / 2];
        if (i % 2 == 0)
            r->chosen[pair] = sum;
        else {
            r->rejected[pair] = sum;
            r->have[pair] = 1;
            r->n_have++;
        }
    }
    mt_tape_free(tape);
    free(seq_start);
    free(tokens);
    free(targets);
    free(lp);
    return s == MT_ERR_NOMEM ? mt_fail(s, "out of memory in the reference pass") : s;
}

static mt_status score_work(const mt_model *m, const mt_dataset *d, const mt_train_opts *o,
                            const unsigned char *ckpt, const work_list *w, mt_ref_logps *r) {
    mt_task task;
    mt_task_start(&task, o->rep, "reference log-probs", w->n_pairs, 0);
    for (int g = 0; g < w->n_groups; g++) {
        const int first = w->start[g], n = w->start[g + 1] - first;
        mt_status s = score_group(m, d, w->pair + first, n, o->train_prompt, ckpt, r);
        if (s) return s;
        mt_task_update(&task, w->start[g + 1], NULL);
    }
    mt_task_finish(&task, NULL);
    return MT_OK;
}

/* ---- the file --------------------------------------------------------------------------- */

static cJSON *number_or_null(const mt_ref_logps *r, const double *v, int i) {
    return r->have[i] ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull();
}

static mt_status save(const char *path, const mt_ref_logps *r, uint64_t fingerprint,
                      int train_prompt) {
    cJSON *root = cJSON_CreateObject();
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, fingerprint);
    cJSON_AddStringToObject(root, "data_fingerprint", fp);
    cJSON_AddBoolToObject(root, "train_prompt", train_prompt);
    cJSON *c = cJSON_AddArrayToObject(root, "chosen"),
          *rj = cJSON_AddArrayToObject(root, "rejected");
    for (int i = 0; i < r->n; i++) {
        cJSON_AddItemToArray(c, number_or_null(r, r->chosen, i));
        cJSON_AddItemToArray(rj, number_or_null(r, r->rejected, i));
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) return mt_fail(MT_ERR_NOMEM, "out of memory writing %s", path);
    mt_status s = mt_write_file_atomic(path, text, strlen(text));
    cJSON_free(text);
    return s;
}

/* Takes the values of a file written for this data and these targets; a file written for
 * others (or before it recorded its targets) gives none, as they are not this run's
 * references. */
static mt_status load(const char *path, mt_ref_logps *r, uint64_t fingerprint, int train_prompt) {
    cJSON *root = NULL;
    mt_status s = mt_json_read_file(path, &root);
    if (s) return s;
    const cJSON *c = cJSON_GetObjectItem(root, "chosen"),
                *rj = cJSON_GetObjectItem(root, "rejected");
    const cJSON *fp = cJSON_GetObjectItem(root, "data_fingerprint"),
                *tp = cJSON_GetObjectItem(root, "train_prompt");
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, fingerprint);
    if (!cJSON_IsArray(c) || !cJSON_IsArray(rj) || !cJSON_IsString(fp))
        s = mt_fail(MT_ERR_FORMAT, "%s is not a reference log-prob file", path);
    const int ours = !s && !strcmp(fp->valuestring, want) && cJSON_IsBool(tp) &&
                     cJSON_IsTrue(tp) == (train_prompt != 0);
    if (ours && (cJSON_GetArraySize(c) != r->n || cJSON_GetArraySize(rj) != r->n))
        s = mt_fail(MT_ERR_FORMAT, "%s holds %d pairs, the data %d", path, cJSON_GetArraySize(c),
                    r->n);
    for (int i = 0; ours && !s && i < r->n; i++) {
        const cJSON *a = cJSON_GetArrayItem(c, i), *b = cJSON_GetArrayItem(rj, i);
        if (cJSON_IsNull(a) && cJSON_IsNull(b)) continue;
        if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b)) {
            s = mt_fail(MT_ERR_FORMAT, "%s: pair %d has no valid values", path, i);
            break;
        }
        r->chosen[i] = a->valuedouble;
        r->rejected[i] = b->valuedouble;
        r->have[i] = 1;
        r->n_have++;
    }
    cJSON_Delete(root);
    return s;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 || errno != ENOENT;
}

mt_status mt_ref_logps_prepare(const mt_model *m, const mt_dataset *d, const mt_train_opts *o,
                               const unsigned char *ckpt, int64_t n_micro, mt_ref_logps *out) {
    memset(out, 0, sizeof *out);
    out->n = d->n;
    out->chosen = mt_calloc((size_t)d->n, sizeof *out->chosen);
    out->rejected = mt_calloc((size_t)d->n, sizeof *out->rejected);
    out->have = mt_calloc((size_t)d->n, 1);
    if (!out->chosen || !out->rejected || !out->have) {
        mt_ref_logps_free(out);
        return mt_fail(MT_ERR_NOMEM, "out of memory for reference log-probs");
    }
    char path[4096];
    mt_train_path(o, "ref_logps.json", path, sizeof path);
    const uint64_t fp = mt_dataset_fingerprint(d);
    mt_status s = MT_OK;
    if (o->resume && file_exists(path)) s = load(path, out, fp, o->train_prompt);
    work_list w = {0};
    if (!s) s = plan_work(d, &o->batch, n_micro, out, &w);
    if (!s && w.n_pairs > 0) {
        s = score_work(m, d, o, ckpt, &w, out);
        if (!s) s = save(path, out, fp, o->train_prompt);
    }
    work_free(&w);
    if (s) mt_ref_logps_free(out);
    return s;
}
