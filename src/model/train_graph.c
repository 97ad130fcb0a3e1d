#include "model/train_graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/pool.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/ops_backward.h"
#include "model/train_head.h"

/* Rows of logits held at once: as many as fit in ~64 MiB (each chunk dequantises the
 * output matrix once, so bigger chunks are cheaper), between 32 and 512. */
static int head_chunk_rows(const mt_model *m) {
    const long rows = (64L << 20) / ((long)m->cfg.n_vocab * (long)sizeof(float));
    return rows < 32 ? 32 : rows > 512 ? 512 : (int)rows;
}

struct mt_tape {
    int n, n_seqs, n_layer;
    const int32_t *tokens;
    int *seq_start, *pos, *first;
    mt_layout lay;
    float *x; /* [(n_layer + 1) x n x embd]: input of each layer, then the final residual */
    mt_layer_acts *acts;
    float **blocks; /* backing allocation of each layer's activations (NULL: scratch) */
    float *scratch_block;
    mt_layer_acts scratch;
    const unsigned char *ckpt;
    int32_t *tokens_copy;
};

static size_t dims(const mt_model_config *c, size_t *d, size_t *qd, size_t *kvd, size_t *ff) {
    *d = c->n_embd;
    *qd = (size_t)c->n_head * c->head_dim;
    *kvd = (size_t)c->n_head_kv * c->head_dim;
    *ff = c->n_ff;
    return 0;
}

/* Carves every buffer of one block's activations out of a single allocation. */
static float *acts_alloc(const mt_model *m, int l, int n, mt_layer_acts *a) {
    const mt_model_config *c = &m->cfg;
    const mt_layer *L = &m->layers[l];
    size_t d, qd, kvd, ff;
    dims(c, &d, &qd, &kvd, &ff);
    size_t total = (size_t)n * (6 * d + 2 * qd + 2 * kvd + 3 * ff);
    if (c->qk_norm) total += (size_t)n * (qd + kvd);
    for (int r = 0; r < MT_LIN_COUNT; r++) {
        if (L->lin[r].a) total += (size_t)n * L->lin[r].rank;
        if (L->lin[r].a && L->lin[r].dropout > 0.0f) total += (size_t)n * mt_linear_in(&L->lin[r]);
    }
    float *block = mt_calloc(total, sizeof(float));
    if (!block) return NULL;
    memset(a, 0, sizeof *a);
    float *p = block;
#define TAKE(field, count) (a->field = p, p += (size_t)n * (count))
    TAKE(xn1, d);
    TAKE(o, d);
    TAKE(x_mid, d);
    TAKE(xn2, d);
    TAKE(dn, d);
    TAKE(q, qd);
    TAKE(att, qd);
    TAKE(k, kvd);
    TAKE(v, kvd);
    TAKE(gate, ff);
    TAKE(up, ff);
    TAKE(act, ff);
    if (c->qk_norm) {
        TAKE(q0, qd);
        TAKE(k0, kvd);
    }
    for (int r = 0; r < MT_LIN_COUNT; r++) {
        if (L->lin[r].a) TAKE(lora_h[r], L->lin[r].rank);
        if (L->lin[r].a && L->lin[r].dropout > 0.0f) TAKE(lora_x[r], mt_linear_in(&L->lin[r]));
    }
#undef TAKE
    return block;
}

void mt_tape_free(mt_tape *t) {
    if (!t) return;
    if (t->blocks)
        for (int l = 0; l < t->n_layer; l++) free(t->blocks[l]);
    free(t->blocks);
    free(t->scratch_block);
    free(t->acts);
    free(t->x);
    free(t->seq_start);
    free(t->pos);
    free(t->first);
    free(t->tokens_copy);
    free(t);
}

int mt_tape_tokens(const mt_tape *t) {
    return t->n;
}

