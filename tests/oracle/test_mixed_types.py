"""Fused weight groups whose members mix float and quantised types (issue 13).

q/k/v and gate/up read the same input and go through the matmul together, sharing one
quantisation of the activations to 8 bits per activation layout. A member with float rows
(F32, F16, BF16) takes the f32 activations instead; quantisers keep some tensors at higher
precision, so a group such as Q8_0, F16, Q8_0 is legal and real. The packed F16/BF16 kernel
once read the group's 8-bit buffer as f32, past its end: garbage logits, EOS at once, a
heap-buffer-overflow under ASan.

Tiny llama GGUFs with every mix of {F32, F16, BF16} x {Q8_0, Q4_K, Q6_K} inside q/k/v and
inside gate/up (the float member first, in the middle and last across the two layers),
plus one group of three kinds: greedy generation on the fast path gives the precise path's
tokens with every kernel implementation (and its logits stay within 3% of the precise
ones), and the ASan build runs them clean.
"""
import json
import os
import subprocess

import gguf
import numpy as np
import pytest

Q = gguf.GGMLQuantizationType
FLOATS = (Q.F32, Q.F16, Q.BF16)
QUANTS = (Q.Q8_0, Q.Q4_K, Q.Q6_K)

# Rows of 256 values, as the K-quants need.
EMBD, FF, HEADS, KV_HEADS, LAYERS = 256, 512, 4, 2, 2
EOS = 257  # after the 256 bytes and one merge; its output row is zero, so never the best
PROMPT = "The quick brown fox jumps over the lazy dog, then hello again."
N_NEW = 40
# Scale of the blocks' outputs (attention's o, the MLP's down): large enough to weigh in
# every logit, small enough never to decide the next token, whose lead then stays far
# above what 8-bit activations move. Larger, a block's output decided a token by a hair
# and the fast path flipped it.
O_SCALE, DOWN_SCALE = 2.0, 2.0


def byte_table():
    """GPT-2's byte -> printable character table, for a byte-level vocabulary."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = [b for b in range(256) if b not in keep]
    chars = {b: chr(b) for b in keep}
    chars.update({b: chr(256 + i) for i, b in enumerate(extra)})
    return chars


def kquant_blocks(rng, rows, cols, qtype, std):
    """Random valid K-quant blocks (gguf cannot quantise to K-quants) whose values have
    about the given standard deviation."""
    _, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = rows * cols // 256
    b = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    # The f16 scales: d, and for Q4_K dmin (7.5 d centres the 4-bit values on average).
    fields = {Q.Q4_K: [(0, 1.0), (2, 7.5)], Q.Q6_K: [(block_bytes - 2, 1.0)]}[qtype]

    def set_scales(d):
        for off, ratio in fields:
            b[:, off:off + 2] = np.full(n_blocks, d * ratio, np.float16).view(np.uint8).reshape(-1, 2)

    set_scales(1.0)
    got = gguf.quants.dequantize(b, qtype).std()
    set_scales(std / got)
    return b.reshape(rows, -1)


def add_weight(w, rng, name, rows, cols, qtype, std):
    if qtype in (Q.Q4_K, Q.Q6_K):
        w.add_tensor(name, kquant_blocks(rng, rows, cols, qtype, std), raw_dtype=qtype)
        return
    x = (rng.standard_normal((rows, cols)) * std).astype(np.float32)
    if qtype == Q.F32:
        w.add_tensor(name, x)
    elif qtype == Q.F16:
        w.add_tensor(name, x.astype(np.float16))
    else:
        w.add_tensor(name, gguf.quants.quantize(x, qtype), raw_dtype=qtype)


def write_model(path, qkv, gate_up, seed=0):
    """A tiny llama GGUF; qkv[l] and gate_up[l] give the types of layer l's group."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(LAYERS)
    w.add_context_length(256)
    w.add_embedding_length(EMBD)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    table = byte_table()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list([table[b] for b in range(256)] + ["he", "</s>"])
    w.add_token_types([1] * 256 + [1, 3])
    w.add_token_merges(["h e"])
    w.add_eos_token_id(EOS)
    rng = np.random.default_rng(seed)
    head_dim = EMBD // HEADS
    embd = rng.standard_normal((EOS + 1, EMBD)).astype(np.float32)
    w.add_tensor("token_embd.weight", embd)
    w.add_tensor("output_norm.weight", np.ones(EMBD, np.float32))
    # Token t's embedding is the output row of token next[t], next one cycle through all
    # tokens but EOS: the last token's own embedding in the residual makes next[t] the
    # clear choice, by a margin that the blocks' contributions and 8-bit activations do
    # not close, and a reply of N_NEW tokens repeats none.
    order = rng.permutation(EOS)
    nxt = np.empty(EOS, np.int64)
    nxt[order] = np.roll(order, -1)
    out = np.zeros_like(embd)
    out[nxt] = embd[:EOS] / np.sqrt(EMBD)
    w.add_tensor("output.weight", gguf.quants.quantize(out, Q.Q8_0), raw_dtype=Q.Q8_0)
    for l in range(LAYERS):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", np.ones(EMBD, np.float32))
        for name, rows, t in zip(("attn_q", "attn_k", "attn_v"),
                                 (EMBD, KV_HEADS * head_dim, KV_HEADS * head_dim), qkv[l]):
            add_weight(w, rng, p + name + ".weight", rows, EMBD, t, 1 / np.sqrt(EMBD))
        add_weight(w, rng, p + "attn_output.weight", EMBD, EMBD, Q.Q8_0, O_SCALE / np.sqrt(EMBD))
        w.add_tensor(p + "ffn_norm.weight", np.ones(EMBD, np.float32))
        for name, t in zip(("ffn_gate", "ffn_up"), gate_up[l]):
            add_weight(w, rng, p + name + ".weight", FF, EMBD, t, 1 / np.sqrt(EMBD))
        add_weight(w, rng, p + "ffn_down.weight", EMBD, FF, Q.Q8_0, DOWN_SCALE / np.sqrt(FF))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def mixes():
    """(id, qkv types per layer, gate/up types per layer) for every float x quant pair in
    each group, the float member in the middle and first/last; the other group all of the
    quantised type (the common, uniform case). Then one group of three kinds."""
    for f in FLOATS:
        for q in QUANTS:
            yield (f"qkv-{f.name}-{q.name}", [(q, f, q), (f, q, f)], [(q, q), (q, q)])
            yield (f"gate_up-{f.name}-{q.name}", [(q, q, q), (q, q, q)], [(f, q), (q, f)])
    yield ("three_kinds", [(Q.Q8_0, Q.BF16, Q.Q6_K), (Q.Q4_K, Q.F16, Q.Q8_0)],
           [(Q.F32, Q.Q4_K), (Q.Q6_K, Q.F16)])


