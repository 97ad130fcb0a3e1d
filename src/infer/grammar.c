#include "infer/grammar.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "infer/json_string.h"
#include "kernels/bitset.h"

/* ---- the frozen grammar ------------------------------------------------------------ */

typedef struct {
    uint8_t lo, hi;
    int32_t to;
} gedge;

typedef struct {
    uint32_t e0, ne; /* byte edges */
    uint32_t p0, np; /* epsilon targets */
    int32_t call, call_ret, str;
    uint8_t ret;
} gstate;

typedef struct {
    int32_t min, max, next, xroot; /* xroot: exclusion trie root, -1 for none */
} gstr;

/* Exclusion trie of names an additional property's key may not spell. */
typedef struct {
    int32_t child, sibling;
    uint8_t byte, terminal;
} gxnode;

struct mt_grammar {
    int32_t n_states, start;
    gstate *st;
    gedge *edges;
    int32_t *eps;
    gstr *strs;
    gxnode *xn;
    int n_strs, n_xn;
};

void mt_grammar_free(mt_grammar *g) {
    if (!g) return;
    free(g->st);
    free(g->edges);
    free(g->eps);
    free(g->strs);
    free(g->xn);
    free(g);
}

int mt_grammar_n_states(const mt_grammar *g) {
    return g->n_states;
}

/* ---- building ---------------------------------------------------------------------- */

typedef struct {
    int32_t from, to;
    uint8_t lo, hi, is_eps;
} bedge;

struct mt_gbuild {
    int32_t n_states;
    size_t cap_states;
    int32_t *call, *call_ret, *str;
    uint8_t *ret;
    bedge *e;
    size_t n_e, cap_e;
    gstr *strs;
    int n_strs, cap_strs;
    gxnode *xn;
    int n_xn, cap_xn;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q) {
        mt_fail(MT_ERR_NOMEM, "grammar: out of memory");
        return 0;
    }
    memset((char *)q + *cap * elem, 0, (nc - *cap) * elem);
    *p = q;
    *cap = nc;
    return 1;
}

static int grow_int(void **p, int *cap, int need, size_t elem) {
    size_t c = (size_t)*cap;
    if (!grow(p, &c, (size_t)need, elem)) return 0;
    *cap = (int)c;
    return 1;
}

mt_status mt_gbuild_new(mt_gbuild **out) {
    *out = mt_calloc(1, sizeof **out);
    return *out ? MT_OK : MT_ERR_NOMEM;
}

void mt_gbuild_free(mt_gbuild *b) {
    if (!b) return;
    free(b->call);
    free(b->call_ret);
    free(b->str);
    free(b->ret);
    free(b->e);
    free(b->strs);
    free(b->xn);
    free(b);
}

int32_t mt_gbuild_state(mt_gbuild *b) {
    if (b->n_states >= MT_GRAMMAR_MAX_STATES) {
        mt_fail(MT_ERR_UNSUPPORTED, "schema too large: its grammar needs more than %d states",
                MT_GRAMMAR_MAX_STATES);
        return -1;
    }
    size_t c = b->cap_states;
    const size_t need = (size_t)b->n_states + 1;
    if (!grow((void **)&b->call, &c, need, sizeof *b->call)) return -1;
    c = b->cap_states;
    if (!grow((void **)&b->call_ret, &c, need, sizeof *b->call_ret)) return -1;
    c = b->cap_states;
    if (!grow((void **)&b->str, &c, need, sizeof *b->str)) return -1;
    c = b->cap_states;
    if (!grow((void **)&b->ret, &c, need, sizeof *b->ret)) return -1;
    b->cap_states = c;
    const int32_t s = b->n_states++;
    b->call[s] = -1;
    b->call_ret[s] = -1;
    b->str[s] = -1;
    b->ret[s] = 0;
    return s;
}

static mt_status check_state(const mt_gbuild *b, int32_t s) {
    if (s < 0 || s >= b->n_states)
        return mt_fail(MT_ERR_INTERNAL, "grammar: state %d out of range", (int)s);
    return MT_OK;
}

