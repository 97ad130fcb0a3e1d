#include "pipeline/evolve_prompts.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "pipeline/prompt_text.h"

const char *const mt_compare_schema =
    "{\"type\":\"object\",\"properties\":{\"better\":{\"type\":\"string\",\"enum\":[\"A\","
    "\"B\"]}},\"required\":[\"better\"],\"additionalProperties\":false}";

char *mt_prompt_compare(const char *question, const char *answer_a, const char *answer_b) {
    return mt_prompt_format(
        "Question:\n%s\n\nAnswer A:\n%s\n\nAnswer B:\n%s\n\nWhich answer is better: more "
        "correct, more complete and clearer? Reply with a JSON object, {\"better\": \"A\"} or "
        "{\"better\": \"B\"}.",
        question, answer_a, answer_b);
}

mt_status mt_compare_parse(const char *json, int *a_better) {
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "better");
    mt_status st = MT_OK;
    if (!cJSON_IsObject(j) || cJSON_GetArraySize(j) != 1 || !cJSON_IsString(b) ||
        (strcmp(b->valuestring, "A") && strcmp(b->valuestring, "B")))
        st = mt_fail(MT_ERR_FORMAT, "not a comparison (want {\"better\": \"A\" or \"B\"}): %.80s",
                     json ? json : "(none)");
    else
        *a_better = !strcmp(b->valuestring, "A");
    cJSON_Delete(j);
    return st;
}
