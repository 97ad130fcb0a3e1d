#include "model/layer.h"

#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "kernels/attention.h"
#include "kernels/dequant.h"
#include "kernels/half.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

typedef struct {
    float *out;
    const float *x, *w;
    int dim;
    float eps;
} norm_job;

static void norm_range(void *ctx, int64_t t0, int64_t t1) {
    const norm_job *j = ctx;
    for (int64_t t = t0; t < t1; t++)
        mt_rmsnorm(j->out + (size_t)t * j->dim, j->x + (size_t)t * j->dim, j->w, j->dim, j->eps);
}

static void norm_rows(float *out, const float *x, const float *w, int n, int dim, float eps) {
    norm_job j = {.out = out, .x = x, .w = w, .dim = dim, .eps = eps};
    mt_pool_for(n, 1, norm_range, &j);
}

static void add_bias(float *y, const float *b, int n, int dim) {
    if (!b) return;
    for (int t = 0; t < n; t++) mt_add(y + (size_t)t * dim, b, dim);
}

typedef struct {
    const mt_model_config *c;
    const mt_layout *lay;
    float *dst;
    const float *norm, *freqs;
    float inv_scale;
    int n_heads;
} position_job;

static void position_range(void *ctx, int64_t t0, int64_t t1) {
    const position_job *p = ctx;
    const mt_model_config *c = p->c;
    const size_t hd = (size_t)c->head_dim;
    for (int64_t t = t0; t < t1; t++) {
        float cs[512];
        mt_rope_angles(cs, c->head_dim, (float)p->lay->pos[t] * p->inv_scale, p->freqs);
        for (int j = 0; j < p->n_heads; j++) {
            float *v = p->dst + ((size_t)t * p->n_heads + j) * hd;
            if (p->norm) mt_rmsnorm(v, v, p->norm, c->head_dim, c->norm_eps);
            mt_rope_apply(v, c->head_dim, cs, c->rope_style == MT_ROPE_NEOX, 0);
        }
    }
}

/* Per-head QK-norm (from src into dst), then RoPE in dst. */
static void position_heads(const mt_model_config *c, const mt_layout *lay, float *dst,
                           const float *src, const float *norm, int n_heads, int local) {
    const float base = local ? c->rope_base_local : c->rope_base;
    if (dst != src) memcpy(dst, src, (size_t)lay->n * n_heads * c->head_dim * sizeof *dst);
    float freqs[512];
    mt_rope_freqs(freqs, c->head_dim, base);
    position_job p = {.c = c,
                      .lay = lay,
                      .dst = dst,
                      .norm = norm,
                      .freqs = freqs,
                      .inv_scale = local ? 1.0f : 1.0f / c->rope_scale,
                      .n_heads = n_heads};
    mt_pool_for(lay->n, 1, position_range, &p);
}

/* Several projections of one input (q/k/v, gate/up) in one pass; the LoRA branch's
 * input is the dropped-out copy when training with dropout. */
static mt_status linears(const mt_layer *L, int nr, const mt_lin_role *r, const float *x, int n,
                         float *const *y, const mt_layer_acts *a) {
    const mt_linear *lin[MT_MATMUL_MAX_WEIGHTS];
    const float *xl[MT_MATMUL_MAX_WEIGHTS];
    float *h[MT_MATMUL_MAX_WEIGHTS];
    for (int i = 0; i < nr; i++) {
        lin[i] = &L->lin[r[i]];
        xl[i] = a->lora_x[r[i]];
        h[i] = a->lora_h[r[i]];
        if (xl[i])
            mt_dropout(a->lora_x[r[i]], x, (long)n * mt_linear_in(lin[i]), lin[i]->dropout,
                       mt_layer_drop_key(a, r[i]));
    }
    return mt_linear_forward_multi(nr, lin, x, xl, n, y, h);
}

static mt_status linear(const mt_layer *L, mt_lin_role r, const float *x, int n, float *y,
                        const mt_layer_acts *a) {
    return linears(L, 1, &r, x, n, &y, a);
}

int mt_scratch_reserve(float **p, size_t *cap, size_t need) {
    if (need <= *cap) return 1;
    free(*p);
    *p = malloc(need * sizeof **p);
    *cap = *p ? need : 0;
    return *p != NULL;
}