static mt_status add_edge(mt_gbuild *b, int32_t from, int32_t to, uint8_t lo, uint8_t hi,
                          uint8_t is_eps) {
    mt_status st = check_state(b, from);
    if (!st) st = check_state(b, to);
    if (st) return st;
    if (b->call[from] >= 0 || b->str[from] >= 0)
        return mt_fail(MT_ERR_INTERNAL, "grammar: edge out of a call or string state %d", from);
    if (!grow((void **)&b->e, &b->cap_e, b->n_e + 1, sizeof *b->e)) return MT_ERR_NOMEM;
    b->e[b->n_e++] = (bedge){from, to, lo, hi, is_eps};
    return MT_OK;
}

mt_status mt_gbuild_bytes(mt_gbuild *b, int32_t from, uint8_t lo, uint8_t hi, int32_t to) {
    if (lo > hi) return mt_fail(MT_ERR_INTERNAL, "grammar: empty byte range");
    return add_edge(b, from, to, lo, hi, 0);
}

mt_status mt_gbuild_eps(mt_gbuild *b, int32_t from, int32_t to) {
    return add_edge(b, from, to, 0, 0, 1);
}

mt_status mt_gbuild_call(mt_gbuild *b, int32_t s, int32_t callee, int32_t ret) {
    mt_status st = check_state(b, s);
    if (!st) st = check_state(b, callee);
    if (!st) st = check_state(b, ret);
    if (st) return st;
    b->call[s] = callee;
    b->call_ret[s] = ret;
    return MT_OK;
}

mt_status mt_gbuild_ret(mt_gbuild *b, int32_t s) {
    mt_status st = check_state(b, s);
    if (st) return st;
    b->ret[s] = 1;
    return MT_OK;
}

static int32_t xnode_new(mt_gbuild *b, uint8_t byte) {
    if (!grow_int((void **)&b->xn, &b->cap_xn, b->n_xn + 1, sizeof *b->xn)) return -1;
    b->xn[b->n_xn] = (gxnode){-1, -1, byte, 0};
    return b->n_xn++;
}

mt_status mt_gbuild_string(mt_gbuild *b, int32_t s, int32_t min_cp, int32_t max_cp,
                           const char *const *excluded, int n_excluded, int32_t next) {
    mt_status st = check_state(b, s);
    if (!st) st = check_state(b, next);
    if (st) return st;
    if (!grow_int((void **)&b->strs, &b->cap_strs, b->n_strs + 1, sizeof *b->strs))
        return MT_ERR_NOMEM;
    int32_t root = -1;
    if (n_excluded > 0) {
        if ((root = xnode_new(b, 0)) < 0) return MT_ERR_NOMEM;
        for (int i = 0; i < n_excluded; i++) {
            int32_t at = root;
            for (const uint8_t *p = (const uint8_t *)excluded[i]; *p; p++) {
                int32_t c = b->xn[at].child;
                while (c >= 0 && b->xn[c].byte != *p) c = b->xn[c].sibling;
                if (c < 0) {
                    if ((c = xnode_new(b, *p)) < 0) return MT_ERR_NOMEM;
                    b->xn[c].sibling = b->xn[at].child;
                    b->xn[at].child = c;
                }
                at = c;
            }
            b->xn[at].terminal = 1;
        }
    }
    b->strs[b->n_strs] = (gstr){min_cp, max_cp, next, root};
    b->str[s] = b->n_strs++;
    return MT_OK;
}

int mt_gbuild_first_calls(const mt_gbuild *b, int32_t s, int32_t *callees, int cap) {
    /* Small depth-first search over epsilon edges; the grammars' epsilon paths are short. */
    int n = 0, n_todo = 0;
    size_t cap_todo = 0, cap_seen = 0;
    int32_t *todo = NULL;
    uint8_t *seen = NULL;
    if (!grow((void **)&seen, &cap_seen, (size_t)b->n_states, 1) ||
        !grow((void **)&todo, &cap_todo, 16, sizeof *todo)) {
        free(seen);
        free(todo);
        return -1;
    }
    todo[n_todo++] = s;
    seen[s] = 1;
    while (n_todo > 0) {
        const int32_t x = todo[--n_todo];
        if (b->call[x] >= 0 && n < cap) callees[n++] = b->call[x];
        for (size_t k = 0; k < b->n_e; k++) {
            if (b->e[k].from != x || !b->e[k].is_eps || seen[b->e[k].to]) continue;
            if (!grow((void **)&todo, &cap_todo, (size_t)n_todo + 1, sizeof *todo)) {
                n = -1;
                n_todo = 0;
                break;
            }
            seen[b->e[k].to] = 1;
            todo[n_todo++] = b->e[k].to;
        }
    }
    free(seen);
    free(todo);
    return n;
}