static mt_status layout_init(mt_tape *t, const int *seq_start, int n_seqs) {
    if (n_seqs <= 0 || seq_start[0] != 0)
        return mt_fail(MT_ERR_ARG, "a training batch needs at least one sequence starting at 0");
    t->n = seq_start[n_seqs];
    t->seq_start = mt_calloc((size_t)n_seqs + 1, sizeof(int));
    t->pos = mt_calloc((size_t)t->n + 1, sizeof(int));
    t->first = mt_calloc((size_t)t->n + 1, sizeof(int));
    if (!t->seq_start || !t->pos || !t->first) return MT_ERR_NOMEM;
    memcpy(t->seq_start, seq_start, ((size_t)n_seqs + 1) * sizeof(int));
    for (int s = 0; s < n_seqs; s++) {
        if (seq_start[s + 1] <= seq_start[s])
            return mt_fail(MT_ERR_ARG, "sequence %d of the batch is empty", s);
        for (int i = seq_start[s]; i < seq_start[s + 1]; i++) {
            t->pos[i] = i - seq_start[s];
            t->first[i] = seq_start[s];
        }
    }
    t->n_seqs = n_seqs;
    t->lay = (mt_layout){.n = t->n, .row0 = 0, .pos = t->pos, .first = t->first};
    return MT_OK;
}

mt_status mt_train_forward(const mt_model *m, const int32_t *tokens, const int *seq_start,
                           int n_seqs, const unsigned char *checkpoint, uint64_t dropout_seed,
                           mt_tape **out) {
    *out = NULL;
    mt_tape *t = mt_calloc(1, sizeof *t);
    if (!t) return MT_ERR_NOMEM;
    const mt_model_config *c = &m->cfg;
    mt_status s = layout_init(t, seq_start, n_seqs);
    if (s) goto fail;
    t->n_layer = c->n_layer;
    t->ckpt = checkpoint;
    t->tokens_copy = mt_calloc((size_t)t->n, sizeof(int32_t));
    t->x = mt_calloc((size_t)(c->n_layer + 1) * t->n * c->n_embd, sizeof(float));
    t->acts = mt_calloc((size_t)c->n_layer, sizeof *t->acts);
    t->blocks = mt_calloc((size_t)c->n_layer, sizeof *t->blocks);
    if (!t->tokens_copy || !t->x || !t->acts || !t->blocks) {
        s = MT_ERR_NOMEM;
        goto fail;
    }
    memcpy(t->tokens_copy, tokens, (size_t)t->n * sizeof(int32_t));
    t->tokens = t->tokens_copy;
    if ((s = mt_embed_tokens(m, tokens, t->n, t->x))) goto fail;
    const size_t stride = (size_t)t->n * c->n_embd;
    for (int l = 0; l < c->n_layer; l++) {
        mt_layer_acts *a = &t->acts[l];
        if (checkpoint && checkpoint[l]) {
            /* Checkpointed blocks share one scratch; sized by the first such block. */
            if (!t->scratch_block && !(t->scratch_block = acts_alloc(m, l, t->n, &t->scratch))) {
                s = MT_ERR_NOMEM;
                goto fail;
            }
            *a = t->scratch;
        } else if (!(t->blocks[l] = acts_alloc(m, l, t->n, a))) {
            s = MT_ERR_NOMEM;
            goto fail;
        }
        a->drop_key = mt_mix_key(dropout_seed, (uint64_t)l);
        if ((s = mt_layer_forward(m, l, &t->lay, a, t->x + l * stride, t->x + (l + 1) * stride,
                                  NULL)))
            goto fail;
    }
    *out = t;
    return MT_OK;
fail:
    mt_tape_free(t);
    return s;
}

/* The normed final hidden states of the listed rows, into xn (and the raw ones into h
 * when given). */
typedef struct {
    const mt_model *m;
    const float *hfinal;
    const int *rows;
    float *h, *xn;
} gather_job;

static void gather_range(void *ctx, int64_t i0, int64_t i1) {
    const gather_job *j = ctx;
    const size_t d = j->m->cfg.n_embd;
    for (int64_t i = i0; i < i1; i++) {
        const float *src = j->hfinal + (size_t)j->rows[i] * d;
        if (j->h) memcpy(j->h + i * d, src, d * sizeof *j->h);
        mt_rmsnorm(j->xn + i * d, src, j->m->output_norm, (int)d, j->m->cfg.norm_eps);
    }
}

