/* What every expert shares: the canonical form of a request (its cache key) and freeing. */
#include "expert/expert.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/sha256.h"

static cJSON *messages_json(const mt_expert_req *r) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < r->n_msgs; i++) {
        cJSON *m = cJSON_CreateObject();
        if (!m) break;
        cJSON_AddItemToArray(a, m);
        cJSON_AddStringToObject(m, "role", r->msgs[i].role ? r->msgs[i].role : "");
        cJSON_AddStringToObject(m, "content", r->msgs[i].content ? r->msgs[i].content : "");
    }
    return a;
}

/* Key order is fixed by construction; the schema is re-serialised from its parse so that
 * whitespace in the schema text does not change the key. */
char *mt_expert_request_json(const mt_expert *e, const mt_expert_req *r) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "model", e && e->name ? e->name : "");
    cJSON_AddItemToObject(o, "messages", messages_json(r));
    cJSON_AddNumberToObject(o, "max_tokens", r->max_tokens);
    cJSON_AddNumberToObject(o, "temperature", r->temperature);
    if (r->schema_name)
        cJSON_AddStringToObject(o, "schema_name", r->schema_name);
    else
        cJSON_AddNullToObject(o, "schema_name");
    cJSON *schema = r->schema_json ? cJSON_Parse(r->schema_json) : NULL;
    cJSON_AddItemToObject(o, "schema", schema ? schema : cJSON_CreateNull());
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

void mt_expert_request_hash(const mt_expert *e, const mt_expert_req *r, char out[65]) {
    char *s = mt_expert_request_json(e, r);
    /* Out of memory: an all-zero key matches no stored request, so nothing is mis-cached. */
    if (!s) {
        memset(out, '0', 64);
        out[64] = '\0';
        return;
    }
    mt_sha256_hex(s, strlen(s), out);
    free(s);
}

void mt_expert_reply_free(mt_expert_reply *r) {
    if (!r) return;
    free(r->content);
    free(r->error);
    r->content = r->error = NULL;
}

/* Each implementation's free releases its state and the mt_expert itself. */
void mt_expert_free(mt_expert *e) {
    if (e && e->free) e->free(e);
}