mt_status mt_gbuild_finish(mt_gbuild *b, int32_t start, mt_grammar **out) {
    *out = NULL;
    mt_status st = check_state(b, start);
    if (st) {
        mt_gbuild_free(b);
        return st;
    }
    mt_grammar *g = mt_calloc(1, sizeof *g);
    size_t n_byte = 0, n_eps = 0;
    for (size_t k = 0; k < b->n_e; k++) b->e[k].is_eps ? n_eps++ : n_byte++;
    if (g) {
        g->st = mt_calloc((size_t)b->n_states + 1, sizeof *g->st);
        g->edges = mt_calloc(n_byte + 1, sizeof *g->edges);
        g->eps = mt_calloc(n_eps + 1, sizeof *g->eps);
        g->strs = mt_calloc((size_t)b->n_strs + 1, sizeof *g->strs);
        g->xn = mt_calloc((size_t)b->n_xn + 1, sizeof *g->xn);
    }
    if (!g || !g->st || !g->edges || !g->eps || !g->strs || !g->xn) {
        mt_grammar_free(g);
        mt_gbuild_free(b);
        return MT_ERR_NOMEM;
    }
    g->n_states = b->n_states;
    g->start = start;
    /* Counting sort of the edges by source state, byte and epsilon edges apart. */
    for (size_t k = 0; k < b->n_e; k++) {
        gstate *q = &g->st[b->e[k].from];
        b->e[k].is_eps ? q->np++ : q->ne++;
    }
    uint32_t eo = 0, po = 0;
    for (int32_t s = 0; s < b->n_states; s++) {
        gstate *q = &g->st[s];
        q->e0 = eo;
        q->p0 = po;
        eo += q->ne;
        po += q->np;
        q->ne = q->np = 0;
        q->call = b->call[s];
        q->call_ret = b->call_ret[s];
        q->str = b->str[s];
        q->ret = b->ret[s];
    }
    for (size_t k = 0; k < b->n_e; k++) {
        gstate *q = &g->st[b->e[k].from];
        if (b->e[k].is_eps)
            g->eps[q->p0 + q->np++] = b->e[k].to;
        else
            g->edges[q->e0 + q->ne++] = (gedge){b->e[k].lo, b->e[k].hi, b->e[k].to};
    }
    if (b->n_strs) memcpy(g->strs, b->strs, (size_t)b->n_strs * sizeof *g->strs);
    if (b->n_xn) memcpy(g->xn, b->xn, (size_t)b->n_xn * sizeof *g->xn);
    g->n_strs = b->n_strs;
    g->n_xn = b->n_xn;
    mt_gbuild_free(b);
    *out = g;
    return MT_OK;
}

/* ---- parses ------------------------------------------------------------------------ */

/* A call stack is a chain of persistent nodes (shared by the parses that forked from
 * it), kept in the matcher's arena; -1 is the empty stack. */
typedef struct {
    int32_t ret, parent, depth;
    uint64_t hash;
} snode;

typedef struct {
    int32_t state, cnt, excl, stk, sub;
    uint64_t h;
} parse;

typedef struct {
    parse *p;
    int n, cap, accept;
} pset;

#define MASKS_PER_BLOCK 32
#define EMPTY_STACK_HASH 0x9e3779b97f4a7c15ull

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

typedef struct {
    uint64_t h;
    uint32_t key_off, key_len;
    int32_t slot; /* -1: empty table entry */
} centry;

struct mt_gcache {
    const mt_grammar *g;
    const mt_token_index *ix;
    int refs;
    size_t max_masks, n_masks;
    /* Masks live in fixed blocks, so growing the cache never copies the ones it has. */
    uint64_t **blocks;
    size_t n_blocks, cap_blocks;
    centry *tab;
    size_t tab_cap; /* power of two, at least twice n_masks; grows with it */
    int32_t *keys;
    size_t n_keys, cap_keys;
};