static void gather_normed(const mt_model *m, const mt_tape *t, const int *rows, int n, float *h,
                          float *xn) {
    gather_job j = {.m = m,
                    .hfinal = t->x + (size_t)m->cfg.n_layer * t->n * m->cfg.n_embd,
                    .rows = rows,
                    .h = h,
                    .xn = xn};
    mt_pool_for(n, 1, gather_range, &j);
}

mt_status mt_head_logprobs(const mt_model *m, const mt_tape *t, const int32_t *targets,
                           float *logprobs) {
    const int V = m->cfg.n_vocab;
    int *rows = mt_calloc((size_t)t->n + 1, sizeof *rows);
    int32_t *tg = mt_calloc((size_t)t->n + 1, sizeof *tg);
    float *xn = mt_calloc(((size_t)t->n + 1) * m->cfg.n_embd, sizeof *xn);
    float *lse = mt_calloc((size_t)t->n + 1, sizeof *lse),
          *lt = mt_calloc((size_t)t->n + 1, sizeof *lt);
    mt_status s = (!rows || !tg || !xn || !lse || !lt) ? MT_ERR_NOMEM : MT_OK;
    int n = 0;
    for (int i = 0; !s && i < t->n; i++) {
        logprobs[i] = 0.0f;
        if (targets[i] >= 0 && targets[i] < V) tg[n] = targets[i], rows[n++] = i;
    }
    if (!s && n) {
        gather_normed(m, t, rows, n, NULL, xn);
        s = mt_head_online(m, xn, tg, n, lse, lt, NULL, NULL);
    }
    for (int i = 0; !s && i < n; i++) logprobs[rows[i]] = lt[i] - lse[i];
    free(rows);
    free(tg);
    free(xn);
    free(lse);
    free(lt);
    return s;
}

/* Gradient workspace shared by every layer's backward. */
typedef struct {
    float *dx, *dxn, *dtmp, *datt, *dq, *dk, *dv, *dgate, *dup, *dact, *dh;
    float *block;
} grad_ws;

static mt_status ws_alloc(grad_ws *w, const mt_model *m, int n) {
    size_t d, qd, kvd, ff;
    dims(&m->cfg, &d, &qd, &kvd, &ff);
    int rmax = 1;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (int r = 0; r < MT_LIN_COUNT; r++)
            if (m->layers[l].lin[r].rank > rmax) rmax = m->layers[l].lin[r].rank;
    const size_t total = (size_t)n * (3 * d + 2 * qd + 2 * kvd + 3 * ff + rmax);
    memset(w, 0, sizeof *w);
    if (!(w->block = mt_calloc(total, sizeof(float)))) return MT_ERR_NOMEM;
    float *p = w->block;
#define TAKE(f, cnt) (w->f = p, p += (size_t)n * (cnt))
    TAKE(dx, d);
    TAKE(dxn, d);
    TAKE(dtmp, d);
    TAKE(datt, qd);
    TAKE(dq, qd);
    TAKE(dk, kvd);
    TAKE(dv, kvd);
    TAKE(dgate, ff);
    TAKE(dup, ff);
    TAKE(dact, ff);
    TAKE(dh, rmax);
#undef TAKE
    return MT_OK;
}

/* Row-wise RMSNorm backward over n rows. */
typedef struct {
    float *dx, *dw;
    const float *x, *w, *dy;
    int dim, accumulate;
    float eps;
} norm_back_job;

static void norm_back_range(void *ctx, int64_t t0, int64_t t1) {
    const norm_back_job *j = ctx;
    const size_t dim = (size_t)j->dim;
    for (int64_t t = t0; t < t1; t++)
        mt_rmsnorm_backward(j->dx + t * dim, j->dw, j->x + t * dim, j->w, j->dy + t * dim, j->dim,
                            j->eps, j->accumulate);
}

