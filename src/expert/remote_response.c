/* The response half of an attempt: what a finished transfer means (an answer, a transient
 * failure worth a retry, a request the server will never accept, or an endpoint that
 * refuses us), token accounting, and the structured-output check. Every text taken from
 * the server passes through mt_remote_redact before it can reach a log or an error. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "expert/json_reply.h"
#include "expert/remote_internal.h"
#include "expert/retry.h"

#define EXCERPT_MAX 200

double mt_remote_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void mt_remote_redact(const remote *r, char *s) {
    if (!s || !r->api_key) return;
    const size_t k = strlen(r->api_key);
    for (char *p = s; (p = strstr(p, r->api_key)) != NULL; p += k) memset(p, '*', k);
}

static char *vformat(const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    const int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static outcome make(outcome_kind kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static outcome make(outcome_kind kind, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    outcome o = {.kind = kind, .error = vformat(fmt, ap), .retry_after = -1};
    va_end(ap);
    return o;
}

/* One line of at most EXCERPT_MAX bytes (cut at a UTF-8 boundary), key redacted first so
 * that no cut can leave part of it. */
static void excerpt(const remote *r, const char *text, char out[EXCERPT_MAX + 4]) {
    char *copy = strdup(text ? text : "");
    if (!copy) {
        out[0] = '\0';
        return;
    }
    mt_remote_redact(r, copy);
    size_t k = 0;
    int space = 0;
    const char *p = copy;
    for (; *p && k < EXCERPT_MAX; p++) {
        const int ws = isspace((unsigned char)*p) || (unsigned char)*p < 0x20;
        if (ws && (space || k == 0)) continue;
        out[k++] = ws ? ' ' : *p;
        space = ws;
    }
    if (*p) { /* cut: drop a partial code point, then mark the cut */
        if (((unsigned char)*p & 0xC0) == 0x80) {
            while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0x80) k--;
            if (k > 0) k--;
        }
        memcpy(out + k, "...", 3);
        k += 3;
    }
    while (k > 0 && out[k - 1] == ' ') k--;
    out[k] = '\0';
    free(copy);
}

/* The server's own words: error.message, error, detail or message of a JSON body, or the
 * body's text. */
static void server_message(const remote *r, const rjob *j, const cJSON *body,
                           char out[EXCERPT_MAX + 4]) {
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(body, "error");
    const cJSON *pick = cJSON_GetObjectItemCaseSensitive(err, "message");
    if (!cJSON_IsString(pick)) pick = cJSON_IsString(err) ? err : NULL;
    if (!pick) pick = cJSON_GetObjectItemCaseSensitive(body, "detail");
    if (!pick) pick = cJSON_GetObjectItemCaseSensitive(body, "message");
    if (cJSON_IsString(pick)) {
        excerpt(r, pick->valuestring, out);
    } else if (pick) {
        char *s = cJSON_PrintUnformatted(pick);
        excerpt(r, s, out);
        free(s);
    } else {
        excerpt(r, j->resp.data, out);
    }
    if (!out[0]) snprintf(out, EXCERPT_MAX + 4, "empty body");
}

/* A usage count as the server wrote it; nonsense (negative, absurd) counts as 0. */
static int64_t token_count(const cJSON *v) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0 && v->valuedouble < 1e15)) return 0;
    return (int64_t)v->valuedouble;
}

static void account_usage(remote *r, rjob *j, const cJSON *body) {
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(body, "usage");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
    const int64_t p = token_count(pt), c = token_count(ct);
    j->reply.prompt_tokens += p;
    j->reply.completion_tokens += c;
    r->base.prompt_tokens += p;
    r->base.completion_tokens += c;
    r->base.cost += p / 1000.0 * r->o.cost_per_1k_prompt + c / 1000.0 * r->o.cost_per_1k_completion;
}

static outcome transfer_error(const remote *r, rjob *j, CURLcode res) {
    char why[CURL_ERROR_SIZE + 64];
    snprintf(why, sizeof why, "%s", j->errbuf[0] ? j->errbuf : curl_easy_strerror(res));
    mt_remote_redact(r, why);
    switch (res) {
    case CURLE_OPERATION_TIMEDOUT:
        return make(OUT_RETRY, "timeout: %s", why);
    case CURLE_PARTIAL_FILE:
        return make(OUT_RETRY, "truncated response: %s", why);
    case CURLE_GOT_NOTHING:
        return make(OUT_RETRY, "connection closed without a response: %s", why);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return make(OUT_FATAL, "bad expert URL %s: %s", r->url, why);
    default:
        return make(OUT_RETRY, "connection error: %s", why);
    }
}

/* llama-cpp-python answers json_schema with 500 "Input should be 'text' or 'json_object'"
 * (its error names response_format); older servers reject the field outright. */
static int rejects_response_format(const rjob *j) {
    const char *b = j->resp.data;
    if (!j->schema || j->sent_mode == MT_JSON_MODE_NONE || !b) return 0;
    return strstr(b, "response_format") ||
           (j->sent_mode == MT_JSON_MODE_SCHEMA && strstr(b, "json_schema"));
}