struct mt_gmatch {
    const mt_grammar *g;
    const mt_token_index *ix;
    mt_gcache *cache;
    snode *sn;
    size_t n_sn, cap_sn;
    int oom;
    pset cur, a, b;
    pset *lv; /* walk scratch, one set per trie depth */
    int n_lv;
    uint64_t *bits;
    int32_t *key;
    int32_t *remap; /* compaction scratch */
    size_t cap_remap;
};

static uint64_t stk_hash(const mt_gmatch *m, int32_t stk) {
    return stk < 0 ? EMPTY_STACK_HASH : m->sn[stk].hash;
}

static int32_t push(mt_gmatch *m, int32_t parent, int32_t ret) {
    if (!grow((void **)&m->sn, &m->cap_sn, m->n_sn + 1, sizeof *m->sn)) {
        m->oom = 1;
        return -1;
    }
    const int32_t at = (int32_t)m->n_sn++;
    m->sn[at] =
        (snode){ret, parent, parent < 0 ? 1 : m->sn[parent].depth + 1,
                mix64(stk_hash(m, parent) ^ ((uint64_t)(uint32_t)ret * 0x2545F4914F6CDD1Dull))};
    return at;
}

static int stk_eq(const mt_gmatch *m, int32_t a, int32_t b) {
    while (a != b) {
        if (a < 0 || b < 0) return 0;
        if (m->sn[a].ret != m->sn[b].ret || m->sn[a].hash != m->sn[b].hash) return 0;
        a = m->sn[a].parent;
        b = m->sn[b].parent;
    }
    return 1;
}

static void pset_add(mt_gmatch *m, pset *ps, int32_t state, int32_t cnt, int32_t excl, int32_t sub,
                     int32_t stk) {
    const uint64_t h =
        mix64(((uint64_t)(uint32_t)state << 32 | (uint32_t)cnt) ^
              mix64((uint64_t)(uint32_t)excl << 32 | (uint32_t)sub) ^ stk_hash(m, stk));
    for (int i = 0; i < ps->n; i++) {
        const parse *q = &ps->p[i];
        if (q->h == h && q->state == state && q->cnt == cnt && q->excl == excl && q->sub == sub &&
            stk_eq(m, q->stk, stk))
            return;
    }
    if (ps->n >= MT_GRAMMAR_MAX_PARSES) return;
    if (ps->n == ps->cap) {
        size_t c = (size_t)ps->cap;
        if (!grow((void **)&ps->p, &c, (size_t)ps->n + 1, sizeof *ps->p)) {
            m->oom = 1;
            return;
        }
        ps->cap = (int)c;
    }
    ps->p[ps->n++] = (parse){state, cnt, excl, stk, sub, h};
}

/* Adds every parse that state s (entered with stack stk) leads to without consuming a
 * byte: the states that consume bytes, and the document's end. */
static void closure(mt_gmatch *m, pset *out, int32_t s, int32_t stk) {
    const mt_grammar *g = m->g;
    const gstate *q = &g->st[s];
    if (q->str >= 0) {
        pset_add(m, out, s, 0, g->strs[q->str].xroot, MT_JS_CHAR, stk);
        return;
    }
    if (q->ne) pset_add(m, out, s, 0, -1, 0, stk);
    for (uint32_t k = 0; k < q->np; k++) closure(m, out, g->eps[q->p0 + k], stk);
    if (q->call >= 0) {
        if ((stk < 0 ? 0 : m->sn[stk].depth) >= MT_GRAMMAR_MAX_DEPTH) return;
        const int32_t ns = push(m, stk, q->call_ret);
        if (ns >= 0) closure(m, out, q->call, ns);
    }
    if (q->ret) {
        if (stk < 0)
            out->accept = 1;
        else
            closure(m, out, m->sn[stk].ret, m->sn[stk].parent);
    }
}