/* Rows run on the threads unless a weight gradient is summed over them (in row order). */
static void norm_backward(float *dx, float *dw, const float *x, const float *w, const float *dy,
                          int n, int dim, float eps, int accumulate) {
    norm_back_job j = {.dx = dx,
                       .dw = dw,
                       .x = x,
                       .w = w,
                       .dy = dy,
                       .dim = dim,
                       .accumulate = accumulate,
                       .eps = eps};
    if (dw)
        norm_back_range(&j, 0, n);
    else
        mt_pool_for(n, 1, norm_back_range, &j);
}

/* head_backward for a frozen head: the listed rows through mt_head_online, then the
 * output norm's backward pass into their rows of dx. */
static mt_status head_backward_online(const mt_model *m, const mt_tape *t, const int32_t *targets,
                                      const float *coef, const int *rows, int n, mt_grads *g,
                                      float *dx, float *logprobs) {
    if (!n) return MT_OK;
    const int d = m->cfg.n_embd;
    const size_t nd = (size_t)n * d;
    float *h = mt_calloc(nd, sizeof *h), *xn = mt_calloc(nd, sizeof *xn);
    float *dxn = mt_calloc(nd, sizeof *dxn), *dxc = mt_calloc(nd, sizeof *dxc);
    float *cf = mt_calloc((size_t)n, sizeof *cf), *lse = mt_calloc((size_t)n, sizeof *lse);
    float *lt = mt_calloc((size_t)n, sizeof *lt);
    int32_t *tg = mt_calloc((size_t)n, sizeof *tg);
    mt_status s = (!h || !xn || !dxn || !dxc || !cf || !lse || !lt || !tg) ? MT_ERR_NOMEM : MT_OK;
    if (!s) {
        for (int i = 0; i < n; i++) tg[i] = targets[rows[i]], cf[i] = coef[rows[i]];
        gather_normed(m, t, rows, n, h, xn);
        s = mt_head_online(m, xn, tg, n, lse, lt, dxn, cf);
    }
    if (!s) {
        norm_backward(dxc, g->output_norm, h, m->output_norm, dxn, n, d, m->cfg.norm_eps, 0);
        for (int i = 0; i < n; i++) {
            memcpy(dx + (size_t)rows[i] * d, dxc + (size_t)i * d, (size_t)d * sizeof *dx);
            if (logprobs) logprobs[rows[i]] = lt[i] - lse[i];
        }
    }
    free(h), free(xn), free(dxn), free(dxc), free(cf), free(lse), free(lt), free(tg);
    return s;
}

typedef struct {
    const int32_t *targets;
    const float *coef;
    const int *rows;
    float *lg, *logprobs;
    int V;
    float cap;
} logit_grad_job;

/* Each listed row's logits become their gradient (and its target's log-prob is kept). */
static void logit_grad_range(void *ctx, int64_t i0, int64_t i1) {
    const logit_grad_job *j = ctx;
    const int V = j->V;
    const float cap = j->cap;
    for (int64_t i = i0; i < i1; i++) {
        const int32_t tg = j->targets[j->rows[i]];
        const float c = j->coef[j->rows[i]];
        float *row = j->lg + (size_t)i * V;
        if (cap > 0.0f) mt_softcap(row, cap, V);
        const float lse = mt_logsumexp(row, V);
        /* Equal to mt_head_logprobs's up to rounding (that one, like a frozen head's
         * step, runs the online softmax). */
        if (j->logprobs) j->logprobs[j->rows[i]] = row[tg] - lse;
        if (c == 0.0f) {
            memset(row, 0, (size_t)V * sizeof *row);
            continue;
        }
        if (cap > 0.0f) {
            /* Through the softcap: d(capped)/d(raw) = 1 − (capped / cap)². */
            for (int v = 0; v < V; v++) {
                const float th = row[v] / cap;
                const float gc = (v == tg ? c : 0.0f) - c * expf(row[v] - lse);
                row[v] = gc * (1.0f - th * th);
            }
            continue;
        }
        mt_xent_grad_row(row, V, tg, lse, c);
    }
}

/* head_backward for a trainable head (full fine-tuning), whose weight gradient needs each
 * row's logit gradients: the listed rows in chunks, each chunk's logits held whole. */
