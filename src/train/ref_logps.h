/* DPO's reference log-probabilities: computed once with the starting model, before any
 * update, and kept on disk (ref_logps.json in the run folder) so no second model sits
 * in memory and a resumed run reuses them instead of recomputing with trained weights. */
#ifndef MT_TRAIN_REF_LOGPS_H
#define MT_TRAIN_REF_LOGPS_H

#include "train/trainer.h"

typedef struct {
    int n;
    double *chosen, *rejected; /* per pair: summed answer log-prob under the reference */
} mt_ref_logps;

/* Loads the file when resuming (it must exist and match the data), else computes and
 * writes it atomically. */
mt_status mt_ref_logps_prepare(const mt_model *m, const mt_dataset *d, const mt_train_opts *o,
                               mt_ref_logps *out);
void mt_ref_logps_free(mt_ref_logps *r);

#endif
