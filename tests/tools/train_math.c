/* Test tool: runs meteor's optimiser, schedule, clipping and loss code on a small JSON spec
 * read from stdin and prints the results as JSON, so Python oracles can compare them with
 * PyTorch / transformers / TRL. One op per call:
 *   {"op":"adamw","params":[[..],..],"decay":[1,0,..],"grads":[[[..],..] per step],"lr":x,
 *    "betas":[b1,b2],"eps":x,"weight_decay":x,"max_norm":x,"accum":k,
 *    "schedule":{"kind":"cosine|linear|constant","warmup":n,"total":n,"min_ratio":x}}
 *     -> {"steps":[{"lr":x,"norm":x,"params":[[..],..]}],"m":[[..]],"v":[[..]]}
 *     With "accum": k, each step lists k micro-batch gradients that are summed and averaged.
 *   {"op":"schedule","kind":..,"lr":x,"warmup":n,"total":n,"min_ratio":x,"steps":n}
 *     -> {"factors":[..],"lrs":[..]}
 *   {"op":"clip","grads":[[..],..],"max_norm":x} -> {"norm":x,"grads":[[..],..]}
 *   {"op":"ce","logits":[[..],..],"targets":[..],"grad_scale":x,"row_scale":[..]}
 *     -> {"loss_sum":x,"logprobs":[..],"dlogits":[[..]],"logprobs_nograd":[..],"sum_nograd":x}
 *   {"op":"margin"|"dpo","lp_chosen":[..],"lp_rejected":[..],"n_chosen":[..],"n_rejected":[..],
 *    "ref_chosen":[..],"ref_rejected":[..],"margin":x,"beta":x,"label_smoothing":x,
 *    "sft_weight":x} -> {"loss":x,...,"d_chosen":[..],"d_rejected":[..]}
 * A failure prints {"error": "..."} and exits 1. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "train/loss.h"
#include "train/optim.h"

static char *read_stdin(void) {
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len - 1, stdin)) > 0;) {
        len += got;
        if (len + 1 == cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger) free(buf);
            buf = bigger;
        }
    }
    if (buf) buf[len] = 0;
    return buf;
}

static double num(const cJSON *o, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* A JSON number array as doubles (malloc'd, at least one slot); NULL if not such an array. */
static double *doubles(const cJSON *a, int *n) {
    if (!cJSON_IsArray(a)) return NULL;
    *n = cJSON_GetArraySize(a);
    double *out = malloc(sizeof(double) * (size_t)(*n > 0 ? *n : 1));
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (!out || !cJSON_IsNumber(e)) {
            free(out);
            return NULL;
        }
        out[i++] = e->valuedouble;
    }
    return out;
}

static cJSON *double_array(const double *x, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

static cJSON *float_array(const float *x, int64_t n) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

/* Copies a number array of exactly n entries into float storage. */
static mt_status fill_floats(const cJSON *a, float *dst, int64_t n, const char *what) {
    int got;
    double *d = doubles(a, &got);
    if (!d || got != n) {
        free(d);
        return mt_fail(MT_ERR_ARG, "%s: expected %lld numbers", what, (long long)n);
    }
    for (int i = 0; i < got; i++) dst[i] = (float)d[i];
    free(d);
    return MT_OK;
}

/* Trainable tensors from "params" (one array each), all storage in one block. */
typedef struct {
    mt_param *p;
    int n;
    float *block;
} param_set;

static void free_params(param_set *s) {
    free(s->p);
    free(s->block);
}

static mt_status make_params(const cJSON *list, const cJSON *decay, param_set *s) {
    if (!cJSON_IsArray(list)) return mt_fail(MT_ERR_ARG, "params: expected an array of arrays");
    s->n = cJSON_GetArraySize(list);
    s->p = calloc((size_t)s->n + 1, sizeof(mt_param));
    int64_t total = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list) total += cJSON_GetArraySize(e);
    s->block = calloc((size_t)(4 * total + 1), sizeof(float));
    if (!s->p || !s->block) return mt_fail(MT_ERR_NOMEM, "params: out of memory");
    float *at = s->block;
    int i = 0;
    cJSON_ArrayForEach(e, list) {
        mt_param *p = &s->p[i];
        p->n = cJSON_GetArraySize(e);
        p->w = at, p->g = at + p->n, p->m = at + 2 * p->n, p->v = at + 3 * p->n;
        at += 4 * p->n;
        const cJSON *d = cJSON_GetArrayItem(decay, i);
        p->decay = d ? cJSON_IsTrue(d) || (cJSON_IsNumber(d) && d->valuedouble != 0) : 1;
        mt_status st = fill_floats(e, p->w, p->n, "params");
        if (st) return st;
        i++;
    }
    return MT_OK;
}

