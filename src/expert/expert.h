/* The expert: whoever answers the weak model's questions. One interface, two
 * implementations: a remote OpenAI-compatible endpoint (expert/remote.h) and a local
 * model run in process on meteor's engine (expert/local.h). Requests go in as a batch;
 * replies come back through a callback, in completion order, as each one finishes, so
 * the caller can commit each to the run store the moment it exists. */
#ifndef MT_EXPERT_EXPERT_H
#define MT_EXPERT_EXPERT_H

#include <stdint.h>

#include "core/status.h"
#include "tokenizer/chat.h"

typedef struct {
    const mt_chat_msg *msgs;
    int n_msgs;
    const char *schema_name; /* with schema_json: a JSON reply is wanted */
    const char *schema_json; /* JSON Schema text, or NULL for free text */
    int max_tokens;
    double temperature;
} mt_expert_req;

typedef struct {
    int ok;
    char *content; /* the reply; for schema requests the parsed JSON, compact */
    char *error;   /* why it failed for good, when !ok */
    int64_t prompt_tokens, completion_tokens;
    int attempts;    /* requests sent for it (retries and a JSON repair included) */
    int http_status; /* of the last attempt (0 for the local expert or no response) */
} mt_expert_reply;

typedef struct {
    /* Every attempt, successful or not (http_status 0: no response; error NULL on success). */
    void (*on_attempt)(void *user, int index, int attempt, int http_status, const char *error,
                       double seconds);
    /* Once per request that finished (ok or failed for good); returning non-zero aborts the
     * batch with that status. Not called for requests a budget stop left unsent. */
    mt_status (*on_done)(void *user, int index, const mt_expert_reply *r);
    void *user;
} mt_expert_cb;

typedef struct mt_expert mt_expert;
struct mt_expert {
    const char *name; /* model name recorded with every answer and hashed into requests */
    /* Usage of this process so far (all batches). */
    int64_t requests_sent, prompt_tokens, completion_tokens;
    double cost;
    /* Returns MT_OK when every request finished (each either ok or failed), MT_ERR_BUDGET
     * when a budget stopped dispatching (in-flight requests still finish and are
     * reported), MT_ERR_REMOTE when the endpoint refused for good (401/403, not an
     * OpenAI-compatible endpoint), or the status an on_done returned. */
    mt_status (*run)(mt_expert *e, const mt_expert_req *reqs, int n, const mt_expert_cb *cb);
    void (*free)(mt_expert *e);
    void *impl;
};

/* The cache key of a request: SHA-256 (hex) of its canonical JSON form with the expert's
 * name. Equal requests to the same expert hash equal; anything that changes the reply
 * (messages, schema, max_tokens, temperature, model) changes the hash. */
void mt_expert_request_hash(const mt_expert *e, const mt_expert_req *r, char out[65]);
/* The canonical JSON form of a request (malloc'ed), as stored beside its reply. */
char *mt_expert_request_json(const mt_expert *e, const mt_expert_req *r);

void mt_expert_reply_free(mt_expert_reply *r);
void mt_expert_free(mt_expert *e);

#endif
