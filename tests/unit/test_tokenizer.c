/* Tokenizer on hand-made vocabularies written as tokenizer.json: byte-level BPE, a
 * SentencePiece-style BPE with byte fallback, special tokens, streaming decode, chat
 * rendering, and malformed files that must fail cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

#define META "\xe2\x96\x81"

static char dir[64];

static int setup(void **state) {
    (void)state;
    strcpy(dir, "/tmp/mt_test_tok_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *name, const char *text) {
    char p[160];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_file(const char *name) {
    char p[160];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unlink(p);
}

static void write_json(const char *name, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    write_file(name, s);
    free(s);
    cJSON_Delete(j);
}

/* ---- vocabulary builders ------------------------------------------------------------ */

/* GPT-2's printable spelling of a byte, as UTF-8. */
static void byte_char(int b, char out[4]) {
    int keep = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    unsigned cp = (unsigned)b;
    if (!keep) {
        cp = 256;
        for (int i = 0; i < b; i++)
            cp += !((i >= 0x21 && i <= 0x7e) || (i >= 0xa1 && i <= 0xac) || i >= 0xae);
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3f)), out[2] = 0;
    }
}

static void add_merge(cJSON *merges, const char *a, const char *b) {
    cJSON *pair = cJSON_CreateArray();
    cJSON_AddItemToArray(pair, cJSON_CreateString(a));
    cJSON_AddItemToArray(pair, cJSON_CreateString(b));
    cJSON_AddItemToArray(merges, pair);
}

static void add_added(cJSON *added, int id, const char *content, int special) {
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", id);
    cJSON_AddStringToObject(a, "content", content);
    cJSON_AddBoolToObject(a, "special", special);
    cJSON_AddItemToArray(added, a);
}

static cJSON *type_obj(const char *type) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

/* Byte-level BPE: ids 0..255 are the bytes, then merge results, then added tokens. */
enum {
    BL_HE = 256,
    BL_LL,
    BL_GW,
    BL_HELL,
    BL_HELLO,
    BL_OR,
    BL_GWOR,
    BL_GWORL,
    BL_GWORLD,
    BL_AB,
    BL_BC
};
enum { BL_IM_START = 267, BL_IM_END, BL_THINK };

static cJSON *byte_level_json(void) {
    static const char *const merged[][2] = {{"h", "e"},     {"l", "l"}, {"Ġ", "w"},   {"he", "ll"},
                                            {"hell", "o"},  {"o", "r"}, {"Ġw", "or"}, {"Ġwor", "l"},
                                            {"Ġworl", "d"}, {"a", "b"}, {"b", "c"}};
    cJSON *root = cJSON_CreateObject(), *model = type_obj("BPE"), *vocab = cJSON_CreateObject();
    cJSON *merges = cJSON_CreateArray(), *added = cJSON_CreateArray();
    for (int b = 0; b < 256; b++) {
        char s[4];
        byte_char(b, s);
        cJSON_AddNumberToObject(vocab, s, b);
    }
    for (int i = 0; i < 11; i++) {
        char s[32];
        snprintf(s, sizeof s, "%s%s", merged[i][0], merged[i][1]);
        cJSON_AddNumberToObject(vocab, s, 256 + i);
        add_merge(merges, merged[i][0], merged[i][1]);
    }
    cJSON_AddNumberToObject(vocab, "<|im_start|>", BL_IM_START);
    cJSON_AddNumberToObject(vocab, "<|im_end|>", BL_IM_END);
    cJSON_AddNumberToObject(vocab, "<think>", BL_THINK);
    add_added(added, BL_IM_START, "<|im_start|>", 1);
    add_added(added, BL_IM_END, "<|im_end|>", 1);
    add_added(added, BL_THINK, "<think>", 0);
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddItemToObject(root, "model", model);
    cJSON_AddItemToObject(root, "added_tokens", added);
    cJSON *pre = type_obj("ByteLevel");
    cJSON_AddBoolToObject(pre, "add_prefix_space", 0);
    cJSON_AddBoolToObject(pre, "use_regex", 1);
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON_AddItemToObject(root, "decoder", type_obj("ByteLevel"));
    return root;
}

/* SentencePiece-style BPE as transformers writes Gemma's: spaces become U+2581, unknown
 * characters fall back to <0xNN>, "\n" is an added (non-special) token, BOS prepended. */
enum { SP_PAD, SP_EOS, SP_BOS, SP_UNK, SP_BYTE0 };
enum { SP_META = 260, SP_H, SP_E, SP_L, SP_O, SP_W, SP_R, SP_D, SP_HE, SP_LL, SP_HELL, SP_HELLO };
enum { SP_MW = 272, SP_OR, SP_MWOR, SP_MWORL, SP_MWORLD, SP_NL };

