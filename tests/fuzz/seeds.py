"""Small valid inputs for the fuzz stage, built in pure Python (no torch, no numpy).

    gguf_llama_bpe()   -> Gguf   llama, byte-level BPE vocabulary, F32/F16/Q8_0 tensors
    gguf_gemma_spm()   -> Gguf   gemma3, SentencePiece-style vocabulary with byte fallback
    hf_folder_files()  -> {file name: bytes} of a tiny llama Hugging Face folder
    question_lines(repo_root), sft_lines(repo_root), pref_lines(repo_root) -> JSONL bytes
    batch_prompt_lines() -> JSONL bytes for generate --batch
    generate_yaml(), train_yaml() -> YAML config bytes
    adapter_files()    -> {file name: bytes} of a PEFT LoRA adapter for the llama models

Gguf keeps a file as metadata and tensors; Gguf.encode() writes it and returns, besides the
bytes, where each header field lies, so the mutators can change one field in place (a
count, a type, a length, a dimension, an offset) and leave the rest of the file intact.
Everything is a pure function of its arguments: the same seed files on every run.
"""

from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass, field

# GGUF metadata value types.
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FORMAT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
                 BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}
# GGML tensor types used here, with (elements per block, bytes per block).
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8
BLOCK = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_Q8_0: (32, 34)}

EMBD, FF, HEADS, KV_HEADS, LAYERS, CTX = 32, 64, 4, 2, 2, 64
HEAD_DIM = EMBD // HEADS

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass
class Tensor:
    name: str
    dims: list  # GGUF order: dims[0] is the row length
    ggml_type: int
    data: bytes