static void advance(mt_gmatch *m, const pset *in, uint8_t byte, pset *out) {
    const mt_grammar *g = m->g;
    out->n = 0;
    out->accept = 0;
    for (int i = 0; i < in->n; i++) {
        const parse *p = &in->p[i];
        const gstate *q = &g->st[p->state];
        if (q->str < 0) {
            for (uint32_t k = 0; k < q->ne; k++) {
                const gedge *e = &g->edges[q->e0 + k];
                if (byte >= e->lo && byte <= e->hi) closure(m, out, e->to, p->stk);
            }
            continue;
        }
        const gstr *sp = &g->strs[q->str];
        if (p->sub == MT_JS_CHAR && byte == '"') {
            if (p->cnt >= sp->min && !(p->excl >= 0 && g->xn[p->excl].terminal))
                closure(m, out, sp->next, p->stk);
            continue;
        }
        int starts;
        const int ns = mt_js_step(p->sub, byte, &starts);
        if (ns == MT_JS_REJECT || (sp->xroot >= 0 && byte == '\\')) continue;
        int32_t cnt = p->cnt;
        if (starts) {
            if (sp->max >= 0 && cnt >= sp->max) continue;
            cnt++;
        }
        int32_t excl = -1;
        if (p->excl >= 0) {
            excl = g->xn[p->excl].child;
            while (excl >= 0 && g->xn[excl].byte != byte) excl = g->xn[excl].sibling;
        }
        pset_add(m, out, p->state, cnt, excl, ns, p->stk);
    }
}

/* ---- mask cache -------------------------------------------------------------------- */

mt_status mt_gcache_new(const mt_grammar *g, const mt_token_index *ix, size_t max_bytes,
                        mt_gcache **out) {
    *out = NULL;
    if (!max_bytes) max_bytes = (size_t)64 << 20;
    mt_gcache *c = mt_calloc(1, sizeof *c);
    if (!c) return MT_ERR_NOMEM;
    c->g = g;
    c->ix = ix;
    c->refs = 1;
    c->max_masks = max_bytes / ((size_t)ix->words * 8);
    if (c->max_masks < 4) c->max_masks = 4;
    c->tab_cap = 64;
    c->tab = mt_calloc(c->tab_cap, sizeof *c->tab);
    if (!c->tab) {
        free(c);
        return MT_ERR_NOMEM;
    }
    for (size_t i = 0; i < c->tab_cap; i++) c->tab[i].slot = -1;
    *out = c;
    return MT_OK;
}

void mt_gcache_release(mt_gcache *c) {
    if (!c || --c->refs > 0) return;
    for (size_t i = 0; i < c->n_blocks; i++) free(c->blocks[i]);
    free(c->blocks);
    free(c->tab);
    free(c->keys);
    free(c);
}

static void cache_clear(mt_gcache *c) {
    for (size_t i = 0; i < c->tab_cap; i++) c->tab[i].slot = -1;
    c->n_masks = 0;
    c->n_keys = 0;
}

static uint64_t *cache_find(mt_gcache *c, const int32_t *key, uint32_t len, uint64_t h) {
    for (size_t i = h & (c->tab_cap - 1);; i = (i + 1) & (c->tab_cap - 1)) {
        const centry *e = &c->tab[i];
        if (e->slot < 0) return NULL;
        if (e->h == h && e->key_len == len && !memcmp(c->keys + e->key_off, key, len * 4))
            return c->blocks[e->slot / MASKS_PER_BLOCK] +
                   (size_t)(e->slot % MASKS_PER_BLOCK) * (size_t)c->ix->words;
    }
}