static cJSON *spm_model(void) {
    static const char *const pieces[] = {
        META, "h",    "e",     "l",      "o",  "w",        "r",         "d",         "he",
        "ll", "hell", "hello", META "w", "or", META "wor", META "worl", META "world"};
    static const char *const merged[][2] = {
        {"h", "e"}, {"l", "l"},       {"he", "ll"},      {"hell", "o"},     {META, "w"},
        {"o", "r"}, {META "w", "or"}, {META "wor", "l"}, {META "worl", "d"}};
    cJSON *model = type_obj("BPE"), *vocab = cJSON_CreateObject(), *merges = cJSON_CreateArray();
    const char *specials[] = {"<pad>", "<eos>", "<bos>", "<unk>"};
    for (int i = 0; i < 4; i++) cJSON_AddNumberToObject(vocab, specials[i], i);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        cJSON_AddNumberToObject(vocab, s, SP_BYTE0 + b);
    }
    for (int i = 0; i < 17; i++) cJSON_AddNumberToObject(vocab, pieces[i], SP_META + i);
    cJSON_AddNumberToObject(vocab, "\n", SP_NL);
    for (int i = 0; i < 9; i++) add_merge(merges, merged[i][0], merged[i][1]);
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddBoolToObject(model, "byte_fallback", 1);
    cJSON_AddBoolToObject(model, "fuse_unk", 1);
    cJSON_AddStringToObject(model, "unk_token", "<unk>");
    return model;
}

static cJSON *spm_json(void) {
    cJSON *root = cJSON_CreateObject(), *added = cJSON_CreateArray();
    cJSON_AddItemToObject(root, "model", spm_model());
    const char *specials[] = {"<pad>", "<eos>", "<bos>", "<unk>"};
    for (int i = 0; i < 4; i++) add_added(added, i, specials[i], 1);
    add_added(added, SP_NL, "\n", 0);
    cJSON_AddItemToObject(root, "added_tokens", added);
    cJSON *norm = cJSON_Parse(
        "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"" META "\"}");
    cJSON_AddItemToObject(root, "normalizer", norm);
    cJSON_AddItemToObject(root, "pre_tokenizer",
                          cJSON_Parse("{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},"
                                      "\"behavior\":\"MergedWithPrevious\",\"invert\":false}"));
    cJSON_AddItemToObject(
        root, "post_processor",
        cJSON_Parse("{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
                    "{\"id\":\"<bos>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\","
                    "\"type_id\":0}}]}"));
    cJSON_AddItemToObject(root, "decoder",
                          cJSON_Parse("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\","
                                      "\"pattern\":{\"String\":\"" META "\"},\"content\":\" \"},"
                                      "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]}"));
    return root;
}

static mt_tokenizer *load_json(cJSON *root) {
    write_json("tokenizer.json", root);
    mt_tokenizer *t = NULL;
    mt_status st = mt_tokenizer_from_hf_dir(dir, &t);
    if (st != MT_OK) print_error("load failed: %s\n", mt_last_error());
    assert_int_equal(st, MT_OK);
    return t;
}

static void expect_ids(const mt_tokenizer *t, const char *text, int add_special, int parse_special,
                       const int32_t *want, size_t n_want) {
    int32_t *ids;
    size_t n;
    assert_int_equal(mt_tokenize(t, text, strlen(text), add_special, parse_special, &ids, &n),
                     MT_OK);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], want[i]);
    free(ids);
}

static void expect_round_trip(const mt_tokenizer *t, const char *text) {
    int32_t *ids;
    size_t n;
    char *back;
    assert_int_equal(mt_tokenize(t, text, strlen(text), 0, 1, &ids, &n), MT_OK);
    assert_int_equal(mt_detokenize(t, ids, n, 1, &back), MT_OK);
    assert_string_equal(back, text);
    free(back);
    free(ids);
}

/* ---- byte-level BPE ----------------------------------------------------------------- */

static void test_byte_level_merges(void **state) {
    (void)state;
    mt_tokenizer *t = load_json(byte_level_json());
    assert_int_equal(mt_tokenizer_kind(t), MT_TOK_BPE);
    assert_int_equal(mt_tokenizer_n_vocab(t), 270);
    expect_ids(t, "hello world", 1, 1, (int32_t[]){BL_HELLO, BL_GWORLD}, 2);
    /* "a b" ranks before "b c", so "abc" keeps the earlier merge */
    expect_ids(t, "abc", 0, 0, (int32_t[]){BL_AB, 'c'}, 2);
    expect_ids(t, "", 1, 1, NULL, 0);
    assert_int_equal(mt_tokenizer_find(t, "Ġworld"), BL_GWORLD);
    assert_string_equal(mt_tokenizer_piece(t, BL_GW), "Ġw");
    assert_int_equal(mt_tokenizer_bos(t), -1);
    assert_false(mt_tokenizer_adds_bos(t));
    mt_tokenizer_free(t);
}

static void test_byte_level_round_trip(void **state) {
    (void)state;
    mt_tokenizer *t = load_json(byte_level_json());
    const char *texts[] = {"hello world",
                           "  spaced\t\ttabs\n\nnewlines  ",
                           "héllo wörld 😀 中文",
                           "e\xcc\x81 combining",
                           "x<|im_end|>y",
                           "1234567",
                           ""};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) expect_round_trip(t, texts[i]);
    mt_tokenizer_free(t);
}

