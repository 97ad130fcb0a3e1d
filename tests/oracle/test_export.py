"""Adapter and merged-model export, checked against the tools that read those formats.

Tiny random llama / qwen2 / gemma3 models are made here (Hugging Face folders) and, for the
GGUF cases, converted to GGUF by this file the way llama.cpp's convert_hf_to_gguf.py does it
(llama Q/K rows permuted into RoPE pair order, Gemma norms stored as 1 + w). meteor makes a
random adapter on either base with `lora_tool`, exports it, and:

(a) peft loads meteor's PEFT export onto the transformers model: logits equal meteor's with
    the adapter (max |diff| <= 1e-4), for every architecture.
(b) On a llama GGUF base meteor holds q/k in GGUF row order; the PEFT export must undo the
    permutation, so HF(folder) + PEFT == meteor(GGUF) + adapter.
(c) A merged F32 GGUF gives meteor's base+adapter logits (<= 1e-4); F16 and Q8_0 merges
    load and stay close (tolerances below, measured values printed).
(d) The GGUF-LoRA file has llama.cpp's names, shapes and metadata (read with `gguf`), and
    llama.cpp (llama-cpp-python) loads base + adapter with logits matching meteor's.
(e) A merged GGUF written from a Hugging Face folder (with a byte-level BPE tokenizer
    trained here) has the same tensors as the llama.cpp-style conversion, peft's logits,
    and a tokenizer that meteor and llama.cpp read back to tokenizers' token ids.
"""
import copy
import json
import shutil
import subprocess
from pathlib import Path

import gguf
import numpy as np
import peft
import pytest
import torch
import transformers
from safetensors.numpy import load_file, save_file

from test_logits_parity import tiny_config

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "build" / "tools"
LORA_TOOL = TOOLS / "lora_tool"
DUMP = TOOLS / "dump_logits"
TOL = 1e-4
SEQ = 24
RANK, ALPHA = 4, 8.0


def export_config(arch):
    cfg = tiny_config(arch)
    if arch == "gemma3":
        # A GGUF (meteor's reader, llama.cpp) scales queries by 1/sqrt(head_dim): a model
        # that goes through GGUF must have query_pre_attn_scalar == head_dim.
        cfg.query_pre_attn_scalar = cfg.head_dim
    return cfg


def make_model(arch, path):
    torch.manual_seed({"llama": 11, "qwen2": 12, "gemma3": 13}[arch])
    model = transformers.AutoModelForCausalLM.from_config(export_config(arch),
                                                          dtype=torch.float32).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(path)
    return model


def tool(*args):
    subprocess.run([str(LORA_TOOL), *map(str, args)], check=True)


def read_logits(path, n, vocab):
    return np.fromfile(path, dtype=np.float32).reshape(n, vocab)


def meteor_logits(model, ids, vocab, tmp, adapter=None):
    out = Path(tmp) / "logits.f32"
    args = ["logits", model, ",".join(map(str, ids)), out]
    if adapter:
        args += ["--adapter", adapter]
    tool(*args)
    return read_logits(out, len(ids), vocab)


def random_adapter(model, out_dir, ids, tmp, seed=5, gguf_lora=None, targets="all"):
    """meteor's random adapter on `model`; returns meteor's logits with it attached."""
    logits = Path(tmp) / f"adapter_logits_{seed}.f32"
    args = ["random", model, out_dir, "--rank", RANK, "--alpha", ALPHA, "--seed", seed,
            "--targets", targets, "--logits", ",".join(map(str, ids)), logits]
    if gguf_lora:
        args += ["--gguf-lora", gguf_lora]
    tool(*args)
    return logits


def hf_logits(model, ids, adapter=None):
    m = model
    if adapter:
        m = peft.PeftModel.from_pretrained(copy.deepcopy(model), str(adapter)).eval()
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].numpy()


def token_ids(vocab, n=SEQ, seed=3):
    return np.random.default_rng(seed).integers(0, vocab, n).tolist()


