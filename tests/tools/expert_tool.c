/* Test tool: runs the remote expert over requests from a JSONL file and prints what the
 * callbacks saw, one JSON object a line:
 *   {"attempt_of":I,"attempt":A,"http_status":S,"error":E|null,"seconds":T}   per attempt
 *   {"index":I,"ok":B,"content":C|null,"error":E|null,"attempts":A,"http_status":S,
 *    "prompt_tokens":P,"completion_tokens":C}                                 per request done
 *   {"summary":true,"status":"ok"|..., "error":E|null,"requests_sent":N,"prompt_tokens":P,
 *    "completion_tokens":C,"cost":X,"done":D}                                 at the end
 * Each request line: {"messages":[{"role","content"}...],"max_tokens":N,"temperature":T,
 * "schema":{...} (optional),"schema_name":"..." (optional)}.
 *   expert_tool REQUESTS.jsonl --url URL --model NAME [--key-env VAR] [--concurrency N]
 *     [--timeout S] [--connect-timeout S] [--retries N] [--backoff-base S] [--backoff-max S]
 *     [--json-mode schema|object|none] [--max-requests N] [--max-cost X] [--cost-prompt X]
 *     [--cost-completion X] [--spent-requests N] [--spent-cost X] [--seed N]
 *     [--abort-after K]   (on_done fails after K replies: tests cancelling a batch)
 * Exit: 0 ok, 3 budget reached, 4 the endpoint refused us, 1 anything else ("error: ..."
 * on stderr for every non-zero exit). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expert/remote.h"
#include "io/file_util.h"

typedef struct {
    cJSON **docs;
    mt_chat_msg **msgs;
    char **schemas;
    mt_expert_req *reqs;
    int n;
} request_set;

typedef struct {
    int done, abort_after;
} tool_state;

static void print_json(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    if (s) printf("%s\n", s);
    fflush(stdout);
    free(s);
    cJSON_Delete(o);
}

static void add_str_or_null(cJSON *o, const char *key, const char *v) {
    if (v)
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static void on_attempt(void *user, int index, int attempt, int http_status, const char *error,
                       double seconds) {
    (void)user;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "attempt_of", index);
    cJSON_AddNumberToObject(o, "attempt", attempt);
    cJSON_AddNumberToObject(o, "http_status", http_status);
    add_str_or_null(o, "error", error);
    cJSON_AddNumberToObject(o, "seconds", seconds);
    print_json(o);
}

static mt_status on_done(void *user, int index, const mt_expert_reply *r) {
    tool_state *t = user;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", index);
    cJSON_AddBoolToObject(o, "ok", r->ok);
    add_str_or_null(o, "content", r->content);
    add_str_or_null(o, "error", r->error);
    cJSON_AddNumberToObject(o, "attempts", r->attempts);
    cJSON_AddNumberToObject(o, "http_status", r->http_status);
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)r->prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)r->completion_tokens);
    print_json(o);
    t->done++;
    if (t->abort_after > 0 && t->done >= t->abort_after)
        return mt_fail(MT_ERR_IO, "stopped by --abort-after %d", t->abort_after);
    return MT_OK;
}

static mt_status parse_request(cJSON *doc, int line, request_set *rs, int i) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(doc, "messages");
    const int n = cJSON_GetArraySize(msgs);
    if (!cJSON_IsArray(msgs) || n == 0)
        return mt_fail(MT_ERR_FORMAT, "line %d: \"messages\" must be a non-empty array", line);
    rs->msgs[i] = calloc((size_t)n, sizeof *rs->msgs[i]);
    for (int k = 0; k < n; k++) {
        const cJSON *m = cJSON_GetArrayItem(msgs, k);
        rs->msgs[i][k].role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
        rs->msgs[i][k].content =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "content"));
    }
    mt_expert_req *r = &rs->reqs[i];
    r->msgs = rs->msgs[i];
    r->n_msgs = n;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(doc, "max_tokens");
    const cJSON *temp = cJSON_GetObjectItemCaseSensitive(doc, "temperature");
    r->max_tokens = cJSON_IsNumber(mt) ? mt->valueint : 256;
    r->temperature = cJSON_IsNumber(temp) ? temp->valuedouble : 0;
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(doc, "schema");
    if (cJSON_IsString(schema)) { /* raw schema text, parsed by the client */
        r->schema_json = rs->schemas[i] = strdup(schema->valuestring);
    } else if (schema && !cJSON_IsNull(schema)) {
        r->schema_json = rs->schemas[i] = cJSON_PrintUnformatted(schema);
    }
    if (r->schema_json) {
        const char *name =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "schema_name"));
        r->schema_name = name ? name : "reply";
    }
    return MT_OK;
}

static mt_status read_requests(const char *path, request_set *rs) {
    char *text = NULL;
    size_t len = 0;
    mt_status st = mt_read_file(path, &text, &len);
    if (st) return st;
    int lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    rs->docs = calloc((size_t)lines, sizeof *rs->docs);
    rs->msgs = calloc((size_t)lines, sizeof *rs->msgs);
    rs->schemas = calloc((size_t)lines, sizeof *rs->schemas);
    rs->reqs = calloc((size_t)lines, sizeof *rs->reqs);
    char *save = NULL;
    int line = 0;
    for (char *l = strtok_r(text, "\n", &save); l && !st; l = strtok_r(NULL, "\n", &save)) {
        line++;
        if (strspn(l, " \t\r") == strlen(l)) continue;
        cJSON *doc = cJSON_Parse(l);
        if (!doc) {
            st = mt_fail(MT_ERR_FORMAT, "%s line %d: not JSON", path, line);
            break;
        }
        rs->docs[rs->n] = doc;
        st = parse_request(doc, line, rs, rs->n);
        rs->n++;
    }
    free(text);
    return st;
}