static const char *mode_name(mt_json_mode m) {
    return m == MT_JSON_MODE_SCHEMA   ? "json_schema"
           : m == MT_JSON_MODE_OBJECT ? "json_object"
                                      : "none";
}

static outcome fall_back(remote *r, const rjob *j, long status, const char *msg) {
    /* Requests in flight together all fail alike: only the first one steps the mode down. */
    if (r->mode == j->sent_mode) {
        r->mode = j->sent_mode + 1;
        MT_WARN("expert: %s rejected response_format %s (HTTP %ld); falling back to %s", r->url,
                mode_name(j->sent_mode), status, mode_name(r->mode));
    }
    return make(OUT_RESEND, "HTTP %ld: response_format %s rejected (%s); resending with %s", status,
                mode_name(j->sent_mode), msg, mode_name(r->mode));
}

static outcome http_error(remote *r, rjob *j, long status, mt_http_class c, const cJSON *body) {
    char msg[EXCERPT_MAX + 4];
    server_message(r, j, body, msg);
    if ((c == MT_HTTP_FAIL || c == MT_HTTP_RETRY) && rejects_response_format(j))
        return fall_back(r, j, status, msg);
    if (c == MT_HTTP_REFUSED)
        return make(OUT_FATAL, "expert at %s refused the %s (HTTP %ld: %s)", r->url,
                    r->api_key ? "API key" : "request without an API key", status, msg);
    if (c == MT_HTTP_NOT_OPENAI)
        return make(OUT_FATAL, "%s is not an OpenAI-compatible endpoint (HTTP %ld for POST %s: %s)",
                    r->url, status, r->endpoint, msg);
    outcome o = make(c == MT_HTTP_RETRY ? OUT_RETRY : OUT_FAIL, "HTTP %ld: %s", status, msg);
    double ra;
    if (c == MT_HTTP_RETRY && mt_retry_after_parse(j->retry_after, (double)time(NULL), &ra))
        o.retry_after = ra;
    return o;
}

/* A chat completion arrived: free text as is; for a schema request the JSON found in it,
 * checked, or one repair turn asking again. */
static outcome answer(rjob *j, const char *content) {
    if (!j->schema) return (outcome){.kind = OUT_DONE, .content = strdup(content)};
    cJSON *v = NULL;
    mt_status st = mt_json_reply_parse(content, &v);
    if (!st) st = mt_json_schema_check(j->schema, v);
    if (!st) {
        outcome o = {.kind = OUT_DONE, .content = cJSON_PrintUnformatted(v)};
        cJSON_Delete(v);
        return o;
    }
    cJSON_Delete(v);
    const char *why = mt_last_error();
    if (j->repairing)
        return make(OUT_FAIL,
                    "reply is still not JSON matching the schema after a repair "
                    "request: %s",
                    why);
    free(j->bad_reply);
    free(j->bad_reason);
    j->bad_reply = strdup(content);
    j->bad_reason = strdup(why);
    j->repairing = 1;
    return make(OUT_RESEND, "reply is not JSON matching the schema: %s; asking for a repair", why);
}

static outcome http_success(remote *r, rjob *j, const cJSON *body) {
    const char *ct = j->content_type;
    if (ct[0] && !strcasestr(ct, "json")) {
        if (!r->seen_json)
            return make(OUT_FATAL,
                        "%s is not an OpenAI-compatible endpoint (HTTP 200 with Content-Type %s "
                        "for POST %s)",
                        r->url, ct, r->endpoint);
        return make(OUT_RETRY, "the response is not JSON (Content-Type %s)", ct);
    }
    if (j->content_length >= 0 && (size_t)j->content_length != j->resp.len)
        return make(OUT_RETRY, "truncated response: %zu of %ld bytes", j->resp.len,
                    j->content_length);
    if (!body)
        return make(OUT_RETRY, "the response body is not valid JSON (%zu bytes)", j->resp.len);
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(body, "choices"), 0);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(choice, "message"), "content");
    if (!cJSON_IsString(content)) {
        char msg[EXCERPT_MAX + 4];
        server_message(r, j, body, msg);
        return make(OUT_RETRY, "the response has no choices[0].message.content (%s)", msg);
    }
    r->seen_json = 1;
    return answer(j, content->valuestring);
}

outcome mt_remote_outcome(remote *r, rjob *j, CURLcode res, long status) {
    if (res != CURLE_OK) return transfer_error(r, j, res);
    cJSON *body = j->resp.data ? cJSON_ParseWithLength(j->resp.data, j->resp.len) : NULL;
    account_usage(r, j, body);
    const mt_http_class c = mt_http_classify(status);
    outcome o = c == MT_HTTP_SUCCESS ? http_success(r, j, body) : http_error(r, j, status, c, body);
    cJSON_Delete(body);
    mt_remote_redact(r, o.error); /* belt and braces: excerpts are redacted already */
    return o;
}
