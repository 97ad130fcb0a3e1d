"""DPO's reference pass on the real SmolLM2-135M-Instruct through `meteor train --loss dpo`.

The reference log-probs (ref_logps.json) are scored only for the pairs the run's planned
micro-batches visit, batched as those micro-batches are; they equal scoring each pair alone
bit for bit and transformers' float32 log-probs on the same weights within float rounding;
the first step's policy log-probs equal them exactly (LoRA starts at zero), so DPO's first
loss is log 2; and a resumed run scores the pairs its file lacks with the starting model,
ending bit-identical to an uninterrupted run.

"Bit for bit whatever the batch" holds where meteor's own GEMM runs (AVX-512 F/BW/DQ/VL).
Elsewhere the f32 products go through OpenBLAS, whose result for a row depends on how many
rows the call has (it picks other kernels and thread splits), so values scored in another
batch agree only to float rounding: there the tests check that, and say so.
"""
import json
import math
import os
import signal
import subprocess

import pytest
import torch
import transformers

N_PAIRS = 40


def own_gemm():
    """Whether meteor's own row-independent GEMM runs here (kernels/sgemm.c)."""
    with open("/proc/cpuinfo") as f:
        flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    return all(x in flags for x in ("avx512f", "avx512bw", "avx512dq", "avx512vl"))


def assert_same_scores(got, want):
    """Equal bits with meteor's GEMM; within float32 rounding of sums of ~100 log-probs with
    OpenBLAS (see the module docstring)."""
    if own_gemm():
        assert got == want
        return
    assert got.keys() == want.keys()
    for i in want:
        for g, w in zip(got[i], want[i]):
            assert g == pytest.approx(w, rel=1e-5, abs=1e-4), (i, got[i], want[i])


def first_sentence(text):
    words = text.replace("\n", " ").split()
    out = []
    for w in words:
        out.append(w)
        if (w.endswith(".") and len(out) >= 6) or len(out) >= 30:
            break
    return " ".join(out)


@pytest.fixture(scope="module")
def pairs(repo_root, tmp_path_factory):
    """Chosen: an FAQ answer's first sentence; rejected: another question's."""
    rows = [json.loads(l) for l in (repo_root / "data" / "python_faq.jsonl").read_text().splitlines()]
    path = tmp_path_factory.mktemp("dpo") / "pairs.jsonl"
    with path.open("w") as f:
        for i, r in enumerate(rows[:N_PAIRS]):
            other = rows[(i * 7 + 3) % N_PAIRS]
            if other is r:
                other = rows[(i + 1) % N_PAIRS]
            f.write(json.dumps({"question": r["title"], "chosen": first_sentence(r["reference_answer"]),
                                "rejected": first_sentence(other["reference_answer"])}) + "\n")
    return path


ARGS = ["--loss", "dpo", "--lora-rank", 8, "--lr", "1e-3", "--schedule", "constant", "--threads", 2,
        "--quiet"]


def train(run_meteor, model, data, out, *more, env=None, check=True):
    return run_meteor("train", "-m", model, "--data", data, "--out", out, *ARGS, *map(str, more),
                      env=env, check=check, timeout=1800)


def ref_file(out):
    return json.loads((out / "ref_logps.json").read_text())


def scored(ref):
    """{pair index: (chosen, rejected)} of the pairs the file holds values for."""
    return {i: (c, r) for i, (c, r) in enumerate(zip(ref["chosen"], ref["rejected"])) if c is not None}