static mt_status head_backward_chunks(const mt_model *m, const mt_tape *t, const int32_t *targets,
                                      const float *coef, const int *rows, int n_rows, float *gout,
                                      mt_grads *g, float *dx, float *logprobs) {
    const int V = m->cfg.n_vocab, d = m->cfg.n_embd;
    const float cap = m->cfg.final_softcap;
    const int chunk = head_chunk_rows(m);
    float *h = mt_calloc((size_t)chunk * d, sizeof *h);
    float *xn = mt_calloc((size_t)chunk * d, sizeof *xn);
    float *dxn = mt_calloc((size_t)chunk * d, sizeof *dxn);
    float *dxc = mt_calloc((size_t)chunk * d, sizeof *dxc);
    float *lg = mt_calloc((size_t)chunk * V, sizeof *lg);
    mt_status s = (!h || !xn || !lg || !dxn || !dxc) ? MT_ERR_NOMEM : MT_OK;
    for (int r0 = 0; !s && r0 < n_rows; r0 += chunk) {
        const int nr = r0 + chunk <= n_rows ? chunk : n_rows - r0;
        const int *rr = rows + r0;
        gather_normed(m, t, rr, nr, h, xn);
        if ((s = mt_matmul(&m->output, xn, nr, lg))) break;
        logit_grad_job lj = {.targets = targets,
                             .coef = coef,
                             .rows = rr,
                             .lg = lg,
                             .logprobs = logprobs,
                             .V = V,
                             .cap = cap};
        mt_pool_for(nr, 1, logit_grad_range, &lj);
        if ((s = mt_matmul_dx(&m->output, lg, nr, dxn, 0))) break;
        mt_gemm(1, 0, V, d, nr, 1.0f, lg, V, xn, d, 1.0f, gout, d);
        norm_backward(dxc, g->output_norm, h, m->output_norm, dxn, nr, d, m->cfg.norm_eps, 0);
        for (int i = 0; i < nr; i++)
            memcpy(dx + (size_t)rr[i] * d, dxc + (size_t)i * d, (size_t)d * sizeof *dx);
    }
    free(h);
    free(xn);
    free(dxn);
    free(dxc);
    free(lg);
    return s;
}

/* The head runs only on rows that carry a loss term (or whose log-prob is asked for):
 * prompt tokens of SFT data have coefficient 0, and their logits, the largest matrix
 * product of the step, would only be multiplied by zero. Their rows of dx are zero. A
 * frozen head (LoRA) makes one pass over the vocabulary for every row. */
static mt_status head_backward(const mt_model *m, const mt_tape *t, const int32_t *targets,
                               const float *coef, mt_grads *g, float *dx, float *logprobs) {
    const int V = m->cfg.n_vocab;
    float *gout = m->cfg.tied_embeddings ? g->tok_embd : g->output;
    int *rows = mt_calloc((size_t)t->n + 1, sizeof *rows);
    if (!rows) return MT_ERR_NOMEM;
    memset(dx, 0, (size_t)t->n * m->cfg.n_embd * sizeof *dx);
    if (logprobs) memset(logprobs, 0, (size_t)t->n * sizeof *logprobs);
    int n_rows = 0;
    for (int i = 0; i < t->n; i++)
        if (targets[i] >= 0 && targets[i] < V && (coef[i] != 0.0f || logprobs)) rows[n_rows++] = i;
    const mt_status s =
        gout ? head_backward_chunks(m, t, targets, coef, rows, n_rows, gout, g, dx, logprobs)
             : head_backward_online(m, t, targets, coef, rows, n_rows, g, dx, logprobs);
    free(rows);
    return s;
}

static mt_status lin_back(const mt_layer *L, const mt_layer_acts *a, mt_layer_grads *lg,
                          mt_lin_role r, const float *x, const float *dy, int n, float *dx,
                          int accumulate, float *dh) {
    return mt_linear_backward(&L->lin[r], x, a->lora_x[r], a->lora_h[r], dy, n, dx, accumulate,
                              lg->w[r], lg->lora_a[r], lg->lora_b[r], dh, mt_layer_drop_key(a, r));
}