@dataclass
class Gguf:
    kv: list = field(default_factory=list)  # (key, type, value); arrays: (ARRAY, (elem_type, list))
    tensors: list = field(default_factory=list)
    version: int = 3
    alignment: int = 32

    def copy(self) -> "Gguf":
        return Gguf([(k, t, v) for k, t, v in self.kv],
                    [Tensor(t.name, list(t.dims), t.ggml_type, t.data) for t in self.tensors],
                    self.version, self.alignment)

    def encode(self):
        """-> (bytes, fields): fields is a list of (kind, offset, size, extra) for the header's
        numbers: n_tensors, n_kv, key_len, value_type, array_type, array_count, str_len, value
        (extra: its GGUF type), tensor_name_len, n_dims, dim, tensor_type, tensor_offset."""
        out = bytearray()
        fields = []

        def put(kind, fmt, value, extra=None):
            fields.append((kind, len(out), struct.calcsize(fmt), extra))
            out.extend(struct.pack(fmt, value))

        def put_str(kind, s):
            b = s if isinstance(s, bytes) else s.encode("utf-8")
            put(kind, "<Q", len(b))
            out.extend(b)

        def put_value(vtype, value):
            if vtype == STRING:
                put_str("str_len", value)
            elif vtype == ARRAY:
                etype, items = value
                put("array_type", "<I", etype)
                put("array_count", "<Q", len(items))
                for item in items:
                    put_value(etype, item)
            else:
                put("value", SCALAR_FORMAT[vtype], value, vtype)

        out.extend(b"GGUF")
        out.extend(struct.pack("<I", self.version))
        put("n_tensors", "<Q", len(self.tensors))
        put("n_kv", "<Q", len(self.kv))
        for key, vtype, value in self.kv:
            put_str("key_len", key)
            put("value_type", "<I", vtype)
            put_value(vtype, value)
        offsets, pos = [], 0
        for t in self.tensors:
            pos = -(-pos // self.alignment) * self.alignment
            offsets.append(pos)
            pos += len(t.data)
        for t, off in zip(self.tensors, offsets):
            put_str("tensor_name_len", t.name)
            put("n_dims", "<I", len(t.dims))
            for d in t.dims:
                put("dim", "<Q", d)
            put("tensor_type", "<I", t.ggml_type)
            put("tensor_offset", "<Q", off)
        out.extend(b"\0" * (-len(out) % self.alignment))
        base = len(out)
        for t, off in zip(self.tensors, offsets):
            out.extend(b"\0" * (base + off - len(out)))
            out.extend(t.data)
        return bytes(out), fields


def gpt2_byte_chars():
    """GPT-2's byte -> printable character table of a byte-level vocabulary."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(keep, chars)}


BYTE_CHARS = gpt2_byte_chars()
MERGES = [("h", "e"), ("l", "l"), ("Ġ", "t"), ("Ġt", "he"), ("o", "n"), ("i", "n"), ("e", "r")]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def bpe_vocab():
    """256 byte tokens, the merges' products, then the special tokens."""
    tokens = [BYTE_CHARS[b] for b in range(256)]
    for a, b in MERGES:
        if a + b not in tokens:
            tokens.append(a + b)
    return tokens + SPECIALS


def f32_bytes(rng, n, scale=0.1):
    return struct.pack(f"<{n}f", *(rng.uniform(-scale, scale) for _ in range(n)))


def f16_bytes(rng, n, scale=0.1):
    return struct.pack(f"<{n}e", *(rng.uniform(-scale, scale) for _ in range(n)))


def q8_0_bytes(rng, n):
    out = bytearray()
    for _ in range(n // 32):
        out += struct.pack("<e", 0.004) + bytes(rng.randrange(256) for _ in range(32))
    return bytes(out)


def matrix(rng, name, rows, cols, ggml_type):
    n = rows * cols
    data = {GGML_F32: f32_bytes, GGML_F16: f16_bytes}.get(ggml_type)
    raw = data(rng, n) if data else q8_0_bytes(rng, n)
    return Tensor(name, [cols, rows], ggml_type, raw)


def ones(name, n):
    return Tensor(name, [n], GGML_F32, struct.pack(f"<{n}f", *([1.0] * n)))


def arch_kv(arch):
    return [
        ("general.architecture", STRING, arch),
        ("general.name", STRING, f"fuzz-{arch}"),
        (f"{arch}.block_count", U32, LAYERS),
        (f"{arch}.context_length", U32, CTX),
        (f"{arch}.embedding_length", U32, EMBD),
        (f"{arch}.feed_forward_length", U32, FF),
        (f"{arch}.attention.head_count", U32, HEADS),
        (f"{arch}.attention.head_count_kv", U32, KV_HEADS),
        (f"{arch}.attention.layer_norm_rms_epsilon", F32, 1e-5),
        (f"{arch}.rope.freq_base", F32, 10000.0),
    ]


def layer_tensors(rng, l, types, extra_norms=()):
    """One layer's tensors; types gives the matrices' GGML types in q,k,v,o,gate,up,down order."""
    p = f"blk.{l}."
    kv = KV_HEADS * HEAD_DIM
    shapes = [("attn_q", EMBD, EMBD), ("attn_k", kv, EMBD), ("attn_v", kv, EMBD),
              ("attn_output", EMBD, EMBD), ("ffn_gate", FF, EMBD), ("ffn_up", FF, EMBD),
              ("ffn_down", EMBD, FF)]
    out = [ones(p + "attn_norm.weight", EMBD), ones(p + "ffn_norm.weight", EMBD)]
    for (name, rows, cols), t in zip(shapes, types):
        out.append(matrix(rng, p + name + ".weight", rows, cols, t))
    for name, n in extra_norms:
        out.append(ones(p + name, n))
    return out


def gguf_llama_bpe() -> Gguf:
    rng = random.Random(1)
    tokens = bpe_vocab()
    types = [1] * (len(tokens) - len(SPECIALS)) + [3] * len(SPECIALS)
    g = Gguf()
    g.kv = arch_kv("llama") + [
        ("tokenizer.ggml.model", STRING, "gpt2"),
        ("tokenizer.ggml.pre", STRING, "gpt2"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
        ("tokenizer.ggml.merges", ARRAY, (STRING, [f"{a} {b}" for a, b in MERGES])),
        ("tokenizer.ggml.bos_token_id", U32, tokens.index("<|im_start|>")),
        ("tokenizer.ggml.eos_token_id", U32, tokens.index("<|im_end|>")),
        ("tokenizer.ggml.padding_token_id", U32, tokens.index("<|endoftext|>")),
        ("tokenizer.chat_template", STRING, CHATML_TEMPLATE),
    ]
    n_vocab = len(tokens)
    # Mixed storage types within the model, one type per weight group in each layer.
    per_layer = [[GGML_F32] * 7, [GGML_F16] * 4 + [GGML_Q8_0] * 3]
    g.tensors = [matrix(rng, "token_embd.weight", n_vocab, EMBD, GGML_F32),
                 ones("output_norm.weight", EMBD),
                 matrix(rng, "output.weight", n_vocab, EMBD, GGML_F16)]
    for l in range(LAYERS):
        g.tensors += layer_tensors(rng, l, per_layer[l])
    return g


def spm_vocab():
    """<pad> <eos> <bos> <unk>, chat markers, 256 byte-fallback tokens, then pieces."""
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    types = [3, 3, 3, 2, 3, 3]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256
    pieces = ["▁", "▁the", "▁a", "e", "t", "h", "l", "o", "▁he", "ll", "lo", "▁hello", "▁w",
              "or", "ld", "▁world", "d", "r", "w", "n", "i", "s", "▁is", "?", "."]
    tokens += pieces
    types += [1] * len(pieces)
    scores = [0.0] * (len(tokens) - len(pieces)) + [-float(i) for i in range(len(pieces))]
    return tokens, types, scores


def gguf_gemma_spm() -> Gguf:
    rng = random.Random(2)
    tokens, types, scores = spm_vocab()
    g = Gguf()
    g.kv = arch_kv("gemma3") + [
        ("gemma3.attention.key_length", U32, HEAD_DIM),
        ("gemma3.attention.value_length", U32, HEAD_DIM),
        ("gemma3.attention.sliding_window", U32, 16),
        ("tokenizer.ggml.model", STRING, "llama"),
        ("tokenizer.ggml.pre", STRING, "default"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
        ("tokenizer.ggml.scores", ARRAY, (F32, scores)),
        ("tokenizer.ggml.bos_token_id", U32, 2),
        ("tokenizer.ggml.eos_token_id", U32, 1),
        ("tokenizer.ggml.unknown_token_id", U32, 3),
        ("tokenizer.ggml.padding_token_id", U32, 0),
        ("tokenizer.ggml.add_bos_token", BOOL, True),
        ("tokenizer.ggml.add_space_prefix", BOOL, False),
    ]
    norms = [("attn_q_norm.weight", HEAD_DIM), ("attn_k_norm.weight", HEAD_DIM),
             ("post_attention_norm.weight", EMBD), ("post_ffw_norm.weight", EMBD)]
    g.tensors = [matrix(rng, "token_embd.weight", len(tokens), EMBD, GGML_Q8_0),
                 ones("output_norm.weight", EMBD)]
    for l in range(LAYERS):
        g.tensors += layer_tensors(rng, l, [GGML_F32] * 7, norms)
    return g


# ---- a Hugging Face folder ------------------------------------------------------------------


def hf_config():
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": len(bpe_vocab()),
        "hidden_size": EMBD,
        "intermediate_size": FF,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "max_position_embeddings": CTX,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
    }


def hf_tokenizer():
    tokens = bpe_vocab()
    n_plain = len(tokens) - len(SPECIALS)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": n_plain + i, "content": s, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}
                         for i, s in enumerate(SPECIALS)],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": True}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens[:n_plain])},
                  "merges": [[a, b] for a, b in MERGES]},
    }