typedef struct {
    mt_task_fn fn;
    const void *ctx;
    mt_scratch *scratch; /* one per worker */
} scratch_job;

static int scratch_task(void *ctx, int task, int worker) {
    const scratch_job *j = ctx;
    return j->fn(j->ctx, task, &j->scratch[worker]);
}

mt_status mt_run_tasks(int tasks, mt_task_fn fn, const void *ctx, const char *what) {
    mt_scratch scratch[MT_POOL_MAX_THREADS] = {{0}};
    scratch_job j = {.fn = fn, .ctx = ctx, .scratch = scratch};
    const int failed = mt_pool_run(tasks, scratch_task, &j);
    for (int w = 0; w < MT_POOL_MAX_THREADS; w++) free(scratch[w].p);
    return failed ? mt_fail(MT_ERR_NOMEM, "out of memory in %s", what) : MT_OK;
}

/* A new run begins where the first key row changes or the rows stop being consecutive. */
static int seg_starts(const mt_layout *lay, int t) {
    return t == 0 || lay->first[t] != lay->first[t - 1] ||
           mt_layout_row(lay, t) != mt_layout_row(lay, t - 1) + 1;
}

int mt_attn_segments(const mt_layout *lay, mt_attn_seg **out) {
    int n = 0;
    for (int t = 0; t < lay->n; t++) n += seg_starts(lay, t);
    mt_attn_seg *sg = malloc((size_t)(n ? n : 1) * sizeof *sg);
    if (!sg) return -1;
    n = 0;
    for (int t = 0; t < lay->n; t++) {
        if (seg_starts(lay, t)) sg[n++] = (mt_attn_seg){t, t, lay->first[t]};
        sg[n - 1].t1 = t + 1;
    }
    *out = sg;
    return n;
}

void mt_attn_block_shape(const mt_model_config *c, int local, const mt_layout *lay,
                         const mt_attn_seg *sg, int q0, int q1, mt_attn_shape *out) {
    const int q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    *out = (mt_attn_shape){.n_q = q1 - q0,
                           .n_k = mt_layout_row(lay, q1 - 1) + 1 - sg->first,
                           .hd = c->head_dim,
                           .q_stride = q_dim,
                           .k_stride = kv_dim,
                           .o_stride = q_dim,
                           .scale = c->attn_scale,
                           .cap = c->attn_softcap,
                           .window = local ? c->sliding_window : 0};
}

/* What the attention tasks of one layer read and write. */
typedef struct {
    const mt_model_config *c;
    const mt_layout *lay;
    const mt_attn_seg *sg;
    int local, q_dim, group;
    mt_layer_acts *a;
    mt_kv_rows kv;
} attn_job;

/* Decoding: one task per (sequence, KV head), covering the query heads that share it. */
static int decode_task(const void *ctx, int task, mt_scratch *sc) {
    const attn_job *j = ctx;
    const mt_model_config *c = j->c;
    const mt_attn_seg *s = &j->sg[task / c->n_head_kv];
    const int kvh = task % c->n_head_kv;
    mt_attn_shape sh;
    mt_attn_block_shape(c, j->local, j->lay, s, s->t0, s->t1, &sh);
    sh.k_stride = mt_kv_row_stride(&j->kv);
    if (!mt_scratch_reserve(&sc->p, &sc->cap, (size_t)j->group * sh.n_k)) return -1;
    const size_t qo = (size_t)s->t0 * j->q_dim + (size_t)kvh * j->group * c->head_dim;
    const size_t ko = mt_kv_at(&j->kv, s->first, kvh);
    const float *q = j->a->q + qo;
    if (j->kv.f16)
        mt_attn_decode_group_f16(&sh, j->group, q, (const uint16_t *)j->kv.k + ko,
                                 (const uint16_t *)j->kv.v + ko, j->a->att + qo, sc->p);
    else
        mt_attn_decode_group(&sh, j->group, q, (const float *)j->kv.k + ko,
                             (const float *)j->kv.v + ko, j->a->att + qo, sc->p);
    return 0;
}