MIXES = {m[0]: m for m in mixes()}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("mixed")
    return {key: write_model(d / f"{key}.gguf", qkv, gate_up) for key, qkv, gate_up in MIXES.values()}


def generate(exe, model, *flags, qdot=None, threads=1):
    """Greedy token ids of `meteor generate`, and the finished process. One thread unless
    asked: the tokens do not depend on the count, and on a loaded machine every parallel
    region of two threads can wait for a core."""
    env = {k: v for k, v in os.environ.items() if k != "METEOR_QDOT"}
    if qdot:
        env["METEOR_QDOT"] = qdot
    cmd = [str(exe), "generate", "-m", str(model), "-p", PROMPT, "--greedy", "-n", str(N_NEW),
           "-t", str(threads), "--json", *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout)["tokens"], proc


@pytest.fixture(scope="module")
def precise(models, meteor_bin):
    """The precise path's greedy tokens per mix: f32 activations into the f32 GEMM, no
    packed weights, each weight on its own."""
    out = {}
    for key, model in models.items():
        out[key], _ = generate(meteor_bin, model, "--precise")
        # EOS or a short reply would make equal lists prove little.
        assert len(out[key]) == N_NEW, f"{key}: the precise path stopped after {len(out[key])} tokens"
    return out


@pytest.mark.parametrize("qdot", [None, "avx2", "scalar"])
@pytest.mark.parametrize("key", MIXES)
def test_fast_greedy_equals_precise(key, qdot, models, precise, meteor_bin):
    """The fast path (packed weights and AVX-512 VNNI by default, or the AVX2 or scalar
    row kernels) picks the precise path's tokens."""
    fast, _ = generate(meteor_bin, models[key], qdot=qdot)
    assert fast == precise[key], f"{key}: the fast path ({qdot or 'auto'}) differs from the precise path"


def test_fast_greedy_two_threads(models, precise, meteor_bin):
    """Two threads split the group's rows laid end to end, a float member's among them."""
    fast, _ = generate(meteor_bin, models["three_kinds"], threads=2)
    assert fast == precise["three_kinds"]


@pytest.mark.parametrize("key", MIXES)
def test_fast_logits_close_to_precise(key, models, precise, build_dir, run_meteor, tmp_path):
    """The tokens cannot catch a member that is wrong but finite (the next token is the
    clear choice by design), so the logits of every position are compared too: the prompt
    in one pass, then the reply one token at a time through the KV cache."""
    ids = json.loads(run_meteor("tokenize", "-m", models[key], "-p", PROMPT, "--json").stdout)
    seq = ids + precise[key][:-1]
    logits = {}
    for mode in ("precise", "fast"):
        f = tmp_path / f"{mode}.f32"
        subprocess.run([str(build_dir / "tools" / "dump_logits"), str(models[key]),
                        ",".join(map(str, seq)), str(f), str(len(ids)), "1"]
                       + (["fast"] if mode == "fast" else []), check=True, timeout=600)
        logits[mode] = np.fromfile(f, dtype=np.float32).reshape(len(seq), -1)
    p, q = logits["precise"], logits["fast"]
    assert np.isfinite(q).all(), f"{key}: non-finite logits on the fast path"
    # 8-bit activations move them by a fraction of that; a wrong member, by about all.
    rel = np.abs(p - q).max() / np.abs(p).max()
    assert rel <= 0.03, f"{key}: fast logits differ by {rel:.3f} of the largest precise one"


# Under ASan, the float member of each type and each quantised type in both groups once,
# with the packed kernels (default) and the AVX2 row kernels, and two threads once.
ASAN_RUNS = [("qkv-F16-Q8_0", None, 1), ("qkv-BF16-Q6_K", None, 1), ("gate_up-F16-Q4_K", None, 1),
             ("gate_up-BF16-Q8_0", None, 1), ("qkv-F32-Q4_K", None, 1), ("three_kinds", None, 2),
             ("qkv-F16-Q8_0", "avx2", 1), ("three_kinds", "avx2", 1)]


@pytest.mark.parametrize("key,qdot,threads", ASAN_RUNS)
def test_fast_path_asan_clean(key, qdot, threads, models, precise, meteor_asan_bin):
    fast, proc = generate(meteor_asan_bin, models[key], qdot=qdot, threads=threads)
    assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr, proc.stderr
    assert fast == precise[key]


def test_precise_path_asan_clean(models, precise, meteor_asan_bin):
    tokens, proc = generate(meteor_asan_bin, models["three_kinds"], "--precise")
    assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr, proc.stderr
    assert tokens == precise["three_kinds"]
