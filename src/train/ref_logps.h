/* DPO's reference log-probabilities: computed with the starting model, before any update,
 * and kept on disk (ref_logps.json in the run folder) so no second model sits in memory
 * and a resumed run reuses them instead of recomputing with trained weights.
 *
 * Only the pairs the run's planned micro-batches visit are scored (--max-steps may stop
 * well before an epoch ends), in those micro-batches' groups, sequences end to end as the
 * trainer lays them. In precise mode a row's arithmetic does not depend on the other rows
 * of its batch (only F16/BF16 weights take another kernel in a pass of at most 16 tokens),
 * so the values are those of scoring each pair alone, and the first step's policy
 * log-probs equal them. The file holds null for pairs never scored; a resumed run scores
 * the ones it needs that are missing. */
#ifndef MT_TRAIN_REF_LOGPS_H
#define MT_TRAIN_REF_LOGPS_H

#include "train/trainer.h"

typedef struct {
    int n;
    double *chosen, *rejected; /* per pair: summed answer log-prob under the reference */
    unsigned char *have;       /* per pair: whether it was scored */
    int n_have;                /* pairs scored, here or by an earlier run of the folder */
} mt_ref_logps;

/* Makes sure every pair that the first n_micro micro-batches of the batch plan visit has
 * its reference values: a fresh run (o->resume == 0) scores them all; a resumed one reads
 * ref_logps.json and scores only what it lacks (none, unless the file is missing or was
 * written for other data or targets). New values are written atomically. m must be the
 * starting model: on resume call this before the checkpoint is loaded. ckpt: the
 * trainer's per-layer recompute flags (the same memory as a training step), or NULL. */
mt_status mt_ref_logps_prepare(const mt_model *m, const mt_dataset *d, const mt_train_opts *o,
                               const unsigned char *ckpt, int64_t n_micro, mt_ref_logps *out);
void mt_ref_logps_free(mt_ref_logps *r);

#endif