static void test_special_tokens_split(void **state) {
    (void)state;
    mt_tokenizer *t = load_json(byte_level_json());
    expect_ids(t, "hello<|im_start|>world", 0, 1,
               (int32_t[]){BL_HELLO, BL_IM_START, 'w', BL_OR, 'l', 'd'}, 6);
    /* not parsed: the marker is ordinary text, but the non-special <think> still splits */
    int32_t *ids;
    size_t n;
    const char *text = "<|im_start|><think>";
    assert_int_equal(mt_tokenize(t, text, strlen(text), 0, 0, &ids, &n), MT_OK);
    assert_true(n > 2);
    for (size_t i = 0; i + 1 < n; i++) assert_int_not_equal(ids[i], BL_IM_START);
    assert_int_equal(ids[n - 1], BL_THINK);
    free(ids);
    assert_true(mt_tokenizer_is_control(t, BL_IM_END));
    assert_false(mt_tokenizer_is_control(t, BL_THINK));
    assert_false(mt_tokenizer_is_control(t, BL_HELLO));
    /* control tokens render only when asked */
    char *s;
    assert_int_equal(mt_detokenize(t, (int32_t[]){BL_HELLO, BL_IM_END}, 2, 0, &s), MT_OK);
    assert_string_equal(s, "hello");
    free(s);
    assert_int_equal(mt_detokenize(t, (int32_t[]){BL_HELLO, BL_IM_END}, 2, 1, &s), MT_OK);
    assert_string_equal(s, "hello<|im_end|>");
    free(s);
    mt_tokenizer_free(t);
}

static void test_stream_holds_split_character(void **state) {
    (void)state;
    mt_tokenizer *t = load_json(byte_level_json());
    mt_detok_stream st;
    mt_detok_stream_init(&st, t, 0);
    char out[64];
    size_t len;
    const int32_t emoji[] = {0xf0, 0x9f, 0x98, 0x80}; /* U+1F600, one byte per token */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mt_detok_stream_push(&st, emoji[i], out, sizeof out, &len), MT_OK);
        assert_int_equal(len, 0);
        assert_string_equal(out, "");
    }
    assert_int_equal(mt_detok_stream_push(&st, emoji[3], out, sizeof out, &len), MT_OK);
    assert_string_equal(out, "\xf0\x9f\x98\x80");
    assert_int_equal(mt_detok_stream_push(&st, BL_GWORLD, out, sizeof out, &len), MT_OK);
    assert_string_equal(out, " world");
    /* a broken sequence is replaced, not held forever */
    assert_int_equal(mt_detok_stream_push(&st, 0xe2, out, sizeof out, &len), MT_OK);
    assert_int_equal(len, 0);
    assert_int_equal(mt_detok_stream_push(&st, 'a', out, sizeof out, &len), MT_OK);
    assert_string_equal(out, "\xef\xbf\xbd"
                             "a");
    assert_int_not_equal(mt_detok_stream_push(&st, 99999, out, sizeof out, &len), MT_OK);
    mt_tokenizer_free(t);
}

/* Text that is not UTF-8 still encodes: byte-level spells every byte, SentencePiece falls
 * back to <0xNN>; decoding shows the broken bytes as U+FFFD. */
static void test_invalid_utf8_input(void **state) {
    (void)state;
    const char text[] = "a\xff\xc3 b";
    int32_t *ids;
    size_t n;
    char *s;
    mt_tokenizer *t = load_json(byte_level_json());
    expect_ids(t, text, 0, 1, (int32_t[]){'a', 0xff, 0xc3, ' ', 'b'}, 5);
    mt_tokenizer_free(t);
    t = load_json(spm_json());
    assert_int_equal(mt_tokenize(t, text, strlen(text), 0, 1, &ids, &n), MT_OK);
    assert_int_equal(n, 5);
    assert_int_equal(ids[1], SP_BYTE0 + 0xff);
    assert_int_equal(ids[2], SP_BYTE0 + 0xc3);
    assert_int_equal(mt_detokenize(t, ids, n, 0, &s), MT_OK);
    assert_string_equal(s, "a\xef\xbf\xbd\xef\xbf\xbd b");
    free(s);
    free(ids);
    mt_tokenizer_free(t);
}

static void test_token_bytes_and_bad_ids(void **state) {
    (void)state;
    mt_tokenizer *t = load_json(byte_level_json());
    char buf[16];
    size_t len;
    assert_int_equal(mt_token_bytes(t, BL_GWORLD, 0, buf, sizeof buf, &len), MT_OK);
    assert_int_equal(len, 6);
    assert_memory_equal(buf, " world", 6);
    assert_int_equal(mt_token_bytes(t, BL_GWORLD, 0, buf, 3, &len), MT_ERR_ARG);
    assert_int_equal(mt_token_bytes(t, -1, 0, buf, sizeof buf, &len), MT_ERR_ARG);
    char *s = NULL;
    assert_int_equal(mt_detokenize(t, (int32_t[]){1, 270}, 2, 0, &s), MT_ERR_ARG);
    assert_null(s);
    /* a lone lead byte decodes to U+FFFD */
    assert_int_equal(mt_detokenize(t, (int32_t[]){'a', 0xe2}, 2, 0, &s), MT_OK);
    assert_string_equal(s, "a\xef\xbf\xbd");
    free(s);
    mt_tokenizer_free(t);
}

/* ---- SentencePiece-style ------------------------------------------------------------ */

