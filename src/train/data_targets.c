/* Labels and identity of tokenised examples. */
#include "train/data.h"
#include "train/loss.h"

/* Token 0 has no row before it, so it is never a target. */
static int first_trained(const mt_sft_example *e, int train_prompt) {
    int first = train_prompt ? 1 : e->n_prompt;
    return first < 1 ? 1 : first;
}

void mt_example_targets(const mt_sft_example *e, int train_prompt, int32_t *targets) {
    int first = first_trained(e, train_prompt);
    for (int i = 0; i < e->n; i++)
        targets[i] = i + 1 < e->n && i + 1 >= first ? e->tokens[i + 1] : MT_IGNORE_INDEX;
}

int mt_example_n_trained(const mt_sft_example *e, int train_prompt) {
    int n = e->n - first_trained(e, train_prompt);
    return n > 0 ? n : 0;
}

static uint64_t fnv(uint64_t h, uint64_t v) {
    for (int i = 0; i < 8; i++, v >>= 8) h = (h ^ (v & 0xff)) * 0x100000001b3ull;
    return h;
}

static uint64_t hash_example(uint64_t h, const mt_sft_example *e) {
    h = fnv(h, (uint64_t)e->n);
    h = fnv(h, (uint64_t)e->n_prompt);
    for (int i = 0; i < e->n; i++) h = fnv(h, (uint32_t)e->tokens[i]);
    return h;
}

uint64_t mt_dataset_fingerprint(const mt_dataset *d) {
    uint64_t h = fnv(0xcbf29ce484222325ull, (uint64_t)d->kind);
    h = fnv(h, (uint64_t)d->n);
    for (int i = 0; i < d->n; i++) {
        if (d->kind == MT_DATA_PREF) {
            h = hash_example(h, &d->pref[i].chosen);
            h = hash_example(h, &d->pref[i].rejected);
        } else {
            h = hash_example(h, &d->sft[i]);
        }
    }
    return h;
}