/* The GEMMs of prompt attention take floats: the f16 key/value rows the queries of sh
 * can see go to kf/vf (rows of hd floats), and sh then describes those: keys before the
 * first query's sliding window are dropped, which moves no query's window relative to
 * its keys. A task converts at most n_k rows and multiplies them with up to
 * ATTN_TASK_QUERIES queries, so the conversion is small next to the products. */
static void widen_keys(mt_attn_shape *sh, const uint16_t *k, const uint16_t *v, float *kf,
                       float *vf) {
    const int pos0 = sh->n_k - sh->n_q, first = sh->window > 0 ? pos0 - sh->window + 1 : 0;
    const int lo = first > 0 ? first : 0;
    const size_t hd = (size_t)sh->hd, ks = (size_t)sh->k_stride;
    for (int r = lo; r < sh->n_k; r++) {
        mt_dequantize(MT_F16, k + (size_t)r * ks, kf + (size_t)(r - lo) * hd, sh->hd);
        mt_dequantize(MT_F16, v + (size_t)r * ks, vf + (size_t)(r - lo) * hd, sh->hd);
    }
    sh->n_k -= lo;
    sh->k_stride = sh->hd;
}

/* Queries per forward attention task; also bounds the score scratch. */
enum { ATTN_TASK_QUERIES = 128 };

/* Prompts: one task per (sequence, head, block of queries), the blocks of a sequence from
 * its last (the most keys) to its first: nine heads of one training sequence as nine
 * tasks left one of two threads idle for a ninth of the attention. Outputs of different
 * tasks never overlap, so any thread may take any task. */
static int prompt_task(const void *ctx, int task, mt_scratch *sc) {
    const attn_job *j = ctx;
    const mt_model_config *c = j->c;
    int seg = 0, local = task, nb = 0;
    for (;; seg++) {
        nb = (j->sg[seg].t1 - j->sg[seg].t0 + ATTN_TASK_QUERIES - 1) / ATTN_TASK_QUERIES;
        if (local < nb * c->n_head) break;
        local -= nb * c->n_head;
    }
    const mt_attn_seg *s = &j->sg[seg];
    const int h = local % c->n_head, b = nb - 1 - local / c->n_head;
    const int q0 = s->t0 + b * ATTN_TASK_QUERIES;
    const int q1 = q0 + ATTN_TASK_QUERIES < s->t1 ? q0 + ATTN_TASK_QUERIES : s->t1;
    mt_attn_shape sh;
    mt_attn_block_shape(c, j->local, j->lay, s, q0, q1, &sh);
    sh.k_stride = mt_kv_row_stride(&j->kv);
    const size_t n_p = (size_t)sh.n_q * sh.n_k, n_kv = j->kv.f16 ? (size_t)sh.n_k * sh.hd : 0;
    if (!mt_scratch_reserve(&sc->p, &sc->cap, n_p + 2 * n_kv)) return -1;
    const size_t qo = (size_t)q0 * j->q_dim + (size_t)h * c->head_dim;
    const size_t ko = mt_kv_at(&j->kv, s->first, h / j->group);
    const float *k = (const float *)j->kv.k + ko, *v = (const float *)j->kv.v + ko;
    if (j->kv.f16) {
        float *kf = sc->p + n_p, *vf = kf + n_kv;
        widen_keys(&sh, (const uint16_t *)j->kv.k + ko, (const uint16_t *)j->kv.v + ko, kf, vf);
        k = kf, v = vf;
    }
    mt_attn_forward(&sh, j->a->q + qo, k, v, j->a->att + qo, sc->p);
    return 0;
}