# --- a minimal convert_hf_to_gguf for the tiny models ---------------------------------

def permute_qk(w, n_head):
    """llama.cpp's LlamaModel.permute: each head's rows (2, d/2) -> (d/2, 2)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


GGUF_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
    "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
    "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm",
}


def write_vocab(w, n_vocab):
    """A SentencePiece-style vocabulary so llama.cpp accepts the file (ids are fed directly)."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"\u2581t{i}" for i in range(n_vocab - len(tokens))]
    types = [2, 3, 3] + [6] * 256 + [1] * (n_vocab - 259)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(n_vocab)])
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)


def hf_to_gguf(model, arch, path):
    cfg = model.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"tiny-{arch}")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_rope_dimension_count(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rope = cfg.rope_parameters
    rope = rope.get("full_attention", rope)
    w.add_rope_freq_base(rope["rope_theta"])
    if arch == "gemma3":
        w.add_sliding_window(cfg.sliding_window)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    write_vocab(w, cfg.vocab_size)
    for name, t in model.state_dict().items():
        t = t.detach().numpy().astype(np.float32)
        if name == "lm_head.weight":
            if cfg.tie_word_embeddings:
                continue
            out = "output.weight"
        elif name == "model.embed_tokens.weight":
            out = "token_embd.weight"
        elif name == "model.norm.weight":
            out = "output_norm.weight"
        else:
            parts = name.split(".")  # model.layers.L.<module...>.weight|bias
            layer, module, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
            if module == "post_attention_layernorm":
                base = "post_attention_norm" if arch == "gemma3" else "ffn_norm"
            else:
                base = GGUF_NAMES[module]
            out = f"blk.{layer}.{base}.{kind}"
            if arch == "llama" and module == "self_attn.q_proj":
                t = permute_qk(t, cfg.num_attention_heads)
            if arch == "llama" and module == "self_attn.k_proj":
                t = permute_qk(t, cfg.num_key_value_heads)
        if arch == "gemma3" and name.endswith("norm.weight"):
            t = t + 1.0
        w.add_tensor(out, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Per arch: (model, folder, gguf file), made once."""
    root = tmp_path_factory.mktemp("tiny")
    made = {}

    def get(arch):
        if arch not in made:
            folder = root / arch
            model = make_model(arch, folder)
            g = root / f"{arch}.gguf"
            hf_to_gguf(model, arch, g)
            made[arch] = (model, folder, g)
        return made[arch]

    return get


ARCHS = ["llama", "qwen2", "gemma3"]


def test_tiny_gguf_conversion_matches_transformers(tiny, tmp_path):
    """The converter above is right (else (b)-(d) would test nothing)."""
    for arch in ARCHS:
        model, folder, g = tiny(arch)
        ids = token_ids(model.config.vocab_size)
        diff = np.abs(meteor_logits(g, ids, model.config.vocab_size, tmp_path) -
                      hf_logits(model, ids)).max()
        print(f"{arch}: meteor(GGUF) vs transformers max|diff| {diff:.2e}")
        assert diff <= TOL


# --- (a) PEFT round trip on Hugging Face folders ---------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_peft_export_loads_in_peft(arch, tiny, tmp_path):
    model, folder, _ = tiny(arch)
    V = model.config.vocab_size
    ids = token_ids(V)
    adapter = tmp_path / "adapter"
    ours = read_logits(random_adapter(folder, adapter, ids, tmp_path), SEQ, V)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["task_type"] == "CAUSAL_LM"
    assert cfg["r"] == RANK and cfg["lora_alpha"] == ALPHA and cfg["lora_dropout"] == 0.05
    assert sorted(cfg["target_modules"]) == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    assert cfg["bias"] == "none" and cfg["fan_in_fan_out"] is False
    assert cfg["use_rslora"] is False and cfg["inference_mode"] is True
    tensors = load_file(adapter / "adapter_model.safetensors")
    assert len(tensors) == 2 * 7 * model.config.num_hidden_layers
    assert all(t.dtype == np.float32 for t in tensors.values())

    ref = hf_logits(model, ids, adapter)
    base = hf_logits(model, ids)
    diff = np.abs(ours - ref).max()
    effect = np.abs(ref - base).max()
    print(f"{arch}: meteor+adapter vs peft max|diff| {diff:.2e} (adapter changes logits by "
          f"up to {effect:.2f})")
    assert effect > 0.1  # the adapter matters, so equality means something
    assert diff <= TOL

    # meteor reads its own export back to the same logits, and re-saving is byte-identical.
    again = meteor_logits(folder, ids, V, tmp_path, adapter=adapter)
    assert np.abs(again - ours).max() <= 1e-6
    tool("resave", folder, adapter, tmp_path / "again")
    for f in ("adapter_config.json", "adapter_model.safetensors"):
        assert (adapter / f).read_bytes() == (tmp_path / "again" / f).read_bytes(), f


def test_peft_export_of_some_targets(tiny, tmp_path):
    model, folder, _ = tiny("qwen2")
    V = model.config.vocab_size
    ids = token_ids(V)
    adapter = tmp_path / "adapter"
    ours = read_logits(random_adapter(folder, adapter, ids, tmp_path, targets="q,v,down"),
                       SEQ, V)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert sorted(cfg["target_modules"]) == ["down_proj", "q_proj", "v_proj"]
    assert len(load_file(adapter / "adapter_model.safetensors")) == 2 * 3 * 3
    assert np.abs(ours - hf_logits(model, ids, adapter)).max() <= TOL


# --- (b) llama GGUF base: q/k rows back in Hugging Face order --------------------------

def test_peft_export_from_llama_gguf_unpermutes_qk(tiny, tmp_path):
    model, folder, g = tiny("llama")
    V = model.config.vocab_size
    ids = token_ids(V)
    adapter = tmp_path / "adapter"
    ours = read_logits(random_adapter(g, adapter, ids, tmp_path), SEQ, V)  # GGUF order
    ref = hf_logits(model, ids, adapter)
    diff = np.abs(ours - ref).max()
    print(f"llama GGUF + adapter vs HF folder + exported PEFT: max|diff| {diff:.2e}")
    assert diff <= TOL
    # Importing the PEFT folder onto either base gives the same model again.
    for base in (g, folder):
        again = meteor_logits(base, ids, V, tmp_path, adapter=adapter)
        assert np.abs(again - ours).max() <= TOL, base

    # Control: without the un-permutation peft would compute something else.
    t = load_file(adapter / "adapter_model.safetensors")
    cfg = model.config
    for k in t:
        if ".q_proj.lora_B" in k:
            t[k] = np.ascontiguousarray(permute_qk(t[k], cfg.num_attention_heads))
        if ".k_proj.lora_B" in k:
            t[k] = np.ascontiguousarray(permute_qk(t[k], cfg.num_key_value_heads))
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "adapter_config.json").write_bytes((adapter / "adapter_config.json").read_bytes())
    save_file(t, wrong / "adapter_model.safetensors", metadata={"format": "pt"})
    bad = np.abs(hf_logits(model, ids, wrong) - ours).max()
    print(f"control (GGUF row order left in the PEFT file): max|diff| {bad:.2e}")
    assert bad > 100 * TOL


# --- (c) merged GGUF ------------------------------------------------------------------

# Max |diff| of logits against base+adapter computed unmerged in f32, relative to the
# largest |logit| (~3.6 on these models): F32 must be exact up to summation order
# (measured <= 4e-6 absolute); F16/Q8_0 round every weight once, measured 0.8-2.0e-3 (F16)
# and 2.1-3.1e-2 (Q8_0) relative.
MERGE_TOL = {"f32": 1e-5, "f16": 5e-3, "q8_0": 6e-2}


@pytest.mark.parametrize("arch", ARCHS)
def test_merged_gguf(arch, tiny, tmp_path):
    model, folder, g = tiny(arch)
    V = model.config.vocab_size
    ids = token_ids(V)
    adapter = tmp_path / "adapter"
    ref = read_logits(random_adapter(g, adapter, ids, tmp_path), SEQ, V)
    src = gguf.GGUFReader(str(g))
    for t in ("f32", "f16", "q8_0"):
        out = tmp_path / f"merged-{t}.gguf"
        tool("merge", g, out, t, "--adapter", adapter)
        got = meteor_logits(out, ids, V, tmp_path)
        diff = np.abs(got - ref).max()
        rel = diff / np.abs(ref).max()
        print(f"{arch} merged {t}: max|diff| vs base+adapter {diff:.2e} ({rel:.1e} of the "
              f"largest logit)")
        assert diff <= TOL if t == "f32" else rel <= MERGE_TOL[t]
        r = gguf.GGUFReader(str(out))
        ftype = {"f32": 0, "f16": 1, "q8_0": 7}[t]
        assert r.fields["general.file_type"].contents() == ftype
        assert r.fields["general.architecture"].contents() == arch
        assert r.fields["tokenizer.ggml.tokens"].contents() == \
            src.fields["tokenizer.ggml.tokens"].contents()
        want = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
                "q8_0": gguf.GGMLQuantizationType.Q8_0}[t]
        names = {x.name for x in src.tensors}
        assert {x.name for x in r.tensors} == names
        for x in r.tensors:
            expect = gguf.GGMLQuantizationType.F32 if len(x.shape) == 1 else want
            if t == "q8_0" and len(x.shape) == 2 and x.shape[0] % 32:
                expect = gguf.GGMLQuantizationType.F16
            assert x.tensor_type == expect, x.name


def test_merged_without_adapter_is_the_base(tiny, tmp_path):
    model, folder, g = tiny("gemma3")
    V = model.config.vocab_size
    ids = token_ids(V)
    out = tmp_path / "plain.gguf"
    tool("merge", g, out, "f32")
    a, b = gguf.GGUFReader(str(g)), gguf.GGUFReader(str(out))
    src = {t.name: np.array(t.data) for t in a.tensors}
    for t in b.tensors:  # norms keep their stored +1, matrices are bit-identical
        assert np.array_equal(np.array(t.data), src[t.name]), t.name
    assert np.abs(meteor_logits(out, ids, V, tmp_path) - hf_logits(model, ids)).max() <= TOL


def test_merged_real_model_q8_0(smollm_gguf, tmp_path):
    """SmolLM2 (Q4_1) + a random adapter, merged to Q8_0. Requantising Q4_1 weights to Q8_0
    moves logits by itself (measured ~1.05 of a logit range ~31, argmax unchanged); merging
    must add next to nothing to that (measured ~1.07)."""
    ids = [1, 504, 3458, 282, 260, 1789, 1686, 30, 2, 1212, 314, 253]
    V = 49152
    adapter = tmp_path / "adapter"
    ref = read_logits(random_adapter(smollm_gguf, adapter, ids, tmp_path), len(ids), V)
    base = meteor_logits(smollm_gguf, ids, V, tmp_path)
    tool("merge", smollm_gguf, tmp_path / "plain.gguf", "q8_0")
    plain = np.abs(meteor_logits(tmp_path / "plain.gguf", ids, V, tmp_path) - base).max()
    tool("merge", smollm_gguf, tmp_path / "merged.gguf", "q8_0", "--adapter", adapter)
    got = meteor_logits(tmp_path / "merged.gguf", ids, V, tmp_path)
    diff, effect = np.abs(got - ref).max(), np.abs(ref - base).max()
    print(f"SmolLM2 Q8_0: requantisation alone moves logits by {plain:.3f}; merged vs "
          f"base+adapter {diff:.3f}; the adapter moves logits by {effect:.2f}")
    assert (got.argmax(-1) == ref.argmax(-1)).mean() >= 0.9
    assert diff <= 1.25 * plain + 0.05


# --- (d) GGUF-LoRA --------------------------------------------------------------------

def test_gguf_lora_file_layout(tiny, tmp_path):
    model, folder, g = tiny("llama")
    cfg = model.config
    ids = token_ids(cfg.vocab_size)
    adapter, lora = tmp_path / "adapter", tmp_path / "lora.gguf"
    random_adapter(folder, adapter, ids, tmp_path, gguf_lora=lora)
    r = gguf.GGUFReader(str(lora))
    assert r.fields["general.type"].contents() == "adapter"
    assert r.fields["adapter.type"].contents() == "lora"
    assert r.fields["general.architecture"].contents() == "llama"
    assert r.fields["adapter.lora.alpha"].contents() == ALPHA
    peft_t = load_file(adapter / "adapter_model.safetensors")
    got = {t.name: t for t in r.tensors}
    assert len(got) == len(peft_t)
    for L in range(cfg.num_hidden_layers):
        for mod, gname in [("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"),
                           ("self_attn.v_proj", "attn_v"), ("self_attn.o_proj", "attn_output"),
                           ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
                           ("mlp.down_proj", "ffn_down")]:
            A = peft_t[f"base_model.model.model.layers.{L}.{mod}.lora_A.weight"]
            B = peft_t[f"base_model.model.model.layers.{L}.{mod}.lora_B.weight"]
            a, b = got[f"blk.{L}.{gname}.weight.lora_a"], got[f"blk.{L}.{gname}.weight.lora_b"]
            assert a.tensor_type == b.tensor_type == gguf.GGMLQuantizationType.F32
            assert list(a.shape) == [A.shape[1], RANK]  # GGUF ne = (in, rank)
            assert list(b.shape) == [RANK, B.shape[0]]  # GGUF ne = (rank, out)
            if mod == "self_attn.q_proj":
                B = permute_qk(B, cfg.num_attention_heads)
            if mod == "self_attn.k_proj":
                B = permute_qk(B, cfg.num_key_value_heads)
            assert np.array_equal(np.array(a.data).reshape(A.shape), A)
            assert np.array_equal(np.array(b.data).reshape(B.shape), B)


def llama_cpp_logits(model_path, ids, lora=None):
    import llama_cpp
    # An f32 KV cache, so the tiny F32 models compare at f32 precision (llama.cpp's
    # default f16 cache alone moves logits by ~2e-3).
    kw = dict(model_path=str(model_path), n_ctx=64, n_batch=64, logits_all=True, verbose=False,
              n_threads=2, seed=0, type_k=0, type_v=0)
    if lora:
        kw["lora_path"] = str(lora)
    llm = llama_cpp.Llama(**kw)
    llm.eval(ids)
    out = np.array(llm.scores[:len(ids)], dtype=np.float32)
    llm.close()
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_gguf_lora_in_llama_cpp(arch, tiny, tmp_path):
    """llama.cpp (f32 weights, f32 KV cache) with meteor's GGUF-LoRA equals meteor with the
    adapter to ~2e-6 for llama and qwen2. For gemma3 llama.cpp's own result differs from
    meteor's (and transformers') by ~2e-3 with or without an adapter (ggml's GELU goes
    through an f16 table), so there the bound is that the adapter adds no error of its own."""
    pytest.importorskip("llama_cpp")
    model, folder, g = tiny(arch)
    V = model.config.vocab_size
    ids = token_ids(V)
    plain = llama_cpp_logits(g, ids)
    d_base = np.abs(plain - meteor_logits(g, ids, V, tmp_path)).max()
    # An adapter made on the folder (HF order) and one made on the GGUF (GGUF order) both
    # end up in GGUF order in the GGUF-LoRA file.
    for base in (folder, g):
        adapter, lora = tmp_path / "adapter", tmp_path / "lora.gguf"
        ours = read_logits(random_adapter(base, adapter, ids, tmp_path, gguf_lora=lora), SEQ, V)
        theirs = llama_cpp_logits(g, ids, lora)
        diff, effect = np.abs(theirs - ours).max(), np.abs(theirs - plain).max()
        print(f"{arch} (adapter made on {Path(base).name}): llama.cpp + GGUF-LoRA vs meteor "
              f"max|diff| {diff:.2e} (without adapter {d_base:.2e}); the adapter moves "
              f"llama.cpp's logits by {effect:.2f}")
        assert effect > 0.1
        assert diff <= max(TOL, 1.5 * d_base)


def test_gguf_lora_real_model_in_llama_cpp(smollm_gguf, tmp_path):
    """SmolLM2 (Q4_1): llama.cpp quantises activations for its Q4_1 dot products, so the two
    engines differ by ~1.6 (of a logit range ~31) even without an adapter. With meteor's
    GGUF-LoRA they differ by about as much, and the change the adapter makes in llama.cpp
    follows the change it makes in meteor (correlation measured 0.97)."""
    pytest.importorskip("llama_cpp")
    ids = [1, 504, 3458, 282, 260, 1789, 1686, 30, 2, 1212, 314, 253]
    V = 49152
    adapter, lora = tmp_path / "adapter", tmp_path / "lora.gguf"
    ours = read_logits(random_adapter(smollm_gguf, adapter, ids, tmp_path, gguf_lora=lora),
                       len(ids), V)
    base = meteor_logits(smollm_gguf, ids, V, tmp_path)
    theirs = llama_cpp_logits(smollm_gguf, ids, lora)
    plain = llama_cpp_logits(smollm_gguf, ids)
    d_base, d_lora = np.abs(plain - base).max(), np.abs(theirs - ours).max()
    corr = np.corrcoef((ours - base).ravel(), (theirs - plain).ravel())[0, 1]
    print(f"SmolLM2 Q4_1: llama.cpp vs meteor max|diff| base {d_base:.3f}, with GGUF-LoRA "
          f"{d_lora:.3f}; correlation of the adapter's effect {corr:.3f}")
    assert d_lora <= 1.5 * d_base + 0.1
    assert corr >= 0.95


# --- merged GGUF from a Hugging Face folder ---------------------------------------------

RE_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
            r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
CORPUS = [
    "How do I copy a list in Python? Use list(x) or x[:] or copy.copy(x).",
    "Why are default arguments shared between objects? They are evaluated once, at def time.",
    "What is the difference between a tuple and a list? Tuples are immutable; lists are not.",
    "for i in range(10):\n    print(i * 2, end=' ')\n",
    "The year 2024 had 366 days; 3.14159 is close to pi, and 1e-5 is small.",
    "Numbers like 12345 and 987654321 are split into digits by some tokenizers.",
    "Ünïcödé text, emoji 🚀 and CJK 日本語 should survive a round trip.",
] * 20
TEXTS = ["How do I copy a tuple in Python 3.12?", "  leading spaces\tand\ttabs\n\nnew lines",
         "digits 0123456789 and 42.5%", "Ünïcödé 🚀 日本語 mixed with ASCII",
         "<|im_start|>user\nhello<|im_end|>", "def f(x):\n    return x ** 2\n"]
PRE = {"gpt2": "gpt-2", "smollm": "smollm", "qwen2": "qwen2"}


def add_tokenizer(folder, style, byte_fallback=False):
    """A small byte-level BPE trained here (vocabulary 400 < the model's 512)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(byte_fallback=byte_fallback))
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=style != "qwen2")
    if style == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(True), bl])
    elif style == "qwen2":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(RE_QWEN2), behavior="isolated"), bl])
    else:
        tok.pre_tokenizer = bl
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, show_progress=False,
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "eos_token": "<|im_end|>", "bos_token": None, "add_bos_token": False,
        "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
                         "<|im_end|>\n{% endfor %}"}))
    return tok