static void bias_backward(float *gb, const float *dy, int n, int dim) {
    if (!gb) return;
    for (int t = 0; t < n; t++) mt_add(gb, dy + (size_t)t * dim, dim);
}

typedef struct {
    float *dgate, *dup;
    const float *gate, *up, *dact;
    int ff, kind;
} gate_back_job;

static void gate_back_range(void *ctx, int64_t i0, int64_t i1) {
    const gate_back_job *j = ctx;
    for (int64_t i = i0; i < i1; i++) {
        const size_t o = (size_t)i * j->ff;
        if (j->kind == MT_ACT_GELU_TANH)
            mt_gelu_tanh_mul_backward(j->dgate + o, j->dup + o, j->gate + o, j->up + o, j->dact + o,
                                      j->ff);
        else
            mt_silu_mul_backward(j->dgate + o, j->dup + o, j->gate + o, j->up + o, j->dact + o,
                                 j->ff);
    }
}

static mt_status mlp_backward(const mt_model *m, int l, const mt_tape *t, const mt_layer_acts *a,
                              mt_layer_grads *lg, grad_ws *w) {
    const mt_model_config *c = &m->cfg;
    const mt_layer *L = &m->layers[l];
    const int n = t->n, d = c->n_embd;
    mt_status s;
    const float *d_dn = w->dx;
    if (L->post_ffn_norm) {
        norm_backward(w->dtmp, lg->post_ffn_norm, a->dn, L->post_ffn_norm, w->dx, n, d, c->norm_eps,
                      0);
        d_dn = w->dtmp;
    }
    if ((s = lin_back(L, a, lg, MT_LIN_DOWN, a->act, d_dn, n, w->dact, 0, w->dh))) return s;
    gate_back_job gj = {.dgate = w->dgate,
                        .dup = w->dup,
                        .gate = a->gate,
                        .up = a->up,
                        .dact = w->dact,
                        .ff = c->n_ff,
                        .kind = c->act};
    mt_pool_for(n, 1, gate_back_range, &gj);
    if ((s = lin_back(L, a, lg, MT_LIN_GATE, a->xn2, w->dgate, n, w->dxn, 0, w->dh))) return s;
    if ((s = lin_back(L, a, lg, MT_LIN_UP, a->xn2, w->dup, n, w->dxn, 1, w->dh))) return s;
    norm_backward(w->dx, lg->ffn_norm, a->x_mid, L->ffn_norm, w->dxn, n, d, c->norm_eps, 1);
    return MT_OK;
}

/* dq/dk/dv from datt. One task per (sequence, head); each head adds its key/value
 * gradients into a buffer of its own, summed into the shared KV heads afterwards, so no
 * two threads ever write the same memory. */
typedef struct {
    const mt_model_config *c;
    const mt_tape *t;
    const mt_layer_acts *a;
    grad_ws *w;
    const mt_attn_seg *sg;
    float *dkh, *dvh;
    size_t per_head;
    int local, q_dim, kv_dim, group;
} attn_back_job;

static int attn_back_task(const void *ctx, int task, mt_scratch *sc) {
    const attn_back_job *j = ctx;
    const mt_model_config *c = j->c;
    const int hd = c->head_dim;
    const mt_attn_seg *s = &j->sg[task / c->n_head];
    const int h = task % c->n_head;
    for (int q0 = s->t0; q0 < s->t1; q0 += MT_ATTN_QBLOCK) {
        const int q1 = q0 + MT_ATTN_QBLOCK < s->t1 ? q0 + MT_ATTN_QBLOCK : s->t1;
        mt_attn_shape sh;
        mt_attn_block_shape(c, j->local, &j->t->lay, s, q0, q1, &sh);
        if (!mt_scratch_reserve(&sc->p, &sc->cap, 2 * (size_t)sh.n_q * sh.n_k)) return -1;
        const size_t qo = (size_t)q0 * j->q_dim + (size_t)h * hd;
        const size_t ko = (size_t)s->first * j->kv_dim + (size_t)(h / j->group) * hd;
        const size_t ho = (size_t)h * j->per_head + (size_t)s->first * hd;
        mt_attn_backward(&sh, j->a->q + qo, j->a->k + ko, j->a->v + ko, j->w->datt + qo,
                         j->w->dq + qo, j->dkh + ho, j->dvh + ho, hd, sc->p,
                         sc->p + (size_t)sh.n_q * sh.n_k);
    }
    return 0;
}