/* A slot for a new mask under key (emptying the cache first when full), or NULL. */
static uint64_t *cache_insert(mt_gcache *c, const int32_t *key, uint32_t len, uint64_t h) {
    if (c->n_masks >= c->max_masks) cache_clear(c);
    if (2 * (c->n_masks + 1) > c->tab_cap) {
        /* Doubles the table; entries keep their keys and masks. */
        centry *t = mt_calloc(c->tab_cap * 2, sizeof *t);
        if (!t) return NULL;
        const size_t cap = c->tab_cap * 2;
        for (size_t i = 0; i < cap; i++) t[i].slot = -1;
        for (size_t i = 0; i < c->tab_cap; i++) {
            if (c->tab[i].slot < 0) continue;
            size_t j = c->tab[i].h & (cap - 1);
            while (t[j].slot >= 0) j = (j + 1) & (cap - 1);
            t[j] = c->tab[i];
        }
        free(c->tab);
        c->tab = t;
        c->tab_cap = cap;
    }
    const size_t w = (size_t)c->ix->words;
    if (c->n_masks / MASKS_PER_BLOCK >= c->n_blocks) {
        if (!grow((void **)&c->blocks, &c->cap_blocks, c->n_blocks + 1, sizeof *c->blocks))
            return NULL;
        if (!(c->blocks[c->n_blocks] = mt_calloc(MASKS_PER_BLOCK * w, sizeof **c->blocks)))
            return NULL;
        c->n_blocks++;
    }
    if (!grow((void **)&c->keys, &c->cap_keys, c->n_keys + len, sizeof *c->keys)) return NULL;
    size_t i = h & (c->tab_cap - 1);
    while (c->tab[i].slot >= 0) i = (i + 1) & (c->tab_cap - 1);
    memcpy(c->keys + c->n_keys, key, len * 4);
    c->tab[i] = (centry){h, (uint32_t)c->n_keys, len, (int32_t)c->n_masks};
    c->n_keys += len;
    const size_t slot = c->n_masks++;
    return c->blocks[slot / MASKS_PER_BLOCK] + (slot % MASKS_PER_BLOCK) * w;
}

/* The cache key of a parse: everything its mask depends on. A string's counters matter
 * only up to the longest token, so they are clamped there. */
static uint32_t parse_key(const mt_gmatch *m, const parse *p, int32_t *key, uint64_t *h) {
    const mt_grammar *g = m->g;
    const gstate *q = &g->st[p->state];
    uint32_t n = 0;
    key[n++] = p->state;
    key[n++] = p->sub;
    if (q->str >= 0) {
        const gstr *sp = &g->strs[q->str];
        const int32_t lim = m->ix->max_len + 1;
        int32_t rem = sp->max < 0 ? lim : sp->max - p->cnt;
        int32_t need = sp->min - p->cnt;
        key[n++] = rem < lim ? rem : lim;
        key[n++] = need < 0 ? 0 : need < lim ? need : lim;
        key[n++] = p->excl;
    }
    for (int32_t s = p->stk; s >= 0; s = m->sn[s].parent) key[n++] = m->sn[s].ret;
    uint64_t x = 0x51ed270b27a3c1d5ull ^ n;
    for (uint32_t i = 0; i < n; i++) x = mix64(x ^ (uint32_t)key[i]) + i;
    *h = x;
    return n;
}

/* Marks in bits (already holding any precomputed part) the tokens of trie t whose bytes
 * parse p consumes entirely. */
static void walk(mt_gmatch *m, const mt_token_trie *t, const parse *p, uint64_t *bits) {
    const size_t mark = m->n_sn;
    m->lv[0].n = 0;
    m->lv[0].accept = 0;
    pset_add(m, &m->lv[0], p->state, p->cnt, p->excl, p->sub, p->stk);
    const mt_trie_node *node = t->node;
    for (uint32_t i = 1; i < t->n_node;) {
        const mt_trie_node *nd = &node[i];
        pset *dst = &m->lv[nd->depth];
        advance(m, &m->lv[nd->depth - 1], nd->byte, dst);
        if (!dst->n && !dst->accept) {
            i = nd->end;
            continue;
        }
        for (uint32_t k = 0; k < nd->n_tok; k++) {
            const int32_t id = t->ids[nd->tok0 + k];
            bits[id >> 6] |= 1ull << (id & 63);
        }
        i++;
    }
    m->n_sn = mark;
}

static void parse_mask(mt_gmatch *m, const parse *p, uint64_t *bits) {
    const mt_grammar *g = m->g;
    const mt_token_index *ix = m->ix;
    const gstate *q = &g->st[p->state];
    const size_t w = (size_t)ix->words;
    /* Inside a string between characters, the tokens that are plain content are allowed
     * up to the code points left; only the others need the walk. Keys that must avoid
     * property names (no escapes there) take the plain walk. */
    if (q->str >= 0 && p->sub == MT_JS_CHAR && g->strs[q->str].xroot < 0) {
        const gstr *sp = &g->strs[q->str];
        int32_t left = sp->max < 0 ? INT32_MAX : sp->max - p->cnt;
        if (left > ix->n_content - 1) left = ix->n_content - 1;
        memcpy(bits, ix->content + (size_t)left * w, w * sizeof *bits);
        walk(m, &ix->nonstr, p, bits);
        return;
    }
    memset(bits, 0, w * sizeof *bits);
    walk(m, &ix->all, p, bits);
}