/* Sets the gradients from one step's list (one array per param); with accum > 1 the list
 * holds accum such lists, summed and then averaged the way a trainer accumulates. */
static mt_status set_grads(param_set *s, const cJSON *step, int accum) {
    if (accum <= 1) {
        for (int i = 0; i < s->n; i++) {
            mt_status st = fill_floats(cJSON_GetArrayItem(step, i), s->p[i].g, s->p[i].n, "grads");
            if (st) return st;
        }
        return MT_OK;
    }
    if (cJSON_GetArraySize(step) != accum)
        return mt_fail(MT_ERR_ARG, "grads: expected %d micro-batches per step", accum);
    mt_zero_grads(s->p, s->n);
    for (int k = 0; k < accum; k++) {
        const cJSON *micro = cJSON_GetArrayItem(step, k);
        for (int i = 0; i < s->n; i++) {
            float *tmp = malloc(sizeof(float) * (size_t)(s->p[i].n + 1));
            mt_status st = tmp ? fill_floats(cJSON_GetArrayItem(micro, i), tmp, s->p[i].n, "grads")
                               : mt_fail(MT_ERR_NOMEM, "grads: out of memory");
            for (int64_t j = 0; !st && j < s->p[i].n; j++) s->p[i].g[j] += tmp[j];
            free(tmp);
            if (st) return st;
        }
    }
    return mt_grad_accum_finish(s->p, s->n, accum);
}

static mt_status parse_kind(const char *k, mt_lr_kind *out) {
    if (!k) k = "constant";
    if (!strcmp(k, "constant"))
        *out = MT_LR_CONSTANT;
    else if (!strcmp(k, "linear"))
        *out = MT_LR_LINEAR;
    else if (!strcmp(k, "cosine"))
        *out = MT_LR_COSINE;
    else
        return mt_fail(MT_ERR_ARG, "unknown schedule kind '%s'", k);
    return MT_OK;
}

static mt_status parse_schedule(const cJSON *o, double lr, mt_lr_schedule *s) {
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    mt_status st = parse_kind(cJSON_GetStringValue(kind), &s->kind);
    if (st) return st;
    s->base_lr = lr;
    s->warmup_steps = (int64_t)num(o, "warmup", 0);
    s->total_steps = (int64_t)num(o, "total", 0);
    s->min_ratio = num(o, "min_ratio", 0);
    return mt_lr_schedule_check(s);
}

static cJSON *param_arrays(const param_set *s, int which) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < s->n; i++) {
        const float *x = which == 0 ? s->p[i].w : which == 1 ? s->p[i].m : s->p[i].v;
        cJSON_AddItemToArray(a, float_array(x, s->p[i].n));
    }
    return a;
}

static mt_status run_adamw(const cJSON *in, cJSON *out) {
    const cJSON *betas = cJSON_GetObjectItemCaseSensitive(in, "betas");
    mt_adamw_params hp = mt_adamw_defaults();
    if (cJSON_GetArraySize(betas) == 2)
        hp.beta1 = cJSON_GetArrayItem(betas, 0)->valuedouble,
        hp.beta2 = cJSON_GetArrayItem(betas, 1)->valuedouble;
    hp.eps = num(in, "eps", hp.eps);
    hp.weight_decay = num(in, "weight_decay", hp.weight_decay);
    mt_adamw opt;
    mt_lr_schedule sched;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(in, "schedule");
    mt_status st = mt_adamw_init(&opt, &hp);
    if (!st) st = parse_schedule(so ? so : in, num(in, "lr", 1e-3), &sched);
    if (st) return st;
    param_set ps = {0};
    st = make_params(cJSON_GetObjectItemCaseSensitive(in, "params"),
                     cJSON_GetObjectItemCaseSensitive(in, "decay"), &ps);
    const double max_norm = num(in, "max_norm", 0);
    const int accum = (int)num(in, "accum", 1);
    cJSON *steps = cJSON_AddArrayToObject(out, "steps");
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(in, "grads")) {
        if (st || (st = set_grads(&ps, g, accum))) break;
        const double norm = mt_clip_grad_norm(ps.p, ps.n, max_norm);
        const float lr = mt_lr_at(&sched, opt.step);
        if ((st = mt_adamw_step(&opt, ps.p, ps.n, lr))) break;
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddNumberToObject(rec, "lr", lr);
        cJSON_AddNumberToObject(rec, "norm", norm);
        cJSON_AddItemToObject(rec, "params", param_arrays(&ps, 0));
        cJSON_AddItemToArray(steps, rec);
    }
    if (!st) {
        cJSON_AddItemToObject(out, "m", param_arrays(&ps, 1));
        cJSON_AddItemToObject(out, "v", param_arrays(&ps, 2));
        cJSON_AddNumberToObject(out, "step", (double)opt.step);
    }
    free_params(&ps);
    return st;
}