static void test_spm_encode(void **state) {
    (void)state;
    mt_tokenizer *t = load_json(spm_json());
    assert_int_equal(mt_tokenizer_kind(t), MT_TOK_SPM);
    assert_int_equal(mt_tokenizer_bos(t), SP_BOS);
    assert_true(mt_tokenizer_adds_bos(t));
    expect_ids(t, "hello world", 1, 1, (int32_t[]){SP_BOS, SP_HELLO, SP_MWORLD}, 3);
    expect_ids(t, "hello world", 0, 1, (int32_t[]){SP_HELLO, SP_MWORLD}, 2);
    /* é is not in the vocabulary: its two UTF-8 bytes fall back to <0xC3><0xA9> */
    expect_ids(t, "héllo", 0, 1, (int32_t[]){SP_H, SP_BYTE0 + 0xc3, SP_BYTE0 + 0xa9, SP_LL, SP_O},
               5);
    /* "\n" is an added token and splits even without special parsing; <bos> does not */
    expect_ids(t, "he\nhe", 0, 0, (int32_t[]){SP_HE, SP_NL, SP_HE}, 3);
    expect_ids(t, "<bos>he", 0, 1, (int32_t[]){SP_BOS, SP_HE}, 2);
    mt_tokenizer_free(t);
}

static void test_spm_round_trip_and_stream(void **state) {
    (void)state;
    mt_tokenizer *t = load_json(spm_json());
    const char *texts[] = {"hello world", " hello  world ", "héllo\n\nwörld 😀", "日本", ""};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) expect_round_trip(t, texts[i]);
    mt_detok_stream st;
    mt_detok_stream_init(&st, t, 0);
    char out[64];
    size_t len;
    assert_int_equal(mt_detok_stream_push(&st, SP_BOS, out, sizeof out, &len), MT_OK);
    assert_int_equal(len, 0);
    assert_int_equal(mt_detok_stream_push(&st, SP_H, out, sizeof out, &len), MT_OK);
    assert_string_equal(out, "h");
    assert_int_equal(mt_detok_stream_push(&st, SP_BYTE0 + 0xc3, out, sizeof out, &len), MT_OK);
    assert_int_equal(len, 0);
    assert_int_equal(mt_detok_stream_push(&st, SP_BYTE0 + 0xa9, out, sizeof out, &len), MT_OK);
    assert_string_equal(out, "\xc3\xa9");
    assert_int_equal(mt_detok_stream_push(&st, SP_MWORLD, out, sizeof out, &len), MT_OK);
    assert_string_equal(out, " world");
    mt_tokenizer_free(t);
}

static void test_spm_metaspace_prefix(void **state) {
    (void)state;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "model", spm_model());
    cJSON_AddItemToObject(root, "pre_tokenizer",
                          cJSON_Parse("{\"type\":\"Metaspace\",\"replacement\":\"" META
                                      "\",\"prepend_scheme\":\"first\",\"split\":false}"));
    cJSON_AddItemToObject(root, "decoder",
                          cJSON_Parse("{\"type\":\"Metaspace\",\"replacement\":\"" META
                                      "\",\"prepend_scheme\":\"first\",\"split\":false}"));
    mt_tokenizer *t = load_json(root);
    expect_ids(t, "world", 0, 0, (int32_t[]){SP_MWORLD}, 1);
    expect_ids(t, "hello world", 0, 0, (int32_t[]){SP_META, SP_HELLO, SP_MWORLD}, 3);
    char *s;
    assert_int_equal(mt_detokenize(t, (int32_t[]){SP_MWORLD, SP_MWORLD}, 2, 0, &s), MT_OK);
    assert_string_equal(s, "world world");
    free(s);
    mt_tokenizer_free(t);
}

/* ---- config, chat ------------------------------------------------------------------- */