def metrics(out):
    return [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def batched(run_meteor, smollm_gguf, pairs, tmp_path_factory):
    """Two steps of four pairs: the reference pass has eight pairs to score, in two groups."""
    out = tmp_path_factory.mktemp("batched")
    train(run_meteor, smollm_gguf, pairs, out, "--batch-size", 4, "--max-steps", 2)
    return out


def test_only_the_pairs_the_steps_visit_are_scored(batched):
    ref = ref_file(batched)
    assert len(ref["chosen"]) == len(ref["rejected"]) == N_PAIRS
    got = scored(ref)
    print(f"{len(got)} of {N_PAIRS} pairs scored: {sorted(got)}")
    assert len(got) == 8
    assert all(ref["rejected"][i] is None for i in range(N_PAIRS) if i not in got)
    assert all(c < 0 and r < 0 for c, r in got.values())


def test_first_step_policy_equals_reference(batched):
    """LoRA's B starts at zero, so at step 1 the policy is the reference model: batched the
    same way, its log-probs must equal the stored ones exactly, giving a zero reward margin and
    DPO's loss log 2 (no SFT term)."""
    first = metrics(batched)[0]
    print(first)
    assert first["reward_margin"] == 0.0
    assert first["loss"] == round(math.log(2), 6)


def test_batched_equals_one_pair_at_a_time(run_meteor, smollm_gguf, pairs, batched, tmp_path):
    """With --batch-size 1 every pair is scored alone, as the reference pass did before it was
    batched. The shuffle does not depend on the batch size, so eight steps visit the same eight
    pairs; their values must be the same bits."""
    alone = tmp_path / "alone"
    train(run_meteor, smollm_gguf, pairs, alone, "--batch-size", 1, "--max-steps", 8)
    assert_same_scores(scored(ref_file(alone)), scored(ref_file(batched)))


def test_reference_matches_transformers(batched, smollm_gguf, build_dir, pairs, hf_gguf):
    """Summed answer log-probs of the scored pairs against transformers in float32 on the same
    (dequantised) weights, from the tokens and loss mask meteor trained on (data_dump)."""
    exe = build_dir / "tools" / "data_dump"
    assert exe.is_file(), f"{exe} is missing: build it with `make`"
    dump = json.loads(subprocess.run([str(exe), str(smollm_gguf), str(pairs)], capture_output=True,
                                     text=True, check=True, timeout=300).stdout)
    model, _ = hf_gguf(smollm_gguf)

    def logp(side):
        ids = torch.tensor([side["tokens"]])
        with torch.no_grad():
            lp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
        return sum(lp[i - 1, t].item() for i, t in enumerate(side["tokens"]) if side["mask"][i])

    worst = 0.0
    for i, (c, r) in scored(ref_file(batched)).items():
        ex = dump["examples"][i]
        for got, side in ((c, ex["chosen"]), (r, ex["rejected"])):
            want = logp(side)
            worst = max(worst, abs(got - want))
            assert got == pytest.approx(want, abs=1e-3), f"pair {i}"
    print(f"largest difference from transformers: {worst:.2e}")


def test_resume_scores_what_the_file_lacks_with_the_starting_model(run_meteor, meteor_bin, smollm_gguf,
                                                                   pairs, tmp_path):
    """A run killed after its second checkpoint, whose ref_logps.json then lacks half of its
    values (as a file from a run with fewer steps would), resumes to the same checkpoint and
    the same reference values as a run never interrupted: the missing pairs are scored with the
    starting model, not the trained one, and none is taken as 0."""
    more = ["--batch-size", 2, "--max-steps", 4, "--save-every", 1]
    full = tmp_path / "full"
    train(run_meteor, smollm_gguf, pairs, full, *more)
    killed = tmp_path / "killed"
    p = train(run_meteor, smollm_gguf, pairs, killed, *more, check=False,
              env=dict(os.environ, METEOR_FAULT_KILL="checkpoint_saved:2"))
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    ref = ref_file(killed)
    have = sorted(scored(ref))
    assert len(have) == 8
    for i in have[::2]:
        ref["chosen"][i] = ref["rejected"][i] = None
    (killed / "ref_logps.json").write_text(json.dumps(ref))
    train(run_meteor, smollm_gguf, pairs, killed, *more, "--resume")
    resumed, whole = ref_file(killed), ref_file(full)
    assert [c is None for c in resumed["chosen"]] == [c is None for c in whole["chosen"]]
    assert_same_scores(scored(resumed), scored(whole))
    if own_gemm():
        assert resumed == whole
        assert (killed / "checkpoint.safetensors").read_bytes() == (full / "checkpoint.safetensors").read_bytes()
    else:
        # the rescored half came in other batches: the run goes on from values a rounding
        # apart, so only its length is compared
        assert [m["step"] for m in metrics(killed)][-1] == [m["step"] for m in metrics(full)][-1]