static mt_status attention_core_backward(const mt_model *m, int l, const mt_tape *t,
                                         const mt_layer_acts *a, grad_ws *w) {
    const mt_model_config *c = &m->cfg;
    const int hd = c->head_dim, kv_dim = c->n_head_kv * hd, group = c->n_head / c->n_head_kv;
    const size_t per_head = (size_t)t->n * hd;
    float *dkh = mt_calloc(2 * (size_t)c->n_head * per_head, sizeof *dkh);
    mt_attn_seg *sg = NULL;
    const int n_seg = dkh ? mt_attn_segments(&t->lay, &sg) : -1;
    if (n_seg < 0) {
        free(dkh);
        return mt_fail(MT_ERR_NOMEM, "out of memory in attention backward");
    }
    float *dvh = dkh + (size_t)c->n_head * per_head;
    const attn_back_job job = {.c = c,
                               .t = t,
                               .a = a,
                               .w = w,
                               .sg = sg,
                               .dkh = dkh,
                               .dvh = dvh,
                               .per_head = per_head,
                               .local = mt_config_layer_is_local(c, l),
                               .q_dim = c->n_head * hd,
                               .kv_dim = kv_dim,
                               .group = group};
    const mt_status st =
        mt_run_tasks(n_seg * c->n_head, attn_back_task, &job, "attention backward");
    free(sg);
    if (!st) {
        memset(w->dk, 0, (size_t)t->n * kv_dim * sizeof(float));
        memset(w->dv, 0, (size_t)t->n * kv_dim * sizeof(float));
        for (int h = 0; h < c->n_head; h++)
            for (int i = 0; i < t->n; i++) {
                const size_t dst = (size_t)i * kv_dim + (size_t)(h / group) * hd;
                const size_t src = (size_t)h * per_head + (size_t)i * hd;
                mt_add(w->dk + dst, dkh + src, hd);
                mt_add(w->dv + dst, dvh + src, hd);
            }
    }
    free(dkh);
    return st;
}

typedef struct {
    const mt_model_config *c;
    const int *pos;
    float *dh, *dnorm;
    const float *h0, *norm, *freqs;
    float inv_scale;
    int n_heads;
} unposition_job;

static void unposition_range(void *ctx, int64_t i0, int64_t i1) {
    const unposition_job *u = ctx;
    const mt_model_config *c = u->c;
    for (int64_t i = i0; i < i1; i++) {
        float cs[512];
        mt_rope_angles(cs, c->head_dim, (float)u->pos[i] * u->inv_scale, u->freqs);
        for (int j = 0; j < u->n_heads; j++) {
            const size_t off = ((size_t)i * u->n_heads + j) * c->head_dim;
            mt_rope_apply(u->dh + off, c->head_dim, cs, c->rope_style == MT_ROPE_NEOX, 1);
            if (u->norm)
                mt_rmsnorm_backward(u->dh + off, u->dnorm, u->h0 + off, u->norm, u->dh + off,
                                    c->head_dim, c->norm_eps, 0);
        }
    }
}

/* Undo RoPE, then QK-norm, on the gradient of n_heads heads per token. */
static void unposition_heads(const mt_model *m, int l, const mt_tape *t, float *dh, const float *h0,
                             const float *norm, float *dnorm, int n_heads) {
    const mt_model_config *c = &m->cfg;
    const int local = mt_config_layer_is_local(c, l);
    const float base = local ? c->rope_base_local : c->rope_base;
    float freqs[512];
    mt_rope_freqs(freqs, c->head_dim, base);
    unposition_job u = {.c = c,
                        .pos = t->pos,
                        .dh = dh,
                        .dnorm = dnorm,
                        .h0 = h0,
                        .norm = norm,
                        .freqs = freqs,
                        .inv_scale = local ? 1.0f : 1.0f / c->rope_scale,
                        .n_heads = n_heads};
    /* Rows are independent unless a norm weight gradient is summed over them. */
    if (dnorm)
        unposition_range(&u, 0, t->n);
    else
        mt_pool_for(t->n, 1, unposition_range, &u);
}

