/* The remote expert: any OpenAI-compatible /v1/chat/completions endpoint over libcurl
 * multi, with N requests in flight, timeouts, retries with exponential backoff and jitter
 * (timeouts, connection errors, truncated or invalid bodies, 429 and 5xx, honouring
 * Retry-After), structured output with a tolerant JSON parser and one repair request,
 * token and cost accounting, and request/cost budgets. */
#ifndef MT_EXPERT_REMOTE_H
#define MT_EXPERT_REMOTE_H

#include "expert/expert.h"

typedef enum {
    MT_JSON_MODE_SCHEMA = 0, /* response_format {"type":"json_schema",...} (OpenAI) */
    MT_JSON_MODE_OBJECT,     /* {"type":"json_object","schema":...} (llama.cpp's server) */
    MT_JSON_MODE_NONE        /* schema only described in the prompt */
} mt_json_mode;

typedef struct {
    const char *url;     /* base, e.g. "http://127.0.0.1:8080/v1"; "/chat/completions" appended */
    const char *model;   /* "model" field of every request */
    const char *api_key; /* Bearer token or NULL; never logged or stored */
    int concurrency;     /* requests in flight (>= 1) */
    double timeout_s;    /* whole request */
    double connect_timeout_s;
    int max_retries; /* retries per request after the first attempt */
    double backoff_base_s, backoff_max_s;
    mt_json_mode json_mode;
    double cost_per_1k_prompt, cost_per_1k_completion;
    double max_cost;      /* 0: no limit */
    int64_t max_requests; /* 0: no limit (counts every HTTP request sent) */
    double spent_cost;    /* already spent by earlier runs of the same run directory */
    int64_t spent_requests;
    uint64_t seed; /* jitter */
} mt_remote_opts;

mt_remote_opts mt_remote_defaults(void);
/* Validates the options (URL scheme, model present, ranges) and makes the expert. */
mt_status mt_expert_remote_new(const mt_remote_opts *o, mt_expert **out);

#endif