static mt_status attend(const mt_model *m, int l, const mt_layout *lay, mt_layer_acts *a,
                        const mt_kv_rows *kv) {
    const mt_model_config *c = &m->cfg;
    mt_attn_seg *sg = NULL;
    const int n_seg = mt_attn_segments(lay, &sg);
    if (n_seg < 0) return mt_fail(MT_ERR_NOMEM, "out of memory in attention");
    const attn_job job = {.c = c,
                          .lay = lay,
                          .sg = sg,
                          .local = mt_config_layer_is_local(c, l),
                          .q_dim = c->n_head * c->head_dim,
                          .group = c->n_head / c->n_head_kv,
                          .a = a,
                          .kv = *kv};
    int one_query = 1; /* a decoding step: every sequence brings one token */
    for (int i = 0; i < n_seg; i++) one_query &= sg[i].t1 - sg[i].t0 == 1;
    mt_status st;
    if (one_query) {
        st = mt_run_tasks(n_seg * c->n_head_kv, decode_task, &job, "attention");
    } else {
        int tasks = 0;
        for (int i = 0; i < n_seg; i++)
            tasks +=
                c->n_head * ((sg[i].t1 - sg[i].t0 + ATTN_TASK_QUERIES - 1) / ATTN_TASK_QUERIES);
        st = mt_run_tasks(tasks, prompt_task, &job, "attention");
    }
    free(sg);
    return st;
}

/* Stores the n tokens' keys and values at their rows of the cache, head by head. */
static void store_kv(const mt_layout *lay, const mt_layer_acts *a, const mt_kv_rows *kv) {
    const int hd = kv->head_dim, kv_dim = kv->n_head_kv * hd;
    for (int t = 0; t < lay->n; t++)
        for (int h = 0; h < kv->n_head_kv; h++) {
            const size_t dst = mt_kv_at(kv, mt_layout_row(lay, t), h);
            const size_t src = (size_t)t * kv_dim + (size_t)h * hd;
            if (kv->f16) {
                mt_f32_to_f16_row((uint16_t *)kv->k + dst, a->k + src, hd);
                mt_f32_to_f16_row((uint16_t *)kv->v + dst, a->v + src, hd);
            } else {
                memcpy((float *)kv->k + dst, a->k + src, (size_t)hd * sizeof(float));
                memcpy((float *)kv->v + dst, a->v + src, (size_t)hd * sizeof(float));
            }
        }
}

static mt_status attention_block(const mt_model *m, int l, const mt_layout *lay, mt_layer_acts *a,
                                 const float *x_in, const mt_kv_rows *kv) {
    const mt_model_config *c = &m->cfg;
    const mt_layer *L = &m->layers[l];
    const int n = lay->n, q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    const int local = mt_config_layer_is_local(c, l);
    float *q0 = a->q0 ? a->q0 : a->q, *k0 = a->k0 ? a->k0 : a->k;
    mt_status s;
    norm_rows(a->xn1, x_in, L->attn_norm, n, c->n_embd, c->norm_eps);
    const mt_lin_role qkv[3] = {MT_LIN_Q, MT_LIN_K, MT_LIN_V};
    if ((s = linears(L, 3, qkv, a->xn1, n, (float *const[]){q0, k0, a->v}, a))) return s;
    add_bias(q0, L->bq, n, q_dim);
    add_bias(k0, L->bk, n, kv_dim);
    add_bias(a->v, L->bv, n, kv_dim);
    position_heads(c, lay, a->q, q0, L->q_norm, c->n_head, local);
    position_heads(c, lay, a->k, k0, L->k_norm, c->n_head_kv, local);
    /* Training attends to the acts' own rows. */
    const mt_kv_rows own = {
        .k = a->k, .v = a->v, .f16 = 0, .n_head_kv = c->n_head_kv, .head_dim = c->head_dim};
    if (kv) store_kv(lay, a, kv);
    if ((s = attend(m, l, lay, a, kv ? kv : &own))) return s;
    return linear(L, MT_LIN_O, a->att, n, a->o, a);
}

typedef struct {
    float *act;
    const float *gate, *up;
    int ff, kind;
} gate_job;

static void gate_range(void *ctx, int64_t t0, int64_t t1) {
    const gate_job *g = ctx;
    const size_t ff = (size_t)g->ff;
    for (int64_t t = t0; t < t1; t++) {
        /* the gate pre-activation is kept for the backward pass; act gets its copy here,
         * row by row on the threads, not serially before the loop */
        if (g->act != g->gate) memcpy(g->act + t * ff, g->gate + t * ff, ff * sizeof(float));
        if (g->kind == MT_ACT_GELU_TANH)
            mt_gelu_tanh_mul(g->act + t * ff, g->up + t * ff, (int)ff);
        else
            mt_silu_mul(g->act + t * ff, g->up + t * ff, (int)ff);
    }
}

