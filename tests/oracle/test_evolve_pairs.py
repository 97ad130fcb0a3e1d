"""Phase 3's pairs against PyTorch: the log-probs `meteor evolve` stores with each pair, and the
preference losses `meteor train` computes on the stored pairs file, equal transformers' float32
numbers on the same (dequantised) SmolLM2 weights.

One small evolve round on the bare model (a fresh LoRA adapter is zero, so the round scores its
pairs with the base weights) writes data/pairs-round-1.jsonl. Its chosen_logp / rejected_logp are
mean token log-probs of the answer (up to and including the end-of-turn marker) as training lays
the conversation out; the run is --precise (f32 activations and KV cache), so they agree with
transformers' float32 to rounding. The training losses are computed in precise mode:
a margin step's loss is mean relu(nll_chosen - nll_rejected + margin) over the pairs, and a DPO
step with an SFT term is log 2 (the policy is the reference at the first step) plus the weight
times the mean NLL over every chosen answer token. The PyTorch side pads every sequence of the
batch to one length and excludes the padding (and the prompt) from each mean.
"""
import json
import math
import subprocess

import pytest
import torch

N_QUESTIONS = 6
MARGIN, SFT_WEIGHT = 1.0, 0.5


def jsonl(path):
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


@pytest.fixture(scope="module")
def pairs_file(run_meteor, smollm_gguf, repo_root, tmp_path_factory):
    lines = (repo_root / "data" / "python_faq.jsonl").read_text(encoding="utf-8").splitlines()
    tmp = tmp_path_factory.mktemp("evolve")
    questions = tmp / "faq.jsonl"
    questions.write_text("".join(l + "\n" for l in lines[:N_QUESTIONS]), encoding="utf-8")
    run = tmp / "run"
    # training is not what this module checks: one step on a tiny learning rate
    run_meteor("evolve", "--run", run, "-m", smollm_gguf, "--questions", questions, "--from-base",
               "--rounds", "1", "--max-tokens", "20", "--max-len", "160", "--batch-size", "8",
               "--lr", "1e-9", "--precise", "-t", "2", "--quiet")
    path = run / "data" / "pairs-round-1.jsonl"
    assert len(jsonl(path)) >= 2, "the round kept too few pairs to check a batch"
    return path


@pytest.fixture(scope="module")
def dumped(pairs_file, smollm_gguf, build_dir):
    """The tokens and loss masks meteor trains on for each pair (tools/data_dump)."""
    exe = build_dir / "tools" / "data_dump"
    assert exe.is_file(), f"{exe} is missing: build it with `make`"
    out = subprocess.run([str(exe), str(smollm_gguf), str(pairs_file), "--max-len", "160"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    return json.loads(out)["examples"]


@pytest.fixture(scope="module")
def torch_nll(dumped, smollm_gguf, hf_gguf):
    """Per pair (mean NLL chosen, mean NLL rejected, summed log-prob chosen, chosen tokens),
    from one right-padded float32 batch of every sequence."""
    model, _ = hf_gguf(smollm_gguf)
    sides = [ex[s] for ex in dumped for s in ("chosen", "rejected")]
    width = max(len(s["tokens"]) for s in sides)
    ids = torch.zeros((len(sides), width), dtype=torch.long)
    attention = torch.zeros((len(sides), width), dtype=torch.long)
    answer = torch.zeros((len(sides), width), dtype=torch.bool)
    for row, s in enumerate(sides):
        n = len(s["tokens"])
        ids[row, :n] = torch.tensor(s["tokens"])
        attention[row, :n] = 1
        answer[row, :n] = torch.tensor(s["mask"], dtype=torch.bool)  # padding is never a target
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attention).logits.double()
    # position i predicts token i + 1; the mask marks the predicted tokens
    lp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    target = answer[:, 1:]
    sums = (lp * target).sum(-1)
    counts = target.sum(-1)
    out = []
    for k in range(len(dumped)):
        c, r = 2 * k, 2 * k + 1
        out.append((-(sums[c] / counts[c]).item(), -(sums[r] / counts[r]).item(),
                    sums[c].item(), counts[c].item()))
    return out


def test_stored_log_probs_equal_transformers(pairs_file, torch_nll):
    worst = 0.0
    for p, (nll_c, nll_r, _, _) in zip(jsonl(pairs_file), torch_nll):
        for got, want in ((p["chosen_logp"], -nll_c), (p["rejected_logp"], -nll_r)):
            worst = max(worst, abs(got - want))
            assert got == pytest.approx(want, abs=1e-4), p["id"]
    print(f"\nlargest difference of a stored mean log-prob from transformers: {worst:.2e}")


def first_step_loss(run_meteor, smollm_gguf, pairs_file, out, *args):
    n = len(jsonl(pairs_file))
    run_meteor("train", "-m", smollm_gguf, "--data", pairs_file, "--out", out, "--max-len", "160",
               "--batch-size", str(n), "--max-steps", "1", "--lr", "1e-9", "-t", "2", "--quiet",
               *args)
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["loss"]


def test_margin_loss_on_the_stored_pairs_equals_torch(run_meteor, smollm_gguf, pairs_file,
                                                     torch_nll, tmp_path):
    got = first_step_loss(run_meteor, smollm_gguf, pairs_file, tmp_path / "margin", "--loss",
                          "margin", "--margin", str(MARGIN))
    want = sum(max(0.0, c - r + MARGIN) for c, r, _, _ in torch_nll) / len(torch_nll)
    assert got == pytest.approx(want, abs=1e-4)


def test_dpo_loss_with_sft_term_on_the_stored_pairs_equals_torch(run_meteor, smollm_gguf,
                                                                pairs_file, torch_nll, tmp_path):
    got = first_step_loss(run_meteor, smollm_gguf, pairs_file, tmp_path / "dpo", "--loss", "dpo",
                          "--sft-weight", str(SFT_WEIGHT))
    chosen_nll = -sum(s for _, _, s, _ in torch_nll) / sum(n for _, _, _, n in torch_nll)
    want = math.log(2) + SFT_WEIGHT * chosen_nll
    assert got == pytest.approx(want, abs=1e-4)
