"""Logits parity of meteor's forward pass with transformers (PyTorch, CPU, fp32).

Tiny randomly initialised llama / qwen2 / gemma3 models are made here and saved as
safetensors; meteor loads the same folder. Parity is checked over a 64-token sequence in
one pass and through incremental decoding with the KV cache.
"""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

REPO = Path(__file__).resolve().parents[2]
# METEOR_BUILD as everywhere else (conftest.build_dir), not always <repo>/build
DUMP = Path(os.environ.get("METEOR_BUILD", REPO / "build")) / "tools" / "dump_logits"
TOL = 1e-4
SEQ = 64


def tiny_config(arch):
    common = dict(vocab_size=512, hidden_size=64, intermediate_size=96, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6)
    if arch == "llama":
        return transformers.LlamaConfig(num_hidden_layers=3, rope_theta=10000.0,
                                        tie_word_embeddings=False, **common)
    if arch == "qwen2":
        return transformers.Qwen2Config(num_hidden_layers=3, rope_theta=1000000.0,
                                        tie_word_embeddings=True, **common)
    if arch == "gemma3":
        # 7 layers: six sliding-window layers and one global; window 8 is well inside the
        # 64-token sequence so the mask matters; query scale differs from head_dim.
        return transformers.Gemma3TextConfig(num_hidden_layers=7, sliding_window=8,
                                             query_pre_attn_scalar=24, **common)
    raise ValueError(arch)


def make_model(arch, path):
    torch.manual_seed({"llama": 1, "qwen2": 2, "gemma3": 3}[arch])
    cfg = tiny_config(arch)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    # Perturb every parameter so norms, biases and scales are not at their neutral init.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(path)
    return model


def meteor_logits(model_path, ids, vocab, split=None, tmp=None):
    out = Path(tmp) / "logits.f32"
    args = [str(DUMP), str(model_path), ",".join(map(str, ids)), str(out)]
    if split is not None:
        args.append(str(split))
    subprocess.run(args, check=True)
    return np.fromfile(out, dtype=np.float32).reshape(len(ids), vocab)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_tiny_model_logits(arch, tmp_path):
    model = make_model(arch, tmp_path / arch)
    rng = np.random.default_rng(7)
    ids = rng.integers(0, model.config.vocab_size, SEQ).tolist()
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
    full = meteor_logits(tmp_path / arch, ids, model.config.vocab_size, tmp=tmp_path)
    diff_full = np.abs(full - ref).max()
    inc = meteor_logits(tmp_path / arch, ids, model.config.vocab_size, split=SEQ // 2, tmp=tmp_path)
    diff_inc = np.abs(inc - ref).max()
    step = meteor_logits(tmp_path / arch, ids, model.config.vocab_size, split=1, tmp=tmp_path)
    diff_step = np.abs(step - ref).max()
    print(f"{arch}: max|diff| full {diff_full:.2e}, prefill+incremental {diff_inc:.2e}, "
          f"token-by-token {diff_step:.2e}")
    assert diff_full <= TOL
    assert diff_inc <= TOL
    assert diff_step <= TOL



REAL_MODELS = ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]


@pytest.mark.parametrize("name", REAL_MODELS)
def test_real_gguf_logits_match_transformers(name, models_dir, tmp_path, hf_gguf):
    """transformers' GGUF loader dequantises the same file; both run fp32."""
    gguf = models_dir / name
    model, tok = hf_gguf(gguf)
    ids = tok("What is the difference between a list and a tuple in Python?")["input_ids"]
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
    got = meteor_logits(gguf, ids, ref.shape[1], tmp=tmp_path)
    diff = np.abs(got - ref).max()
    inc = meteor_logits(gguf, ids, ref.shape[1], split=len(ids) // 2, tmp=tmp_path)
    diff_inc = np.abs(inc - ref).max()
    print(f"{name}, {len(ids)} tokens: max|diff| {diff:.2e} (incremental {diff_inc:.2e}), "
          f"logit range {ref.min():.1f}..{ref.max():.1f}")
    assert (got.argmax(-1) == ref.argmax(-1)).all()
    assert diff <= TOL
    assert diff_inc <= TOL
