#include "train/checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>

#include "core/range.h"
#include "io/safetensors.h"
#include "io/safetensors_write.h"

#define FORMAT "meteor-checkpoint-1"

static mt_status add_three(mt_st_writer *w, const mt_param *p) {
    const char *kinds[3] = {"w", "m", "v"};
    const float *bufs[3] = {p->w, p->m, p->v};
    char name[256];
    const int64_t shape[1] = {p->n};
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "%s.%s", kinds[k], p->name);
        mt_status s = mt_st_writer_add(w, name, MT_F32, 1, shape, bufs[k]);
        if (s) return s;
    }
    return MT_OK;
}

mt_status mt_checkpoint_save(const char *path, const mt_trainable *t, const mt_ckpt_meta *meta) {
    mt_st_writer *w = NULL;
    mt_status s = mt_st_writer_new(&w);
    char num[32];
    for (int i = 0; !s && i < t->n; i++) s = add_three(w, &t->params[i]);
    snprintf(num, sizeof num, "%" PRId64, meta->step);
    if (!s) s = mt_st_writer_set_meta(w, "format", FORMAT);
    if (!s) s = mt_st_writer_set_meta(w, "step", num);
    snprintf(num, sizeof num, "%d:%d", meta->epoch, meta->batch);
    if (!s) s = mt_st_writer_set_meta(w, "data_pos", num);
    snprintf(num, sizeof num, "%" PRIu64, meta->seed);
    if (!s) s = mt_st_writer_set_meta(w, "seed", num);
    if (!s) s = mt_st_writer_set_meta(w, "run_key", meta->run_key);
    if (!s && meta->trainable[0]) s = mt_st_writer_set_meta(w, "trainable", meta->trainable);
    if (!s) s = mt_st_writer_write(w, path);
    mt_st_writer_free(w);
    return s;
}

/* Whether the checkpoint's tensor kind.name exists as p->n floats; fails naming what
 * differs, with mismatch telling the likely cause. */
static mt_status find_matching(const mt_safetensors *st, const char *path, const mt_param *p,
                               const char *kind, const char *mismatch, const void **data) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s", kind, p->name);
    const mt_st_tensor *x = mt_safetensors_find(st, name);
    if (!x || x->view.type != MT_F32)
        return mt_fail(MT_ERR_FORMAT, "%s: checkpoint has no matching tensor '%s'%s", path, name,
                       mismatch);
    const int64_t n = mt_tensor_nelements(&x->view);
    if (n != p->n)
        return mt_fail(MT_ERR_FORMAT,
                       "%s: checkpoint tensor '%s' holds %lld values, expected %lld%s", path, name,
                       (long long)n, (long long)p->n, mismatch);
    *data = x->view.data;
    return MT_OK;
}

/* Checks every tensor of t first, then copies, so a mismatch leaves t as it was. */
static mt_status restore_all(const mt_safetensors *st, const char *path, mt_trainable *t,
                             const char *mismatch) {
    static const char *const kinds[3] = {"w", "m", "v"};
    const void *src;
    for (int i = 0; i < t->n; i++)
        for (int k = 0; k < 3; k++) {
            mt_status s = find_matching(st, path, &t->params[i], kinds[k], mismatch, &src);
            if (s) return s;
        }
    for (int i = 0; i < t->n; i++) {
        const mt_param *p = &t->params[i];
        float *bufs[3] = {p->w, p->m, p->v};
        for (int k = 0; k < 3; k++) {
            find_matching(st, path, p, kinds[k], mismatch, &src);
            memcpy(bufs[k], src, (size_t)p->n * sizeof(float));
        }
    }
    return MT_OK;
}

/* The checkpoint's step, seed and data position ("epoch:batch"), each checked whole. */
static mt_status read_numbers(const char *step, const char *seed, const char *pos,
                              mt_ckpt_meta *meta) {
    int step_int;
    mt_status s = mt_range_parse_int(MT_ERR_FORMAT, "step", step, MT_RANGE(0, INT_MAX), &step_int);
    if (!s) s = mt_range_parse_u64(MT_ERR_FORMAT, "seed", seed, &meta->seed);
    if (s) return s;
    const char *colon = strchr(pos, ':');
    char epoch[32];
    if (!colon || (size_t)(colon - pos) >= sizeof epoch)
        return mt_fail(MT_ERR_FORMAT, "data_pos = %s is not EPOCH:BATCH", pos);
    memcpy(epoch, pos, (size_t)(colon - pos));
    epoch[colon - pos] = '\0';
    s = mt_range_parse_int(MT_ERR_FORMAT, "data_pos epoch", epoch, MT_RANGE(0, INT_MAX),
                           &meta->epoch);
    if (!s)
        s = mt_range_parse_int(MT_ERR_FORMAT, "data_pos batch", colon + 1, MT_RANGE(0, INT_MAX),
                               &meta->batch);
    meta->step = step_int;
    return s;
}

