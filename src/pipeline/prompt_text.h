/* Helpers the phases' prompt files share: formatting into a new string, absent text. */
#ifndef MT_PIPELINE_PROMPT_TEXT_H
#define MT_PIPELINE_PROMPT_TEXT_H

/* malloc'ed; NULL when out of memory. */
char *mt_prompt_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline const char *mt_or_empty(const char *s) {
    return s ? s : "";
}

#endif
