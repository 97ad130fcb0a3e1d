/* Private to the remote expert (remote*.c): the client, one batch's jobs, and the
 * request-building and response-reading halves of an attempt. */
#ifndef MT_EXPERT_REMOTE_INTERNAL_H
#define MT_EXPERT_REMOTE_INTERNAL_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stddef.h>

#include "core/rng.h"
#include "expert/remote.h"

/* Bodies beyond this are not a chat completion; the transfer is cut (and retried). */
#define MT_REMOTE_MAX_BODY (64u << 20)

typedef struct {
    mt_expert base; /* first, so an mt_expert * is a remote * */
    mt_remote_opts o;
    char *url, *model, *api_key; /* owned copies of the options' strings */
    char *endpoint;              /* url + "/chat/completions" */
    mt_json_mode mode;           /* current: falls back when the server rejects response_format */
    int seen_json;               /* a JSON chat completion came back once: it is OpenAI-like */
    mt_rng rng;
    CURLM *multi;
} remote;

typedef enum { JOB_FRESH, JOB_WAITING, JOB_FLIGHT, JOB_DONE } job_state;

typedef struct {
    char *data;
    size_t len, cap;
} rbuf;

typedef struct {
    int index;
    const mt_expert_req *req;
    cJSON *schema; /* parsed schema_json, or NULL for free text */
    job_state state;
    double due;       /* when JOB_WAITING: monotonic seconds when it may go */
    int retries;      /* transient failures retried so far */
    int repairing;    /* the JSON repair turn is part of the request */
    char *bad_reply;  /* the reply the repair turn quotes */
    char *bad_reason; /* why it was rejected */
    char *last_error;
    mt_expert_reply reply; /* attempts, tokens, status accumulate here */

    /* The attempt in flight. */
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    mt_json_mode sent_mode;
    double t0;
    rbuf resp;
    char content_type[128], retry_after[128];
    long content_length; /* -1: no header */
    char errbuf[CURL_ERROR_SIZE];
} rjob;

/* What one finished attempt means for its job. */
typedef enum {
    OUT_DONE,   /* reply->content is the answer */
    OUT_RETRY,  /* transient: back off and try again */
    OUT_RESEND, /* resend now, not a retry (response_format fallback, JSON repair) */
    OUT_FAIL,   /* this request failed for good */
    OUT_FATAL   /* the endpoint refused us: abort the run */
} outcome_kind;

typedef struct {
    outcome_kind kind;
    char *error;        /* for the attempt log and the failure (malloc'ed; NULL when done) */
    char *content;      /* OUT_DONE: the answer (malloc'ed) */
    double retry_after; /* OUT_RETRY: seconds from Retry-After, or < 0 */
} outcome;

/* remote_run.c: mt_expert.run of the remote expert. */
mt_status mt_remote_run(mt_expert *e, const mt_expert_req *reqs, int n, const mt_expert_cb *cb);

/* remote_request.c: the JSON body of the job's next attempt under `mode` (malloc'ed). */
char *mt_remote_body(const remote *r, const rjob *j, mt_json_mode mode);
/* remote_request.c: a ready easy handle for the job's next attempt, body built. */
mt_status mt_remote_easy(remote *r, rjob *j);

/* remote_response.c: reads a finished attempt (curl result, status, headers, body). */
outcome mt_remote_outcome(remote *r, rjob *j, CURLcode res, long status);

/* remote_response.c: overwrites every copy of the API key in s with '*'. */
void mt_remote_redact(const remote *r, char *s);

/* Seconds on the monotonic clock. */
double mt_remote_now(void);

#endif