@pytest.mark.parametrize("arch,style", [("llama", "gpt2"), ("qwen2", "qwen2"),
                                        ("gemma3", "smollm")])
def test_merged_from_hf_folder(arch, style, tiny, tmp_path, meteor_bin):
    model, src, g = tiny(arch)
    folder = tmp_path / arch
    shutil.copytree(src, folder)
    tok = add_tokenizer(folder, style)
    V = model.config.vocab_size
    ids = token_ids(V)
    adapter = tmp_path / "adapter"
    ref = read_logits(random_adapter(folder, adapter, ids, tmp_path), SEQ, V)
    merged = tmp_path / "merged.gguf"
    tool("merge", folder, merged, "f32", "--adapter", adapter)
    got = meteor_logits(merged, ids, V, tmp_path)
    diff = np.abs(got - ref).max()
    peft_diff = np.abs(got - hf_logits(model, ids, adapter)).max()
    print(f"{arch} folder -> merged F32 GGUF: max|diff| vs meteor base+adapter {diff:.2e}, "
          f"vs peft {peft_diff:.2e}")
    assert diff <= TOL and peft_diff <= TOL

    # Without an adapter the tensors are exactly those of llama.cpp-style conversion
    # (llama q/k rows permuted, Gemma norms + 1).
    plain = tmp_path / "plain.gguf"
    tool("merge", folder, plain, "f32")
    ours = {t.name: np.array(t.data) for t in gguf.GGUFReader(str(plain)).tensors}
    theirs = {t.name: np.array(t.data) for t in gguf.GGUFReader(str(g)).tensors}
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert np.array_equal(ours[name], theirs[name]), name

    r = gguf.GGUFReader(str(merged))
    f = {k: v.contents() for k, v in r.fields.items() if not k.startswith("GGUF.")}
    assert f["general.architecture"] == arch
    assert f["tokenizer.ggml.model"] == "gpt2" and f["tokenizer.ggml.pre"] == PRE[style]
    tokens = f["tokenizer.ggml.tokens"]
    assert len(tokens) == V and tokens[400:] == [f"[PAD{i}]" for i in range(400, V)]
    assert tokens[:400] == [tok.id_to_token(i) for i in range(400)]
    types = f["tokenizer.ggml.token_type"]
    assert types[:3] == [3, 3, 3] and set(types[3:400]) == {1} and set(types[400:]) == {5}
    assert len(f["tokenizer.ggml.merges"]) == len(json.loads(
        (folder / "tokenizer.json").read_text())["model"]["merges"])
    assert f["tokenizer.ggml.eos_token_id"] == tok.token_to_id("<|im_end|>")
    assert f["tokenizer.ggml.add_bos_token"] is False
    assert "<|im_start|>" in f["tokenizer.chat_template"]
    assert f[f"{arch}.block_count"] == model.config.num_hidden_layers

    # meteor's tokenizer read back from the GGUF splits text as tokenizers does.
    batch = tmp_path / "texts.json"
    batch.write_text(json.dumps(TEXTS))
    out = subprocess.run([str(meteor_bin), "tokenize", "-m", merged, "--batch", batch,
                          "--no-special", "--parse-special"], check=True, capture_output=True,
                         text=True).stdout
    want = [tok.encode(t, add_special_tokens=False).ids for t in TEXTS]
    assert json.loads(out) == want

    if arch != "gemma3":  # llama.cpp's gemma3 GELU differs by ~2e-3 (see above)
        try:
            import llama_cpp
        except ImportError:
            return
        theirs = llama_cpp_logits(merged, ids)
        d = np.abs(theirs - ref).max()
        print(f"{arch}: llama.cpp on meteor's merged GGUF vs meteor base+adapter {d:.2e}")
        assert d <= TOL
        llm = llama_cpp.Llama(model_path=str(merged), vocab_only=True, verbose=False)
        for t, w in zip(TEXTS[:4], want):
            assert llm.tokenize(t.encode(), add_bos=False, special=False) == w, t
        llm.close()


