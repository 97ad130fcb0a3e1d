/* The names a run is stored under: phases, the stages of a phase (each a kind of item
 * in run.db), metrics and pinned settings. Every file that reads or writes them uses
 * these, so a name is spelt once; changing one makes existing run stores unreadable to
 * the new name, so they are fixed. */
#ifndef MT_PIPELINE_NAMES_H
#define MT_PIPELINE_NAMES_H

/* phases */
#define MT_PHASE_DISTILL "phase1"
#define MT_PHASE_REFINE "phase2"
#define MT_PHASE_EVOLVE "phase3"

/* stages of phase 1 */
#define MT_STAGE_GUIDELINE "guideline"
#define MT_STAGE_ANSWER "answer"
#define MT_STAGE_SCORE "score"
#define MT_STAGE_SFT "sft"
/* the one item of the SFT stage */
#define MT_ITEM_ADAPTER "adapter"

/* stages of phase 2 (and MT_STAGE_SFT, one item per training round) */
#define MT_STAGE_ATTEMPT "attempt"
#define MT_STAGE_VERDICT "verdict"

/* stages of phase 3, every item keyed by question, round and attempt (mt_item_key) */
#define MT_STAGE_GREEDY "greedy"       /* the cheap answer, a0 */
#define MT_STAGE_SAMPLE "sample"       /* best-of-n's samples, a1..aN */
#define MT_STAGE_EXPENSIVE "expensive" /* the expensive answer, a0 */
#define MT_STAGE_CHECK "check"     /* the model's own comparison: a1 expensive first, a2 second */
#define MT_STAGE_PAIR "pair"       /* the pair and its log-probs before training, a0 */
#define MT_STAGE_RESCORE "rescore" /* its log-probs after the round's training, a0 */
#define MT_STAGE_PREF "pref"       /* preference training, one item per round */

/* metrics */
#define MT_METRIC_JUDGE_SCORE_GUIDELINE "judge_score_guideline"
#define MT_METRIC_JUDGE_SCORE_NO_GUIDELINE "judge_score_no_guideline"
#define MT_METRIC_SFT_FIRST_LOSS "sft_first_loss"
#define MT_METRIC_SFT_LAST_LOSS "sft_last_loss"

/* phase 2: over the whole phase, and per adapter version r (MT_METRIC_VERSION_FMT) */
#define MT_METRIC_ACCEPTED "accepted"
#define MT_METRIC_NEVER_ACCEPTED "never_accepted"
#define MT_METRIC_TRAINING_ROUNDS "training_rounds"
#define MT_METRIC_FIRST_ATTEMPT_ACCEPTANCE "first_attempt_acceptance"
#define MT_METRIC_MEAN_ATTEMPTS "mean_attempts"
#define MT_METRIC_VERDICT_FAILURES "verdict_failures"
#define MT_METRIC_ACCEPTED_AFTER_REVISIONS_FMT "accepted_after_%d_revisions"
#define MT_METRIC_QUESTIONS "questions"
#define MT_METRIC_VERSION_FMT "r%d.%s"
#define MT_METRIC_ROUND_FIRST_LOSS_FMT "sft_round%d_first_loss"
#define MT_METRIC_ROUND_LAST_LOSS_FMT "sft_round%d_last_loss"

/* phase 3: per round r (MT_METRIC_VERSION_FMT), and over the phase */
#define MT_METRIC_ROUNDS "rounds"
#define MT_METRIC_PAIRS_KEPT "pairs_kept"
#define MT_METRIC_DROPPED_IDENTICAL "dropped_identical"
#define MT_METRIC_DROPPED_EMPTY "dropped_empty"
#define MT_METRIC_DROPPED_SELF_CHECK "dropped_self_check"
#define MT_METRIC_CHOSEN_LOGP_BEFORE "chosen_logp_before"
#define MT_METRIC_CHOSEN_LOGP_AFTER "chosen_logp_after"
#define MT_METRIC_REJECTED_LOGP_BEFORE "rejected_logp_before"
#define MT_METRIC_REJECTED_LOGP_AFTER "rejected_logp_after"
#define MT_METRIC_MARGIN_BEFORE "margin_before"
#define MT_METRIC_MARGIN_AFTER "margin_after"
/* the mean log-prob of the round's expensive answers (all questions) before and after */
#define MT_METRIC_EXPENSIVE_LOGP_BEFORE "expensive_logp_before"
#define MT_METRIC_EXPENSIVE_LOGP_AFTER "expensive_logp_after"
/* share of questions whose greedy answer equals the round's expensive one, with the
 * round's starting adapter and with the adapter it trained */
#define MT_METRIC_GREEDY_IS_EXPENSIVE_BEFORE "greedy_equals_expensive_before"
#define MT_METRIC_GREEDY_IS_EXPENSIVE_AFTER "greedy_equals_expensive_after"
#define MT_METRIC_PREF_ROUND_FIRST_LOSS_FMT "pref_round%d_first_loss"
#define MT_METRIC_PREF_ROUND_LAST_LOSS_FMT "pref_round%d_last_loss"

/* settings a run keeps from its first start */
#define MT_SETTING_DISTILL_MODEL "phase1.model"
#define MT_SETTING_DISTILL_GUIDELINE "phase1.guideline"
#define MT_SETTING_DISTILL_GROUNDED "phase1.grounded"
#define MT_SETTING_REFINE_MODEL "phase2.model"
#define MT_SETTING_REFINE_START "phase2.start_adapter"
#define MT_SETTING_REFINE_GROUNDED "phase2.grounded"
#define MT_SETTING_REFINE_SCHEDULE "phase2.schedule"
#define MT_SETTING_EVOLVE_MODEL "phase3.model"
#define MT_SETTING_EVOLVE_START "phase3.start_adapter"
#define MT_SETTING_EVOLVE_SCHEDULE "phase3.schedule"

/* the evaluation (meteor eval): items of stages MT_STAGE_ANSWER and MT_STAGE_NLL keyed
 * "qid/model"; metrics "model.name" for each model evaluated */
#define MT_PHASE_EVAL "eval"
#define MT_STAGE_NLL "nll" /* mean token NLL of the question's reference answer */
#define MT_METRIC_REFERENCE_NLL "reference_nll"
#define MT_METRIC_REFERENCE_NLL_CI_LOW "reference_nll_ci_low"
#define MT_METRIC_REFERENCE_NLL_CI_HIGH "reference_nll_ci_high"
#define MT_METRIC_REFERENCE_NLL_VS_BASE "reference_nll_vs_base"
#define MT_METRIC_REFERENCE_NLL_VS_BASE_CI_LOW "reference_nll_vs_base_ci_low"
#define MT_METRIC_REFERENCE_NLL_VS_BASE_CI_HIGH "reference_nll_vs_base_ci_high"
#define MT_SETTING_EVAL "eval.settings"

#endif
