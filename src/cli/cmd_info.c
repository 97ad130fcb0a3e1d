#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "infer/session.h"

/* Counts tensors per storage type, e.g. "Q4_1 x210, F32 x61". */
static void print_tensor_types(const mt_model *m) {
    int counts[64] = {0};
    size_t n = m->gguf ? m->gguf->n_tensors : mt_safetensors_count(m->st);
    for (size_t i = 0; i < n; i++) {
        int t =
            m->gguf ? m->gguf->tensors[i].ggml_type : (int)mt_safetensors_at(m->st, i)->view.type;
        if (t >= 0 && t < 64) counts[t]++;
    }
    printf("tensors:        %zu (", n);
    const char *sep = "";
    for (int t = 0; t < 64; t++)
        if (counts[t]) {
            printf("%s%s x%d", sep, mt_dtype_name(t), counts[t]);
            sep = ", ";
        }
    printf(")\n");
}

static void print_token(const char *label, const mt_tokenizer *t, int32_t id) {
    if (id < 0)
        printf("%-15s none\n", label);
    else
        printf("%-15s %d %s\n", label, id, mt_tokenizer_piece(t, id));
}

static void print_special_tokens(const mt_tokenizer *t) {
    int n = 0;
    for (int32_t i = 0; i < mt_tokenizer_n_vocab(t); i++) n += mt_tokenizer_is_control(t, i);
    printf("control tokens: %d", n);
    int shown = 0;
    for (int32_t i = 0; i < mt_tokenizer_n_vocab(t) && shown < 12; i++)
        if (mt_tokenizer_is_control(t, i))
            printf("%s%s", shown++ ? " " : " (", mt_tokenizer_piece(t, i));
    printf("%s\n", shown ? (n > shown ? " ...)" : ")") : "");
}

static void print_info(const mt_session *s) {
    const mt_model *m = s->model;
    const mt_model_config *c = &m->cfg;
    printf("model:          %s\n", m->name);
    printf("file:           %s (%s)\n", m->path,
           m->format == MT_FORMAT_GGUF ? "GGUF" : "safetensors");
    printf("architecture:   %s\n", mt_arch_name(c->arch));
    printf("parameters:     %lld\n", mt_model_param_count(m));
    printf("layers:         %d\n", c->n_layer);
    printf("embedding:      %d\n", c->n_embd);
    printf("heads:          %d (KV heads %d, head dim %d)\n", c->n_head, c->n_head_kv, c->head_dim);
    printf("feed-forward:   %d (%s)\n", c->n_ff, c->act == MT_ACT_GELU_TANH ? "GeGLU" : "SwiGLU");
    const int n_tokens = mt_tokenizer_n_vocab(s->tok);
    printf("vocabulary:     %d", c->n_vocab);
    if (c->n_vocab > n_tokens)
        printf(" (%d padded rows past the tokenizer's %d tokens, never generated)",
               c->n_vocab - n_tokens, n_tokens);
    printf("\n");
    printf("context:        %d\n", c->n_ctx_train);
    printf("rope:           base %g%s", c->rope_base,
           c->rope_style == MT_ROPE_NEOX ? " (neox)" : " (pairs)");
    if (c->sliding_window)
        printf(", local base %g, sliding window %d", c->rope_base_local, c->sliding_window);
    printf("\nembeddings:     %s\n", c->tied_embeddings ? "tied" : "separate output matrix");
    print_tensor_types(m);
    const mt_tokenizer *t = s->tok;
    printf("tokenizer:      %s (pre-tokenizer %s), %d tokens\n",
           mt_tokenizer_kind(t) == MT_TOK_BPE ? "byte-level BPE" : "SentencePiece-style BPE",
           mt_tokenizer_pre_name(t), mt_tokenizer_n_vocab(t));
    print_token("bos:", t, mt_tokenizer_bos(t));
    print_token("eos:", t, mt_tokenizer_eos(t));
    print_token("pad:", t, mt_tokenizer_pad(t));
    printf("adds bos:       %s\n", mt_tokenizer_adds_bos(t) ? "yes" : "no");
    print_special_tokens(t);
    printf("chat template:  %s%s\n", mt_chat_family_name(s->chat),
           mt_tokenizer_chat_template(t) ? ""
                                         : " (no template in the model; chosen by architecture)");
}

int mt_cmd_info(int argc, char **argv) {
    const char *model = NULL;
    const char *chat = NULL;
    const mt_opt opts[] = {
        {"--model", "-m", MT_OPT_STR, &model, "MODEL", "GGUF file or Hugging Face folder"},
        {"--chat-template", NULL, MT_OPT_STR, &chat, "NAME", "chatml | llama3 | gemma"},
    };
    const int n_opts = sizeof opts / sizeof *opts;
    int help = 0;
    /* `meteor info MODEL` is the natural spelling; accept it beside -m MODEL. */
    if (argc >= 2 && argv[1][0] != '-') {
        model = argv[1];
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    if (mt_parse_opts(opts, n_opts, argc, argv, &help)) return mt_report_error();
    if (help) {
        mt_print_help(stdout, "meteor info MODEL", "Show what a model file holds.", opts, n_opts);
        return 0;
    }
    mt_session s;
    if (mt_session_open(&s, model, 1, chat)) return mt_report_error();
    print_info(&s);
    mt_session_close(&s);
    return 0;
}
