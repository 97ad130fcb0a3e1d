/* meteor export: a LoRA adapter as PEFT or GGUF-LoRA, or a model with an adapter merged
 * into it as a GGUF file. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "kernels/matmul.h"
#include "train/export.h"

static const char usage_text[] =
    "meteor export -m MODEL --adapter DIR [--format peft|gguf-lora] --out PATH\n"
    "       meteor export -m MODEL [--adapter DIR] --merge [--type f16|f32|q8_0] --out FILE.gguf";

static const char about_text[] =
    "Write a LoRA adapter in a format other tools load, or a model with an adapter merged\n"
    "into its weights. --adapter takes a PEFT adapter folder.\n"
    "  --format peft       a Hugging Face PEFT folder (adapter_config.json +\n"
    "                      adapter_model.safetensors), loadable with peft on the HF model\n"
    "  --format gguf-lora  one GGUF file for llama.cpp's --lora on a GGUF of the model\n"
    "  --merge             the whole model as GGUF with W + (alpha/r)·B·A in every adapted\n"
    "                      layer (without --adapter: a plain conversion); F16 by default";

static mt_status parse_type(const char *s, mt_dtype *t) {
    if (!strcmp(s, "f16") || !strcmp(s, "F16"))
        *t = MT_F16;
    else if (!strcmp(s, "f32") || !strcmp(s, "F32"))
        *t = MT_F32;
    else if (!strcmp(s, "q8_0") || !strcmp(s, "Q8_0"))
        *t = MT_Q8_0;
    else
        return mt_fail(MT_ERR_ARG, "--type must be f16, f32 or q8_0 (got '%s')", s);
    return MT_OK;
}

/* Writing the merged model over its own source would replace the user's base model. */
static int same_file(const char *a, const char *b) {
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}

static mt_status check_flags(const char *model, const char *adapter, const char *format,
                             const char *type, int merge, const char *out) {
    if (!model) return mt_fail(MT_ERR_ARG, "no model given (use -m MODEL)");
    if (!out) return mt_fail(MT_ERR_ARG, "no output given (use --out PATH)");
    if (merge) {
        if (format)
            return mt_fail(MT_ERR_ARG,
                           "--format is for adapter export; --merge always writes GGUF");
        if (same_file(model, out))
            return mt_fail(MT_ERR_ARG, "--out %s is the model itself; choose another file", out);
        return MT_OK;
    }
    if (type) return mt_fail(MT_ERR_ARG, "--type applies to --merge only");
    if (!adapter)
        return mt_fail(MT_ERR_ARG, "nothing to export: give --adapter DIR, or --merge for a model");
    if (format && strcmp(format, "peft") && strcmp(format, "gguf-lora"))
        return mt_fail(MT_ERR_ARG, "--format must be peft or gguf-lora (got '%s')", format);
    return MT_OK;
}

static mt_status run(const char *model_path, const char *adapter, const char *format, mt_dtype type,
                     int merge, const char *out) {
    mt_model *m = NULL;
    mt_lora *l = NULL;
    mt_status s = mt_model_load(model_path, &m);
    if (s) return mt_fail_prefix(s, model_path);
    /* The readers and writers name the file in their messages already. */
    if (adapter) s = mt_lora_import_peft(adapter, m, &l);
    if (!s && merge)
        s = mt_export_merged_gguf(m, l, type, out);
    else if (!s && !strcmp(format, "peft"))
        s = mt_lora_save_peft(l, m, out);
    else if (!s)
        s = mt_lora_save_gguf(l, m, out);
    if (!s && merge)
        printf("wrote %s: %s%s merged model (%s)\n", out, m->name, l ? " + adapter," : ",",
               mt_dtype_name(type));
    else if (!s)
        printf("wrote %s: %s adapter, rank %d, alpha %g, for %s\n", out,
               strcmp(format, "peft") ? "GGUF-LoRA" : "PEFT", l->cfg.rank, (double)l->cfg.alpha,
               m->name);
    mt_lora_free(l);
    mt_model_free(m);
    return s;
}

int mt_cmd_export(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *format = NULL, *type = NULL, *out = NULL;
    int merge = 0, threads = 0;
    const mt_opt opts[] = {
        {"--model", "-m", MT_OPT_STR, &model, "MODEL",
         "GGUF file or Hugging Face folder (the base)"},
        {"--adapter", NULL, MT_OPT_STR, &adapter, "DIR", "PEFT adapter folder"},
        {"--format", NULL, MT_OPT_STR, &format, "FMT",
         "adapter format: peft (default) | gguf-lora"},
        {"--merge", NULL, MT_OPT_FLAG, &merge, NULL, "write the merged model as GGUF"},
        {"--type", NULL, MT_OPT_STR, &type, "TYPE",
         "merged matrix type: f16 (default) | f32 | q8_0"},
        {"--out", "-o", MT_OPT_STR, &out, "PATH",
         "output folder (peft) or file (gguf-lora, --merge)"},
        {"--threads", "-t", MT_OPT_INT, &threads, "N", "threads for merging (default: all cores)",
         MT_RANGE(0, MT_CLI_MAX_THREADS)},
    };
    const int n_opts = sizeof opts / sizeof *opts;
    int help = 0;
    if (mt_parse_opts(opts, n_opts, argc, argv, &help)) return mt_report_error();
    if (help) {
        mt_print_help(stdout, usage_text, about_text, opts, n_opts);
        return 0;
    }
    mt_dtype t = MT_F16;
    if (check_flags(model, adapter, format, type, merge, out) || (type && parse_type(type, &t)))
        return mt_report_error();
    if (threads < 0) {
        mt_fail(MT_ERR_ARG, "--threads must be >= 0");
        return mt_report_error();
    }
    mt_kernels_set_threads(threads);
    if (run(model, adapter, format ? format : "peft", t, merge, out)) return mt_report_error();
    return 0;
}