static mt_status attention_backward(const mt_model *m, int l, const mt_tape *t,
                                    const mt_layer_acts *a, mt_layer_grads *lg, grad_ws *w) {
    const mt_model_config *c = &m->cfg;
    const mt_layer *L = &m->layers[l];
    const int n = t->n, d = c->n_embd;
    const int q_dim = c->n_head * c->head_dim, kv_dim = c->n_head_kv * c->head_dim;
    mt_status s;
    const float *d_o = w->dx;
    if (L->post_attn_norm) {
        norm_backward(w->dtmp, lg->post_attn_norm, a->o, L->post_attn_norm, w->dx, n, d,
                      c->norm_eps, 0);
        d_o = w->dtmp;
    }
    if ((s = lin_back(L, a, lg, MT_LIN_O, a->att, d_o, n, w->datt, 0, w->dh))) return s;
    if ((s = attention_core_backward(m, l, t, a, w))) return s;
    unposition_heads(m, l, t, w->dq, a->q0, L->q_norm, lg->q_norm, c->n_head);
    unposition_heads(m, l, t, w->dk, a->k0, L->k_norm, lg->k_norm, c->n_head_kv);
    bias_backward(lg->bq, w->dq, n, q_dim);
    bias_backward(lg->bk, w->dk, n, kv_dim);
    bias_backward(lg->bv, w->dv, n, kv_dim);
    if ((s = lin_back(L, a, lg, MT_LIN_Q, a->xn1, w->dq, n, w->dxn, 0, w->dh))) return s;
    if ((s = lin_back(L, a, lg, MT_LIN_K, a->xn1, w->dk, n, w->dxn, 1, w->dh))) return s;
    if ((s = lin_back(L, a, lg, MT_LIN_V, a->xn1, w->dv, n, w->dxn, 1, w->dh))) return s;
    const float *x_in = t->x + (size_t)l * n * d;
    norm_backward(w->dx, lg->attn_norm, x_in, L->attn_norm, w->dxn, n, d, c->norm_eps, 1);
    return MT_OK;
}

static void embedding_backward(const mt_model *m, const mt_tape *t, const float *dx, float *g) {
    if (!g) return;
    const int d = m->cfg.n_embd;
    for (int i = 0; i < t->n; i++) {
        float *row = g + (size_t)t->tokens[i] * d;
        for (int j = 0; j < d; j++) row[j] += dx[(size_t)i * d + j] * m->cfg.embd_scale;
    }
}

mt_status mt_train_backward(const mt_model *m, mt_tape *t, const int32_t *targets,
                            const float *coef, mt_grads *g) {
    return mt_train_backward_lp(m, t, targets, coef, g, NULL);
}

mt_status mt_train_backward_lp(const mt_model *m, mt_tape *t, const int32_t *targets,
                               const float *coef, mt_grads *g, float *logprobs) {
    grad_ws w;
    mt_status s = ws_alloc(&w, m, t->n);
    if (s) return s;
    if ((s = head_backward(m, t, targets, coef, g, w.dx, logprobs))) goto done;
    const size_t stride = (size_t)t->n * m->cfg.n_embd;
    static mt_layer_grads none;
    for (int l = m->cfg.n_layer - 1; l >= 0; l--) {
        mt_layer_acts *a = &t->acts[l];
        if (t->ckpt && t->ckpt[l] &&
            (s = mt_layer_forward(m, l, &t->lay, a, t->x + l * stride, t->x + (l + 1) * stride,
                                  NULL)))
            goto done;
        mt_layer_grads *lg = g->layers ? &g->layers[l] : &none;
        if ((s = mlp_backward(m, l, t, a, lg, &w))) goto done;
        if ((s = attention_backward(m, l, t, a, lg, &w))) goto done;
    }
    embedding_backward(m, t, w.dx, g->tok_embd);
done:
    free(w.block);
    return s;
}