static mt_status run_schedule(const cJSON *in, cJSON *out) {
    mt_lr_schedule s;
    mt_status st = parse_schedule(in, num(in, "lr", 1), &s);
    if (st) return st;
    const int n = (int)num(in, "steps", 0);
    cJSON *f = cJSON_AddArrayToObject(out, "factors"), *l = cJSON_AddArrayToObject(out, "lrs");
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(f, cJSON_CreateNumber(mt_lr_factor(&s, i)));
        cJSON_AddItemToArray(l, cJSON_CreateNumber(mt_lr_at(&s, i)));
    }
    return MT_OK;
}

static mt_status run_clip(const cJSON *in, cJSON *out) {
    param_set ps = {0};
    mt_status st = make_params(cJSON_GetObjectItemCaseSensitive(in, "grads"), NULL, &ps);
    if (!st) {
        for (int i = 0; i < ps.n; i++) memcpy(ps.p[i].g, ps.p[i].w, sizeof(float) * ps.p[i].n);
        cJSON_AddNumberToObject(out, "norm", mt_clip_grad_norm(ps.p, ps.n, num(in, "max_norm", 0)));
        cJSON *a = cJSON_AddArrayToObject(out, "grads");
        for (int i = 0; i < ps.n; i++) cJSON_AddItemToArray(a, float_array(ps.p[i].g, ps.p[i].n));
    }
    free_params(&ps);
    return st;
}

/* Logits rows and targets of a "ce" spec, rows stored contiguously. */
typedef struct {
    float *x;
    int32_t *t;
    float *row_scale;
    int rows, vocab;
} ce_input;

static void free_ce(ce_input *c) {
    free(c->x), free(c->t), free(c->row_scale);
}

static mt_status parse_ce(const cJSON *in, ce_input *c) {
    const cJSON *lg = cJSON_GetObjectItemCaseSensitive(in, "logits");
    int nt;
    double *t = doubles(cJSON_GetObjectItemCaseSensitive(in, "targets"), &nt);
    c->rows = cJSON_GetArraySize(lg);
    c->vocab = cJSON_GetArraySize(cJSON_GetArrayItem(lg, 0));
    c->x = malloc(sizeof(float) * ((size_t)c->rows * c->vocab + 1));
    c->t = malloc(sizeof(int32_t) * ((size_t)c->rows + 1));
    mt_status st = !t || nt != c->rows ? mt_fail(MT_ERR_ARG, "ce: one target per logits row")
                   : !c->x || !c->t    ? mt_fail(MT_ERR_NOMEM, "ce: out of memory")
                                       : MT_OK;
    for (int r = 0; !st && r < c->rows; r++) {
        c->t[r] = (int32_t)t[r];
        st = fill_floats(cJSON_GetArrayItem(lg, r), c->x + (int64_t)r * c->vocab, c->vocab, "ce");
    }
    free(t);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(in, "row_scale");
    if (!st && rs) {
        c->row_scale = malloc(sizeof(float) * ((size_t)c->rows + 1));
        st = c->row_scale ? fill_floats(rs, c->row_scale, c->rows, "row_scale")
                          : mt_fail(MT_ERR_NOMEM, "ce: out of memory");
    }
    return st;
}

static mt_status run_ce(const cJSON *in, cJSON *out) {
    ce_input c = {0};
    mt_status st = parse_ce(in, &c);
    double *lp = malloc(sizeof(double) * ((size_t)c.rows + 1));
    double *lp0 = malloc(sizeof(double) * ((size_t)c.rows + 1));
    double loss = 0, sum0 = 0;
    if (!st && (!lp || !lp0)) st = mt_fail(MT_ERR_NOMEM, "ce: out of memory");
    if (!st) st = mt_target_logprobs(c.x, c.rows, c.vocab, c.t, lp0, &sum0);
    if (!st)
        st = mt_ce_rows_weighted(c.x, c.rows, c.vocab, c.t, c.row_scale,
                                 (float)num(in, "grad_scale", 1), &loss, lp);
    if (!st) {
        cJSON_AddNumberToObject(out, "loss_sum", loss);
        cJSON_AddItemToObject(out, "logprobs", double_array(lp, c.rows));
        cJSON_AddItemToObject(out, "logprobs_nograd", double_array(lp0, c.rows));
        cJSON_AddNumberToObject(out, "sum_nograd", sum0);
        cJSON *d = cJSON_AddArrayToObject(out, "dlogits");
        for (int r = 0; r < c.rows; r++)
            cJSON_AddItemToArray(d, float_array(c.x + (int64_t)r * c.vocab, c.vocab));
    }
    free(lp), free(lp0), free_ce(&c);
    return st;
}