static void free_requests(request_set *rs) {
    for (int i = 0; i < rs->n; i++) {
        cJSON_Delete(rs->docs[i]);
        free(rs->msgs[i]);
        free(rs->schemas[i]);
    }
    free(rs->docs);
    free(rs->msgs);
    free(rs->schemas);
    free(rs->reqs);
}

static mt_status parse_mode(const char *s, mt_json_mode *m) {
    if (!strcmp(s, "schema"))
        *m = MT_JSON_MODE_SCHEMA;
    else if (!strcmp(s, "object"))
        *m = MT_JSON_MODE_OBJECT;
    else if (!strcmp(s, "none"))
        *m = MT_JSON_MODE_NONE;
    else
        return mt_fail(MT_ERR_ARG, "--json-mode: expected schema, object or none, got \"%s\"", s);
    return MT_OK;
}

static mt_status parse_args(int argc, char **argv, mt_remote_opts *o, tool_state *t,
                            const char **path) {
    *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] != '-') {
            *path = a;
            continue;
        }
        if (i + 1 >= argc) return mt_fail(MT_ERR_ARG, "%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--url"))
            o->url = v;
        else if (!strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--key-env")) {
            o->api_key = getenv(v);
            if (!o->api_key) return mt_fail(MT_ERR_ARG, "environment variable %s is not set", v);
        } else if (!strcmp(a, "--concurrency"))
            o->concurrency = atoi(v);
        else if (!strcmp(a, "--timeout"))
            o->timeout_s = atof(v);
        else if (!strcmp(a, "--connect-timeout"))
            o->connect_timeout_s = atof(v);
        else if (!strcmp(a, "--retries"))
            o->max_retries = atoi(v);
        else if (!strcmp(a, "--backoff-base"))
            o->backoff_base_s = atof(v);
        else if (!strcmp(a, "--backoff-max"))
            o->backoff_max_s = atof(v);
        else if (!strcmp(a, "--json-mode")) {
            mt_status st = parse_mode(v, &o->json_mode);
            if (st) return st;
        } else if (!strcmp(a, "--max-requests"))
            o->max_requests = atoll(v);
        else if (!strcmp(a, "--max-cost"))
            o->max_cost = atof(v);
        else if (!strcmp(a, "--cost-prompt"))
            o->cost_per_1k_prompt = atof(v);
        else if (!strcmp(a, "--cost-completion"))
            o->cost_per_1k_completion = atof(v);
        else if (!strcmp(a, "--spent-requests"))
            o->spent_requests = atoll(v);
        else if (!strcmp(a, "--spent-cost"))
            o->spent_cost = atof(v);
        else if (!strcmp(a, "--seed"))
            o->seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--abort-after"))
            t->abort_after = atoi(v);
        else
            return mt_fail(MT_ERR_ARG, "unknown option %s", a);
    }
    if (!*path)
        return mt_fail(MT_ERR_ARG, "usage: expert_tool REQUESTS.jsonl --url URL --model NAME ...");
    return MT_OK;
}

static const char *status_word(mt_status st) {
    return st == MT_OK           ? "ok"
           : st == MT_ERR_BUDGET ? "budget"
           : st == MT_ERR_REMOTE ? "remote"
                                 : "error";
}

static void print_summary(const mt_expert *e, mt_status st, const char *error, int done) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "summary", 1);
    cJSON_AddStringToObject(o, "status", status_word(st));
    add_str_or_null(o, "error", error);
    cJSON_AddNumberToObject(o, "requests_sent", e ? (double)e->requests_sent : 0);
    cJSON_AddNumberToObject(o, "prompt_tokens", e ? (double)e->prompt_tokens : 0);
    cJSON_AddNumberToObject(o, "completion_tokens", e ? (double)e->completion_tokens : 0);
    cJSON_AddNumberToObject(o, "cost", e ? e->cost : 0);
    cJSON_AddNumberToObject(o, "done", done);
    print_json(o);
}

int main(int argc, char **argv) {
    mt_remote_opts o = mt_remote_defaults();
    tool_state t = {0};
    request_set rs = {0};
    mt_expert *e = NULL;
    const char *path;
    mt_status st = parse_args(argc, argv, &o, &t, &path);
    if (!st) st = read_requests(path, &rs);
    if (!st) st = mt_expert_remote_new(&o, &e);
    int done = 0;
    if (!st) {
        tool_state counter = t;
        mt_expert_cb cb = {.on_attempt = on_attempt, .on_done = on_done, .user = &counter};
        st = e->run(e, rs.reqs, rs.n, &cb);
        done = counter.done;
    }
    char error[1024] = "";
    if (st) snprintf(error, sizeof error, "%s", mt_last_error());
    print_summary(e, st, st ? error : NULL, done);
    if (st) fprintf(stderr, "error: %s\n", error);
    mt_expert_free(e);
    free_requests(&rs);
    return st == MT_OK ? 0 : st == MT_ERR_BUDGET ? 3 : st == MT_ERR_REMOTE ? 4 : 1;
}