def hf_tokenizer_config():
    return {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
            "add_bos_token": False, "chat_template": CHATML_TEMPLATE,
            "tokenizer_class": "GPT2Tokenizer"}


def safetensors_parts():
    """-> (header dict, data bytes) of the folder's model.safetensors."""
    rng = random.Random(3)
    n_vocab, kv = len(bpe_vocab()), KV_HEADS * HEAD_DIM
    shapes = [("model.embed_tokens.weight", [n_vocab, EMBD], "F32"),
              ("model.norm.weight", [EMBD], "F32"),
              ("lm_head.weight", [n_vocab, EMBD], "BF16")]
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        dt = "F32" if l == 0 else "F16"
        shapes += [(p + "input_layernorm.weight", [EMBD], "F32"),
                   (p + "post_attention_layernorm.weight", [EMBD], "F32"),
                   (p + "self_attn.q_proj.weight", [EMBD, EMBD], dt),
                   (p + "self_attn.k_proj.weight", [kv, EMBD], dt),
                   (p + "self_attn.v_proj.weight", [kv, EMBD], dt),
                   (p + "self_attn.o_proj.weight", [EMBD, EMBD], dt),
                   (p + "mlp.gate_proj.weight", [FF, EMBD], dt),
                   (p + "mlp.up_proj.weight", [FF, EMBD], dt),
                   (p + "mlp.down_proj.weight", [EMBD, FF], dt)]
    header, data = {"__metadata__": {"format": "pt"}}, bytearray()
    for name, shape, dt in shapes:
        n = 1
        for d in shape:
            n *= d
        if name.endswith("norm.weight"):
            raw = struct.pack(f"<{n}f", *([1.0] * n))
        elif dt == "F32":
            raw = f32_bytes(rng, n)
        elif dt == "F16":
            raw = f16_bytes(rng, n)
        else:  # BF16: the top half of a float32
            raw = b"".join(struct.pack("<f", rng.uniform(-0.1, 0.1))[2:] for _ in range(n))
        header[name] = {"dtype": dt, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    return header, bytes(data)


def safetensors_bytes(header: dict, data: bytes, pad: bool = True) -> bytes:
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def hf_folder_files() -> dict:
    header, data = safetensors_parts()
    return {
        "config.json": json.dumps(hf_config(), indent=2).encode(),
        "tokenizer.json": json.dumps(hf_tokenizer(), ensure_ascii=False).encode(),
        "tokenizer_config.json": json.dumps(hf_tokenizer_config(), indent=2).encode(),
        "model.safetensors": safetensors_bytes(header, data),
    }


# ---- JSONL and YAML ---------------------------------------------------------------------------


def faq_rows(repo_root, n):
    rows = []
    with open(repo_root / "data" / "python_faq_sample.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    return rows[:n]


def first_words(text, n=12):
    return " ".join(text.split()[:n])


def jsonl(rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def question_lines(repo_root) -> bytes:
    """Three questions in METEOR's raw format, as the bundled data has them (shortened)."""
    return jsonl([{**r, "question_content": first_words(r["question_content"], 24),
                   "reference_answer": first_words(r["reference_answer"], 24)}
                  for r in faq_rows(repo_root, 3)])


def sft_lines(repo_root) -> bytes:
    rows = faq_rows(repo_root, 3)
    return jsonl([{"question": r["title"], "answer": first_words(r["reference_answer"])}
                  for r in rows[:2]]
                 + [{"question_title": rows[2]["title"], "question_content": "Why?",
                     "answer": first_words(rows[2]["reference_answer"]), "system": "Be brief."}])


def pref_lines(repo_root) -> bytes:
    return jsonl([{"question": r["title"], "chosen": first_words(r["reference_answer"]),
                   "rejected": "I do not know."} for r in faq_rows(repo_root, 2)])


def generate_yaml() -> bytes:
    return (b"# generation settings\n"
            b"temperature: 0.7\n"
            b"top_p: 0.9\n"
            b"top_k: 20\n"
            b"min_p: 0.05\n"
            b"repeat_penalty: 1.1\n"
            b"repeat_last_n: 16\n"
            b"seed: 7\n"
            b"max_tokens: 2\n"
            b"ctx: 64\n"
            b"stop: [\"\\n\\n\", '###']\n"
            b"system: You are terse.\n"
            b"threads: 1\n")


def train_yaml() -> bytes:
    return (b"lora_rank: 2\n"
            b"lora_alpha: 4\n"
            b"lora_dropout: 0.0\n"
            b"lora_targets: [q, v]\n"
            b"lr: 1.0e-3\n"
            b"schedule: cosine\n"
            b"warmup: 0\n"
            b"batch_size: 2\n"
            b"max_len: 64\n"
            b"seed: 11\n"
            b"threads: 1\n"
            b"quiet: true\n")


def batch_prompt_lines() -> bytes:
    """`generate --batch` input: a prompt, a conversation, a prompt without an id."""
    return jsonl([{"prompt": "hello the world", "id": 1},
                  {"messages": [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Why is 123 odd?"}], "id": "b"},
                  {"prompt": "é and ü"}])


ADAPTER_TARGETS = ["q_proj", "v_proj", "gate_proj", "down_proj"]


def adapter_files() -> dict:
    """A PEFT LoRA adapter (rank 2) for the tiny llama models: q, v, gate and down."""
    rng = random.Random(4)
    rank, kv = 2, KV_HEADS * HEAD_DIM
    dims = {"q_proj": (EMBD, EMBD), "v_proj": (EMBD, kv), "gate_proj": (EMBD, FF),
            "down_proj": (FF, EMBD)}  # (in, out)
    header, data = {"__metadata__": {"format": "pt"}}, bytearray()
    for l in range(LAYERS):
        for m in ADAPTER_TARGETS:
            d_in, d_out = dims[m]
            part = "self_attn" if m in ("q_proj", "v_proj") else "mlp"
            base = f"base_model.model.model.layers.{l}.{part}.{m}"
            for ab, shape in (("lora_A", [rank, d_in]), ("lora_B", [d_out, rank])):
                raw = f32_bytes(rng, shape[0] * shape[1])
                header[f"{base}.{ab}.weight"] = {"dtype": "F32", "shape": shape,
                                                 "data_offsets": [len(data), len(data) + len(raw)]}
                data += raw
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 4,
              "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False,
              "target_modules": ADAPTER_TARGETS, "use_dora": False, "use_rslora": False,
              "rank_pattern": {}, "alpha_pattern": {}, "base_model_name_or_path": "fuzz-llama"}
    return {"adapter_config.json": json.dumps(config, indent=2).encode(),
            "adapter_model.safetensors": safetensors_bytes(header, bytes(data))}
