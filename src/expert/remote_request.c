/* The request half of an attempt: the chat completions body (messages, the structured-
 * output form the endpoint accepts, the JSON repair turn) and the curl handle that sends
 * it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "expert/remote_internal.h"

static const char SCHEMA_HINT[] = "Reply with only a JSON object matching this JSON Schema: ";
static const char REPAIR_FMT[] = "Your reply was not valid JSON matching the schema (%s). Reply "
                                 "with only the JSON object.";

static void add_msg(cJSON *msgs, const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role ? role : "user");
    cJSON_AddStringToObject(m, "content", content ? content : "");
    cJSON_AddItemToArray(msgs, m);
}

static char *concat3(const char *a, const char *b, const char *c) {
    const size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
    char *s = malloc(na + nb + nc + 1);
    if (!s) return NULL;
    memcpy(s, a, na);
    memcpy(s + na, b, nb);
    memcpy(s + na + nb, c, nc + 1);
    return s;
}

/* Without response_format the schema travels in the last user message (a new one when
 * there is none), so the model still knows what shape to answer in. */
static void add_messages(cJSON *msgs, const rjob *j, mt_json_mode mode) {
    const mt_expert_req *q = j->req;
    char *schema =
        j->schema && mode == MT_JSON_MODE_NONE ? cJSON_PrintUnformatted(j->schema) : NULL;
    int last_user = -1;
    for (int i = 0; i < q->n_msgs; i++)
        if (q->msgs[i].role && !strcmp(q->msgs[i].role, "user")) last_user = i;
    for (int i = 0; i < q->n_msgs; i++) {
        const char *content = q->msgs[i].content ? q->msgs[i].content : "";
        char *with = i == last_user && schema ? concat3(content, "\n\n", SCHEMA_HINT) : NULL;
        char *full = with ? concat3(with, schema, "") : NULL;
        add_msg(msgs, q->msgs[i].role, full ? full : content);
        free(with);
        free(full);
    }
    if (schema && last_user < 0) {
        char *only = concat3(SCHEMA_HINT, schema, "");
        add_msg(msgs, "user", only);
        free(only);
    }
    free(schema);
    if (j->repairing) {
        char repair[sizeof REPAIR_FMT + 300];
        snprintf(repair, sizeof repair, REPAIR_FMT, j->bad_reason ? j->bad_reason : "?");
        add_msg(msgs, "assistant", j->bad_reply);
        add_msg(msgs, "user", repair);
    }
}

static void add_response_format(cJSON *o, const rjob *j, mt_json_mode mode) {
    if (!j->schema || mode == MT_JSON_MODE_NONE) return;
    cJSON *rf = cJSON_AddObjectToObject(o, "response_format");
    if (mode == MT_JSON_MODE_OBJECT) {
        cJSON_AddStringToObject(rf, "type", "json_object");
        cJSON_AddItemToObject(rf, "schema", cJSON_Duplicate(j->schema, 1));
        return;
    }
    cJSON_AddStringToObject(rf, "type", "json_schema");
    cJSON *js = cJSON_AddObjectToObject(rf, "json_schema");
    cJSON_AddStringToObject(js, "name", j->req->schema_name ? j->req->schema_name : "reply");
    cJSON_AddItemToObject(js, "schema", cJSON_Duplicate(j->schema, 1));
    cJSON_AddBoolToObject(js, "strict", 1);
}

char *mt_remote_body(const remote *r, const rjob *j, mt_json_mode mode) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "model", r->model);
    add_messages(cJSON_AddArrayToObject(o, "messages"), j, mode);
    if (j->req->max_tokens > 0) cJSON_AddNumberToObject(o, "max_tokens", j->req->max_tokens);
    cJSON_AddNumberToObject(o, "temperature", j->req->temperature);
    add_response_format(o, j, mode);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user) {
    rbuf *b = user;
    const size_t n = size * nmemb;
    if (b->len + n + 1 > MT_REMOTE_MAX_BODY) return 0; /* curl fails the transfer */
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* Copies a header's value (trimmed) when the line is "name: value". */
static void header_value(const char *line, size_t n, const char *name, char *out, size_t cap) {
    const size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) || line[k] != ':') return;
    const char *v = line + k + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    const size_t len = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
    memcpy(out, v, len);
    out[len] = '\0';
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *user) {
    rjob *j = user;
    const size_t n = size * nmemb;
    /* A new status line (after a 100 Continue) starts a new set of headers. */
    if (n >= 5 && !strncmp(line, "HTTP/", 5)) {
        j->content_type[0] = j->retry_after[0] = '\0';
        j->content_length = -1;
        return n;
    }
    char len[32] = "";
    header_value(line, n, "content-type", j->content_type, sizeof j->content_type);
    header_value(line, n, "retry-after", j->retry_after, sizeof j->retry_after);
    header_value(line, n, "content-length", len, sizeof len);
    if (len[0]) j->content_length = strtol(len, NULL, 10);
    return n;
}

/* The key goes into curl's header list only; our own copy of the line is wiped. */
static struct curl_slist *make_headers(const remote *r) {
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = h ? curl_slist_append(h, "Accept: application/json") : NULL;
    h = h ? curl_slist_append(h, "Expect:") : NULL;
    if (!h || !r->api_key) return h;
    char *auth = concat3("Authorization: Bearer ", r->api_key, "");
    struct curl_slist *h2 = auth ? curl_slist_append(h, auth) : NULL;
    if (auth) {
        volatile char *p = auth;
        while (*p) *p++ = 0;
        free(auth);
    }
    if (!h2) curl_slist_free_all(h);
    return h2;
}

static void reset_response(rjob *j) {
    j->resp.len = 0;
    if (j->resp.data) j->resp.data[0] = '\0';
    j->content_type[0] = j->retry_after[0] = j->errbuf[0] = '\0';
    j->content_length = -1;
}

static int set_options(const remote *r, rjob *j) {
    CURL *h = j->easy;
    int bad = 0;
    bad |= curl_easy_setopt(h, CURLOPT_URL, r->endpoint) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_POST, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->body) != CURLE_OK;
    bad |=
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(j->body)) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, j->headers) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, &j->resp) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_HEADERDATA, j) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(r->o.timeout_s * 1000 + 0.5)) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                            (long)(r->o.connect_timeout_s * 1000 + 0.5)) != CURLE_OK;
    /* Timeouts by signal would hit the whole process; we run in threads' company. */
    bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_PRIVATE, j) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, j->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "meteor") != CURLE_OK;
    return bad;
}

mt_status mt_remote_easy(remote *r, rjob *j) {
    j->sent_mode = r->mode;
    reset_response(j);
    j->body = mt_remote_body(r, j, j->sent_mode);
    j->headers = j->body ? make_headers(r) : NULL;
    j->easy = j->headers ? curl_easy_init() : NULL;
    if (j->easy && !set_options(r, j)) return MT_OK;
    if (j->easy) curl_easy_cleanup(j->easy);
    curl_slist_free_all(j->headers);
    free(j->body);
    j->easy = NULL;
    j->headers = NULL;
    j->body = NULL;
    return mt_fail(MT_ERR_NOMEM, "expert: out of memory preparing a request");
}
