#include "pipeline/refine_prompts.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/prompt_text.h"

const char *const mt_prompt_verdict_system =
    "You are a strict, fair expert judge. You decide whether a student's answer to a domain "
    "question is correct, and when it is not, you explain what is wrong and give short hints, "
    "without writing the answer for the student.";

/* Feedback and hints are bounded so that a constrained local judge's reply always fits
 * the verdict token limit (refine.c's verdict_max_tokens), as the score schema does. */
const char *const mt_verdict_schema =
    "{\"type\":\"object\",\"properties\":{\"verdict\":{\"enum\":[\"correct\",\"incorrect\"]},"
    "\"feedback\":{\"type\":\"string\",\"maxLength\":300},\"hints\":{\"type\":\"array\","
    "\"items\":{\"type\":\"string\",\"maxLength\":120},\"maxItems\":3}},"
    "\"required\":[\"verdict\",\"feedback\",\"hints\"]}";

char *mt_prompt_attempt(const mt_question *q) {
    return mt_prompt_format(
        "Question title: %s\nQuestion content: %s\n\nAnswer the question. First "
        "reason step by step, writing each step on its own line; then give the final "
        "answer on a line starting with \"Final answer:\".",
        mt_or_empty(q->title), mt_or_empty(q->content));
}

char *mt_prompt_revision(const mt_question *q, const char *previous, const mt_verdict *v) {
    char hints[1024] = "";
    size_t used = 0;
    for (int k = 0; k < v->n_hints && used < sizeof hints; k++)
        used += (size_t)snprintf(hints + used, sizeof hints - used, "- %s\n", v->hints[k]);
    return mt_prompt_format(
        "Question title: %s\nQuestion content: %s\n\nYour previous answer:\n%s\n\nAn "
        "expert judged it incorrect.\nFeedback: %s\n%s%s\nWrite a corrected answer. "
        "First reason step by step, writing each step on its own line; then give the "
        "final answer on a line starting with \"Final answer:\".",
        mt_or_empty(q->title), mt_or_empty(q->content), previous, mt_or_empty(v->feedback),
        v->n_hints ? "Hints:\n" : "", hints);
}

char *mt_prompt_verdict(const mt_question *q, const char *attempt, int attempt_number,
                        int max_attempts, const char *reference) {
    /* The first line names the question and a line states the attempt number, so a
     * scripted test expert (and a person reading the request log) can tell them apart. */
    return mt_prompt_format(
        "Question: %s\nQuestion content: %s\n%s%s%s\nAttempt %d of at most %d\n"
        "Student's answer:\n%s\n\nIs the student's answer correct%s? Reply with a JSON object "
        "{\"verdict\": \"correct\" or \"incorrect\", \"feedback\": \"<what is wrong, or why it "
        "is right, in one or two sentences>\", \"hints\": [\"<short hint>\", ...]} with at most "
        "three hints and no hint when the answer is correct.",
        mt_or_empty(q->title), mt_or_empty(q->content), reference ? "\nReference answer:\n" : "",
        mt_or_empty(reference), reference ? "\n" : "", attempt_number, max_attempts, attempt,
        reference ? " (judge it against the reference answer)" : "");
}

static mt_status bad(const char *what) {
    return mt_fail(MT_ERR_FORMAT, "the verdict %s", what);
}

static mt_status parse_hints(const cJSON *h, mt_verdict *v) {
    if (!cJSON_IsArray(h)) return bad("has no array \"hints\"");
    const cJSON *x;
    cJSON_ArrayForEach(x, h) {
        if (!cJSON_IsString(x)) return bad("has a hint that is not a string");
        if (v->n_hints == MT_VERDICT_HINTS_MAX) continue;
        if (!(v->hints[v->n_hints] = strdup(x->valuestring)))
            return mt_fail(MT_ERR_NOMEM, "out of memory");
        v->n_hints++;
    }
    return MT_OK;
}

static mt_status parse_object(const cJSON *j, mt_verdict *v) {
    if (!cJSON_IsObject(j)) return bad("is not a JSON object");
    const cJSON *verdict = cJSON_GetObjectItemCaseSensitive(j, "verdict");
    const cJSON *feedback = cJSON_GetObjectItemCaseSensitive(j, "feedback");
    if (!cJSON_IsString(verdict) ||
        (strcmp(verdict->valuestring, "correct") && strcmp(verdict->valuestring, "incorrect")))
        return bad("has no \"verdict\" of \"correct\" or \"incorrect\"");
    if (!cJSON_IsString(feedback)) return bad("has no string \"feedback\"");
    v->correct = !strcmp(verdict->valuestring, "correct");
    if (!(v->feedback = strdup(feedback->valuestring)))
        return mt_fail(MT_ERR_NOMEM, "out of memory");
    return parse_hints(cJSON_GetObjectItemCaseSensitive(j, "hints"), v);
}

mt_status mt_verdict_parse(const char *json, mt_verdict *out) {
    memset(out, 0, sizeof *out);
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    mt_status st = j ? parse_object(j, out) : bad("is not JSON");
    cJSON_Delete(j);
    if (st) mt_verdict_free(out);
    return st;
}

void mt_verdict_free(mt_verdict *v) {
    free(v->feedback);
    for (int k = 0; k < v->n_hints; k++) free(v->hints[k]);
    memset(v, 0, sizeof *v);
}