/* ---- matcher ----------------------------------------------------------------------- */

static mt_status matcher_alloc(const mt_grammar *g, const mt_token_index *ix, mt_gcache *cache,
                               mt_gmatch **out) {
    *out = NULL;
    if (cache && (cache->g != g || cache->ix != ix))
        return mt_fail(MT_ERR_ARG, "grammar: the mask cache belongs to another grammar or index");
    mt_gmatch *m = mt_calloc(1, sizeof *m);
    if (!m) return MT_ERR_NOMEM;
    m->g = g;
    m->ix = ix;
    m->n_lv = ix->max_len + 1;
    m->lv = mt_calloc((size_t)m->n_lv, sizeof *m->lv);
    m->bits = mt_calloc((size_t)ix->words, sizeof *m->bits);
    m->key = mt_calloc(MT_GRAMMAR_MAX_DEPTH + 8, sizeof *m->key);
    mt_status st = m->lv && m->bits && m->key ? MT_OK : MT_ERR_NOMEM;
    if (!st && cache) {
        cache->refs++;
        m->cache = cache;
    } else if (!st) {
        st = mt_gcache_new(g, ix, 0, &m->cache);
    }
    if (st) {
        mt_gmatch_free(m);
        return st;
    }
    *out = m;
    return MT_OK;
}

mt_status mt_gmatch_new(const mt_grammar *g, const mt_token_index *ix, mt_gcache *cache,
                        mt_gmatch **out) {
    mt_gmatch *m;
    mt_status st = matcher_alloc(g, ix, cache, &m);
    if (st) return st;
    closure(m, &m->cur, g->start, -1);
    if (m->oom) {
        mt_gmatch_free(m);
        return mt_fail(MT_ERR_NOMEM, "grammar: out of memory");
    }
    *out = m;
    return MT_OK;
}

void mt_gmatch_free(mt_gmatch *m) {
    if (!m) return;
    mt_gcache_release(m->cache);
    free(m->sn);
    free(m->cur.p);
    free(m->a.p);
    free(m->b.p);
    for (int i = 0; m->lv && i < m->n_lv; i++) free(m->lv[i].p);
    free(m->lv);
    free(m->bits);
    free(m->key);
    free(m->remap);
    free(m);
}

static int copy_pset(pset *dst, const pset *src) {
    if (src->n > dst->cap) {
        size_t c = (size_t)dst->cap;
        if (!grow((void **)&dst->p, &c, (size_t)src->n, sizeof *dst->p)) return 0;
        dst->cap = (int)c;
    }
    if (src->n) memcpy(dst->p, src->p, (size_t)src->n * sizeof *dst->p);
    dst->n = src->n;
    dst->accept = src->accept;
    return 1;
}

/* Rebuilds the stack arena with only the nodes the live parses use. */
static void compact(mt_gmatch *m) {
    if (m->n_sn < 256) return;
    if (!grow((void **)&m->remap, &m->cap_remap, m->n_sn, sizeof *m->remap)) {
        mt_clear_error(); /* compaction is an optimisation; the arena stays valid */
        return;
    }
    for (size_t i = 0; i < m->n_sn; i++) m->remap[i] = -1;
    /* Live nodes, copied in index order: a parent always precedes its children. */
    for (int i = 0; i < m->cur.n; i++)
        for (int32_t s = m->cur.p[i].stk; s >= 0 && m->remap[s] != -2; s = m->sn[s].parent)
            m->remap[s] = -2;
    size_t n = 0;
    for (size_t i = 0; i < m->n_sn; i++) {
        if (m->remap[i] != -2) continue;
        snode x = m->sn[i];
        x.parent = x.parent < 0 ? -1 : m->remap[x.parent];
        m->remap[i] = (int32_t)n;
        m->sn[n++] = x;
    }
    for (int i = 0; i < m->cur.n; i++)
        if (m->cur.p[i].stk >= 0) m->cur.p[i].stk = m->remap[m->cur.p[i].stk];
    m->n_sn = n;
}

