#include "pipeline/distill_prompts.h"

#include <stdio.h>
#include <stdlib.h>

#include "pipeline/prompt_text.h"

const char *const mt_prompt_expert_system = "You are a professional educational assistant.";
const char *const mt_prompt_judge_system =
    "You are a strict, fair expert judge of answers to domain questions.";
/* The reason is bounded so that a constrained judge's reply always fits its token limit
 * (distill.c's score_max_tokens): even at one token per character, plus the keys, the
 * score and the most whitespace the grammar lets between them. */
const char *const mt_score_schema =
    "{\"type\":\"object\",\"properties\":{\"score\":{\"type\":\"integer\",\"minimum\":1,"
    "\"maximum\":10},\"reason\":{\"type\":\"string\",\"maxLength\":200}},"
    "\"required\":[\"score\",\"reason\"]}";

char *mt_prompt_guideline(const mt_question *q) {
    return mt_prompt_format(
        "Title: %s\nContent: %s\n\nBased on the above, please provide guidelines for "
        "solving this problem: the approach, the steps and the knowledge needed. Do "
        "not write the final answer itself.",
        mt_or_empty(q->title), mt_or_empty(q->content));
}

/* The reference answer is trusted for the facts; the expert still writes its own
 * explanation, so the weak model learns reasoning by the guideline, not a copy. */
static char *grounded_answer(const mt_question *q, const char *guideline) {
    return mt_prompt_format(
        "Question title: %s\nQuestion content: %s\n\nReference answer (trusted: follow "
        "it for the facts, but do not copy it):\n%s\n\n%s%s%sPlease provide a "
        "detailed, accurate answer to the question in your own words that agrees with "
        "the reference answer%s and includes the necessary reasoning steps.",
        mt_or_empty(q->title), mt_or_empty(q->content), q->reference,
        guideline ? "Guideline:\n" : "", guideline ? guideline : "", guideline ? "\n\n" : "",
        guideline ? ", follows the guideline" : "");
}

char *mt_prompt_answer(const mt_question *q, const char *guideline, int grounded) {
    if (grounded && q->reference && q->reference[0]) return grounded_answer(q, guideline);
    if (!guideline)
        return mt_prompt_format(
            "Question title: %s\nQuestion content: %s\n\nPlease provide a detailed, "
            "accurate answer to the question that includes the necessary reasoning "
            "steps.",
            mt_or_empty(q->title), mt_or_empty(q->content));
    return mt_prompt_format(
        "Question title: %s\nQuestion content: %s\n\nGuideline:\n%s\n\nPlease provide "
        "a detailed, accurate answer to the question that follows the guideline and "
        "includes the necessary reasoning steps.",
        mt_or_empty(q->title), mt_or_empty(q->content), guideline);
}

char *mt_prompt_score(const mt_question *q, const char *answer) {
    return mt_prompt_format(
        "Question title: %s\nQuestion content: %s\n%s%s%s\nAnswer to evaluate:\n%s\n\n"
        "Rate the quality of this answer from 1 (useless or wrong) to 10 (accurate, "
        "complete and clear). Reply with a JSON object {\"score\": <integer 1-10>, "
        "\"reason\": \"<one sentence>\"}.",
        mt_or_empty(q->title), mt_or_empty(q->content), q->reference ? "\nReference answer:\n" : "",
        mt_or_empty(q->reference), q->reference ? "\n" : "", answer);
}
