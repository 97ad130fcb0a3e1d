/* Exporting what training produced: a LoRA adapter as a Hugging Face PEFT folder or as a
 * llama.cpp GGUF-LoRA file, and a model with an adapter merged into its weights as a GGUF.
 *
 * Row order of llama Q/K. llama.cpp's converter permutes the rows of llama q_proj/k_proj
 * (each head's two RoPE halves interleaved into adjacent pairs), and meteor computes on a
 * llama GGUF in that order, so an adapter trained on such a base holds its q/k B rows in
 * GGUF order. The formats fix one order each: PEFT files are always in Hugging Face order,
 * GGUF files (adapter or merged model) always in GGUF order. The writers and
 * mt_lora_import_peft convert between the file's order and the model's, so an adapter
 * moves between bases of either format (A is unaffected: it acts on the input side). */
#ifndef MT_TRAIN_EXPORT_H
#define MT_TRAIN_EXPORT_H

#include <stdint.h>

#include "core/status.h"
#include "kernels/dtype.h"
#include "model/lora.h"
#include "model/model.h"

/* Writes dir/adapter_config.json and dir/adapter_model.safetensors (F32, PEFT tensor
 * names), each atomically; dir is created if missing (its parent must exist). */
mt_status mt_lora_save_peft(const mt_lora *l, const mt_model *m, const char *dir);

/* Reads a PEFT adapter for model m: mt_lora_load_peft plus the q/k row order of m, so
 * the adapter can be attached to m directly. Use this, not mt_lora_load_peft, for a base
 * that may be a llama GGUF. */
mt_status mt_lora_import_peft(const char *dir, const mt_model *m, mt_lora **out);

/* Writes a llama.cpp LoRA adapter (general.type "adapter", adapter.type "lora",
 * adapter.lora.alpha; tensors blk.N.<name>.weight.lora_a with GGUF ne (in, rank) and
 * .lora_b with ne (rank, out), F32), loadable with llama.cpp's --lora on a GGUF of m. */
mt_status mt_lora_save_gguf(const mt_lora *l, const mt_model *m, const char *path);

/* Writes m with l merged in (W' = W + (alpha/r)·B·A; l may be NULL) as a GGUF file.
 * out_type: MT_F32, MT_F16 or MT_Q8_0 for matrices (a matrix whose rows are not whole
 * Q8_0 blocks is written F16); vectors (norms, biases) are F32. The weights are taken
 * from m as it is in memory (fully fine-tuned weights included; Gemma norms with their
 * +1 already applied, as llama.cpp stores them). Metadata: a GGUF base's metadata
 * (tokenizer included) with general.file_type updated; for a Hugging Face folder, the
 * architecture keys from its config and the tokenizer from its tokenizer.json (byte-level
 * BPE only; other tokenizers are refused with an error that says so). */
mt_status mt_export_merged_gguf(const mt_model *m, const mt_lora *l, mt_dtype out_type,
                                const char *path);

/* Whether m holds llama Q/K rows in llama.cpp's permuted order (a llama GGUF). */
int mt_export_qk_in_gguf_order(const mt_model *m);
/* Whether a GGUF written from m must permute its Q/K rows (a llama HF folder). */
int mt_export_qk_needs_permute(const mt_model *m);
/* Maps a row of a Q or K matrix in GGUF order to its row in Hugging Face order, and back. */
int64_t mt_qk_row_gguf_to_hf(int64_t row, int head_dim);
int64_t mt_qk_row_hf_to_gguf(int64_t row, int head_dim);

#endif
