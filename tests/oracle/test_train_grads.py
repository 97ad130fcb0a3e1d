"""Gradients of meteor's backward pass equal PyTorch autograd.

Tiny random llama / qwen2 / gemma3 models; a padded batch of three sequences of
different lengths with prompt tokens masked out of the loss (labels -100) and right
padding (attention_mask 0) — meteor receives the same sequences unpadded. LoRA mode
compares every LoRA parameter with a PEFT model; full mode compares every weight.
"""
import json
import subprocess
from pathlib import Path

import numpy as np
import peft
import pytest
import torch
import transformers

from test_logits_parity import tiny_config

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "build" / "tools" / "train_grads"
REL_TOL = 1e-3
LENGTHS = [11, 7, 16]
PROMPT = 3  # leading tokens of each sequence excluded from the loss


def make_batch(vocab, seed):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, vocab, n).tolist() for n in LENGTHS]
    labels = [[-100] * PROMPT + s[PROMPT:] for s in seqs]
    return seqs, labels


def padded(seqs, labels):
    T = max(LENGTHS)
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    lab = torch.full((len(seqs), T), -100, dtype=torch.long)
    for i, (s, l) in enumerate(zip(seqs, labels)):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
        lab[i, :len(l)] = torch.tensor(l)
    return ids, mask, lab


def make_model(arch, seed):
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(tiny_config(arch), dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def run_tool(model_dir, seqs, labels, tmp, *flags):
    spec = tmp / "spec.json"
    spec.write_text(json.dumps({"input_ids": seqs, "labels": labels}))
    out = subprocess.run([str(TOOL), str(model_dir), str(spec), *map(str, flags)], check=True,
                         capture_output=True, text=True).stdout
    res = json.loads(out)
    return res["loss"], {k: np.array(v, dtype=np.float64) for k, v in res["grads"].items()}


def torch_loss_and_grads(model, seqs, labels):
    ids, mask, lab = padded(seqs, labels)
    model.zero_grad()
    loss = model(input_ids=ids, attention_mask=mask, labels=lab).loss
    loss.backward()
    return loss.item(), {n: p.grad.detach().numpy().astype(np.float64).ravel()
                         for n, p in model.named_parameters() if p.grad is not None}


def compare(ours, theirs, expect):
    worst = 0.0
    assert set(expect) <= set(ours), sorted(set(expect) - set(ours))[:5]
    for name in expect:
        ref = theirs[name]
        got = ours[name]
        assert got.shape == ref.shape, name
        scale = max(np.abs(ref).max(), 1e-6)
        rel = np.abs(got - ref).max() / scale
        worst = max(worst, rel)
        assert rel <= REL_TOL, f"{name}: relative error {rel:.2e}"
    return worst


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
@pytest.mark.parametrize("checkpoint", [False, True])
def test_full_gradients(arch, checkpoint, tmp_path):
    model = make_model(arch, 11)
    model.save_pretrained(tmp_path / "m")
    seqs, labels = make_batch(model.config.vocab_size, 5)
    ref_loss, ref = torch_loss_and_grads(model, seqs, labels)
    flags = ["--full"] + (["--checkpoint"] if checkpoint else [])
    loss, ours = run_tool(tmp_path / "m", seqs, labels, tmp_path, *flags)
    assert abs(loss - ref_loss) <= 1e-5 * max(1.0, abs(ref_loss))
    worst = compare(ours, ref, ref.keys())
    print(f"{arch} full (checkpoint={checkpoint}): {len(ref)} tensors, loss {loss:.6f} vs "
          f"{ref_loss:.6f}, worst relative error {worst:.1e}")


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_lora_gradients(arch, tmp_path):
    model = make_model(arch, 12)
    model.save_pretrained(tmp_path / "m")
    cfg = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                          "up_proj", "down_proj"])
    pm = peft.get_peft_model(model, cfg)
    with torch.no_grad():  # PEFT starts B at zero; random A and B exercise both paths
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn_like(p) * 0.2)
    pm.save_pretrained(tmp_path / "adapter")
    seqs, labels = make_batch(model.config.vocab_size, 6)
    ref_loss, ref = torch_loss_and_grads(pm, seqs, labels)
    ref = {n.replace(".default", ""): g for n, g in ref.items()}
    loss, ours = run_tool(tmp_path / "m", seqs, labels, tmp_path, "--adapter", tmp_path / "adapter")
    assert abs(loss - ref_loss) <= 1e-5 * max(1.0, abs(ref_loss))
    assert len(ref) == 2 * 7 * model.config.num_hidden_layers
    worst = compare(ours, ref, ref.keys())
    print(f"{arch} LoRA: {len(ref)} tensors, worst relative error {worst:.1e}")