static const char SMOL_TEMPLATE[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\\n' }}{% endif %}";

static void test_config_and_chatml(void **state) {
    (void)state;
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "bos_token", "<|im_start|>");
    cJSON *eos = cJSON_AddObjectToObject(cfg, "eos_token");
    cJSON_AddStringToObject(eos, "content", "<|im_end|>");
    cJSON_AddStringToObject(cfg, "chat_template", SMOL_TEMPLATE);
    write_json("tokenizer_config.json", cfg);
    mt_tokenizer *t = load_json(byte_level_json());
    remove_file("tokenizer_config.json");
    assert_int_equal(mt_tokenizer_bos(t), BL_IM_START);
    assert_int_equal(mt_tokenizer_eos(t), BL_IM_END);
    assert_false(mt_tokenizer_adds_bos(t));
    const char *tpl = mt_tokenizer_chat_template(t);
    assert_non_null(tpl);
    mt_chat_family f = mt_chat_detect(tpl, NULL);
    assert_int_equal(f, MT_CHAT_CHATML);
    char *out;
    mt_chat_msg user[] = {{"user", "Hi"}};
    assert_int_equal(mt_chat_render(f, t, user, 1, 1, &out), MT_OK);
    assert_string_equal(
        out, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
             "Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    free(out);
    mt_chat_msg sys[] = {{"system", "Be brief."}, {"user", "Hi"}};
    assert_int_equal(mt_chat_render(f, t, sys, 2, 0, &out), MT_OK);
    assert_string_equal(
        out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
    free(out);
    mt_tokenizer_free(t);
}

static void test_chat_gemma_and_llama3(void **state) {
    (void)state;
    char *out;
    mt_chat_msg conv[] = {
        {"system", "Sys."}, {"user", " Q1 "}, {"assistant", "A1"}, {"user", "Q2"}};
    assert_int_equal(mt_chat_detect(NULL, "gemma3"), MT_CHAT_GEMMA);
    assert_int_equal(mt_chat_render(MT_CHAT_GEMMA, NULL, conv, 4, 1, &out), MT_OK);
    assert_string_equal(
        out, "<bos><start_of_turn>user\nSys.\n\nQ1<end_of_turn>\n<start_of_turn>model\nA1"
             "<end_of_turn>\n<start_of_turn>user\nQ2<end_of_turn>\n<start_of_turn>model\n");
    free(out);
    mt_chat_msg twice[] = {{"user", "a"}, {"user", "b"}};
    out = NULL;
    assert_int_equal(mt_chat_render(MT_CHAT_GEMMA, NULL, twice, 2, 1, &out), MT_ERR_ARG);
    assert_null(out);
    assert_int_equal(mt_chat_render(MT_CHAT_LLAMA3, NULL, conv + 1, 1, 1, &out), MT_OK);
    assert_string_equal(out,
                        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nQ1<|eot_id|>"
                        "<|start_header_id|>assistant<|end_header_id|>\n\n");
    free(out);
    assert_int_equal(mt_chat_detect("x<|start_header_id|>y", "llama"), MT_CHAT_LLAMA3);
    assert_int_equal(mt_chat_detect(NULL, "llama"), MT_CHAT_NONE);
    assert_int_equal(mt_chat_render(MT_CHAT_NONE, NULL, conv, 1, 1, &out), MT_ERR_ARG);
    mt_chat_family f;
    assert_int_equal(mt_chat_family_parse("gemma", &f), MT_OK);
    assert_int_equal(f, MT_CHAT_GEMMA);
    assert_int_equal(mt_chat_family_parse("vicuna", &f), MT_ERR_ARG);
    assert_string_equal(mt_chat_stop_pieces(MT_CHAT_CHATML)[0], "<|im_end|>");
    assert_string_equal(mt_chat_family_name(MT_CHAT_LLAMA3), "llama3");
}

/* ---- GGUF metadata ------------------------------------------------------------------ */

/* A GGUF v3 file with metadata only, assembled by hand so the test depends on nothing
 * but the reader. */
typedef struct {
    unsigned char *b;
    size_t n, cap;
    uint64_t n_kv;
} gguf_buf;

static void gb_bytes(gguf_buf *w, const void *p, size_t n) {
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 256;
        w->b = realloc(w->b, w->cap);
        assert_non_null(w->b);
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void gb_u32(gguf_buf *w, uint32_t v) {
    gb_bytes(w, &v, 4);
}

static void gb_u64(gguf_buf *w, uint64_t v) {
    gb_bytes(w, &v, 8);
}

static void gb_str(gguf_buf *w, const char *s) {
    gb_u64(w, strlen(s));
    gb_bytes(w, s, strlen(s));
}

static void gb_key(gguf_buf *w, const char *key, uint32_t type) {
    gb_str(w, key);
    gb_u32(w, type);
    w->n_kv++;
}

static void kv_str(gguf_buf *w, const char *key, const char *v) {
    gb_key(w, key, 8);
    gb_str(w, v);
}

static void kv_u32(gguf_buf *w, const char *key, uint32_t v) {
    gb_key(w, key, 4);
    gb_u32(w, v);
}

static void kv_bool(gguf_buf *w, const char *key, int v) {
    gb_key(w, key, 7);
    unsigned char c = (unsigned char)v;
    gb_bytes(w, &c, 1);
}

static void kv_strs(gguf_buf *w, const char *key, const char *const *v, size_t n) {
    gb_key(w, key, 9);
    gb_u32(w, 8);
    gb_u64(w, n);
    for (size_t i = 0; i < n; i++) gb_str(w, v[i]);
}

static void kv_i32s(gguf_buf *w, const char *key, const int32_t *v, size_t n) {
    gb_key(w, key, 9);
    gb_u32(w, 5);
    gb_u64(w, n);
    gb_bytes(w, v, n * 4);
}

static void kv_f32s(gguf_buf *w, const char *key, const float *v, size_t n) {
    gb_key(w, key, 9);
    gb_u32(w, 6);
    gb_u64(w, n);
    gb_bytes(w, v, n * 4);
}

/* Writes the file, frees the buffer and loads the tokenizer through mt_tokenizer_load. */
static mt_status load_gguf(gguf_buf *kvs, mt_tokenizer **t) {
    gguf_buf f = {0};
    gb_bytes(&f, "GGUF", 4);
    gb_u32(&f, 3);
    gb_u64(&f, 0);
    gb_u64(&f, kvs->n_kv);
    gb_bytes(&f, kvs->b, kvs->n);
    while (f.n % 32) gb_bytes(&f, "", 1);
    char p[160];
    snprintf(p, sizeof p, "%s/tok.gguf", dir);
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(f.b, 1, f.n, fp), f.n);
    fclose(fp);
    free(f.b);
    free(kvs->b);
    memset(kvs, 0, sizeof *kvs);
    *t = (mt_tokenizer *)t;
    mt_status st = mt_tokenizer_load(p, t);
    if (st != MT_OK) assert_null(*t);
    return st;
}

/* The byte-level vocabulary of byte_level_json(), as llama.cpp writes it. */
static const char **byte_level_tokens(size_t *n, char storage[256][4]) {
    static const char *merged[] = {"he",   "ll",    "Ġw",     "hell", "hello", "or",
                                   "Ġwor", "Ġworl", "Ġworld", "ab",   "bc"};
    const char **toks = calloc(270, sizeof *toks);
    for (int b = 0; b < 256; b++) {
        byte_char(b, storage[b]);
        toks[b] = storage[b];
    }
    for (int i = 0; i < 11; i++) toks[256 + i] = merged[i];
    toks[BL_IM_START] = "<|im_start|>";
    toks[BL_IM_END] = "<|im_end|>";
    toks[BL_THINK] = "<think>";
    *n = 270;
    return toks;
}

static const char *const BL_MERGES[] = {"h e",   "l l",    "Ġ w",     "he ll", "hell o", "o r",
                                        "Ġw or", "Ġwor l", "Ġworl d", "a b",   "b c"};

static void put_byte_level(gguf_buf *w, const char *const *merges, size_t n_merges) {
    char storage[256][4];
    size_t n;
    const char **toks = byte_level_tokens(&n, storage);
    int32_t types[270];
    for (int i = 0; i < 270; i++) types[i] = i >= BL_IM_START ? (i == BL_THINK ? 4 : 3) : 1;
    kv_str(w, "general.architecture", "llama");
    kv_str(w, "tokenizer.ggml.model", "gpt2");
    kv_str(w, "tokenizer.ggml.pre", "smollm");
    kv_strs(w, "tokenizer.ggml.tokens", toks, n);
    kv_i32s(w, "tokenizer.ggml.token_type", types, n);
    kv_strs(w, "tokenizer.ggml.merges", merges, n_merges);
    kv_u32(w, "tokenizer.ggml.eos_token_id", BL_IM_END);
    free(toks);
}

static void test_gguf_byte_level(void **state) {
    (void)state;
    gguf_buf w = {0};
    put_byte_level(&w, BL_MERGES, 11);
    kv_u32(&w, "tokenizer.ggml.bos_token_id", BL_IM_START);
    kv_str(&w, "tokenizer.chat_template", "{{ '<|im_start|>' }}");
    mt_tokenizer *t;
    assert_int_equal(load_gguf(&w, &t), MT_OK);
    assert_int_equal(mt_tokenizer_kind(t), MT_TOK_BPE);
    assert_string_equal(mt_tokenizer_pre_name(t), "smollm");
    assert_string_equal(mt_tokenizer_arch(t), "llama");
    assert_false(mt_tokenizer_adds_bos(t)); /* byte-level vocabularies default to no BOS */
    assert_int_equal(mt_tokenizer_eos(t), BL_IM_END);
    assert_int_equal(mt_chat_detect(mt_tokenizer_chat_template(t), "llama"), MT_CHAT_CHATML);
    expect_ids(t, "hello world", 1, 1, (int32_t[]){BL_HELLO, BL_GWORLD}, 2);
    /* "smollm" splits each digit off, so " 12" is space, 1, 2 */
    expect_ids(t, "ab 12", 0, 0, (int32_t[]){BL_AB, ' ', '1', '2'}, 4);
    expect_ids(t, "<|im_start|><think>", 0, 1, (int32_t[]){BL_IM_START, BL_THINK}, 2);
    expect_round_trip(t, "héllo 😀 wörld\n\n\tx");
    mt_tokenizer_free(t);
}

/* A SentencePiece vocabulary with scores, Gemma-style: merges come from the vocabulary
 * in token order, runs of spaces are stored as spaces, bytes fall back to <0xNN>. */
static void test_gguf_sentencepiece(void **state) {
    (void)state;
    const char *base[] = {"<pad>", "<eos>", "<bos>",  "<unk>", "<start_of_turn>",
                          "\n",    "  ",    META,     "a",     "b",
                          "c",     "bc",    "ab",     "xy",    "h",
                          "i",     "hi",    META "hi"};
    enum { N_BASE = 18, BYTE0 = 18, N = 18 + 256 };
    const char *toks[N];
    char bytes[256][8];
    int32_t types[N];
    float scores[N];
    for (int i = 0; i < N; i++) {
        if (i < N_BASE)
            toks[i] = base[i];
        else
            snprintf(bytes[i - BYTE0], 8, "<0x%02X>", i - BYTE0), toks[i] = bytes[i - BYTE0];
        types[i] = i < 5 ? 3 : i < 7 ? 4 : i >= BYTE0 ? 6 : 1;
        scores[i] = -(float)i;
    }
    gguf_buf w = {0};
    kv_str(&w, "general.architecture", "gemma3");
    kv_str(&w, "tokenizer.ggml.model", "llama");
    kv_strs(&w, "tokenizer.ggml.tokens", toks, N);
    kv_i32s(&w, "tokenizer.ggml.token_type", types, N);
    kv_f32s(&w, "tokenizer.ggml.scores", scores, N);
    kv_u32(&w, "tokenizer.ggml.bos_token_id", 2);
    kv_u32(&w, "tokenizer.ggml.eos_token_id", 1);
    kv_u32(&w, "tokenizer.ggml.unknown_token_id", 3);
    kv_bool(&w, "tokenizer.ggml.add_space_prefix", 0);
    mt_tokenizer *t;
    assert_int_equal(load_gguf(&w, &t), MT_OK);
    assert_int_equal(mt_tokenizer_kind(t), MT_TOK_SPM);
    assert_true(mt_tokenizer_adds_bos(t)); /* SentencePiece defaults to BOS */
    assert_int_equal(mt_chat_detect(mt_tokenizer_chat_template(t), mt_tokenizer_arch(t)),
                     MT_CHAT_GEMMA);
    /* "bc" (id 11) precedes "ab" (id 12), so it merges first in "abc" */
    expect_ids(t, "abc", 1, 1, (int32_t[]){2, 8, 11}, 3);
    /* two spaces: the stored "  " is looked up as two U+2581 and merges to id 6 */
    expect_ids(t, "a  hi", 0, 1, (int32_t[]){8, 6, 16}, 3);
    expect_ids(t, " hi", 0, 1, (int32_t[]){17}, 1);
    /* "\n" is user-defined (always split), <start_of_turn> control (only when parsed) */
    expect_ids(t, "hi\n<start_of_turn>", 0, 1, (int32_t[]){16, 5, 4}, 3);
    expect_ids(t, "z", 0, 1, (int32_t[]){BYTE0 + 'z'}, 1);
    expect_round_trip(t, "a  b\nc hi 😀");
    assert_string_equal(mt_tokenizer_piece(t, 6), META META);
    mt_tokenizer_free(t);
}

/* Converters pad the token list to the embedding's rows with "[PADn]" entries of type
 * UNUSED; they are not tokens, so the tokenizer ends before them (infer/vocab.h masks
 * those rows), unless a special token id names one. */
static void put_padded_byte_level(gguf_buf *w, int n_pad) {
    char storage[256][4], pads[8][16];
    size_t n;
    const char **toks = byte_level_tokens(&n, storage);
    const char *all[270 + 8];
    int32_t types[270 + 8];
    for (int i = 0; i < 270 + n_pad; i++) {
        if (i < 270) {
            all[i] = toks[i];
            types[i] = i >= BL_IM_START ? (i == BL_THINK ? 4 : 3) : 1;
        } else {
            snprintf(pads[i - 270], sizeof pads[0], "[PAD%d]", i);
            all[i] = pads[i - 270];
            types[i] = 5;
        }
    }
    kv_str(w, "general.architecture", "qwen2");
    kv_str(w, "tokenizer.ggml.model", "gpt2");
    kv_str(w, "tokenizer.ggml.pre", "smollm");
    kv_strs(w, "tokenizer.ggml.tokens", all, (size_t)(270 + n_pad));
    kv_i32s(w, "tokenizer.ggml.token_type", types, (size_t)(270 + n_pad));
    kv_strs(w, "tokenizer.ggml.merges", BL_MERGES, 11);
    free(toks);
}

static void test_gguf_placeholders_are_not_tokens(void **state) {
    (void)state;
    gguf_buf w = {0};
    put_padded_byte_level(&w, 6);
    kv_u32(&w, "tokenizer.ggml.eos_token_id", BL_IM_END);
    mt_tokenizer *t;
    assert_int_equal(load_gguf(&w, &t), MT_OK);
    assert_int_equal(mt_tokenizer_n_vocab(t), 270);
    assert_int_equal(mt_tokenizer_find(t, "[PAD271]"), -1);
    char piece[16];
    size_t len;
    assert_int_equal(mt_token_bytes(t, 270, 1, piece, sizeof piece, &len), MT_ERR_ARG);
    expect_round_trip(t, "hello world [PAD270]");
    mt_tokenizer_free(t);
    /* a placeholder that is the padding token stays, and with it those before it */
    put_padded_byte_level(&w, 6);
    kv_u32(&w, "tokenizer.ggml.padding_token_id", 272);
    assert_int_equal(load_gguf(&w, &t), MT_OK);
    assert_int_equal(mt_tokenizer_n_vocab(t), 273);
    assert_int_equal(mt_tokenizer_pad(t), 272);
    mt_tokenizer_free(t);
}

static void test_gguf_malformed(void **state) {
    (void)state;
    mt_tokenizer *t;
    gguf_buf w = {0};
    kv_str(&w, "general.architecture", "llama");
    assert_int_equal(load_gguf(&w, &t), MT_ERR_FORMAT); /* no tokenizer at all */
    kv_str(&w, "tokenizer.ggml.model", "bert");
    kv_strs(&w, "tokenizer.ggml.tokens", (const char *[]){"a"}, 1);
    assert_int_equal(load_gguf(&w, &t), MT_ERR_UNSUPPORTED);
    kv_str(&w, "tokenizer.ggml.model", "llama");
    kv_i32s(&w, "tokenizer.ggml.tokens", (int32_t[]){1, 2}, 2);
    assert_int_equal(load_gguf(&w, &t), MT_ERR_FORMAT); /* tokens are not strings */
    kv_str(&w, "tokenizer.ggml.model", "llama");
    kv_strs(&w, "tokenizer.ggml.tokens", (const char *[]){"a", "b"}, 2);
    kv_i32s(&w, "tokenizer.ggml.token_type", (int32_t[]){1}, 1);
    assert_int_equal(load_gguf(&w, &t), MT_ERR_FORMAT); /* one type for two tokens */
    kv_str(&w, "tokenizer.ggml.model", "llama");
    kv_strs(&w, "tokenizer.ggml.tokens", (const char *[]){"a", "b"}, 2);
    kv_u32(&w, "tokenizer.ggml.bos_token_id", 7);
    assert_int_equal(load_gguf(&w, &t), MT_ERR_FORMAT); /* BOS outside the vocabulary */
    put_byte_level(&w, (const char *const[]){"h e", "x q"}, 2);
    assert_int_equal(load_gguf(&w, &t), MT_ERR_FORMAT); /* merge of unknown tokens */
    put_byte_level(&w, (const char *const[]){"he"}, 1);
    assert_int_equal(load_gguf(&w, &t), MT_ERR_FORMAT); /* merge without a space */
    kv_str(&w, "tokenizer.ggml.model", "gpt2");
    kv_strs(&w, "tokenizer.ggml.tokens", (const char *[]){"a"}, 1);
    assert_int_equal(load_gguf(&w, &t), MT_ERR_FORMAT); /* byte-level BPE without merges */
}

/* ---- malformed input ---------------------------------------------------------------- */

static void expect_load_error(const char *json, mt_status want) {
    write_file("tokenizer.json", json);
    mt_tokenizer *t = (mt_tokenizer *)&t;
    mt_clear_error();
    mt_status st = mt_tokenizer_from_hf_dir(dir, &t);
    if (st != want) print_error("for %.80s: got %d (%s)\n", json, st, mt_last_error());
    assert_int_equal(st, want);
    assert_null(t);
    assert_true(strlen(mt_last_error()) > 0);
}

static void test_malformed_tokenizer_json(void **state) {
    (void)state;
    expect_load_error("this is not json", MT_ERR_FORMAT);
    expect_load_error("", MT_ERR_FORMAT);
    expect_load_error("[1, 2]", MT_ERR_FORMAT);
    expect_load_error("{}", MT_ERR_FORMAT);
    expect_load_error("{\"model\": 3}", MT_ERR_FORMAT);
    expect_load_error("{\"model\": {\"type\": \"BPE\"}}", MT_ERR_FORMAT);
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": []}}", MT_ERR_FORMAT);
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}", MT_ERR_FORMAT);
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"zero\"}}}",
                      MT_ERR_FORMAT);
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}}}", MT_ERR_FORMAT);
    expect_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0.5}}}", MT_ERR_FORMAT);
    expect_load_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}",
                      MT_ERR_UNSUPPORTED);
    expect_load_error("{\"model\": {\"type\": 7, \"vocab\": {\"a\": 0}}}", MT_ERR_FORMAT);
    /* merges naming tokens that do not exist, or not being pairs */
    expect_load_error(
        "{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\", \"c\"]]}}",
        MT_ERR_FORMAT);
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
                      MT_ERR_FORMAT);
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [42]}}",
                      MT_ERR_FORMAT);
    expect_load_error(
        "{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"ab\"]}}",
        MT_ERR_FORMAT);
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": {\"a\": 1}}}",
                      MT_ERR_FORMAT);
    expect_load_error(
        "{\"model\": {\"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"content\": \"x\"}]}",
        MT_ERR_FORMAT);
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0}}, \"added_tokens\": {\"id\": 1}}",
                      MT_ERR_FORMAT);
    expect_load_error("{\"model\": {\"vocab\": {\"a\": 0}, \"unk_token\": 5}}", MT_ERR_FORMAT);
    /* pipeline pieces that cannot be honoured exactly */
    expect_load_error(
        "{\"model\": {\"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"Split\", "
        "\"pattern\": {\"Regex\": \"(unclosed\"}, \"behavior\": \"Isolated\"}}",
        MT_ERR_FORMAT);
    expect_load_error(
        "{\"model\": {\"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}",
        MT_ERR_UNSUPPORTED);
    expect_load_error(
        "{\"model\": {\"vocab\": {\"a\": 0}}, \"normalizer\": {\"type\": \"Lowercase\"}}",
        MT_ERR_UNSUPPORTED);
}