static int64_t *counts(const cJSON *a, int *n) {
    double *d = doubles(a, n);
    int64_t *out = d ? malloc(sizeof(int64_t) * (size_t)(*n + 1)) : NULL;
    for (int i = 0; out && i < *n; i++) out[i] = (int64_t)d[i];
    free(d);
    return out;
}

static mt_status run_pref(const cJSON *in, cJSON *out, mt_pref_kind kind) {
    int n[6] = {0};
    double *lc = doubles(cJSON_GetObjectItemCaseSensitive(in, "lp_chosen"), &n[0]);
    double *lr = doubles(cJSON_GetObjectItemCaseSensitive(in, "lp_rejected"), &n[1]);
    int64_t *nc = counts(cJSON_GetObjectItemCaseSensitive(in, "n_chosen"), &n[2]);
    int64_t *nr = counts(cJSON_GetObjectItemCaseSensitive(in, "n_rejected"), &n[3]);
    double *rc = doubles(cJSON_GetObjectItemCaseSensitive(in, "ref_chosen"), &n[4]);
    double *rr = doubles(cJSON_GetObjectItemCaseSensitive(in, "ref_rejected"), &n[5]);
    const int np = n[0];
    double *dc = malloc(sizeof(double) * ((size_t)np + 1));
    double *dr = malloc(sizeof(double) * ((size_t)np + 1));
    mt_status st = MT_OK;
    for (int i = 1; i < 6; i++)
        if ((i < 4 || (i == 4 ? rc : rr)) && n[i] != np)
            st = mt_fail(MT_ERR_ARG, "pref: arrays differ in length");
    mt_pref_batch b = {.n_pairs = np,
                       .lp_chosen = lc,
                       .lp_rejected = lr,
                       .n_chosen = nc,
                       .n_rejected = nr,
                       .ref_chosen = rc,
                       .ref_rejected = rr};
    mt_pref_params p = {.kind = kind,
                        .margin = num(in, "margin", 0),
                        .beta = num(in, "beta", 0.1),
                        .label_smoothing = num(in, "label_smoothing", 0),
                        .sft_weight = num(in, "sft_weight", 0)};
    mt_pref_stats s;
    if (!st) st = mt_pref_loss(&p, &b, dc, dr, &s);
    if (!st) {
        const char *keys[] = {
            "loss",           "pref_loss",        "sft_loss",      "logps_chosen", "logps_rejected",
            "rewards_chosen", "rewards_rejected", "reward_margin", "accuracy"};
        const double vals[] = {
            s.loss,           s.pref_loss,        s.sft_loss,      s.logps_chosen, s.logps_rejected,
            s.rewards_chosen, s.rewards_rejected, s.reward_margin, s.accuracy};
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
            cJSON_AddNumberToObject(out, keys[i], vals[i]);
        cJSON_AddItemToObject(out, "d_chosen", double_array(dc, np));
        cJSON_AddItemToObject(out, "d_rejected", double_array(dr, np));
    }
    free(lc), free(lr), free(nc), free(nr), free(rc), free(rr), free(dc), free(dr);
    return st;
}

static mt_status run_op(const cJSON *in, cJSON *out) {
    const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "op"));
    if (!op) return mt_fail(MT_ERR_ARG, "missing \"op\"");
    if (!strcmp(op, "adamw")) return run_adamw(in, out);
    if (!strcmp(op, "schedule")) return run_schedule(in, out);
    if (!strcmp(op, "clip")) return run_clip(in, out);
    if (!strcmp(op, "ce")) return run_ce(in, out);
    if (!strcmp(op, "margin")) return run_pref(in, out, MT_PREF_MARGIN);
    if (!strcmp(op, "dpo")) return run_pref(in, out, MT_PREF_DPO);
    return mt_fail(MT_ERR_ARG, "unknown op '%s'", op);
}

int main(void) {
    char *text = read_stdin();
    cJSON *in = text ? cJSON_Parse(text) : NULL;
    free(text);
    cJSON *out = cJSON_CreateObject();
    mt_status st = in ? run_op(in, out) : mt_fail(MT_ERR_FORMAT, "stdin is not JSON");
    if (st) {
        cJSON_Delete(out);
        out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "error", mt_last_error());
    }
    char *s = cJSON_PrintUnformatted(out);
    if (s) puts(s);
    free(s);
    cJSON_Delete(out);
    cJSON_Delete(in);
    return st ? 1 : 0;
}
