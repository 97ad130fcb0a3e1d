/* Test tool: loads a training JSONL file the way `meteor train` does and prints each
 * example's tokens and loss mask as JSON, so Python oracles can compare them with
 * transformers' chat templates.
 *   data_dump MODEL FILE.jsonl [--max-len N] [--train-prompt] [--chat FAMILY]
 *   -> {"kind":"sft"|"preference","family":..,"n_records":..,"n":..,"n_truncated":..,
 *       "n_dropped":..,"fingerprint":"hex","examples":[{"line":..,"tokens":[..],
 *       "mask":[..],"n_prompt":..,"truncated":bool} | {"line":..,"chosen":{..},
 *       "rejected":{..}}]}
 * mask[i] is 1 when token i is a training target (derived from mt_example_targets).
 * A failure prints "data_dump: <message>" on stderr and exits 1. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/data.h"
#include "train/loss.h"

static cJSON *example_json(const mt_sft_example *e, int train_prompt) {
    int32_t *targets = malloc(sizeof *targets * (size_t)e->n);
    int *mask = malloc(sizeof *mask * (size_t)e->n);
    int *tokens = malloc(sizeof *tokens * (size_t)e->n);
    if (!targets || !mask || !tokens) {
        fprintf(stderr, "data_dump: out of memory\n");
        exit(1);
    }
    mt_example_targets(e, train_prompt, targets);
    for (int i = 0; i < e->n; i++) {
        tokens[i] = e->tokens[i];
        mask[i] = i > 0 && targets[i - 1] != MT_IGNORE_INDEX;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "line", e->line);
    cJSON_AddItemToObject(o, "tokens", cJSON_CreateIntArray(tokens, e->n));
    cJSON_AddItemToObject(o, "mask", cJSON_CreateIntArray(mask, e->n));
    cJSON_AddNumberToObject(o, "n_prompt", e->n_prompt);
    cJSON_AddNumberToObject(o, "n_trained", mt_example_n_trained(e, train_prompt));
    cJSON_AddBoolToObject(o, "truncated", e->truncated);
    free(targets);
    free(mask);
    free(tokens);
    return o;
}

static cJSON *dataset_json(const mt_dataset *d, mt_chat_family fam, int train_prompt) {
    cJSON *root = cJSON_CreateObject(), *ex = cJSON_CreateArray();
    char fp[32];
    snprintf(fp, sizeof fp, "%016" PRIx64, mt_dataset_fingerprint(d));
    cJSON_AddStringToObject(root, "kind", d->kind == MT_DATA_PREF ? "preference" : "sft");
    cJSON_AddStringToObject(root, "family", mt_chat_family_name(fam));
    cJSON_AddNumberToObject(root, "n_records", d->n_records);
    cJSON_AddNumberToObject(root, "n", d->n);
    cJSON_AddNumberToObject(root, "n_truncated", d->n_truncated);
    cJSON_AddNumberToObject(root, "n_dropped", d->n_dropped);
    cJSON_AddStringToObject(root, "fingerprint", fp);
    for (int i = 0; i < d->n; i++) {
        if (d->kind == MT_DATA_PREF) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "line", d->pref[i].chosen.line);
            cJSON_AddItemToObject(p, "chosen", example_json(&d->pref[i].chosen, train_prompt));
            cJSON_AddItemToObject(p, "rejected", example_json(&d->pref[i].rejected, train_prompt));
            cJSON_AddItemToArray(ex, p);
        } else {
            cJSON_AddItemToArray(ex, example_json(&d->sft[i], train_prompt));
        }
    }
    cJSON_AddItemToObject(root, "examples", ex);
    return root;
}

static int usage(void) {
    fprintf(stderr, "usage: data_dump MODEL FILE.jsonl [--max-len N] [--train-prompt] "
                    "[--chat chatml|llama3|gemma|none]\n");
    return 2;
}

static int fail(void) {
    fprintf(stderr, "data_dump: %s\n", mt_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    mt_data_opts opts = {0};
    int train_prompt = 0;
    const char *chat = NULL;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--max-len") && i + 1 < argc)
            opts.max_len = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--train-prompt"))
            train_prompt = 1;
        else if (!strcmp(argv[i], "--chat") && i + 1 < argc)
            chat = argv[++i];
        else
            return usage();
    }
    mt_tokenizer *tok;
    if (mt_tokenizer_load(argv[1], &tok)) return fail();
    mt_chat_family fam = mt_chat_detect(mt_tokenizer_chat_template(tok), mt_tokenizer_arch(tok));
    if (chat && strcmp(chat, "none") && mt_chat_family_parse(chat, &fam)) return fail();
    if (chat && !strcmp(chat, "none")) fam = MT_CHAT_NONE;
    mt_dataset d;
    if (mt_dataset_load(argv[2], tok, fam, &opts, &d)) {
        mt_tokenizer_free(tok);
        return fail();
    }
    cJSON *root = dataset_json(&d, fam, train_prompt);
    char *s = cJSON_PrintUnformatted(root);
    puts(s);
    free(s);
    cJSON_Delete(root);
    mt_dataset_free(&d);
    mt_tokenizer_free(tok);
    return 0;
}