static mt_status mlp_block(const mt_model *m, int l, int n, mt_layer_acts *a) {
    const mt_model_config *c = &m->cfg;
    const mt_layer *L = &m->layers[l];
    mt_status s;
    const mt_lin_role gate_up[2] = {MT_LIN_GATE, MT_LIN_UP};
    if ((s = linears(L, 2, gate_up, a->xn2, n, (float *const[]){a->gate, a->up}, a))) return s;
    gate_job g = {.act = a->act, .gate = a->gate, .up = a->up, .ff = c->n_ff, .kind = c->act};
    mt_pool_for(n, 1, gate_range, &g);
    return linear(L, MT_LIN_DOWN, a->act, n, a->dn, a);
}

/* dst = base + (post-norm of delta, when the architecture has one), and when norm is
 * given, xn = norm(dst): one pass over the tokens split over the threads. (Alone, the
 * residual ran on one thread while the other waited, about 2% of a 16-sequence decoding
 * step.) delta is normed in a separate pass so the un-normed value stays available to
 * the backward pass. */
typedef struct {
    const float *post_norm, *base, *delta, *norm;
    float *dst, *xn;
    int d;
    float eps;
} residual_job;

static void residual_range(void *ctx, int64_t t0, int64_t t1) {
    const residual_job *r = ctx;
    const int d = r->d;
    for (int64_t t = t0; t < t1; t++) {
        const float *dl = r->delta + (size_t)t * d, *in = r->base + (size_t)t * d;
        float *out = r->dst + (size_t)t * d;
        if (out != in) memcpy(out, in, (size_t)d * sizeof *out);
        if (r->post_norm)
            mt_rmsnorm_add(out, dl, r->post_norm, d, r->eps);
        else
            mt_add(out, dl, d);
        if (r->norm) mt_rmsnorm(r->xn + (size_t)t * d, out, r->norm, d, r->eps);
    }
}

static void residual(const mt_model *m, const float *post_norm, const float *base,
                     const float *delta, float *dst, int n, const float *norm, float *xn) {
    residual_job r = {.post_norm = post_norm,
                      .base = base,
                      .delta = delta,
                      .norm = norm,
                      .dst = dst,
                      .xn = xn,
                      .d = m->cfg.n_embd,
                      .eps = m->cfg.norm_eps};
    mt_pool_for(n, 1, residual_range, &r);
}

mt_status mt_layer_forward(const mt_model *m, int l, const mt_layout *lay, mt_layer_acts *a,
                           const float *x_in, float *x_out, const mt_kv_rows *kv) {
    const mt_layer *L = &m->layers[l];
    mt_status s = attention_block(m, l, lay, a, x_in, kv);
    if (s) return s;
    residual(m, L->post_attn_norm, x_in, a->o, a->x_mid, lay->n, L->ffn_norm, a->xn2);
    if ((s = mlp_block(m, l, lay->n, a))) return s;
    residual(m, L->post_ffn_norm, a->x_mid, a->dn, x_out, lay->n, NULL, NULL);
    return MT_OK;
}

mt_status mt_output_logits(const mt_model *m, const float *x, int count, float *xn, float *logits) {
    const mt_model_config *c = &m->cfg;
    norm_rows(xn, x, m->output_norm, count, c->n_embd, c->norm_eps);
    mt_status s = mt_matmul(&m->output, xn, count, logits);
    if (s == MT_OK && c->final_softcap > 0.0f)
        mt_softcap(logits, c->final_softcap, (int)((size_t)count * c->n_vocab));
    return s;
}

mt_status mt_embed_tokens(const mt_model *m, const int32_t *tokens, int n, float *x) {
    const mt_model_config *c = &m->cfg;
    for (int t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= c->n_vocab)
            return mt_fail(MT_ERR_ARG, "token id %d is outside the vocabulary (0..%d)", tokens[t],
                           c->n_vocab - 1);
        mt_embedding_row(&m->tok_embd, tokens[t], x + (size_t)t * c->n_embd);
        if (c->embd_scale != 1.0f) mt_scale(x + (size_t)t * c->n_embd, c->embd_scale, c->n_embd);
    }
    return MT_OK;
}
