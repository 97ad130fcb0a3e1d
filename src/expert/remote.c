/* The remote expert's options and lifetime: defaults, validation, making and freeing the
 * client. The batch loop is in remote_run.c. */
#include "expert/remote.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "expert/remote_internal.h"

mt_remote_opts mt_remote_defaults(void) {
    return (mt_remote_opts){.concurrency = 4,
                            .timeout_s = 120,
                            .connect_timeout_s = 10,
                            .max_retries = 6,
                            .backoff_base_s = 1,
                            .backoff_max_s = 60,
                            .json_mode = MT_JSON_MODE_SCHEMA};
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void init_curl(void) {
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int positive(double x) {
    return isfinite(x) && x > 0;
}

static int non_negative(double x) {
    return isfinite(x) && x >= 0;
}

static mt_status validate(const mt_remote_opts *o) {
    if (!o->url || (strncasecmp(o->url, "http://", 7) && strncasecmp(o->url, "https://", 8)))
        return mt_fail(MT_ERR_ARG, "expert URL must start with http:// or https:// (got \"%s\")",
                       o->url ? o->url : "");
    const char *host = strstr(o->url, "://") + 3;
    if (!*host || *host == '/') return mt_fail(MT_ERR_ARG, "expert URL \"%s\" has no host", o->url);
    if (!o->model || !*o->model)
        return mt_fail(MT_ERR_ARG, "expert model name is missing (--expert-model NAME)");
    if (o->concurrency < 1 || o->concurrency > 256)
        return mt_fail(MT_ERR_ARG, "expert concurrency must be 1..256 (got %d)", o->concurrency);
    if (!positive(o->timeout_s) || !positive(o->connect_timeout_s))
        return mt_fail(MT_ERR_ARG, "expert timeouts must be > 0 s (got %g and %g)", o->timeout_s,
                       o->connect_timeout_s);
    if (o->max_retries < 0 || o->max_retries > 100)
        return mt_fail(MT_ERR_ARG, "expert retries must be 0..100 (got %d)", o->max_retries);
    if (!non_negative(o->backoff_base_s) || !non_negative(o->backoff_max_s))
        return mt_fail(MT_ERR_ARG, "expert backoff must be >= 0 s (got %g and %g)",
                       o->backoff_base_s, o->backoff_max_s);
    if (o->json_mode < MT_JSON_MODE_SCHEMA || o->json_mode > MT_JSON_MODE_NONE)
        return mt_fail(MT_ERR_ARG, "bad expert JSON mode %d", (int)o->json_mode);
    if (!non_negative(o->cost_per_1k_prompt) || !non_negative(o->cost_per_1k_completion) ||
        !non_negative(o->max_cost) || !non_negative(o->spent_cost))
        return mt_fail(MT_ERR_ARG, "expert costs and budgets must be >= 0");
    if (o->max_requests < 0 || o->spent_requests < 0)
        return mt_fail(MT_ERR_ARG, "expert request budget must be >= 0");
    return MT_OK;
}

/* "{url}/chat/completions"; a URL that already names the endpoint is taken as it is. */
static char *endpoint_of(const char *url) {
    static const char tail[] = "/chat/completions";
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/') n--;
    const size_t t = sizeof tail - 1;
    const int has = n >= t && !strncmp(url + n - t, tail, t);
    char *s = malloc(n + (has ? 0 : t) + 1);
    if (!s) return NULL;
    memcpy(s, url, n);
    memcpy(s + n, has ? "" : tail, has ? 1 : t + 1);
    return s;
}

static void wipe_free(char *s) {
    if (!s) return;
    volatile char *p = s;
    while (*p) *p++ = 0;
    free(s);
}

static void remote_free(mt_expert *e) {
    if (!e) return;
    remote *r = (remote *)e;
    if (r->multi) curl_multi_cleanup(r->multi);
    free(r->url);
    free(r->model);
    wipe_free(r->api_key);
    free(r->endpoint);
    free(r);
}

mt_status mt_expert_remote_new(const mt_remote_opts *o, mt_expert **out) {
    *out = NULL;
    mt_status st = validate(o);
    if (st) return st;
    pthread_once(&curl_once, init_curl);
    if (curl_init_result != CURLE_OK)
        return mt_fail(MT_ERR_INTERNAL, "curl_global_init failed: %s",
                       curl_easy_strerror(curl_init_result));
    remote *r = mt_calloc(1, sizeof *r);
    if (!r) return MT_ERR_NOMEM;
    r->o = *o;
    r->url = strdup(o->url);
    r->model = strdup(o->model);
    r->api_key = o->api_key && *o->api_key ? strdup(o->api_key) : NULL;
    r->endpoint = endpoint_of(o->url);
    r->multi = curl_multi_init();
    /* The option struct keeps no borrowed strings: the caller's may go away. */
    r->o.url = r->o.model = r->o.api_key = NULL;
    if (!r->url || !r->model || (o->api_key && *o->api_key && !r->api_key) || !r->endpoint ||
        !r->multi) {
        remote_free(&r->base);
        return mt_fail(MT_ERR_NOMEM, "out of memory making the remote expert");
    }
    r->mode = o->json_mode;
    mt_rng_seed(&r->rng, o->seed);
    r->base.name = r->model;
    r->base.run = mt_remote_run;
    r->base.free = remote_free;
    r->base.impl = r;
    *out = &r->base;
    return MT_OK;
}