static void test_missing_and_bad_companions(void **state) {
    (void)state;
    mt_tokenizer *t = (mt_tokenizer *)&t;
    remove_file("tokenizer.json");
    assert_int_equal(mt_tokenizer_from_hf_dir(dir, &t), MT_ERR_IO);
    assert_null(t);
    write_json("tokenizer.json", byte_level_json());
    write_file("tokenizer_config.json", "{\"bos_token\": ");
    assert_int_equal(mt_tokenizer_from_hf_dir(dir, &t), MT_ERR_FORMAT);
    assert_null(t);
    write_file("tokenizer_config.json", "[]");
    assert_int_equal(mt_tokenizer_from_hf_dir(dir, &t), MT_ERR_FORMAT);
    remove_file("tokenizer_config.json");
    assert_int_equal(mt_tokenizer_load("/nonexistent/model.gguf", &t), MT_ERR_IO);
    assert_null(t);
    assert_int_equal(mt_tokenizer_load(dir, &t), MT_OK);
    mt_tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_level_merges),
        cmocka_unit_test(test_byte_level_round_trip),
        cmocka_unit_test(test_special_tokens_split),
        cmocka_unit_test(test_stream_holds_split_character),
        cmocka_unit_test(test_invalid_utf8_input),
        cmocka_unit_test(test_token_bytes_and_bad_ids),
        cmocka_unit_test(test_spm_encode),
        cmocka_unit_test(test_spm_round_trip_and_stream),
        cmocka_unit_test(test_spm_metaspace_prefix),
        cmocka_unit_test(test_config_and_chatml),
        cmocka_unit_test(test_chat_gemma_and_llama3),
        cmocka_unit_test(test_gguf_byte_level),
        cmocka_unit_test(test_gguf_sentencepiece),
        cmocka_unit_test(test_gguf_placeholders_are_not_tokens),
        cmocka_unit_test(test_gguf_malformed),
        cmocka_unit_test(test_malformed_tokenizer_json),
        cmocka_unit_test(test_missing_and_bad_companions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