def test_merged_from_hf_folder_refusals(tiny, tmp_path):
    model, src, _ = tiny("llama")
    folder = tmp_path / "llama"
    shutil.copytree(src, folder)

    def merge_error(f):
        p = subprocess.run([str(LORA_TOOL), "merge", f, tmp_path / "m.gguf", "f16"],
                           capture_output=True, text=True)
        assert p.returncode != 0 and not (tmp_path / "m.gguf").exists()
        return p.stderr

    assert "has no tokenizer.json" in merge_error(folder)
    add_tokenizer(folder, "gpt2", byte_fallback=True)
    assert "SentencePiece-style" in merge_error(folder)
    # Gemma 3 with query_pre_attn_scalar != head_dim: GGUF readers would scale differently.
    from test_logits_parity import make_model as parity_model
    gemma = tmp_path / "gemma3"
    parity_model("gemma3", gemma)
    add_tokenizer(gemma, "gpt2")
    assert "query_pre_attn_scalar" in merge_error(gemma)


# --- the CLI verb ---------------------------------------------------------------------

def test_cli_export(tiny, tmp_path, run_meteor):
    model, folder, g = tiny("llama")
    V = model.config.vocab_size
    ids = token_ids(V)
    adapter = tmp_path / "adapter"
    ref = read_logits(random_adapter(g, adapter, ids, tmp_path, gguf_lora=tmp_path / "ref.gguf"),
                      SEQ, V)
    out = run_meteor("export", "-m", g, "--adapter", adapter, "--out", tmp_path / "peft").stdout
    assert "PEFT adapter" in out
    for f in ("adapter_config.json", "adapter_model.safetensors"):
        assert (adapter / f).read_bytes() == (tmp_path / "peft" / f).read_bytes(), f
    run_meteor("export", "-m", g, "--adapter", adapter, "--format", "gguf-lora", "--out",
               tmp_path / "lora.gguf")
    assert (tmp_path / "lora.gguf").read_bytes() == (tmp_path / "ref.gguf").read_bytes()
    run_meteor("export", "-m", g, "--adapter", adapter, "--merge", "--type", "f32", "--out",
               tmp_path / "merged.gguf")
    assert np.abs(meteor_logits(tmp_path / "merged.gguf", ids, V, tmp_path) - ref).max() <= TOL
    run_meteor("export", "-m", g, "--merge", "--out", tmp_path / "f16.gguf")  # F16 default
    r = gguf.GGUFReader(str(tmp_path / "f16.gguf"))
    assert r.fields["general.file_type"].contents() == 1
    assert "--merge" in run_meteor("export", "--help").stdout

    for args, msg in [
        (["-m", g, "--adapter", adapter], "no output given"),
        (["-m", g, "--out", tmp_path / "x"], "nothing to export"),
        (["-m", g, "--adapter", adapter, "--format", "onnx", "--out", tmp_path / "x"],
         "--format must be peft or gguf-lora"),
        (["-m", g, "--merge", "--type", "q4_0", "--out", tmp_path / "x"], "--type must be"),
        (["-m", g, "--merge", "--out", g], "is the model itself"),
        (["-m", g, "--adapter", tmp_path / "nope", "--out", tmp_path / "x"], "adapter_config"),
    ]:
        p = run_meteor("export", *args, check=False)
        assert p.returncode != 0
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("meteor: error:") and msg in lines[0], \
            p.stderr
    assert not (tmp_path / "x").exists()


# --- errors -----------------------------------------------------------------------------

def test_export_errors(tiny, tmp_path):
    model, folder, g = tiny("qwen2")
    ids = token_ids(model.config.vocab_size)
    adapter = tmp_path / "adapter"
    random_adapter(folder, adapter, ids, tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = subprocess.run([str(LORA_TOOL), "resave", folder, adapter, blocker], capture_output=True,
                       text=True)
    assert p.returncode != 0 and "a file of that name exists" in p.stderr
    p = subprocess.run([str(LORA_TOOL), "resave", folder, adapter, tmp_path / "no" / "such"],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "cannot create folder" in p.stderr
    # An adapter for another model is refused on import, naming what does not fit.
    p = subprocess.run([str(LORA_TOOL), "logits", tiny("gemma3")[1], "1,2", tmp_path / "x.f32",
                        "--adapter", adapter], capture_output=True, text=True)
    assert p.returncode != 0 and "adapter has no tensor" in p.stderr
