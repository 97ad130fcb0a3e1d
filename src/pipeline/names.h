/* The names a run is stored under: phases, the stages of a phase (each a kind of item
 * in run.db), metrics and pinned settings. Every file that reads or writes them uses
 * these, so a name is spelt once; changing one makes existing run stores unreadable to
 * the new name, so they are fixed. */
#ifndef MT_PIPELINE_NAMES_H
#define MT_PIPELINE_NAMES_H

/* phases */
#define MT_PHASE_DISTILL "phase1"

/* stages of phase 1 */
#define MT_STAGE_GUIDELINE "guideline"
#define MT_STAGE_ANSWER "answer"
#define MT_STAGE_SCORE "score"
#define MT_STAGE_SFT "sft"
/* the one item of the SFT stage */
#define MT_ITEM_ADAPTER "adapter"

/* metrics */
#define MT_METRIC_JUDGE_SCORE_GUIDELINE "judge_score_guideline"
#define MT_METRIC_JUDGE_SCORE_NO_GUIDELINE "judge_score_no_guideline"
#define MT_METRIC_SFT_FIRST_LOSS "sft_first_loss"
#define MT_METRIC_SFT_LAST_LOSS "sft_last_loss"

/* settings a run keeps from its first start */
#define MT_SETTING_DISTILL_MODEL "phase1.model"
#define MT_SETTING_DISTILL_GUIDELINE "phase1.guideline"
#define MT_SETTING_DISTILL_GROUNDED "phase1.grounded"

#endif