/* The metadata of an open checkpoint (format, numbers, run key, trained set). */
static mt_status read_meta(const mt_safetensors *st, const char *path, mt_ckpt_meta *meta) {
    memset(meta, 0, sizeof *meta);
    const char *fmt = mt_safetensors_meta(st, "format"), *step = mt_safetensors_meta(st, "step");
    const char *seed = mt_safetensors_meta(st, "seed"), *key = mt_safetensors_meta(st, "run_key");
    const char *pos = mt_safetensors_meta(st, "data_pos");
    const char *trainable = mt_safetensors_meta(st, "trainable");
    if (!fmt || strcmp(fmt, FORMAT) || !step || !seed || !key || !pos)
        return mt_fail(MT_ERR_FORMAT, "%s is not a meteor training checkpoint", path);
    if (strlen(key) >= sizeof meta->run_key ||
        (trainable && strlen(trainable) >= sizeof meta->trainable))
        return mt_fail(MT_ERR_FORMAT, "%s: run key or trainable set is too long", path);
    mt_status s = read_numbers(step, seed, pos, meta);
    if (s) return mt_fail_prefix(s, path);
    snprintf(meta->run_key, sizeof meta->run_key, "%s", key);
    snprintf(meta->trainable, sizeof meta->trainable, "%s", trainable ? trainable : "");
    return MT_OK;
}

/* Opens path and checks that it is a checkpoint of this run (format, run key in meta,
 * tensor count) for t; fills meta. */
static mt_status open_checked(const char *path, const mt_trainable *t, mt_ckpt_meta *meta,
                              mt_safetensors **out) {
    mt_safetensors *st = NULL;
    mt_status s = mt_safetensors_open(path, &st);
    if (s) return s;
    mt_ckpt_meta found;
    s = read_meta(st, path, &found);
    if (!s && strcmp(found.run_key, meta->run_key))
        s = mt_fail(MT_ERR_ARG,
                    "%s was written by a run with different settings (model, data, starting "
                    "point or training options); resume with the same settings or start a new "
                    "output folder",
                    path);
    if (!s && (size_t)3 * t->n != mt_safetensors_count(st))
        s = mt_fail(MT_ERR_FORMAT, "%s holds %zu tensors, expected %d", path,
                    mt_safetensors_count(st), 3 * t->n);
    if (!s) {
        *meta = found;
        *out = st;
    } else {
        mt_safetensors_close(st);
    }
    return s;
}

mt_status mt_checkpoint_check(const char *path, const mt_trainable *t, mt_ckpt_meta *meta) {
    mt_safetensors *st = NULL;
    mt_status s = open_checked(path, t, meta, &st);
    if (!s) mt_safetensors_close(st);
    return s;
}

mt_status mt_checkpoint_load(const char *path, mt_trainable *t, mt_ckpt_meta *meta) {
    mt_safetensors *st = NULL;
    mt_status s = open_checked(path, t, meta, &st);
    if (s) return s;
    s = restore_all(st, path, t, "");
    mt_safetensors_close(st);
    return s;
}

mt_status mt_checkpoint_read_meta(const char *path, mt_ckpt_meta *meta) {
    mt_safetensors *st = NULL;
    mt_status s = mt_safetensors_open(path, &st);
    if (s) return s;
    s = read_meta(st, path, meta);
    mt_safetensors_close(st);
    return s;
}

mt_status mt_checkpoint_load_init(const char *path, mt_trainable *t, const char *trainable,
                                  mt_ckpt_meta *meta) {
    static const char mismatch[] =
        " (the checkpoint trained another model, LoRA rank or set of targets)";
    mt_safetensors *st = NULL;
    mt_status s = mt_safetensors_open(path, &st);
    if (s) return s;
    s = read_meta(st, path, meta);
    if (!s && trainable && *trainable && meta->trainable[0] && strcmp(trainable, meta->trainable))
        s = mt_fail(MT_ERR_ARG,
                    "%s trained %s, this job trains %s: a job continues a checkpoint only with "
                    "the same trainable set",
                    path, meta->trainable, trainable);
    if (!s && (size_t)3 * t->n != mt_safetensors_count(st))
        s = mt_fail(MT_ERR_FORMAT, "%s holds %zu tensors, this job trains %d%s", path,
                    mt_safetensors_count(st) / 3, t->n, mismatch);
    if (!s) s = restore_all(st, path, t, mismatch);
    mt_safetensors_close(st);
    return s;
}