mt_status mt_gmatch_clone(const mt_gmatch *m, mt_gmatch **out) {
    mt_gmatch *c;
    mt_status st = matcher_alloc(m->g, m->ix, m->cache, &c);
    if (st) return st;
    if (!copy_pset(&c->cur, &m->cur) ||
        !grow((void **)&c->sn, &c->cap_sn, m->n_sn ? m->n_sn : 1, sizeof *c->sn)) {
        mt_gmatch_free(c);
        return MT_ERR_NOMEM;
    }
    if (m->n_sn) memcpy(c->sn, m->sn, m->n_sn * sizeof *c->sn);
    c->n_sn = m->n_sn;
    *out = c;
    return MT_OK;
}

mt_status mt_gmatch_accept_bytes(mt_gmatch *m, const void *bytes, size_t len) {
    const uint8_t *s = bytes;
    const size_t mark = m->n_sn;
    if (!copy_pset(&m->a, &m->cur)) return MT_ERR_NOMEM;
    for (size_t k = 0; k < len; k++) {
        advance(m, &m->a, s[k], &m->b);
        const pset t = m->a;
        m->a = m->b;
        m->b = t;
        if (m->oom || (!m->a.n && !m->a.accept)) {
            m->n_sn = mark;
            if (m->oom) {
                m->oom = 0;
                return mt_fail(MT_ERR_NOMEM, "grammar: out of memory");
            }
            return mt_fail(MT_ERR_ARG, "grammar: byte %zu of %zu (0x%02x) is not allowed here",
                           k + 1, len, s[k]);
        }
    }
    const pset t = m->cur;
    m->cur = m->a;
    m->a = t;
    compact(m);
    return MT_OK;
}

mt_status mt_gmatch_accept(mt_gmatch *m, int32_t id) {
    const mt_token_index *ix = m->ix;
    if (id < 0 || id >= ix->n || ix->off[id + 1] == ix->off[id])
        return mt_fail(MT_ERR_ARG, "grammar: token %d is never allowed", (int)id);
    mt_status st =
        mt_gmatch_accept_bytes(m, ix->bytes + ix->off[id], ix->off[id + 1] - ix->off[id]);
    if (st == MT_ERR_ARG)
        return mt_fail(MT_ERR_ARG, "grammar: token %d is not allowed here", (int)id);
    return st;
}

mt_status mt_gmatch_fill_mask(mt_gmatch *m, uint64_t *bits) {
    const size_t w = (size_t)m->ix->words;
    memset(bits, 0, w * sizeof *bits);
    for (int i = 0; i < m->cur.n; i++) {
        const parse *p = &m->cur.p[i];
        uint64_t h;
        const uint32_t len = parse_key(m, p, m->key, &h);
        const uint64_t *mask = cache_find(m->cache, m->key, len, h);
        if (!mask) {
            uint64_t *slot = cache_insert(m->cache, m->key, len, h);
            if (!slot) return MT_ERR_NOMEM;
            parse_mask(m, p, slot);
            if (m->oom) {
                m->oom = 0;
                cache_clear(m->cache);
                return mt_fail(MT_ERR_NOMEM, "grammar: out of memory");
            }
            mask = slot;
        }
        mt_bits_or(bits, mask, w);
    }
    return MT_OK;
}

mt_status mt_gmatch_mask_logits(mt_gmatch *m, float *logits) {
    mt_status st = mt_gmatch_fill_mask(m, m->bits);
    if (!st) mt_bits_mask_logits(logits, m->bits, m->ix->n);
    return st;
}

int mt_gmatch_can_end(const mt_gmatch *m) {
    return m->cur.accept;
}

int mt_gmatch_must_end(const mt_gmatch *m) {
    return m->cur.accept && m->cur.n == 0;
}

int mt_gmatch_n_parses(const mt_gmatch *m) {
    return m->cur.n;
}
